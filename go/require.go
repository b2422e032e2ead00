package spawnisolated

import (
	"fmt"
	"os"
)

// ExitUnconfined is the exit code of a worker that Require refused to run.
const ExitUnconfined = 78

// A Requirement is one condition Require checks.
type Requirement func(l Limits) error

// Confined: inside a job object (Windows) or a cgroup with a limit (Linux).
func Confined() Requirement {
	return func(l Limits) error {
		if l.Mechanism == "none" {
			return fmt.Errorf("not inside a job or a limited cgroup")
		}
		return nil
	}
}

// MemoryAtMost: a memory limit (the tree's or the process's) of at most bytes.
func MemoryAtMost(bytes uint64) Requirement {
	return func(l Limits) error {
		if m := smallest(l.MemoryTotal, l.MemoryProcess); m == 0 || m > bytes {
			return fmt.Errorf("memory limit %d is not at most %d", m, bytes)
		}
		return nil
	}
}

// CPUAtMost: a CPU rate cap of at most cores.
func CPUAtMost(cores float64) Requirement {
	return func(l Limits) error {
		if l.CPUCores == 0 || l.CPUCores > cores {
			return fmt.Errorf("CPU cap %.2f cores is not at most %.2f", l.CPUCores, cores)
		}
		return nil
	}
}

// FromLauncher: started by a spawn-isolated launcher with a channel, checked (see Channel).
// The channel is kept open for a later Channel call.
func FromLauncher() Requirement {
	return func(Limits) error {
		c, err := Channel()
		if err != nil {
			return err
		}
		kept = c
		return nil
	}
}

var kept Conn

// Require returns the limits when every requirement holds; otherwise it prints why to stderr
// and exits with ExitUnconfined. A worker that must never run outside its sandbox calls it
// first thing in main. With FromLauncher, the checked channel is returned too.
func Require(reqs ...Requirement) (Limits, Conn) {
	l := Read()
	for _, r := range reqs {
		if err := r(l); err != nil {
			fmt.Fprintf(os.Stderr, "spawn-isolated: refusing to run unconfined: %v\n", err)
			os.Exit(ExitUnconfined)
		}
	}
	return l, kept
}
