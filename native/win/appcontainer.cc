#define _CRT_RAND_S
#include <stdlib.h>

#include "appcontainer.h"

#include <aclapi.h>

#include <cstdio>

#include "janitor.h"

namespace si {
namespace win {
namespace {

using CreateProfileFn = HRESULT(WINAPI*)(PCWSTR, PCWSTR, PCWSTR, PSID_AND_ATTRIBUTES, DWORD, PSID*);
using DeleteProfileFn = HRESULT(WINAPI*)(PCWSTR);
using DeriveSidFn = HRESULT(WINAPI*)(PCWSTR, PSID*);

// userenv's AppContainer functions (Windows 8 and later), resolved at run time.
struct UserenvApi {
  CreateProfileFn create = nullptr;
  DeleteProfileFn remove = nullptr;
  DeriveSidFn derive = nullptr;
  bool ok() const { return create != nullptr && remove != nullptr && derive != nullptr; }
};

const UserenvApi& Userenv() {
  static const UserenvApi api = [] {
    UserenvApi a;
    HMODULE m = GetModuleHandleW(L"userenv.dll");
    if (m == nullptr) m = LoadLibraryExW(L"userenv.dll", nullptr, LOAD_LIBRARY_SEARCH_SYSTEM32);
    if (m == nullptr) return a;
    a.create = reinterpret_cast<CreateProfileFn>(reinterpret_cast<void*>(GetProcAddress(m, "CreateAppContainerProfile")));
    a.remove = reinterpret_cast<DeleteProfileFn>(reinterpret_cast<void*>(GetProcAddress(m, "DeleteAppContainerProfile")));
    a.derive = reinterpret_cast<DeriveSidFn>(reinterpret_cast<void*>(GetProcAddress(m, "DeriveAppContainerSidFromAppContainerName")));
    return a;
  }();
  return api;
}

std::vector<BYTE> CopySid(PSID sid) {
  return std::vector<BYTE>(reinterpret_cast<BYTE*>(sid), reinterpret_cast<BYTE*>(sid) + GetLengthSid(sid));
}

std::string HresultText(HRESULT hr) {
  char buf[16];
  snprintf(buf, sizeof(buf), "0x%08lx", static_cast<unsigned long>(hr));
  return std::string(buf) + (HRESULT_FACILITY(hr) == FACILITY_WIN32 ? " (" + Win32Message(HRESULT_CODE(hr)) + ")" : "");
}

// A path's DACL with the ACE of `ea` applied (granted, or every explicit ACE of its trustee
// revoked), written back with its protection unchanged (Windows propagates it to what inherits).
DWORD ApplyToPath(const std::wstring& path, EXPLICIT_ACCESS_W& ea) {
  PACL dacl = nullptr;
  PSECURITY_DESCRIPTOR sd = nullptr;
  DWORD err = GetNamedSecurityInfoW(path.c_str(), SE_FILE_OBJECT, DACL_SECURITY_INFORMATION, nullptr, nullptr, &dacl, nullptr, &sd);
  if (err != ERROR_SUCCESS) return err;
  SECURITY_DESCRIPTOR_CONTROL control = 0;
  DWORD revision = 0;
  GetSecurityDescriptorControl(sd, &control, &revision);
  PACL updated = nullptr;
  err = SetEntriesInAclW(1, &ea, dacl, &updated);
  if (err == ERROR_SUCCESS) {
    SECURITY_INFORMATION info = DACL_SECURITY_INFORMATION | ((control & SE_DACL_PROTECTED) ? PROTECTED_DACL_SECURITY_INFORMATION
                                                                                           : UNPROTECTED_DACL_SECURITY_INFORMATION);
    err = SetNamedSecurityInfoW(const_cast<LPWSTR>(path.c_str()), SE_FILE_OBJECT, info, nullptr, nullptr, updated, nullptr);
  }
  if (updated != nullptr) LocalFree(updated);
  LocalFree(sd);
  return err;
}

EXPLICIT_ACCESS_W Entry(const std::vector<BYTE>& sid, DWORD mask, ACCESS_MODE mode, DWORD inheritance) {
  EXPLICIT_ACCESS_W ea{};
  ea.grfAccessPermissions = mask;
  ea.grfAccessMode = mode;
  ea.grfInheritance = inheritance;
  ea.Trustee.TrusteeForm = TRUSTEE_IS_SID;
  ea.Trustee.TrusteeType = TRUSTEE_IS_UNKNOWN;
  ea.Trustee.ptstrName = reinterpret_cast<LPWSTR>(const_cast<BYTE*>(sid.data()));
  return ea;
}

class PathGrant : public Revocable {
 public:
  PathGrant(std::wstring path, std::vector<BYTE> sid) : path_(std::move(path)), sid_(std::move(sid)) {}
  ~PathGrant() override {
    if (left_) return;
    EXPLICIT_ACCESS_W ea = Entry(sid_, 0, REVOKE_ACCESS, NO_INHERITANCE);
    DWORD err = ApplyToPath(path_, ea);
    if (err != ERROR_SUCCESS) DebugLine("could not take a worker's access to " + ToUtf8(path_) + " back: " + Win32Message(err));
  }
  void Leave() override { left_ = true; }

 private:
  std::wstring path_;
  std::vector<BYTE> sid_;
  bool left_ = false;
};

}  // namespace

bool AppContainersAvailable(std::string* why) {
  if (Userenv().ok()) return true;
  *why =
      "this host's userenv.dll has no CreateAppContainerProfile / DeriveAppContainerSidFromAppContainerName (AppContainers need "
      "Windows 8 or later; Wine 8 has neither)";
  return false;
}

std::unique_ptr<AppContainer> AppContainer::Create(uint64_t id) {
  const UserenvApi& api = Userenv();
  if (!api.ok()) throw SysError("ENOTSUP", 0, "CreateAppContainerProfile", "this host cannot make AppContainers");
  unsigned int r[2] = {0, 0};
  for (unsigned int& x : r)
    if (rand_s(&x) != 0) x = GetTickCount() ^ static_cast<unsigned int>(id);
  wchar_t name[64];
  swprintf(name, 64, L"spawn-isolated.%lu.%llu.%08x%08x", GetCurrentProcessId(), static_cast<unsigned long long>(id), r[0], r[1]);
  std::unique_ptr<AppContainer> c(new AppContainer());
  c->name_ = name;
  PSID sid = nullptr;
  HRESULT hr = api.create(name, name, L"spawn-isolated worker", nullptr, 0, &sid);
  if (hr == HRESULT_FROM_WIN32(ERROR_ALREADY_EXISTS)) hr = api.derive(name, &sid);  // a random name: not expected
  if (FAILED(hr) || sid == nullptr)
    throw SysError("EACCES", HRESULT_CODE(hr), "CreateAppContainerProfile", "CreateAppContainerProfile failed: " + HresultText(hr));
  c->sid_ = CopySid(sid);
  FreeSid(sid);
  return c;
}

AppContainer::~AppContainer() {
  if (left_ || name_.empty()) return;
  HRESULT hr = Userenv().remove(name_.c_str());
  if (FAILED(hr)) DebugLine("could not delete the AppContainer profile " + ToUtf8(name_) + ": " + HresultText(hr));
}

std::vector<std::vector<BYTE>> AppContainer::NetworkCapabilities() {
  std::vector<std::vector<BYTE>> out;
  for (WELL_KNOWN_SID_TYPE t :
       {WinCapabilityInternetClientSid, WinCapabilityInternetClientServerSid, WinCapabilityPrivateNetworkClientServerSid}) {
    std::vector<BYTE> sid(SECURITY_MAX_SID_SIZE);
    DWORD size = static_cast<DWORD>(sid.size());
    if (!CreateWellKnownSid(t, nullptr, sid.data(), &size)) ThrowLastError("CreateWellKnownSid", "a network capability");
    sid.resize(size);
    out.push_back(std::move(sid));
  }
  return out;
}

std::unique_ptr<Revocable> GrantPath(const std::wstring& path, const std::vector<BYTE>& sid, DWORD mask, bool inherit, std::string* why) {
  EXPLICIT_ACCESS_W ea = Entry(sid, mask, GRANT_ACCESS, inherit ? SUB_CONTAINERS_AND_OBJECTS_INHERIT : NO_INHERITANCE);
  DWORD err = ApplyToPath(path, ea);
  if (err != ERROR_SUCCESS) {
    *why = ToUtf8(path) + ": " + Win32Message(err);
    return nullptr;
  }
  return std::unique_ptr<Revocable>(new PathGrant(path, sid));
}

bool ChildInAppContainer(HANDLE process, const std::vector<BYTE>& sid, bool noNetwork, std::string* why) {
  HANDLE raw = nullptr;
  if (!OpenProcessToken(process, TOKEN_QUERY, &raw)) {
    *why = "OpenProcessToken on the worker failed: " + Win32Message(GetLastError());
    return false;
  }
  UniqueHandle tok(raw);
  DWORD isAppContainer = 0, size = 0;
  if (!GetTokenInformation(tok.get(), TokenIsAppContainer, &isAppContainer, sizeof(isAppContainer), &size) || !isAppContainer) {
    *why = "the worker's token is not an AppContainer token: the host did not apply it";
    return false;
  }
  size = 0;
  GetTokenInformation(tok.get(), TokenAppContainerSid, nullptr, 0, &size);
  std::vector<BYTE> buf(size ? size : sizeof(TOKEN_APPCONTAINER_INFORMATION));
  PSID package = nullptr;
  if (GetTokenInformation(tok.get(), TokenAppContainerSid, buf.data(), static_cast<DWORD>(buf.size()), &size))
    package = reinterpret_cast<TOKEN_APPCONTAINER_INFORMATION*>(buf.data())->TokenAppContainer;
  if (package == nullptr || !IsValidSid(package) || GetLengthSid(package) != sid.size() ||
      !EqualSid(package, reinterpret_cast<PSID>(const_cast<BYTE*>(sid.data())))) {
    *why = "the worker's AppContainer SID is not the one made for it";
    return false;
  }
  if (noNetwork) {
    size = 0;
    GetTokenInformation(tok.get(), TokenCapabilities, nullptr, 0, &size);
    std::vector<BYTE> caps(size ? size : sizeof(TOKEN_GROUPS));
    if (!GetTokenInformation(tok.get(), TokenCapabilities, caps.data(), static_cast<DWORD>(caps.size()), &size)) {
      *why = "GetTokenInformation(TokenCapabilities) on the worker failed: " + Win32Message(GetLastError());
      return false;
    }
    DWORD n = reinterpret_cast<TOKEN_GROUPS*>(caps.data())->GroupCount;
    if (n != 0) {
      *why = "the worker's token holds " + std::to_string(n) + " capabilities: it may reach the network";
      return false;
    }
  }
  return true;
}

}  // namespace win
}  // namespace si
