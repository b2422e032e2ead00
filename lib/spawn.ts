// The launcher: the addon's registry, isolationSupport(), spawnIsolated() and groups.
import { codedError, NodeStyleError } from './errors';
import { IsolationGroup, GroupLimits, normalizeGroupLimits } from './group';
import { loadBinding, NativeBinding, NativeEvent, NativeSpawnRequest, NativeUser } from './native';
import { goEnvironment, overlayEnv } from './environment';
import { IsolationOptions, NativeLimits, normalizeOptions, rootIdentityError, startMemoryError } from './options';
import { enforcementMap, IsolatedProcess, LimitEnforcement, LimitName, Registry, stopReading } from './process';
import { resolveExecutable } from './resolve';

/** What this host can enforce. */
export interface IsolationSupport {
  platform: NodeJS.Platform;
  arch: string;
  /** `'windows-job-object'`, `'linux-cgroup-v2'`, `'linux-cgroup-v1'`, `'linux-rlimit'`, or `'none'`. */
  backend: string;
  /** Whether spawnIsolated() can start workers here at all. */
  spawn: boolean;
  /** Why not, when `spawn` is false. */
  reason?: string;
  /** Per limit: enforced or not, by what, and why not. */
  limits: Record<LimitName, LimitEnforcement>;
}

const ALL_LIMITS: LimitName[] = [
  'memory.process', 'memory.total', 'cpu.cores', 'cpu.time', 'cpu.affinity', 'processes', 'threads', 'handles', 'privileges',
  'killOnClose', 'inheritHandles', 'network', 'filesystem', 'disk',
];

// One registry per JS environment (this module is loaded once per main thread / worker_thread).
let registry: Registry | undefined;
const workers = new Map<number, IsolatedProcess>();

function getRegistry(): Registry | Error {
  if (registry) return registry;
  const b = loadBinding();
  if (b instanceof Error) return b;
  const binding: NativeBinding = b;
  binding.init((ev: NativeEvent) => {
    try {
      workers.get(ev.id)?._event(ev);
    } catch (err) {
      // A listener threw: uncaught, as from a child_process event (Node-API would only warn).
      process.nextTick(() => {
        throw err;
      });
    }
  });
  registry = {
    binding,
    add: (id, proc) => workers.set(id, proc),
    remove: (id) => workers.delete(id),
  };
  return registry;
}

// The addon is loaded as this module is imported, not at the first spawn: a spawn made when the
// fd table is full then fails with what the spawn itself met (EMFILE), not with ERR_DLOPEN_FAILED
// because the addon's own file could not be opened. A load failure is kept and reported by
// isolationSupport() and each spawn.
getRegistry();

function loadFailure(err: Error): NodeStyleError {
  return codedError('ERR_DLOPEN_FAILED', `spawn-isolated: the native addon could not be loaded: ${err.message}`, { cause: err } as Partial<NodeStyleError>);
}

/**
 * What this host can enforce, per limit, and why not. Works on every platform (it never throws).
 */
export function isolationSupport(): IsolationSupport {
  const reg = getRegistry();
  const base = { platform: process.platform, arch: process.arch };
  if (reg instanceof Error) {
    const reason = loadFailure(reg).message;
    const limits = {} as Record<LimitName, LimitEnforcement>;
    for (const l of ALL_LIMITS) limits[l] = { enforced: false, mechanism: 'none', reason };
    return { ...base, backend: 'none', spawn: false, reason, limits };
  }
  const probe = reg.binding.probe();
  const reported = enforcementMap(probe.limits);
  const limits = {} as Record<LimitName, LimitEnforcement>;
  for (const l of ALL_LIMITS) limits[l] = reported[l] ?? { enforced: false, mechanism: 'none', reason: 'not reported by the backend' };
  const out: IsolationSupport = { ...base, backend: probe.backend, spawn: probe.spawn, limits };
  if (probe.spawnReason) out.reason = probe.spawnReason;
  return out;
}

/**
 * Launches `file` under the limits in `options`. Bad arguments throw synchronously
 * (`ERR_INVALID_ARG_TYPE`, `ERR_INVALID_ARG_VALUE`, `ERR_OUT_OF_RANGE`, with child_process's
 * codes where it checks the same); failures to start are emitted as `'error'`, then `'close'`,
 * after this returns, and reject `exited`, as with `child_process.spawn`. `args` entries are
 * converted to strings, as there. See the README for what differs from child_process, and why.
 */
export function spawnIsolated(file: string, args?: readonly string[], options?: IsolationOptions): IsolatedProcess;
export function spawnIsolated(file: string, options?: IsolationOptions): IsolatedProcess;
export function spawnIsolated(file: string, argsOrOptions?: readonly string[] | IsolationOptions, maybeOptions?: IsolationOptions): IsolatedProcess {
  return launch(file, argsOrOptions, maybeOptions);
}

/** The smaller of a worker's own limit and its group's budget (what Go should plan for). */
function tighter(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.min(a, b);
}

/** "NAME=value" for each variable (a loop: entries() and map() made two arrays per spawn). */
function envEntries(env: Record<string, string>): string[] {
  const out: string[] = [];
  for (const k in env) out.push(k + '=' + env[k]);
  return out;
}

function launch(file: string, argsOrOptions: unknown, maybeOptions: unknown, group?: { id: number; limits: NativeLimits }): IsolatedProcess {
  let args: unknown = argsOrOptions;
  let options: unknown = maybeOptions;
  if (argsOrOptions === undefined || argsOrOptions === null) {
    args = [];
  } else if (!Array.isArray(argsOrOptions) && typeof argsOrOptions === 'object') {
    if (maybeOptions !== undefined) args = argsOrOptions; // fails as "args must be an Array"
    else {
      args = [];
      options = argsOrOptions;
    }
  }
  const n = normalizeOptions(file, args, options);
  if (group?.limits.cpuCores !== undefined && n.limits.cpuCores !== undefined && n.limits.cpuCores > group.limits.cpuCores) {
    // A member can never use more than its group's cores: capped at them, as its memory is by
    // the group's budget (cgroup v1 refuses a member's quota above its group's with EINVAL).
    n.limits.cpuCores = group.limits.cpuCores;
  }
  const proc = new IsolatedProcess(n.file, n.args);
  const pipes = n.stdio.map((s) => s === 'pipe');

  const reg = getRegistry();
  if (reg instanceof Error) {
    proc._fail(loadFailure(reg), pipes);
    return proc;
  }
  if (n.user !== undefined) {
    // As runuser -l: the user's ids and groups, a login environment, its home as cwd.
    let u: NativeUser;
    try {
      u = reg.binding.lookupUser(n.user);
    } catch (e) {
      proc._fail(e as NodeStyleError, pipes);
      return proc;
    }
    const login: Record<string, string> = { HOME: u.home, SHELL: u.shell, USER: u.name, LOGNAME: u.name, PATH: '/usr/local/bin:/usr/bin:/bin' };
    if (process.env.TERM) login.TERM = process.env.TERM;
    n.env = n.envExplicit ? { ...login, ...n.env } : login;
    const rootError = rootIdentityError(n.privileges, u.uid, u.gid, `options.user '${n.user}'`);
    if (rootError) {
      proc._fail(rootError, pipes);
      return proc;
    }
    n.uid = u.uid;
    n.gid = u.gid;
    n.groups = u.groups;
    n.cwd = n.cwd ?? u.home;
  }
  if (n.session !== undefined && reg.binding.sessionEnvironment) {
    // Windows, another session: the worker starts from that session user's own environment (as
    // its logon makes it), options.env on top; its executable is looked up on that PATH.
    try {
      n.env = overlayEnv(reg.binding.sessionEnvironment(n.session), n.envExplicit ? n.env : {});
    } catch (e) {
      proc._fail(e as NodeStyleError, pipes);
      return proc;
    }
  }
  const goLimits = group
    ? {
        ...n.limits,
        memoryTotal: tighter(n.limits.memoryTotal, group.limits.memoryTotal),
        cpuCores: tighter(n.limits.cpuCores, group.limits.cpuCores),
      }
    : n.limits;
  const env = goEnvironment({ env: n.env, go: n.go, limits: goLimits });
  // Too little memory to exec: refused here, before a worker is made that could never start.
  const groupTighter = group?.limits.memoryTotal !== undefined && (n.limits.memoryTotal === undefined || group.limits.memoryTotal < n.limits.memoryTotal);
  const memoryError = startMemoryError(goLimits.memoryTotal, [n.file, ...n.args], env, groupTighter ? "the group's memory budget" : 'options.memory');
  if (memoryError) throw memoryError;
  const found = resolveExecutable(n.file, env, n.cwd);
  if ('error' in found) {
    proc._fail(found.error, pipes);
    return proc;
  }
  const request: NativeSpawnRequest = {
    file: found.path,
    args: [n.file, ...n.args],
    cwd: n.cwd,
    env: envEntries(env),
    stdio: n.stdio,
    inherit: n.inherit,
    limits: n.limits,
    privileges: n.privileges,
    privilegesExplicit: n.privilegesExplicit,
    threadsImplied: n.threadsImplied,
    killOnClose: n.killOnClose,
    windowsHide: n.windowsHide,
    channel: n.channel !== false,
    tempDir: n.tempDir,
    keepTempDir: n.keepTempDir,
    privateProfile: n.privateProfile,
    networkNone: n.network === 'none',
    filesystem: n.filesystem,
    strict: n.strict,
    uid: n.uid,
    gid: n.gid,
    groups: n.groups,
    session: n.session,
    envExplicit: n.envExplicit,
    group: group?.id,
  };
  let res;
  try {
    res = reg.binding.spawn(request);
  } catch (e) {
    proc._fail(e as NodeStyleError, pipes);
    return proc;
  }
  // As child_process: a stream handed to the worker is no longer read here (the worker reads it).
  for (const s of n.stdioStreams) if (s !== undefined) stopReading(s);
  proc._start(reg, res, { timeoutMs: n.timeoutMs, signal: n.signal, killSignal: n.killSignal, forceKillAfterMs: n.forceKillAfterMs, channel: n.channel, maxMessageSize: n.maxMessageSize });
  return proc;
}

/**
 * Creates a group whose workers share one job (Windows) / one parent cgroup (Linux):
 * `memory`, `cpu` and `processes` are budgets for all of them together. Throws (synchronously)
 * `ERR_LIMIT_NOT_ENFORCED` in strict mode when this host cannot enforce a budget.
 */
export function createIsolationGroup(limits?: GroupLimits): IsolationGroup {
  const g = normalizeGroupLimits(limits);
  const reg = getRegistry();
  if (reg instanceof Error) throw loadFailure(reg);
  const res = reg.binding.createGroup({ limits: g.limits, strict: g.strict, killOnClose: g.killOnClose });
  return new IsolationGroup(reg, res.id, g.limits, res.enforcement, launch);
}
