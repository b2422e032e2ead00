#!/usr/bin/env bash
# Runs inside the cgroup v2 guest that scripts/test-vm.sh boots (as root, with this checkout
# read-only and OUT writable): the Linux suites (a) as root and (b) as uid 65534 owning a
# delegated cgroup v2 subtree, as a systemd service with Delegate=yes runs. Writes to OUT:
#   times                     "what epoch-seconds uptime-seconds" per step
#   <suite>.support.json      isolationSupport() as that launcher sees it
#   <suite>.txt / <suite>.rc  mocha's spec output and exit status
# OUT/config.sh (written by the host) sets ROOT_SPECS, DELEGATED_SPECS, ROOT_SKIP,
# DELEGATED_SKIP, GREP, TIMEOUT_MS and SLOW.
set -uo pipefail
out=$1
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# shellcheck disable=SC1091
. "$out/config.sh"
stamp() { echo "$1 $(date +%s.%N) $(cut -d' ' -f1 /proc/uptime)" >>"$out/times"; }
if [ "${2:-}" != run ]; then
  export HOME=/tmp/si-root-home # the guest's /root is read-only
  mkdir -p "$HOME"
  stamp guest-start
  echo "guest: $(uname -r), $(nproc) CPUs, cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)" >"$out/guest.txt"
fi

mocha=(node node_modules/mocha/bin/mocha.js --no-config --reporter spec --require scripts/vm-slow.js --timeout "$TIMEOUT_MS" --slow 4000)
# Software emulation runs several times slower than the host: the time limits tests set
# themselves (scripts/vm-slow.js) and their waits (helpers.slow) are stretched by this factor.
export SPAWN_ISOLATED_TEST_SLOW=$SLOW

# What the launcher must see, or the suite would pass by skipping: a v2 backend enforcing the
# cgroup limits.
check='const s = require("./dist/lib").isolationSupport();
  require("fs").writeFileSync(process.argv[1], JSON.stringify(s, null, 1) + "\n");
  const bad = ["memory.total", "cpu.cores", "threads"].filter((l) => !s.limits[l].enforced || s.limits[l].mechanism !== "cgroup-v2");
  if (s.backend !== "linux-cgroup-v2" || bad.length) { console.error("not cgroup v2:", s.backend, JSON.stringify(bad.map((l) => [l, s.limits[l]]))); process.exit(1); }'

# `vm-guest.sh OUT run NAME DIR SPECS...`: one suite, as whoever runs it, results into DIR.
if [ "${2:-}" = run ]; then
  name=$3 dir=$4
  shift 4
  skip=ROOT_SKIP
  [ "$name" = delegated ] && skip=DELEGATED_SKIP
  if [ -n "$GREP" ]; then
    mocha+=(--grep "$GREP")
  elif [ -n "${!skip}" ]; then
    mocha+=(--grep "${!skip}" --invert)
  fi
  echo "$name: uid $(id -u), cgroup $(cut -d: -f3 /proc/self/cgroup)" >"$dir/$name.txt"
  [ -z "$GREP" ] && [ -n "${!skip}" ] && echo "$name: not run here (scripts/test-vm.sh says why): /${!skip}/" >>"$dir/$name.txt"
  out=$dir stamp "$name-start"
  if node -e "$check" "$dir/$name.support.json" >>"$dir/$name.txt" 2>&1; then
    "${mocha[@]}" "$@" >>"$dir/$name.txt" 2>&1
    echo $? >"$dir/$name.rc"
  else
    echo 'guest: the launcher does not see cgroup v2 with its controllers' >>"$dir/$name.txt"
    echo 90 >"$dir/$name.rc"
  fi
  out=$dir stamp "$name-end"
  exit 0
fi

# Both launchers run as systemd runs services: in a cgroup of their own under system.slice,
# with the controllers enabled above it (systemd enables what any unit uses).
cg=/sys/fs/cgroup
slice=$cg/system.slice
if ! { echo '+memory +cpu +pids' >"$cg/cgroup.subtree_control" && mkdir -p "$slice" &&
  echo '+memory +cpu +pids' >"$slice/cgroup.subtree_control"; }; then
  echo 'guest: cannot enable memory, cpu and pids below the root cgroup' | tee -a "$out/root.txt" >>"$out/delegated.txt"
  exit 0
fi

# (a) root, in a service's cgroup that is not delegated to it (the library makes its cgroups
# there, root may; its processes move to a leaf so that controllers can be enabled).
mkdir -p "$slice/si-root.service"
# shellcheck disable=SC2016,SC2086
sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$slice/si-root.service" bash "$0" "$out" run root "$out" $ROOT_SPECS

# (b) uid 65534 in a delegated subtree, as systemd's Delegate=yes gives a service's user: the
# controllers come from its parent's subtree_control, the user owns the directory and its
# cgroup.procs, cgroup.subtree_control and cgroup.threads, and the service's main process runs
# in it (the library moves itself to a leaf to enable controllers below).
d=$slice/si-delegated.service
home=/tmp/si-nobody
res=$home/results
# Files the tests hand to workers live outside /tmp (a confined worker's /tmp is its own) and
# outside the read-only checkout: a directory of its own under /var/lib (a writable overlay).
scratch=/var/lib/si-nobody-scratch
if mkdir -p "$d" "$res" "$scratch" && chown 65534:65534 "$d" "$d/cgroup.procs" "$d/cgroup.subtree_control" "$d/cgroup.threads" "$home" "$res" "$scratch"; then
  # shellcheck disable=SC2016,SC2086
  sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec setpriv --reuid=65534 --regid=65534 --clear-groups "$@"' sh "$d" \
    env HOME="$home" SPAWN_ISOLATED_TEST_SCRATCH="$scratch" bash "$0" "$out" run delegated "$res" $DELEGATED_SPECS
  cat "$res/times" >>"$out/times"
  cp "$res"/delegated.* "$out/"
else
  echo 'guest: could not set up the delegated subtree' >>"$out/delegated.txt"
fi
stamp guest-end
sync
