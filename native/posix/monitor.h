// The Linux monitor: one background thread for the whole process that waits on every worker's
// pidfd with epoll, samples what only sampling shows, tells each exit's reason and reports it
// once nothing of the tree is left. Never waitpid(-1), never a SIGCHLD handler.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../registry.h"
#include "../worker.h"
#include "cgroup.h"
#include "identity.h"
#include "notify.h"

namespace si {
namespace posix {

// A shared budget: a cgroup that each member's own cgroup is made under.
struct Group {
  uint64_t id = 0;
  Cgroup cg;
};
Registry<Group>& Groups();

// A spawn that returned before its worker's exec (SpawnResult::startPending): whether that exec
// came, as the thread that follows the first process learns it from the error pipe, and what
// the monitor needs to report a failure instead of an exit.
struct StartVerdict {
  uint64_t id = 0;
  std::shared_ptr<EventSink> sink;
  std::function<SysError(int step, int err)> error;  // the spawn's error for a failed step
  // Once, when the first process has exec'd the init or ended: its first report's step and
  // errno (0: the worker exec'd, or no report came). With no failed step a Spawned event is
  // posted, before any Exit event of the worker can be.
  // `pidfd`: the first process's (HoldWorld), or -1.
  void Settle(int step, int err, int pidfd = -1);
  bool Settled();
  // Waits (at most `ms`) for Settle: the failed step (0: none), its errno in *err. Whoever reaps
  // the first process waits so first (its pid stays its own for a deferred stop); Settle comes
  // at once then, its first process being gone: the bound is only a guard.
  static constexpr uint64_t kAwaitMs = 5000;
  int Await(int* err = nullptr, uint64_t ms = kAwaitMs);
  // kill('SIGSTOP') before it is settled: the worker is stopped once it has exec'd (Settle),
  // never before (its first process, in its vfork until then, would never exec the init).
  // False: settled already, stop it now. SIGCONT meanwhile cancels it.
  bool DeferStop();
  void CancelStop();
  pid_t init = 0;            // the first process (the init once it has exec'd)
  bool holdWorld = false;    // on Settle with no failed step, its namespace goes to the vault (HoldWorld)
  unsigned privateDirs = 0;  // ChildPlan::privateDirs, for HoldWorld
  // The vault's token for it once settled (0: none), and whether that holds its namespace first
  // with all its private tmpfs (HoldWorld's `complete`); for Reap, once.
  bool TakeVault(uint64_t* token);
  ~StartVerdict();  // a token no one took is released

 private:
  std::mutex mu_;
  CondVar settled_;
  bool known_ = false, stopDeferred_ = false;
  int step_ = 0, err_ = 0;
  bool complete_ = false;
  uint64_t vaultToken_ = 0;
};

// The worker's mount namespace and its private tmpfs (one for /tmp, /dev/shm, ...: opened
// through the root of `pid`, its first process, once its mounts are made, at the first
// directory the child covered; it must be a tmpfs that is not this process's own at that path), moved into the vault (vault.h), where no
// child cloned meanwhile gets a copy: its exec would otherwise run their teardown, a filled tmpfs's too. `pidfd` (if >= 0) must still be
// `pid`'s once they are open. True when kept (*token); *complete when that is the namespace first and its tmpfs: the namespace's release
// then costs a bounded time (the tmpfs held apart), and the vault reaps the init after it (Reap, ReleaseAndReap). `privateDirs`:
// ChildPlan::privateDirs (the tmpfs is opened through the first of them).
bool HoldWorld(pid_t pid, int pidfd, unsigned privateDirs, uint64_t* token, bool* complete);

// A mount namespace fd of `pid`: through its pidfd (Linux 6.11+), else /proc (not once the
// pidfd says the process is gone: its pid may be another's). Invalid when neither answers.
Fd OpenMountNamespace(pid_t pid, int pidfd);

// SIGSTOP to the worker of `init` (its first child), through a pidfd of it, looked up again
// once that is open (so a pid reused meanwhile is never signalled): false when there is none.
// Throws on an unexpected failure.
bool StopInitsChild(pid_t init);

struct Child : WorkerBase {
  std::unique_ptr<TransientId> transientId;  // its own uid/gid, while its tree lives
  std::string tempDir;                       // its private TMPDIR (removed with it), if any
  bool keepTempDir = false;                  // ... unless asked to keep it
  std::shared_ptr<Group> group;              // keeps the group's cgroup while a member lives
  pid_t pid = 0;
  Fd pidfd;
  Cgroup cg;  // not to be read once retired (RetireCgroup): it may be another worker's then
  std::atomic<bool> cgRetired{false};
  std::mutex cgMu;                     // the monitor thread's changes to cg (its leaves) against its retirement
  std::unique_ptr<Notifier> notifier;  // its seccomp listener, when its filter asks (notify.h)
  bool notifies = false;               // its filter asks (a listener is expected)
  // Where that listener comes, when the spawn returned before the worker's exec (and so before
  // it was sent): the monitor receives it (Monitor::Notified). notifier and listenerSock change
  // on the monitor thread only, under Monitor::mu().
  Fd listenerSock;
  // Its listener could not be had (this process had no fd free): its tree was ended, and its
  // exit is reported as this failure.
  std::unique_ptr<SysError> lostListener;
  bool pidns = false;
  bool init = false;            // PID 1 of its namespace is our init (pid, pidfd: the init's)
  bool netns = false;           // a network namespace of its own (network: 'none')
  bool tempDirMounted = false;  // its tempDir is a tmpfs of options.disk's size (unmounted at its end)
  uint64_t tempDirVault = 0;    // that tmpfs, held in the vault from its unmount (DiscardTempDir)
  Fd statusRead;                // the init's report of the worker's wait status
  // Its mount namespace, held from its exec until its exit is reported (HoldMountNamespace):
  // the last reference's teardown waits for an RCU grace period, after the exit is posted
  // instead of in the init's exit, which the exit event waits for. In the vault (vaultToken,
  // HoldWorld), or here where it could not go there (the housekeeping thread lets it go).
  Fd mountNs;
  // With the namespace and its tmpfs in the vault (vaultComplete), the monitor has the vault
  // close the namespace and then reap the init (Vault::ReleaseAndReap): the namespace's one
  // teardown (one expedited RCU grace period) takes the covers of PID 1's command line with it,
  // where the reap would detach each with a grace period apiece. A tmpfs that a worker filled
  // (a million files) is freed apart, on the vault's freeing thread.
  uint64_t vaultToken = 0;
  bool vaultComplete = false;
  unsigned privateDirs = 0;             // ChildPlan::privateDirs, for HoldWorld
  pid_t workerPid = 0;                  // under an init: the worker's own pid (WorkerPid), once looked up
  std::shared_ptr<StartVerdict> start;  // its spawn returned before its exec (else null)
  Limits limits;
  uint64_t peakData = 0;       // sampled VmData high-water mark (for memory.process)
  bool dataRefused = false;    // RLIMIT_DATA refused (or may have refused) a process of the tree an allocation (notify.h)
  uint64_t peakRss = 0;        // sampled VmHWM (its own peak RSS), the peak without a memory cgroup
  bool limitPosted = false;    // a 'limit' event for the reason that ended it went out
  bool threadsPosted = false;  // the 'limit' event for the task limit went out
  // Guarded by Monitor::mu() (with WorkerBase::reason and ::ended, which is "its status is had":
  // the monitor reaps it right after, Reap).
  bool posted = false;
  std::unique_ptr<Event> pending;  // exit event waiting for the tree to be gone
  Stats finalStats;                // as reported with the exit (read once posted)
  ~Child();
};

// The first of an init's children (its first line of children: the worker; orphans it adopts
// come later), or 0.
pid_t InitsFirstChild(pid_t init);

// The worker's own pid in this process's namespace: its init's child, when it has an init; 0 while
// a spawn that returned before the worker's exec is not settled.
pid_t WorkerPid(Child& c);

// Lets go what the vault keeps for `c` (its own token and one its start record took), once;
// the caller holds c.cgMu.
void ReleaseVaultHolds(Child& c);

// Hands the worker's cgroup back to the pool, once, and lets its mount namespace go; `wake` as
// CgroupPool::Retire's.
void RetireCgroup(Child& c, bool wake = true);

// Stats of a cgroup, completed by the worker's rusage (at exit) or /proc (live, pid > 0).
// `inits`: how many of the cgroup's processes are our inits (not counted as active).
Stats ReadStats(const Cgroup& cg, pid_t livePid, const struct rusage* ru, uint32_t inits = 0);

class Monitor {
 public:
  static Monitor& Get();
  uint64_t NextId() { return reg_.NextId(); }
  std::mutex& mu() { return reg_.mu(); }
  void Add(std::shared_ptr<Child> c);
  std::shared_ptr<Child> Find(uint64_t id) { return reg_.Find(id); }
  std::shared_ptr<Child> Get(uint64_t id, const char* what) { return reg_.Get(id, what); }
  std::shared_ptr<Child> Remove(uint64_t id);
  // After Remove: a worker that runs on (killOnClose: false), whose pidfd Remove left watched, is
  // reaped once it ends; what was kept for it goes then when it had its own PID namespace.
  void Orphan(std::shared_ptr<Child> c);
  std::vector<std::shared_ptr<Child>> Snapshot() { return reg_.Snapshot(); }
  // No worker of this process is registered (none running, none unreleased).
  bool Idle() { return reg_.Empty(); }
  // Records the first reason and ends the tree. False when the worker was already reaped.
  bool Terminate(Child& c, const std::string& reason);
  static void KillTree(Child& c);
  // Waits until no worker's mount namespace is being let go by the monitor thread (Reap), and
  // the vault has handled what it was sent: from then on, that of every worker whose exit was
  // posted is gone (its init reaped) or queued for the housekeeping thread (tests:
  // internals.settleCgroups).
  void SettleTeardowns();

 private:
  Monitor();
  void Wake();
  void Run();
  int NextTimeout();
  void Tick();
  void Reap(Child& c);
  // Reports its exit, once its tree is gone; `wake` false: the caller wakes the housekeeping
  // thread (CgroupPool::Wake) once it may reset the worker's cgroup.
  void Post(Child& c, bool wake = true);
  void Notified(uint64_t id, uint32_t events);
  // The listener of `c`, whose spawn returned before its exec, from its socket (readable or hung
  // up): from then on watched in that socket's stead.
  void TakeListener(Child& c, uint32_t events);

  Fd epfd_, wake_;
  std::atomic<int> tearingDown_{0};  // namespaces Reap is letting go (SettleTeardowns)
  Fd spare_;                         // closed right before a listener is received, so that a number is free for it
  Registry<Child> reg_;
  // Released workers still running (killOnClose: false) whose requests are still answered,
  // until their listener hangs up. Guarded by mu().
  std::map<uint64_t, std::shared_ptr<Child>> detached_;
  // Released while running on (killOnClose: false): their pidfds stay watched, so that each is
  // reaped once it ends (ReapOrphan), its exit reported to no one.
  std::map<uint64_t, std::shared_ptr<Child>> orphans_;
  void ReapOrphan(uint64_t id);
};

}  // namespace posix
}  // namespace si
