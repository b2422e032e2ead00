// RAII and conversion helpers for the Windows backend.
#pragma once

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../contract.h"
#include "../scoped.h"

namespace si {
namespace win {

// Owns one kernel HANDLE (NULL and INVALID_HANDLE_VALUE both mean "none").
struct HandleTraits {
  using Type = HANDLE;
  static HANDLE Null() { return nullptr; }
  static bool Valid(HANDLE h) { return h != nullptr && h != INVALID_HANDLE_VALUE; }
  static void Close(HANDLE h) {
    DWORD err = GetLastError();
    CloseHandle(h);
    SetLastError(err);
  }
};
using UniqueHandle = Scoped<HandleTraits>;

// Owns an initialised PROC_THREAD_ATTRIBUTE_LIST.
class AttributeList {
 public:
  explicit AttributeList(DWORD count);
  AttributeList(const AttributeList&) = delete;
  AttributeList& operator=(const AttributeList&) = delete;
  ~AttributeList();
  LPPROC_THREAD_ATTRIBUTE_LIST get() { return list_; }

 private:
  std::vector<unsigned char> storage_;
  LPPROC_THREAD_ATTRIBUTE_LIST list_ = nullptr;
};

std::wstring ToWide(const std::string& utf8);
std::string ToUtf8(const std::wstring& wide);

// Node-style code for a Win32 error number (as libuv maps them).
const char* CodeForWin32(DWORD err);
std::string Win32Message(DWORD err);
// A SysError for a failed Win32 call; `err` defaults to GetLastError().
SysError Win32Error(const char* syscall, DWORD err, const std::string& context = "");
[[noreturn]] void ThrowLastError(const char* syscall, const std::string& context = "");

// Quoting that CommandLineToArgvW and Go's os.Args parsing both undo exactly.
std::wstring QuoteArg(const std::wstring& arg);
std::wstring BuildCommandLine(const std::vector<std::string>& args);
// "NAME=value" entries to a CreateProcess environment block: UTF-16, sorted by name without
// regard to case, double-NUL terminated. Adds SYSTEMROOT etc. from this process when missing.
std::vector<wchar_t> BuildEnvironmentBlock(const std::vector<std::string>& env);

bool IsWine();

// Something granted for a worker's lifetime (an ACE, a profile), undone when destroyed unless
// left to a worker that outlives this process.
class Revocable {
 public:
  virtual ~Revocable() = default;
  virtual void Leave() = 0;
};
using Revocables = std::vector<std::unique_ptr<Revocable>>;

}  // namespace win
}  // namespace si
