import * as fs from 'node:fs';
import * as path from 'node:path';
import { codedError, NodeStyleError } from './errors';

/** `env`'s own variable `name` (never one a polluted Object.prototype would give). */
function envVar(env: Record<string, string>, name: string, platform: NodeJS.Platform): string | undefined {
  if (platform !== 'win32') return Object.prototype.hasOwnProperty.call(env, name) ? env[name] : undefined;
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

// What execve says of something that exists but is no executable file (a directory, say).
function notExecutable(file: string): { error: NodeStyleError } {
  return { error: codedError('EACCES', `spawn ${file} EACCES`, { errno: 13, syscall: `spawn ${file}`, path: file }) };
}

function exists(p: string): boolean {
  try {
    fs.statSync(p);
    return true;
  } catch {
    return false;
  }
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
 * a bare name is searched on the worker's own PATH (without one, libuv's and Node's default
 * `/usr/bin:/bin`);
 * a directory, or a name found only as something not executable, is EACCES, as execvp says.
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
    // A directory is EACCES, as execve (and child_process) says; a file that is not executable
    // is the exec's to refuse (EACCES too).
    return isFile(full) ? { path: full } : exists(full) ? notExecutable(file) : notFound(file);
  }
  // As execvp: a candidate that exists but cannot be run (a directory, a file without x) is
  // passed over, and the search ends in EACCES rather than ENOENT when there was one.
  let sawOne = false;
  for (const dir of (envVar(env, 'PATH', platform) ?? '/usr/bin:/bin').split(':')) {
    const full = path.resolve(base, dir === '' ? '.' : dir, file);
    if (isExecutable(full)) return { path: full };
    if (!sawOne && exists(full)) sawOne = true;
  }
  return sawOne ? notExecutable(file) : notFound(file);
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
