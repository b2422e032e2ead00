import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { IsolatedExit, IsolatedProcess, isolationSupport, LimitName } from '../lib';

export const root = path.resolve(__dirname, '..', '..');
export const isWindows = process.platform === 'win32';
export const isLinux = process.platform === 'linux';

/** The Go test worker built for this platform by scripts/build-fixtures.js. */
export function worker(): string {
  if (isWindows) return path.join(root, 'test', 'fixtures', 'bin', 'windows-amd64', 'worker.exe');
  const arch = { x64: 'amd64', arm64: 'arm64' }[process.arch as 'x64' | 'arm64'] ?? process.arch;
  return path.join(root, 'test', 'fixtures', 'bin', `${process.platform}-${arch}`, 'worker');
}

export interface Collected {
  stdout: Buffer;
  stderr: string;
  exit: IsolatedExit;
  limits: unknown[];
}

/** Reads the worker's stdout/stderr to the end and waits for 'close'. */
export function collect(p: IsolatedProcess): Promise<Collected> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const limits: unknown[] = [];
    p.stdout?.on('data', (d: Buffer) => out.push(d));
    p.stderr?.on('data', (d: Buffer) => err.push(d));
    p.on('limit', (l) => limits.push(l));
    p.on('error', reject);
    p.on('close', () => {
      p.exited.then((exit) => resolve({ stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString(), exit, limits }), reject);
    });
  });
}

/** The first JSON line the worker printed. */
export function json<T = Record<string, unknown>>(c: Collected): T {
  const line = c.stdout.toString().split('\n').find((l) => l.trim().length > 0);
  if (line === undefined) throw new Error(`worker printed nothing (stderr: ${c.stderr})`);
  return JSON.parse(line) as T;
}

/** Resolves with the first JSON line of stdout, as soon as it arrives. */
export function firstLine<T = Record<string, unknown>>(p: IsolatedProcess): Promise<T> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString();
      const i = buf.indexOf('\n');
      if (i >= 0) {
        p.stdout?.removeListener('data', onData);
        resolve(JSON.parse(buf.slice(0, i)) as T);
      }
    };
    p.stdout?.on('data', onData);
    p.on('error', reject);
    // 'close', not the exit: a worker that prints and exits at once may be reported gone before
    // its output is read; 'close' comes once its streams are done.
    p.once('close', () => reject(new Error(`worker exited before printing a line (got ${JSON.stringify(buf)})`)));
    p.exited.catch(reject);
  });
}

/** Skips the test, saying why, when this host does not enforce `limit`. */
export function requireEnforced(ctx: Mocha.Context, limit: LimitName): void {
  const s = isolationSupport().limits[limit];
  if (!s.enforced) {
    ctx.test!.title += ` [skipped: ${s.reason}]`;
    ctx.skip();
  }
}

/** Under Wine (set by scripts/test-wine.js; the oracle checks too). */
export const onWine = isWindows && process.env.SPAWN_ISOLATED_WINE === '1';

/**
 * A scratch directory for files the tests hand to workers: never beneath /tmp, /var/tmp or
 * /dev/shm, which a confined worker sees as a tmpfs of its own. SPAWN_ISOLATED_TEST_SCRATCH
 * (the VM run sets it), else root: under /srv; otherwise under the checkout (.scratch,
 * ignored by git). Mode 0755: a transient uid can reach it.
 */
export function scratchDir(prefix: string): string {
  const base = process.env.SPAWN_ISOLATED_TEST_SCRATCH || (process.getuid?.() === 0 ? '/srv/spawn-isolated-tests' : path.join(root, '.scratch'));
  fs.mkdirSync(base, { recursive: true, mode: 0o755 });
  fs.chmodSync(base, 0o755);
  const dir = fs.mkdtempSync(path.join(base, prefix));
  fs.chmodSync(dir, 0o755);
  return dir;
}

/**
 * A FIFO in `dir` (a scratch directory: the first process opens it in the worker's mount
 * namespace) for SPAWN_ISOLATED_TEST_HOLD_FIRST: a first process reads a byte from it right
 * before it execs its init (a test-only hook), and waits until one comes.
 */
export function holdFifo(dir: string, name: string): string {
  const fifo = path.join(dir, `${name}-${Date.now()}`);
  const made = spawnSync('mkfifo', ['-m', '666', fifo]);
  if (made.status !== 0) throw new Error(`mkfifo ${fifo}: ${made.stderr}`);
  return fifo;
}

/**
 * Runs `body` (an async function body) in a launcher of its own: a child Node process, as
 * `uid` (and gid) when given, under script(1) (a pseudo-terminal as its controlling terminal)
 * with `terminal`. In `body`, `run(args, opts)` spawns the test worker `w` and resolves to
 * `{ r, stderr, exit, enforcement }` (`r`: its first line of JSON output) or `{ error }`; `lib`
 * is the package. Resolves to what `body` returns. `dir` holds the script and its result.
 */
export function inLauncher(dir: string, body: string, opts: { uid?: number; terminal?: boolean } = {}): Promise<Record<string, unknown>> {
  const base = path.join(dir, `launcher-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  const script = `${base}.js`;
  const result = `${base}.json`;
  const lib = path.join(root, 'dist', 'lib', 'index.js');
  fs.writeFileSync(
    script,
    `const fs = require('node:fs');
     const lib = ${JSON.stringify(lib)};
     const { spawnIsolated } = require(lib);
     const w = ${JSON.stringify(worker())};
     function run(args, opts) {
       return new Promise((resolve) => {
         let p;
         try {
           p = spawnIsolated(w, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
         } catch (e) {
           return resolve({ error: e.message, code: e.code, sync: true }); // bad options throw synchronously
         }
         let out = '', err = '';
         if (p.stdout) p.stdout.on('data', (d) => (out += d));
         if (p.stderr) p.stderr.on('data', (d) => (err += d));
         p.on('error', (e) => resolve({ error: e.message, code: e.code }));
         // 'close' follows a failed start too (after 'error', which resolved already).
         p.on('close', () => p.exited.then((e) => resolve({ r: out ? JSON.parse(out.split('\\n')[0]) : null, stderr: err.slice(0, 300), exit: e, enforcement: p.enforcement }), () => undefined));
       });
     }
     (async () => { ${body} })().then(
       (v) => fs.writeFileSync(${JSON.stringify(result)}, JSON.stringify(v)),
       (e) => { fs.writeFileSync(${JSON.stringify(result)}, JSON.stringify({ launcherFailed: String(e && e.stack || e) })); });`,
    { mode: 0o644 },
  );
  fs.writeFileSync(result, '');
  fs.chmodSync(result, 0o666);
  const ids = opts.uid !== undefined ? { uid: opts.uid, gid: opts.uid } : {};
  const [cmd, args] = opts.terminal ? ['script', ['-qfec', `${process.execPath} ${script}`, '/dev/null']] : [process.execPath, [script]];
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { ...ids, cwd: '/', stdio: ['pipe', 'pipe', 'inherit'] });
    p.stdout.resume();
    p.on('error', reject);
    p.on('close', (code) => {
      const text = fs.readFileSync(result, 'utf8');
      if (!text) return reject(new Error(`launcher exited ${code} without a result`));
      const v = JSON.parse(text) as Record<string, unknown>;
      if (v.launcherFailed) return reject(new Error(`launcher failed: ${v.launcherFailed}`));
      resolve(v);
    });
  });
}

/**
 * SPAWN_ISOLATED_TEST_SLOW (at least 1): scripts/test-vm.sh sets it, as software emulation runs
 * several times slower than the host.
 */
export const slowFactor = Math.max(1, Number(process.env.SPAWN_ISOLATED_TEST_SLOW) || 1);

/** A wait or deadline in a test, stretched by slowFactor. Never a bound a limit is checked against. */
export function slow(ms: number): number {
  return ms * slowFactor;
}

/** Whether `what()` holds, looked at every 25 ms until it does or `ms` have passed. */
export async function until(what: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!what() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  return what();
}

/**
 * The worker's own pid under its init (`pid`, PID 1 of its namespace): the init's first child.
 * Its cgroups are the worker's from before its exec; the init may still be on its way into the
 * memory one just after the spawn returns (it joins it once up).
 */
export function workerOf(pid: number): number {
  const kids = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  return kids ? Number(kids.split(' ')[0]) : pid;
}

/**
 * How many CFS periods the kernel throttled the cpu cgroup of live process `pid` (cpu.stat
 * nr_throttled, v1 and v2): the kernel's own evidence that a CPU cap held it. `up` walks that
 * many levels up (a group's cgroup above its member's). -1 when it cannot be read.
 */
export function cpuThrottled(pid: number, up = 0): number {
  try {
    const lines = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n');
    const v1 = lines.find((l) => /^\d+:([^:]*,)?cpu(,[^:]*)?:/.test(l));
    const line = v1 ?? lines.find((l) => l.startsWith('0::'));
    if (!line) return -1;
    let rel = line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1);
    for (let i = 0; i < up; i++) rel = path.posix.dirname(rel);
    const controller = v1 ? /^\d+:([^:]*):/.exec(v1)![1] : '';
    const dir = v1 ? `/sys/fs/cgroup/${controller}${rel}` : `/sys/fs/cgroup${rel}`;
    const m = /nr_throttled (\d+)/.exec(fs.readFileSync(`${dir}/cpu.stat`, 'utf8'));
    return m ? Number(m[1]) : -1;
  } catch {
    return -1;
  }
}

/**
 * A worker that sleeps until `stop()`: while this process has one running, a root launcher's
 * spawn returns before its worker's exec (with none to serve, the call waits for the exec).
 * For tests of that path.
 */
export async function keepBusy(): Promise<{ stop(): Promise<void> }> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { spawnIsolated } = require('../lib') as typeof import('../lib');
  const p = spawnIsolated(worker(), ['sleep', '600000'], { stdio: 'ignore', enforcement: 'best-effort' });
  await new Promise<void>((r, j) => {
    p.once('spawn', () => r());
    p.once('error', j);
  });
  return {
    async stop() {
      p.kill('SIGKILL');
      await p.exited.catch(() => undefined);
    },
  };
}

/** The same, as code for an `inLauncher` body: `const keeper = ...` (kill it with keeper.kill('SIGKILL')). */
export const keepBusyInLauncher = `const keeper = spawnIsolated(w, ['sleep', '600000'], { stdio: 'ignore' });
  await new Promise((r) => keeper.once('spawn', r));`;

