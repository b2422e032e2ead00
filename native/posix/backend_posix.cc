// POSIX (Linux) backend: the orchestration of a spawn (each mechanism lives in its own unit:
// cgroup, confine, identity, child, seccomp, landlock, monitor) and the backend entry points.
#include "../contract.h"
#include "cgroup.h"
#include "cgroup_pool.h"
#include "child.h"
#include "confine.h"
#include "identity.h"
#include "init_image.h"
#include "monitor.h"
#include "notify.h"
#include "seccomp.h"
#include "sys.h"
#include "trash.h"
#include "vault.h"

#include <climits>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace si {
namespace backend {
using namespace posix;

namespace {

struct CloneArgs {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

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
      throw SysError(
          "ERR_INVALID_ARG_VALUE", 0, "getpwuid_r",
          "options.gid is required: uid " + std::to_string(req.uid) + " has no entry in the user database to take a primary group from");
    cp.hasGid = true;
    cp.gid = g;
  }
  // uid / gid 0 is not a sandbox (root's files, /proc/sys, /sys stay writable): only 'inherit'.
  if (conf.restricted && ((cp.hasUid && cp.uid == 0) || (cp.hasGid && cp.gid == 0)))
    throw SysError("ERR_INCOMPATIBLE_OPTION_PAIR", 0, "",
                   std::string("options.") + (cp.hasUid && cp.uid == 0 ? "uid 0" : "gid 0") +
                       " cannot be confined at this privilege level: pass privileges: 'inherit' to run it as root knowingly");
  for (uint32_t g : req.groups)
    if (conf.restricted && g == 0)
      throw SysError("ERR_INCOMPATIBLE_OPTION_PAIR", 0, "",
                     "options.user is in group 0 (root's group), which cannot be confined at this privilege level: pass privileges: "
                     "'inherit' to run it so knowingly");
  // A restricted worker never keeps the launcher's supplementary groups; options.user's are set.
  cp.clearGroups = conf.restricted || cp.hasUid || cp.hasGid;
  if (req.hasGroups) {
    if (req.groups.size() > sizeof(cp.groups) / sizeof(cp.groups[0]))
      throw SysError("ERR_OUT_OF_RANGE", 0, "", "options.user: in more than 64 groups");
    for (uint32_t g : req.groups) cp.groups[cp.ngroups++] = g;
  }
}

// The inodes a tmpfs of `bytes` may hold: one per 4 KiB of it, at least 1024 (ext4 makes one per
// 16 KiB). Without it a tmpfs holds half the machine's pages in inodes whatever its size: each
// worker's private tmpfs could pin gigabytes of unswappable kernel memory in empty files (not
// in its size), and take seconds to tear down.
uint64_t TmpfsInodes(uint64_t bytes) { return std::max<uint64_t>(1024, bytes / 4096); }

// Its private temp directory: a fresh random name made exclusively (mkdtemp), 0700, owned by
// the worker's uid (set on the open directory, never through a path a link could redirect);
// TMPDIR, TEMP and TMP point there (with a private profile, XDG_CACHE_HOME and XDG_CONFIG_HOME
// beneath it). At the worker's end it is moved out of the way before 'exit' and removed in the
// background (trash.h); one left to the caller or to a worker that may outlive this process
// has a name no sweep takes.
void MakeTempDir(Child& child, const ChildPlan& cp, const SpawnRequest& req, std::vector<std::string>& env) {
  const char* tmpdir = getenv("TMPDIR");
  std::string base = tmpdir && *tmpdir == '/' ? tmpdir : "/tmp";
  // Where it is ("//tmp", "/run/../tmp" or a symlink into /tmp as written would not be seen as
  // beneath a private directory, and the worker's TMPDIR would name nothing in its namespace).
  if (char* real = realpath(base.c_str(), nullptr)) {
    base = real;
    free(real);
  }
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  bool kept = req.keepTempDir || !req.killOnClose;
  // Our trash directory there is made and locked before any name of ours appears (trash.h).
  std::string owner = Trash::Get().Owner(base);
  std::string tmpl = base + "/" + (kept ? kKeptPrefix : kTempPrefix) + owner + "-" + std::to_string(child.id) + "-XXXXXX";
  if (mkdtemp(&tmpl[0]) == nullptr) throw Errno("mkdtemp", errno, tmpl);
  child.tempDir = tmpl;
  if (cp.hasUid || cp.hasGid) {
    Fd dir(open(tmpl.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir.valid()) throw Errno("open", errno, tmpl);
    if (fchown(dir.get(), cp.hasUid ? cp.uid : -1, cp.hasGid ? cp.gid : -1) != 0) throw Errno("fchown", errno, tmpl);
  }
  // options.disk: the directory is a tmpfs of that size, owned by the worker (root launchers:
  // PlanSpawn says so otherwise). Its pages are charged to whoever writes them: the worker.
  if (req.limits.disk && Privileged()) {
    char opts[160];
    snprintf(opts, sizeof(opts), "size=%llu,nr_inodes=%llu,mode=0700,uid=%u,gid=%u", static_cast<unsigned long long>(req.limits.disk),
             static_cast<unsigned long long>(TmpfsInodes(req.limits.disk)), cp.hasUid ? cp.uid : geteuid(), cp.hasGid ? cp.gid : getegid());
    if (mount("tmpfs", tmpl.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0) throw Errno("mount", errno, tmpl);
    child.tempDirMounted = true;
  }
  static const char* const kVars[] = {"TMPDIR=", "TEMP=", "TMP=", "XDG_CACHE_HOME=", "XDG_CONFIG_HOME="};
  size_t nvars = req.privateProfile ? 5 : 3;
  env.erase(std::remove_if(env.begin(), env.end(),
                           [&](const std::string& e) {
                             for (size_t i = 0; i < nvars; i++)
                               if (e.rfind(kVars[i], 0) == 0) return true;
                             return false;
                           }),
            env.end());
  for (size_t i = 0; i < 3; i++) env.push_back(kVars[i] + tmpl);
  if (req.privateProfile) {
    env.push_back(std::string(kVars[3]) + tmpl + "/.cache");
    env.push_back(std::string(kVars[4]) + tmpl + "/.config");
  }
  child.keepTempDir = req.keepTempDir;
}

// The size of each private tmpfs (/tmp, /var/tmp, /dev/shm) of a worker without a memory.total.
constexpr uint64_t kPrivateTmpBytes = 256ull << 20;

// Which of landlock::kPrivateDirs a new worker's private tmpfs covers (ChildPlan::privateDirs,
// bit i: the i-th), and where each is on the host (realpath): the directories here now, or
// symlinks to one (/dev/shm -> /run/shm on older systems), whose target the tmpfs is mounted
// on, which the worker's namespace then has private. A path at or beneath such a target (a
// launcher that runs in /run/shm) is as private as one beneath the name (KeepDirs looks at
// both). Never one that resolves to the root: a tmpfs mounted on / is not where a lookup of /
// goes (the process's root is the directory beneath it), and Landlock's write rule for it
// would be the host's whole file system.
struct PrivateDirs {
  unsigned mask = 0;
  std::string name[sizeof(landlock::kPrivateDirs) / sizeof(landlock::kPrivateDirs[0])];
  std::string real[sizeof(landlock::kPrivateDirs) / sizeof(landlock::kPrivateDirs[0])];
};
PrivateDirs PrivateDirsHere() {
  PrivateDirs pd;
  for (unsigned i = 0; i < sizeof(landlock::kPrivateDirs) / sizeof(landlock::kPrivateDirs[0]); i++) {
    const char* dir = landlock::kPrivateDirs[i];
    struct stat st;
    if (lstat(dir, &st) != 0 || !(S_ISDIR(st.st_mode) || (S_ISLNK(st.st_mode) && stat(dir, &st) == 0 && S_ISDIR(st.st_mode)))) continue;
    char* r = realpath(dir, nullptr);
    if (r == nullptr) continue;
    std::string real(r);
    free(r);
    if (real == "/") continue;
    pd.mask |= 1u << i;
    pd.name[i] = dir;
    pd.real[i] = real;
  }
  // One that is where another is, or inside it (/var/tmp -> /tmp, OpenWrt's /var -> /tmp), is
  // covered by that one's tmpfs already: a second cover over the same place would stack on the
  // first and leave the child's later steps nothing to find.
  auto within = [](const std::string& p, const std::string& d) {
    return p == d || (p.size() > d.size() && p.compare(0, d.size(), d) == 0 && p[d.size()] == '/');
  };
  const unsigned n = sizeof(pd.real) / sizeof(pd.real[0]);
  for (unsigned i = 0; i < n; i++)
    for (unsigned j = 0; j < n; j++) {
      if (i == j || (pd.mask & (1u << i)) == 0 || (pd.mask & (1u << j)) == 0) continue;
      // i goes when it lies in j (the first of two at one place stays).
      if (within(pd.real[i], pd.real[j]) && (pd.real[i] != pd.real[j] || j < i)) pd.mask &= ~(1u << i);
    }
  return pd;
}

// What a worker is handed (its tempDir, its executable, its cwd) that its private /tmp,
// /var/tmp, /dev/shm or /run/lock would hide: bound back in at its path, outermost first, each
// once; the executable and the cwd read-only (they are the host's), only the executable itself
// (not its directory's other files).
struct KeepSpec {
  std::string path;
  bool file, readOnly;
  std::string under;     // the private directory it lies beneath (its name or its host path)
  bool checkId = false;  // its cwd: the child checks that the path still names this directory
  dev_t dev = 0;
  ino_t ino = 0;
};

// The cwd is decided on, and bound at, the directory it names on the host: the given one
// (relative: to this process's cwd, as the kernel resolves it), else this process's own cwd,
// which the worker would inherit. It is opened once, here, and its path read back from the fd
// (symlinks, ".", ".." and extra slashes resolved); the child binds it only if that path still
// names the same directory (a symlink swapped into it since fails the spawn). A given cwd is
// always handed to the worker as that absolute path: a relative one resolves in its namespace
// against the cwd it inherits, which beneath a private directory is the host's directory under
// the new tmpfs. At or beneath a private directory, the worker starts there by that path too
// (no cwd given, a launcher in /tmp: its own /tmp); beneath one, the directory is bound back in,
// read-only. A cwd that cannot be opened here fails the spawn (ENOENT, ENOTDIR, ENAMETOOLONG,
// ...), as child_process's chdir would. The executable is taken as written (a file bound at its
// spelling shows that file alone; its path has been made absolute by the JS layer).
std::vector<KeepSpec> KeepDirs(const SpawnRequest& req, const Child& child, const PrivateDirs& pd, std::string* cwd, bool* hasCwd) {
  auto beneath = [](const std::string& p, const std::string& d) {
    return p.size() > d.size() && p.compare(0, d.size(), d) == 0 && p[d.size()] == '/';
  };
  // The covered private directory `p` lies beneath (or is, orAt), by its name or its host path;
  // null: none.
  auto coveredBy = [&](const std::string& p, bool orAt) -> const std::string* {
    for (unsigned i = 0; i < sizeof(pd.name) / sizeof(pd.name[0]); i++) {
      if ((pd.mask & (1u << i)) == 0) continue;
      for (const std::string* d : {&pd.name[i], &pd.real[i]})
        if (beneath(p, *d) || (orAt && p == *d)) return d;
    }
    return nullptr;
  };
  auto hidden = [&](const std::string& p, bool orAt) { return coveredBy(p, orAt) != nullptr; };
  std::string hostCwd;
  struct stat cwdId;
  memset(&cwdId, 0, sizeof(cwdId));
  // 0 (hostCwd, cwdId set) or an errno.
  auto resolve = [&](const char* path) {
    Fd dir(open(path, O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!dir.valid()) return errno;
    char target[PATH_MAX + 1];
    std::string self = "/proc/self/fd/" + std::to_string(dir.get());
    ssize_t n = readlink(self.c_str(), target, PATH_MAX);
    if (n < 0) return errno;
    // Outside this process's root, or removed (a deleted directory has no links left).
    if (n == 0 || target[0] != '/' || fstat(dir.get(), &cwdId) != 0 || cwdId.st_nlink == 0) return ENOENT;
    hostCwd.assign(target, static_cast<size_t>(n));
    return 0;
  };
  std::string given = *hasCwd ? *cwd : std::string();
  if (!given.empty()) {
    int e = resolve(given.c_str());
    if (e != 0) throw Errno("chdir", e, "options.cwd " + given);
  } else {
    char here[PATH_MAX];
    if (getcwd(here, sizeof(here)) == nullptr || here[0] != '/')
      throw Errno("getcwd", errno ? errno : ENOENT, "the launcher's cwd, which its worker would start in");
    // A path getcwd gave has no symlink and no "..": nothing to look at unless it is at or
    // beneath a private directory (the default spawn's case: one system call).
    if (hidden(here, true)) {
      int e = resolve(here);
      if (e != 0) throw Errno("chdir", e, std::string("the launcher's cwd ") + here);
    }
  }
  // The executable as written, unless that is beneath a private directory: then where its
  // directory is on the host (the same file as a kept cwd's, whichever way each is spelled, is
  // then seen inside it).
  std::string file = req.file;
  if (!file.empty() && file[0] == '/' && hidden(file, false)) {
    size_t slash = file.rfind('/');
    std::string dir = slash == 0 ? std::string("/") : file.substr(0, slash);
    if (char* real = realpath(dir.c_str(), nullptr)) {
      file = std::string(real) + (strcmp(real, "/") == 0 ? "" : "/") + file.substr(slash + 1);
      free(real);
    }
  }
  std::vector<KeepSpec> all;
  if (!child.tempDir.empty()) all.push_back({child.tempDir, false, false, "", false, 0, 0});
  if (!file.empty() && file[0] == '/') all.push_back({file, true, true, "", false, 0, 0});
  if (!hostCwd.empty()) all.push_back({hostCwd, false, true, "", true, cwdId.st_dev, cwdId.st_ino});
  std::stable_sort(all.begin(), all.end(), [](const KeepSpec& a, const KeepSpec& b) { return a.path.size() < b.path.size(); });
  std::vector<KeepSpec> keep;
  for (const KeepSpec& k : all) {
    bool covered = false;
    for (const KeepSpec& c : keep) covered = covered || c.path == k.path || (!c.file && beneath(k.path, c.path));
    const std::string* under = coveredBy(k.path, false);
    if (under != nullptr && !covered && keep.size() < static_cast<size_t>(kMaxKeepDirs)) {
      keep.push_back(k);
      keep.back().under = *under;
    }
  }
  if (!hostCwd.empty() && (!given.empty() || hidden(hostCwd, true))) {
    *cwd = hostCwd;
    *hasCwd = true;
  }
  return keep;
}

// What the child (the namespace's first process and its worker) reads through the plan's
// pointers until the worker's exec, made before clone (the child may not allocate): argv and
// envp as its execve takes them and the strings they point into, its path and cwd, the paths of
// its Landlock rules and private /tmp, its seccomp programs, the worker's first stack. Owned
// here rather than by the spawning call's frame, so that a spawn can return before that exec
// (FirstProcess keeps it until the first process's own exec or end).
struct SpawnMemory {
  std::vector<std::string> args, env;
  std::vector<char*> argv, envp;
  std::string file, cwd;
  bool hasCwd = false;
  std::string tempDir;                       // its Landlock rule's path
  std::vector<std::string> fsRead, fsWrite;  // options.filesystem's rules' paths
  std::vector<KeepSpec> keepDirs;
  PrivateDirs privateDirs;  // what its private tmpfs covers (PrivateDirsHere)
  std::vector<sock_filter> filter, initFilter;
  std::unique_ptr<ChildStack> workerStack;
  void Point(ChildPlan& cp) {
    for (auto& a : args) argv.push_back(&a[0]);
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(&e[0]);
    envp.push_back(nullptr);
    cp.path = file.c_str();
    cp.argv = argv.data();
    cp.envp = envp.data();
    cp.cwd = hasCwd ? cwd.c_str() : nullptr;
  }
};

// The devices every Landlock-confined worker may write (landlock::kWritableDevices), opened
// (O_PATH) once for the life of this process: a rule names the inode, and each child would
// otherwise look the same six paths up again (-1: missing here, the child tries the path).
const std::vector<int>& DeviceFds() {
  static const std::vector<int> fds = [] {
    std::vector<int> v;
    // Never one of the standard fds, should this process lack one.
    for (const char* dev : landlock::kWritableDevices) v.push_back(KeepAtLeast(open(dev, O_PATH | O_CLOEXEC), 3));
    return v;
  }();
  return fds;
}

// Where a Landlock-confined worker may write (and, with options.filesystem, read): its
// tempDir, its private /tmp, /var/tmp and /dev/shm, a few devices; with filesystem also /proc,
// its executable and the caller's lists.
void PlanLandlock(const SpawnRequest& req, const Confinement& conf, const Child& child, const SpawnMemory& mem, ChildPlan& cp) {
  int abi = req.hasFilesystem ? LandlockAbi() : conf.landlockAbi;
  cp.landlockAbi = abi;
  if (abi <= 0) return;
  using namespace landlock;
  uint64_t all = WriteRights(abi) | (req.hasFilesystem ? kReadRights : 0);
  cp.landlockHandled = all;
  cp.landlockScoped = conf.restricted;
  auto add = [&](const char* path, uint64_t rights, bool hold = false, int fd = -1) {
    if (cp.nlandlockRules >= kMaxLandlockRules)
      throw SysError("ERR_OUT_OF_RANGE", 0, "", "options.filesystem: at most " + std::to_string(kMaxLandlockRules - 16) + " paths in all");
    cp.landlockRules[cp.nlandlockRules++] = {path, rights, hold, fd};
  };
  if (!mem.tempDir.empty()) add(mem.tempDir.c_str(), all);
  // Only those the private tmpfs covers: a rule on one it does not (a symlink's target, say)
  // would let the worker write the host's directory.
  if (cp.privateTmp)
    for (unsigned i = 0; i < sizeof(kPrivateDirs) / sizeof(kPrivateDirs[0]); i++)
      if (cp.privateDirs & (1u << i)) add(kPrivateDirs[i], all);
  for (size_t i = 0; i < DeviceFds().size(); i++) add(kWritableDevices[i], FileWriteRights(abi) | kReadFile, false, DeviceFds()[i]);
  if (!req.hasFilesystem) return;
  add("/proc", kReadFile | kReadDir);
  add(mem.file.c_str(), kExecute | kReadFile, true);
  for (const std::string& p : mem.fsRead) add(p.c_str(), kReadRights);
  for (const std::string& p : mem.fsWrite) add(p.c_str(), all);
}

// TMPDIR, TEMP and TMP, where the caller's environment sets them, point at the worker's own
// /tmp (a host directory there would be hidden or unwritable to it).
void PointTempAtPrivateTmp(std::vector<std::string>& env) {
  for (std::string& e : env)
    for (const char* var : {"TMPDIR=", "TEMP=", "TMP="})
      if (e.rfind(var, 0) == 0) e = std::string(var) + "/tmp";
}

// /proc/sys/kernel/cap_last_cap, read once (63: every bit, when it cannot be read).
int LastCap() {
  static const int v = [] {
    std::string s;
    int n = ReadFile("/proc/sys/kernel/cap_last_cap", &s) ? atoi(s.c_str()) : 63;
    return n > 0 && n <= 63 ? n : 63;
  }();
  return v;
}

// What the child needs to confine itself: namespaces, read-only cgroups, Landlock, seccomp.
void PlanConfinement(const SpawnRequest& req, const Confinement& conf, Child& child, SpawnMemory& mem, ChildPlan& cp) {
  const std::vector<KeepSpec>& keepDirs = mem.keepDirs;
  std::vector<sock_filter>& filter = mem.filter;
  std::vector<sock_filter>& initFilter = mem.initFilter;
  cp.dropPrivileges = conf.restricted;
  cp.lastCap = LastCap();
  cp.userns = conf.userns;
  if (conf.userns) {
    snprintf(cp.uidMap, sizeof(cp.uidMap), "%u %u 1", geteuid(), geteuid());
    snprintf(cp.gidMap, sizeof(cp.gidMap), "%u %u 1", getegid(), getegid());
  }
  cp.mounts = conf.mounts;
  if (conf.mounts) {
    const std::vector<std::string>& ro = CgroupMounts();
    if (ro.size() > static_cast<size_t>(kMaxRoMounts))  // never leave one writable
      throw SysError(
          "ENOTSUP", 0, "",
          std::to_string(ro.size()) + " cgroup mount trees: a worker can make at most " + std::to_string(kMaxRoMounts) + " read-only");
    for (const std::string& m : ro) cp.roMounts[cp.nroMounts++] = m.c_str();
  }
  // Private /tmp, /var/tmp and /dev/shm for every confined worker with a mount namespace: the
  // size of its memory budget (their pages are charged to it) or kPrivateTmpBytes each.
  cp.privateTmp = conf.mounts;
  cp.privateDirs = 0;
  if (cp.privateTmp) {
    for (const KeepSpec& k : keepDirs)
      cp.keepDirs[cp.nkeepDirs++] = {k.path.c_str(), k.under.c_str(), k.file, k.readOnly, k.checkId, k.dev, k.ino};
    cp.privateDirs = mem.privateDirs.mask;
  }
  child.privateDirs = cp.privateDirs;
  uint64_t tmpBytes = req.limits.disk ? req.limits.disk : req.limits.memoryTotal ? req.limits.memoryTotal : kPrivateTmpBytes;
  snprintf(cp.tmpfsOptions, sizeof(cp.tmpfsOptions), "size=%llu,nr_inodes=%llu,mode=1777", static_cast<unsigned long long>(tmpBytes),
           static_cast<unsigned long long>(TmpfsInodes(tmpBytes)));
  cp.loopbackUp = child.netns;
  PlanLandlock(req, conf, child, mem, cp);
  FilterSpec spec;
  spec.noChildren = req.limits.processes == 1;
  spec.restricted = conf.restricted;
  spec.low = req.privileges == Privileges::Low;
  spec.noUnixSockets = child.netns;
  // processes: N > 1 counted by the launcher; processes that exec placed in memory cgroups of
  // their own (memory.process) -- unless the worker can have no child.
  // Without a cgroup, its PID namespace is counted (NamespaceProcesses).
  spec.notifyChildren = req.limits.processes > 1 && (ExactProcesses(Layout()) || (NamespaceProcesses(conf) && child.pidns));
  spec.notifyExec = !child.cg.leaves.empty() && req.limits.processes != 1 && UserNotify();
  spec.notifyFailure = req.limits.memoryProcess && child.cg.leaves.empty() && UserNotify();
  if (spec.notifyChildren && child.cg.Empty() && !child.pidns)
    throw SysError("ENOTSUP", 0, "", "processes: the worker has no cgroup or PID namespace to count its tree in");
  child.notifies = Notifies(spec);
  cp.notifyFd = -1;
  // Under an init: the level's program is installed once, by the namespace's first process,
  // before it starts the worker (which inherits it; the init needs nothing else: it never
  // forks or execs again); the worker adds only the limits' rules. Each program installed costs
  // the kernel an emulation of it for every system call number (its action cache) and a JIT.
  // Limits that only refuse or ask about new processes go into that one program too
  // (startsWorker: the worker's own start passes with a key), with its listener, sent by the
  // first process then (ChildPlan::initNotifies): the worker installs none.
  FilterSpec own = spec;
  cp.initNotifies = false;
  if (child.init) {
    FilterSpec level;
    level.restricted = spec.restricted;
    level.low = spec.low;
    level.noUnixSockets = spec.noUnixSockets;
    own.restricted = own.low = own.noUnixSockets = false;
    uint64_t key = (spec.noChildren || spec.notifyChildren) && !spec.notifyExec && !spec.notifyFailure ? NewCloneKey() : 0;
    if (key != 0) {
      level = spec;
      level.startsWorker = true;
      own = FilterSpec();
      cp.initNotifies = spec.notifyChildren;
      cp.workerCloneKey = key;
    }
    initFilter = BuildFilter(level);
    if (key != 0) PatchCloneKey(initFilter, key);
  }
  filter = BuildFilter(own);
  if (own.notifyExec) PatchExec(filter, cp.path, cp.argv, cp.envp);
  cp.hasFilter = !filter.empty();
  cp.filter.len = static_cast<unsigned short>(filter.size());
  cp.filter.filter = filter.data();
  cp.hasInitFilter = !initFilter.empty();
  cp.initFilter.len = static_cast<unsigned short>(initFilter.size());
  cp.initFilter.filter = initFilter.data();
}

// The child's own stack while it shares this process's memory (until its exec).
constexpr size_t kChildStackBytes = 256 * 1024;

// What the namespace's first process reads until its exec when it shares this process's memory
// (its copy of the plan, its stack, the spawn's memory), and the launcher's ends of its pipes.
// Kept until it has exec'd or ended: by the spawning call, or, once the worker has exec'd
// (ChildPlan::announceWorker) or once it is cloned (a spawn that returns before the worker's
// exec: `start`), by the thread that cloned it, until the error pipe's end (AwaitInit).
struct FirstProcess {
  FirstProcess(const ChildPlan& p, bool needStack) : plan(p), stack(kChildStackBytes, needStack) {}
  // Every copy of the error pipe's write end is closed once the init is up (it closes its fd 1
  // after its byte) or the first process has ended -- or later, when another first process
  // cloned meanwhile (by another JS thread's cloner) holds a copy until its own exec: the first
  // process's end (its pidfd; by then its namespace's other processes are gone too) ends the
  // wait as well. With `start`, the first message is the verdict (the worker's failure, or its
  // first process's before it started the worker, or kWorkerExecd), published (Settle) only
  // then: until its exec the first process runs on this thread's per-thread state (errno),
  // which posting an event could write. A failure reported after the first message (its id
  // change, its exec of the init) ends its worker with it, reported as the worker's exit
  // (SIGKILL); what it said goes to NODE_DEBUG's stderr.
  // `block` false: returns false at once where it would wait (what was read so far is kept, and
  // the next call goes on from there); true once done.
  bool AwaitInit(bool block = true) {
    if (!begun_) {
      begun_ = true;
      firstMsg_ = start != nullptr;
    }
    for (;;) {
      struct pollfd fds[2] = {{errRead.get(), POLLIN, 0}, {ended_ ? -1 : pidfd.get(), POLLIN, 0}};
      int ready = poll(fds, pidfd.valid() ? 2 : 1, ended_ || !block ? 0 : -1);
      if (ready < 0 && errno == EINTR) continue;
      if (ready < 0 || (ready == 0 && ended_)) {  // ended, and nothing more to read now
        stackFree_ = ended_;
        break;
      }
      if (ready == 0) return false;            // not blocking, and nothing yet
      if (fds[1].revents != 0) ended_ = true;  // drain what it wrote, without waiting for other holders of the pipe
      if (fds[0].revents == 0) continue;
      ssize_t n = read(errRead.get(), reinterpret_cast<char*>(msg_) + got_, sizeof(msg_) - got_);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {  // the pipe's end: every holder of its write end has exec'd or ended
        stackFree_ = n == 0 || ended_;
        workerFree_ = n == 0;
        break;
      }
      // The init's byte, where a message would begin (a step's first byte is 1-16, kWorkerExecd's
      // 0xff): it has exec'd and is up. Done, whoever else still holds a copy of the pipe (a first
      // process cloned meanwhile by another JS thread's cloner keeps one until its own exec).
      if (got_ == 0 && !firstMsg_ && reinterpret_cast<const char*>(msg_)[0] == kInitUp) {
        stackFree_ = workerFree_ = true;
        break;
      }
      got_ = got_ + static_cast<size_t>(n) == sizeof(msg_) ? 0 : got_ + static_cast<size_t>(n);
      if (got_ != 0) continue;
      if (firstMsg_ && start) {
        step_ = msg_[0] > 0 ? msg_[0] : 0;
        err_ = msg_[0] > 0 ? msg_[1] : 0;
      } else if (msg_[0] > 0 && DebugEnabled()) {
        fprintf(stderr,
                "SPAWN-ISOLATED %d: a worker's first process failed after its spawn returned (step %d: %s); the worker ends with it\n",
                getpid(), msg_[0], strerror(msg_[1]));
      }
      firstMsg_ = false;
    }
    // No word at all: killed before it started the worker, which its exit says.
    if (start) start->Settle(step_, err_, pidfd.get());
    if (stackFree_) ChildDone(workerFree_);
    return true;
  }
  // The first process has exec'd or ended: its stack may serve the next spawn, and its worker's
  // (a vfork child) too when `worker` says that the worker has exec'd or ended as well.
  void ChildDone(bool worker) {
    stack.Done();
    if (worker && memory && memory->workerStack) memory->workerStack->Done();
  }
  ChildPlan plan;
  ChildStack stack;
  // AwaitInit's progress: what it has read of a message, and what it knows. Without `start`, the
  // spawn's caller has read the first message (kWorkerExecd): the next byte may be the init's,
  // which ends the wait at once (not at the pipe's end, a wake-up later). Known at every way out
  // but an error: it has exec'd or ended (its stack is free), and whether its worker has too (the
  // pipe's end or the init's byte say so; its own end does not: a first process killed in its
  // vfork leaves a worker that may still run on its stack).
  int msg_[2] = {0, 0};
  size_t got_ = 0;
  bool begun_ = false, firstMsg_ = false, ended_ = false, stackFree_ = false, workerFree_ = false;
  int step_ = 0, err_ = 0;
  // What the plan's pointers point to (the worker's image, filters, paths, its first stack).
  std::unique_ptr<SpawnMemory> memory;
  // The launcher's end of the alive pipe (the first process checks it once more, after its
  // ids change), the error pipe's read end, and a pidfd of the first process.
  Fd aliveWrite, errRead, pidfd;
  std::shared_ptr<StartVerdict> start;  // the spawn returned before the worker's exec
};

// A thread whose capability bounding set is empty, where the first process of a confined worker
// is cloned: a child starts with its parent thread's credentials, so it has nothing left to drop
// (DropBounding checks each capability and drops only what remains: 41 credential changes, and
// as many RCU frees, cost ~60 µs of CPU per spawn, measured; a hand-off to this thread costs a
// wake-up). Its effective capabilities are the process's; the bounding set only limits what an
// exec gains, and it never execs.
// A few per JS thread that spawns (thread_local: the first made at its first confined spawn,
// another only when each is still following a first process, at most kMaxCloners; all ended
// with the JS thread), so that what held for children of the spawning thread still holds:
//  - a child's parent-death signal follows the thread that cloned it, and that thread ends when
//    the JS thread does (a worker_thread's killOnClose workers die with it, as before);
//  - a child that shares this process's memory runs on its parent thread's per-thread libc state
//    (errno) until its exec (ChildMain): a JS thread spawns one worker at a time, and a cloner
//    clones nothing more until the last child it cloned has exec'd or ended (the spawn waits
//    for that exec, or hands the cloner the wait: Follow), so no two such children, nor another
//    clone, ever share a thread's.
class BoundedCloner {
 public:
  // A first process follows in ~0.1 ms; under a burst of spawns, or one stopped from outside
  // (SIGSTOP) before its exec, each may still be following at the next spawn.
  static constexpr size_t kMaxCloners = 4;
  // How long the JS thread's end waits for a followed first process to exec its init.
  static constexpr int kFollowGraceMs = 1000;
  // One of this JS thread's cloners that follows no first process (a new one while there are
  // fewer than kMaxCloners), or null: each is following, and the caller clones on its own
  // thread, as without a cloner (the child drops the bounding set itself).
  static BoundedCloner* Idle() {
    Crew& crew = Mine();
    CheckAll();
    for (auto& c : crew.all)
      if (!c->Following()) return c.get();
    if (crew.all.size() >= kMaxCloners) return nullptr;
    crew.all.emplace_back(new BoundedCloner());
    return crew.all.back().get();
  }

  // Lets go each first process of this JS thread's cloners that was deferred (Defer) and has
  // exec'd its init since (or hands its wait to its cloner's thread): at its next spawn, and
  // when it lets a worker go (Release), so that nothing of a spawn is kept past its worker.
  static void CheckAll() {
    for (auto& c : Mine().all) c->Check();
  }

  // Starts `f` on the thread (runs it here when the thread could not be made); Finish() waits
  // for it and gives its result. `f` must outlive Finish().
  void Start(const std::function<long()>& f) {
    if (!started_) {
      result_ = f();
      return;
    }
    std::unique_lock<std::mutex> lk(mu_);
    idle_.wait(lk, [&] { return !following_; });  // its last child has exec'd or ended
    job_ = &f;
    done_ = false;
    work_.notify_one();
  }
  // The thread that runs the jobs (false: Start ran it on the caller's).
  bool Threaded() const { return started_; }
  bool Following() {
    std::lock_guard<std::mutex> lk(mu_);
    return following_;
  }
  // After Finish, for a spawn that waited for its worker's exec: the first process goes on to
  // exec the init on its own, by the time this JS thread spawns again (~0.1 ms; a sequential
  // spawn's worker runs in between), so no thread waits for it: the next Idle() looks (Check),
  // and hands the thread the wait (Follow) only if it has not. Meanwhile the cloner is not idle.
  void Defer(std::unique_ptr<FirstProcess> first) {
    std::lock_guard<std::mutex> lk(mu_);
    deferred_ = std::move(first);
    following_ = true;
  }
  // After Finish: the thread waits until the first process has exec'd or ended, then frees
  // what it read; the next Start waits for that.
  void Follow(std::unique_ptr<FirstProcess> first) {
    std::lock_guard<std::mutex> lk(mu_);
    followPidfd_ = first->pidfd.get();
    follow_ = std::move(first);
    following_ = true;
    work_.notify_one();
  }
  long Finish() {
    if (!started_) return result_;
    std::unique_lock<std::mutex> lk(mu_);
    finished_.wait(lk, [&] { return done_; });
    job_ = nullptr;
    return result_;
  }

  ~BoundedCloner() {
    if (!started_) return;
    Stop();
    End(std::chrono::steady_clock::now() + std::chrono::milliseconds(kFollowGraceMs));
  }

 private:
  struct Crew;
  static Crew& Mine() {
    thread_local Crew crew;
    return crew;
  }
  // A JS thread's cloners, ended together (Stop each, then End each by one deadline).
  struct Crew {
    std::vector<std::unique_ptr<BoundedCloner>> all;
    ~Crew() {
      for (auto& c : all)
        if (c->started_) c->Stop();
      auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kFollowGraceMs);
      for (auto& c : all)
        if (c->started_) c->End(deadline);
      all.clear();  // joined: each destructor finds its thread gone
    }
  };

  // A deferred first process (Defer) that has exec'd its init, or ended, is let go here; one
  // that has not yet is handed to the thread to wait for (Follow).
  void Check() {
    std::unique_ptr<FirstProcess> first;
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (!deferred_) return;
      first = std::move(deferred_);
    }
    if (first->AwaitInit(false)) {
      first.reset();
      std::lock_guard<std::mutex> lk(mu_);
      following_ = false;
      return;
    }
    std::lock_guard<std::mutex> lk(mu_);
    followPidfd_ = first->pidfd.get();
    follow_ = std::move(first);
    work_.notify_one();
  }

  // Its thread is to end. A first process stopped before its exec would keep it (and this JS
  // thread's end) waiting: it goes on.
  void Stop() {
    std::lock_guard<std::mutex> lk(mu_);
    if (deferred_) {  // the thread waits for it, as for one followed
      followPidfd_ = deferred_->pidfd.get();
      follow_ = std::move(deferred_);
    }
    stop_ = true;
    if (followPidfd_ >= 0) syscall(SYS_pidfd_send_signal, followPidfd_, SIGCONT, nullptr, 0);
    work_.notify_one();
  }
  // A first process that still has not exec'd its init by `deadline` (held back, or starved by
  // its own worker, which shares its uid by then) is killed, and its worker with it: the end of
  // a JS thread (or of the process) waits for nothing a worker controls. Then the thread is joined.
  void End(std::chrono::steady_clock::time_point deadline) {
    {
      std::unique_lock<std::mutex> lk(mu_);
      while (following_ && std::chrono::steady_clock::now() < deadline) idle_.WaitForMs(lk, 50);
      if (following_ && followPidfd_ >= 0) syscall(SYS_pidfd_send_signal, followPidfd_, SIGKILL, nullptr, 0);
    }
    pthread_join(thread_, nullptr);
    started_ = false;
  }

  BoundedCloner() {
    SignalsBlocked blocked;  // inherited by the thread, and by every child it clones
    started_ = pthread_create(&thread_, nullptr, &Main, this) == 0;
  }
  BoundedCloner(const BoundedCloner&) = delete;
  BoundedCloner& operator=(const BoundedCloner&) = delete;

  static void* Main(void* arg) {
    auto* self = static_cast<BoundedCloner*>(arg);
    for (int cap = 0; cap <= LastCap(); cap++) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
    std::unique_lock<std::mutex> lk(self->mu_);
    for (;;) {
      self->work_.wait(lk, [&] { return self->stop_ || self->follow_ || (self->job_ != nullptr && !self->done_); });
      if (self->follow_) {
        std::unique_ptr<FirstProcess> first = std::move(self->follow_);
        lk.unlock();
        first->AwaitInit();
        lk.lock();
        self->followPidfd_ = -1;
        lk.unlock();
        first.reset();
        lk.lock();
        self->following_ = false;
        self->idle_.notify_all();
        continue;
      }
      if (self->stop_) return nullptr;
      self->result_ = (*self->job_)();
      self->done_ = true;
      self->finished_.notify_one();
    }
  }

  std::mutex mu_;
  CondVar work_, finished_, idle_;
  const std::function<long()>* job_ = nullptr;
  std::unique_ptr<FirstProcess> follow_, deferred_;
  bool done_ = false, stop_ = false, following_ = false;
  int followPidfd_ = -1;  // the followed first process's (FirstProcess::pidfd), under mu_
  long result_ = 0;
  bool started_ = false;
  pthread_t thread_;
};

// The child runs ChildMain in its namespaces. It shares this process's memory until it execs
// (CLONE_VM | CLONE_VFORK, as posix_spawn does): no page tables copied, nothing to unmap at its
// exec, and this thread resumes once it has exec'd or failed -- or, with `vfork` false (the relay:
// ChildPlan::relayFd), at once, to wait in a read with every signal blocked; its stack is the
// caller's then, kept until the child has exec'd or ended. A v2 cgroup is entered at birth
// instead (CLONE_INTO_CGROUP, which only clone3 takes: a fork); so is a child that must not
// share this memory (`ownMemory`: see ChildPlan::memoryCgroupFd). Returns the pid (and *pidfd),
// or -errno.
long CloneChild(const ChildPlan& cp, uint64_t nsFlags, const Cgroup& cg, bool ownMemory, bool vfork, ChildStack& stack, int* pidfd) {
  SignalsBlocked blocked;
  long pid;
  bool intoCgroup = cg.v2 && cg.v2dir.valid();
  if (intoCgroup || ownMemory) {
    CloneArgs ca;
    memset(&ca, 0, sizeof(ca));
    ca.flags = CLONE_PIDFD | (intoCgroup ? CLONE_INTO_CGROUP : 0) | nsFlags;
    ca.pidfd = reinterpret_cast<uint64_t>(pidfd);
    ca.exit_signal = SIGCHLD;
    ca.cgroup = static_cast<uint64_t>(cg.v2dir.get());
    pid = syscall(SYS_clone3, &ca, sizeof(ca));
    if (pid == 0) ChildMain(cp);
    return pid < 0 ? -errno : pid;
  }
  if (!stack.ok()) return -errno;
  int flags = CLONE_VM | (vfork ? CLONE_VFORK : 0) | CLONE_PIDFD | static_cast<int>(nsFlags) | SIGCHLD;
  pid = clone(ChildEntry, stack.top(), flags, const_cast<ChildPlan*>(&cp), pidfd);
  return pid < 0 ? -errno : pid;
}

// fs.suid_dumpable (0: a process that changes its ids is not dumpable), read once.
int SuidDumpable() {
  static const int v = [] {
    std::string s;
    return ReadFile("/proc/sys/fs/suid_dumpable", &s) ? atoi(s.c_str()) : -1;
  }();
  return v;
}

// The child's report of a failed step (or nothing, once it has exec'd).
struct ChildFailure {
  int step = 0, err = 0;
  bool workerExecd = false;  // the first process said so (its init is not up yet)
};

// Waits until the child has exec'd (every copy of the error pipe's write end is closed) or says
// why not. With the relay (ChildPlan::relayFd), the init holds one copy as its fd 1 and writes
// its byte there first, then closes it: a report, if any, came before (a step reports before
// the init runs), and the pipe's end without that byte is an init that never came up (it could
// not enter the memory cgroup, or was killed). With ChildPlan::announceWorker, the first
// process's message that the worker has exec'd ends the wait first (a report of the worker's
// failure comes before it); the rest, and `aliveWrite`, are then the caller's to hand on. The
// caller waits for a child that failed (waitid), once it knows the clone's result.
ChildFailure AwaitExec(Fd& aliveWrite, Fd& errRead, bool relay) {
  int msg[2] = {0, 0};
  ssize_t n;
  do n = read(errRead.get(), msg, sizeof(msg));
  while (n < 0 && errno == EINTR);
  ChildFailure f;
  if (n == static_cast<ssize_t>(sizeof(msg)) && msg[0] == kWorkerExecd) {
    f.workerExecd = true;  // the first process is on its way to the init (ChildPlan::announceWorker)
    return f;
  }
  bool up = n == 1 && reinterpret_cast<const char*>(msg)[0] == kInitUp;
  if (up) {
    do n = read(errRead.get(), msg, sizeof(msg));
    while (n < 0 && errno == EINTR);
  }
  aliveWrite.reset();
  if (n == static_cast<ssize_t>(sizeof(msg))) {
    f.step = msg[0];
    f.err = msg[1];
  } else if (relay && !up) {
    f.step = kStepInit;
    f.err = EPROTO;
  }
  return f;
}

// What the error of a failed step says, and looks at: kept by a spawn that returns before its
// worker's exec, for the monitor to make that error once the failure is known.
struct FailureContext {
  std::string file, cwd;
  bool hasCwd = false, hasFilesystem = false, transientId = false;
  uint64_t memoryProcess = 0, memoryTotal = 0;
  size_t argBytes = 0;  // its arguments' and environment's
  uid_t uid = 0;
};

FailureContext FailureContextOf(const SpawnRequest& req, const ChildPlan& cp, const Confinement& conf) {
  FailureContext c;
  c.file = req.file;
  c.hasCwd = cp.cwd != nullptr;
  if (c.hasCwd) c.cwd = cp.cwd;
  c.hasFilesystem = req.hasFilesystem;
  c.transientId = conf.transientId;
  c.memoryProcess = req.limits.memoryProcess;
  c.memoryTotal = req.limits.memoryTotal;
  for (const std::string& a : req.args) c.argBytes += a.size() + 1;
  for (const std::string& v : req.env) c.argBytes += v.size() + 1;
  c.uid = cp.uid;
  return c;
}

SysError ChildError(const FailureContext& ctx, ChildFailure f) {
  // A memory limit below what an exec needs (its arguments and environment, its first page
  // tables and mappings): the limit, not the worker, is the problem. The kernel says E2BIG
  // when it cannot charge the pages it copies the arguments to: with arguments far below what
  // it ever refuses as too long (128 KiB is one string's maximum), that is the limit too.
  bool exec = f.step == kStepExec || f.step == kStepInit;
  bool memory = (ctx.memoryProcess || ctx.memoryTotal) && exec && (f.err == ENOMEM || (f.err == E2BIG && ctx.argBytes < (128u << 10)));
  if (memory) f.err = ENOMEM;
  SysError e = Errno(std::string("spawn ") + ctx.file, f.err);
  e.message = "spawn " + ctx.file + " " + ErrnoCode(f.err) + ": " + StepName(f.step) + " failed: " + strerror(f.err);
  // The hint only where a uid's rights can be why: an executable file (some x bit) or a directory
  // as cwd; not for a file no one may run (mode 644) or a directory as the executable.
  struct stat st;
  const char* target = f.step == kStepExec ? ctx.file.c_str() : ctx.hasCwd ? ctx.cwd.c_str() : nullptr;
  bool uidMatters = target != nullptr && stat(target, &st) == 0 &&
                    (f.step == kStepExec ? S_ISREG(st.st_mode) && (st.st_mode & 0111) != 0 : S_ISDIR(st.st_mode));
  if (memory)
    e.message += std::string(" (options.memory") + (ctx.memoryProcess ? ".process" : "") + " = " +
                 std::to_string(ctx.memoryProcess ? ctx.memoryProcess : ctx.memoryTotal) + " bytes is too small to start it)";
  // Under options.filesystem an executable everyone may run is refused by Landlock: what the
  // exec opens besides the file itself (a dynamic loader, an interpreter) is not listed.
  bool othersRun = f.step == kStepExec && uidMatters && (st.st_mode & 0005) == 0005;
  if (ctx.hasFilesystem && f.err == EACCES && othersRun)
    e.message +=
        " (options.filesystem: the worker reads only what it lists; a dynamically linked program also needs its "
        "loader and libraries, e.g. read: ['/lib', '/lib64', '/usr/lib'], and a script its interpreter)";
  else if (ctx.transientId && f.err == EACCES && (f.step == kStepExec || f.step == kStepCwd) && uidMatters)
    e.message += " (a restricted worker of a root launcher runs as its own uid " + std::to_string(ctx.uid) +
                 ": its executable and cwd must be readable by others; or pass options.uid, or privileges: 'inherit')";
  return e;
}

// network, filesystem and disk: what this host and launcher can give the worker. Strict mode
// refuses what they cannot (PlanSpawn's caller).
void PlanWorld(const SpawnRequest& req, const Confinement& conf, Child& child, std::vector<Enforcement>& out) {
  if (req.networkNone) {
    // A network namespace takes CAP_SYS_ADMIN: root, or a user namespace of its own.
    child.netns = (Privileged() || conf.userns) && !NamespacesRefused();
    out.push_back(MakeEnforcement("network", child.netns, "net-namespace",
                                  NamespacesRefused() ? "this host refuses new namespaces"
                                                      : "a non-root launcher makes a network namespace only inside the user namespace of "
                                                        "a confined worker: use privileges 'restricted' or 'low'"));
  }
  if (req.hasFilesystem)
    out.push_back(MakeEnforcement("filesystem", LandlockAbi() > 0, "landlock",
                                  "Landlock is not available (Linux 5.13+ with the landlock LSM enabled)"));
  if (req.limits.disk) {
    // A budget for all it writes only holds where it writes nothing but its own places: the
    // private tmpfs (sized), a tempDir (sized: a tmpfs a root launcher mounts), no host
    // directory (Landlock, no filesystem.write list). Any one file: RLIMIT_FSIZE.
    bool confined = (conf.landlockAbi > 0 || req.hasFilesystem) && LandlockAbi() > 0 && req.fsWrite.empty();
    bool implicitTemp = conf.landlockAbi > 0 && !conf.mounts;
    bool sizedTemp = !(req.tempDir || implicitTemp) || Privileged();
    std::string why = !confined ? "only a worker whose writes are confined to its own places can have a total budget: use privileges "
                                  "'restricted' or 'low' (with Landlock) and no filesystem.write list"
                                : "a tempDir of a fixed size is a tmpfs mounted there, which takes a root launcher";
    std::string mech = std::string("rlimit-fsize") + (req.tempDir ? "+tmpfs" : "") + (conf.mounts ? "+private-tmpfs" : "");
    out.push_back(MakeEnforcement("disk", confined && sizedTemp, mech, why));
  }
}

// The host refused the worker's namespaces: spawn again without them.
struct NamespacesRefusedError {};

// The enforcement list of a spawn; strict mode refuses here, before anything is made. A
// restricted worker is PID 1 of its own PID namespace; so is any worker of a root launcher
// with killOnClose: when it dies, the kernel ends the rest of its tree.
std::vector<Enforcement> PlanSpawn(const SpawnRequest& req, const Confinement& conf, Child& child) {
  Plan plan = PlanLimits(req.limits, conf, Layout(), false);
  if (req.privileges != Privileges::Inherit) plan.enforcement.push_back(conf.entry);
  PlanWorld(req, conf, child, plan.enforcement);
  if (req.strict) {
    for (const Enforcement& e : plan.enforcement)
      if (!e.enforced && (e.limit != "privileges" || req.privilegesExplicit)) throw NotEnforcedError(e);
  }
  child.pidns = conf.mounts || (req.killOnClose && Privileged() && !NamespacesRefused());
  // PID 1 of the namespace is an init, not the worker, wherever the init can run; it is one
  // more task of the tree (within what pids.max takes: PID_MAX_LIMIT, which no tree reaches).
  child.init = child.pidns && InitFd() >= 0;
  constexpr uint64_t kPidMaxLimit = 4194304;
  if (child.init && child.limits.threads) child.limits.threads = std::min<uint64_t>(child.limits.threads + 1, kPidMaxLimit);
  plan.enforcement.push_back(MakeEnforcement("killOnClose", !req.killOnClose || child.pidns,
                                             child.init ? "pid-namespace+init+pdeathsig" : "pid-namespace+pdeathsig",
                                             "without root or a user namespace no PID namespace can be made: the worker dies "
                                             "with its parent, its own children may not"));
  if (!req.killOnClose) plan.enforcement.back().mechanism = "none";
  return plan.enforcement;
}

// A cgroup only when a limit (or the worker's group) needs one; otherwise stats come from
// rusage and /proc.
void MakeWorkerCgroup(const SpawnRequest& req, Child& child) {
  const CgroupLayout& layout = Layout();
  const Limits& l = child.limits;
  if (req.group != 0) {
    child.group = Groups().Find(req.group);
    if (!child.group) throw SysError("ERR_INVALID_STATE", 0, "", "the isolation group is closed");
  }
  // memory.process: the worker's own memory cgroup, beneath its tree's; processes: N > 1: its
  // tree is read from its cgroup.
  bool leaf = l.memoryProcess && ProcessMemoryCgroups(layout);
  bool need = l.memoryTotal || l.cpuCores > 0 || (NeedsPids(l) && layout.Has("pids")) || (child.group && !child.group->cg.Empty()) ||
              leaf || (l.processes > 1 && ExactProcesses(layout));
  if (!need || (!layout.v2 && layout.v1.empty())) return;
  // A top-level worker takes a fresh cgroup made ahead of time; a group's member is made
  // under its group's.
  if (!child.group)
    child.cg = CgroupPool::Get().Take(l);
  else
    child.cg = MakeCgroup(OwnCgroupName(std::to_string(child.id)), l, layout, &child.group->cg, false);
  if (leaf) {
    child.cg.AddLeaf(l.memoryProcess);
    // What a process leaves charged to its memory cgroup outlives its place there: a memfd, a
    // tmpfs file or a SysV segment that another process keeps, once the one that wrote it has
    // exec'd (into a cgroup of its own) or ended. Handed down a chain of processes that exec,
    // such memory would grow without bound while every process stays under its own limit. With
    // a processes budget the tree as a whole may hold no more than N processes at the limit.
    if (!l.memoryTotal && l.processes > 1) {
      uint64_t cap = l.memoryProcess > UINT64_MAX / l.processes ? UINT64_MAX / 2 : l.memoryProcess * l.processes;
      child.cg.LimitMemory(cap);
    }
  }
}

// The worker's fds 0..n-1: new socket pairs for pipes (the parent's ends go to JS), the null
// device, or this process's fds.
struct Stdio {
  std::vector<Fd> parentEnds;  // what JS gets
  std::vector<Fd> childEnds;   // closed here once the child has its copies
};

void SetUpStdio(const SpawnRequest& req, ChildPlan& cp, Stdio& io, SpawnResult& res) {
  cp.count = static_cast<int>(3 + req.inherit.size() + (req.channel ? 1 : 0));
  if (cp.count > 64) throw SysError("ERR_OUT_OF_RANGE", 0, "", "options.inheritHandles: at most 61 entries (60 with a channel)");
  for (int i = 0; i < 3; i++) {
    const StdioSpec& s = req.stdio[i];
    cp.sources[i] = -1;
    if (s.kind == StdioSpec::Pipe) {
      int sv[2];
      if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw Errno("socketpair", errno);
      io.parentEnds.emplace_back(sv[0]);
      io.childEnds.emplace_back(sv[1]);
      cp.sources[i] = sv[1];
      res.pipes[i] = std::to_string(sv[0]);
    } else if (s.kind != StdioSpec::Ignore) {
      if (fcntl(s.fd, F_GETFD) >= 0)
        cp.sources[i] = s.fd;
      else if (s.kind != StdioSpec::Inherit)
        throw Errno("fcntl", EBADF, "stdio[" + std::to_string(i) + "]: fd " + std::to_string(s.fd) + " is not open");
    }
  }
  for (size_t i = 0; i < req.inherit.size(); i++) {
    int fd = static_cast<int>(req.inherit[i].value);
    if (fcntl(fd, F_GETFD) < 0) throw Errno("fcntl", EBADF, "inheritHandles: fd " + std::to_string(fd) + " is not open");
    cp.sources[3 + i] = fd;
    res.inherited.push_back(static_cast<int64_t>(3 + i));
  }
  if (req.channel) {
    // The channel: one more socket pair, its worker end the fd after the inherited ones.
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw Errno("socketpair", errno);
    io.parentEnds.emplace_back(sv[0]);
    io.childEnds.emplace_back(sv[1]);
    cp.sources[cp.count - 1] = sv[1];
    res.channel = std::to_string(sv[0]);
  }
}

// What an executable maps private and writable at its exec (its writable PT_LOAD segments, and
// its ELF interpreter's): what RLIMIT_DATA must hold before it runs a single instruction. 0 when
// it is not an ELF file this can read (a script: its interpreter is not looked at).
uint64_t WritableImage(const std::string& path, int depth = 0) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return 0;
  Elf64_Ehdr eh;
  if (pread(fd.get(), &eh, sizeof(eh), 0) != static_cast<ssize_t>(sizeof(eh)) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > 256)
    return 0;
  std::vector<Elf64_Phdr> ph(eh.e_phnum);
  ssize_t want = static_cast<ssize_t>(ph.size() * sizeof(Elf64_Phdr));
  if (pread(fd.get(), ph.data(), static_cast<size_t>(want), static_cast<off_t>(eh.e_phoff)) != want) return 0;
  uint64_t total = 0;
  const uint64_t page = 4096;
  for (const Elf64_Phdr& p : ph) {
    if (p.p_type == PT_LOAD && (p.p_flags & PF_W)) total += ((p.p_vaddr % page) + p.p_memsz + page - 1) / page * page;
    if (p.p_type == PT_INTERP && depth == 0 && p.p_filesz > 1 && p.p_filesz < 4096) {
      std::string interp(p.p_filesz, '\0');
      if (pread(fd.get(), &interp[0], interp.size(), static_cast<off_t>(p.p_offset)) == static_cast<ssize_t>(interp.size())) {
        interp.resize(strnlen(interp.c_str(), interp.size()));
        total += WritableImage(interp, 1);
      }
    }
  }
  return total;
}

// rlimits and affinity, set by the child before exec.
void PlanProcessLimits(const Limits& l, const Confinement& conf, const Child& child, const std::string& file, ChildPlan& cp) {
  // memory.process without a memory cgroup of its own: RLIMIT_DATA (which also counts what is
  // only reserved: see the README).
  if (l.memoryProcess && child.cg.leaves.empty()) {
    // An exec that cannot map the image is killed by the kernel before the worker runs: said
    // here instead.
    uint64_t image = WritableImage(file);
    if (image > l.memoryProcess) {
      SysError e = Errno("spawn " + file, ENOMEM);
      e.message = "spawn " + file + " ENOMEM: options.memory.process = " + std::to_string(l.memoryProcess) +
                  " bytes is too small to start it: its writable segments alone take " + std::to_string(image) +
                  " bytes (memory.process is RLIMIT_DATA here, without a memory cgroup)";
      throw e;
    }
    cp.rlimits[cp.nrlimits++] = {RLIMIT_DATA, static_cast<rlim_t>(l.memoryProcess)};
  }
  if (l.cpuTimeMs) cp.rlimits[cp.nrlimits++] = {RLIMIT_CPU, static_cast<rlim_t>((l.cpuTimeMs + 999) / 1000)};
  if (l.handles) cp.rlimits[cp.nrlimits++] = {RLIMIT_NOFILE, static_cast<rlim_t>(l.handles)};
  if (l.disk) cp.rlimits[cp.nrlimits++] = {RLIMIT_FSIZE, static_cast<rlim_t>(l.disk)};
  // Without a pids cgroup, tasks of an identity that is the tree's alone: RLIMIT_NPROC counts
  // exactly its tree (it is not also set under pids.max, whose refusals the kernel counts).
  // Within this process's own hard limit, which a non-root launcher cannot raise (N x 64 tasks
  // for a large N can pass it: the budget is then that hard limit, never a failed spawn).
  if (l.threads && conf.perTreeTasks && !Layout().Has("pids")) {
    struct rlimit own;
    rlim_t tasks = static_cast<rlim_t>(l.threads);
    if (getrlimit(RLIMIT_NPROC, &own) == 0 && own.rlim_max != RLIM_INFINITY && tasks > own.rlim_max) tasks = own.rlim_max;
    cp.rlimits[cp.nrlimits++] = {RLIMIT_NPROC, tasks};
  }
  if (l.affinity.empty()) return;
  cp.hasAffinity = true;
  CPU_ZERO(&cp.affinity);
  static const long ncpu = sysconf(_SC_NPROCESSORS_CONF);  // fixed at boot
  for (uint32_t c : l.affinity) {
    if (static_cast<long>(c) >= ncpu)
      throw SysError("ERR_OUT_OF_RANGE", 0, "",
                     "options.cpu.affinity names CPU " + std::to_string(c) + ", which this machine does not have");
    CPU_SET(c, &cp.affinity);
  }
}

// Moves `fd` to the lowest free number >= `min` when it is below (close-on-exec kept): the child
// puts the worker's fds at 0..count-1 and must not overwrite its own.
void RaiseAbove(Fd& fd, int min) {
  fd.reset(KeepAtLeast(fd.release(), min));
  if (!fd.valid()) throw Errno("fcntl", errno, "F_DUPFD_CLOEXEC");
}

// The v1 cgroups' "tasks" files, for the child to enter (ChildPlan::cgroupFds); a pooled
// cgroup holds them open already.
void PlanCgroupEntry(Cgroup& cg, ChildPlan& cp) {
  cg.OpenTasks();
  if (cg.tasks.size() > static_cast<size_t>(kMaxCgroupFds)) throw SysError("ENOTSUP", 0, "", "too many cgroup v1 hierarchies");
  // tasks[i] is dirs' i-th (OpenTasks' order). The memory hierarchy's (the worker's own leaf,
  // with memory.process) is entered last (ChildPlan::memoryCgroupFd).
  cp.memoryCgroupFd = -1;
  size_t i = 0;
  for (const auto& kv : cg.dirs) {
    if (i >= cg.tasks.size()) break;
    Fd& fd = cg.tasks[i++];
    if (kv.first == "memory") {
      // Written after the child has put the worker's fds at 0..count-1: above them.
      Fd& mem = cg.leafTasks.valid() ? cg.leafTasks : fd;
      RaiseAbove(mem, std::max(cp.count, 3));
      cp.memoryCgroupFd = mem.get();
    } else {
      cp.cgroupFds[cp.ncgroupFds++] = fd.get();
    }
  }
}

// The worker's mount namespace, held until its exit is reported (Child::mountNs): the kernel
// tears a mount namespace down when its last reference goes and first waits for an RCU grace
// period (about 0.1 ms here), which would otherwise run in its init's exit, before the exit can
// be reported. Nothing else can reach it: the fd is close-on-exec, and its processes are gone
// by then. Into the vault with its private tmpfs (HoldWorld) once its mounts are made: here
// when the worker has exec'd (`mountsReady`), else when its start settles
// (StartVerdict::holdWorld). Where that fails, held here (a kernel before 6.11 without the pidfd
// ioctl and /proc refusing: the init's exit tears it down as before).
void HoldMountNamespace(Child& child, bool mountsReady) {
  if (!mountsReady) return;
  if (HoldWorld(child.pid, child.pidfd.get(), child.privateDirs, &child.vaultToken, &child.vaultComplete)) return;
  child.mountNs = OpenMountNamespace(child.pid, child.pidfd.get());
}

// Clones the child into its namespaces and waits until it has exec'd (or says why not). The
// alive pipe: the child sees it hang up if this process died before the child's exec.
void Launch(const SpawnRequest& req, const Confinement& conf, Child& child, ChildPlan& cp, Stdio& io, std::unique_ptr<SpawnMemory> mem) {
  int alivePipe[2], errPipe[2];
  if (pipe2(alivePipe, O_CLOEXEC) != 0) throw Errno("pipe2", errno);
  Fd aliveRead(alivePipe[0]), aliveWrite(alivePipe[1]);
  if (pipe2(errPipe, O_CLOEXEC) != 0) throw Errno("pipe2", errno);
  Fd errRead(errPipe[0]), errWrite(errPipe[1]);
  RaiseAbove(aliveRead, cp.count);
  RaiseAbove(errWrite, cp.count);
  cp.aliveFd = aliveRead.get();
  cp.aliveWriteFd = aliveWrite.get();
  cp.errFd = errWrite.get();
  // Under an init: the pipe it reports the worker's status on, and the worker's first stack.
  Fd statusWrite;
  mem->workerStack = std::make_unique<ChildStack>(kChildStackBytes, child.init);
  ChildStack& workerStack = *mem->workerStack;
  cp.initFd = child.init ? InitFd() : -1;
  if (child.init) {
    int statusPipe[2];
    if (pipe2(statusPipe, O_CLOEXEC | O_NONBLOCK) != 0) throw Errno("pipe2", errno);
    child.statusRead.reset(statusPipe[0]);
    statusWrite.reset(statusPipe[1]);
    cp.statusFd = statusWrite.get();
    if (!workerStack.ok()) throw Errno("mmap", errno);
    cp.workerStackTop = workerStack.top();
  }
  // The init keeps the transient uid's reservation (its fd is above 2: see ExecInit).
  cp.lockFd = child.init && child.transientId ? child.transientId->lockFd() : -1;
  PlanCgroupEntry(child.cg, cp);
  // Its filter asks this process: the worker sends its listener here before its exec.
  Fd listenerRead, listenerWrite;
  if (child.notifies) {
    int sv[2];
    // Seqpacket: its reader sees a hang-up once every sender is gone (a datagram pair never says).
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) throw Errno("socketpair", errno);
    listenerRead.reset(sv[0]);
    listenerWrite.reset(sv[1]);
    RaiseAbove(listenerWrite, cp.count);
    cp.notifyFd = listenerWrite.get();
  }
  uint64_t nsFlags = (child.pidns ? CLONE_NEWPID : 0) | (conf.mounts ? CLONE_NEWNS | CLONE_NEWIPC : 0) | (conf.userns ? CLONE_NEWUSER : 0) |
                     (child.netns ? CLONE_NEWNET : 0);
  // The worker under an init as a vfork child of the first process, where it cannot reach that
  // process before its exec (ChildPlan::vforkWorker).
  cp.vforkWorker =
      child.init && conf.restricted && (Privileged() ? cp.hasUid && cp.uid != 0 && SuidDumpable() == 0 : conf.userns && cp.landlockAbi > 0);
  // A process in a memory cgroup that shares this process's memory is a hazard: an OOM kill of
  // it kills every process sharing its memory, this one included. The kernel's OOM killer
  // passes over a vfork child that shares its parent's memory (the first process, where it is
  // one; the worker without an init, or as a vfork child of the first process); a first process
  // that is not one (the relay) never enters the memory cgroup (its init does); nor does a
  // worker that waits at the gate
  // (its parent has exec'd the init by the time it execs): that one gets a copy of this memory
  // (a fork, as child_process does).
  bool limited =
      child.limits.memoryTotal || !child.cg.leaves.empty() || (child.group && (child.group->cg.configured & Cgroup::kMemoryLimit));
  bool ownMemory = child.init && !cp.vforkWorker && cp.memoryCgroupFd >= 0 && limited;
  // The relay (ChildPlan::relayFd): this thread waits in the error pipe's read, every signal
  // blocked, until the init is up (or, with announceWorker, the worker has exec'd), instead of
  // in the vfork; the first process's stack is kept until its exec.
  std::unique_ptr<SignalsBlocked> relayBlocked;
  cp.relayFd = cp.vforkWorker ? cp.errFd : -1;
  static const char* const holdFirst = getenv("SPAWN_ISOLATED_TEST_HOLD_FIRST");  // tests only
  cp.holdFirst = cp.vforkWorker ? holdFirst : nullptr;
  if (cp.vforkWorker) relayBlocked = std::make_unique<SignalsBlocked>();
  // A clone3 (a fork: into its cgroup at birth, or with memory of its own) needs no stack.
  bool forked = (child.cg.v2 && child.cg.v2dir.valid()) || ownMemory;
  // A child that drops the bounding set in this user namespace is cloned with it dropped, by
  // this JS thread's cloner thread (BoundedCloner). With the relay, that thread can wait for the
  // first process's exec of the init in this call's stead (ChildPlan::announceWorker): the call
  // returns once the worker has exec'd.
  bool bounded = cp.dropPrivileges && !(nsFlags & CLONE_NEWUSER);
  BoundedCloner* cloner = bounded ? BoundedCloner::Idle() : nullptr;
  cp.announceWorker = cloner != nullptr && cloner->Threaded() && cp.vforkWorker;
  // The call can even return once the first process is cloned, before the worker's exec: the
  // cloner keeps the spawn's memory and settles the start (StartVerdict) from the first report;
  // a failure then comes as the worker's 'error' instead of this call's, and a worker whose
  // filter asks this process sends its listener to the monitor (Child::listenerSock). Not
  // before this host has once let a worker use its namespaces (a host that refuses them is found
  // by a failed step, which makes the spawn retry without: NamespacesRefusedError). And only
  // while this process has other workers to serve: with none, the call waits for the worker's
  // exec (~1 ms, what child_process's fork and exec take too), which saves the JS thread a
  // wake-up for 'spawn' and leaves both CPUs to the child meanwhile (measured in one run, 300
  // spawns each, interleaved: all limits 1.04-1.07x child_process's latency waiting, 1.11-1.14x
  // returning early; by default 0.98x against 1.03x). With others in flight the call returns at
  // once, and the thread serves them meanwhile (that is what brought throughput to
  // child_process's).
  static std::atomic<bool> namespacesWork{false};  // a worker with a mount namespace exec'd
  bool early = cp.announceWorker && namespacesWork.load(std::memory_order_relaxed) && !Monitor::Get().Idle();
  // The first process reads its own copy of the plan (made now: the plan is complete).
  auto first = std::make_unique<FirstProcess>(cp, !forked);
  first->memory = std::move(mem);
  // The stack's failure is this thread's to report (its errno is this thread's).
  if (!forked && !first->stack.ok()) throw Errno("mmap", errno, "the child's stack");
  int pidfd = -1;
  // The parent's write end of the report pipe is closed as soon as the clone is made, by the
  // thread that made it: the report's read then ends at the child's exec, its report or its end,
  // whether or not this thread has heard of the clone's result yet. A plain close(2), which
  // leaves errno alone when it succeeds: Fd's close restores errno, a write to the cloning
  // thread's errno, which a child that shares this process's memory is using until its exec.
  // The parent's copies of the child's other ends are closed after the report (nothing waits
  // for them before).
  const std::function<long()> clone = [&]() -> long {
    long r = CloneChild(first->plan, nsFlags, child.cg, ownMemory, !cp.vforkWorker, first->stack, &pidfd);
    int w = errWrite.release();
    if (w >= 0) close(w);
    return r;
  };
  long pid;
  ChildFailure failed;
  if (cloner != nullptr) {
    // This thread reads the child's report meanwhile (one wake-up less before the spawn returns);
    // a clone that failed closed the write end too, and its result is looked at first.
    bool finished = false;
    auto finish = OnScopeExit([&] {
      if (!finished) cloner->Finish();  // never leave the cloner using this frame
    });
    cloner->Start(clone);
    if (!early) failed = AwaitExec(aliveWrite, errRead, cp.relayFd >= 0);
    pid = cloner->Finish();
    finished = true;
    if ((early || failed.workerExecd) && pid >= 0) {
      // The worker has exec'd (or, early, is on its way); its first process goes on to exec the
      // init on its own. The cloner keeps what it reads, and the alive pipe (it checks it once
      // more), until then.
      first->aliveWrite = std::move(aliveWrite);
      first->errRead = std::move(errRead);
      first->pidfd.reset(fcntl(pidfd, F_DUPFD_CLOEXEC, 3));
      if (early) {
        auto start = std::make_shared<StartVerdict>();
        start->id = child.id;
        start->sink = child.sink;
        FailureContext ctx = FailureContextOf(req, cp, conf);
        start->error = [ctx](int step, int err) {
          ChildFailure f;
          f.step = step;
          f.err = err;
          return ChildError(ctx, f);
        };
        start->init = static_cast<pid_t>(pid);
        start->holdWorld = conf.mounts;  // HoldMountNamespace's part, once its mounts are made
        start->privateDirs = child.privateDirs;
        child.start = start;
        first->start = std::move(start);
      }
      if (early)
        cloner->Follow(std::move(first));
      else
        cloner->Defer(std::move(first));
    }
  } else {
    pid = clone();
    if (pid >= 0) failed = AwaitExec(aliveWrite, errRead, cp.relayFd >= 0);
  }
  aliveRead.reset();
  statusWrite.reset();
  listenerWrite.reset();
  io.childEnds.clear();
  if (pid < 0 && nsFlags != 0 && (-pid == EPERM || -pid == ENOSPC || -pid == EUSERS || -pid == EINVAL)) throw NamespacesRefusedError();
  if (pid < 0) throw Errno("clone", static_cast<int>(-pid), req.file);
  child.pid = static_cast<pid_t>(pid);
  child.pidfd.reset(pidfd);
  if (failed.step != 0) {
    siginfo_t info;
    syscall(SYS_waitid, P_PIDFD, child.pidfd.get(), &info, WEXITED | __WALL, nullptr);
  }
  // Not followed: the first process has exec'd (the report pipe's end, or the init's byte) or
  // reported a failure and ended (waited for just above). Its worker is gone from its stack too:
  // the pipe's end waits for the worker's copy as well; the init's byte comes after the worker's
  // exec (a vfork child) or its exec at the gate; and a first process that failed is PID 1 of
  // the worker's own PID namespace (an init always comes with one), which the kernel lets be
  // waited for only once every other process of the namespace (a worker at the gate) is gone.
  // Without an init there is no worker stack.
  if (first) first->ChildDone(true);
  relayBlocked.reset();
  if (early && child.notifies) child.listenerSock = std::move(listenerRead);
  if (failed.step == 0 && child.notifies && !early) {
    child.notifier = std::make_unique<Notifier>(ReceiveListener(listenerRead.get()));
    if (child.notifier->fd() < 0) {
      // Never run a worker whose questions no one answers. It did not send its listener: it
      // died before (a memory limit too small for the init's exec), or something is wrong.
      Monitor::KillTree(child);
      siginfo_t info;
      syscall(SYS_waitid, P_PIDFD, child.pidfd.get(), &info, WEXITED | __WALL, nullptr);
      const Limits& l = req.limits;
      if (child.cg.OomKills() > 0) {
        SysError e = Errno(std::string("spawn ") + req.file, ENOMEM);
        e.message = "spawn " + req.file + " ENOMEM: killed by the kernel's OOM killer before its exec (options.memory" +
                    (l.memoryProcess ? ".process" : "") + " = " + std::to_string(l.memoryProcess ? l.memoryProcess : l.memoryTotal) +
                    " bytes is too small to start it)";
        throw e;
      }
      throw Errno("recvmsg", EPROTO, "the worker's seccomp listener did not arrive");
    }
  }
  if (failed.step == 0) {
    if ((nsFlags & CLONE_NEWNS) && !early) namespacesWork.store(true, std::memory_order_relaxed);
    if (conf.mounts) HoldMountNamespace(child, !early);
    return;
  }
  // A host that lets us make namespaces but not use them (an LSM policy, locked mounts).
  if (conf.mounts && (failed.step == kStepUserns || failed.step == kStepMounts) && (failed.err == EPERM || failed.err == EACCES))
    throw NamespacesRefusedError();
  throw ChildError(FailureContextOf(req, cp, conf), failed);
}

}  // namespace

SpawnResult SpawnOnce(const SpawnRequest& req, std::shared_ptr<EventSink> sink) {
  Monitor& mon = Monitor::Get();
  auto child = NewWorker<Child>(mon.NextId(), req, std::move(sink));
  child->limits = req.limits;
  SpawnResult res;
  res.id = child->id;
  Confinement conf = Confine(req.privileges, req.hasUid);
  res.enforcement = PlanSpawn(req, conf, *child);
  MakeWorkerCgroup(req, *child);
  auto cgGuard = OnScopeExit([&] { RetireCgroup(*child); });

  ChildPlan cp;
  memset(&cp, 0, sizeof(cp));
  Stdio io;
  SetUpStdio(req, cp, io, res);
  ResolveIds(req, conf, *child, cp);
  // A transient uid has no name: no user-database lookup on the spawn path for it.
  if (!child->transientId) res.user = UserName(cp.hasUid ? cp.uid : geteuid());
  auto mem = std::make_unique<SpawnMemory>();
  mem->args = req.args;
  mem->env = req.env;
  mem->file = req.file;
  mem->hasCwd = req.hasCwd;
  if (req.hasCwd) mem->cwd = req.cwd;
  if (req.channel) mem->env.push_back(std::string(kChannelEnv) + "=" + std::to_string(cp.count - 1));
  // A Landlock-confined worker without a private /tmp writes only its own temp directory: it
  // gets one. With a private /tmp, that is where TMPDIR, TEMP and TMP point unless it has one.
  if (req.tempDir || (conf.landlockAbi > 0 && !conf.mounts))
    MakeTempDir(*child, cp, req, mem->env);
  else if (conf.mounts)
    PointTempAtPrivateTmp(mem->env);
  res.tempDir = child->tempDir;
  mem->tempDir = child->tempDir;
  if (req.hasFilesystem) {
    mem->fsRead = req.fsRead;
    mem->fsWrite = req.fsWrite;
  }
  // Before the plan points at it: the worker's cwd may change to the host's own path of it.
  if (conf.mounts) {
    mem->privateDirs = PrivateDirsHere();
    mem->keepDirs = KeepDirs(req, *child, mem->privateDirs, &mem->cwd, &mem->hasCwd);
  }
  mem->Point(cp);
  PlanProcessLimits(child->limits, conf, *child, req.file, cp);
  PlanConfinement(req, conf, *child, *mem, cp);
  cp.pdeathsig = req.killOnClose;

  Launch(req, conf, *child, cp, io, std::move(mem));
  res.pid = child->pid;
  res.startPending = child->start != nullptr;
  for (Fd& end : io.parentEnds) end.release();  // JS owns them now (net.Socket({ fd }))
  cgGuard.Dismiss();
  mon.Add(child);
  return res;
}

UserRecord LookupUser(const std::string& name) { return FindUser(name); }

SpawnResult Spawn(const SpawnRequest& req, std::shared_ptr<EventSink> sink) {
  try {
    return SpawnOnce(req, sink);
  } catch (const NamespacesRefusedError&) {
    // Remembered: this and every later worker are confined without namespaces (the
    // privileges entry says what that leaves out, and strict mode refuses explicit levels).
    SetNamespacesRefused();
    return SpawnOnce(req, sink);
  }
}

void PinModule() {
  // RTLD_NODELETE on a handle to the loaded object marks it never to be unloaded.
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&PinModule), &info) != 0 && info.dli_fname != nullptr)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

void Resume(uint64_t) {}

bool Kill(uint64_t id, const std::string& reason) {
  std::shared_ptr<Child> c = Monitor::Get().Find(id);
  return c ? Monitor::Get().Terminate(*c, reason) : false;
}

bool Signal(uint64_t id, int signal) {
  std::shared_ptr<Child> c = Monitor::Get().Find(id);
  if (!c) return false;
  // A spawn that returned before its worker's exec: the worker is stopped once it has exec'd,
  // by the thread that settles its start (a failed start leaves none to stop).
  if (c->start) {
    if (signal == SIGSTOP && c->init && c->start->DeferStop()) return true;
    if (signal == SIGCONT) c->start->CancelStop();
  }
  std::lock_guard<std::mutex> lock(Monitor::Get().mu());
  if (c->ended) return false;  // exited (reaped, or a zombie about to be: Monitor::Reap)
  // SIGSTOP from outside its namespace stops an init itself (the kernel forces it on a
  // namespace's PID 1 from an ancestor; the init cannot catch it to forward it), so it goes to
  // the worker, as child_process's goes to its child.
  if (signal == SIGSTOP && c->init) return StopInitsChild(c->pid);
  // To the worker's own pid (its init forwards it, when it has one).
  if (syscall(SYS_pidfd_send_signal, c->pidfd.get(), signal, nullptr, 0) == 0) return true;
  if (errno == ESRCH) return false;
  throw Errno("pidfd_send_signal", errno);
}

Stats GetStats(uint64_t id) {
  std::shared_ptr<Child> c = Monitor::Get().Get(id, "stats");
  bool live, posted;
  {
    std::lock_guard<std::mutex> lock(Monitor::Get().mu());
    live = !c->ended;
    posted = c->posted;
  }
  // Once the exit is reported, its cgroup may be another worker's: the stats of the exit.
  if (posted) return c->finalStats;
  std::lock_guard<std::mutex> lock(c->cgMu);  // its leaves may change on the monitor thread
  return ReadStats(c->cg, live ? WorkerPid(*c) : 0, nullptr, live && c->init ? 1 : 0);
}

void Release(uint64_t id) {
  BoundedCloner::CheckAll();
  std::shared_ptr<Child> c = Monitor::Get().Remove(id);
  if (!c) return;
  if (!c->ended) {
    if (!c->killOnClose) {
      // It runs on, within its limits: its cgroup, temp dir and transient uid stay its own.
      if (c->transientId) c->transientId->Keep();
      c->tempDir.clear();
      {
        std::lock_guard<std::mutex> lock(c->cgMu);  // the monitor thread may be letting it go
        if (!c->cgRetired) {                        // its own processes hold them
          c->mountNs.reset();
          ReleaseVaultHolds(*c);
        }
      }
      Monitor::Get().Orphan(std::move(c));  // reaped once it ends
      return;
    }
    Monitor::KillTree(*c);
    // A start not settled yet is, once its first process is gone (a deferred stop then finds
    // no worker): its pid stays its own until the waitid.
    if (c->start) c->start->Await();
    siginfo_t info;
    syscall(SYS_waitid, P_PIDFD, c->pidfd.get(), &info, WEXITED | __WALL, nullptr);
  }
  RetireCgroup(*c);  // unless its exit was reported, which retired it
}

GroupResult CreateGroup(const GroupRequest& req) {
  const CgroupLayout& layout = Layout();
  Plan plan = PlanLimits(req.limits, Confine(Privileges::Inherit, false), layout, true);
  if (req.strict) RequireEnforced(plan.enforcement);
  auto g = std::make_shared<Group>();
  g->id = Groups().NextId();
  if (layout.v2 || !layout.v1.empty()) g->cg = MakeCgroup(OwnCgroupName("g" + std::to_string(g->id)), req.limits, layout, nullptr, true);
  return PublishGroup(Groups(), std::move(g), plan.enforcement);
}

Stats GroupStats(uint64_t id) {
  std::shared_ptr<Group> g = Groups().Get(id, "groupStats");
  // The members' inits are in the group's cgroup too: not counted as its processes.
  uint32_t inits = 0;
  {
    std::vector<std::shared_ptr<Child>> all = Monitor::Get().Snapshot();
    std::lock_guard<std::mutex> lock(Monitor::Get().mu());
    for (const auto& c : all)
      if (c->group == g && c->init && !c->ended) inits++;
  }
  return ReadStats(g->cg, 0, nullptr, inits);
}

void ReleaseGroup(uint64_t id) {
  std::shared_ptr<Group> g = Groups().Remove(id);
  if (!g) return;
  CgroupPool::Get().Settle();  // its members' cgroups first
  g->cg.RemoveNow();
}

Support Probe() {
  DeviceFds();  // opened as the module loads (see InitModule), not by a first spawn
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
  // As PlanSpawn names it: with the init wherever it can run.
  s.limits.push_back(MakeEnforcement("killOnClose", conf.mounts || (Privileged() && !NamespacesRefused()),
                                     InitFd() >= 0 ? "pid-namespace+init+pdeathsig" : "pid-namespace+pdeathsig",
                                     "without root or a user namespace no PID namespace can be made: the worker dies with "
                                     "its parent, its own children may not"));
  s.limits.push_back(MakeEnforcement("inheritHandles", true, "fd-whitelist", ""));
  // The private world's options, for a default worker without a tempDir.
  Child none;
  SpawnRequest world;
  world.networkNone = world.hasFilesystem = true;
  world.limits.disk = 1;
  PlanWorld(world, conf, none, s.limits);
  return s;
}

}  // namespace backend
}  // namespace si
