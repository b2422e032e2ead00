package spawnisolated

import (
	"os"
	"os/user"
	"path"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

const (
	prGetPdeathsig = 2
	initComm       = "memfd:spawn-iso" // spawn-isolated's init runs from a memfd of that name
)

// Read returns what this process runs under (see Limits).
func Read() Limits {
	l := Limits{Mechanism: "none", Session: -1}
	if u, err := user.Current(); err == nil {
		l.User = u.Username
	}
	cg, _ := os.ReadFile("/proc/self/cgroup")
	v2, v1 := ParseProcCgroup(string(cg))
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	v2root, v1roots := CgroupMounts(string(mounts))
	_, v1mem := v1["memory"]
	_, v1cpu := v1["cpu"]
	_, v1pids := v1["pids"]
	hybrid := v1mem || v1cpu || v1pids // controllers on v1 (an empty v2 hierarchy may sit beside them)
	switch {
	case !hybrid && v2 != "" && v2root != "":
		l.Cgroup = v2
		dir := path.Join(v2root, v2)
		l.MemoryTotal = minOverChain(dir, v2root, "memory.max", parseMax)
		l.CPUCores = cpuOverChain(dir, v2root, func(d string) float64 { return parseCPUMax(readTrim(path.Join(d, "cpu.max"))) })
		l.Tasks = minOverChain(dir, v2root, "pids.max", parseMax)
	case hybrid:
		if p, ok := v1["memory"]; ok && v1roots["memory"] != "" {
			l.Cgroup = p
			l.MemoryTotal = minOverChain(path.Join(v1roots["memory"], p), v1roots["memory"], "memory.limit_in_bytes", parseV1Bytes)
		}
		if p, ok := v1["cpu"]; ok && v1roots["cpu"] != "" {
			root := v1roots["cpu"]
			l.CPUCores = cpuOverChain(path.Join(root, p), root, func(d string) float64 {
				return parseCFS(readTrim(path.Join(d, "cpu.cfs_quota_us")), readTrim(path.Join(d, "cpu.cfs_period_us")))
			})
		}
		if p, ok := v1["pids"]; ok && v1roots["pids"] != "" {
			l.Tasks = minOverChain(path.Join(v1roots["pids"], p), v1roots["pids"], "pids.max", parseMax)
		}
	}
	if l.MemoryTotal > 0 || l.CPUCores > 0 || l.Tasks > 0 {
		if !hybrid {
			l.Mechanism = "cgroup-v2"
		} else {
			l.Mechanism = "cgroup-v1"
		}
	}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_DATA, &rl) == nil && rl.Cur != ^uint64(0) {
		l.MemoryProcess = rl.Cur
	}
	if syscall.Getrlimit(syscall.RLIMIT_CPU, &rl) == nil && rl.Cur != ^uint64(0) {
		l.CPUTimeMs = rl.Cur * 1000
	}
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur != ^uint64(0) {
		l.Handles = rl.Cur
	}
	var sig int
	syscall.Syscall(syscall.SYS_PRCTL, prGetPdeathsig, uintptr(unsafe.Pointer(&sig)), 0)
	// A parent-death signal, or spawn-isolated's init as PID 1 of this PID namespace (the tree
	// ends with it, and it ends with its launcher).
	comm, _ := os.ReadFile("/proc/1/comm")
	l.KillOnClose = sig != 0 || (os.Getppid() == 1 && strings.HasPrefix(string(comm), initComm))
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "NoNewPrivs":
			l.NoNewPrivs = v == "1"
		case "Seccomp":
			l.Seccomp, _ = strconv.Atoi(v)
		case "CapEff":
			l.Capabilities, _ = strconv.ParseUint(v, 16, 64)
		}
	}
	return l
}

// ParseProcCgroup reads /proc/PID/cgroup: the v2 path ("0::/path") and the v1 path per controller.
func ParseProcCgroup(text string) (v2 string, v1 map[string]string) {
	v1 = map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c != "" {
				v1[c] = parts[2]
			}
		}
	}
	return v2, v1
}

// CgroupMounts reads /proc/PID/mountinfo: where cgroup2 is mounted, and each v1 controller.
// A mount of a subtree (its root field is not "/") is where that subtree is seen.
func CgroupMounts(text string) (v2 string, v1 map[string]string) {
	v1 = map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f := strings.Fields(pre)
		p := strings.Fields(post)
		if !ok || len(f) < 5 || len(p) < 3 || f[3] != "/" {
			continue
		}
		switch p[0] {
		case "cgroup2":
			v2 = f[4]
		case "cgroup":
			for _, opt := range strings.Split(p[2], ",") {
				switch opt {
				case "memory", "cpu", "pids", "cpuacct", "cpuset":
					v1[opt] = f[4]
				}
			}
		}
	}
	return v2, v1
}

func readTrim(file string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// minOverChain: the smallest limit from dir up to root (a parent's limit holds for its children).
func minOverChain(dir, root, file string, parse func(string) uint64) uint64 {
	var best uint64
	for d := dir; ; d = path.Dir(d) {
		if v := parse(readTrim(path.Join(d, file))); v > 0 && (best == 0 || v < best) {
			best = v
		}
		if d == root || len(d) <= len(root) {
			return best
		}
	}
}

func cpuOverChain(dir, root string, cores func(string) float64) float64 {
	var best float64
	for d := dir; ; d = path.Dir(d) {
		if v := cores(d); v > 0 && (best == 0 || v < best) {
			best = v
		}
		if d == root || len(d) <= len(root) {
			return best
		}
	}
}

// parseMax: a number, or "max" / "" for none (0).
func parseMax(s string) uint64 {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// parseV1Bytes: v1's "no limit" is a huge page-aligned number (LONG_MAX rounded down to a page).
func parseV1Bytes(s string) uint64 {
	v := parseMax(s)
	if v >= 1<<62 {
		return 0
	}
	return v
}

// parseCPUMax: "QUOTA PERIOD" (cgroup v2 cpu.max), "max PERIOD" for none.
func parseCPUMax(s string) float64 {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0
	}
	return parseCFS(f[0], f[1])
}

func parseCFS(quota, period string) float64 {
	q, err1 := strconv.ParseFloat(quota, 64)
	p, err2 := strconv.ParseFloat(period, 64)
	if err1 != nil || err2 != nil || q <= 0 || p <= 0 {
		return 0
	}
	return q / p
}
