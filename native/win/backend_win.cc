// Windows backend: one job object per worker, one completion port and one background thread
// for the whole process, restricted tokens, and an explicit handle list for inheritance.
#define _CRT_RAND_S
#include <stdlib.h>

#include "win_util.h"
#include "../registry.h"

#include <psapi.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <mutex>

namespace si {
namespace win {
namespace {

// A shared budget: a job that each member's own job is nested in.
struct Group {
  uint64_t id = 0;
  UniqueHandle job;
};

// Completion keys: worker ids as they are, group ids with the top bit set.
constexpr ULONG_PTR kGroupKey = static_cast<ULONG_PTR>(1) << (sizeof(ULONG_PTR) * 8 - 1);

Registry<Group>& Groups() {
  static Registry<Group>* g = new Registry<Group>();
  return *g;
}

struct Child {
  uint64_t id = 0;
  std::shared_ptr<Group> group;  // keeps the group's job alive while a member lives
  DWORD pid = 0;
  UniqueHandle job, process, thread;
  std::vector<UniqueHandle> serverPipes;  // child ends we still hold until Resume checks them
  std::shared_ptr<EventSink> sink;
  uint32_t handlesLimit = 0;  // >0: the watchdog samples handle counts
  bool killOnClose = true;
  // Guarded by Monitor::mu_.
  std::string reason;
  bool resumed = false;
  bool exited = false;
};

// What a job's own accounting says (a worker's job, or a group's, which includes its members').
Stats JobStats(HANDLE job) {
  Stats s;
  JOBOBJECT_BASIC_ACCOUNTING_INFORMATION acct{};
  if (QueryInformationJobObject(job, JobObjectBasicAccountingInformation, &acct, sizeof(acct), nullptr)) {
    s.cpuUserMs = static_cast<double>(acct.TotalUserTime.QuadPart) / 10000.0;
    s.cpuKernelMs = static_cast<double>(acct.TotalKernelTime.QuadPart) / 10000.0;
    s.active = acct.ActiveProcesses;
    s.total = acct.TotalProcesses;
  }
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION ext{};
  if (QueryInformationJobObject(job, JobObjectExtendedLimitInformation, &ext, sizeof(ext), nullptr))
    s.peakMemory = ext.PeakJobMemoryUsed;
  return s;
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

// Process-wide: one completion port and one thread serve every job of every JS environment.
class Monitor {
 public:
  static Monitor& Get() {
    static Monitor* m = new Monitor();  // never destroyed: the thread outlives static dtors
    return *m;
  }
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
  bool Terminate(Child& c, const std::string& reason) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (c.exited) return false;
      if (c.reason.empty()) c.reason = reason;
    }
    if (!TerminateJobObject(c.job.get(), 1)) TerminateProcess(c.process.get(), 1);
    return true;
  }
  void MarkResumed(Child& c) {
    std::lock_guard<std::mutex> lock(mu_);
    c.resumed = true;
    Wake();
  }

 private:
  Monitor() {
    port_.reset(CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1));
    if (!port_.valid()) ThrowLastError("CreateIoCompletionPort");
    HANDLE t = CreateThread(nullptr, 64 * 1024, &Monitor::ThreadMain, this, STACK_SIZE_PARAM_IS_A_RESERVATION, nullptr);
    if (t == nullptr) ThrowLastError("CreateThread");
    CloseHandle(t);
  }
  static DWORD WINAPI ThreadMain(void* self) {
    static_cast<Monitor*>(self)->Run();
    return 0;
  }
  void Wake() { PostQueuedCompletionStatus(port_.get(), 0, 0, nullptr); }  // key 0: re-evaluate

  void Run() {
    for (;;) {
      DWORD timeout = INFINITE;
      std::vector<std::shared_ptr<Child>> all = reg_.Snapshot();
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (auto& c : all) {
          if (c->exited) continue;
          // Safety net: job messages are not guaranteed, so live workers are also polled.
          timeout = std::min<DWORD>(timeout, 500);
          if (c->handlesLimit > 0 && c->resumed) timeout = std::min<DWORD>(timeout, 50);
        }
      }
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

  void PostLimit(Child& c, const char* limit, DWORD pid, uint64_t value) { c.sink->Post(LimitEvent(c.id, limit, pid, value)); }

  void Handle(Child& c, DWORD msg, DWORD pid) {
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
      case JOB_OBJECT_MSG_ACTIVE_PROCESS_LIMIT:
        PostLimit(c, "processes", pid, 0);
        break;
      default:
        break;
    }
  }

  // A group's limit messages name a process; the member whose job holds it answers for it,
  // as if the message were its own.
  void HandleGroup(uint64_t gid, DWORD msg, DWORD pid) {
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

  void Poll() {
    for (auto& c : reg_.Snapshot()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (c->exited) continue;
      }
      if (WaitForSingleObject(c->process.get(), 0) == WAIT_OBJECT_0) {
        Finish(*c);
        continue;
      }
      if (c->handlesLimit > 0 && c->resumed) CheckHandles(*c);
    }
  }

  // The handle-count watchdog: Windows has no job limit for handles.
  void CheckHandles(Child& c) {
    struct {
      JOBOBJECT_BASIC_PROCESS_ID_LIST list;
      ULONG_PTR more[255];
    } ids{};
    ids.list.NumberOfAssignedProcesses = 256;
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

  void Finish(Child& c) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (c.exited) return;
      c.exited = true;
    }
    // The worker is gone: the rest of its tree goes with it (as systemd does with a unit).
    TerminateJobObject(c.job.get(), 1);
    auto ev = std::make_unique<Event>();
    ev->type = Event::Exit;
    ev->id = c.id;
    DWORD code = 0;
    GetExitCodeProcess(c.process.get(), &code);
    ev->exitCode = static_cast<int64_t>(code);
    {
      std::lock_guard<std::mutex> lock(mu_);
      ev->reason = c.reason;
    }
    ev->terminated = !ev->reason.empty();
    ev->stats = QueryStats(c);
    c.sink->Post(std::move(ev));
  }

  UniqueHandle port_;
  Registry<Child> reg_;
  std::mutex& mu_ = reg_.mu();
};

// ---- limits

struct JobPlan {
  std::vector<Enforcement> enforcement;
  uint32_t handlesLimit = 0;
};

std::string StoredButNotEnforced() {
  return "the host accepted the job limit but reading it back returned nothing: it stores no limits and "
         "enforces none (Wine behaves like this)";
}

DWORD LogicalCpus() {
  DWORD n = GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
  return n == 0 ? 1 : n;
}

bool HandleCountWorks(std::string* why) {
  DWORD n = 0;
  if (!GetProcessHandleCount(GetCurrentProcess(), &n)) {
    *why = "GetProcessHandleCount failed: " + Win32Message(GetLastError());
    return false;
  }
  if (n == 0) {
    *why = "GetProcessHandleCount reports 0 handles for this process: the host does not count handles (Wine)";
    return false;
  }
  return true;
}

void Record(JobPlan& plan, const char* limit, const char* mechanism, bool ok, const std::string& why) {
  plan.enforcement.push_back(MakeEnforcement(limit, ok, mechanism, why));
}

// Applies every requested limit to `job` and reads it back. Returns what is enforced.
JobPlan ApplyLimits(HANDLE job, const Limits& l, bool killOnClose) {
  JobPlan plan;
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION info{};
  DWORD& flags = info.BasicLimitInformation.LimitFlags;
  flags = JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION;
  if (killOnClose) flags |= JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
  if (l.memoryProcess) {
    flags |= JOB_OBJECT_LIMIT_PROCESS_MEMORY;
    info.ProcessMemoryLimit = static_cast<SIZE_T>(l.memoryProcess);
  }
  if (l.memoryTotal) {
    flags |= JOB_OBJECT_LIMIT_JOB_MEMORY;
    info.JobMemoryLimit = static_cast<SIZE_T>(l.memoryTotal);
  }
  if (l.processes) {
    flags |= JOB_OBJECT_LIMIT_ACTIVE_PROCESS;
    info.BasicLimitInformation.ActiveProcessLimit = l.processes;
  }
  if (l.cpuTimeMs) {
    flags |= JOB_OBJECT_LIMIT_PROCESS_TIME;
    info.BasicLimitInformation.PerProcessUserTimeLimit.QuadPart = static_cast<LONGLONG>(l.cpuTimeMs) * 10000;
  }
  if (!l.affinity.empty()) {
    ULONG_PTR mask = 0;
    for (uint32_t cpu : l.affinity) {
      if (cpu >= sizeof(ULONG_PTR) * 8)
        throw SysError("ERR_OUT_OF_RANGE", 0, "", "options.cpu.affinity: CPU " + std::to_string(cpu) + " is beyond the first processor group");
      mask |= static_cast<ULONG_PTR>(1) << cpu;
    }
    DWORD_PTR processMask = 0, systemMask = 0;
    if (GetProcessAffinityMask(GetCurrentProcess(), &processMask, &systemMask) && (mask & ~systemMask) != 0)
      throw SysError("ERR_OUT_OF_RANGE", 0, "", "options.cpu.affinity names a CPU this machine does not have");
    flags |= JOB_OBJECT_LIMIT_AFFINITY;
    info.BasicLimitInformation.Affinity = mask;
  }
  if (!SetInformationJobObject(job, JobObjectExtendedLimitInformation, &info, sizeof(info)))
    ThrowLastError("SetInformationJobObject", "JobObjectExtendedLimitInformation");

  JOBOBJECT_EXTENDED_LIMIT_INFORMATION back{};
  bool readOk = QueryInformationJobObject(job, JobObjectExtendedLimitInformation, &back, sizeof(back), nullptr) != 0;
  std::string readWhy = readOk ? StoredButNotEnforced() : "QueryInformationJobObject failed: " + Win32Message(GetLastError());
  DWORD got = readOk ? back.BasicLimitInformation.LimitFlags : 0;
  auto check = [&](const char* name, DWORD flag, bool valueOk) {
    bool ok = (got & flag) == flag && valueOk;
    Record(plan, name, "job-object", ok, readWhy);
  };
  if (l.memoryProcess) check("memory.process", JOB_OBJECT_LIMIT_PROCESS_MEMORY, back.ProcessMemoryLimit == info.ProcessMemoryLimit);
  if (l.memoryTotal) check("memory.total", JOB_OBJECT_LIMIT_JOB_MEMORY, back.JobMemoryLimit == info.JobMemoryLimit);
  if (l.processes)
    check("processes", JOB_OBJECT_LIMIT_ACTIVE_PROCESS, back.BasicLimitInformation.ActiveProcessLimit == l.processes);
  if (l.cpuTimeMs)
    check("cpu.time", JOB_OBJECT_LIMIT_PROCESS_TIME,
          back.BasicLimitInformation.PerProcessUserTimeLimit.QuadPart == info.BasicLimitInformation.PerProcessUserTimeLimit.QuadPart);
  if (!l.affinity.empty())
    check("cpu.affinity", JOB_OBJECT_LIMIT_AFFINITY, back.BasicLimitInformation.Affinity == info.BasicLimitInformation.Affinity);

  if (l.cpuCores > 0) {
    double rate = std::ceil(l.cpuCores / static_cast<double>(LogicalCpus()) * 10000.0);
    JOBOBJECT_CPU_RATE_CONTROL_INFORMATION cpu{};
    cpu.ControlFlags = JOB_OBJECT_CPU_RATE_CONTROL_ENABLE | JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP;
    cpu.CpuRate = static_cast<DWORD>(std::min(10000.0, std::max(1.0, rate)));
    if (!SetInformationJobObject(job, JobObjectCpuRateControlInformation, &cpu, sizeof(cpu))) {
      Record(plan, "cpu.cores", "job-object-cpu-rate", false,
             "SetInformationJobObject(JobObjectCpuRateControlInformation) failed: " + Win32Message(GetLastError()) +
                 " (CPU rate control needs Windows 8 or later)");
    } else {
      JOBOBJECT_CPU_RATE_CONTROL_INFORMATION cback{};
      bool ok = QueryInformationJobObject(job, JobObjectCpuRateControlInformation, &cback, sizeof(cback), nullptr) &&
                (cback.ControlFlags & JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP) && cback.CpuRate == cpu.CpuRate;
      Record(plan, "cpu.cores", "job-object-cpu-rate", ok, StoredButNotEnforced());
    }
  }
  if (l.handles) {
    std::string why;
    bool ok = HandleCountWorks(&why);
    Record(plan, "handles", "watchdog", ok, why);
    if (ok) plan.handlesLimit = l.handles;
  }
  return plan;
}

// ---- tokens

// A SID made for one worker (S-1-5-21-r1-r2-r3, random): its restricting SID and the only
// SID, besides its user and SYSTEM, that its own objects' default DACL admits.
struct WorkerSid {
  BYTE buf[SECURITY_MAX_SID_SIZE];
  PSID get() { return reinterpret_cast<PSID>(buf); }
  WorkerSid() {
    SID_IDENTIFIER_AUTHORITY nt = SECURITY_NT_AUTHORITY;
    unsigned int r[3] = {0, 0, 0};
    for (unsigned int& x : r)
      if (rand_s(&x) != 0) x = GetTickCount() ^ GetCurrentProcessId() ^ static_cast<unsigned int>(reinterpret_cast<uintptr_t>(&x));
    if (!InitializeSid(get(), &nt, 4)) ThrowLastError("InitializeSid");
    *GetSidSubAuthority(get(), 0) = SECURITY_NT_NON_UNIQUE;
    for (DWORD i = 0; i < 3; i++) *GetSidSubAuthority(get(), i + 1) = r[i];
  }
};

struct WellKnownSid {
  BYTE buf[SECURITY_MAX_SID_SIZE];
  explicit WellKnownSid(WELL_KNOWN_SID_TYPE type) {
    DWORD size = sizeof(buf);
    if (!CreateWellKnownSid(type, nullptr, buf, &size)) ThrowLastError("CreateWellKnownSid");
  }
  PSID get() { return reinterpret_cast<PSID>(buf); }
};

// The token's user SID (a copy).
std::vector<BYTE> UserSidOf(HANDLE token) {
  DWORD size = 0;
  GetTokenInformation(token, ::TokenUser, nullptr, 0, &size);
  std::vector<BYTE> buf(size ? size : 1);
  if (!GetTokenInformation(token, ::TokenUser, buf.data(), size, &size)) ThrowLastError("GetTokenInformation", "TokenUser");
  PSID sid = reinterpret_cast<TOKEN_USER*>(buf.data())->User.Sid;
  return std::vector<BYTE>(reinterpret_cast<BYTE*>(sid), reinterpret_cast<BYTE*>(sid) + GetLengthSid(sid));
}

// What the worker's own objects (its process, threads, files it creates) grant: its own SID,
// its user and SYSTEM. Not RESTRICTED, Everyone or Users, which every worker has: a sibling
// passes the user check but not the restricted one, so it cannot open this worker.
void SetDefaultDacl(HANDLE token, PSID worker) {
  std::vector<BYTE> user = UserSidOf(token);
  WellKnownSid system(WinLocalSystemSid);
  PSID sids[] = {worker, reinterpret_cast<PSID>(user.data()), system.get()};
  DWORD size = sizeof(ACL);
  for (PSID sid : sids) size += sizeof(ACCESS_ALLOWED_ACE) - sizeof(DWORD) + GetLengthSid(sid);
  std::vector<BYTE> acl(size);
  if (!InitializeAcl(reinterpret_cast<PACL>(acl.data()), size, ACL_REVISION)) ThrowLastError("InitializeAcl");
  for (PSID sid : sids)
    if (!AddAccessAllowedAce(reinterpret_cast<PACL>(acl.data()), ACL_REVISION, GENERIC_ALL, sid)) ThrowLastError("AddAccessAllowedAce");
  TOKEN_DEFAULT_DACL dd{reinterpret_cast<PACL>(acl.data())};
  if (!SetTokenInformation(token, TokenDefaultDacl, &dd, sizeof(dd))) ThrowLastError("SetTokenInformation", "TokenDefaultDacl");
}

// Integrity: medium for 'restricted' (never raised), low for 'low'.
void LowerIntegrity(HANDLE token, Privileges p) {
  DWORD target = p == Privileges::Low ? SECURITY_MANDATORY_LOW_RID : SECURITY_MANDATORY_MEDIUM_RID;
  DWORD current = SECURITY_MANDATORY_HIGH_RID;
  DWORD size = 0;
  GetTokenInformation(token, TokenIntegrityLevel, nullptr, 0, &size);
  if (size > 0) {
    std::vector<BYTE> buf(size);
    if (GetTokenInformation(token, TokenIntegrityLevel, buf.data(), size, &size)) {
      auto* label = reinterpret_cast<TOKEN_MANDATORY_LABEL*>(buf.data());
      PSID sid = label->Label.Sid;
      current = *GetSidSubAuthority(sid, static_cast<DWORD>(*GetSidSubAuthorityCount(sid) - 1));
    }
  }
  if (current <= target) return;
  SID_IDENTIFIER_AUTHORITY mandatory = SECURITY_MANDATORY_LABEL_AUTHORITY;
  PSID sid = nullptr;
  if (!AllocateAndInitializeSid(&mandatory, 1, target, 0, 0, 0, 0, 0, 0, 0, &sid)) ThrowLastError("AllocateAndInitializeSid");
  TOKEN_MANDATORY_LABEL label{};
  label.Label.Attributes = SE_GROUP_INTEGRITY;
  label.Label.Sid = sid;
  BOOL ok = SetTokenInformation(token, TokenIntegrityLevel, &label, sizeof(label) + GetLengthSid(sid));
  DWORD err = GetLastError();
  FreeSid(sid);
  if (!ok) throw Win32Error("SetTokenInformation", err, "TokenIntegrityLevel");
}

// The worker's token (Chromium's USER_LIMITED level, with a SID of its own in place of the
// logon SID): every privilege but SeChangeNotify removed, Administrators deny-only, and the
// restricting SIDs {worker, Everyone, Users, RESTRICTED}. An access check must then pass for
// the user's SIDs and again for the restricting SIDs: Node's process and its jobs grant the
// user and SYSTEM only, so the worker cannot open them; system files grant Users and read.
UniqueHandle MakeRestrictedToken(Privileges p) {
  HANDLE raw = nullptr;
  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_DUPLICATE | TOKEN_QUERY | TOKEN_ASSIGN_PRIMARY | TOKEN_ADJUST_DEFAULT, &raw))
    ThrowLastError("OpenProcessToken");
  UniqueHandle self(raw);
  WellKnownSid admins(WinBuiltinAdministratorsSid), everyone(WinWorldSid), users(WinBuiltinUsersSid), restrictedCode(WinRestrictedCodeSid);
  WorkerSid worker;
  SID_AND_ATTRIBUTES denyOnly{admins.get(), 0};
  SID_AND_ATTRIBUTES restricting[] = {{worker.get(), 0}, {everyone.get(), 0}, {users.get(), 0}, {restrictedCode.get(), 0}};
  HANDLE restricted = nullptr;
  if (!CreateRestrictedToken(self.get(), DISABLE_MAX_PRIVILEGE, 1, &denyOnly, 0, nullptr, ARRAYSIZE(restricting), restricting, &restricted))
    ThrowLastError("CreateRestrictedToken");
  UniqueHandle token(restricted);
  SetDefaultDacl(token.get(), worker.get());
  LowerIntegrity(token.get(), p);
  return token;
}

// ---- stdio and handles

using GetOsfHandleFn = HANDLE(__cdecl*)(int);

// Node's fds live in node.exe's own C runtime; only its libuv can translate them.
HANDLE NodeFdToHandle(int fd) {
  static GetOsfHandleFn fn = reinterpret_cast<GetOsfHandleFn>(
      reinterpret_cast<void*>(GetProcAddress(GetModuleHandleW(nullptr), "uv_get_osfhandle")));
  if (fn == nullptr)
    throw SysError("ENOTSUP", 0, "uv_get_osfhandle", "the host executable does not export uv_get_osfhandle: Node fds cannot be translated");
  HANDLE h = fn(fd);
  if (h == INVALID_HANDLE_VALUE || h == nullptr)
    throw SysError("EBADF", ERROR_INVALID_HANDLE, "uv_get_osfhandle", "fd " + std::to_string(fd) + " is not an open file descriptor");
  return h;
}

UniqueHandle DuplicateInheritable(HANDLE h, const std::string& what) {
  HANDLE dup = nullptr;
  if (!DuplicateHandle(GetCurrentProcess(), h, GetCurrentProcess(), &dup, 0, TRUE, DUPLICATE_SAME_ACCESS))
    ThrowLastError("DuplicateHandle", what);
  return UniqueHandle(dup);
}

std::string RandomHex() {
  unsigned int a = 0, b = 0;
  if (rand_s(&a) != 0 || rand_s(&b) != 0) {
    LARGE_INTEGER t;
    QueryPerformanceCounter(&t);
    a ^= static_cast<unsigned int>(t.QuadPart);
    b ^= static_cast<unsigned int>(t.QuadPart >> 32) ^ GetTickCount();
  }
  char buf[32];
  snprintf(buf, sizeof(buf), "%08x%08x", a, b);
  return buf;
}

// The worker's end of one stdio pipe: the server instance of a fresh, single-instance named
// pipe. JS connects to it as the only client (net.connect), so Node's own event loop does the
// I/O; Resume() checks that the client is this process before the worker runs.
UniqueHandle CreateStdioPipe(int slot, uint64_t id, std::string* name) {
  *name = "\\\\.\\pipe\\spawn-isolated-" + std::to_string(GetCurrentProcessId()) + "-" + std::to_string(id) + "-" +
          std::to_string(slot) + "-" + RandomHex();
  DWORD access = (slot == 0 ? PIPE_ACCESS_INBOUND : PIPE_ACCESS_OUTBOUND) | FILE_FLAG_FIRST_PIPE_INSTANCE;
  HANDLE h = CreateNamedPipeW(ToWide(*name).c_str(), access, PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                              1, 64 * 1024, 64 * 1024, 0, nullptr);
  if (h == INVALID_HANDLE_VALUE) ThrowLastError("CreateNamedPipeW", *name);
  return UniqueHandle(h);
}

UniqueHandle OpenNul() {
  SECURITY_ATTRIBUTES sa{sizeof(sa), nullptr, FALSE};
  HANDLE h = CreateFileW(L"NUL", GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, &sa, OPEN_EXISTING, 0, nullptr);
  if (h == INVALID_HANDLE_VALUE) ThrowLastError("CreateFileW", "NUL");
  return UniqueHandle(h);
}


bool TokenEnforced(std::string* why) {
  if (IsWine()) {
    *why = "Wine does not apply a restricted token to the child (its token keeps every privilege) and its access "
           "checks ignore integrity labels";
    return false;
  }
  return true;
}

// Reads back the token the (still suspended) worker actually has: privileges left and
// integrity RID. A host that ignores the token we passed shows up here.
bool ChildTokenRestricted(HANDLE process, Privileges p, std::string* why) {
  HANDLE raw = nullptr;
  if (!OpenProcessToken(process, TOKEN_QUERY, &raw)) {
    *why = "OpenProcessToken on the worker failed: " + Win32Message(GetLastError());
    return false;
  }
  UniqueHandle tok(raw);
  DWORD size = 0;
  GetTokenInformation(tok.get(), TokenPrivileges, nullptr, 0, &size);
  std::vector<BYTE> buf(size ? size : 1);
  if (!GetTokenInformation(tok.get(), TokenPrivileges, buf.data(), size, &size)) {
    *why = "GetTokenInformation(TokenPrivileges) on the worker failed: " + Win32Message(GetLastError());
    return false;
  }
  DWORD count = reinterpret_cast<TOKEN_PRIVILEGES*>(buf.data())->PrivilegeCount;
  if (count > 1) {  // DISABLE_MAX_PRIVILEGE keeps SeChangeNotifyPrivilege only
    *why = "the worker's token still holds " + std::to_string(count) + " privileges: the host did not apply the restricted token";
    return false;
  }
  size = 0;
  GetTokenInformation(tok.get(), TokenRestrictedSids, nullptr, 0, &size);
  std::vector<BYTE> rbuf(size ? size : sizeof(TOKEN_GROUPS));
  if (size == 0 || !GetTokenInformation(tok.get(), TokenRestrictedSids, rbuf.data(), size, &size) ||
      reinterpret_cast<TOKEN_GROUPS*>(rbuf.data())->GroupCount < 4) {
    *why = "the worker's token has no restricting SIDs: the host did not apply the restricted token";
    return false;
  }
  if (p == Privileges::Low) {
    size = 0;
    GetTokenInformation(tok.get(), TokenIntegrityLevel, nullptr, 0, &size);
    std::vector<BYTE> lbuf(size ? size : 1);
    if (!GetTokenInformation(tok.get(), TokenIntegrityLevel, lbuf.data(), size, &size)) {
      *why = "GetTokenInformation(TokenIntegrityLevel) on the worker failed: " + Win32Message(GetLastError());
      return false;
    }
    PSID sid = reinterpret_cast<TOKEN_MANDATORY_LABEL*>(lbuf.data())->Label.Sid;
    DWORD rid = *GetSidSubAuthority(sid, static_cast<DWORD>(*GetSidSubAuthorityCount(sid) - 1));
    if (rid > SECURITY_MANDATORY_LOW_RID) {
      *why = "the worker runs at integrity " + std::to_string(rid) + ", not low: the host did not apply the label";
      return false;
    }
  }
  return TokenEnforced(why);
}

}  // namespace
}  // namespace win

namespace backend {
using namespace win;

SpawnResult Spawn(const SpawnRequest& req, std::shared_ptr<EventSink> sink) {
  Monitor& mon = Monitor::Get();
  auto child = std::make_shared<Child>();
  child->id = mon.NextId();
  child->sink = std::move(sink);
  child->killOnClose = req.killOnClose;
  SpawnResult res;
  res.id = child->id;

  // 1. The job, tied to the completion port before anything runs in it.
  child->job.reset(CreateJobObjectW(nullptr, nullptr));
  if (!child->job.valid()) ThrowLastError("CreateJobObjectW");
  JOBOBJECT_ASSOCIATE_COMPLETION_PORT port{};
  port.CompletionKey = reinterpret_cast<PVOID>(static_cast<ULONG_PTR>(child->id));
  port.CompletionPort = mon.port();
  if (!SetInformationJobObject(child->job.get(), JobObjectAssociateCompletionPortInformation, &port, sizeof(port)))
    ThrowLastError("SetInformationJobObject", "JobObjectAssociateCompletionPortInformation");
  JobPlan plan = ApplyLimits(child->job.get(), req.limits, req.killOnClose);
  child->handlesLimit = plan.handlesLimit;
  // Jobs count processes, not threads: an explicit thread limit cannot be kept here.
  if (req.limits.threads && !req.threadsImplied)
    plan.enforcement.push_back(MakeEnforcement("threads", false, "none", "Windows job objects have no thread limit"));
  if (req.group != 0) {
    child->group = Groups().Find(req.group);
    if (!child->group) throw SysError("ERR_INVALID_STATE", 0, "", "the isolation group is closed");
  }

  // 2. The token.
  UniqueHandle token;
  if (req.privileges != Privileges::Inherit) token = MakeRestrictedToken(req.privileges);
  if (req.strict) RequireEnforced(plan.enforcement);
  Enforcement koc;
  koc.limit = "killOnClose";
  koc.enforced = true;
  koc.mechanism = req.killOnClose ? "job-object" : "none";
  plan.enforcement.push_back(koc);

  // 3. Handles for the worker: inheritable duplicates that exist only for the CreateProcess call.
  std::vector<UniqueHandle> ours;       // handles we created (pipe ends, NUL)
  std::vector<UniqueHandle> temporary;  // inheritable duplicates, closed right after CreateProcess
  HANDLE stdHandles[3];
  for (int i = 0; i < 3; i++) {
    const StdioSpec& s = req.stdio[i];
    HANDLE source = nullptr;
    if (s.kind == StdioSpec::Pipe) {
      UniqueHandle server = CreateStdioPipe(i, child->id, &res.pipes[i]);
      source = server.get();
      child->serverPipes.push_back(std::move(server));
    } else if (s.kind == StdioSpec::Ignore) {
      ours.push_back(OpenNul());
      source = ours.back().get();
    } else {
      try {
        source = NodeFdToHandle(s.fd);
      } catch (const SysError&) {
        if (s.kind != StdioSpec::Inherit) throw;
        ours.push_back(OpenNul());  // the parent has no such stdio (a service): give the worker NUL
        source = ours.back().get();
      }
    }
    temporary.push_back(DuplicateInheritable(source, "stdio[" + std::to_string(i) + "]"));
    stdHandles[i] = temporary.back().get();
  }
  for (const InheritSpec& spec : req.inherit) {
    HANDLE source = spec.rawHandle ? reinterpret_cast<HANDLE>(static_cast<intptr_t>(spec.value)) : NodeFdToHandle(static_cast<int>(spec.value));
    DWORD info = 0;
    if (!GetHandleInformation(source, &info))
      throw Win32Error("GetHandleInformation", GetLastError(), "inheritHandles: " + std::to_string(spec.value) + " is not an open handle");
    temporary.push_back(DuplicateInheritable(source, "inheritHandles"));
    res.inherited.push_back(static_cast<int64_t>(reinterpret_cast<intptr_t>(temporary.back().get())));
  }
  std::vector<HANDLE> list;
  for (const UniqueHandle& h : temporary) list.push_back(h.get());

  // 4. Attributes: exactly these handles, and the job from the first instruction (Windows 10+).
  AttributeList attrs(2);
  if (!UpdateProcThreadAttribute(attrs.get(), 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, list.data(), list.size() * sizeof(HANDLE), nullptr, nullptr))
    ThrowLastError("UpdateProcThreadAttribute", "PROC_THREAD_ATTRIBUTE_HANDLE_LIST");
  // In a group: the group's job first, so the worker's own job nests inside it.
  HANDLE jobs[2] = {child->group ? child->group->job.get() : child->job.get(), child->job.get()};
  UpdateProcThreadAttribute(attrs.get(), 0, PROC_THREAD_ATTRIBUTE_JOB_LIST, jobs, (child->group ? 2 : 1) * sizeof(HANDLE), nullptr,
                            nullptr);  // else assigned below

  STARTUPINFOEXW si{};
  si.StartupInfo.cb = sizeof(si);
  si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
  si.StartupInfo.hStdInput = stdHandles[0];
  si.StartupInfo.hStdOutput = stdHandles[1];
  si.StartupInfo.hStdError = stdHandles[2];
  if (req.windowsHide) {
    si.StartupInfo.dwFlags |= STARTF_USESHOWWINDOW;
    si.StartupInfo.wShowWindow = SW_HIDE;
  }
  si.lpAttributeList = attrs.get();

  std::wstring app = ToWide(req.file);
  std::wstring cmdline = BuildCommandLine(req.args);
  std::vector<wchar_t> envBlock = BuildEnvironmentBlock(req.env);
  std::wstring cwd = req.hasCwd ? ToWide(req.cwd) : std::wstring();
  DWORD flags = CREATE_SUSPENDED | CREATE_UNICODE_ENVIRONMENT | EXTENDED_STARTUPINFO_PRESENT | CREATE_DEFAULT_ERROR_MODE;
  if (req.windowsHide) flags |= CREATE_NO_WINDOW;
  PROCESS_INFORMATION pi{};
  BOOL created = token.valid()
                     ? CreateProcessAsUserW(token.get(), app.c_str(), &cmdline[0], nullptr, nullptr, TRUE, flags, envBlock.data(),
                                            req.hasCwd ? cwd.c_str() : nullptr, &si.StartupInfo, &pi)
                     : CreateProcessW(app.c_str(), &cmdline[0], nullptr, nullptr, TRUE, flags, envBlock.data(),
                                      req.hasCwd ? cwd.c_str() : nullptr, &si.StartupInfo, &pi);
  DWORD createErr = GetLastError();
  temporary.clear();  // the worker has its copies now; no other child may inherit ours
  if (!created) {
    SysError e = Win32Error(token.valid() ? "CreateProcessAsUserW" : "CreateProcessW", createErr, req.file);
    e.message = "spawn " + req.file + " " + CodeForWin32(createErr) + ": " + Win32Message(createErr) + " (Win32 error " + std::to_string(createErr) + ")";
    e.syscall = "spawn " + req.file;
    throw e;
  }
  child->process.reset(pi.hProcess);
  child->thread.reset(pi.hThread);
  child->pid = pi.dwProcessId;
  res.pid = pi.dwProcessId;

  BOOL inJob = FALSE;
  if (!IsProcessInJob(child->process.get(), child->job.get(), &inJob) || !inJob) {
    for (HANDLE job : {child->group ? child->group->job.get() : nullptr, child->job.get()}) {
      if (job != nullptr && !AssignProcessToJobObject(job, child->process.get())) {
        DWORD err = GetLastError();
        TerminateProcess(child->process.get(), 1);
        throw Win32Error("AssignProcessToJobObject", err);
      }
    }
  }
  if (token.valid()) {
    Enforcement e;
    e.limit = "privileges";
    e.enforced = ChildTokenRestricted(child->process.get(), req.privileges, &e.reason);
    e.mechanism = e.enforced ? (req.privileges == Privileges::Low ? "restricted-token-low-integrity" : "restricted-token") : "none";
    if (e.enforced) e.reason.clear();
    if (!e.enforced && req.strict && req.privilegesExplicit) {
      TerminateJobObject(child->job.get(), 1);  // it never ran: it is still suspended
      throw NotEnforcedError(e);
    }
    plan.enforcement.push_back(e);
  }
  res.enforcement = plan.enforcement;
  mon.Add(child);
  return res;
}

void Resume(uint64_t id) {
  std::shared_ptr<Child> c = Monitor::Get().Get(id, "resume");
  for (UniqueHandle& pipe : c->serverPipes) {
    ULONG client = 0;
    if (GetNamedPipeClientProcessId(pipe.get(), &client) && client != GetCurrentProcessId()) {
      Monitor::Get().Terminate(*c, "killed");
      throw SysError("EACCES", ERROR_ACCESS_DENIED, "GetNamedPipeClientProcessId",
                     "a stdio pipe of the worker was connected to by another process (pid " + std::to_string(client) + ")");
    }
  }
  c->serverPipes.clear();
  if (ResumeThread(c->thread.get()) == static_cast<DWORD>(-1)) {
    DWORD err = GetLastError();
    Monitor::Get().Terminate(*c, "killed");
    throw Win32Error("ResumeThread", err);
  }
  c->thread.reset();
  Monitor::Get().MarkResumed(*c);
}

bool Kill(uint64_t id, const std::string& reason, int /*signal*/) {
  std::shared_ptr<Child> c = Monitor::Get().Find(id);
  if (!c) return false;
  return Monitor::Get().Terminate(*c, reason);
}

Stats GetStats(uint64_t id) {
  std::shared_ptr<Child> c = Monitor::Get().Get(id, "stats");
  return QueryStats(*c);
}

void Release(uint64_t id) {
  std::shared_ptr<Child> c = Monitor::Get().Remove(id);
  if (!c) return;
  // With killOnClose the tree dies when the job handle closes (JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE);
  // otherwise it runs on, still inside its job's limits.
  if (c->killOnClose) TerminateJobObject(c->job.get(), 1);
}

GroupResult CreateGroup(const GroupRequest& req) {
  auto g = std::make_shared<Group>();
  g->id = Groups().NextId();
  g->job.reset(CreateJobObjectW(nullptr, nullptr));
  if (!g->job.valid()) ThrowLastError("CreateJobObjectW");
  JOBOBJECT_ASSOCIATE_COMPLETION_PORT port{};
  port.CompletionKey = reinterpret_cast<PVOID>(static_cast<ULONG_PTR>(g->id) | kGroupKey);
  port.CompletionPort = Monitor::Get().port();
  if (!SetInformationJobObject(g->job.get(), JobObjectAssociateCompletionPortInformation, &port, sizeof(port)))
    ThrowLastError("SetInformationJobObject", "JobObjectAssociateCompletionPortInformation");
  JobPlan plan = ApplyLimits(g->job.get(), req.limits, req.killOnClose);
  if (req.strict) RequireEnforced(plan.enforcement);
  GroupResult res;
  res.id = g->id;
  res.enforcement = plan.enforcement;
  Groups().Add(std::move(g));
  return res;
}

Stats GroupStats(uint64_t id) {
  return JobStats(Groups().Get(id, "groupStats")->job.get());
}

void ReleaseGroup(uint64_t id) {
  std::shared_ptr<Group> g = Groups().Remove(id);
  if (g) TerminateJobObject(g->job.get(), 1);  // members still running (killOnClose semantics)
}

Support Probe() {
  static Support cached = [] {
    Support s;
    s.backend = "windows-job-object";
    s.spawn = true;
    auto add = [&](const std::string& limit, bool ok, const std::string& mech, const std::string& why) {
      s.limits.push_back(MakeEnforcement(limit, ok, mech, why));
    };
    UniqueHandle job(CreateJobObjectW(nullptr, nullptr));
    if (!job.valid()) {
      s.spawn = false;
      s.spawnReason = "CreateJobObjectW failed: " + Win32Message(GetLastError());
      return s;
    }
    Limits l;
    l.memoryProcess = 1ull << 30;
    l.memoryTotal = 1ull << 31;
    l.processes = 8;
    l.cpuTimeMs = 3600 * 1000;
    l.cpuCores = 1;
    l.handles = 1000;
    DWORD_PTR pm = 0, sm = 0;
    if (GetProcessAffinityMask(GetCurrentProcess(), &pm, &sm) && sm != 0) {
      for (uint32_t i = 0; i < 64; i++)
        if (sm & (static_cast<DWORD_PTR>(1) << i)) {
          l.affinity.push_back(i);
          break;
        }
    }
    try {
      JobPlan plan = ApplyLimits(job.get(), l, false);
      s.limits = plan.enforcement;
    } catch (const SysError& e) {
      for (const char* name : {"memory.process", "memory.total", "processes", "cpu.time", "cpu.affinity", "cpu.cores", "handles"})
        add(name, false, "job-object", e.message);
    }
    std::string why;
    add("threads", false, "none", "Windows job objects have no thread limit");
    add("privileges", TokenEnforced(&why), "restricted-token", why);
    add("killOnClose", true, "job-object", "");
    add("inheritHandles", true, "handle-list", "");
    return s;
  }();
  return cached;
}

}  // namespace backend
}  // namespace si
