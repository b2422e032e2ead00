package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

func listFds() map[string]any {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return map[string]any{"error": err.Error()}
	}
	fds := map[string]string{}
	for _, e := range entries {
		n, _ := strconv.Atoi(e.Name())
		if n <= 2 {
			continue
		}
		// Skip the directory being read (closed by now) and the runtime's own (its epoll and eventfd).
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil || strings.HasPrefix(target, "anon_inode:") || strings.HasPrefix(target, "/proc/") {
			continue
		}
		fds[e.Name()] = target
	}
	return map[string]any{"fds": fds, "listed": true}
}

// escape: the probe's own cgroup files (written with the value they already hold: a success
// means it could raise its limits, without changing anything), its capabilities, and a signal
// to its launcher (signal 0: only the permission check).
func escape(launcher int) map[string]any {
	res := map[string]any{}
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "CapEff:") {
			res["capEff"] = strings.TrimSpace(strings.TrimPrefix(line, "CapEff:"))
		}
		if strings.HasPrefix(line, "NoNewPrivs:") {
			res["noNewPrivs"] = strings.TrimSpace(strings.TrimPrefix(line, "NoNewPrivs:")) == "1"
		}
	}
	writable := []string{}
	cg, _ := os.ReadFile("/proc/self/cgroup")
	for _, line := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var files []string
		switch {
		case parts[0] == "0":
			files = []string{"/sys/fs/cgroup" + parts[2] + "/memory.max", "/sys/fs/cgroup" + parts[2] + "/pids.max"}
		case strings.Contains(parts[1], "memory"):
			files = []string{"/sys/fs/cgroup/memory" + parts[2] + "/memory.limit_in_bytes"}
		case strings.Contains(parts[1], "pids"):
			files = []string{"/sys/fs/cgroup/pids" + parts[2] + "/pids.max"}
		}
		for _, f := range files {
			v, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			if os.WriteFile(f, v, 0) == nil {
				writable = append(writable, f)
			}
		}
	}
	res["writableLimits"] = writable
	var rl syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	raised := rl
	raised.Max++
	res["raiseHardLimit"] = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil
	res["signalLauncher"] = launcher > 0 && syscall.Kill(launcher, 0) == nil
	return res
}

// terminal: whether it can open a controlling terminal, and push input (TIOCSTI) into any
// terminal among its stdio or /dev/tty. The byte it would push is a space.
func terminal() map[string]any {
	res := map[string]any{}
	fds := []int{0, 1, 2}
	if f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0); err == nil {
		defer f.Close()
		res["ttyOpen"] = true
		fds = append(fds, int(f.Fd()))
	} else {
		res["ttyOpen"] = false
	}
	pushed, terminals := 0, 0
	for _, fd := range fds {
		var t syscall.Termios
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TCGETS, uintptr(unsafe.Pointer(&t))); e != 0 {
			continue
		}
		terminals++
		c := byte(' ')
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCSTI, uintptr(unsafe.Pointer(&c))); e == 0 {
			pushed++
		}
	}
	res["terminals"] = terminals
	res["pushed"] = pushed
	return res
}

// leave DIR...: writes a file named NAME into each of the shared places /tmp and /dev/shm.
func leave(name string) map[string]any {
	res := map[string]any{}
	for _, d := range []string{"/tmp", "/dev/shm"} {
		err := os.WriteFile(filepath.Join(d, name), []byte("left"), 0o644)
		res[d] = err == nil
	}
	return res
}
