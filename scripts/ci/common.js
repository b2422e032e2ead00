// Steps and helpers that more than one job script uses.
'use strict';
const fs = require('fs');
const path = require('path');
const { root, sh, win, isRoot } = require('./lib');

/** ci-out/: what the workflows upload (not a dot-directory: upload-artifact leaves those out). */
function ciOut() {
  const dir = path.join(root, 'ci-out');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * A copy of the package tarball `tgz` holding only the prebuilds of `platforms`, packed again
 * (npm pack --ignore-scripts of the extracted package) into destDir; returns its path. Needs tar
 * (Linux, or Windows' own tar.exe).
 */
function repack(tgz, platforms, destDir) {
  fs.rmSync(destDir, { recursive: true, force: true });
  const stage = path.join(destDir, 'stage');
  fs.mkdirSync(stage, { recursive: true });
  sh('tar', ['-xzf', tgz, '-C', stage]);
  const prebuilds = path.join(stage, 'package', 'prebuilds');
  for (const p of fs.readdirSync(prebuilds)) if (!platforms.includes(p)) fs.rmSync(path.join(prebuilds, p), { recursive: true });
  sh('npm', ['pack', '--ignore-scripts', '--loglevel=warn', '--pack-destination', destDir], { cwd: path.join(stage, 'package') });
  const made = fs.readdirSync(destDir).filter((f) => f.endsWith('.tgz'));
  if (made.length !== 1) throw new Error(`repack made ${made.join(', ') || 'nothing'}`);
  console.log(`repack: ${path.relative(root, path.join(destDir, made[0]))} holds prebuilds/${platforms.join(', prebuilds/')} only`);
  return path.join(destDir, made[0]);
}

/**
 * The Go module's steps (npm test runs test:go; the README's example worker must build):
 * native: go test, go vet and the example for this host and cross-compiled for the other OS;
 * wine: the same for windows/amd64, the tests run by the Windows test binary under Wine.
 */
function goSteps(mode) {
  const goDir = path.join(root, 'go');
  const goEnv = (goos) => ({ ...process.env, GOTOOLCHAIN: 'local', CGO_ENABLED: '0', GOFLAGS: '-mod=mod', ...(goos ? { GOOS: goos, GOARCH: 'amd64' } : {}) });
  if (mode === 'wine') {
    return [
      {
        name: 'go-test',
        run: () => {
          const { winePrefix, wineEnv } = require('../wine-env');
          const exec = path.join(root, '.cache', 'ci', 'wine-bin', 'go-exec-wine');
          fs.mkdirSync(path.dirname(exec), { recursive: true });
          fs.writeFileSync(exec, '#!/bin/sh\n# go test -exec: the windows/amd64 test binary under Wine\nexec wine "$@"\n', { mode: 0o755 });
          const env = { ...wineEnv(winePrefix()), ...goEnv('windows') };
          sh('go', ['vet', './...'], { cwd: goDir, env });
          sh('go', ['test', '-count=1', '-exec', exec, './...'], { cwd: goDir, env });
        },
      },
      { name: 'go-example', run: () => sh('go', ['build', '-o', path.join(ciOut(), 'example-worker.exe'), './example/worker'], { cwd: goDir, env: goEnv('windows') }) },
    ];
  }
  const other = win ? 'linux' : 'windows';
  return [
    {
      name: 'go-test',
      run: () => {
        sh('npm', ['run', 'test:go']);
        sh('go', ['vet', './...'], { cwd: goDir, env: goEnv() });
        sh('go', ['vet', './...'], { cwd: goDir, env: goEnv(other) });
      },
    },
    {
      name: 'go-example',
      run: () => {
        sh('go', ['build', '-o', path.join(ciOut(), `example-worker${win ? '.exe' : ''}`), './example/worker'], { cwd: goDir, env: goEnv() });
        sh('go', ['build', '-o', path.join(ciOut(), `example-worker-${other}${other === 'windows' ? '.exe' : ''}`), './example/worker'], { cwd: goDir, env: goEnv(other) });
      },
    },
  ];
}

/**
 * A step that installs, from Debian's or Ubuntu's archive, the packages that bring what this
 * host lacks: needs is [[test, package]], test a command on PATH or an absolute file path.
 * As root directly (a container, this project's machines), else through sudo (a runner).
 */
function aptStep(needs) {
  return {
    name: 'tools',
    run: () => {
      const have = (t) => (path.isAbsolute(t) ? fs.existsSync(t) : (process.env.PATH || '').split(path.delimiter).some((d) => fs.existsSync(path.join(d, t))));
      const missing = [...new Set(needs.filter(([t]) => !have(t)).map(([, p]) => p))];
      if (missing.length) {
        const su = isRoot() ? [] : ['sudo', '-n'];
        const run = (args) => sh(su[0] || args[0], su.length ? [...su.slice(1), ...args] : args.slice(1));
        run(['apt-get', 'update', '-qq']);
        run(['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...missing]);
        const still = needs.filter(([t]) => !have(t)).map(([t]) => t);
        if (still.length) throw new Error(`still missing after apt-get install: ${still.join(', ')}`);
      }
      console.log(`tools: ${needs.map(([t]) => path.basename(t)).join(', ')}${missing.length ? ` (installed ${missing.join(' ')})` : ' (all present)'}`);
    },
  };
}

// What the Wine side of a job needs (as .ci/run installs it): the MinGW-w64 cross compiler,
// cmake and make for cmake-js, Wine, tar, and CA certificates for Go's module downloads.
const WINE_TOOLS = [
  ['x86_64-w64-mingw32-g++-posix', 'g++-mingw-w64-x86-64-posix'],
  ['x86_64-w64-mingw32-strip', 'binutils-mingw-w64-x86-64'],
  ['cmake', 'cmake'],
  ['make', 'make'],
  ['g++', 'g++'],
  ['wine', 'wine'],
  ['/usr/lib/wine/wine64', 'wine64'],
  ['tar', 'tar'],
  ['/etc/ssl/certs/ca-certificates.crt', 'ca-certificates'],
];

module.exports = { ciOut, repack, goSteps, aptStep, WINE_TOOLS };
