package spawnisolated

import (
	"errors"
	"io"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

var procCreateNamedPipeW = kernel32.NewProc("CreateNamedPipeW")

// A pipe like the launcher's channel: the server end (here the test's, synchronous) and the
// client end opened for overlapped I/O, wrapped as the worker's Conn.
func testPipe(t *testing.T) (server *os.File, conn *pipeConn) {
	t.Helper()
	name, _ := syscall.UTF16PtrFromString(`\\.\pipe\spawn-isolated-go-test-` + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36))
	const pipeAccessDuplex, firstInstance = 0x3, 0x00080000
	h, _, err := procCreateNamedPipeW.Call(uintptr(unsafe.Pointer(name)), pipeAccessDuplex|firstInstance, 0, 1, 65536, 65536, 0, 0)
	if syscall.Handle(h) == syscall.InvalidHandle {
		t.Fatalf("CreateNamedPipeW: %v", err)
	}
	client, err := syscall.CreateFile(name, syscall.GENERIC_READ|syscall.GENERIC_WRITE, 0, nil, syscall.OPEN_EXISTING, syscall.FILE_FLAG_OVERLAPPED, 0)
	if err != nil {
		t.Fatalf("CreateFile: %v", err)
	}
	c, err := newPipeConn(client)
	if err != nil {
		t.Fatal(err)
	}
	return os.NewFile(h, "server"), c
}

// A read blocked in one goroutine does not hold up a write from another.
func TestChannelWriteWhileReadIsBlocked(t *testing.T) {
	server, c := testPipe(t)
	defer server.Close()
	defer c.Close()
	readDone := make(chan string, 1)
	go func() {
		b := make([]byte, 16)
		n, err := c.Read(b)
		if err != nil {
			readDone <- "error: " + err.Error()
			return
		}
		readDone <- string(b[:n])
	}()
	time.Sleep(100 * time.Millisecond) // the read is pending by now
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write([]byte("progress\n"))
		wrote <- err
	}()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatalf("write: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the write was held up by the pending read")
	}
	got := make([]byte, 9)
	if _, err := io.ReadFull(server, got); err != nil || string(got) != "progress\n" {
		t.Fatalf("server read %q, %v", got, err)
	}
	server.Write([]byte("order"))
	select {
	case s := <-readDone:
		if s != "order" {
			t.Fatalf("read %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the read never completed")
	}
}

// Close ends a read blocked in another goroutine; the launcher closing its end is io.EOF.
func TestChannelCloseAndEOF(t *testing.T) {
	server, c := testPipe(t)
	readErr := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 8))
		readErr <- err
	}()
	time.Sleep(100 * time.Millisecond)
	c.Close()
	select {
	case err := <-readErr:
		if !errors.Is(err, os.ErrClosed) {
			t.Fatalf("read after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the pending read")
	}
	server.Close()

	server, c = testPipe(t)
	defer c.Close()
	go func() {
		_, err := c.Read(make([]byte, 8))
		readErr <- err
	}()
	time.Sleep(100 * time.Millisecond)
	server.Close()
	select {
	case err := <-readErr:
		if err != io.EOF {
			t.Fatalf("read after the server closed: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server's close did not end the pending read")
	}
	if _, err := c.Write([]byte("x")); err == nil {
		t.Fatal("a write after the server closed succeeded")
	}
}

// A large write goes through in chunks, whole.
func TestChannelLargeWrite(t *testing.T) {
	server, c := testPipe(t)
	defer server.Close()
	defer c.Close()
	data := make([]byte, 1<<20+123)
	for i := range data {
		data[i] = byte(i)
	}
	go func() { c.Write(data) }()
	got := make([]byte, len(data))
	if _, err := io.ReadFull(server, got); err != nil {
		t.Fatal(err)
	}
	for i := range data {
		if got[i] != data[i] {
			t.Fatalf("byte %d differs", i)
		}
	}
}
