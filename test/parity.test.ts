// child_process parity and the host's safety: what a service meets in its first week must not
// take the Node process down, weaken a limit silently, or differ from child_process.spawn
// without the README saying so. Crashes are tried in a child Node process, which must live.
import * as assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createIsolationGroup, execIsolated, ExecIsolatedError, IsolatedProcess, isolationSupport, spawnIsolated } from '../lib';
import { normalizeOptions } from '../lib/options';
import { collect, holdFifo, inLauncher, isLinux, isWindows, json, keepBusy, keepBusyInLauncher, root, scratchDir, worker, workerOf } from './helpers';

const lib = path.join(root, 'dist', 'lib', 'index.js');
const w = worker();
const relaxed = { enforcement: 'best-effort' as const };

/**
 * Runs `body` (an async function body; `lib` is the package, `w` the test worker) in a child
 * Node process. Resolves with its exit code, what it printed, and whether it lived to the end
 * (printed the closing marker): a crash of the host is a failed test, not a failed run.
 */
function inChildNode(body: string, opts: { shellPrefix?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string; lived: boolean }> {
  const script = `const lib = require(${JSON.stringify(lib)}); const w = ${JSON.stringify(w)};
    (async () => { ${body} })().then(() => console.log('LIVED'), (e) => { console.log('THREW', e && e.code, e && e.message); });`;
  const [cmd, args] = opts.shellPrefix ? ['sh', ['-c', `${opts.shellPrefix} exec "$0" -e "$1"`, process.execPath, script]] : [process.execPath, ['-e', script]];
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 110_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? null) : 0;
      resolve({ code: typeof code === 'number' ? code : null, stdout, stderr, lived: /^LIVED$/m.test(stdout) });
    });
  });
}

/** What a call throws synchronously: its code, or 'no throw'. */
function thrown(fn: () => unknown): string {
  try {
    const r = fn() as { on?: (e: string, f: (...a: unknown[]) => void) => void } | undefined;
    r?.on?.('error', () => undefined);
    return 'no throw';
  } catch (e) {
    return String((e as { code?: string }).code);
  }
}

(isolationSupport().spawn ? describe : describe.skip)('child_process parity and the host’s safety', function () {
  this.timeout(120_000);

  describe('execIsolated never takes the host down', () => {
    it('1. input the worker never reads (it exits, or a limit kills it) resolves, with no uncaught EPIPE', async function () {
      const limit = isolationSupport().limits['memory.total'].enforced;
      const r = await inChildNode(`
        const big = Buffer.alloc(28 * 1024 * 1024, 0x61);
        const a = await lib.execIsolated(w, ['exit', '0'], { input: big, enforcement: 'best-effort' });
        console.log('exit', a.reason, a.code);
        const b = await lib.execIsolated(w, ['exit', '0'], { input: 'x', enforcement: 'best-effort' });
        console.log('exit', b.reason, b.code);
        ${limit ? "const c = await lib.execIsolated(w, ['alloc', '1024'], { input: big, memory: '64MiB' }); console.log('limit', c.reason);" : ''}
      `);
      assert.ok(r.lived, `the launcher died (code ${r.code}): ${r.stderr}`);
      assert.match(r.stdout, /^exit exit 0$/m);
      assert.equal(r.stdout.match(/^exit exit 0$/gm)?.length, 2, r.stdout);
      if (limit) assert.match(r.stdout, /^limit memory$/m);
    });

    it('2. input with a start failure rejects (ENOENT), with no ERR_STREAM_WRITE_AFTER_END', async () => {
      const r = await inChildNode(`
        try { await lib.execIsolated('definitely-not-a-program-xyz', [], { input: 'x'.repeat(100000) }); }
        catch (e) { console.log('rejected', e.code); }
        const unenforced = Object.entries(lib.isolationSupport().limits).find(([, l]) => !l.enforced);
        if (unenforced) console.log('unenforced', unenforced[0]);
      `);
      assert.ok(r.lived, `the launcher died (code ${r.code}): ${r.stderr}`);
      assert.match(r.stdout, /^rejected ENOENT$/m);
      // A strict refusal of a limit this host cannot enforce (Wine: every limit) rejects too.
      const support = isolationSupport();
      if (!support.limits['memory.total'].enforced) {
        await assert.rejects(execIsolated(w, ['exit', '0'], { input: 'x', memory: '64MiB' }), { code: 'ERR_LIMIT_NOT_ENFORCED' });
      }
    });

    it('3. a bad encoding or input throws synchronously, before anything starts', async () => {
      assert.throws(() => execIsolated(w, ['write', '10'], { encoding: 'bogus' as never }), { code: 'ERR_INVALID_ARG_VALUE' });
      assert.throws(() => execIsolated(w, ['sleep', '10000'], { input: 123 as never }), { code: 'ERR_INVALID_ARG_TYPE' });
      assert.throws(() => execIsolated(w, [], { maxBuffer: -1 }), { code: 'ERR_OUT_OF_RANGE' });
      const r = await inChildNode(`
        try { lib.execIsolated(w, ['write', '10'], { encoding: 'bogus' }); } catch (e) { console.log('threw', e.code); }
        await new Promise((r) => setTimeout(r, 500));
      `);
      assert.ok(r.lived, `the launcher died (code ${r.code}): ${r.stderr}`);
      assert.match(r.stdout, /^threw ERR_INVALID_ARG_VALUE$/m);
      // Every text encoding Buffer knows, and 'buffer', pass; so does null (Buffers, as execFile).
      assert.equal((await execIsolated(w, ['stderr', 'é'], { encoding: 'latin1' })).stderr, Buffer.from('é').toString('latin1'));
      assert.ok(Buffer.isBuffer((await execIsolated(w, ['stderr', 'x'], { encoding: null })).stderr));
    });

    it('4. a group member asking more cores than its group runs, capped at the group’s (no raw EINVAL)', async function () {
      if (!isolationSupport().limits['cpu.cores'].enforced) this.skip();
      const r = await inChildNode(`
        const g = lib.createIsolationGroup({ cpu: 0.5 });
        const p = g.spawn(w, ['info'], { cpu: 1, stdio: ['ignore', 'pipe', 'ignore'] });
        let out = ''; p.stdout.on('data', (d) => (out += d));
        p.on('error', (e) => console.log('error', e.code, e.message));
        // 'close': its output is all read ('exit' may come first, as under child_process).
        const closed = new Promise((r) => p.on('close', r));
        const e = await p.exited.catch((err) => err);
        await closed;
        console.log('member', e.reason, e.code, JSON.stringify(p.enforcement['cpu.cores']), out.trim());
        await g.close();
      `);
      assert.ok(r.lived, `the launcher died (code ${r.code}): ${r.stdout} ${r.stderr}`);
      assert.match(r.stdout, /^member exit 0 \{"enforced":true/m);
      assert.match(r.stdout, /"GOMAXPROCS":"1"/);
    });
  });

  describe('a limit is never silently weaker', () => {
    it('5. a non-enumerable own limit is read; one inherited from a prototype of its own is refused', async function () {
      const o = {};
      Object.defineProperty(o, 'memory', { value: '64MiB', enumerable: false });
      assert.equal(normalizeOptions(w, [], o).limits.memoryTotal, 64 * 2 ** 20);
      const cpu = {};
      Object.defineProperty(cpu, 'cores', { value: 0.5, enumerable: false });
      assert.equal(normalizeOptions(w, [], { cpu }).limits.cpuCores, 0.5);
      assert.throws(() => normalizeOptions(w, [], Object.create({ memory: '64MiB' })), { code: 'ERR_INVALID_ARG_VALUE', message: /options\.memory/ });
      class Opts {
        get memory() {
          return '64MiB';
        }
      }
      assert.throws(() => normalizeOptions(w, [], new Opts()), { code: 'ERR_INVALID_ARG_VALUE', message: /options\.memory/ });
      if (!isolationSupport().limits['memory.total'].enforced) return;
      // For real, through spawnIsolated and execIsolated (which copies its options).
      const e = await spawnIsolated(w, ['alloc', '256'], Object.defineProperty({ stdio: 'ignore' }, 'memory', { value: '64MiB' }) as never).exited;
      assert.equal(e.reason, 'memory');
      const x = await execIsolated(w, ['alloc', '256'], Object.defineProperty({}, 'memory', { value: '64MiB' }));
      assert.equal(x.reason, 'memory');
    });

    it('6. a polluted Object.prototype chooses neither the executable (PATH) nor the environment', async function () {
      if (isWindows) this.skip(); // the planted program is a shell script
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spawn-isolated-pollution-'));
      const marker = path.join(dir, 'ran');
      fs.writeFileSync(path.join(dir, 'true'), `#!/bin/sh\ntouch ${marker}\n`, { mode: 0o755 });
      const proto = Object.prototype as Record<string, unknown>;
      try {
        proto.PATH = dir;
        proto.POLLUTED = 'yes';
        const e = await spawnIsolated('true', [], { ...relaxed, privileges: 'inherit', env: { HOME: '/' }, stdio: 'ignore' }).exited;
        assert.equal(e.code, 0);
        assert.equal(fs.existsSync(marker), false, "the attacker's true ran");
        const c = await collect(spawnIsolated(w, ['env'], { ...relaxed, env: { A: '1' } }));
        assert.ok(!json<string[]>(c).some((kv) => kv.startsWith('POLLUTED=') || kv.startsWith('PATH=')), JSON.stringify(json(c)));
      } finally {
        delete proto.PATH;
        delete proto.POLLUTED;
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it("8a. forceKillAfter: 0 means at once (stop() ends the tree without a grace)", async () => {
      const p = spawnIsolated(w, ['ignore', 'SIGTERM', '30000'], { ...relaxed, forceKillAfter: 0, stdio: 'ignore' });
      await new Promise<void>((r) => p.once('spawn', () => r()));
      const t0 = Date.now();
      const e = await p.stop();
      assert.equal(e.reason, 'killed');
      assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
      assert.equal(normalizeOptions(w, [], { forceKillAfter: '0s' }).forceKillAfterMs, 0);
    });

    it('8b. a memory limit too small to start the worker is refused synchronously, saying so', async () => {
      for (const memory of [1000, '64KiB', { total: '512KiB' }, { process: 1000 }] as const) {
        assert.throws(() => spawnIsolated(w, ['exit', '0'], { memory }), { code: 'ERR_OUT_OF_RANGE', message: /too small to start the worker/ }, JSON.stringify(memory));
      }
      assert.throws(() => createIsolationGroup({ memory: '64KiB' }), { code: 'ERR_OUT_OF_RANGE', message: /too small to start the worker/ });
      // Its exec needs its arguments and environment: 1 MiB is too small with a 1 MB environment.
      const env: Record<string, string> = {};
      for (let i = 0; i < 10; i++) env[`BIG${i}`] = 'x'.repeat(100_000);
      assert.throws(() => spawnIsolated(w, ['exit', '0'], { memory: '1MiB', env }), { code: 'ERR_OUT_OF_RANGE', message: /too small to start the worker/ });
      // The floor it names is above what was given (bytes, not a rounded figure).
      try {
        spawnIsolated(w, ['exit', '0'], { memory: { process: '1MiB', total: '1MiB' } });
        assert.fail('1 MiB was taken');
      } catch (e) {
        const m = /at least (\d+) bytes/.exec((e as Error).message);
        assert.ok(m && Number(m[1]) > 1048576, (e as Error).message);
      }
    });

    it('8c. Linux: a cgroup memory limit the exec does not fit in kills the worker, never the launcher', async function () {
      if (!isLinux || !isolationSupport().limits['memory.total'].mechanism.startsWith('cgroup')) this.skip();
      // The addon itself, below the TS floor: 64 KiB, where a child sharing the launcher's
      // memory (vfork) was the OOM killer's pick, and with it the launcher.
      const addon = path.join(root, 'build', 'Release', 'spawn_isolated.node');
      if (!fs.existsSync(addon)) this.skip();
      const r = await inChildNode(`
        const b = require(${JSON.stringify(addon)});
        const done = new Promise((resolve) => b.init((ev) => { if (ev.type === 'exit') { b.release(ev.id); resolve(ev.reason); } }));
        const req = { file: '/bin/true', args: ['/bin/true'], env: ['PATH=/usr/bin:/bin'], stdio: ['ignore', 'ignore', 'ignore'], inherit: [],
          limits: { memoryTotal: 65536 }, privileges: 'restricted', privilegesExplicit: false, threadsImplied: false, killOnClose: true,
          windowsHide: true, channel: false, tempDir: false, keepTempDir: false, privateProfile: false, networkNone: false, strict: true, envExplicit: false };
        try { const s = b.spawn(req); b.resume(s.id); console.log('ended', await done); } catch (e) { console.log('refused', e.code); }
      `);
      assert.ok(r.lived, `the launcher died (code ${r.code}): ${r.stdout} ${r.stderr}`);
      // A group held at its memory budget by a growing member while others start: a launcher of
      // 200 MB resident was the biggest task in reach of the group's OOM killer.
      const g = await inChildNode(`
        const big = Buffer.alloc(200 * 1024 * 1024, 1);
        const g = lib.createIsolationGroup({ memory: '64MiB' });
        const until = Date.now() + 8000;
        let rounds = 0;
        while (Date.now() < until) {
          const a = g.spawn(w, ['allocstamp', '1000'], { stdio: 'ignore' });
          const starts = [];
          for (let i = 0; i < 15; i++) {
            await new Promise((r) => setTimeout(r, 5));
            starts.push(g.spawn('/bin/true', [], { stdio: 'ignore' }).exited.catch((e) => e));
          }
          await Promise.all([a.exited, ...starts]);
          rounds++;
        }
        await g.close();
        console.log('rounds', rounds, big.length);
      `);
      assert.ok(g.lived, `the launcher died (code ${g.code}): ${g.stdout} ${g.stderr}`);
    });

    it('8d. isolationSupport() and a spawn name the same killOnClose mechanism', async () => {
      const p = spawnIsolated(w, ['exit', '0'], { stdio: 'ignore' });
      await p.exited;
      assert.equal(p.enforcement.killOnClose?.mechanism, isolationSupport().limits.killOnClose.mechanism);
    });

    it('8e. a directory, or a file no one may run, is EACCES, as child_process says, without the transient-uid hint', async function () {
      if (isWindows) this.skip();
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spawn-isolated-eacces-'));
      const file = path.join(dir, 'not-executable');
      fs.writeFileSync(file, '#!/bin/sh\n', { mode: 0o644 });
      fs.mkdirSync(path.join(dir, 'adir'));
      const errorOf = (p: unknown) => new Promise<Error & { code?: string }>((resolve) => (p as { on: (e: string, f: (err: Error & { code?: string }) => void) => unknown }).on('error', resolve));
      try {
        for (const [file_, env] of [[dir, undefined], [file, undefined], ['adir', { PATH: dir }], ['not-executable', { PATH: dir }]] as const) {
          const theirs = await errorOf(spawn(file_, [], { env }));
          const ours = await errorOf(spawnIsolated(file_, [], { env }));
          assert.equal(ours.code, theirs.code, `${file_}: ${ours.message}`);
          assert.equal(ours.code, 'EACCES');
          assert.doesNotMatch(ours.message, /transient|readable by others/, ours.message);
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it("8f. a failure met after the call returned (a root launcher's spawn returns before its worker's exec) is child_process's: 'error' without 'spawn', 'close', no pid", async function () {
      if (!isLinux || process.getuid?.() !== 0) this.skip(); // a root launcher's restricted worker, which runs as a transient uid
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spawn-isolated-late-'));
      fs.chmodSync(dir, 0o755);
      const file = path.join(dir, 'root-only');
      fs.copyFileSync(w, file);
      fs.chmodSync(file, 0o700); // the worker's uid may not run it: its exec fails
      const record = (p: NodeJS.EventEmitter) => {
        const seen: string[] = [];
        for (const e of ['spawn', 'exit', 'close']) p.on(e, (...a: unknown[]) => seen.push(`${e} ${JSON.stringify(a)}`));
        p.on('error', (e: unknown) => seen.push(`error ${(e as { code: string }).code} ${(e as { errno: number }).errno}`));
        return { seen, done: new Promise((r) => p.on('close', r)) };
      };
      // A spawn returns before its worker's exec only while the launcher has another worker to
      // serve, and once this host has let one use its namespaces.
      const keeper = await keepBusy();
      try {
        // The control: child_process running the same file as a uid that may not run it.
        const theirs = record(spawn(file, ['exit', '0'], { uid: 65534, gid: 65534, stdio: 'pipe' }));
        await theirs.done;
        assert.deepEqual(theirs.seen, ['error EACCES -13', 'close [-13,null]'], 'the control');
        let early = 0;
        for (let i = 0; i < 5; i++) {
          const p = spawnIsolated(file, ['exit', '0'], { stdio: 'pipe' });
          // A failure the call itself met would have left no pid at all.
          if (p.pid !== undefined) early++;
          const ours = record(p as unknown as NodeJS.EventEmitter);
          await ours.done;
          const err = await p.exited.then(
            () => assert.fail('exited resolved'),
            (e: Error & { code?: string }) => e,
          );
          assert.deepEqual(ours.seen, theirs.seen, `round ${i}`);
          assert.equal(p.pid, undefined, 'no pid, as child_process has none for a failed spawn');
          assert.equal(p.exitCode, -13);
          assert.equal(err.code, 'EACCES');
          assert.match(err.message, /runs as its own uid \d+: its executable and cwd must be readable by others/);
          assert.ok(p.stdout?.destroyed && p.stdin?.destroyed, 'its streams are destroyed');
        }
        assert.ok(early > 0, "the call returned before the worker's exec at least once (the path under test)");
      } finally {
        await keeper.stop();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it("8g. 'spawn' comes before the worker's first output, as child_process's, when the call returned before the exec", async function () {
      if (!isLinux || process.getuid?.() !== 0) this.skip(); // a root launcher's call returns before the worker's exec
      this.timeout(60_000);
      // The control.
      const theirs = spawn(w, ['pid1', '0'], { stdio: 'pipe' });
      const control: string[] = [];
      theirs.on('spawn', () => control.push('spawn'));
      theirs.stdout!.on('data', () => control.push('data'));
      await new Promise((r) => theirs.on('close', r));
      assert.deepEqual(control.slice(0, 2), ['spawn', 'data'], 'the control');
      // The first process is held before its init's exec (a test-only hook), so the native word
      // that the worker has exec'd comes only once it is let go: the worker's output comes first.
      const dir = scratchDir('spawn-order-');
      const fifo = holdFifo(dir, 'hold');
      const r = await inLauncher(
        dir,
        `process.env.SPAWN_ISOLATED_TEST_HOLD_FIRST = ${JSON.stringify(fifo)};
         const hold = fs.openSync(${JSON.stringify(fifo)}, fs.constants.O_RDWR);
         fs.writeSync(hold, 'g'); // the first spawn goes through (and shows this host's namespaces work)
         ${keepBusyInLauncher}
         const p = spawnIsolated(w, ['pid1', '0'], { stdio: ['ignore', 'pipe', 'ignore'] });
         const seen = [];
         p.on('spawn', () => seen.push('spawn'));
         p.stdout.on('data', () => {
           seen.push('data');
           fs.writeSync(hold, 'g'); // let its first process go on
         });
         await new Promise((res) => p.on('close', res));
         keeper.kill('SIGKILL');
         fs.closeSync(hold);
         return { seen };`,
      ).finally(() => fs.rmSync(dir, { recursive: true, force: true }));
      assert.deepEqual((r as { seen: string[] }).seen.slice(0, 2), ['spawn', 'data'], JSON.stringify(r));
    });
    it("8h. an AbortSignal aborted already, or before 'spawn': 'spawn', then the AbortError, then 'exit' and 'close', as child_process's", async function () {
      this.timeout(60_000);
      const record = (p: NodeJS.EventEmitter) => {
        const seen: string[] = [];
        for (const e of ['spawn', 'exit', 'close']) p.on(e, () => seen.push(e));
        p.on('error', (e: unknown) => seen.push(`error ${(e as { code: string }).code}`));
        return { seen, done: new Promise((r) => p.on('close', r)) };
      };
      const theirs = record(spawn(w, ['sleep', '30000'], { stdio: 'pipe', signal: AbortSignal.abort() }));
      await theirs.done;
      assert.deepEqual(theirs.seen, ['spawn', 'error ABORT_ERR', 'exit', 'close'], 'the control');
      // A root launcher's call returns before the worker's exec (once this host's namespaces are
      // known to work, while it has another worker to serve): the path under test there.
      // Elsewhere 'spawn' is known at once.
      const keeper = await keepBusy();
      for (let i = 0; i < 5; i++) {
        for (const abortNow of [true, false]) {
          const ac = new AbortController();
          if (abortNow) ac.abort();
          const p = spawnIsolated(w, ['sleep', '30000'], { ...relaxed, stdio: 'pipe', signal: ac.signal });
          const ours = record(p as unknown as NodeJS.EventEmitter);
          if (!abortNow) ac.abort();
          await ours.done;
          assert.deepEqual(ours.seen, theirs.seen, `round ${i}, ${abortNow ? 'aborted already' : 'aborted right after the call'}`);
          assert.equal((await p.exited).reason, 'aborted');
        }
      }
      await keeper.stop();
    });
    it("8i. Linux: a file the kernel cannot run is ENOEXEC with exitCode -8, never run by an implicit shell (child_process's execvp runs it with /bin/sh)", async function () {
      if (!isLinux) this.skip();
      const dir = scratchDir('noexec-');
      try {
        const marker = path.join(dir, 'ran');
        const script = path.join(dir, 'script');
        fs.writeFileSync(script, `echo ran > ${marker}\n`, { mode: 0o755 }); // no #! line
        fs.chmodSync(dir, 0o755);
        const theirs = spawn(script, [], { stdio: 'ignore' });
        const code = await new Promise((r) => theirs.on('exit', r));
        assert.deepEqual([code, fs.existsSync(marker)], [0, true], 'the control: /bin/sh ran it');
        fs.rmSync(marker);
        for (const privileges of ['restricted', 'inherit'] as const) {
          const p = spawnIsolated(script, [], { ...relaxed, stdio: 'ignore', privileges });
          const seen: string[] = [];
          p.on('spawn', () => seen.push('spawn'));
          p.on('error', (e: Error & { code?: string; errno?: number }) => seen.push(`error ${e.code} ${e.errno}`));
          const closed = await new Promise((r) => p.on('close', (c, s) => r([c, s])));
          assert.deepEqual(seen, ['error ENOEXEC -8'], privileges);
          assert.deepEqual(closed, [-8, null], privileges);
          assert.equal(p.exitCode, -8);
          assert.ok(!fs.existsSync(marker), 'nothing ran it');
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it("8j. Linux: a worker killed by a signal Node has no name for (real-time) ends with reason 'signal', neither code nor signal (child_process says code 0)", async function () {
      if (!isLinux) this.skip();
      const p = spawnIsolated('/bin/sleep', ['30'], { ...relaxed, stdio: 'ignore' });
      await new Promise<void>((r) => p.once('spawn', () => r()));
      const target = workerOf(p.pid!);
      process.kill(target, 40); // SIGRTMIN+6 for glibc: no name in Node
      const e = await p.exited;
      assert.deepEqual([e.code, e.signal, e.reason], [null, null, 'signal']);
    });
  });

  describe('streams as child_process has them', () => {
    it('9. a two-worker pipeline (cat → grep) over a worker’s stream delivers every byte', async function () {
      if (!isLinux) this.skip(); // a stream's fd: POSIX
      const lines: string[] = [];
      for (let i = 0; i < 400_000; i++) lines.push(`${i % 3 === 0 ? 'drop' : 'keep'} ${i} ${crypto.randomBytes(6).toString('hex')}`);
      const data = Buffer.from(lines.join('\n') + '\n');
      const want = Buffer.from(lines.filter((l) => l.includes('keep')).join('\n') + '\n');
      const pairs: [string, string[], string, string[]][] = [[w, ['echo'], w, ['grep', 'keep']]];
      // A C reader too: it reads its stdin as is, and an O_NONBLOCK one gives it EAGAIN.
      if (fs.existsSync('/bin/cat') && fs.existsSync('/bin/grep')) pairs.push(['/bin/cat', [], '/bin/grep', ['keep']]);
      for (const [catFile, catArgs, grepFile, grepArgs] of pairs) {
        const cat = spawnIsolated(catFile, catArgs, { ...relaxed, stdio: ['pipe', 'pipe', 'inherit'] });
        const grep = spawnIsolated(grepFile, grepArgs, { ...relaxed, stdio: [cat.stdout!, 'pipe', 'pipe'] });
        try {
          const got = collect(grep);
          cat.stdin!.on('error', () => undefined); // EPIPE when a failed reader ends the pipeline early
          cat.stdin!.end(data);
          const c = await got;
          assert.equal(c.exit.code, 0, `${grepFile}: ${c.stderr}`);
          assert.equal(c.stdout.length, want.length, `${catFile} → ${grepFile}: ${c.stdout.length} of ${want.length} bytes`);
          assert.ok(c.stdout.equals(want), `${catFile} → ${grepFile}: the bytes differ`);
          assert.equal((await cat.exited).code, 0);
        } finally {
          // A reader that failed leaves cat blocked on a full socket: end it (and our copy of its stdout).
          cat.kill('SIGKILL');
          cat.stdout!.destroy();
        }
      }
    });

    it("10. 'close' comes once after an exit with unread stdout, and once after a start failure (as child_process)", async () => {
      const counted = async (proc: unknown) => {
        const p = proc as { on: (e: string, f: (...a: unknown[]) => void) => unknown };
        const seen: string[] = [];
        p.on('error', () => seen.push('error'));
        p.on('close', (code) => seen.push(`close ${String(code)}`));
        await new Promise((r) => setTimeout(r, 1500));
        return seen;
      };
      // Output nobody reads (more than a socket buffer holds, and a little).
      for (const n of ['1', '100000']) {
        const seen = await counted(spawnIsolated(w, ['write', n], relaxed));
        assert.deepEqual(seen, ['close 0'], `write ${n}`);
      }
      const theirs = await counted(spawn('definitely-not-a-program-xyz'));
      const ours = await counted(spawnIsolated('definitely-not-a-program-xyz'));
      assert.deepEqual(ours, theirs);
      assert.deepEqual(ours, isWindows ? ['error', 'close -4058'] : ['error', 'close -2']);
    });

    it('11. a stdio array ([stdin, stdout, stderr]) as ChildProcess has, also after a failed start', async () => {
      const p = spawnIsolated(w, ['exit', '0'], { ...relaxed, stdio: ['pipe', 'ignore', 'pipe'] });
      assert.deepEqual(p.stdio, [p.stdin, null, p.stderr]);
      assert.ok(p.stdin && p.stderr);
      await collect(p);
      const failed = spawnIsolated('definitely-not-a-program-xyz');
      const theirs = spawn('definitely-not-a-program-xyz');
      theirs.on('error', () => undefined);
      failed.on('error', () => undefined);
      assert.equal(failed.stdio.length, theirs.stdio.length);
      assert.deepEqual(failed.stdio, [failed.stdin, failed.stdout, failed.stderr]);
      assert.ok(failed.stdin && failed.stdout && failed.stderr);
      // Written before the failure is reported: discarded, as child_process does, never an 'error'.
      failed.stdin.on('error', () => assert.fail('stdin emitted an error'));
      failed.stdin.end('lost');
      await new Promise((r) => failed.on('close', r));
    });
  });

  describe('arguments and options as child_process takes them', () => {
    it('12. the same codes as child_process.spawn where the behaviour should match', async () => {
      const cases: [string, unknown[]][] = [
        ['a number among args', ['true', [1, 2]]],
        ['options null', ['true', [], null]],
        ['args null', ['true', null]],
        ["timeout 'bad'", ['true', [], { timeout: 'bad' }]],
        ['timeout {}', ['true', [], { timeout: {} }]],
        ['timeout -1', ['true', [], { timeout: -1 }]],
        ['timeout null', ['true', [], { timeout: null }]],
        ["cwd ''", ['true', [], { cwd: '' }]],
        ['cwd null', ['true', [], { cwd: null }]],
        ['an http: URL as cwd', ['true', [], { cwd: new URL('http://example.com/') }]],
        ['cwd 5', ['true', [], { cwd: 5 }]],
        ['env null', ['true', [], { env: null }]],
        ['stdio 5', ['true', [], { stdio: 5 }]],
        ["stdio 'bad'", ['true', [], { stdio: 'bad' }]],
        ['file 5', [5]],
        ["file ''", ['']],
        ['args 5', ['true', 5]],
        ...(isWindows ? [] : ([['uid 1.5', ['true', [], { uid: 1.5 }]], ["uid '0'", ['true', [], { uid: '0' }]], ['gid 2**32', ['true', [], { gid: 2 ** 32 }]]] as [string, unknown[]][])),
        ['killSignal SIGBAD', ['true', [], { killSignal: 'SIGBAD' }]],
        ['windowsHide "x"', ['true', [], { windowsHide: 'x' }]],
        ['signal {}', ['true', [], { signal: {} }]],
      ];
      const call = (f: (...a: unknown[]) => unknown, a: unknown[]) => thrown(() => f(...a));
      const ours = (...a: unknown[]) => (spawnIsolated as unknown as (...x: unknown[]) => IsolatedProcess)(...a);
      const theirs = (...a: unknown[]) => (spawn as unknown as (...x: unknown[]) => unknown)(...a);
      const differ = cases.map(([t, a]) => [t, call(ours, a), call(theirs, a)]).filter(([, x, y]) => x !== y);
      assert.deepEqual(differ, []);
      // A number among args reaches the worker as a string, as child_process passes it.
      const c = await collect(spawnIsolated(w, ['argv', 1, true] as never, relaxed));
      assert.deepEqual(json(c), ['1', 'true']);
      // Keys an env inherits from a prototype of its own are passed, as child_process passes them.
      const env = Object.assign(Object.create({ INHERITED: 'yes' }) as Record<string, string>, { OWN: '1' });
      const e = await collect(spawnIsolated(w, ['env'], { ...relaxed, env }));
      assert.deepEqual(json<string[]>(e).filter((kv) => /^(INHERITED|OWN)=/.test(kv)).sort(), ['INHERITED=yes', 'OWN=1']);
      if (!isWindows) {
        const out = await new Promise<string>((resolve) => execFile('/usr/bin/env', [], { env }, (_e, stdout) => resolve(stdout)));
        assert.match(out, /^INHERITED=yes$/m);
      }
    });

    it('arguments and variables of every length around the addon\'s string buffer, with characters of 1-4 UTF-8 bytes at its edge, arrive whole', async () => {
      // The addon reads a string in one call when it fits 512 bytes; a write that stops short of
      // a character must not pass for a whole string.
      // In groups of 16 (~8 KiB): a Windows command line holds 32,767 characters.
      const groups: string[][] = [['€'.repeat(171), '😀'.repeat(128), 'é'.repeat(256)]];
      for (const tail of ['', 'é', '€', '😀', 'é€😀']) {
        const g: string[] = [];
        for (let n = 500; n <= 515; n++) g.push('a'.repeat(n) + tail);
        groups.push(g);
      }
      for (const args of groups) assert.deepEqual(json(await collect(spawnIsolated(w, ['argv', ...args], relaxed))), args);
      const env = { LONG_A: groups[4][9], LONG_B: groups[0][1] };
      const e = await collect(spawnIsolated(w, ['env'], { ...relaxed, env }));
      assert.deepEqual(json<string[]>(e).filter((kv) => kv.startsWith('LONG_')).sort(), [`LONG_A=${env.LONG_A}`, `LONG_B=${env.LONG_B}`]);
    });
  });

  describe('the addon loads with the module', () => {
    it('13. with the fd table full, a spawn fails with EMFILE (not ERR_DLOPEN_FAILED), and later spawns get the full plan', async function () {
      if (!isLinux) this.skip();
      for (const free of [0, 1, 2, 3]) {
        const r = await inChildNode(
          `const fs = require('fs'); const fds = [];
           try { for (;;) fds.push(fs.openSync('/dev/null', 'r')); } catch {}
           for (const fd of fds.splice(0, ${free})) fs.closeSync(fd);
           const err = await lib.spawnIsolated(w, ['exit', '0'], { stdio: 'ignore' }).exited.then(() => null, (e) => e);
           console.log('first', err ? err.code : 'ran');
           for (const fd of fds.splice(0, 40)) fs.closeSync(fd);
           const p = lib.spawnIsolated(w, ['exit', '0'], { stdio: 'ignore' });
           await p.exited;
           console.log('second', p.enforcement.killOnClose.mechanism === lib.isolationSupport().limits.killOnClose.mechanism);`,
          { shellPrefix: 'ulimit -n 256 &&' },
        );
        assert.ok(r.lived, `${free}: ${r.stdout} ${r.stderr}`);
        assert.match(r.stdout, /^first (EMFILE|ran)$/m, `${free} free: ${r.stdout}`);
        assert.match(r.stdout, /^second true$/m, `${free} free: the later spawn got a weaker plan: ${r.stdout}`);
      }
    });
  });

  describe('execIsolated: typed results, a group, reject', () => {
    it('14. the result type follows encoding; group and group.exec; reject: true rejects with the output and how it ended', async () => {
      const text = await execIsolated(w, ['echo'], { ...relaxed, input: 'ping\n' });
      const s: string = text.stdout; // a string, to the compiler too (strict)
      assert.equal(s, 'ping\n');
      const bytes = await execIsolated(w, ['echo'], { ...relaxed, input: 'ping\n', encoding: 'buffer' });
      const b: Buffer = bytes.stdout;
      // @ts-expect-error a Buffer result is no string
      const notString: string = bytes.stdout;
      assert.ok(Buffer.isBuffer(b) && Buffer.isBuffer(notString));
      const shape = await execIsolated(w, { ...relaxed, encoding: 'buffer' }); // (file, options)
      assert.ok(Buffer.isBuffer(shape.stderr));

      const g = createIsolationGroup({ enforcement: 'best-effort', processes: 8 });
      try {
        const inGroup = await execIsolated(w, ['argv', 'x'], { ...relaxed, group: g });
        assert.equal(inGroup.stdout.trim(), '["x"]');
        const viaGroup = await g.exec(w, ['argv', 'y'], relaxed);
        assert.equal(viaGroup.stdout.trim(), '["y"]');
        assert.throws(() => execIsolated(w, [], { group: {} as never }), { code: 'ERR_INVALID_ARG_TYPE' });
      } finally {
        await g.close();
      }

      // The default resolves a non-zero exit; reject: true rejects it, carrying what execFile's error carries.
      const plain = await execIsolated(w, ['stderr', 'oops'], relaxed);
      assert.equal(plain.code, 0);
      const failing = await execIsolated(w, ['exit', '3'], relaxed);
      assert.deepEqual([failing.code, failing.reason], [3, 'exit']);
      const err = (await execIsolated(w, ['exit', '3'], { ...relaxed, reject: true }).then(
        () => assert.fail('resolved'),
        (e: unknown) => e,
      )) as ExecIsolatedError;
      assert.deepEqual([err.code, err.signal, err.reason, err.killed, typeof err.stdout, typeof err.stderr], [3, null, 'exit', false, 'string', 'string']);
      assert.match(err.message, /^Command failed: .*worker(\.exe)? exit 3 \(exit code 3\)/);
      assert.equal((await execIsolated(w, ['exit', '0'], { ...relaxed, reject: true })).code, 0);
      if (isolationSupport().limits['memory.total'].enforced) {
        const limited = (await execIsolated(w, ['alloc', '256'], { memory: '64MiB', reject: true }).catch((e: unknown) => e)) as ExecIsolatedError;
        assert.deepEqual([limited.reason, limited.code, limited.killed], ['memory', null, true]);
      }
    });
  });

  describe('code health', () => {
    it('15. lib/ has no import circles; addon.cc keeps only the exported functions', () => {
      const dir = path.join(root, 'lib');
      const edges = new Map<string, string[]>();
      for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.ts'))) {
        const src = fs.readFileSync(path.join(dir, f), 'utf8');
        edges.set(f, [...src.matchAll(/from '\.\/([\w-]+)'/g)].map((m) => `${m[1]}.ts`));
      }
      const circles: string[] = [];
      const walk = (n: string, stack: string[]) => {
        if (stack.includes(n)) return void circles.push([...stack.slice(stack.indexOf(n)), n].join(' -> '));
        for (const m of edges.get(n) ?? []) walk(m, [...stack, n]);
      };
      for (const f of edges.keys()) walk(f, []);
      assert.deepEqual(circles, []);
      const addon = fs.readFileSync(path.join(root, 'native', 'addon.cc'), 'utf8');
      for (const moved of ['ParseRequest(Napi::Env', 'class EnvSink', 'Napi::Object EventToJs', 'Napi::Object Internals(']) {
        assert.ok(!addon.includes(moved), `addon.cc still defines ${moved}`);
      }
      assert.ok(addon.split('\n').length < 300, 'addon.cc has grown back');
    });
  });
});
