// Worker temp directories, removed without ever blocking the launcher. At the worker's end its
// directory is renamed (one system call, on the monitor thread, before 'exit' is posted) into
// this launcher's own trash directory beside it, 0700: from then on its path is free and no
// other process can reach what is in it. One housekeeping thread for the process then removes
// it: iteratively (no recursion, whatever its depth), holding two fds at a time, never
// following a symbolic link. Leftovers of launchers that were killed outright (their temp and
// trash directories) are removed the same way by the next launcher to make a temp directory
// in the same place.
#pragma once

#include <stddef.h>

#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>

#include "sys.h"

namespace si {
namespace posix {

// The names this launcher gives its directories: "spawn-isolated-<pid>.<token>-..." (its temp
// directories and, "...-trash-XXXXXX", its trash directory), and "spawn-isolated-kept-..." for
// one it leaves to the caller or to a worker that may outlive it (keepTempDir, killOnClose:
// false), never swept. The launcher holds a flock on its trash directory for as long as it
// lives: a sweep removes a "<pid>.<token>" only once that lock can be taken (a pid says
// nothing across PID namespaces: a nested launcher sees an outer one's pid as gone).
constexpr const char* kTempPrefix = "spawn-isolated-";
constexpr const char* kKeptPrefix = "spawn-isolated-kept-";

// What removing a tree did.
struct RemoveResult {
  size_t removed = 0;  // entries removed (files, links, directories)
  int err = 0;         // 0, or the errno of the first entry that could not be removed
  std::string what;    // that entry's name
};

// Removes the directory `name` in `parentFd` and everything beneath it, iteratively, with at
// most two fds of its own open at a time; links are removed, never followed. A directory the
// caller owns but may not write or search is made 0700 first.
RemoveResult RemoveTreeAt(int parentFd, const char* name);

class Trash {
 public:
  static Trash& Get();
  // Moves `path` (a worker's temp directory, its tree gone) into the trash at once and queues
  // its removal. False when it could not be moved (then it is removed in place, later).
  bool Discard(const std::string& path);
  // This launcher's name for its directories in `base` ("<pid>.<token>"), its trash directory
  // there made and locked first. Then queues the removal of dead launchers' directories in
  // `base` (once a minute at most).
  std::string Owner(const std::string& base);
  // Waits until every queued removal is done (tests; at most `ms`).
  void Settle(uint64_t ms);

 private:
  Trash();
  void Run();
  // This launcher's trash directory in `base` (made on first use); "" if it cannot be made.
  std::string TrashDir(const std::string& base);
  void RemoveNow(const std::string& path);
  void SweepNow(const std::string& base);

  std::mutex mu_;
  CondVar cv_, idle_;
  std::deque<std::string> removals_, sweeps_;
  std::map<std::string, std::chrono::steady_clock::time_point> swept_;  // base -> last sweep
  std::map<std::string, std::string> trashDirs_;                        // base -> this launcher's trash directory in it
  std::string token_;                                                   // "<pid>.<random>": this launcher's names
  uint64_t next_ = 0;
  bool busy_ = false, started_ = false, debug_ = false;
};

}  // namespace posix
}  // namespace si
