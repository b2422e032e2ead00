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

/** What Windows' path normalisation (GetFullPathNameW) does to a final component: trailing dots and spaces go. */
function winNormalize(p: string): string {
  return p.replace(/[. ]+$/, '');
}

/**
 * Finds the executable as `child_process.spawn` does. Windows (libuv's rules): a name with a
 * directory part is taken relative to the worker's cwd; a bare name is looked for in the
 * worker's cwd (unless `NoDefaultCurrentDirectoryInExePath` is set), then on the worker's PATH;
 * each candidate is tried as given (when it has an extension), then with `.com` and `.exe`
 * (not every PATHEXT entry: libuv does not). Batch files are refused, as Node refuses them
 * without a shell, also when written `x.bat.` or `x.cmd ` (Windows strips the trailing dots and
 * spaces and would still run them through cmd.exe). POSIX: a name with a slash is taken as is;
 * a bare name is searched on PATH.
 */
export function resolveExecutable(
  file: string,
  env: Record<string, string>,
  cwd: string | undefined,
  platform: NodeJS.Platform = process.platform,
): Resolved {
  const base = cwd === undefined ? process.cwd() : path.resolve(cwd);
  if (platform === 'win32') return resolveWindows(file, env, base);
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

function resolveWindows(file: string, env: Record<string, string>, base: string): Resolved {
  const p = path.win32;
  const hasDir = /[\\/]/.test(file) || /^[a-zA-Z]:/.test(file);
  const searchCwd = envVar(env, 'NoDefaultCurrentDirectoryInExePath', 'win32') === undefined;
  const pathDirs = (envVar(env, 'PATH', 'win32') ?? '').split(';').filter((d) => d.length > 0);
  const dirs = hasDir ? [''] : [...(searchCwd ? [base] : []), ...pathDirs];
  const hasExt = p.extname(winNormalize(file)) !== '';
  for (const dir of dirs) {
    const stem = dir === '' ? p.resolve(base, file) : p.join(dir.replace(/^"(.*)"$/, '$1'), file);
    const candidates = (hasExt ? [stem] : []).concat(['.com', '.exe'].map((e) => stem + e));
    for (const candidate of candidates) {
      const c = winNormalize(candidate);
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
