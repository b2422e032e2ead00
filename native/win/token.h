// The worker's token: a restricted copy of Node's (restricting SIDs, a default DACL of its own,
// integrity), and the check that the host applied it to the suspended worker.
#pragma once

#include <string>
#include <vector>

#include "win_util.h"

namespace si {
namespace win {

// The token's user SID (a copy).
std::vector<BYTE> UserSidOf(HANDLE token);
// This process's user SID (read once).
const std::vector<BYTE>& ProcessUserSid();
// An ACL that grants `mask` to each SID and nothing to anyone else; `aceFlags`: inheritance.
std::vector<BYTE> AllowAllAcl(const std::vector<PSID>& sids, DWORD aceFlags = 0, DWORD mask = GENERIC_ALL);
// `workerSid` (optional) receives the SID made for this worker (its restricting SID).
// `from`: the token to restrict (default: this process's). `withLogonSid`: its logon SID among
// the restricting SIDs too (a worker in another user's session: its desktop and named objects).
UniqueHandle MakeRestrictedToken(Privileges p, std::vector<BYTE>* workerSid = nullptr, HANDLE from = nullptr, bool withLogonSid = false);
// The primary token of the user logged on in `session` (kSessionConsole: the console's), for a
// LocalSystem launcher; ERR_NO_USER_SESSION (errno: the Win32 error) otherwise.
UniqueHandle SessionUserToken(int64_t session, DWORD* id);
// The account name (DOMAIN\user) of a token's user.
std::string TokenUserName(HANDLE token);
// False (with why) on a host whose access checks ignore restricted tokens (Wine).
bool TokenEnforced(std::string* why);
// Reads back the token the (still suspended) worker actually has.
bool ChildTokenRestricted(HANDLE process, Privileges p, std::string* why);

}  // namespace win
}  // namespace si
