#!/usr/bin/env node
// The jobs of .github/workflows/release.yml, one per argument:
//   node scripts/ci/release.js linux-x64        the Linux prebuild: zig against glibc 2.28,
//                                               checked (objdump), loaded
//   node scripts/ci/release.js win32-x64        the Windows prebuild: MSVC (prebuildify),
//                                               checked (PE header, exports), loaded
//   node scripts/ci/release.js package          both prebuilds (downloaded into prebuilds/),
//                                               the probes, dist/, npm pack into ci-out/package
//   node scripts/ci/release.js install          the install test of that tarball, every
//                                               platform's prebuild in it (Linux, Windows)
// Here, win32-x64 and install take --wine: the MinGW cross build stands in for MSVC, and the
// install test's Windows branch runs with the Windows node.exe and npm under Wine. With no job
// named, --list lists every job's steps.
'use strict';
const fs = require('fs');
const path = require('path');
const { root, win, sh, job, arg, single } = require('./lib');
const { ciOut, aptStep, WINE_TOOLS } = require('./common');

const wine = process.argv.includes('--wine');
const W = wine ? require('./wine') : null;
const ALL = ['linux-x64', 'win32-x64'];
const npmCi = { name: 'npm-ci', run: () => sh('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund']) };
const addon = (p) => single(path.join(root, 'prebuilds', p), /\.node$/);

/** Throws unless `file` is an x64 PE DLL exporting napi_register_module_v1; returns its imported DLLs. */
function checkPe(file) {
  const b = fs.readFileSync(file);
  if (b.toString('latin1', 0, 2) !== 'MZ') throw new Error(`${file}: not a PE file`);
  const pe = b.readUInt32LE(0x3c);
  if (b.toString('latin1', pe, pe + 4) !== 'PE\0\0') throw new Error(`${file}: no PE signature`);
  const machine = b.readUInt16LE(pe + 4);
  const sections = b.readUInt16LE(pe + 6);
  const optSize = b.readUInt16LE(pe + 20);
  const chars = b.readUInt16LE(pe + 22);
  if (machine !== 0x8664) throw new Error(`${file}: machine 0x${machine.toString(16)}, not x64 (0x8664)`);
  if (!(chars & 0x2000)) throw new Error(`${file}: not a DLL`);
  const opt = pe + 24;
  if (b.readUInt16LE(opt) !== 0x20b) throw new Error(`${file}: not PE32+`);
  const dir = (i) => [b.readUInt32LE(opt + 112 + 8 * i), b.readUInt32LE(opt + 112 + 8 * i + 4)];
  const table = opt + optSize;
  const offset = (rva) => {
    for (let i = 0; i < sections; i++) {
      const s = table + 40 * i;
      const va = b.readUInt32LE(s + 12);
      const size = Math.max(b.readUInt32LE(s + 8), b.readUInt32LE(s + 16));
      if (rva >= va && rva < va + size) return rva - va + b.readUInt32LE(s + 20);
    }
    throw new Error(`${file}: RVA 0x${rva.toString(16)} in no section`);
  };
  const cstr = (o) => b.toString('latin1', o, b.indexOf(0, o));
  const [expRva] = dir(0);
  if (!expRva) throw new Error(`${file}: exports nothing`);
  const e = offset(expRva);
  const names = [];
  for (let i = 0, n = b.readUInt32LE(e + 24), at = offset(b.readUInt32LE(e + 32)); i < n; i++) names.push(cstr(offset(b.readUInt32LE(at + 4 * i))));
  if (!names.includes('napi_register_module_v1')) throw new Error(`${file}: does not export napi_register_module_v1 (exports ${names.join(', ')})`);
  const imports = [];
  const [impRva] = dir(1);
  for (let d = impRva ? offset(impRva) : 0; d && b.readUInt32LE(d + 12); d += 20) imports.push(cstr(offset(b.readUInt32LE(d + 12))));
  return imports;
}

/** Loads `file` as the addon in a fresh Node (the Windows node.exe under Wine with --wine) and asks what it enforces. */
function load(file, windows) {
  const script = "const s = require('./dist/lib/index.js').isolationSupport(); if (s.backend === 'none') process.exit(3); console.log('loaded: backend ' + s.backend)";
  if (windows && wine) return W.wineNodeOk('release-load', ['-e', script], { SPAWN_ISOLATED_ADDON: W.winPath(file) });
  sh(process.execPath, ['-e', script], { env: { ...process.env, SPAWN_ISOLATED_ADDON: file } });
}

function tarball() {
  const given = arg('tarball');
  return given ? path.resolve(given) : single(path.join(ciOut(), 'package'), /\.tgz$/);
}

const JOBS = {
  'linux-x64': [
    npmCi,
    { name: 'prebuild', run: () => sh(process.execPath, ['scripts/prebuild.js', '--only=native']) },
    { name: 'glibc-baseline', run: () => sh(process.execPath, ['scripts/ci/test-glibc-baseline.js', `--prebuild=${addon('linux-x64')}`]) },
    {
      name: 'load',
      run: () => {
        sh('npm', ['run', 'build:ts']);
        load(addon('linux-x64'), false);
      },
    },
  ],
  'win32-x64': [
    npmCi,
    // The runner: prebuildify with MSVC. Here: the MinGW-w64 cross build (what npm run
    // prebuilds makes on Linux), which is what the MSVC step cannot be tested with here.
    { name: 'prebuild', run: () => sh(process.execPath, ['scripts/prebuild.js', wine ? '--only=cross' : '--only=native']) },
    { name: 'check', run: () => console.log(`${path.relative(root, addon('win32-x64'))}: x64 DLL exporting napi_register_module_v1; imports ${checkPe(addon('win32-x64')).join(', ')}`) },
    {
      name: 'load',
      run: () => {
        sh('npm', ['run', 'build:ts']);
        load(addon('win32-x64'), true);
      },
    },
  ],
  package: [
    npmCi,
    {
      // Downloaded from the two prebuild jobs (here: made by them, as they left them).
      name: 'prebuilds',
      run: () => {
        const { checkPrebuild } = require('./glibc-baseline');
        console.log(`${path.relative(root, addon('linux-x64'))}: ${checkPrebuild(addon('linux-x64'))}`);
        console.log(`${path.relative(root, addon('win32-x64'))}: imports ${checkPe(addon('win32-x64')).join(', ')}`);
        for (const p of ['linux-x64', 'win32-x64']) fs.chmodSync(addon(p), 0o755); // artifacts lose their modes
      },
    },
    { name: 'probes', run: () => sh(process.execPath, ['scripts/prebuild.js', '--only=probe']) },
    { name: 'dist', run: () => sh('npx', ['tsc', '-p', 'tsconfig.build.json']) },
    {
      // Without prepack, which would build the prebuilds again on this one host.
      name: 'pack',
      run: () => {
        const dir = path.join(ciOut(), 'package');
        fs.rmSync(dir, { recursive: true, force: true });
        fs.mkdirSync(dir, { recursive: true });
        sh('npm', ['pack', '--ignore-scripts', '--loglevel=warn', '--pack-destination', dir]);
        sh(process.execPath, ['scripts/test-install.js', `--tarball=${tarball()}`, `--platforms=${ALL.join(',')}`, '--check-only']);
      },
    },
  ],
  install: [
    ...(wine ? [aptStep(WINE_TOOLS)] : []),
    npmCi,
    {
      name: 'install-test',
      run: () => {
        const args = ['scripts/test-install.js', `--platforms=${ALL.join(',')}`];
        if (wine) return W.wineNodeOk('release-install-test', [...args, `--tarball=${W.winPath(tarball())}`], {}, 40 * 60 * 1000);
        sh(process.execPath, [...args, `--tarball=${tarball()}`]);
      },
    },
  ],
};

const name = process.argv.slice(2).find((a) => !a.startsWith('--'));
if (!name && process.argv.includes('--list')) {
  for (const [j, steps] of Object.entries(JOBS)) console.log(`${j}: ${steps.map((s) => s.name).join(', ')}`);
} else if (!JOBS[name]) {
  console.error(`release.js: ${Object.keys(JOBS).join(' | ')} [--wine]`);
  process.exit(2);
} else {
  if (name === 'win32-x64' && !win && !wine) throw new Error('win32-x64: on Windows, or with --wine');
  job(`release-${name}${wine ? '-wine' : ''}`, JOBS[name]);
}

