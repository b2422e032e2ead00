#include "monitor.h"

#include <psapi.h>

#include <algorithm>

#include "janitor.h"
#include "job.h"

namespace si {
namespace win {
namespace {

constexpr DWORD kSafetyPollMs = 500;      // job messages are not guaranteed
constexpr DWORD kHandleSampleMs = 50;     // the handle-count watchdog's period
constexpr DWORD kFirstListedPids = 64;    // JobObjectBasicProcessIdList: first guess, then grown
constexpr DWORD kFinishMsg = 0x53490001;  // posted behind a job's queued messages: "it has exited"
constexpr ULONGLONG kNever = ~0ull;
constexpr ULONGLONG kTicksPerMs = 10000;  // FILETIME units

// Every process id in `job` (however many). False when the job cannot be listed.
bool JobPids(HANDLE job, std::vector<DWORD>* pids) {
  DWORD room = kFirstListedPids;
  for (;;) {
    std::vector<BYTE> buf(sizeof(JOBOBJECT_BASIC_PROCESS_ID_LIST) + room * sizeof(ULONG_PTR));
    auto* list = reinterpret_cast<JOBOBJECT_BASIC_PROCESS_ID_LIST*>(buf.data());
    list->NumberOfAssignedProcesses = room;
    BOOL ok = QueryInformationJobObject(job, JobObjectBasicProcessIdList, list, static_cast<DWORD>(buf.size()), nullptr);
    if (!ok && GetLastError() != ERROR_MORE_DATA) return false;
    if (ok && list->NumberOfProcessIdsInList >= list->NumberOfAssignedProcesses) {
      pids->assign(list->ProcessIdList, list->ProcessIdList + list->NumberOfProcessIdsInList);
      return true;
    }
    room = std::max(room * 2, list->NumberOfAssignedProcesses + kFirstListedPids);
  }
}

uint64_t UserTimeTicks(HANDLE process) {
  FILETIME created, exited, kernel, user;
  if (!GetProcessTimes(process, &created, &exited, &kernel, &user)) return 0;
  return (static_cast<uint64_t>(user.dwHighDateTime) << 32) | user.dwLowDateTime;
}
constexpr SIZE_T kMonitorStack = 64 * 1024;  // the monitor thread's reserved stack

}  // namespace

Registry<Group>& Groups() {
  static Registry<Group>* g = new Registry<Group>();  // never destroyed, like the monitor
  return *g;
}

Child::~Child() {
  try {
    RetireTemp(*this, nullptr);
  } catch (...) {  // a destructor: the directory is then left for a later launcher's sweep
  }
}

void RetireTemp(Child& c, std::unique_ptr<Event> exit) {
  DirHandoff dir = c.temp.Take();
  if (dir.valid()) {
    try {
      Janitor& janitor = Janitor::Get();  // may fail (no thread): then the exit is posted here
      // The janitor waits on the job (not the monitor: it serves every worker), through a
      // handle of its own that can only query.
      HANDLE job = nullptr;
      if (c.job.valid()) DuplicateHandle(GetCurrentProcess(), c.job.get(), GetCurrentProcess(), &job, JOB_OBJECT_QUERY, FALSE, 0);
      std::shared_ptr<EventSink> sink = exit ? c.sink : nullptr;  // before `exit` is moved from
      janitor.Retire(std::move(dir), UniqueHandle(job), std::move(sink), std::move(exit));
      return;
    } catch (const std::exception& e) {
      DebugLine(std::string("worker ") + std::to_string(c.id) + ": its temp directory is left in place: " + e.what());
    }
  }
  if (exit) c.sink->Post(std::move(exit));
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

// The poll's period now: the handle watchdog's where one samples, the safety net's otherwise.
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
    ULONGLONG now = GetTickCount64();
    DWORD wait = nextPoll_ == kNever ? INFINITE : static_cast<DWORD>(nextPoll_ > now ? nextPoll_ - now : 0);
    DWORD msg = 0;
    ULONG_PTR key = 0;
    OVERLAPPED* ov = nullptr;
    BOOL ok = GetQueuedCompletionStatus(port_.get(), &msg, &key, &ov, wait);
    if ((!ok && ov == nullptr) || key == 0) {  // timed out, or woken to re-evaluate
      Poll();
      continue;
    }
    DWORD pid = static_cast<DWORD>(reinterpret_cast<ULONG_PTR>(ov));
    if (key & kGroupKey) {
      HandleGroup(static_cast<uint64_t>(key & ~kGroupKey), msg, pid);
    } else {
      std::shared_ptr<Child> c = Find(static_cast<uint64_t>(key));
      if (c) Handle(*c, msg, pid);
    }
    // A worker that keeps the port busy (spawning, hitting limits) must not starve the poll.
    if (nextPoll_ != kNever && GetTickCount64() >= nextPoll_) Poll();
  }
}

void Monitor::PostLimit(Child& c, const char* limit, DWORD pid, uint64_t value) { c.sink->Post(LimitEvent(c.id, limit, pid, value)); }

bool Monitor::AdmitLimit(Child& c, DWORD msg, DWORD pid, bool fromGroup) {
  std::lock_guard<std::mutex> lock(mu_);
  return c.echoes.Admit(msg, pid, fromGroup);
}

void Monitor::Handle(Child& c, DWORD msg, DWORD pid, bool fromGroup) {
  switch (msg) {
    case JOB_OBJECT_MSG_EXIT_PROCESS:
    case JOB_OBJECT_MSG_ABNORMAL_EXIT_PROCESS:
      if (pid == c.pid) Finish(c);
      break;
    case JOB_OBJECT_MSG_ACTIVE_PROCESS_ZERO:
    case kFinishMsg:
      if (WaitForSingleObject(c.process.get(), 0) == WAIT_OBJECT_0) Finish(c);
      break;
    case JOB_OBJECT_MSG_PROCESS_MEMORY_LIMIT:
    case JOB_OBJECT_MSG_JOB_MEMORY_LIMIT:
      // Windows only fails the allocation; the contract is "hard limit hit = tree gone".
      if (AdmitLimit(c, msg, pid, fromGroup)) PostLimit(c, "memory", pid, 0);
      Terminate(c, "memory");
      break;
    case JOB_OBJECT_MSG_END_OF_PROCESS_TIME:
      if (AdmitLimit(c, msg, pid, fromGroup)) PostLimit(c, "cpu-time", pid, 0);
      if (pid == c.pid) {
        std::lock_guard<std::mutex> lock(mu_);
        if (c.reason.empty()) c.reason = "cpu-time";
      }
      break;
    case JOB_OBJECT_MSG_ACTIVE_PROCESS_LIMIT:
      if (AdmitLimit(c, msg, pid, fromGroup)) PostLimit(c, "processes", pid, 0);
      break;
    default: break;
  }
}

void Monitor::HandleGroup(uint64_t gid, DWORD msg, DWORD pid) {
  if (msg == JOB_OBJECT_MSG_NEW_PROCESS) {
    EnforceGroupProcesses(gid, pid);
    return;
  }
  if (msg != JOB_OBJECT_MSG_JOB_MEMORY_LIMIT && msg != JOB_OBJECT_MSG_PROCESS_MEMORY_LIMIT && msg != JOB_OBJECT_MSG_ACTIVE_PROCESS_LIMIT)
    return;
  UniqueHandle h(OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid));
  for (auto& c : reg_.Snapshot()) {
    if (!c->group || c->group->id != gid) continue;
    BOOL in = FALSE;
    if (!(c->pid == pid || (h.valid() && IsProcessInJob(h.get(), c->job.get(), &in) && in))) continue;
    Handle(*c, msg, pid, true);
    return;
  }
}

// A new process in a group over its processes budget is ended at once, and reported to the
// member it belongs to (a member worker started over budget ends with reason 'processes').
void Monitor::EnforceGroupProcesses(uint64_t gid, DWORD pid) {
  std::shared_ptr<Group> g = Groups().Find(gid);
  JOBOBJECT_BASIC_ACCOUNTING_INFORMATION acct{};
  if (!g || g->processes == 0 || IsWine() ||  // see GroupProcessesEntry
      !QueryInformationJobObject(g->job.get(), JobObjectBasicAccountingInformation, &acct, sizeof(acct), nullptr) ||
      acct.ActiveProcesses <= g->processes)
    return;
  UniqueHandle h(OpenProcess(PROCESS_TERMINATE | PROCESS_QUERY_INFORMATION, FALSE, pid));
  BOOL in = FALSE;
  if (!h.valid() || !IsProcessInJob(h.get(), g->job.get(), &in) || !in) return;  // gone, or pid reused
  TerminateProcess(h.get(), ERROR_NOT_ENOUGH_QUOTA);
  for (auto& c : reg_.Snapshot()) {
    if (c->group != g || !(c->pid == pid || (IsProcessInJob(h.get(), c->job.get(), &in) && in))) continue;
    if (AdmitLimit(*c, JOB_OBJECT_MSG_ACTIVE_PROCESS_LIMIT, pid, true)) PostLimit(*c, "processes", pid, acct.ActiveProcesses);
    if (c->pid == pid) Terminate(*c, "processes");
    return;
  }
}

void Monitor::Poll() {
  for (auto& c : reg_.Snapshot()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (c->ended || c->finishQueued) continue;
    }
    if (WaitForSingleObject(c->process.get(), 0) == WAIT_OBJECT_0) {
      QueueFinish(*c);
      continue;
    }
    if (c->handlesLimit > 0 && c->resumed) CheckHandles(*c);
  }
  DWORD period = NextTimeout();
  nextPoll_ = period == INFINITE ? kNever : GetTickCount64() + period;
}

// The poll saw the worker gone. Messages its job queued before that (a limit hit, the time
// limit's end) are still in the port: finish behind them, so that they decide the reason.
void Monitor::QueueFinish(Child& c) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    c.finishQueued = true;
  }
  if (!PostQueuedCompletionStatus(port_.get(), kFinishMsg, static_cast<ULONG_PTR>(c.id), nullptr)) Finish(c);
}

bool UnopenedIsGone(DWORD err, bool stillListed) { return err == ERROR_INVALID_PARAMETER || !stillListed; }

// The handle watchdog. Every process in the job is checked, however many; one that cannot be
// opened or counted (it denied its own query right) is a violation, not a pass.
void Monitor::CheckHandles(Child& c) {
  std::vector<DWORD> pids;
  if (!JobPids(c.job.get(), &pids)) return;
  for (DWORD pid : pids) {
    UniqueHandle opened;
    HANDLE h = c.process.get();  // the worker itself: the handle we hold, whatever its DACL says now
    if (pid != c.pid) {
      opened.reset(OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid));
      if (!opened.valid()) {
        // Gone since the listing: no such pid now, or its pid already reused by a process this
        // launcher may not open (ERROR_ACCESS_DENIED): the job, listed again, no longer has it.
        DWORD err = GetLastError();
        std::vector<DWORD> again;
        if (err != ERROR_INVALID_PARAMETER && !JobPids(c.job.get(), &again)) return;  // cannot tell now: the next sample decides
        if (UnopenedIsGone(err, std::find(again.begin(), again.end(), pid) != again.end())) continue;
      }
      h = opened.get();
      BOOL inJob = FALSE;
      if (opened.valid() && (!IsProcessInJob(h, c.job.get(), &inJob) || !inJob)) continue;  // pid reused
    }
    DWORD count = 0, code = 0;
    bool counted = h != nullptr && GetProcessHandleCount(h, &count);
    if (counted && count <= c.handlesLimit) continue;
    if (!counted && h != nullptr && GetExitCodeProcess(h, &code) && code != STILL_ACTIVE) continue;
    PostLimit(c, "handles", pid, count);
    Terminate(c, "handles");
    return;
  }
}

// What the job says when no message gave a reason: a worker whose user time reached its CPU-time
// limit was ended by it (the kernel ends it exactly there; the message is not guaranteed).
std::string Monitor::ReasonFromState(const Child& c) {
  if (c.cpuTimeMs > 0 && UserTimeTicks(c.process.get()) >= c.cpuTimeMs * kTicksPerMs) return "cpu-time";
  return "";
}

void Monitor::Finish(Child& c) {
  std::string reason;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (c.ended) return;
    c.ended = true;
    reason = c.reason;
  }
  if (reason.empty()) {
    reason = ReasonFromState(c);
    if (!reason.empty()) PostLimit(c, reason.c_str(), c.pid, 0);
  }
  // The worker is gone: the rest of its tree goes with it (as systemd does with a unit).
  TerminateJobObject(c.job.get(), 1);
  {
    std::lock_guard<std::mutex> lock(c.grantsMu);
    c.grants.clear();  // its SID's access to the desktop and named objects
  }
  DWORD code = 0;
  GetExitCodeProcess(c.process.get(), &code);
  // With a temp directory, 'exit' comes once its path is gone (after the tree has ended).
  RetireTemp(c, ExitEvent(c.id, static_cast<int64_t>(code), 0, reason, QueryStats(c)));
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
