//go:build !linux && !windows

package spawnisolated

// Read returns what this process runs under: nothing this package can read on this OS.
func Read() Limits { return Limits{Mechanism: "none", Session: -1} }
