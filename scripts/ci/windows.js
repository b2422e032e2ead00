#!/usr/bin/env node
// The `windows` job of .github/workflows/ci.yml, on a Windows runner (windows-latest: real
// job objects, restricted tokens, MSVC):
//   node scripts/ci/windows.js
// and here, with the Windows node.exe under Wine (the `wine` job, in a Debian 12 container so
// that it has this machine's Wine 8.0):
//   node scripts/ci/windows.js --wine
// The steps are the same; under Wine the MinGW-w64 cross build stands in for MSVC (which only
// the runner has), and the suite, the self-test and the install test run with node.exe under
// Wine, which enforces no job limit (README: "What Wine can and cannot verify").
'use strict';
const fs = require('fs');
const path = require('path');
const { root, win, sh, job, single } = require('./lib');
const { ciOut, repack, goSteps, aptStep, WINE_TOOLS } = require('./common');

const wine = process.argv.includes('--wine');
if (!win && !wine && !process.argv.includes('--list')) {
  console.error('windows.js: on Windows, or with --wine (the Windows node.exe under Wine)');
  process.exit(2);
}
const W = wine ? require('./wine') : null;

job(wine ? 'windows-wine' : 'windows', [
  wine ? aptStep(WINE_TOOLS) : { name: 'tools', run: 'the Windows runner image has MSVC (Visual Studio 2026), CMake and Python' },
  { name: 'npm-ci', run: () => sh('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund']) },
  { name: 'build-ts', run: () => sh('npm', ['run', 'build:ts']) },
  {
    name: 'build-native',
    // The runner: node-gyp with MSVC (binding.gyp) into build/Release. Here: the MinGW-w64
    // cross build into prebuilds/win32-x64 (what test:wine loads, PREBUILDS_ONLY=1).
    run: () => (wine ? sh(process.execPath, ['scripts/prebuild-win32.js']) : sh('npm', ['run', 'build:native'])),
  },
  { name: 'build-cmake', run: wine ? 'cmake-js with MSVC; the MinGW build above is cmake-js too' : () => sh('npm', ['run', 'build:cmake']) },
  { name: 'fixtures', run: () => sh(process.execPath, ['scripts/build-fixtures.js', wine ? '--windows-only' : '--host-only']) },
  {
    name: 'suite',
    run: () => (wine ? sh(process.execPath, ['scripts/test-wine.js']) : sh(process.execPath, ['node_modules/mocha/bin/mocha.js'])),
  },
  {
    // What each limit does on this host, measured; kept as an artifact (ci-out/).
    name: 'self-test',
    run: () => {
      const file = path.join(ciOut(), `selftest-windows${wine ? '-wine' : ''}.json`);
      if (wine) {
        W.wineNodeOk('self-test', ['dist/lib/cli.js', '--self-test', '--json'], { PREBUILDS_ONLY: '1' });
        fs.copyFileSync(path.join(root, '.cache', 'wine-logs', 'self-test.out.txt'), file);
      } else {
        const r = require('child_process').spawnSync(process.execPath, ['dist/lib/cli.js', '--self-test', '--json'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
        fs.writeFileSync(file, r.stdout);
        if (r.status !== 0) throw new Error(`self-test exited ${r.status}`);
      }
      const report = JSON.parse(fs.readFileSync(file, 'utf8'));
      console.log(`self-test: ${path.relative(root, file)} (${Object.keys(report).join(', ')})`);
    },
  },
  {
    // options.session needs a LocalSystem launcher: the session tests run again inside a
    // service (test/fixtures/service, installed with sc.exe), where WTSQueryUserToken works.
    // With nobody logged on in the console session they skip, saying so.
    name: 'session-as-service',
    run: wine
      ? 'a LocalSystem service around the session tests: on the runner (Wine serves WTSQueryUserToken to any process; the suite above ran them)'
      : () => {
          const tmp = process.env.RUNNER_TEMP || require('os').tmpdir();
          const svc = path.join(tmp, 'si-service.exe');
          const log = path.join(tmp, 'si-service.log');
          const done = path.join(tmp, 'si-service.done');
          for (const f of [log, done]) fs.rmSync(f, { force: true });
          sh('go', ['build', '-o', svc, '.'], { cwd: path.join(root, 'test', 'fixtures', 'service') });
          const mocha = path.join(root, 'node_modules', 'mocha', 'bin', 'mocha.js');
          const bin = `"${svc}" "${log}" "${done}" "${root}" "${process.execPath}" "${mocha}" --grep session`;
          sh('sc.exe', ['create', 'si-session-tests', 'binPath=', bin, 'obj=', 'LocalSystem']);
          try {
            sh('sc.exe', ['start', 'si-session-tests']);
            const deadline = Date.now() + 15 * 60 * 1000;
            while (!fs.existsSync(done) && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2000);
            if (fs.existsSync(log)) process.stdout.write(fs.readFileSync(log, 'utf8'));
          } finally {
            sh('sc.exe', ['delete', 'si-session-tests']);
          }
          if (!fs.existsSync(done)) throw new Error('the session service did not finish');
          const code = Number(fs.readFileSync(done, 'utf8').trim());
          if (code !== 0) throw new Error(`the session tests in the service exited ${code}`);
        },
  },
  ...goSteps(wine ? 'wine' : 'native'),
  {
    // The install test's Windows branch on the package this host makes: on the runner prepack
    // (MSVC prebuildify and the probe: a win32-only tarball); here the same win32-only package
    // with the MinGW build, installed and used by the Windows npm and node.exe under Wine.
    name: 'install-test',
    run: () => {
      if (!wine) return sh(process.execPath, ['scripts/test-install.js']);
      sh('npx', ['tsc', '-p', 'tsconfig.build.json']);
      sh(process.execPath, ['scripts/prebuild.js', '--only=cross,probe']);
      const dir = path.join(root, '.cache', 'ci', 'pack');
      fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(dir, { recursive: true });
      sh('npm', ['pack', '--ignore-scripts', '--loglevel=warn', '--pack-destination', dir]);
      const tgz = repack(single(dir, /\.tgz$/), ['win32-x64'], path.join(dir, 'win32'));
      W.wineNodeOk('install-test', ['scripts/test-install.js', `--tarball=${W.winPath(tgz)}`, '--platforms=win32-x64'], {}, 40 * 60 * 1000);
    },
  },
]);
