#include "child.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

namespace si {
namespace posix {

const char* StepName(int s) {
  switch (s) {
    case kStepCgroup: return "join its cgroups";
    case kStepFds: return "set up fds";
    case kStepRlimit: return "setrlimit";
    case kStepAffinity: return "sched_setaffinity";
    case kStepCwd: return "chdir";
    case kStepIds: return "setuid/setgid";
    case kStepCaps: return "drop capabilities";
    case kStepSeccomp: return "install seccomp filter";
    case kStepUserns: return "map ids in the user namespace";
    case kStepMounts: return "mount its own /proc and make cgroups read-only";
    case kStepLandlock: return "install the Landlock ruleset";
    case kStepStartWorker: return "start the worker under its init";
    case kStepInit: return "start the worker's init";
    case kStepNetwork: return "bring up the loopback interface of its network namespace";
    case kStepMemoryCgroup: return "join its memory cgroup";
    default: return "execve";
  }
}

namespace {

constexpr unsigned long kFlagNewListener = SECCOMP_FILTER_FLAG_NEW_LISTENER;
constexpr unsigned long kFlagWaitKillable = SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;

// SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP | SECBIT_NO_SETUID_FIXUP_LOCKED |
// SECBIT_KEEP_CAPS_LOCKED: no root rules, no fix-ups, no keep-caps, none of it undoable.
constexpr unsigned long kLockedSecurebits = 0x2f;
// Signals 1..31 (the standard ones, as libuv resets them) and glibc's own two (32 and 33: thread
// cancellation and the set*id broadcast, which a child's blocked mask cannot hold: glibc keeps
// them out of it), whose handlers must not run in a child that shares the launcher's memory;
// the other real-time ones are left alone.
constexpr int kSignalsToDefault = 34;

[[noreturn]] void ChildFail(const ChildPlan& p, int step, int err = -1, int code = 127) {
  int msg[2] = {step, err < 0 ? errno : err};
  ssize_t n = write(p.errFd, msg, sizeof(msg));
  (void)n;
  _exit(code);
}

// A failure once the worker's own program may be in place (seccomp.h: notifyFailure asks the
// launcher about an exit with a nonzero code): exit 0, which that program lets through. The
// launcher cannot answer yet (it receives the listener only after the exec, and waits for the
// exec meanwhile, in the vfork or in the error pipe's read), so a nonzero exit would wait for it
// forever; it reads the failure from errFd, never from the exit status.
[[noreturn]] void ChildFailFiltered(const ChildPlan& p, int step, int err = -1) { ChildFail(p, step, err, 0); }

bool WriteAll(const char* path, const char* s) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  size_t len = strlen(s);
  bool ok = write(fd, s, len) == static_cast<ssize_t>(len);
  int err = errno;
  close(fd);
  errno = err;
  return ok;
}

struct MountAttr {
  uint64_t set, clr, propagation, userns;
};

// Read-only, with everything mounted beneath it.
int ReadOnlyTree(const char* path) {
#ifdef __NR_mount_setattr
  MountAttr attr = {0x1 /* MOUNT_ATTR_RDONLY */, 0, 0, 0};
  if (syscall(__NR_mount_setattr, AT_FDCWD, path, 0x8000 /* AT_RECURSIVE */, &attr, sizeof(attr)) == 0) return 0;
  if (errno != ENOSYS) return errno;
#endif
  if (mount(nullptr, path, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0) return 0;
  return errno;
}

// Every signal the launcher handles or ignores (Node ignores SIGPIPE) back to its default, as
// child_process does, before anything else runs: a handler of the launcher must never run in
// the child. Raw system calls: only this process's own table changes (no CLONE_SIGHAND).
void DefaultSignals() {
  struct KernelSigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)();
    uint64_t mask;
  } dfl = {SIG_DFL, 0, nullptr, 0};
  for (int sig = 1; sig < kSignalsToDefault; sig++)
    if (sig != SIGKILL && sig != SIGSTOP) syscall(SYS_rt_sigaction, sig, &dfl, nullptr, sizeof(dfl.mask));
}

// The fds of the worker: copy every source to the lowest free fd above the targets, then put
// each in place; everything else is marked close-on-exec (whether or not its owner did). The
// plan's own fds (errFd, aliveFd) are above the targets already (the parent sees to it), so
// nothing here lands on them; only a truly full fd table fails (EMFILE).
void SetUpFds(const ChildPlan& p) {
  int high[64];
  for (int i = 0; i < p.count; i++) {
    int src = p.sources[i] >= 0 ? p.sources[i] : open("/dev/null", O_RDWR | O_CLOEXEC);
    if (src < 0) ChildFail(p, kStepFds);
    high[i] = fcntl(src, F_DUPFD_CLOEXEC, p.count);
    if (high[i] < 0) ChildFail(p, kStepFds);
  }
  for (int i = 0; i < p.count; i++)
    if (dup2(high[i], i) < 0) ChildFail(p, kStepFds);
  // As libuv does for a child's fds 0-2: blocking. A stream handed over from this process (a
  // socket Node reads with O_NONBLOCK) would otherwise give the worker EAGAIN. The description
  // is shared: this process's copy turns blocking too, and it no longer reads it (stopReading).
  for (int i = 0; i < p.count && i < 3; i++) {
    int fl = fcntl(i, F_GETFL);
    if (fl >= 0 && (fl & O_NONBLOCK) != 0) fcntl(i, F_SETFL, fl & ~O_NONBLOCK);
  }
  if (syscall(SYS_close_range, static_cast<unsigned>(p.count), ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    struct rlimit rl;
    long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? static_cast<long>(rl.rlim_cur) : 65536;
    for (long fd = p.count; fd < max && fd < (1 << 20); fd++) fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
  }
}

// Decimal, without libc's locale machinery (this process shares the launcher's memory).
void FormatPid(long v, char* out, size_t size) {
  char tmp[24];
  size_t n = 0;
  do tmp[n++] = static_cast<char>('0' + v % 10);
  while ((v /= 10) > 0 && n < sizeof(tmp));
  size_t i = 0;
  for (; i < n && i + 1 < size; i++) out[i] = tmp[n - 1 - i];
  out[i] = 0;
}

// The directories that get a tmpfs of the worker's own.
constexpr const auto& kPrivateTmp = landlock::kPrivateDirs;

// The subdirectory of the shared tmpfs (mounted on `first`) that `dir` gets: first + "/" + dir
// without its leading slash, its other slashes as dashes ("/tmp/var-tmp"). No allocation (the
// child may share the launcher's memory).
void SharedTmpSubdir(const char* first, const char* dir, char* out, size_t size) {
  size_t n = 0;
  for (const char* c = first; *c != 0 && n + 1 < size; c++) out[n++] = *c;
  if (n + 1 < size) out[n++] = '/';
  for (const char* c = dir + 1; *c != 0 && n + 1 < size; c++) out[n++] = *c == '/' ? '-' : *c;
  out[n] = 0;
}

// mkdir -p of `path`'s components below `top` (in the fresh tmpfs), each 0755; the last one is
// made as an empty file instead when `file`.
int MakeParents(const char* path, const char* top, bool file) {
  char buf[4096];
  size_t len = strlen(path);
  if (len >= sizeof(buf)) return ENAMETOOLONG;
  memcpy(buf, path, len + 1);
  for (size_t i = strlen(top) + 1; i <= len; i++) {
    if (buf[i] != '/' && buf[i] != 0) continue;
    char c = buf[i];
    buf[i] = 0;
    if (c == 0 && file) {
      int fd = open(buf, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
      if (fd < 0 && errno != EEXIST) return errno;
      if (fd >= 0) close(fd);
    } else if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
      return errno;
    }
    buf[i] = c;
  }
  return 0;
}

// A tmpfs of its own on /tmp, /var/tmp, /dev/shm and /run/lock (where they exist; one for all,
// nosuid and nodev); its pages are charged to the worker's memory cgroup, and it goes with the
// mount namespace. The
// directories it was handed that one of them covers are bound back at their own paths
// (through fds opened before the cover: /proc/self/fd names the original directory).
void MountPrivateTmp(const ChildPlan& p) {
  int keep[kMaxKeepDirs];
  const char* under[kMaxKeepDirs];
  for (int i = 0; i < p.nkeepDirs; i++) {
    under[i] = p.keepDirs[i].under;
    keep[i] = open(p.keepDirs[i].path, O_PATH | O_CLOEXEC | (p.keepDirs[i].file ? 0 : O_DIRECTORY));
    if (keep[i] < 0) ChildFail(p, kStepMounts);
    struct stat st;
    if (p.keepDirs[i].checkId && (fstat(keep[i], &st) != 0 || st.st_dev != p.keepDirs[i].dev || st.st_ino != p.keepDirs[i].ino))
      ChildFail(p, kStepMounts, ESTALE);
  }
  // One tmpfs for them all: one size budget for the lot (what `disk` means), and one superblock
  // (each costs the kernel a shrinker, per-CPU counters and a deferred teardown). It is mounted
  // on the first; each directory gets a subdirectory of it (mode 1777, as the tmpfs's root),
  // bound at its path, the first's last: over the tmpfs's root, which hides the others' there.
  const char* first = nullptr;
  char sub[64];
  for (unsigned i = 0; i < sizeof(kPrivateTmp) / sizeof(kPrivateTmp[0]); i++) {
    if ((p.privateDirs & (1u << i)) == 0) continue;  // none here when the spawn was planned
    const char* dir = kPrivateTmp[i];
    if (first == nullptr) {
      if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, p.tmpfsOptions) != 0) ChildFail(p, kStepMounts);
      first = dir;
    }
    SharedTmpSubdir(first, dir, sub, sizeof(sub));
    if (mkdir(sub, 0700) != 0 || chmod(sub, 01777) != 0) ChildFail(p, kStepMounts);
    if (dir != first && mount(sub, dir, nullptr, MS_BIND, nullptr) != 0) ChildFail(p, kStepMounts);
  }
  if (first != nullptr) {
    SharedTmpSubdir(first, first, sub, sizeof(sub));
    if (mount(sub, first, nullptr, MS_BIND, nullptr) != 0) ChildFail(p, kStepMounts);
  }
  // A devpts of its own: the host's terminals (/dev/pts/N, which a non-root launcher's own
  // terminal is, readable by its user) are not there; /dev/ptmx makes its own.
  struct stat pts;
  if (lstat("/dev/pts", &pts) == 0 && S_ISDIR(pts.st_mode)) {
    if (mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620") != 0) ChildFail(p, kStepMounts);
    if (lstat("/dev/ptmx", &pts) == 0 && mount("/dev/pts/ptmx", "/dev/ptmx", nullptr, MS_BIND, nullptr) != 0) ChildFail(p, kStepMounts);
  }
  for (int i = 0; i < p.nkeepDirs; i++) {
    char src[40] = "/proc/self/fd/";
    FormatPid(keep[i], src + strlen(src), sizeof(src) - strlen(src));
    const KeepPath& k = p.keepDirs[i];
    int err = MakeParents(k.path, under[i], k.file);
    if (err != 0) ChildFail(p, kStepMounts, err);
    if (mount(src, k.path, nullptr, MS_BIND, nullptr) != 0) ChildFail(p, kStepMounts);
    // Read-only where it is the host's (its executable, its cwd): the private directory's
    // write rights (Landlock, the transient uid's own tmpfs) must not reach through it.
    if (k.readOnly && mount(nullptr, k.path, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr) != 0)
      ChildFail(p, kStepMounts);
    close(keep[i]);
  }
}

// The network namespace's loopback interface up (it starts down): 0 or an errno.
int LoopbackUp() {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return errno;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  memcpy(ifr.ifr_name, "lo", 3);
  int err = 0;
  if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0) err = errno;
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
  if (err == 0 && ioctl(s, SIOCSIFFLAGS, &ifr) != 0) err = errno;
  close(s);
  return err;
}

void SetUpNamespaces(const ChildPlan& p) {
  if (p.userns) {
    if (!WriteAll("/proc/self/uid_map", p.uidMap) || !WriteAll("/proc/self/setgroups", "deny") || !WriteAll("/proc/self/gid_map", p.gidMap))
      ChildFail(p, kStepUserns);
  }
  if (p.loopbackUp) {
    int err = LoopbackUp();
    if (err != 0) ChildFail(p, kStepNetwork, err);
  }
  if (!p.mounts) return;
  // Private first, so nothing done here reaches the launcher's mount namespace.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ChildFail(p, kStepMounts);
  if (p.privateTmp) MountPrivateTmp(p);
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) ChildFail(p, kStepMounts);
  // A vfork worker runs before this process (PID 1 here) has exec'd the init, while it still
  // runs in the launcher's memory, where the kernel reads a process's command line from: PID 1's
  // would be the launcher's own (its environment, auxv, maps and memory are refused: it is not
  // dumpable). Both entries that show it (the process's and its thread's) are covered with the
  // null device, read as empty, for as long as the namespace lives. Best effort: a kernel that
  // refuses mounts on a process's /proc entries leaves that window (about 0.1 ms from the
  // worker's exec) open, as before, rather than fail the spawn.
  if (p.initFd >= 0 && p.vforkWorker) {
    mount("/dev/null", "/proc/1/cmdline", nullptr, MS_BIND, nullptr);
    mount("/dev/null", "/proc/1/task/1/cmdline", nullptr, MS_BIND, nullptr);
  }
  for (int i = 0; i < p.nroMounts; i++) {
    int err = ReadOnlyTree(p.roMounts[i]);
    if (err != 0) ChildFail(p, kStepMounts, err);
  }
}

// Securebits, bounding set and ambient set: inherited, so under an init the first process does
// it once for both before it starts the worker (each PR_CAPBSET_DROP makes and frees a set of
// credentials). Only the capabilities this kernel has (cap_last_cap) are dropped.
void DropBounding(const ChildPlan& p) {
  if (!p.dropPrivileges) return;
  // Locked: no root rules, no fix-ups, no keep-caps, for this process and what it execs.
  prctl(PR_SET_SECUREBITS, kLockedSecurebits);
  // Each capability still in the set (none, when cloned by the bounded thread: reading is free,
  // dropping changes credentials).
  for (int cap = 0; cap <= p.lastCap; cap++)
    if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 0) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}

// Identity and capabilities. Root (in the launcher's namespace or in the worker's own) keeps
// its capabilities across the id change (NO_SETUID_FIXUP) only long enough to clear them all.
// `bounded`: DropBounding was done (by this process or, inherited, by its parent).
void DropIdentity(const ChildPlan& p, bool bounded) {
  if (!bounded) DropBounding(p);
  if (p.hasGid || p.hasUid || p.clearGroups) {
    // Raw system calls: glibc's wrappers would broadcast to the parent's threads, which it
    // still believes exist after clone; in the child this thread is the only one.
    if (syscall(SYS_setgroups, p.ngroups, p.ngroups ? p.groups : nullptr) != 0 && (errno != EPERM || p.ngroups)) ChildFail(p, kStepIds);
    if (p.hasGid && syscall(SYS_setresgid, p.gid, p.gid, p.gid) != 0) ChildFail(p, kStepIds);
    if (p.hasUid && syscall(SYS_setresuid, p.uid, p.uid, p.uid) != 0) ChildFail(p, kStepIds);
  }
  if (p.dropPrivileges) {
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capset, &hdr, data) != 0) ChildFail(p, kStepCaps);
  }
}

// fds, rlimits and affinity of the worker (rlimits before the identity change: raising a hard
// limit takes privilege; after the fds: a low RLIMIT_NOFILE would refuse their parking).
void SetUpProcess(const ChildPlan& p) {
  SetUpFds(p);
  for (int i = 0; i < p.nrlimits; i++) {
    struct rlimit rl = {p.rlimits[i].value, p.rlimits[i].value};
    if (setrlimit(p.rlimits[i].resource, &rl) != 0) ChildFail(p, kStepRlimit);
  }
  if (p.hasAffinity && sched_setaffinity(0, sizeof(p.affinity), &p.affinity) != 0) ChildFail(p, kStepAffinity);
}

// A change of ids clears the parent-death signal: set it again, then make sure the parent did
// not die before it was (the parent holds the alive pipe open until the exec).
void RearmDeathSignal(const ChildPlan& p) {
  if (!p.pdeathsig) return;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  struct pollfd pfd = {p.aliveFd, POLLIN, 0};
  if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLERR))) _exit(127);
}

// The Landlock ruleset (-1: none), built once its mount namespace is final and before any
// rlimit (a low RLIMIT_NOFILE would refuse the ruleset's and the rules' fds while the
// launcher's are still open in this process).
int BuildLandlock(const ChildPlan& p) {
  if (p.landlockAbi <= 0) return -1;
  int rs = -1;
  int err = landlock::BuildRuleset(p.landlockAbi, p.landlockHandled, p.landlockScoped, p.landlockRules, p.nlandlockRules, p.count, &rs);
  if (err != 0) ChildFail(p, kStepLandlock, err);
  return rs;
}

// Sends `fd` over the datagram socket `sock` (SCM_RIGHTS): 0 or an errno.
int SendFd(int sock, int fd) {
  char byte = 'L';
  struct iovec iov = {&byte, 1};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } ctl;
  memset(&ctl, 0, sizeof(ctl));
  struct msghdr msg;
  memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctl.buf;
  msg.msg_controllen = sizeof(ctl.buf);
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof(int));
  ssize_t n;
  do n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n == 1 ? 0 : errno;
}

// `prog` with a listener for the launcher: 0 or an errno. Non-fatal signals do not withdraw a
// request the launcher is answering (5.19+; without it, such a request is asked again).
int InstallWithListener(const ChildPlan& p, const sock_fprog* prog) {
  long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, kFlagNewListener | kFlagWaitKillable, prog);
  if (fd < 0 && errno == EINVAL) fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, kFlagNewListener, prog);
  if (fd < 0) return errno;
  int err = SendFd(p.notifyFd, static_cast<int>(fd));
  close(static_cast<int>(fd));
  return err;
}

// No new privileges and, under an init, the level's seccomp program: the namespace's first
// process does both once for itself and the worker (LockTree) before it starts the worker.
// Landlock is the worker's alone (its own domain, restricted in Lock): the init has none, as a
// domain of its own would scope its signals away from the worker's, and it forwards them; a
// worker in a domain cannot ptrace a process outside it.
void LockTree(const ChildPlan& p) {
  if (p.dropPrivileges || p.hasFilter || p.hasInitFilter || p.landlockAbi > 0) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ChildFail(p, kStepCaps);
  }
  if (p.hasInitFilter && p.initNotifies) {
    int err = InstallWithListener(p, &p.initFilter);
    if (err != 0) ChildFail(p, kStepSeccomp, err);
  } else if (p.hasInitFilter && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p.initFilter) != 0) {
    ChildFail(p, kStepSeccomp);
  }
}

// No new privileges, Landlock, then seccomp (last: it may deny what the others need). Under an
// init (`inherited`) the first two of those are already in place.
void Lock(const ChildPlan& p, bool inherited, int landlockRs) {
  if (!inherited) LockTree(p);
  if (landlockRs >= 0) {
    int err = landlock::Restrict(landlockRs);
    if (err != 0) ChildFail(p, kStepLandlock, err);
  }
  if (p.hasFilter && p.notifyFd >= 0) {
    int err = InstallWithListener(p, &p.filter);
    if (err != 0) ChildFailFiltered(p, kStepSeccomp, err);  // the program may be in place (SendFd failed)
  } else if (p.hasFilter && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p.filter) != 0) {
    ChildFail(p, kStepSeccomp);
  }
}

// Enters the memory cgroup (the last step before an exec; the worker's program is in place).
void JoinMemoryCgroup(const ChildPlan& p) {
  if (p.memoryCgroupFd >= 0 && write(p.memoryCgroupFd, "0", 1) != 1) ChildFailFiltered(p, kStepMemoryCgroup);
}

// The worker's last steps, in its final identity (under an init: partly locked by it already).
[[noreturn]] void ExecWorker(const ChildPlan& p, bool underInit, int landlockRs) {
  DropIdentity(p, underInit);
  if (!underInit) RearmDeathSignal(p);
  // After the identity change: the worker's own rights decide whether it may enter its cwd.
  if (p.cwd != nullptr && chdir(p.cwd) != 0) ChildFail(p, kStepCwd);
  Lock(p, underInit, landlockRs);
  // As child_process leaves it: no signal blocked (the parent blocked them all for the clone).
  uint64_t none = 0;
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, nullptr, sizeof(none));
  JoinMemoryCgroup(p);
  execve(p.path, p.argv, p.envp);
  ChildFailFiltered(p, kStepExec);
}

// What the worker under an init starts with (on the stack of the namespace's first process).
struct WorkerStart {
  const ChildPlan* plan;
  int gate;      // read end: one byte once the init is out of reach, EOF if it never got there (-1: none)
  int landlock;  // the ruleset (BuildLandlock), or -1
};

// The worker under an init: the namespace's second process. It shares the launcher's memory.
// Either it suspends the namespace's first process until its exec (vforkWorker), or it waits at
// the gate until that process has exec'd the init; the launcher waits for this exec too (errFd).
int WorkerEntry(void* arg) {
  const WorkerStart& start = *static_cast<const WorkerStart*>(arg);
  const ChildPlan& p = *start.plan;
  if (start.gate >= 0) {
    char go = 0;
    ssize_t n;
    do n = read(start.gate, &go, 1);
    while (n < 0 && errno == EINTR);
    // The init did not start (its own process reports why when its exec failed) or quit before
    // it was out of reach: said here too (the first report wins).
    if (n != 1) ChildFail(p, kStepInit, EPROTO);
    close(start.gate);
  }
  SetUpProcess(p);
  ExecWorker(p, true, start.landlock);
}

// PID 1 becomes the init: the status pipe as its fd 0, the gate's (or the relay's) write end as
// fd 1, the transient uid's reservation (or nothing) as fd 2, the memory cgroup's tasks file (or
// nothing) as fd 3 (the init enters it itself, once it no longer shares the launcher's memory),
// nothing else kept, signals still blocked (it reads them from a signalfd). If it cannot, the
// worker goes too.
[[noreturn]] void ExecInit(const ChildPlan& p, pid_t worker, int gate) {
  char pid[24], name[] = "spawn-isolated-init";
  FormatPid(worker, pid, sizeof(pid));
  char* argv[] = {name, pid, nullptr};
  char* envp[] = {nullptr};
  // The gate (or relay), the lock and the memory cgroup's fd are above 2 (MakeGate, the parent's
  // RaiseAbove) and the init's memfd above 3: placing fds 0-3 in turn overwrites none of them
  // before it is placed.
  int memcg = p.memoryCgroupFd;
  if ((p.statusFd != 0 && dup3(p.statusFd, 0, 0) < 0) || (gate >= 0 ? dup3(gate, 1, 0) < 0 : (close(1), false)) ||
      (p.lockFd >= 0 && dup3(p.lockFd, 2, 0) < 0) || (memcg >= 0 && (memcg == 3 ? fcntl(3, F_SETFD, 0) < 0 : dup3(memcg, 3, 0) < 0))) {
    kill(worker, SIGKILL);
    ChildFail(p, kStepInit);
  }
  syscall(SYS_close_range, memcg >= 0 ? 4U : 3U, ~0U, CLOSE_RANGE_CLOEXEC);
  if (p.lockFd < 0) fcntl(2, F_SETFD, FD_CLOEXEC);
  if (p.holdFirst != nullptr) {  // tests only: until a byte comes (or the FIFO's end)
    char byte;
    int hold = open(p.holdFirst, O_RDONLY | O_CLOEXEC);
    if (hold >= 0) {
      ssize_t got = read(hold, &byte, 1);
      (void)got;
      close(hold);
    }
  }
  syscall(SYS_execveat, p.initFd, "", argv, envp, AT_EMPTY_PATH);
  int err = errno;
  kill(worker, SIGKILL);
  ChildFail(p, kStepInit, err);
}

// The gate pipe, both ends close-on-exec and numbered above 2 (and so above nothing the init
// places). 0 or an errno.
int MakeGate(int gate[2]) {
  if (pipe2(gate, O_CLOEXEC) != 0) return errno;
  for (int i = 0; i < 2; i++) {
    if (gate[i] >= 3) continue;
    int moved = fcntl(gate[i], F_DUPFD_CLOEXEC, 3);
    close(gate[i]);
    gate[i] = moved;
    if (moved < 0) return errno;
  }
  return 0;
}

}  // namespace

[[noreturn]] void ChildMain(const ChildPlan& p) {
  // Its copy of the launcher's end of the alive pipe: only the launcher's may keep it open.
  if (p.aliveWriteFd >= 0) close(p.aliveWriteFd);
  DefaultSignals();
  if (p.pdeathsig) prctl(PR_SET_PDEATHSIG, SIGKILL);
  for (int i = 0; i < p.ncgroupFds; i++)
    if (write(p.cgroupFds[i], "0", 1) != 1) ChildFail(p, kStepCgroup);
  // A session of its own, with no controlling terminal: the worker cannot open /dev/tty, and
  // a terminal passed as stdio is not its controlling one (and TIOCSTI is filtered). Its pgid
  // is its pid, as with setpgid, so the tree is still one process group.
  if (setsid() < 0) setpgid(0, 0);
  if (p.initFd < 0) {  // the worker is this process
    // Namespaces first: its fds' and rlimits' steps then run in its final view.
    SetUpNamespaces(p);
    int rs = BuildLandlock(p);
    SetUpProcess(p);
    ExecWorker(p, false, rs);
  }
  // PID 1 of the namespace: start the worker as its child (sharing this memory until its exec,
  // as this process shares the launcher's), then become its init. Both are locked (no new
  // privileges, the level's seccomp program) here, once; Landlock is the worker's alone.
  SetUpNamespaces(p);
  int rs = BuildLandlock(p);
  DropBounding(p);
  LockTree(p);
  int gate[2] = {-1, -1};
  if (!p.vforkWorker && MakeGate(gate) != 0) ChildFail(p, kStepStartWorker);
  // What the worker starts with lives at the top of its own stack: this process's stack goes
  // (the launcher frees it) once this process has exec'd, maybe before the worker has run.
  constexpr size_t kStartSlot = 64;  // sizeof(WorkerStart), rounded up to keep the stack aligned
  static_assert(sizeof(WorkerStart) <= kStartSlot, "the worker's start slot");
  char* top = static_cast<char*>(p.workerStackTop) - kStartSlot;
  WorkerStart* start = reinterpret_cast<WorkerStart*>(top);
  start->plan = &p;
  start->gate = gate[0];
  start->landlock = rs;
  // A vfork worker runs before this process has exec'd the init (the launcher may have returned
  // by then: announceWorker), and may look at PID 1 at once (the Go module's Channel() and
  // Read() check its name). This process is its PID 1 and becomes the init: it takes the init's
  // name now (what the kernel names a program run from the init's memfd).
  if (p.vforkWorker) prctl(PR_SET_NAME, kInitComm, 0, 0, 0);
  // The key as TLS (without CLONE_SETTLS the kernel ignores it): a startsWorker program lets
  // this start through.
  pid_t worker = clone(WorkerEntry, top, CLONE_VM | (p.vforkWorker ? CLONE_VFORK : 0) | SIGCHLD, start, nullptr,
                       reinterpret_cast<void*>(static_cast<uintptr_t>(p.workerCloneKey)), nullptr);
  if (worker < 0) ChildFail(p, kStepStartWorker);
  if (p.announceWorker) {
    // The worker has exec'd, or reported why not before it ended (that report comes first).
    int msg[2] = {kWorkerExecd, 0};
    ssize_t n = write(p.relayFd, msg, sizeof(msg));
    (void)n;
  }
  if (gate[0] >= 0) close(gate[0]);
  DropIdentity(p, true);
  RearmDeathSignal(p);
  if (rs >= 0) close(rs);
  ExecInit(p, worker, p.vforkWorker ? p.relayFd : gate[1]);
}

int ChildEntry(void* plan) { ChildMain(*static_cast<const ChildPlan*>(plan)); }

}  // namespace posix
}  // namespace si
