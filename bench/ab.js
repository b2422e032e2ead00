#!/usr/bin/env node
// Two builds of the addon against each other and against child_process.spawn, in one run: the
// CPU the whole machine spends per default spawn of the same Go worker (wall time x CPUs less
// the exact idle time and steal, measure.js's machineSpentMs: the busy ticks miss short bursts
// on an idle CPU), blocks of N sequential spawns, the three in a new order each round.
// Prints each one's mean and ratio to child_process, and B / A per round (median and mean): a
// change's effect, with the machine's drift between rounds taken out. Linux.
//   node bench/ab.js A.node B.node [--n 100] [--rounds 16] [--stdio ignore|pipe] [--options JSON]
// e.g. the build before a change (kept: cp build/Release/spawn_isolated.node /tmp/a.node) against
// the build after it (build/Release/spawn_isolated.node).
'use strict';
const path = require('path');
const { spawn } = require('child_process');
const { build, hostTarget } = require('../scripts/build-fixtures');
const { median, machineSpentMs, roundOrder, launchOnce } = require('./measure');

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
const launcher = (start, opts) => () => launchOnce(start, worker, ['exit', '0'], { stdio, ...opts });
const cases = { child_process: launcher(spawn, {}), A: launcher(A, options), B: launcher(B, options) };

(async () => {
  const us = { child_process: [], A: [], B: [] };
  for (const k of Object.keys(cases)) for (let i = 0; i < 10; i++) await cases[k]();
  for (let r = 0; r < R; r++)
    for (const k of roundOrder(Object.keys(cases), r)) {
      const a = machineSpentMs();
      for (let i = 0; i < N; i++) await cases[k]();
      us[k].push(((machineSpentMs() - a) * 1000) / N);
    }
  const mean = (xs) => xs.reduce((s, x) => s + x, 0) / xs.length;
  const line = (k) => `${k} ${mean(us[k]).toFixed(0)} us (${(mean(us[k]) / mean(us.child_process)).toFixed(3)}x)`;
  const ba = us.B.map((x, i) => x / us.A[i]);
  console.log(`CPU per spawn, machine: ${N} spawns x ${R} rounds, stdio '${stdio}', options ${JSON.stringify(options)}`);
  console.log(`  ${line('child_process')}   ${line('A')}   ${line('B')}`);
  console.log(`  B / A per round: median ${median(ba).toFixed(3)}, mean ${mean(ba).toFixed(3)}`);
})();
