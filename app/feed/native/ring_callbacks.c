/*
 * ring_callbacks.c - C functions with the DLL's exact market-data callback signatures (spec §4), registered with
 * SetXxxCallback / DLLInitialize* in place of the ctypes thunks. Each stamps the receive time, copies every field
 * (strings to UTF-16 code units, the V2 trade through TranslateTrade, depth levels through
 * GetPriceDepthSideCount/GetPriceGroup: the accessors the manual requires inside the callback, and nothing else
 * of the DLL), pushes one record per event into the ring and records how long it kept the DLL's thread.
 *
 * What each record means is decided exactly as app/feed/profitdll/callbacks.py decides it, because the Python
 * side of the ring must yield the very events the ctypes path yields (tests/feed/native prove it on one stream):
 * narrow arguments are stored raw and masked in Python where callbacks.py masks them; the depth
 * Prepare/Flush bracket and the post-flush Add are followed here because the levels can only be read inside the
 * notification that announces them.
 */
#include "ring.h" /* first: it sets the feature macros */

#include <string.h>

typedef struct {
    const wchar_t *ticker, *exchange;
    int32_t feed;
} AssetV1; /* TAssetIDRec, by value */

typedef struct {
    uint8_t version;
    const wchar_t *ticker, *exchange;
    uint8_t feed_type;
} AssetV2; /* TConnectorAssetIdentifier, by value */

typedef struct {
    uint8_t version;
    uint16_t date[8]; /* SYSTEMTIME */
    uint32_t number;
    double price;
    int64_t qty;
    double volume;
    int32_t buyer, seller;
    uint8_t trade_type;
} ConnectorTrade; /* TConnectorTrade, filled by TranslateTrade */

typedef struct {
    uint8_t version;
    double price;
    uint32_t count;
    int64_t qty;
    uint32_t flags;
} PriceGroup; /* TConnectorPriceGroup, filled by GetPriceGroup */

#if UINTPTR_MAX == 0xFFFFFFFFFFFFFFFFu
_Static_assert(sizeof(AssetV1) == 24 && sizeof(AssetV2) == 32, "asset layouts (spec §5.1, §5.2)");
_Static_assert(sizeof(ConnectorTrade) == 64 && offsetof(ConnectorTrade, number) == 20, "TConnectorTrade (§5.4)");
_Static_assert(sizeof(PriceGroup) == 40 && offsetof(PriceGroup, qty) == 24, "TConnectorPriceGroup (§5.8)");
#endif

enum { UPDATE_ADD = 0, UPDATE_PREPARE = 5, UPDATE_FLUSH = 6 };
#define SIDE_NONE 255
#define PG_IS_THEORIC 1u
#define RING_BUF_BYTES ((RING_REC_MAX + RING_SLOT - 1) / RING_SLOT * RING_SLOT)

static int g_levels = 5, g_add_ends_bracket = 1;
static TranslateTradeFn g_translate;
static SideCountFn g_side_count;
static PriceGroupFn g_price_group;
/* another callback run with the same arguments right after ours, inside the same DLL callback: lets a test feed
 * the ctypes path and the native path one and the same stream */
typedef void (*AnyFn)(void);
static AnyFn volatile g_tee[RK_KINDS];

/* per ticker: the Prepare/Flush bracket and the side of the Flush just delivered (callbacks.py `bracketed`,
 * `after_flush`); the DLL calls back on one thread, the lock only guards against a second one */
#define DEPTH_TICKERS 64
typedef struct {
    uint16_t key[RING_TICKER_MAX];
    uint8_t len, used, is_null, bracketed, sides;
    int16_t after_flush;
} DepthState;
static DepthState g_depth[DEPTH_TICKERS];
static ring_a32 g_depth_lock;

void callbacks_configure(int depth_levels, int flush_add_ends_bracket, TranslateTradeFn translate,
                         SideCountFn side_count, PriceGroupFn price_group)
{
    g_levels = depth_levels;
    g_add_ends_bracket = flush_add_ends_bracket != 0;
    g_translate = translate;
    g_side_count = side_count;
    g_price_group = price_group;
    callbacks_reset();
}

/* ticker + exchange strings -> a small number, so the consumer decodes each name once (RecHead.name_id); open
 * addressing on a hash of the code units; entries stay until the ring is reset */
#define NAMES 1024
typedef struct {
    uint16_t units[RING_TICKER_MAX + RING_EXCH_MAX];
    uint8_t tl, el, nulls, used;
} NameEntry;
static NameEntry g_names[NAMES];
static int g_names_used;
static ring_a32 g_names_lock;

void callbacks_reset(void)
{
    memset(g_depth, 0, sizeof g_depth);
    memset(g_names, 0, sizeof g_names);
    g_names_used = 0;
}

static uint16_t name_id(const uint16_t *units, uint8_t tl, uint8_t el, uint8_t nulls)
{
    uint32_t h = 2166136261u ^ tl ^ ((uint32_t)el << 8) ^ ((uint32_t)nulls << 16);
    int n = tl + el;
    for (int i = 0; i < n; i++) h = (h ^ units[i]) * 16777619u;
    uint16_t id = 0;
    ring_spin_lock(&g_names_lock);
    for (uint32_t probe = 0; probe < NAMES; probe++) {
        uint32_t i = (h + probe) & (NAMES - 1);
        NameEntry *e = &g_names[i];
        if (!e->used) {
            if (g_names_used >= NAMES / 2) break; /* keep probes short: later names go without a number */
            e->used = 1;
            e->tl = tl;
            e->el = el;
            e->nulls = nulls;
            memcpy(e->units, units, (size_t)n * sizeof *units);
            g_names_used++;
            id = (uint16_t)(i + 1);
            break;
        }
        if (e->tl == tl && e->el == el && e->nulls == nulls && memcmp(e->units, units, (size_t)n * sizeof *units) == 0) {
            id = (uint16_t)(i + 1);
            break;
        }
    }
    ring_spin_unlock(&g_names_lock);
    return id;
}

RING_EXPORT int32_t ring_set_tee(int32_t kind, AnyFn fn)
{
    if (kind <= 0 || kind >= RK_KINDS) return -1;
    g_tee[kind] = fn;
    return 0;
}

/* wchar_t is UTF-32 on Linux (the stand-in's and ctypes' c_wchar_p convention) and UTF-16 on Windows */
static uint8_t put_str(uint16_t *dst, const wchar_t *s, int cap, uint8_t *flags, uint8_t null_flag)
{
    int n = 0;
    if (!s) {
        *flags |= null_flag;
        return 0;
    }
    for (; *s; s++) {
        uint32_t c = (uint32_t)*s;
#if WCHAR_MAX > 0xFFFF
        if (c > 0x10FFFF) {
            c = 0xFFFD;
            *flags |= RF_LOSSY;
        }
        if (c >= 0x10000) {
            if (n + 2 > cap) break;
            c -= 0x10000;
            dst[n++] = (uint16_t)(0xD800 | (c >> 10));
            dst[n++] = (uint16_t)(0xDC00 | (c & 0x3FF));
            continue;
        }
#endif
        if (n == cap) break;
        dst[n++] = (uint16_t)c;
    }
    if (*s) *flags |= RF_LOSSY;
    return (uint8_t)n;
}

/* the head and the asset's strings; returns where the next string (or the padding) goes */
static uint16_t *rec_begin(unsigned char *buf, int kind, size_t body, int64_t t0, const wchar_t *ticker,
                           const wchar_t *exchange, int32_t feed, uint32_t version)
{
    RecHead *h = (RecHead *)buf;
    memset(h, 0, sizeof *h);
    h->kind = (uint8_t)kind;
    h->feed = feed;
    h->version = (uint16_t)version;
    h->received_ns = t0;
    uint16_t *start = (uint16_t *)(buf + sizeof *h + body), *p = start;
    p += h->ticker_len = put_str(p, ticker, RING_TICKER_MAX, &h->flags, RF_TICKER_NULL);
    p += h->exch_len = put_str(p, exchange, RING_EXCH_MAX, &h->flags, RF_EXCH_NULL);
    if (kind != RK_STATE && !(h->flags & RF_LOSSY))
        h->name_id = name_id(start, h->ticker_len, h->exch_len, h->flags & (RF_TICKER_NULL | RF_EXCH_NULL));
    return p;
}

static void rec_push(unsigned char *buf, const void *end)
{
    if (((RecHead *)buf)->flags & RF_LOSSY) ring_count(C_LOSSY, 1);
    ring_push(buf, (size_t)((const unsigned char *)end - buf));
}

#define TEE(kind, type, args)                                                                                      \
    do {                                                                                                           \
        AnyFn tee_ = g_tee[kind];                                                                                  \
        if (tee_) ((type)tee_) args;                                                                               \
    } while (0)

typedef void(RING_CALL *StateFn)(int32_t, int32_t);
RING_EXPORT void RING_CALL ring_on_state(int32_t conn_type, int32_t result)
{
    if (!ring_enter()) return;
    int64_t t0 = ring_now_ns();
    _Alignas(8) unsigned char buf[RING_BUF_BYTES];
    BodyState *b = (BodyState *)(buf + sizeof(RecHead));
    b->conn_type = conn_type;
    b->result = result;
    if (conn_type == CONN_ROUTING) ring_routing_state(result);
    rec_push(buf, rec_begin(buf, RK_STATE, sizeof *b, t0, NULL, NULL, 0, 0));
    ring_leave(RK_STATE, t0);
    TEE(RK_STATE, StateFn, (conn_type, result));
}

typedef void(RING_CALL *TradeV1Fn)(AssetV1, const wchar_t *, uint32_t, double, double, int32_t, int32_t, int32_t,
                                   int32_t, int32_t);
RING_EXPORT void RING_CALL ring_on_trade_v1(AssetV1 asset, const wchar_t *date, uint32_t number, double price,
                                            double volume, int32_t qty, int32_t buyer, int32_t seller,
                                            int32_t trade_type, int32_t edit)
{
    if (!ring_enter()) return;
    int64_t t0 = ring_now_ns();
    _Alignas(8) unsigned char buf[RING_BUF_BYTES];
    BodyTradeV1 *b = (BodyTradeV1 *)(buf + sizeof(RecHead));
    *b = (BodyTradeV1){number, qty, price, volume, buyer, seller, trade_type, edit};
    uint16_t *p = rec_begin(buf, RK_TRADE_V1, sizeof *b, t0, asset.ticker, asset.exchange, asset.feed, 0);
    RecHead *h = (RecHead *)buf;
    p += h->date_len = put_str(p, date, RING_DATE_MAX, &h->flags, RF_DATE_NULL);
    rec_push(buf, p);
    ring_leave(RK_TRADE_V1, t0);
    TEE(RK_TRADE_V1, TradeV1Fn, (asset, date, number, price, volume, qty, buyer, seller, trade_type, edit));
}

typedef void(RING_CALL *TradeV2Fn)(AssetV2, void *, uint32_t);
RING_EXPORT void RING_CALL ring_on_trade_v2(AssetV2 asset, void *handle, uint32_t flags)
{
    if (!ring_enter()) return;
    int64_t t0 = ring_now_ns();
    ConnectorTrade tr;
    memset(&tr, 0, sizeof tr); /* Version 0: the only one TranslateTrade accepts */
    if (!g_translate || g_translate(handle, &tr) != 0) {
        ring_count(C_TRANSLATE_ERRORS, 1); /* callbacks.py counts it and delivers nothing */
    } else {
        _Alignas(8) unsigned char buf[RING_BUF_BYTES];
        BodyTradeV2 *b = (BodyTradeV2 *)(buf + sizeof(RecHead));
        memset(b, 0, sizeof *b);
        b->number = tr.number;
        b->flags = flags;
        b->price = tr.price;
        b->qty = tr.qty;
        b->volume = tr.volume;
        b->buyer = tr.buyer;
        b->seller = tr.seller;
        memcpy(b->date, tr.date, sizeof b->date);
        const uint16_t *d = tr.date;
        b->hour_key = (uint64_t)d[0] << 48 | (uint64_t)d[1] << 32 | (uint64_t)d[3] << 16 | d[4];
        b->ms_of_hour = ((int64_t)d[5] * 60 + d[6]) * 1000 + d[7];
        b->trade_type = tr.trade_type;
        rec_push(buf, rec_begin(buf, RK_TRADE_V2, sizeof *b, t0, asset.ticker, asset.exchange, asset.feed_type,
                                asset.version));
    }
    ring_leave(RK_TRADE_V2, t0);
    TEE(RK_TRADE_V2, TradeV2Fn, (asset, handle, flags));
}

typedef void(RING_CALL *TinyFn)(AssetV1, double, int32_t, int32_t);
RING_EXPORT void RING_CALL ring_on_tiny_book(AssetV1 asset, double price, int32_t qty, int32_t side)
{
    if (!ring_enter()) return;
    int64_t t0 = ring_now_ns();
    _Alignas(8) unsigned char buf[RING_BUF_BYTES];
    BodyTiny *b = (BodyTiny *)(buf + sizeof(RecHead));
    *b = (BodyTiny){price, qty, side};
    rec_push(buf, rec_begin(buf, RK_TINY, sizeof *b, t0, asset.ticker, asset.exchange, asset.feed, 0));
    ring_leave(RK_TINY, t0);
    TEE(RK_TINY, TinyFn, (asset, price, qty, side));
}

typedef void(RING_CALL *InvalidFn)(AssetV2);
RING_EXPORT void RING_CALL ring_on_invalid_ticker(AssetV2 asset)
{
    if (!ring_enter()) return;
    int64_t t0 = ring_now_ns();
    _Alignas(8) unsigned char buf[RING_BUF_BYTES];
    rec_push(buf, rec_begin(buf, RK_INVALID, 0, t0, asset.ticker, asset.exchange, asset.feed_type, asset.version));
    ring_leave(RK_INVALID, t0);
    TEE(RK_INVALID, InvalidFn, (asset));
}

/* ---- empty callbacks: the bench's yardstick -------------------------------------------------------------
 * They do nothing at all, so the dwell the stand-in times around them is this machine's floor for any callback
 * (the call, the stand-in's clock, the scheduler and the hypervisor); never registered by the feed. */
RING_EXPORT void RING_CALL ring_null_trade_v1(AssetV1 asset, const wchar_t *date, uint32_t number, double price,
                                              double volume, int32_t qty, int32_t buyer, int32_t seller,
                                              int32_t trade_type, int32_t edit)
{
    (void)asset, (void)date, (void)number, (void)price, (void)volume, (void)qty, (void)buyer, (void)seller;
    (void)trade_type, (void)edit;
}

RING_EXPORT void RING_CALL ring_null_trade_v2(AssetV2 asset, void *handle, uint32_t flags)
{
    (void)asset, (void)handle, (void)flags;
}

/* ---- price depth ------------------------------------------------------------------------------------------ */
static DepthState *depth_state(const uint16_t *key, uint8_t len, uint8_t is_null)
{
    for (int i = 0; i < DEPTH_TICKERS; i++) {
        DepthState *st = &g_depth[i];
        if (!st->used) {
            st->used = 1;
            st->len = len;
            st->is_null = is_null;
            st->after_flush = -1;
            memcpy(st->key, key, len * sizeof *key);
            return st;
        }
        if (st->len == len && st->is_null == is_null && memcmp(st->key, key, len * sizeof *key) == 0) return st;
    }
    /* more depth tickers than anyone subscribes: this one is read as if never bracketed */
    ring_count(C_DEPTH_TABLE_FULL, 1);
    return NULL;
}

/* The sides (bit 0 bid, bit 1 ask) this notification makes us read now; 0 = nothing to read. */
static int depth_sides(const wchar_t *ticker, int side, int update)
{
    /* a side byte reads: 0 bid, 1 ask, None (255) neither, Both (254) or anything unknown both */
    int of_side = side == 0 ? 1 : side == 1 ? 2 : side == SIDE_NONE ? 0 : 3;
    uint16_t key[RING_TICKER_MAX];
    uint8_t flags = 0, len = put_str(key, ticker, RING_TICKER_MAX, &flags, 0x80);
    int sides = 0;
    ring_spin_lock(&g_depth_lock);
    DepthState *st = depth_state(key, len, (uint8_t)(flags >> 7));
    int flushed = st ? st->after_flush : -1;
    if (st) st->after_flush = -1;
    if (update == UPDATE_ADD && flushed == side && g_add_ends_bracket) {
        ring_count(C_POST_FLUSH_ADDS, 1); /* the bracket's tail: its smallest index again, not a change */
    } else if (update == UPDATE_PREPARE) {
        if (st) st->bracketed = 1, st->sides = 0;
    } else if (update == UPDATE_FLUSH) {
        sides = (st && st->bracketed ? st->sides : 0) | of_side;
        if (st) st->bracketed = 0, st->sides = 0, st->after_flush = (int16_t)side;
    } else if (st && st->bracketed) {
        st->sides |= (uint8_t)of_side;
    } else {
        sides = of_side;
    }
    ring_spin_unlock(&g_depth_lock);
    return sides;
}

/* up to g_levels resting levels of one side, best first; -1 when the side count failed (nothing published) */
static int read_side(AssetV2 *asset, int side, RecLevel *out)
{
    int32_t n = g_side_count ? g_side_count(asset, (uint8_t)side) : -1;
    if (n < 0) {
        ring_count(C_DEPTH_ERRORS, 1);
        return -1;
    }
    int got = 0, lim = n < g_levels + 1 ? n : g_levels + 1;
    for (int position = 0; position < lim; position++) {
        PriceGroup g;
        memset(&g, 0, sizeof g);
        if (g_price_group(asset, (uint8_t)side, position, &g) != 0) {
            ring_count(C_DEPTH_ERRORS, 1);
            break;
        }
        if (g.flags & PG_IS_THEORIC) continue; /* the auction's theoretical level (price -INF) does not rest */
        out[got++] = (RecLevel){g.price, g.qty, g.count, g.flags};
        if (got == g_levels) break;
    }
    return got;
}

typedef void(RING_CALL *DepthFn)(AssetV2, uint32_t, int32_t, uint32_t); /* the same slots as uint8_t */
/* side and update are declared 32 bits wide and masked: the DLL leaves garbage above the byte (spec §11), and
 * clang-built code would trust a uint8_t argument to arrive already extended */
RING_EXPORT void RING_CALL ring_on_price_depth(AssetV2 asset, uint32_t side_arg, int32_t position, uint32_t update_arg)
{
    if (!ring_enter()) return;
    int64_t t0 = ring_now_ns();
    int side = (int)(side_arg & 0xFF), update = (int)(update_arg & 0xFF);
    int sides = depth_sides(asset.ticker, side, update);
    for (int s = 0; s < 2; s++) {
        if (!(sides & (1 << s))) continue;
        _Alignas(8) unsigned char buf[RING_BUF_BYTES];
        BodyDepth *b = (BodyDepth *)(buf + sizeof(RecHead));
        *b = (BodyDepth){(uint8_t)s, (uint8_t)side, (uint8_t)update, 0, position};
        uint16_t *p = rec_begin(buf, RK_DEPTH, sizeof *b, t0, asset.ticker, asset.exchange, asset.feed_type,
                                asset.version);
        size_t at = ((size_t)((unsigned char *)p - buf) + 7) & ~(size_t)7;
        RecLevel *levels = (RecLevel *)(buf + at);
        int n = read_side(&asset, s, levels);
        if (n < 0) continue;
        ((RecHead *)buf)->nlevels = (uint16_t)n;
        ring_count(C_DEPTH_BOOKS, 1);
        rec_push(buf, levels + n);
    }
    ring_leave(RK_DEPTH, t0);
    TEE(RK_DEPTH, DepthFn, (asset, side_arg, position, update_arg));
}
