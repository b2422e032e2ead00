#!/usr/bin/env node
// Builds the Go test worker for this host and for windows/amd64 (for the Wine suite), when
// its sources are newer than the binaries. Output: test/fixtures/bin/<goos>-<goarch>/worker[.exe]
// Also the self-test probe for the same targets (scripts/build-probe.js).
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const src = path.join(root, 'test', 'fixtures', 'worker');
const GOOS = { win32: 'windows', linux: 'linux', darwin: 'darwin', freebsd: 'freebsd' };
const GOARCH = { x64: 'amd64', arm64: 'arm64', ia32: '386' };

/** Go's names for a Node platform and arch. */
function goTarget(platform, arch) {
  return [GOOS[platform] || platform, GOARCH[arch] || arch];
}

function hostTarget() {
  return goTarget(process.platform, process.arch);
}

function newest(dir) {
  return Math.max(...fs.readdirSync(dir).map((f) => fs.statSync(path.join(dir, f)).mtimeMs));
}

/** `go build` of the package in `dir` into `out` for [goos, goarch], unless `out` is newer than `sources`. */
function goBuild(dir, out, [goos, goarch], sources, flags = []) {
  if (fs.existsSync(out) && fs.statSync(out).mtimeMs >= Math.max(...sources.map(newest))) return out;
  fs.mkdirSync(path.dirname(out), { recursive: true });
  try {
    execFileSync('go', ['build', '-trimpath', ...flags, '-o', out, '.'], {
      cwd: dir,
      stdio: 'inherit',
      env: { ...process.env, GOOS: goos, GOARCH: goarch, CGO_ENABLED: '0', GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod' },
    });
  } catch (e) {
    if (e.code !== 'ENOENT') throw e;
    throw new Error(`building ${path.relative(root, out)} needs Go (1.19 or later), not found on PATH (Debian/Ubuntu: apt-get install golang-go)`);
  }
  return out;
}

function build(goos, goarch) {
  const out = path.join(root, 'test', 'fixtures', 'bin', `${goos}-${goarch}`, goos === 'windows' ? 'worker.exe' : 'worker');
  return goBuild(src, out, [goos, goarch], [src]);
}

/**
 * The first-instruction attacker (test/fixtures/ptrace-init, freestanding x86-64 C): Linux
 * x86-64 hosts with a C compiler only; null elsewhere.
 */
function buildPtraceAttacker() {
  if (process.platform !== 'linux' || process.arch !== 'x64') return null;
  const srcFile = path.join(root, 'test', 'fixtures', 'ptrace-init', 'ptrace-init.c');
  const out = path.join(root, 'test', 'fixtures', 'bin', 'linux-amd64', 'ptrace-init');
  if (fs.existsSync(out) && fs.statSync(out).mtimeMs >= fs.statSync(srcFile).mtimeMs) return out;
  fs.mkdirSync(path.dirname(out), { recursive: true });
  execFileSync('cc', ['-O2', '-static', '-nostdlib', '-fno-stack-protector', '-o', out, srcFile], { stdio: 'inherit' });
  return out;
}

module.exports = { build, hostTarget, goTarget, goBuild, buildPtraceAttacker };

if (require.main === module) {
  // Node's names for the targets: this host, and win32-x64 for the Wine suite.
  const targets = process.argv.includes('--windows-only') ? [] : [[process.platform, process.arch]];
  if (process.platform !== 'win32' && !process.argv.includes('--host-only')) targets.push(['win32', 'x64']);
  const { buildProbe } = require('./build-probe');
  const attacker = buildPtraceAttacker();
  if (attacker) console.log('fixture:', path.relative(root, attacker));
  for (const [platform, arch] of targets) {
    console.log('fixture:', path.relative(root, build(...goTarget(platform, arch))));
    console.log('probe:', path.relative(root, buildProbe(platform, arch)));
  }
}
