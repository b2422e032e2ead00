package spawnisolated

import (
	"fmt"
	"net"
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
	f := os.NewFile(fd, "spawn-isolated-channel")
	c, err := net.FileConn(f)
	f.Close() // FileConn made its own copy
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotLauncher, err)
	}
	syscall.CloseOnExec(int(fd))
	return c, nil
}
