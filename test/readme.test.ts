// The README's examples, run as written. A code block is checked when the line before it is
// `<!-- readme-test: NAME -->`; the test fails when a block below loses its marker or a marker
// names no block here. Checked:
//   quick-start     (ts) the first example: tsc --strict, then run, against ./worker (the test
//                   worker, whose 'serve' prints a line and ends)
//   exec            (js) the execIsolated example, against ./worker (the test worker's 'echo')
//   exec-typed      (ts) typed results, a group, reject: tsc --strict (the types are part of
//                   the example), then run against ./worker
//   go-mod          the go.mod lines, verbatim, in a module whose node_modules/spawn-isolated/go
//                   holds only the Go files `npm pack` ships, with the proxy off (nothing fetched)
//   go-worker       (go) the worker example, built in that module (go vet for this OS and the
//                   other one, go build); also equal to go/example/worker/main.go
//   go-worker-node  (js) its launcher, run against that build: the answer, then stop() and the
//                   worker's own clean end
// JavaScript runs as ESM with `spawn-isolated` resolving to this checkout (dist/, the addon
// built here). Not run: the Install snippet (CommonJS and ESM side by side), the group example,
// the Windows service and its launcher (a LocalSystem service on real Windows), the command's
// synopsis.
import * as assert from 'node:assert/strict';
import { spawnSync, SpawnSyncOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isolationSupport, LimitName } from '../lib';
import { isWindows, root, worker } from './helpers';

const CHECKED = ['quick-start', 'exec', 'exec-typed', 'go-mod', 'go-worker', 'go-worker-node'];
const exe = isWindows ? '.exe' : '';

/** The marked blocks of the README: name -> { lang, code }. */
function readmeBlocks(): Map<string, { lang: string; code: string }> {
  const text = fs.readFileSync(path.join(root, 'README.md'), 'utf8').replace(/\r\n/g, '\n');
  const out = new Map<string, { lang: string; code: string }>();
  for (const m of text.matchAll(/^<!-- readme-test: ([\w-]+) -->\n```(\w*)\n([\s\S]*?)^```$/gm)) {
    assert.ok(!out.has(m[1]), `two README blocks are marked ${m[1]}`);
    out.set(m[1], { lang: m[2], code: m[3] });
  }
  return out;
}

function run(cmd: string, args: string[], opts: SpawnSyncOptions): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000, ...opts });
  if (r.error) throw r.error;
  return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
}

function ok(r: { status: number | null; stdout: string; stderr: string }, what: string): string {
  assert.equal(r.status, 0, `${what} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Skips, saying why, unless this host enforces each of `limits` (the examples use strict mode). */
function needs(ctx: Mocha.Context, ...limits: LimitName[]): void {
  const s = isolationSupport();
  const missing = limits.filter((l) => !s.limits[l].enforced);
  if (!s.spawn || missing.length > 0) {
    ctx.test!.title += ` [skipped: the example's limits are not enforced here: ${s.spawn ? missing.map((l) => `${l} (${s.limits[l].reason})`).join(', ') : s.reason}]`;
    ctx.skip();
  }
}

const goAvailable = (() => {
  try {
    return spawnSync('go', ['version'], { encoding: 'utf8' }).status === 0;
  } catch {
    return false;
  }
})();

/** Go for a module that must build as written: nothing fetched, go.mod left as it is. */
const GO_ENV = { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=readonly', GOPROXY: 'off', GOWORK: 'off', CGO_ENABLED: '0' };

describe('README examples, as written', function () {
  this.timeout(180_000);
  const blocks = readmeBlocks();
  let dir: string;

  /** A directory that is an npm project with spawn-isolated (this checkout) installed. */
  function project(name: string): string {
    const d = path.join(dir, name);
    fs.mkdirSync(path.join(d, 'node_modules'), { recursive: true });
    fs.writeFileSync(path.join(d, 'package.json'), JSON.stringify({ name: `readme-${name}`, private: true }));
    fs.symlinkSync(root, path.join(d, 'node_modules', 'spawn-isolated'), isWindows ? 'junction' : 'dir');
    return d;
  }

  function block(name: string): string {
    const b = blocks.get(name);
    assert.ok(b, `README.md has no block marked <!-- readme-test: ${name} -->`);
    return b.code;
  }

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spawn-isolated-readme-'));
    // A restricted worker of a root launcher runs as a uid of its own: it must reach ./worker.
    fs.chmodSync(dir, 0o755);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('every marked block is one this test checks, and each checked one is marked', () => {
    assert.deepEqual([...blocks.keys()].sort(), [...CHECKED].sort());
  });

  it('quick-start: the first example compiles with tsc --strict and runs', function () {
    needs(this, 'memory.total', 'cpu.cores', 'processes', 'handles');
    const d = project('quick-start');
    fs.copyFileSync(worker(), path.join(d, `worker${exe}`));
    fs.writeFileSync(path.join(d, 'example.mts'), block('quick-start'));
    const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const flags = ['--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', '--typeRoots', path.join(root, 'node_modules', '@types')];
    ok(run(process.execPath, [tsc, ...flags, '--outDir', 'out', 'example.mts'], { cwd: d }), 'tsc');
    const out = ok(run(process.execPath, [path.join('out', 'example.mjs')], { cwd: d }), 'the example');
    assert.match(out, /^\{"serving":true\}$/m);
    assert.match(out, /^ended: exit 0, peak \d+ bytes$/m);
  });

  it('exec: the execIsolated example runs', function () {
    needs(this, 'memory.total');
    const d = project('exec');
    fs.copyFileSync(worker(), path.join(d, `worker${exe}`));
    fs.writeFileSync(path.join(d, 'example.mjs'), block('exec'));
    assert.equal(ok(run(process.execPath, ['example.mjs'], { cwd: d }), 'the example'), 'exit 0 ping\n');
  });

  it('exec-typed: typed results, a group and reject compile with tsc --strict and run', function () {
    needs(this, 'memory.total', 'cpu.cores');
    const d = project('exec-typed');
    fs.copyFileSync(worker(), path.join(d, `worker${exe}`));
    fs.writeFileSync(path.join(d, 'example.mts'), block('exec-typed'));
    const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const flags = ['--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', '--typeRoots', path.join(root, 'node_modules', '@types')];
    ok(run(process.execPath, [tsc, ...flags, '--outDir', 'out', 'example.mts'], { cwd: d }), 'tsc');
    assert.equal(ok(run(process.execPath, [path.join('out', 'example.mjs')], { cwd: d }), 'the example'), '3 exit ""\nping 7 pong\n');
  });

  it('go-worker: the worker example is go/example/worker/main.go', () => {
    const file = fs.readFileSync(path.join(root, 'go', 'example', 'worker', 'main.go'), 'utf8').replace(/\r\n/g, '\n');
    assert.equal(file.replace(/^(\/\/.*\n)+/, ''), block('go-worker'), 'go/example/worker/main.go (below its leading comment) differs from the README');
  });

  let built: string | undefined;

  it('go-mod + go-worker: with exactly the go.mod lines and the Go files npm ships, the worker vets (Linux and Windows) and builds, fetching nothing', function () {
    if (!goAvailable) {
      this.test!.title += ' [skipped: no go on PATH]';
      this.skip();
    }
    const d = path.join(dir, 'go-module');
    fs.mkdirSync(d);
    // What `npm pack` puts in the package under go/ (the list only: no prepack runs).
    const packed = run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, shell: isWindows });
    const files = (JSON.parse(ok(packed, 'npm pack').replace(/^[^[]*/, '')) as { files: { path: string }[] }[])[0].files.map((f) => f.path);
    const goFiles = files.filter((f) => f.startsWith('go/'));
    assert.ok(goFiles.includes('go/go.mod') && goFiles.includes('go/channel.go'), `the package ships ${goFiles.join(', ')}`);
    for (const f of goFiles) {
      const to = path.join(d, 'node_modules', 'spawn-isolated', f);
      fs.mkdirSync(path.dirname(to), { recursive: true });
      fs.copyFileSync(path.join(root, f), to);
    }
    fs.writeFileSync(path.join(d, 'go.mod'), `${block('go-mod')}\n`);
    fs.writeFileSync(path.join(d, 'main.go'), block('go-worker'));
    for (const goos of ['linux', 'windows']) ok(run('go', ['vet', '.'], { cwd: d, env: { ...GO_ENV, GOOS: goos } }), `go vet (GOOS=${goos})`);
    const out = path.join(dir, `go-worker${exe}`);
    ok(run('go', ['build', '-o', out, '.'], { cwd: d, env: GO_ENV }), 'go build');
    assert.equal(fs.readFileSync(path.join(d, 'go.mod'), 'utf8'), `${block('go-mod')}\n`, 'go changed go.mod');
    fs.chmodSync(out, 0o755);
    built = out;
  });

  it('go-worker-node: the launcher gets its answer, stops the worker, and the worker ends by itself with 0', function () {
    needs(this, 'memory.total', 'cpu.cores');
    if (!built) {
      this.test!.title += ' [skipped: the Go example was not built (above)]';
      this.skip();
    }
    const d = project('go-worker-node');
    fs.copyFileSync(built, path.join(d, `worker${exe}`));
    fs.writeFileSync(path.join(d, 'example.mjs'), block('go-worker-node'));
    const out = ok(run(process.execPath, ['example.mjs'], { cwd: d }), 'the example');
    assert.equal(out, "worker says { done: 1 }\nworker ended 0 killed\n");
  });
});
