import { EventEmitter } from 'node:events';
import { codedError, invalidArgType, invalidArgValue, outOfRange } from './errors';
import { EnforcementMode, IsolationOptions, NativeLimits } from './options';
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

export function normalizeGroupLimits(v: unknown): NormalizedGroup {
  if (v === undefined) v = {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalidArgType('limits', 'of type object', v);
  const o = v as Record<string, unknown>;
  const known = ['memory', 'cpu', 'processes', 'enforcement', 'killOnClose'];
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) throw invalidArgValue(`limits.${k}`, o[k], `is not a known group limit (known: ${known.join(', ')})`);
  }
  const limits: NativeLimits = {};
  if (o.memory !== undefined) limits.memoryTotal = parseByteSize(o.memory, 'limits.memory');
  if (o.cpu !== undefined) {
    if (typeof o.cpu !== 'number') throw invalidArgType('limits.cpu', 'of type number', o.cpu);
    if (!Number.isFinite(o.cpu) || o.cpu < 0.01 || o.cpu > 4096) throw outOfRange('limits.cpu', 'a number of cores >= 0.01 and <= 4096', o.cpu);
    limits.cpuCores = o.cpu;
  }
  if (o.processes !== undefined) {
    if (typeof o.processes !== 'number') throw invalidArgType('limits.processes', 'of type number', o.processes);
    if (!Number.isInteger(o.processes) || o.processes < 1 || o.processes > 2 ** 31 - 1) {
      throw outOfRange('limits.processes', 'an integer >= 1', o.processes);
    }
    limits.processes = o.processes;
  }
  if (o.enforcement !== undefined && o.enforcement !== 'strict' && o.enforcement !== 'best-effort') {
    throw invalidArgValue('limits.enforcement', o.enforcement, "must be 'strict' or 'best-effort'");
  }
  if (o.killOnClose !== undefined && typeof o.killOnClose !== 'boolean') throw invalidArgType('limits.killOnClose', 'of type boolean', o.killOnClose);
  return { limits, strict: o.enforcement !== 'best-effort', killOnClose: o.killOnClose !== false };
}

export type Launch = (file: string, args: unknown, options: unknown, group: { id: number; limits: NativeLimits }) => IsolatedProcess;

/**
 * Workers that share one job (Windows) / one parent cgroup (Linux): the group's memory, CPU
 * and process budgets hold for all of them together; each worker's own options still apply.
 *
 * Events: `'limit'` ({@link GroupLimitEvent}).
 */
export class IsolationGroup extends EventEmitter {
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

  /** Ends every worker's tree (each reports reason 'killed'). */
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
