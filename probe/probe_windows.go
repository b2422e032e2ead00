package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

var (
	kernel32                       = syscall.NewLazyDLL("kernel32.dll")
	ntdll                          = syscall.NewLazyDLL("ntdll.dll")
	procOpenProcess                = kernel32.NewProc("OpenProcess")
	procGetFinalPathNameByHandleW  = kernel32.NewProc("GetFinalPathNameByHandleW")
	procNtQueryInformationProcess  = ntdll.NewProc("NtQueryInformationProcess")
	procGetCurrentProcess          = kernel32.NewProc("GetCurrentProcess")
	statusInfoLengthMismatch       = uintptr(0xC0000004)
	processHandleInformation       = uintptr(51) // Windows 8 and later: a process's own handle table
	processHandleTableEntrySize    = unsafe.Sizeof(handleEntry{})
	processHandleSnapshotHeaderLen = 2 * unsafe.Sizeof(uintptr(0))
)

// PROCESS_HANDLE_TABLE_ENTRY_INFO.
type handleEntry struct {
	HandleValue      uintptr
	HandleCount      uintptr
	PointerCount     uintptr
	GrantedAccess    uint32
	ObjectTypeIndex  uint32
	HandleAttributes uint32
	Reserved         uint32
}

// ownHandles lists this process's handles (NtQueryInformationProcess(ProcessHandleInformation),
// Windows 8 and later; no privilege needed for one's own process).
func ownHandles() ([]uintptr, error) {
	self, _, _ := procGetCurrentProcess.Call()
	size := uint32(4096)
	for tries := 0; tries < 8; tries++ {
		buf := make([]byte, size)
		var need uint32
		st, _, _ := procNtQueryInformationProcess.Call(self, processHandleInformation, uintptr(unsafe.Pointer(&buf[0])), uintptr(size), uintptr(unsafe.Pointer(&need)))
		if st == statusInfoLengthMismatch {
			size = max(size*2, need+4096)
			continue
		}
		if st != 0 {
			return nil, fmt.Errorf("NtQueryInformationProcess(ProcessHandleInformation) failed: NTSTATUS 0x%08x", uint32(st))
		}
		n := *(*uintptr)(unsafe.Pointer(&buf[0]))
		if processHandleSnapshotHeaderLen+n*processHandleTableEntrySize > uintptr(len(buf)) {
			return nil, fmt.Errorf("NtQueryInformationProcess(ProcessHandleInformation) returned %d handles in %d bytes", n, len(buf))
		}
		out := make([]uintptr, 0, n)
		for i := uintptr(0); i < n; i++ {
			e := (*handleEntry)(unsafe.Pointer(&buf[processHandleSnapshotHeaderLen+i*processHandleTableEntrySize]))
			out = append(out, e.HandleValue)
		}
		return out, nil
	}
	return nil, fmt.Errorf("NtQueryInformationProcess(ProcessHandleInformation): the handle table kept growing")
}

func finalPath(h syscall.Handle) string {
	buf := make([]uint16, 1024)
	n, _, _ := procGetFinalPathNameByHandleW.Call(uintptr(h), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0)
	if n == 0 || int(n) > len(buf) {
		return ""
	}
	return strings.TrimPrefix(syscall.UTF16ToString(buf[:n]), `\\?\`)
}

// listFds: the files and pipes this process holds besides its stdio and its channel (what a
// launcher may have let through), keyed by handle value. Directories (the current directory's
// handle) and console devices are not listed.
func listFds() map[string]any {
	handles, err := ownHandles()
	if err != nil {
		return map[string]any{"listed": false, "why": err.Error()}
	}
	skip := map[uintptr]bool{uintptr(syscall.Stdin): true, uintptr(syscall.Stdout): true, uintptr(syscall.Stderr): true}
	if v, err := strconv.ParseUint(os.Getenv("SPAWN_ISOLATED_CHANNEL"), 10, 64); err == nil {
		skip[uintptr(v)] = true
	}
	fds := map[string]string{}
	for _, hv := range handles {
		if skip[hv] {
			continue
		}
		h := syscall.Handle(hv)
		// GetFileType only asks the object's device: it does no I/O, so it cannot block on a pipe,
		// and answers FILE_TYPE_UNKNOWN for handles that are not files (events, threads, keys).
		t, err := syscall.GetFileType(h)
		if err != nil {
			continue
		}
		switch t {
		case syscall.FILE_TYPE_DISK:
			var info syscall.ByHandleFileInformation
			if syscall.GetFileInformationByHandle(h, &info) == nil && info.FileAttributes&syscall.FILE_ATTRIBUTE_DIRECTORY != 0 {
				continue
			}
			fds[strconv.FormatUint(uint64(hv), 10)] = finalPath(h)
		case syscall.FILE_TYPE_PIPE:
			fds[strconv.FormatUint(uint64(hv), 10)] = "pipe"
		}
	}
	return map[string]any{"fds": fds, "listed": true}
}

// escape PID: which dangerous rights this process gets on PID (its launcher): duplicating its
// handles out (its job), writing its memory, terminating it, creating a thread in it, and using
// it as the parent of a new process (PROC_THREAD_ATTRIBUTE_PARENT_PROCESS: the child would get
// that process's token and job, outside this one's limits).
func escape(launcher int) map[string]any {
	const (
		processTerminate     = 0x0001
		processCreateThread  = 0x0002
		processVMOperation   = 0x0008
		processVMWrite       = 0x0020
		processDupHandle     = 0x0040
		processCreateProcess = 0x0080
	)
	res := map[string]any{}
	for right, mask := range map[string]uintptr{
		"dupHandle":     processDupHandle,
		"vmWrite":       processVMWrite | processVMOperation,
		"terminate":     processTerminate,
		"createThread":  processCreateThread,
		"createProcess": processCreateProcess,
	} {
		h, _, _ := procOpenProcess.Call(mask, 0, uintptr(launcher))
		if h != 0 {
			syscall.CloseHandle(syscall.Handle(h))
		}
		res[right] = h != 0
	}
	return res
}

// terminal: Windows has no TIOCSTI (a console's input is not pushed this way).
func terminal() map[string]any { return map[string]any{"unsupported": true} }

// leave: Windows has no shared /tmp or /dev/shm (each worker's TEMP is its own when asked).
func leave(name string) map[string]any { return map[string]any{"unsupported": true} }
