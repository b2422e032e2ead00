#!/usr/bin/env node
// Two builds of the addon against each other and against child_process.spawn, in one run: the
// CPU the whole machine spends per default spawn of the same Go worker (wall time × CPUs minus
// idle time, from /proc/stat: idle time is counted exactly, busy time only by 10 ms ticks),
// blocks of N sequential spawns, the order of the three rotated each round. Prints each one's
// mean and ratio to child_process, and B / A per round (median and mean): a change's effect,
// with the machine's drift between rounds taken out. Linux.
//   node bench/ab.js A.node B.node [--n 100] [--rounds 16] [--stdio ignore|pipe] [--options JSON]
// e.g. the build before a change (kept: cp build/Release/spawn_isolated.node /tmp/a.node) against
// the build after it (build/Release/spawn_isolated.node).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');
const { build, hostTarget } = require('../scripts/build-fixtures');

const argv = process.argv.slice(2);
const opt = (name, dflt) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : dflt);
const [addonA, addonB] = argv.filter((a, i) => !a.startsWith('--') && !(i > 0 && argv[i - 1].startsWith('--')));
if (!addonA || !addonB) {
  console.error('usage: node bench/ab.js A.node B.node [--n 100] [--rounds 16] [--stdio ignore|pipe] [--options JSON]');
  process.exit(2);
}
const N = Number(opt('--n', 100));
const R = Number(opt('--rounds', 16));
const stdio = opt('--stdio', 'ignore');
const options = JSON.parse(opt('--options', '{}'));

// The library loaded twice, each copy with its own addon (SPAWN_ISOLATED_ADDON is read as it loads).
const dist = path.join(__dirname, '..', 'dist', 'lib');
function libraryWith(addon) {
  for (const k of Object.keys(require.cache)) if (k.startsWith(dist + path.sep)) delete require.cache[k];
  process.env.SPAWN_ISOLATED_ADDON = path.resolve(addon);
  try {
    return require(dist).spawnIsolated;
  } finally {
    delete process.env.SPAWN_ISOLATED_ADDON;
  }
}
const A = libraryWith(addonA);
const B = libraryWith(addonB);

const worker = build(...hostTarget());
const cpus = os.cpus().length;
function sample() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return { idleMs: (f[3] + f[4]) * 10, wallMs: performance.now() }; // USER_HZ is 100 on Linux
}
const launcher = (start, opts) => () =>
  new Promise((resolve, reject) => {
    const p = start(worker, ['exit', '0'], { stdio, ...opts });
    p.on('error', reject);
    if (p.stdout) p.stdout.resume();
    if (p.stderr) p.stderr.resume();
    p.on('close', resolve);
  });
const cases = { child_process: launcher(spawn, {}), A: launcher(A, options), B: launcher(B, options) };

(async () => {
  const us = { child_process: [], A: [], B: [] };
  for (const k of Object.keys(cases)) for (let i = 0; i < 10; i++) await cases[k]();
  const keys = Object.keys(cases);
  for (let r = 0; r < R; r++)
    for (let j = 0; j < keys.length; j++) {
      const k = keys[(r + j) % keys.length];
      const a = sample();
      for (let i = 0; i < N; i++) await cases[k]();
      const b = sample();
      us[k].push((((b.wallMs - a.wallMs) * cpus - (b.idleMs - a.idleMs)) * 1000) / N);
    }
  const mean = (xs) => xs.reduce((s, x) => s + x, 0) / xs.length;
  const median = (xs) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
  const line = (k) => `${k} ${mean(us[k]).toFixed(0)} us (${(mean(us[k]) / mean(us.child_process)).toFixed(3)}x)`;
  const ba = us.B.map((x, i) => x / us.A[i]);
  console.log(`CPU per spawn, machine: ${N} spawns x ${R} rounds, stdio '${stdio}', options ${JSON.stringify(options)}`);
  console.log(`  ${line('child_process')}   ${line('A')}   ${line('B')}`);
  console.log(`  B / A per round: median ${median(ba).toFixed(3)}, mean ${mean(ba).toFixed(3)}`);
})();
