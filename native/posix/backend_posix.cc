// POSIX (Linux) backend: per-worker cgroups (v2, or v1 per controller), rlimits, seccomp,
// an fd whitelist, privilege drop, a PID namespace for kill-on-close of the whole tree, and
// one background thread that waits on every worker's pidfd with epoll.
#include "../contract.h"
#include "../registry.h"
#include "identity.h"
#include "landlock.h"
#include "seccomp.h"

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
#include <poll.h>
#include <sys/epoll.h>
#include <sys/mount.h>
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
#include <filesystem>
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

// Where cgroup file systems are mounted (one entry per tree: /sys/fs/cgroup when it is a
// mount of its own holding them), for a restricted worker's mount namespace to make read-only.
const std::vector<std::string>& CgroupMounts() {
  static const std::vector<std::string> mounts = [] {
    std::vector<std::string> points, out;
    std::string all;
    ReadFile("/proc/self/mountinfo", &all);
    std::istringstream in(all);
    std::string line;
    bool sysfsCgroupIsMount = false;
    while (std::getline(in, line)) {
      size_t sep = line.find(" - ");
      if (sep == std::string::npos) continue;
      std::istringstream left(line.substr(0, sep)), right(line.substr(sep + 3));
      std::string id, parent, dev, root, point, type;
      left >> id >> parent >> dev >> root >> point;
      right >> type;
      if (point == "/sys/fs/cgroup") sysfsCgroupIsMount = true;
      if (type == "cgroup" || type == "cgroup2") points.push_back(point);
    }
    for (const std::string& p : points) {
      bool under = p.rfind("/sys/fs/cgroup", 0) == 0;
      std::string top = under && sysfsCgroupIsMount ? "/sys/fs/cgroup" : p;
      if (std::find(out.begin(), out.end(), top) == out.end()) out.push_back(top);
    }
    return out;
  }();
  return mounts;
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
  // Forks refused at pids.max (v1 and v2 both count them in pids.events).
  uint64_t TaskLimitHits() const {
    std::string d = Dir("pids");
    return d.empty() ? 0 : ReadKey(d + "/pids.events", "max");
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

constexpr int kMaxRoMounts = 32;

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
  bool hasUid, hasGid, clearGroups;
  uid_t uid;
  gid_t gid;
  // A user namespace of its own (non-root launcher): the child maps its own ids 1:1.
  bool userns;
  char uidMap[32], gidMap[32];
  // A mount namespace of its own: /proc of its PID namespace, cgroup file systems read-only.
  bool mounts;
  const char* roMounts[kMaxRoMounts];
  int nroMounts;
  int landlockAbi;            // > 0: confine writes beneath landlockDir (see landlock.h)
  const char* landlockDir;
  sock_fprog filter;
  bool hasFilter;
  bool pdeathsig;
  int goFd;   // read end: "go" once the child is in its cgroups; hang-up: the parent died
  int errFd;  // write end, close-on-exec: failures are reported here
};

enum Step : int {
  kStepGo = 1, kStepFds, kStepRlimit, kStepAffinity, kStepCwd, kStepIds, kStepCaps, kStepSeccomp, kStepExec,
  kStepUserns, kStepMounts, kStepLandlock,
};
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
    case kStepUserns: return "map ids in the user namespace";
    case kStepMounts: return "mount its own /proc and make cgroups read-only";
    case kStepLandlock: return "install the Landlock ruleset";
    default: return "execve";
  }
}

[[noreturn]] void ChildFail(const ChildPlan& p, int step, int err = -1) {
  int msg[2] = {step, err < 0 ? errno : err};
  ssize_t n = write(p.errFd, msg, sizeof(msg));
  (void)n;
  _exit(127);
}

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

// The fds of the worker: copy every source above the targets, then put each in place;
// everything else is marked close-on-exec (whether or not its owner did).
void SetUpFds(const ChildPlan& p) {
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
}

void SetUpNamespaces(const ChildPlan& p) {
  if (p.userns) {
    if (!WriteAll("/proc/self/uid_map", p.uidMap) || !WriteAll("/proc/self/setgroups", "deny") ||
        !WriteAll("/proc/self/gid_map", p.gidMap))
      ChildFail(p, kStepUserns);
  }
  if (!p.mounts) return;
  // Private first, so nothing done here reaches the launcher's mount namespace.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ChildFail(p, kStepMounts);
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) ChildFail(p, kStepMounts);
  for (int i = 0; i < p.nroMounts; i++) {
    int err = ReadOnlyTree(p.roMounts[i]);
    if (err != 0) ChildFail(p, kStepMounts, err);
  }
}

// Identity and capabilities. Root (in the launcher's namespace or in the worker's own) keeps
// its capabilities across the id change (NO_SETUID_FIXUP) only long enough to clear them all.
void DropIdentity(const ChildPlan& p) {
  if (p.dropPrivileges) {
    // Locked: no root rules, no fix-ups, no keep-caps, for this process and what it execs.
    prctl(PR_SET_SECUREBITS, 0x2f /* NOROOT|NOROOT_LOCKED|NO_SETUID_FIXUP|..._LOCKED|KEEP_CAPS_LOCKED */);
    for (int cap = 0; cap <= 63; cap++) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  }
  if (p.hasGid || p.hasUid || p.clearGroups) {
    // Raw system calls: glibc's wrappers would broadcast to the parent's threads, which it
    // still believes exist after clone; in the child this thread is the only one.
    if (syscall(SYS_setgroups, 0, nullptr) != 0 && errno != EPERM) ChildFail(p, kStepIds);
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

[[noreturn]] void ChildMain(const ChildPlan& p) {
  if (p.pdeathsig) prctl(PR_SET_PDEATHSIG, SIGKILL);
  char go = 0;
  if (read(p.goFd, &go, 1) != 1) _exit(127);  // the parent died or gave up
  setpgid(0, 0);
  SetUpFds(p);
  for (int i = 0; i < p.nrlimits; i++) {
    struct rlimit rl = {p.rlimits[i].value, p.rlimits[i].value};
    if (setrlimit(p.rlimits[i].resource, &rl) != 0) ChildFail(p, kStepRlimit);
  }
  if (p.hasAffinity && sched_setaffinity(0, sizeof(p.affinity), &p.affinity) != 0) ChildFail(p, kStepAffinity);
  SetUpNamespaces(p);
  DropIdentity(p);
  // A change of ids clears the parent-death signal: set it again, then make sure the parent
  // did not die before it was (the parent holds the go pipe open until this child has exec'd).
  if (p.pdeathsig) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    struct pollfd pfd = {p.goFd, POLLIN, 0};
    if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLERR))) _exit(127);
  }
  // After the identity change: the worker's own rights decide whether it may enter its cwd.
  if (p.cwd != nullptr && chdir(p.cwd) != 0) ChildFail(p, kStepCwd);
  if (p.dropPrivileges || p.hasFilter || p.landlockAbi > 0) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ChildFail(p, kStepCaps);
  }
  if (p.landlockAbi > 0) {
    int err = landlock::ApplyInChild(p.landlockAbi, p.landlockDir);
    if (err != 0) ChildFail(p, kStepLandlock, err);
  }
  if (p.hasFilter && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p.filter) != 0) ChildFail(p, kStepSeccomp);
  execve(p.path, p.argv, p.envp);
  ChildFail(p, kStepExec);
}

// ---- the monitor: one thread, epoll over pidfds

struct Group;

struct Child {
  uint64_t id = 0;
  std::unique_ptr<TransientId> transientId;  // its own uid/gid, while its tree lives
  std::string tempDir;                        // its private TMPDIR (removed with it), if any
  ~Child() {
    std::error_code ec;
    if (!tempDir.empty()) std::filesystem::remove_all(tempDir, ec);
  }
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
  bool threadsPosted = false;  // the 'limit' event for the task limit went out
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

constexpr int kSampleMs = 50;    // sampling period while a worker needs it (see NeedsSampling)
constexpr int kTreeGoneMs = 20;  // re-check period while the rest of an exited tree goes

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
          if (c.pending) timeout = kTreeGoneMs;  // waiting for the rest of a tree to go
          else if (!c.reaped && NeedsSampling(c)) timeout = timeout < 0 ? kSampleMs : std::min(timeout, kSampleMs);
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

  // What only sampling shows: VmData peaks, v1 OOM kills (v1 kills one process, not the
  // group), and forks refused at the task limit.
  static bool NeedsSampling(const Child& c) {
    return c.limits.memoryProcess || ((c.limits.memoryTotal || c.group) && !c.cg.v2) || !c.cg.Dir("pids").empty();
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
      // The tree hit its task limit: said once, whether or not the worker survives it.
      if (!c->threadsPosted && c->cg.TaskLimitHits() > 0) {
        c->threadsPosted = true;
        c->sink->Post(LimitEvent(c->id, "threads", c->pid));
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
    // The tree was refused a task and the worker then failed (Go: "failed to create new OS
    // thread", exit 2): the kernel's own counter is the evidence.
    if (reason.empty() && (ev->signal != 0 || ev->exitCode != 0) && c.cg.TaskLimitHits() > 0) reason = "threads";
    if (reason == "threads" && !c.threadsPosted) {
      c.threadsPosted = true;
      c.sink->Post(LimitEvent(c.id, "threads", c.pid));
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

// Workers get namespaces of their own (PID, mount, IPC; a user namespace too when this
// launcher is not root). A host that refuses them (a container's seccomp profile, a sysctl,
// an LSM) is remembered, and workers then get what works without them.
std::atomic<bool> g_namespacesRefused{false};
std::string NamespacesRefusedWhy() {
  return Privileged() ? "this host refuses new PID and mount namespaces" : "this host refuses unprivileged user namespaces";
}

// How a worker is confined, from its privilege level and who this launcher is.
struct Confinement {
  bool restricted = false;    // 'restricted' or 'low'
  bool transientId = false;   // root launcher, no uid given: a uid/gid of its own
  bool userns = false;        // non-root launcher: a user namespace of its own (ids mapped 1:1)
  bool mounts = false;        // own mount namespace: its own /proc, cgroup file systems read-only
  int landlockAbi = 0;        // > 0: writes only beneath its private temp dir (see landlock.h)
  bool perTreeTasks = false;  // RLIMIT_NPROC counts exactly its tree (an identity of its own)
  Enforcement entry;          // the 'privileges' enforcement entry
};

int LandlockAbi() {
  static const int abi = landlock::Abi();
  return abi;
}

Confinement Confine(Privileges privileges, bool hasUid) {
  Confinement c;
  c.restricted = privileges != Privileges::Inherit;
  if (!c.restricted) {
    c.entry = MakeEnforcement("privileges", true, "inherit", "");
    return c;
  }
  std::string mech, why;
  if (Privileged()) {
    // Root: a uid of its own (unless the caller chose one), its own /proc, read-only cgroups.
    // Without namespaces, its transient uid still keeps it from root's files, cgroup files
    // and other workers' /proc entries; it can see that they exist.
    c.transientId = !hasUid;
    c.mounts = !g_namespacesRefused.load();
    c.perTreeTasks = c.transientId;
    mech = std::string(c.transientId ? "transient-uid+" : "uid+") + (c.mounts ? "pid-ns+mount-ns+" : "") + "no-caps+seccomp";
    if (!c.mounts) why = NamespacesRefusedWhy() + ": the worker sees every process in /proc";
  } else {
    // Not root: the worker has the launcher's uid, so the file system and ptrace are confined
    // by Landlock, and its own user / PID / mount namespaces give it its own /proc.
    c.userns = !g_namespacesRefused.load();
    c.mounts = c.userns;
    c.perTreeTasks = c.userns;
    c.landlockAbi = LandlockAbi();
    mech = std::string(c.userns ? "user-ns+pid-ns+mount-ns+" : "") + "no-caps+seccomp" + (c.landlockAbi ? "+landlock" : "");
    if (!c.landlockAbi) why = "Landlock is not available (Linux 5.13+ with the landlock LSM enabled): the worker could write what the launcher owns";
    else if (!c.userns) why = NamespacesRefusedWhy() + ": the worker sees every process in /proc";
  }
  // 'low': writes confined beneath its private temp dir on every host that has Landlock.
  if (privileges == Privileges::Low) {
    c.landlockAbi = LandlockAbi();
    if (!c.landlockAbi && why.empty()) why = "'low' confines writes with Landlock, which this kernel does not offer";
    if (c.landlockAbi && mech.find("+landlock") == std::string::npos) mech += "+landlock";
    mech += "+low-seccomp";
  }
  c.entry = MakeEnforcement("privileges", why.empty(), mech, why);
  return c;
}

struct Plan {
  std::vector<Enforcement> enforcement;
};

void Add(Plan& p, const std::string& limit, bool ok, const std::string& mech, const std::string& why) {
  p.enforcement.push_back(MakeEnforcement(limit, ok, mech, why));
}

// The task limit (`threads`; for a group, derived from its `processes`) is pids.max.
bool NeedsPids(const Limits& l) { return l.threads > 0; }

// Which mechanism serves each requested limit (of a worker, or of a group) on this host.
Plan PlanLimits(const Limits& lim, const Confinement& conf, const CgroupLayout& l, bool group) {
  Plan p;
  std::string cgMech = l.v2 ? "cgroup-v2" : "cgroup-v1";
  auto why = [&](const char* ctrl) { return l.why.empty() ? std::string("no ") + ctrl + " cgroup" : l.why; };
  auto cg = [&](const char* name, const char* ctrl) { Add(p, name, l.Has(ctrl), cgMech, why(ctrl)); };
  // Tasks: pids.max, or RLIMIT_NPROC where the worker's identity is its tree's alone.
  auto tasks = [&](const char* name) {
    if (l.Has("pids")) Add(p, name, true, cgMech, "");
    else Add(p, name, conf.perTreeTasks, "rlimit-nproc", why("pids") + ", and the worker has no identity of its own to count with RLIMIT_NPROC");
  };
  if (lim.memoryTotal) cg("memory.total", "memory");
  if (lim.memoryProcess) Add(p, "memory.process", true, "rlimit-data", "");
  if (lim.cpuCores > 0) cg("cpu.cores", "cpu");
  if (lim.cpuTimeMs) Add(p, "cpu.time", true, "rlimit-cpu", "");
  if (!lim.affinity.empty()) Add(p, "cpu.affinity", true, "sched-setaffinity", "");
  if (group) {
    if (lim.processes) cg("processes", "pids");
  } else {
    if (lim.processes == 1) Add(p, "processes", true, "seccomp", "");
    else if (lim.processes > 1) tasks("processes");
    if (lim.threads) tasks("threads");
  }
  if (lim.handles) Add(p, "handles", true, "rlimit-nofile", "");
  return p;
}

void Configure(Cgroup& cg, const Limits& l) {
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
  if (NeedsPids(l)) set("pids", "pids.max", std::to_string(l.threads));
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
    if (NeedsPids(l) || (parent && !parent->Dir("pids").empty())) want.push_back("pids");
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
    Configure(cg, l);
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

namespace {

// Who the worker runs as: uid without gid takes the uid's primary group (never root's gid 0);
// a restricted worker of a root launcher gets a transient uid/gid of its own.
void ResolveIds(const SpawnRequest& req, const Confinement& conf, Child& child, ChildPlan& cp) {
  cp.hasUid = req.hasUid;
  cp.uid = req.uid;
  cp.hasGid = req.hasGid;
  cp.gid = req.gid;
  if (conf.transientId) {
    child.transientId = TransientId::Acquire();
    cp.hasUid = true;
    cp.uid = child.transientId->id();
    if (!cp.hasGid) {
      cp.hasGid = true;
      cp.gid = child.transientId->id();
    }
  } else if (req.hasUid && !req.hasGid) {
    gid_t g;
    if (!PrimaryGroup(req.uid, &g))
      throw SysError("ERR_INVALID_ARG_VALUE", 0, "getpwuid_r",
                     "options.gid is required: uid " + std::to_string(req.uid) + " has no entry in the user database to take a primary group from");
    cp.hasGid = true;
    cp.gid = g;
  }
  // A restricted worker never keeps the launcher's supplementary groups.
  cp.clearGroups = conf.restricted || cp.hasUid || cp.hasGid;
}

// A private TMPDIR, mode 0700 and owned by the worker, for a worker whose writes Landlock
// confines beneath it. It goes with the worker (~Child).
void MakeTempDir(Child& child, const ChildPlan& cp, std::vector<std::string>& env) {
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base && *base == '/' ? base : "/tmp") + "/spawn-isolated-" + std::to_string(getpid()) + "-" +
                     std::to_string(child.id) + "-XXXXXX";
  if (mkdtemp(&tmpl[0]) == nullptr) throw Errno("mkdtemp", errno, tmpl);
  child.tempDir = tmpl;
  if ((cp.hasUid || cp.hasGid) && chown(tmpl.c_str(), cp.hasUid ? cp.uid : -1, cp.hasGid ? cp.gid : -1) != 0)
    throw Errno("chown", errno, tmpl);
  env.erase(std::remove_if(env.begin(), env.end(), [](const std::string& e) { return e.rfind("TMPDIR=", 0) == 0; }), env.end());
  env.push_back("TMPDIR=" + tmpl);
}

// What the child needs to confine itself: namespaces, read-only cgroups, Landlock, seccomp.
void PlanConfinement(const SpawnRequest& req, const Confinement& conf, const Child& child, ChildPlan& cp,
                     std::vector<sock_filter>& filter) {
  cp.dropPrivileges = conf.restricted;
  cp.userns = conf.userns;
  if (conf.userns) {
    snprintf(cp.uidMap, sizeof(cp.uidMap), "%u %u 1", geteuid(), geteuid());
    snprintf(cp.gidMap, sizeof(cp.gidMap), "%u %u 1", getegid(), getegid());
  }
  cp.mounts = conf.mounts;
  const std::vector<std::string>& ro = CgroupMounts();
  for (size_t i = 0; i < ro.size() && cp.nroMounts < kMaxRoMounts; i++) cp.roMounts[cp.nroMounts++] = ro[i].c_str();
  cp.landlockAbi = conf.landlockAbi;
  cp.landlockDir = child.tempDir.empty() ? nullptr : child.tempDir.c_str();
  FilterSpec spec;
  spec.noChildren = req.limits.processes == 1;
  spec.restricted = conf.restricted;
  spec.low = req.privileges == Privileges::Low;
  filter = BuildFilter(spec);
  cp.hasFilter = !filter.empty();
  cp.filter.len = static_cast<unsigned short>(filter.size());
  cp.filter.filter = filter.data();
}

// clone3 into the worker's namespaces (and v2 cgroup); the child runs ChildMain. Returns the
// pid (and *pidfd), or -errno.
long CloneChild(const ChildPlan& cp, uint64_t nsFlags, const Cgroup& cg, int* pidfd) {
  CloneArgs ca;
  memset(&ca, 0, sizeof(ca));
  ca.flags = CLONE_PIDFD | nsFlags;
  ca.pidfd = reinterpret_cast<uint64_t>(pidfd);
  ca.exit_signal = SIGCHLD;
  if (cg.v2 && cg.v2dir.valid()) {
    ca.flags |= CLONE_INTO_CGROUP;  // in its cgroup from the first instruction
    ca.cgroup = static_cast<uint64_t>(cg.v2dir.get());
  }
  long pid = syscall(SYS_clone3, &ca, sizeof(ca));
  if (pid < 0 && errno == ENOSYS) {  // kernels before 5.3: fork, then a pidfd
    pid = syscall(SYS_clone, SIGCHLD | nsFlags, 0, 0, 0, 0);
    if (pid > 0) *pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  }
  if (pid == 0) ChildMain(cp);
  return pid < 0 ? -errno : pid;
}

void KillAndWait(int pidfd) {
  syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
  siginfo_t info;
  syscall(SYS_waitid, P_PIDFD, pidfd, &info, WEXITED | __WALL, nullptr);
}

// The child's report of a failed step (or nothing, once it has exec'd).
struct ChildFailure {
  int step = 0, err = 0;
};

// Places the new child in its v1 cgroups, lets it go, and waits for exec or its failure.
ChildFailure StartChild(Child& child, Fd& goWrite, Fd& errRead) {
  if (!child.cg.v2) {
    for (auto& kv : child.cg.dirs) {
      int err = WriteFile(kv.second + "/cgroup.procs", std::to_string(child.pid));
      if (err != 0) {
        KillAndWait(child.pidfd.get());
        throw Errno("write", err, kv.second + "/cgroup.procs");
      }
    }
  }
  if (write(goWrite.get(), "g", 1) != 1) {
    int err = errno;
    KillAndWait(child.pidfd.get());
    throw Errno("write", err, "start pipe");
  }
  int msg[2] = {0, 0};
  ssize_t n;
  do n = read(errRead.get(), msg, sizeof(msg));
  while (n < 0 && errno == EINTR);
  goWrite.reset();
  ChildFailure f;
  if (n == static_cast<ssize_t>(sizeof(msg))) {
    siginfo_t info;
    syscall(SYS_waitid, P_PIDFD, child.pidfd.get(), &info, WEXITED | __WALL, nullptr);
    f.step = msg[0];
    f.err = msg[1];
  }
  return f;
}

SysError ChildError(const SpawnRequest& req, const ChildPlan& cp, const Confinement& conf, const ChildFailure& f) {
  SysError e = Errno(std::string("spawn ") + req.file, f.err);
  e.message = "spawn " + req.file + " " + ErrnoCode(f.err) + ": " + StepName(f.step) + " failed: " + strerror(f.err);
  if (conf.transientId && f.err == EACCES && (f.step == kStepExec || f.step == kStepCwd))
    e.message += " (a restricted worker of a root launcher runs as its own uid " + std::to_string(cp.uid) +
                 ": its executable and cwd must be readable by others; or pass options.uid, or privileges: 'inherit')";
  return e;
}

// The host refused the worker's user namespace: spawn again without one.
struct NamespacesRefused {};

}  // namespace

SpawnResult SpawnOnce(const SpawnRequest& req, std::shared_ptr<EventSink> sink) {
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

  Confinement conf = Confine(req.privileges, req.hasUid);
  Plan plan = PlanLimits(req.limits, conf, layout, false);
  if (req.privileges != Privileges::Inherit) plan.enforcement.push_back(conf.entry);
  if (req.strict) {
    for (const Enforcement& e : plan.enforcement)
      if (!e.enforced && (e.limit != "privileges" || req.privilegesExplicit)) throw NotEnforcedError(e);
  }
  // A restricted worker is PID 1 of its own PID namespace; so is any worker of a root
  // launcher with killOnClose: when it dies, the kernel ends the rest of its tree.
  child->pidns = conf.mounts || (req.killOnClose && Privileged() && !g_namespacesRefused.load());
  plan.enforcement.push_back(MakeEnforcement("killOnClose", !req.killOnClose || child->pidns,
                                             !req.killOnClose ? "none" : "pid-namespace+pdeathsig",
                                             "without root or a user namespace no PID namespace can be made: the worker dies "
                                             "with its parent, its own children may not"));
  if (!req.killOnClose) plan.enforcement.back().mechanism = "none";

  // A cgroup only when a limit needs one; otherwise stats come from rusage and /proc.
  if (req.group != 0) {
    child->group = Groups().Find(req.group);
    if (!child->group) throw SysError("ERR_INVALID_STATE", 0, "", "the isolation group is closed");
  }
  bool needCg = (l.memoryTotal || l.cpuCores > 0 || (NeedsPids(l) && layout.Has("pids")) ||
                 (child->group && !child->group->cg.Empty())) &&
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
  ResolveIds(req, conf, *child, cp);
  std::vector<std::string> args = req.args, env = req.env;
  if (conf.landlockAbi > 0) MakeTempDir(*child, cp, env);
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
  // Without a pids cgroup, tasks of an identity that is the tree's alone: RLIMIT_NPROC counts
  // exactly its tree (it is not also set under pids.max, whose refusals the kernel counts).
  if (l.threads && conf.perTreeTasks && !layout.Has("pids")) cp.rlimits[cp.nrlimits++] = {RLIMIT_NPROC, static_cast<rlim_t>(l.threads)};
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
  std::vector<sock_filter> filter;
  PlanConfinement(req, conf, *child, cp, filter);
  cp.pdeathsig = req.killOnClose;

  // The child waits on this pipe until it is placed in its v1 cgroups, and sees it hang up if
  // this process dies before the child has exec'd.
  int goPipe[2], errPipe[2];
  if (pipe2(goPipe, O_CLOEXEC) != 0) throw Errno("pipe2", errno);
  Fd goRead(goPipe[0]), goWrite(goPipe[1]);
  if (pipe2(errPipe, O_CLOEXEC) != 0) throw Errno("pipe2", errno);
  Fd errRead(errPipe[0]), errWrite(errPipe[1]);
  cp.goFd = goRead.get();
  cp.errFd = errWrite.get();

  uint64_t nsFlags = (child->pidns ? CLONE_NEWPID : 0) | (conf.mounts ? CLONE_NEWNS | CLONE_NEWIPC : 0) | (conf.userns ? CLONE_NEWUSER : 0);
  int pidfd = -1;
  long pid = CloneChild(cp, nsFlags, child->cg, &pidfd);
  if (pid < 0 && nsFlags != 0 && (-pid == EPERM || -pid == ENOSPC || -pid == EUSERS || -pid == EINVAL)) throw NamespacesRefused();
  if (pid < 0) throw Errno("clone3", static_cast<int>(-pid), req.file);
  child->pid = static_cast<pid_t>(pid);
  child->pidfd.reset(pidfd);
  goRead.reset();
  errWrite.reset();
  childEnds.clear();

  ChildFailure failed = StartChild(*child, goWrite, errRead);
  if (failed.step != 0) {
    // A host that lets us make namespaces but not use them (an LSM policy, locked mounts).
    if (conf.mounts && (failed.step == kStepUserns || failed.step == kStepMounts) && (failed.err == EPERM || failed.err == EACCES))
      throw NamespacesRefused();
    throw ChildError(req, cp, conf, failed);
  }
  res.pid = pid;
  for (Fd& end : parentEnds) end.release();  // JS owns them now (net.Socket({ fd }))
  res.enforcement = plan.enforcement;
  cgGuard.armed = false;
  mon.Add(child);
  return res;
}

SpawnResult Spawn(const SpawnRequest& req, std::shared_ptr<EventSink> sink) {
  try {
    return SpawnOnce(req, sink);
  } catch (const NamespacesRefused&) {
    // Remembered: this and every later worker are confined without namespaces (the
    // privileges entry says what that leaves out, and strict mode refuses explicit levels).
    g_namespacesRefused = true;
    return SpawnOnce(req, sink);
  }
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
    if (!c->killOnClose) {
      // It runs on, within its limits: its cgroup, temp dir and transient uid stay its own.
      if (c->transientId) c->transientId->Keep();
      c->tempDir.clear();
      return;
    }
    Monitor::KillTree(*c);
    siginfo_t info;
    syscall(SYS_waitid, P_PIDFD, c->pidfd.get(), &info, WEXITED | __WALL, nullptr);
  }
  c->cg.RemoveNow();
}

GroupResult CreateGroup(const GroupRequest& req) {
  const CgroupLayout& layout = Layout();
  Plan plan = PlanLimits(req.limits, Confine(Privileges::Inherit, false), layout, true);
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
  // What a worker asking for every limit with the default privileges would get here now.
  const CgroupLayout& l = Layout();
  Support s;
  s.backend = l.v2 ? "linux-cgroup-v2" : !l.v1.empty() ? "linux-cgroup-v1" : "linux-rlimit";
  s.spawn = true;
  Limits all;
  all.memoryProcess = all.memoryTotal = all.cpuTimeMs = all.handles = 1;
  all.cpuCores = 1;
  all.affinity = {0};
  all.processes = 2;
  all.threads = 128;
  Confinement conf = Confine(Privileges::Restricted, false);
  s.limits = PlanLimits(all, conf, l, false).enforcement;
  for (Enforcement& e : s.limits)
    if (e.limit == "processes") e.mechanism = "seccomp (1) / " + e.mechanism + " (N>1)";
  s.limits.push_back(conf.entry);
  s.limits.push_back(MakeEnforcement("killOnClose", conf.mounts || (Privileged() && !g_namespacesRefused.load()), "pid-namespace+pdeathsig",
                                     "without root or a user namespace no PID namespace can be made: the worker dies with "
                                     "its parent, its own children may not"));
  s.limits.push_back(MakeEnforcement("inheritHandles", true, "fd-whitelist", ""));
  return s;
}

}  // namespace backend
}  // namespace si
