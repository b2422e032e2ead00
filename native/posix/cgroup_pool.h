// Keeps cgroup creation and removal off the spawn and exit paths. Making or removing a cgroup
// directory can wait for an RCU grace period (10-20 ms on these machines once processes have
// torn down namespaces, which every restricted worker does) and costs CPU in kernel workers
// afterwards, so fresh, empty cgroups are made ahead of time, and used ones are reset for reuse
// (v1) or removed after their exit was reported, all on one housekeeping thread. It also
// removes the cgroups of launchers that died without doing so.
#pragma once

#include <deque>
#include <mutex>
#include <vector>

#include "cgroup.h"

namespace si {
namespace posix {

class CgroupPool {
 public:
  static CgroupPool& Get();
  // A fresh cgroup in every controller this process may use, configured for `l` (made here
  // when none is ready). Top-level workers only: a group's members are made under it.
  Cgroup Take(const Limits& l);
  // `cg`'s tree is gone (or going): in the background, once the tree is gone, it is reset and
  // kept ready again (a pooled v1 cgroup) or removed. Exactly once per cgroup: after this, its
  // files may belong to another worker. Takes its tasks fds; its other members stay readable.
  // `wake` false: the housekeeping thread is woken by the caller's Wake() (after what it does
  // first, e.g. reporting the exit), or by the next call that wakes it.
  void Retire(Cgroup& cg, bool wake = true);
  // A worker's mount namespace (an fd that may hold its last reference) is let go in the
  // background, before any cgroup retired with it or later is reset or removed (its private
  // tmpfs pages are charged to the worker's memory cgroup).
  void LetGo(Fd ns, bool wake = true);
  void Wake();
  // Removes every retired cgroup now, on the calling thread, waiting up to a second for trees
  // that are still going (before a group's own cgroup is removed; tests).
  void Settle();
  // Removes the fresh cgroups kept ready and the retired ones whose trees are gone (at exit).
  void Drain();
  // The directories of the fresh cgroups kept ready.
  std::vector<std::string> ReadyDirs();

 private:
  CgroupPool();
  void Run();
  void StartLocked();  // the housekeeping thread, once (mu_ held)
  Cgroup MakeFresh();
  void RemoveStale();
  struct Retired {
    std::map<std::string, std::string> dirs;
    std::vector<std::string> leaves;  // removed first
    bool reusable = false;
    unsigned configured = 0;
    std::vector<Fd> tasks;
  };
  // Removes or resets retired cgroups; those whose trees are still going are left in `retired`.
  void Recycle(std::vector<Retired>& retired, std::vector<Cgroup>& reset);

  std::mutex mu_;
  CondVar cv_;
  std::deque<Cgroup> ready_;
  std::vector<Retired> retired_;  // used cgroups
  std::vector<Fd> letGo_;         // namespaces to let go (LetGo)
  uint64_t next_ = 0;
  bool started_ = false;  // the housekeeping thread
  bool taken_ = false;    // a cgroup was taken: stale ones removed, ready ones kept
  bool fillFailed_ = false;
  bool busy_ = false;  // the housekeeping thread holds a batch outside the lock
  CondVar idle_;       // the last attempt to make one failed: wait for the next Take()
};

}  // namespace posix
}  // namespace si
