// The worker's token: a restricted copy of Node's (restricting SIDs, a default DACL of its own,
// integrity), and the check that the host applied it to the suspended worker.
#pragma once

#include <initializer_list>
#include <string>
#include <vector>

#include "win_util.h"

namespace si {
namespace win {

// The token's user SID (a copy).
std::vector<BYTE> UserSidOf(HANDLE token);
// This process's user SID (read once).
const std::vector<BYTE>& ProcessUserSid();
// An ACL that grants GENERIC_ALL to each SID and nothing to anyone else.
std::vector<BYTE> AllowAllAcl(std::initializer_list<PSID> sids);
// `workerSid` (optional) receives the SID made for this worker (its restricting SID).
UniqueHandle MakeRestrictedToken(Privileges p, std::vector<BYTE>* workerSid = nullptr);
// False (with why) on a host whose access checks ignore restricted tokens (Wine).
bool TokenEnforced(std::string* why);
// Reads back the token the (still suspended) worker actually has.
bool ChildTokenRestricted(HANDLE process, Privileges p, std::string* why);

}  // namespace win
}  // namespace si
