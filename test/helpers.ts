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
    p.exited.then(() => reject(new Error(`worker exited before printing a line (got ${JSON.stringify(buf)})`)), reject);
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
 * SPAWN_ISOLATED_TEST_SLOW (at least 1): scripts/test-vm.sh sets it, as software emulation runs
 * several times slower than the host.
 */
export const slowFactor = Math.max(1, Number(process.env.SPAWN_ISOLATED_TEST_SLOW) || 1);

/** A wait or deadline in a test, stretched by slowFactor. Never a bound a limit is checked against. */
export function slow(ms: number): number {
  return ms * slowFactor;
}
