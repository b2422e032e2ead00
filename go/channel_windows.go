package spawnisolated

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

var (
	procGetNamedPipeInfo            = kernel32.NewProc("GetNamedPipeInfo")
	procGetNamedPipeServerProcessId = kernel32.NewProc("GetNamedPipeServerProcessId")
	procCreateEventW                = kernel32.NewProc("CreateEventW")
	procCancelIoEx                  = kernel32.NewProc("CancelIoEx")
	procGetOverlappedResult         = kernel32.NewProc("GetOverlappedResult")
)

const (
	pipeServerEnd        = 1
	errorIOPending       = syscall.Errno(997)
	errorOperationAbort  = syscall.Errno(995)
	errorBrokenPipe      = syscall.Errno(109)
	errorPipeNotConnectd = syscall.Errno(233)
	channelChunk         = 64 * 1024
)

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
	return newPipeConn(h)
}

// pipeOp is one direction's overlapped I/O state. It lives on the heap, with its own buffer, for
// as long as the channel: the kernel writes to the OVERLAPPED and the buffer after ReadFile or
// WriteFile has returned, so neither may be on a goroutine stack (stacks move).
type pipeOp struct {
	mu  sync.Mutex // one read (or one write) at a time, as os.File allows
	ov  syscall.Overlapped
	buf [channelChunk]byte
}

// pipeConn is the worker's end of the channel, opened by the launcher for overlapped I/O, and
// driven here with explicit OVERLAPPED operations, waited for one at a time per direction: a read
// blocked in one goroutine never holds up a write from another (on a synchronous handle Windows
// runs one I/O at a time). This does not depend on the Go version's os.NewFile knowing about
// overlapped handles (Go 1.25 and later detect them; earlier ones would do synchronous I/O on
// it, which an overlapped handle does not support).
type pipeConn struct {
	h      syscall.Handle
	mu     sync.Mutex // guards closed, and orders starting I/O against Close's cancel
	closed bool
	r, w   *pipeOp
}

func newEvent() (syscall.Handle, error) {
	r, _, err := procCreateEventW.Call(0, 1, 0, 0) // manual reset: GetOverlappedResult waits on it
	if r == 0 {
		return 0, err
	}
	return syscall.Handle(r), nil
}

func newPipeConn(h syscall.Handle) (*pipeConn, error) {
	c := &pipeConn{h: h, r: new(pipeOp), w: new(pipeOp)}
	for _, op := range []*pipeOp{c.r, c.w} {
		ev, err := newEvent()
		if err != nil {
			c.closeEvents()
			return nil, fmt.Errorf("spawn-isolated: the channel: CreateEventW: %w", err)
		}
		op.ov.HEvent = ev
	}
	return c, nil
}

func (c *pipeConn) closeEvents() {
	for _, op := range []*pipeOp{c.r, c.w} {
		if op.ov.HEvent != 0 {
			syscall.CloseHandle(op.ov.HEvent)
			op.ov.HEvent = 0
		}
	}
}

// do runs one overlapped ReadFile / WriteFile of op.buf[:n] and waits for it.
func (c *pipeConn) do(op *pipeOp, write bool, n int) (int, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, os.ErrClosed
	}
	var done uint32
	var err error
	ev := op.ov.HEvent
	op.ov = syscall.Overlapped{HEvent: ev}
	if write {
		err = syscall.WriteFile(c.h, op.buf[:n], &done, &op.ov)
	} else {
		err = syscall.ReadFile(c.h, op.buf[:n], &done, &op.ov)
	}
	c.mu.Unlock()
	if err != nil && err != errorIOPending {
		return 0, err
	}
	// Done at once or pending: the count is what the completed OVERLAPPED says.
	done = 0
	if r, _, e := procGetOverlappedResult.Call(uintptr(c.h), uintptr(unsafe.Pointer(&op.ov)), uintptr(unsafe.Pointer(&done)), 1); r == 0 {
		return int(done), e
	}
	return int(done), nil
}

func (c *pipeConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	n, err := c.do(c.r, false, min(len(b), channelChunk))
	copy(b, c.r.buf[:n])
	switch {
	case err == nil && n == 0, errors.Is(err, errorBrokenPipe), errors.Is(err, errorPipeNotConnectd):
		return n, io.EOF // the launcher closed its end
	case errors.Is(err, errorOperationAbort):
		return n, os.ErrClosed
	case err != nil:
		return n, &os.PathError{Op: "read", Path: "spawn-isolated-channel", Err: err}
	}
	return n, nil
}

func (c *pipeConn) Write(b []byte) (int, error) {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	written := 0
	for written < len(b) {
		k := copy(c.w.buf[:], b[written:])
		n, err := c.do(c.w, true, k)
		written += n
		switch {
		case errors.Is(err, errorOperationAbort):
			return written, os.ErrClosed
		case errors.Is(err, errorBrokenPipe), errors.Is(err, errorPipeNotConnectd):
			return written, &os.PathError{Op: "write", Path: "spawn-isolated-channel", Err: syscall.EPIPE}
		case err != nil:
			return written, &os.PathError{Op: "write", Path: "spawn-isolated-channel", Err: err}
		case n == 0:
			return written, io.ErrShortWrite
		}
	}
	return written, nil
}

// Close cancels a read or write in progress in other goroutines (they return os.ErrClosed),
// waits for them, and closes the handle.
func (c *pipeConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return os.ErrClosed
	}
	c.closed = true
	procCancelIoEx.Call(uintptr(c.h), 0) // every I/O started so far on this handle
	c.mu.Unlock()
	c.r.mu.Lock()
	c.w.mu.Lock()
	defer c.r.mu.Unlock()
	defer c.w.mu.Unlock()
	err := syscall.CloseHandle(c.h)
	c.closeEvents()
	return err
}
