// Removal of private temp directories, off the JS thread and off the monitor's thread: one
// background thread for the whole process (started on first use, shared by every JS
// environment, never ended, like the monitor), never one per worker.
//
// At a worker's end (Retire): once its job has no process left, its directory is renamed into
// this process's trash directory beside it (one rename: its path is gone at once), and only then
// is the worker's exit event posted; the tree is then deleted a bounded step at a time (see
// TreeRemover: handles only, no link followed, no recursion). Once per base directory (Sweep),
// what launchers that no longer run left behind there is removed the same way.
#pragma once

#include <memory>
#include <string>

#include "../contract.h"
#include "win_util.h"

namespace si {
namespace win {

// A directory handed over for removal: a handle on it (a directory, not a reparse point; any
// access: it is opened again through the handle, never by name), the path it had, and the
// directory it is in.
struct DirHandoff {
  UniqueHandle handle;
  std::wstring path;
  std::wstring base;
  // Where its trash directory goes (empty: `base`). A session user's directory is in that user's
  // own temp directory, where this launcher makes nothing: it is moved into this launcher's.
  std::wstring trashBase;
  const std::wstring& TrashBase() const { return trashBase.empty() ? base : trashBase; }
  bool valid() const { return handle.valid(); }
};

// How long a worker's exit event waits for its directory to go (its processes to end, files
// they held to close). Past that it is posted anyway, the directory goes when it can, and
// NODE_DEBUG=spawn-isolated says so.
constexpr unsigned kExitWaitMs = 2000;

class Janitor {
 public:
  static Janitor& Get();
  // `job`: the worker's job (its processes must be gone first); may be null. `exit` (may be
  // null, with `sink`): the worker's exit event, posted once the path is gone.
  void Retire(DirHandoff dir, UniqueHandle job, std::shared_ptr<EventSink> sink, std::unique_ptr<Event> exit);
  // Removes, in the background, the leftovers in `base` of launchers that no longer run (once
  // per base and process). `dir`: `base` already opened (by its user, for a base another user
  // controls), else it is opened by name.
  void SweepOnce(const std::wstring& base, UniqueHandle dir = UniqueHandle());

 private:
  Janitor();
  struct State;
  static DWORD WINAPI ThreadMain(void* self);
  void Run();
  void Wake();
  std::unique_ptr<State> s_;
};

// A line on stderr when NODE_DEBUG names spawn-isolated, as util.debuglog writes them.
void DebugLine(const std::string& msg);

}  // namespace win
}  // namespace si
