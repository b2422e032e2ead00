// A worker's own temporary directory (tempDir: true, and always for privileges: 'low', which
// cannot write to its user's medium-integrity TEMP: its directory is under LocalLow). A worker
// in another user's session gets it in that user's own temp directory (see Create). Protected
// DACL: this user (and the worker's user, when it runs as another), the worker's own SID (a
// restricted token passes its second access check only through it: no other worker can open
// the directory) and SYSTEM. Removed at the worker's end (see janitor.h).
//
// Names: spawn-isolated-<launcher pid>-<launcher creation time, 16 hex>-<128 random bits, 32 hex>
// [.trash | .detached]. Nothing can be planted at a name in advance, and a name that exists is
// never used (the directory is created exclusively, with its DACL, then opened without following
// a link and checked to be a plain directory). The launcher's pid and creation time say, after
// it has gone, that what it left is nobody's ('.detached': made for a killOnClose: false worker,
// which may outlive its launcher and keep using it: never swept).
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "janitor.h"
#include "win_util.h"

namespace si {
namespace win {

// Where temp directories go: GetTempPath2W where the host has it (for LocalSystem that is
// C:\Windows\SystemTemp, which only SYSTEM and administrators may enter, not C:\Windows\Temp,
// where every user may create folders; for anyone else it is what GetTempPathW answers), else
// GetTempPathW. No trailing separator.
std::wstring TempBase();

// Creates <base>\<name> with a protected DACL granting each of `sids` full control (inherited
// inside), where <name> is a fresh random name (`firstName` first, if given: tests). An existing
// name is never accepted: another random name is tried. Returns the directory's handle and path.
DirHandoff MakePrivateDir(const std::wstring& base, const std::vector<PSID>& sids, const std::wstring& suffix,
                          const std::wstring& firstName = L"");

// Whether the entry `name` in a temp base is a leftover of a launcher that no longer runs (and
// so to be removed): a worker or trash directory of this naming (or of the older
// spawn-isolated-<pid>-<n>) whose launcher process is gone. Never this process's, never
// another running launcher's, never a '.detached' one.
bool IsLeftover(const std::wstring& name);

class PrivateTemp {
 public:
  PrivateTemp() = default;
  PrivateTemp(const PrivateTemp&) = delete;
  PrivateTemp& operator=(const PrivateTemp&) = delete;
  // `workerSid`: the worker's restricting SID (empty for an 'inherit' worker); `workerUser`: its
  // token's user when that is not this process's (a session user), else empty. `detached`: for
  // a killOnClose: false worker. `sessionToken`: a session worker's user's token (else null): the
  // directory is then made in that user's own temp directory, as that user.
  // `containerSid`: its AppContainer's SID (else empty), granted it too.
  void Create(bool low, const std::vector<BYTE>& workerSid, const std::vector<BYTE>& workerUser, bool profile, bool detached,
              HANDLE sessionToken = nullptr, const std::vector<BYTE>& containerSid = {});
  // `env` with TEMP and TMP pointing at it (and LOCALAPPDATA / APPDATA beneath it with a
  // private profile), earlier values replaced.
  std::vector<std::string> Environment(const std::vector<std::string>& env) const;
  bool keep = false;  // keepTempDir: left in place at the end
  // The worker has ended: the directory to remove (none when it is kept).
  DirHandoff Take();
  // Leaves it to a worker that outlives this process (killOnClose: false).
  void Keep();
  const std::wstring& path() const { return path_; }

 private:
  std::wstring path_;  // set by Create, then read only
  bool profile_ = false;
  std::mutex mu_;  // Take (monitor, janitor) and Keep (JS thread) may race
  DirHandoff dir_;
};

}  // namespace win
}  // namespace si
