import * as path from 'node:path';
import type { NodeStyleError } from './errors';

/** What the native addon returns from spawn(). */
export interface NativeSpawnResult {
  id: number;
  pid: number;
  pipes: (string | number | null)[];
  inherited: number[];
  enforcement: { limit: string; mechanism: string; enforced: boolean; reason?: string }[];
  gracefulStop: 'signal' | 'ctrl-break' | 'none';
  /** The launcher's end of the channel (an fd for net.Socket), or null. */
  channel: string | null;
  /** The worker's private temp directory, or null. */
  tempDir: string | null;
  /** Windows: the session the worker runs in. */
  sessionId: number | null;
  /** The account the worker runs as (null: none known, e.g. a transient uid). */
  user: string | null;
  /**
   * Returned before the worker's exec: a `'spawned'` event follows once it has exec'd, or its
   * `'exit'` event carries the start failure (`error`) instead.
   */
  startPending?: boolean;
}

/** A user from the user database (POSIX). */
export interface NativeUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
  groups: number[];
}

export interface NativeStats {
  cpuUserMs: number;
  cpuKernelMs: number;
  peakMemory: number;
  processes: { active: number; total: number };
}

export type NativeEvent =
  | { type: 'exit'; id: number; exitCode: number; signal: number; terminated: boolean; reason: string; stats: NativeStats; error?: NodeStyleError }
  | { type: 'limit'; id: number; limit: string; pid: number; value: number }
  | { type: 'spawned'; id: number };

export interface NativeProbe {
  backend: string;
  spawn: boolean;
  spawnReason?: string;
  limits: NativeSpawnResult['enforcement'];
}

/** The limits as the native layer takes them (absent = not requested). TS validated the ranges. */
export interface NativeLimits {
  memoryProcess?: number;
  memoryTotal?: number;
  cpuCores?: number;
  cpuTimeMs?: number;
  affinity?: number[];
  processes?: number;
  /** Tasks of the tree (processes and their threads). */
  threads?: number;
  handles?: number;
  /** Bytes: the tempDir's and private tmpfs sizes, and RLIMIT_FSIZE. */
  disk?: number;
}

/** One stdio slot: a new pipe, the null device, this process's own fd 0-2, or a Node fd. */
export type NativeStdio = 'pipe' | 'ignore' | 'inherit' | number;

/** What spawn() takes; native/addon.cc ParseRequest reads exactly these own properties. */
export interface NativeSpawnRequest {
  /** Resolved path of the executable. */
  file: string;
  /** argv, argv[0] included. */
  args: string[];
  cwd?: string;
  /** "NAME=value" entries. */
  env: string[];
  stdio: [NativeStdio, NativeStdio, NativeStdio];
  /** Extra handles: a raw Windows HANDLE (raw) or a Node fd. */
  inherit: { raw: boolean; value: number | bigint }[];
  limits: NativeLimits;
  privileges: 'restricted' | 'low' | 'inherit';
  /** The caller asked for the level: strict mode applies to it. */
  privilegesExplicit: boolean;
  /** limits.threads was derived from processes, not asked for. */
  threadsImplied: boolean;
  killOnClose: boolean;
  windowsHide: boolean;
  channel: boolean;
  groups?: number[];
  session?: number;
  envExplicit: boolean;
  tempDir: boolean;
  keepTempDir: boolean;
  privateProfile: boolean;
  /** A network namespace with only loopback (network: 'none'). */
  networkNone: boolean;
  /** options.filesystem, when given. */
  filesystem?: { read: string[]; write: string[] };
  strict: boolean;
  uid?: number;
  gid?: number;
  /** An isolation group's id. */
  group?: number;
}

/** What createGroup() takes. */
export interface NativeGroupRequest {
  limits: NativeLimits;
  strict: boolean;
  killOnClose: boolean;
}

export interface NativeBinding {
  init(handler: (ev: NativeEvent) => void): void;
  spawn(req: NativeSpawnRequest): NativeSpawnResult;
  resume(id: number): void;
  /** Ends the whole tree (SIGKILL / the job terminated); `reason` is the exit's. */
  kill(id: number, reason: string): boolean;
  /** Delivers a signal (1..64) to the worker only; ENOTSUP on Windows. */
  signal(id: number, signal: number): boolean;
  stats(id: number): NativeStats;
  /** Whether a live worker keeps this environment's event loop alive. */
  ref(id: number, ref: boolean): void;
  release(id: number): void;
  probe(): NativeProbe;
  lookupUser(name: string): NativeUser;
  /** Windows: the environment of the user logged on in a session (-2: the console's). */
  sessionEnvironment?(session: number): string[];
  createGroup(req: NativeGroupRequest): { id: number; enforcement: NativeSpawnResult['enforcement'] };
  groupStats(id: number): NativeStats;
  releaseGroup(id: number): void;
}

let binding: NativeBinding | undefined;
let loadError: Error | undefined;

/** The package root (dist/lib/.. /..). */
export const packageRoot = path.resolve(__dirname, '..', '..');

/**
 * Loads the addon once per JS environment: `SPAWN_ISOLATED_ADDON` names a .node file to use
 * (for testing a particular build); otherwise node-gyp-build finds build/Release or prebuilds/.
 */
export function loadBinding(): NativeBinding | Error {
  if (binding) return binding;
  if (loadError) return loadError;
  try {
    const override = process.env.SPAWN_ISOLATED_ADDON;
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    binding = (override ? require(path.resolve(override)) : require('node-gyp-build')(packageRoot)) as NativeBinding;
    return binding;
  } catch (e) {
    loadError = e as Error;
    return loadError;
  }
}
