#include "cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <cstdio>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "mountinfo.h"

namespace si {
namespace posix {
namespace {

constexpr long kMinCpuQuotaUs = 1000;  // the kernel's smallest quota
constexpr int kRemoveWaitMs = 1000;    // RemoveNow: how long exits are waited for
constexpr int kRemoveRetryMs = 10;

std::vector<MountEntry> Mounts() {
  std::string text;
  ReadFile("/proc/self/mountinfo", &text);
  return ParseMountInfo(text);
}

// The leaf PrepareV2 moves a service's processes to.
constexpr const char* kSupervisorLeaf = "spawn-isolated-supervisor";

// A launcher started from another one's process (a child Node, a cluster worker) starts in the
// leaf that one moved its processes to. Its cgroups belong beside that leaf, under the parent
// that has the controllers enabled already: taking the leaf as its own base would move the
// other launcher's processes (its parent's too) one level further down for every generation,
// and hide each launcher's cgroups from the other's removal of a dead launcher's.
std::string OutsideSupervisorLeaf(const std::string& dir) {
  size_t slash = dir.find_last_of('/');
  bool inLeaf = slash != std::string::npos && slash > 0 && dir.compare(slash + 1, std::string::npos, kSupervisorLeaf) == 0;
  return inLeaf ? dir.substr(0, slash) : dir;
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
  std::string missing;
  for (const char* c : {"memory", "cpu", "pids"})
    if (avail.find(c) == std::string::npos) missing += std::string(missing.empty() ? "" : ", ") + c;
  if (!missing.empty()) {
    *why =
        "the cgroup v2 controllers this backend needs (memory, cpu, pids) are not all delegated to " + base + " (missing: " + missing + ")";
    return false;
  }
  std::string enable = "+memory +cpu +pids";
  int err = WriteFile(base + "/cgroup.subtree_control", enable);
  if (err == EBUSY) {
    std::string leaf = base + "/" + kSupervisorLeaf;
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

}  // namespace

const CgroupLayout& Layout() {
  // Never destroyed: the housekeeping thread reads it until the process has ended, after static
  // destructors have run (a destroyed layout there made a launcher's exit crash, now and then).
  static const CgroupLayout& layout = *new CgroupLayout([] {
    CgroupLayout l;
    std::string self;
    ReadFile("/proc/self/cgroup", &self);
    ProcCgroup own = ParseProcCgroup(self);
    std::vector<MountEntry> mounts = Mounts();
    const char* env = getenv("SPAWN_ISOLATED_CGROUP");
    // v2 first: the unified hierarchy, when it holds our controllers.
    std::string unified = MountPointOf(mounts, "cgroup2", "");
    if (!unified.empty()) {
      std::string base = env && *env ? std::string(env) : OutsideSupervisorLeaf(unified + own.unified);
      std::string why;
      if (Exists(base) && PrepareV2(base, &why)) {
        l.v2 = true;
        l.v2Base = base;
        return l;
      }
      l.why = why;
    }
    // A hybrid host (v1 controllers, an empty unified hierarchy beside them): the v1 hierarchies
    // are where a limit would be, so their reason is the one to give.
    bool hybrid = !unified.empty() && std::any_of(mounts.begin(), mounts.end(), [](const MountEntry& m) { return m.type == "cgroup"; });
    if (hybrid) l.why.clear();
    for (const char* c : {"memory", "cpu", "cpuacct", "pids"}) {
      auto path = own.byController.find(c);
      if (path == own.byController.end()) continue;
      std::string mount = MountPointOf(mounts, "cgroup", c);
      if (mount.empty()) continue;
      std::string dir = mount + (path->second == "/" ? "" : path->second);
      if (WritableDir(dir))
        l.v1[c] = dir;
      else if (l.why.empty())
        l.why = "cannot create cgroups under " + dir + ": " + strerror(errno);
    }
    if (l.v1.empty() && l.why.empty()) l.why = "no cgroup hierarchy with memory, cpu or pids controllers is mounted";
    if (l.v1.count("memory")) l.memsw = Exists(l.v1["memory"] + "/memory.memsw.limit_in_bytes");
    return l;
  }());
  return layout;
}

const std::vector<std::string>& CgroupMounts() {
  static const std::vector<std::string>& points = *new std::vector<std::string>([] {  // never destroyed, as Layout()
    std::vector<MountEntry> mounts = Mounts();
    bool sysfsCgroupIsMount = std::any_of(mounts.begin(), mounts.end(), [](const MountEntry& m) { return m.point == "/sys/fs/cgroup"; });
    std::vector<std::string> out;
    for (const MountEntry& m : mounts) {
      if (m.type != "cgroup" && m.type != "cgroup2") continue;
      bool under = m.point.rfind("/sys/fs/cgroup", 0) == 0;
      std::string top = under && sysfsCgroupIsMount ? "/sys/fs/cgroup" : m.point;
      if (std::find(out.begin(), out.end(), top) == out.end()) out.push_back(top);
    }
    return out;
  }());
  return points;
}

std::string Cgroup::Dir(const std::string& ctrl) const {
  auto it = dirs.find(v2 ? "unified" : ctrl);
  return it == dirs.end() ? "" : it->second;
}

namespace {

// Adds the pids of `dir`'s cgroup.procs to `out` (each once).
void AddProcs(const std::string& dir, std::vector<pid_t>& out) {
  std::string s;
  // Opened each time, never kept: v1 serves a pidlist made at an open's first read to every
  // later read of that open file for up to a second (a kept fd would see exited processes).
  ReadFile(dir + "/cgroup.procs", &s);
  std::istringstream in(s);
  pid_t p;
  while (in >> p)
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
}

}  // namespace

std::vector<pid_t> Cgroup::Pids() const {
  std::vector<pid_t> out;
  for (auto& kv : dirs) AddProcs(kv.second, out);
  for (const std::string& l : leaves) AddProcs(l, out);
  return out;
}

std::vector<pid_t> Cgroup::TreePids() const {
  if (v2 || dirs.size() <= 1) return Pids();
  std::vector<pid_t> out;
  // One hierarchy where every process of the tree is in this cgroup itself and has been since
  // its start: accounting's (made with every worker cgroup) or pids' (the init enters memory's
  // once it is up, which may be after the spawn has returned: ChildPlan::announceWorker); else
  // memory's, with its leaves.
  auto it = dirs.find("cpuacct");
  if (it == dirs.end()) it = dirs.find("pids");
  if (it == dirs.end()) {
    auto mem = dirs.find("memory");
    it = mem != dirs.end() ? mem : dirs.begin();
  }
  AddProcs(it->second, out);
  if (it->first == "memory")
    for (const std::string& l : leaves) AddProcs(l, out);
  return out;
}

void Cgroup::OpenTasks() {
  if (v2 || !tasks.empty()) return;
  for (const auto& kv : dirs) {
    std::string path = kv.second + "/tasks";
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) throw Errno("open", errno, path);
    tasks.emplace_back(fd);
  }
}

void Cgroup::KillAll() const {
  if (v2 && WriteFile(Dir("unified") + "/cgroup.kill", "1") == 0) return;
  for (pid_t p : Pids()) kill(p, SIGKILL);
}

bool Cgroup::Remove() {
  for (auto it = leaves.begin(); it != leaves.end();) {
    if (RemoveDir(*it) == 0 || errno == ENOENT)
      it = leaves.erase(it);
    else
      ++it;
  }
  if (!leaves.empty()) return false;
  for (auto it = dirs.begin(); it != dirs.end();) {
    if (RemoveDir(it->second) == 0 || errno == ENOENT)
      it = dirs.erase(it);
    else
      ++it;
  }
  return dirs.empty();
}

void Cgroup::RemoveNow() {
  for (int waited = 0; waited < kRemoveWaitMs && !Remove(); waited += kRemoveRetryMs) {
    KillAll();
    usleep(kRemoveRetryMs * 1000);
  }
}

bool Cgroup::TreeGone() const {
  if (v2) return ReadKeyKept(Dir("unified") + "/cgroup.events", "populated") == 0;
  return TreePids().empty();
}

uint64_t Cgroup::TaskLimitHits() const {
  std::string d = Dir("pids");
  return d.empty() ? 0 : ReadKeyKept(d + "/pids.events", "max") - taskHitsBase;
}

uint64_t Cgroup::OomKills() const {
  std::string d = Dir("memory");
  if (d.empty()) return 0;
  // v2's memory.events counts its whole subtree; v1 counts each cgroup by itself.
  if (v2) return ReadKeyKept(d + "/memory.events", "oom_kill") - oomBase;
  uint64_t n = ReadKeyKept(d + "/memory.oom_control", "oom_kill") - oomBase + leafOomsGone;
  for (const std::string& l : leaves) n += ReadKeyKept(l + "/memory.oom_control", "oom_kill");
  return n;
}

namespace {

// The memory limit of cgroup directory `d`: `bytes`, no swap, and (v2) the whole cgroup ended
// by an OOM kill in it.
void WriteMemoryLimit(const std::string& d, uint64_t bytes, bool v2) {
  auto set = [&](const char* file, const std::string& value) {
    int err = WriteKept(d + "/" + file, value);
    if (err != 0) throw Errno("write", err, d + "/" + file + " = " + value);
  };
  std::string v = std::to_string(bytes);
  if (v2) {
    set("memory.max", v);
    // No swap to escape into (the file exists only with swap accounting).
    if (Exists(d + "/memory.swap.max")) set("memory.swap.max", "0");
    set("memory.oom.group", "1");
  } else {
    set("memory.limit_in_bytes", v);
    if (Layout().memsw) set("memory.memsw.limit_in_bytes", v);
  }
}

}  // namespace

std::string Cgroup::AddLeaf(uint64_t bytes) {
  std::string parent = Dir("memory");
  if (parent.empty()) throw SysError("ENOTSUP", 0, "", "no memory cgroup to make a per-process cgroup in");
  // v2: the leaves get the memory controller; this cgroup then holds no process itself.
  if (v2 && leaves.empty()) {
    int err = WriteFile(parent + "/cgroup.subtree_control", "+memory");
    if (err != 0) throw Errno("write", err, parent + "/cgroup.subtree_control");
  }
  std::string d = parent + "/" + (leaves.empty() ? std::string("w") : "e" + std::to_string(++nextLeaf));
  if (mkdir(d.c_str(), 0755) != 0) throw Errno("mkdir", errno, d);
  auto undo = OnScopeExit([&] { RemoveDir(d); });
  WriteMemoryLimit(d, bytes, v2);
  if (leaves.empty()) {
    if (v2) {
      v2dir.reset(open(d.c_str(), O_DIRECTORY | O_CLOEXEC));
      if (!v2dir.valid()) throw Errno("open", errno, d);
    } else {
      leafTasks.reset(open((d + "/tasks").c_str(), O_WRONLY | O_CLOEXEC));
      if (!leafTasks.valid()) throw Errno("open", errno, d + "/tasks");
    }
  }
  undo.Dismiss();
  leaves.push_back(d);
  return d;
}

void Cgroup::LimitMemory(uint64_t bytes) {
  std::string d = Dir("memory");
  if (d.empty()) return;
  WriteMemoryLimit(d, bytes, v2);
  configured |= kMemoryLimit;
}

void Cgroup::PruneLeaves() {
  for (size_t i = 1; i < leaves.size();) {
    std::string procs;
    if (!ReadFile(leaves[i] + "/cgroup.procs", &procs) || procs.find_first_not_of(" \n") != std::string::npos) {
      i++;
      continue;
    }
    uint64_t ooms = v2 ? 0 : ReadKeyKept(leaves[i] + "/memory.oom_control", "oom_kill");
    if (RemoveDir(leaves[i]) != 0 && errno != ENOENT) {
      i++;
      continue;
    }
    leafOomsGone += ooms;
    leaves.erase(leaves.begin() + static_cast<long>(i));
  }
}

namespace {
constexpr uint64_t kReuseResidualBytes = 1 << 20;  // Reset: at most this much left charged
}  // namespace

bool Cgroup::Reset() {
  if (v2) return false;  // v2's memory.peak cannot be reset for all readers: made afresh instead
  auto write = [&](const std::string& ctrl, const char* file, const char* value) {
    std::string d = Dir(ctrl);
    return d.empty() || WriteKept(d + "/" + file, value) == 0;
  };
  // What the last tree left charged (kernel memory, page cache) would count against the next
  // one's limit. A little (what a worker that exits leaves, about 0.5 MiB here) is reclaimed
  // under the next one's pressure; more, and the cgroup is made afresh instead (reclaiming it
  // here with memory.force_empty costs more CPU than a new cgroup).
  std::string mem = Dir("memory");
  if (!mem.empty() && ReadU64Kept(mem + "/memory.usage_in_bytes") > kReuseResidualBytes) return false;
  // memsw first: the memory limit may never be above it.
  if (configured & kMemoryLimit) {
    if (Layout().memsw && !write("memory", "memory.memsw.limit_in_bytes", "-1")) return false;
    if (!write("memory", "memory.limit_in_bytes", "-1")) return false;
  }
  if ((configured & kCpuLimit) && !write("cpu", "cpu.cfs_quota_us", "-1")) return false;
  if ((configured & kPidsLimit) && !write("pids", "pids.max", "max")) return false;
  configured = 0;
  if (!write("memory", "memory.max_usage_in_bytes", "0") || !write("cpuacct", "cpuacct.usage", "0")) return false;
  oomBase = mem.empty() ? 0 : ReadKeyKept(mem + "/memory.oom_control", "oom_kill");
  taskHitsBase = Dir("pids").empty() ? 0 : ReadKeyKept(Dir("pids") + "/pids.events", "max");
  return true;
}

bool NeedsPids(const Limits& l) { return l.threads > 0; }

std::string OwnCgroupName(const std::string& tag) {
  // This copy of the addon's own mark: two copies loaded in one process (two versions of the
  // package in one dependency tree) each number their cgroups from 1.
  static const std::string copy = [] {
    uint32_t r = 0;
    if (!RandomBytes(&r, sizeof(r), GRND_NONBLOCK))
      r = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(&OwnCgroupName) >> 4) ^ static_cast<uint32_t>(time(nullptr));
    char hex[16];
    snprintf(hex, sizeof(hex), "%06x", r & 0xffffff);
    return std::string(hex);
  }();
  return kCgroupPrefix + std::to_string(getpid()) + "-" + copy + "-" + tag;
}

void Configure(Cgroup& cg, const Limits& l) {
  auto set = [&](const std::string& ctrl, const std::string& file, const std::string& value) {
    std::string d = cg.Dir(ctrl);
    if (d.empty()) return;
    int err = WriteKept(d + "/" + file, value);
    if (err != 0) throw Errno("write", err, d + "/" + file + " = " + value);
  };
  if (l.memoryTotal) cg.LimitMemory(l.memoryTotal);
  if (l.cpuCores > 0) {
    long period = kCpuPeriodUs;
    long quota = std::max(kMinCpuQuotaUs, static_cast<long>(std::llround(l.cpuCores * period)));
    if (cg.v2)
      set("cpu", "cpu.max", std::to_string(quota) + " " + std::to_string(period));
    else {
      // The pool's cgroups keep the kernel's default period, which is ours.
      if (!cg.pooled) set("cpu", "cpu.cfs_period_us", std::to_string(period));
      set("cpu", "cpu.cfs_quota_us", std::to_string(quota));
    }
    cg.configured |= Cgroup::kCpuLimit;
  }
  if (NeedsPids(l)) {
    set("pids", "pids.max", std::to_string(l.threads));
    cg.configured |= Cgroup::kPidsLimit;
  }
}

namespace {

// The directories (v1: one per controller) of a new cgroup; removed again by the caller's guard
// when a later step fails.
void MakeDirs(Cgroup& cg, const std::string& name, const Limits& l, const CgroupLayout& layout, const Cgroup* parent, bool every) {
  if (layout.v2) {
    cg.v2 = true;
    std::string d = (parent ? parent->Dir("unified") : layout.v2Base) + "/" + name;
    if (mkdir(d.c_str(), 0755) != 0) throw Errno("mkdir", errno, d);
    cg.dirs["unified"] = d;
    return;
  }
  // Memory and accounting always (for stats and OOM detection); cpu and pids when asked.
  std::vector<std::string> want = {"memory", "cpuacct"};
  if (every || l.cpuCores > 0 || (parent && !parent->Dir("cpu").empty())) want.push_back("cpu");
  if (every || NeedsPids(l) || (parent && !parent->Dir("pids").empty())) want.push_back("pids");
  for (const std::string& c : want) {
    std::string base = parent ? parent->Dir(c) : "";
    if (base.empty()) {
      auto it = layout.v1.find(c);
      if (it == layout.v1.end()) continue;
      base = it->second;
    }
    std::string d = base + "/" + name;
    if (mkdir(d.c_str(), 0755) != 0) throw Errno("mkdir", errno, d);
    cg.dirs[c] = d;
  }
}

}  // namespace

Cgroup MakeCgroup(const std::string& name, const Limits& l, const CgroupLayout& layout, const Cgroup* parent, bool isGroup,
                  bool everyController) {
  Cgroup cg;
  auto undo = OnScopeExit([&] { cg.Remove(); });
  MakeDirs(cg, name, l, layout, parent, everyController);
  if (cg.v2 && isGroup) {
    int err = WriteFile(cg.Dir("unified") + "/cgroup.subtree_control", "+memory +cpu +pids");
    if (err != 0) throw Errno("write", err, cg.Dir("unified") + "/cgroup.subtree_control");
  } else if (cg.v2) {
    cg.v2dir.reset(open(cg.Dir("unified").c_str(), O_DIRECTORY | O_CLOEXEC));
  }
  Configure(cg, l);
  // In a group, an OOM of the group's budget takes one member's whole tree (v2).
  if (cg.v2 && parent && !isGroup) {
    int err = WriteFile(cg.Dir("memory") + "/memory.oom.group", "1");
    if (err != 0) throw Errno("write", err, cg.Dir("memory") + "/memory.oom.group");
  }
  undo.Dismiss();
  return cg;
}

}  // namespace posix
}  // namespace si
