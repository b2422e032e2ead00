#include "temp_dir.h"

#include <aclapi.h>
#include <shlobj.h>

#include <cstring>

#include "token.h"

namespace si {
namespace win {
namespace {

// FOLDERID_LocalAppDataLow, defined here so that no GUID library has to be linked.
const GUID kLocalAppDataLow = {0xA520A1A4, 0x1780, 0x4FF6, {0xBD, 0x18, 0x16, 0x73, 0x43, 0xC5, 0xAF, 0x16}};

std::wstring LocalLow() {
  PWSTR raw = nullptr;
  HRESULT hr = SHGetKnownFolderPath(kLocalAppDataLow, KF_FLAG_CREATE, nullptr, &raw);
  std::wstring path = SUCCEEDED(hr) && raw != nullptr ? raw : L"";
  CoTaskMemFree(raw);
  if (path.empty()) throw SysError("ENOENT", static_cast<uint32_t>(hr), "SHGetKnownFolderPath", "this user has no LocalLow folder");
  return path;
}

void MakeDir(const std::wstring& dir) {
  if (!CreateDirectoryW(dir.c_str(), nullptr) && GetLastError() != ERROR_ALREADY_EXISTS) ThrowLastError("CreateDirectoryW", ToUtf8(dir));
}

void RemoveTree(const std::wstring& dir) {
  WIN32_FIND_DATAW fd;
  HANDLE find = FindFirstFileW((dir + L"\\*").c_str(), &fd);
  if (find != INVALID_HANDLE_VALUE) {
    do {
      std::wstring name = fd.cFileName;
      if (name == L"." || name == L"..") continue;
      std::wstring full = dir + L"\\" + name;
      bool isDir = (fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) != 0;
      bool isLink = (fd.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) != 0;
      if (fd.dwFileAttributes & FILE_ATTRIBUTE_READONLY) SetFileAttributesW(full.c_str(), fd.dwFileAttributes & ~FILE_ATTRIBUTE_READONLY);
      if (isDir && !isLink)
        RemoveTree(full);  // a junction the worker made is removed, not followed
      else if (isDir)
        RemoveDirectoryW(full.c_str());
      else
        DeleteFileW(full.c_str());
    } while (FindNextFileW(find, &fd));
    FindClose(find);
  }
  RemoveDirectoryW(dir.c_str());
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

// Full control, inherited by what is created inside, for each SID; nobody else; not inherited
// from the parent directory (protected).
void Protect(const std::wstring& dir, std::initializer_list<PSID> sids) {
  std::vector<BYTE> acl = AllowAllAcl(sids, OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE, FILE_ALL_ACCESS);
  DWORD err = SetNamedSecurityInfoW(const_cast<wchar_t*>(dir.c_str()), SE_FILE_OBJECT,
                                    DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION, nullptr, nullptr,
                                    reinterpret_cast<PACL>(acl.data()), nullptr);
  if (err != ERROR_SUCCESS) throw Win32Error("SetNamedSecurityInfoW", err, ToUtf8(dir));
}

std::wstring TempBase() {
  wchar_t buf[MAX_PATH + 1];
  DWORD n = GetTempPathW(MAX_PATH + 1, buf);
  if (n == 0 || n > MAX_PATH) ThrowLastError("GetTempPathW");
  std::wstring base(buf, n);
  while (!base.empty() && (base.back() == L'\\' || base.back() == L'/')) base.pop_back();
  return base;
}

}  // namespace

void PrivateTemp::Create(uint64_t id, bool low, const std::vector<BYTE>& workerSid, bool profile) {
  std::wstring base = low ? LocalLow() + L"\\Temp" : TempBase();
  if (low) MakeDir(base);
  std::wstring dir = base + L"\\spawn-isolated-" + std::to_wstring(GetCurrentProcessId()) + L"-" + std::to_wstring(id);
  MakeDir(dir);
  path_ = dir;  // from here on, removed at the end
  std::vector<BYTE> user = ProcessUserSid();
  BYTE system[SECURITY_MAX_SID_SIZE];
  DWORD systemSize = sizeof(system);
  if (!CreateWellKnownSid(WinLocalSystemSid, nullptr, system, &systemSize)) ThrowLastError("CreateWellKnownSid");
  if (workerSid.empty())
    Protect(dir, {reinterpret_cast<PSID>(user.data()), reinterpret_cast<PSID>(system)});
  else
    Protect(dir, {reinterpret_cast<PSID>(user.data()), reinterpret_cast<PSID>(const_cast<BYTE*>(workerSid.data())),
                  reinterpret_cast<PSID>(system)});
  profile_ = profile;
  if (profile) {
    MakeDir(dir + L"\\Local");
    MakeDir(dir + L"\\Roaming");
  }
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

void PrivateTemp::Remove() {
  if (path_.empty() || keep) return;
  RemoveTree(path_);
  if (GetFileAttributesW(path_.c_str()) == INVALID_FILE_ATTRIBUTES) path_.clear();
}

}  // namespace win
}  // namespace si
