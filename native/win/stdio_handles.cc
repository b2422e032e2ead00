#define _CRT_RAND_S
#include <stdlib.h>

#include "stdio_handles.h"

#include <stdio.h>

namespace si {
namespace win {
namespace {

constexpr DWORD kPipeBuffer = 64 * 1024;

std::string RandomHex() {
  unsigned int a = 0, b = 0;
  if (rand_s(&a) != 0 || rand_s(&b) != 0) {
    LARGE_INTEGER t;
    QueryPerformanceCounter(&t);
    a ^= static_cast<unsigned int>(t.QuadPart);
    b ^= static_cast<unsigned int>(t.QuadPart >> 32) ^ GetTickCount();
  }
  char buf[32];
  snprintf(buf, sizeof(buf), "%08x%08x", a, b);
  return buf;
}

}  // namespace

using GetOsfHandleFn = HANDLE(__cdecl*)(int);

HANDLE NodeFdToHandle(int fd) {
  static GetOsfHandleFn fn =
      reinterpret_cast<GetOsfHandleFn>(reinterpret_cast<void*>(GetProcAddress(GetModuleHandleW(nullptr), "uv_get_osfhandle")));
  if (fn == nullptr)
    throw SysError("ENOTSUP", 0, "uv_get_osfhandle", "the host executable does not export uv_get_osfhandle: Node fds cannot be translated");
  HANDLE h = fn(fd);
  // A pseudo handle (-2 is GetCurrentThread(): the CRT's answer for a missing fd 0-2 in a host
  // started without stdio) would hand the worker a full-access handle to one of our threads.
  intptr_t v = reinterpret_cast<intptr_t>(h);
  if (h == nullptr || v < 0)
    throw SysError("EBADF", ERROR_INVALID_HANDLE, "uv_get_osfhandle", "fd " + std::to_string(fd) + " is not an open file descriptor");
  SetLastError(NO_ERROR);
  if (GetFileType(h) == FILE_TYPE_UNKNOWN && GetLastError() != NO_ERROR)
    throw SysError("EBADF", GetLastError(), "GetFileType", "fd " + std::to_string(fd) + " is not a file, pipe or console handle");
  return h;
}

UniqueHandle DuplicateInheritable(HANDLE h, const std::string& what) {
  HANDLE dup = nullptr;
  if (!DuplicateHandle(GetCurrentProcess(), h, GetCurrentProcess(), &dup, 0, TRUE, DUPLICATE_SAME_ACCESS))
    ThrowLastError("DuplicateHandle", what);
  return UniqueHandle(dup);
}

UniqueHandle CreateStdioPipe(int slot, uint64_t id, std::string* name) {
  *name = "\\\\.\\pipe\\spawn-isolated-" + std::to_string(GetCurrentProcessId()) + "-" + std::to_string(id) + "-" + std::to_string(slot) +
          "-" + RandomHex();
  DWORD access = (slot == 0 ? PIPE_ACCESS_INBOUND : PIPE_ACCESS_OUTBOUND) | FILE_FLAG_FIRST_PIPE_INSTANCE;
  HANDLE h = CreateNamedPipeW(ToWide(*name).c_str(), access, PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                              1, kPipeBuffer, kPipeBuffer, 0, nullptr);
  if (h == INVALID_HANDLE_VALUE) ThrowLastError("CreateNamedPipeW", *name);
  return UniqueHandle(h);
}

UniqueHandle OpenNul() {
  SECURITY_ATTRIBUTES sa{sizeof(sa), nullptr, FALSE};
  HANDLE h = CreateFileW(L"NUL", GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, &sa, OPEN_EXISTING, 0, nullptr);
  if (h == INVALID_HANDLE_VALUE) ThrowLastError("CreateFileW", "NUL");
  return UniqueHandle(h);
}

}  // namespace win
}  // namespace si
