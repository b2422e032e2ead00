// Package spawnisolated is the worker's side of spawn-isolated: what a worker runs under, read
// from the OS from inside (whoever launched it), and the Go runtime tuned to it.
//
// Import it with a replace directive pointing at the npm package's copy:
//
//	require spawn-isolated/go v0.0.0
//	replace spawn-isolated/go => ./node_modules/spawn-isolated/go
package spawnisolated

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
)

// Limits is what this process runs under, as the OS reports it from inside. Zero values mean
// "none found".
type Limits struct {
	// Mechanism: "job-object" (Windows), "cgroup-v2", "cgroup-v1", or "none".
	Mechanism string `json:"mechanism"`
	// MemoryTotal: bytes for the whole tree (job memory limit, memory.max, limit_in_bytes).
	MemoryTotal uint64 `json:"memoryTotal"`
	// MemoryProcess: bytes for this process (job process memory limit, RLIMIT_DATA).
	MemoryProcess uint64 `json:"memoryProcess"`
	// CPUCores: the CPU rate cap in cores (job CPU rate, cpu.max, cfs quota / period).
	CPUCores float64 `json:"cpuCores"`
	// CPUTimeMs: CPU time of this process (job per-process user time, RLIMIT_CPU).
	CPUTimeMs uint64 `json:"cpuTimeMs"`
	// Processes: processes alive at once (job ActiveProcessLimit); Tasks: tasks (pids.max).
	Processes uint32 `json:"processes"`
	Tasks     uint64 `json:"tasks"`
	// Handles: open files / handles (RLIMIT_NOFILE; Windows has no such limit to read).
	Handles uint64 `json:"handles"`
	// KillOnClose: the tree ends when its launcher goes (job kill-on-close; Linux: a parent-death
	// signal is set, or this process is in a PID namespace of its own under an init).
	KillOnClose bool `json:"killOnClose"`
	// Confinement of the process itself: Windows token facts, Linux credentials and filters.
	Integrity      string `json:"integrity,omitempty"` // Windows: "low", "medium", "high", "system"
	Privileges     int    `json:"privileges"`          // Windows: privileges left in the token
	RestrictedSIDs int    `json:"restrictedSids"`      // Windows: restricting SIDs of the token
	NoNewPrivs     bool   `json:"noNewPrivs"`          // Linux
	Seccomp        int    `json:"seccomp"`             // Linux: 0 none, 1 strict, 2 filter
	Capabilities   uint64 `json:"capabilities"`        // Linux: effective capability set
	Cgroup         string `json:"cgroup,omitempty"`    // Linux: this process's cgroup path
	Nested         int    `json:"nested"`              // Windows: jobs in the chain (1 = one job)
	// Who and where: the account this process runs as (Windows DOMAIN\user) and, on Windows, its session.
	User    string `json:"user,omitempty"`
	Session int    `json:"session"` // -1 where sessions do not apply (POSIX)
}

// Tuned reports what Tune set.
type Tuned struct {
	GOMAXPROCS  int   `json:"gomaxprocs"`
	MemoryLimit int64 `json:"memoryLimit"`
}

// memoryHeadroom is the share of the memory limit the Go heap is aimed at: the rest is for
// the runtime's own overhead, stacks and non-Go memory, so the soft limit acts before the hard one.
const memoryHeadroom = 0.9

// Tune sets GOMAXPROCS from the CPU cap and the Go memory limit (debug.SetMemoryLimit) from
// the memory limits that Limits finds, each unless the environment already set it
// (GOMAXPROCS, GOMEMLIMIT). The Go runtime reads a Linux cgroup's cpu.max itself (Go 1.25+),
// but nothing on Windows: there a worker capped at 1 core on 32 still runs 32 Ps.
func Tune() (Limits, Tuned) {
	l := Read()
	t := Tuned{GOMAXPROCS: runtime.GOMAXPROCS(0), MemoryLimit: debug.SetMemoryLimit(-1)}
	if os.Getenv("GOMAXPROCS") == "" && l.CPUCores > 0 {
		n := int(math.Ceil(l.CPUCores))
		if n < 1 {
			n = 1
		}
		if n < runtime.NumCPU() {
			runtime.GOMAXPROCS(n)
			t.GOMAXPROCS = n
		}
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		limit := smallest(l.MemoryTotal, l.MemoryProcess)
		if limit > 0 && limit < math.MaxInt64 {
			t.MemoryLimit = int64(float64(limit) * memoryHeadroom)
			debug.SetMemoryLimit(t.MemoryLimit)
		}
	}
	return l, t
}

func smallest(a, b uint64) uint64 {
	switch {
	case a == 0:
		return b
	case b == 0 || a < b:
		return a
	default:
		return b
	}
}

// CPUBaseEnv is set by the launcher when the jobs around the worker's own job cap the CPU: the
// cores they allow, of which the worker's own job's CPU rate is a share (Windows: a nested job's
// rate is relative to its parent's capacity, and a process can query only its innermost job).
const CPUBaseEnv = "SPAWN_ISOLATED_CPU_BASE"

// effectiveCores is the CPU cap of a process whose innermost job has the hard-cap rate `rate`
// (1..10000 of its parent's capacity; 0: none) inside jobs that allow `base` cores (0: the
// machine's `logical` processors).
func effectiveCores(rate uint32, base float64, logical int) float64 {
	capacity := float64(logical)
	if base > 0 && base < capacity {
		capacity = base
	}
	if rate > 0 {
		return float64(rate) / 10000 * capacity
	}
	if capacity < float64(logical) {
		return capacity
	}
	return 0
}
