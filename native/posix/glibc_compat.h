// Force-included into every Linux translation unit (binding.gyp, CMakeLists.txt): the shipped
// addon must load on glibc 2.28 (Debian 10, RHEL 8: what Node 18+ supports), though it is built
// on a newer one. Symbols whose default version moved after 2.28 are bound to their old version
// here; scripts/prebuild.js checks the result with objdump -T. libstdc++ is linked statically
// (its newest symbols would otherwise need a newer libstdc++.so than those hosts have).
#pragma once

#if defined(__linux__) && !defined(__ANDROID__)
#if defined(__x86_64__)
#define SI_GLIBC_BASE "GLIBC_2.2.5"
#define SI_GLIBC_2_3_3 "GLIBC_2.3.3"
#elif defined(__aarch64__)
#define SI_GLIBC_BASE "GLIBC_2.17"
#define SI_GLIBC_2_3_3 "GLIBC_2.17"
#endif

#ifdef SI_GLIBC_BASE
// Moved into libc.so.6 in 2.34 under a new version; the old one is still exported there.
__asm__(".symver dlopen,dlopen@" SI_GLIBC_BASE);
__asm__(".symver dlsym,dlsym@" SI_GLIBC_BASE);
__asm__(".symver dladdr,dladdr@" SI_GLIBC_BASE);
__asm__(".symver dlclose,dlclose@" SI_GLIBC_BASE);
__asm__(".symver dlerror,dlerror@" SI_GLIBC_BASE);
__asm__(".symver pthread_once,pthread_once@" SI_GLIBC_BASE);
__asm__(".symver pthread_mutex_trylock,pthread_mutex_trylock@" SI_GLIBC_BASE);
__asm__(".symver pthread_sigmask,pthread_sigmask@" SI_GLIBC_BASE);
__asm__(".symver pthread_key_create,pthread_key_create@" SI_GLIBC_BASE);
__asm__(".symver pthread_key_delete,pthread_key_delete@" SI_GLIBC_BASE);
__asm__(".symver pthread_getspecific,pthread_getspecific@" SI_GLIBC_BASE);
__asm__(".symver pthread_setspecific,pthread_setspecific@" SI_GLIBC_BASE);
__asm__(".symver pthread_join,pthread_join@" SI_GLIBC_BASE);
__asm__(".symver pthread_detach,pthread_detach@" SI_GLIBC_BASE);
__asm__(".symver pthread_create,pthread_create@" SI_GLIBC_BASE);
__asm__(".symver pthread_attr_setstacksize,pthread_attr_setstacksize@" SI_GLIBC_BASE);
__asm__(".symver pthread_condattr_setclock,pthread_condattr_setclock@" SI_GLIBC_2_3_3);
#endif

// libstdc++ reads glibc 2.32's __libc_single_threaded when <sys/single_threaded.h> exists; this
// addon is never single-threaded (it has its own threads), so it reads a constant 0 instead.
#define __libc_single_threaded spawn_isolated_libc_single_threaded
#endif
