#include "dir_tree.h"

#include <algorithm>
#include <cstddef>
#include <cstring>

namespace si {
namespace win {
namespace {

// The few ntdll types and constants needed here, under names of their own: winternl.h differs
// between the Windows SDK and MinGW.
using NtStatus = LONG;
struct NtUnicodeString {
  USHORT Length;
  USHORT MaximumLength;
  PWSTR Buffer;
};
struct NtObjectAttributes {
  ULONG Length;
  HANDLE RootDirectory;
  NtUnicodeString* ObjectName;
  ULONG Attributes;
  PVOID SecurityDescriptor;
  PVOID SecurityQualityOfService;
};
struct NtIoStatusBlock {
  union {
    NtStatus Status;
    PVOID Pointer;
  };
  ULONG_PTR Information;
};
struct NtRenameInformation {  // FILE_RENAME_INFORMATION
  BOOLEAN ReplaceIfExists;
  HANDLE RootDirectory;
  ULONG FileNameLength;
  WCHAR FileName[1];
};
constexpr ULONG kObjCaseInsensitive = 0x40;
constexpr ULONG kFileOpen = 1, kFileCreate = 2;
constexpr ULONG kFileDirectoryFile = 0x1, kFileSynchronousIoNonalert = 0x20, kFileOpenReparsePoint = 0x200000;
constexpr ULONG kFileRenameInformation = 10;
// FileDispositionInfoEx (Windows 10 1709+; the SDK names it only for newer targets).
constexpr auto kFileDispositionInfoEx = static_cast<FILE_INFO_BY_HANDLE_CLASS>(21);
constexpr DWORD kDispositionDelete = 0x1, kDispositionPosix = 0x2, kDispositionIgnoreReadonly = 0x10;
struct DispositionInfoEx {  // FILE_DISPOSITION_INFO_EX
  DWORD Flags;
};

using NtCreateFileFn = NtStatus(NTAPI*)(PHANDLE, ACCESS_MASK, NtObjectAttributes*, NtIoStatusBlock*, PLARGE_INTEGER, ULONG, ULONG, ULONG,
                                        ULONG, PVOID, ULONG);
using NtSetInformationFileFn = NtStatus(NTAPI*)(HANDLE, NtIoStatusBlock*, PVOID, ULONG, ULONG);
using RtlNtStatusToDosErrorFn = ULONG(NTAPI*)(NtStatus);

struct Ntdll {
  NtCreateFileFn createFile = nullptr;
  NtSetInformationFileFn setInformationFile = nullptr;
  RtlNtStatusToDosErrorFn toWin32 = nullptr;
};

template <typename F>
F Resolve(HMODULE m, const char* name) {
  return reinterpret_cast<F>(reinterpret_cast<void*>(GetProcAddress(m, name)));
}

const Ntdll& Nt() {
  static const Ntdll nt = [] {
    Ntdll n;
    HMODULE m = GetModuleHandleW(L"ntdll.dll");  // in every process
    if (m == nullptr) return n;
    n.createFile = Resolve<NtCreateFileFn>(m, "NtCreateFile");
    n.setInformationFile = Resolve<NtSetInformationFileFn>(m, "NtSetInformationFile");
    n.toWin32 = Resolve<RtlNtStatusToDosErrorFn>(m, "RtlNtStatusToDosError");
    return n;
  }();
  return nt;
}

DWORD ToWin32(NtStatus s) { return Nt().toWin32 != nullptr ? Nt().toWin32(s) : ERROR_GEN_FAILURE; }

UniqueHandle NtOpen(HANDLE dir, const std::wstring& name, DWORD access, ULONG disposition, ULONG options, DWORD* err) {
  *err = 0;
  if (Nt().createFile == nullptr) {
    *err = ERROR_PROC_NOT_FOUND;
    return UniqueHandle();
  }
  // One component only (or none: `dir` itself): a separator would reach past `dir`.
  if (name.size() > 32767 || name.find_first_of(L"\\/") != std::wstring::npos || name == L"." || name == L"..") {
    *err = ERROR_INVALID_NAME;
    return UniqueHandle();
  }
  NtUnicodeString us{static_cast<USHORT>(name.size() * sizeof(wchar_t)), static_cast<USHORT>(name.size() * sizeof(wchar_t)),
                     const_cast<PWSTR>(name.c_str())};
  NtObjectAttributes oa{sizeof(NtObjectAttributes), dir, &us, kObjCaseInsensitive, nullptr, nullptr};
  NtIoStatusBlock io{};
  HANDLE h = nullptr;
  NtStatus s = Nt().createFile(&h, access | SYNCHRONIZE, &oa, &io, nullptr, 0, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                               disposition, options | kFileSynchronousIoNonalert | kFileOpenReparsePoint, nullptr, 0);
  if (s < 0) {
    *err = ToWin32(s);
    return UniqueHandle();
  }
  return UniqueHandle(h);
}

// Paths past MAX_PATH need the \\?\ form (a drive path or UNC), whatever the process's long-path setting.
std::wstring ExtendedPath(const std::wstring& path) {
  if (path.size() < MAX_PATH - 12 || path.compare(0, 4, L"\\\\?\\") == 0) return path;
  if (path.compare(0, 2, L"\\\\") == 0) return L"\\\\?\\UNC\\" + path.substr(2);
  return L"\\\\?\\" + path;
}

}  // namespace

std::wstring Hex(uint64_t v) {
  static const wchar_t digits[] = L"0123456789abcdef";
  std::wstring s;
  do {
    s.insert(s.begin(), digits[v & 0xf]);
    v >>= 4;
  } while (v != 0);
  return s;
}

UniqueHandle OpenRelative(HANDLE dir, const std::wstring& name, DWORD access, DWORD* err) {
  if (name.empty()) {
    *err = ERROR_INVALID_NAME;
    return UniqueHandle();
  }
  return NtOpen(dir, name, access, kFileOpen, 0, err);
}

UniqueHandle ReopenSame(HANDLE h, DWORD access, DWORD* err) { return NtOpen(h, std::wstring(), access, kFileOpen, 0, err); }

UniqueHandle CreateDirRelative(HANDLE dir, const std::wstring& name, DWORD access, DWORD* err) {
  if (name.empty()) {
    *err = ERROR_INVALID_NAME;
    return UniqueHandle();
  }
  return NtOpen(dir, name, access, kFileCreate, kFileDirectoryFile, err);
}

UniqueHandle OpenNoFollow(const std::wstring& path, DWORD access, DWORD* err) {
  UniqueHandle h(CreateFileW(ExtendedPath(path).c_str(), access | SYNCHRONIZE, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                             nullptr, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT, nullptr));
  *err = h.valid() ? 0 : GetLastError();
  return h;
}

bool Inspect(HANDLE h, NodeInfo* info) {
  FILE_ATTRIBUTE_TAG_INFO tag{};
  if (!GetFileInformationByHandleEx(h, FileAttributeTagInfo, &tag, sizeof(tag))) return false;
  info->attributes = tag.FileAttributes;
  info->reparse = (tag.FileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) != 0;
  info->directory = (tag.FileAttributes & FILE_ATTRIBUTE_DIRECTORY) != 0 && !info->reparse;
  FILE_STANDARD_INFO st{};
  info->links = GetFileInformationByHandleEx(h, FileStandardInfo, &st, sizeof(st)) ? st.NumberOfLinks : 1;
  return true;
}

DWORD RenameInto(HANDLE h, HANDLE dir, const std::wstring& name) {
  if (Nt().setInformationFile == nullptr) return ERROR_PROC_NOT_FOUND;
  if (name.empty() || name.find_first_of(L"\\/") != std::wstring::npos) return ERROR_INVALID_NAME;
  ULONG bytes = static_cast<ULONG>(name.size() * sizeof(wchar_t));
  // At least the structure's size: a shorter length is refused (a one-character name).
  std::vector<BYTE> buf(std::max(sizeof(NtRenameInformation), offsetof(NtRenameInformation, FileName) + bytes + sizeof(wchar_t)));
  auto* info = reinterpret_cast<NtRenameInformation*>(buf.data());
  info->ReplaceIfExists = FALSE;
  info->RootDirectory = dir;
  info->FileNameLength = bytes;
  memcpy(info->FileName, name.data(), bytes);
  NtIoStatusBlock io{};
  NtStatus s = Nt().setInformationFile(h, &io, info, static_cast<ULONG>(buf.size()), kFileRenameInformation);
  return s < 0 ? ToWin32(s) : 0;
}

DWORD DeleteByHandle(HANDLE h, const NodeInfo& info) {
  // The name goes at once even if another process still has the file open (with sharing).
  DispositionInfoEx ex{kDispositionDelete | kDispositionPosix | kDispositionIgnoreReadonly};
  if (SetFileInformationByHandle(h, kFileDispositionInfoEx, &ex, sizeof(ex))) return 0;
  DWORD exErr = GetLastError();
  // Older Windows, other file systems, Wine: the classic disposition, which a read-only
  // attribute refuses. It is cleared first, but not on a file with other hard links (it
  // belongs to them too: a link to a read-only file elsewhere is left in place).
  if ((info.attributes & FILE_ATTRIBUTE_READONLY) && (info.directory || info.reparse || info.links <= 1)) {
    FILE_BASIC_INFO basic{};  // zero times: left as they are
    basic.FileAttributes = info.attributes & ~FILE_ATTRIBUTE_READONLY;
    if (basic.FileAttributes == 0) basic.FileAttributes = FILE_ATTRIBUTE_NORMAL;
    SetFileInformationByHandle(h, FileBasicInfo, &basic, sizeof(basic));
  }
  FILE_DISPOSITION_INFO classic{TRUE};
  if (SetFileInformationByHandle(h, FileDispositionInfo, &classic, sizeof(classic))) return 0;
  DWORD err = GetLastError();
  return err != 0 ? err : exErr != 0 ? exErr : ERROR_GEN_FAILURE;
}

bool ListBatch(HANDLE dir, bool restart, std::vector<DirEntry>* out, DWORD* err) {
  *err = 0;
  out->clear();
  std::vector<BYTE> buf(32 * 1024);  // 8-aligned (operator new), as the entries must be
  if (!GetFileInformationByHandleEx(dir, restart ? FileFullDirectoryRestartInfo : FileFullDirectoryInfo, buf.data(),
                                    static_cast<DWORD>(buf.size()))) {
    DWORD e = GetLastError();
    if (e != ERROR_NO_MORE_FILES && e != ERROR_FILE_NOT_FOUND) *err = e;
    return false;
  }
  for (size_t off = 0;;) {
    auto* e = reinterpret_cast<const FILE_FULL_DIR_INFO*>(buf.data() + off);
    std::wstring name(e->FileName, e->FileNameLength / sizeof(wchar_t));
    if (name != L"." && name != L"..") out->push_back(DirEntry{name, e->FileAttributes});
    if (e->NextEntryOffset == 0 || off + e->NextEntryOffset >= buf.size()) break;
    off += e->NextEntryOffset;
  }
  return true;
}

TreeRemover::Result TreeRemover::Step(int budget) {
  DWORD err = 0;
  while (budget-- > 0) {
    if (sub_.valid()) {
      if (subNext_ < subBatch_.size()) {
        if (Visit(sub_.get(), subBatch_[subNext_++], true)) passProgress_ = true;
        continue;
      }
      bool more = ListBatch(sub_.get(), subRestart_, &subBatch_, &err);
      subNext_ = 0;
      subRestart_ = false;
      if (more) continue;
      if (err != 0) lastError_ = err;
      // Listed to its end: empty now, unless something in it could not go (then next pass).
      NodeInfo info;
      DWORD d = Inspect(sub_.get(), &info) ? DeleteByHandle(sub_.get(), info) : GetLastError();
      if (d == 0)
        passProgress_ = true;
      else
        lastError_ = d;
      sub_.reset();
      continue;
    }
    if (rootNext_ < rootBatch_.size()) {
      if (Visit(root_.get(), rootBatch_[rootNext_++], false)) passProgress_ = true;
      continue;
    }
    if (rootRestart_) {  // a new pass, listing the root as it is now
      passSawEntries_ = passProgress_ = false;
      list_ = ReopenSame(root_.get(), FILE_LIST_DIRECTORY | FILE_TRAVERSE, &err);
      if (!list_.valid()) {
        lastError_ = err;
        return kStuck;
      }
    }
    bool more = ListBatch(list_.get(), rootRestart_, &rootBatch_, &err);
    rootNext_ = 0;
    rootRestart_ = false;
    if (more) {
      if (!rootBatch_.empty()) passSawEntries_ = true;
      continue;
    }
    rootRestart_ = true;  // this pass is over
    list_.reset();
    if (err != 0) {
      lastError_ = err;
      return kStuck;
    }
    if (!passSawEntries_) {  // nothing left in it: the root itself
      NodeInfo info;
      DWORD d = Inspect(root_.get(), &info) ? DeleteByHandle(root_.get(), info) : GetLastError();
      if (d != 0) {
        lastError_ = d;
        return kStuck;
      }
      root_.reset();  // closing the handle completes the deletion
      return kDone;
    }
    if (!passProgress_) return kStuck;
  }
  return kMore;
}

// One entry of `parent`: a file or link is deleted; a directory is moved up into the root
// (`hoist`, when `parent` is a directory of the root) or becomes the directory being emptied.
// True when something went.
bool TreeRemover::Visit(HANDLE parent, const DirEntry& e, bool hoist) {
  bool listedDir = (e.attributes & FILE_ATTRIBUTE_DIRECTORY) != 0 && (e.attributes & FILE_ATTRIBUTE_REPARSE_POINT) == 0;
  DWORD access = DELETE | FILE_READ_ATTRIBUTES | FILE_WRITE_ATTRIBUTES;
  if (listedDir && !hoist) access |= FILE_LIST_DIRECTORY | FILE_TRAVERSE;
  DWORD err = 0;
  UniqueHandle h = OpenRelative(parent, e.name, access, &err);
  if (!h.valid() && err == ERROR_ACCESS_DENIED) h = OpenRelative(parent, e.name, access & ~FILE_WRITE_ATTRIBUTES, &err);
  if (!h.valid()) {
    if (err != ERROR_FILE_NOT_FOUND && err != ERROR_PATH_NOT_FOUND) lastError_ = err;
    return false;
  }
  NodeInfo info;
  if (!Inspect(h.get(), &info)) {
    lastError_ = GetLastError();
    return false;
  }
  if (info.directory) {
    if (hoist) return Hoist(h.get());
    if (!(access & FILE_LIST_DIRECTORY)) return false;  // listed as something else: the next pass lists it again
    sub_ = std::move(h);
    subBatch_.clear();
    subNext_ = 0;
    subRestart_ = true;
    return false;  // progress comes as its entries go
  }
  DWORD d = DeleteByHandle(h.get(), info);  // a file, or a link itself (never what it points to)
  if (d != 0) lastError_ = d;
  return d == 0;
}

bool TreeRemover::Hoist(HANDLE h) {
  for (int tries = 0; tries < 64; tries++) {
    DWORD err = RenameInto(h, root_.get(), L"~" + Hex(hoisted_++));
    if (err == 0) return true;
    if (err != ERROR_ALREADY_EXISTS && err != ERROR_FILE_EXISTS) {
      lastError_ = err;
      return false;
    }
  }
  return false;
}

}  // namespace win
}  // namespace si
