//go:build !linux && !windows

package spawnisolated

import "fmt"

func openChannel(v uintptr) (Conn, error) {
	return nil, fmt.Errorf("%w: no channel support on this OS", ErrNotLauncher)
}
