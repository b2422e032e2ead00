#!/usr/bin/env node
// Runs the worker-side Go module's tests (go/) for windows/amd64 under Wine: the test binary is
// cross-compiled, then run in the suite's prefix (with the bcryptprimitives shim Go needs there).
// Also type-checks the module for windows/386 (struct layouts are asserted at compile time).
'use strict';
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');
const { winePrefix, wineEnv, root } = require('./wine-env');

const goEnv = (goarch) => ({ ...process.env, GOOS: 'windows', GOARCH: goarch, CGO_ENABLED: '0', GOTOOLCHAIN: 'local' });
const dir = path.join(root, 'go');
execFileSync('go', ['vet', './...'], { cwd: dir, env: goEnv('386'), stdio: 'inherit' });
const out = path.join(root, '.cache', 'go-test-windows-amd64.exe');
fs.mkdirSync(path.dirname(out), { recursive: true });
execFileSync('go', ['test', '-c', '-o', out, '.'], { cwd: dir, env: goEnv('amd64'), stdio: 'inherit' });
const prefix = winePrefix();
const logs = path.join(root, '.cache', 'wine-logs');
fs.mkdirSync(logs, { recursive: true });
const log = path.join(logs, 'go-test.txt');
const fd = fs.openSync(log, 'w');
const res = spawnSync('wine', [out, '-test.v', ...process.argv.slice(2)], { cwd: dir, env: wineEnv(prefix), stdio: ['ignore', fd, fd], timeout: 10 * 60 * 1000 });
fs.closeSync(fd);
process.stdout.write(fs.readFileSync(log, 'utf8'));
spawnSync('wineserver', ['-k'], { env: wineEnv(prefix), stdio: 'ignore' });
process.exit(res.status === null ? 1 : res.status);
