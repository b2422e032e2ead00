#include "temp_dir.h"

#include <shlobj.h>

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

bool IsTempVar(const std::string& entry) {
  size_t eq = entry.find('=', 1);
  std::string name = entry.substr(0, eq);
  return _stricmp(name.c_str(), "TEMP") == 0 || _stricmp(name.c_str(), "TMP") == 0;
}

}  // namespace

void PrivateTemp::Create(uint64_t id) {
  std::wstring temp = LocalLow() + L"\\Temp";
  MakeDir(temp);
  path_ = temp + L"\\spawn-isolated-" + std::to_wstring(GetCurrentProcessId()) + L"-" + std::to_wstring(id);
  MakeDir(path_);
}

std::vector<std::string> PrivateTemp::Environment(const std::vector<std::string>& env) const {
  std::vector<std::string> out;
  for (const std::string& e : env)
    if (!IsTempVar(e)) out.push_back(e);
  std::string dir = ToUtf8(path_);
  out.push_back("TEMP=" + dir);
  out.push_back("TMP=" + dir);
  return out;
}

void PrivateTemp::Remove() {
  if (path_.empty()) return;
  RemoveTree(path_);
  if (GetFileAttributesW(path_.c_str()) == INVALID_FILE_ATTRIBUTES) path_.clear();
}

}  // namespace win
}  // namespace si
