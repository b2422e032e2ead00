#!/usr/bin/env node
// The `ubuntu` job of .github/workflows/ci.yml (ubuntu-latest: 24.04, cgroup v2, the runner
// user with passwordless sudo), and the same steps here (Debian 12, as root):
//   node scripts/ci/ubuntu.js
// As the runner user: the Go module, the install test (prepack: the zig-built Linux prebuild,
// checked against glibc 2.28, the MinGW Windows prebuild, the probes), the glibc baseline
// test on that prebuild, and part of the suite against that prebuild. Then as root (the
// containment tests need it; a delegated cgroup v2 subtree where the host has v2): the whole
// host suite and the self-test, with the Node and Go this job set up: sudo resets PATH to its
// secure_path (so --preserve-env=PATH keeps nothing), hence `sudo env PATH=...`, checked.
'use strict';
const fs = require('fs');
const path = require('path');
const { root, sh, out, isRoot, job, single } = require('./lib');
const { ciOut, goSteps, aptStep } = require('./common');

if (process.platform !== 'linux' && !process.argv.includes('--list')) {
  console.error('ubuntu.js: Linux only');
  process.exit(2);
}

// What the job needs (the runner image has most of it): the compilers, cmake, objdump, the
// MinGW-w64 cross compiler (prepack builds the Windows prebuild too), pip (for zig, the Linux
// prebuild's compiler, from PyPI).
const TOOLS = [
  ['g++', 'g++'],
  ['make', 'make'],
  ['cmake', 'cmake'],
  ['objdump', 'binutils'],
  ['x86_64-w64-mingw32-g++-posix', 'g++-mingw-w64-x86-64-posix'],
  ['x86_64-w64-mingw32-strip', 'binutils-mingw-w64-x86-64'],
  ['pip3', 'python3-pip'],
];

const sudo = (args) => (isRoot() ? args : ['sudo', '-n', ...args]);
function shAsRoot(args, opts) {
  const a = sudo(args);
  sh(a[0], a.slice(1), opts);
}

// Variables the root steps keep besides PATH.
const KEEP = ['CI', 'GITHUB_ACTIONS', 'GOTOOLCHAIN', 'GOFLAGS', 'NODE_OPTIONS'];

/** `cmd args` as root, with this process's PATH (so its node, npm and go) and `env`. */
function asRoot(cmd, args, env = {}, opts = {}) {
  if (isRoot()) return sh(cmd, args, { ...opts, env: { ...process.env, ...env } });
  const vars = { PATH: process.env.PATH, ...Object.fromEntries(KEEP.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]])), ...env };
  sh('sudo', ['-n', 'env', ...Object.entries(vars).map(([k, v]) => `${k}=${v}`), cmd, ...args], opts);
}

function asRootOut(cmd, args) {
  if (isRoot()) return out(cmd, args);
  return out('sudo', ['-n', 'env', `PATH=${process.env.PATH}`, cmd, ...args]);
}

const cgroupV2 = fs.existsSync('/sys/fs/cgroup/cgroup.controllers');
const cgroupEnv = () => (cgroupV2 ? { SPAWN_ISOLATED_CGROUP: '/sys/fs/cgroup/spawn-isolated-ci' } : {});
const toolchain = () => ({ node: `${process.version} ${process.execPath}`, go: out('go', ['env', 'GOVERSION', 'GOROOT']).split('\n').join(' ') });

job('ubuntu', [
  aptStep(TOOLS),
  { name: 'npm-ci', run: () => sh('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund']) },
  {
    name: 'toolchain',
    run: () => {
      const t = toolchain();
      fs.writeFileSync(path.join(ciOut(), 'toolchain-linux.json'), `${JSON.stringify({ ...t, npm: out('npm', ['--version']), cgroup: cgroupV2 ? 'v2' : 'v1' }, null, 2)}\n`);
      console.log(`node ${t.node}; go ${t.go}; cgroup ${cgroupV2 ? 'v2' : 'v1'}`);
    },
  },
  ...goSteps('native'),
  // The package as npm publishes it, installed as users would (prepack builds the prebuilds).
  { name: 'install-test', run: () => sh(process.execPath, ['scripts/test-install.js']) },
  { name: 'glibc-baseline', run: () => sh(process.execPath, ['scripts/ci/test-glibc-baseline.js', `--prebuild=${single(path.join(root, 'prebuilds', 'linux-x64'), /\.node$/)}`]) },
  {
    // The suite's spawning parts on the shipped (zig-built) prebuild, not the g++ dev build:
    // the one loaded is named by SPAWN_ISOLATED_ADDON.
    name: 'prebuild-suite',
    run: () => {
      sh('npm', ['run', 'build:ts']);
      sh(process.execPath, ['scripts/build-fixtures.js', '--host-only']);
      const addon = single(path.join(root, 'prebuilds', 'linux-x64'), /\.node$/);
      const specs = ['spawn', 'options', 'channel', 'group'].map((n) => `dist/test/${n}.test.js`);
      sh(process.execPath, ['node_modules/mocha/bin/mocha.js', '--no-config', '--timeout', '60000', '--reporter', 'dot', ...specs], { env: { ...process.env, SPAWN_ISOLATED_ADDON: addon } });
    },
  },
  {
    // A root launcher's restricted workers run as a transient uid of their own: the checkout
    // (the test worker binary) must be reachable by others; a runner's home is not (0750).
    name: 'root-access',
    run: () => {
      const changed = [];
      for (let d = root; ; d = path.dirname(d)) {
        if ((fs.statSync(d).mode & 0o001) === 0) {
          shAsRoot(['chmod', 'o+x', d]);
          changed.push(d);
        }
        if (path.dirname(d) === d) break;
      }
      console.log(changed.length ? `o+x on ${changed.join(', ')}` : 'the checkout is reachable by others already');
    },
  },
  {
    name: 'root-toolchain',
    run: () => {
      const mine = toolchain();
      const theirs = {
        node: asRootOut('node', ['-p', 'process.version + " " + process.execPath']),
        go: asRootOut('go', ['env', 'GOVERSION', 'GOROOT']).split('\n').join(' '),
      };
      for (const k of Object.keys(mine)) if (mine[k] !== theirs[k]) throw new Error(`as root, ${k} is ${theirs[k]}, not the ${mine[k]} this job set up`);
      console.log(`as root too: node ${theirs.node}; go ${theirs.go}`);
    },
  },
  {
    // cgroup v2: a delegated, empty subtree for the per-worker cgroups.
    name: 'root-suite',
    run: () => {
      if (cgroupV2) shAsRoot(['mkdir', '-p', '/sys/fs/cgroup/spawn-isolated-ci']);
      asRoot('npm', ['run', 'test:host'], { CI: process.env.CI || 'true', ...cgroupEnv() });
    },
  },
  {
    name: 'self-test',
    run: () => {
      const file = path.join(ciOut(), 'selftest-linux.json');
      const text = isRoot() ? out(process.execPath, ['dist/lib/cli.js', '--self-test', '--json'], { env: { ...process.env, ...cgroupEnv() } }) : out('sudo', ['-n', 'env', `PATH=${process.env.PATH}`, ...Object.entries(cgroupEnv()).map(([k, v]) => `${k}=${v}`), process.execPath, 'dist/lib/cli.js', '--self-test', '--json']);
      fs.writeFileSync(file, `${text}\n`);
      console.log(`self-test: ${path.relative(root, file)} (${Object.keys(JSON.parse(text)).join(', ')})`);
    },
  },
]);
