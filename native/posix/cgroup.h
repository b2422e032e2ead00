// cgroups: where this process's cgroups are (v2, or v1 per controller), one worker's or
// group's cgroup (made, configured, read, killed, removed), and the mounts a restricted
// worker sees read-only.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "sys.h"

namespace si {
namespace posix {

struct CgroupLayout {
  bool v2 = false;                        // a unified hierarchy with the controllers we need
  std::string v2Base;                     // v2: where per-worker cgroups are made
  std::map<std::string, std::string> v1;  // v1: controller -> directory to make them under
  std::string why;                        // why there is no usable cgroup for some limit
  bool memsw = false;                     // v1: swap is accounted (memory.memsw.* exist)
  bool Has(const std::string& ctrl) const { return v2 ? true : v1.count(ctrl) > 0; }
};

// Found once per process (v2 first; SPAWN_ISOLATED_CGROUP names a delegated v2 subtree).
const CgroupLayout& Layout();

// Every cgroup this process makes is named "spawn-isolated-PID-..." (so that a later launcher
// can tell a dead launcher's from a live one's): "spawn-isolated-PID-<copy>-<tag>", <copy> six
// hex digits of this copy of the addon's own.
constexpr const char* kCgroupPrefix = "spawn-isolated-";
std::string OwnCgroupName(const std::string& tag);

// Where cgroup file systems are mounted (one entry per tree: /sys/fs/cgroup when it is a
// mount of its own holding them), for a restricted worker's mount namespace to make read-only.
const std::vector<std::string>& CgroupMounts();

struct Cgroup {
  bool v2 = false;
  std::map<std::string, std::string> dirs;  // controller ("unified" for v2) -> directory
  Fd v2dir;                                 // for CLONE_INTO_CGROUP
  bool pooled = false;                      // a top-level worker cgroup of the pool (reused once its tree is gone)
  std::vector<Fd> tasks;                    // v1, pooled: the "tasks" files, opened once (ChildPlan::cgroupFds)
  // Limits written by Configure (kMemoryLimit | kCpuLimit | kPidsLimit): what Reset undoes.
  unsigned configured = 0;
  static constexpr unsigned kMemoryLimit = 1, kCpuLimit = 2, kPidsLimit = 4;
  // The kernel's counters that cannot be reset, as they were when a reused cgroup was reset.
  uint64_t oomBase = 0, taskHitsBase = 0;
  // memory.process: per-process memory cgroups beneath this one (v1: in the memory hierarchy;
  // v2: with +memory in this one's subtree_control), each limited to memory.process. leaves[0]
  // is the worker's (its init's too); the rest are made when a process of the tree execs
  // (notify.h). A cgroup that had leaves is never reused.
  std::vector<std::string> leaves;
  Fd leafTasks;               // v1: leaves[0]'s "tasks" file, for the child to enter
  uint64_t leafOomsGone = 0;  // v1: OOM kills counted in leaves already removed
  uint64_t nextLeaf = 0;

  std::string Dir(const std::string& ctrl) const;
  bool Empty() const { return dirs.empty(); }
  // Every process in it, in every hierarchy (v1) -- what reuse and removal go by.
  std::vector<pid_t> Pids() const;
  // The processes of one hierarchy (v1: memory's, where every worker process is): for stats and
  // for telling that a tree is gone, at a quarter of the reads.
  std::vector<pid_t> TreePids() const;
  // Opens the v1 "tasks" files (once).
  void OpenTasks();
  void KillAll() const;
  // True when every directory is gone (the tree has fully exited).
  bool Remove();
  // Ends whatever is left in it and removes it, waiting up to kRemoveWaitMs for the exits.
  void RemoveNow();
  // Nothing of the tree is left in it (v2: cgroup.events says unpopulated).
  bool TreeGone() const;
  // A per-process memory cgroup beneath this one, limited to `bytes` (see leaves): its
  // directory. The first one is the worker's (v1: leafTasks opened; v2: v2dir is it).
  std::string AddLeaf(uint64_t bytes);
  // Limits the whole tree's memory (memory.max / memory.limit_in_bytes, + memsw): what
  // memory.total writes.
  void LimitMemory(uint64_t bytes);
  // Removes the leaves other than the worker's that hold no process any more (their OOM
  // kills are kept in leafOomsGone first).
  void PruneLeaves();
  // Forks refused at pids.max (v1 and v2 both count them in pids.events).
  uint64_t TaskLimitHits() const;
  uint64_t OomKills() const;
  // For reuse (v1): every limit back to none, counters and peaks zeroed. Only once the tree is
  // gone; false when a file refused or the tree left more than a little charged (remove it).
  bool Reset();
};

constexpr long kCpuPeriodUs = 100000;  // cpu.max / cfs_period_us

// The task limit (`threads`; for a group, derived from its `processes`) is pids.max.
bool NeedsPids(const Limits& l);

// Makes a cgroup (per controller on v1) named `name`, under `parent` (a group's) when given,
// else under this process's own, with `l`'s limits written. A group's members join every
// controller the group has, so its budgets (which are hierarchical) count them; with
// `everyController`, it joins every controller this process may use, whatever `l` asks.
Cgroup MakeCgroup(const std::string& name, const Limits& l, const CgroupLayout& layout, const Cgroup* parent, bool isGroup,
                  bool everyController = false);
// Writes `l`'s limits into `cg`'s files.
void Configure(Cgroup& cg, const Limits& l);

}  // namespace posix
}  // namespace si
