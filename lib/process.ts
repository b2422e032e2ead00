import * as diagnostics from 'node:diagnostics_channel';
import { EventEmitter } from 'node:events';
import { debuglog } from 'node:util';
import * as net from 'node:net';
import { Duplex, PassThrough, Readable, Writable } from 'node:stream';
import { DEFAULT_MAX_MESSAGE_SIZE, encodeMessage, LineSplitter, MAX_MESSAGE_DEPTH, messageTooDeep, messageTooLarge, nestedDeeperThan, PARSE_SLICE_BYTES } from './channel';
import { abortError, codedError, invalidArgType, nodeErrno, NodeStyleError } from './errors';
import { DEFAULT_FORCE_KILL_AFTER_MS } from './options';
import { Duration, parseDuration } from './units';
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
  | 'inheritHandles'
  | 'network'
  | 'filesystem'
  | 'disk';

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
export type ExitReason = 'exit' | 'signal' | 'memory' | 'cpu-time' | 'threads' | 'handles' | 'disk' | 'timeout' | 'aborted' | 'killed';

/** Resource use of the worker's whole tree. */
export interface IsolationStats {
  cpuUserMs: number;
  cpuKernelMs: number;
  /**
   * Peak memory in bytes. Windows: the job's peak commit. Linux: the peak of its memory cgroup
   * when it has one (a memory limit, or a group's member); otherwise its own peak RSS as
   * sampled (with `memory.process`), else 0: never the launcher's memory, which a new process
   * shares until its exec.
   */
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
  limit: 'memory' | 'cpu-time' | 'processes' | 'threads' | 'handles' | 'disk';
  /** The process that hit it, when known. */
  pid?: number;
  /** For `'handles'`: the count seen. */
  value?: number;
}

/** Options of `stop()`. */
export interface StopOptions {
  /** The signal sent first. Default: the spawn's `killSignal` (`'SIGTERM'`). */
  signal?: NodeJS.Signals | number;
  /** How long the worker may take to end before its whole tree is killed. Default: the spawn's `forceKillAfter` (5 s; 0: at once). */
  grace?: Duration;
}

const LIMIT_REASONS = new Set(['memory', 'cpu-time', 'threads', 'handles', 'disk']);
const KILL_REASONS = new Set(['killed', 'timeout', 'aborted']);
const MAX_TIMER_MS = 2 ** 31 - 1;

const debug = debuglog('spawn-isolated');
// NODE_DEBUG is read once, as Node reads it. The spawn and exit paths log only when it names us:
// a disabled logger still gathers its arguments into arrays (~4 µs a spawn).
const debugOn = debug.enabled;

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

/**
 * The stdio of a worker that never started, as child_process gives them: readable ends that
 * end at once (so 'close' can follow), and a stdin that takes writes until the failure is
 * reported and is then destroyed (later writes fail in their callback, without an 'error').
 */
function failedStreams(): [Writable, Readable, Readable] {
  const ended = () => {
    const s = new PassThrough();
    s.end();
    s.resume();
    return s;
  };
  const stdin = new Writable({ write: (_chunk, _enc, cb) => cb() });
  return [stdin, ended(), ended()];
}

/**
 * As child_process does with a stream it hands to a child (a socket, a pipe, a TTY: a stream
 * with a libuv handle; not a file stream, whose fd is only borrowed): this process stops reading
 * it, so that the worker, which reads the same description, gets every byte.
 */
export function stopReading(stream: unknown): void {
  const s = stream as Readable & { fd?: unknown; _handle?: { reading?: boolean; readStop?: () => number } | null; _readableState?: { reading?: boolean } };
  if (typeof s.fd === 'number' || !s._handle || typeof s._handle.readStop !== 'function') return;
  s._handle.reading = false;
  s._handle.readStop();
  if (typeof s.pause === 'function' && s.readable) {
    s.pause();
    (s as { readableFlowing: boolean | null }).readableFlowing = false;
    if (s._readableState) s._readableState.reading = false;
  }
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

/** How a worker is asked to end gracefully (see {@link IsolatedProcess.gracefulStop}). */
export type GracefulStop = 'signal' | 'ctrl-break' | 'channel' | 'none';

/** The events of an {@link IsolatedProcess} and their arguments (a misspelt event does not compile). */
export interface IsolatedProcessEvents {
  spawn: [];
  exit: [code: number | null, signal: NodeJS.Signals | null];
  close: [code: number | null, signal: NodeJS.Signals | null];
  /**
   * A failure to start (see `exited`), or, with `channel: 'json'`, a worker's message past the
   * channel's bounds (`ERR_CHANNEL_MESSAGE_TOO_LARGE`, `ERR_CHANNEL_MESSAGE_TOO_DEEP`: the
   * channel is then closed; emitted only to a listener, never thrown).
   */
  error: [err: NodeStyleError];
  limit: [limit: LimitEvent];
  /** A message from the worker (`channel: 'json'`: one JSON value per line, at most `maxMessageSize` bytes and 1000 levels deep). */
  message: [message: unknown];
}

/**
 * A worker running under isolation: an EventEmitter shaped like `ChildProcess`.
 *
 * Events: `'spawn'`, `'exit'` (code, signal), `'close'` (code, signal; after stdio ends),
 * `'error'` (err), `'limit'` ({@link LimitEvent}), `'message'` (`channel: 'json'`).
 */
export class IsolatedProcess extends EventEmitter<IsolatedProcessEvents> {
  /** The worker's process id (undefined when it never started). */
  pid: number | undefined = undefined;
  stdin: Writable | null = null;
  stdout: Readable | null = null;
  stderr: Readable | null = null;
  /** `[stdin, stdout, stderr]`, as `ChildProcess.stdio` (also after a failed start). */
  stdio: [Writable | null, Readable | null, Readable | null] = [null, null, null];
  /** What the worker sees for each `inheritHandles` entry: HANDLE values on Windows, fd numbers on POSIX. */
  inheritedHandles: number[] = [];
  /** Per requested limit, the mechanism actually used. */
  enforcement: Partial<Record<LimitName, LimitEnforcement>> = {};
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  /** True once a signal was delivered to the worker (kill(), stop(), timeout, signal) or its tree was ended. */
  killed = false;
  /**
   * How `stop()`, `timeout` and an aborted `signal` ask this worker to end before its grace
   * runs out: `'signal'` (POSIX: the signal asked for), `'ctrl-break'` (Windows, when the worker
   * shares this process's console: `CTRL_BREAK_EVENT` to its process group, which Go's
   * `os/signal` receives as `os.Interrupt`), `'channel'` (Windows, no shared console but a
   * `channel`: this end is closed, and the worker reads its end) or `'none'` (Windows otherwise:
   * the tree is ended at once).
   */
  gracefulStop: GracefulStop = 'none';
  /** The account the worker runs as (`DOMAIN\\user` on Windows), or null when it has no name (a transient uid). */
  user: string | null = null;
  /** Windows: the session the worker runs in (`options.session`), or null. */
  sessionId: number | null = null;
  /** The worker's private temp directory (`options.tempDir`; always for Windows `'low'`), or null. */
  tempDir: string | null = null;
  /** The private channel to the worker (`options.channel`), or null. */
  channel: Duplex | null = null;
  private jsonChannel = false;
  private maxMessageSize = DEFAULT_MAX_MESSAGE_SIZE;
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
  // Why we asked the worker to end (the first of stop(), timeout, abort, kill('SIGKILL')).
  private killCause: { reason: 'killed' | 'timeout' | 'aborted'; signal: NodeJS.Signals } | undefined;
  private sentSignals = new Set<NodeJS.Signals>();
  private killSignal: NodeJS.Signals = 'SIGTERM';
  private forceKillAfterMs: number | undefined = DEFAULT_FORCE_KILL_AFTER_MS;
  private forceTimer: NodeJS.Timeout | undefined;
  private openStreams = 0;
  private closeEmitted = false;
  private timer: NodeJS.Timeout | undefined;
  private abortCleanup: (() => void) | undefined;
  // A spawn that returned before the worker's exec: 'spawn' once the native layer says it came.
  private spawnOnExec: (() => void) | undefined;
  // An abort before that 'spawn': its AbortError comes after it (as child_process's does), or not
  // at all when the start fails instead.
  private abortAfterSpawn: NodeStyleError | undefined;

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

  /**
   * @internal Failure to start: reported after spawnIsolated() returns, as child_process does:
   * `'error'`, then stdin is destroyed and `'close'` follows (with Node's `exitCode`: the
   * negative errno, when the failure has one).
   */
  _fail(err: NodeStyleError, pipes: readonly boolean[]): void {
    const streams = failedStreams();
    this.stdin = pipes[0] ? streams[0] : null;
    this.stdout = pipes[1] ? streams[1] : null;
    this.stderr = pipes[2] ? streams[2] : null;
    this.stdio = [this.stdin, this.stdout, this.stderr];
    this.describeFailure(err);
    process.nextTick(() => this.reportFailure(err, () => streams[0].destroy()));
  }

  /** `err` as child_process's failed start has it: the arguments, the file, Node's errno. */
  private describeFailure(err: NodeStyleError): void {
    if (err.spawnargs === undefined && err.code !== 'ERR_LIMIT_NOT_ENFORCED') err.spawnargs = this.spawnargs.slice(1);
    if (err.path === undefined && err.code !== 'ERR_LIMIT_NOT_ENFORCED') err.path = this.spawnfile;
    nodeErrno(err);
  }

  /**
   * A failed start's `'error'` and rejected `exited`, then its streams destroyed and `'close'`
   * (with Node's `exitCode`: the negative errno, when the failure has one).
   */
  private reportFailure(err: NodeStyleError, destroyStreams: () => void): void {
    this.exitCode = typeof err.errno === 'number' && err.errno < 0 ? err.errno : null;
    this.rejectExit(err);
    try {
      this.emitError(err);
    } finally {
      destroyStreams();
      if (!this.closeEmitted) {
        this.closeEmitted = true;
        this.emit('close', this.exitCode, null);
      }
    }
  }

  /** Its timers and abort listener go: it has ended, or never started. */
  private stopWatching(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.forceTimer) clearTimeout(this.forceTimer);
    this.abortCleanup?.();
  }

  /** The native record goes: nothing more will be asked of it or come from it. */
  private releaseNative(): void {
    if (this.id !== undefined && this.registry) {
      this.registry.remove(this.id);
      this.registry.binding.release(this.id);
    }
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
    opts: { timeoutMs?: number; signal?: AbortSignal; killSignal: NodeJS.Signals; forceKillAfterMs: number | undefined; channel?: false | 'raw' | 'json'; maxMessageSize?: number },
  ): void {
    this.registry = registry;
    this.killSignal = opts.killSignal;
    this.forceKillAfterMs = opts.forceKillAfterMs;
    this.id = res.id;
    this.pid = res.pid;
    this.inheritedHandles = res.inherited;
    this.tempDir = res.tempDir ?? null;
    this.user = res.user ?? null;
    this.sessionId = res.sessionId ?? null;
    const channelFd = typeof res.channel === 'string' ? Number(res.channel) : undefined;
    this.gracefulStop = res.gracefulStop === 'none' && channelFd !== undefined ? 'channel' : res.gracefulStop;
    if (channelFd !== undefined) this.openChannel(channelFd, opts.channel === 'json', opts.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE);
    this.enforcement = enforcementMap(res.enforcement);
    registry.add(res.id, this);
    if (debugOn) debug('spawn %s pid %d enforcement %j', this.spawnfile, res.pid, this.enforcement);
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
      this.hardKill('killed', 'SIGKILL');
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
      const aborted = this.abortAfterSpawn;
      this.abortAfterSpawn = undefined;
      if (aborted) process.nextTick(() => this.emitError(aborted));
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
    this.stdio = [this.stdin, this.stdout, this.stderr];
    if (res.startPending) {
      this.spawnOnExec = resume;
      // 'spawn' comes before anything the worker sends, as child_process's does: its first data
      // shows that it has exec'd, and can come before the native word that it has.
      for (const s of [...sockets, this.channel]) if (s) this.spawnBeforeData(s);
    } else if (pending === 0) process.nextTick(resume);

    if (opts.timeoutMs !== undefined) this.timer = this.startTimer(opts.timeoutMs, () => this.terminate('timeout', this.killSignal, this.forceKillAfterMs));
    const signal = opts.signal;
    if (signal) {
      const onAbort = () => {
        if (this.result) return;
        this.terminate('aborted', this.killSignal, this.forceKillAfterMs);
        // Next tick: code that aborts and then awaits `exited` has read it by then. Before
        // 'spawn' (the call returned before the worker's exec), once it has come.
        const err = abortError(signal.reason);
        if (this.spawnOnExec) this.abortAfterSpawn = err;
        else process.nextTick(() => this.emitError(err));
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
      if (debugOn) debug('limit %s pid %d: %j', this.spawnfile, this.pid, payload);
      if (channels.limit.hasSubscribers) channels.limit.publish({ process: this, limit: payload });
      this.emit('limit', payload);
      return;
    }
    const spawned = this.spawnOnExec;
    this.spawnOnExec = undefined;
    if (ev.type === 'spawned') {
      spawned?.();
      return;
    }
    if (ev.error) {
      this.failAfterStart(ev.error);
      return;
    }
    spawned?.(); // (an exit always comes after 'spawned' when the exec came)
    this.finish(ev.exitCode, ev.signal, ev.reason, ev.stats);
  }

  /** @internal Emits the pending 'spawn' before the first 'data' event of `s`. */
  private spawnBeforeData(s: Duplex): void {
    const emit = s.emit;
    s.emit = ((event: string | symbol, ...args: unknown[]): boolean => {
      const spawned = this.spawnOnExec;
      if (event === 'data' && spawned) {
        this.spawnOnExec = undefined;
        spawned();
      }
      return emit.call(s, event, ...args);
    }) as typeof s.emit;
  }

  /**
   * @internal A failure to start learnt after spawnIsolated() returned (it returned before the
   * worker's exec): reported as a failed start is, with no 'spawn' before it and no pid, once
   * the streams made for the worker are destroyed.
   */
  private failAfterStart(err: NodeStyleError): void {
    if (this.result || this.closeEmitted) return;
    this.abortAfterSpawn = undefined; // as child_process: a failed start is its only 'error'
    this.stopWatching();
    this.releaseNative();
    this.id = undefined;
    this.pid = undefined;
    this.describeFailure(err);
    if (debugOn) debug('spawn %s failed after the call returned: %s', this.spawnfile, err.message);
    this.reportFailure(err, () => {
      for (const s of [this.stdin, this.stdout, this.stderr, this.channel]) if (s && 'destroy' in s) s.destroy();
    });
  }

  private finish(exitCode: number, signalNum: number, nativeReason: string, stats: NativeStats): void {
    if (this.result) return;
    this.stopWatching();
    // The worker's own status, as the kernel (or its init) reported it.
    let code: number | null = signalNum !== 0 ? null : exitCode;
    let signal: NodeJS.Signals | null = signalNum !== 0 ? signalFromNumber(signalNum) : null;
    // A signal Node has no name for (a real-time one) still ended it: reason 'signal', with
    // neither code nor signal (child_process says code 0).
    let reason: ExitReason = signalNum !== 0 ? 'signal' : 'exit';
    if (nativeReason === 'threads') {
      // The worker ended on its own after the kernel refused it a task.
      reason = 'threads';
    } else if (LIMIT_REASONS.has(nativeReason)) {
      reason = nativeReason as ExitReason;
      // Linux: the worker's own status (SIGKILL for a cgroup OOM or CPU-time kill; a worker
      // refused memory by memory.process ends its own way, Go with exit 2). Windows ends the
      // job with an exit code of its own choosing: reported as a kill.
      if (process.platform === 'win32') {
        code = null;
        signal = 'SIGKILL';
      }
    } else if (KILL_REASONS.has(nativeReason) && this.killCause) {
      // Its tree was ended by us. Windows has no signals: the one asked for is reported.
      reason = nativeReason as ExitReason;
      code = null;
      signal = process.platform === 'win32' || !signal ? this.killCause.signal : signal;
    } else if (this.killCause) {
      // Asked to end (stop(), timeout, signal), it did, in its own way: its real status.
      reason = this.killCause.reason;
    } else if (signal && this.sentSignals.has(signal)) {
      reason = 'killed';
    }
    this.result = { code, signal, reason, stats };
    this.exitCode = code;
    this.signalCode = signal;
    this.releaseNative();
    // As child_process does: nothing can read the worker's stdin any more; and output nobody
    // reads is drained (next tick: a last chance to start reading), so that 'close' can come.
    if (this.stdin && 'destroy' in this.stdin) this.stdin.destroy();
    process.nextTick(() => {
      for (const s of [this.stdout, this.stderr]) if (s && s.readable && s.readableFlowing === null) s.resume();
    });
    this.resolveExit(this.result);
    if (debugOn) debug('exit %s pid %d: %s code %s signal %s', this.spawnfile, this.pid, reason, code, signal);
    if (channels.exit.hasSubscribers) channels.exit.publish({ process: this, exit: this.result });
    // A listener that throws surfaces as child_process's would (uncaught, once); `exited`
    // has settled and 'close' still follows.
    try {
      this.emit('exit', code, signal);
    } finally {
      this.maybeClose();
    }
  }

  /**
   * Node's timers take at most 2^31-1 ms (longer ones fire at once): longer waits are chained.
   * The handle returned is the first; `set` receives each later one.
   */
  private startTimer(ms: number, fire: () => void, set: (t: NodeJS.Timeout) => void = (t) => (this.timer = t)): NodeJS.Timeout {
    const step = Math.min(ms, MAX_TIMER_MS);
    const t = setTimeout(() => (ms > step ? set(this.startTimer(ms - step, fire, set)) : fire()), step);
    t.unref();
    return t;
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

  /** Ends the whole tree now (SIGKILL; Windows: the job terminated). */
  private hardKill(reason: 'killed' | 'timeout' | 'aborted', signal: NodeJS.Signals): boolean {
    if (this.id === undefined || !this.registry || this.result) return false;
    if (!this.killCause) this.killCause = { reason, signal };
    const ok = this.registry.binding.kill(this.id, reason);
    if (ok) this.killed = true;
    return ok;
  }

  /**
   * Our end of the channel, as a socket; with `json`, one JSON value per line each way, at most
   * `maxMessageSize` bytes and {@link MAX_MESSAGE_DEPTH} levels deep (see lib/channel.ts).
   */
  private openChannel(fd: number, json: boolean, maxMessageSize: number): void {
    const sock = new net.Socket({ fd, readable: true, writable: true });
    // Its errors (EPIPE once the worker is gone) are the channel's; a listener of the user's sees them.
    sock.on('error', (err) => debug('channel error %s', err.message));
    this.channel = sock;
    if (!json) return;
    this.jsonChannel = true;
    this.maxMessageSize = maxMessageSize;
    const refuse = (err: NodeStyleError) => {
      splitter.close();
      sock.destroy();
      this.channelError(err);
    };
    // Parsing is the launcher's CPU: after PARSE_SLICE_BYTES in one turn, the socket is paused
    // until the next, so a worker flooding messages within the bounds still shares the loop.
    let parsed = 0;
    const splitter = new LineSplitter(
      maxMessageSize,
      (line) => {
        parsed += line.length;
        if (nestedDeeperThan(line, MAX_MESSAGE_DEPTH)) return refuse(messageTooDeep(MAX_MESSAGE_DEPTH));
        const text = line.toString('utf8');
        if (text.trim() === '') return;
        let msg: unknown;
        try {
          msg = JSON.parse(text);
        } catch {
          debug('channel: not JSON: %s', text.slice(0, 200));
          return;
        }
        this.emit('message', msg);
      },
      (bytes) => refuse(messageTooLarge(bytes, maxMessageSize)),
    );
    sock.on('data', (chunk: Buffer) => {
      splitter.push(chunk);
      if (parsed < PARSE_SLICE_BYTES || sock.destroyed) return;
      sock.pause();
      setImmediate(() => {
        parsed = 0;
        if (!sock.destroyed) sock.resume();
      });
    });
    sock.once('close', () => splitter.close());
  }

  /**
   * A worker's message past the channel's bounds: `'error'` for a listener, and never an
   * uncaught exception when nothing listens (the channel is closed either way; the worker reads
   * its end).
   */
  private channelError(err: NodeStyleError): void {
    debug('channel: %s', err.message);
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  /**
   * Sends `message` to the worker as one line of JSON (`channel: 'json'`). Returns false when
   * the channel's buffer is full (as `stream.write`). Throws `ERR_IPC_CHANNEL_CLOSED` when
   * there is no open JSON channel, and `ERR_OUT_OF_RANGE` when its JSON is longer than
   * `options.maxMessageSize` (nothing is sent then).
   */
  send(message: unknown): boolean {
    if (!this.jsonChannel || !this.channel || this.channel.destroyed || !this.channel.writable) {
      throw codedError('ERR_IPC_CHANNEL_CLOSED', 'Channel closed (spawn with channel: \'json\' to send messages)');
    }
    return this.channel.write(`${encodeMessage(message, this.maxMessageSize)}\n`);
  }

  /** `signal` to the worker itself (Linux: through its init; Windows: CTRL_BREAK_EVENT). */
  private deliver(signal: NodeJS.Signals): boolean {
    if (this.id === undefined || !this.registry || this.result) return false;
    if (this.gracefulStop === 'channel') {
      // Windows without a console: the worker reads the end of its channel as the request.
      this.channel?.destroy();
      this.killed = true;
      this.sentSignals.add(signal);
      return true;
    }
    const ok = this.registry.binding.signal(this.id, signalNumber(signal));
    if (ok) {
      this.killed = true;
      this.sentSignals.add(signal);
    }
    return ok;
  }

  /** Asks the worker to end with `signal`, then ends its tree after `graceMs` (undefined: never). */
  private terminate(reason: 'killed' | 'timeout' | 'aborted', signal: NodeJS.Signals, graceMs: number | undefined): boolean {
    if (this.id === undefined || !this.registry || this.result) return false;
    if (signal === 'SIGKILL' || graceMs === 0 || this.gracefulStop === 'none') return this.hardKill(reason, signal);
    if (!this.killCause) this.killCause = { reason, signal };
    const sent = this.deliver(signal);
    if (graceMs !== undefined && !this.forceTimer) {
      this.forceTimer = this.startTimer(graceMs, () => this.hardKill(reason, signal), (t) => (this.forceTimer = t));
    }
    return sent;
  }

  /**
   * Sends `signal` to the worker, as `child_process` does: it is the worker's to handle (Go:
   * `signal.Notify`), and its exit reports its own code or signal (reason `'killed'` when that
   * signal ended it). `'SIGKILL'` ends the whole tree (reason `'killed'`). Windows has no
   * signals: any signal ends the tree there, reported with the signal asked for. `kill(0)` only
   * tells whether the worker is alive. Use `stop()` to end a worker gracefully.
   */
  kill(signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    if (signal === 0) return this.id !== undefined && !this.result;
    const sig = signalName(signal, 'signal');
    if (sig === 'SIGKILL' || process.platform === 'win32') return this.hardKill('killed', sig);
    return this.deliver(sig);
  }

  /**
   * Ends the worker gracefully: sends `signal` (default: `killSignal`, `'SIGTERM'`), waits up
   * to `grace` (default: `forceKillAfter`, 5 s) for it to end, then kills its whole tree.
   * Resolves with the exit (reason `'killed'`, with the worker's own code or signal when it
   * ended in time). Windows has no signals: see {@link gracefulStop} for what the worker gets.
   */
  stop(options: StopOptions = {}): Promise<IsolatedExit> {
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
    const signal = options.signal === undefined ? this.killSignal : signalName(options.signal, 'options.signal');
    const grace = options.grace === undefined ? this.forceKillAfterMs : parseDuration(options.grace, 'options.grace', { zero: true });
    if (!this.result) this.terminate('killed', signal, grace);
    return this.exited;
  }

  /**
   * The worker no longer keeps this process's event loop alive (its stdio pipes still do, as
   * with `child_process`: use `stdio: 'ignore'` or destroy them). With `killOnClose: true` the
   * tree still ends when this process exits.
   */
  unref(): this {
    if (this.id !== undefined && this.registry && !this.result) this.registry.binding.ref(this.id, false);
    (this.channel as net.Socket | null)?.unref();
    return this;
  }

  /** Undoes unref(). */
  ref(): this {
    if (this.id !== undefined && this.registry && !this.result) this.registry.binding.ref(this.id, true);
    (this.channel as net.Socket | null)?.ref();
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
