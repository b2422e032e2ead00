#define _CRT_RAND_S
#include <stdlib.h>

#include "stdio_handles.h"

#include "token.h"

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

namespace {

// Grants this process's user everything and nobody else anything (the default DACL of a named
// pipe admits Everyone to connect).
struct OwnerOnly {
  std::vector<BYTE> user = ProcessUserSid();
  std::vector<BYTE> acl = AllowAllAcl({reinterpret_cast<PSID>(user.data())});
  SECURITY_DESCRIPTOR sd{};
  SECURITY_ATTRIBUTES sa{sizeof(SECURITY_ATTRIBUTES), &sd, FALSE};
  OwnerOnly() {
    if (!InitializeSecurityDescriptor(&sd, SECURITY_DESCRIPTOR_REVISION)) ThrowLastError("InitializeSecurityDescriptor");
    if (!SetSecurityDescriptorDacl(&sd, TRUE, reinterpret_cast<PACL>(acl.data()), FALSE)) ThrowLastError("SetSecurityDescriptorDacl");
  }
};

// Waits for the (already made) connection of the client end, as libuv does.
void CheckConnected(HANDLE server, const std::string& name) {
  OVERLAPPED ov{};
  UniqueHandle event(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  if (!event.valid()) ThrowLastError("CreateEventW");
  ov.hEvent = event.get();
  if (ConnectNamedPipe(server, &ov)) return;
  DWORD err = GetLastError();
  if (err == ERROR_PIPE_CONNECTED) return;
  if (err == ERROR_IO_PENDING) CancelIoEx(server, &ov);  // cannot happen: the client is open
  DWORD ignored = 0;
  if (err == ERROR_IO_PENDING) GetOverlappedResult(server, &ov, &ignored, TRUE);
  throw Win32Error("ConnectNamedPipe", err, name);
}

}  // namespace

namespace {

// A fresh single-instance pipe that only this user may open, server end for Node (overlapped,
// `serverAccess`), client end for the worker (`clientAccess`; `clientFlags`: FILE_FLAG_OVERLAPPED
// or 0), opened at once.
StdioPipe MakePipePair(const std::string& tag, DWORD serverAccess, DWORD clientAccess, DWORD clientFlags) {
  std::string name = "\\\\.\\pipe\\spawn-isolated-" + std::to_string(GetCurrentProcessId()) + "-" + tag + "-" + RandomHex();
  std::wstring wname = ToWide(name);
  OwnerOnly security;
  StdioPipe p;
  p.server.reset(CreateNamedPipeW(wname.c_str(), serverAccess | FILE_FLAG_FIRST_PIPE_INSTANCE | FILE_FLAG_OVERLAPPED,
                                  PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS, 1, kPipeBuffer, kPipeBuffer,
                                  0, &security.sa));
  if (!p.server.valid()) ThrowLastError("CreateNamedPipeW", name);
  // Opened at once, by us: a single-instance pipe admits one client, and a process that got in
  // first (it would need this user's rights) makes this open fail instead of taking the stream.
  // Identification only: the worker's end cannot let a server act as the worker's token.
  p.client.reset(CreateFileW(wname.c_str(), clientAccess, 0, nullptr, OPEN_EXISTING,
                             clientFlags | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, nullptr));
  if (!p.client.valid()) ThrowLastError("CreateFileW", name);
  CheckConnected(p.server.get(), name);
  return p;
}

}  // namespace

StdioPipe CreateStdioPipe(int slot, uint64_t id) {
  // Node writes the worker's stdin and reads its stdout / stderr.
  // Synchronous, as every program expects its stdio (and as libuv makes them).
  return MakePipePair(std::to_string(id) + "-" + std::to_string(slot), slot == 0 ? PIPE_ACCESS_OUTBOUND : PIPE_ACCESS_INBOUND,
                      slot == 0 ? GENERIC_READ | FILE_WRITE_ATTRIBUTES : GENERIC_WRITE | FILE_READ_ATTRIBUTES, 0);
}

StdioPipe CreateChannelPipe(uint64_t id) {
  // Overlapped: Windows runs one I/O at a time on a synchronous handle, so a read blocked on the
  // worker's end would hold up every write from its other threads (a reader goroutine waiting
  // for orders would stop progress messages). The Go module does overlapped I/O on it.
  return MakePipePair(std::to_string(id) + "-channel", PIPE_ACCESS_DUPLEX, GENERIC_READ | GENERIC_WRITE, FILE_FLAG_OVERLAPPED);
}

using OpenOsfHandleFn = int(__cdecl*)(HANDLE);

int HandleToNodeFd(UniqueHandle h) {
  static OpenOsfHandleFn fn =
      reinterpret_cast<OpenOsfHandleFn>(reinterpret_cast<void*>(GetProcAddress(GetModuleHandleW(nullptr), "uv_open_osfhandle")));
  if (fn == nullptr)
    throw SysError("ENOTSUP", 0, "uv_open_osfhandle",
                   "the host executable does not export uv_open_osfhandle: stdio pipes cannot be handed to Node");
  int fd = fn(h.get());
  if (fd < 0) throw SysError("EMFILE", 0, "uv_open_osfhandle", "Node's C runtime has no free file descriptor for a stdio pipe");
  h.release();
  return fd;
}

DWORD HiddenConsoleFlags(bool wine, uint32_t processesBudget) { return wine || processesBudget > 0 ? DETACHED_PROCESS : CREATE_NO_WINDOW; }

UniqueHandle OpenNul() {
  SECURITY_ATTRIBUTES sa{sizeof(sa), nullptr, FALSE};
  HANDLE h = CreateFileW(L"NUL", GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, &sa, OPEN_EXISTING, 0, nullptr);
  if (h == INVALID_HANDLE_VALUE) ThrowLastError("CreateFileW", "NUL");
  return UniqueHandle(h);
}

}  // namespace win
}  // namespace si
