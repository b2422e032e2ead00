// POSIX (Linux) backend: per-worker cgroups (v2, or v1 per controller), rlimits, seccomp,
// an fd whitelist, privilege drop, a PID namespace for kill-on-close of the whole tree, and
// one background thread that waits on every worker's pidfd with epoll.
#include "../contract.h"
#include "../registry.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef SECCOMP_RET_KILL_PROCESS
#define SECCOMP_RET_KILL_PROCESS 0x80000000U
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

namespace si {
namespace posix {
namespace {

// ---- small RAII and helpers

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset(int f = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = f;
  }

 private:
  int fd_ = -1;
};

const char* ErrnoCode(int e) {
  switch (e) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOEXEC: return "ENOEXEC";
    case EBADF: return "EBADF";
    case ENOMEM: return "ENOMEM";
    case EINVAL: return "EINVAL";
    case EAGAIN: return "EAGAIN";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case E2BIG: return "E2BIG";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case ELOOP: return "ELOOP";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ETXTBSY: return "ETXTBSY";
    case ENOSYS: return "ENOSYS";
    case EBUSY: return "EBUSY";
    case ESRCH: return "ESRCH";
    default: return "UNKNOWN";
  }
}

SysError Errno(const std::string& syscall, int e, const std::string& context = "") {
  std::string msg = syscall + " failed: " + strerror(e);
  if (!context.empty()) msg += ": " + context;
  return SysError(ErrnoCode(e), e, syscall, msg);
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream f(path);
  if (!f) return false;
  std::stringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return true;
}

int WriteFile(const std::string& path, const std::string& value) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n = write(fd, value.data(), value.size());
  int err = n < 0 ? errno : 0;
  close(fd);
  return err;
}

uint64_t ReadU64(const std::string& path, uint64_t dflt = 0) {
  std::string s;
  if (!ReadFile(path, &s)) return dflt;
  return std::strtoull(s.c_str(), nullptr, 10);
}

// "key value" lines (memory.events, cpu.stat, memory.oom_control).
uint64_t ReadKey(const std::string& path, const std::string& key) {
  std::string s;
  if (!ReadFile(path, &s)) return 0;
  std::istringstream in(s);
  std::string k;
  uint64_t v;
  while (in >> k >> v)
    if (k == key) return v;
  return 0;
}

bool Exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

// ---- cgroups

// Where this process's cgroups are, per controller, and which version serves each.
struct CgroupLayout {
  bool v2 = false;                      // a unified hierarchy with the controllers we need
  std::string v2Base;                   // v2: where per-worker cgroups are made
  std::map<std::string, std::string> v1;  // v1: controller -> directory to make them under
  std::string why;                      // why there is no usable cgroup for some limit
  bool Has(const std::string& ctrl) const { return v2 ? true : v1.count(ctrl) > 0; }
};

std::string MountOf(const std::string& fstype, const std::string& option) {
  std::string mounts;
  if (!ReadFile("/proc/self/mountinfo", &mounts)) return "";
  std::istringstream in(mounts);
  std::string line;
  while (std::getline(in, line)) {
    size_t sep = line.find(" - ");
    if (sep == std::string::npos) continue;
    std::istringstream left(line.substr(0, sep)), right(line.substr(sep + 3));
    std::string id, parent, dev, root, point, type, source, opts;
    left >> id >> parent >> dev >> root >> point;
    right >> type >> source >> opts;
    if (type != fstype) continue;
    if (!option.empty()) {
      std::string o = "," + opts + ",";
      if (o.find("," + option + ",") == std::string::npos) continue;
    }
    return point;
  }
  return "";
}

bool WritableDir(const std::string& dir) {
  std::string probe = dir + "/spawn-isolated-probe-" + std::to_string(getpid());
  if (mkdir(probe.c_str(), 0755) != 0) return false;
  rmdir(probe.c_str());
  return true;
}

// v2: make `base` able to hold per-worker cgroups with the controllers enabled. The "no
// internal processes" rule means processes in `base` itself must move to a leaf first.
bool PrepareV2(const std::string& base, std::string* why) {
  std::string avail;
  ReadFile(base + "/cgroup.controllers", &avail);
  for (const char* c : {"memory", "cpu", "pids"}) {
    if (avail.find(c) == std::string::npos) {
      *why = std::string("cgroup v2 controller '") + c + "' is not delegated to " + base;
      return false;
    }
  }
  std::string enable = "+memory +cpu +pids";
  int err = WriteFile(base + "/cgroup.subtree_control", enable);
  if (err == EBUSY) {
    std::string leaf = base + "/spawn-isolated-supervisor";
    mkdir(leaf.c_str(), 0755);
    std::string procs;
    ReadFile(base + "/cgroup.procs", &procs);
    std::istringstream in(procs);
    std::string pid;
    while (in >> pid) WriteFile(leaf + "/cgroup.procs", pid);
    err = WriteFile(base + "/cgroup.subtree_control", enable);
  }
  if (err != 0) {
    *why = "cannot enable controllers in " + base + "/cgroup.subtree_control: " + strerror(err);
    return false;
  }
  return true;
}

const CgroupLayout& Layout() {
  static CgroupLayout layout = [] {
    CgroupLayout l;
    std::string self;
    ReadFile("/proc/self/cgroup", &self);
    std::istringstream in(self);
    std::string line;
    std::map<std::string, std::string> v1paths;
    std::string v2path;
    while (std::getline(in, line)) {
      size_t a = line.find(':'), b = line.find(':', a + 1);
      if (a == std::string::npos || b == std::string::npos) continue;
      std::string ctrls = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
      if (ctrls.empty()) v2path = path;
      std::istringstream cs(ctrls);
      std::string c;
      while (std::getline(cs, c, ',')) v1paths[c] = path;
    }
    const char* env = getenv("SPAWN_ISOLATED_CGROUP");
    // v2 first: the unified hierarchy, when it holds our controllers.
    std::string unified = MountOf("cgroup2", "");
    if (!unified.empty()) {
      std::string base = env && *env ? std::string(env) : unified + v2path;
      std::string why;
      if (Exists(base) && PrepareV2(base, &why)) {
        l.v2 = true;
        l.v2Base = base;
        return l;
      }
      l.why = why;
    }
    for (const char* c : {"memory", "cpu", "cpuacct", "pids"}) {
      if (!v1paths.count(c)) continue;
      std::string mount = MountOf("cgroup", c);
      if (mount.empty()) continue;
      std::string dir = mount + (v1paths[c] == "/" ? "" : v1paths[c]);
      if (WritableDir(dir)) l.v1[c] = dir;
      else if (l.why.empty()) l.why = "cannot create cgroups under " + dir + ": " + strerror(errno);
    }
    if (l.v1.empty() && l.why.empty()) l.why = "no cgroup hierarchy with memory, cpu or pids controllers is mounted";
    return l;
  }();
  return layout;
}

struct Cgroup {
  bool v2 = false;
  std::map<std::string, std::string> dirs;  // controller ("unified" for v2) -> directory
  Fd v2dir;                                 // for CLONE_INTO_CGROUP

  std::string Dir(const std::string& ctrl) const {
    auto it = dirs.find(v2 ? "unified" : ctrl);
    return it == dirs.end() ? "" : it->second;
  }
  bool Empty() const { return dirs.empty(); }

  std::vector<pid_t> Pids() const {
    std::vector<pid_t> out;
    for (auto& kv : dirs) {
      std::string s;
      ReadFile(kv.second + "/cgroup.procs", &s);
      std::istringstream in(s);
      pid_t p;
      while (in >> p)
        if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
    }
    return out;
  }
  void KillAll() const {
    if (v2 && WriteFile(Dir("unified") + "/cgroup.kill", "1") == 0) return;
    for (pid_t p : Pids()) kill(p, SIGKILL);
  }
  // Ends whatever is left in it and removes it, waiting up to a second for the exits.
  void RemoveNow() {
    for (int i = 0; i < 100 && !Remove(); i++) {
      KillAll();
      usleep(10000);
    }
  }
  // True when every directory is gone (the tree has fully exited).
  bool Remove() {
    for (auto it = dirs.begin(); it != dirs.end();) {
      if (rmdir(it->second.c_str()) == 0 || errno == ENOENT) it = dirs.erase(it);
      else ++it;
    }
    return dirs.empty();
  }
  uint64_t OomKills() const {
    std::string d = Dir("memory");
    if (d.empty()) return 0;
    return v2 ? ReadKey(d + "/memory.events", "oom_kill") : ReadKey(d + "/memory.oom_control", "oom_kill");
  }
};

// ---- what the child does between clone and exec (async-signal-safe calls only)

struct RlimitSpec {
  int resource;
  rlim_t value;
};

struct ChildPlan {
  const char* path;
  char* const* argv;
  char* const* envp;
  const char* cwd;
  int sources[64];  // fds in the parent for fds 0..n-1 of the worker (-1: /dev/null)
  int count;
  RlimitSpec rlimits[8];
  int nrlimits;
  bool hasAffinity;
  cpu_set_t affinity;
  bool dropPrivileges;
  bool hasUid, hasGid;
  uid_t uid;
  gid_t gid;
  sock_fprog filter;
  bool hasFilter;
  bool pdeathsig;
  int goFd;   // read end: the parent says "go" once the child is in its cgroups
  int errFd;  // write end, close-on-exec: failures are reported here
};

enum Step : int { kStepGo = 1, kStepFds, kStepRlimit, kStepAffinity, kStepCwd, kStepIds, kStepCaps, kStepSeccomp, kStepExec };
const char* StepName(int s) {
  switch (s) {
    case kStepGo: return "wait for the parent";
    case kStepFds: return "set up fds";
    case kStepRlimit: return "setrlimit";
    case kStepAffinity: return "sched_setaffinity";
    case kStepCwd: return "chdir";
    case kStepIds: return "setuid/setgid";
    case kStepCaps: return "drop capabilities";
    case kStepSeccomp: return "install seccomp filter";
    default: return "execve";
  }
}

[[noreturn]] void ChildFail(const ChildPlan& p, int step) {
  int msg[2] = {step, errno};
  ssize_t n = write(p.errFd, msg, sizeof(msg));
  (void)n;
  _exit(127);
}

[[noreturn]] void ChildMain(const ChildPlan& p) {
  if (p.pdeathsig) prctl(PR_SET_PDEATHSIG, SIGKILL);
  char go = 0;
  if (p.goFd >= 0 && read(p.goFd, &go, 1) != 1) _exit(127);  // the parent died or gave up
  setpgid(0, 0);
  // fds: copy every source above the targets, then put each in place; everything else is
  // marked close-on-exec (whether or not its owner did), so only the listed fds survive exec.
  int high[64];
  int floor = p.count + 3;
  if (p.errFd >= floor) floor = p.errFd + 1;
  for (int i = 0; i < p.count; i++) {
    int src = p.sources[i] >= 0 ? p.sources[i] : open("/dev/null", O_RDWR | O_CLOEXEC);
    if (src < 0) ChildFail(p, kStepFds);
    high[i] = fcntl(src, F_DUPFD_CLOEXEC, floor + 64);
    if (high[i] < 0) ChildFail(p, kStepFds);
  }
  for (int i = 0; i < p.count; i++)
    if (dup2(high[i], i) < 0) ChildFail(p, kStepFds);
  if (syscall(SYS_close_range, static_cast<unsigned>(p.count), ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    struct rlimit rl;
    long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? static_cast<long>(rl.rlim_cur) : 65536;
    for (long fd = p.count; fd < max && fd < (1 << 20); fd++) fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
  }
  for (int i = 0; i < p.nrlimits; i++) {
    struct rlimit rl = {p.rlimits[i].value, p.rlimits[i].value};
    if (setrlimit(p.rlimits[i].resource, &rl) != 0) ChildFail(p, kStepRlimit);
  }
  if (p.hasAffinity && sched_setaffinity(0, sizeof(p.affinity), &p.affinity) != 0) ChildFail(p, kStepAffinity);
  if (p.cwd != nullptr && chdir(p.cwd) != 0) ChildFail(p, kStepCwd);
  if (p.hasGid || p.hasUid) {
    // Raw system calls: glibc's wrappers would broadcast to the parent's threads, which it
    // still believes exist after clone; in the child this thread is the only one.
    if (syscall(SYS_setgroups, 0, nullptr) != 0 && errno != EPERM) ChildFail(p, kStepIds);
    if (p.hasGid && syscall(SYS_setresgid, p.gid, p.gid, p.gid) != 0) ChildFail(p, kStepIds);
    if (p.hasUid && syscall(SYS_setresuid, p.uid, p.uid, p.uid) != 0) ChildFail(p, kStepIds);
  }
  if (p.dropPrivileges) {
    // No capability survives exec: not from the bounding set, not ambient, not root's rules.
    prctl(PR_SET_SECUREBITS, 0x2f /* NOROOT|NOROOT_LOCKED|NO_SETUID_FIXUP|..._LOCKED|KEEP_CAPS_LOCKED */);
    for (int cap = 0; cap <= 63; cap++) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capset, &hdr, data) != 0) ChildFail(p, kStepCaps);
  }
  if (p.dropPrivileges || p.hasFilter) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ChildFail(p, kStepCaps);
  }
  if (p.hasFilter && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p.filter) != 0) ChildFail(p, kStepSeccomp);
  execve(p.path, p.argv, p.envp);
  ChildFail(p, kStepExec);
}

// ---- seccomp

#if defined(__x86_64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#else
constexpr uint32_t kAuditArch = 0;
#endif

void Deny(std::vector<sock_filter>& f, long nr, uint32_t err) {
  f.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 0, 1));
  f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)));
}

// processes == 1: no new process (fork, vfork, clone without CLONE_THREAD, clone3), while
// threads (clone with CLONE_THREAD, as Go's runtime makes them) work. low: a deny-list of
// privilege-sensitive calls (documented in the README).
std::vector<sock_filter> BuildFilter(bool noChildren, bool low) {
  std::vector<sock_filter> f;
  f.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
  f.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0));
  f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
  f.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
#if defined(__x86_64__)
  // x32 system calls would bypass the numbers below.
  f.push_back(BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1));
  f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS));
#endif
  if (noChildren) {
#ifdef __NR_fork
    Deny(f, __NR_fork, EAGAIN);
#endif
#ifdef __NR_vfork
    Deny(f, __NR_vfork, EAGAIN);
#endif
    Deny(f, __NR_clone3, ENOSYS);  // its flags are in memory a filter cannot read: callers fall back to clone
    // clone: allowed only with CLONE_THREAD (flags are the first argument, low 32 bits).
    f.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 4));
    f.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])));
    f.push_back(BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 1, 0));
    f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EAGAIN));
    f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  }
  if (low) {
    const long denied[] = {
      __NR_mount, __NR_umount2, __NR_pivot_root, __NR_chroot, __NR_ptrace, __NR_process_vm_readv,
      __NR_process_vm_writev, __NR_kexec_load, __NR_init_module, __NR_finit_module, __NR_delete_module,
      __NR_bpf, __NR_perf_event_open, __NR_keyctl, __NR_add_key, __NR_request_key, __NR_setns, __NR_unshare,
      __NR_userfaultfd, __NR_swapon, __NR_swapoff, __NR_reboot, __NR_acct, __NR_settimeofday,
      __NR_clock_settime, __NR_open_by_handle_at, __NR_name_to_handle_at, __NR_quotactl, __NR_syslog,
      __NR_personality, __NR_fanotify_init, __NR_lookup_dcookie, __NR_vhangup,
#ifdef __NR_iopl
      __NR_iopl, __NR_ioperm,
#endif
    };
    for (long nr : denied) Deny(f, nr, EPERM);
  }
  f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  return f;
}

// ---- the monitor: one thread, epoll over pidfds

struct Group;

struct Child {
  uint64_t id = 0;
  std::shared_ptr<Group> group;  // keeps the group's cgroup while a member lives
  pid_t pid = 0;
  Fd pidfd;
  Cgroup cg;
  std::shared_ptr<EventSink> sink;
  bool pidns = false;
  bool killOnClose = true;
  Limits limits;
  uint64_t peakData = 0;  // sampled VmData high-water mark (for memory.process)
  bool limitPosted = false;  // a 'limit' event for the reason that ended it went out
  // Guarded by Monitor::mu_.
  std::string reason;
  bool reaped = false;
  bool posted = false;
  std::unique_ptr<Event> pending;  // exit event waiting for the tree to be gone
};

// Stats of a cgroup, completed by the worker's rusage (at exit) or /proc (live, pid > 0).
Stats ReadStats(const Cgroup& cg, pid_t livePid, const struct rusage* ru) {
  Stats s;
  if (!cg.Empty()) {
    std::string mem = cg.Dir("memory"), acct = cg.Dir(cg.v2 ? "cpu" : "cpuacct");
    if (!mem.empty()) s.peakMemory = cg.v2 ? ReadU64(mem + "/memory.peak") : ReadU64(mem + "/memory.max_usage_in_bytes");
    if (!acct.empty()) {
      if (cg.v2) {
        s.cpuUserMs = ReadKey(acct + "/cpu.stat", "user_usec") / 1000.0;
        s.cpuKernelMs = ReadKey(acct + "/cpu.stat", "system_usec") / 1000.0;
      } else {
        s.cpuUserMs = ReadU64(acct + "/cpuacct.usage_user") / 1e6;
        s.cpuKernelMs = ReadU64(acct + "/cpuacct.usage_sys") / 1e6;
      }
    }
    s.active = static_cast<uint32_t>(cg.Pids().size());
  }
  if (ru != nullptr) {
    s.cpuUserMs = std::max(s.cpuUserMs, ru->ru_utime.tv_sec * 1000.0 + ru->ru_utime.tv_usec / 1000.0);
    s.cpuKernelMs = std::max(s.cpuKernelMs, ru->ru_stime.tv_sec * 1000.0 + ru->ru_stime.tv_usec / 1000.0);
    s.peakMemory = std::max<uint64_t>(s.peakMemory, static_cast<uint64_t>(ru->ru_maxrss) * 1024);
  } else if (livePid > 0) {
    std::string stat;
    if (ReadFile("/proc/" + std::to_string(livePid) + "/stat", &stat)) {
      size_t close = stat.rfind(')');
      std::istringstream in(stat.substr(close + 2));
      std::string f;
      std::vector<std::string> fields;
      while (in >> f) fields.push_back(f);
      long hz = sysconf(_SC_CLK_TCK);
      if (fields.size() > 13 && hz > 0) {
        s.cpuUserMs = std::max(s.cpuUserMs, std::stod(fields[11]) * 1000.0 / hz);
        s.cpuKernelMs = std::max(s.cpuKernelMs, std::stod(fields[12]) * 1000.0 / hz);
      }
    }
  }
  s.total = std::max<uint32_t>(1, s.active);
  return s;
}

uint64_t VmData(pid_t pid) {
  return ReadKey("/proc/" + std::to_string(pid) + "/status", "VmData:") * 1024;
}

class Monitor {
 public:
  static Monitor& Get() {
    static Monitor* m = new Monitor();  // never destroyed: its thread runs until exit
    return *m;
  }
  uint64_t NextId() { return reg_.NextId(); }
  std::mutex& mu() { return mu_; }

  void Add(std::shared_ptr<Child> c) {
    struct epoll_event ev = {};
    ev.events = EPOLLIN;
    ev.data.u64 = c->id;
    epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, c->pidfd.get(), &ev);
    reg_.Add(std::move(c));
    Wake();
  }
  std::shared_ptr<Child> Find(uint64_t id) { return reg_.Find(id); }
  std::shared_ptr<Child> Get(uint64_t id, const char* what) { return reg_.Get(id, what); }
  std::shared_ptr<Child> Remove(uint64_t id) {
    std::shared_ptr<Child> c = reg_.Remove(id);
    if (!c) return nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    if (!c->reaped) epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, c->pidfd.get(), nullptr);
    return c;
  }
  bool Terminate(Child& c, const std::string& reason) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (c.reaped) return false;
      if (c.reason.empty()) c.reason = reason;
    }
    KillTree(c);
    return true;
  }
  static void KillTree(Child& c) {
    // The pidfd cannot name a recycled pid; the worker is PID 1 of its namespace when it has
    // one, and then the kernel ends everything in it.
    syscall(SYS_pidfd_send_signal, c.pidfd.get(), SIGKILL, nullptr, 0);
    if (!c.pidns) {
      kill(-c.pid, SIGKILL);
      c.cg.KillAll();
    }
  }

 private:
  Monitor() {
    epfd_.reset(epoll_create1(EPOLL_CLOEXEC));
    wake_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!epfd_.valid() || !wake_.valid()) throw Errno("epoll_create1", errno);
    struct epoll_event ev = {};
    ev.events = EPOLLIN;
    ev.data.u64 = 0;
    epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, wake_.get(), &ev);
    std::thread([this] { Run(); }).detach();
  }
  void Wake() {
    uint64_t one = 1;
    ssize_t n = write(wake_.get(), &one, sizeof(one));
    (void)n;
  }

  void Run() {
    // Never waitpid(-1) and no SIGCHLD handler: each worker is reaped through its own pidfd.
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    for (;;) {
      int timeout = -1;
      std::vector<std::shared_ptr<Child>> all = reg_.Snapshot();
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (auto& cp : all) {
          Child& c = *cp;
          if (c.pending) timeout = 20;  // waiting for the rest of a tree to go
          else if (!c.reaped && (c.limits.memoryProcess || ((c.limits.memoryTotal || c.group) && !c.cg.v2))) timeout = timeout < 0 ? 50 : std::min(timeout, 50);
        }
      }
      struct epoll_event evs[32];
      int n = epoll_wait(epfd_.get(), evs, 32, timeout);
      for (int i = 0; i < n; i++) {
        if (evs[i].data.u64 == 0) {
          uint64_t v;
          while (read(wake_.get(), &v, sizeof(v)) > 0) {
          }
          continue;
        }
        std::shared_ptr<Child> c = Find(evs[i].data.u64);
        if (c) Reap(*c);
      }
      Tick();
    }
  }

  void Tick() {
    for (auto& c : reg_.Snapshot()) {
      if (c->pending) {
        c->cg.KillAll();
        if (c->cg.Remove()) Post(*c);
        continue;
      }
      if (c->reaped) continue;
      if (c->limits.memoryProcess) c->peakData = std::max(c->peakData, VmData(c->pid));
      // cgroup v1 kills one process on OOM, not the group: end the rest ourselves.
      if ((c->limits.memoryTotal || c->group) && !c->cg.v2 && c->cg.OomKills() > 0) {
        PostLimit(*c, "memory");
        Terminate(*c, "memory");
      }
    }
  }

  static void PostLimit(Child& c, const char* limit) {
    if (c.limitPosted) return;
    c.limitPosted = true;
    c.sink->Post(LimitEvent(c.id, limit, c.pid));
  }

  void Reap(Child& c) {
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    struct rusage ru;
    memset(&ru, 0, sizeof(ru));
    // waitid with an rusage (Linux's fifth argument), on this worker's pidfd only.
    if (syscall(SYS_waitid, P_PIDFD, c.pidfd.get(), &info, WEXITED | WNOHANG | __WALL, &ru) != 0 || info.si_pid == 0) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      c.reaped = true;
      epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, c.pidfd.get(), nullptr);
    }
    auto ev = std::make_unique<Event>();
    ev->type = Event::Exit;
    ev->id = c.id;
    if (info.si_code == CLD_EXITED) ev->exitCode = info.si_status;
    else ev->signal = info.si_status;
    std::string reason;
    {
      std::lock_guard<std::mutex> lock(mu_);
      reason = c.reason;
    }
    double cpuMs = ru.ru_utime.tv_sec * 1000.0 + ru.ru_utime.tv_usec / 1000.0 + ru.ru_stime.tv_sec * 1000.0 + ru.ru_stime.tv_usec / 1000.0;
    if (reason.empty() && c.cg.OomKills() > 0) reason = "memory";
    if (reason.empty() && c.limits.cpuTimeMs && (ev->signal == SIGKILL || ev->signal == SIGXCPU) &&
        cpuMs + 50 >= std::ceil(c.limits.cpuTimeMs / 1000.0) * 1000.0)
      reason = "cpu-time";
    if (reason.empty() && c.limits.memoryProcess && (ev->signal != 0 || ev->exitCode != 0)) {
      // RLIMIT_DATA makes allocations fail; the worker then dies its own way (Go: exit 2).
      // Evidence: the kernel's peak RSS of the worker and our VmData samples (every 50 ms),
      // within one Go heap arena (64 MiB) or a quarter of the limit.
      uint64_t peak = std::max<uint64_t>(c.peakData, static_cast<uint64_t>(ru.ru_maxrss) * 1024);
      uint64_t margin = std::max<uint64_t>(64ull << 20, c.limits.memoryProcess / 4);
      if (peak + margin >= c.limits.memoryProcess) reason = "memory";
    }
    ev->reason = reason;
    ev->terminated = !reason.empty();
    if (reason == "memory" || reason == "cpu-time") PostLimit(c, reason.c_str());
    ev->stats = ReadStats(c.cg, 0, &ru);
    // The worker is gone: the rest of its tree goes with it. The exit is reported once
    // nothing of the tree is left (its cgroups removed).
    KillTree(c);
    c.pending = std::move(ev);
    if (c.cg.Remove()) Post(c);
  }

  void Post(Child& c) {
    std::unique_ptr<Event> ev;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (c.posted || !c.pending) return;
      c.posted = true;
      ev = std::move(c.pending);
    }
    c.sink->Post(std::move(ev));
  }

  Fd epfd_, wake_;
  Registry<Child> reg_;
  std::mutex& mu_ = reg_.mu();
};

// ---- spawn helpers

bool Privileged() { return geteuid() == 0; }

struct Plan {
  std::vector<Enforcement> enforcement;
};

void Add(Plan& p, const std::string& limit, bool ok, const std::string& mech, const std::string& why) {
  p.enforcement.push_back(MakeEnforcement(limit, ok, mech, why));
}

// `processes`: one worker's `processes: 1` is a seccomp filter in that worker; every other
// budget (a worker's N > 1, or any group budget, which no filter inside one worker can count)
// is pids.max.
bool NeedsPids(const Limits& l, bool group) { return group ? l.processes > 0 : l.processes > 1; }

// Which mechanism serves each requested limit (of a worker, or of a group) on this host.
Plan PlanLimits(const Limits& lim, Privileges privileges, const CgroupLayout& l, bool group) {
  Plan p;
  std::string cgMech = l.v2 ? "cgroup-v2" : "cgroup-v1";
  auto cg = [&](const char* name, const char* ctrl) { Add(p, name, l.Has(ctrl), cgMech, l.why.empty() ? std::string("no ") + ctrl + " cgroup" : l.why); };
  if (lim.memoryTotal) cg("memory.total", "memory");
  if (lim.memoryProcess) Add(p, "memory.process", true, "rlimit-data", "");
  if (lim.cpuCores > 0) cg("cpu.cores", "cpu");
  if (lim.cpuTimeMs) Add(p, "cpu.time", true, "rlimit-cpu", "");
  if (!lim.affinity.empty()) Add(p, "cpu.affinity", true, "sched-setaffinity", "");
  if (NeedsPids(lim, group)) cg("processes", "pids");
  else if (lim.processes == 1) Add(p, "processes", true, "seccomp", "");
  if (lim.handles) Add(p, "handles", true, "rlimit-nofile", "");
  if (privileges != Privileges::Inherit)
    Add(p, "privileges", true, privileges == Privileges::Low ? "no-new-privs+no-caps+seccomp" : "no-new-privs+no-caps", "");
  return p;
}

// Threads a process may have under a pids.max budget: pids.max counts tasks.
constexpr uint32_t kTasksPerProcess = 64;

void Configure(Cgroup& cg, const Limits& l, bool group) {
  auto set = [&](const std::string& ctrl, const std::string& file, const std::string& value) {
    std::string d = cg.Dir(ctrl);
    if (d.empty()) return;
    int err = WriteFile(d + "/" + file, value);
    if (err != 0) throw Errno("write", err, d + "/" + file + " = " + value);
  };
  if (l.memoryTotal) {
    std::string v = std::to_string(l.memoryTotal);
    if (cg.v2) {
      set("memory", "memory.max", v);
      // No swap to escape into (the file exists only with swap accounting).
      if (Exists(cg.Dir("memory") + "/memory.swap.max")) set("memory", "memory.swap.max", "0");
      set("memory", "memory.oom.group", "1");
    } else {
      set("memory", "memory.limit_in_bytes", v);
      if (Exists(cg.Dir("memory") + "/memory.memsw.limit_in_bytes")) set("memory", "memory.memsw.limit_in_bytes", v);
    }
  }
  if (l.cpuCores > 0) {
    long period = 100000;
    long quota = std::max(1000L, static_cast<long>(std::llround(l.cpuCores * period)));
    if (cg.v2) set("cpu", "cpu.max", std::to_string(quota) + " " + std::to_string(period));
    else {
      set("cpu", "cpu.cfs_period_us", std::to_string(period));
      set("cpu", "cpu.cfs_quota_us", std::to_string(quota));
    }
  }
  if (NeedsPids(l, group)) set("pids", "pids.max", std::to_string(static_cast<uint64_t>(l.processes) * kTasksPerProcess));
}

// Makes a cgroup (per controller on v1) named `name`, under `parent` (a group's) when given,
// else under this process's own. A group's members join every controller the group has, so
// its budgets (which are hierarchical) count them.
Cgroup MakeCgroup(const std::string& name, const Limits& l, const CgroupLayout& layout, const Cgroup* parent, bool isGroup) {
  Cgroup cg;
  if (layout.v2) {
    cg.v2 = true;
    std::string d = (parent ? parent->Dir("unified") : layout.v2Base) + "/" + name;
    if (mkdir(d.c_str(), 0755) != 0) throw Errno("mkdir", errno, d);
    cg.dirs["unified"] = d;
    if (isGroup) {
      int err = WriteFile(d + "/cgroup.subtree_control", "+memory +cpu +pids");
      if (err != 0) {
        cg.Remove();
        throw Errno("write", err, d + "/cgroup.subtree_control");
      }
    } else {
      cg.v2dir.reset(open(d.c_str(), O_DIRECTORY | O_CLOEXEC));
    }
  } else {
    // Memory and accounting always (for stats and OOM detection); cpu and pids when asked.
    std::vector<std::string> want = {"memory", "cpuacct"};
    if (l.cpuCores > 0 || (parent && !parent->Dir("cpu").empty())) want.push_back("cpu");
    if (NeedsPids(l, isGroup) || (parent && !parent->Dir("pids").empty())) want.push_back("pids");
    for (const std::string& c : want) {
      std::string base = parent ? parent->Dir(c) : "";
      if (base.empty()) {
        auto it = layout.v1.find(c);
        if (it == layout.v1.end()) continue;
        base = it->second;
      }
      std::string d = base + "/" + name;
      if (mkdir(d.c_str(), 0755) != 0) {
        int err = errno;
        cg.Remove();
        throw Errno("mkdir", err, d);
      }
      cg.dirs[c] = d;
    }
  }
  try {
    Configure(cg, l, isGroup);
    // In a group, an OOM of the group's budget takes one member's whole tree (v2).
    if (cg.v2 && parent && !isGroup) {
      int err = WriteFile(cg.Dir("memory") + "/memory.oom.group", "1");
      if (err != 0) throw Errno("write", err, cg.Dir("memory") + "/memory.oom.group");
    }
  } catch (...) {
    cg.Remove();
    throw;
  }
  return cg;
}

struct Group {
  uint64_t id = 0;
  Cgroup cg;
};

Registry<Group>& Groups() {
  static Registry<Group>* g = new Registry<Group>();
  return *g;
}

struct CloneArgs {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

}  // namespace
}  // namespace posix

namespace backend {
using namespace posix;

SpawnResult Spawn(const SpawnRequest& req, std::shared_ptr<EventSink> sink) {
  Monitor& mon = Monitor::Get();
  const CgroupLayout& layout = Layout();
  const Limits& l = req.limits;
  auto child = std::make_shared<Child>();
  child->id = mon.NextId();
  child->sink = std::move(sink);
  child->limits = req.limits;
  child->killOnClose = req.killOnClose;
  SpawnResult res;
  res.id = child->id;

  Plan plan = PlanLimits(req.limits, req.privileges, layout, false);
  if (req.strict) RequireEnforced(plan.enforcement);
  // killOnClose: PDEATHSIG ends the worker; a PID namespace (root only) takes its whole tree.
  child->pidns = req.killOnClose && Privileged();
  {
    Enforcement e;
    e.limit = "killOnClose";
    e.enforced = !req.killOnClose || child->pidns;
    e.mechanism = !req.killOnClose ? "none" : child->pidns ? "pid-namespace+pdeathsig" : "pdeathsig";
    if (!e.enforced) e.reason = "without root no PID namespace can be made: the worker dies with its parent, its own children may not";
    plan.enforcement.push_back(e);
  }

  // A cgroup only when a limit needs one; otherwise stats come from rusage and /proc.
  if (req.group != 0) {
    child->group = Groups().Find(req.group);
    if (!child->group) throw SysError("ERR_INVALID_STATE", 0, "", "the isolation group is closed");
  }
  bool needCg = (l.memoryTotal || l.cpuCores > 0 || NeedsPids(l, false) || (child->group && !child->group->cg.Empty())) &&
                (layout.v2 || !layout.v1.empty());
  if (needCg)
    child->cg = MakeCgroup("spawn-isolated-" + std::to_string(getpid()) + "-" + std::to_string(child->id), l, layout,
                           child->group ? &child->group->cg : nullptr, false);
  struct CgroupGuard {
    Child& c;
    bool armed = true;
    ~CgroupGuard() {
      if (armed) c.cg.Remove();
    }
  } cgGuard{*child};

  // stdio and inherited fds
  std::vector<Fd> parentEnds;  // what JS gets
  std::vector<Fd> childEnds;   // closed here once the child has its copies
  ChildPlan cp;
  memset(&cp, 0, sizeof(cp));
  cp.count = static_cast<int>(3 + req.inherit.size());
  if (cp.count > 64) throw SysError("ERR_OUT_OF_RANGE", 0, "", "options.inheritHandles: at most 61 entries");
  for (int i = 0; i < 3; i++) {
    const StdioSpec& s = req.stdio[i];
    if (s.kind == StdioSpec::Pipe) {
      int sv[2];
      if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw Errno("socketpair", errno);
      parentEnds.emplace_back(sv[0]);
      childEnds.emplace_back(sv[1]);
      cp.sources[i] = sv[1];
      res.pipes[i] = std::to_string(sv[0]);
    } else if (s.kind == StdioSpec::Ignore) {
      cp.sources[i] = -1;
    } else {
      if (fcntl(s.fd, F_GETFD) < 0) {
        if (s.kind == StdioSpec::Inherit) cp.sources[i] = -1;
        else throw Errno("fcntl", EBADF, "stdio[" + std::to_string(i) + "]: fd " + std::to_string(s.fd) + " is not open");
      } else {
        cp.sources[i] = s.fd;
      }
    }
  }
  for (size_t i = 0; i < req.inherit.size(); i++) {
    int fd = static_cast<int>(req.inherit[i].value);
    if (fcntl(fd, F_GETFD) < 0) throw Errno("fcntl", EBADF, "inheritHandles: fd " + std::to_string(fd) + " is not open");
    cp.sources[3 + i] = fd;
    res.inherited.push_back(static_cast<int64_t>(3 + i));
  }

  // argv / envp, made before clone: the child may not allocate.
  std::vector<std::string> args = req.args, env = req.env;
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(&a[0]);
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(&e[0]);
  envp.push_back(nullptr);
  cp.path = req.file.c_str();
  cp.argv = argv.data();
  cp.envp = envp.data();
  cp.cwd = req.hasCwd ? req.cwd.c_str() : nullptr;
  if (l.memoryProcess) cp.rlimits[cp.nrlimits++] = {RLIMIT_DATA, static_cast<rlim_t>(l.memoryProcess)};
  if (l.cpuTimeMs) cp.rlimits[cp.nrlimits++] = {RLIMIT_CPU, static_cast<rlim_t>((l.cpuTimeMs + 999) / 1000)};
  if (l.handles) cp.rlimits[cp.nrlimits++] = {RLIMIT_NOFILE, static_cast<rlim_t>(l.handles)};
  if (!l.affinity.empty()) {
    cp.hasAffinity = true;
    CPU_ZERO(&cp.affinity);
    long ncpu = sysconf(_SC_NPROCESSORS_CONF);
    for (uint32_t c : l.affinity) {
      if (static_cast<long>(c) >= ncpu)
        throw SysError("ERR_OUT_OF_RANGE", 0, "", "options.cpu.affinity names CPU " + std::to_string(c) + ", which this machine does not have");
      CPU_SET(c, &cp.affinity);
    }
  }
  cp.dropPrivileges = req.privileges != Privileges::Inherit;
  cp.hasUid = req.hasUid;
  cp.hasGid = req.hasGid;
  cp.uid = req.uid;
  cp.gid = req.gid;
  cp.hasFilter = l.processes == 1 || req.privileges == Privileges::Low;
  std::vector<sock_filter> filter;
  if (cp.hasFilter) filter = BuildFilter(l.processes == 1, req.privileges == Privileges::Low);
  cp.filter.len = static_cast<unsigned short>(filter.size());
  cp.filter.filter = filter.data();
  cp.pdeathsig = req.killOnClose;

  // v1 cgroups are joined after clone: the child waits on this pipe until it is placed.
  bool handshake = !child->cg.Empty() && !child->cg.v2;
  int goPipe[2] = {-1, -1}, errPipe[2];
  if (handshake && pipe2(goPipe, O_CLOEXEC) != 0) throw Errno("pipe2", errno);
  Fd goRead(goPipe[0]), goWrite(goPipe[1]);
  if (pipe2(errPipe, O_CLOEXEC) != 0) throw Errno("pipe2", errno);
  Fd errRead(errPipe[0]), errWrite(errPipe[1]);
  cp.goFd = goRead.get();
  cp.errFd = errWrite.get();

  CloneArgs ca;
  memset(&ca, 0, sizeof(ca));
  int pidfd = -1;
  ca.flags = CLONE_PIDFD | (child->pidns ? CLONE_NEWPID : 0);
  ca.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  ca.exit_signal = SIGCHLD;
  if (child->cg.v2 && child->cg.v2dir.valid()) {
    ca.flags |= CLONE_INTO_CGROUP;  // in its cgroup from the first instruction
    ca.cgroup = static_cast<uint64_t>(child->cg.v2dir.get());
  }
  long pid = syscall(SYS_clone3, &ca, sizeof(ca));
  if (pid < 0 && errno == ENOSYS) {  // kernels before 5.3: fork, then a pidfd
    pid = syscall(SYS_clone, SIGCHLD | (child->pidns ? CLONE_NEWPID : 0), 0, 0, 0, 0);
    if (pid > 0) pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  }
  if (pid == 0) ChildMain(cp);
  if (pid < 0) throw Errno("clone3", errno, req.file);
  child->pid = static_cast<pid_t>(pid);
  child->pidfd.reset(pidfd);
  goRead.reset();
  errWrite.reset();
  childEnds.clear();

  auto abandon = [&](const SysError& e) -> SysError {
    syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
    siginfo_t info;
    syscall(SYS_waitid, P_PIDFD, pidfd, &info, WEXITED | __WALL, nullptr);
    return e;
  };
  // v1 (or no clone3 cgroup support): place it before it runs anything of the worker.
  if (!child->cg.v2) {
    for (auto& kv : child->cg.dirs) {
      int err = WriteFile(kv.second + "/cgroup.procs", std::to_string(pid));
      if (err != 0) throw abandon(Errno("write", err, kv.second + "/cgroup.procs"));
    }
  }
  if (handshake && write(goWrite.get(), "g", 1) != 1) throw abandon(Errno("write", errno, "start pipe"));
  goWrite.reset();
  int msg[2] = {0, 0};
  ssize_t n;
  do n = read(errRead.get(), msg, sizeof(msg));
  while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof(msg))) {
    siginfo_t info;
    syscall(SYS_waitid, P_PIDFD, pidfd, &info, WEXITED | __WALL, nullptr);
    SysError e = Errno(std::string("spawn ") + req.file, msg[1]);
    e.message = "spawn " + req.file + " " + ErrnoCode(msg[1]) + ": " + StepName(msg[0]) + " failed: " + strerror(msg[1]);
    throw e;
  }
  res.pid = pid;
  for (Fd& end : parentEnds) end.release();  // JS owns them now (net.Socket({ fd }))
  res.enforcement = plan.enforcement;
  cgGuard.armed = false;
  mon.Add(child);
  return res;
}

void Resume(uint64_t) {}

bool Kill(uint64_t id, const std::string& reason, int) {
  std::shared_ptr<Child> c = Monitor::Get().Find(id);
  return c ? Monitor::Get().Terminate(*c, reason) : false;
}

Stats GetStats(uint64_t id) {
  std::shared_ptr<Child> c = Monitor::Get().Get(id, "stats");
  bool live;
  {
    std::lock_guard<std::mutex> lock(Monitor::Get().mu());
    live = !c->reaped;
  }
  return ReadStats(c->cg, live ? c->pid : 0, nullptr);
}

void Release(uint64_t id) {
  std::shared_ptr<Child> c = Monitor::Get().Remove(id);
  if (!c) return;
  if (!c->reaped) {
    if (!c->killOnClose) return;  // it runs on, within its limits; its cgroup stays
    Monitor::KillTree(*c);
    siginfo_t info;
    syscall(SYS_waitid, P_PIDFD, c->pidfd.get(), &info, WEXITED | __WALL, nullptr);
  }
  c->cg.RemoveNow();
}

GroupResult CreateGroup(const GroupRequest& req) {
  const CgroupLayout& layout = Layout();
  Plan plan = PlanLimits(req.limits, Privileges::Inherit, layout, true);
  if (req.strict) RequireEnforced(plan.enforcement);
  auto g = std::make_shared<Group>();
  g->id = Groups().NextId();
  if (layout.v2 || !layout.v1.empty())
    g->cg = MakeCgroup("spawn-isolated-" + std::to_string(getpid()) + "-g" + std::to_string(g->id), req.limits, layout, nullptr, true);
  GroupResult res;
  res.id = g->id;
  res.enforcement = plan.enforcement;
  Groups().Add(std::move(g));
  return res;
}

Stats GroupStats(uint64_t id) {
  return ReadStats(Groups().Get(id, "groupStats")->cg, 0, nullptr);
}

void ReleaseGroup(uint64_t id) {
  std::shared_ptr<Group> g = Groups().Remove(id);
  if (!g) return;
  g->cg.RemoveNow();
}

Support Probe() {
  static Support cached = [] {
    Support s;
    const CgroupLayout& l = Layout();
    s.backend = l.v2 ? "linux-cgroup-v2" : !l.v1.empty() ? "linux-cgroup-v1" : "linux-rlimit";
    s.spawn = true;
    std::string cgMech = l.v2 ? "cgroup-v2" : "cgroup-v1";
    auto add = [&](const std::string& limit, bool ok, const std::string& mech, const std::string& why) {
      s.limits.push_back(MakeEnforcement(limit, ok, mech, why));
    };
    auto why = [&](const char* ctrl) { return l.why.empty() ? std::string("no writable ") + ctrl + " cgroup" : l.why; };
    add("memory.total", l.Has("memory"), cgMech, why("memory"));
    add("memory.process", true, "rlimit-data", "");
    add("cpu.cores", l.Has("cpu"), cgMech, why("cpu"));
    add("cpu.time", true, "rlimit-cpu", "");
    add("cpu.affinity", true, "sched-setaffinity", "");
    add("processes", l.Has("pids"), "seccomp (1) / " + cgMech + " pids (N>1)", why("pids"));
    add("handles", true, "rlimit-nofile", "");
    add("privileges", true, "no-new-privs+no-caps", "");
    add("killOnClose", Privileged(), "pid-namespace+pdeathsig",
        "without root no PID namespace can be made: the worker dies with its parent, its own children may not");
    add("inheritHandles", true, "fd-whitelist", "");
    return s;
  }();
  return cached;
}

}  // namespace backend
}  // namespace si
