// A worker's own temporary directory (tempDir: true, and always for privileges: 'low', which
// cannot write to its user's medium-integrity TEMP: its directory is under LocalLow). Protected
// DACL: this user, the worker's own SID (a restricted token passes its second access check only
// through it: no other worker can open the directory) and SYSTEM. Removed at the worker's end.
#pragma once

#include <string>
#include <vector>

#include "win_util.h"

namespace si {
namespace win {

class PrivateTemp {
 public:
  PrivateTemp() = default;
  PrivateTemp(const PrivateTemp&) = delete;
  PrivateTemp& operator=(const PrivateTemp&) = delete;
  ~PrivateTemp() { Remove(); }
  // Creates <TEMP or LocalLow\Temp>\spawn-isolated-<our pid>-<id>; `workerSid` may be empty
  // (an 'inherit' worker runs with this process's token).
  void Create(uint64_t id, bool low, const std::vector<BYTE>& workerSid, bool profile);
  // `env` with TEMP and TMP pointing at it (and LOCALAPPDATA / APPDATA beneath it with a
  // private profile), earlier values replaced.
  std::vector<std::string> Environment(const std::vector<std::string>& env) const;
  bool keep = false;  // keepTempDir: left in place at the end
  // Removes it and everything in it (best effort: files still open stay until the next try).
  void Remove();
  // Leaves it to a worker that outlives this process (killOnClose: false).
  void Keep() { path_.clear(); }
  const std::wstring& path() const { return path_; }

 private:
  std::wstring path_;
  bool profile_ = false;
};

}  // namespace win
}  // namespace si
