import { invalidArgType, invalidArgValue, outOfRange } from './errors';

/** A byte count: a number of bytes, or a string such as `'512MiB'`, `'2GiB'`, `'500MB'`, `'64k'`. */
export type ByteSize = number | string;
/** A duration: a number of milliseconds, or a string such as `'250ms'`, `'30s'`, `'1m30s'`, `'2h'`. */
export type Duration = number | string;

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1024, kib: 1024, kb: 1000,
  m: 1024 ** 2, mib: 1024 ** 2, mb: 1000 ** 2,
  g: 1024 ** 3, gib: 1024 ** 3, gb: 1000 ** 3,
  t: 1024 ** 4, tib: 1024 ** 4, tb: 1000 ** 4,
};

/** Parses a byte size. Binary units (KiB, MiB, GiB, TiB, and the bare K, M, G, T) are powers of 1024; KB, MB, GB, TB are powers of 1000. */
export function parseByteSize(value: unknown, name: string): number {
  let bytes: number;
  if (typeof value === 'number') {
    bytes = value;
  } else if (typeof value === 'string') {
    // trim() first, and no two adjacent runs that can match the same characters: linear time
    // whatever the input (the old pattern backtracked quadratically over long blank runs).
    const m = /^(\d+(?:\.\d+)?)[ \t]*([a-zA-Z]*)$/.exec(value.trim());
    const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
    if (!m || unit === undefined) {
      throw invalidArgValue(name, value, "must be a byte size such as 512MiB, 2GiB or 500MB");
    }
    bytes = Math.floor(Number(m[1]) * unit);
  } else {
    throw invalidArgType(name, 'of type number or string', value);
  }
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw outOfRange(name, 'a whole number of bytes >= 1', value);
  }
  return bytes;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses a duration to milliseconds; `zero`: 0 is allowed (it means "at once"). */
export function parseDuration(value: unknown, name: string, opts: { zero?: boolean } = {}): number {
  let ms: number;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw outOfRange(name, 'a whole number of milliseconds', value);
    ms = value;
  } else if (typeof value === 'string') {
    const s = value.trim();
    const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
    ms = 0;
    let matched = 0;
    let m: RegExpExecArray | null;
    while ((m = re.exec(s)) !== null) {
      ms += Number(m[1]) * DURATION_UNITS[m[2]];
      matched = re.lastIndex;
    }
    if (s.length === 0 || matched !== s.length) {
      throw invalidArgValue(name, value, "must be a duration such as 250ms, 30s, 1m30s or 2h");
    }
    ms = Math.round(ms);
  } else {
    throw invalidArgType(name, 'of type number or string', value);
  }
  if (!Number.isFinite(ms) || ms < (opts.zero ? 0 : 1) || ms > 2 ** 31 * 1000) {
    throw outOfRange(name, opts.zero ? 'a duration of at least 0ms' : 'a duration of at least 1ms', value);
  }
  return ms;
}

/** Formats bytes for people: `512 MiB`, `1.5 GiB`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
}
