// network: 'none' and filesystem: { read, write } on Windows: the worker runs in an AppContainer
// of its own (a lowbox token made from its token at CreateProcess: PROC_THREAD_ATTRIBUTE_SECURITY_
// CAPABILITIES). An access check then also needs a grant to the container's SID (or to ALL
// APPLICATION PACKAGES, which system directories grant read), and the network needs capability
// SIDs: with none, it has no network at all (and AppContainers never reach this machine's
// loopback). Its AppContainer SID is granted the listed paths (read, or read and write) for its
// lifetime, and its executable, cwd and private temp directory. userenv's AppContainer functions
// are resolved at run time: Wine 8 has none of them, and there the options stay refused.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "win_util.h"

namespace si {
namespace win {

// Whether this host can make AppContainers (why not, when it cannot).
bool AppContainersAvailable(std::string* why);

// One worker's AppContainer: a profile of its own (CreateAppContainerProfile; deleted when this
// is destroyed, unless left), and its SID.
class AppContainer : public Revocable {
 public:
  AppContainer(const AppContainer&) = delete;
  AppContainer& operator=(const AppContainer&) = delete;
  ~AppContainer() override;
  // A profile named for this launcher and worker `id`. Throws SysError when it cannot be made.
  static std::unique_ptr<AppContainer> Create(uint64_t id);
  void Leave() override { left_ = true; }
  const std::vector<BYTE>& sid() const { return sid_; }
  // The network capabilities (outbound, inbound, private networks) for a worker that keeps the
  // network (filesystem without network: 'none').
  static std::vector<std::vector<BYTE>> NetworkCapabilities();

 private:
  AppContainer() = default;
  std::wstring name_;
  std::vector<BYTE> sid_;
  bool left_ = false;
};

// Grants `sid` `mask` on the file or directory `path` (a directory's entries inherit it), for as
// long as the result lives (it removes the ACE again: Windows takes the inherited copies away).
// Null, with why, when it cannot (no such path: ignored as Linux ignores it; no right to change
// its DACL, e.g. a system directory, which grants ALL APPLICATION PACKAGES read already).
std::unique_ptr<Revocable> GrantPath(const std::wstring& path, const std::vector<BYTE>& sid, DWORD mask, bool inherit, std::string* why);

// Access for a listed path.
constexpr DWORD kReadAccess = FILE_GENERIC_READ | FILE_GENERIC_EXECUTE;
constexpr DWORD kWriteAccess = FILE_GENERIC_READ | FILE_GENERIC_WRITE | FILE_GENERIC_EXECUTE | DELETE;

// Reads back the token the (still suspended) worker actually has: an AppContainer token with
// `sid` as its package SID and, for `noNetwork`, no capability at all. False with why otherwise.
bool ChildInAppContainer(HANDLE process, const std::vector<BYTE>& sid, bool noNetwork, std::string* why);

}  // namespace win
}  // namespace si
