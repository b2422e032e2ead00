#!/usr/bin/env node
// Runs the mocha suite under Wine with a real Windows node.exe against the cross-built
// prebuild (prebuilds/win32-x64). Extra arguments go to mocha.
'use strict';
const path = require('path');
const { runWindowsNode, root } = require('./wine-env');

const args = [path.join(root, 'node_modules', 'mocha', 'bin', 'mocha.js'), '--reporter', 'spec', ...process.argv.slice(2)];
process.exit(runWindowsNode('mocha', args, { SPAWN_ISOLATED_WINE: '1' }));
