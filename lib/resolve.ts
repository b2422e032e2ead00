import * as fs from 'node:fs';
import * as path from 'node:path';
import { codedError, NodeStyleError } from './errors';

function envVar(env: Record<string, string>, name: string, platform: NodeJS.Platform): string | undefined {
  if (platform !== 'win32') return env[name];
  const upper = name.toUpperCase();
  for (const k of Object.keys(env)) if (k.toUpperCase() === upper) return env[k];
  return undefined;
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return isFile(p);
  } catch {
    return false;
  }
}

export type Resolved = { path: string } | { error: NodeStyleError };

// errno 2: ENOENT on POSIX, ERROR_FILE_NOT_FOUND on Windows.
function notFound(file: string): { error: NodeStyleError } {
  return { error: codedError('ENOENT', `spawn ${file} ENOENT`, { errno: 2, syscall: `spawn ${file}`, path: file }) };
}

/**
 * Finds the executable as `child_process.spawn` does. Windows (libuv's rules): a name with a
 * directory part is taken relative to the worker's cwd; a bare name is looked for in the
 * worker's cwd, then on the worker's PATH; each candidate is tried as given (when it has an
 * extension) and with each PATHEXT extension. Batch files are refused, as Node refuses them
 * without a shell. POSIX: a name with a slash is taken as is; a bare name is searched on PATH.
 */
export function resolveExecutable(
  file: string,
  env: Record<string, string>,
  cwd: string | undefined,
  platform: NodeJS.Platform = process.platform,
): Resolved {
  const base = cwd === undefined ? process.cwd() : path.resolve(cwd);
  if (platform === 'win32') {
    const p = path.win32;
    const exts = (envVar(env, 'PATHEXT', platform) ?? '.COM;.EXE')
      .split(';')
      .map((e) => e.trim().toLowerCase())
      .filter((e) => e.startsWith('.'));
    const hasDir = /[\\/]/.test(file) || /^[a-zA-Z]:/.test(file);
    const dirs = hasDir ? [''] : [base, ...(envVar(env, 'PATH', platform) ?? '').split(';').filter((d) => d.length > 0)];
    const hasExt = p.extname(file) !== '';
    for (const dir of dirs) {
      const stem = dir === '' ? p.resolve(base, file) : p.join(dir.replace(/^"(.*)"$/, '$1'), file);
      const candidates = (hasExt ? [stem] : []).concat(exts.map((e) => stem + e));
      for (const c of candidates) {
        if (!isFile(c)) continue;
        const ext = p.extname(c).toLowerCase();
        if (ext === '.bat' || ext === '.cmd') {
          return { error: codedError('EINVAL', `spawn ${file} EINVAL: batch files need a shell, which spawnIsolated does not start`, { errno: 87, syscall: `spawn ${file}`, path: file }) };
        }
        return { path: c };
      }
    }
    return notFound(file);
  }
  if (file.includes('/')) {
    const full = path.resolve(base, file);
    return isFile(full) ? { path: full } : notFound(file);
  }
  for (const dir of (envVar(env, 'PATH', platform) ?? '/usr/local/bin:/usr/bin:/bin').split(':')) {
    const full = path.resolve(base, dir === '' ? '.' : dir, file);
    if (isExecutable(full)) return { path: full };
  }
  return notFound(file);
}
