import * as diagnostics from 'node:diagnostics_channel';
import { EventEmitter } from 'node:events';
import { debuglog } from 'node:util';
import * as net from 'node:net';
import { PassThrough, Readable, Writable } from 'node:stream';
import { abortError, NodeStyleError } from './errors';
import { NativeBinding, NativeEvent, NativeSpawnResult, NativeStats } from './native';
import { signalFromNumber, signalName, signalNumber } from './signals';

/** Names of the limits, as used in `enforcement`, `isolationSupport()` and errors. */
export type LimitName =
  | 'memory.process'
  | 'memory.total'
  | 'cpu.cores'
  | 'cpu.time'
  | 'cpu.affinity'
  | 'processes'
  | 'threads'
  | 'handles'
  | 'privileges'
  | 'killOnClose'
  | 'inheritHandles';

/** How one limit is (or would be) enforced. */
export interface LimitEnforcement {
  /** True when the OS enforces it on this host. */
  enforced: boolean;
  /** The mechanism: `'job-object'`, `'job-object-cpu-rate'`, `'watchdog'`, `'restricted-token'`, `'cgroup-v2'`, `'rlimit'`, `'none'`, ... */
  mechanism: string;
  /** Why it is not enforced. */
  reason?: string;
}

/** Why the worker ended. */
export type ExitReason = 'exit' | 'signal' | 'memory' | 'cpu-time' | 'threads' | 'handles' | 'timeout' | 'aborted' | 'killed';

/** Resource use of the worker's whole tree. */
export interface IsolationStats {
  cpuUserMs: number;
  cpuKernelMs: number;
  /** Peak memory in bytes (Windows: peak job commit; Linux: cgroup peak or peak RSS). */
  peakMemory: number;
  processes: { active: number; total: number };
}

/** How the worker ended. */
export interface IsolatedExit {
  /** The exit code, or null when the tree was ended by a signal, a kill or a limit. */
  code: number | null;
  signal: NodeJS.Signals | null;
  reason: ExitReason;
  stats: IsolationStats;
}

/** Payload of the `'limit'` event. */
export interface LimitEvent {
  limit: 'memory' | 'cpu-time' | 'processes' | 'threads' | 'handles';
  /** The process that hit it, when known. */
  pid?: number;
  /** For `'handles'`: the count seen. */
  value?: number;
}

const LIMIT_REASONS = new Set(['memory', 'cpu-time', 'threads', 'handles']);
const KILL_REASONS = new Set(['killed', 'timeout', 'aborted']);
const MAX_TIMER_MS = 2 ** 31 - 1;

const debug = debuglog('spawn-isolated');

/**
 * `diagnostics_channel` channels, as Node has for child_process: `spawn-isolated:spawn`
 * (`{ process, file, args, pid, enforcement }`), `spawn-isolated:limit` (`{ process, limit }`)
 * and `spawn-isolated:exit` (`{ process, exit }`). Nothing is published without a subscriber.
 */
export const channels = {
  spawn: diagnostics.channel('spawn-isolated:spawn'),
  limit: diagnostics.channel('spawn-isolated:limit'),
  exit: diagnostics.channel('spawn-isolated:exit'),
};

function zeroStats(): IsolationStats {
  return { cpuUserMs: 0, cpuKernelMs: 0, peakMemory: 0, processes: { active: 0, total: 0 } };
}

function endedStreams(): [Writable, Readable, Readable] {
  const make = () => {
    const s = new PassThrough();
    s.end();
    s.resume();
    return s;
  };
  return [make(), make(), make()];
}

/** The native layer's list of enforcement entries, keyed by limit name. */
export function enforcementMap(list: NativeSpawnResult['enforcement']): Partial<Record<LimitName, LimitEnforcement>> {
  const out: Partial<Record<LimitName, LimitEnforcement>> = {};
  for (const e of list) {
    out[e.limit as LimitName] = e.reason === undefined ? { enforced: e.enforced, mechanism: e.mechanism } : { enforced: e.enforced, mechanism: e.mechanism, reason: e.reason };
  }
  return out;
}

/** Internal wiring between a process object and the module that owns the addon. */
export interface Registry {
  binding: NativeBinding;
  add(id: number, proc: IsolatedProcess): void;
  remove(id: number): void;
}

/**
 * A worker running under isolation: an EventEmitter shaped like `ChildProcess`.
 *
 * Events: `'spawn'`, `'exit'` (code, signal), `'close'` (code, signal; after stdio ends),
 * `'error'` (err), `'limit'` ({@link LimitEvent}).
 */
/** The events of an {@link IsolatedProcess} and their arguments (a misspelt event does not compile). */
export interface IsolatedProcessEvents {
  spawn: [];
  exit: [code: number | null, signal: NodeJS.Signals | null];
  close: [code: number | null, signal: NodeJS.Signals | null];
  error: [err: NodeStyleError];
  limit: [limit: LimitEvent];
}

export class IsolatedProcess extends EventEmitter<IsolatedProcessEvents> {
  /** The worker's process id (undefined when it never started). */
  pid: number | undefined = undefined;
  stdin: Writable | null = null;
  stdout: Readable | null = null;
  stderr: Readable | null = null;
  /** What the worker sees for each `inheritHandles` entry: HANDLE values on Windows, fd numbers on POSIX. */
  inheritedHandles: number[] = [];
  /** Per requested limit, the mechanism actually used. */
  enforcement: Partial<Record<LimitName, LimitEnforcement>> = {};
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  /** True once kill() has ended (or started to end) the tree. */
  killed = false;
  readonly spawnfile: string;
  readonly spawnargs: string[];
  /**
   * Resolves when the worker has exited; rejects when it could not start (or was aborted).
   * Reading it counts as handling that failure: an `'error'` event with no listener is then
   * not emitted (it would crash the process), so `try { await p.exited } catch {}` is safe.
   */
  get exited(): Promise<IsolatedExit> {
    this.exitedRead = true;
    return this.exitPromise;
  }
  private readonly exitPromise: Promise<IsolatedExit>;
  private exitedRead = false;

  private resolveExit!: (e: IsolatedExit) => void;
  private rejectExit!: (e: Error) => void;
  private id: number | undefined;
  private registry: Registry | undefined;
  private result: IsolatedExit | undefined;
  private killCause: { reason: 'killed' | 'timeout' | 'aborted'; signal: NodeJS.Signals } | undefined;
  private openStreams = 0;
  private closeEmitted = false;
  private timer: NodeJS.Timeout | undefined;
  private abortCleanup: (() => void) | undefined;

  /** @internal */
  constructor(file: string, args: string[]) {
    super();
    this.spawnfile = file;
    this.spawnargs = [file, ...args];
    this.exitPromise = new Promise<IsolatedExit>((resolve, reject) => {
      this.resolveExit = resolve;
      this.rejectExit = reject;
    });
    this.exitPromise.catch(() => {}); // the 'error' event reports it too; never an unhandled rejection
  }

  /** @internal Failure to start: reported after spawnIsolated() returns, like child_process. */
  _fail(err: NodeStyleError, pipes: readonly boolean[]): void {
    const ended = endedStreams();
    this.stdin = pipes[0] ? ended[0] : null;
    this.stdout = pipes[1] ? ended[1] : null;
    this.stderr = pipes[2] ? ended[2] : null;
    if (err.spawnargs === undefined && err.code !== 'ERR_LIMIT_NOT_ENFORCED') err.spawnargs = this.spawnargs.slice(1);
    if (err.path === undefined && err.code !== 'ERR_LIMIT_NOT_ENFORCED') err.path = this.spawnfile;
    process.nextTick(() => {
      this.rejectExit(err);
      this.emitError(err);
    });
  }

  /**
   * `'error'`, as child_process emits it, except that with no listener and `exited` read the
   * failure is the rejection's alone (an unhandled 'error' would end the process).
   */
  private emitError(err: NodeStyleError): void {
    if (this.listenerCount('error') === 0 && this.exitedRead) return;
    this.emit('error', err);
  }

  /** @internal */
  _start(
    registry: Registry,
    res: NativeSpawnResult,
    opts: { timeoutMs?: number; signal?: AbortSignal; killSignal: NodeJS.Signals },
  ): void {
    this.registry = registry;
    this.id = res.id;
    this.pid = res.pid;
    this.inheritedHandles = res.inherited;
    this.enforcement = enforcementMap(res.enforcement);
    registry.add(res.id, this);
    debug('spawn %s pid %d enforcement %j', this.spawnfile, res.pid, this.enforcement);
    if (channels.spawn.hasSubscribers) {
      channels.spawn.publish({ process: this, file: this.spawnfile, args: this.spawnargs.slice(1), pid: res.pid, enforcement: this.enforcement });
    }

    const sockets: net.Socket[] = [];
    let pending = 0;
    let failed = false;
    const onConnectError = (err: Error) => {
      if (failed) return;
      failed = true;
      for (const s of sockets) s.destroy();
      const e = err as NodeStyleError;
      e.message = `spawn ${this.spawnfile}: could not connect the worker's stdio: ${e.message}`;
      this.killInternal('killed', opts.killSignal);
      this.emitError(e);
    };
    const resume = () => {
      if (failed || this.result) return;
      try {
        registry.binding.resume(res.id);
      } catch (err) {
        onConnectError(err as Error);
        return;
      }
      this.emit('spawn');
    };
    res.pipes.forEach((p, i) => {
      if (p === null || p === undefined) return;
      let sock: net.Socket;
      const fd = typeof p === 'number' ? p : /^\d+$/.test(p) ? Number(p) : undefined;
      if (fd === undefined) {
        // Windows: a named pipe whose server end the worker holds; connect as its only client.
        pending++;
        sock = net.connect(String(p));
        sock.once('error', onConnectError);
        sock.once('connect', () => {
          sock.removeListener('error', onConnectError);
          if (--pending === 0) resume();
        });
      } else {
        // POSIX: our end of a socketpair.
        sock = new net.Socket({ fd, readable: i !== 0, writable: i === 0 });
      }
      sockets.push(sock);
      this.openStreams++;
      sock.once('close', () => this.streamClosed());
      if (i === 0) this.stdin = sock;
      else if (i === 1) this.stdout = sock;
      else this.stderr = sock;
    });
    if (pending === 0) process.nextTick(resume);

    if (opts.timeoutMs !== undefined) this.startTimer(opts.timeoutMs, () => this.killInternal('timeout', opts.killSignal));
    const signal = opts.signal;
    if (signal) {
      const onAbort = () => {
        if (this.result) return;
        this.killInternal('aborted', opts.killSignal);
        // Next tick: code that aborts and then awaits `exited` has read it by then.
        const err = abortError(signal.reason);
        process.nextTick(() => this.emitError(err));
      };
      if (signal.aborted) process.nextTick(onAbort);
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        this.abortCleanup = () => signal.removeEventListener('abort', onAbort);
      }
    }
  }

  /** @internal An event from the native layer for this worker. */
  _event(ev: NativeEvent): void {
    if (ev.type === 'limit') {
      const payload: LimitEvent = { limit: ev.limit as LimitEvent['limit'] };
      if (ev.pid) payload.pid = ev.pid;
      if (ev.value) payload.value = ev.value;
      debug('limit %s pid %d: %j', this.spawnfile, this.pid, payload);
      if (channels.limit.hasSubscribers) channels.limit.publish({ process: this, limit: payload });
      this.emit('limit', payload);
      return;
    }
    this.finish(ev.exitCode, ev.signal, ev.reason, ev.stats);
  }

  private finish(exitCode: number, signalNum: number, nativeReason: string, stats: NativeStats): void {
    if (this.result) return;
    if (this.timer) clearTimeout(this.timer);
    this.abortCleanup?.();
    let code: number | null = exitCode;
    let signal: NodeJS.Signals | null = null;
    let reason: ExitReason = 'exit';
    if (nativeReason === 'threads') {
      // The worker ended on its own after the kernel refused it a task: its real status.
      reason = 'threads';
      code = signalNum !== 0 ? null : exitCode;
      signal = signalNum !== 0 ? signalFromNumber(signalNum) : null;
    } else if (LIMIT_REASONS.has(nativeReason)) {
      reason = nativeReason as ExitReason;
      code = null;
      signal = 'SIGKILL';
    } else if (KILL_REASONS.has(nativeReason) && this.killCause) {
      reason = this.killCause.reason;
      code = null;
      signal = this.killCause.signal;
    } else if (signalNum !== 0) {
      reason = 'signal';
      code = null;
      signal = signalFromNumber(signalNum);
    }
    this.result = { code, signal, reason, stats };
    this.exitCode = code;
    this.signalCode = signal;
    if (this.id !== undefined && this.registry) {
      this.registry.remove(this.id);
      this.registry.binding.release(this.id);
    }
    // As child_process does: nothing can read the worker's stdin any more.
    if (this.stdin && 'destroy' in this.stdin) this.stdin.destroy();
    this.resolveExit(this.result);
    debug('exit %s pid %d: %s code %s signal %s', this.spawnfile, this.pid, reason, code, signal);
    if (channels.exit.hasSubscribers) channels.exit.publish({ process: this, exit: this.result });
    // A listener that throws surfaces as child_process's would (uncaught, once); `exited`
    // has settled and 'close' still follows.
    try {
      this.emit('exit', code, signal);
    } finally {
      this.maybeClose();
    }
  }

  /** Node's timers take at most 2^31-1 ms (longer ones fire at once): longer waits are chained. */
  private startTimer(ms: number, fire: () => void): void {
    const step = Math.min(ms, MAX_TIMER_MS);
    this.timer = setTimeout(() => (ms > step ? this.startTimer(ms - step, fire) : fire()), step);
    this.timer.unref();
  }

  private streamClosed(): void {
    this.openStreams--;
    this.maybeClose();
  }

  private maybeClose(): void {
    if (this.closeEmitted || !this.result || this.openStreams > 0) return;
    this.closeEmitted = true;
    const r = this.result;
    process.nextTick(() => this.emit('close', r.code, r.signal));
  }

  private killInternal(reason: 'killed' | 'timeout' | 'aborted', signal: NodeJS.Signals): boolean {
    if (this.id === undefined || !this.registry || this.result) return false;
    if (!this.killCause) this.killCause = { reason, signal };
    const ok = this.registry.binding.kill(this.id, reason, signalNumber(signal) || 9);
    if (ok) this.killed = true;
    return ok;
  }

  /**
   * Ends the whole tree. The exit is reported with `signal` set to this signal's name and
   * `code` null, reason `'killed'`. `kill(0)` only tells whether the worker is alive.
   */
  kill(signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    if (signal === 0) return this.id !== undefined && !this.result;
    return this.killInternal('killed', signalName(signal, 'signal'));
  }

  /**
   * The worker no longer keeps this process's event loop alive (its stdio pipes still do, as
   * with `child_process`: use `stdio: 'ignore'` or destroy them). With `killOnClose: true` the
   * tree still ends when this process exits.
   */
  unref(): this {
    if (this.id !== undefined && this.registry && !this.result) this.registry.binding.ref(this.id, false);
    return this;
  }

  /** Undoes unref(). */
  ref(): this {
    if (this.id !== undefined && this.registry && !this.result) this.registry.binding.ref(this.id, true);
    return this;
  }

  /** `using`: ends the tree (SIGKILL) if it still runs. */
  [Symbol.dispose](): void {
    if (!this.result) this.kill('SIGKILL');
  }

  /** `await using`: ends the tree if it still runs, and waits for its exit. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.result) this.kill('SIGKILL');
    await this.exitPromise.catch(() => undefined);
  }

  /** Live resource use of the tree (after exit: the final figures). */
  stats(): IsolationStats {
    if (this.result) return this.result.stats;
    if (this.id === undefined || !this.registry) return zeroStats();
    return this.registry.binding.stats(this.id);
  }
}
