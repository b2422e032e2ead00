// The worker's init (native/posix/init/init.c), embedded in the addon: PID 1 of a worker's PID
// namespace, so that the worker is not. Exec'd from a sealed memfd made once per process.
#pragma once

namespace si {
namespace posix {

// The memfd holding the init (close-on-exec, sealed), or -1 when this host cannot run it from
// one (then the worker is PID 1 of its namespace, as without an init). Checked once: a probe
// runs it and expects its usage exit code.
int InitFd();

// The init's exit code when it was started wrongly (the probe's expectation).
constexpr int kInitUsageExit = 125;

}  // namespace posix
}  // namespace si
