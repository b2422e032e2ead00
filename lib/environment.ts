// The worker's environment: validated from options.env (or process.env), and what the Go
// runtime is told about the limits.
import { invalidArgType, invalidArgValue } from './errors';
import type { NativeLimits } from './native';
import { isPlainObject, noNul } from './validate';

/** The variable that names the worker's end of its channel (set by the native layer). */
export const CHANNEL_ENV = 'SPAWN_ISOLATED_CHANNEL';

/**
 * Where `obj` gets its property `k` from: true when it is `Object.prototype` (a polluted
 * prototype), false when `obj` or a prototype of its own defines it.
 */
function fromObjectPrototype(obj: object, k: string): boolean {
  for (let p: object | null = obj; p !== null; p = Object.getPrototypeOf(p) as object | null) {
    if (Object.prototype.hasOwnProperty.call(p, k)) return p === Object.prototype;
  }
  return false;
}

/** Every enumerable key of `obj`, own or inherited, except those `Object.prototype` gives. */
function forInKeys(obj: Record<string, unknown>): string[] {
  const keys: string[] = [];
  for (const k in obj) {
    if (!Object.prototype.hasOwnProperty.call(obj, k) && fromObjectPrototype(obj, k)) continue;
    keys.push(k);
  }
  return keys;
}

/**
 * The worker's environment, as child_process builds it: every enumerable key of `options.env`
 * (or `process.env`), own or inherited, except what `Object.prototype` gives (a polluted
 * prototype never reaches a worker; child_process passes it on). `null` is no env (`process.env`).
 */
export function normalizeEnv(v: unknown, platform: NodeJS.Platform): Record<string, string> {
  const source = v === undefined || v === null ? process.env : v;
  if (!isPlainObject(source)) throw invalidArgType('options.env', 'of type object', v);
  const env = Object.create(null) as Record<string, string>;
  // process.env's keys are all its own (each lookup on it asks the C++ side: its own keys once,
  // then no per-key ownership check); any other object is walked as child_process walks it.
  const keys = source === process.env ? Object.keys(source) : forInKeys(source);
  const eqFrom = platform === 'win32' ? 1 : 0;
  for (const k of keys) {
    const val = source[k];
    // Only the launcher names a worker's channel (and only when it made one).
    if (val === undefined || (k.length === CHANNEL_ENV.length && k.toUpperCase() === CHANNEL_ENV)) continue;
    // The checks of a good entry make no string (an error's option name is made when thrown):
    // this loop runs for every variable of every spawn. The name first, then the value.
    if (k.length === 0 || k.indexOf('=', eqFrom) !== -1 || k.includes('\u0000')) badEnvName(k, eqFrom);
    const s = String(val);
    if (s.includes('\u0000')) throw invalidArgValue(`options.env.${k}`, s, 'must be a string without null bytes');
    env[k] = s;
  }
  return env;
}

/** Throws the error for a name normalizeEnv refuses, as it checks: a null byte, then the form. */
function badEnvName(k: string, eqFrom: number): never {
  const name = `options.env.${k}`;
  noNul(name, k);
  throw invalidArgValue(name, k, "must be a variable name without '='");
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
export function goEnvironment(n: { env: Record<string, string>; limits: NativeLimits; go: boolean }, platform: NodeJS.Platform = process.platform): Record<string, string> {
  const l = n.limits;
  let procs: number | undefined;
  if (n.go && l.cpuCores !== undefined) procs = Math.max(1, Math.ceil(l.cpuCores));
  if (n.go && l.affinity !== undefined) procs = Math.min(procs ?? Infinity, l.affinity.length);
  const mems = n.go ? [l.memoryProcess, l.memoryTotal].filter((x): x is number => x !== undefined) : [];
  const addProcs = procs !== undefined && !hasVar(n.env, 'GOMAXPROCS', platform);
  const addMem = mems.length > 0 && !hasVar(n.env, 'GOMEMLIMIT', platform);
  // No prototype: nothing read from it later (PATH for the executable's lookup) can be
  // inherited. Copied only when something is added (n.env is left as it was).
  const env = !addProcs && !addMem && Object.getPrototypeOf(n.env) === null ? n.env : Object.assign(Object.create(null) as Record<string, string>, n.env);
  if (addProcs) env.GOMAXPROCS = String(procs);
  if (addMem) env.GOMEMLIMIT = String(Math.floor(Math.min(...mems) * 0.9));
  return env;
}

/**
 * `base` ("NAME=value" entries: a session user's own environment) with `top` (options.env) on
 * top; names compare without case on Windows, where the last one set wins.
 */
export function overlayEnv(base: readonly string[], top: Record<string, string>, platform: NodeJS.Platform = process.platform): Record<string, string> {
  const env = Object.create(null) as Record<string, string>;
  const key = (k: string) => (platform === 'win32' ? k.toUpperCase() : k);
  const names = new Map<string, string>();
  const set = (k: string, v: string) => {
    const old = names.get(key(k));
    if (old !== undefined) delete env[old];
    names.set(key(k), k);
    env[k] = v;
  };
  for (const e of base) {
    const eq = e.indexOf('=', 1); // a leading '=' belongs to the name ('=C:' entries)
    if (eq > 0) set(e.slice(0, eq), e.slice(eq + 1));
  }
  for (const [k, v] of Object.entries(top)) set(k, v);
  return env;
}
