#!/usr/bin/env bash
# The Linux suites under cgroup v2, in a virtual machine: boots Debian 12's 6.1 kernel with
# virtme-ng (this machine's files read-only, every controller on cgroup2) and runs, in the guest,
# the tests that touch cgroups, privileges and isolation (a) as root in a service's cgroup and
# (b) as uid 65534 owning a delegated cgroup v2 subtree (systemd's Delegate=yes). See
# scripts/vm-guest.sh for the guest side. Installs qemu, the kernel, busybox-static and
# virtme-ng when missing; builds the addon, TypeScript and the Go worker on the host first.
#
#   bash scripts/test-vm.sh [--no-build]
#
# Environment: VM_ROOT_SPECS / VM_DELEGATED_SPECS (test files, dist/test/*.test.js),
# VM_ROOT_SKIP / VM_DELEGATED_SKIP (titles not run there, a mocha --grep --invert pattern),
# VM_GREP (run only the titles it matches, in both suites, in place of the skips),
# VM_TIMEOUT_MS (mocha's default timeout), VM_SLOW (SPAWN_ISOLATED_TEST_SLOW: the factor tests
# stretch their own waits and time limits by), VM_OUT (results directory), VM_KVM=1 (use
# /dev/kvm; nested KVM fails on this project's machines, so the default is software
# emulation), VM_LIMIT_S (the whole boot's deadline).
# Exits non-zero when a suite failed, or the guest never produced its results.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

build=1
for a in "$@"; do
  case $a in
    --no-build) build=0 ;;
    *) echo "test-vm: unknown argument $a" >&2; exit 2 ;;
  esac
done

# What runs, chosen to fit about 6-8 minutes of software emulation on a 2-core machine.
# Root: what cgroup v2 changes for a root launcher (its cgroups in a service's cgroup that is
# not delegated, workers of transient uids placed by clone3, cgroupfs read-only for them).
# Not run here: tests with no cgroup in them (rlimits, seccomp, fds, signals, identity, and the
# uid 65534 launcher a root test process starts, which gets no cgroup), the same code as the
# host suite runs as root; and the cgroup tests whose kernel side the delegated run below
# covers the same way (the CPU cap, stop() and timeout, a group's memory and CPU budgets).
ROOT_SPECS=${VM_ROOT_SPECS:-dist/test/linux.test.js dist/test/containment.test.js dist/test/group.test.js}
skip='memory\.process|cpu\.time|processes: 1 refuses|handles: 64|affinity:|non-close-on-exec fd|every signal at its default|stdio entries may be streams|spawns with fds in use|shows NoNewPrivs|uid / gid drop|reaches the worker.s handler|without a handler dies|signals a worker sends itself|orphaned grandchildren|started by a non-root launcher|runs as a uid and gid of its own|read or write its init|root-owned files|another worker.s environ|make namespaces|uid without gid|polluted'
skip+='|cpu: two spinning threads|stop\(\)|timeout: killSignal|stays under the limit|one budget for all members|own limits still apply|GOMAXPROCS / GOMEMLIMIT follow the group'
ROOT_SKIP=${VM_ROOT_SKIP-$skip}
# Delegated: a non-root launcher owning its cgroups, which the host suite never runs: all of
# these but
# - the removal of temp directories (200,000 files, a 30,000-deep tree, 20 workers, a dead
#   launcher's), the init's protection (100 ptrace attackers) and memory.process (RLIMIT_DATA):
#   up to a minute each under emulation, with no cgroup in them (the host suite runs them);
# - spawns with fds in use: a KNOWN FAILURE of any non-root launcher (cgroup v1 too): with 18
#   fds free below RLIMIT_NOFILE its spawn fails with EMFILE ("install the Landlock ruleset
#   failed"). Run it here again once that is fixed.
DELEGATED_SPECS=${VM_DELEGATED_SPECS:-dist/test/linux.test.js dist/test/containment.test.js dist/test/group.test.js dist/test/private-world.test.js}
skip='200,000 files|30,000-deep|every time \(20 workers\)|removed by the next launcher|PTRACE_SEIZE|memory\.process|spawns with fds in use'
DELEGATED_SKIP=${VM_DELEGATED_SKIP-$skip}
GREP=${VM_GREP:-}
TIMEOUT_MS=${VM_TIMEOUT_MS:-240000}
SLOW=${VM_SLOW:-10}
LIMIT_S=${VM_LIMIT_S:-1200}

kernel() { ls /boot/vmlinuz-*-amd64 2>/dev/null | grep -v -- -cloud- | sort -V | tail -n 1; }

# What the VM needs, installed when missing; still missing afterwards is an error.
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -n "$(kernel)" ] || need+=(linux-image-amd64)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static) # virtme-ng's guest init needs a static one
command -v vng >/dev/null || python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
if [ ${#need[@]} -gt 0 ]; then
  echo "test-vm: installing ${need[*]}"
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v vng >/dev/null; then
  echo 'test-vm: installing virtme-ng (pip)'
  python3 -m pip install -q virtme-ng 2>/dev/null || python3 -m pip install -q --break-system-packages virtme-ng
  hash -r
fi
vmlinuz=$(kernel)
for what in qemu-system-x86_64 vng; do
  command -v "$what" >/dev/null || { echo "test-vm: $what is missing after install" >&2; exit 1; }
done
[ -n "$vmlinuz" ] || { echo 'test-vm: no /boot/vmlinuz-*-amd64 after installing linux-image-amd64' >&2; exit 1; }

if [ $build = 1 ]; then
  npm run build
  node scripts/build-fixtures.js --host-only
fi
for f in build/Release/spawn_isolated.node test/fixtures/bin/linux-amd64/worker dist/test/linux.test.js; do
  [ -e "$f" ] || { echo "test-vm: $f is missing: build first (without --no-build)" >&2; exit 1; }
done

out=${VM_OUT:-$(mktemp -d /tmp/spawn-isolated-vm.XXXXXX)}
mkdir -p "$out"
rm -f "$out"/*.rc "$out"/*.txt "$out"/*.json "$out"/times
{
  printf 'ROOT_SPECS=%q\nDELEGATED_SPECS=%q\nROOT_SKIP=%q\nDELEGATED_SKIP=%q\n' "$ROOT_SPECS" "$DELEGATED_SPECS" "$ROOT_SKIP" "$DELEGATED_SKIP"
  printf 'GREP=%q\nTIMEOUT_MS=%q\nSLOW=%q\n' "$GREP" "$TIMEOUT_MS" "$SLOW"
} >"$out/config.sh"
# The delegated suite's launcher (uid 65534) reads config.sh too: mktemp made the directory 0700.
chmod 0755 "$out"
chmod 0644 "$out/config.sh"

kvm=(--disable-kvm)
[ "${VM_KVM:-0}" = 1 ] && kvm=()
echo "test-vm: booting $vmlinuz (${kvm[*]:-kvm}), results in $out"
t0=$(date +%s.%N)
set +e
timeout --kill-after=10 "$LIMIT_S" vng "${kvm[@]}" -r "$vmlinuz" --memory 4G --cpus 2 --rwdir "$out" --cwd "$PWD" \
  -- "bash $PWD/scripts/vm-guest.sh $out" >"$out/console.log" 2>&1
vng_rc=$?
set -e
t1=$(date +%s.%N)
[ $vng_rc = 124 ] && echo "test-vm: the VM was stopped after ${LIMIT_S} s (VM_LIMIT_S)" >&2

# Durations from the guest's stamps (its clock is the host's, from the emulated RTC).
at() { awk -v k="$1" '$1 == k { print $2; exit }' "$out/times" 2>/dev/null; }
secs() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f s", b - a }' || echo '-'; }
durations="whole VM run $(secs "$t0" "$t1") (vng exit $vng_rc): boot to the guest's command $(secs "$t0" "$(at guest-start)"),"
durations+=" root suite $(secs "$(at root-start)" "$(at root-end)"), delegated suite $(secs "$(at delegated-start)" "$(at delegated-end)")"
[ -f "$out/guest.txt" ] && cat "$out/guest.txt"

status=0
summary=()
for s in root delegated; do
  echo "===== $s ====="
  if [ -f "$out/$s.txt" ]; then cat "$out/$s.txt"; fi
  counts=$({ grep -hoE '^ +[0-9]+ (passing|failing|pending)' "$out/$s.txt" 2>/dev/null || true; } | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2 }')
  if [ ! -f "$out/$s.rc" ]; then
    summary+=("$s: NO RESULT")
    status=1
  elif [ "$(cat "$out/$s.rc")" != 0 ]; then
    summary+=("$s: FAILED (exit $(cat "$out/$s.rc"); $counts)")
    status=1
  else
    summary+=("$s: passed ($counts)")
  fi
done
if [ $status != 0 ]; then
  echo '===== guest console (last 40 lines) ====='
  tail -n 40 "$out/console.log"
fi
echo "test-vm: $durations"
echo "test-vm: ${summary[0]}; ${summary[1]} (results in $out)"
exit $status
