#!/usr/bin/env node
// node-gyp rebuild for this host. Offline machines with Node's headers installed (Debian,
// NodeSource: /usr/include/node) build against them instead of downloading headers.
// Before it starts, it names what this machine lacks to build the addon (node-gyp's own
// failure for a missing compiler is many lines of gyp output away from the cause).
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

/** Whether `cmd` is an executable on PATH. */
function onPath(cmd) {
  return (process.env.PATH || '').split(path.delimiter).some((dir) => {
    try {
      fs.accessSync(path.join(dir, cmd), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** What building the addon needs that this machine lacks, as [what, Debian package]. */
function missingTools() {
  if (process.platform === 'win32') return [];
  const need = [
    [['c++', 'g++', 'clang++'], 'a C++ compiler', 'g++'],
    [['make'], 'make', 'make'],
    [['python3', 'python'], 'Python 3 (node-gyp runs gyp)', 'python3'],
  ];
  return need.filter(([cmds]) => !cmds.some(onPath)).map(([, what, pkg]) => [what, pkg]);
}

const missing = missingTools();
if (missing.length > 0) {
  console.error(`build:native: building the addon needs ${missing.map(([w]) => w).join(', ')}, not found on PATH.`);
  console.error(`  Debian/Ubuntu: apt-get install ${missing.map(([, p]) => p).join(' ')}`);
  console.error('  (or install the package from npm, which ships prebuilt addons: nothing is compiled then)');
  process.exit(1);
}

const args = ['rebuild'];
if (!process.env.npm_config_nodedir && process.platform !== 'win32' && fs.existsSync('/usr/include/node/node_api.h')) {
  args.push('--nodedir=/usr');
}
execFileSync(process.execPath, [require.resolve('node-gyp/bin/node-gyp.js'), ...args], {
  cwd: path.resolve(__dirname, '..'),
  stdio: ['ignore', 'ignore', 'inherit'],
});
console.log('native: build/Release/spawn_isolated.node');
