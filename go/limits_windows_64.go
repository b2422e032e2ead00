//go:build windows && !(386 || arm)

package spawnisolated

// JOBOBJECT_BASIC_LIMIT_INFORMATION on 64-bit Windows (amd64, arm64): Go's natural alignment is C's.
type basicLimits struct {
	PerProcessUserTimeLimit int64
	PerJobUserTimeLimit     int64
	LimitFlags              uint32
	MinimumWorkingSetSize   uintptr
	MaximumWorkingSetSize   uintptr
	ActiveProcessLimit      uint32
	Affinity                uintptr
	PriorityClass           uint32
	SchedulingClass         uint32
}

const (
	basicLimitsSize    = 64
	extendedLimitsSize = 144
)
