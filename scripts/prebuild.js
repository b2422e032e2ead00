#!/usr/bin/env node
// npm run prebuilds: every prebuilt binary this machine can make, into prebuilds/ (what the
// package ships; node-gyp-build picks the one for the host at load time):
//   linux-x64  prebuildify (node-gyp, N-API, stripped, tagged glibc) compiled and linked by zig
//              against glibc 2.28 (scripts/ci/zig.js; --toolchain=host uses the host's g++),
//              then checked with objdump against the baseline (scripts/ci/glibc-baseline.js)
//   win32-x64  on Linux the MinGW-w64 cross build (scripts/prebuild-win32.js); on Windows
//              prebuildify with MSVC; either way prebuilds/win32-x64/node.napi.node, stripped
//   the self-test probe for both (scripts/build-probe.js)
// Both prebuildify builds target the running Node's headers (--target): without it prebuildify
// takes the newest Node it knows, whose common.gypi may ask for a newer C++ than wanted.
// Other platforms build from source at install (binding.gyp ships in the package).
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');
const { BASELINE, aboveBaseline, checkPrebuild } = require('./ci/glibc-baseline');

const root = path.resolve(__dirname, '..');

function prebuildify(extra, env) {
  const args = [require.resolve('prebuildify/bin.js'), '--napi', '--strip', `--target=node@${process.versions.node}`, ...extra];
  try {
    execFileSync(process.execPath, args, { cwd: root, env, stdio: 'pipe' });
  } catch (e) {
    process.stderr.write(e.stdout || '');
    process.stderr.write(e.stderr || '');
    throw e;
  }
}

// Windows, natively: prebuildify drives node-gyp with MSVC (the release workflow's way). Its
// output is named after the package (spawn-isolated.node); it is renamed to the name the MinGW
// cross build has, so that the package holds one name whichever toolchain made it.
function windows() {
  const dir = path.join(root, 'prebuilds', `win32-${process.arch}`);
  for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) if (f.endsWith('.node')) fs.rmSync(path.join(dir, f));
  prebuildify([], process.env);
  const made = fs.readdirSync(dir).filter((f) => f.endsWith('.node'));
  if (made.length !== 1) throw new Error(`prebuildify left ${made.length ? made.join(', ') : 'nothing'} in ${path.relative(root, dir)}`);
  fs.renameSync(path.join(dir, made[0]), path.join(dir, 'node.napi.node'));
  console.log(`prebuild: ${path.relative(root, dir)}${path.sep}node.napi.node (MSVC, Node ${process.versions.node} headers, ${fs.statSync(path.join(dir, 'node.napi.node')).size} bytes)`);
}

function linux() {
  const toolchain = (process.argv.find((a) => a.startsWith('--toolchain=')) || '--toolchain=zig').slice('--toolchain='.length);
  const env = { ...process.env };
  if (!env.npm_config_nodedir && fs.existsSync('/usr/include/node/node_api.h')) env.npm_config_nodedir = '/usr';
  if (toolchain === 'zig') Object.assign(env, require('./ci/zig').zigEnv());
  else if (toolchain !== 'host') throw new Error(`--toolchain=${toolchain}: zig or host`);
  const dir = path.join(root, 'prebuilds', `linux-${process.arch}`);
  for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) if (f.endsWith('.node')) fs.rmSync(path.join(dir, f));
  prebuildify(['--tag-libc'], env);
  const file = path.join(dir, fs.readdirSync(dir).find((f) => f.endsWith('.node')));
  const rel = path.relative(root, file);
  try {
    const summary = checkPrebuild(file);
    console.log(`prebuild: ${rel} (${toolchain === 'zig' ? `zig, ${require('./ci/zig').target()}` : 'host compiler'}; ${fs.statSync(file).size} bytes; loads on glibc >= ${BASELINE.GLIBC}: ${summary})`);
  } catch (e) {
    // What ships must load on the baseline: a failing prebuild is not left for npm pack to take.
    fs.rmSync(file, { force: true });
    throw new Error(`${e.message.replace(file, rel)}${toolchain === 'host' ? ' (the host compiler links against this machine\'s glibc: build with --toolchain=zig)' : ''}`);
  }
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
