#!/usr/bin/env node
// The install test: packs this project as npm publishes it (prepack builds dist/ and the
// prebuilds), or takes a given tarball (--tarball=FILE), checks what the tarball holds, then
// installs it into fresh projects as users would, with the registry unreachable (dependencies
// come from npm's cache), and runs a worker under limits from each:
//   (a) install scripts allowed        (b) --ignore-scripts
//   (c) no compiler, no Python on PATH (the prebuild must be used, nothing built; POSIX only)
//   (d) CommonJS, ESM and a `tsc --strict` TypeScript consumer (and the exports map holding)
//   (e) npx spawn-isolated
// and, with --wine, (c) and (d) again with the Windows node.exe under Wine. The tarball must
// hold one addon and the probe for each platform of --platforms=linux-x64,win32-x64 (default:
// what prepack makes on this host: both on Linux, win32-x64 on Windows). When it holds both,
// the pack step also checks that README.md quotes the tarball's size within 10 % (and says what
// to write if not). The Windows branch runs on Windows and, with the Windows node.exe, under
// Wine (scripts/ci/windows.js --wine runs it so on a win32-only tarball). --check-only stops
// after the checks of the tarball.
'use strict';
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.resolve(__dirname, '..');
const wine = process.argv.includes('--wine');
const given = (process.argv.find((a) => a.startsWith('--tarball=')) || '').slice(10);
const win = process.platform === 'win32';
// The Windows node.exe under Wine (scripts/ci/wine.js sets WINEPREFIX, which Wine passes on).
const inWine = win && !!process.env.WINEPREFIX;
const PUBLISHED = ['linux-x64', 'win32-x64'];
const platforms = (process.argv.find((a) => a.startsWith('--platforms=')) || `--platforms=${win ? 'win32-x64' : PUBLISHED.join(',')}`).slice(12).split(',');
const exe = win ? '.exe' : '';
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'spawn-isolated-install-'));
// Readable by others, as an installed node_modules is: a restricted worker of a root launcher
// runs as a uid of its own and must reach its executable.
fs.chmodSync(work, 0o755);
// --offline: nothing is fetched (and a proxy that goes nowhere makes sure of it); the
// dependencies are packed from this checkout's node_modules, so no registry metadata is needed.
const OFFLINE = ['--offline', '--no-audit', '--no-fund', '--loglevel=error'];
const NO_NETWORK = { https_proxy: 'http://127.0.0.1:9', http_proxy: 'http://127.0.0.1:9', npm_config_proxy: 'http://127.0.0.1:9', npm_config_https_proxy: 'http://127.0.0.1:9' };
let deps = [];
let failures = 0;

function step(name, fn) {
  try {
    const note = fn();
    console.log(`ok    ${name}${note ? ` (${note})` : ''}`);
  } catch (e) {
    failures++;
    console.log(`FAIL  ${name}\n      ${(String(e.stdout || '') + String(e.stderr || '')).trim().split('\n').slice(-15).join('\n      ')}\n      ${e.message.split('\n').slice(0, 5).join('\n      ')}`);
  }
}

function run(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: 'pipe', timeout: 300_000, shell: win && /^np[mx]$/.test(cmd), ...opts });
}

// A PATH with node and npm only (and what /bin/sh needs to exist): no cc, make or python.
function bareBin() {
  const dir = path.join(work, 'bare-bin');
  fs.mkdirSync(dir, { recursive: true });
  const onPath = (name) => process.env.PATH.split(path.delimiter).map((d) => path.join(d, name)).find((f) => fs.existsSync(f));
  const npmCli = fs.realpathSync(onPath('npm'));
  fs.symlinkSync(process.execPath, path.join(dir, 'node'));
  fs.symlinkSync('/bin/sh', path.join(dir, 'sh')); // npm runs install scripts with sh
  fs.writeFileSync(path.join(dir, 'npm'), `#!/bin/sh\nexec "${process.execPath}" "${npmCli}" "$@"\n`, { mode: 0o755 });
  fs.writeFileSync(path.join(dir, 'npx'), `#!/bin/sh\nexec "${process.execPath}" "${path.join(path.dirname(npmCli), 'npx-cli.js')}" "$@"\n`, { mode: 0o755 });
  for (const tool of ['cc', 'gcc', 'g++', 'c++', 'make', 'python3', 'python']) {
    if (fs.existsSync(path.join(dir, tool))) throw new Error(`${tool} on the bare PATH`);
  }
  return dir;
}

function pack() {
  // A given tarball (the release workflow's, with every platform's prebuilds) is listed, not made.
  const out = given
    ? run('npm', ['pack', '--json', '--dry-run', path.resolve(given)], { cwd: work })
    : run('npm', ['pack', '--json', '--pack-destination', work], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], timeout: 900_000 });
  const info = JSON.parse(out.slice(out.indexOf('[')))[0];
  if (given) info.filename = path.resolve(given);
  // Its dependencies, as local tarballs of what this checkout installed.
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  deps = Object.keys(pkg.dependencies).map((d) => {
    const o = run('npm', ['pack', '--json', '--pack-destination', work, path.join(root, 'node_modules', d)], { cwd: root });
    return path.join(work, JSON.parse(o.slice(o.indexOf('[')))[0].filename);
  });
  return { file: path.isAbsolute(info.filename) ? info.filename : path.join(work, info.filename), size: info.size, unpacked: info.unpackedSize, files: info.files.map((f) => f.path) };
}

// One file of a .tgz (npm's: gzip, ustar), read without a tar program (Windows, Wine).
function readFromTarball(tgz, name) {
  const tar = require('zlib').gunzipSync(fs.readFileSync(tgz));
  for (let off = 0; off + 512 <= tar.length; ) {
    const header = tar.subarray(off, off + 512);
    if (header.every((b) => b === 0)) break;
    const field = (a, b) => header.subarray(a, b).toString('utf8').replace(/\0.*$/s, '');
    const entry = [field(345, 500), field(0, 100)].filter(Boolean).join('/');
    const size = parseInt(field(124, 136).trim() || '0', 8);
    if (entry === name) return tar.subarray(off + 512, off + 512 + size).toString('utf8');
    off += 512 + Math.ceil(size / 512) * 512;
  }
  throw new Error(`${path.basename(tgz)} has no ${name}`);
}

function checkContents(files, tarball) {
  const must = ['package.json', 'README.md', 'LICENSE', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/cli.js', 'binding.gyp', 'CMakeLists.txt',
    'native/addon.cc', 'native/posix/init/init.c', 'scripts/build-init.js'];
  for (const p of platforms) must.push(`prebuilds/${p}/spawn-isolated-probe${p.startsWith('win32') ? '.exe' : ''}`);
  for (const f of must) if (!files.includes(f)) throw new Error(`the tarball lacks ${f}`);
  // One addon per platform (whatever its name: node-gyp-build reads the tags in it), and none
  // for a platform not asked for.
  for (const p of PUBLISHED) {
    const addons = files.filter((f) => f.startsWith(`prebuilds/${p}/`) && f.endsWith('.node'));
    if (platforms.includes(p) && addons.length !== 1) throw new Error(`the tarball has ${addons.length ? addons.join(', ') : 'no addon'} for ${p}: one expected`);
    if (!platforms.includes(p) && addons.length) throw new Error(`the tarball has ${addons.join(', ')}, not asked for (--platforms=${platforms.join(',')})`);
  }
  // The Go module, complete: a worker's go.mod takes it from node_modules/spawn-isolated/go.
  const goFiles = ['go/go.mod', ...fs.readdirSync(path.join(root, 'go')).filter((f) => f.endsWith('.go')).map((f) => `go/${f}`)];
  const missingGo = goFiles.filter((f) => !files.includes(f));
  if (missingGo.length) throw new Error(`the tarball lacks the Go module's ${missingGo.join(', ')} (package.json "files")`);
  const stray = files.filter((f) => /\.map$|^test\/|^lib\/|^build|^bench\/|^\.|^probe\/|^demo\//.test(f));
  if (stray.length) throw new Error(`the tarball holds what it should not: ${stray.join(', ')}`);
  // The published .d.ts, as the tarball has it (a given tarball's dist/ is not this checkout's).
  const dts = readFromTarball(tarball, 'package/dist/lib/process.d.ts');
  if (/_start|_fail/.test(dts)) throw new Error('internal members are in the public .d.ts');
}

// README.md quotes the package's size as npm pack reports it (MB: 1000 * 1000 bytes): checked
// here, within 10 %, so that the figure cannot go stale unnoticed.
function checkReadmeFigures(p) {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8').replace(/\s+/g, ' ');
  const real = [p.size / 1e6, p.unpacked / 1e6, p.files.length];
  const want = `The package is ${real[0].toFixed(1)} MB packed and ${real[1].toFixed(1)} MB unpacked, ${real[2]} files`;
  const m = /The package is ([\d.]+) MB packed and ([\d.]+) MB unpacked, (\d+) files/.exec(readme);
  if (!m) throw new Error(`README.md does not quote the package's size; write (in the Install section): "${want}"`);
  const quoted = m.slice(1, 4).map(Number);
  if (quoted.some((q, i) => Math.abs(q - real[i]) > 0.1 * real[i])) {
    throw new Error(`README.md quotes "${m[0]}", more than 10 % off what npm pack made; write: "${want}"`);
  }
  return want;
}

function project(name, tarball, installArgs, env) {
  const dir = path.join(work, name);
  fs.mkdirSync(dir);
  const scripts = !installArgs.includes('--ignore-scripts');
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: `consumer-${name}`, version: '1.0.0', private: true, ...(scripts ? { allowScripts: { [`file:${tarball}`]: true } } : {}) }));
  const out = run('npm', ['install', tarball, ...deps, ...OFFLINE, '--foreground-scripts', ...installArgs], { cwd: dir, env: { ...env, ...NO_NETWORK } });
  if (scripts !== /spawn-isolated@[^ ]+ install\r?\n> node-gyp-build/.test(out)) throw new Error(`the install script ${scripts ? 'did not run' : 'ran'}:\n${out}`);
  if (fs.existsSync(path.join(dir, 'node_modules', 'spawn-isolated', 'build'))) throw new Error('the install built the addon from source');
  return dir;
}

// The consumers: each runs the shipped probe under a memory limit, within it and (where this
// host enforces memory) past it.
const CJS = `const { spawnIsolated, isolationSupport } = require('spawn-isolated');
const path = require('path');
const dir = path.dirname(require.resolve('spawn-isolated/package.json'));
const probe = path.join(dir, 'prebuilds', process.platform + '-' + process.arch, 'spawn-isolated-probe' + (process.platform === 'win32' ? '.exe' : ''));
(async () => {
  const within = await spawnIsolated(probe, ['alloc', '16'], { memory: '128MiB', enforcement: 'best-effort', stdio: 'ignore' }).exited;
  if (within.code !== 0) throw new Error('within the limit: ' + JSON.stringify(within));
  let past = null;
  if (isolationSupport().limits['memory.total'].enforced) {
    past = await spawnIsolated(probe, ['alloc', '512'], { memory: '64MiB', stdio: 'ignore' }).exited;
    if (past.reason !== 'memory') throw new Error('past the limit: ' + JSON.stringify(past));
  }
  let deep = 'importable';
  try { require('spawn-isolated/dist/lib/process'); } catch (e) { deep = e.code; }
  console.log(JSON.stringify({ within: within.reason, past: past && past.reason, deep }));
})().catch((e) => { console.error(e); process.exit(1); });
`;
const ESM = `import { spawnIsolated, isolationSupport } from 'spawn-isolated';
import { createRequire } from 'node:module';
import * as path from 'node:path';
const dir = path.dirname(createRequire(import.meta.url).resolve('spawn-isolated/package.json'));
const probe = path.join(dir, 'prebuilds', process.platform + '-' + process.arch, 'spawn-isolated-probe' + (process.platform === 'win32' ? '.exe' : ''));
const e = await spawnIsolated(probe, ['alloc', '16'], { memory: '128MiB', enforcement: 'best-effort', stdio: 'ignore' }).exited;
if (e.code !== 0) throw new Error(JSON.stringify(e));
console.log(JSON.stringify({ esm: e.reason, backend: isolationSupport().backend }));
`;
const TS = `import { spawnIsolated, IsolatedExit, IsolationOptions } from 'spawn-isolated';
const options: IsolationOptions = { memory: '128MiB', cpu: { cores: 0.5 }, processes: 4 };
export async function run(file: string): Promise<number | null> {
  const p = spawnIsolated(file, ['exit', '0'], options);
  p.on('exit', (code: number | null, signal: NodeJS.Signals | null) => void [code, signal]);
  const e: IsolatedExit = await p.exited;
  return e.code;
}
`;
const TS_BAD = `import { spawnIsolated } from 'spawn-isolated';
const p = spawnIsolated('x');
p._start;
p.on('exitt', () => undefined);
`;

function consume(dir, env) {
  fs.writeFileSync(path.join(dir, 'consumer.cjs'), CJS);
  fs.writeFileSync(path.join(dir, 'consumer.mjs'), ESM);
  const cjs = JSON.parse(run(process.execPath, ['consumer.cjs'], { cwd: dir, env }).trim());
  if (cjs.deep !== 'ERR_PACKAGE_PATH_NOT_EXPORTED') throw new Error(`a deep import was ${cjs.deep}`);
  const esm = JSON.parse(run(process.execPath, ['consumer.mjs'], { cwd: dir, env }).trim());
  return `CommonJS within: ${cjs.within}, past: ${cjs.past ?? 'not enforced here'}; ESM: ${esm.esm}`;
}

function typescript(dir) {
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  fs.writeFileSync(path.join(dir, 'consumer.ts'), TS);
  const flags = ['--strict', '--noEmit', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--types', 'node', '--typeRoots', path.join(root, 'node_modules', '@types')];
  run(process.execPath, [tsc, ...flags, 'consumer.ts'], { cwd: dir });
  fs.writeFileSync(path.join(dir, 'bad.ts'), TS_BAD);
  const bad = spawnSync(process.execPath, [tsc, ...flags, 'bad.ts'], { cwd: dir, encoding: 'utf8' });
  if (bad.status === 0 || !/bad\.ts\(3,.*_start/.test(bad.stdout) || !/bad\.ts\(4,/.test(bad.stdout)) throw new Error(`tsc accepted internals or a misspelt event:\n${bad.stdout}`);
  return 'strict consumer compiles; an internal member and a misspelt event do not';
}

function underWine(tarball) {
  const { windowsNode, winePrefix, wineEnv } = require('./wine-env');
  const dir = project('wine', tarball, ['--ignore-scripts'], process.env);
  fs.writeFileSync(path.join(dir, 'consumer.cjs'), CJS);
  fs.writeFileSync(path.join(dir, 'consumer.mjs'), ESM);
  const node = windowsNode();
  const env = { ...wineEnv(winePrefix()), PATH: '/usr/bin:/bin' };
  const results = [];
  for (const script of ['consumer.cjs', 'consumer.mjs']) {
    const outFile = path.join(dir, `${script}.out`);
    const out = fs.openSync(outFile, 'w');
    const err = fs.openSync(`${outFile}.err`, 'w');
    const r = spawnSync('wine', [node, script], { cwd: dir, env, stdio: ['ignore', out, err], timeout: 300_000 });
    fs.closeSync(out);
    fs.closeSync(err);
    if (r.status !== 0) throw new Error(`${script} under Wine: exit ${r.status}\n${fs.readFileSync(`${outFile}.err`, 'utf8').slice(-2000)}`);
    results.push(fs.readFileSync(outFile, 'utf8').trim());
  }
  spawnSync('wineserver', ['-k'], { env: wineEnv(winePrefix()), stdio: 'ignore' });
  return results.join('; ');
}

let tarball;
step('npm pack (prepack builds dist/ and the prebuilds)', () => {
  const p = pack();
  tarball = p.file;
  checkContents(p.files, p.file);
  // The README quotes the published package, which holds every platform's prebuild.
  if (PUBLISHED.every((x) => platforms.includes(x))) return `${path.basename(p.file)}: ${checkReadmeFigures(p).replace('The package is ', '')}, as README.md says`;
  return `${path.basename(p.file)} (${platforms.join(', ')} only: ${p.files.length} files, ${(p.size / 1e6).toFixed(1)} MB; the README's figures are the published package's)`;
});
// --check-only: what the tarball holds, nothing installed (the release's package job).
if (tarball && !process.argv.includes('--check-only')) {
  const bare = win ? undefined : { ...process.env, PATH: bareBin() };
  if (bare) for (const k of Object.keys(bare)) if (/^npm_/i.test(k) && k !== 'npm_config_cache') delete bare[k];
  // Under Wine npm announces the install script, but Wine's cmd.exe does not run the program
  // of its .cmd shim (node-gyp-build), as in (e): that it finds the prebuild is shown on Windows.
  step(`(a) install scripts allowed: the install script finds the prebuild${inWine ? " (Wine: announced, not run: see (e))" : ''}`, () => consume(project('scripts', tarball, [], process.env), process.env));
  step('(b) --ignore-scripts', () => consume(project('ignore-scripts', tarball, ['--ignore-scripts'], process.env), process.env));
  // Windows: node-gyp finds Visual Studio without PATH, so (c) is for POSIX hosts; (b) is the
  // one there that shows a prebuild is used (nothing is built with scripts off).
  if (bare) step('(c) no compiler and no Python on PATH, install scripts allowed', () => consume(project('no-compiler', tarball, [], bare), bare));
  step('(d) TypeScript, tsc --strict (CommonJS and ESM ran in a-c)', () => typescript(path.join(work, 'ignore-scripts')));
  step('(e) npx spawn-isolated', () => {
    const dir = path.join(work, bare ? 'no-compiler' : 'scripts');
    const probe = path.join(dir, 'node_modules', 'spawn-isolated', 'prebuilds', `${process.platform}-${process.arch}`, `spawn-isolated-probe${exe}`);
    const npx = (args) => spawnSync('npx', ['--offline', '--no-install', 'spawn-isolated', ...args], { cwd: dir, env: { ...(bare || process.env), ...NO_NETWORK }, encoding: 'utf8', shell: win, timeout: 120_000 });
    // The command's exit code is the worker's, or 124 when it ended the worker at --timeout.
    const t = npx(['--best-effort', '--timeout', '1s', probe, 'sleep', '60000']);
    // Wine's cmd.exe does not run the program of npm's bin shims (cmd-shim's .cmd ends with
    // `goto #_undefined_# 2>NUL || title %COMSPEC% & "%_prog%" ...`, which Wine 8.0 does not
    // follow): npx exits 0 having run nothing. Real Windows runs it; so does this check there.
    if (inWine && t.status === 0 && !t.stdout && !t.stderr) return "not verifiable under Wine: its cmd.exe does not run npm's .cmd bin shims (exit 0, nothing run)";
    if (t.status !== 124) throw new Error(`npx spawn-isolated --timeout 1s on a 60 s sleep exited ${t.status}, not 124: ${t.stderr}`);
    const r = npx(['--best-effort', '--memory', '128MiB', '--json', probe, 'alloc', '16']);
    if (r.status !== 0) throw new Error(`npx exited ${r.status}: ${r.stderr}`);
    // Its --json summary is its last line on stderr.
    const last = r.stderr.trim().split(/\r?\n/).pop();
    let summary = null;
    try {
      summary = JSON.parse(last);
    } catch {}
    if (!summary || summary.code !== 0 || summary.reason !== 'exit') throw new Error(`no --json summary of a worker that exited 0 on stderr: ${JSON.stringify(r.stderr)}`);
    return `exit 124 at --timeout; ${last}`;
  });
  if (wine) step('Windows node.exe under Wine: (c) and (d), CommonJS and ESM', () => underWine(tarball));
}
fs.rmSync(work, { recursive: true, force: true });
console.log(failures ? `install test: ${failures} failed` : 'install test: all passed');
process.exit(failures ? 1 : 0);
