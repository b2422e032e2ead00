// What a launcher leaves behind, read from /proc and cgroupfs (Linux): shared by the leak tests
// and the soak (bench/soak.js).
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Every cgroup directory this process made and has not removed (named spawn-isolated-PID-...). */
export function ownCgroupDirs(): string[] {
  const found: string[] = [];
  const prefix = `spawn-isolated-${process.pid}-`;
  const walk = (dir: string, depth: number) => {
    let ents: fs.Dirent[];
    try {
      ents = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents) {
      if (!e.isDirectory()) continue;
      if (e.name.startsWith(prefix)) found.push(path.join(dir, e.name));
      else if (depth < 4) walk(path.join(dir, e.name), depth + 1);
    }
  };
  walk('/sys/fs/cgroup', 0);
  return found;
}

/** The pids of this process's children that have exited and not been reaped. */
export function zombieChildren(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const st = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
        const fields = st.slice(st.lastIndexOf(')') + 2).split(' ');
        return fields[0] === 'Z' && Number(fields[1]) === process.pid;
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

/**
 * This process's threads whose capability bounding set is empty: a root launcher's cloner
 * threads (at most 4 per JS thread that spawns, kept while it lives), not leaks.
 */
export function clonerThreads(): number[] {
  return threadStatuses()
    .filter((t) => /^CapBnd:\s+0+$/m.test(t.status))
    .map((t) => t.tid);
}

/** This process's threads: id, name and `/proc/self/task/TID/status` (those that ended meanwhile left out). */
export function threadStatuses(): { tid: number; name: string; status: string }[] {
  const out: { tid: number; name: string; status: string }[] = [];
  for (const t of fs.readdirSync('/proc/self/task')) {
    try {
      const status = fs.readFileSync(`/proc/self/task/${t}/status`, 'utf8');
      out.push({ tid: Number(t), name: /^Name:\s+(.*)$/m.exec(status)![1], status });
    } catch {
      // a thread that ended meanwhile
    }
  }
  return out;
}

/**
 * What each fd of this process is: its link's target (`pipe:[N]`, a path, `anon_inode:[pidfd]`...);
 * or of the fd table at `dir` (a thread's own: `/proc/self/task/T/fd`).
 */
export function fdTargets(dir = '/proc/self/fd'): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync(dir)) {
    try {
      out.push(fs.readlinkSync(`${dir}/${fd}`));
    } catch {
      // the fd readdir used, closed since
    }
  }
  return out;
}

/** What is in `after` and was not in `before`, as many of each as `after` has more of. */
export function addedSince(before: string[], after: string[]): string[] {
  const was = new Map<string, number>();
  for (const t of before) was.set(t, (was.get(t) ?? 0) + 1);
  return after.filter((t) => {
    const n = was.get(t) ?? 0;
    if (n > 0) return was.set(t, n - 1), false;
    return true;
  });
}
