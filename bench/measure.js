// What the bench scripts measure with (bench.js, ab.js): the clock, summaries, the machine's
// busy and idle time, this process tree's CPU, and a launch-to-close of the Go worker.
'use strict';
const fs = require('fs');
const os = require('os');

const hr = () => Number(process.hrtime.bigint()) / 1e6;

function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  const i = (s.length - 1) * q;
  const lo = Math.floor(i);
  return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (i - lo);
}
const median = (xs) => quantile(xs, 0.5);
function summary(xs) {
  return { median: median(xs), p10: quantile(xs, 0.1), p90: quantile(xs, 0.9), n: xs.length };
}

// The first line of /proc/stat: the whole machine's time by kind, in USER_HZ (100 on Linux).
function procStat() {
  return fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
}

// Busy jiffies of the whole machine (user, nice, system, irq, softirq), in ms. Not steal: the
// time a virtual machine's CPUs wanted to run while its host ran something else is no CPU this
// machine spent (on a shared host it can be half of a block's wall time).
function machineBusyMs() {
  const f = procStat();
  return ((f[0] + f[1] + f[2] + f[5] + f[6]) * 1000) / 100;
}

// Steal time of the whole machine, in ms: counted exactly (from the host's steal clock), read
// in 10 ms units. Wall time x CPUs less idle time less this is what the machine spent.
function machineStealMs() {
  return procStat()[7] * 10;
}

// Idle time of the whole machine, in ms, exactly: the cpuidle states' residency (µs) of every
// CPU where the kernel has cpuidle, else /proc/stat's idle and iowait (exact, but read in 10 ms
// units). Wall time x CPUs less this, and less steal, is the CPU spent (machineSpentMs), a
// short burst on an idle CPU included: the busy fields above count a CPU's time only at the
// ticks that land in it, and an idle CPU's tick is stopped, so a burst of microseconds there (a
// thread woken for a small job) is mostly not counted.
const cpuidleFiles = (() => {
  const files = [];
  try {
    for (const cpu of fs.readdirSync('/sys/devices/system/cpu').filter((d) => /^cpu\d+$/.test(d))) {
      const dir = `/sys/devices/system/cpu/${cpu}/cpuidle`;
      const states = fs.readdirSync(dir).filter((d) => /^state\d+$/.test(d));
      if (states.length === 0) return [];
      for (const st of states) files.push(`${dir}/${st}/time`);
    }
  } catch {
    return [];
  }
  return files;
})();
// Where machineIdleMs counts from, for a table's title.
const idleSource = cpuidleFiles.length > 0 ? 'cpuidle residency' : '/proc/stat idle';
function machineIdleMs() {
  if (cpuidleFiles.length > 0) return cpuidleFiles.reduce((sum, f) => sum + Number(fs.readFileSync(f, 'utf8')), 0) / 1000;
  const f = procStat();
  return (f[3] + f[4]) * 10;
}

// A counter of the CPU the whole machine spent, in ms (the difference of two readings): wall time
// x CPUs less idle time and steal.
const cpus = os.cpus().length;
function machineSpentMs() {
  return hr() * cpus - machineIdleMs() - machineStealMs();
}

// Resolves once the whole machine has been quiet for 100 ms (at most one 10 ms tick busy: the
// kernel's deferred work of what ran before is done), or after 5 s.
async function quiet() {
  const deadline = hr() + 5000;
  let last = machineBusyMs();
  let t = hr();
  while (hr() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const now = machineBusyMs();
    const busy = (now - last) / (hr() - t);
    last = now;
    t = hr();
    if (busy < 0.15) return;
  }
}

// CPU of this process and of its reaped children (every process of every tree is reaped by
// this process or by an init it reaps), in ms: what other work on a shared machine cannot add
// to. Not counted: the kernel's deferred work in its own threads (RCU, workqueues).
function treeCpuMs() {
  const s = fs.readFileSync('/proc/self/stat', 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ').map(Number);
  return ((f[11] + f[12] + f[13] + f[14]) * 1000) / 100;
}

// Round r's order of `keys`: a permutation drawn afresh each round (seeded by r: the same in
// every run). Rotating one order is not enough: each case would always follow the same other
// one, and what a case leaves behind lands on its follower (child_process's fork leaves the
// launcher's memory copy-on-write, to be faulted back in by whatever runs next; a network
// namespace's teardown runs on in the kernel's workqueue).
function roundOrder(keys, r) {
  let seed = (r + 1) * 0x9e3779b9;
  const rand = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...keys];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

// One launch of `file` with `start` (child_process.spawn or a spawnIsolated) to its 'close',
// its output read and dropped; resolves with ms from the call.
function launchOnce(start, file, args, options) {
  return new Promise((resolve, reject) => {
    const t0 = hr();
    const p = start(file, args, options);
    p.on('error', reject);
    if (p.stdout) p.stdout.resume();
    if (p.stderr) p.stderr.resume();
    p.on('close', () => resolve(hr() - t0));
  });
}

module.exports = { hr, quantile, median, summary, machineBusyMs, machineStealMs, machineIdleMs, machineSpentMs, idleSource, quiet, treeCpuMs, roundOrder, launchOnce };
