/*
 * ring_port.h - the few platform services the native ring needs: atomics, the receive-time clock, a futex-like
 * wait/wake, a spin lock and exports, each for Linux (what is built and tested here), other POSIX systems and
 * Windows.
 *
 * The Windows branches (MSVC through Interlocked* and <windows.h>, mingw-w64 through <stdatomic.h>) are written to
 * the documented APIs but are NOT compiled in this project's Linux workplace: the first Windows build is their
 * first compile. They are kept deliberately small for that reason.
 */
#ifndef RING_PORT_H
#define RING_PORT_H

#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* syscall() and nanosleep() under -std=c11; every .c includes this header first */
#endif

#include <stdint.h>
#include <stddef.h>

#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#define RING_EXPORT __declspec(dllexport)
/* the DLL calls back with stdcall on x86 (spec §1); the keyword is ignored on x64 */
#define RING_CALL __stdcall
#else
#define RING_EXPORT __attribute__((visibility("default")))
#define RING_CALL
#endif

/* ---- atomics ------------------------------------------------------------------------------------------------
 * MSVC's C11 <stdatomic.h> needs VS 2022 17.5 and an experimental switch, so MSVC uses Interlocked* instead.
 * On x64 a volatile access is already an acquire load / release store (/volatile:ms, the x64 default) and x86-TSO
 * makes plain loads sequentially consistent once every seq_cst store is an interlocked exchange; every other MSVC
 * target takes the interlocked path for loads too. */
#if defined(_MSC_VER) && !defined(__clang__)
typedef volatile LONG64 ring_a64;
typedef volatile LONG ring_a32;
#define a64_add(p, v) ((int64_t)InterlockedExchangeAdd64((p), (v)))
#define a64_add_sc(p, v) a64_add(p, v)
#define a32_add(p, v) ((int32_t)InterlockedExchangeAdd((p), (v)))
#define a32_xchg(p, v) ((int32_t)InterlockedExchange((p), (v)))
#define a64_store_sc(p, v) ((void)InterlockedExchange64((p), (v)))
#define a32_store_sc(p, v) ((void)InterlockedExchange((p), (v)))
#define ring_fence_sc() MemoryBarrier()
static __forceinline int a64_cas(ring_a64 *p, int64_t *expected, int64_t desired)
{
    int64_t seen = InterlockedCompareExchange64(p, desired, *expected);
    if (seen == *expected) return 1;
    *expected = seen;
    return 0;
}
#if defined(_M_X64)
#define a64_load(p) ((int64_t)(*(p)))
#define a32_load(p) ((int32_t)(*(p)))
#define a64_store_rel(p, v) (_ReadWriteBarrier(), *(p) = (v))
#else
#define a64_load(p) ((int64_t)InterlockedCompareExchange64((p), 0, 0))
#define a32_load(p) ((int32_t)InterlockedCompareExchange((p), 0, 0))
#define a64_store_rel(p, v) ((void)InterlockedExchange64((p), (v)))
#endif
#define a64_load_rlx(p) a64_load(p)
#else
#include <stdatomic.h>
typedef _Atomic int64_t ring_a64;
typedef _Atomic int32_t ring_a32;
#define a64_load(p) atomic_load(p)
#define a32_load(p) atomic_load(p)
#define a64_load_rlx(p) atomic_load_explicit((p), memory_order_relaxed)
#define a64_add(p, v) atomic_fetch_add_explicit((p), (v), memory_order_relaxed)
#define a64_add_sc(p, v) atomic_fetch_add((p), (v))
#define a32_add(p, v) atomic_fetch_add((p), (v))
#define a32_xchg(p, v) atomic_exchange((p), (v))
#define a64_store_sc(p, v) atomic_store((p), (v))
#define a32_store_sc(p, v) atomic_store((p), (v))
#define a64_store_rel(p, v) atomic_store_explicit((p), (v), memory_order_release)
#define ring_fence_sc() atomic_thread_fence(memory_order_seq_cst)
static inline int a64_cas(ring_a64 *p, int64_t *expected, int64_t desired)
{
    return atomic_compare_exchange_weak(p, expected, desired);
}
#endif

/* ---- the receive-time clock: the same numbers as app/feed/clock.py now_ns --------------------------------------
 * Linux: time.monotonic_ns is CLOCK_MONOTONIC. Windows: perf_counter_ns (and monotonic_ns from 3.13) is
 * QueryPerformanceCounter scaled exactly as CPython's _PyTime_MulDiv does. macOS: monotonic_ns is
 * mach_absolute_time scaled by the timebase, the same way. */
#if defined(_WIN32)
static inline int64_t ring_now_ns(void)
{
    static LARGE_INTEGER freq; /* a benign race: every thread writes the same value */
    LARGE_INTEGER t;
    if (!freq.QuadPart) QueryPerformanceFrequency(&freq);
    QueryPerformanceCounter(&t);
    int64_t f = freq.QuadPart, c = t.QuadPart;
    return (c / f) * 1000000000LL + (c % f) * 1000000000LL / f;
}
#elif defined(__APPLE__)
#include <mach/mach_time.h>
static inline int64_t ring_now_ns(void)
{
    static mach_timebase_info_data_t tb;
    if (!tb.denom) mach_timebase_info(&tb);
    int64_t c = (int64_t)mach_absolute_time();
    return (c / tb.denom) * tb.numer + (c % tb.denom) * tb.numer / tb.denom;
}
#else
#include <time.h>
static inline int64_t ring_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
#endif

/* ---- wait on a 32-bit word until it changes (or a timeout, ns; < 0 = none), and wake its waiter --------------- */
#if defined(_WIN32)
/* WaitOnAddress: Windows 8 and later, synchronization.lib (setup.py links it) */
static inline void ring_word_wait(ring_a32 *word, int32_t seen, int64_t timeout_ns)
{
    DWORD ms = timeout_ns < 0 ? INFINITE : (DWORD)((timeout_ns + 999999) / 1000000);
    LONG expect = seen;
    WaitOnAddress((volatile VOID *)word, &expect, sizeof expect, ms);
}
static inline void ring_word_wake(ring_a32 *word) { WakeByAddressAll((PVOID)word); }
#elif defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
static inline void ring_word_wait(ring_a32 *word, int32_t seen, int64_t timeout_ns)
{
    struct timespec ts, *tp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000LL);
        ts.tv_nsec = (long)(timeout_ns % 1000000000LL);
        tp = &ts;
    }
    syscall(SYS_futex, (void *)word, FUTEX_WAIT_PRIVATE, seen, tp, NULL, 0);
}
static inline void ring_word_wake(ring_a32 *word) { syscall(SYS_futex, (void *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0); }
#include <sys/prctl.h>
/* a thread's timed waits may end up to its timer slack late (50 us by default): a 100 us nap took ~150 us */
static inline void ring_precise_timers(void) { prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL); }
#define RING_HAVE_TIMERSLACK 1
#else
/* other POSIX systems: a condition variable; the word is re-checked under the mutex so no wake is lost */
#include <pthread.h>
#include <time.h>
static pthread_mutex_t ring_word_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ring_word_cv = PTHREAD_COND_INITIALIZER;
static inline void ring_word_wait(ring_a32 *word, int32_t seen, int64_t timeout_ns)
{
    pthread_mutex_lock(&ring_word_mu);
    if (a32_load(word) == seen) {
        if (timeout_ns < 0) {
            pthread_cond_wait(&ring_word_cv, &ring_word_mu);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t ns = (int64_t)ts.tv_nsec + timeout_ns % 1000000000LL;
            ts.tv_sec += (time_t)(timeout_ns / 1000000000LL + ns / 1000000000LL);
            ts.tv_nsec = (long)(ns % 1000000000LL);
            pthread_cond_timedwait(&ring_word_cv, &ring_word_mu, &ts);
        }
    }
    pthread_mutex_unlock(&ring_word_mu);
}
static inline void ring_word_wake(ring_a32 *word)
{
    (void)word;
    pthread_mutex_lock(&ring_word_mu);
    pthread_cond_broadcast(&ring_word_cv);
    pthread_mutex_unlock(&ring_word_mu);
}
#endif

/* ---- a spin lock for the overflow chain's short critical sections (a pointer swap or one memcpy) ------------- */
static inline void ring_spin_lock(ring_a32 *lock)
{
    while (a32_xchg(lock, 1)) {
        while (a32_load(lock)) {
#if defined(_MSC_VER) && !defined(__clang__)
            YieldProcessor();
#elif defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
    }
}
static inline void ring_spin_unlock(ring_a32 *lock) { a32_store_sc(lock, 0); }

/* ---- the ring's memory: one block, on Linux in transparent huge pages where the system allows them --------------
 * The DLL's thread writes records across the whole ring; with 4 KiB pages it takes a TLB miss every 64 slots, and
 * under a hypervisor a miss walks two page tables. 2 MiB pages take that out of the callback. Elsewhere (and where
 * THP is off) madvise is a no-op or absent and the block is an ordinary allocation. */
#define RING_BIG_ALIGN ((size_t)2 << 20)
#ifndef _WIN32
#include <stdlib.h>
#ifdef __linux__
#include <sys/mman.h>
#endif
#endif
static inline void *ring_alloc_big(size_t size)
{
#ifdef _WIN32
    return malloc(size);
#else
    void *p = NULL;
    size_t rounded = (size + RING_BIG_ALIGN - 1) & ~(RING_BIG_ALIGN - 1);
    if (posix_memalign(&p, RING_BIG_ALIGN, rounded)) return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(p, rounded, MADV_HUGEPAGE);
#endif
    return p;
#endif
}

static inline void ring_sleep_ms(int ms)
{
#ifdef _WIN32
    Sleep((DWORD)ms);
#else
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
#endif
}

#endif
