#!/usr/bin/env node
// Runs the mocha suite under Wine with a real Windows node.exe against the cross-built
// prebuild (prebuilds/win32-x64). node.exe under Wine cannot write to a Linux pipe, so its
// output goes to files that are printed afterwards.
'use strict';
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');
const { windowsNode, winePrefix, wineEnv, root } = require('./wine-env');

execFileSync(process.execPath, [path.join(__dirname, 'prebuild-win32.js')], { cwd: root, stdio: 'inherit' });
execFileSync(process.execPath, [path.join(__dirname, 'build-fixtures.js'), '--windows-only'], { cwd: root, stdio: 'inherit' });
const node = windowsNode();
const prefix = winePrefix();

const logs = path.join(root, '.cache', 'wine-logs');
fs.mkdirSync(logs, { recursive: true });
const outFile = path.join(logs, 'mocha.out.txt');
const errFile = path.join(logs, 'mocha.err.txt');
const out = fs.openSync(outFile, 'w');
const err = fs.openSync(errFile, 'w');
const extra = process.argv.slice(2);
const res = spawnSync('wine', [node, path.join(root, 'node_modules', 'mocha', 'bin', 'mocha.js'), '--reporter', 'spec', ...extra], {
  cwd: root,
  env: { ...wineEnv(prefix), PREBUILDS_ONLY: '1', SPAWN_ISOLATED_WINE: '1', FORCE_COLOR: '0' },
  stdio: ['ignore', out, err],
  timeout: 30 * 60 * 1000,
});
fs.closeSync(out);
fs.closeSync(err);
process.stdout.write(fs.readFileSync(outFile, 'utf8'));
process.stderr.write(fs.readFileSync(errFile, 'utf8'));
spawnSync('wineserver', ['-k'], { env: wineEnv(prefix), stdio: 'ignore' });
if (res.error) {
  console.error('test:wine:', res.error.message);
  process.exit(1);
}
process.exit(res.status === null ? 1 : res.status);
