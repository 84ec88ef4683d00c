/*
 * ring_test.c - what the Python side needs to check the ring without a DLL: the record layout as this compiler
 * laid it out, producer threads that are real native threads (no GIL anywhere near them), and stand-in depth
 * accessors for them. Nothing here runs unless a test or the layout check calls it.
 */
#include "ring.h" /* first: it sets the feature macros */

#include <stdlib.h>
#include <string.h>

#ifndef _WIN32
#include <pthread.h>
#include <time.h>
#endif

#define FIELD(type, field) {#type "." #field, (int64_t)offsetof(type, field)}
#define SIZE(type) {#type, (int64_t)sizeof(type)}

/* sizeof/offsetof by name ("RecHead", "RecHead.received_ns"); -1 for an unknown name */
RING_EXPORT int64_t ring_layout(const char *name)
{
    static const struct { const char *name; int64_t value; } k[] = {
        SIZE(RecHead), FIELD(RecHead, kind), FIELD(RecHead, nslots), FIELD(RecHead, ticker_len),
        FIELD(RecHead, exch_len), FIELD(RecHead, date_len), FIELD(RecHead, flags), FIELD(RecHead, nlevels),
        FIELD(RecHead, feed), FIELD(RecHead, version), FIELD(RecHead, name_id), FIELD(RecHead, received_ns),
        SIZE(BodyState), FIELD(BodyState, conn_type), FIELD(BodyState, result),
        SIZE(BodyTradeV1), FIELD(BodyTradeV1, number), FIELD(BodyTradeV1, qty), FIELD(BodyTradeV1, price),
        FIELD(BodyTradeV1, volume), FIELD(BodyTradeV1, buyer), FIELD(BodyTradeV1, seller),
        FIELD(BodyTradeV1, trade_type), FIELD(BodyTradeV1, edit),
        SIZE(BodyTradeV2), FIELD(BodyTradeV2, number), FIELD(BodyTradeV2, flags), FIELD(BodyTradeV2, price),
        FIELD(BodyTradeV2, qty), FIELD(BodyTradeV2, volume), FIELD(BodyTradeV2, buyer), FIELD(BodyTradeV2, seller),
        FIELD(BodyTradeV2, date), FIELD(BodyTradeV2, hour_key), FIELD(BodyTradeV2, ms_of_hour),
        FIELD(BodyTradeV2, trade_type),
        SIZE(BodyTiny), FIELD(BodyTiny, price), FIELD(BodyTiny, qty), FIELD(BodyTiny, side),
        SIZE(BodyDepth), FIELD(BodyDepth, side), FIELD(BodyDepth, notified_side), FIELD(BodyDepth, update),
        FIELD(BodyDepth, position),
        SIZE(RecLevel), FIELD(RecLevel, price), FIELD(RecLevel, qty), FIELD(RecLevel, count), FIELD(RecLevel, flags),
        {"RING_SLOT", RING_SLOT}, {"RING_LEVELS_MAX", RING_LEVELS_MAX}, {"RING_REC_MAX", (int64_t)RING_REC_MAX},
    };
    if (!name) return -1;
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (strcmp(name, k[i].name) == 0) return k[i].value;
    return -1;
}

/* ---- stand-in depth accessors: `g_test_levels` levels a side, level i at price 100 + i ------------------------ */
static int32_t g_test_levels = 3;

RING_EXPORT int32_t RING_CALL ring_test_side_count(void *asset, uint8_t side)
{
    (void)asset;
    return side <= 1 ? g_test_levels : -1;
}

RING_EXPORT int32_t RING_CALL ring_test_price_group(void *asset, uint8_t side, int32_t position, void *out)
{
    (void)asset;
    if (side > 1 || position < 0 || position >= g_test_levels) return -1;
    struct { uint8_t v; double price; uint32_t count; int64_t qty; uint32_t flags; } *g = out;
    g->price = 100.0 + position;
    g->count = (uint32_t)position + 1;
    g->qty = 10 * ((int64_t)position + 1);
    g->flags = 0;
    return 0;
}

/* ---- producer threads ------------------------------------------------------------------------------------- */
typedef struct { const wchar_t *ticker, *exchange; int32_t feed; } TestAssetV1;
typedef struct { uint8_t version; const wchar_t *ticker, *exchange; uint8_t feed_type; } TestAssetV2;
void RING_CALL ring_on_state(int32_t, int32_t);
void RING_CALL ring_on_trade_v1(TestAssetV1, const wchar_t *, uint32_t, double, double, int32_t, int32_t, int32_t,
                                int32_t, int32_t);
void RING_CALL ring_on_price_depth(TestAssetV2, uint32_t, int32_t, uint32_t);

#define TEST_THREADS_MAX 16
static int64_t g_per_thread;
#ifdef _WIN32
static HANDLE g_threads[TEST_THREADS_MAX];
#else
static pthread_t g_threads[TEST_THREADS_MAX];
#endif
static int g_nthreads;

/* Producer i pushes, for j = 0..per_thread-1, in turn: a state (conn_type i, result j), a V1 trade (ticker "P<i>",
 * number j, with a date string: two slots) and a depth notification (ticker "P<i>", position j: one record per
 * side read, each with the test levels). Every record names its producer and its place in that producer's order. */
static void produce(int i)
{
    wchar_t ticker[4] = {L'P', (wchar_t)(L'A' + i), 0, 0};
    TestAssetV1 a1 = {ticker, L"F", 0};
    TestAssetV2 a2 = {0, ticker, L"F", 0};
    for (int64_t j = 0; j < g_per_thread; j++) {
        switch (j % 3) {
        case 0: ring_on_state(i, (int32_t)j); break;
        case 1: ring_on_trade_v1(a1, L"02/01/2026 10:00:00.000", (uint32_t)j, 5000.0, 50000.0, 1, 3, 72, 2, 0); break;
        default: ring_on_price_depth(a2, 0, (int32_t)j, 1); break;
        }
    }
}

#ifdef _WIN32
static DWORD WINAPI producer_main(LPVOID arg) { produce((int)(intptr_t)arg); return 0; }
#else
static void *producer_main(void *arg) { produce((int)(intptr_t)arg); return NULL; }
#endif

/* Starts n native producer threads (joined by ring_test_join). 0 = started; -1 bad arguments or already running. */
RING_EXPORT int32_t ring_test_start(int32_t n, int64_t per_thread, int32_t levels)
{
    if (g_nthreads || n < 1 || n > TEST_THREADS_MAX || per_thread < 0 || levels < 0) return -1;
    g_per_thread = per_thread;
    g_test_levels = levels;
    for (int i = 0; i < n; i++) {
#ifdef _WIN32
        g_threads[i] = CreateThread(NULL, 0, producer_main, (LPVOID)(intptr_t)i, 0, NULL);
        if (!g_threads[i]) return -1;
#else
        if (pthread_create(&g_threads[i], NULL, producer_main, (void *)(intptr_t)i) != 0) return -1;
#endif
        g_nthreads = i + 1;
    }
    return 0;
}

RING_EXPORT int32_t ring_test_join(void)
{
    for (int i = 0; i < g_nthreads; i++) {
#ifdef _WIN32
        WaitForSingleObject(g_threads[i], INFINITE);
        CloseHandle(g_threads[i]);
#else
        pthread_join(g_threads[i], NULL);
#endif
    }
    g_nthreads = 0;
    return 0;
}

/* ---- the machine's cold start: a fixed memory walk timed after its thread slept, or spun, for gap_ns ---------- */
/* A pointer chase over `nodes` cache lines (a fixed pseudo-random cycle), timed reps times; before each a wait of
 * gap_ns, asleep (spin 0) or spinning on the clock (spin 1). out[i] = ns of walk i. What it shows is how much of a
 * short burst of work goes to refilling caches and TLB that went cold while the thread - on a VM, the vCPU - was
 * idle; the walk itself never changes. 0 = done; -1 bad arguments or no memory. */
RING_EXPORT int32_t ring_test_cold(int32_t nodes, int64_t gap_ns, int32_t spin, int32_t reps, int64_t *out)
{
    if (nodes < 2 || reps < 1 || gap_ns < 0 || !out) return -1;
    typedef struct Node { struct Node *next; char pad[64 - sizeof(void *)]; } Node;
    Node *n = malloc((size_t)nodes * sizeof(Node));
    int32_t *order = malloc((size_t)nodes * sizeof(int32_t));
    if (!n || !order) { free(n); free(order); return -1; }
    uint64_t x = 88172645463325252ull; /* xorshift: the same cycle every run */
    for (int32_t i = 0; i < nodes; i++) order[i] = i;
    for (int32_t i = nodes - 1; i > 0; i--) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        int32_t j = (int32_t)(x % (uint64_t)(i + 1)), t = order[i];
        order[i] = order[j]; order[j] = t;
    }
    for (int32_t i = 0; i < nodes; i++) n[order[i]].next = &n[order[(i + 1) % nodes]];
    free(order);
    Node *volatile sink = n;
    for (int32_t r = 0; r < reps; r++) {
        if (spin) {
            int64_t until = ring_now_ns() + gap_ns;
            while (ring_now_ns() < until) {}
        } else if (gap_ns) {
#ifdef _WIN32
            Sleep((DWORD)(gap_ns / 1000000));
#else
            struct timespec ts = {(time_t)(gap_ns / 1000000000), (long)(gap_ns % 1000000000)};
            nanosleep(&ts, NULL);
#endif
        }
        int64_t t0 = ring_now_ns();
        Node *p = sink;
        for (int32_t i = 0; i < nodes; i++) p = p->next;
        out[r] = ring_now_ns() - t0;
        sink = p;
    }
    free(n);
    return 0;
}
