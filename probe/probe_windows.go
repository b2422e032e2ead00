package main

import "syscall"

var (
	kernel32        = syscall.NewLazyDLL("kernel32.dll")
	procOpenProcess = kernel32.NewProc("OpenProcess")
)

func listFds() map[string]any {
	return map[string]any{"listed": false, "why": "a Windows process cannot list its own handles without NtQuerySystemInformation"}
}

// escape PID: which dangerous rights this process gets on PID (its launcher): duplicating its
// handles out (its job), writing its memory, terminating it.
func escape(launcher int) map[string]any {
	const processDupHandle, processVmWrite, processVmOperation, processTerminate = 0x0040, 0x0020, 0x0008, 0x0001
	res := map[string]any{}
	for right, mask := range map[string]uintptr{"dupHandle": processDupHandle, "vmWrite": processVmWrite | processVmOperation, "terminate": processTerminate} {
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
