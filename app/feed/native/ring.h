/*
 * ring.h - the records the native callbacks push and the consumer drains, and what ring.c (the queue) shares with
 * ring_callbacks.c (the DLL callbacks) and ring_test.c (test-only producers).
 *
 * A record is a RecHead, a kind-specific body (a multiple of 8 bytes), then the strings as UTF-16 code units
 * (ticker, exchange, date: lengths in the head), padded to 8 bytes, then, for depth, nlevels RecLevel. It occupies
 * nslots consecutive 64-byte slots. app/feed/native/ring_records.py mirrors every offset; ring_layout() below lets
 * the Python side check them against this compiler's, so a stale build is refused instead of misread.
 */
#ifndef RING_H
#define RING_H

#include "ring_port.h" /* first: it sets the feature macros */

#include <stdint.h>
#include <wchar.h>

#define RING_SLOT 64
#define RING_MAX_SLOTS 255 /* nslots is one byte: 16 KB, far above the largest record (50 depth levels) */
#define RING_TICKER_MAX 64 /* code units; B3 tickers have at most 12: longer ones are cut and counted */
#define RING_EXCH_MAX 16
#define RING_DATE_MAX 64
#define RING_LEVELS_MAX 50 /* feed.depth_levels allows 1..50 */

enum { RK_STATE = 1, RK_TRADE_V1 = 2, RK_TRADE_V2 = 3, RK_TINY = 4, RK_DEPTH = 5, RK_INVALID = 6, RK_KINDS = 7 };

/* head flags: a NULL string pointer is not an empty string (ctypes reads NULL as None) */
#define RF_LOSSY 1 /* a string was cut to its field or held a code point UTF-16 cannot carry */
#define RF_TICKER_NULL 2
#define RF_EXCH_NULL 4
#define RF_DATE_NULL 8

typedef struct {
    uint8_t kind, nslots;
    uint8_t ticker_len, exch_len, date_len; /* UTF-16 code units */
    uint8_t flags;
    uint16_t nlevels;
    int32_t feed;        /* TAssetIDRec.nFeed, or TConnectorAssetIdentifier.FeedType */
    uint16_t version;    /* TConnectorAssetIdentifier.Version (0 for V1 assets) */
    /* the same number for the same ticker and exchange strings (1..), 0 when the table is full: lets the consumer
     * decode each name once instead of once per record */
    uint16_t name_id;
    int64_t received_ns; /* ring_now_ns() first thing in the callback */
} RecHead;

typedef struct { int32_t conn_type, result; } BodyState;
typedef struct { /* as the V1 callback received them: narrow values unmasked, like the ctypes path */
    uint32_t number;
    int32_t qty;
    double price, volume;
    int32_t buyer, seller, trade_type, edit;
} BodyTradeV1;
typedef struct { /* TConnectorTrade as TranslateTrade filled it, plus the callback's flags */
    uint32_t number, flags;
    double price;
    int64_t qty;
    double volume;
    int32_t buyer, seller;
    uint16_t date[8]; /* SYSTEMTIME: year, month, day of week, day, hour, minute, second, ms */
    /* the date again, split where app/feed/b3time.local_to_ns splits it: (year, month, day, hour) packed 16 bits
     * each, and ms into that hour; the consumer converts each hour once */
    uint64_t hour_key;
    int64_t ms_of_hour;
    uint8_t trade_type, pad[7];
} BodyTradeV2;
typedef struct { double price; int32_t qty, side; } BodyTiny;
typedef struct { /* one side read inside a depth notification */
    uint8_t side, notified_side, update, pad;
    int32_t position;
} BodyDepth;
typedef struct { double price; int64_t qty; uint32_t count, flags; } RecLevel;

/* the largest record: head, the largest body, every string at its cap, the most levels */
#define RING_REC_MAX (sizeof(RecHead) + sizeof(BodyTradeV2) + 2 * (RING_TICKER_MAX + RING_EXCH_MAX + RING_DATE_MAX) + \
                      8 + RING_LEVELS_MAX * sizeof(RecLevel))

/* the callbacks whose dwell is measured, in the order of their record kinds (index 0: test producers) */
#define RING_CALLBACKS RK_KINDS

/* ---- ring.c, for the producers --------------------------------------------------------------------------- */
int ring_enter(void);                /* 0 = closed: return at once, touching nothing */
void ring_leave(int kind, int64_t t0); /* records the dwell since t0, then leaves */
void ring_push(void *rec, size_t nbytes);
void ring_count(int counter, int64_t n);
enum { CONN_ROUTING = 1, ROUTING_BROKER_CONNECTED = 5 }; /* the state callback's (conn_type, result), spec §5 */
void ring_routing_state(int32_t result); /* the routing epoch: reconnects to the broker, counted at the callback */
enum { C_TRANSLATE_ERRORS, C_DEPTH_ERRORS, C_DEPTH_BOOKS, C_POST_FLUSH_ADDS, C_DEPTH_TABLE_FULL, C_LOSSY, C_COUNTERS };

/* ---- ring_callbacks.c, for ring.c --------------------------------------------------------------------------- */
typedef int32_t(RING_CALL *TranslateTradeFn)(void *handle, void *trade);
typedef int32_t(RING_CALL *SideCountFn)(void *asset, uint8_t side);
typedef int32_t(RING_CALL *PriceGroupFn)(void *asset, uint8_t side, int32_t position, void *group);
void callbacks_configure(int depth_levels, int flush_add_ends_bracket, TranslateTradeFn translate,
                         SideCountFn side_count, PriceGroupFn price_group);
void callbacks_reset(void);

#endif
