#!/usr/bin/env node
// npm run bench: spawnIsolated against child_process.spawn, side by side in one run, launching
// the same Go worker with the same stdio ('ignore' and 'pipe'). Prints each table (median and
// p10-p90 over repeated runs, interleaved) and the machine:
//   - spawn-to-exit latency, one at a time;
//   - throughput, 8 in flight;
//   - CPU the whole machine spends per spawn (/proc/stat around N sequential spawns: the kernel's
//     deferred work for namespaces and cgroups, in kernel threads, counts too), Linux; by the
//     busy ticks, and as wall time x CPUs less the exact idle time;
//   - the parent's threads and RSS with many live workers, stdout throughput, limit latency.
//   - context switches of this process's threads per spawn, by thread name (Linux);
//   node bench/bench.js [--quick] [--json FILE] [--only latency,throughput,cpu,wakeups,parent,stdout,limit] [--ballast MiB]
// --ballast: this process holds that much more memory, touched, before it measures (a launcher
// the size of a service: child_process.spawn forks the launcher, and a fork's CPU grows with
// its memory; spawnIsolated's clone shares it). Each table's title says the launcher's RSS.
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const { build, hostTarget } = require('../scripts/build-fixtures');
const { spawnIsolated, isolationSupport } = require('../dist/lib');
const { hr, summary, machineBusyMs, machineSpentMs, idleSource, quiet, treeCpuMs, roundOrder, launchOnce } = require('./measure');

const quick = process.argv.includes('--quick');
const jsonOut = process.argv.includes('--json') ? process.argv[process.argv.indexOf('--json') + 1] : undefined;
const worker = build(...hostTarget());
const ALL_LIMITS = { memory: '256MiB', cpu: { cores: 1, time: '60s', affinity: [0] }, processes: 4, handles: 1000 };
const only = process.argv.includes('--only') ? new Set(process.argv[process.argv.indexOf('--only') + 1].split(',')) : undefined;
const want = (section) => !only || only.has(section);
const ballastMiB = process.argv.includes('--ballast') ? Number(process.argv[process.argv.indexOf('--ballast') + 1]) : 0;
const ballast = Array.from({ length: ballastMiB }, () => Buffer.alloc(1 << 20, 1));
const rssMiB = () => Math.round(process.memoryUsage().rss / 1048576);

// The cases compared, each with the stdio it runs with: child_process.spawn and spawnIsolated
// launch the same worker with the same stdio.
const CASES = {
  "child_process.spawn ('ignore')": { kind: 'child_process.spawn', stdio: 'ignore' },
  "child_process.spawn ('pipe')": { kind: 'child_process.spawn', stdio: 'pipe' },
  "default ('ignore')": { kind: 'spawnIsolated', stdio: 'ignore' },
  "default ('pipe')": { kind: 'spawnIsolated', stdio: 'pipe' },
  "all limits ('ignore')": { kind: 'spawnIsolated', stdio: 'ignore', limits: ALL_LIMITS },
  "all limits ('pipe')": { kind: 'spawnIsolated', stdio: 'pipe', limits: ALL_LIMITS },
  "'inherit' privileges ('pipe')": { kind: 'spawnIsolated', stdio: 'pipe', limits: { privileges: 'inherit' } },
  "network: 'none' ('pipe')": { kind: 'spawnIsolated', stdio: 'pipe', limits: { network: 'none' } },
};
// Which child_process case each is compared with (the same stdio).
const baseOf = (name) => `child_process.spawn ('${CASES[name].stdio}')`;
const launch = (name) => launchers[CASES[name].kind](['exit', '0'], CASES[name]);

// One launch to exit with each launcher; resolves with ms from the call to 'exit'.
const launchers = {
  'child_process.spawn': (args, opts = {}) => launchOnce(spawn, worker, args, { stdio: opts.stdio ?? 'pipe' }),
  spawnIsolated: (args, opts = {}) => launchOnce(spawnIsolated, worker, args, { stdio: opts.stdio ?? 'pipe', ...(opts.limits ?? {}) }),
};

async function latency(runs) {
  const res = Object.fromEntries(Object.keys(CASES).map((k) => [k, []]));
  for (let i = 0; i < 5; i++) for (const k of Object.keys(CASES)) await launch(k); // warm-up
  // Interleaved, in a new order each round (roundOrder): no case always runs right after the
  // same other one (a network namespace's teardown, say, runs on in kernel threads into the next
  // spawn).
  for (let i = 0; i < runs; i++) for (const k of roundOrder(Object.keys(CASES), i)) res[k].push(await launch(k));
  return Object.fromEntries(Object.entries(res).map(([k, v]) => [k, summary(v)]));
}

// CPU per spawn: around `count` sequential spawns of each case, cases interleaved round by
// round, the whole machine's (/proc/stat: with the kernel's deferred work, and whatever else the
// machine runs) and this process tree's; the median of the rounds.
async function cpuPerSpawn(count, rounds) {
  const machine = Object.fromEntries(Object.keys(CASES).map((k) => [k, []]));
  const tree = Object.fromEntries(Object.keys(CASES).map((k) => [k, []]));
  const exact = Object.fromEntries(Object.keys(CASES).map((k) => [k, []]));
  for (let r = 0; r < rounds; r++) {
    // In a new order each round, as for latency.
    for (const k of roundOrder(Object.keys(CASES), r)) {
      for (let i = 0; i < 5; i++) await launch(k);
      await quiet();
      const m0 = machineBusyMs();
      const t0 = treeCpuMs();
      const s0 = machineSpentMs();
      for (let i = 0; i < count; i++) await launch(k);
      // The kernel's deferred work for this case (a network namespace's cleanup runs on for
      // hundreds of ms in its workqueue) is this case's: counted until the machine is quiet
      // again, not left to whichever case comes next.
      await quiet();
      machine[k].push((machineBusyMs() - m0) / count);
      tree[k].push((treeCpuMs() - t0) / count);
      exact[k].push((machineSpentMs() - s0) / count);
    }
  }
  const sum = (res) => Object.fromEntries(Object.entries(res).map(([k, v]) => [k, summary(v)]));
  return { machine: sum(machine), tree: sum(tree), exact: sum(exact) };
}

function table(title, unit, results) {
  console.log(`\n${title}`);
  console.log(`  case                                   median ${unit.padEnd(4)}  p10-p90          vs child_process, same stdio`);
  for (const [k, v] of Object.entries(results)) {
    // < 1 is faster for latency and CPU, > 1 is faster for throughput.
    const ratio = v.median / results[baseOf(k)].median;
    console.log(`  ${k.padEnd(38)} ${fmt(v.median, unit === '/s' ? 0 : 2).padStart(9)}    ${(fmt(v.p10, unit === '/s' ? 0 : 2) + '-' + fmt(v.p90, unit === '/s' ? 0 : 2)).padEnd(16)} ${fmt(ratio)}x`);
  }
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

// Context switches (voluntary + involuntary) of this process's threads, summed by name (the JS
// thread is "JS"; libuv's and V8's unnamed ones are "node").
function threadSwitches() {
  const out = {};
  for (const t of fs.readdirSync('/proc/self/task')) {
    let s;
    try {
      s = fs.readFileSync(`/proc/self/task/${t}/status`, 'utf8');
    } catch {
      continue; // ended meanwhile
    }
    const name = Number(t) === process.pid ? 'JS' : /^Name:\s+(.*)$/m.exec(s)[1];
    const n = Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(s)[1]) + Number(/^nonvoluntary_ctxt_switches:\s+(\d+)$/m.exec(s)[1]);
    out[name] = (out[name] ?? 0) + n;
  }
  return out;
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
    launcherRssMiB: rssMiB(),
    ballastMiB: ballast.length,
  };
  console.log(
    `machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memory}, ${machine.kernel}, Node ${machine.node}, backend ${machine.backend}${machine.root ? ' (root)' : ''}; launcher RSS ${machine.launcherRssMiB} MiB (ballast ${machine.ballastMiB} MiB)\n`,
  );
  const results = { machine };

  if (want('latency')) {
    // 300 each: ~6 s in all; 60 made medians that moved by 0.05-0.07x between runs here.
    const runs = quick ? 15 : 300;
    results.latency = await latency(runs);
    table(`spawn-to-exit latency of a worker that exits at once (${runs} interleaved runs each):`, 'ms', results.latency);
  }

  if (want('throughput')) {
    // Rounds, each running every case in turn: drift on a busy 2-core machine (other
    // processes, the kernel's deferred cgroup and namespace work) falls on all of them alike.
    const total = quick ? 80 : 200;
    const rounds = quick ? 3 : 7;
    const trates = Object.fromEntries(Object.keys(CASES).map((k) => [k, []]));
    // In a new order each round (roundOrder), each case started on a quiet machine: a network
    // namespace's cleanup, which runs on in the kernel's workqueue, slows whichever case follows.
    for (let r = 0; r < rounds; r++)
      for (const k of roundOrder(Object.keys(CASES), r)) {
        await quiet();
        trates[k].push(await throughput(total, 8, () => launch(k)));
      }
    results.throughput = Object.fromEntries(Object.entries(trates).map(([k, v]) => [k, summary(v)]));
    table(`spawn throughput, 8 in flight, ${total} launches per round, ${rounds} interleaved rounds:`, '/s', results.throughput);
  }

  if (want('cpu') && process.platform === 'linux') {
    // /proc/stat counts in ticks of 10 ms: 400 spawns of ~2.5 ms make a tick under 1 % of a
    // round's figure (150 made it 2.7 %, as coarse as the differences measured).
    const count = quick ? 50 : 400;
    const rounds = quick ? 3 : 7;
    const rss = rssMiB();
    results.cpu = await cpuPerSpawn(count, rounds);
    results.cpu.launcherRssMiB = rss;
    table(
      `CPU the whole machine spends per spawn (/proc/stat, ${count} sequential spawns, median of ${rounds} interleaved rounds; launcher RSS ${rss} MiB):`,
      'ms',
      results.cpu.machine,
    );
    table(`CPU of this process tree per spawn (its own and its reaped children's, same runs):`, 'ms', results.cpu.tree);
    table(
      `CPU the whole machine spends per spawn, counted as wall time x CPUs less idle time (${idleSource}, same runs):`,
      'ms',
      results.cpu.exact,
    );
  }

  if (want('wakeups') && process.platform === 'linux') {
    // Each time a thread of this process blocks and is woken again costs CPU (on a VM a thread
    // woken on the other CPU costs ~13 us: bench/wake-cost.js); count them by thread name.
    const count = quick ? 30 : 200;
    results.wakeups = {};
    console.log(`\ncontext switches of this process's threads per spawn (voluntary + involuntary, ${count} sequential spawns, by thread name):`);
    for (const name of ["child_process.spawn ('ignore')", "default ('ignore')", "all limits ('ignore')"]) {
      for (let i = 0; i < 5; i++) await launch(name);
      const a = threadSwitches();
      for (let i = 0; i < count; i++) await launch(name);
      const b = threadSwitches();
      const per = {};
      for (const [k, v] of Object.entries(b)) {
        const d = (v - (a[k] ?? 0)) / count;
        if (d >= 0.01) per[k] = Number(d.toFixed(2));
      }
      const total = Object.values(per).reduce((x, y) => x + y, 0);
      results.wakeups[name] = { total: Number(total.toFixed(2)), threads: per };
      console.log(`  ${name.padEnd(38)} ${fmt(total, 1).padStart(5)}  ${Object.entries(per).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    }
  }

  if (want('parent')) {
    console.log('\nparent cost with N sleeping workers (threads of this Node process; RSS growth per worker):');
    results.parentCost = {};
    for (const n of quick ? [1, 100] : [1, 100, 500]) {
      const a = await parentCost('child_process.spawn', n);
      const b = await parentCost('spawnIsolated', n);
      results.parentCost[n] = { 'child_process.spawn': a, spawnIsolated: b };
      console.log(`  N=${String(n).padEnd(4)} child_process: ${a.threads} threads, ${fmt(a.rssKiBPerWorker, 1)} KiB/worker   spawnIsolated: ${b.threads} threads, ${fmt(b.rssKiBPerWorker, 1)} KiB/worker`);
    }
  }

  if (want('stdout')) {
    const bytes = (quick ? 50 : 200) * 1e6;
    const reps = quick ? 2 : 5;
    const tp = { 'child_process.spawn': [], spawnIsolated: [] };
    for (let i = 0; i < reps; i++) for (const k of Object.keys(tp)) tp[k].push(await stdoutThroughput(k, bytes));
    results.stdout = Object.fromEntries(Object.entries(tp).map(([k, v]) => [k, summary(v)]));
    const r = results.stdout.spawnIsolated.median / results.stdout['child_process.spawn'].median;
    console.log(`\nstdout throughput, ${bytes / 1e6} MB, ${reps} runs: child_process ${fmt(results.stdout['child_process.spawn'].median, 0)} MB/s, spawnIsolated ${fmt(results.stdout.spawnIsolated.median, 0)} MB/s (${fmt(r)}x)`);
  }

  if (!want('limit')) {
  } else if (support.limits['memory.total'].enforced) {
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
