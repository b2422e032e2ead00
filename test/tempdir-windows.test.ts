// Windows tempDir: nothing at a name can be taken over, nothing a worker leaves in its directory
// (depth, links) can be used against the launcher, the path is gone before 'exit', and what a
// killed launcher left behind is removed by the next one.
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnIsolated } from '../lib';
import { loadBinding } from '../lib/native';
import { collect, firstLine, isWindows, json, onWine, root, worker } from './helpers';

/* eslint-disable @typescript-eslint/no-explicit-any */
const internals = (): any => (loadBinding() as any).internals;
const NAME = /^spawn-isolated-\d+-[0-9a-f]{16}-[0-9a-f]{32}$/;

(isWindows ? describe : describe.skip)('Windows tempDir: names, removal and leftovers', function () {
  this.timeout(120_000);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const oracle = isWindows ? (require('./oracle-win') as typeof import('./oracle-win')) : undefined!;
  const w = worker();
  const relaxed = { enforcement: 'best-effort' as const };
  let tmp: string;

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'si-tempdir-win-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** A junction at `link` to `target` (false where the host cannot make one: Wine 8). */
  function junction(target: string, link: string): boolean {
    try {
      fs.symlinkSync(target, link, 'junction');
      return fs.lstatSync(link).isSymbolicLink();
    } catch {
      return false;
    }
  }

  /** An outside directory with a file in it, its DACL, and a check that both are untouched. */
  function outside(name: string): { dir: string; unchanged(): void } {
    const dir = path.join(tmp, name);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'precious.txt'), 'keep me');
    const dacl = oracle.fileSddl(dir);
    return {
      dir,
      unchanged() {
        assert.equal(fs.readFileSync(path.join(dir, 'precious.txt'), 'utf8'), 'keep me', `${dir}: its file`);
        assert.equal(oracle.fileSddl(dir), dacl, `${dir}: its DACL`);
      },
    };
  }

  /** Waits until `check` holds (polled), or fails saying `what`. */
  async function until(what: string, check: () => boolean, ms = 30_000): Promise<void> {
    const end = Date.now() + ms;
    while (!check()) {
      if (Date.now() > end) assert.fail(`still not so after ${ms} ms: ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** This process's trash directories in `base` (gone once everything in them is deleted). */
  const ownTrash = (base: string) => fs.readdirSync(base).filter((n) => n.startsWith(`spawn-isolated-${process.pid}-`) && n.endsWith('.trash'));

  it('the base is what GetTempPath2W answers (GetTempPathW where the host lacks it); LocalSystem: SystemTemp', function () {
    const want = oracle.tempPath2();
    assert.equal(internals().tempBase().toLowerCase(), want.path.toLowerCase(), want.api);
    if (os.userInfo().username.toUpperCase() !== 'SYSTEM') {
      this.test!.title += ` [SystemTemp part skipped: not LocalSystem${onWine ? '; Wine 8 has no GetTempPath2W' : ''}]`;
      return;
    }
    assert.match(internals().tempBase(), /\\Windows\\SystemTemp$/i);
  });

  it('a name that exists (a junction planted there, a directory, a file) is never taken: another random name is, and what was there is untouched', function () {
    const base = path.join(tmp, 'base');
    fs.mkdirSync(base);
    const target = outside('target');
    const planted = path.join(base, 'planted');
    const isJunction = junction(target.dir, planted);
    if (!isJunction) fs.mkdirSync(planted); // Wine 8 makes no junctions (FSCTL_SET_REPARSE_POINT: ERROR_NOT_SUPPORTED, measured)
    fs.writeFileSync(path.join(base, 'file'), 'x');
    const plantedDacl = oracle.fileSddl(planted);
    for (const name of ['planted', 'file']) {
      const made: string = internals().makeTempDir(base, name);
      assert.notEqual(made.toLowerCase(), path.join(base, name).toLowerCase(), `${name} was taken`);
      assert.match(path.basename(made), NAME);
      assert.equal(path.dirname(made).toLowerCase(), base.toLowerCase());
    }
    target.unchanged();
    assert.equal(fs.lstatSync(planted).isSymbolicLink(), isJunction, 'the planted entry is what it was');
    assert.equal(oracle.fileSddl(planted), plantedDacl, "the planted entry's DACL");
    assert.equal(fs.readFileSync(path.join(base, 'file'), 'utf8'), 'x');
    // Control: a free name is taken as asked, with a DACL of its own (this user and SYSTEM).
    const free: string = internals().makeTempDir(base, 'free');
    assert.equal(free.toLowerCase(), path.join(base, 'free').toLowerCase());
    if (!onWine) assert.deepEqual(oracle.fileDacl(free), { aces: 2, protected: true });
    const names = new Set(Array.from({ length: 20 }, () => path.basename(internals().makeTempDir(base, ''))));
    assert.equal(names.size, 20, 'random names repeat');
    this.test!.title += isJunction ? ' [a junction]' : ' [under Wine: a directory; Wine 8 makes no junctions]';
  });

  it("leftovers: a launcher's worker and trash directories once it has gone, an older name once its pid has; never its own, a running launcher's or a '.detached' one", () => {
    const own: string = path.basename(internals().makeTempDir(tmp, ''));
    const [, pid, created, random] = /^spawn-isolated-(\d+)-([0-9a-f]{16})-([0-9a-f]{32})$/.exec(own)!;
    assert.equal(Number(pid), process.pid);
    const other = (n: string) => n.replace(/[0-9a-f]/, (c) => (c === '0' ? '1' : '0'));
    const gone = 4_000_000_000; // no such pid
    const live = (suffix = '') => `spawn-isolated-${pid}-${created}-${random}${suffix}`;
    const cases: [string, boolean][] = [
      [live(), false],
      [live('.trash'), false],
      [`spawn-isolated-${pid}-${other(created)}-${random}`, true], // an earlier process under this pid
      [`spawn-isolated-${gone}-${created}-${random}`, true],
      [`spawn-isolated-${gone}-${created}-${random}.trash`, true],
      [`spawn-isolated-${gone}-${created}-${random}.detached`, false],
      [`spawn-isolated-${gone}-${created}-${random}.other`, false],
      [`spawn-isolated-${gone}-7`, true],
      [`spawn-isolated-${process.pid}-7`, false], // the older naming, a running process
      [`spawn-isolated-${gone}-${created}-${random.slice(1)}`, false],
      [`spawn-isolated-abc-7`, false],
      ['something-else', false],
    ];
    for (const [name, leftover] of cases) assert.equal(internals().isTempLeftover(name), leftover, name);
    fs.rmSync(path.join(tmp, own), { recursive: true });
  });

  it('a worker that builds a 2,000-level tree: the launcher lives on, the path is gone at exit and the tree is deleted', async () => {
    const p = spawnIsolated(w, ['deeptree', '2000'], { ...relaxed, tempDir: true });
    const c = await collect(p);
    assert.equal(c.exit.code, 0, c.stderr + String(c.stdout));
    assert.equal(json<{ depth: number }>(c).depth, 2000);
    assert.equal(fs.existsSync(p.tempDir!), false, 'still there at exit');
    const base = path.dirname(p.tempDir!);
    await until('the trash is empty and gone', () => ownTrash(base).length === 0, 60_000);
  });

  it('a junction the worker leaves in its temp directory is removed, not followed: the directory it points to and its files stay', async function () {
    const target = outside('junction-target');
    const p = spawnIsolated(w, ['junction', 'link', target.dir, '--', 'deeptree', '5'], { ...relaxed, tempDir: true });
    const c = await collect(p);
    const made = json<{ made: boolean; error: string }>(c);
    if (!made.made && onWine) {
      this.test!.title += ` [skipped: Wine 8 makes no junctions (FSCTL_SET_REPARSE_POINT: "${made.error}")]`;
      this.skip();
    }
    assert.ok(made.made, made.error);
    assert.equal(c.exit.code, 0, c.stderr);
    assert.equal(fs.existsSync(p.tempDir!), false, 'still there at exit');
    await until('the trash is empty and gone', () => ownTrash(path.dirname(p.tempDir!)).length === 0);
    target.unchanged();
  });

  it("after 'await worker.exited' the temp directory never exists (20 workers, half leaving a grandchild that holds a file open without sharing)", async () => {
    for (let i = 0; i < 20; i++) {
      const p = spawnIsolated(w, i % 2 ? ['spawnhold'] : ['tempfile'], { ...relaxed, tempDir: true, stdio: ['ignore', 'pipe', 'ignore'] });
      p.stdout!.resume();
      const exit = await p.exited;
      assert.equal(fs.existsSync(p.tempDir!), false, `worker ${i}: ${p.tempDir} still there at exit (${JSON.stringify(exit)})`);
      assert.equal(exit.code, 0, `worker ${i}`);
    }
  });

  it('a file in it held open by another process: the exit still comes (within the 2 s bound), and the directory goes once the file is closed', async () => {
    const p = spawnIsolated(w, ['deeptree', '3', '--', 'sleep', '500'], { ...relaxed, tempDir: true });
    const { top } = await firstLine<{ top: string }>(p);
    const held = oracle.openExclusive(path.join(top, 'held.txt'));
    let closed = false;
    try {
      const t0 = Date.now();
      await p.exited;
      assert.ok(Date.now() - t0 < 5_000, `exit took ${Date.now() - t0} ms`);
    } finally {
      oracle.closeHandle(held);
      closed = true;
    }
    assert.ok(closed);
    await until(`${p.tempDir} removed`, () => !fs.existsSync(p.tempDir!) && ownTrash(path.dirname(p.tempDir!)).length === 0);
  });

  it("a killed launcher's leftovers are removed by the next launcher; a running launcher's and a killOnClose: false worker's are not", async () => {
    const lib = JSON.stringify(path.join(root, 'dist', 'lib', 'index.js'));
    const script = (name: string, body: string) => {
      const file = path.join(tmp, `${name}-${crypto.randomBytes(4).toString('hex')}.js`);
      fs.writeFileSync(file, `const { spawnIsolated } = require(${lib}); const fs = require('fs'); const w = ${JSON.stringify(w)};\n(async () => { ${body} })();`);
      return file;
    };
    // The first launcher: a worker with a tree in its temp directory, and a killOnClose: false one.
    const first = spawn(
      process.execPath,
      [
        script(
          'first',
          `const a = spawnIsolated(w, ['deeptree', '30', '--', 'sleep', '600000'], { enforcement: 'best-effort', tempDir: true });
           const b = spawnIsolated(w, ['sleep', '60000'], { enforcement: 'best-effort', tempDir: true, killOnClose: false, stdio: 'ignore' });
           await new Promise((r) => a.stdout.once('data', r));
           console.log(JSON.stringify({ a: a.tempDir, b: b.tempDir, bpid: b.pid }));
           setInterval(() => {}, 1000);`,
        ),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const info = await new Promise<{ a: string; b: string; bpid: number }>((resolve, reject) => {
      let buf = '';
      first.stdout.on('data', (d) => {
        buf += d;
        if (buf.includes('\n')) resolve(JSON.parse(buf));
      });
      first.on('exit', () => reject(new Error(`the first launcher ended early: ${buf}`)));
    });
    const base = path.dirname(info.a);
    const firstPid = first.pid!;
    first.kill(); // TerminateProcess: nothing of it runs on to clean up
    await new Promise((r) => first.once('exit', r));
    try {
      assert.ok(fs.existsSync(info.a), 'the killed launcher left its worker directory (control)');
      assert.match(path.basename(info.b), /\.detached$/);
      // What a launcher killed while deleting leaves: a trash directory with a tree in it, and a
      // directory of the older naming; a link named like a leftover (Windows: a junction).
      const tag = /^spawn-isolated-\d+-([0-9a-f]{16})-/.exec(path.basename(info.a))![1];
      const trash = path.join(base, `spawn-isolated-${firstPid}-${tag}-${crypto.randomBytes(16).toString('hex')}.trash`);
      fs.mkdirSync(path.join(trash, '0', 'd', 'd'), { recursive: true });
      fs.writeFileSync(path.join(trash, '0', 'd', 'd', 'f'), 'x');
      const older = path.join(base, `spawn-isolated-${firstPid}-7`);
      fs.mkdirSync(older);
      const running = path.join(base, `spawn-isolated-${process.pid}-7`); // this process runs: not a leftover
      fs.mkdirSync(running);
      const target = outside('leftover-link-target');
      const link = path.join(base, `spawn-isolated-${firstPid}-9`);
      const linked = junction(target.dir, link);
      // The next launcher sweeps at its first temp directory, in the background.
      const paths = [info.a, trash, older, ...(linked ? [link] : [])];
      const next = spawn(
        process.execPath,
        [
          script(
            'next',
            `await spawnIsolated(w, ['exit', '0'], { enforcement: 'best-effort', tempDir: true }).exited;
             const paths = ${JSON.stringify(paths)};
             const end = Date.now() + 30000;
             while (Date.now() < end && paths.some((p) => fs.existsSync(p))) await new Promise((r) => setTimeout(r, 50));
             console.log(JSON.stringify(paths.filter((p) => fs.existsSync(p))));`,
          ),
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let out = '';
      next.stdout.on('data', (d) => (out += d));
      const code = await new Promise((r) => next.on('exit', r));
      assert.equal(code, 0);
      assert.deepEqual(JSON.parse(out), [], 'left behind');
      assert.ok(fs.existsSync(running), "a running launcher's directory was removed");
      assert.ok(fs.existsSync(info.b), "the killOnClose: false worker's directory was removed while it runs");
      target.unchanged();
      fs.rmSync(running, { recursive: true });
    } finally {
      try {
        process.kill(info.bpid);
      } catch {
        // already gone
      }
      fs.rmSync(info.b, { recursive: true, force: true });
    }
  });

  it('the worker lists its own temp directory as most programs do (FindFirstFileW, no delete sharing): nothing of ours is in the way', async () => {
    const c = await collect(spawnIsolated(w, ['deeptree', '2', '--', 'lstemp'], { ...relaxed, tempDir: true, profile: 'private' }));
    const lines = c.stdout.toString().trim().split('\n');
    assert.deepEqual(JSON.parse(lines[1]), { entries: 3, error: '' }, c.stderr); // c, Local, Roaming
  });

  it('keepTempDir keeps it, with what the worker left (a tree), and the handle on it is let go', async () => {
    const p = spawnIsolated(w, ['deeptree', '10'], { ...relaxed, tempDir: true, keepTempDir: true });
    const c = await collect(p);
    assert.equal(c.exit.code, 0, c.stderr);
    try {
      assert.ok(fs.existsSync(path.join(json<{ top: string }>(c).top, 'd', 'd')));
      fs.renameSync(p.tempDir!, `${p.tempDir}-moved`); // no handle of ours keeps it
      fs.rmSync(`${p.tempDir}-moved`, { recursive: true });
    } finally {
      fs.rmSync(p.tempDir!, { recursive: true, force: true });
    }
  });
});
