package spawnisolated

import (
	"runtime"
	"testing"
)

func TestReadRunsAnywhere(t *testing.T) {
	l := Read()
	if l.Mechanism == "" {
		t.Fatal("no mechanism")
	}
	if runtime.GOOS == "linux" && l.Handles == 0 {
		t.Fatal("RLIMIT_NOFILE not read")
	}
}

func TestTuneKeepsWhatTheEnvironmentSet(t *testing.T) {
	t.Setenv("GOMAXPROCS", "1")
	t.Setenv("GOMEMLIMIT", "off")
	before := runtime.GOMAXPROCS(0)
	_, tuned := Tune()
	if tuned.GOMAXPROCS != before || runtime.GOMAXPROCS(0) != before {
		t.Fatalf("GOMAXPROCS changed to %d", tuned.GOMAXPROCS)
	}
}

func TestSmallest(t *testing.T) {
	if smallest(0, 5) != 5 || smallest(5, 0) != 5 || smallest(3, 5) != 3 || smallest(0, 0) != 0 {
		t.Fatal("smallest")
	}
}

// A nested job's CPU rate is a share of what the jobs around it allow (a group capped at 1 core
// on a 16-processor machine: a member's 5000 is half a core, not 8 cores).
func TestEffectiveCores(t *testing.T) {
	for _, c := range []struct {
		rate    uint32
		base    float64
		logical int
		want    float64
	}{
		{5000, 1, 16, 0.5}, // a member at half of its group's one core
		{5000, 0, 16, 8},   // no cap around it: a share of the machine
		{10000, 2, 4, 2},   // all of a 2-core group
		{0, 2, 16, 2},      // no rate of its own: its group's cap
		{0, 0, 16, 0},      // no cap at all
		{2500, 32, 16, 4},  // a base above the machine is the machine
		{0, 16, 16, 0},     // a base of the whole machine caps nothing
	} {
		if got := effectiveCores(c.rate, c.base, c.logical); got != c.want {
			t.Errorf("effectiveCores(%d, %g, %d) = %g, want %g", c.rate, c.base, c.logical, got, c.want)
		}
	}
}
