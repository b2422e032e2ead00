#include "temp_dir.h"

#include <shlobj.h>

#include <cstring>

#include "dir_tree.h"
#include "token.h"

namespace si {
namespace win {
namespace {

// FOLDERID_LocalAppDataLow, defined here so that no GUID library has to be linked.
const GUID kLocalAppDataLow = {0xA520A1A4, 0x1780, 0x4FF6, {0xBD, 0x18, 0x16, 0x73, 0x43, 0xC5, 0xAF, 0x16}};
const wchar_t kPrefix[] = L"spawn-isolated-";
constexpr size_t kPrefixLen = sizeof(kPrefix) / sizeof(wchar_t) - 1;
constexpr int kNameTries = 16;  // fresh names tried before giving up (each a 2^-128 collision)

// FOLDERID_LocalAppData.
const GUID kLocalAppData = {0xF1B32785, 0x6FBA, 0x4FCF, {0x9D, 0x55, 0x7B, 0x8E, 0x7F, 0x15, 0x70, 0x91}};

// A known folder of the user of `token` (null: this process's).
std::wstring KnownFolder(const GUID& id, HANDLE token, const char* what) {
  PWSTR raw = nullptr;
  HRESULT hr = SHGetKnownFolderPath(id, KF_FLAG_CREATE, token, &raw);
  std::wstring path = SUCCEEDED(hr) && raw != nullptr ? raw : L"";
  CoTaskMemFree(raw);
  if (path.empty())
    throw SysError("ENOENT", static_cast<uint32_t>(hr), "SHGetKnownFolderPath",
                   std::string(token ? "the session user" : "this user") + " has no " + what + " folder");
  return path;
}

std::wstring LocalLow() { return KnownFolder(kLocalAppDataLow, nullptr, "LocalLow"); }

// This thread acts as `token`'s user until the end of the scope (file system access checks,
// and the owner of what it creates, are that user's).
class Impersonation {
 public:
  explicit Impersonation(HANDLE token) {
    if (!ImpersonateLoggedOnUser(token)) ThrowLastError("ImpersonateLoggedOnUser", "the session user");
  }
  Impersonation(const Impersonation&) = delete;
  Impersonation& operator=(const Impersonation&) = delete;
  ~Impersonation() { RevertToSelf(); }
};

// The user's own LocalLow\Temp, kept as it was: made when missing.
void MakeBaseDir(const std::wstring& dir) {
  if (!CreateDirectoryW(dir.c_str(), nullptr) && GetLastError() != ERROR_ALREADY_EXISTS) ThrowLastError("CreateDirectoryW", ToUtf8(dir));
}

std::wstring Hex(uint64_t v, int digits) {
  static const wchar_t hex[] = L"0123456789abcdef";
  std::wstring s(static_cast<size_t>(digits), L'0');
  for (int i = digits - 1; i >= 0; i--, v >>= 4) s[static_cast<size_t>(i)] = hex[v & 0xf];
  return s;
}

// 128 bits from the system's CSPRNG (RtlGenRandom, advapi32's SystemFunction036), as hex.
std::wstring RandomHex128() {
  using GenRandomFn = BOOLEAN(WINAPI*)(PVOID, ULONG);
  static const GenRandomFn gen = [] {
    HMODULE m = GetModuleHandleW(L"advapi32.dll");
    if (m == nullptr) m = LoadLibraryW(L"advapi32.dll");
    return m == nullptr ? nullptr : reinterpret_cast<GenRandomFn>(reinterpret_cast<void*>(GetProcAddress(m, "SystemFunction036")));
  }();
  uint64_t r[2] = {0, 0};
  if (gen == nullptr || !gen(r, sizeof(r)))
    throw SysError("EIO", 0, "RtlGenRandom", "RtlGenRandom failed: no random name for a temp directory");
  return Hex(r[0], 16) + Hex(r[1], 16);
}

uint64_t CreationTime(HANDLE process) {
  FILETIME created, exited, kernel, user;
  if (!GetProcessTimes(process, &created, &exited, &kernel, &user)) return 0;
  return (static_cast<uint64_t>(created.dwHighDateTime) << 32) | created.dwLowDateTime;
}

// This launcher in names: its pid and creation time (a pid alone is soon reused).
const std::wstring& OwnTag() {
  static const std::wstring tag = std::to_wstring(GetCurrentProcessId()) + L"-" + Hex(CreationTime(GetCurrentProcess()), 16);
  return tag;
}

bool AllOf(const std::wstring& s, size_t from, size_t n, bool hex) {
  if (from + n > s.size()) return false;
  for (size_t i = from; i < from + n; i++) {
    wchar_t c = s[i];
    bool ok = (c >= L'0' && c <= L'9') || (hex && c >= L'a' && c <= L'f');
    if (!ok) return false;
  }
  return true;
}

// Whether process `pid` (created at `created`, 0: unknown) is gone. When it cannot be told
// (another user's process, access denied), it is taken to run.
bool ProcessGone(DWORD pid, uint64_t created) {
  if (pid == GetCurrentProcessId()) return created != 0 && created != CreationTime(GetCurrentProcess());
  UniqueHandle h(OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid));
  if (!h.valid()) return GetLastError() == ERROR_INVALID_PARAMETER;  // no such process
  DWORD code = 0;
  if (GetExitCodeProcess(h.get(), &code) && code != STILL_ACTIVE) return true;
  uint64_t t = CreationTime(h.get());
  return created != 0 && t != 0 && t != created;  // another process under a reused pid
}

std::vector<BYTE> WellKnown(WELL_KNOWN_SID_TYPE type) {
  std::vector<BYTE> sid(SECURITY_MAX_SID_SIZE);
  DWORD size = static_cast<DWORD>(sid.size());
  if (!CreateWellKnownSid(type, nullptr, sid.data(), &size)) ThrowLastError("CreateWellKnownSid");
  sid.resize(size);
  return sid;
}

bool IsReplaced(const std::string& entry, bool profile) {
  size_t eq = entry.find('=', 1);
  std::string name = entry.substr(0, eq);
  for (const char* v : {"TEMP", "TMP", "LOCALAPPDATA", "APPDATA"}) {
    if (!profile && (strcmp(v, "LOCALAPPDATA") == 0 || strcmp(v, "APPDATA") == 0)) continue;
    if (_stricmp(name.c_str(), v) == 0) return true;
  }
  return false;
}

}  // namespace

std::wstring TempBase() {
  using GetTempPath2Fn = DWORD(WINAPI*)(DWORD, LPWSTR);
  static const GetTempPath2Fn getTempPath2 = [] {
    HMODULE k32 = GetModuleHandleW(L"kernel32.dll");
    return k32 == nullptr ? nullptr : reinterpret_cast<GetTempPath2Fn>(reinterpret_cast<void*>(GetProcAddress(k32, "GetTempPath2W")));
  }();
  wchar_t buf[MAX_PATH + 1];
  DWORD n = getTempPath2 != nullptr ? getTempPath2(MAX_PATH + 1, buf) : GetTempPathW(MAX_PATH + 1, buf);
  if (n == 0 || n > MAX_PATH) ThrowLastError(getTempPath2 != nullptr ? "GetTempPath2W" : "GetTempPathW");
  std::wstring base(buf, n);
  while (!base.empty() && (base.back() == L'\\' || base.back() == L'/')) base.pop_back();
  return base;
}

DirHandoff MakePrivateDir(const std::wstring& base, const std::vector<PSID>& sids, const std::wstring& suffix,
                          const std::wstring& firstName) {
  // The DACL is part of the creation: the directory never exists with inherited permissions.
  std::vector<BYTE> acl = AllowAllAcl(sids, OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE, FILE_ALL_ACCESS);
  SECURITY_DESCRIPTOR sd;
  if (!InitializeSecurityDescriptor(&sd, SECURITY_DESCRIPTOR_REVISION) ||
      !SetSecurityDescriptorDacl(&sd, TRUE, reinterpret_cast<PACL>(acl.data()), FALSE) ||
      !SetSecurityDescriptorControl(&sd, SE_DACL_PROTECTED, SE_DACL_PROTECTED))
    ThrowLastError("InitializeSecurityDescriptor", "a temp directory's DACL");
  SECURITY_ATTRIBUTES sa{sizeof(sa), &sd, FALSE};
  DirHandoff d;
  d.base = base;
  for (int attempt = 0;; attempt++) {
    std::wstring name = attempt == 0 && !firstName.empty() ? firstName : kPrefix + OwnTag() + L"-" + RandomHex128() + suffix;
    d.path = base + L"\\" + name;
    if (CreateDirectoryW(d.path.c_str(), &sa)) break;
    DWORD err = GetLastError();
    // Something is there already (a directory, a file, a junction someone planted): not ours,
    // never used, never touched. Another name.
    if ((err == ERROR_ALREADY_EXISTS || err == ERROR_FILE_EXISTS) && attempt + 1 < kNameTries) continue;
    throw Win32Error("CreateDirectoryW", err, ToUtf8(d.path));
  }
  // What is worked on from here is this handle: the directory itself, checked to be one.
  DWORD err = 0;
  d.handle = OpenNoFollow(d.path, kTreeAccess, &err);
  NodeInfo info;
  if (!d.handle.valid() || !Inspect(d.handle.get(), &info) || !info.directory) {
    if (err == 0) err = d.handle.valid() ? GetLastError() : ERROR_DIRECTORY;
    RemoveDirectoryW(d.path.c_str());  // removes a link itself, or an empty directory: follows nothing
    throw Win32Error("CreateFileW", err != 0 ? err : ERROR_DIRECTORY,
                     "the new temp directory " + ToUtf8(d.path) + " is not a plain directory");
  }
  return d;
}

bool IsLeftover(const std::wstring& name) {
  if (name.compare(0, kPrefixLen, kPrefix) != 0) return false;
  size_t i = kPrefixLen, digits = 0;
  while (i + digits < name.size() && digits < 11 && name[i + digits] >= L'0' && name[i + digits] <= L'9') digits++;
  if (digits == 0 || digits > 10 || i + digits >= name.size() || name[i + digits] != L'-') return false;
  uint64_t pid = std::stoull(name.substr(i, digits));
  if (pid > 0xffffffffull) return false;
  size_t rest = i + digits + 1;
  // spawn-isolated-<pid>-<n>: before creation times were in names.
  if (AllOf(name, rest, name.size() - rest, false) && name.size() - rest <= 20 && name.size() > rest)
    return ProcessGone(static_cast<DWORD>(pid), 0);
  // spawn-isolated-<pid>-<created>-<random>[.trash]
  if (!AllOf(name, rest, 16, true) || rest + 16 >= name.size() || name[rest + 16] != L'-' || !AllOf(name, rest + 17, 32, true))
    return false;
  std::wstring suffix = name.substr(rest + 17 + 32);
  if (!suffix.empty() && suffix != L".trash") return false;  // '.detached' and anything else: not ours to remove
  uint64_t created = std::stoull(name.substr(rest, 16), nullptr, 16);
  return ProcessGone(static_cast<DWORD>(pid), created);
}

void PrivateTemp::Create(bool low, const std::vector<BYTE>& workerSid, const std::vector<BYTE>& workerUser, bool profile, bool detached,
                         HANDLE sessionToken, const std::vector<BYTE>& containerSid) {
  std::vector<BYTE> system = WellKnown(WinLocalSystemSid);
  std::vector<PSID> sids{reinterpret_cast<PSID>(const_cast<BYTE*>(ProcessUserSid().data()))};
  if (!workerUser.empty()) sids.push_back(reinterpret_cast<PSID>(const_cast<BYTE*>(workerUser.data())));
  if (!workerSid.empty()) sids.push_back(reinterpret_cast<PSID>(const_cast<BYTE*>(workerSid.data())));
  if (!containerSid.empty()) sids.push_back(reinterpret_cast<PSID>(const_cast<BYTE*>(containerSid.data())));
  sids.push_back(reinterpret_cast<PSID>(system.data()));
  DirHandoff d;
  if (sessionToken != nullptr) {
    // Another user's worker: in that user's own temp directory (LocalAppData\Temp, or LocalLow\Temp
    // for 'low', whose label lets a low-integrity process write), which the user can list and
    // reach as its programs expect, not this launcher's (LocalSystem's SystemTemp admits only
    // SYSTEM and administrators). What is made there is made as that user: a link the user
    // planted on the way leads nowhere the user could not go. Its trash goes in this launcher's
    // own temp directory, where the user makes nothing.
    Impersonation as(sessionToken);
    std::wstring base = KnownFolder(low ? kLocalAppDataLow : kLocalAppData, sessionToken, low ? "LocalLow" : "LocalAppData") + L"\\Temp";
    MakeBaseDir(base);
    UniqueHandle listing(CreateFileW(base.c_str(), FILE_LIST_DIRECTORY | FILE_TRAVERSE | SYNCHRONIZE,
                                     FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr, OPEN_EXISTING,
                                     FILE_FLAG_BACKUP_SEMANTICS, nullptr));
    Janitor::Get().SweepOnce(base, std::move(listing));
    d = MakePrivateDir(base, sids, detached ? L".detached" : L"");
    d.trashBase = TempBase();
  } else {
    std::wstring base = low ? LocalLow() + L"\\Temp" : TempBase();
    if (low) MakeBaseDir(base);
    Janitor::Get().SweepOnce(base);
    d = MakePrivateDir(base, sids, detached ? L".detached" : L"");
  }
  path_ = d.path;
  profile_ = profile;
  {
    std::lock_guard<std::mutex> lock(mu_);
    dir_ = std::move(d);  // from here on, removed at the end
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (profile) {
    for (const wchar_t* sub : {L"Local", L"Roaming"}) {
      DWORD err = 0;
      UniqueHandle h = CreateDirRelative(dir_.handle.get(), sub, FILE_LIST_DIRECTORY, &err);
      if (!h.valid()) throw Win32Error("NtCreateFile", err, ToUtf8(path_) + "\\" + ToUtf8(sub));
    }
  }
  // Kept for the worker's life only to know the directory at its end: no access that counts in
  // sharing (a handle with DELETE would make every open of it without FILE_SHARE_DELETE, the
  // worker's own listing included, fail with a sharing violation).
  DWORD err = 0;
  UniqueHandle quiet = ReopenSame(dir_.handle.get(), FILE_READ_ATTRIBUTES, &err);
  if (!quiet.valid()) throw Win32Error("NtCreateFile", err, "reopening " + ToUtf8(path_));
  dir_.handle = std::move(quiet);
}

std::vector<std::string> PrivateTemp::Environment(const std::vector<std::string>& env) const {
  std::vector<std::string> out;
  for (const std::string& e : env)
    if (!IsReplaced(e, profile_)) out.push_back(e);
  std::string dir = ToUtf8(path_);
  out.push_back("TEMP=" + dir);
  out.push_back("TMP=" + dir);
  if (profile_) {
    out.push_back("LOCALAPPDATA=" + dir + "\\Local");
    out.push_back("APPDATA=" + dir + "\\Roaming");
  }
  return out;
}

DirHandoff PrivateTemp::Take() {
  std::lock_guard<std::mutex> lock(mu_);
  DirHandoff d = std::move(dir_);
  dir_ = DirHandoff();
  if (keep) return DirHandoff();  // keepTempDir: its handle closes, the directory stays
  return d;
}

void PrivateTemp::Keep() {
  std::lock_guard<std::mutex> lock(mu_);
  dir_ = DirHandoff();
}

}  // namespace win
}  // namespace si
