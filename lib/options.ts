import { readFileSync } from 'node:fs';
import type { Stream } from 'node:stream';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { isAbsolute } from 'node:path';
import { DEFAULT_MAX_MESSAGE_SIZE, MAX_MAX_MESSAGE_SIZE } from './channel';
import { normalizeEnv } from './environment';
import { codedError, invalidArgType, invalidArgValue, NodeStyleError, outOfRange } from './errors';
import { signalName } from './signals';
import { NativeLimits, NativeStdio } from './native';
import { ByteSize, Duration, parseByteSize, parseDuration } from './units';
import { bool, checkKeys, cores, integer, isPlainObject, isStrict, MAX_TASKS, noNul, ownProps, taskLimit } from './validate';

export type { NativeLimits } from './native';

/** One stdio slot: a new pipe, the null device, this process's own stdio, a Node fd, or a stream that has one (an open file stream, a socket, a TTY), as in `child_process`. */
export type StdioEntry = 'pipe' | 'ignore' | 'inherit' | number | Stream | null | undefined;
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
/** `options.filesystem`: the paths a worker may read and write (absolute). */
export interface FilesystemAccess {
  /** Readable (and executable) beneath each. */
  read?: readonly string[];
  /** Readable and writable beneath each. */
  write?: readonly string[];
}

export interface IsolationOptions {
  /** Working directory of the worker (a path or a `file:` URL). */
  cwd?: string | URL;
  /** Environment of the worker. Default: `process.env`. */
  env?: NodeJS.ProcessEnv | Record<string, string | number | boolean | undefined>;
  /** Default `'pipe'`. */
  stdio?: StdioOption;
  /** Aborting it ends the tree (exit reason `'aborted'`) and emits an `AbortError`. */
  signal?: AbortSignal;
  /** Wall-clock limit; when it passes the tree is ended (exit reason `'timeout'`). 0: none. */
  timeout?: Duration;
  /**
   * The signal `timeout`, `signal` (AbortSignal) and `stop()` send first. Default `'SIGTERM'`.
   * Windows has no such signals: there the tree is ended at once.
   */
  killSignal?: NodeJS.Signals | number;
  /**
   * After `killSignal`, how long the worker may take to end before its whole tree is killed
   * (SIGKILL). `true` or omitted: 5 s; `false`: never; `0`: at once. Like `timeout -k`.
   */
  forceKillAfter?: Duration | boolean;
  /** Hide the worker's console window (Windows). Default true. */
  windowsHide?: boolean;
  /**
   * A private duplex channel to the worker (`worker.channel`), which only this process and the
   * worker hold: a socket pair (Linux) or a pipe that only this user may open, whose client end
   * the worker gets (Windows). `'json'`: newline-delimited JSON (`worker.send()`, `'message'`).
   * The worker finds it with the Go module's `Channel()`. Default false.
   */
  channel?: boolean | 'json';
  /**
   * `channel: 'json'` only: the largest message each way, in bytes of JSON (the '\n' not
   * counted). Default 1 MiB, at most 256 MiB. A worker's line longer than this, or nested
   * deeper than 1000 arrays / objects, is not parsed: the channel is closed and an `'error'`
   * (`ERR_CHANNEL_MESSAGE_TOO_LARGE` / `ERR_CHANNEL_MESSAGE_TOO_DEEP`) is emitted when
   * something listens for it. `send()` of a larger message throws `ERR_OUT_OF_RANGE`.
   */
  maxMessageSize?: ByteSize;
  /**
   * A temporary directory of the worker's own (`worker.tempDir`), made before it starts and
   * removed with it: `TEMP`, `TMP` and `TMPDIR` point there. Owner only: Linux 0700, owned by
   * the worker's uid; Windows a protected DACL for this user, the worker's own SID and SYSTEM
   * (under LocalLow for `privileges: 'low'`, which always gets one). Default false.
   */
  tempDir?: boolean;
  /** Leave the `tempDir` in place when the worker ends (default false: removed). */
  keepTempDir?: boolean;
  /**
   * `'private'`: the per-user cache and config locations point inside `tempDir` too (Windows:
   * `LOCALAPPDATA`, `APPDATA`; Linux: `XDG_CACHE_HOME`, `XDG_CONFIG_HOME`), as Go's
   * `os.UserCacheDir` / `os.UserConfigDir` read them. Needs `tempDir`. Default `'inherit'`.
   */
  profile?: 'inherit' | 'private';
  /**
   * `'none'`: the worker has no network: a network namespace of its own with only a loopback
   * interface (Linux), so it reaches neither other hosts nor this host's loopback services or
   * abstract Unix sockets. Windows: not yet enforced (an AppContainer without network
   * capabilities is planned), so strict mode refuses it there. Default `'host'`.
   */
  network?: 'host' | 'none';
  /**
   * Which paths the worker may use (Linux: Landlock, kernel 5.13+; Windows: not yet enforced,
   * refused in strict mode). When given, the worker may read only beneath `read` and `write`,
   * and write only beneath `write`, besides what every worker keeps: its executable, its
   * `tempDir`, its private `/tmp`, `/var/tmp` and `/dev/shm`, `/proc`, and the character
   * devices `/dev/null`, `/dev/zero`, `/dev/full`, `/dev/random`, `/dev/urandom`, `/dev/tty`.
   * An empty `read` list leaves exactly that: enough for a static Go binary; a dynamically
   * linked program also needs its loader and libraries (e.g. `read: ['/lib', '/usr/lib']`).
   * Absolute paths; a path that does not exist is ignored.
   */
  filesystem?: FilesystemAccess;
  /**
   * A disk budget: its `tempDir` becomes a tmpfs of this size (Linux, root launcher), its
   * private `/tmp`, `/var/tmp`, `/dev/shm` and `/run/lock` (one tmpfs) hold at most this size
   * together (a budget apart from the `tempDir`'s), and no file it writes
   * anywhere may grow past it (RLIMIT_FSIZE: SIGXFSZ, exit reason `'disk'`). Writes past a
   * full tmpfs fail with ENOSPC, which the worker sees. Not with `keepTempDir`.
   */
  disk?: ByteSize;
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
  /**
   * POSIX: run as this user from the user database, as `runuser -l` does: its uid, primary gid
   * and supplementary groups, a login environment (`HOME`, `SHELL`, `USER`, `LOGNAME`, `PATH`,
   * and `TERM` if set here; an explicit `options.env` goes on top) and its home as the default
   * `cwd`. Not with `uid` / `gid`. Needs a launcher that may change ids (root).
   */
  user?: string;
  /**
   * Windows: the session to start the worker in: `'current'` (default), `'console'` (the active
   * console session) or a session id. Another session's worker runs as that session's user,
   * with that user's environment (an explicit `options.env` on top), on `winsta0\\default`, in
   * its job with every limit and with `privileges` applied to that user's token. Needs a
   * LocalSystem launcher (a service): otherwise, or with nobody logged on, `ERR_NO_USER_SESSION`.
   */
  session?: 'current' | 'console' | number;
  /** POSIX only: run the worker as this user id. */
  uid?: number;
  /** POSIX only: run the worker as this group id (supplementary groups are cleared). */
  gid?: number;
}

export interface Normalized {
  file: string;
  args: string[]; // without argv0
  cwd?: string;
  env: Record<string, string>;
  stdio: [NativeStdio, NativeStdio, NativeStdio];
  /** The stream objects given as stdio entries, if any (for stopReading once handed over). */
  stdioStreams: [object | undefined, object | undefined, object | undefined];
  signal?: AbortSignal;
  timeoutMs?: number;
  killSignal: NodeJS.Signals;
  /** undefined: never. */
  forceKillAfterMs: number | undefined;
  windowsHide: boolean;
  channel: false | 'raw' | 'json';
  /** Bytes; for `channel: 'json'` (the default when it is not set). */
  maxMessageSize: number;
  tempDir: boolean;
  keepTempDir: boolean;
  privateProfile: boolean;
  network: 'host' | 'none';
  filesystem?: { read: string[]; write: string[] };
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
  user?: string;
  /** options.user's supplementary groups (set in launch, from the user database). */
  groups?: number[];
  /** undefined: this process's session; -2: the console's. */
  session?: number;
  envExplicit: boolean;
}

const KNOWN_KEYS = new Set([
  'cwd', 'env', 'stdio', 'signal', 'timeout', 'killSignal', 'forceKillAfter', 'windowsHide', 'channel', 'maxMessageSize', 'tempDir', 'keepTempDir', 'profile', 'memory', 'cpu', 'processes', 'threads', 'handles',
  'inheritHandles', 'privileges', 'killOnClose', 'go', 'enforcement', 'uid', 'gid', 'user', 'session', 'network', 'filesystem', 'disk',
]);

/** child_process options this launcher does not take, and why (`false` / undefined pass). */
const UNSUPPORTED: Record<string, string> = {
  shell: 'is not supported: a shell would run inside the limits with the command line as its input; pass the shell itself as `file` (e.g. "/bin/sh", ["-c", script])',
  detached: 'is not supported: a worker always has its own process group, and `killOnClose: false` lets it outlive this process',
  argv0: 'is not supported: the worker always sees `file` as its argv[0]',
  windowsVerbatimArguments: 'is not supported: arguments are always quoted as CommandLineToArgvW reads them back',
};

/** The grace period after `killSignal` (`stop()`, `timeout`, `signal`), in ms. */
export const DEFAULT_FORCE_KILL_AFTER_MS = 5000;

function normalizeForceKillAfter(v: unknown): number | undefined {
  if (v === undefined || v === true) return DEFAULT_FORCE_KILL_AFTER_MS;
  if (v === false) return undefined;
  return parseDuration(v, 'options.forceKillAfter', { zero: true });
}

/** The streams among the stdio entries (a stream this process stops reading once a worker has its fd). */
function stdioStreams(v: unknown): Normalized['stdioStreams'] {
  const out: Normalized['stdioStreams'] = [undefined, undefined, undefined];
  if (!Array.isArray(v)) return out;
  for (let i = 0; i < 3; i++) if (typeof v[i] === 'object' && v[i] !== null) out[i] = v[i] as object;
  return out;
}

function normalizeStdio(v: unknown): Normalized['stdio'] {
  const one = (e: unknown, i: number): NativeStdio => {
    const name = `options.stdio[${i}]`;
    if (e === null || e === undefined) return 'pipe';
    if (e === 'pipe' || e === 'ignore' || e === 'inherit') return e;
    if (typeof e === 'number') return integer(e, name, 0, 2 ** 31 - 1);
    if (typeof e === 'string') throw invalidArgValue(name, e, "must be 'pipe', 'ignore', 'inherit', an fd number or a stream with an fd");
    if (typeof e === 'object') {
      // As child_process: a stream's underlying fd (file streams: `fd` once open; sockets, TTYs
      // and pipes: their handle's).
      const s = e as { fd?: unknown; _handle?: { fd?: unknown } | null };
      const fd = typeof s.fd === 'number' ? s.fd : typeof s._handle?.fd === 'number' ? s._handle.fd : undefined;
      if (fd !== undefined && Number.isInteger(fd) && fd >= 0) return fd;
      throw invalidArgValue(name, e, "is a stream without an fd (a file stream has one only after its 'open' event)");
    }
    throw invalidArgType(name, "one of 'pipe', 'ignore', 'inherit', an fd number or a stream with an fd", e);
  };
  if (v === undefined) return ['pipe', 'pipe', 'pipe'];
  if (typeof v === 'string') {
    const e = one(v, 0);
    return [e, e, e];
  }
  if (!Array.isArray(v)) throw invalidArgValue('options.stdio', v, "must be 'pipe', 'ignore', 'inherit' or an array");
  if (v.length > 3) {
    throw invalidArgValue('options.stdio', v, 'must have at most 3 entries (pass extra handles with options.inheritHandles)');
  }
  return [one(v[0], 0), one(v[1], 1), one(v[2], 2)];
}

/**
 * The smallest memory limit a worker can start under: below it even the exec fails (or, on
 * Linux, the kernel kills the starting worker). {@link startMemoryError} refines it per spawn.
 */
export const MIN_MEMORY = 1024 * 1024;

/** A memory limit (bytes) that is at least {@link MIN_MEMORY}, else ERR_OUT_OF_RANGE, saying why. */
export function memoryAtLeastFloor(bytes: number, name: string, given: unknown): number {
  if (bytes < MIN_MEMORY) throw outOfRange(name, `at least 1MiB: a smaller limit is too small to start the worker`, given);
  return bytes;
}

/**
 * A spawn's memory limit (its own or its group's, whichever is tighter) that is too small for
 * its exec: the kernel copies the arguments and the environment into the new program's memory
 * before it runs, charged to the worker, plus its first pages. ERR_OUT_OF_RANGE, or null.
 */
export function startMemoryError(limit: number | undefined, argv: readonly string[], env: Record<string, string>, name: string): NodeStyleError | null {
  if (limit === undefined) return null;
  let bytes = 0;
  for (const a of argv) bytes += Buffer.byteLength(a) + 1 + 8;
  for (const k of Object.keys(env)) bytes += Buffer.byteLength(k) + Buffer.byteLength(env[k]) + 2 + 8;
  const needed = MIN_MEMORY + 2 * bytes;
  if (limit >= needed) return null;
  return outOfRange(
    name,
    `at least ${needed} bytes (${Math.ceil(needed / 1024)} KiB) for this spawn: a smaller limit is too small to start the worker (its exec alone takes its arguments and environment, ${Math.ceil(bytes / 1024)} KiB, twice over, and 1 MiB more)`,
    limit,
  );
}

function normalizeMemory(given: unknown, limits: NativeLimits): void {
  if (given === undefined) return;
  if (isPlainObject(given)) {
    const v = ownProps(given, 'options.memory');
    checkKeys(v, ['process', 'total'], 'options.memory');
    if (v.process === undefined && v.total === undefined) {
      throw invalidArgValue('options.memory', v, 'must set process and/or total');
    }
    if (v.process !== undefined) limits.memoryProcess = memoryAtLeastFloor(parseByteSize(v.process, 'options.memory.process'), 'options.memory.process', v.process);
    if (v.total !== undefined) limits.memoryTotal = memoryAtLeastFloor(parseByteSize(v.total, 'options.memory.total'), 'options.memory.total', v.total);
    return;
  }
  if (typeof given !== 'number' && typeof given !== 'string') {
    throw invalidArgType('options.memory', 'of type number, string or an object', given);
  }
  limits.memoryTotal = memoryAtLeastFloor(parseByteSize(given, 'options.memory'), 'options.memory', given);
}

function normalizeCpu(given: unknown, limits: NativeLimits): void {
  if (given === undefined) return;
  if (typeof given === 'number') {
    limits.cpuCores = cores(given, 'options.cpu');
    return;
  }
  if (!isPlainObject(given)) throw invalidArgType('options.cpu', 'of type number or an object', given);
  const v = ownProps(given, 'options.cpu');
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
      const cpu = integer(v.affinity[i], `options.cpu.affinity[${i}]`, 0, cpuCount() - 1);
      if (seen.has(cpu)) throw invalidArgValue('options.cpu.affinity', v.affinity, `lists CPU ${cpu} twice`);
      seen.add(cpu);
    }
    limits.affinity = [...seen].sort((a, b) => a - b);
  }
}

const MAX_INHERITED_FDS = 61;

// Machine facts read once per process, not per spawn (os.cpus() parses /proc/cpuinfo). The
// native side checks the affinity against the CPUs configured at the time of the spawn.
let cpuCountCache: number | undefined;
let nrOpenCache: number | undefined;

/** Logical CPUs of this machine (an affinity can name only those). */
function cpuCount(): number {
  cpuCountCache ??= Math.max(1, Math.min(cpus().length, 1024));
  return cpuCountCache;
}

/** The most fds a Linux process can be allowed (fs.nr_open); RLIMIT_NOFILE cannot go above it. */
function maxHandles(platform: NodeJS.Platform): number {
  if (platform !== 'linux') return 2 ** 31 - 1;
  if (nrOpenCache === undefined) {
    try {
      nrOpenCache = Number(readFileSync('/proc/sys/fs/nr_open', 'utf8').trim()) || 2 ** 20;
    } catch {
      nrOpenCache = 2 ** 20;
    }
  }
  return nrOpenCache;
}

function normalizeInherit(v: unknown, platform: NodeJS.Platform): Normalized['inherit'] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw invalidArgType('options.inheritHandles', 'an array', v);
  // Linux passes at most 64 fds (3 of them stdio) through the child's fixed table.
  if (platform !== 'win32' && v.length > MAX_INHERITED_FDS) {
    throw outOfRange('options.inheritHandles', `at most ${MAX_INHERITED_FDS} entries on this platform`, v.length);
  }
  // Array.from, not map(): holes are checked (and named) like any other entry.
  return Array.from(v, (given: unknown, i: number) => {
    const name = `options.inheritHandles[${i}]`;
    if (typeof given === 'number') return { raw: false, value: integer(given, name, 0, 2 ** 31 - 1) };
    if (isPlainObject(given)) {
      const e = ownProps(given, name);
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

function normalizeCommand(file: unknown, args: unknown): { file: string; args: string[] } {
  if (typeof file !== 'string') throw invalidArgType('file', 'of type string', file);
  if (file.length === 0) throw invalidArgValue('file', file, 'cannot be empty');
  noNul('file', file);
  if (!Array.isArray(args)) throw invalidArgType('args', 'an instance of Array', args);
  // An index loop, not map(): holes are converted (and named) like any other entry. As
  // child_process: every entry is converted to a string (a number, a boolean, ...); a Symbol,
  // which has no string form, is refused.
  const argv: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a: unknown = args[i];
    if (typeof a === 'symbol') throw invalidArgType(`args[${i}]`, 'convertible to a string', a);
    argv.push(noNul(`args[${i}]`, typeof a === 'string' ? a : String(a)));
  }
  return { file, args: argv };
}

function normalizeCwd(v: unknown): string | undefined {
  // As child_process: null and '' are no cwd; a URL must be a file: URL (ERR_INVALID_URL_SCHEME).
  if (v === undefined || v === null || v === '') return undefined;
  let cwd: string;
  if (v instanceof URL) {
    cwd = fileURLToPath(v);
  } else if (typeof v === 'string') {
    cwd = v;
  } else if (v instanceof Uint8Array) {
    cwd = Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString();
    if (cwd === '') return undefined;
  } else {
    throw invalidArgType('options.cwd', 'of type string or an instance of Buffer or URL', v);
  }
  return noNul('options.cwd', cwd);
}

/** As child_process: `timeout` 0, null or unset is none; anything else not a duration is ERR_OUT_OF_RANGE. */
function normalizeTimeout(v: unknown): number | undefined {
  if (v === undefined || v === null || v === 0) return undefined;
  try {
    return parseDuration(v, 'options.timeout');
  } catch {
    throw outOfRange('options.timeout', "a duration: a whole number of ms >= 0 (0: none) or a string such as '30s'", v);
  }
}

function normalizeSignal(v: unknown): AbortSignal | undefined {
  if (v === undefined) return undefined;
  const s = v as AbortSignal;
  if (
    typeof s !== 'object' ||
    s === null ||
    typeof s.aborted !== 'boolean' ||
    typeof s.addEventListener !== 'function' ||
    typeof s.removeEventListener !== 'function'
  ) {
    throw invalidArgType('options.signal', 'an instance of AbortSignal', v);
  }
  return s;
}

function normalizeNetwork(v: unknown): 'host' | 'none' {
  if (v === undefined || v === 'host') return 'host';
  if (v === 'none') return 'none';
  if (typeof v !== 'string') throw invalidArgType('options.network', 'of type string', v);
  throw invalidArgValue('options.network', v, "must be 'host' or 'none'");
}

function pathList(v: unknown, name: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw invalidArgType(name, 'an array of absolute paths', v);
  return v.map((p, i) => {
    const key = `${name}[${i}]`;
    if (typeof p !== 'string') throw invalidArgType(key, 'of type string', p);
    noNul(key, p);
    if (!isAbsolute(p)) throw invalidArgValue(key, p, 'must be an absolute path');
    return p;
  });
}

function normalizeFilesystem(v: unknown): { read: string[]; write: string[] } | undefined {
  if (v === undefined) return undefined;
  if (!isPlainObject(v)) throw invalidArgType('options.filesystem', 'of type object', v);
  const o = ownProps(v, 'options.filesystem');
  checkKeys(o, ['read', 'write'], 'options.filesystem');
  return { read: pathList(o.read, 'options.filesystem.read'), write: pathList(o.write, 'options.filesystem.write') };
}

function normalizeTempDir(o: Record<string, unknown>): { tempDir: boolean; keepTempDir: boolean; privateProfile: boolean } {
  const tempDir = bool(o.tempDir, 'options.tempDir', false);
  const keepTempDir = bool(o.keepTempDir, 'options.keepTempDir', false);
  if (o.profile !== undefined && o.profile !== 'inherit' && o.profile !== 'private') {
    throw invalidArgValue('options.profile', o.profile, "must be 'inherit' or 'private'");
  }
  if (o.profile === 'private' && !tempDir) throw invalidArgValue('options.profile', o.profile, "'private' needs options.tempDir: true (the profile lives there)");
  if (keepTempDir && !tempDir) throw invalidArgValue('options.keepTempDir', o.keepTempDir, 'needs options.tempDir: true');
  if (keepTempDir && o.disk !== undefined) {
    throw codedError('ERR_INCOMPATIBLE_OPTION_PAIR', 'options.keepTempDir cannot be combined with options.disk (a sized tempDir is a tmpfs, gone when unmounted)');
  }
  return { tempDir, keepTempDir, privateProfile: o.profile === 'private' };
}

function normalizeChannel(v: unknown): false | 'raw' | 'json' {
  if (v === undefined || v === false) return false;
  if (v === true) return 'raw';
  if (v === 'json') return 'json';
  throw invalidArgValue('options.channel', v, "must be true, false or 'json'");
}

function normalizeMaxMessageSize(v: unknown, channel: false | 'raw' | 'json'): number {
  if (v === undefined) return DEFAULT_MAX_MESSAGE_SIZE;
  const bytes = parseByteSize(v, 'options.maxMessageSize');
  if (bytes > MAX_MAX_MESSAGE_SIZE) throw outOfRange('options.maxMessageSize', `a size >= 1 byte and <= ${MAX_MAX_MESSAGE_SIZE} bytes (256 MiB)`, v);
  if (channel !== 'json') throw invalidArgValue('options.maxMessageSize', v, "needs options.channel: 'json' (it bounds the JSON messages)");
  return bytes;
}

/** Every limit of the options; `threadsImplied` when the task limit came from `processes`. */
function normalizeLimits(o: Record<string, unknown>, platform: NodeJS.Platform): { limits: NativeLimits; threadsImplied: boolean } {
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
  if (o.handles !== undefined) limits.handles = integer(o.handles, 'options.handles', 1, maxHandles(platform));
  if (o.disk !== undefined) {
    limits.disk = parseByteSize(o.disk, 'options.disk');
    if (limits.disk < 2 ** 20) throw outOfRange('options.disk', '>= 1MiB', o.disk);
  }
  return { limits, threadsImplied: threads === undefined && tasks !== undefined };
}

function normalizePrivileges(v: unknown): PrivilegeLevel {
  if (v === undefined) return 'restricted';
  if (v === 'restricted' || v === 'low' || v === 'inherit') return v;
  if (typeof v !== 'string') throw invalidArgType('options.privileges', 'of type string', v);
  throw invalidArgValue('options.privileges', v, "must be 'restricted', 'low' or 'inherit'");
}

function normalizeId(v: unknown, key: 'uid' | 'gid', platform: NodeJS.Platform): number | undefined {
  if (v === undefined) return undefined;
  if (platform === 'win32') {
    throw codedError('ERR_FEATURE_UNAVAILABLE_ON_PLATFORM', `options.${key} is not supported on Windows (use options.privileges)`);
  }
  // child_process's code for any bad id (a negative one included); ids up to 2^32-2 pass.
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 2 ** 32 - 2) throw invalidArgType(`options.${key}`, 'an integer id >= 0 and <= 4294967294', v);
  return v;
}

function normalizeUser(o: Record<string, unknown>, platform: NodeJS.Platform): string | undefined {
  if (o.user === undefined) return undefined;
  if (platform === 'win32') throw codedError('ERR_FEATURE_UNAVAILABLE_ON_PLATFORM', 'options.user is not supported on Windows (use options.session)');
  if (typeof o.user !== 'string') throw invalidArgType('options.user', 'of type string', o.user);
  if (o.user === '' || o.user.includes('\0') || o.user.includes(':') || o.user.includes('/')) throw invalidArgValue('options.user', o.user, 'must be a user name');
  if (o.uid !== undefined || o.gid !== undefined) throw invalidArgValue('options.user', o.user, 'cannot be combined with options.uid / options.gid (the user names both)');
  return o.user;
}

function normalizeSession(v: unknown, platform: NodeJS.Platform): number | undefined {
  if (v === undefined || v === 'current') return undefined;
  if (platform !== 'win32') throw codedError('ERR_FEATURE_UNAVAILABLE_ON_PLATFORM', 'options.session is Windows only (POSIX: options.user)');
  if (v === 'console') return -2;
  return integer(v, 'options.session', 0, 2 ** 32 - 2);
}

/**
 * uid 0 (or gid 0) is not a sandbox: root's files, /proc/sys and /sys stay writable to it
 * whatever else confines it. A 'restricted' or 'low' worker as root is refused; the caller
 * who means it says privileges: 'inherit'. Null when allowed.
 */
export function rootIdentityError(privileges: PrivilegeLevel, uid: number | undefined, gid: number | undefined, option: string): NodeStyleError | null {
  if (privileges === 'inherit' || (uid !== 0 && gid !== 0)) return null;
  const which = uid === 0 ? 'uid 0 (root)' : 'gid 0 (root\'s group)';
  return codedError(
    'ERR_INCOMPATIBLE_OPTION_PAIR',
    `${option} gives the worker ${which}, which no privilege level can confine (root's files, /proc/sys and /sys stay writable to it): ` +
      `pass privileges: 'inherit' to run it as root knowingly, or a uid and gid other than 0`,
  );
}

/** Validates and normalises everything; throws synchronously, naming the option. */
export function normalizeOptions(
  file: unknown,
  args: unknown,
  options: unknown,
  platform: NodeJS.Platform = process.platform,
): Normalized {
  const command = normalizeCommand(file, args);
  // As child_process: options may be absent, not null.
  if (options === undefined) options = {};
  if (!isPlainObject(options)) throw invalidArgType('options', 'of type object', options);
  const o = ownProps(options);
  for (const k of Object.keys(o)) {
    const unsupported = Object.prototype.hasOwnProperty.call(UNSUPPORTED, k) ? UNSUPPORTED[k] : undefined;
    if (unsupported !== undefined && o[k] !== undefined && o[k] !== false) throw invalidArgValue(`options.${k}`, o[k], unsupported);
    if (!KNOWN_KEYS.has(k) && unsupported === undefined) {
      throw invalidArgValue(`options.${k}`, o[k], 'is not a known option; a misspelt limit would run the worker unlimited');
    }
  }
  const { limits, threadsImplied } = normalizeLimits(o, platform);
  const channel = normalizeChannel(o.channel);
  const privileges = normalizePrivileges(o.privileges);
  const uid = normalizeId(o.uid, 'uid', platform);
  const gid = normalizeId(o.gid, 'gid', platform);
  const user = normalizeUser(o, platform);
  const rootError = rootIdentityError(privileges, uid, gid, uid === 0 ? 'options.uid' : 'options.gid');
  if (rootError) throw rootError;
  // In the order each option is checked (the first bad one is the error), then one literal with
  // each property named: a spread in it made V8 build it one property at a time in its slow
  // path (30 µs per spawn, measured; 1 µs so).
  const cwd = normalizeCwd(o.cwd);
  const env = normalizeEnv(o.env, platform);
  const stdio = normalizeStdio(o.stdio);
  const streams = stdioStreams(o.stdio);
  const signal = normalizeSignal(o.signal);
  // 0 means no timeout, as in child_process.
  const timeoutMs = normalizeTimeout(o.timeout);
  const killSignal = o.killSignal === undefined ? 'SIGTERM' : signalName(o.killSignal, 'options.killSignal');
  const forceKillAfterMs = normalizeForceKillAfter(o.forceKillAfter);
  const windowsHide = bool(o.windowsHide, 'options.windowsHide', true);
  const maxMessageSize = normalizeMaxMessageSize(o.maxMessageSize, channel);
  const temp = normalizeTempDir(o);
  return {
    file: command.file,
    args: command.args,
    cwd,
    env,
    stdio,
    stdioStreams: streams,
    signal,
    timeoutMs,
    killSignal,
    forceKillAfterMs,
    windowsHide,
    channel,
    maxMessageSize,
    tempDir: temp.tempDir,
    keepTempDir: temp.keepTempDir,
    privateProfile: temp.privateProfile,
    network: normalizeNetwork(o.network),
    filesystem: normalizeFilesystem(o.filesystem),
    limits,
    inherit: normalizeInherit(o.inheritHandles, platform),
    privileges,
    privilegesExplicit: o.privileges !== undefined,
    threadsImplied,
    killOnClose: bool(o.killOnClose, 'options.killOnClose', true),
    go: bool(o.go, 'options.go', true),
    strict: isStrict(o.enforcement, 'options.enforcement'),
    uid,
    gid,
    user,
    session: normalizeSession(o.session, platform),
    envExplicit: o.env !== undefined,
  };
}
