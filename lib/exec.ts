// execIsolated(): run a worker (alone, or in a group) and collect its output.
import { argsAndOptions, collectOutput, ExecIsolatedResult, execParts, ExecSpawnOptions } from './collect';
import { invalidArgType } from './errors';
import { IsolationGroup } from './group';
import { spawnIsolated } from './spawn';

export type { ExecIsolatedError, ExecIsolatedResult, ExecOwnOptions, ExecSpawnOptions } from './collect';

/** Options of {@link execIsolated}: spawnIsolated's (but `stdio`), and its own. */
export interface ExecIsolatedOptions extends ExecSpawnOptions {
  /** Start the worker in this group (as `group.exec()` does): its budgets hold for it too. */
  group?: IsolationGroup;
}

/** Options whose output is text: `encoding` unset or a text encoding. */
export type ExecTextOptions = ExecIsolatedOptions & { encoding?: BufferEncoding };
/** Options whose output is Buffers: `encoding: 'buffer'` (or null). */
export type ExecBufferOptions = ExecIsolatedOptions & { encoding: 'buffer' | null };

/**
 * Runs `file` under the limits and resolves with its output and how it ended: a limit, a
 * signal and a non-zero code all resolve (`reason` tells which) unless `reject: true`, which
 * rejects them with an {@link ExecIsolatedError} carrying the output. Rejects when it cannot
 * start, or with `ERR_CHILD_PROCESS_STDIO_MAXBUFFER` (the tree is killed) when output passes
 * `maxBuffer`. The result's `stdout` / `stderr` are strings, or Buffers with `encoding: 'buffer'`.
 * Bad options (an unknown `encoding` and a non-bytes `input` included) throw synchronously.
 */
export function execIsolated(file: string, args: readonly string[] | null | undefined, options: ExecBufferOptions): Promise<ExecIsolatedResult<Buffer>>;
export function execIsolated(file: string, options: ExecBufferOptions): Promise<ExecIsolatedResult<Buffer>>;
export function execIsolated(file: string, args?: readonly string[] | null, options?: ExecTextOptions): Promise<ExecIsolatedResult<string>>;
export function execIsolated(file: string, options?: ExecTextOptions): Promise<ExecIsolatedResult<string>>;
export function execIsolated(file: string, args?: readonly string[] | null, options?: ExecIsolatedOptions): Promise<ExecIsolatedResult<string | Buffer>>;
export function execIsolated(file: string, argsOrOptions?: readonly string[] | ExecIsolatedOptions | null, maybeOptions?: ExecIsolatedOptions): Promise<ExecIsolatedResult<string | Buffer>> {
  const { args, options } = argsAndOptions(argsOrOptions, maybeOptions);
  const parts = execParts(options);
  if (parts.group !== undefined && !(parts.group instanceof IsolationGroup)) throw invalidArgType('options.group', 'an instance of IsolationGroup', parts.group);
  const p = parts.group instanceof IsolationGroup ? parts.group.spawn(file, (args ?? []) as string[], parts.spawnOptions) : spawnIsolated(file, (args ?? []) as string[], parts.spawnOptions);
  return collectOutput(p, parts);
}
