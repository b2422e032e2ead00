#include "monitor.h"

#include <psapi.h>

#include <algorithm>

#include "job.h"

namespace si {
namespace win {
namespace {

constexpr DWORD kSafetyPollMs = 500;         // job messages are not guaranteed
constexpr DWORD kHandleSampleMs = 50;        // the handle-count watchdog's period
constexpr DWORD kMaxListedPids = 256;        // JobObjectBasicProcessIdList entries read at once
constexpr SIZE_T kMonitorStack = 64 * 1024;  // the monitor thread's reserved stack

}  // namespace

Registry<Group>& Groups() {
  static Registry<Group>* g = new Registry<Group>();  // never destroyed, like the monitor
  return *g;
}

Stats QueryStats(const Child& c) {
  Stats s = JobStats(c.job.get());
  // The worker's own times, where the job's accounting misses them. Not on Wine: its
  // GetProcessTimes on another process does not return that process's times (measured: a
  // worker spinning two threads for 2 s showed under 0.5 s), and 0 is better than a wrong figure.
  FILETIME created, exited, kernel, user;
  if (!IsWine() && GetProcessTimes(c.process.get(), &created, &exited, &kernel, &user)) {
    auto ms = [](const FILETIME& f) {
      return static_cast<double>((static_cast<uint64_t>(f.dwHighDateTime) << 32) | f.dwLowDateTime) / 10000.0;
    };
    s.cpuUserMs = std::max(s.cpuUserMs, ms(user));
    s.cpuKernelMs = std::max(s.cpuKernelMs, ms(kernel));
  }
  PROCESS_MEMORY_COUNTERS pmc{};
  pmc.cb = sizeof(pmc);
  if (K32GetProcessMemoryInfo(c.process.get(), &pmc, sizeof(pmc)))
    s.peakMemory = std::max<uint64_t>(s.peakMemory, std::max<uint64_t>(pmc.PeakPagefileUsage, pmc.PeakWorkingSetSize));
  if (s.total == 0) s.total = 1;
  return s;
}

Monitor::Monitor() {
  port_.reset(CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1));
  if (!port_.valid()) ThrowLastError("CreateIoCompletionPort");
  HANDLE t = CreateThread(nullptr, kMonitorStack, &Monitor::ThreadMain, this, STACK_SIZE_PARAM_IS_A_RESERVATION, nullptr);
  if (t == nullptr) ThrowLastError("CreateThread");
  CloseHandle(t);
}

DWORD WINAPI Monitor::ThreadMain(void* self) {
  static_cast<Monitor*>(self)->Run();
  return 0;
}

DWORD Monitor::NextTimeout() {
  DWORD timeout = INFINITE;
  std::vector<std::shared_ptr<Child>> all = reg_.Snapshot();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& c : all) {
    if (c->ended) continue;
    // Safety net: job messages are not guaranteed, so live workers are also polled.
    timeout = std::min<DWORD>(timeout, kSafetyPollMs);
    if (c->handlesLimit > 0 && c->resumed) timeout = std::min<DWORD>(timeout, kHandleSampleMs);
  }
  return timeout;
}

void Monitor::Run() {
  for (;;) {
    DWORD timeout = NextTimeout();
    DWORD msg = 0;
    ULONG_PTR key = 0;
    OVERLAPPED* ov = nullptr;
    BOOL ok = GetQueuedCompletionStatus(port_.get(), &msg, &key, &ov, timeout);
    if ((!ok && ov == nullptr) || key == 0) {  // timed out, or woken to re-evaluate
      Poll();
      continue;
    }
    DWORD pid = static_cast<DWORD>(reinterpret_cast<ULONG_PTR>(ov));
    if (key & kGroupKey) {
      HandleGroup(static_cast<uint64_t>(key & ~kGroupKey), msg, pid);
      continue;
    }
    std::shared_ptr<Child> c = Find(static_cast<uint64_t>(key));
    if (c) Handle(*c, msg, pid);
  }
}

void Monitor::PostLimit(Child& c, const char* limit, DWORD pid, uint64_t value) { c.sink->Post(LimitEvent(c.id, limit, pid, value)); }

void Monitor::Handle(Child& c, DWORD msg, DWORD pid) {
  switch (msg) {
    case JOB_OBJECT_MSG_EXIT_PROCESS:
    case JOB_OBJECT_MSG_ABNORMAL_EXIT_PROCESS:
      if (pid == c.pid) Finish(c);
      break;
    case JOB_OBJECT_MSG_ACTIVE_PROCESS_ZERO:
      if (WaitForSingleObject(c.process.get(), 0) == WAIT_OBJECT_0) Finish(c);
      break;
    case JOB_OBJECT_MSG_PROCESS_MEMORY_LIMIT:
    case JOB_OBJECT_MSG_JOB_MEMORY_LIMIT:
      // Windows only fails the allocation; the contract is "hard limit hit = tree gone".
      PostLimit(c, "memory", pid, 0);
      Terminate(c, "memory");
      break;
    case JOB_OBJECT_MSG_END_OF_PROCESS_TIME:
      PostLimit(c, "cpu-time", pid, 0);
      if (pid == c.pid) {
        std::lock_guard<std::mutex> lock(mu_);
        if (c.reason.empty()) c.reason = "cpu-time";
      }
      break;
    case JOB_OBJECT_MSG_ACTIVE_PROCESS_LIMIT: PostLimit(c, "processes", pid, 0); break;
    default: break;
  }
}

void Monitor::HandleGroup(uint64_t gid, DWORD msg, DWORD pid) {
  if (msg != JOB_OBJECT_MSG_JOB_MEMORY_LIMIT && msg != JOB_OBJECT_MSG_PROCESS_MEMORY_LIMIT && msg != JOB_OBJECT_MSG_ACTIVE_PROCESS_LIMIT)
    return;
  UniqueHandle h(OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid));
  for (auto& c : reg_.Snapshot()) {
    if (!c->group || c->group->id != gid) continue;
    BOOL in = FALSE;
    if (!(c->pid == pid || (h.valid() && IsProcessInJob(h.get(), c->job.get(), &in) && in))) continue;
    Handle(*c, msg, pid);
    return;
  }
}

void Monitor::Poll() {
  for (auto& c : reg_.Snapshot()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (c->ended) continue;
    }
    if (WaitForSingleObject(c->process.get(), 0) == WAIT_OBJECT_0) {
      Finish(*c);
      continue;
    }
    if (c->handlesLimit > 0 && c->resumed) CheckHandles(*c);
  }
}

void Monitor::CheckHandles(Child& c) {
  struct {
    JOBOBJECT_BASIC_PROCESS_ID_LIST list;
    ULONG_PTR more[kMaxListedPids - 1];
  } ids{};
  ids.list.NumberOfAssignedProcesses = kMaxListedPids;
  if (!QueryInformationJobObject(c.job.get(), JobObjectBasicProcessIdList, &ids, sizeof(ids), nullptr)) return;
  for (DWORD i = 0; i < ids.list.NumberOfProcessIdsInList; i++) {
    DWORD pid = static_cast<DWORD>(ids.list.ProcessIdList[i]);
    UniqueHandle h(OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid));
    if (!h.valid()) continue;
    BOOL inJob = FALSE;
    if (!IsProcessInJob(h.get(), c.job.get(), &inJob) || !inJob) continue;  // pid reused
    DWORD count = 0;
    if (GetProcessHandleCount(h.get(), &count) && count > c.handlesLimit) {
      PostLimit(c, "handles", pid, count);
      Terminate(c, "handles");
      return;
    }
  }
}

void Monitor::Finish(Child& c) {
  std::string reason;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (c.ended) return;
    c.ended = true;
    reason = c.reason;
  }
  // The worker is gone: the rest of its tree goes with it (as systemd does with a unit).
  TerminateJobObject(c.job.get(), 1);
  DWORD code = 0;
  GetExitCodeProcess(c.process.get(), &code);
  c.sink->Post(ExitEvent(c.id, static_cast<int64_t>(code), 0, reason, QueryStats(c)));
}

bool Monitor::Terminate(Child& c, const std::string& reason) {
  if (!c.ClaimEnd(mu_, reason)) return false;
  if (!TerminateJobObject(c.job.get(), 1)) TerminateProcess(c.process.get(), 1);
  return true;
}

void Monitor::MarkResumed(Child& c) {
  std::lock_guard<std::mutex> lock(mu_);
  c.resumed = true;
  Wake();
}

Monitor& Monitor::Get() {
  static Monitor* m = new Monitor();  // never destroyed: the thread outlives static dtors
  return *m;
}

}  // namespace win
}  // namespace si
