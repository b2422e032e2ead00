// The worker's stdio and inherited handles: Node fds translated through libuv, named pipes
// that Node's own event loop drives, the null device, inheritable duplicates.
#pragma once

#include <string>
#include <vector>

#include "win_util.h"

namespace si {
namespace win {

// Node's fds live in node.exe's own C runtime; only its libuv can translate them.
HANDLE NodeFdToHandle(int fd);
UniqueHandle DuplicateInheritable(HANDLE h, const std::string& what);
// One stdio pipe, as libuv makes them for child_process: a fresh single-instance named pipe
// that only this user may open. Node keeps the server end (overlapped, driven by its own event
// loop once HandleToNodeFd hands it over); the worker gets only the client end, already
// connected, so it can neither impersonate Node nor lose its stream to another client.
struct StdioPipe {
  UniqueHandle server, client;
};
StdioPipe CreateStdioPipe(int slot, uint64_t id);
// The same for the private channel: duplex (both ends read and write), the worker's end opened for
// overlapped I/O (reads and writes from different threads run at once).
StdioPipe CreateChannelPipe(uint64_t id);
// Gives `h` to node.exe's C runtime (libuv's uv_open_osfhandle) as an fd JS can wrap.
int HandleToNodeFd(UniqueHandle h);
UniqueHandle OpenNul();
// The console flags of a worker with pipes and files only (windowsHide): libuv's
// CREATE_NO_WINDOW, one hidden console that every console program the worker starts shares
// (with DETACHED_PROCESS each of them gets a console of its own: a visible window and a
// conhost.exe apiece). That console's conhost.exe runs in the worker's job, so where a budget of
// processes applies (`processesBudget`: the worker's own or its group's) the worker gets no
// console (DETACHED_PROCESS), as it did before: the budget then counts what the tree starts, not
// a console host nobody asked for. DETACHED_PROCESS under Wine too, where a console per worker
// made a fresh prefix fail worker starts with error 1359 (measured).
DWORD HiddenConsoleFlags(bool wine, uint32_t processesBudget);

}  // namespace win
}  // namespace si
