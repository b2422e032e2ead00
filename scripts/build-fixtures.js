#!/usr/bin/env node
// Builds the Go test worker for this host and for windows/amd64 (for the Wine suite), when
// its sources are newer than the binaries. Output: test/fixtures/bin/<goos>-<goarch>/worker[.exe]
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const src = path.join(root, 'test', 'fixtures', 'worker');

function hostTarget() {
  const goos = { win32: 'windows', linux: 'linux', darwin: 'darwin', freebsd: 'freebsd' }[process.platform] || process.platform;
  const goarch = { x64: 'amd64', arm64: 'arm64', ia32: '386' }[process.arch] || process.arch;
  return [goos, goarch];
}

function newest(dir) {
  return Math.max(...fs.readdirSync(dir).map((f) => fs.statSync(path.join(dir, f)).mtimeMs));
}

function build(goos, goarch) {
  const out = path.join(root, 'test', 'fixtures', 'bin', `${goos}-${goarch}`, goos === 'windows' ? 'worker.exe' : 'worker');
  if (fs.existsSync(out) && fs.statSync(out).mtimeMs >= newest(src)) return out;
  fs.mkdirSync(path.dirname(out), { recursive: true });
  execFileSync('go', ['build', '-trimpath', '-o', out, '.'], {
    cwd: src,
    stdio: 'inherit',
    env: { ...process.env, GOOS: goos, GOARCH: goarch, CGO_ENABLED: '0', GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod' },
  });
  return out;
}

module.exports = { build, hostTarget };

if (require.main === module) {
  const targets = process.argv.includes('--windows-only') ? [] : [hostTarget()];
  if (process.platform !== 'win32' && !process.argv.includes('--host-only')) targets.push(['windows', 'amd64']);
  for (const [goos, goarch] of targets) console.log('fixture:', path.relative(root, build(goos, goarch)));
  // The self-test probe the suites run too (it ships in prebuilds/).
  const { buildProbe } = require('./build-probe');
  const node = { windows: 'win32', linux: 'linux', darwin: 'darwin', freebsd: 'freebsd' };
  const arch = { amd64: 'x64', arm64: 'arm64', 386: 'ia32' };
  for (const [goos, goarch] of targets) console.log('probe:', path.relative(root, buildProbe(node[goos] || goos, arch[goarch] || goarch)));
}
