#!/usr/bin/env node
// npm run prebuilds: every prebuilt binary this machine can make, into prebuilds/ (what the
// package ships; node-gyp-build picks the one for the host at load time):
//   linux-x64  prebuildify (node-gyp, N-API, stripped, tagged glibc), checked with objdump -T
//              against the glibc / libstdc++ baseline below
//   win32-x64  the MinGW-w64 cross build (scripts/prebuild-win32.js), stripped
//   the self-test probe for both (scripts/build-probe.js)
// Other platforms build from source at install (binding.gyp ships in the package).
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
// Debian 10 / RHEL 8 / Ubuntu 18.10: the oldest glibc that Node 18+'s own binaries support.
const BASELINE = { GLIBC: '2.28', GLIBCXX: '3.4.22', CXXABI: '1.3.9' };

function newer(a, b) {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] || 0) !== (y[i] || 0)) return (x[i] || 0) > (y[i] || 0);
  return false;
}

/** The symbol versions `file` needs above the baseline (objdump -T), as "symbol (VERSION)". */
function aboveBaseline(file) {
  const out = execFileSync('objdump', ['-T', file], { encoding: 'utf8' });
  const bad = new Set();
  for (const line of out.split('\n')) {
    const m = / (GLIBC|GLIBCXX|CXXABI)_([0-9.]+)\)?\s+(\S+)\s*$/.exec(line);
    if (m && newer(m[2], BASELINE[m[1]])) bad.add(`${m[3]} (${m[1]}_${m[2]})`);
  }
  return [...bad];
}

function prebuildify(extra, env) {
  try {
    execFileSync(process.execPath, [require.resolve('prebuildify/bin.js'), '--napi', '--strip', ...extra], { cwd: root, env, stdio: 'pipe' });
  } catch (e) {
    process.stderr.write(e.stderr || '');
    throw e;
  }
}

// Windows, natively: prebuildify drives node-gyp with MSVC (the release workflow's way).
function windows() {
  prebuildify([], process.env);
  console.log(`prebuild: prebuilds/win32-${process.arch} (MSVC)`);
}

function linux() {
  const env = { ...process.env };
  if (!env.npm_config_nodedir && fs.existsSync('/usr/include/node/node_api.h')) env.npm_config_nodedir = '/usr';
  prebuildify(['--tag-libc'], env);
  const dir = path.join(root, 'prebuilds', `linux-${process.arch}`);
  const file = path.join(dir, fs.readdirSync(dir).find((f) => f.endsWith('.node')));
  const bad = aboveBaseline(file);
  if (bad.length) throw new Error(`${path.relative(root, file)} needs more than glibc ${BASELINE.GLIBC} / GLIBCXX_${BASELINE.GLIBCXX}: ${bad.join(', ')}`);
  console.log(`prebuild: ${path.relative(root, file)} (${fs.statSync(file).size} bytes; glibc >= ${BASELINE.GLIBC}, GLIBCXX >= ${BASELINE.GLIBCXX}, checked with objdump -T)`);
}

module.exports = { aboveBaseline, BASELINE };

// --only=native,cross,probe (default: all three): this host's addon, the MinGW cross build of
// the Windows addon (from Linux), the self-test probes.
if (require.main === module) {
  const only = (process.argv.find((a) => a.startsWith('--only=')) || '--only=native,cross,probe').slice(7).split(',');
  if (only.includes('native')) {
    if (process.platform === 'linux') linux();
    else if (process.platform === 'win32') windows();
  }
  if (only.includes('cross') && process.platform === 'linux') execFileSync(process.execPath, [path.join(__dirname, 'prebuild-win32.js')], { cwd: root, stdio: 'inherit' });
  if (only.includes('probe')) execFileSync(process.execPath, [path.join(__dirname, 'build-probe.js'), ...(process.platform === 'win32' ? ['--host-only'] : [])], { cwd: root, stdio: 'inherit' });
}
