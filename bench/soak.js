#!/usr/bin/env node
// npm run soak: 10,000 launches of the Go test worker, first one at a time, then 100 at once,
// with a mix of limits, kills, stops and timeouts. Each launch's exit is checked against what
// it must be (code, signal, reason), and afterwards this process must hold exactly what it held
// before: fds, threads, no zombie children, no cgroup beyond the ones kept ready for reuse
// (the cgroup files the launcher keeps open, and up to 4 cloner threads, are counted apart).
//   node bench/soak.js [--total N] [--concurrency C] [--json FILE]
// Exits 1 on any leak or misattributed exit. Linux (the leak checks read /proc and cgroupfs).
'use strict';
const fs = require('fs');
const { build, hostTarget } = require('../scripts/build-fixtures');
const { spawnIsolated, isolationSupport } = require('../dist/lib');
const { loadBinding } = require('../dist/lib/native');
const { clonerThreads, ownCgroupDirs, zombieChildren } = require('../dist/test/leaks');

const arg = (name, dflt) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : dflt);
const total = Number(arg('--total', 10000));
const concurrency = Number(arg('--concurrency', 100));
const jsonOut = arg('--json', undefined);
const worker = build(...hostTarget());
const support = isolationSupport();
const cgroups = support.limits['memory.total'].enforced;

const firstLine = (p) =>
  new Promise((resolve) => {
    let buf = '';
    p.stdout.on('data', (d) => {
      buf += d;
      if (buf.includes('\n')) resolve();
    });
    p.stdout.on('end', resolve);
  });

// Each kind: how to launch, what to do to it, and the exit it must end with.
const kinds = {
  exit: { weight: 30, run: (i) => spawnIsolated(worker, ['exit', String(i % 50)], { stdio: 'ignore' }), want: (i) => ({ code: i % 50, signal: null, reason: 'exit' }) },
  limits: {
    weight: 20,
    run: () => spawnIsolated(worker, ['exit', '0'], { memory: '256MiB', cpu: { cores: 1, time: '60s' }, processes: 4, handles: 1000, stdio: 'ignore' }),
    want: () => ({ code: 0, signal: null, reason: 'exit' }),
  },
  kill: {
    weight: 10,
    run: () => {
      const p = spawnIsolated(worker, ['sleep', '60000'], { stdio: 'ignore' });
      p.once('spawn', () => p.kill('SIGKILL'));
      return p;
    },
    want: () => ({ code: null, signal: 'SIGKILL', reason: 'killed' }),
  },
  term: {
    weight: 10,
    run: () => {
      const p = spawnIsolated(worker, ['sleep', '60000'], { stdio: 'ignore' });
      p.once('spawn', () => p.kill('SIGTERM'));
      return p;
    },
    want: () => ({ code: null, signal: 'SIGTERM', reason: 'killed' }),
  },
  stop: {
    weight: 10,
    run: () => {
      const p = spawnIsolated(worker, ['trap', 'SIGTERM', '3'], { stdio: ['ignore', 'pipe', 'ignore'] });
      firstLine(p).then(() => p.stop({ grace: '10s' }));
      return p;
    },
    want: () => ({ code: 3, signal: null, reason: 'killed' }),
  },
  timeout: { weight: 10, run: () => spawnIsolated(worker, ['sleep', '60000'], { timeout: 30, stdio: 'ignore' }), want: () => ({ code: null, signal: 'SIGTERM', reason: 'timeout' }) },
  memory: {
    weight: cgroups ? 5 : 0,
    run: () => spawnIsolated(worker, ['alloc', '256'], { memory: '64MiB', go: false, stdio: 'ignore' }),
    want: () => ({ code: null, signal: 'SIGKILL', reason: 'memory' }),
  },
  // memory.process: a Go worker that fits, one that execs a child that does not (its own memory
  // cgroup, placed by the launcher at its exec), and one that does not fit itself.
  mproc: {
    weight: cgroups ? 5 : 0,
    run: (i) => {
      const args = [['exit', '0'], ['child', 'alloc', '200'], ['alloc', '200']][i % 3];
      return spawnIsolated(worker, args, { memory: { process: '128MiB' }, stdio: 'ignore' });
    },
    // The child's end ends the tree with reason memory: either the worker, told its child failed,
    // exits first (its own code), or the tree is ended before it does (SIGKILL).
    want: (i) =>
      [
        { code: 0, signal: null, reason: 'exit' },
        [
          { code: 0, signal: null, reason: 'memory' },
          { code: null, signal: 'SIGKILL', reason: 'memory' },
        ],
        { code: null, signal: 'SIGKILL', reason: 'memory' },
      ][i % 3],
  },
  cputime: {
    weight: 1,
    run: () => spawnIsolated(worker, ['spin', '30000', '1'], { cpu: { time: '1s' }, stdio: 'ignore' }),
    want: () => ({ code: null, signal: 'SIGKILL', reason: 'cpu-time' }),
  },
};
const table = [];
for (const [name, k] of Object.entries(kinds)) for (let w = 0; w < k.weight; w++) table.push(name);

function snapshot() {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const ready = loadBinding().internals.settleCgroups();
  const ours = ownCgroupDirs();
  // A root launcher's cloner threads: a burst makes up to 4 for the JS thread, kept while it
  // lives; counted apart, and bounded.
  const cloners = clonerThreads().length;
  return {
    fds: fs.readdirSync('/proc/self/fd').length,
    threads: Number(/^Threads:\s+(\d+)/m.exec(status)[1]) - cloners,
    cloners,
    // Cgroup files the launcher keeps open (at most 256), not leaks.
    kept: loadBinding().internals.keptFiles().length,
    zombies: zombieChildren().length,
    cgroups: ours.filter((d) => !ready.includes(d)).length,
    ready: ready.length,
  };
}

async function launchOne(i, stats) {
  const kind = table[i % table.length];
  const k = kinds[kind];
  const want = k.want(i);
  let got;
  try {
    const p = k.run(i);
    const closed = new Promise((r) => p.once('close', r));
    got = await p.exited;
    await closed;
  } catch (e) {
    got = { error: e.code || e.message };
  }
  const s = (stats[kind] ??= { n: 0, wrong: 0, examples: [] });
  s.n++;
  const wants = Array.isArray(want) ? want : [want];
  if (!wants.some((w) => got.code === w.code && got.signal === w.signal && got.reason === w.reason)) {
    s.wrong++;
    if (s.examples.length < 3) s.examples.push({ want, got: { code: got.code, signal: got.signal, reason: got.reason, error: got.error } });
  }
}

(async () => {
  // Warm up (pool, monitor, init probe) so that what they keep is in the baseline.
  for (let i = 0; i < table.length; i++) await launchOne(i, {});
  const before = snapshot();
  const stats = {};
  const t0 = Date.now();
  const sequential = Math.round(total / 4);
  for (let i = 0; i < sequential; i++) await launchOne(i, stats);
  let next = sequential;
  const lane = async () => {
    while (next < total) await launchOne(next++, stats);
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  const seconds = (Date.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 500)); // trees still going, cgroups being retired
  const after = snapshot();
  const leaks = {
    // A ready v1 cgroup directory holds its "tasks" file open (one fd each) for the next worker.
    fds: after.fds - before.fds - (support.backend === 'linux-cgroup-v1' ? after.ready - before.ready : 0) - (after.kept - before.kept),
    threads: after.threads - before.threads,
    // More than 4 cloner threads would be a leak.
    cloners: Math.max(0, after.cloners - 4),
    zombies: after.zombies,
    cgroups: after.cgroups,
  };
  const wrong = Object.values(stats).reduce((a, s) => a + s.wrong, 0);
  const report = { total, sequential, concurrency, seconds, backend: support.backend, before, after, leaks, wrong, kinds: stats };
  console.log(`soak: ${total} launches (${sequential} one at a time, then ${concurrency} at once) in ${seconds.toFixed(1)} s on ${support.backend}`);
  for (const [kind, s] of Object.entries(stats)) {
    console.log(`  ${kind.padEnd(8)} ${String(s.n).padStart(6)} launches, ${s.wrong} misattributed${s.examples.length ? ' e.g. ' + JSON.stringify(s.examples[0]) : ''}`);
  }
  console.log(`  leaked: ${leaks.fds} fds, ${leaks.threads} threads, ${leaks.zombies} zombies, ${leaks.cgroups} cgroups (${after.ready} cgroup directories kept ready for reuse, ${after.kept} cgroup files kept open, ${after.cloners} cloner threads)`);
  if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify(report, null, 2));
  const bad = wrong > 0 || leaks.fds > 0 || leaks.threads > 0 || leaks.cloners > 0 || leaks.zombies > 0 || leaks.cgroups > 0;
  console.log(bad ? 'soak: FAILED' : 'soak: clean');
  process.exit(bad ? 1 : 0);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
