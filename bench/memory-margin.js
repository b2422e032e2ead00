#!/usr/bin/env node
// How far above what a Go worker uses memory.process must be for it to run (Linux: its own
// memory cgroup; Windows: ProcessMemoryLimit). For each size N, the smallest limit (in MiB,
// binary search) under which `worker alloc N` (N MiB allocated, touched and kept) ran to its
// end in every one of a few runs, and how it ended one MiB below that.
//   node bench/memory-margin.js [--runs R] [--sizes 0,16,32,64,100,200] [--go]
'use strict';
const { build, hostTarget } = require('../scripts/build-fixtures');
const { spawnIsolated } = require('../dist/lib');

const arg = (name, dflt) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : dflt);
const runs = Number(arg('--runs', '3'));
const sizes = arg('--sizes', '0,16,32,64,100,200').split(',').map(Number);
// GOMEMLIMIT (90% of the limit, the default `go: true`) makes Go collect harder near the limit.
const go = process.argv.includes('--go');
const worker = build(...hostTarget());

async function fits(n, mib) {
  const ends = [];
  for (let i = 0; i < runs; i++) {
    const args = n === 0 ? ['exit', '0'] : ['alloc', String(n)];
    const e = await spawnIsolated(worker, args, { memory: { process: `${mib}MiB` }, stdio: 'ignore', go }).exited;
    ends.push(`${e.reason} ${e.code ?? e.signal}`);
    if (e.reason !== 'exit' || e.code !== 0) return { ok: false, ends };
  }
  return { ok: true, ends };
}

(async () => {
  console.log(`memory.process: the smallest limit a Go worker allocating N MiB runs under (${runs} runs each${go ? ', GOMEMLIMIT set' : ''})`);
  console.log('  N MiB   smallest limit   margin    one MiB below');
  for (const n of sizes) {
    let lo = Math.max(1, n), hi = n + 128;
    if (!(await fits(n, hi)).ok) {
      console.log(`  ${String(n).padStart(5)}   > ${hi} MiB`);
      continue;
    }
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if ((await fits(n, mid)).ok) hi = mid;
      else lo = mid;
    }
    const below = await fits(n, hi - 1);
    console.log(`  ${String(n).padStart(5)}   ${String(hi).padStart(8)} MiB   ${String(hi - n).padStart(4)} MiB   ${below.ends.slice(-1)[0]}`);
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
