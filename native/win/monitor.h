// The Windows monitor: one completion port and one background thread for every job of every
// JS environment. Job messages drive it; a safety poll covers messages the system does not
// guarantee, and the handle-count watchdog (Windows has no job limit for handles).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../registry.h"
#include "../worker.h"
#include "desktop.h"
#include "temp_dir.h"
#include "win_util.h"

namespace si {
namespace win {

// A shared budget: a job that each member's own job is nested in.
struct Group {
  uint64_t id = 0;
  UniqueHandle job;
  double capacityCores = 0;  // what its members' CPU rates are shares of
  // A member asked to outlive this process (killOnClose: false): the group's job then kills
  // nobody when released or closed; each other member's own job still does.
  std::atomic<bool> survivors{false};
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION extended{};  // its limits as set
  uint32_t processes = 0;                           // its processes budget (0: none)
  // The session its members run in (its first member's; -1: none yet): Windows keeps all of a
  // job's processes in one session.
  std::atomic<int64_t> session{-1};
};

// Completion keys: worker ids as they are, group ids with the top bit set.
constexpr ULONG_PTR kGroupKey = static_cast<ULONG_PTR>(1) << (sizeof(ULONG_PTR) * 8 - 1);

Registry<Group>& Groups();

// A member's limit messages arrive twice: under its own job's key and under its group's. The
// second of a pair (same message, same pid, other key) is an echo, not a new hit.
class LimitEchoes {
 public:
  // True when this message is a new hit to report.
  bool Admit(DWORD msg, DWORD pid, bool fromGroup) {
    for (Seen& s : seen_) {
      if (s.live && s.msg == msg && s.pid == pid && s.fromGroup != fromGroup) {
        s.live = false;
        return false;
      }
    }
    seen_[next_++ % kKept] = Seen{msg, pid, fromGroup, true};
    return true;
  }

 private:
  static constexpr size_t kKept = 8;  // hits awaiting their echo (other processes' may interleave)
  struct Seen {
    DWORD msg = 0, pid = 0;
    bool fromGroup = false, live = false;
  };
  Seen seen_[kKept];
  size_t next_ = 0;
};

struct Child : WorkerBase {
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  // A temp directory nobody took (a failed spawn, a worker released without its end seen)
  // goes to the janitor, which waits for the job's processes first.
  ~Child();
  std::shared_ptr<Group> group;  // keeps the group's job alive while a member lives
  DWORD pid = 0;
  UniqueHandle job, process, thread;
  uint32_t handlesLimit = 0;   // >0: the watchdog samples handle counts
  bool sharesConsole = false;  // in this process's console, its own process group
  uint64_t cpuTimeMs = 0;      // its CPU-time limit (0: none), for the reason at its end
  double cpuBase = 0;          // the cores the jobs around its own allow (its CPU rate is a share of them)
  DWORD jobFlags = 0;          // CREATE_BREAKAWAY_FROM_JOB: out of this process's job, for another session
  bool container = false;      // in an AppContainer of its own (network: 'none', filesystem)
  PrivateTemp temp;            // tempDir, privileges 'low': its own TEMP (removed at its end)
  // What it was granted for its lifetime: its SID's access to this session's window station,
  // desktop and named objects; its AppContainer profile and access to the paths it may use
  // (undone at its end; left to a worker that outlives this process).
  std::mutex grantsMu;
  Revocables grants;
  // Guarded by Monitor::mu_.
  bool finishQueued = false;  // the poll saw it gone; its job's queued messages come first
  LimitEchoes echoes;         // a member's limit messages arrive under its group's key too
  // Guarded by Monitor::mu_ (with WorkerBase::reason and ::ended, which is "exited").
  bool resumed = false;
};

Stats QueryStats(const Child& c);

// The handle watchdog, about a process the job listed but this launcher could not open (`err`):
// whether it is gone (no such process, or its pid reused by another since: the job, listed again,
// no longer has it) rather than a member denying the launcher its query right (a violation).
bool UnopenedIsGone(DWORD err, bool stillListed);

// The worker has ended: its temp directory (if one is to go) to the janitor, which posts `exit`
// once the directory's path is gone; else `exit` is posted now. `exit` may be null.
void RetireTemp(Child& c, std::unique_ptr<Event> exit);

class Monitor {
 public:
  static Monitor& Get();
  HANDLE port() const { return port_.get(); }
  uint64_t NextId() { return reg_.NextId(); }
  void Add(std::shared_ptr<Child> c) {
    reg_.Add(std::move(c));
    Wake();
  }
  std::shared_ptr<Child> Find(uint64_t id) { return reg_.Find(id); }
  std::shared_ptr<Child> Get(uint64_t id, const char* what) { return reg_.Get(id, what); }
  std::shared_ptr<Child> Remove(uint64_t id) { return reg_.Remove(id); }
  // Records the first reason and ends the tree. False when the worker had already exited.
  bool Terminate(Child& c, const std::string& reason);
  void MarkResumed(Child& c);

 private:
  Monitor();
  static DWORD WINAPI ThreadMain(void* self);
  void Wake() { PostQueuedCompletionStatus(port_.get(), 0, 0, nullptr); }  // key 0: re-evaluate
  DWORD NextTimeout();
  void Run();
  void PostLimit(Child& c, const char* limit, DWORD pid, uint64_t value);
  bool AdmitLimit(Child& c, DWORD msg, DWORD pid, bool fromGroup);
  void Handle(Child& c, DWORD msg, DWORD pid, bool fromGroup = false);
  void HandleGroup(uint64_t gid, DWORD msg, DWORD pid);
  void EnforceGroupProcesses(uint64_t gid, DWORD pid);
  void Poll();
  void QueueFinish(Child& c);
  std::string ReasonFromState(const Child& c);
  void CheckHandles(Child& c);
  void Finish(Child& c);

  UniqueHandle port_;
  ULONGLONG nextPoll_ = 0;  // the poll runs by this tick even while messages keep coming
  Registry<Child> reg_;
  std::mutex& mu_ = reg_.mu();
};

}  // namespace win
}  // namespace si
