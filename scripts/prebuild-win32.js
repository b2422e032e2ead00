#!/usr/bin/env node
// Cross-compiles prebuilds/win32-x64/node.napi.node with MinGW-w64 through cmake-js.
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const toolchain = path.join(root, 'cmake', 'mingw-w64-x86_64.cmake');
execFileSync(
  process.execPath,
  [require.resolve('cmake-js/bin/cmake-js'), 'compile', '--out', 'build-win32', `--CDCMAKE_TOOLCHAIN_FILE=${toolchain}`, '--CDCMAKE_BUILD_TYPE=Release'],
  { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] },
);
const built = ['build-win32/spawn_isolated.node', 'build-win32/Release/spawn_isolated.node']
  .map((p) => path.join(root, p))
  .find((p) => fs.existsSync(p));
if (!built) throw new Error('cmake-js produced no spawn_isolated.node');
const dest = path.join(root, 'prebuilds', 'win32-x64', 'node.napi.node');
fs.mkdirSync(path.dirname(dest), { recursive: true });
// Stripped (what ships), then renamed into place: a process that has the old one loaded (a
// Wine suite running) keeps its mapping.
const tmp = `${dest}.${process.pid}.tmp`;
execFileSync('x86_64-w64-mingw32-strip', ['--strip-unneeded', '-o', tmp, built]);
fs.renameSync(tmp, dest);
console.log('prebuild:', path.relative(root, dest), `(${fs.statSync(dest).size} bytes)`);
