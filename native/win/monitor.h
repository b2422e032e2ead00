// The Windows monitor: one completion port and one background thread for every job of every
// JS environment. Job messages drive it; a safety poll covers messages the system does not
// guarantee, and the handle-count watchdog (Windows has no job limit for handles).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../registry.h"
#include "../worker.h"
#include "win_util.h"

namespace si {
namespace win {

// A shared budget: a job that each member's own job is nested in.
struct Group {
  uint64_t id = 0;
  UniqueHandle job;
};

// Completion keys: worker ids as they are, group ids with the top bit set.
constexpr ULONG_PTR kGroupKey = static_cast<ULONG_PTR>(1) << (sizeof(ULONG_PTR) * 8 - 1);

Registry<Group>& Groups();

struct Child : WorkerBase {
  std::shared_ptr<Group> group;  // keeps the group's job alive while a member lives
  DWORD pid = 0;
  UniqueHandle job, process, thread;
  uint32_t handlesLimit = 0;   // >0: the watchdog samples handle counts
  bool sharesConsole = false;  // in this process's console, its own process group
  // Guarded by Monitor::mu_ (with WorkerBase::reason and ::ended, which is "exited").
  bool resumed = false;
};

Stats QueryStats(const Child& c);

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
  void Handle(Child& c, DWORD msg, DWORD pid);
  void HandleGroup(uint64_t gid, DWORD msg, DWORD pid);
  void Poll();
  void CheckHandles(Child& c);
  void Finish(Child& c);

  UniqueHandle port_;
  Registry<Child> reg_;
  std::mutex& mu_ = reg_.mu();
};

}  // namespace win
}  // namespace si
