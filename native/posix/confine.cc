#include "confine.h"

#include <stdio.h>
#include <sys/utsname.h>

#include <atomic>

#include "landlock.h"

namespace si {
namespace posix {
namespace {

// Workers get namespaces of their own (PID, mount, IPC; a user namespace too when this
// launcher is not root). A host that refuses them (a container's seccomp profile, a sysctl,
// an LSM) is remembered, and workers then get what works without them.
std::atomic<bool> g_namespacesRefused{false};

}  // namespace

bool NamespacesRefused() { return g_namespacesRefused.load(); }
void SetNamespacesRefused() { g_namespacesRefused = true; }

namespace {

std::string NamespacesRefusedWhy() {
  return Privileged() ? "this host refuses new PID and mount namespaces" : "this host refuses unprivileged user namespaces";
}

}  // namespace

int LandlockAbi() {
  static const int abi = landlock::Abi();
  return abi;
}

bool UserNotify() {
  static const bool ok = [] {
    struct utsname u;
    int major = 0, minor = 0;
    if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
    return major > 5 || (major == 5 && minor >= 5);
  }();
  return ok;
}

bool ProcessMemoryCgroups(const CgroupLayout& l) { return l.v2 || l.v1.count("memory") > 0; }

bool ExactProcesses(const CgroupLayout& l) {
  return UserNotify() && (l.v2 || l.v1.count("memory") || l.v1.count("cpuacct") || l.v1.count("pids"));
}

bool NamespaceProcesses(const Confinement& conf) { return UserNotify() && conf.mounts; }

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
    // Landlock here too: writes only to its own places (no world-writable host directory to
    // leave files, sockets or shared memory in for a later holder of its uid), and (ABI 6+)
    // no signals or abstract Unix sockets outside its domain (its siblings).
    c.landlockAbi = LandlockAbi();
    mech = std::string(c.transientId ? "transient-uid+" : "uid+") + (c.mounts ? "pid-ns+mount-ns+private-tmp+" : "") + "no-caps+seccomp" +
           (c.landlockAbi ? "+landlock" : "");
    if (!c.mounts) why = NamespacesRefusedWhy() + ": the worker sees every process in /proc";
  } else {
    // Not root: the worker has the launcher's uid, so the file system and ptrace are confined
    // by Landlock, and its own user / PID / mount namespaces give it its own /proc.
    c.userns = !g_namespacesRefused.load();
    c.mounts = c.userns;
    c.perTreeTasks = c.userns;
    c.landlockAbi = LandlockAbi();
    mech = std::string(c.userns ? "user-ns+pid-ns+mount-ns+private-tmp+" : "") + "no-caps+seccomp" + (c.landlockAbi ? "+landlock" : "");
    if (!c.landlockAbi)
      why = "Landlock is not available (Linux 5.13+ with the landlock LSM enabled): the worker could write what the launcher owns";
    else if (!c.userns)
      why = NamespacesRefusedWhy() + ": the worker sees every process in /proc";
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

namespace {

void Add(Plan& p, const std::string& limit, bool ok, const std::string& mech, const std::string& why) {
  p.enforcement.push_back(MakeEnforcement(limit, ok, mech, why));
}

}  // namespace

// Which mechanism serves each requested limit (of a worker, or of a group) on this host.
Plan PlanLimits(const Limits& lim, const Confinement& conf, const CgroupLayout& l, bool group) {
  Plan p;
  std::string cgMech = l.v2 ? "cgroup-v2" : "cgroup-v1";
  auto why = [&](const char* ctrl) { return l.why.empty() ? std::string("no ") + ctrl + " cgroup" : l.why; };
  auto cg = [&](const char* name, const char* ctrl) { Add(p, name, l.Has(ctrl), cgMech, why(ctrl)); };
  // Tasks: pids.max, or RLIMIT_NPROC where the worker's identity is its tree's alone.
  auto tasks = [&](const char* name) {
    if (l.Has("pids"))
      Add(p, name, true, cgMech, "");
    else
      Add(p, name, conf.perTreeTasks, "rlimit-nproc",
          why("pids") + ", and the worker has no identity of its own to count with RLIMIT_NPROC");
  };
  if (lim.memoryTotal) cg("memory.total", "memory");
  // memory.process: a memory cgroup of each process's own (the worker's made with it; one for
  // each process that execs, placed by the launcher when its filter asks), else RLIMIT_DATA.
  if (lim.memoryProcess)
    Add(p, "memory.process", true,
        ProcessMemoryCgroups(l) ? cgMech + (lim.processes != 1 && UserNotify() ? "+seccomp-notify" : "") : "rlimit-data", "");
  if (lim.cpuCores > 0) cg("cpu.cores", "cpu");
  if (lim.cpuTimeMs) Add(p, "cpu.time", true, "rlimit-cpu", "");
  if (!lim.affinity.empty()) Add(p, "cpu.affinity", true, "sched-setaffinity", "");
  if (group) {
    if (lim.processes) cg("processes", "pids");
  } else {
    if (lim.processes == 1)
      Add(p, "processes", true, "seccomp", "");
    else if (lim.processes > 1 && ExactProcesses(l))
      Add(p, "processes", true, "seccomp-notify+" + cgMech, "");
    else if (lim.processes > 1 && NamespaceProcesses(conf))
      Add(p, "processes", true, "seccomp-notify+pid-namespace", "");
    else if (lim.processes > 1)
      tasks("processes");
    if (lim.threads) tasks("threads");
  }
  if (lim.handles) Add(p, "handles", true, "rlimit-nofile", "");
  return p;
}

}  // namespace posix
}  // namespace si
