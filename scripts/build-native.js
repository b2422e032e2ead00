#!/usr/bin/env node
// node-gyp rebuild for this host. Offline machines with Node's headers installed (Debian,
// NodeSource: /usr/include/node) build against them instead of downloading headers.
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const args = ['rebuild'];
if (!process.env.npm_config_nodedir && process.platform !== 'win32' && fs.existsSync('/usr/include/node/node_api.h')) {
  args.push('--nodedir=/usr');
}
execFileSync(process.execPath, [require.resolve('node-gyp/bin/node-gyp.js'), ...args], {
  cwd: path.resolve(__dirname, '..'),
  stdio: ['ignore', 'ignore', 'inherit'],
});
console.log('native: build/Release/spawn_isolated.node');
