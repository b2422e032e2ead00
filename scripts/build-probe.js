#!/usr/bin/env node
// Builds the self-test probe (probe/, Go, with the worker-side module go/) for this host and for win32-x64, when its sources are
// newer than the binary: prebuilds/<platform>-<arch>/spawn-isolated-probe[.exe], next to the
// addon it ships with. Stripped (-s -w) and reproducible (-trimpath).
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const src = path.join(root, 'probe');
const GOOS = { win32: 'windows', linux: 'linux', darwin: 'darwin', freebsd: 'freebsd' };
const GOARCH = { x64: 'amd64', arm64: 'arm64', ia32: '386' };

function newest(dir) {
  return Math.max(...fs.readdirSync(dir).map((f) => fs.statSync(path.join(dir, f)).mtimeMs));
}

function buildProbe(platform, arch) {
  const out = path.join(root, 'prebuilds', `${platform}-${arch}`, platform === 'win32' ? 'spawn-isolated-probe.exe' : 'spawn-isolated-probe');
  if (fs.existsSync(out) && fs.statSync(out).mtimeMs >= Math.max(newest(src), newest(path.join(root, 'go')))) return out;
  fs.mkdirSync(path.dirname(out), { recursive: true });
  execFileSync('go', ['build', '-trimpath', '-ldflags', '-s -w', '-o', out, '.'], {
    cwd: src,
    stdio: 'inherit',
    env: { ...process.env, GOOS: GOOS[platform] || platform, GOARCH: GOARCH[arch] || arch, CGO_ENABLED: '0', GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod' },
  });
  return out;
}

module.exports = { buildProbe };

if (require.main === module) {
  const targets = process.argv.includes('--windows-only') ? [] : [[process.platform, process.arch]];
  if (process.platform !== 'win32' && !process.argv.includes('--host-only')) targets.push(['win32', 'x64']);
  for (const [platform, arch] of targets) console.log('probe:', path.relative(root, buildProbe(platform, arch)));
}
