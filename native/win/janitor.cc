#include "janitor.h"

#include <algorithm>
#include <cwctype>
#include <map>
#include <mutex>
#include <set>
#include <vector>

#include "dir_tree.h"
#include "temp_dir.h"
#include "token.h"

namespace si {
namespace win {
namespace {

constexpr SIZE_T kJanitorStack = 256 * 1024;  // reserved; nothing here recurses
constexpr unsigned kGiveUpMs = 60 * 1000;     // a directory whose processes or files will not go
constexpr int kStepBudget = 256;              // file operations per removal step (others wait meanwhile)
constexpr int kSweepBudget = 512;             // entries of a base looked at per sweep step
constexpr int kMaxStuck = 10;                 // a removal making no progress is retried this many times
constexpr DWORD kFirstStuckDelayMs = 100;     // ... first after this, doubling

std::wstring Lower(std::wstring s) {
  for (wchar_t& c : s) c = static_cast<wchar_t>(std::towlower(c));
  return s;
}

// No process left in `job` (a worker's processes keep files in its directory open until each
// one has ended; TerminateJobObject only starts that).
bool JobDrained(HANDLE job) {
  if (job == nullptr) return true;
  JOBOBJECT_BASIC_ACCOUNTING_INFORMATION acct{};
  if (!QueryInformationJobObject(job, JobObjectBasicAccountingInformation, &acct, sizeof(acct), nullptr)) return true;
  return acct.ActiveProcesses == 0;
}

bool DebugEnabled() {
  wchar_t buf[512];
  DWORD n = GetEnvironmentVariableW(L"NODE_DEBUG", buf, 512);
  if (n == 0 || n >= 512) return false;
  std::wstring v = Lower(std::wstring(buf, n));
  size_t start = 0;
  while (start <= v.size()) {
    size_t end = v.find(L',', start);
    if (end == std::wstring::npos) end = v.size();
    std::wstring item = v.substr(start, end - start);
    while (!item.empty() && item.front() == L' ') item.erase(item.begin());
    while (!item.empty() && item.back() == L' ') item.pop_back();
    if (item == L"spawn-isolated" || item == L"*") return true;
    if (!item.empty() && item.back() == L'*' && std::wstring(L"spawn-isolated").compare(0, item.size() - 1, item, 0, item.size() - 1) == 0)
      return true;
    start = end + 1;
  }
  return false;
}

}  // namespace

void DebugLine(const std::string& msg) {
  if (!DebugEnabled()) return;
  std::string line = "SPAWN-ISOLATED " + std::to_string(GetCurrentProcessId()) + ": " + msg + "\n";
  DWORD written = 0;
  HANDLE err = GetStdHandle(STD_ERROR_HANDLE);
  if (err != nullptr && err != INVALID_HANDLE_VALUE) WriteFile(err, line.data(), static_cast<DWORD>(line.size()), &written, nullptr);
}

// A worker's directory at its end, until it is in the trash and its exit event is posted.
struct Retiring {
  DirHandoff dir;
  UniqueHandle full;  // the directory opened again with kTreeAccess, once its processes are gone
  UniqueHandle job;
  std::shared_ptr<EventSink> sink;
  std::unique_ptr<Event> exit;
  uint64_t worker = 0;
  ULONGLONG start = 0, next = 0;
  DWORD delay = 1;
  bool late = false;  // its exit event went before it could be moved
};

// A tree being deleted (in a trash directory, or a leftover where it is).
struct Removal {
  TreeRemover tree;
  std::wstring what;      // for messages
  std::wstring trashKey;  // the trash directory it is in ("" : none)
  // Removed where it is (it could not be moved to a trash directory on its volume): the
  // worker's exit is posted once it is gone (or given up).
  std::shared_ptr<EventSink> sink;
  std::unique_ptr<Event> exit;
  ULONGLONG next = 0;
  DWORD delay = kFirstStuckDelayMs;
  int stuck = 0;
  explicit Removal(UniqueHandle root) : tree(std::move(root)) {}
};

// This process's trash directory in one base: entries are renamed into it (same volume).
struct Trash {
  DirHandoff dir;
  uint64_t names = 0;
  size_t pending = 0;  // entries not yet deleted
};

struct Sweep {
  std::wstring base;
  UniqueHandle dir;
  bool started = false;
  bool restart = true;
};

struct Janitor::State {
  std::mutex mu;  // guards the incoming lists and `swept`
  std::vector<std::unique_ptr<Retiring>> incoming;
  std::vector<std::pair<std::wstring, UniqueHandle>> incomingSweeps;
  std::set<std::wstring> swept;
  UniqueHandle wake;
  // The thread's own.
  std::vector<std::unique_ptr<Retiring>> retiring;
  std::vector<std::unique_ptr<Removal>> removals;
  std::vector<std::unique_ptr<Sweep>> sweeps;
  std::map<std::wstring, Trash> trash;

  Trash* TrashFor(const std::wstring& base, DWORD* err);
  void DropTrashIfIdle(const std::wstring& key);
  bool Retire(Retiring& r, ULONGLONG now);
  void Post(Retiring& r);
  bool Remove(Removal& r, ULONGLONG now);
  bool SweepStep(Sweep& s);
};

Trash* Janitor::State::TrashFor(const std::wstring& base, DWORD* err) {
  std::wstring key = Lower(base);
  auto it = trash.find(key);
  if (it != trash.end()) return &it->second;
  try {
    std::vector<BYTE> system(SECURITY_MAX_SID_SIZE);
    DWORD size = static_cast<DWORD>(system.size());
    if (!CreateWellKnownSid(WinLocalSystemSid, nullptr, system.data(), &size)) ThrowLastError("CreateWellKnownSid");
    // Only this user and SYSTEM: no worker can reach what is in it.
    Trash t;
    t.dir = MakePrivateDir(
        base, {reinterpret_cast<PSID>(const_cast<BYTE*>(ProcessUserSid().data())), reinterpret_cast<PSID>(system.data())}, L".trash");
    return &trash.emplace(key, std::move(t)).first->second;
  } catch (const SysError& e) {
    *err = static_cast<DWORD>(e.errnum != 0 ? e.errnum : ERROR_GEN_FAILURE);
    DebugLine("cannot make a trash directory in " + ToUtf8(base) + ": " + e.message);
    return nullptr;
  }
}

// The trash directory goes once nothing is left in it (it is made again when needed).
void Janitor::State::DropTrashIfIdle(const std::wstring& key) {
  auto it = trash.find(key);
  if (it == trash.end() || it->second.pending > 0) return;
  NodeInfo info;
  if (Inspect(it->second.dir.handle.get(), &info)) DeleteByHandle(it->second.dir.handle.get(), info);  // fails if anything is left
  trash.erase(it);
}

void Janitor::State::Post(Retiring& r) {
  if (r.exit && r.sink) r.sink->Post(std::move(r.exit));
  r.exit.reset();
}

// True when `r` is done with (moved to the trash, or given up).
bool Janitor::State::Retire(Retiring& r, ULONGLONG now) {
  if (r.next > now) return false;
  DWORD err = 0;
  const char* why = "its processes have not all ended";
  if (JobDrained(r.job.get())) {
    why = "it could not be moved to the trash";
    NodeInfo info;
    if (!r.full.valid()) {
      r.full = ReopenSame(r.dir.handle.get(), kTreeAccess, &err);  // the same directory, whatever its name is now
      if (r.full.valid() && (!Inspect(r.full.get(), &info) || !info.directory)) r.full.reset();
      if (r.full.valid()) r.dir.handle.reset();  // one handle on it while it is renamed
    }
    Trash* t = r.full.valid() ? TrashFor(r.dir.TrashBase(), &err) : nullptr;
    if (t != nullptr) {
      for (int tries = 0; tries < 16; tries++) {
        err = RenameInto(r.full.get(), t->dir.handle.get(), Hex(t->names++));
        if (err != ERROR_ALREADY_EXISTS && err != ERROR_FILE_EXISTS) break;
      }
      if (err == 0) {
        Post(r);  // its path is gone: now the worker has exited
        if (r.late) DebugLine("worker " + std::to_string(r.worker) + ": its temp directory " + ToUtf8(r.dir.path) + " is gone now");
        auto removal = std::make_unique<Removal>(std::move(r.full));
        removal->what = r.dir.path;
        removal->trashKey = Lower(r.dir.TrashBase());
        t->pending++;
        removals.push_back(std::move(removal));
        return true;
      }
      if (err == ERROR_NOT_SAME_DEVICE) {
        // Its trash directory is on another volume (a session user's profile elsewhere): it is
        // removed where it is, and the exit waits for that instead.
        auto removal = std::make_unique<Removal>(std::move(r.full));
        removal->what = r.dir.path;
        removal->sink = std::move(r.sink);
        removal->exit = std::move(r.exit);
        DropTrashIfIdle(Lower(r.dir.TrashBase()));
        removals.push_back(std::move(removal));
        return true;
      }
    }
  }
  ULONGLONG age = now - r.start;
  if (r.exit && age >= kExitWaitMs) {
    Post(r);  // never held longer: the directory goes when it can
    r.late = true;
    DebugLine("worker " + std::to_string(r.worker) + ": exit reported while its temp directory " + ToUtf8(r.dir.path) +
              " is still there (" + why + (err != 0 ? ": " + Win32Message(err) : std::string()) + "); it is removed in the background");
  }
  if (age >= kGiveUpMs) {
    DebugLine("worker " + std::to_string(r.worker) + ": its temp directory " + ToUtf8(r.dir.path) + " is left in place (" + why +
              (err != 0 ? ": " + Win32Message(err) : std::string()) + " for " + std::to_string(kGiveUpMs / 1000) +
              " s); a later launcher removes it once this one has gone");
    DropTrashIfIdle(Lower(r.dir.TrashBase()));
    return true;
  }
  r.delay = std::min<DWORD>(r.delay * 2, r.exit ? 50 : 1000);
  r.next = now + r.delay;
  return false;
}

// True when `r` is done with (removed, or given up).
bool Janitor::State::Remove(Removal& r, ULONGLONG now) {
  TreeRemover::Result res = r.tree.Step(kStepBudget);
  if (res == TreeRemover::kMore) return false;
  if (res == TreeRemover::kStuck && ++r.stuck <= kMaxStuck) {
    r.next = now + r.delay;
    r.delay = std::min<DWORD>(r.delay * 2, 10000);
    return false;
  }
  if (res == TreeRemover::kStuck)
    DebugLine("could not remove all of " + ToUtf8(r.what) + ": " + Win32Message(r.tree.lastError()) +
              "; a later launcher removes what is left once this one has gone");
  if (!r.trashKey.empty()) {
    auto it = trash.find(r.trashKey);
    if (it != trash.end() && it->second.pending > 0) it->second.pending--;
    DropTrashIfIdle(r.trashKey);
  }
  if (r.exit && r.sink) r.sink->Post(std::move(r.exit));
  return true;
}

// One step of a sweep of a base: true when it is done.
bool Janitor::State::SweepStep(Sweep& s) {
  if (!s.started) {
    s.started = true;
    if (!s.dir.valid())
      s.dir.reset(CreateFileW(s.base.c_str(), FILE_LIST_DIRECTORY | FILE_TRAVERSE | SYNCHRONIZE,
                              FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS,
                              nullptr));
    if (!s.dir.valid()) return true;
  }
  std::vector<DirEntry> batch;
  DWORD err = 0;
  for (int looked = 0; looked < kSweepBudget;) {
    if (!ListBatch(s.dir.get(), s.restart, &batch, &err)) return true;
    s.restart = false;
    for (const DirEntry& e : batch) {
      looked++;
      if (e.name.compare(0, 15, L"spawn-isolated-") != 0 || !(e.attributes & FILE_ATTRIBUTE_DIRECTORY) || !IsLeftover(e.name)) continue;
      UniqueHandle h = OpenRelative(s.dir.get(), e.name, kTreeAccess, &err);
      NodeInfo info;
      if (!h.valid() || !Inspect(h.get(), &info)) continue;
      DebugLine("removing " + ToUtf8(s.base + L"\\" + e.name) + ", left by a launcher that no longer runs");
      if (!info.directory) {
        DeleteByHandle(h.get(), info);  // a link with such a name: the link itself, never its target
        continue;
      }
      auto removal = std::make_unique<Removal>(std::move(h));
      removal->what = s.base + L"\\" + e.name;
      removals.push_back(std::move(removal));
    }
  }
  return false;
}

Janitor::Janitor() : s_(new State()) {
  s_->wake.reset(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  if (!s_->wake.valid()) ThrowLastError("CreateEventW");
  HANDLE t = CreateThread(nullptr, kJanitorStack, &Janitor::ThreadMain, this, STACK_SIZE_PARAM_IS_A_RESERVATION, nullptr);
  if (t == nullptr) ThrowLastError("CreateThread");
  CloseHandle(t);
}

Janitor& Janitor::Get() {
  static Janitor* j = new Janitor();  // never destroyed: the thread outlives static destructors
  return *j;
}

void Janitor::Wake() { SetEvent(s_->wake.get()); }

void Janitor::Retire(DirHandoff dir, UniqueHandle job, std::shared_ptr<EventSink> sink, std::unique_ptr<Event> exit) {
  auto r = std::make_unique<Retiring>();
  r->worker = exit ? exit->id : 0;
  r->dir = std::move(dir);
  r->job = std::move(job);
  r->sink = std::move(sink);
  r->exit = std::move(exit);
  r->start = GetTickCount64();
  {
    std::lock_guard<std::mutex> lock(s_->mu);
    s_->incoming.push_back(std::move(r));
  }
  Wake();
}

void Janitor::SweepOnce(const std::wstring& base, UniqueHandle dir) {
  {
    std::lock_guard<std::mutex> lock(s_->mu);
    if (!s_->swept.insert(Lower(base)).second) return;
    s_->incomingSweeps.emplace_back(base, std::move(dir));
  }
  Wake();
}

DWORD WINAPI Janitor::ThreadMain(void* self) {
  static_cast<Janitor*>(self)->Run();
  return 0;
}

void Janitor::Run() {
  State& s = *s_;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(s.mu);
      for (auto& r : s.incoming) s.retiring.push_back(std::move(r));
      s.incoming.clear();
      for (auto& b : s.incomingSweeps) {
        auto sw = std::make_unique<Sweep>();
        sw->base = b.first;
        sw->dir = std::move(b.second);
        s.sweeps.push_back(std::move(sw));
      }
      s.incomingSweeps.clear();
    }
    // Nothing here may throw out of the thread (that would end the process).
    try {
      ULONGLONG now = GetTickCount64();
      // Exits wait on these: first.
      for (size_t i = 0; i < s.retiring.size();) {
        if (s.Retire(*s.retiring[i], now))
          s.retiring.erase(s.retiring.begin() + static_cast<std::ptrdiff_t>(i));
        else
          i++;
      }
      if (!s.sweeps.empty() && s.SweepStep(*s.sweeps.front())) s.sweeps.erase(s.sweeps.begin());
      // One step of the first removal that is due, which then goes last (round robin).
      for (size_t i = 0; i < s.removals.size(); i++) {
        if (s.removals[i]->next > now) continue;
        std::unique_ptr<Removal> r = std::move(s.removals[i]);
        s.removals.erase(s.removals.begin() + static_cast<std::ptrdiff_t>(i));
        if (!s.Remove(*r, now)) s.removals.push_back(std::move(r));
        break;
      }
    } catch (const std::exception& e) {
      DebugLine(std::string("temp directory janitor: ") + e.what());
    } catch (...) {
    }
    // Until the next thing is due, or new work arrives.
    ULONGLONG now = GetTickCount64();
    ULONGLONG due = ~0ull;
    if (!s.sweeps.empty()) due = now;
    for (auto& r : s.retiring) due = std::min(due, r->next);
    for (auto& r : s.removals) due = std::min(due, r->next);
    DWORD wait = due == ~0ull ? INFINITE : due <= now ? 0 : static_cast<DWORD>(std::min<ULONGLONG>(due - now, 60000));
    if (wait != 0) WaitForSingleObject(s.wake.get(), wait);
  }
}

}  // namespace win
}  // namespace si
