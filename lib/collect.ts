// execIsolated's parts that do not start anything: its own options, validated synchronously,
// and collecting a started worker's output into its result. exec.ts (execIsolated) and
// group.ts (group.exec) start the worker; neither imports the other.
import { codedError, invalidArgType, invalidArgValue, NodeStyleError, outOfRange } from './errors';
import type { IsolationOptions } from './options';
import type { IsolatedExit, IsolatedProcess, IsolationStats, ExitReason } from './process';
import { isPlainObject, ownProps } from './validate';

/** Options of {@link execIsolated}: those of spawnIsolated (but `stdio`), and what to do with the output. */
export interface ExecOwnOptions {
  /**
   * Bytes of stdout and of stderr kept at most; past it the tree is killed and the promise
   * rejects with `ERR_CHILD_PROCESS_STDIO_MAXBUFFER`. Default 1 MiB (as child_process.exec).
   */
  maxBuffer?: number;
  /** Decode the output (default `'utf8'`), or `'buffer'` (or null) for Buffers. */
  encoding?: BufferEncoding | 'buffer' | null;
  /** Written to the worker's stdin, which is then closed (also when the worker never reads it). */
  input?: string | NodeJS.ArrayBufferView;
  /**
   * Reject, with an {@link ExecIsolatedError} carrying the output and how it ended, when the
   * worker does not exit with code 0 (a non-zero code, a signal, a limit, a timeout, a kill).
   * Default false: the promise resolves however the worker ended.
   */
  reject?: boolean;
}

/** execIsolated's options without `group` (what `group.exec()` takes). */
export interface ExecSpawnOptions extends Omit<IsolationOptions, 'stdio'>, ExecOwnOptions {}
/** ... whose output is text: `encoding` unset or a text encoding. */
export type ExecTextSpawnOptions = ExecSpawnOptions & { encoding?: BufferEncoding };
/** ... whose output is Buffers: `encoding: 'buffer'` (or null). */
export type ExecBufferSpawnOptions = ExecSpawnOptions & { encoding: 'buffer' | null };

/** What {@link execIsolated} resolves with: how the worker ended, and its output. */
export interface ExecIsolatedResult<T extends string | Buffer = string> extends IsolatedExit {
  stdout: T;
  stderr: T;
}

/**
 * The rejection of `execIsolated(..., { reject: true })` when the worker did not exit with 0,
 * as child_process.execFile's error: `code` is the exit code (null when a signal or a limit
 * ended it), and it carries the output.
 */
export interface ExecIsolatedError<T extends string | Buffer = string | Buffer> extends Error {
  code: number | null;
  signal: NodeJS.Signals | null;
  reason: ExitReason;
  stats: IsolationStats;
  /** True when the tree was ended by a kill, a timeout, an abort or a limit (as execFile's `killed`). */
  killed: boolean;
  /** The command line, as execFile's `cmd`. */
  cmd: string;
  stdout: T;
  stderr: T;
}

/** execIsolated's own options, read apart from the spawn options they came with. */
export interface ExecParts {
  maxBuffer: number;
  encoding: BufferEncoding | 'buffer';
  input: string | NodeJS.ArrayBufferView | undefined;
  reject: boolean;
  /** The `group` option (exec.ts checks what it is). */
  group: unknown;
  /** The rest: spawnIsolated's options, every own property kept (enumerable or not). */
  spawnOptions: IsolationOptions;
}

/**
 * Splits and validates `options` synchronously, as every other option: an unknown `encoding`,
 * an `input` that is not a string or bytes, a bad `maxBuffer`, or `stdio` throw here.
 */
export function execParts(options: unknown): ExecParts {
  if (options !== undefined && options !== null && !isPlainObject(options)) throw invalidArgType('options', 'of type object', options);
  const o = options === undefined || options === null ? (Object.create(null) as Record<string, unknown>) : ownProps(options);
  const { maxBuffer = 1024 * 1024, encoding = 'utf8', input, reject = false, group, ...rest } = o;
  if (maxBuffer !== null && !(typeof maxBuffer === 'number' && maxBuffer >= 0)) throw outOfRange('options.maxBuffer', 'a positive number', maxBuffer);
  if (encoding !== null && encoding !== 'buffer' && !(typeof encoding === 'string' && Buffer.isEncoding(encoding))) {
    throw invalidArgValue('options.encoding', encoding, "must be a text encoding Buffer knows ('utf8', 'latin1', ...) or 'buffer'");
  }
  if (input !== undefined && typeof input !== 'string' && !ArrayBuffer.isView(input)) {
    throw invalidArgType('options.input', 'of type string or an instance of Buffer, TypedArray, or DataView', input);
  }
  if (typeof reject !== 'boolean') throw invalidArgType('options.reject', 'of type boolean', reject);
  if (rest.stdio !== undefined) throw invalidArgValue('options.stdio', rest.stdio, 'cannot be set for execIsolated: its stdio are pipes it reads');
  // A null-prototype copy of every own property: a non-enumerable limit is passed on, not dropped.
  const spawnOptions = Object.assign(Object.create(null) as Record<string, unknown>, rest);
  spawnOptions.stdio = 'pipe';
  return {
    maxBuffer: maxBuffer === null ? 1024 * 1024 : maxBuffer,
    encoding: encoding === null ? 'buffer' : (encoding as BufferEncoding | 'buffer'),
    input: input as ExecParts['input'],
    reject,
    group,
    spawnOptions: spawnOptions as IsolationOptions,
  };
}

/** execFile's `cmd`: the file and its arguments, joined by spaces. */
function commandLine(p: IsolatedProcess): string {
  return p.spawnargs.join(' ');
}

/**
 * Feeds `input` to a started worker's stdin and collects its output until 'close'. Never lets
 * the host down: a worker that exits (or is killed by a limit) before reading all its stdin
 * makes the write fail with EPIPE, which is the worker's business, not an uncaught 'error'; a
 * worker that never started rejects with its start error.
 */
export function collectOutput(p: IsolatedProcess, parts: ExecParts): Promise<ExecIsolatedResult<string | Buffer>> {
  const { maxBuffer, encoding, input } = parts;
  return new Promise((resolve, reject) => {
    const chunks: [Buffer[], Buffer[]] = [[], []];
    const sizes = [0, 0];
    let overflow: NodeStyleError | undefined;
    const decode = (c: Buffer[]) => (encoding === 'buffer' ? Buffer.concat(c) : Buffer.concat(c).toString(encoding));
    [p.stdout, p.stderr].forEach((stream, i) => {
      stream?.on('data', (d: Buffer) => {
        if (overflow) return;
        if (sizes[i] + d.length > maxBuffer) {
          overflow = codedError('ERR_CHILD_PROCESS_STDIO_MAXBUFFER', `${i === 0 ? 'stdout' : 'stderr'} maxBuffer length exceeded`);
          // What fits is kept, as execFile keeps it.
          chunks[i].push(d.subarray(0, maxBuffer - sizes[i]));
          sizes[i] = maxBuffer;
          p.kill('SIGKILL');
          return;
        }
        sizes[i] += d.length;
        chunks[i].push(d);
      });
    });
    // EPIPE / ECONNRESET once the worker is gone, ERR_STREAM_DESTROYED after its exit: its end.
    p.stdin?.on('error', () => undefined);
    if (input !== undefined) p.stdin?.end(input);
    else p.stdin?.end();
    p.on('error', () => undefined); // the rejection of exited reports it
    let failed = false;
    p.exited.catch((err: Error) => {
      failed = true;
      reject(err);
    });
    p.on('close', () => {
      if (failed) return; // could not start: rejected with why
      p.exited.then((exit) => {
        const stdout = decode(chunks[0]);
        const stderr = decode(chunks[1]);
        if (overflow) return reject(Object.assign(overflow, { stdout, stderr }));
        if (parts.reject && (exit.reason !== 'exit' || exit.code !== 0)) {
          const cmd = commandLine(p);
          const how = exit.reason === 'exit' ? `exit code ${exit.code}` : exit.reason === 'signal' ? `signal ${exit.signal}` : `${exit.reason}${exit.signal ? ` (${exit.signal})` : ''}`;
          const text = Buffer.isBuffer(stderr) ? stderr.toString() : stderr;
          const err = new Error(`Command failed: ${cmd} (${how})${text ? `\n${text}` : ''}`) as ExecIsolatedError;
          Object.assign(err, { code: exit.code, signal: exit.signal, reason: exit.reason, stats: exit.stats, killed: exit.reason !== 'exit' && exit.reason !== 'signal', cmd, stdout, stderr });
          return reject(err);
        }
        resolve({ ...exit, stdout, stderr });
      }, reject);
    });
  });
}

/** `(args, options)` or `(options)`, as execFile takes them: the arguments and the options. */
export function argsAndOptions(argsOrOptions: unknown, maybeOptions: unknown): { args: unknown; options: unknown } {
  if (argsOrOptions !== null && argsOrOptions !== undefined && !Array.isArray(argsOrOptions) && typeof argsOrOptions === 'object' && maybeOptions === undefined) {
    return { args: [], options: argsOrOptions };
  }
  return { args: argsOrOptions, options: maybeOptions };
}
