package spawnisolated

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

func openChannel(fd uintptr) (Conn, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(fd), &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFSOCK {
		return nil, fmt.Errorf("%w: fd %d is not a socket", ErrNotLauncher, fd)
	}
	domain, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_DOMAIN)
	if err != nil || domain != syscall.AF_UNIX {
		return nil, fmt.Errorf("%w: fd %d is not a Unix socket", ErrNotLauncher, fd)
	}
	cred, err := syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	if err != nil {
		return nil, fmt.Errorf("%w: fd %d has no peer: %v", ErrNotLauncher, fd, err)
	}
	// The peer made the socket pair: the launcher. It is this process's parent, or (under
	// spawn-isolated's init, PID 1 of this namespace) outside the namespace, where its pid reads 0.
	comm, _ := os.ReadFile("/proc/1/comm")
	underInit := os.Getppid() == 1 && strings.HasPrefix(string(comm), initComm)
	if !(int(cred.Pid) == os.Getppid() || (cred.Pid == 0 && underInit)) {
		return nil, fmt.Errorf("%w: its peer is pid %d, not this process's launcher", ErrNotLauncher, cred.Pid)
	}
	// A plain file on the blocking socket, as os.Stdin is: reads and writes go straight to the
	// kernel (net.FileConn would put every message through the network poller: measured twice
	// the round-trip latency of stdio).
	syscall.CloseOnExec(int(fd))
	return os.NewFile(fd, "spawn-isolated-channel"), nil
}
