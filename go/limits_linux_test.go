//go:build linux

package spawnisolated

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseProcCgroup(t *testing.T) {
	v2, v1 := ParseProcCgroup("12:cpu,cpuacct:/a/b\n4:memory:/m\n1:name=systemd:/s\n0::/unified/x\n")
	if v2 != "/unified/x" || v1["cpu"] != "/a/b" || v1["cpuacct"] != "/a/b" || v1["memory"] != "/m" {
		t.Fatalf("got %q %v", v2, v1)
	}
}

func TestCgroupMounts(t *testing.T) {
	text := "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n" +
		"33 31 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n" +
		"34 31 0:31 /sub /elsewhere rw - cgroup cgroup rw,pids\n" +
		"41 31 0:38 / /sys/fs/cgroup/unified rw shared:8 - cgroup2 cgroup2 rw\n"
	v2, v1 := CgroupMounts(text)
	if v2 != "/sys/fs/cgroup/unified" || v1["cpu"] != "/sys/fs/cgroup/cpu,cpuacct" || v1["memory"] != "/sys/fs/cgroup/memory" || v1["pids"] != "" {
		t.Fatalf("got %q %v", v2, v1)
	}
}

func TestLimitValues(t *testing.T) {
	cases := []struct {
		got, want float64
	}{
		{parseCPUMax("50000 100000"), 0.5},
		{parseCPUMax("max 100000"), 0},
		{parseCFS("-1", "100000"), 0},
		{parseCFS("200000", "100000"), 2},
		{float64(parseMax("max")), 0},
		{float64(parseMax("4096")), 4096},
		{float64(parseV1Bytes("9223372036854771712")), 0},
		{float64(parseV1Bytes("268435456")), 268435456},
	}
	for i, c := range cases {
		if c.got != c.want {
			t.Errorf("case %d: got %v, want %v", i, c.got, c.want)
		}
	}
}

// The tightest limit on the way up holds, and "max" is none.
func TestMinOverChain(t *testing.T) {
	root := t.TempDir()
	leaf := filepath.Join(root, "a", "b")
	os.MkdirAll(leaf, 0o755)
	os.WriteFile(filepath.Join(root, "memory.max"), []byte("max\n"), 0o644)
	os.WriteFile(filepath.Join(root, "a", "memory.max"), []byte("1048576\n"), 0o644)
	os.WriteFile(filepath.Join(leaf, "memory.max"), []byte("4194304\n"), 0o644)
	if got := minOverChain(leaf, root, "memory.max", parseMax); got != 1048576 {
		t.Fatalf("got %d", got)
	}
}
