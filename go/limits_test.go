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
