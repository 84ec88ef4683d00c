/*
 * profitsim.h - what profitsim.c (market data, connector thread, lifecycle) shares with profitsim_routing.c
 * (order routing). The ABI types both files hand to the client live here once; the psim_ and routing_ functions
 * are internal (hidden): the library still exports only the real DLL's names and the SIM_ controls.
 */
#ifndef PROFITSIM_H
#define PROFITSIM_H

#include <stdint.h>
#include <wchar.h>

#define EXPORT __attribute__((visibility("default")))
#define INTERNAL __attribute__((visibility("hidden")))

/* result codes (spec §6.6) */
#define NL_OK 0
#define NL_INTERNAL_ERROR ((int32_t)0x80000001u)
#define NL_NOT_INITIALIZED ((int32_t)0x80000002u)
#define NL_INVALID_ARGS ((int32_t)0x80000003u)
#define NL_WAITING_SERVER ((int32_t)0x80000004u)
#define NL_NO_LOGIN ((int32_t)0x80000005u)
#define NL_OUT_OF_RANGE ((int32_t)0x80000009u)
#define NL_NO_POSITION ((int32_t)0x8000000Bu)
#define NL_NOT_FOUND ((int32_t)0x8000000Cu)
#define NL_VERSION_NOT_SUPPORTED ((int32_t)0x8000000Du)
#define NL_EXCHANGE_UNKNOWN ((int32_t)0x8000000Fu)
#define NL_NO_PASSWORD ((int32_t)0x8000001Cu)
#define NL_INVALID_TICKER ((int32_t)0x8000001Fu)

typedef struct {
    const wchar_t *ticker;
    const wchar_t *bolsa;
    int32_t feed;
} TAssetIDRec; /* packed (20) in Delphi; unpacked like the official examples, same field offsets */

typedef struct {
    uint8_t Version;
    const wchar_t *Ticker;
    const wchar_t *Exchange;
    uint8_t FeedType;
} TConnectorAssetIdentifier;

typedef struct {
    uint16_t wYear, wMonth, wDayOfWeek, wDay, wHour, wMinute, wSecond, wMilliseconds;
} SYSTEMTIME;

/* ---- provided by profitsim.c ---------------------------------------------------------------------------- */
/* request-function entry/exit: NL_OK means the caller holds the API lock and must call psim_request_end */
INTERNAL int32_t psim_request_begin(void);
INTERNAL void psim_request_end(void);
INTERNAL int psim_on_connector(void);        /* the calling thread is the connector thread */
INTERNAL int psim_cb_begin(void);            /* before a routing callback: counts it, refuses after finalize */
INTERNAL void psim_cb_end(void);
INTERNAL int32_t psim_misuse(void);          /* an accessor called outside its callback: counted, refused */
INTERNAL void psim_emit_state(int32_t type, int32_t result);
INTERNAL void psim_wake(void);
INTERNAL int64_t psim_sim_now(void);         /* the sim clock (exchange time, ns since epoch UTC) */
INTERNAL uint64_t psim_seed(void);
INTERNAL int psim_market_up(void);           /* market data connected (2,4) and not dropped */
INTERNAL void psim_systemtime(int64_t utc_ns, SYSTEMTIME *out); /* B3 local time */
/* The running market of a ticker (connector thread only): 0 and the touch when subscribed and trading.
 * levels: up to `cap` (price, qty) per side, best first; *nb / *na the counts; *tick the price increment. */
INTERNAL int psim_book(const wchar_t *ticker, const wchar_t *exch, int cap, double *bid_px, int64_t *bid_qty,
                       int *nb, double *ask_px, int64_t *ask_qty, int *na, double *tick);
INTERNAL int psim_ticker_valid(const wchar_t *ticker, const wchar_t *exch);

/* ---- provided by profitsim_routing.c --------------------------------------------------------------------- */
INTERNAL void routing_init(void *orderChange, void *account);  /* DLLInitializeLogin: routing wanted */
INTERNAL void routing_login(void);                             /* connector: after the market login */
INTERNAL void routing_on_trade(const wchar_t *ticker, double price, int64_t qty); /* connector: every trade */
INTERNAL void routing_service(void);                           /* connector: requests, timers, delivery */
INTERNAL int64_t routing_deadline(void);                       /* monotonic ns of the next timer, or -1 */
INTERNAL void routing_finalize(void);
INTERNAL int32_t routing_set_param(const char *name, double value);
INTERNAL int64_t routing_get_stat(const char *name);

#endif
