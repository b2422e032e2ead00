import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { channels, execIsolated, IsolatedProcess, isolationSupport, spawnIsolated } from '../lib';
import { collect, firstLine, isWindows, json, onWine, requireEnforced, root, worker } from './helpers';
import { grandchildPid, openProcess } from './oracle';

// Behaviour that is the same on every backend: run wherever spawnIsolated can start workers.
(isolationSupport().spawn ? describe : describe.skip)('spawnIsolated (every backend)', function () {
  const w = worker();
  const relaxed = { enforcement: 'best-effort' as const };
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'spawn-isolated-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  describe('process setup', () => {
    it('round-trips hostile argv exactly (spaces, quotes, backslashes, empty, non-ASCII)', async () => {
      const hostile = ['plain', 'two words', '', 'quote"inside', '"', '\\', 'trail\\', 'trail\\\\', 'a\\"b', 'a\\\\"b', '\\\\server\\share\\', ' lead', 'tab\there', 'ünïcödé ✓ 日本', '%PATH%', '^&|<>', "it's"];
      const c = await collect(spawnIsolated(w, ['argv', ...hostile], relaxed));
      assert.equal(c.exit.code, 0, c.stderr);
      assert.deepEqual(json<string[]>(c), hostile);
    });

    it('reports exit codes, including large ones', async () => {
      for (const code of isWindows ? [0, 1, 42, 255, 65535] : [0, 1, 42, 255]) {
        const e = await spawnIsolated(w, ['exit', String(code)], relaxed).exited;
        assert.deepEqual([e.code, e.signal, e.reason], [code, null, 'exit']);
      }
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

  describe('errors never crash the host', () => {
    // Each case runs in a Node process of its own, so that a crash shows as its exit status.
    function node(body: string): Promise<{ code: number | null; out: string; err: string }> {
      const script = path.join(tmp, `host-${crypto.randomBytes(4).toString('hex')}.js`);
      fs.writeFileSync(
        script,
        `const { spawnIsolated } = require(${JSON.stringify(path.join(root, 'dist', 'lib', 'index.js'))});
         const w = ${JSON.stringify(w)};
         (async () => { ${body} })();`,
      );
      return new Promise((resolve, reject) => {
        const c = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        c.stdout.on('data', (d: Buffer) => (out += d.toString()));
        c.stderr.on('data', (d: Buffer) => (err += d.toString()));
        c.on('error', reject);
        c.on('close', (code) => resolve({ code, out, err }));
      });
    }

    it("a start failure whose 'exited' is awaited is not also an unhandled 'error' (control: neither read nor listened to, it crashes)", async function () {
      this.timeout(60_000);
      const caught = await node(`
        try { await spawnIsolated('./no-such-worker', ['x'], { enforcement: 'best-effort' }).exited; } catch (e) { console.log('caught', e.code); }
        const ac = new AbortController();
        const p = spawnIsolated(w, ['sleep', '30000'], { enforcement: 'best-effort', signal: ac.signal });
        ac.abort();
        console.log('aborted', (await p.exited).reason);`);
      assert.equal(caught.code, 0, caught.err);
      assert.deepEqual(caught.out.trim().split('\n'), ['caught ENOENT', 'aborted aborted']);
      const control = await node(`spawnIsolated('./no-such-worker', ['x'], { enforcement: 'best-effort' });`);
      assert.notEqual(control.code, 0, 'an unread, unlistened start failure is an unhandled error event, as with child_process');
      assert.match(control.err, /ENOENT/);
    });

    it("a throwing 'exit' listener surfaces once, uncaught, and 'exited' and 'close' still happen", async function () {
      this.timeout(60_000);
      const r = await node(`
        let uncaught = 0;
        process.on('uncaughtException', (e) => { uncaught++; console.log('uncaught', e.message); });
        const p = spawnIsolated(w, ['exit', '3'], { enforcement: 'best-effort' });
        p.on('exit', () => { throw new Error('boom'); });
        const closed = new Promise((r) => p.on('close', (code) => r(code)));
        const e = await p.exited;
        console.log('exited', e.code, 'closed', await closed, 'uncaught', uncaught);`);
      assert.equal(r.code, 0, r.err);
      assert.deepEqual(r.out.trim().split('\n'), ['uncaught boom', 'exited 3 closed 3 uncaught 1']);
    });

    it('options.signal must be a whole AbortSignal (with removeEventListener), synchronously', () => {
      const half = { aborted: false, addEventListener: () => undefined };
      assert.throws(() => spawnIsolated(w, ['exit', '0'], { signal: half as unknown as AbortSignal }), { code: 'ERR_INVALID_ARG_TYPE' });
    });

    it('timeout: 0 means none, and a timeout beyond 2^31-1 ms does not fire at once', async () => {
      const none = await collect(spawnIsolated(w, ['sleep', '200'], { ...relaxed, timeout: 0 }));
      assert.deepEqual([none.exit.code, none.exit.reason], [0, 'exit']);
      const long = await collect(spawnIsolated(w, ['sleep', '300'], { ...relaxed, timeout: '600h' }));
      assert.deepEqual([long.exit.code, long.exit.reason], [0, 'exit']);
    });
  });

  describe('as a ChildProcess user expects', () => {
    it('unref(): a running worker no longer keeps its parent alive (killOnClose still ends it)', async function () {
      this.timeout(60_000);
      const script = path.join(tmp, `unref-${crypto.randomBytes(4).toString('hex')}.js`);
      fs.writeFileSync(
        script,
        `const { spawnIsolated } = require(${JSON.stringify(path.join(root, 'dist', 'lib', 'index.js'))});
         const p = spawnIsolated(${JSON.stringify(w)}, ['sleep', '600000'], { enforcement: 'best-effort', stdio: 'ignore' });
         p.on('spawn', () => { console.log(p.pid); p.unref(); });`,
      );
      const c = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      c.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const code = await new Promise((r) => c.on('exit', r));
      assert.equal(code, 0, 'the parent exited by itself with its worker still running');
      let ref: ReturnType<typeof openProcess> | undefined;
      try {
        ref = openProcess(Number(out.trim()));
      } catch {
        ref = undefined; // already gone: killOnClose ended it with its parent
      }
      if (ref) {
        try {
          assert.equal(ref.waitExit(20_000), true, 'killOnClose ended the worker with its parent');
        } finally {
          ref.close();
        }
      }
    });

    it('await using: the worker is ended and awaited when the scope ends', async () => {
      let seen: IsolatedProcess | undefined;
      {
        await using p = spawnIsolated(w, ['sleep', '600000'], relaxed);
        seen = p;
        await new Promise((r) => p.once('spawn', () => r(undefined)));
      }
      assert.notEqual(seen.exitCode ?? seen.signalCode, null, 'it had exited when the scope ended');
      assert.equal((await seen.exited).reason, 'killed');
    });

    it('execIsolated: output, code and reason in one promise; input; maxBuffer kills; a start failure rejects', async () => {
      const r = await execIsolated(w, ['echo'], { ...relaxed, input: 'hello\n' });
      assert.deepEqual([r.stdout, r.stderr, r.code, r.reason], ['hello\n', '', 0, 'exit']);
      const e = await execIsolated(w, ['stderr', 'oops'], relaxed);
      assert.deepEqual([e.stderr, e.code], ['oops', 0]);
      const b = await execIsolated(w, ['write', '1000'], { ...relaxed, encoding: 'buffer' });
      assert.ok(Buffer.isBuffer(b.stdout) && b.stdout.length === 1000);
      await assert.rejects(execIsolated(w, ['write', String(4 * 2 ** 20)], { ...relaxed, maxBuffer: 2 ** 20 }), { code: 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER' });
      await assert.rejects(execIsolated('./no-such-worker', [], relaxed), { code: 'ENOENT' });
      const x = await execIsolated(w, ['exit', '7'], relaxed);
      assert.deepEqual([x.code, x.reason], [7, 'exit']);
    });

    it('diagnostics_channel spawn / exit messages, and NODE_DEBUG=spawn-isolated logging', async function () {
      this.timeout(60_000);
      const seen: string[] = [];
      const onSpawn = (m: unknown) => seen.push(`spawn ${(m as { pid: number }).pid}`);
      const onExit = (m: unknown) => seen.push(`exit ${(m as { exit: { code: number } }).exit.code}`);
      channels.spawn.subscribe(onSpawn);
      channels.exit.subscribe(onExit);
      try {
        const p = spawnIsolated(w, ['exit', '4'], relaxed);
        await p.exited;
        assert.deepEqual(seen, [`spawn ${p.pid}`, 'exit 4']);
      } finally {
        channels.spawn.unsubscribe(onSpawn);
        channels.exit.unsubscribe(onExit);
      }
      const script = path.join(tmp, `debug-${crypto.randomBytes(4).toString('hex')}.js`);
      fs.writeFileSync(script, `require(${JSON.stringify(path.join(root, 'dist', 'lib', 'index.js'))}).spawnIsolated(${JSON.stringify(w)}, ['exit', '0'], { enforcement: 'best-effort' });`);
      const c = spawn(process.execPath, [script], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_DEBUG: 'spawn-isolated' } });
      let err = '';
      c.stderr.on('data', (d: Buffer) => (err += d.toString()));
      await new Promise((r) => c.on('close', r));
      assert.match(err, /SPAWN-ISOLATED \d+: spawn /);
      assert.match(err, /SPAWN-ISOLATED \d+: exit .* exit code 0/);
    });

    it('events are typed: a misspelt event or a wrong listener does not compile', () => {
      const p = spawnIsolated(w, ['exit', '0'], relaxed);
      // @ts-expect-error 'exti' is not an event of IsolatedProcess
      p.on('exti', () => undefined);
      // @ts-expect-error 'exit' listeners take (code: number | null, signal)
      p.on('exit', (code: string) => code);
      p.on('exit', (code: number | null, signal: NodeJS.Signals | null) => [code, signal]);
      p.on('limit', (l) => l.limit);
      return p.exited;
    });
  });

  describe('ending the tree', () => {
    it('kill() ends the worker and its grandchild; exit says signal and reason', async () => {
      const p = spawnIsolated(w, ['tree', '60000'], relaxed);
      const line = await firstLine<{ grandchild: number }>(p);
      const gc = openProcess(grandchildPid(p.pid!, line.grandchild));
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

    it('kill(0) tells whether the worker is alive; an unknown signal is ERR_UNKNOWN_SIGNAL', async () => {
      const p = spawnIsolated(w, ['sleep', '60000'], relaxed);
      await new Promise((r) => p.on('spawn', () => r(undefined)));
      assert.equal(p.kill(0), true);
      assert.throws(() => p.kill('SIGNOPE' as never), { code: 'ERR_UNKNOWN_SIGNAL' });
      assert.equal(p.kill(0), true, 'still alive after a refused kill');
      p.kill('SIGKILL');
      const e = await p.exited;
      assert.deepEqual([e.signal, e.reason], ['SIGKILL', 'killed']);
      assert.equal(p.kill(0), false);
    });

    it('the worker exiting takes the rest of its tree with it', async () => {
      const p = spawnIsolated(w, ['tree', '60000'], relaxed);
      const line = await firstLine<{ grandchild: number }>(p);
      const gc = openProcess(grandchildPid(p.pid!, line.grandchild));
      try {
        process.kill(p.pid!, 'SIGKILL'); // only the worker, from outside, as a crash would
        const e = await p.exited;
        assert.equal(e.reason, isWindows ? 'exit' : 'signal');
        assert.equal(gc.waitExit(10_000), true);
      } finally {
        gc.close();
      }
    });

    it('the tree dies when the parent process dies abruptly (kill-on-close)', async function () {
      requireEnforced(this, 'killOnClose');
      this.timeout(60_000);
      const script = path.join(tmp, 'parent.js');
      fs.writeFileSync(
        script,
        `const { spawnIsolated } = require(${JSON.stringify(path.join(root, 'dist', 'lib', 'index.js'))});
         const p = spawnIsolated(${JSON.stringify(w)}, ['tree', '120000'], { enforcement: 'best-effort', stdio: ['ignore', 'pipe', 'ignore'] });
         p.stdout.once('data', (d) => { const l = JSON.parse(String(d)); process.stdout.write(JSON.stringify({ pid: p.pid, grandchild: l.grandchild }) + '\\n'); });
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
      const wk = openProcess(line.pid);
      const gc = openProcess(grandchildPid(line.pid, line.grandchild));
      try {
        assert.equal(wk.alive(), true);
        assert.equal(gc.alive(), true);
        parent.stdin.write('die\n');
        assert.equal(wk.waitExit(20_000), true, 'worker survived its parent');
        assert.equal(gc.waitExit(20_000), true, 'grandchild survived the parent');
      } finally {
        wk.close();
        gc.close();
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

    it('50 concurrent spawns all report their own exit codes', async () => {
      const ps = Array.from({ length: 50 }, (_, i) => spawnIsolated(w, ['exit', String(i + 1)], relaxed).exited);
      const codes = (await Promise.all(ps)).map((e) => e.code);
      assert.deepEqual(codes, Array.from({ length: 50 }, (_, i) => i + 1));
    });

    it('works from worker_threads, each with its own events, alongside the main thread', async () => {
      const { Worker } = await import('node:worker_threads');
      const code = `
        const { parentPort, workerData } = require('node:worker_threads');
        const { spawnIsolated } = require(workerData.lib);
        const p = spawnIsolated(workerData.w, ['exit', String(workerData.n)], { enforcement: 'best-effort' });
        p.exited.then((e) => parentPort.postMessage(e.code), (e) => parentPort.postMessage(e.code));`;
      const lib = path.join(root, 'dist', 'lib', 'index.js');
      const inThreads = [11, 12, 13].map(
        (n) =>
          new Promise<number>((resolve, reject) => {
            const t = new Worker(code, { eval: true, workerData: { lib, w, n } });
            t.once('message', resolve);
            t.once('error', reject);
          }),
      );
      const onMain = spawnIsolated(w, ['exit', '10'], relaxed).exited;
      assert.deepEqual([(await onMain).code, ...(await Promise.all(inThreads))], [10, 11, 12, 13]);
    });

    it('a worker_thread terminated while its workers\' events are on their way never aborts the process', async function () {
      // The event bridge is the same code on Windows; 100 threads are slow under Wine.
      if (isWindows) this.skip();
      this.timeout(120_000);
      // In a process of its own: the failure this guards against is a fatal error of Node-API
      // ("Error::Error napi_define_properties"), which ends the process at once.
      const script = `
        const { Worker } = require('node:worker_threads');
        const code = \`
          const { parentPort, workerData } = require('node:worker_threads');
          const { spawnIsolated } = require(workerData.lib);
          for (let i = 0; i < 3; i++) {
            const p = spawnIsolated(workerData.w, ['sleep', '60000'], { enforcement: 'best-effort' });
            if (i === 0) p.on('spawn', () => parentPort.postMessage(p.pid));
          }
          spawnIsolated(workerData.w, ['exit', '0'], { enforcement: 'best-effort' });\`;
        (async () => {
          for (let i = 0; i < 100; i++) {
            const t = new Worker(code, { eval: true, workerData: { lib: ${JSON.stringify(path.join(root, 'dist', 'lib', 'index.js'))}, w: ${JSON.stringify(w)} } });
            await new Promise((res, rej) => { t.once('message', res); t.once('error', rej); });
            await t.terminate();
          }
          console.log('ok');
        })();`;
      const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 110_000 });
      assert.equal(r.status, 0, `${r.signal ?? ''} ${r.stderr.slice(0, 500)}`);
      assert.equal(r.stdout.trim(), 'ok');
    });

    it('a worker thread that ends takes its live workers with it', async () => {
      const { Worker } = await import('node:worker_threads');
      const code = `
        const { parentPort, workerData } = require('node:worker_threads');
        const { spawnIsolated } = require(workerData.lib);
        const p = spawnIsolated(workerData.w, ['sleep', '60000'], { enforcement: 'best-effort' });
        p.on('spawn', () => parentPort.postMessage(p.pid));`;
      const t = new Worker(code, { eval: true, workerData: { lib: path.join(root, 'dist', 'lib', 'index.js'), w } });
      const pid = await new Promise<number>((resolve, reject) => {
        t.once('message', resolve);
        t.once('error', reject);
      });
      const ref = openProcess(pid);
      try {
        assert.equal(ref.alive(), true);
        await t.terminate();
        assert.equal(ref.waitExit(10_000), true, 'the worker outlived its thread');
      } finally {
        ref.close();
      }
    });

    it('only worker_threads load the addon, and the last one ends while its limited workers run: the process survives', async function () {
      this.timeout(30_000);
      // In a Node process of its own: the failure this guards against is a crash of the whole
      // process (the addon unloaded under its background threads).
      const lib = path.join(root, 'dist', 'lib', 'index.js');
      const script = `
        const { Worker } = require('node:worker_threads');
        const code = \`
          const { parentPort, workerData } = require('node:worker_threads');
          const { spawnIsolated } = require(workerData.lib);
          const ps = [0, 1, 2].map(() => spawnIsolated(workerData.w, ['sleep', '60000'], { memory: '256MiB', cpu: 0.5, enforcement: 'best-effort', stdio: 'ignore' }));
          let n = 0;
          for (const p of ps) p.on('spawn', () => { if (++n === ps.length) parentPort.postMessage('spawned'); });\`;
        (async () => {
          for (let round = 0; round < 3; round++) {
            const t = new Worker(code, { eval: true, workerData: { lib: ${JSON.stringify(lib)}, w: ${JSON.stringify(w)} } });
            await new Promise((resolve, reject) => { t.once('message', resolve); t.once('error', reject); });
            await t.terminate();
          }
          await new Promise((r) => setTimeout(r, 1500)); // the background threads keep running
          console.log('alive');
        })().catch((e) => { console.error(e); process.exit(3); });`;
      const { spawnSync } = await import('node:child_process');
      const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 25_000 });
      assert.deepEqual([r.status, r.signal, r.stdout.trim()], [0, null, 'alive'], r.stderr);
    });

    it('a failed spawn reports errno as child_process does (libuv\'s number for the code on this platform)', async () => {
      const missing = path.join(root, 'no-such-dir', 'no-such-worker');
      const { spawn } = await import('node:child_process');
      const viaCp = await new Promise<NodeJS.ErrnoException>((resolve) => spawn(missing).on('error', resolve));
      const ours = await spawnIsolated(missing, [], relaxed).exited.catch((e: NodeJS.ErrnoException) => e);
      assert.deepEqual([(ours as NodeJS.ErrnoException).code, (ours as NodeJS.ErrnoException).errno], [viaCp.code, viaCp.errno]);
      assert.ok((viaCp.errno ?? 0) < 0, 'control: Node reports a negative errno');
    });

    it('worker_threads that exit while their workers’ exits are being delivered do not abort the process', async function () {
      this.timeout(60_000);
      const lib = path.join(root, 'dist', 'lib', 'index.js');
      const script = `
        const { Worker } = require('node:worker_threads');
        const code = \`
          const { workerData } = require('node:worker_threads');
          const { spawnIsolated } = require(workerData.lib);
          for (let i = 0; i < 5; i++) spawnIsolated(workerData.w, ['exit', '0'], { killOnClose: false, stdio: 'ignore', enforcement: 'best-effort' });
          const t0 = Date.now(); while (Date.now() - t0 < workerData.spin) {}
          process.exit(0);\`;
        (async () => {
          for (let i = 0; i < 40; i++) {
            const t = new Worker(code, { eval: true, workerData: { lib: ${JSON.stringify(lib)}, w: ${JSON.stringify(w)}, spin: i % 6 } });
            await new Promise((r) => t.once('exit', r));
          }
          await new Promise((r) => setTimeout(r, 500));
          console.log('alive');
        })();`;
      const { spawnSync } = await import('node:child_process');
      const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 50_000 });
      assert.deepEqual([r.status, r.signal, r.stdout.trim()], [0, null, 'alive'], r.stderr.slice(0, 500));
    });

    it('a killOnClose: false worker whose thread ends before it was resumed still runs', async () => {
      const { Worker } = await import('node:worker_threads');
      const marker = path.join(os.tmpdir(), `spawn-isolated-released-${process.pid}-${Date.now()}`);
      const code = `
        const { workerData } = require('node:worker_threads');
        const { spawnIsolated } = require(workerData.lib);
        // 'inherit': a confined worker's /tmp is its own, where the marker would not show.
        spawnIsolated(workerData.w, ['touch', workerData.marker], { killOnClose: false, stdio: 'ignore', enforcement: 'best-effort', privileges: 'inherit' });
        process.exit(0); // the environment goes before the worker is resumed (next tick)`;
      const t = new Worker(code, { eval: true, workerData: { lib: path.join(root, 'dist', 'lib', 'index.js'), w, marker } });
      await new Promise((r) => t.once('exit', r));
      try {
        const deadline = Date.now() + 15_000;
        while (!fs.existsSync(marker) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        assert.ok(fs.existsSync(marker), 'the released worker never ran (left suspended)');
      } finally {
        fs.rmSync(marker, { force: true });
      }
    });

    it('stats() reports processes and the CPU time the worker used', async () => {
      // 500 ms of CPU (however long a busy machine takes to give it), at most 30 s of wall time.
      // (Under Wine its own CPU clock may not advance either: at most 2 s there.)
      const p = spawnIsolated(w, ['burn', '500', onWine ? '2000' : '30000'], relaxed);
      p.stdout?.resume();
      const e = await p.exited;
      assert.equal(e.code, 0);
      assert.ok(e.stats.processes.total >= 1);
      const cpu = e.stats.cpuUserMs + e.stats.cpuKernelMs;
      if (onWine) {
        // Wine has no CPU accounting for another process: the figure is 0, never a guess.
        assert.equal(cpu, 0);
      } else {
        assert.ok(cpu >= 450 && cpu < 2000, `a worker that used 500 ms of CPU reported ${cpu} ms`);
      }
      assert.deepEqual(p.stats(), e.stats);
    });
  });

});
