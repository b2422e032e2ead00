// Validation helpers shared by the spawn options, group budgets and the command: each throws
// a Node-style error naming the option.
import { invalidArgType, invalidArgValue, outOfRange } from './errors';

export function noNul(name: string, s: string): string {
  if (s.includes('\u0000')) throw invalidArgValue(name, s, 'must be a string without null bytes');
  return s;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A one-time snapshot of every own string-keyed property of `v`, enumerable or not, on an
 * object without a prototype: options are read only from it, so a polluted `Object.prototype`
 * (or a getter that answers differently the second time) changes nothing, and a limit defined
 * non-enumerable (`Object.defineProperty(o, 'memory', { value })`) is read like any other, never
 * dropped. Inherited properties are not options.
 */
export function ownProps(v: Record<string, unknown>, name = 'options'): Record<string, unknown> {
  const o = Object.create(null) as Record<string, unknown>;
  for (const k of Object.getOwnPropertyNames(v)) o[k] = v[k];
  // What a prototype of its own (Object.create(defaults), a class) would give it is refused, not
  // dropped: an inherited limit would otherwise be silently absent. Methods pass.
  for (let p = Object.getPrototypeOf(v) as object | null; p !== null && p !== Object.prototype; p = Object.getPrototypeOf(p) as object | null) {
    for (const k of Object.getOwnPropertyNames(p)) {
      if (k === 'constructor' || k in o) continue;
      const d = Object.getOwnPropertyDescriptor(p, k);
      if (d && d.get === undefined && d.set === undefined && typeof d.value === 'function') continue;
      throw invalidArgValue(`${name}.${k}`, '<inherited>', 'is inherited from a prototype, and options are read as own properties only: pass it as an own property (e.g. { ...defaults, ...options })');
    }
  }
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

export function cores(v: unknown, name: string): number {
  if (typeof v !== 'number') throw invalidArgType(name, 'of type number', v);
  if (!Number.isFinite(v) || v < 0.01 || v > 4096) throw outOfRange(name, 'a number of cores >= 0.01 and <= 4096', v);
  return v;
}
