// spawn-isolated-init: PID 1 of a worker's PID namespace, so that the worker is not PID 1 and
// behaves as it would under child_process. It is exec'd (from a sealed memfd the addon holds)
// by the namespace's first process once that process has started the worker as its child.
//
//   argv[1]: the worker's pid (in this namespace)
//   fd 0:    the status pipe: before it exits, the init writes there the worker's wait status
//            (int32), 4 bytes of padding and the worker's CPU time as the kernel's RLIMIT_CPU
//            check counts it (CPUCLOCK_PROF, uint64 ns), read while the worker was a zombie
//   fd 1:    the gate: the worker waits (before its exec) for one byte here, written once this
//            process is non-dumpable, so the worker never runs while the init is within reach;
//            when the worker has exec'd already (a vfork child of the process that exec'd this
//            one: it never had this process within reach, see native/posix/child.cc), the
//            launcher's error pipe instead, where the byte says that this process is up
//   fd 2:    held, never used: the transient uid's reservation (an OFD lock), or not open
//   fd 3:    the worker's memory cgroup ("tasks" or a leaf's), entered first, or not open: the
//            process that exec'd this one shared the launcher's memory, and must not be in it
//   all other fds are closed; every signal is blocked (the exec'ing process blocked them).
//
// The launcher may be waiting for fd 1's byte (the relay, when the worker exec'd before this
// process did): written once this process is out of reach, just before it sleeps.
//
// It forwards every signal it receives to the worker, reaps every process that ends in the
// namespace (orphans are re-parented to it), and exits once the worker has: then the kernel
// ends whatever is left of the namespace. Freestanding (no libc): nothing to load, a few KiB.
#include <asm/unistd.h>
#include <linux/prctl.h>
#include <linux/signal.h>

typedef unsigned long u64;

#if defined(__x86_64__)
static long sys5(long n, long a, long b, long c, long d, long e) {
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8) : "rcx", "r11", "memory");
  return ret;
}
__asm__(".text\n.global _start\n_start:\n xor %rbp,%rbp\n mov %rsp,%rdi\n and $-16,%rsp\n call init_main\n hlt\n");
#elif defined(__aarch64__)
static long sys5(long n, long a, long b, long c, long d, long e) {
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4) : "memory");
  return x0;
}
__asm__(".text\n.global _start\n_start:\n mov x0, sp\n bl init_main\n brk #0\n");
#else
#error "spawn-isolated-init: x86_64 and aarch64 only"
#endif

// Every argument a system call does not take is passed as 0.
static long sys(long n, long a, long b, long c, long d) { return sys5(n, a, b, c, d, 0); }

#define STATUS_FD 0
#define GATE_FD 1
#define MEMORY_CGROUP_FD 3
#define EBADF 9
#define WNOHANG 1
#define WEXITED 4
#define WNOWAIT 0x01000000
#define P_ALL 0
#define SIGINFO_SIZE 128  // sizeof(siginfo_t)
#define SIGINFO_PID_OFFSET 16
// MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_PROF): the process's user + system time, as sampled
// at ticks (what RLIMIT_CPU is checked against).
#define PROF_CLOCK(pid) ((~(long)(pid)) << 3)
#define SIGNALFD_SIZE 128  // sizeof(struct signalfd_siginfo)

static __attribute__((noreturn)) void quit(int code) {
  for (;;) sys(__NR_exit_group, code, 0, 0, 0);
}

static long parse_pid(const char* s) {
  long v = 0;
  if (s == 0 || *s == 0) return -1;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    v = v * 10 + (*s - '0');
  }
  return v;
}

__attribute__((noreturn, used)) void init_main(long* sp) {
  long argc = sp[0];
  char** argv = (char**)(sp + 1);
  long worker = argc > 1 ? parse_pid(argv[1]) : -1;
  if (worker <= 1) quit(125);
  // Its name, whatever name the kernel gives a program run from a memfd by execveat (not the
  // same on every kernel): the one the process that exec'd this one took before it started the
  // worker (child.cc, kInitComm), which a worker may check (/proc/1/comm).
  sys(__NR_prctl, PR_SET_NAME, (long)"memfd:spawn-iso", 0, 0);
  // Before its byte: once the launcher has it, this process is in all of the worker's cgroups.
  long joined = sys(__NR_write, MEMORY_CGROUP_FD, (long)"0", 1, 0);
  if (joined != 1 && joined != -EBADF) quit(125);
  sys(__NR_close, MEMORY_CGROUP_FD, 0, 0, 0);
  // Not dumpable: the worker runs as the same uid, and must not read or write this process's
  // memory (/proc/1/mem, ptrace) to forge the status it reports or stop its forwarding.
  if (sys(__NR_prctl, PR_SET_DUMPABLE, 0, 0, 0) != 0) quit(125);
  // Only now may the worker go on to its exec (no gate: it has exec'd already).
  char go = 'g';
  long wrote = sys(__NR_write, GATE_FD, (long)&go, 1, 0);
  if (wrote != 1 && wrote != -EBADF) quit(125);
  sys(__NR_close, GATE_FD, 0, 0, 0);
  u64 all = ~0UL;
  // Blocked already; again, in case of an exec'ing process that did not.
  sys(__NR_rt_sigprocmask, SIG_BLOCK, (long)&all, 0, sizeof(all));
  long sfd = sys(__NR_signalfd4, -1, (long)&all, sizeof(all), 0);
  if (sfd < 0) quit(125);
  for (;;) {
    // Reap everything that has ended; the worker's status goes to the launcher, and then so do we.
    for (;;) {
      unsigned char info[SIGINFO_SIZE];
      for (unsigned i = 0; i < sizeof(info); i++) info[i] = 0;
      // Which process ended, without reaping it yet (the worker's clock is read first). Should
      // the kernel refuse WNOWAIT, whatever ended is reaped without the clock.
      long peeked = sys5(__NR_waitid, P_ALL, 0, (long)info, WEXITED | WNOHANG | WNOWAIT, 0);
      long pid = peeked == 0 ? *(int*)(info + SIGINFO_PID_OFFSET) : -1;
      if (peeked == 0 && pid <= 0) break;  // nothing has ended
      struct {
        int status, pad;
        u64 prof_ns;
      } report = {0, 0, 0};
      if (pid == worker) {
        long ts[2] = {0, 0};
        if (sys(__NR_clock_gettime, PROF_CLOCK(pid), (long)ts, 0, 0) == 0) report.prof_ns = (u64)ts[0] * 1000000000UL + (u64)ts[1];
      }
      pid = sys(__NR_wait4, pid, (long)&report.status, WNOHANG, 0);
      if (pid <= 0) break;
      if (pid == worker) {
        sys(__NR_write, STATUS_FD, (long)&report, sizeof(report), 0);
        quit(0);
      }
    }
    unsigned char info[SIGNALFD_SIZE];
    long n = sys(__NR_read, sfd, (long)info, sizeof(info), 0);
    if (n != SIGNALFD_SIZE) continue;
    unsigned int signo = *(unsigned int*)info;  // ssi_signo, the first field
    if (signo != SIGCHLD) sys(__NR_kill, worker, signo, 0, 0);
  }
}
