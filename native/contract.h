// The internal contract between the N-API layer (addon.cc) and a platform backend
// (native/win, native/posix). Everything here is plain C++: no N-API types cross it.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace si {

// An OS failure (or a refusal) with what Node users expect on an error object.
struct SysError : std::exception {
  std::string code;     // Node-style: ENOENT, EACCES, ..., ERR_LIMIT_NOT_ENFORCED
  int64_t errnum = 0;   // Win32 error number or POSIX errno (0 when not an OS error)
  std::string syscall;  // the failing call
  std::string message;
  std::string limit;  // for ERR_LIMIT_NOT_ENFORCED: the limit's name
  SysError(std::string c, int64_t e, std::string sc, std::string msg, std::string lim = "")
      : code(std::move(c)), errnum(e), syscall(std::move(sc)), message(std::move(msg)), limit(std::move(lim)) {}
  const char* what() const noexcept override { return message.c_str(); }
};

struct StdioSpec {
  enum Kind { Pipe, Ignore, Inherit, Fd } kind = Pipe;
  int fd = -1;  // Inherit: the parent's own fd 0/1/2; Fd: a Node fd
};

struct InheritSpec {
  bool rawHandle = false;  // true: a raw Windows HANDLE value; false: a Node fd
  int64_t value = 0;
};

// 0 means "not requested" for every field.
struct Limits {
  uint64_t memoryProcess = 0;
  uint64_t memoryTotal = 0;
  double cpuCores = 0;
  uint64_t cpuTimeMs = 0;
  std::vector<uint32_t> affinity;
  uint32_t processes = 0;
  uint32_t threads = 0;  // tasks (processes and threads) of the tree
  uint32_t handles = 0;
  uint64_t disk = 0;  // bytes: tempDir and private tmpfs sizes, and the largest file it may write
};

enum class Privileges { Restricted, Low, Inherit };

// SpawnRequest::session: this process's session, or the active console session (else an id).
constexpr int64_t kSessionCurrent = -1;
constexpr int64_t kSessionConsole = -2;

struct SpawnRequest {
  std::string file;               // resolved path of the executable
  std::vector<std::string> args;  // argv, argv[0] included
  bool hasCwd = false;
  std::string cwd;
  std::vector<std::string> env;  // "NAME=value"
  StdioSpec stdio[3];
  std::vector<InheritSpec> inherit;
  Limits limits;
  Privileges privileges = Privileges::Restricted;
  bool privilegesExplicit = false;  // the caller asked for it: strict mode applies
  bool threadsImplied = false;      // limits.threads was derived from processes, not asked for
  bool killOnClose = true;
  bool windowsHide = true;
  bool strict = true;
  bool hasUid = false, hasGid = false;
  bool hasGroups = false;  // supplementary groups to set (options.user), else none
  std::vector<uint32_t> groups;
  int64_t session = kSessionCurrent;  // Windows: the session to start the worker in
  bool envExplicit = false;           // options.env was given (not process.env)
  uint32_t uid = 0, gid = 0;
  uint64_t group = 0;           // an isolation group to start the worker in (0: none)
  bool channel = false;         // a private duplex channel (its worker end named in kChannelEnv)
  bool tempDir = false;         // a private temp directory (TEMP, TMP, TMPDIR), removed at its end
  bool keepTempDir = false;     // ... but left in place
  bool privateProfile = false;  // and the per-user cache / config locations under it
  bool networkNone = false;     // network: 'none' (only a loopback interface of its own)
  bool hasFilesystem = false;   // filesystem: only these paths (besides what every worker keeps)
  std::vector<std::string> fsRead, fsWrite;
};

// A user as the system's user database has it (options.user on POSIX).
struct UserRecord {
  std::string name, home, shell;
  uint32_t uid = 0, gid = 0;
  std::vector<uint32_t> groups;  // every group it is in, the primary one included
};

// The variable that tells the worker which fd / handle is its channel to the launcher.
constexpr const char* kChannelEnv = "SPAWN_ISOLATED_CHANNEL";

// How one requested limit is enforced on this spawn.
struct Enforcement {
  std::string limit;      // "memory.total", "cpu.cores", ...
  std::string mechanism;  // "job-object", "watchdog", "restricted-token", "none", ...
  bool enforced = false;
  std::string reason;  // why not, when not enforced
};

struct SpawnResult {
  uint64_t id = 0;
  int64_t pid = 0;
  std::string pipes[3];            // per stdio slot, what JS connects to ("" = none)
  std::vector<int64_t> inherited;  // what the worker sees for each InheritSpec
  std::vector<Enforcement> enforcement;
  // How the worker can be asked to end: "signal" (POSIX), "ctrl-break" (Windows, a console it
  // shares with this process), "none" (Windows without one: only its end).
  std::string gracefulStop = "signal";
  std::string channel;     // the launcher's end of the channel, as JS wraps it ("" = none)
  std::string tempDir;     // its private temp directory ("" = none)
  int64_t sessionId = -1;  // Windows: the session the worker runs in
  std::string user;        // the account the worker runs as ("" = unknown, e.g. a transient uid)
  // Returned before the worker's exec: a Spawned event follows once it has exec'd, or its Exit
  // event carries the start failure (Event::error) instead.
  bool startPending = false;
};

// A shared budget for several workers: memoryTotal, cpuCores and processes of `limits`.
struct GroupRequest {
  Limits limits;
  bool strict = true;
  bool killOnClose = true;
};

struct GroupResult {
  uint64_t id = 0;
  std::vector<Enforcement> enforcement;
};

struct Stats {
  double cpuUserMs = 0, cpuKernelMs = 0;
  uint64_t peakMemory = 0;
  uint32_t active = 0, total = 0;
};

struct Event {
  // Spawned: a spawn that returned before its worker's exec (SpawnResult::startPending) learnt
  // that the exec came.
  enum Type { Exit, Limit, Spawned } type = Exit;
  uint64_t id = 0;
  // Exit
  int64_t exitCode = 0;
  int signal = 0;           // POSIX signal number that ended the worker (0 = none)
  bool terminated = false;  // ended by us or by a limit rather than by itself
  std::string reason;       // "" (natural), "memory", "cpu-time", "handles", "killed"
  Stats stats;
  // A spawn that returned before its worker's exec: the worker never ran, and this is why (a
  // start failure, as the spawn would have thrown it), not an exit.
  std::unique_ptr<SysError> error;
  // Limit
  std::string limit;
  int64_t pid = 0;
  uint64_t value = 0;
};

// Where a backend delivers events; one per JS environment (main thread or worker_thread).
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void Post(std::unique_ptr<Event> ev) = 0;  // callable from any thread
};

using SupportEntry = Enforcement;

inline SysError NotEnforcedError(const Enforcement& e) {
  return SysError(
      "ERR_LIMIT_NOT_ENFORCED", 0, "",
      "options." + e.limit + " cannot be enforced on this host: " + e.reason + " (pass enforcement: 'best-effort' to run without it)",
      e.limit);
}

// Strict mode: the first limit that is not enforced fails the call.
inline void RequireEnforced(const std::vector<Enforcement>& list) {
  for (const Enforcement& e : list)
    if (!e.enforced) throw NotEnforcedError(e);
}

// An Enforcement entry: the mechanism when enforced, "none" and the reason when not.
inline Enforcement MakeEnforcement(const std::string& limit, bool enforced, const std::string& mechanism, const std::string& reason) {
  Enforcement e;
  e.limit = limit;
  e.enforced = enforced;
  e.mechanism = enforced ? mechanism : "none";
  if (!enforced) e.reason = reason;
  return e;
}

struct Support {
  std::string backend;  // "windows-job-object", "linux-cgroup-v2", ...
  bool spawn = false;   // spawnIsolated works at all
  std::string spawnReason;
  std::vector<SupportEntry> limits;
};

// Implemented once per platform.
namespace backend {
// Keeps this addon mapped until the process ends. Its background threads (monitor, cgroup
// pool) outlive any one environment, and Node unloads an addon once the last environment that
// loaded it is gone (the last worker_thread, when only threads loaded it).
void PinModule();
SpawnResult Spawn(const SpawnRequest& req, std::shared_ptr<EventSink> sink);
void Resume(uint64_t id);
// Ends the whole tree (SIGKILL; Windows: the job terminated); `reason` is recorded as the exit
// reason. False if already gone.
bool Kill(uint64_t id, const std::string& reason);
// Delivers `signal` to the worker itself (not its tree), as kill(2) would under child_process;
// the worker's own handling decides what follows. False if it is gone; ENOTSUP where the
// platform has no such signal (Windows).
bool Signal(uint64_t id, int signal);
Stats GetStats(uint64_t id);
// Forget the child (after its exit event, or when the environment is torn down:
// then a live tree is killed first).
void Release(uint64_t id);
Support Probe();
// POSIX: `name` from the user database (getpwnam_r, getgrouplist); ENOENT when unknown.
UserRecord LookupUser(const std::string& name);
#ifdef _WIN32
// Windows: the environment ("NAME=value") of the user logged on in `session` (kSessionConsole,
// or an id), as that user's logon makes it (CreateEnvironmentBlock); ERR_NO_USER_SESSION when it
// cannot be had (a launcher that is not LocalSystem, nobody logged on).
std::vector<std::string> SessionEnvironment(int64_t session);
#endif
GroupResult CreateGroup(const GroupRequest& req);
Stats GroupStats(uint64_t id);
// Releases the group's job / cgroup once its workers are gone.
void ReleaseGroup(uint64_t id);
}  // namespace backend

}  // namespace si
