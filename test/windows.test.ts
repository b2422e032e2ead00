import * as assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isolationSupport, spawnIsolated } from '../lib';
import { collect, firstLine, isWindows, json, onWine, requireEnforced, root, worker } from './helpers';

// Only meaningful where the Windows backend runs (natively, or under Wine with node.exe).
(isWindows ? describe : describe.skip)('Windows backend', function () {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const oracle = isWindows ? (require('./oracle-win') as typeof import('./oracle-win')) : undefined!;
  const w = worker();
  const relaxed = { enforcement: 'best-effort' as const };
  let tmp: string;

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'spawn-isolated-'));
    if (onWine) assert.ok(oracle.isWine(), 'SPAWN_ISOLATED_WINE is set but ntdll has no wine_get_version');
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  describe('process setup', () => {
    it('round-trips hostile argv exactly (spaces, quotes, backslashes, empty, non-ASCII)', async () => {
      const hostile = ['plain', 'two words', '', 'quote"inside', '"', '\\', 'trail\\', 'trail\\\\', 'a\\"b', 'a\\\\"b', '\\\\server\\share\\', ' lead', 'tab\there', 'ünïcödé ✓ 日本', '%PATH%', '^&|<>', "it's"];
      const c = await collect(spawnIsolated(w, ['argv', ...hostile], relaxed));
      assert.equal(c.exit.code, 0, c.stderr);
      assert.deepEqual(json<string[]>(c), hostile);
    });

    it('passes env exactly, and adds GOMAXPROCS / GOMEMLIMIT from the limits', async () => {
      const c = await collect(spawnIsolated(w, ['env'], { ...relaxed, env: { ONE: '1', ÜNÏ: 'välue=with=equals', EMPTY: '' }, cpu: 1.5, memory: '1GiB' }));
      const env = json<string[]>(c);
      assert.ok(env.includes('ONE=1'));
      assert.ok(env.includes('ÜNÏ=välue=with=equals'));
      assert.ok(env.includes('EMPTY='));
      assert.ok(env.includes('GOMAXPROCS=2'));
      assert.ok(env.includes(`GOMEMLIMIT=${Math.floor(2 ** 30 * 0.9)}`));
      assert.ok(!env.some((e) => e.startsWith('PATH=') || e.startsWith('Path=')), 'nothing but the given env (and SYSTEMROOT etc.)');
    });

    it('reports exit codes, including large ones', async () => {
      for (const code of [0, 1, 42, 255, 65535]) {
        const e = await spawnIsolated(w, ['exit', String(code)], relaxed).exited;
        assert.deepEqual([e.code, e.signal, e.reason], [code, null, 'exit']);
      }
    });

    it('runs in cwd and finds the executable on PATH with PATHEXT', async () => {
      const c = await collect(spawnIsolated('worker', ['info'], { ...relaxed, cwd: tmp, env: { PATH: path.dirname(w), PATHEXT: '.COM;.EXE' } }));
      assert.equal(c.exit.code, 0, c.stderr);
      assert.equal(path.resolve(String(json(c).cwd)).toLowerCase(), path.resolve(tmp).toLowerCase());
    });

    it('puts the worker in its job before it runs (from inside, and from outside through the OS)', async () => {
      const p = spawnIsolated(w, ['tree', '30000'], relaxed);
      const line = await firstLine<{ pid: number; grandchild: number }>(p);
      assert.equal(line.pid, p.pid);
      const me = new oracle.ProcessRef(p.pid!);
      const gc = new oracle.ProcessRef(line.grandchild);
      try {
        assert.equal(me.inAnyJob(), true);
        assert.equal(gc.inAnyJob(), true, 'the grandchild inherits the job');
      } finally {
        p.kill();
        await p.exited;
        me.close();
        gc.close();
      }
      const c = await collect(spawnIsolated(w, ['info'], relaxed));
      assert.equal(json(c).inJob, true);
    });

    it('emits spawn, then exit, then close after stdio has ended', async () => {
      const p = spawnIsolated(w, ['stderr', 'bye'], relaxed);
      const order: string[] = [];
      p.on('spawn', () => order.push('spawn'));
      p.on('exit', () => order.push('exit'));
      p.stderr!.on('end', () => order.push('stderr-end'));
      p.stderr!.resume();
      await new Promise((r) => p.on('close', r));
      assert.equal(order[0], 'spawn');
      assert.ok(order.indexOf('exit') > 0 && order.includes('stderr-end'));
    });
  });

  describe('stdio', () => {
    it('delivers 16 MiB of stdout intact', async () => {
      const n = 16 * 1024 * 1024;
      const c = await collect(spawnIsolated(w, ['write', String(n)], { ...relaxed, stdio: ['ignore', 'pipe', 'pipe'] }));
      assert.equal(c.stdout.length, n);
      for (let i = 0; i < n; i += 4093) assert.equal(c.stdout[i], i % 251, `byte ${i}`);
    });

    it('echoes 8 MiB of stdin back byte for byte', async () => {
      const data = crypto.randomBytes(8 * 1024 * 1024);
      const p = spawnIsolated(w, ['echo'], relaxed);
      const done = collect(p);
      p.stdin!.end(data);
      const c = await done;
      assert.equal(c.exit.code, 0, c.stderr);
      assert.equal(crypto.createHash('sha256').update(c.stdout).digest('hex'), crypto.createHash('sha256').update(data).digest('hex'));
    });

    it("stdio 'ignore' gives the worker the null device and no streams", async () => {
      const p = spawnIsolated(w, ['write', '1000'], { ...relaxed, stdio: 'ignore' });
      assert.equal(p.stdout, null);
      assert.equal((await p.exited).code, 0);
    });

    it('a Node fd as stdout receives the output', async () => {
      const file = path.join(tmp, 'out.bin');
      const fd = fs.openSync(file, 'w');
      try {
        const e = await spawnIsolated(w, ['write', '100000'], { ...relaxed, stdio: ['ignore', fd, 'ignore'] }).exited;
        assert.equal(e.code, 0);
      } finally {
        fs.closeSync(fd);
      }
      assert.equal(fs.statSync(file).size, 100000);
    });
  });

  describe('handle whitelist', () => {
    // The parent learns the worker's handle values only after spawn (inheritedHandles), so it
    // tells the worker over stdin, as a real caller would.
    async function ask(p: ReturnType<typeof spawnIsolated>, values: (number | string)[]) {
      const done = collect(p);
      p.stdin!.end(values.join(' ') + '\n');
      const c = await done;
      assert.equal(c.exit.code, 0, c.stderr);
      return json<Record<string, { path: string; data?: string }>>(c);
    }

    it('an inheritable handle that is not listed does not reach the worker; a listed fd does', async () => {
      fs.writeFileSync(path.join(tmp, 'secret.txt'), 'secret');
      fs.writeFileSync(path.join(tmp, 'listed.txt'), 'listed');
      const leaky = oracle.openInheritable(path.join(tmp, 'secret.txt'));
      const fd = fs.openSync(path.join(tmp, 'listed.txt'), 'r');
      try {
        const p = spawnIsolated(w, ['stdinhandles'], { ...relaxed, inheritHandles: [fd] });
        assert.equal(p.inheritedHandles.length, 1);
        const seen = await ask(p, [leaky, p.inheritedHandles[0]]);
        assert.ok(!seen[String(leaky)].path.toLowerCase().endsWith('secret.txt'), `leaked into the worker: ${seen[String(leaky)].path}`);
        assert.ok(seen[String(p.inheritedHandles[0])].path.toLowerCase().endsWith('listed.txt'));
        assert.equal(seen[String(p.inheritedHandles[0])].data, 'listed');
      } finally {
        oracle.closeHandle(leaky);
        fs.closeSync(fd);
      }
    });

    it('control: the same inheritable handle does reach a child_process.spawn child (so the test above can fail)', async () => {
      fs.writeFileSync(path.join(tmp, 'secret2.txt'), 'secret');
      const leaky = oracle.openInheritable(path.join(tmp, 'secret2.txt'));
      try {
        const child = spawn(w, ['stdinhandles'], { stdio: ['pipe', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        child.stdin.end(`${leaky}\n`);
        await new Promise((r) => child.on('close', r));
        const seen = JSON.parse(out) as Record<string, { path: string }>;
        assert.ok(seen[String(leaky)].path.toLowerCase().endsWith('secret2.txt'), `libuv child did not get it: ${out}`);
      } finally {
        oracle.closeHandle(leaky);
      }
    });

    it('a listed raw HANDLE reaches the worker and refers to the right file', async () => {
      fs.writeFileSync(path.join(tmp, 'raw.txt'), 'from handle');
      const raw = oracle.openInheritable(path.join(tmp, 'raw.txt'));
      try {
        const p = spawnIsolated(w, ['stdinhandles'], { ...relaxed, inheritHandles: [{ handle: raw }, { handle: BigInt(raw) }] });
        assert.equal(p.inheritedHandles.length, 2);
        assert.notEqual(p.inheritedHandles[0], p.inheritedHandles[1]);
        const seen = await ask(p, [p.inheritedHandles[0]]);
        assert.ok(seen[String(p.inheritedHandles[0])].path.toLowerCase().endsWith('raw.txt'));
        assert.equal(seen[String(p.inheritedHandles[0])].data, 'from handle');
      } finally {
        oracle.closeHandle(raw);
      }
    });

    it('a bad fd or handle is an EBADF error event, and nothing starts', async () => {
      for (const inheritHandles of [[987654], [{ handle: 0x7ffff0 }]]) {
        const p = spawnIsolated(w, ['exit', '0'], { ...relaxed, inheritHandles });
        const err = await new Promise<Error & { code?: string }>((r) => p.on('error', r));
        assert.equal(err.code, 'EBADF', err.message);
        assert.equal(p.pid, undefined);
        await assert.rejects(p.exited);
      }
    });
  });

  describe('ending the tree', () => {
    it('kill() ends the worker and its grandchild; exit says signal and reason', async () => {
      const p = spawnIsolated(w, ['tree', '60000'], relaxed);
      const line = await firstLine<{ grandchild: number }>(p);
      const gc = new oracle.ProcessRef(line.grandchild);
      try {
        assert.equal(gc.alive(), true);
        assert.equal(p.kill(), true);
        const e = await p.exited;
        assert.deepEqual([e.code, e.signal, e.reason], [null, 'SIGTERM', 'killed']);
        assert.equal(p.killed, true);
        assert.equal(gc.waitExit(10_000), true, 'grandchild still running after kill');
      } finally {
        gc.close();
      }
      assert.equal(p.kill(), false, 'nothing left to kill');
    });

    it('the worker exiting takes the rest of its tree with it', async () => {
      const p = spawnIsolated(w, ['tree', '60000'], relaxed);
      const line = await firstLine<{ pid: number; grandchild: number }>(p);
      const gc = new oracle.ProcessRef(line.grandchild);
      const me = new oracle.ProcessRef(line.pid);
      try {
        // End only the worker itself, from outside, as a crash would.
        process.kill(line.pid, 'SIGKILL');
        await p.exited;
        assert.equal(gc.waitExit(10_000), true);
      } finally {
        gc.close();
        me.close();
      }
    });

    it('timeout ends the tree with reason timeout', async () => {
      const t0 = Date.now();
      const e = await spawnIsolated(w, ['sleep', '60000'], { ...relaxed, timeout: '500ms' }).exited;
      assert.deepEqual([e.code, e.signal, e.reason], [null, 'SIGTERM', 'timeout']);
      assert.ok(Date.now() - t0 < 20_000);
    });

    it('AbortSignal ends the tree, emits AbortError, reason aborted', async () => {
      const ac = new AbortController();
      const p = spawnIsolated(w, ['sleep', '60000'], { ...relaxed, signal: ac.signal, killSignal: 'SIGKILL' });
      const err = new Promise<Error & { code?: string }>((r) => p.on('error', r));
      p.on('spawn', () => ac.abort());
      assert.equal((await err).code, 'ABORT_ERR');
      const e = await p.exited;
      assert.deepEqual([e.code, e.signal, e.reason], [null, 'SIGKILL', 'aborted']);
    });

    it('the tree dies when the parent process dies abruptly (kill-on-close)', async function () {
      this.timeout(60_000);
      const script = path.join(tmp, 'parent.js');
      fs.writeFileSync(
        script,
        `const { spawnIsolated } = require(${JSON.stringify(path.join(root, 'dist', 'lib', 'index.js'))});
         const p = spawnIsolated(${JSON.stringify(w)}, ['tree', '120000'], { enforcement: 'best-effort', stdio: ['ignore', 'pipe', 'ignore'] });
         p.stdout.once('data', (d) => { process.stdout.write(d); });
         process.stdin.once('data', () => process.kill(process.pid, 'SIGKILL'));`,
      );
      const parent = spawn(process.execPath, [script], { stdio: ['pipe', 'pipe', 'inherit'] });
      const line = await new Promise<{ pid: number; grandchild: number }>((resolve, reject) => {
        let buf = '';
        parent.stdout.on('data', (d: Buffer) => {
          buf += d.toString();
          if (buf.includes('\n')) resolve(JSON.parse(buf.slice(0, buf.indexOf('\n'))));
        });
        parent.on('exit', () => reject(new Error('parent exited early')));
      });
      const wk = new oracle.ProcessRef(line.pid);
      const gc = new oracle.ProcessRef(line.grandchild);
      try {
        assert.equal(wk.alive(), true);
        parent.stdin.write('die\n');
        assert.equal(wk.waitExit(20_000), true, 'worker survived its parent');
        assert.equal(gc.waitExit(20_000), true, 'grandchild survived the parent');
      } finally {
        wk.close();
        gc.close();
      }
    });

    it('20 concurrent spawns all report their own exit codes', async () => {
      const ps = Array.from({ length: 20 }, (_, i) => spawnIsolated(w, ['exit', String(i + 1)], relaxed).exited);
      const codes = (await Promise.all(ps)).map((e) => e.code);
      assert.deepEqual(codes, Array.from({ length: 20 }, (_, i) => i + 1));
    });

    it('stats() reports processes and CPU time', async () => {
      const p = spawnIsolated(w, ['spin', '300', '1'], relaxed);
      const e = await p.exited;
      assert.equal(e.code, 0);
      assert.ok(e.stats.processes.total >= 1);
      assert.ok(e.stats.cpuUserMs + e.stats.cpuKernelMs > 0);
      assert.deepEqual(p.stats(), e.stats);
    });
  });

  describe('enforcement', () => {
    it('strict mode refuses a limit this host does not enforce, naming it', async function () {
      const s = isolationSupport().limits['memory.total'];
      if (s.enforced) this.skip(); // real Windows enforces it: nothing to refuse
      const p = spawnIsolated(w, ['exit', '0'], { memory: '256MiB' });
      const err = await new Promise<Error & { code?: string; limit?: string }>((r) => p.on('error', r));
      assert.equal(err.code, 'ERR_LIMIT_NOT_ENFORCED');
      assert.equal(err.limit, 'memory.total');
      assert.match(err.message, /options\.memory\.total/);
      await assert.rejects(p.exited, { code: 'ERR_LIMIT_NOT_ENFORCED' });
      assert.equal(p.pid, undefined, 'nothing was started');
    });

    it('best-effort runs anyway and reports the gap per limit', async () => {
      const p = spawnIsolated(w, ['exit', '0'], { ...relaxed, memory: '256MiB', processes: 4, cpu: { cores: 1, time: '1m' }, handles: 5000 });
      await p.exited;
      for (const limit of ['memory.total', 'processes', 'cpu.cores', 'cpu.time', 'handles'] as const) {
        const e = p.enforcement[limit];
        assert.ok(e, limit);
        assert.equal(e!.enforced, isolationSupport().limits[limit].enforced, limit);
        if (!e!.enforced) assert.equal(e!.mechanism, 'none');
      }
    });

    it('privileges: restricted removes every privilege but SeChangeNotify; low adds low integrity', async function () {
      requireEnforced(this, 'privileges');
      const token = async (privileges: 'inherit' | 'restricted' | 'low') =>
        json<{ privileges: number; integrity: number }>(await collect(spawnIsolated(w, ['token'], { privileges })));
      const inherit = await token('inherit');
      const restricted = await token('restricted');
      const low = await token('low');
      assert.ok(restricted.privileges <= 1, `restricted kept ${restricted.privileges} of ${inherit.privileges} privileges`);
      assert.ok(restricted.integrity <= 0x2000, 'medium integrity or lower');
      assert.equal(low.integrity, 0x1000, 'low integrity');
    });

    it('strict mode refuses explicit privileges the host does not apply, before the worker runs', async function () {
      if (isolationSupport().limits.privileges.enforced) this.skip(); // nothing to refuse on real Windows
      const p = spawnIsolated(w, ['token'], { privileges: 'low' });
      const err = await new Promise<Error & { code?: string; limit?: string }>((r) => p.on('error', r));
      assert.equal(err.code, 'ERR_LIMIT_NOT_ENFORCED');
      assert.equal(err.limit, 'privileges');
      const d = await collect(spawnIsolated(w, ['token'], { enforcement: 'best-effort', privileges: 'low' }));
      assert.equal(d.exit.code, 0);
    });

    it('memory: allocating past the limit ends the tree with reason memory', async function () {
      requireEnforced(this, 'memory.total');
      const c = await collect(spawnIsolated(w, ['alloc', '512'], { memory: '64MiB', go: false }));
      assert.equal(c.exit.reason, 'memory');
      assert.ok(c.limits.some((l) => (l as { limit: string }).limit === 'memory'));
    });

    it('cpu.time: spinning past the budget ends with reason cpu-time', async function () {
      requireEnforced(this, 'cpu.time');
      const t0 = Date.now();
      const e = await spawnIsolated(w, ['spin', '30000', '1'], { cpu: { time: '1s' } }).exited;
      assert.equal(e.reason, 'cpu-time');
      assert.ok(Date.now() - t0 < 10_000);
    });

    it('processes: 1 refuses a child while the worker finishes normally', async function () {
      requireEnforced(this, 'processes');
      const c = await collect(spawnIsolated(w, ['child'], { processes: 1 }));
      assert.equal(c.exit.code, 0);
      assert.equal(json(c).started, false);
      assert.ok(c.limits.some((l) => (l as { limit: string }).limit === 'processes'));
    });

    it('handles: opening past the limit ends the tree with reason handles', async function () {
      requireEnforced(this, 'handles');
      const e = await spawnIsolated(w, ['openfiles', '5000', '10000'], { handles: 300 }).exited;
      assert.equal(e.reason, 'handles');
    });

    it('cpu cores: two spinning threads under 0.5 cores use about half a core', async function () {
      requireEnforced(this, 'cpu.cores');
      this.timeout(60_000);
      const e = await spawnIsolated(w, ['spin', '4000', '2'], { cpu: 0.5 }).exited;
      const used = e.stats.cpuUserMs + e.stats.cpuKernelMs;
      assert.ok(used < 4000 * 0.5 * 1.35, `used ${used} ms of CPU in 4 s under 0.5 cores`);
    });
  });

  it('loads in a host executable that is not named node.exe', async function () {
    this.timeout(120_000);
    const host = path.join(tmp, 'renamed-host.exe');
    fs.copyFileSync(process.execPath, host);
    const script = path.join(tmp, 'renamed.js');
    fs.writeFileSync(
      script,
      `const { spawnIsolated } = require(${JSON.stringify(path.join(root, 'dist', 'lib', 'index.js'))});
       const p = spawnIsolated(${JSON.stringify(w)}, ['argv', 'from renamed host'], { enforcement: 'best-effort' });
       let out = ''; p.stdout.on('data', (d) => out += d);
       p.on('close', (code) => { process.stdout.write(JSON.stringify({ code, out: JSON.parse(out) })); });`,
    );
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(host, [script], (err, out, errOut) => (err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out))),
    );
    assert.deepEqual(JSON.parse(stdout), { code: 0, out: ['from renamed host'] });
  });
});
