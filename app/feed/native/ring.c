/*
 * ring.c - a bounded multi-producer single-consumer queue of variable-size records that DLL threads push into
 * without ever taking the GIL, blocking or dropping, and one Python thread (the DLL owner) drains.
 *
 * Producers claim consecutive 64-byte slots with one CAS on `tail` (Vyukov's per-slot sequence numbers: slot i is
 * free for ticket t when seq[i] == t, holds ticket t's record when seq[i] == t + 1). A record of n slots is claimed
 * whole or not at all, so records never interleave. When the ring is full the record goes to an overflow chain of
 * malloc'd blocks instead, under a spin lock held for one memcpy.
 *
 * Order. Once anything overflowed, every later push goes to the chain too (`mode`), until the consumer takes the
 * chain: otherwise a producer's next record could land in a freed slot and be drained before its earlier one
 * still in the chain. The consumer takes the whole chain in one pointer swap and notes `tail` at that moment
 * (`take_at`): the ring records claimed before the take are older than anything in it, so they are delivered
 * first, then the chain, then the ring again. Every producer's records come out in the order it pushed them.
 *
 * Waking. The consumer sleeps on a futex word (WaitOnAddress on Windows) after announcing it in `waiting`; a
 * producer pays for the wake syscall only when it finds `waiting` set (a Dekker handshake through seq_cst
 * fences), so under load, when the consumer is busy converting, pushes make no system call at all.
 */
#include "ring.h" /* first: it sets the feature macros */

#include <stdlib.h>
#include <string.h>

typedef struct {
    ring_a64 v;
    char pad[64 - sizeof(ring_a64)];
} Padded; /* producers' and the consumer's hot words on cache lines of their own */

typedef struct OvBlock {
    struct OvBlock *next;
    size_t used, cap;
    unsigned char data[]; /* whole records, nslots * 64 bytes each, in push order */
} OvBlock;
#define OV_BLOCK_BYTES (256 * 1024)

static Padded g_tail, g_head;
static ring_a32 g_mode, g_ov_lock, g_waiting, g_notified, g_word, g_open;
enum { WAIT_NONE, WAIT_RECORDS, WAIT_NOTIFY }; /* g_waiting: what may end the consumer's sleep */
static ring_a64 g_inflight;
static uint64_t g_cap, g_mask;
static ring_a64 *g_seq;
static unsigned char *g_data;
static OvBlock *g_ov_first, *g_ov_last; /* under g_ov_lock */
/* drained blocks kept for the next overflow (under g_ov_lock): a producer reuses pages that are already mapped
 * instead of taking a page fault per 4 KiB of a fresh malloc on the DLL's thread */
static OvBlock *g_ov_spare;
static int g_ov_nspare;
#define OV_SPARE_MAX 16

/* consumer-only state */
static int64_t g_head_local, g_take_at;
static OvBlock *g_take;
static size_t g_take_off;
static int g_have_take;

static ring_a64 g_pushed, g_drained, g_overflowed, g_ov_blocks, g_max_depth, g_wakes, g_lost;
static ring_a64 g_counter[C_COUNTERS];
#define HIST_BUCKETS 512 /* app/metrics.py LatencyHistogram: 8 sub-buckets per power of two */
static ring_a64 g_dwell[RING_CALLBACKS][HIST_BUCKETS];
static ring_a64 g_dwell_n[RING_CALLBACKS], g_dwell_total[RING_CALLBACKS], g_dwell_max[RING_CALLBACKS];

static inline int bit_length(uint64_t v)
{
#if defined(_MSC_VER) && !defined(__clang__) && defined(_M_X64)
    unsigned long i;
    _BitScanReverse64(&i, v);
    return (int)i + 1;
#elif defined(__GNUC__) || defined(__clang__)
    return 64 - __builtin_clzll(v);
#else
    int b = 0;
    while (v) {
        b++;
        v >>= 1;
    }
    return b;
#endif
}

/* the bucket app/metrics.py _index gives the same value, so Python reads these counts as a LatencyHistogram */
static inline int hist_index(int64_t v)
{
    if (v < 8) return v > 0 ? (int)v : 0;
    int bits = bit_length((uint64_t)v);
    return (bits - 3) * 8 + (int)((v >> (bits - 4)) & 7);
}

static void max_update(ring_a64 *m, int64_t v)
{
    int64_t seen = a64_load_rlx(m);
    while (v > seen && !a64_cas(m, &seen, v)) {
    }
}

/* ---- producers ------------------------------------------------------------------------------------------- */
int ring_enter(void)
{
    a64_add_sc(&g_inflight, 1); /* before reading the gate: ring_free waits for this count to reach 0 */
    if (a32_load(&g_open)) return 1;
    a64_add_sc(&g_inflight, -1);
    return 0;
}

void ring_leave(int kind, int64_t t0)
{
    int64_t dwell = ring_now_ns() - t0;
    a64_add(&g_dwell[kind][hist_index(dwell)], 1);
    a64_add(&g_dwell_n[kind], 1);
    a64_add(&g_dwell_total[kind], dwell > 0 ? dwell : 0);
    if (dwell > a64_load_rlx(&g_dwell_max[kind])) max_update(&g_dwell_max[kind], dwell);
    a64_add_sc(&g_inflight, -1);
}

void ring_count(int counter, int64_t n) { a64_add(&g_counter[counter], n); }

/* The routing epoch, kept here and not only from the drained records: an order the owner thread is about to send
 * must see a routing reconnect the DLL reported a moment ago, even when its record still waits in the ring. Counted
 * for the life of the process (never reset with the ring): an epoch must never come back. */
static ring_a32 g_routing_last = -1;
static ring_a64 g_routing_connects;

void ring_routing_state(int32_t result)
{
    if (a32_xchg(&g_routing_last, result) != result && result == ROUTING_BROKER_CONNECTED)
        a64_add_sc(&g_routing_connects, 1);
}

static void wake_consumer(void)
{
    ring_fence_sc(); /* the record (or the notification) is visible before `waiting` is read */
    if (a32_load(&g_waiting) == WAIT_RECORDS && a32_xchg(&g_waiting, 0)) {
        a32_add(&g_word, 1);
        ring_word_wake(&g_word);
        a64_add(&g_wakes, 1);
    }
}

static void slots_copy(int64_t ticket, unsigned char *dst, const unsigned char *src, int n, int to_ring)
{
    uint64_t i = (uint64_t)ticket & g_mask, first = g_cap - i;
    if (first > (uint64_t)n) first = (uint64_t)n;
    unsigned char *ring = g_data + i * RING_SLOT;
    if (to_ring) {
        memcpy(ring, src, first * RING_SLOT);
        if (first < (uint64_t)n) memcpy(g_data, src + first * RING_SLOT, (n - first) * RING_SLOT);
    } else {
        memcpy(dst, ring, first * RING_SLOT);
        if (first < (uint64_t)n) memcpy(dst + first * RING_SLOT, g_data, (n - first) * RING_SLOT);
    }
}

static int ring_try_push(const unsigned char *rec, int n)
{
    int64_t pos = a64_load_rlx(&g_tail.v);
    for (;;) {
        int64_t last = pos + n - 1;
        int64_t d = a64_load(&g_seq[(uint64_t)last & g_mask]) - last;
        if (d == 0) {
            /* the slot of the claim's last ticket is free, so are all before it: the consumer frees in order */
            if (a64_cas(&g_tail.v, &pos, pos + n)) break;
        } else if (d < 0) {
            return 0; /* full */
        } else {
            pos = a64_load_rlx(&g_tail.v);
        }
    }
    slots_copy(pos, NULL, rec, n, 1);
    a64_store_rel(&g_seq[(uint64_t)pos & g_mask], pos + 1); /* publishes the whole record */
    int64_t depth = pos + n - a64_load_rlx(&g_head.v);
    if (depth > a64_load_rlx(&g_max_depth)) max_update(&g_max_depth, depth);
    return 1;
}

static void overflow_push(const unsigned char *rec, size_t nbytes)
{
    ring_spin_lock(&g_ov_lock);
    a32_store_sc(&g_mode, 1);
    OvBlock *b = g_ov_last;
    if (!b || b->cap - b->used < nbytes) {
        size_t cap = nbytes > OV_BLOCK_BYTES ? nbytes : OV_BLOCK_BYTES;
        OvBlock *nb = NULL;
        if (g_ov_spare && nbytes <= OV_BLOCK_BYTES) {
            nb = g_ov_spare;
            g_ov_spare = nb->next;
            g_ov_nspare--;
            cap = nb->cap;
        } else {
            nb = malloc(sizeof *nb + cap);
        }
        if (!nb) { /* nowhere to keep it: counted, and the only way a record is ever lost */
            ring_spin_unlock(&g_ov_lock);
            a64_add(&g_lost, 1);
            return;
        }
        nb->next = NULL;
        nb->used = 0;
        nb->cap = cap;
        if (b) b->next = nb;
        else g_ov_first = nb;
        g_ov_last = b = nb;
        a64_add(&g_ov_blocks, 1);
    }
    memcpy(b->data + b->used, rec, nbytes);
    b->used += nbytes;
    ring_spin_unlock(&g_ov_lock);
    a64_add(&g_overflowed, 1);
}

void ring_push(void *record, size_t nbytes)
{
    unsigned char *rec = record;
    int n = (int)((nbytes + RING_SLOT - 1) / RING_SLOT);
    memset(rec + nbytes, 0, (size_t)n * RING_SLOT - nbytes); /* callers' buffers are whole slots */
    rec[1] = (uint8_t)n;
    a64_add(&g_pushed, 1);
    if (a32_load(&g_mode) || (uint64_t)n > g_cap || !ring_try_push(rec, n))
        overflow_push(rec, (size_t)n * RING_SLOT);
    wake_consumer();
}

/* ---- the consumer ---------------------------------------------------------------------------------------- */
static void take_chain(void)
{
    ring_spin_lock(&g_ov_lock);
    g_take_at = a64_load(&g_tail.v); /* seq_cst, before `mode` is cleared: see the comment at the top */
    g_take = g_ov_first;
    g_ov_first = g_ov_last = NULL;
    a32_store_sc(&g_mode, 0);
    ring_spin_unlock(&g_ov_lock);
    g_take_off = 0;
    g_have_take = g_take != NULL;
}

/* bytes copied; 0 = nothing published at head; -1 = the record does not fit in `room` */
static int64_t copy_from_ring(unsigned char *out, int64_t room)
{
    int64_t h = g_head_local;
    uint64_t i = (uint64_t)h & g_mask;
    if (a64_load(&g_seq[i]) != h + 1) return 0;
    int n = g_data[i * RING_SLOT + 1];
    if ((int64_t)n * RING_SLOT > room) return -1;
    slots_copy(h, out, NULL, n, 0);
    g_head_local = h + n;
    /* before the slots are freed: a producer that sees them free sees this head too, so its depth <= capacity */
    a64_store_rel(&g_head.v, g_head_local);
    for (int k = 0; k < n; k++) a64_store_rel(&g_seq[(uint64_t)(h + k) & g_mask], h + k + (int64_t)g_cap);
    return (int64_t)n * RING_SLOT;
}

static void spare_or_free(OvBlock *b)
{
    if (b->cap == OV_BLOCK_BYTES) {
        ring_spin_lock(&g_ov_lock);
        if (g_ov_nspare < OV_SPARE_MAX) {
            b->next = g_ov_spare;
            b->used = 0;
            g_ov_spare = b;
            g_ov_nspare++;
            b = NULL;
        }
        ring_spin_unlock(&g_ov_lock);
    }
    free(b);
}

/* bytes copied; 0 = the taken chain is exhausted (its blocks spared or freed); -1 = no room */
static int64_t copy_from_chain(unsigned char *out, int64_t room)
{
    while (g_take && g_take_off >= g_take->used) {
        OvBlock *next = g_take->next;
        spare_or_free(g_take);
        g_take = next;
        g_take_off = 0;
    }
    if (!g_take) return 0;
    int64_t nbytes = (int64_t)g_take->data[g_take_off + 1] * RING_SLOT;
    if (nbytes > room) return -1;
    memcpy(out, g_take->data + g_take_off, (size_t)nbytes);
    g_take_off += (size_t)nbytes;
    return nbytes;
}

static int available(void)
{
    return g_have_take || a32_load(&g_mode) || a64_load(&g_seq[(uint64_t)g_head_local & g_mask]) == g_head_local + 1;
}

/* Copies whole records, oldest first, until max_records, the buffer or the published records run out. One
 * consumer thread at a time. Returns the number of records; *bytes_out the bytes written. */
RING_EXPORT int64_t ring_drain(void *buf, int64_t buf_bytes, int64_t max_records, int64_t *bytes_out)
{
    unsigned char *out = buf;
    int64_t used = 0, n = 0;
    while (g_data && n < max_records) {
        if (!g_have_take && a32_load(&g_mode)) take_chain();
        int64_t got;
        if (g_have_take && g_head_local >= g_take_at) {
            got = copy_from_chain(out + used, buf_bytes - used);
            if (got == 0) {
                g_have_take = 0;
                continue;
            }
        } else {
            got = copy_from_ring(out + used, buf_bytes - used);
        }
        if (got <= 0) break; /* not yet published (a producer between claim and publish), or no room */
        used += got;
        n++;
    }
    a64_add(&g_drained, n);
    *bytes_out = used;
    return n;
}

/* Blocks until records are available, ring_notify() was called, or timeout_ns passed (< 0: no timeout).
 * Returns bit 0: records available; bit 1: notified (the notification is consumed); 0 on timeout.
 * records_wake = 0 is a nap: records do not end it (only the timeout or ring_notify do), so the producers, which
 * are the DLL's threads, never pay for a wake syscall (~2 us) while the consumer naps; the consumer trades that
 * for up to timeout_ns of latency. */
RING_EXPORT int32_t ring_wait(int64_t timeout_ns, int32_t records_wake)
{
    if (!g_data) return 0;
    int32_t flags = available() ? 1 : 0;
    if (a32_load(&g_notified) && a32_xchg(&g_notified, 0)) flags |= 2;
    if (flags || timeout_ns == 0) return flags;
    int32_t word = a32_load(&g_word);
    a32_store_sc(&g_waiting, records_wake ? WAIT_RECORDS : WAIT_NOTIFY);
    ring_fence_sc(); /* `waiting` is visible before the re-check below reads what producers published */
    if (!(records_wake && available()) && !a32_load(&g_notified)) ring_word_wait(&g_word, word, timeout_ns);
    a32_store_sc(&g_waiting, 0);
    flags = available() ? 1 : 0;
    if (a32_xchg(&g_notified, 0)) flags |= 2;
    return flags;
}

/* The owner thread holds while the loop has a backlog: records waiting in the ring must not end this wait (they
 * would make the owner spin, taking the GIL from the loop each time round), only ring_notify - the loop drained
 * down to its low-water mark, or a DLL command is queued - or the timeout. Returns as ring_wait. */
RING_EXPORT int32_t ring_hold(int64_t timeout_ns)
{
    if (!g_data) return 0;
    if (!a32_load(&g_notified) && timeout_ns != 0) {
        int32_t word = a32_load(&g_word);
        a32_store_sc(&g_waiting, WAIT_NOTIFY);
        ring_fence_sc(); /* `waiting` is visible before the re-check of `notified` */
        if (!a32_load(&g_notified)) ring_word_wait(&g_word, word, timeout_ns);
        a32_store_sc(&g_waiting, 0);
    }
    int32_t flags = available() ? 1 : 0;
    if (a32_load(&g_notified) && a32_xchg(&g_notified, 0)) flags |= 2;
    return flags;
}

/* The owner thread's wait between batches, whole in C so that an empty nap costs it no GIL and no Python: up to
 * `naps` naps of nap_ns (records do not end them: the DLL's threads make no wake syscall while data flows), each
 * ended early only by ring_notify; once records are there after a nap it returns. After `naps` empty naps it sleeps
 * until a record or ring_notify wakes it, or idle_ns passed. Returns as ring_wait, plus bit 2 when it slept and
 * bit 3 when the wait lasted window_ns or more (> 0; timed here, so the GIL taken back afterwards does not count):
 * naps that long would not have spared the DLL's thread its wake. */
RING_EXPORT int32_t ring_pump_wait(int64_t nap_ns, int32_t naps, int64_t idle_ns, int64_t window_ns)
{
    int64_t t0 = ring_now_ns();
    int32_t flags = 0;
    int32_t i = 0;
    for (; i < naps; i++) {
        flags = ring_wait(nap_ns, 0);
        if (flags || !g_data) break;
    }
    if (i == naps && g_data) flags = ring_wait(idle_ns, 1) | 4; /* 4: it slept */
    if (window_ns > 0 && ring_now_ns() - t0 >= window_ns) flags |= 8;
    return flags;
}

/* Called once by the consumer thread: its naps end when asked (Linux: 1 us timer slack instead of 50 us). */
RING_EXPORT void ring_consumer_thread(void)
{
#ifdef RING_HAVE_TIMERSLACK
    ring_precise_timers();
#endif
}

/* Wakes ring_wait (from any thread): the owner thread is told a DLL command is waiting. */
RING_EXPORT void ring_notify(void)
{
    a32_store_sc(&g_notified, 1);
    ring_fence_sc();
    if (a32_load(&g_waiting) && a32_xchg(&g_waiting, 0)) {
        a32_add(&g_word, 1);
        ring_word_wake(&g_word);
    }
}

/* ---- lifecycle ------------------------------------------------------------------------------------------- */
/* Closes the gate and waits until no callback is inside the ring: after this no producer touches its memory. */
static void quiesce(void)
{
    a32_store_sc(&g_open, 0);
    while (a64_load(&g_inflight) != 0) ring_sleep_ms(1);
}

static void clear_contents(void)
{
    for (uint64_t i = 0; i < g_cap; i++) a64_store_rel(&g_seq[i], (int64_t)i);
    g_tail.v = 0;
    g_head.v = 0;
    g_head_local = g_take_at = 0;
    for (OvBlock *b = g_ov_first, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    for (OvBlock *b = g_take, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    for (OvBlock *b = g_ov_spare, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    g_ov_first = g_ov_last = g_take = g_ov_spare = NULL;
    g_ov_nspare = 0;
    g_take_off = 0;
    g_have_take = 0;
    a32_store_sc(&g_mode, 0);
    a32_store_sc(&g_notified, 0);
}

static void clear_stats(void)
{
    ring_a64 *scalars[] = {&g_pushed, &g_drained, &g_overflowed, &g_ov_blocks, &g_max_depth, &g_wakes, &g_lost};
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++) a64_store_sc(scalars[i], 0);
    for (int i = 0; i < C_COUNTERS; i++) a64_store_sc(&g_counter[i], 0);
    for (int k = 0; k < RING_CALLBACKS; k++) {
        for (int b = 0; b < HIST_BUCKETS; b++) a64_store_sc(&g_dwell[k][b], 0);
        a64_store_sc(&g_dwell_n[k], 0);
        a64_store_sc(&g_dwell_total[k], 0);
        a64_store_sc(&g_dwell_max[k], 0);
    }
}

/* capacity in slots (rounded up to a power of two, at least 256); the accessors are the DLL's own exports, called
 * only inside the callbacks they belong to. 0 = ready; -1 bad arguments; -2 out of memory; -3 already running. */
RING_EXPORT int32_t ring_init(int64_t capacity, int32_t depth_levels, int32_t flush_add_ends_bracket,
                              TranslateTradeFn translate, SideCountFn side_count, PriceGroupFn price_group)
{
    if (g_data) return -3;
    if (capacity < 1 || capacity > ((int64_t)1 << 30) || depth_levels < 1 || depth_levels > RING_LEVELS_MAX) return -1;
    uint64_t cap = 256;
    while (cap < (uint64_t)capacity) cap <<= 1;
    /* records and their sequence words in one block (huge pages where possible: see ring_alloc_big) */
    unsigned char *data = ring_alloc_big(cap * RING_SLOT + cap * sizeof(ring_a64));
    if (!data) return -2;
    ring_a64 *seq = (ring_a64 *)(data + cap * RING_SLOT);
    g_seq = seq;
    g_cap = cap;
    g_mask = cap - 1;
    g_data = data;
    memset(data, 0, cap * RING_SLOT); /* map every page now, not on the DLL's thread at its first lap */
    clear_contents();
    clear_stats();
    callbacks_configure(depth_levels, flush_add_ends_bracket, translate, side_count, price_group);
    a32_store_sc(&g_open, 1);
    return 0;
}

/* Empties the ring and zeroes every statistic; callbacks arriving meanwhile return at once without a record. */
RING_EXPORT void ring_reset(void)
{
    if (!g_data) return;
    quiesce();
    clear_contents();
    clear_stats();
    callbacks_reset();
    a32_store_sc(&g_open, 1);
}

/* Frees everything. Callbacks still fired afterwards (a DLL thread that outlived its finalize) return at once. */
RING_EXPORT void ring_free(void)
{
    if (!g_data) return;
    quiesce();
    clear_contents();
    callbacks_reset();
    free(g_data); /* the sequence words live in the same block */
    g_data = NULL;
    g_seq = NULL;
    g_cap = g_mask = 0;
}

/* ---- statistics ------------------------------------------------------------------------------------------ */
RING_EXPORT int64_t ring_stat(const char *name)
{
    static const struct { const char *name; ring_a64 *v; } k[] = {
        {"pushed", &g_pushed}, {"drained", &g_drained}, {"overflowed", &g_overflowed},
        {"overflow_blocks", &g_ov_blocks}, {"max_depth", &g_max_depth}, {"wakes", &g_wakes}, {"lost", &g_lost},
        {"inflight", &g_inflight}, {"translate_errors", &g_counter[C_TRANSLATE_ERRORS]},
        {"depth_errors", &g_counter[C_DEPTH_ERRORS]}, {"depth_books", &g_counter[C_DEPTH_BOOKS]},
        {"post_flush_adds", &g_counter[C_POST_FLUSH_ADDS]}, {"depth_table_full", &g_counter[C_DEPTH_TABLE_FULL]},
        {"lossy_strings", &g_counter[C_LOSSY]}, {"routing_connects", &g_routing_connects},
    };
    if (!name) return -1;
    if (strcmp(name, "capacity") == 0) return (int64_t)g_cap;
    if (strcmp(name, "depth") == 0) return g_data ? a64_load(&g_tail.v) - g_head_local : 0;
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (strcmp(name, k[i].name) == 0) return a64_load(k[i].v);
    return -1;
}

/* The dwell histogram of callback `kind` (a record kind; 0 = test producers): up to n bucket counts into counts,
 * and count, total ns and max ns into summary[0..2]. Returns the number of buckets (512), -1 for a bad kind. */
RING_EXPORT int32_t ring_dwell(int32_t kind, int64_t *counts, int32_t n, int64_t *summary)
{
    if (kind < 0 || kind >= RING_CALLBACKS) return -1;
    for (int b = 0; b < n && b < HIST_BUCKETS; b++) counts[b] = a64_load_rlx(&g_dwell[kind][b]);
    summary[0] = a64_load_rlx(&g_dwell_n[kind]);
    summary[1] = a64_load_rlx(&g_dwell_total[kind]);
    summary[2] = a64_load_rlx(&g_dwell_max[kind]);
    return HIST_BUCKETS;
}

RING_EXPORT int64_t ring_now(void) { return ring_now_ns(); }
