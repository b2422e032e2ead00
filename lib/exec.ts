// execIsolated(): run a worker and collect its output.
import { codedError, NodeStyleError } from './errors';
import type { IsolationOptions } from './options';
import type { IsolatedExit } from './process';
import { spawnIsolated } from './spawn';

/** Options of {@link execIsolated}: those of spawnIsolated, and how much output to keep. */
export interface ExecIsolatedOptions extends IsolationOptions {
  /** Bytes of stdout and of stderr kept at most; past it the tree is killed. Default 1 MiB (as child_process.exec). */
  maxBuffer?: number;
  /** Decode the output (default `'utf8'`), or `'buffer'` for Buffers. */
  encoding?: BufferEncoding | 'buffer';
  /** Written to the worker's stdin, which is then closed. */
  input?: string | Uint8Array;
}

/** What {@link execIsolated} resolves with. */
export interface ExecIsolatedResult<T extends string | Buffer = string> extends IsolatedExit {
  stdout: T;
  stderr: T;
}

/**
 * Runs `file` under the limits and resolves with its output and how it ended (a limit, a
 * signal and a non-zero code all resolve: `reason` tells which). Rejects when it cannot start,
 * or with `ERR_CHILD_PROCESS_STDIO_MAXBUFFER` (the tree is killed) when output passes `maxBuffer`.
 */
export function execIsolated(file: string, args?: readonly string[], options?: ExecIsolatedOptions): Promise<ExecIsolatedResult<string | Buffer>> {
  const { maxBuffer = 1024 * 1024, encoding = 'utf8', input, ...spawnOptions } = { ...(options ?? {}) } as ExecIsolatedOptions;
  if (typeof maxBuffer !== 'number' || !(maxBuffer > 0)) throw codedError('ERR_OUT_OF_RANGE', `The value of "options.maxBuffer" is out of range. It must be > 0. Received ${String(maxBuffer)}`);
  if (spawnOptions.stdio !== undefined) throw codedError('ERR_INVALID_ARG_VALUE', 'options.stdio cannot be set for execIsolated: its stdio are pipes it reads');
  const p = spawnIsolated(file, args ?? [], { ...spawnOptions, stdio: 'pipe' });
  return new Promise((resolve, reject) => {
    const chunks: [Buffer[], Buffer[]] = [[], []];
    const sizes = [0, 0];
    let overflow: NodeStyleError | undefined;
    [p.stdout, p.stderr].forEach((stream, i) => {
      stream?.on('data', (d: Buffer) => {
        sizes[i] += d.length;
        if (sizes[i] > maxBuffer && !overflow) {
          overflow = codedError('ERR_CHILD_PROCESS_STDIO_MAXBUFFER', `${i === 0 ? 'stdout' : 'stderr'} maxBuffer length exceeded`);
          p.kill('SIGKILL');
        }
        if (!overflow) chunks[i].push(d);
      });
    });
    if (input !== undefined) p.stdin?.end(input);
    else p.stdin?.end();
    p.on('error', () => undefined); // the rejection of exited reports it
    p.exited.catch(reject); // could not start: no 'close' follows
    p.on('close', () => {
      p.exited.then((exit) => {
        if (overflow) return reject(overflow);
        const out = chunks.map((c) => (encoding === 'buffer' ? Buffer.concat(c) : Buffer.concat(c).toString(encoding)));
        resolve({ ...exit, stdout: out[0], stderr: out[1] });
      }, reject);
    });
  });
}
