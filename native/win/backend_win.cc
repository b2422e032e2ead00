// Windows backend: the orchestration of a spawn (each mechanism lives in its own unit: job,
// token, stdio_handles, monitor) and the backend entry points.
#include "../contract.h"
#include "appcontainer.h"
#include "desktop.h"
#include "job.h"
#include "monitor.h"
#include "stdio_handles.h"
#include "token.h"
#include "win_util.h"

#include <userenv.h>
#include <wtsapi32.h>

#include <algorithm>

namespace si {

namespace backend {
using namespace win;

namespace {
// Why network: 'none' and filesystem are not kept for a worker in another user's session.
constexpr const char* kNoSessionContainerWhy =
    "not for a worker in another user's session in this version (its AppContainer profile would have to be that user's)";
}  // namespace

namespace {

// A member that must outlive this process: its group's job must not take it down when its last
// handle closes (the other members' own jobs still carry kill-on-close).
void KeepSurvivors(Group& g) {
  if (g.survivors.exchange(true)) return;
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION info = g.extended;  // what was set (Wine reads back zeros)
  if (!(info.BasicLimitInformation.LimitFlags & JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE)) return;
  info.BasicLimitInformation.LimitFlags &= ~JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
  if (!SetInformationJobObject(g.job.get(), JobObjectExtendedLimitInformation, &info, sizeof(info)))
    ThrowLastError("SetInformationJobObject", "the group's kill-on-close");
}

// A group's `processes` budget: ActiveProcessLimit counts only a job's own processes, not those of
// the members' nested jobs, so the monitor also counts the group (its accounting includes them)
// at each new process and ends the one over budget.
void GroupProcessesEntry(HANDLE job, Enforcement& e) {
  JOBOBJECT_BASIC_ACCOUNTING_INFORMATION acct{};
  bool counts = QueryInformationJobObject(job, JobObjectBasicAccountingInformation, &acct, sizeof(acct), nullptr) != 0;
  e.mechanism = "job-object+watchdog";
  e.enforced = counts && !IsWine();
  e.reason = !counts ? "QueryInformationJobObject(JobObjectBasicAccountingInformation) failed: " + Win32Message(GetLastError())
             : IsWine()
                 ? "Wine enforces no ActiveProcessLimit, and its server crashes when the watchdog ends a process while it starts (measured)"
                 : "";
}

// The session the worker is to run in.
DWORD TargetSession(int64_t session) {
  DWORD id = 0;
  if (session == kSessionCurrent)
    ProcessIdToSessionId(GetCurrentProcessId(), &id);
  else
    id = session == kSessionConsole ? WTSGetActiveConsoleSessionId() : static_cast<DWORD>(session);
  return id;
}

// "All processes associated with a job must run in the same session" (AssignProcessToJobObject):
// a group's members all run in its first member's session; refused up front otherwise.
void JoinGroupSession(Group& g, DWORD target) {
  int64_t none = -1;
  if (g.session.compare_exchange_strong(none, static_cast<int64_t>(target)) || none == static_cast<int64_t>(target)) return;
  throw SysError("ERR_JOB_SESSION", 0, "",
                 "the worker would run in session " + std::to_string(target) + ", but this isolation group's members run in session " +
                     std::to_string(none) + ": Windows keeps all of a job's processes in one session (use one group per session)");
}

// A worker in another session than this process's cannot be in this process's job (if it is in
// one whose children do not leave it silently): it breaks away where the job allows that
// (CREATE_BREAKAWAY_FROM_JOB), and is refused up front where it does not.
DWORD SessionJobFlags(DWORD target) {
  DWORD own = 0;
  BOOL inJob = FALSE;
  if (!ProcessIdToSessionId(GetCurrentProcessId(), &own) || own == target) return 0;
  if (!IsProcessInJob(GetCurrentProcess(), nullptr, &inJob) || !inJob) return 0;
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION ext{};
  // Wine stores no job limits (they read back as zeros): it cannot be told, CreateProcess decides.
  if (IsWine() || !QueryInformationJobObject(nullptr, JobObjectExtendedLimitInformation, &ext, sizeof(ext), nullptr)) return 0;
  DWORD f = ext.BasicLimitInformation.LimitFlags;
  if (f & JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK) return 0;  // its children are not in it anyway
  if (f & JOB_OBJECT_LIMIT_BREAKAWAY_OK) return CREATE_BREAKAWAY_FROM_JOB;
  throw SysError("ERR_JOB_SESSION", ERROR_ACCESS_DENIED, "",
                 "this process runs in a job that lets no process break away, and Windows keeps a job's processes in one session: "
                 "a worker cannot start in session " +
                     std::to_string(target) + " from session " + std::to_string(own) +
                     ". Run the launcher outside that job, or have its owner allow breakaway (JOB_OBJECT_LIMIT_BREAKAWAY_OK)");
}

// The job, tied to the completion port before anything runs in it, with every limit set and
// read back; strict mode refuses here, before anything runs.
std::vector<Enforcement> MakeWorkerJob(const SpawnRequest& req, Child& child) {
  if (req.group != 0) {
    child.group = Groups().Find(req.group);
    if (!child.group) throw SysError("ERR_INVALID_STATE", 0, "", "the isolation group is closed");
  }
  DWORD session = TargetSession(req.session);
  if (child.group) JoinGroupSession(*child.group, session);
  child.jobFlags = SessionJobFlags(session);
  child.job = MakeJob(Monitor::Get().port(), static_cast<ULONG_PTR>(child.id));
  // What the CPU rate is a share of: the cores the jobs around this one allow.
  double parentCores = child.group ? child.group->capacityCores : OwnJobCores();
  child.cpuBase = parentCores;
  JobPlan plan = ApplyLimits(child.job.get(), req.limits, req.killOnClose, parentCores);
  child.handlesLimit = plan.handlesLimit;
  for (const Enforcement& e : plan.enforcement)
    if (e.limit == "cpu.time" && e.enforced) child.cpuTimeMs = req.limits.cpuTimeMs;
  // Jobs count processes, not threads: an explicit thread limit cannot be kept here.
  if (req.limits.threads && !req.threadsImplied)
    plan.enforcement.push_back(MakeEnforcement("threads", false, "none", "Windows job objects have no thread limit"));
  // network: 'none' and filesystem: an AppContainer (appcontainer.h), where this host can make
  // one; their entries come from the suspended worker's token. Else said, and refused in strict
  // mode before anything runs.
  if (req.networkNone || req.hasFilesystem) {
    std::string why = kNoSessionContainerWhy;
    child.container = req.session == kSessionCurrent && AppContainersAvailable(&why);
    if (!child.container) {
      if (req.networkNone) plan.enforcement.push_back(MakeEnforcement("network", false, "none", why));
      if (req.hasFilesystem) plan.enforcement.push_back(MakeEnforcement("filesystem", false, "none", why));
    }
  }
  if (req.limits.disk)
    plan.enforcement.push_back(MakeEnforcement("disk", false, "none", "Windows has no size limit for a directory or a process's files"));
  if (req.strict) RequireEnforced(plan.enforcement);
  if (child.group && !req.killOnClose) KeepSurvivors(*child.group);
  plan.enforcement.push_back(MakeEnforcement("killOnClose", true, req.killOnClose ? "job-object" : "none", ""));
  if (!req.killOnClose) plan.enforcement.back().mechanism = "none";
  return plan.enforcement;
}

// Handles for the worker. Inheritable duplicates exist only around the CreateProcess call: a
// libuv spawn on another thread (it inherits every inheritable handle) could take one meanwhile.
struct WorkerHandles {
  std::vector<UniqueHandle> ours;  // handles we created (NUL, the worker's pipe ends)
  UniqueHandle servers[3];         // Node's ends of the stdio pipes
  UniqueHandle channelServer;      // Node's end of the channel
  HANDLE channelSource = nullptr;  // the worker's end (in `ours`)
  uintptr_t channelValue = 0;      // its inheritable duplicate: the value the worker sees
  HANDLE sources[3] = {nullptr, nullptr, nullptr};
  std::vector<HANDLE> inheritSources;   // the listed inheritHandles, validated
  std::vector<UniqueHandle> temporary;  // inheritable duplicates, closed right after CreateProcess
  HANDLE stdio[3] = {nullptr, nullptr, nullptr};
  bool consoleSlot = false;  // a stdio slot is a console handle
  std::vector<HANDLE> List() const {
    std::vector<HANDLE> list;
    for (const UniqueHandle& h : temporary) list.push_back(h.get());
    return list;
  }
};

HANDLE StdioSource(const StdioSpec& s, int slot, const Child& child, WorkerHandles& wh) {
  if (s.kind == StdioSpec::Pipe) {
    StdioPipe p = CreateStdioPipe(slot, child.id);
    wh.servers[slot] = std::move(p.server);
    wh.ours.push_back(std::move(p.client));
    return wh.ours.back().get();
  }
  if (s.kind != StdioSpec::Ignore) {
    try {
      return NodeFdToHandle(s.fd);
    } catch (const SysError&) {
      if (s.kind != StdioSpec::Inherit) throw;
      // The parent has no such stdio (a service): the worker gets NUL.
    }
  }
  wh.ours.push_back(OpenNul());
  return wh.ours.back().get();
}

void CollectHandles(const SpawnRequest& req, Child& child, WorkerHandles& wh) {
  for (int i = 0; i < 3; i++) {
    wh.sources[i] = StdioSource(req.stdio[i], i, child, wh);
    DWORD mode = 0;
    if (GetConsoleMode(wh.sources[i], &mode)) wh.consoleSlot = true;
  }
  for (const InheritSpec& spec : req.inherit) {
    HANDLE source =
        spec.rawHandle ? reinterpret_cast<HANDLE>(static_cast<intptr_t>(spec.value)) : NodeFdToHandle(static_cast<int>(spec.value));
    DWORD info = 0;
    if (!GetHandleInformation(source, &info))
      throw Win32Error("GetHandleInformation", GetLastError(), "inheritHandles: " + std::to_string(spec.value) + " is not an open handle");
    wh.inheritSources.push_back(source);
  }
  if (req.channel) {
    StdioPipe p = CreateChannelPipe(child.id);
    wh.channelServer = std::move(p.server);
    wh.ours.push_back(std::move(p.client));
    wh.channelSource = wh.ours.back().get();
  }
}

// The inheritable duplicates, made last, right before CreateProcess.
void MakeInheritable(WorkerHandles& wh, SpawnResult& res) {
  for (int i = 0; i < 3; i++) {
    wh.temporary.push_back(DuplicateInheritable(wh.sources[i], "stdio[" + std::to_string(i) + "]"));
    wh.stdio[i] = wh.temporary.back().get();
  }
  for (HANDLE source : wh.inheritSources) {
    wh.temporary.push_back(DuplicateInheritable(source, "inheritHandles"));
    res.inherited.push_back(static_cast<int64_t>(reinterpret_cast<intptr_t>(wh.temporary.back().get())));
  }
  if (wh.channelSource != nullptr) {
    wh.temporary.push_back(DuplicateInheritable(wh.channelSource, "channel"));
    wh.channelValue = reinterpret_cast<uintptr_t>(wh.temporary.back().get());
  }
}

// The environment the worker gets: a private TEMP for 'low', the channel's handle value, and
// what the jobs around its own allow of the CPU (kCpuBaseEnv) where they cap it.
// The request's environment is the worker's (a session worker's was built by JS from that
// session user's own: SessionEnvironment).
std::vector<std::string> WorkerEnvironment(const SpawnRequest& req, const Child& child, const WorkerHandles& wh) {
  std::vector<std::string> env = child.temp.path().empty() ? req.env : child.temp.Environment(req.env);
  // Only the launcher says it.
  env.erase(std::remove_if(env.begin(), env.end(),
                           [](const std::string& e) { return _stricmp(e.substr(0, e.find('=', 1)).c_str(), kCpuBaseEnv) == 0; }),
            env.end());
  std::string cpuBase = CpuBaseValue(child.cpuBase, static_cast<double>(GetActiveProcessorCount(ALL_PROCESSOR_GROUPS)));
  if (!cpuBase.empty()) env.push_back(std::string(kCpuBaseEnv) + "=" + cpuBase);
  if (wh.channelSource != nullptr) env.push_back(std::string(kChannelEnv) + "=" + std::to_string(wh.channelValue));
  return env;
}

// A worker for another session refused where this process's job chain keeps it (a job further
// out than the one SessionJobFlags could read allows no breakaway): a bare EACCES would not say so.
void ThrowIfSessionRefused(DWORD err, const SpawnRequest& req) {
  DWORD own = 0, target = TargetSession(req.session);
  BOOL inJob = FALSE;
  if (err != ERROR_ACCESS_DENIED || !ProcessIdToSessionId(GetCurrentProcessId(), &own) || own == target ||
      !IsProcessInJob(GetCurrentProcess(), nullptr, &inJob) || !inJob)
    return;
  throw SysError("ERR_JOB_SESSION", err, "spawn " + req.file,
                 "spawn " + req.file +
                     ": this process runs in a job, and Windows keeps a job's processes in one session: a worker cannot start in session " +
                     std::to_string(target) + " from session " + std::to_string(own) +
                     " unless every job around this process allows breakaway. Run the launcher outside that job");
}

// Windows refuses nested jobs under a job with UI restrictions: a bare EACCES would not say so.
void ThrowIfNestingRefused(DWORD err, const std::string& file) {
  JOBOBJECT_BASIC_UI_RESTRICTIONS ui{};
  if (err != ERROR_ACCESS_DENIED || !QueryInformationJobObject(nullptr, JobObjectBasicUIRestrictions, &ui, sizeof(ui), nullptr) ||
      ui.UIRestrictionsClass == 0)
    return;
  throw SysError("ERR_JOB_NESTING", err, "spawn " + file,
                 "spawn " + file +
                     ": this process runs in a job with UI restrictions, and Windows nests no job inside such a job, "
                     "so the worker's limits cannot be applied. Start the launcher outside that job, or have its owner drop the UI "
                     "restrictions.");
}

// The worker's console. With a console handle among its stdio it shares ours (as libuv does now:
// a console of its own would swallow that output), in a process group of its own so that
// CTRL_BREAK_EVENT can reach it alone. Hidden with pipes and files only: see HiddenConsoleFlags.
DWORD ConsoleFlags(const SpawnRequest& req, const WorkerHandles& wh, Child& child) {
  // An AppContainer process gets a console only where the user enabled lowbox consoles
  // (HKCU\Console\LowBoxConsoleEnabled): none at all.
  if (!wh.consoleSlot && req.windowsHide && child.container) return DETACHED_PROCESS;
  if (!wh.consoleSlot && req.windowsHide)
    return HiddenConsoleFlags(IsWine(), req.limits.processes + (child.group ? child.group->processes : 0));
  child.sharesConsole = GetConsoleCP() != 0;  // else a console program gets a new, visible one
  return CREATE_NEW_PROCESS_GROUP;
}

// Creates the worker suspended, with exactly `wh`'s handles, inside its job(s) from the first
// instruction where the host can (Windows 10+: PROC_THREAD_ATTRIBUTE_JOB_LIST).
PROCESS_INFORMATION CreateSuspended(const SpawnRequest& req, Child& child, WorkerHandles& wh, HANDLE token, HANDLE sessionToken,
                                    const std::vector<BYTE>& containerSid, SpawnResult& res) {
  std::wstring app = ToWide(req.file);
  std::wstring cmdline = BuildCommandLine(req.args);
  std::wstring cwd = req.hasCwd ? ToWide(req.cwd) : std::wstring();
  DWORD flags = CREATE_SUSPENDED | CREATE_UNICODE_ENVIRONMENT | EXTENDED_STARTUPINFO_PRESENT | CREATE_DEFAULT_ERROR_MODE;
  flags |= ConsoleFlags(req, wh, child) | child.jobFlags;
  MakeInheritable(wh, res);
  std::vector<wchar_t> envBlock = BuildEnvironmentBlock(WorkerEnvironment(req, child, wh));
  std::vector<HANDLE> list = wh.List();
  AttributeList attrs(3);
  if (!UpdateProcThreadAttribute(attrs.get(), 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, list.data(), list.size() * sizeof(HANDLE), nullptr,
                                 nullptr))
    ThrowLastError("UpdateProcThreadAttribute", "PROC_THREAD_ATTRIBUTE_HANDLE_LIST");
  // In a group: the group's job first, so the worker's own job nests inside it.
  HANDLE jobs[2] = {child.group ? child.group->job.get() : child.job.get(), child.job.get()};
  UpdateProcThreadAttribute(attrs.get(), 0, PROC_THREAD_ATTRIBUTE_JOB_LIST, jobs, (child.group ? 2 : 1) * sizeof(HANDLE), nullptr,
                            nullptr);  // else assigned after creation
  // In an AppContainer: a lowbox token made from `token` at creation; network capabilities
  // unless network: 'none'.
  SECURITY_CAPABILITIES caps{};
  std::vector<std::vector<BYTE>> capSids;
  std::vector<SID_AND_ATTRIBUTES> capList;
  if (!containerSid.empty()) {
    if (!req.networkNone) capSids = AppContainer::NetworkCapabilities();
    for (auto& c : capSids) capList.push_back({reinterpret_cast<PSID>(c.data()), SE_GROUP_ENABLED});
    caps.AppContainerSid = reinterpret_cast<PSID>(const_cast<BYTE*>(containerSid.data()));
    caps.Capabilities = capList.empty() ? nullptr : capList.data();
    caps.CapabilityCount = static_cast<DWORD>(capList.size());
    if (!UpdateProcThreadAttribute(attrs.get(), 0, PROC_THREAD_ATTRIBUTE_SECURITY_CAPABILITIES, &caps, sizeof(caps), nullptr, nullptr))
      ThrowLastError("UpdateProcThreadAttribute", "PROC_THREAD_ATTRIBUTE_SECURITY_CAPABILITIES");
  }
  STARTUPINFOEXW si{};
  si.StartupInfo.cb = sizeof(si);
  si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
  si.StartupInfo.hStdInput = wh.stdio[0];
  si.StartupInfo.hStdOutput = wh.stdio[1];
  si.StartupInfo.hStdError = wh.stdio[2];
  if (req.windowsHide) {
    si.StartupInfo.dwFlags |= STARTF_USESHOWWINDOW;
    si.StartupInfo.wShowWindow = SW_HIDE;
  }
  wchar_t desktop[] = L"winsta0\\default";  // a user session's interactive desktop
  if (sessionToken != nullptr) si.StartupInfo.lpDesktop = desktop;
  si.lpAttributeList = attrs.get();
  const wchar_t* dir = req.hasCwd ? cwd.c_str() : nullptr;
  PROCESS_INFORMATION pi{};
  BOOL created =
      token != nullptr
          ? CreateProcessAsUserW(token, app.c_str(), &cmdline[0], nullptr, nullptr, TRUE, flags, envBlock.data(), dir, &si.StartupInfo, &pi)
          : CreateProcessW(app.c_str(), &cmdline[0], nullptr, nullptr, TRUE, flags, envBlock.data(), dir, &si.StartupInfo, &pi);
  DWORD createErr = GetLastError();
  wh.temporary.clear();  // the worker has its copies now; no other child may inherit ours
  if (!created) {
    ThrowIfNestingRefused(createErr, req.file);
    ThrowIfSessionRefused(createErr, req);
    SysError e = Win32Error(token != nullptr ? "CreateProcessAsUserW" : "CreateProcessW", createErr, req.file);
    e.message = "spawn " + req.file + " " + CodeForWin32(createErr) + ": " + Win32Message(createErr) + " (Win32 error " +
                std::to_string(createErr) + ")";
    e.syscall = "spawn " + req.file;
    throw e;
  }
  return pi;
}

// Who the worker runs as: the account of the token it got (this process's with none).
// The launcher's own account is looked up once (LookupAccountSidW may ask a domain controller).
std::string RunAsUserName(HANDLE token) {
  static const std::string own = [] {
    HANDLE raw = nullptr;
    if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &raw)) return std::string();
    UniqueHandle self(raw);
    return TokenUserName(self.get());
  }();
  if (token == nullptr || UserSidOf(token) == ProcessUserSid()) return own;
  return TokenUserName(token);
}

// Where the host had no job list attribute: into the jobs before it runs.
void EnsureInJobs(Child& child) {
  BOOL inJob = FALSE;
  if (IsProcessInJob(child.process.get(), child.job.get(), &inJob) && inJob) return;
  for (HANDLE job : {child.group ? child.group->job.get() : nullptr, child.job.get()}) {
    if (job != nullptr && !AssignProcessToJobObject(job, child.process.get())) {
      DWORD err = GetLastError();
      TerminateProcess(child.process.get(), 1);
      ThrowIfNestingRefused(err, "the worker");
      throw Win32Error("AssignProcessToJobObject", err);
    }
  }
}

// The worker's AppContainer (a profile of its own) and its SID's access, for its lifetime, to
// the listed paths (read, or read and write), its executable and its cwd. A path that does not
// exist is ignored (as on Linux); one whose DACL this user may not change (a system directory:
// those grant every AppContainer read already) is said on NODE_DEBUG.
std::vector<BYTE> MakeContainer(const SpawnRequest& req, Child& child) {
  std::unique_ptr<AppContainer> c = AppContainer::Create(child.id);
  std::vector<BYTE> sid = c->sid();
  std::lock_guard<std::mutex> lock(child.grantsMu);
  child.grants.push_back(std::move(c));
  auto grant = [&](const std::string& path, DWORD mask, bool inherit) {
    std::string why;
    std::unique_ptr<Revocable> g = GrantPath(ToWide(path), sid, mask, inherit, &why);
    if (g)
      child.grants.push_back(std::move(g));
    else
      DebugLine("worker " + std::to_string(child.id) + ": its AppContainer gets no access to " + why);
  };
  for (const std::string& p : req.fsRead) grant(p, kReadAccess, true);
  for (const std::string& p : req.fsWrite) grant(p, kWriteAccess, true);
  grant(req.file, kReadAccess, false);  // its executable (read and run)
  if (req.hasCwd) grant(req.cwd, FILE_GENERIC_READ | FILE_TRAVERSE, false);
  return sid;
}

// network and filesystem entries, from the token the suspended worker actually has.
void CheckContainer(const SpawnRequest& req, Child& child, const std::vector<BYTE>& sid, std::vector<Enforcement>& out) {
  std::string why;
  bool ok = ChildInAppContainer(child.process.get(), sid, req.networkNone, &why);
  if (req.networkNone) out.push_back(MakeEnforcement("network", ok, "appcontainer", why));
  if (req.hasFilesystem) out.push_back(MakeEnforcement("filesystem", ok, "appcontainer", why));
  if (!ok && req.strict) {
    TerminateJobObject(child.job.get(), 1);  // it never ran: it is still suspended
    throw NotEnforcedError(out.back());
  }
}

// The privileges entry, from the token the suspended worker actually has.
Enforcement CheckToken(const SpawnRequest& req, Child& child) {
  Enforcement e;
  e.limit = "privileges";
  e.enforced = ChildTokenRestricted(child.process.get(), req.privileges, &e.reason);
  e.mechanism = e.enforced ? (req.privileges == Privileges::Low ? "restricted-token-low-integrity" : "restricted-token") : "none";
  if (e.enforced) e.reason.clear();
  if (!e.enforced && req.strict && req.privilegesExplicit) {
    TerminateJobObject(child.job.get(), 1);  // it never ran: it is still suspended
    throw NotEnforcedError(e);
  }
  return e;
}

}  // namespace

SpawnResult Spawn(const SpawnRequest& req, std::shared_ptr<EventSink> sink) {
  Monitor& mon = Monitor::Get();
  auto child = NewWorker<Child>(mon.NextId(), req, std::move(sink));
  SpawnResult res;
  res.id = child->id;
  res.enforcement = MakeWorkerJob(req, *child);
  UniqueHandle sessionToken;  // options.session: the session user's primary token
  DWORD sessionId = 0;
  if (req.session != kSessionCurrent) sessionToken = SessionUserToken(req.session, &sessionId);
  UniqueHandle token;
  std::vector<BYTE> workerSid;
  if (req.privileges != Privileges::Inherit) {
    // In another user's session the logon SID gives it that session's desktop and named objects
    // (this process, LocalSystem, is not granted to it); in this process's session its own SID
    // is granted them instead (the logon SID would open Node's process too: see desktop.h).
    token = MakeRestrictedToken(req.privileges, &workerSid, sessionToken.get(), sessionToken.valid());
    if (!sessionToken.valid()) child->grants = GrantSessionObjects(workerSid);
  }
  std::vector<BYTE> containerSid;
  if (child->container) containerSid = MakeContainer(req, *child);
  if (req.privileges == Privileges::Low || req.tempDir || child->container) {
    // A session user (not this process's) must be let into it too, and an AppContainer worker
    // (which runs at low integrity, as 'low': its directory goes under LocalLow too).
    std::vector<BYTE> workerUser;
    if (sessionToken.valid()) workerUser = UserSidOf(sessionToken.get());
    if (workerUser == ProcessUserSid()) workerUser.clear();
    child->temp.keep = req.keepTempDir;
    child->temp.Create(req.privileges == Privileges::Low || child->container, workerSid, workerUser, req.privateProfile, !req.killOnClose,
                       sessionToken.get(), containerSid);
    res.tempDir = ToUtf8(child->temp.path());
  }
  WorkerHandles wh;
  CollectHandles(req, *child, wh);
  HANDLE runAs = token.valid() ? token.get() : sessionToken.get();
  PROCESS_INFORMATION pi = CreateSuspended(req, *child, wh, runAs, sessionToken.get(), containerSid, res);
  child->process.reset(pi.hProcess);
  child->thread.reset(pi.hThread);
  child->pid = pi.dwProcessId;
  res.pid = pi.dwProcessId;
  DWORD sid = 0;
  if (ProcessIdToSessionId(pi.dwProcessId, &sid)) res.sessionId = sid;
  res.user = RunAsUserName(runAs);
  // Until the monitor has it: a failure below must not leave a suspended worker behind.
  auto kill = OnScopeExit([&] { TerminateProcess(child->process.get(), 1); });
  EnsureInJobs(*child);
  if (token.valid()) res.enforcement.push_back(CheckToken(req, *child));
  if (child->container) CheckContainer(req, *child, containerSid, res.enforcement);
  for (int i = 0; i < 3; i++)
    if (wh.servers[i].valid()) res.pipes[i] = std::to_string(HandleToNodeFd(std::move(wh.servers[i])));
  if (wh.channelServer.valid()) res.channel = std::to_string(HandleToNodeFd(std::move(wh.channelServer)));
  res.gracefulStop = child->sharesConsole ? "ctrl-break" : "none";
  kill.Dismiss();
  mon.Add(child);
  return res;
}

void Resume(uint64_t id) {
  std::shared_ptr<Child> c = Monitor::Get().Get(id, "resume");
  if (ResumeThread(c->thread.get()) == static_cast<DWORD>(-1)) {
    DWORD err = GetLastError();
    Monitor::Get().Terminate(*c, "killed");
    throw Win32Error("ResumeThread", err);
  }
  c->thread.reset();
  Monitor::Get().MarkResumed(*c);
}

bool Kill(uint64_t id, const std::string& reason) {
  std::shared_ptr<Child> c = Monitor::Get().Find(id);
  if (!c) return false;
  return Monitor::Get().Terminate(*c, reason);
}

void PinModule() {
  HMODULE self = nullptr;
  GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_PIN, reinterpret_cast<LPCWSTR>(&PinModule), &self);
}

// Windows has no signals: a worker sharing this console gets CTRL_BREAK_EVENT, whatever was asked.
bool Signal(uint64_t id, int) {
  std::shared_ptr<Child> c = Monitor::Get().Find(id);
  if (!c || WaitForSingleObject(c->process.get(), 0) == WAIT_OBJECT_0) return false;
  if (!c->sharesConsole)
    throw SysError("ENOTSUP", 0, "", "the worker shares no console with this process: it can only be ended (kill('SIGKILL'))");
  if (!GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, c->pid)) ThrowLastError("GenerateConsoleCtrlEvent", "CTRL_BREAK_EVENT");
  return true;
}

Stats GetStats(uint64_t id) {
  std::shared_ptr<Child> c = Monitor::Get().Get(id, "stats");
  return QueryStats(*c);
}

void Release(uint64_t id) {
  std::shared_ptr<Child> c = Monitor::Get().Remove(id);
  if (!c) return;
  // With killOnClose the tree dies when the job handle closes (JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE);
  // otherwise it runs on, still inside its job's limits -- even when its environment went away
  // before it was resumed (then without the stdio connections nobody will make now).
  if (c->killOnClose) {
    TerminateJobObject(c->job.get(), 1);
    return;
  }
  if (WaitForSingleObject(c->process.get(), 0) != WAIT_OBJECT_0) {
    c->temp.Keep();  // still its TEMP
    std::lock_guard<std::mutex> lock(c->grantsMu);
    for (auto& g : c->grants) g->Leave();  // and its desktop
  }
  if (c->thread.valid()) ResumeThread(c->thread.get());
}

GroupResult CreateGroup(const GroupRequest& req) {
  auto g = std::make_shared<Group>();
  g->id = Groups().NextId();
  g->job = MakeJob(Monitor::Get().port(), static_cast<ULONG_PTR>(g->id) | kGroupKey);
  double own = OwnJobCores();
  JobPlan plan = ApplyLimits(g->job.get(), req.limits, req.killOnClose, own);
  g->extended = plan.extended;
  // Its members' rates are shares of its cap only where the cap was applied (read back).
  bool capped = std::any_of(plan.enforcement.begin(), plan.enforcement.end(),
                            [](const Enforcement& e) { return e.limit == "cpu.cores" && e.enforced; });
  g->capacityCores = capped ? req.limits.cpuCores : own;
  g->processes = req.limits.processes;
  for (Enforcement& e : plan.enforcement)
    if (e.limit == "processes") GroupProcessesEntry(g->job.get(), e);
  if (req.strict) RequireEnforced(plan.enforcement);
  return PublishGroup(Groups(), std::move(g), plan.enforcement);
}

Stats GroupStats(uint64_t id) { return JobStats(Groups().Get(id, "groupStats")->job.get()); }

void ReleaseGroup(uint64_t id) {
  std::shared_ptr<Group> g = Groups().Remove(id);
  // Members still running end with it (killOnClose semantics), unless one asked to survive: the
  // others were ended by their own jobs as they were released.
  if (g && !g->survivors) TerminateJobObject(g->job.get(), 1);
}

std::vector<std::string> SessionEnvironment(int64_t session) {
  DWORD id = 0;
  UniqueHandle token = SessionUserToken(session, &id);
  void* block = nullptr;
  if (!CreateEnvironmentBlock(&block, token.get(), FALSE)) ThrowLastError("CreateEnvironmentBlock", "the session user's environment");
  std::vector<std::string> env;
  for (const wchar_t* p = static_cast<const wchar_t*>(block); *p; p += wcslen(p) + 1) env.push_back(ToUtf8(p));
  DestroyEnvironmentBlock(block);
  return env;
}

UserRecord LookupUser(const std::string&) {
  throw SysError("ERR_FEATURE_UNAVAILABLE_ON_PLATFORM", 0, "", "options.user is POSIX only (Windows: options.session)");
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
    if (l.affinity.empty()) l.affinity.push_back(0);  // several processor groups: the mask reads 0
    try {
      JobPlan plan = ApplyLimits(job.get(), l, false, OwnJobCores());
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
    std::string noContainer;
    bool containers = AppContainersAvailable(&noContainer);
    add("network", containers, "appcontainer", noContainer);
    add("filesystem", containers, "appcontainer", noContainer);
    add("disk", false, "none", "Windows has no size limit for a directory or a process's files");
    return s;
  }();
  return cached;
}

}  // namespace backend
}  // namespace si
