import { EventEmitter } from 'node:events';
import { argsAndOptions, collectOutput, ExecBufferSpawnOptions, ExecIsolatedResult, execParts, ExecSpawnOptions, ExecTextSpawnOptions } from './collect';
import { codedError, invalidArgType, invalidArgValue } from './errors';
import { EnforcementMode, IsolationOptions, memoryAtLeastFloor, NativeLimits } from './options';
import { bool, checkKeys, cores, integer, isPlainObject, isStrict, MAX_TASKS, ownProps, taskLimit } from './validate';
import { enforcementMap, IsolatedProcess, IsolationStats, LimitEnforcement, LimitEvent, LimitName, Registry } from './process';
import { ByteSize, parseByteSize } from './units';

/** Budgets shared by every worker of a group. */
export interface GroupLimits {
  /** Memory of all the workers' trees together. */
  memory?: ByteSize;
  /** Cores all the workers together may use (fractional allowed, hard cap). */
  cpu?: number;
  /** Processes of all the workers' trees alive at once (Linux: x 64 tasks, see README). */
  processes?: number;
  /** Default `'strict'`: a budget this host cannot enforce makes createIsolationGroup() throw. */
  enforcement?: EnforcementMode;
  /** Default true: the workers die when this process dies. */
  killOnClose?: boolean;
}

/** The `'limit'` event of a group: which worker hit which limit. */
export interface GroupLimitEvent extends LimitEvent {
  worker: IsolatedProcess;
}

export interface NormalizedGroup {
  limits: NativeLimits;
  strict: boolean;
  killOnClose: boolean;
}

export function normalizeGroupLimits(given: unknown): NormalizedGroup {
  if (given === undefined) given = {};
  if (!isPlainObject(given)) throw invalidArgType('limits', 'of type object', given);
  const v = ownProps(given, 'limits');
  checkKeys(v, ['memory', 'cpu', 'processes', 'enforcement', 'killOnClose'], 'limits');
  const limits = Object.create(null) as NativeLimits; // no prototype to inherit a limit from
  if (v.memory !== undefined) limits.memoryTotal = memoryAtLeastFloor(parseByteSize(v.memory, 'limits.memory'), 'limits.memory', v.memory);
  if (v.cpu !== undefined) limits.cpuCores = cores(v.cpu, 'limits.cpu');
  if (v.processes !== undefined) limits.processes = integer(v.processes, 'limits.processes', 1, MAX_TASKS);
  const tasks = taskLimit(limits.processes, undefined);
  if (tasks !== undefined) limits.threads = tasks;
  return { limits, strict: isStrict(v.enforcement, 'limits.enforcement'), killOnClose: bool(v.killOnClose, 'limits.killOnClose', true) };
}

export type Launch = (file: string, args: unknown, options: unknown, group: { id: number; limits: NativeLimits }) => IsolatedProcess;

/**
 * Workers that share one job (Windows) / one parent cgroup (Linux): the group's memory, CPU
 * and process budgets hold for all of them together; each worker's own options still apply.
 *
 * Events: `'limit'` ({@link GroupLimitEvent}).
 */
/** The events of an {@link IsolationGroup}. */
export interface IsolationGroupEvents {
  limit: [limit: GroupLimitEvent];
}

export class IsolationGroup extends EventEmitter<IsolationGroupEvents> {
  /** How each budget is enforced. */
  readonly enforcement: Partial<Record<LimitName, LimitEnforcement>>;
  private readonly members = new Set<IsolatedProcess>();
  private closing: Promise<void> | undefined;
  private finalStats: IsolationStats | undefined;

  /** @internal */
  constructor(
    private readonly registry: Registry,
    private readonly id: number,
    private readonly limits: NativeLimits,
    enforcement: { limit: string; mechanism: string; enforced: boolean; reason?: string }[],
    private readonly launch: Launch,
  ) {
    super();
    this.enforcement = enforcementMap(enforcement);
  }

  /** Starts a worker in the group; same arguments and result as spawnIsolated(). */
  spawn(file: string, args?: readonly string[], options?: IsolationOptions): IsolatedProcess;
  spawn(file: string, options?: IsolationOptions): IsolatedProcess;
  spawn(file: string, argsOrOptions?: readonly string[] | IsolationOptions, maybeOptions?: IsolationOptions): IsolatedProcess {
    if (this.closing) throw codedError('ERR_INVALID_STATE', 'The isolation group is closed');
    const p = this.launch(file, argsOrOptions, maybeOptions, { id: this.id, limits: this.limits });
    this.members.add(p);
    p.on('limit', (l: LimitEvent) => this.emit('limit', { ...l, worker: p } satisfies GroupLimitEvent));
    p.exited.then(
      () => this.members.delete(p),
      () => this.members.delete(p),
    );
    return p;
  }

  /**
   * As `execIsolated()`, inside the group: runs `file`, resolves with its output and how it
   * ended (or, with `reject: true`, rejects when it did not exit with 0).
   */
  exec(file: string, args: readonly string[] | null | undefined, options: ExecBufferSpawnOptions): Promise<ExecIsolatedResult<Buffer>>;
  exec(file: string, options: ExecBufferSpawnOptions): Promise<ExecIsolatedResult<Buffer>>;
  exec(file: string, args?: readonly string[] | null, options?: ExecTextSpawnOptions): Promise<ExecIsolatedResult<string>>;
  exec(file: string, options?: ExecTextSpawnOptions): Promise<ExecIsolatedResult<string>>;
  exec(file: string, args?: readonly string[] | null, options?: ExecSpawnOptions): Promise<ExecIsolatedResult<string | Buffer>>;
  exec(file: string, argsOrOptions?: readonly string[] | ExecSpawnOptions | null, maybeOptions?: ExecSpawnOptions): Promise<ExecIsolatedResult<string | Buffer>> {
    const { args, options } = argsAndOptions(argsOrOptions, maybeOptions);
    const parts = execParts(options);
    if (parts.group !== undefined) throw invalidArgValue('options.group', parts.group, 'cannot be set for group.exec(): the worker starts in this group');
    return collectOutput(this.spawn(file, (args ?? []) as string[], parts.spawnOptions), parts);
  }

  /** The workers still running. */
  get workers(): IsolatedProcess[] {
    return [...this.members];
  }

  /** Resource use of the whole group (after close(): the final figures). */
  stats(): IsolationStats {
    if (this.finalStats) return this.finalStats;
    const s = this.registry.binding.groupStats(this.id);
    if (s.processes.active === 0 && this.members.size > 0) s.processes.active = this.members.size;
    return s;
  }

  /** Sends `signal` to every worker, as `IsolatedProcess.kill` does (`'SIGKILL'` ends each tree). */
  kill(signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    let any = false;
    for (const p of this.members) any = p.kill(signal) || any;
    return any;
  }

  /** Ends what is left and releases the job / cgroup. Spawning afterwards is ERR_INVALID_STATE. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const left = [...this.members];
      for (const p of left) p.kill('SIGKILL');
      await Promise.allSettled(left.map((p) => p.exited));
      this.finalStats = this.registry.binding.groupStats(this.id);
      this.registry.binding.releaseGroup(this.id);
    })();
    return this.closing;
  }
}
