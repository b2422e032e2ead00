// A private world per worker (Linux): its own session with no terminal to write into, an init
// it cannot reach, no uid 0 at a confined level, its own /tmp, /var/tmp and /dev/shm, and temp
// directories that leave no trace and never stall the launcher. Every attack runs inside a
// worker under test (the Go worker's `attack` command); controls run only attacks that are
// harmless when they succeed.
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { IsolationOptions, spawnIsolated } from '../lib';
import { collect, isLinux, json, root, slow, worker } from './helpers';

type Results = Record<string, string>;
const isRoot = isLinux && process.getuid!() === 0;
const lib = path.join(root, 'dist', 'lib', 'index.js');

/** Runs `body` in a child Node launcher under `script` (a pseudo-terminal as its controlling terminal). */
function underTerminal(body: string, dir: string): Promise<Record<string, Record<string, unknown>>> {
  const file = path.join(dir, `tty-${Date.now()}-${Math.random().toString(36).slice(2)}.js`);
  const out = `${file}.json`;
  fs.writeFileSync(
    file,
    `const fs = require('node:fs');
     const { spawnIsolated } = require(${JSON.stringify(lib)});
     const w = ${JSON.stringify(worker())};
     function run(args, opts) {
       return new Promise((resolve) => {
         const p = spawnIsolated(w, args, opts);
         let text = '';
         if (p.stdout) p.stdout.on('data', (d) => (text += d));
         p.on('error', (e) => resolve({ error: e.code }));
         p.on('close', () => resolve(text ? JSON.parse(text.split('\\n')[0]) : { empty: true }));
       });
     }
     (async () => { ${body} })().then((v) => fs.writeFileSync(${JSON.stringify(out)}, JSON.stringify(v)), (e) => { fs.writeFileSync(${JSON.stringify(out)}, JSON.stringify({ failed: String(e) })); });`,
  );
  return new Promise((resolve, reject) => {
    const p = spawn('script', ['-qfec', `${process.execPath} ${file}`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    p.stdout.resume();
    p.stderr.resume();
    p.on('error', reject);
    p.on('close', () => {
      try {
        resolve(JSON.parse(fs.readFileSync(out, 'utf8')));
      } catch (e) {
        reject(e);
      }
    });
  });
}

/** The longest gap between 5 ms ticks of the event loop while `work` runs. */
async function loopGap(work: () => Promise<void>): Promise<number> {
  let last = Date.now();
  let max = 0;
  const t = setInterval(() => {
    const now = Date.now();
    max = Math.max(max, now - last);
    last = now;
  }, 5);
  try {
    await work();
    await new Promise((r) => setTimeout(r, 50));
  } finally {
    clearInterval(t);
  }
  return max;
}

/** This process's trash directories (where ended workers' temp directories go to be removed). */
function trashEntries(base = os.tmpdir()): string[] {
  return fs
    .readdirSync(base)
    .filter((n) => n.startsWith(`spawn-isolated-${process.pid}-trash-`))
    .flatMap((n) => fs.readdirSync(path.join(base, n)).map((e) => path.join(base, n, e)));
}

async function until(what: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!what() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  return what();
}

(isLinux ? describe : describe.skip)('a private world per worker (Linux)', function () {
  this.timeout(120_000);
  const w = worker();
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'spawn-isolated-world-'));
    fs.chmodSync(tmp, 0o755);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  async function attack(args: string[], options: IsolationOptions = {}): Promise<Results> {
    return json<Results>(await collect(spawnIsolated(w, ['attack', ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...options })));
  }

  describe('its own session: no terminal to push commands into', () => {
    it('with the launcher on a terminal: no TIOCSTI / TIOCLINUX on inherited stdin, no /dev/tty (control: inherit as root can push)', async function () {
      if (!isRoot) this.skip(); // the control needs CAP_SYS_ADMIN; the confined runs need nothing
      const got = await underTerminal(
        `return {
           inheritedStdin: await run(['attack', 'tty', ' '], { stdio: ['inherit', 'pipe', 'ignore'] }),
           pipes: await run(['attack', 'tty', ' '], {}),
           low: await run(['attack', 'tty', ' '], { stdio: ['inherit', 'pipe', 'ignore'], privileges: 'low' }),
           control: await run(['attack', 'tty', ' '], { stdio: ['inherit', 'pipe', 'ignore'], privileges: 'inherit' }),
         };`,
        tmp,
      );
      for (const k of ['inheritedStdin', 'pipes', 'low']) {
        const r = got[k] as Results;
        assert.equal(r.ownSession, 'true', `${k}: ${JSON.stringify(r)}`);
        assert.match(r['open /dev/tty'], /no such device or address/, `${k}: it has no controlling terminal`);
        for (const [key, v] of Object.entries(r)) if (key.startsWith('TIOC')) assert.notEqual(v, 'ok', `${k}: ${key} succeeded`);
      }
      assert.ok('TIOCSTI stdin' in (got.inheritedStdin as Results), `the worker's stdin was the terminal: ${JSON.stringify(got.inheritedStdin)}`);
      assert.equal((got.control as Results)['TIOCSTI stdin'], 'ok', `control: the attack can succeed ${JSON.stringify(got.control)}`);
    });
  });

  describe('an init it cannot reach', () => {
    it('from its first instruction, 100 workers each try PTRACE_SEIZE on their init 200,000 times: all fail (control: inherit as root can)', async function () {
      const attacker = path.join(root, 'test', 'fixtures', 'bin', 'linux-amd64', 'ptrace-init');
      if (!fs.existsSync(attacker)) this.skip(); // x86-64 only (freestanding)
      // Restricted workers of a root launcher run as a uid of their own (the checkout may be
      // read-only, as in scripts/test-vm.sh's guest: change the mode only when it must).
      if ((fs.statSync(attacker).mode & 0o555) !== 0o555) fs.chmodSync(attacker, 0o755);
      const codes: (number | null)[] = [];
      const batch: Promise<{ code: number | null }>[] = [];
      for (let i = 0; i < 100; i++) {
        batch.push(spawnIsolated(attacker, [], { stdio: 'ignore' }).exited);
        if (batch.length === 4) codes.push(...(await Promise.all(batch.splice(0))).map((e) => e.code));
      }
      codes.push(...(await Promise.all(batch)).map((e) => e.code));
      assert.deepEqual(codes.filter((c) => c !== 0), [], 'exit 42: it seized its init');
      if (isRoot) {
        const control = await spawnIsolated(attacker, [], { stdio: 'ignore', privileges: 'inherit' }).exited;
        assert.equal(control.code, 42, 'control: with CAP_SYS_PTRACE it seizes it, so the attack can succeed');
      }
    });

    it('100 Go workers try PTRACE_SEIZE and /proc/1/mem on their init: all fail (control: inherit as root can)', async function () {
      const runs: Promise<Results>[] = [];
      const all: Results[] = [];
      for (let i = 0; i < 100; i++) {
        runs.push(attack(['ptrace', '1']));
        if (runs.length === 4) all.push(...(await Promise.all(runs.splice(0))));
      }
      all.push(...(await Promise.all(runs)));
      const won = all.filter((r) => r.seize === 'ok' || r.mem === 'ok');
      assert.deepEqual(won, [], 'a worker reached its init');
      assert.equal(all.length, 100);
      if (isRoot) {
        // (Its /proc is the host's, so only the seize of its own PID 1 says anything.)
        const control = await attack(['ptrace', '1'], { privileges: 'inherit' });
        assert.equal(control.seize, 'ok', 'control: with CAP_SYS_PTRACE it can, so the attack can succeed');
      }
    });
  });

  describe('uid 0 is not a sandbox', () => {
    it("uid 0 / gid 0 at 'restricted' or 'low' is refused, naming privileges: 'inherit'; with 'inherit' it runs as root", async function () {
      for (const o of [{ uid: 0 }, { gid: 0 }, { uid: 0, gid: 0, privileges: 'low' as const }]) {
        assert.throws(() => spawnIsolated(w, ['exit', '0'], o), { code: 'ERR_INCOMPATIBLE_OPTION_PAIR', message: /privileges: 'inherit'/ }, JSON.stringify(o));
      }
      if (!isRoot) return;
      const p = spawnIsolated(w, ['exit', '0'], { user: 'root' });
      const err = await new Promise<NodeJS.ErrnoException>((r) => p.on('error', r));
      assert.equal(err.code, 'ERR_INCOMPATIBLE_OPTION_PAIR');
      const r = await attack(['write', '/proc/sys/kernel/core_pattern'], { uid: 0, gid: 0, privileges: 'inherit' });
      assert.equal(r['/proc/sys/kernel/core_pattern'], 'ok', 'control: root opens it for writing (nothing is written)');
    });
  });

  describe('its own /tmp, /var/tmp and /dev/shm', () => {
    it('sees none of the host files there, and leaves nothing behind (control: inherit shares them)', async function () {
      const name = `spawn-isolated-marker-${process.pid}-${Date.now()}`;
      const planted = ['/tmp', '/dev/shm'].filter((d) => fs.existsSync(d)).map((d) => path.join(d, name));
      for (const f of planted) fs.writeFileSync(f, 'host', { mode: 0o644 });
      const leftovers = () => ['/tmp', '/var/tmp', '/dev/shm'].map((d) => path.join(d, `leftover-${name}`)).filter((f) => fs.existsSync(f));
      try {
        for (const options of [{}, { privileges: 'low' as const }, { memory: '64MiB' }]) {
          const r = await attack(['private-tmp', name], options);
          for (const d of ['/tmp', '/var/tmp', '/dev/shm'].filter((x) => fs.existsSync(x))) {
            assert.equal(r[`${d} tmpfs`], 'true', `${d} ${JSON.stringify(options)} ${JSON.stringify(r)}`);
            assert.equal(r[`${d} sees host file`], 'false', `${d} ${JSON.stringify(options)}`);
            assert.equal(r[`${d} write`], 'ok', `${d}: it can use its own`);
          }
          assert.deepEqual(leftovers(), [], `${JSON.stringify(options)} left files on the host`);
        }
        const control = await attack(['private-tmp', name], { privileges: 'inherit' });
        assert.equal(control['/tmp sees host file'], 'true', 'control: an inherit worker shares /tmp, so the check can fail');
        assert.ok(leftovers().length > 0, 'control: and leaves its files there');
      } finally {
        for (const f of [...planted, ...leftovers()]) fs.rmSync(f, { force: true });
      }
    });

    it("its tempDir is still the launcher's directory, seen at the same path", async () => {
      const p = spawnIsolated(w, ['tempfile'], { tempDir: true });
      const c = await collect(p);
      const r = json<{ file: string; dir: string }>(c);
      assert.equal(r.dir, p.tempDir);
      assert.ok(r.file.startsWith(`${p.tempDir}/`));
    });
  });

  describe('temp directories that never stall the launcher', () => {
    it('is gone from its path when exit is reported, every time (20 workers)', async () => {
      for (let i = 0; i < 20; i++) {
        const p = spawnIsolated(w, ['tempfile'], { tempDir: true, ...(i % 2 ? { memory: '128MiB' } : {}) });
        p.stdout!.resume();
        await p.exited;
        assert.equal(fs.existsSync(p.tempDir!), false, `worker ${i} left ${p.tempDir}`);
      }
    });

    it('a 30,000-deep tree with a link out is removed in the background: the loop is not held, the link target survives', async () => {
      const outside = path.join(tmp, 'outside');
      fs.mkdirSync(outside, { recursive: true });
      fs.writeFileSync(path.join(outside, 'keep'), 'x');
      const control = await loopGap(async () => {
        await spawnIsolated(w, ['exit', '0'], { tempDir: true }).exited;
      });
      let depth = 0;
      let dir = '';
      const gap = await loopGap(async () => {
        const p = spawnIsolated(w, ['deepdir', '30000', outside], { tempDir: true, privileges: 'inherit' });
        const c = await collect(p);
        depth = json<{ depth: number }>(c).depth;
        dir = p.tempDir!;
      });
      assert.equal(depth, 30000);
      assert.equal(fs.existsSync(dir), false);
      assert.ok(gap < control + 500, `the event loop stood still ${gap} ms (control ${control} ms)`);
      assert.ok(await until(() => trashEntries().length === 0, 60_000), `not removed: ${trashEntries()}`);
      assert.equal(fs.readFileSync(path.join(outside, 'keep'), 'utf8'), 'x', 'the link was followed');
    });

    it('200,000 files are removed in the background without holding the loop', async () => {
      let files = 0;
      const gap = await loopGap(async () => {
        const c = await collect(spawnIsolated(w, ['manyfiles', '200000'], { tempDir: true }));
        files = json<{ files: number }>(c).files;
      });
      assert.equal(files, 200000);
      assert.ok(gap < 1000, `the event loop stood still ${gap} ms`);
      assert.ok(await until(() => trashEntries().length === 0, 60_000), 'not removed');
    });

    it('a dead launcher’s temp directories are removed by the next launcher', async () => {
      // A launcher that makes a worker with a temp directory and is then SIGKILLed.
      const script = `
        const { spawnIsolated } = require(${JSON.stringify(lib)});
        const p = spawnIsolated(${JSON.stringify(w)}, ['sleep', '60000'], { tempDir: true, stdio: 'ignore' });
        p.on('spawn', () => { require('fs').writeFileSync(p.tempDir + '/data', 'x'); console.log(p.tempDir); });`;
      const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      const dead = await new Promise<string>((r) => child.stdout.once('data', (d: Buffer) => r(d.toString().trim())));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('close', r));
      assert.ok(fs.existsSync(dead), 'the killed launcher left it');
      // The next launcher (a process of its own: each sweeps a place once a minute at most).
      const next = spawn(process.execPath, ['-e', `require(${JSON.stringify(lib)}).spawnIsolated(${JSON.stringify(w)}, ['exit', '0'], { tempDir: true, stdio: 'ignore' }); setTimeout(() => {}, ${slow(15_000)});`]);
      try {
        assert.ok(await until(() => !fs.existsSync(dead), slow(15_000)), `${dead} is still there`);
      } finally {
        next.kill('SIGKILL');
      }
    });
  });
});
