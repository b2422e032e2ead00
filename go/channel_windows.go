package spawnisolated

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

var (
	procGetNamedPipeInfo            = kernel32.NewProc("GetNamedPipeInfo")
	procGetNamedPipeServerProcessId = kernel32.NewProc("GetNamedPipeServerProcessId")
)

const pipeServerEnd = 1

func openChannel(v uintptr) (Conn, error) {
	h := syscall.Handle(v)
	if t, err := syscall.GetFileType(h); err != nil || t != syscall.FILE_TYPE_PIPE {
		return nil, fmt.Errorf("%w: handle %d is not a pipe", ErrNotLauncher, v)
	}
	var flags uint32
	if r, _, _ := procGetNamedPipeInfo.Call(uintptr(h), uintptr(unsafe.Pointer(&flags)), 0, 0, 0); r == 0 || flags&pipeServerEnd != 0 {
		return nil, fmt.Errorf("%w: handle %d is not a pipe's client end", ErrNotLauncher, v)
	}
	var server uint32
	if r, _, _ := procGetNamedPipeServerProcessId.Call(uintptr(h), uintptr(unsafe.Pointer(&server))); r == 0 {
		return nil, fmt.Errorf("%w: the pipe's server process cannot be read", ErrNotLauncher)
	}
	// The launcher holds the server end, and the launcher created this process.
	if int(server) != os.Getppid() {
		return nil, fmt.Errorf("%w: the pipe's server is pid %d, not this process's launcher (%d)", ErrNotLauncher, server, os.Getppid())
	}
	return os.NewFile(v, "spawn-isolated-channel"), nil
}
