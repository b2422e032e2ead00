#include "glibc_compat.h"

// The stand-in for glibc 2.32's __libc_single_threaded (see glibc_compat.h): always "no".
#include <new>

// gcc 11+ headers call this from every std::allocator; the libstdc++.so that exports it
// (GLIBCXX_3.4.29) is newer than the baseline's. Defined here, hidden, it binds locally.
#if defined(__GLIBCXX__)
namespace std {
[[noreturn]] __attribute__((visibility("hidden"))) void __throw_bad_array_new_length() { throw std::bad_array_new_length(); }
}  // namespace std
#endif

extern "C" {
char spawn_isolated_libc_single_threaded = 0;
}
