// A worker's own temporary directory (privileges: 'low'): a low-integrity process cannot write
// to its user's medium-integrity TEMP, so it gets a directory under LocalLow, removed at its end.
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
  // Creates <LocalLow>\Temp\spawn-isolated-<our pid>-<id>.
  void Create(uint64_t id);
  // `env` with TEMP and TMP pointing at it (any earlier TEMP / TMP replaced).
  std::vector<std::string> Environment(const std::vector<std::string>& env) const;
  // Removes it and everything in it (best effort: files still open stay until the next try).
  void Remove();
  // Leaves it to a worker that outlives this process (killOnClose: false).
  void Keep() { path_.clear(); }
  const std::wstring& path() const { return path_; }

 private:
  std::wstring path_;
};

}  // namespace win
}  // namespace si
