// The backends' pure pieces, tested directly (the addon's `internals`), without spawning.
import * as assert from 'node:assert/strict';
import { loadBinding } from '../lib/native';
import { isLinux, isWindows } from './helpers';

/* eslint-disable @typescript-eslint/no-explicit-any */
const internals = (): any => (loadBinding() as any).internals;

(isLinux ? describe : describe.skip)('internals (Linux): parsers and the seccomp filter', () => {
  it('mountinfo: mount point (escapes decoded), type and super-block options; optional fields skipped', () => {
    const text = [
      '22 27 0:21 / /proc rw,relatime - proc proc rw',
      '32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime shared:7 - cgroup cgroup rw,cpu',
      '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:8 master:1 - cgroup2 cgroup2 rw,nsdelegate',
      '50 27 0:40 / /mnt/with\\040space rw - tmpfs tmpfs rw',
      'garbage without a separator',
    ].join('\n');
    assert.deepEqual(internals().mountInfo(text), [
      ['/proc', 'proc', 'rw'],
      ['/sys/fs/cgroup/cpu', 'cgroup', 'rw,cpu'],
      ['/sys/fs/cgroup/unified', 'cgroup2', 'rw,nsdelegate'],
      ['/mnt/with space', 'tmpfs', 'rw'],
    ]);
  });

  it('/proc/PID/cgroup: v1 controllers (comma lists, named hierarchies) and the v2 path, colons in paths kept', () => {
    const text = '12:cpu,cpuacct:/a/b\n4:memory:/m:x\n1:name=systemd:/s\n0::/unified/path\n';
    assert.deepEqual(internals().procCgroup(text), { unified: '/unified/path', cpu: '/a/b', cpuacct: '/a/b', memory: '/m:x', 'name=systemd': '/s' });
  });

  // A classic-BPF interpreter for seccomp programs, over { arch, nr, args[0] }: an independent
  // reading of what the filter decides.
  const RET_KILL_PROCESS = 0x80000000;
  const RET_ERRNO = 0x00050000;
  const RET_ALLOW = 0x7fff0000;
  // `args`: each argument's low 32 bits (the high halves read as 0), or arg0 alone.
  function run(prog: [number, number, number, number][], arch: number, nr: number, args: number | number[] = 0): number {
    const a = typeof args === 'number' ? [args] : args;
    let acc = 0;
    for (let pc = 0; pc < prog.length; pc++) {
      const [code, jt, jf, k] = prog[pc];
      switch (code) {
        case 0x20: // BPF_LD | BPF_W | BPF_ABS: nr, arch, or an argument's low (16 + 8i) or high (+4) half
          if (k === 0) acc = nr;
          else if (k === 4) acc = arch;
          else if (k >= 16 && k < 64 && k % 4 === 0) acc = k % 8 === 0 ? (a[(k - 16) / 8] ?? 0) >>> 0 : 0;
          else throw new Error(`unexpected load at ${k}`);
          break;
        case 0x06: // BPF_RET | BPF_K
          return k >>> 0;
        case 0x05: // BPF_JMP | BPF_JA (the filter's far jumps: a binary search over syscall numbers)
          pc += k >>> 0;
          break;
        case 0x15: // BPF_JMP | BPF_JEQ | BPF_K
          pc += acc === k >>> 0 ? jt : jf;
          break;
        case 0x35: // BPF_JMP | BPF_JGE | BPF_K
          pc += acc >>> 0 >= k >>> 0 ? jt : jf;
          break;
        case 0x25: // BPF_JMP | BPF_JGT | BPF_K (the end of a run of numbers)
          pc += acc >>> 0 > k >>> 0 ? jt : jf;
          break;
        case 0x45: // BPF_JMP | BPF_JSET | BPF_K
          pc += (acc & k) !== 0 ? jt : jf;
          break;
        default:
          throw new Error(`unexpected BPF code 0x${code.toString(16)} at ${pc}`);
      }
    }
    throw new Error('the program fell off its end (or jumped past it)');
  }
  const errno = (e: number) => (RET_ERRNO | e) >>> 0;
  // x86_64 numbers (the CI machines); aarch64 differs and is not listed here.
  const NR = { read: 0, clone: 56, fork: 57, vfork: 58, unshare: 272, setns: 308, mount: 165, clone3: 435, bpf: 321, ptrace: 101, io_uring_setup: 425 };
  const CLONE_THREAD = 0x10000;
  const CLONE_NEWUSER = 0x10000000;
  const CLONE_NEWNS = 0x20000;
  const CLONE_FILES = 0x400;
  const [EPERM, EAGAIN, ENOSYS] = [1, 11, 38];

  (process.arch === 'x64' ? it : it.skip)('restricted: namespaces, mounts and kernel attack surface denied; threads and plain clones allowed', () => {
    const arch = internals().auditArch as number;
    const prog = internals().seccompFilter(false, true, false);
    assert.equal(run(prog, arch, NR.read), RET_ALLOW);
    assert.equal(run(prog, arch, NR.clone, CLONE_THREAD), RET_ALLOW);
    assert.equal(run(prog, arch, NR.clone, 0x11 /* SIGCHLD: a fork */), RET_ALLOW);
    assert.equal(run(prog, arch, NR.clone, CLONE_NEWUSER | 0x11), errno(EPERM));
    assert.equal(run(prog, arch, NR.unshare, CLONE_NEWNS), errno(EPERM));
    assert.equal(run(prog, arch, NR.unshare, CLONE_FILES), RET_ALLOW);
    assert.equal(run(prog, arch, NR.clone3), errno(ENOSYS));
    for (const nr of [NR.setns, NR.mount, NR.bpf, NR.io_uring_setup]) assert.equal(run(prog, arch, nr), errno(EPERM), `nr ${nr}`);
    assert.equal(run(prog, arch, NR.ptrace), RET_ALLOW, "ptrace is 'low' only");
    assert.equal(run(prog, arch ^ 1, NR.read), RET_KILL_PROCESS, 'another architecture is killed');
    assert.equal(run(prog, arch, 0x40000000 + NR.read), errno(ENOSYS), 'x32 calls are refused');
  });

  // Every x86_64 number the restricted program refuses outright with EPERM (seccomp.cc's list,
  // written out again here by name and number), and 'low''s additions.
  const RESTRICTED_EPERM: Record<string, number> = {
    syslog: 103, uselib: 134, vhangup: 153, pivot_root: 155, chroot: 161, acct: 163, settimeofday: 164, mount: 165, umount2: 166,
    swapon: 167, swapoff: 168, reboot: 169, iopl: 172, ioperm: 173, init_module: 175, delete_module: 176, quotactl: 179,
    lookup_dcookie: 212, clock_settime: 227, kexec_load: 246, add_key: 248, request_key: 249, keyctl: 250, perf_event_open: 298,
    fanotify_init: 300, name_to_handle_at: 303, open_by_handle_at: 304, clock_adjtime: 305, setns: 308, finit_module: 313,
    kexec_file_load: 320, bpf: 321, userfaultfd: 323, io_uring_setup: 425, io_uring_enter: 426, io_uring_register: 427,
    open_tree: 428, move_mount: 429, fsopen: 430, fsconfig: 431, fsmount: 432, fspick: 433, mount_setattr: 442, quotactl_fd: 443,
  };
  const LOW_EPERM: Record<string, number> = { ptrace: 101, personality: 135, process_vm_readv: 310, process_vm_writev: 311 };

  (process.arch === 'x64' ? it : it.skip)('restricted and low: every number 0-1023 gets exactly what the lists say (EPERM, clone3 ENOSYS, the rest allowed)', () => {
    const arch = internals().auditArch as number;
    const argDependent = new Set([NR.clone, NR.unshare, 16 /* ioctl */]);
    for (const low of [false, true]) {
      const prog = internals().seccompFilter(false, true, low);
      const denied = new Set(Object.values(low ? { ...RESTRICTED_EPERM, ...LOW_EPERM } : RESTRICTED_EPERM));
      for (let nr = 0; nr < 1024; nr++) {
        if (argDependent.has(nr)) continue;
        const want = denied.has(nr) ? errno(EPERM) : nr === NR.clone3 ? errno(ENOSYS) : RET_ALLOW;
        assert.equal(run(prog, arch, nr), want, `${low ? 'low' : 'restricted'}: nr ${nr}`);
      }
    }
  });

  (process.arch === 'x64' ? it : it.skip)('every spec (all 256): each number 0-1023 ends in a RET inside the program, the lists hold, and each limit asks or refuses what it should', () => {
    const arch = internals().auditArch as number;
    const RET_NOTIFY = 0x7fc00000;
    const [EACCES, SIGABRT, AF_UNIX, AF_INET] = [13, 6, 1, 2];
    const X = { mmap: 9, ioctl: 16, socket: 41, execve: 59, exit: 60, kill: 62, exit_group: 231, tgkill: 234, execveat: 322 };
    const ruled = new Set([NR.clone, NR.fork, NR.vfork, NR.clone3, NR.unshare, X.mmap, X.ioctl, X.socket, X.execve, X.exit, X.kill, X.exit_group, X.tgkill, X.execveat]);
    const argSets = [[0, 0, 0, 0, 0, 0], [0x11], [CLONE_THREAD | 0x11], [1, 0x5412], [AF_UNIX], [0, 1 << 21, 3, 2], [0, 0, SIGABRT]];
    for (let bits = 0; bits < 256; bits++) {
      const [noChildren, restricted, low] = [(bits & 1) !== 0, (bits & 2) !== 0, (bits & 4) !== 0];
      const more = bits >> 3; // 1 notifyChildren, 2 notifyExec, 4 notifyFailure, 8 noUnixSockets, 16 startsWorker
      const [notifyChildren, notifyExec, notifyFailure, noUnix] = [(more & 1) !== 0, (more & 2) !== 0, (more & 4) !== 0, (more & 8) !== 0];
      const prog = internals().seccompFilter(noChildren, restricted, low, more) as [number, number, number, number][];
      const spec = `spec ${bits}`;
      if (prog.length === 0) {
        assert.ok(!noChildren && !restricted && !low && !notifyChildren && !notifyExec && !notifyFailure && !noUnix, `${spec}: an empty program`);
        continue;
      }
      const denied = new Set([...(restricted ? Object.values(RESTRICTED_EPERM) : []), ...(low ? Object.values(LOW_EPERM) : [])]);
      for (let nr = 0; nr < 1024; nr++) {
        const results = argSets.map((args) => run(prog, arch, nr, args)); // throws if a path leaves the program
        if (ruled.has(nr)) continue;
        const want = denied.has(nr) ? errno(EPERM) : RET_ALLOW;
        for (const r of results) assert.equal(r, want, `${spec}: nr ${nr}`);
      }
      const proc = noChildren ? errno(EAGAIN) : notifyChildren ? RET_NOTIFY : RET_ALLOW;
      assert.equal(run(prog, arch, NR.fork), proc, `${spec}: fork`);
      assert.equal(run(prog, arch, NR.vfork), proc, `${spec}: vfork`);
      assert.equal(run(prog, arch, NR.clone, 0x11), proc, `${spec}: clone of a process`);
      assert.equal(run(prog, arch, NR.clone, CLONE_THREAD | 0x11), RET_ALLOW, `${spec}: a thread`);
      assert.equal(run(prog, arch, NR.clone3), noChildren || restricted || notifyChildren ? errno(ENOSYS) : RET_ALLOW, `${spec}: clone3`);
      assert.equal(run(prog, arch, X.socket, AF_UNIX), noUnix ? errno(EACCES) : RET_ALLOW, `${spec}: socket(AF_UNIX)`);
      assert.equal(run(prog, arch, X.socket, AF_INET), RET_ALLOW, `${spec}: socket(AF_INET)`);
      assert.equal(run(prog, arch, X.execveat), notifyExec ? RET_NOTIFY : RET_ALLOW, `${spec}: execveat`);
      assert.equal(run(prog, arch, X.execve, [1, 2, 3]), notifyExec ? RET_NOTIFY : RET_ALLOW, `${spec}: another execve`);
      assert.equal(run(prog, arch, X.exit_group, 1), notifyFailure ? RET_NOTIFY : RET_ALLOW, `${spec}: exit_group(1)`);
      assert.equal(run(prog, arch, X.exit_group, 0), RET_ALLOW, `${spec}: exit_group(0)`);
      assert.equal(run(prog, arch, X.kill, [1, SIGABRT]), notifyFailure ? RET_NOTIFY : RET_ALLOW, `${spec}: kill(SIGABRT)`);
      assert.equal(run(prog, arch, X.mmap, [0, 1 << 21, 3, 2]), notifyFailure ? RET_NOTIFY : RET_ALLOW, `${spec}: a large private writable mmap`);
      assert.equal(run(prog, arch, X.mmap, [0, 4096, 3, 2]), RET_ALLOW, `${spec}: a small mmap`);
      assert.equal(run(prog, arch, X.ioctl, [1, 0x5412]), restricted ? errno(EPERM) : RET_ALLOW, `${spec}: TIOCSTI`);
      assert.equal(run(prog, arch, NR.unshare, CLONE_NEWNS), restricted ? errno(EPERM) : RET_ALLOW, `${spec}: unshare(CLONE_NEWNS)`);
      assert.equal(run(prog, arch ^ 1, NR.read), RET_KILL_PROCESS, `${spec}: another architecture`);
    }
  });

  (process.arch === 'x64' ? it : it.skip)('processes: 1 refuses fork, vfork and process clones only; low adds ptrace; inherit filters nothing', () => {
    const arch = internals().auditArch as number;
    const one = internals().seccompFilter(true, false, false);
    assert.equal(run(one, arch, NR.fork), errno(EAGAIN));
    assert.equal(run(one, arch, NR.vfork), errno(EAGAIN));
    assert.equal(run(one, arch, NR.clone, 0x11), errno(EAGAIN));
    assert.equal(run(one, arch, NR.clone, CLONE_THREAD | 0x11), RET_ALLOW);
    assert.equal(run(one, arch, NR.unshare, CLONE_NEWNS), RET_ALLOW, 'namespaces are the restricted filter’s');
    const low = internals().seccompFilter(false, true, true);
    assert.equal(run(low, arch, NR.ptrace), errno(EPERM));
    assert.deepEqual(internals().seccompFilter(false, false, false), []);
  });
});

(isWindows ? describe : describe.skip)('internals (Windows): command line, environment block, error codes', () => {
  it('the command line round-trips through CommandLineToArgvW for hostile arguments', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const koffi = require('koffi');
    const shell32 = koffi.load('shell32.dll');
    const k32 = koffi.load('kernel32.dll');
    const CommandLineToArgvW = shell32.func('void * __stdcall CommandLineToArgvW(str16 line, _Out_ int *argc)');
    const LocalFree = k32.func('void * __stdcall LocalFree(void *p)');
    const args = ['C:\\w\\worker.exe', '', 'a b', 'a"b', 'a\\', 'a\\\\"b', 'a\\"', '\\\\server\\share\\', ' lead', 'trail\\ ', '"', '\\', 'é ☃', 'x\ty'];
    const line: string = internals().commandLine(args);
    const argc = [0];
    const argv = CommandLineToArgvW(line, argc);
    try {
      const got = koffi.decode(argv, koffi.array('str16', argc[0], 'Array')) as string[];
      assert.deepEqual(got, args, line);
    } finally {
      LocalFree(argv);
    }
  });

  it('the environment block is sorted without regard to case and keeps SYSTEMROOT', () => {
    const block: string[] = internals().environmentBlock(['b=2', 'A=1', 'c=3', '=C:=C:\\x']);
    const names = block.map((e) => e.slice(0, e.indexOf('=', 1)));
    assert.deepEqual(names, [...names].sort((x, y) => x.toUpperCase().localeCompare(y.toUpperCase())));
    assert.ok(block.some((e) => /^SYSTEMROOT=/i.test(e)), block.join(' '));
    for (const e of ['A=1', 'b=2', 'c=3']) assert.ok(block.includes(e), e);
  });

  it('Win32 errors map to the codes libuv gives them', () => {
    const table: [number, string][] = [[2, 'ENOENT'], [3, 'ENOENT'], [5, 'EACCES'], [8, 'ENOMEM'], [87, 'EINVAL'], [193, 'EFTYPE'], [206, 'ENAMETOOLONG'], [4, 'EMFILE'], [109, 'EPIPE'], [183, 'EEXIST'], [123, 'ENOENT'], [53, 'ENOENT'], [1260, 'EACCES'], [225, 'EACCES'], [577, 'EACCES'], [999999, 'UNKNOWN']];
    for (const [err, code] of table) assert.equal(internals().win32Code(err), code, `Win32 error ${err}`);
  });

  it("CPU rate: a share of the enclosing job's cores, not of the machine's; what cannot be expressed is refused", () => {
    const rate = (cores: number, parent: number) => internals().cpuRate(cores, parent) as { rate: number; why?: string };
    assert.equal(rate(1, 2).rate, 5000);
    // 0.5 cores inside a group capped at 2 cores on a 16-processor machine: 25% of the group,
    // not 0.5/16 of it (which would be 0.06 cores).
    assert.equal(rate(0.5, 2).rate, 2500);
    assert.equal(rate(16, 16).rate, 10000);
    assert.equal(rate(0.01, 100).rate, 1);
    assert.equal(rate(0.01, 256).rate, 0);
    assert.match(rate(0.01, 256).why!, /too small/);
    assert.equal(rate(3, 2).rate, 0);
    assert.match(rate(3, 2).why!, /more cores than the 2/);
  });

  it('affinity: CPU numbers count across processor groups; each group used gets its own mask', () => {
    const aff = (cpus: number[], sizes: number[]) => internals().groupAffinity(cpus, sizes) as [number, bigint][];
    assert.deepEqual(aff([0, 3], [4]), [[0, 0b1001n]]);
    assert.deepEqual(aff([63, 64, 65, 0], [64, 64]), [[0, (1n << 63n) | 1n], [1, 0b11n]]);
    assert.deepEqual(aff([70], [36, 36]), [[1, 1n << 34n]]);
    assert.throws(() => aff([72], [36, 36]), { code: 'ERR_OUT_OF_RANGE' });
  });

  it("job limit messages: a group's echo of a member's message is dropped, a new hit is not", () => {
    const MEMORY = 9;
    const PROCESSES = 11;
    const admitted: boolean[] = internals().limitEchoes([
      [PROCESSES, 100, 0], // the member's own job
      [PROCESSES, 100, 1], // its group's echo
      [PROCESSES, 100, 0], // a second refusal: a new hit
      [MEMORY, 200, 0],    // another process's hit, interleaved
      [PROCESSES, 100, 1], // the echo of the second refusal
      [MEMORY, 200, 1],
      [MEMORY, 300, 1],    // the group's own limit, no member message: reported
    ]);
    assert.deepEqual(admitted, [true, false, true, true, false, false, true]);
  });

  it('job memory limits: whole pages; a 32-bit (ia32) build refuses what its SIZE_T cannot hold instead of wrapping (5 GiB is not 1 GiB)', () => {
    const bytes = (n: number, bits: number) => internals().jobMemoryBytes(n, bits) as number;
    assert.equal(bytes(5 * 2 ** 30, 64), 5 * 2 ** 30);
    assert.equal(bytes(5 * 2 ** 30 + 100, 64), 5 * 2 ** 30);
    assert.equal(bytes(100, 64), 4096, 'never below one page');
    assert.equal(bytes(2 ** 32 - 1, 32), 2 ** 32 - 4096);
    assert.throws(() => bytes(5 * 2 ** 30, 32), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => bytes(2 ** 32, 32), { code: 'ERR_OUT_OF_RANGE' });
  });

  it('handle watchdog: a listed process it cannot open is gone unless the job still lists it (a pid reused by a process it may not open is no violation)', () => {
    const ERROR_ACCESS_DENIED = 5;
    const ERROR_INVALID_PARAMETER = 87;
    const gone = (err: number, stillListed: boolean) => internals().watchdogUnopenedIsGone(err, stillListed) as boolean;
    assert.equal(gone(ERROR_INVALID_PARAMETER, true), true, 'no such process');
    assert.equal(gone(ERROR_ACCESS_DENIED, false), true, 'exited, its pid reused by a process this launcher may not open');
    assert.equal(gone(ERROR_ACCESS_DENIED, true), false, 'a member that denies the launcher its query right');
  });
});
