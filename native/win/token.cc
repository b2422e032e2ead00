#define _CRT_RAND_S
#include <stdlib.h>

#include "token.h"

#include <wtsapi32.h>

#include <vector>

namespace si {
namespace win {
// The token's user SID (a copy).
std::vector<BYTE> UserSidOf(HANDLE token) {
  DWORD size = 0;
  GetTokenInformation(token, ::TokenUser, nullptr, 0, &size);
  std::vector<BYTE> buf(size ? size : 1);
  if (!GetTokenInformation(token, ::TokenUser, buf.data(), size, &size)) ThrowLastError("GetTokenInformation", "TokenUser");
  PSID sid = reinterpret_cast<TOKEN_USER*>(buf.data())->User.Sid;
  return std::vector<BYTE>(reinterpret_cast<BYTE*>(sid), reinterpret_cast<BYTE*>(sid) + GetLengthSid(sid));
}

const std::vector<BYTE>& ProcessUserSid() {
  static const std::vector<BYTE> sid = [] {
    HANDLE raw = nullptr;
    if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &raw)) ThrowLastError("OpenProcessToken");
    UniqueHandle token(raw);
    return UserSidOf(token.get());
  }();
  return sid;
}

std::vector<BYTE> AllowAllAcl(const std::vector<PSID>& sids, DWORD aceFlags, DWORD mask) {
  DWORD size = sizeof(ACL);
  for (PSID sid : sids) size += sizeof(ACCESS_ALLOWED_ACE) - sizeof(DWORD) + GetLengthSid(sid);
  std::vector<BYTE> acl(size);
  if (!InitializeAcl(reinterpret_cast<PACL>(acl.data()), size, ACL_REVISION)) ThrowLastError("InitializeAcl");
  for (PSID sid : sids)
    if (!AddAccessAllowedAceEx(reinterpret_cast<PACL>(acl.data()), ACL_REVISION, aceFlags, mask, sid))
      ThrowLastError("AddAccessAllowedAceEx");
  return acl;
}

namespace {

// A SID made for one worker (S-1-5-21-r1-r2-r3, random): its restricting SID and the only
// SID, besides its user and SYSTEM, that its own objects' default DACL admits.
struct WorkerSid {
  BYTE buf[SECURITY_MAX_SID_SIZE];
  PSID get() { return reinterpret_cast<PSID>(buf); }
  WorkerSid() {
    SID_IDENTIFIER_AUTHORITY nt = SECURITY_NT_AUTHORITY;
    unsigned int r[3] = {0, 0, 0};
    for (unsigned int& x : r)
      if (rand_s(&x) != 0) x = GetTickCount() ^ GetCurrentProcessId() ^ static_cast<unsigned int>(reinterpret_cast<uintptr_t>(&x));
    if (!InitializeSid(get(), &nt, 4)) ThrowLastError("InitializeSid");
    *GetSidSubAuthority(get(), 0) = SECURITY_NT_NON_UNIQUE;
    for (DWORD i = 0; i < 3; i++) *GetSidSubAuthority(get(), i + 1) = r[i];
  }
};

struct WellKnownSid {
  BYTE buf[SECURITY_MAX_SID_SIZE];
  explicit WellKnownSid(WELL_KNOWN_SID_TYPE type) {
    DWORD size = sizeof(buf);
    if (!CreateWellKnownSid(type, nullptr, buf, &size)) ThrowLastError("CreateWellKnownSid");
  }
  PSID get() { return reinterpret_cast<PSID>(buf); }
};

// What the worker's own objects (its process, threads, files it creates) grant: its own SID,
// its user and SYSTEM. Not RESTRICTED, Everyone or Users, which every worker has: a sibling
// passes the user check but not the restricted one, so it cannot open this worker.
void SetDefaultDacl(HANDLE token, PSID worker) {
  std::vector<BYTE> user = UserSidOf(token);
  WellKnownSid system(WinLocalSystemSid);
  std::vector<BYTE> acl = AllowAllAcl({worker, reinterpret_cast<PSID>(user.data()), system.get()});
  TOKEN_DEFAULT_DACL dd{reinterpret_cast<PACL>(acl.data())};
  if (!SetTokenInformation(token, TokenDefaultDacl, &dd, sizeof(dd))) ThrowLastError("SetTokenInformation", "TokenDefaultDacl");
}

// Integrity: medium for 'restricted' (never raised), low for 'low'.
void LowerIntegrity(HANDLE token, Privileges p) {
  DWORD target = p == Privileges::Low ? SECURITY_MANDATORY_LOW_RID : SECURITY_MANDATORY_MEDIUM_RID;
  DWORD current = SECURITY_MANDATORY_HIGH_RID;
  DWORD size = 0;
  GetTokenInformation(token, TokenIntegrityLevel, nullptr, 0, &size);
  if (size > 0) {
    std::vector<BYTE> buf(size);
    if (GetTokenInformation(token, TokenIntegrityLevel, buf.data(), size, &size)) {
      auto* label = reinterpret_cast<TOKEN_MANDATORY_LABEL*>(buf.data());
      PSID sid = label->Label.Sid;
      current = *GetSidSubAuthority(sid, static_cast<DWORD>(*GetSidSubAuthorityCount(sid) - 1));
    }
  }
  if (current <= target) return;
  SID_IDENTIFIER_AUTHORITY mandatory = SECURITY_MANDATORY_LABEL_AUTHORITY;
  PSID sid = nullptr;
  if (!AllocateAndInitializeSid(&mandatory, 1, target, 0, 0, 0, 0, 0, 0, 0, &sid)) ThrowLastError("AllocateAndInitializeSid");
  TOKEN_MANDATORY_LABEL label{};
  label.Label.Attributes = SE_GROUP_INTEGRITY;
  label.Label.Sid = sid;
  BOOL ok = SetTokenInformation(token, TokenIntegrityLevel, &label, sizeof(label) + GetLengthSid(sid));
  DWORD err = GetLastError();
  FreeSid(sid);
  if (!ok) throw Win32Error("SetTokenInformation", err, "TokenIntegrityLevel");
}

// The token's logon SID (S-1-5-5-x-y: its group with SE_GROUP_LOGON_ID), empty when it has none.
std::vector<BYTE> LogonSidOf(HANDLE token) {
  DWORD size = 0;
  GetTokenInformation(token, ::TokenGroups, nullptr, 0, &size);
  if (size == 0) return {};
  std::vector<BYTE> buf(size);
  if (!GetTokenInformation(token, ::TokenGroups, buf.data(), size, &size)) return {};
  auto* groups = reinterpret_cast<TOKEN_GROUPS*>(buf.data());
  for (DWORD i = 0; i < groups->GroupCount; i++) {
    if ((groups->Groups[i].Attributes & SE_GROUP_LOGON_ID) != SE_GROUP_LOGON_ID) continue;
    PSID sid = groups->Groups[i].Sid;
    return std::vector<BYTE>(reinterpret_cast<BYTE*>(sid), reinterpret_cast<BYTE*>(sid) + GetLengthSid(sid));
  }
  return {};
}

}  // namespace

// The worker's token (Chromium's USER_LIMITED level, with a SID of its own in place of the
// logon SID): every privilege but SeChangeNotify removed, Administrators deny-only, and the
// restricting SIDs {worker, Everyone, Users, RESTRICTED}. An access check must then pass for
// the user's SIDs and again for the restricting SIDs: Node's process and its jobs grant the
// user and SYSTEM only, so the worker cannot open them; system files grant Users and read.
// `withLogonSid` (a worker in another user's session): the session's logon SID too, which its
// window station, desktop and named-object namespace grant (see desktop.h for why a worker in
// this process's own session gets its own SID granted there instead).
UniqueHandle MakeRestrictedToken(Privileges p, std::vector<BYTE>* workerSid, HANDLE from, bool withLogonSid) {
  HANDLE raw = nullptr;
  if (from == nullptr &&
      !OpenProcessToken(GetCurrentProcess(), TOKEN_DUPLICATE | TOKEN_QUERY | TOKEN_ASSIGN_PRIMARY | TOKEN_ADJUST_DEFAULT, &raw))
    ThrowLastError("OpenProcessToken");
  UniqueHandle own(raw);
  HANDLE base = from != nullptr ? from : own.get();
  WellKnownSid admins(WinBuiltinAdministratorsSid), everyone(WinWorldSid), users(WinBuiltinUsersSid), restrictedCode(WinRestrictedCodeSid);
  WorkerSid worker;
  SID_AND_ATTRIBUTES denyOnly{admins.get(), 0};
  std::vector<SID_AND_ATTRIBUTES> restricting = {{worker.get(), 0}, {everyone.get(), 0}, {users.get(), 0}, {restrictedCode.get(), 0}};
  std::vector<BYTE> logon = withLogonSid ? LogonSidOf(base) : std::vector<BYTE>();
  if (!logon.empty()) restricting.push_back({reinterpret_cast<PSID>(logon.data()), 0});
  HANDLE restricted = nullptr;
  if (!CreateRestrictedToken(base, DISABLE_MAX_PRIVILEGE, 1, &denyOnly, 0, nullptr, static_cast<DWORD>(restricting.size()),
                             restricting.data(), &restricted))
    ThrowLastError("CreateRestrictedToken");
  UniqueHandle token(restricted);
  SetDefaultDacl(token.get(), worker.get());
  LowerIntegrity(token.get(), p);
  if (workerSid != nullptr) workerSid->assign(worker.buf, worker.buf + GetLengthSid(worker.get()));
  return token;
}

UniqueHandle SessionUserToken(int64_t session, DWORD* id) {
  *id = session == kSessionConsole ? WTSGetActiveConsoleSessionId() : static_cast<DWORD>(session);
  if (*id == 0xFFFFFFFF) throw SysError("ERR_NO_USER_SESSION", 0, "WTSGetActiveConsoleSessionId", "no session is attached to the console");
  HANDLE user = nullptr;
  if (!WTSQueryUserToken(*id, &user)) {
    DWORD err = GetLastError();
    std::string why = err == ERROR_PRIVILEGE_NOT_HELD ? "only a LocalSystem launcher (a service) can start a worker in a user's session"
                      : err == ERROR_NO_TOKEN         ? "nobody is logged on in session " + std::to_string(*id)
                                                      : "session " + std::to_string(*id) + ": " + Win32Message(err);
    throw SysError("ERR_NO_USER_SESSION", err, "WTSQueryUserToken", why + " (Win32 error " + std::to_string(err) + ")");
  }
  UniqueHandle impersonation(user);
  HANDLE primary = nullptr;
  if (!DuplicateTokenEx(impersonation.get(), MAXIMUM_ALLOWED, nullptr, SecurityIdentification, TokenPrimary, &primary))
    ThrowLastError("DuplicateTokenEx", "the session user's token");
  return UniqueHandle(primary);
}

std::string TokenUserName(HANDLE token) {
  std::vector<BYTE> sid = UserSidOf(token);
  wchar_t name[256], domain[256];
  DWORD n = 256, d = 256;
  SID_NAME_USE use;
  if (!LookupAccountSidW(nullptr, reinterpret_cast<PSID>(sid.data()), name, &n, domain, &d, &use)) return "";
  return ToUtf8(std::wstring(domain) + L"\\" + name);
}

bool TokenEnforced(std::string* why) {
  if (IsWine()) {
    *why =
        "Wine does not apply a restricted token to the child (its token keeps every privilege) and its access "
        "checks ignore integrity labels";
    return false;
  }
  return true;
}

// Reads back the token the (still suspended) worker actually has: privileges left and
// integrity RID. A host that ignores the token we passed shows up here.
bool ChildTokenRestricted(HANDLE process, Privileges p, std::string* why) {
  HANDLE raw = nullptr;
  if (!OpenProcessToken(process, TOKEN_QUERY, &raw)) {
    *why = "OpenProcessToken on the worker failed: " + Win32Message(GetLastError());
    return false;
  }
  UniqueHandle tok(raw);
  DWORD size = 0;
  GetTokenInformation(tok.get(), TokenPrivileges, nullptr, 0, &size);
  std::vector<BYTE> buf(size ? size : 1);
  if (!GetTokenInformation(tok.get(), TokenPrivileges, buf.data(), size, &size)) {
    *why = "GetTokenInformation(TokenPrivileges) on the worker failed: " + Win32Message(GetLastError());
    return false;
  }
  DWORD count = reinterpret_cast<TOKEN_PRIVILEGES*>(buf.data())->PrivilegeCount;
  if (count > 1) {  // DISABLE_MAX_PRIVILEGE keeps SeChangeNotifyPrivilege only
    *why = "the worker's token still holds " + std::to_string(count) + " privileges: the host did not apply the restricted token";
    return false;
  }
  size = 0;
  GetTokenInformation(tok.get(), TokenRestrictedSids, nullptr, 0, &size);
  std::vector<BYTE> rbuf(size ? size : sizeof(TOKEN_GROUPS));
  if (size == 0 || !GetTokenInformation(tok.get(), TokenRestrictedSids, rbuf.data(), size, &size) ||
      reinterpret_cast<TOKEN_GROUPS*>(rbuf.data())->GroupCount < 4) {
    *why = "the worker's token has no restricting SIDs: the host did not apply the restricted token";
    return false;
  }
  if (p == Privileges::Low) {
    size = 0;
    GetTokenInformation(tok.get(), TokenIntegrityLevel, nullptr, 0, &size);
    std::vector<BYTE> lbuf(size ? size : 1);
    if (!GetTokenInformation(tok.get(), TokenIntegrityLevel, lbuf.data(), size, &size)) {
      *why = "GetTokenInformation(TokenIntegrityLevel) on the worker failed: " + Win32Message(GetLastError());
      return false;
    }
    PSID sid = reinterpret_cast<TOKEN_MANDATORY_LABEL*>(lbuf.data())->Label.Sid;
    DWORD rid = *GetSidSubAuthority(sid, static_cast<DWORD>(*GetSidSubAuthorityCount(sid) - 1));
    if (rid > SECURITY_MANDATORY_LOW_RID) {
      *why = "the worker runs at integrity " + std::to_string(rid) + ", not low: the host did not apply the label";
      return false;
    }
  }
  return TokenEnforced(why);
}

}  // namespace win
}  // namespace si
