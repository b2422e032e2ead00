import { constants as osConstants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { codedError, invalidArgType, invalidArgValue, outOfRange } from './errors';
import { ByteSize, Duration, parseByteSize, parseDuration } from './units';

/** One stdio slot: a new pipe, the null device, this process's own stdio, or a Node fd. */
export type StdioEntry = 'pipe' | 'ignore' | 'inherit' | number | null | undefined;
/** stdio for the worker's fds 0-2, as in `child_process.spawn` (at most 3 entries). */
export type StdioOption = 'pipe' | 'ignore' | 'inherit' | readonly StdioEntry[];

/** Memory limits. `process`: commit of any one process of the tree; `total`: the whole tree. */
export interface MemoryLimit {
  process?: ByteSize;
  total?: ByteSize;
}

/** CPU limits. */
export interface CpuLimit {
  /** Cores the whole tree may use, fractional allowed (0.5 = half of one core), hard-capped. */
  cores?: number;
  /** CPU time budget of each process of the tree. */
  time?: Duration;
  /** Logical CPUs (0-based) the tree may run on. */
  affinity?: readonly number[];
}

/** An extra handle for the worker: a Node fd, or `{ handle }`, a raw Windows HANDLE value. */
export type InheritHandle = number | { handle: number | bigint };

/**
 * - `'restricted'`: every privilege removed, Administrators deny-only, medium integrity
 *   (POSIX: no_new_privs and no capabilities).
 * - `'low'`: restricted and low integrity (POSIX: plus a seccomp deny-list).
 * - `'inherit'`: the caller's own token / credentials.
 */
export type PrivilegeLevel = 'restricted' | 'low' | 'inherit';

/**
 * `'strict'`: a requested limit this host cannot enforce fails the spawn with
 * `ERR_LIMIT_NOT_ENFORCED`. `'best-effort'`: run anyway; `enforcement` tells the gap.
 */
export type EnforcementMode = 'strict' | 'best-effort';

/** Options of {@link spawnIsolated}. Every field is optional; unknown keys are an error. */
export interface IsolationOptions {
  /** Working directory of the worker (a path or a `file:` URL). */
  cwd?: string | URL;
  /** Environment of the worker. Default: `process.env`. */
  env?: NodeJS.ProcessEnv | Record<string, string | number | boolean | undefined>;
  /** Default `'pipe'`. */
  stdio?: StdioOption;
  /** Aborting it ends the tree (exit reason `'aborted'`) and emits an `AbortError`. */
  signal?: AbortSignal;
  /** Wall-clock limit; when it passes the tree is ended (exit reason `'timeout'`). */
  timeout?: Duration;
  /** Signal reported for a kill by `timeout` or `signal`. Default `'SIGTERM'`. */
  killSignal?: NodeJS.Signals | number;
  /** Hide the worker's console window (Windows). Default true. */
  windowsHide?: boolean;
  /** A limit for the whole tree, or `{ process, total }`. */
  memory?: ByteSize | MemoryLimit;
  /** A number of cores, or `{ cores, time, affinity }`. */
  cpu?: number | CpuLimit;
  /** The most processes of the tree alive at once, the worker included (1 = no child processes). */
  processes?: number;
  /**
   * The most tasks (processes and their threads together) of the tree alive at once. Default,
   * when `processes` is set: `processes` x {@link THREADS_PER_PROCESS} (Linux; Windows jobs have
   * no thread limit, so an explicit `threads` is refused there in strict mode).
   */
  threads?: number;
  /** The most handles (Windows) / file descriptors (POSIX) one process of the tree may hold. */
  handles?: number;
  /** Extra handles the worker receives; nothing else besides its stdio is inherited. */
  inheritHandles?: readonly InheritHandle[];
  /** Default `'restricted'`. */
  privileges?: PrivilegeLevel;
  /** The tree dies when this process dies, however it dies. Default true. */
  killOnClose?: boolean;
  /** Set GOMAXPROCS / GOMEMLIMIT from the limits when the env does not set them. Default true. */
  go?: boolean;
  /** Default `'strict'`. */
  enforcement?: EnforcementMode;
  /** POSIX only: run the worker as this user id. */
  uid?: number;
  /** POSIX only: run the worker as this group id (supplementary groups are cleared). */
  gid?: number;
}

/** The limits as the native layer takes them (0 / absent = not requested). */
export interface NativeLimits {
  memoryProcess?: number;
  memoryTotal?: number;
  cpuCores?: number;
  cpuTimeMs?: number;
  affinity?: number[];
  processes?: number;
  threads?: number;
  handles?: number;
}

export interface Normalized {
  file: string;
  args: string[]; // without argv0
  cwd?: string;
  env: Record<string, string>;
  stdio: ['pipe' | 'ignore' | 'inherit' | number, 'pipe' | 'ignore' | 'inherit' | number, 'pipe' | 'ignore' | 'inherit' | number];
  signal?: AbortSignal;
  timeoutMs?: number;
  killSignal: NodeJS.Signals;
  windowsHide: boolean;
  limits: NativeLimits;
  inherit: { raw: boolean; value: number | bigint }[];
  privileges: PrivilegeLevel;
  privilegesExplicit: boolean;
  /** `limits.threads` was derived from `processes`, not asked for. */
  threadsImplied: boolean;
  killOnClose: boolean;
  go: boolean;
  strict: boolean;
  uid?: number;
  gid?: number;
}

const KNOWN_KEYS = new Set([
  'cwd', 'env', 'stdio', 'signal', 'timeout', 'killSignal', 'windowsHide', 'memory', 'cpu', 'processes', 'threads', 'handles',
  'inheritHandles', 'privileges', 'killOnClose', 'go', 'enforcement', 'uid', 'gid',
]);

function noNul(name: string, s: string): string {
  if (s.includes('\u0000')) throw invalidArgValue(name, s, 'must be a string without null bytes');
  return s;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A one-time snapshot of `v`'s own enumerable properties, on an object without a prototype:
 * options are read only from it, so a polluted `Object.prototype` (or a getter that answers
 * differently the second time) changes nothing.
 */
export function ownProps(v: Record<string, unknown>): Record<string, unknown> {
  const o = Object.create(null) as Record<string, unknown>;
  for (const k of Object.keys(v)) o[k] = v[k];
  return o;
}

/** Tasks (threads) allowed per allowed process when `threads` is not given. */
export const THREADS_PER_PROCESS = 64;
/** The most tasks Linux can count (PID_MAX_LIMIT); also the bound of `processes`. */
export const MAX_TASKS = 4194304;

/** `threads` as asked, or derived from `processes`. */
export function taskLimit(processes: number | undefined, threads: number | undefined): number | undefined {
  if (threads !== undefined) return threads;
  return processes === undefined ? undefined : Math.min(processes * THREADS_PER_PROCESS, MAX_TASKS);
}

export function checkKeys(obj: Record<string, unknown>, allowed: readonly string[], name: string): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) throw invalidArgValue(`${name}.${k}`, obj[k], `is not a known option (known: ${allowed.join(', ')})`);
  }
}

export function integer(v: unknown, name: string, min: number, max: number): number {
  if (typeof v !== 'number') throw invalidArgType(name, 'of type number', v);
  if (!Number.isInteger(v) || v < min || v > max) throw outOfRange(name, `an integer >= ${min} and <= ${max}`, v);
  return v;
}

export function bool(v: unknown, name: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw invalidArgType(name, 'of type boolean', v);
  return v;
}

/** `enforcement`: true for 'strict' (the default), false for 'best-effort'. */
export function isStrict(v: unknown, name: string): boolean {
  if (v === undefined || v === 'strict') return true;
  if (v === 'best-effort') return false;
  if (typeof v !== 'string') throw invalidArgType(name, 'of type string', v);
  throw invalidArgValue(name, v, "must be 'strict' or 'best-effort'");
}

const SIGNALS = osConstants.signals as Record<string, number>;

/** A signal's number on this platform (0 for none or unknown). */
export function signalNumber(sig: string | null): number {
  return sig !== null && Object.prototype.hasOwnProperty.call(SIGNALS, sig) ? SIGNALS[sig] : 0;
}

/** The name of a signal number on this platform, or null. */
export function signalFromNumber(num: number): NodeJS.Signals | null {
  for (const [k, n] of Object.entries(SIGNALS)) if (n === num) return k as NodeJS.Signals;
  return null;
}

/** Resolves a signal name or number to a name known on this platform. */
export function signalName(v: unknown, name: string): NodeJS.Signals {
  if (typeof v === 'string' && signalNumber(v) !== 0) return v as NodeJS.Signals;
  const fromNumber = typeof v === 'number' ? signalFromNumber(v) : null;
  if (fromNumber !== null) return fromNumber;
  if (typeof v !== 'string' && typeof v !== 'number') throw invalidArgType(name, 'of type string or number', v);
  throw codedError('ERR_UNKNOWN_SIGNAL', `Unknown signal: ${String(v)}`);
}

function normalizeStdio(v: unknown): Normalized['stdio'] {
  const one = (e: unknown, i: number): 'pipe' | 'ignore' | 'inherit' | number => {
    const name = `options.stdio[${i}]`;
    if (e === null || e === undefined) return 'pipe';
    if (e === 'pipe' || e === 'ignore' || e === 'inherit') return e;
    if (typeof e === 'number') return integer(e, name, 0, 2 ** 31 - 1);
    if (typeof e === 'string') throw invalidArgValue(name, e, "must be 'pipe', 'ignore', 'inherit' or an fd number");
    throw invalidArgType(name, "one of 'pipe', 'ignore', 'inherit' or an fd number", e);
  };
  if (v === undefined) return ['pipe', 'pipe', 'pipe'];
  if (typeof v === 'string') {
    const e = one(v, 0);
    return [e, e, e];
  }
  if (!Array.isArray(v)) throw invalidArgType('options.stdio', 'of type string or an array', v);
  if (v.length > 3) {
    throw invalidArgValue('options.stdio', v, 'must have at most 3 entries (pass extra handles with options.inheritHandles)');
  }
  return [one(v[0], 0), one(v[1], 1), one(v[2], 2)];
}

function normalizeEnv(v: unknown, platform: NodeJS.Platform): Record<string, string> {
  const source = v === undefined ? process.env : v;
  if (!isPlainObject(source)) throw invalidArgType('options.env', 'of type object', v);
  const env = Object.create(null) as Record<string, string>;
  for (const [k, val] of Object.entries(source)) {
    if (val === undefined) continue;
    const name = `options.env.${k}`;
    noNul(name, k);
    if (k.length === 0 || k.indexOf('=', platform === 'win32' ? 1 : 0) !== -1) {
      throw invalidArgValue(name, k, "must be a variable name without '='");
    }
    env[k] = noNul(name, String(val));
  }
  return env;
}

function normalizeMemory(given: unknown, limits: NativeLimits): void {
  if (given === undefined) return;
  if (isPlainObject(given)) {
    const v = ownProps(given);
    checkKeys(v, ['process', 'total'], 'options.memory');
    if (v.process === undefined && v.total === undefined) {
      throw invalidArgValue('options.memory', v, 'must set process and/or total');
    }
    if (v.process !== undefined) limits.memoryProcess = parseByteSize(v.process, 'options.memory.process');
    if (v.total !== undefined) limits.memoryTotal = parseByteSize(v.total, 'options.memory.total');
    return;
  }
  if (typeof given !== 'number' && typeof given !== 'string') {
    throw invalidArgType('options.memory', 'of type number, string or an object', given);
  }
  limits.memoryTotal = parseByteSize(given, 'options.memory');
}

export function cores(v: unknown, name: string): number {
  if (typeof v !== 'number') throw invalidArgType(name, 'of type number', v);
  if (!Number.isFinite(v) || v < 0.01 || v > 4096) throw outOfRange(name, 'a number of cores >= 0.01 and <= 4096', v);
  return v;
}

function normalizeCpu(given: unknown, limits: NativeLimits): void {
  if (given === undefined) return;
  if (typeof given === 'number') {
    limits.cpuCores = cores(given, 'options.cpu');
    return;
  }
  if (!isPlainObject(given)) throw invalidArgType('options.cpu', 'of type number or an object', given);
  const v = ownProps(given);
  checkKeys(v, ['cores', 'time', 'affinity'], 'options.cpu');
  if (v.cores === undefined && v.time === undefined && v.affinity === undefined) {
    throw invalidArgValue('options.cpu', v, 'must set cores, time and/or affinity');
  }
  if (v.cores !== undefined) limits.cpuCores = cores(v.cores, 'options.cpu.cores');
  if (v.time !== undefined) limits.cpuTimeMs = parseDuration(v.time, 'options.cpu.time');
  if (v.affinity !== undefined) {
    if (!Array.isArray(v.affinity)) throw invalidArgType('options.cpu.affinity', 'an array of CPU numbers', v.affinity);
    if (v.affinity.length === 0) throw invalidArgValue('options.cpu.affinity', v.affinity, 'must list at least one CPU');
    const seen = new Set<number>();
    for (let i = 0; i < v.affinity.length; i++) {
      const cpu = integer(v.affinity[i], `options.cpu.affinity[${i}]`, 0, 1023);
      if (seen.has(cpu)) throw invalidArgValue('options.cpu.affinity', v.affinity, `lists CPU ${cpu} twice`);
      seen.add(cpu);
    }
    limits.affinity = [...seen].sort((a, b) => a - b);
  }
}

function normalizeInherit(v: unknown, platform: NodeJS.Platform): Normalized['inherit'] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw invalidArgType('options.inheritHandles', 'an array', v);
  return v.map((given: unknown, i: number) => {
    const name = `options.inheritHandles[${i}]`;
    if (typeof given === 'number') return { raw: false, value: integer(given, name, 0, 2 ** 31 - 1) };
    if (isPlainObject(given)) {
      const e = ownProps(given);
      checkKeys(e, ['handle'], name);
      if (platform !== 'win32') {
        throw codedError('ERR_FEATURE_UNAVAILABLE_ON_PLATFORM', `${name}.handle: raw HANDLE values exist only on Windows; pass an fd number`);
      }
      const h = e.handle;
      if (typeof h === 'bigint') {
        if (h <= 0n || h >= 2n ** 63n) throw outOfRange(`${name}.handle`, 'a HANDLE value > 0', h);
        return { raw: true, value: h };
      }
      if (typeof h !== 'number') throw invalidArgType(`${name}.handle`, 'of type number or bigint', h);
      return { raw: true, value: integer(h, `${name}.handle`, 1, Number.MAX_SAFE_INTEGER) };
    }
    throw invalidArgType(name, 'an fd number or { handle }', given);
  });
}

/** Validates and normalises everything; throws synchronously, naming the option. */
export function normalizeOptions(
  file: unknown,
  args: unknown,
  options: unknown,
  platform: NodeJS.Platform = process.platform,
): Normalized {
  if (typeof file !== 'string') throw invalidArgType('file', 'of type string', file);
  if (file.length === 0) throw invalidArgValue('file', file, 'cannot be empty');
  noNul('file', file);
  if (!Array.isArray(args)) throw invalidArgType('args', 'an instance of Array', args);
  const argv = args.map((a: unknown, i: number) => {
    if (typeof a !== 'string') throw invalidArgType(`args[${i}]`, 'of type string', a);
    return noNul(`args[${i}]`, a);
  });
  if (options === undefined || options === null) options = {};
  if (!isPlainObject(options)) throw invalidArgType('options', 'of type object', options);
  const o = ownProps(options);
  for (const k of Object.keys(o)) {
    if (!KNOWN_KEYS.has(k)) {
      throw invalidArgValue(`options.${k}`, o[k], 'is not a known option; a misspelt limit would run the worker unlimited');
    }
  }

  let cwd: string | undefined;
  if (o.cwd !== undefined) {
    if (o.cwd instanceof URL) {
      if (o.cwd.protocol !== 'file:') throw invalidArgValue('options.cwd', o.cwd.href, 'must be a file: URL');
      cwd = fileURLToPath(o.cwd);
    } else if (typeof o.cwd === 'string') {
      if (o.cwd.length === 0) throw invalidArgValue('options.cwd', o.cwd, 'cannot be empty');
      cwd = o.cwd;
    } else {
      throw invalidArgType('options.cwd', 'of type string or an instance of URL', o.cwd);
    }
    noNul('options.cwd', cwd);
  }

  let signal: AbortSignal | undefined;
  if (o.signal !== undefined) {
    const s = o.signal as AbortSignal;
    if (typeof s !== 'object' || s === null || typeof s.aborted !== 'boolean' || typeof s.addEventListener !== 'function') {
      throw invalidArgType('options.signal', 'an instance of AbortSignal', o.signal);
    }
    signal = s;
  }

  const limits = Object.create(null) as NativeLimits; // no prototype to inherit a limit from
  normalizeMemory(o.memory, limits);
  normalizeCpu(o.cpu, limits);
  if (o.processes !== undefined) limits.processes = integer(o.processes, 'options.processes', 1, MAX_TASKS);
  const threads = o.threads === undefined ? undefined : integer(o.threads, 'options.threads', 1, MAX_TASKS);
  if (threads !== undefined && limits.processes !== undefined && threads < limits.processes) {
    throw outOfRange('options.threads', `>= options.processes (${limits.processes}): each process has a thread`, threads);
  }
  const tasks = taskLimit(limits.processes, threads);
  if (tasks !== undefined) limits.threads = tasks;
  if (o.handles !== undefined) limits.handles = integer(o.handles, 'options.handles', 1, 2 ** 31 - 1);

  let privileges: PrivilegeLevel = 'restricted';
  if (o.privileges !== undefined) {
    if (o.privileges !== 'restricted' && o.privileges !== 'low' && o.privileges !== 'inherit') {
      if (typeof o.privileges !== 'string') throw invalidArgType('options.privileges', 'of type string', o.privileges);
      throw invalidArgValue('options.privileges', o.privileges, "must be 'restricted', 'low' or 'inherit'");
    }
    privileges = o.privileges;
  }
  let uid: number | undefined;
  let gid: number | undefined;
  for (const key of ['uid', 'gid'] as const) {
    if (o[key] === undefined) continue;
    if (platform === 'win32') {
      throw codedError('ERR_FEATURE_UNAVAILABLE_ON_PLATFORM', `options.${key} is not supported on Windows (use options.privileges)`);
    }
    const id = integer(o[key], `options.${key}`, 0, 2 ** 32 - 2);
    if (key === 'uid') uid = id;
    else gid = id;
  }

  return {
    file,
    args: argv,
    cwd,
    env: normalizeEnv(o.env, platform),
    stdio: normalizeStdio(o.stdio),
    signal,
    timeoutMs: o.timeout === undefined ? undefined : parseDuration(o.timeout, 'options.timeout'),
    killSignal: o.killSignal === undefined ? 'SIGTERM' : signalName(o.killSignal, 'options.killSignal'),
    windowsHide: bool(o.windowsHide, 'options.windowsHide', true),
    limits,
    inherit: normalizeInherit(o.inheritHandles, platform),
    privileges,
    privilegesExplicit: o.privileges !== undefined,
    threadsImplied: threads === undefined && limits.threads !== undefined,
    killOnClose: bool(o.killOnClose, 'options.killOnClose', true),
    go: bool(o.go, 'options.go', true),
    strict: isStrict(o.enforcement, 'options.enforcement'),
    uid,
    gid,
  };
}

/** Environment names compare without case on Windows. */
function hasVar(env: Record<string, string>, name: string, platform: NodeJS.Platform): boolean {
  if (platform !== 'win32') return Object.prototype.hasOwnProperty.call(env, name);
  const upper = name.toUpperCase();
  return Object.keys(env).some((k) => k.toUpperCase() === upper);
}

/**
 * The Go runtime reads neither job-object limits nor (before Go 1.25, or outside its own leaf
 * cgroup) cgroup CPU limits: tell it. The caller's own values always win.
 */
export function goEnvironment(n: Pick<Normalized, 'env' | 'limits' | 'go'>, platform: NodeJS.Platform = process.platform): Record<string, string> {
  const env = { ...n.env };
  if (!n.go) return env;
  const l = n.limits;
  let procs: number | undefined;
  if (l.cpuCores !== undefined) procs = Math.max(1, Math.ceil(l.cpuCores));
  if (l.affinity !== undefined) procs = Math.min(procs ?? Infinity, l.affinity.length);
  if (procs !== undefined && !hasVar(env, 'GOMAXPROCS', platform)) env.GOMAXPROCS = String(procs);
  const mems = [l.memoryProcess, l.memoryTotal].filter((x): x is number => x !== undefined);
  if (mems.length > 0 && !hasVar(env, 'GOMEMLIMIT', platform)) {
    env.GOMEMLIMIT = String(Math.floor(Math.min(...mems) * 0.9));
  }
  return env;
}
