// What a restricted worker needs of its session besides its token: the window station and
// desktop (user32 connects to them when it loads: without access the process dies at start with
// STATUS_DLL_INIT_FAILED, 0xC0000142) and the session's namespace for named objects
// (BaseNamedObjects). They grant the session's logon SID, which a worker's restricting SIDs lack:
// that SID also opens every process of the logon session for reading (their default DACL grants
// it GENERIC_READ | GENERIC_EXECUTE), Node's among them. So a worker in this process's own session
// gets access through its own SID instead, for its lifetime (Microsoft's "Starting an Interactive
// Client Process" adds and removes ACEs the same way), and nothing more than it needs: no hooks,
// journaling, screen reading, clipboard or desktop switching.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <aclapi.h>

#include "win_util.h"

namespace si {
namespace win {

// Specific rights given to a worker's SID.
constexpr DWORD kWorkerWinstaAccess = WINSTA_ENUMDESKTOPS | WINSTA_READATTRIBUTES | WINSTA_ACCESSGLOBALATOMS | WINSTA_ENUMERATE;
constexpr DWORD kWorkerDesktopAccess =
    DESKTOP_READOBJECTS | DESKTOP_CREATEWINDOW | DESKTOP_CREATEMENU | DESKTOP_ENUMERATE | DESKTOP_WRITEOBJECTS;
constexpr DWORD kWorkerDirectoryAccess = 0x0001 | 0x0002 | 0x0004;  // DIRECTORY_QUERY | _TRAVERSE | _CREATE_OBJECT

// One ACE for one SID on one object, removed when this is destroyed (unless left).
class ObjectGrant : public Revocable {
 public:
  ObjectGrant(const ObjectGrant&) = delete;
  ObjectGrant& operator=(const ObjectGrant&) = delete;
  ~ObjectGrant() override;
  // Adds the ACE to the object's DACL. Null (with why) when the DACL cannot be read or written,
  // or when the object has no DACL (everyone has access: nothing to grant).
  static std::unique_ptr<ObjectGrant> Add(const std::wstring& what, std::shared_ptr<void> object, HANDLE h, SE_OBJECT_TYPE type,
                                          const std::vector<BYTE>& sid, DWORD mask, std::string* why);
  // The worker outlives this process: its ACE stays.
  void Leave() override { left_ = true; }

 private:
  ObjectGrant() = default;
  std::wstring what_;
  std::shared_ptr<void> object_;  // keeps the handle open (closed the way its kind is closed)
  HANDLE h_ = nullptr;
  SE_OBJECT_TYPE type_ = SE_UNKNOWN_OBJECT_TYPE;
  std::vector<BYTE> sid_;
  bool left_ = false;
};

// Grants `workerSid` what it needs on this process's window station and desktop (the ones a
// worker started without lpDesktop gets) and on this session's BaseNamedObjects, each for the
// worker's lifetime. Best effort: what cannot be granted is said on NODE_DEBUG=spawn-isolated.
Revocables GrantSessionObjects(const std::vector<BYTE>& workerSid);

}  // namespace win
}  // namespace si
