// The worker's stdio and inherited handles: Node fds translated through libuv, named pipes
// that Node's own event loop drives, the null device, inheritable duplicates.
#pragma once

#include <string>

#include "win_util.h"

namespace si {
namespace win {

// Node's fds live in node.exe's own C runtime; only its libuv can translate them.
HANDLE NodeFdToHandle(int fd);
UniqueHandle DuplicateInheritable(HANDLE h, const std::string& what);
// The worker's end of one stdio pipe: the server instance of a fresh, single-instance named
// pipe. JS connects to it as the only client (net.connect), so Node's own event loop does the
// I/O; Resume() checks that the client is this process before the worker runs.
UniqueHandle CreateStdioPipe(int slot, uint64_t id, std::string* name);
UniqueHandle OpenNul();

}  // namespace win
}  // namespace si
