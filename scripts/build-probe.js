#!/usr/bin/env node
// Builds the self-test probe (probe/, Go, with the worker-side module go/) for this host and for
// win32-x64, when its sources are newer than the binary: prebuilds/<platform>-<arch>/
// spawn-isolated-probe[.exe], next to the addon it ships with. Stripped (-s -w) and
// reproducible (-trimpath).
'use strict';
const path = require('path');
const { goBuild, goTarget } = require('./build-fixtures');

const root = path.resolve(__dirname, '..');

function buildProbe(platform, arch) {
  const out = path.join(root, 'prebuilds', `${platform}-${arch}`, platform === 'win32' ? 'spawn-isolated-probe.exe' : 'spawn-isolated-probe');
  return goBuild(path.join(root, 'probe'), out, goTarget(platform, arch), [path.join(root, 'probe'), path.join(root, 'go')], ['-ldflags', '-s -w']);
}

module.exports = { buildProbe };

if (require.main === module) {
  const targets = process.argv.includes('--windows-only') ? [] : [[process.platform, process.arch]];
  if (process.platform !== 'win32' && !process.argv.includes('--host-only')) targets.push(['win32', 'x64']);
  for (const [platform, arch] of targets) console.log('probe:', path.relative(root, buildProbe(platform, arch)));
}
