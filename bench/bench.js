#!/usr/bin/env node
// npm run bench: spawnIsolated against child_process.spawn, side by side in one run, launching
// the same Go worker. Prints a table (median and p10-p90 over repeated runs) and the machine.
//   node bench/bench.js [--quick] [--json FILE]
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { build, hostTarget } = require('../scripts/build-fixtures');
const { spawnIsolated, isolationSupport } = require('../dist/lib');

const quick = process.argv.includes('--quick');
const jsonOut = process.argv.includes('--json') ? process.argv[process.argv.indexOf('--json') + 1] : undefined;
const worker = build(...hostTarget());
const ALL_LIMITS = { memory: '256MiB', cpu: { cores: 1, time: '60s', affinity: [0] }, processes: 4, handles: 1000 };

const hr = () => Number(process.hrtime.bigint()) / 1e6;
const median = (xs) => quantile(xs, 0.5);
function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  const i = (s.length - 1) * q;
  const lo = Math.floor(i);
  return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (i - lo);
}
function summary(xs) {
  return { median: median(xs), p10: quantile(xs, 0.1), p90: quantile(xs, 0.9), n: xs.length };
}

// One launch to exit with each launcher; resolves with ms from the call to 'exit'.
const launchers = {
  'child_process.spawn': (args, opts = {}) =>
    new Promise((resolve, reject) => {
      const t0 = hr();
      const c = spawn(worker, args, { stdio: opts.stdio ?? 'pipe' });
      c.on('error', reject);
      if (c.stdout) c.stdout.resume();
      if (c.stderr) c.stderr.resume();
      c.on('close', () => resolve(hr() - t0));
    }),
  spawnIsolated: (args, opts = {}) =>
    new Promise((resolve, reject) => {
      const t0 = hr();
      const p = spawnIsolated(worker, args, { stdio: opts.stdio ?? 'pipe', ...(opts.limits ?? {}) });
      p.on('error', reject);
      if (p.stdout) p.stdout.resume();
      if (p.stderr) p.stderr.resume();
      p.on('close', () => resolve(hr() - t0));
    }),
};

async function latency(runs) {
  const cases = {
    'child_process.spawn': () => launchers['child_process.spawn'](['exit', '0']),
    'spawnIsolated (no limits)': () => launchers.spawnIsolated(['exit', '0']),
    "spawnIsolated (no limits, 'inherit')": () => launchers.spawnIsolated(['exit', '0'], { limits: { privileges: 'inherit' } }),
    'spawnIsolated (all limits)': () => launchers.spawnIsolated(['exit', '0'], { limits: ALL_LIMITS }),
  };
  const res = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (let i = 0; i < 5; i++) for (const f of Object.values(cases)) await f(); // warm-up
  for (let i = 0; i < runs; i++) for (const [k, f] of Object.entries(cases)) res[k].push(await f()); // interleaved
  return Object.fromEntries(Object.entries(res).map(([k, v]) => [k, summary(v)]));
}

async function throughput(total, inFlight, f) {
  const t0 = hr();
  let next = 0;
  const lane = async () => {
    while (next < total) {
      next++;
      await f();
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  return total / ((hr() - t0) / 1000);
}

function selfStatus() {
  const s = fs.readFileSync('/proc/self/status', 'utf8');
  const get = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)[1]);
  return { threads: get('Threads'), rssKiB: get('VmRSS') };
}

async function parentCost(kind, count) {
  const before = selfStatus();
  const live = [];
  for (let i = 0; i < count; i++) {
    if (kind === 'child_process.spawn') {
      const c = spawn(worker, ['sleep', '600000'], { stdio: 'ignore' });
      live.push({ kill: () => c.kill('SIGKILL'), done: new Promise((r) => c.on('exit', r)), spawned: new Promise((r) => c.on('spawn', r)) });
    } else {
      const p = spawnIsolated(worker, ['sleep', '600000'], { stdio: 'ignore' });
      live.push({ kill: () => p.kill('SIGKILL'), done: p.exited, spawned: new Promise((r) => p.on('spawn', r)) });
    }
  }
  await Promise.all(live.map((l) => l.spawned));
  const during = selfStatus();
  for (const l of live) l.kill();
  await Promise.all(live.map((l) => l.done));
  return { threads: during.threads, threadsBefore: before.threads, rssKiBPerWorker: Math.max(0, (during.rssKiB - before.rssKiB) / count) };
}

async function stdoutThroughput(kind, bytes) {
  const ms = await launchers[kind](['write', String(bytes)], { stdio: ['ignore', 'pipe', 'ignore'] });
  return bytes / 1e6 / (ms / 1000);
}

async function limitLatency(runs) {
  const out = [];
  for (let i = 0; i < runs; i++) {
    const p = spawnIsolated(worker, ['allocstamp', '4096'], { memory: '128MiB', go: false, stdio: ['ignore', 'pipe', 'ignore'] });
    let last = 0;
    let buf = '';
    p.stdout.on('data', (d) => {
      buf += d;
      let j;
      while ((j = buf.indexOf('\n')) >= 0) {
        const line = JSON.parse(buf.slice(0, j));
        buf = buf.slice(j + 1);
        if (line.t) last = line.t;
      }
    });
    const exitAt = await new Promise((r) => p.on('exit', () => r(Date.now())));
    const e = await p.exited;
    if (e.reason !== 'memory') throw new Error(`expected a memory kill, got ${e.reason}`);
    out.push(exitAt - last);
  }
  return summary(out);
}

function fmt(x, d = 2) {
  return x.toFixed(d);
}

(async () => {
  const support = isolationSupport();
  const machine = {
    cpu: os.cpus()[0].model,
    cores: os.cpus().length,
    memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    backend: support.backend,
    root: process.getuid ? process.getuid() === 0 : false,
  };
  console.log(`machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memory}, ${machine.kernel}, Node ${machine.node}, backend ${machine.backend}${machine.root ? ' (root)' : ''}\n`);
  const results = { machine };

  const runs = quick ? 15 : 60;
  results.latency = await latency(runs);
  const base = results.latency['child_process.spawn'].median;
  console.log(`spawn-to-exit latency of a worker that exits at once (${runs} interleaved runs each):`);
  console.log('  launcher                               median ms   p10-p90 ms      ratio');
  for (const [k, v] of Object.entries(results.latency)) {
    console.log(`  ${k.padEnd(38)} ${fmt(v.median).padStart(9)}   ${fmt(v.p10)}-${fmt(v.p90)}`.padEnd(70) + `${fmt(v.median / base)}x`);
  }

  // Rounds, each running every launcher in turn: drift on a busy 2-core machine (other
  // processes, the kernel's deferred cgroup and namespace work) falls on all of them alike.
  const total = quick ? 80 : 200;
  const rounds = quick ? 3 : 7;
  const tcases = {
    'child_process.spawn': () => launchers['child_process.spawn'](['exit', '0']),
    spawnIsolated: () => launchers.spawnIsolated(['exit', '0']),
    'spawnIsolated (all limits)': () => launchers.spawnIsolated(['exit', '0'], { limits: ALL_LIMITS }),
    "spawnIsolated ('inherit')": () => launchers.spawnIsolated(['exit', '0'], { limits: { privileges: 'inherit' } }),
  };
  const trates = Object.fromEntries(Object.keys(tcases).map((k) => [k, []]));
  for (let r = 0; r < rounds; r++) for (const [k, f] of Object.entries(tcases)) trates[k].push(await throughput(total, 8, f));
  results.throughput = Object.fromEntries(Object.entries(trates).map(([k, v]) => [k, summary(v)]));
  const tbase = results.throughput['child_process.spawn'].median;
  console.log(`\nspawn throughput, 8 in flight, ${total} launches per round, ${rounds} interleaved rounds:`);
  console.log('  launcher                               median /s   p10-p90 /s      ratio');
  for (const [k, v] of Object.entries(results.throughput)) {
    console.log(`  ${k.padEnd(38)} ${fmt(v.median, 0).padStart(9)}   ${fmt(v.p10, 0)}-${fmt(v.p90, 0)}`.padEnd(70) + `${fmt(v.median / tbase)}x`);
  }

  console.log('\nparent cost with N sleeping workers (threads of this Node process; RSS growth per worker):');
  results.parentCost = {};
  for (const n of quick ? [1, 100] : [1, 100, 500]) {
    const a = await parentCost('child_process.spawn', n);
    const b = await parentCost('spawnIsolated', n);
    results.parentCost[n] = { 'child_process.spawn': a, spawnIsolated: b };
    console.log(`  N=${String(n).padEnd(4)} child_process: ${a.threads} threads, ${fmt(a.rssKiBPerWorker, 1)} KiB/worker   spawnIsolated: ${b.threads} threads, ${fmt(b.rssKiBPerWorker, 1)} KiB/worker`);
  }

  const bytes = (quick ? 50 : 200) * 1e6;
  const reps = quick ? 2 : 5;
  const tp = { 'child_process.spawn': [], spawnIsolated: [] };
  for (let i = 0; i < reps; i++) for (const k of Object.keys(tp)) tp[k].push(await stdoutThroughput(k, bytes));
  results.stdout = Object.fromEntries(Object.entries(tp).map(([k, v]) => [k, summary(v)]));
  const r = results.stdout.spawnIsolated.median / results.stdout['child_process.spawn'].median;
  console.log(`\nstdout throughput, ${bytes / 1e6} MB, ${reps} runs: child_process ${fmt(results.stdout['child_process.spawn'].median, 0)} MB/s, spawnIsolated ${fmt(results.stdout.spawnIsolated.median, 0)} MB/s (${fmt(r)}x)`);

  if (support.limits['memory.total'].enforced) {
    results.limitLatency = await limitLatency(quick ? 3 : 10);
    const l = results.limitLatency;
    console.log(`\nmemory limit crossed -> 'exit' event: median ${fmt(l.median, 0)} ms (p10-p90 ${fmt(l.p10, 0)}-${fmt(l.p90, 0)} ms; from the worker's last timestamp)`);
  } else {
    console.log(`\nmemory limit -> event: not measured (${support.limits['memory.total'].reason})`);
  }
  if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify(results, null, 2));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
