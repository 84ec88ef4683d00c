/*
 * profitsim.c - native stand-in for Nelogica ProfitDLL (market-data subset) with the same C ABI, for Linux.
 *
 * Loaded with ctypes.CDLL by the very binding that loads the real DLL, so every rule of the real library that a
 * binding can break is reproduced, and reproduced hostilely (spec docs/profitdll-api.md §7, §9):
 *   - one connector thread delivers every callback serially; request functions called from it are refused;
 *   - strings, structs and trade handles handed to a callback are overwritten right after it returns;
 *   - accessors work only inside the callback they belong to;
 *   - DLLFinalize joins the thread, fires MARKET_DISCONNECTED from inside itself (on the caller's thread), and
 *     the library cannot be initialized again in the process (a second initialize aborts, like the real DLL);
 *   - the real DLL's quirks (spec §11): post-flush depth Adds, "both sides", theoretical-price and delete-from
 *     depth updates, market states 2/3/5/6 and login 200, subscriptions lost on a reconnect when told to,
 *     garbage in the upper bits of narrow integer arguments, a server clock in another time zone;
 *   - built with -DPROFITSIM_PRE_4_0_0_41 it lacks the exports 4.0.0.41 added (GetHealthStatus,
 *     SetHealthCallback), so it stands for a build older than the fixes of 4.0.0.34/.38/.41.
 * The SIM_* exports are not part of the real ABI: they set the synthetic market and faults and read counters.
 *
 * wchar_t is UTF-32 here (UTF-16 on Windows), so ctypes c_wchar_p works unchanged on both sides.
 * Deliberately free of libm (own log) because setup.py links no -lm and ctypes loads with RTLD_LOCAL.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wchar.h>

#include "profitsim.h" /* EXPORT, result codes, the asset and time structs shared with routing */

/* ------------------------------------------------------------------------------------------------------------
 * ABI: structs and callback types of market data (spec §4, §5)
 * ------------------------------------------------------------------------------------------------------------ */
typedef struct {
    uint8_t Version;
    SYSTEMTIME TradeDate;
    uint32_t TradeNumber;
    double Price;
    int64_t Quantity;
    double Volume;
    int32_t BuyAgent;
    int32_t SellAgent;
    uint8_t TradeType;
} TConnectorTrade;

typedef struct {
    uint8_t Version;
    double Price;
    uint32_t Count;
    int64_t Quantity;
    uint32_t PriceGroupFlags;
} TConnectorPriceGroup;

_Static_assert(sizeof(wchar_t) == 4, "Linux wchar_t (UTF-32) expected: ctypes c_wchar_p must match");
_Static_assert(sizeof(TAssetIDRec) == 24, "TAssetIDRec size");
_Static_assert(offsetof(TAssetIDRec, ticker) == 0, "TAssetIDRec.ticker");
_Static_assert(offsetof(TAssetIDRec, bolsa) == 8, "TAssetIDRec.bolsa");
_Static_assert(offsetof(TAssetIDRec, feed) == 16, "TAssetIDRec.feed");
_Static_assert(sizeof(TConnectorAssetIdentifier) == 32, "TConnectorAssetIdentifier size");
_Static_assert(offsetof(TConnectorAssetIdentifier, Version) == 0, "AssetIdentifier.Version");
_Static_assert(offsetof(TConnectorAssetIdentifier, Ticker) == 8, "AssetIdentifier.Ticker");
_Static_assert(offsetof(TConnectorAssetIdentifier, Exchange) == 16, "AssetIdentifier.Exchange");
_Static_assert(offsetof(TConnectorAssetIdentifier, FeedType) == 24, "AssetIdentifier.FeedType");
_Static_assert(sizeof(SYSTEMTIME) == 16, "SYSTEMTIME size");
_Static_assert(offsetof(SYSTEMTIME, wYear) == 0 && offsetof(SYSTEMTIME, wMonth) == 2 &&
                   offsetof(SYSTEMTIME, wDayOfWeek) == 4 && offsetof(SYSTEMTIME, wDay) == 6 &&
                   offsetof(SYSTEMTIME, wHour) == 8 && offsetof(SYSTEMTIME, wMinute) == 10 &&
                   offsetof(SYSTEMTIME, wSecond) == 12 && offsetof(SYSTEMTIME, wMilliseconds) == 14,
               "SYSTEMTIME fields");
_Static_assert(sizeof(TConnectorTrade) == 64, "TConnectorTrade size");
_Static_assert(offsetof(TConnectorTrade, Version) == 0, "Trade.Version");
_Static_assert(offsetof(TConnectorTrade, TradeDate) == 2, "Trade.TradeDate");
_Static_assert(offsetof(TConnectorTrade, TradeNumber) == 20, "Trade.TradeNumber");
_Static_assert(offsetof(TConnectorTrade, Price) == 24, "Trade.Price");
_Static_assert(offsetof(TConnectorTrade, Quantity) == 32, "Trade.Quantity");
_Static_assert(offsetof(TConnectorTrade, Volume) == 40, "Trade.Volume");
_Static_assert(offsetof(TConnectorTrade, BuyAgent) == 48, "Trade.BuyAgent");
_Static_assert(offsetof(TConnectorTrade, SellAgent) == 52, "Trade.SellAgent");
_Static_assert(offsetof(TConnectorTrade, TradeType) == 56, "Trade.TradeType");
_Static_assert(sizeof(TConnectorPriceGroup) == 40, "TConnectorPriceGroup size");
_Static_assert(offsetof(TConnectorPriceGroup, Version) == 0, "PriceGroup.Version");
_Static_assert(offsetof(TConnectorPriceGroup, Price) == 8, "PriceGroup.Price");
_Static_assert(offsetof(TConnectorPriceGroup, Count) == 16, "PriceGroup.Count");
_Static_assert(offsetof(TConnectorPriceGroup, Quantity) == 24, "PriceGroup.Quantity");
_Static_assert(offsetof(TConnectorPriceGroup, PriceGroupFlags) == 32, "PriceGroup.PriceGroupFlags");

typedef void (*TStateCallback)(int32_t connStateType, int32_t result);
typedef void (*TNewTradeCallback)(TAssetIDRec asset, const wchar_t *date, uint32_t tradeNumber, double price,
                                  double volume, int32_t qty, int32_t buyAgent, int32_t sellAgent,
                                  int32_t tradeType, int32_t bEdit);
typedef void (*TConnectorTradeCallback)(TConnectorAssetIdentifier asset, void *tradeHandle, uint32_t flags);
typedef void (*TTinyBookCallback)(TAssetIDRec asset, double price, int32_t qty, int32_t side);
typedef void (*TConnectorPriceDepthCallback)(TConnectorAssetIdentifier asset, uint8_t side, int32_t position,
                                             uint8_t updateType);
typedef void (*TInvalidTickerCallback)(TConnectorAssetIdentifier asset);
typedef void (*TSystemHealthCallback)(int32_t state);

/* The same callbacks seen with every narrow integer widened to a full 64-bit slot: calling through these puts
 * chosen garbage in the upper bits, as the real DLL does on Win64 (spec §11). Same registers and stack slots on
 * x86-64 SysV as the narrow prototypes, so the callee sees exactly what a sloppy caller would leave there. */
#define WIDE(type, fn) ((type)(void (*)(void))(fn)) /* the cast through void(*)(void) says "on purpose" */
typedef void (*WideStateCallback)(uint64_t connStateType, uint64_t result);
typedef void (*WideNewTradeCallback)(TAssetIDRec asset, const wchar_t *date, uint64_t tradeNumber, double price,
                                     double volume, uint64_t qty, uint64_t buyAgent, uint64_t sellAgent,
                                     uint64_t tradeType, uint64_t bEdit);
typedef void (*WideConnectorTradeCallback)(TConnectorAssetIdentifier asset, void *tradeHandle, uint64_t flags);
typedef void (*WideTinyBookCallback)(TAssetIDRec asset, double price, uint64_t qty, uint64_t side);
typedef void (*WidePriceDepthCallback)(TConnectorAssetIdentifier asset, uint64_t side, uint64_t position,
                                       uint64_t updateType);

enum { UPD_ADD = 0, UPD_EDIT = 1, UPD_DELETE = 2, UPD_INSERT = 3, UPD_FULLBOOK = 4, UPD_PREPARE = 5, UPD_FLUSH = 6,
       UPD_THEORIC = 7, UPD_DELETE_FROM = 8 };
#define SIDE_BOTH 254
#define PG_IS_THEORIC 1u
enum { TT_CROSS = 1, TT_BUY = 2, TT_SELL = 3 };
enum { SIDE_BID = 0, SIDE_ASK = 1 };

/* ------------------------------------------------------------------------------------------------------------
 * Parameters and counters (SIM_ API)
 * ------------------------------------------------------------------------------------------------------------ */
enum {
    P_SEED, P_RATE, P_PACE, P_BURSTS, P_BURST_RATE, P_BURST_EVERY, P_BURST_LEN, P_MAX_TRADES, P_REINIT_ABORT,
    P_CONNECT_MS, P_DROP_AFTER, P_DROP_MS, P_START_TIME, P_DEPTH, P_POISON, P_SCENARIO, P_REGIME_LO, P_REGIME_HI,
    P_EDGE_LO, P_EDGE_HI, P_VOL_LO, P_VOL_HI, P_DRIFT_TRADES, P_GAP_LO, P_GAP_HI, P_DEPTH_QUIRKS, P_THEORIC_EVERY,
    P_DROP_SUBS, P_LOGIN_RESULT, P_GARBAGE, P_CLOCK_OFFSET_S, P_PERF_WARN_AFTER, P_FINALIZE_HANG_MS, P_FLOOD_UNTIL,
    P_COUNT
};

typedef struct {
    const char *name;
    double lo, hi;
    int integral;
} ParamDef;

#define P_BIG 9007199254740992.0 /* 2^53: integers stay exact in a double */
static const ParamDef k_params[P_COUNT] = {
    [P_SEED] = {"seed", 0, P_BIG, 1},
    [P_RATE] = {"rate", 1e-6, 1e7, 0},
    [P_PACE] = {"pace", 0, 1e6, 0}, /* 0 = flat out; otherwise sim seconds per real second */
    [P_BURSTS] = {"bursts", 0, 1, 1},
    [P_BURST_RATE] = {"burst_rate", 1e-6, 1e7, 0},
    [P_BURST_EVERY] = {"burst_every", 1e-3, 1e9, 0},
    [P_BURST_LEN] = {"burst_len", 1e-6, 1e9, 0},
    [P_MAX_TRADES] = {"max_trades", 0, P_BIG, 1},
    [P_REINIT_ABORT] = {"reinit_abort", 0, 1, 1},
    [P_CONNECT_MS] = {"connect_ms", 0, 600000, 0},
    [P_DROP_AFTER] = {"drop_after", 0, P_BIG, 1},
    [P_DROP_MS] = {"drop_ms", -P_BIG, 1e9, 0},
    [P_START_TIME] = {"start_time", 0, 4102444800.0, 0}, /* up to 2100-01-01 */
    [P_DEPTH] = {"depth", 0, 1, 1},
    [P_POISON] = {"poison", 0, 1, 1},
    /* 0 = the default market; 1 null, 2 planted, 3 mixed = the planted-signal model (see "Scenario markets") */
    [P_SCENARIO] = {"scenario", 0, 3, 1},
    [P_REGIME_LO] = {"regime_lo", 1, 1e9, 1}, /* trades per signal regime, uniform in [regime_lo, regime_hi] */
    [P_REGIME_HI] = {"regime_hi", 1, 1e9, 1},
    [P_EDGE_LO] = {"edge_lo", 0, 100, 0}, /* planted jump in round-trip costs, per regime */
    [P_EDGE_HI] = {"edge_hi", 0, 100, 0},
    [P_VOL_LO] = {"vol_lo", 0, 1, 0}, /* background quote moves per trade, per regime */
    [P_VOL_HI] = {"vol_hi", 0, 1, 0},
    [P_DRIFT_TRADES] = {"drift_trades", 0, 1000, 1}, /* the jump comes within this many trades of the pattern */
    [P_GAP_LO] = {"gap_lo", 0, 1e6, 1},              /* trades from one pattern to the next */
    [P_GAP_HI] = {"gap_hi", 0, 1e6, 1},
    /* post-flush Adds, one delete-from for a cut tail, one "both sides" full book (the real DLL's shapes) */
    [P_DEPTH_QUIRKS] = {"depth_quirks", 0, 1, 1},
    [P_THEORIC_EVERY] = {"theoric_every", 0, 1e9, 1}, /* every N market events a theoretical-price pulse; 0 = never */
    [P_DROP_SUBS] = {"drop_subs", 0, 1, 1},           /* a reconnect forgets every subscription */
    [P_LOGIN_RESULT] = {"login_result", 0, 200, 1},   /* nResult of the login state: 200 = LOGIN_UNKNOWN_ERR */
    [P_GARBAGE] = {"garbage", 0, 1, 1},               /* garbage in the upper bits of narrow callback arguments */
    [P_CLOCK_OFFSET_S] = {"clock_offset_s", -86400, 86400, 0}, /* GetServerClock's zone minus B3's, seconds */
    [P_PERF_WARN_AFTER] = {"perf_warn_after", 0, P_BIG, 1}, /* (2,5) (2,6) (2,4) after N delivered trades */
    /* DLLFinalize stalls this long before stopping its thread, which keeps calling back meanwhile (a stuck DLL) */
    [P_FINALIZE_HANG_MS] = {"finalize_hang_ms", 0, 3600000, 0},
    /* with pace = 0: flat out until this many trades were delivered, then paced at 1 (0 = flat out for good); a
     * restarted feed child fast-forwards through what its predecessors delivered and no further. Delivered, not
     * generated: before the subscription the flood generates trades nobody receives */
    [P_FLOOD_UNTIL] = {"flood_until", 0, P_BIG, 1},
};

static pthread_mutex_t g_param_mu = PTHREAD_MUTEX_INITIALIZER;
static double g_param[P_COUNT] = {
    [P_SEED] = 7, [P_RATE] = 150, [P_PACE] = 1, [P_BURSTS] = 1, [P_BURST_RATE] = 3000, [P_BURST_EVERY] = 20,
    [P_BURST_LEN] = 0.4, [P_MAX_TRADES] = 0, [P_REINIT_ABORT] = 1, [P_CONNECT_MS] = 30, [P_DROP_AFTER] = 0,
    [P_DROP_MS] = 2000, [P_START_TIME] = -1 /* = today 13:00 UTC */, [P_DEPTH] = 1, [P_POISON] = 1,
    [P_SCENARIO] = 0, [P_REGIME_LO] = 8000, [P_REGIME_HI] = 12000, [P_EDGE_LO] = 0.5, [P_EDGE_HI] = 4.0,
    [P_VOL_LO] = 0.03, [P_VOL_HI] = 0.10, [P_DRIFT_TRADES] = 8, [P_GAP_LO] = 10, [P_GAP_HI] = 24,
    [P_DEPTH_QUIRKS] = 1, [P_THEORIC_EVERY] = 0, [P_DROP_SUBS] = 0, [P_LOGIN_RESULT] = 0, [P_GARBAGE] = 0,
    [P_CLOCK_OFFSET_S] = 0, [P_PERF_WARN_AFTER] = 0,
};
static _Atomic uint64_t g_param_gen = 1;

enum {
    S_VIOLATIONS, S_FOREIGN, S_MISUSE, S_CALLBACKS, S_GENERATED, S_DELIVERED, S_UNDELIVERED, S_AFTER_FIN,
    S_REGIME_SWITCHES, S_DEPTH_BOOKS, S_POST_FLUSH_ADDS, S_DELETE_FROM, S_THEORIC, S_BOTH_SIDES, S_RECONNECTS,
    S_FINALIZE_STATES, S_COUNT
};
static _Atomic int64_t g_stat[S_COUNT];

static inline void stat_add(int which, int64_t n) { atomic_fetch_add_explicit(&g_stat[which], n, memory_order_relaxed); }
static inline int64_t stat_get(int which) { return atomic_load_explicit(&g_stat[which], memory_order_relaxed); }

static void params_snapshot(double out[P_COUNT])
{
    pthread_mutex_lock(&g_param_mu);
    memcpy(out, g_param, sizeof g_param);
    pthread_mutex_unlock(&g_param_mu);
}

/* ------------------------------------------------------------------------------------------------------------
 * Small utilities: time, PRNG, log without libm, civil dates
 * ------------------------------------------------------------------------------------------------------------ */
#define NS_PER_S 1000000000LL
#define NS_PER_MS 1000000LL
#define B3_UTC_OFFSET_NS (-3LL * 3600 * NS_PER_S) /* Brazil has had no DST since 2019 */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

typedef struct {
    uint64_t s[4];
} Rng;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void rng_seed(Rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(Rng *r) /* xoshiro256** */
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static inline double rng_u01(Rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }             /* [0,1) */
static inline double rng_u01_open(Rng *r) { return (double)((rng_next(r) >> 11) + 1) * 0x1.0p-53; } /* (0,1] */
static inline int64_t rng_int(Rng *r, int64_t lo, int64_t hi) /* inclusive */
{
    return lo + (int64_t)(rng_u01(r) * (double)(hi - lo + 1));
}

/* ln(x) for finite x > 0 (normal range), ~1e-16 relative: enough for exponential sampling. */
static double sim_log(double x)
{
    union {
        double d;
        uint64_t u;
    } v = {x};
    int e = (int)((v.u >> 52) & 0x7ff) - 1023;
    v.u = (v.u & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
    double m = v.d;
    if (m > 1.4142135623730951) {
        m *= 0.5;
        e++;
    }
    double s = (m - 1.0) / (m + 1.0), s2 = s * s;
    double r = s2 * (1.0 / 3 + s2 * (1.0 / 5 + s2 * (1.0 / 7 + s2 * (1.0 / 9 + s2 * (1.0 / 11 + s2 * (1.0 / 13 +
                                                                                         s2 * (1.0 / 15)))))));
    return (double)e * 0.6931471805599453 + 2.0 * s * (1.0 + r);
}

static int64_t exp_ns(Rng *r, double per_second) /* exponential waiting time, mean 1/per_second seconds */
{
    double sec = -sim_log(rng_u01_open(r)) / per_second;
    if (sec > 1e9) sec = 1e9;
    return (int64_t)(sec * 1e9);
}

/* e^x without libm: x = k ln2 + r, |r| <= ln2/2, Taylor to r^12 (~2e-16 relative); clamped to [-700, 700]. */
static double sim_exp(double x)
{
    if (x > 700.0) x = 700.0;
    if (!(x > -700.0)) return 0.0; /* also NaN */
    double kf = x * 1.4426950408889634;
    int64_t k = (int64_t)(kf + (kf >= 0 ? 0.5 : -0.5));
    double r = (x - (double)k * 6.93147180369123816490e-01) - (double)k * 1.90821492927058770002e-10;
    double p = 1.0 / 479001600;
    static const double inv_fact[12] = {1.0 / 39916800, 1.0 / 3628800, 1.0 / 362880, 1.0 / 40320, 1.0 / 5040,
                                        1.0 / 720,      1.0 / 120,     1.0 / 24,     1.0 / 6,     0.5,
                                        1.0,            1.0};
    for (int i = 0; i < 12; i++) p = p * r + inv_fact[i];
    union {
        double d;
        uint64_t u;
    } s = {.u = (uint64_t)(k + 1023) << 52};
    return p * s.d;
}

/* sqrt(x) for x >= 0 without libm: a bit-trick first guess (< 6% off), then Newton (error squares each step). */
static double sim_sqrt(double x)
{
    if (!(x > 0)) return 0.0;
    union {
        double d;
        uint64_t u;
    } v = {x};
    v.u = (v.u >> 1) + (0x3ffull << 51);
    double y = v.d;
    for (int i = 0; i < 5; i++) y = 0.5 * (y + x / y);
    return y;
}

static uint64_t fnv1a_w(const wchar_t *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint64_t)(uint32_t)*s) * 1099511628211ull;
    return h;
}

static int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

typedef struct {
    int y, mo, d, dow, h, mi, s, ms;
} Civil;

static void civil_from_utc_ns(int64_t utc_ns, Civil *c) /* -> B3 local time */
{
    int64_t ms_total = floor_div(utc_ns + B3_UTC_OFFSET_NS, NS_PER_MS);
    int64_t days = floor_div(ms_total, 86400000LL), msd = ms_total - days * 86400000LL;
    c->h = (int)(msd / 3600000);
    c->mi = (int)(msd / 60000 % 60);
    c->s = (int)(msd / 1000 % 60);
    c->ms = (int)(msd % 1000);
    c->dow = (int)((days % 7 + 11) % 7); /* 1970-01-01 was a Thursday (4) */
    /* days -> y/m/d (H. Hinnant's civil_from_days) */
    int64_t z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    c->d = (int)(doy - (153 * mp + 2) / 5 + 1);
    c->mo = (int)(mp < 10 ? mp + 3 : mp - 9);
    c->y = (int)((int64_t)yoe + era * 400 + (c->mo <= 2));
}

static wchar_t *put_num(wchar_t *o, int v, int width)
{
    for (int i = width - 1; i >= 0; i--, v /= 10) o[i] = (wchar_t)(L'0' + v % 10);
    return o + width;
}

static void format_dll_date(wchar_t *o, const Civil *c) /* "DD/MM/YYYY HH:MM:SS.mmm" */
{
    o = put_num(o, c->d, 2);
    *o++ = L'/';
    o = put_num(o, c->mo, 2);
    *o++ = L'/';
    o = put_num(o, c->y, 4);
    *o++ = L' ';
    o = put_num(o, c->h, 2);
    *o++ = L':';
    o = put_num(o, c->mi, 2);
    *o++ = L':';
    o = put_num(o, c->s, 2);
    *o++ = L'.';
    o = put_num(o, c->ms, 3);
    *o = 0;
}

/* ------------------------------------------------------------------------------------------------------------
 * Library state
 * ------------------------------------------------------------------------------------------------------------ */
enum { PH_NEW, PH_RUNNING, PH_FINALIZED };

static pthread_mutex_t g_api_mu = PTHREAD_MUTEX_INITIALIZER; /* serialises request functions */
static pthread_mutex_t g_sub_mu = PTHREAD_MUTEX_INITIALIZER; /* instrument table, subscriptions, pending queue */
static pthread_mutex_t g_clock_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t g_wait_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_wait_cv;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_wake; /* under g_wait_mu */

static atomic_int g_phase, g_stop, g_market_up, g_alive, g_fin_done;
static _Atomic uint64_t g_sub_gen;
static _Atomic int64_t g_nsub;
static pthread_t g_owner, g_thread; /* under g_api_mu */
static void *g_unused_slots[8];     /* init slots we accept but never call; under g_api_mu */
static _Thread_local int t_is_connector;

static _Atomic(TStateCallback) g_cb_state;
static _Atomic(TNewTradeCallback) g_cb_trade_v1;
static _Atomic(TConnectorTradeCallback) g_cb_trade_v2;
static _Atomic(TTinyBookCallback) g_cb_tiny;
static _Atomic(TConnectorPriceDepthCallback) g_cb_depth;
static _Atomic(TInvalidTickerCallback) g_cb_invalid;

static void once_init(void)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC); /* pacing must not jump with the wall clock */
    pthread_cond_init(&g_wait_cv, &a);
    pthread_condattr_destroy(&a);
}

static void wake_connector(void)
{
    pthread_once(&g_once, once_init);
    pthread_mutex_lock(&g_wait_mu);
    g_wake = 1;
    pthread_cond_signal(&g_wait_cv);
    pthread_mutex_unlock(&g_wait_mu);
}

/* Sleeps until deadline (monotonic ns; < 0 = until woken), a wake-up, or stop. Returns 1 when stopping. */
static int wait_until(int64_t deadline)
{
    pthread_mutex_lock(&g_wait_mu);
    while (!atomic_load(&g_stop) && !g_wake) {
        int64_t now = mono_ns();
        if (deadline >= 0 && now >= deadline) break;
        int64_t until = (deadline < 0 || deadline - now > 200 * NS_PER_MS) ? now + 200 * NS_PER_MS : deadline;
        struct timespec ts = {(time_t)(until / NS_PER_S), (long)(until % NS_PER_S)};
        pthread_cond_timedwait(&g_wait_cv, &g_wait_mu, &ts);
    }
    g_wake = 0;
    pthread_mutex_unlock(&g_wait_mu);
    return atomic_load(&g_stop);
}

static int sleep_ms(double ms)
{
    int64_t deadline = mono_ns() + (int64_t)(ms * 1e6);
    while (!atomic_load(&g_stop) && mono_ns() < deadline) wait_until(deadline);
    return atomic_load(&g_stop);
}

/* Sim clock published for GetServerClock: anchor + (now - anchor_real) * speed, never behind the last event. */
static int64_t g_anc_sim, g_anc_real; /* under g_clock_mu */
static double g_anc_speed;
static _Atomic int64_t g_last_event_ns;

static void clock_publish(int64_t anc_sim, int64_t anc_real, double speed)
{
    pthread_mutex_lock(&g_clock_mu);
    g_anc_sim = anc_sim;
    g_anc_real = anc_real;
    g_anc_speed = speed;
    pthread_mutex_unlock(&g_clock_mu);
}

static int64_t clock_now(void)
{
    pthread_mutex_lock(&g_clock_mu);
    int64_t v = g_anc_sim + (int64_t)((double)(mono_ns() - g_anc_real) * g_anc_speed);
    pthread_mutex_unlock(&g_clock_mu);
    int64_t last = atomic_load_explicit(&g_last_event_ns, memory_order_relaxed);
    return v > last ? v : last;
}

/* ------------------------------------------------------------------------------------------------------------
 * Instruments and their order books
 * ------------------------------------------------------------------------------------------------------------ */
#define MAX_INSTR 128
#define NLEV_MAX 32
#define NLEV_TARGET 15
#define MAX_PENDING 64
#define TICKER_MAX 32

enum { ROOT_WDO, ROOT_WIN };
typedef struct {
    double tick, multiplier, start, jitter, level_qty, revert;
} RootSpec;
static const RootSpec k_roots[2] = {
    [ROOT_WDO] = {0.5, 10.0, 5400.0, 60.0, 120.0, 0.003},
    [ROOT_WIN] = {5.0, 0.20, 130000.0, 1500.0, 40.0, 0.0015},
};

typedef struct {
    int64_t px;     /* ticks */
    int64_t qty;    /* visible contracts */
    int64_t hidden; /* iceberg reserve that refills the same price */
    int32_t peak;   /* iceberg display size */
    int32_t avg;    /* mean order size, for a plausible offer count */
    int32_t count;  /* offers shown, when set (scenario markets); 0 = derived from qty and avg */
} Level;

typedef struct {
    Level lv[NLEV_MAX];
    int n;
} Side;

typedef struct {
    /* set once at creation under g_sub_mu, then read-only */
    wchar_t ticker[TICKER_MAX];
    wchar_t exch[8];
    int root; /* -1: not a ticker of this market; kept so it is reported once per subscription, like a real one */
    /* subscription state, under g_sub_mu */
    int sub_trade, sub_depth, need_tiny, need_depth;
    /* market state, connector thread only */
    int ready, active, depth_on;
    int theoric;      /* a theoretical-price level leads both sides (an auction pulse) */
    uint32_t events;  /* market events, for theoric_every */
    Rng rng;
    Side side[2];
    int64_t anchor_px;
    uint32_t trade_no;
    int64_t next_ns, regime_end_ns;
    int burst, imbalance;
    double trades_per_event; /* running mean: sweeps emit several trades, `rate` counts trades; scenario markets:
                                the next trade's pace multiplier (one trade per event) */
    /* scenario market (NULL = the default market): set once by the connector under g_regime_mu */
    struct Model *model;
} Instr;

static Instr g_instr[MAX_INSTR];
static int g_ninstr; /* under g_sub_mu; entries are never removed so indexes stay valid */

static int g_pending[MAX_PENDING]; /* invalid instruments to report; under g_sub_mu */
static int g_npending;

static const wchar_t k_month_any[] = L"FGHJKMNQUVXZ";
static const wchar_t k_month_win[] = L"GJMQVZ";

static int ticker_root(const wchar_t *t)
{
    if (wcscmp(t, L"WDOFUT") == 0) return ROOT_WDO;
    if (wcscmp(t, L"WINFUT") == 0) return ROOT_WIN;
    if (wcslen(t) != 6 || t[0] != L'W' || t[4] < L'0' || t[4] > L'9' || t[5] < L'0' || t[5] > L'9') return -1;
    if (t[1] == L'D' && t[2] == L'O' && wcschr(k_month_any, t[3])) return ROOT_WDO;
    if (t[1] == L'I' && t[2] == L'N' && wcschr(k_month_win, t[3])) return ROOT_WIN;
    return -1;
}

static void wcopy(wchar_t *dst, const wchar_t *src, size_t cap)
{
    size_t i = 0;
    for (; src[i] && i + 1 < cap; i++) dst[i] = src[i];
    dst[i] = 0;
}

static inline int32_t level_count(const Level *l)
{
    if (l->count > 0) return l->count;
    int64_t c = (l->qty + l->avg - 1) / l->avg;
    return (int32_t)(c < 1 ? 1 : c > 100000 ? 100000 : c);
}

static inline int better(int side, int64_t a, int64_t b) { return side == SIDE_BID ? a > b : a < b; }
static inline int64_t step_out(int side) { return side == SIDE_BID ? -1 : 1; } /* away from the touch */

static Level new_level(Instr *in, int64_t px, int64_t qty)
{
    Level l = {px, qty < 1 ? 1 : qty, 0, 0, (int32_t)rng_int(&in->rng, 1, 6), 0};
    if (rng_u01(&in->rng) < 0.03) { /* iceberg: a large reserve behind a small display */
        l.peak = (int32_t)l.qty;
        l.hidden = (int64_t)(k_roots[in->root].level_qty * (1.0 + 4.0 * rng_u01(&in->rng)));
    }
    return l;
}

static int64_t back_level_qty(Instr *in, int depth)
{
    double base = k_roots[in->root].level_qty;
    return (int64_t)(base * (0.3 + 1.4 * rng_u01(&in->rng)) * (1.0 + 0.05 * depth)) + 1;
}

static void side_push_back(Instr *in, int s)
{
    Side *sd = &in->side[s];
    if (sd->n >= NLEV_MAX) return;
    int64_t gap = rng_u01(&in->rng) < 0.1 ? 2 : 1;
    int64_t px = sd->lv[sd->n - 1].px + step_out(s) * gap;
    sd->lv[sd->n] = new_level(in, px, back_level_qty(in, sd->n));
    sd->n++;
}

static void side_insert_front(Instr *in, int s, int64_t px, int64_t qty)
{
    Side *sd = &in->side[s];
    if (sd->n == NLEV_MAX) sd->n--;
    memmove(&sd->lv[1], &sd->lv[0], (size_t)sd->n * sizeof(Level));
    sd->lv[0] = new_level(in, px, qty);
    sd->n++;
}

static void side_remove_front(Side *sd)
{
    sd->n--;
    memmove(&sd->lv[0], &sd->lv[1], (size_t)sd->n * sizeof(Level));
}

static void model_create(Instr *in, const double *p);

static void market_create(Instr *in, uint64_t seed, const double *p)
{
    const RootSpec *rs = &k_roots[in->root];
    rng_seed(&in->rng, seed ^ fnv1a_w(in->ticker)); /* per ticker: independent of subscription order */
    double start = rs->start + rs->jitter * (2.0 * rng_u01(&in->rng) - 1.0);
    int64_t bid = (int64_t)(start / rs->tick);
    in->anchor_px = bid;
    in->trade_no = 100000u + (uint32_t)(rng_next(&in->rng) % 900000u);
    for (int s = 0; s < 2; s++) {
        Side *sd = &in->side[s];
        sd->n = 1;
        sd->lv[0] = new_level(in, s == SIDE_BID ? bid : bid + 1, back_level_qty(in, 0));
        while (sd->n < NLEV_TARGET) side_push_back(in, s);
    }
    in->imbalance = 0;
    in->trades_per_event = 1.0;
    in->burst = 0;
    in->regime_end_ns = -1;
    if (p[P_SCENARIO] != 0) model_create(in, p); /* replaces the book above with the model's */
    in->ready = 1;
}

/* ------------------------------------------------------------------------------------------------------------
 * Synthetic order flow
 * ------------------------------------------------------------------------------------------------------------ */
static const int32_t k_agents[20] = {3, 72, 120, 8, 85, 45, 16, 13, 40, 27, 39, 308, 1982, 107, 147, 90, 88, 15, 127, 172};
/* cumulative ~Zipf weights (1000/(i+1)): a few brokers dominate the tape, as on B3 */
static const uint16_t k_agent_cum[20] = {1000, 1500, 1833, 2083, 2283, 2450, 2593, 2718, 2829, 2929,
                                         3020, 3103, 3180, 3251, 3318, 3381, 3440, 3496, 3549, 3599};

static int32_t pick_agent(Rng *r)
{
    uint32_t x = (uint32_t)(rng_u01(r) * k_agent_cum[19]);
    int i = 0;
    while (i < 19 && x >= k_agent_cum[i]) i++;
    return k_agents[i];
}

static int64_t pick_size(Rng *r) /* mostly 1-5 contracts, a fat tail up to 200 */
{
    double u = rng_u01(r);
    if (u < 0.80) {
        double v = rng_u01(r);
        return v < 0.40 ? 1 : v < 0.65 ? 2 : v < 0.80 ? 3 : v < 0.90 ? 4 : 5;
    }
    if (u < 0.965) return 6 + (int64_t)(15.0 * rng_u01(r) * rng_u01(r));
    double v = rng_u01(r);
    return 20 + (int64_t)(180.0 * v * v * v);
}

static const double k_imbalance_pbuy[3] = {0.50, 0.65, 0.35};

typedef struct {
    int64_t px, qty;
    int32_t buyer, seller, type;
} GenTrade;

/* One market event: a direct trade, or an aggression that walks the book emitting one trade per level touched.
 * Returns the number of trades; *dir is +1 buy / -1 sell / 0 direct. */
static int generate_event(Instr *in, GenTrade *out, int *dir)
{
    Rng *r = &in->rng;
    Side *bid = &in->side[SIDE_BID], *ask = &in->side[SIDE_ASK];
    if (rng_u01(r) < 0.02) { /* direct: both sides from one broker's clients, inside the spread */
        int64_t lo = bid->lv[0].px, hi = ask->lv[0].px;
        double v = rng_u01(r);
        out[0].px = rng_int(r, lo, hi);
        out[0].qty = 5 + (int64_t)(95.0 * v * v);
        out[0].buyer = pick_agent(r);
        out[0].seller = rng_u01(r) < 0.5 ? out[0].buyer : pick_agent(r);
        out[0].type = TT_CROSS;
        *dir = 0;
        return 1;
    }
    if (rng_u01(r) < 1.0 / 300.0) { /* Markov-switching imbalance episodes, mean ~300 aggressions */
        if (in->imbalance == 0) in->imbalance = rng_u01(r) < 0.5 ? 1 : 2;
        else in->imbalance = rng_u01(r) < 0.7 ? 0 : 3 - in->imbalance;
    }
    int buy = rng_u01(r) < k_imbalance_pbuy[in->imbalance];
    Side *book = buy ? ask : bid;
    int64_t remaining = pick_size(r);
    int32_t aggressor = pick_agent(r);
    int n = 0;
    while (remaining > 0 && book->n > 0 && n < NLEV_MAX) {
        Level *l = &book->lv[0];
        int64_t took = 0;
        for (;;) {
            int64_t t = remaining < l->qty ? remaining : l->qty;
            l->qty -= t;
            remaining -= t;
            took += t;
            if (l->qty > 0 || l->hidden <= 0) break;
            int64_t refill = l->hidden < l->peak ? l->hidden : l->peak; /* iceberg shows its next slice */
            l->qty = refill;
            l->hidden -= refill;
            if (remaining == 0) break;
        }
        int32_t passive = pick_agent(r);
        out[n].px = l->px;
        out[n].qty = took;
        out[n].buyer = buy ? aggressor : passive;
        out[n].seller = buy ? passive : aggressor;
        out[n].type = buy ? TT_BUY : TT_SELL;
        n++;
        if (l->qty == 0) side_remove_front(book);
    }
    *dir = buy ? 1 : -1;
    return n;
}

/* New liquidity after an event: close the spread back to one tick (the side that fills decides where price
 * goes, pulled back towards the anchor), orders joining and cancelling, and depth restored behind. */
static void replenish(Instr *in, int dir)
{
    Rng *r = &in->rng;
    const RootSpec *rs = &k_roots[in->root];
    Side *bid = &in->side[SIDE_BID], *ask = &in->side[SIDE_ASK];
    if (bid->n == 0) side_insert_front(in, SIDE_BID, ask->lv[0].px - 1, back_level_qty(in, 0));
    if (ask->n == 0) side_insert_front(in, SIDE_ASK, bid->lv[0].px + 1, back_level_qty(in, 0));
    while (ask->lv[0].px - bid->lv[0].px > 1) {
        double disp = 0.5 * (double)(ask->lv[0].px + bid->lv[0].px) - (double)in->anchor_px;
        double p_up = 0.5 + 0.06 * dir - rs->revert * disp;
        p_up = p_up < 0.1 ? 0.1 : p_up > 0.9 ? 0.9 : p_up;
        int64_t qty = 1 + (int64_t)(rs->level_qty * (0.1 + 0.5 * rng_u01(r)));
        if (rng_u01(r) < p_up) side_insert_front(in, SIDE_BID, bid->lv[0].px + 1, qty);
        else side_insert_front(in, SIDE_ASK, ask->lv[0].px - 1, qty);
    }
    if (rng_u01(r) < 0.45) { /* orders join, mostly near the touch */
        Side *sd = &in->side[rng_u01(r) < 0.5];
        int i = 0;
        while (i + 1 < sd->n && i < 6 && rng_u01(r) < 0.45) i++;
        sd->lv[i].qty += rng_int(r, 1, 10);
    }
    if (rng_u01(r) < 0.20) { /* cancels behind the touch */
        Side *sd = &in->side[rng_u01(r) < 0.5];
        if (sd->n > 1) {
            Level *l = &sd->lv[rng_int(r, 1, sd->n - 1)];
            int64_t cut = rng_int(r, 0, l->qty / 2);
            l->qty = l->qty - cut < 1 ? 1 : l->qty - cut;
        }
    }
    for (int s = 0; s < 2; s++)
        while (in->side[s].n < NLEV_TARGET) side_push_back(in, s);
}

static void schedule_next(Instr *in, int64_t from, const double *p)
{
    Rng *r = &in->rng;
    double tpe = in->trades_per_event;
    if (!p[P_BURSTS]) {
        in->burst = 0;
        in->next_ns = from + exp_ns(r, p[P_RATE] / tpe);
        return;
    }
    if (in->regime_end_ns < from) { /* first time, or resumed after a long pause: start a calm regime */
        in->burst = 0;
        in->regime_end_ns = from + exp_ns(r, 1.0 / p[P_BURST_EVERY]);
    }
    int64_t t = from;
    for (int guard = 0; guard < 100000; guard++) { /* memoryless: crossing a regime edge resamples there */
        int64_t dt = exp_ns(r, (in->burst ? p[P_BURST_RATE] : p[P_RATE]) / tpe);
        if (t + dt < in->regime_end_ns) {
            in->next_ns = t + dt;
            return;
        }
        t = in->regime_end_ns;
        in->burst = !in->burst;
        in->regime_end_ns = t + exp_ns(r, 1.0 / (in->burst ? p[P_BURST_LEN] : p[P_BURST_EVERY]));
    }
    in->next_ns = t;
}

/* ------------------------------------------------------------------------------------------------------------
 * Callback delivery (connector thread only). Everything handed out lives in rotating scratch slots that are
 * poisoned when the callback returns, so a kept pointer reads recognisable garbage instead of crashing.
 * ------------------------------------------------------------------------------------------------------------ */
#define NSLOT 64
#define TRADE_MAGIC 0x50524F4649545452ull /* "PROFITTR" */

typedef struct {
    wchar_t ticker[TICKER_MAX];
    wchar_t exch[TICKER_MAX];
    wchar_t date[TICKER_MAX];
} Scratch;

typedef struct {
    uint64_t magic;
    uint64_t seq;
    TConnectorTrade trade;
} TradeRecord;

static const wchar_t k_poison[] = L"\x2620POISONED\x2620";
static Scratch g_scratch[NSLOT];
static TradeRecord g_trade_rec[NSLOT];
static unsigned g_slot;
static uint64_t g_trade_seq;
static int g_poison = 1;
static int g_garbage;      /* connector's copy of P_GARBAGE */
static int g_depth_quirks = 1;

/* a narrow argument with garbage above its `bits` low bits (when asked to): what Win64 callers leave there */
static inline uint64_t narrow(uint64_t v, int bits)
{
    uint64_t keep = bits >= 64 ? ~0ull : ((1ull << bits) - 1);
    return g_garbage ? ((v & keep) | (0xDEADBEEFCAFEF00Dull & ~keep)) : (v & keep);
}

/* what the callback now running may access (connector thread only; accessors check the thread first) */
enum { CB_NONE, CB_TRADE_V2, CB_DEPTH, CB_OTHER };
static int g_cb_kind;
static const TradeRecord *g_cur_trade;
static const Instr *g_cur_depth;

static void poison_wstr(wchar_t *buf)
{
    size_t n = sizeof k_poison / sizeof k_poison[0];
    memcpy(buf, k_poison, sizeof k_poison);
    for (size_t i = n; i < TICKER_MAX; i++) buf[i] = 0;
}

static Scratch *scratch_take(const wchar_t *ticker, const wchar_t *exch)
{
    Scratch *s = &g_scratch[g_slot++ % NSLOT];
    wcopy(s->ticker, ticker, TICKER_MAX);
    wcopy(s->exch, exch, TICKER_MAX);
    s->date[0] = 0;
    return s;
}

static void scratch_release(Scratch *s)
{
    if (!g_poison) return;
    poison_wstr(s->ticker);
    poison_wstr(s->exch);
    poison_wstr(s->date);
}

/* How long each market-data callback kept this (the DLL's) thread, as the DLL sees it: for a ctypes callback that
 * includes the thunk and the wait for the GIL, which nothing inside Python can measure. Buckets as app/metrics.py
 * _index (8 per octave), so Python reads them as a LatencyHistogram. */
#define DWELL_BUCKETS 512
static _Atomic int64_t g_dwell[DWELL_BUCKETS], g_dwell_n, g_dwell_total, g_dwell_max;
static _Thread_local int64_t t_cb_t0;

static void dwell_record(int64_t v)
{
    int b = v < 8 ? (v > 0 ? (int)v : 0) : 0;
    if (v >= 8) {
        int bits = 64 - __builtin_clzll((uint64_t)v);
        b = (bits - 3) * 8 + (int)((v >> (bits - 4)) & 7);
    }
    atomic_fetch_add_explicit(&g_dwell[b < DWELL_BUCKETS ? b : DWELL_BUCKETS - 1], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_dwell_n, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_dwell_total, v, memory_order_relaxed);
    int64_t seen = atomic_load_explicit(&g_dwell_max, memory_order_relaxed);
    while (v > seen && !atomic_compare_exchange_weak(&g_dwell_max, &seen, v)) {
    }
}

/* The callbacks' dwell so far: up to n bucket counts, and count, total ns, max ns in summary[0..2]; reset != 0
 * zeroes it after reading. Any thread. */
EXPORT int32_t SIM_CallbackDwell(int64_t *counts, int32_t n, int64_t *summary, int32_t reset)
{
    for (int b = 0; b < n && b < DWELL_BUCKETS; b++)
        counts[b] = reset ? atomic_exchange(&g_dwell[b], 0) : atomic_load(&g_dwell[b]);
    summary[0] = reset ? atomic_exchange(&g_dwell_n, 0) : atomic_load(&g_dwell_n);
    summary[1] = reset ? atomic_exchange(&g_dwell_total, 0) : atomic_load(&g_dwell_total);
    summary[2] = reset ? atomic_exchange(&g_dwell_max, 0) : atomic_load(&g_dwell_max);
    return DWELL_BUCKETS;
}

/* Finalize joins this thread before it sets g_fin_done, so this can never be true: checked, counted, skipped. */
static int cb_begin(int kind)
{
    if (atomic_load_explicit(&g_fin_done, memory_order_relaxed)) {
        stat_add(S_AFTER_FIN, 1);
        return 0;
    }
    stat_add(S_CALLBACKS, 1);
    g_cb_kind = kind;
    t_cb_t0 = mono_ns();
    return 1;
}

static void cb_end(void)
{
    dwell_record(mono_ns() - t_cb_t0);
    g_cb_kind = CB_NONE;
    g_cur_trade = NULL;
    g_cur_depth = NULL;
}

static inline TConnectorAssetIdentifier asset_v2(const Scratch *s)
{
    TConnectorAssetIdentifier a = {0, s->ticker, s->exch, 0};
    return a;
}

static inline TAssetIDRec asset_v1(const Scratch *s)
{
    TAssetIDRec a = {s->ticker, s->exch, 0};
    return a;
}

static void emit_state(int32_t type, int32_t result)
{
    TStateCallback cb = atomic_load(&g_cb_state);
    if (!cb || !cb_begin(CB_OTHER)) return;
    WIDE(WideStateCallback, cb)(narrow((uint32_t)type, 32), narrow((uint32_t)result, 32));
    cb_end();
}

static void emit_invalid(const wchar_t *ticker, const wchar_t *exch)
{
    TInvalidTickerCallback cb = atomic_load(&g_cb_invalid);
    if (!cb || !cb_begin(CB_OTHER)) return;
    Scratch *s = scratch_take(ticker, exch);
    cb(asset_v2(s));
    cb_end();
    scratch_release(s);
}

static void emit_tiny(const Instr *in, int side)
{
    TTinyBookCallback cb = atomic_load(&g_cb_tiny);
    if (!cb || !cb_begin(CB_OTHER)) return;
    const Level *l = &in->side[side].lv[0];
    Scratch *s = scratch_take(in->ticker, L"F");
    WIDE(WideTinyBookCallback, cb)(asset_v1(s), (double)l->px * k_roots[in->root].tick, narrow((uint32_t)l->qty, 32),
                               narrow((uint32_t)side, 32));
    cb_end();
    scratch_release(s);
}

static void emit_depth(const Instr *in, int side, int position, int update)
{
    TConnectorPriceDepthCallback cb = atomic_load(&g_cb_depth);
    if (!cb || !cb_begin(CB_DEPTH)) return;
    g_cur_depth = in;
    Scratch *s = scratch_take(in->ticker, L"F");
    WIDE(WidePriceDepthCallback, cb)(asset_v2(s), narrow((uint8_t)side, 8), narrow((uint32_t)position, 32),
                                 narrow((uint8_t)update, 8));
    cb_end();
    scratch_release(s);
}

/* Both sides at once: one notification with side Both (254) when the real DLL's shapes are on, else one a side.
 * The binding publishes both sides either way. */
static void emit_full_book(const Instr *in)
{
    stat_add(S_DEPTH_BOOKS, 2);
    if (g_depth_quirks) {
        stat_add(S_BOTH_SIDES, 1);
        emit_depth(in, SIDE_BOTH, 0, UPD_FULLBOOK);
        return;
    }
    emit_depth(in, SIDE_BID, 0, UPD_FULLBOOK);
    emit_depth(in, SIDE_ASK, 0, UPD_FULLBOOK);
}

static void deliver_trade(const Instr *in, const GenTrade *t, int64_t ts)
{
    TConnectorTradeCallback v2 = atomic_load(&g_cb_trade_v2);
    TNewTradeCallback v1 = atomic_load(&g_cb_trade_v1);
    if (!v1 && !v2) return;
    const RootSpec *rs = &k_roots[in->root];
    double price = (double)t->px * rs->tick, volume = price * (double)t->qty * rs->multiplier;
    Civil c;
    civil_from_utc_ns(ts, &c);
    if (v2 && cb_begin(CB_TRADE_V2)) {
        Scratch *s = scratch_take(in->ticker, L"F");
        TradeRecord *rec = &g_trade_rec[g_slot % NSLOT];
        TConnectorTrade *tr = &rec->trade;
        rec->magic = TRADE_MAGIC;
        rec->seq = ++g_trade_seq;
        memset(tr, 0, sizeof *tr);
        tr->TradeDate = (SYSTEMTIME){(uint16_t)c.y, (uint16_t)c.mo, (uint16_t)c.dow, (uint16_t)c.d,
                                     (uint16_t)c.h, (uint16_t)c.mi, (uint16_t)c.s, (uint16_t)c.ms};
        tr->TradeNumber = in->trade_no;
        tr->Price = price;
        tr->Quantity = t->qty;
        tr->Volume = volume;
        tr->BuyAgent = t->buyer;
        tr->SellAgent = t->seller;
        tr->TradeType = (uint8_t)t->type;
        g_cur_trade = rec;
        WIDE(WideConnectorTradeCallback, v2)(asset_v2(s), rec, narrow(0, 32));
        cb_end();
        memset(rec, 0xDB, sizeof *rec); /* a kept handle must be useless */
        scratch_release(s);
    }
    if (v1 && cb_begin(CB_OTHER)) {
        Scratch *s = scratch_take(in->ticker, L"F");
        format_dll_date(s->date, &c);
        /* bEdit is a Delphi Char (16 bits): garbage from bit 16 up */
        WIDE(WideNewTradeCallback, v1)(asset_v1(s), s->date, narrow(in->trade_no, 32), price, volume,
                                   narrow((uint32_t)t->qty, 32), narrow((uint32_t)t->buyer, 32),
                                   narrow((uint32_t)t->seller, 32), narrow((uint32_t)t->type, 32), narrow(0, 16));
        cb_end();
        scratch_release(s);
    }
}

static int level_changed(const Level *a, const Level *b)
{
    return a->qty != b->qty || level_count(a) != level_count(b);
}

/* Closes a bracket: Flush, then (real DLL shape) an Add carrying the smallest index the bracket changed. That Add
 * is not a change of its own (vendor Delphi example): a client reading the side again publishes it twice. */
static void bracket_end(const Instr *in, int side, int min_pos)
{
    emit_depth(in, side, 0, UPD_FLUSH);
    stat_add(S_DEPTH_BOOKS, 1);
    if (g_depth_quirks) {
        stat_add(S_POST_FLUSH_ADDS, 1);
        emit_depth(in, side, min_pos < 0 ? 0 : min_pos, UPD_ADD);
    }
}

/* Depth notifications for one side: a lone Edit(0) when only the top quantity moved; otherwise a
 * Prepare ... Delete/Insert/Add/Edit/DeleteFrom ... Flush bracket whose operations turn the old side into the new
 * one (a tail cut off at once is one DeleteFrom when the real DLL's shapes are on). */
static void depth_diff(const Instr *in, int side, const Side *o)
{
    const Side *n = &in->side[side];
    int same = o->n == n->n;
    for (int i = 0; same && i < n->n; i++) same = o->lv[i].px == n->lv[i].px;
    if (same) {
        int changed = 0, first = -1;
        for (int i = 0; i < n->n; i++)
            if (level_changed(&o->lv[i], &n->lv[i]) && changed++ == 0) first = i;
        if (changed == 0) return;
        if (changed == 1 && first == 0) {
            stat_add(S_DEPTH_BOOKS, 1);
            emit_depth(in, side, 0, UPD_EDIT);
            return;
        }
        emit_depth(in, side, 0, UPD_PREPARE);
        for (int i = 0; i < n->n; i++)
            if (level_changed(&o->lv[i], &n->lv[i])) emit_depth(in, side, i, UPD_EDIT);
        bracket_end(in, side, first);
        return;
    }
    emit_depth(in, side, 0, UPD_PREPARE);
    int i = 0, j = 0, pos = 0, cur = o->n, min_pos = -1;
    while (i < o->n || j < n->n) {
        if (j >= n->n && g_depth_quirks) { /* the rest of the old side goes: one DeleteFrom */
            if (min_pos < 0) min_pos = pos;
            stat_add(S_DELETE_FROM, 1);
            emit_depth(in, side, pos, UPD_DELETE_FROM);
            break;
        }
        if (j >= n->n || (i < o->n && better(side, o->lv[i].px, n->lv[j].px))) {
            if (min_pos < 0) min_pos = pos;
            emit_depth(in, side, pos, UPD_DELETE);
            i++;
            cur--;
        } else if (i >= o->n || better(side, n->lv[j].px, o->lv[i].px)) {
            if (min_pos < 0) min_pos = pos;
            emit_depth(in, side, pos, pos == cur ? UPD_ADD : UPD_INSERT);
            pos++;
            j++;
            cur++;
        } else {
            if (level_changed(&o->lv[i], &n->lv[j])) {
                if (min_pos < 0) min_pos = pos;
                emit_depth(in, side, pos, UPD_EDIT);
            }
            pos++;
            i++;
            j++;
        }
    }
    bracket_end(in, side, min_pos);
}

/* An auction pulse: a theoretical-price level (price -INF, PG_IS_THEORIC) appears at the head of both sides, then
 * goes at the instrument's next event; each change is one TheoricPrice notification with side Both. */
static void theoric_set(Instr *in, int on)
{
    in->theoric = on;
    stat_add(S_THEORIC, 1);
    stat_add(S_DEPTH_BOOKS, 2);
    emit_depth(in, SIDE_BOTH, 0, UPD_THEORIC);
}

/* ------------------------------------------------------------------------------------------------------------
 * Connector thread
 * ------------------------------------------------------------------------------------------------------------ */
enum { MODE_NONE, MODE_PACED, MODE_FLOOD, MODE_IDLE };

typedef struct {
    /* written by initialize before the thread starts */
    int login, key_invalid, user_invalid;
    uint64_t seed;
    int64_t start_ns;
    /* connector-owned */
    double p[P_COUNT];
    uint64_t param_gen, sub_gen;
    int mode;
    int64_t anc_sim, anc_real, last;
    double speed;
    int down, drop_done, warn_done;
    int64_t recover_at;
    int nact, act[MAX_INSTR];
} Conn;

static Conn g_conn;

static int64_t sim_now(const Conn *c)
{
    if (c->mode == MODE_FLOOD) return c->last;
    int64_t v = c->anc_sim + (int64_t)((double)(mono_ns() - c->anc_real) * c->speed);
    return v > c->last ? v : c->last;
}

static void set_mode(Conn *c, int mode, double speed)
{
    if (mode == c->mode && speed == c->speed) return;
    int64_t now = sim_now(c);
    c->mode = mode;
    c->speed = speed;
    c->anc_sim = now;
    c->anc_real = mono_ns();
    c->last = now;
    atomic_store_explicit(&g_last_event_ns, now, memory_order_relaxed);
    clock_publish(c->anc_sim, c->anc_real, speed);
}

static int halted(const Conn *c)
{
    return c->p[P_MAX_TRADES] > 0 && (double)stat_get(S_GENERATED) >= c->p[P_MAX_TRADES];
}

static void apply_params(Conn *c)
{
    double old[P_COUNT];
    memcpy(old, c->p, sizeof old);
    c->param_gen = atomic_load(&g_param_gen);
    params_snapshot(c->p);
    g_poison = c->p[P_POISON] != 0;
    g_garbage = c->p[P_GARBAGE] != 0;
    g_depth_quirks = c->p[P_DEPTH_QUIRKS] != 0;
    int arrivals = old[P_RATE] != c->p[P_RATE] || old[P_BURSTS] != c->p[P_BURSTS] ||
                   old[P_BURST_RATE] != c->p[P_BURST_RATE] || old[P_BURST_EVERY] != c->p[P_BURST_EVERY] ||
                   old[P_BURST_LEN] != c->p[P_BURST_LEN] || old[P_MAX_TRADES] != c->p[P_MAX_TRADES];
    if (!arrivals) return;
    int64_t now = sim_now(c); /* Poisson arrivals are memoryless: rescheduling from now is exact */
    for (int k = 0; k < c->nact; k++) {
        Instr *in = &g_instr[c->act[k]];
        in->regime_end_ns = -1;
        schedule_next(in, now, c->p);
    }
}

static int depth_wanted(const Conn *c, const Instr *in)
{
    return in->depth_on && c->p[P_DEPTH] != 0 && atomic_load_explicit(&g_cb_depth, memory_order_relaxed);
}

static void book_snapshot(const Conn *c, const Instr *in)
{
    if (atomic_load_explicit(&g_cb_tiny, memory_order_relaxed) && in->active) {
        emit_tiny(in, SIDE_BID);
        emit_tiny(in, SIDE_ASK);
    }
    if (depth_wanted(c, in)) emit_full_book(in);
}

/* Picks up what the owner thread changed: subscriptions, invalid tickers to report, snapshots to send. */
static void refresh_subs(Conn *c)
{
    int sub_trade[MAX_INSTR], sub_depth[MAX_INSTR], need_tiny[MAX_INSTR], need_depth[MAX_INSTR];
    int pending[MAX_PENDING];
    int n, npending;
    c->sub_gen = atomic_load(&g_sub_gen);
    pthread_mutex_lock(&g_sub_mu);
    n = g_ninstr;
    for (int i = 0; i < n; i++) {
        Instr *in = &g_instr[i];
        sub_trade[i] = in->sub_trade;
        sub_depth[i] = in->sub_depth;
        need_tiny[i] = in->need_tiny;
        need_depth[i] = in->need_depth;
        in->need_tiny = in->need_depth = 0;
    }
    npending = g_npending;
    memcpy(pending, g_pending, (size_t)npending * sizeof pending[0]);
    g_npending = 0;
    pthread_mutex_unlock(&g_sub_mu);

    int64_t now = sim_now(c);
    c->nact = 0;
    for (int i = 0; i < n; i++) {
        Instr *in = &g_instr[i];
        if (in->root < 0) continue;
        if ((sub_trade[i] || sub_depth[i]) && !in->ready) market_create(in, c->seed, c->p);
        if (sub_trade[i] && !in->active) schedule_next(in, now, c->p); /* the market resumes where it stopped */
        in->active = sub_trade[i];
        in->depth_on = sub_depth[i];
        if (in->active) c->act[c->nact++] = i;
    }
    for (int k = 0; k < npending; k++) emit_invalid(g_instr[pending[k]].ticker, g_instr[pending[k]].exch);
    if (c->down || c->key_invalid) return;
    for (int i = 0; i < n; i++) {
        Instr *in = &g_instr[i];
        if (need_tiny[i] && in->active && atomic_load(&g_cb_tiny)) {
            emit_tiny(in, SIDE_BID);
            emit_tiny(in, SIDE_ASK);
        }
        if (need_depth[i] && depth_wanted(c, in)) emit_full_book(in);
    }
}

static void connection_drop(Conn *c, int64_t ts)
{
    c->down = 1;
    c->drop_done = 1;
    c->recover_at = c->p[P_DROP_MS] < 0 ? INT64_MAX : ts + (int64_t)(c->p[P_DROP_MS] * 1e6);
    emit_state(2, 0);
    emit_state(2, 1);
}

/* Back on its own: connected-waiting, connected-not-logged, then logged (spec §6.1). With drop_subs the server has
 * forgotten every subscription: nothing flows until the client subscribes again. */
static void connection_recover(Conn *c)
{
    c->down = 0;
    c->recover_at = INT64_MAX;
    stat_add(S_RECONNECTS, 1);
    emit_state(2, 2);
    emit_state(2, 3);
    if (c->p[P_DROP_SUBS] != 0) {
        pthread_mutex_lock(&g_sub_mu);
        for (int i = 0; i < g_ninstr; i++) {
            if (g_instr[i].root >= 0 && g_instr[i].sub_trade) atomic_fetch_add(&g_nsub, -1);
            g_instr[i].sub_trade = g_instr[i].sub_depth = 0;
            g_instr[i].need_tiny = g_instr[i].need_depth = 0;
        }
        pthread_mutex_unlock(&g_sub_mu);
        for (int i = 0; i < MAX_INSTR; i++) g_instr[i].active = g_instr[i].depth_on = 0;
        c->nact = 0;
    }
    emit_state(2, 4);
    for (int k = 0; k < c->nact; k++) book_snapshot(c, &g_instr[c->act[k]]);
    for (int i = 0; i < MAX_INSTR; i++) /* depth-only subscriptions are not in the active list */
        if (g_instr[i].ready && !g_instr[i].active && depth_wanted(c, &g_instr[i])) book_snapshot(c, &g_instr[i]);
}

static void model_event(Conn *c, Instr *in, int64_t ts);

static void market_event(Conn *c, Instr *in, int64_t ts)
{
    in->events++;
    if (!c->down && depth_wanted(c, in)) {
        if (in->theoric) theoric_set(in, 0);
        else if (c->p[P_THEORIC_EVERY] > 0 && in->events % (uint32_t)c->p[P_THEORIC_EVERY] == 0) theoric_set(in, 1);
    }
    if (in->model) {
        model_event(c, in, ts);
        return;
    }
    static Side before[2];
    GenTrade trades[NLEV_MAX];
    int want_depth = !c->down && depth_wanted(c, in);
    Level top[2] = {in->side[0].lv[0], in->side[1].lv[0]};
    if (want_depth) memcpy(before, in->side, sizeof before);
    int dir, n = generate_event(in, trades, &dir);
    in->trades_per_event += 0.002 * ((double)n - in->trades_per_event);
    replenish(in, dir);
    schedule_next(in, ts, c->p);

    for (int k = 0; k < n; k++) {
        if (halted(c)) break;
        in->trade_no++; /* the market's numbering advances whether or not the trade reaches the client */
        stat_add(S_GENERATED, 1);
        routing_on_trade(in->ticker, (double)trades[k].px * k_roots[in->root].tick, trades[k].qty); /* broker fills */
        if (c->down) {
            stat_add(S_UNDELIVERED, 1);
            continue;
        }
        stat_add(S_DELIVERED, 1);
        deliver_trade(in, &trades[k], ts);
        if (c->p[P_DROP_AFTER] > 0 && !c->drop_done && (double)stat_get(S_DELIVERED) >= c->p[P_DROP_AFTER])
            connection_drop(c, ts);
        if (c->p[P_PERF_WARN_AFTER] > 0 && !c->warn_done && (double)stat_get(S_DELIVERED) >= c->p[P_PERF_WARN_AFTER]) {
            c->warn_done = 1; /* the client is slow: warning, partial, then delivery recovers (4.0.0.39 states) */
            emit_state(2, 5);
            emit_state(2, 6);
            emit_state(2, 4);
        }
    }
    if (c->down) return;
    if (atomic_load_explicit(&g_cb_tiny, memory_order_relaxed))
        for (int s = 0; s < 2; s++)
            if (top[s].px != in->side[s].lv[0].px || top[s].qty != in->side[s].lv[0].qty) emit_tiny(in, s);
    if (want_depth && depth_wanted(c, in))
        for (int s = 0; s < 2; s++) depth_diff(in, s, &before[s]);
}

/* ------------------------------------------------------------------------------------------------------------
 * Scenario markets: the planted-signal model of app/market (generator.py, scenarios.py) ported to the stand-in.
 *
 * The background is a martingale: every trade hits the bid or lifts the ask with equal probability (lognormal
 * sizes) and the quotes move one tick at random (probability `vol` per trade). Every gap_lo..gap_hi trades one of
 * four patterns is painted, each built to trigger one specialist (0 orderflow sweep, 1 liquidity imbalance, 2 tape
 * cluster, 3 footprint stacked imbalance, in app/agents' order); after its last trade the quotes jump
 * round(edge x round-trip cost) ticks at once, within drift_trades trades: in the pattern's direction when the
 * signal regime's informative specialist is the pattern's, in a random direction otherwise. Signal regimes last
 * regime_lo..regime_hi trades; null has no informative specialist, planted exactly one (never the same twice in a
 * row), mixed one or none. Same structure and distributions as the Python model, not the same random numbers.
 *
 * One event = one trade. The book (5 levels a side, 1-tick spread) is published side by side exactly where the
 * Python model emits a Book: the side is rebuilt from the model and notified at once (tiny book, and depth as a
 * diff from the last publication, or a lone Edit(0) when the model republished an unchanged side), so the
 * client sees the same sequence of trades and book sides as app.market.generator yields.
 * The scenario and its parameters are read when a ticker's market is created (its first subscription); timestamps
 * and pacing are the stand-in's (rate, bursts, pace), each pattern trade's gap scaled like the Python model's.
 * SIM_RegimeAt exposes each ticker's regime table; the regimes do not depend on the market's own draws.
 * ------------------------------------------------------------------------------------------------------------ */
enum { PAT_ORDERFLOW, PAT_LIQUIDITY, PAT_TAPE, PAT_FOOTPRINT, PAT_COUNT };
enum { SC_NONE, SC_NULL, SC_PLANTED, SC_MIXED };

typedef struct {
    double tick, start, median_qty, qty_sigma, book_mean;
    double cost_ticks; /* round trip (1-tick spread + 2 fees) / tick value, default [execution.contracts] */
} ModelSpec;
static const ModelSpec k_models[2] = {
    [ROOT_WDO] = {0.5, 5000.0, 2.0, 0.7, 30.0, 1.4},   /* (0.5 x 10 + 2 x 1.00) / 5 */
    [ROOT_WIN] = {5.0, 130000.0, 2.0, 0.8, 40.0, 1.5}, /* (5 x 0.2 + 2 x 0.25) / 1 */
};

typedef struct {
    int64_t start, end; /* model trade numbers (1 = the ticker's first trade), inclusive */
    int32_t informative; /* -1 none, else PAT_* */
    double edge, vol;
} SigRegime;

typedef struct {
    int side, move;
    int64_t qty;
    double dt; /* pace multiplier of the trade */
} Step;

#define MODEL_LEVELS 5
#define MAX_STEPS 21
#define DRIFT_RING 1024 /* > drift_trades max (1000) + the longest pattern (21): pending jumps never collide */

typedef struct Model {
    const ModelSpec *spec;
    int scenario;
    int64_t regime_lo, regime_hi, drift_trades, gap_lo, gap_hi;
    double edge_lo, edge_hi, vol_lo, vol_hi;
    /* under g_regime_mu: written by the connector, read by SIM_RegimeAt */
    SigRegime *reg;
    int64_t nreg, cap;
    uint32_t base; /* TradeNumber = base + model trade number */
    /* connector thread only */
    Rng r, sched; /* the market's draws; the regime schedule's */
    double spare;
    int has_spare, prev_inf;
    int64_t bid; /* ticks */
    double qb, qa;
    int64_t n, next_pattern, moved_to, cur;
    int32_t drift[DRIFT_RING]; /* net quote moves due after trade t, at t % DRIFT_RING */
    /* the next trade, prepared at the end of the previous event */
    int in_pattern, pattern_new, kind, dir, nsteps, istep;
    int64_t pattern_regime;
    double vol; /* of the regime the current step of the Python loop started in */
    double big, small;
    Step steps[MAX_STEPS];
    Side pub[2]; /* each side as last published */
    int64_t patterns[PAT_COUNT], planted;
} Model;

static pthread_mutex_t g_regime_mu = PTHREAD_MUTEX_INITIALIZER;

static inline double m_u(Model *m) { return rng_u01(&m->r); }
static inline int m_sign(Model *m) { return rng_u01(&m->r) < 0.5 ? 1 : -1; }

static double m_normal(Model *m) /* Marsaglia's polar method */
{
    if (m->has_spare) {
        m->has_spare = 0;
        return m->spare;
    }
    double u, v, s;
    do {
        u = 2.0 * rng_u01(&m->r) - 1.0;
        v = 2.0 * rng_u01(&m->r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double f = sim_sqrt(-2.0 * sim_log(s) / s);
    m->spare = v * f;
    m->has_spare = 1;
    return u * f;
}

static double m_size(Model *m, double scale) /* a fresh top level */
{
    double q = m->spec->book_mean * scale * sim_exp(0.15 * m_normal(m));
    return q < 1.0 ? 1.0 : q;
}

static int64_t m_qty(Model *m, double mult, double sigma) /* sigma < 0: the ticker's */
{
    double s = sigma < 0 ? m->spec->qty_sigma : sigma;
    int64_t q = (int64_t)(m->spec->median_qty * mult * sim_exp(s * m_normal(m)) + 0.5);
    return q < 1 ? 1 : q;
}

static int64_t m_gap(Model *m)
{
    return m->gap_lo + (int64_t)(m_u(m) * (double)(m->gap_hi - m->gap_lo + 1));
}

/* Appends the next signal regime (connector thread, under g_regime_mu). Returns 0 when out of memory. */
static int regime_append(Model *m)
{
    Rng *r = &m->sched;
    int64_t start = m->nreg ? m->reg[m->nreg - 1].end + 1 : 1;
    int64_t len = m->regime_lo + (int64_t)(rng_u01(r) * (double)(m->regime_hi - m->regime_lo + 1));
    int32_t inf = -1;
    if (m->scenario != SC_NULL) {
        int choices[PAT_COUNT + 1], nc = 0;
        if (m->scenario == SC_MIXED) choices[nc++] = -1;
        for (int k = 0; k < PAT_COUNT; k++) choices[nc++] = k;
        int keep = 0;
        for (int k = 0; k < nc; k++)
            if (choices[k] != m->prev_inf) choices[keep++] = choices[k];
        inf = choices[(int)(rng_u01(r) * keep)];
    }
    double edge = m->edge_lo + (m->edge_hi - m->edge_lo) * rng_u01(r);
    double vol = m->vol_lo + (m->vol_hi - m->vol_lo) * rng_u01(r);
    pthread_mutex_lock(&g_regime_mu);
    if (m->nreg == m->cap) {
        int64_t cap = m->cap ? 2 * m->cap : 64;
        SigRegime *grown = realloc(m->reg, (size_t)cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&g_regime_mu);
            return 0;
        }
        m->reg = grown;
        m->cap = cap;
    }
    m->reg[m->nreg++] = (SigRegime){start, start + len - 1, inf, edge, vol};
    pthread_mutex_unlock(&g_regime_mu);
    m->prev_inf = inf;
    return 1;
}

static void model_fill_side(Instr *in, int side)
{
    Model *m = in->model;
    double mean = m->spec->book_mean;
    Side *sd = &in->side[side];
    double q = side == SIDE_BID ? m->qb : m->qa;
    int64_t top = side == SIDE_BID ? m->bid : m->bid + 1, qi = (int64_t)q;
    sd->n = MODEL_LEVELS;
    sd->lv[0] = (Level){top, qi, 0, 0, 1, (int32_t)(1 + qi / 5)};
    for (int j = 1; j < MODEL_LEVELS; j++)
        sd->lv[j] = (Level){top + step_out(side) * j, (int64_t)(mean * (1 + 0.3 * j)), 0, 0, 1, 1 + j};
}

static int side_same(const Side *a, const Side *b)
{
    if (a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++)
        if (a->lv[i].px != b->lv[i].px || level_changed(&a->lv[i], &b->lv[i])) return 0;
    return 1;
}

/* The model publishes one side (a Book event in the Python model): rebuild it, notify it, remember it. */
static void m_book(Conn *c, Instr *in, int side)
{
    Model *m = in->model;
    model_fill_side(in, side);
    if (!c->down) {
        if (atomic_load_explicit(&g_cb_tiny, memory_order_relaxed)) emit_tiny(in, side);
        if (depth_wanted(c, in)) {
            if (side_same(&m->pub[side], &in->side[side])) { /* refilled as was */
                stat_add(S_DEPTH_BOOKS, 1);
                emit_depth(in, side, 0, UPD_EDIT);
            } else {
                depth_diff(in, side, &m->pub[side]);
            }
        }
    }
    m->pub[side] = in->side[side];
}

static void m_shift(Conn *c, Instr *in, int d)
{
    Model *m = in->model;
    m->bid += d;
    m->qb = m_size(m, 1.0);
    m->qa = m_size(m, 1.0);
    m_book(c, in, SIDE_BID);
    m_book(c, in, SIDE_ASK);
}

static void m_after_hit(Conn *c, Instr *in, int side, int64_t qty) /* the hit level loses the size, drifts back */
{
    Model *m = in->model;
    double mean = m->spec->book_mean;
    double *lvl = side > 0 ? &m->qa : &m->qb;
    double q = *lvl - (double)qty + 0.2 * (mean - *lvl) + 0.05 * mean * m_normal(m);
    *lvl = q >= 1.0 ? q : m_size(m, 1.0);
    m_book(c, in, side > 0 ? SIDE_ASK : SIDE_BID);
}

static void m_liq_book(Conn *c, Instr *in)
{
    Model *m = in->model;
    m->qb = m->dir > 0 ? m->big : m->small;
    m->qa = m->dir > 0 ? m->small : m->big;
    m_book(c, in, SIDE_BID);
    m_book(c, in, SIDE_ASK);
}

static void m_trade(Conn *c, Instr *in, int side, int64_t qty, int64_t ts)
{
    Model *m = in->model;
    m->n++;
    int32_t aggressor = pick_agent(&m->r), passive = pick_agent(&m->r);
    GenTrade t = {side > 0 ? m->bid + 1 : m->bid, qty, side > 0 ? aggressor : passive, side > 0 ? passive : aggressor,
                  side > 0 ? TT_BUY : TT_SELL};
    in->trade_no++; /* the market's numbering advances whether or not the trade reaches the client */
    stat_add(S_GENERATED, 1);
    routing_on_trade(in->ticker, (double)t.px * m->spec->tick, qty);
    if (c->down) {
        stat_add(S_UNDELIVERED, 1);
        return;
    }
    stat_add(S_DELIVERED, 1);
    deliver_trade(in, &t, ts);
    if (c->p[P_DROP_AFTER] > 0 && !c->drop_done && (double)stat_get(S_DELIVERED) >= c->p[P_DROP_AFTER])
        connection_drop(c, ts);
}

/* Background and scheduled quote moves after the current trade. A jump due at a trade inside a pattern (only
 * possible when gap_lo < drift_trades) comes after the pattern instead of being lost. */
static void m_moves(Conn *c, Instr *in)
{
    Model *m = in->model;
    int64_t d = 0;
    for (int64_t t = m->moved_to + 1; t <= m->n; t++) {
        d += m->drift[t % DRIFT_RING];
        m->drift[t % DRIFT_RING] = 0;
    }
    m->moved_to = m->n;
    for (int64_t k = 0; k < (d > 0 ? d : -d); k++) m_shift(c, in, d > 0 ? 1 : -1);
    if (m_u(m) < m->vol) m_shift(c, in, m_sign(m));
}

static void m_plan_pattern(Model *m)
{
    int d = m->dir, k = 0;
    Step *s = m->steps;
    switch (m->kind) {
    case PAT_ORDERFLOW: /* 5 aggressions on side d through 3 levels, quick */
        for (int j = 0; j < 5; j++) s[k++] = (Step){d, (j == 0 || j == 2) ? d : 0, m_qty(m, 1.0, -1), 0.3};
        break;
    case PAT_TAPE: { /* 3 ordinary trades, a large print d that moves the quotes d, an ordinary one, a large one */
        double sig = m->spec->qty_sigma;
        int64_t big[2];
        for (int j = 0; j < 2; j++) {
            big[j] = (int64_t)(m->spec->median_qty * sim_exp(sig * (3.3 + 0.7 * m_u(m))) + 0.5);
            if (big[j] < 1) big[j] = 1;
        }
        for (int j = 0; j < 3; j++) s[k++] = (Step){m_sign(m), 0, m_qty(m, 1.0, -1), 0.5};
        s[k++] = (Step){d, d, big[0], 0.5};
        s[k++] = (Step){m_sign(m), 0, m_qty(m, 1.0, -1), 0.5};
        s[k++] = (Step){d, 0, big[1], 0.5};
        break;
    }
    case PAT_FOOTPRINT: { /* three stages d d -d d d -d d (2x / 0.6x sizes), a quote move d between stages */
        static const int side_of[7] = {1, 1, -1, 1, 1, -1, 1};
        for (int st = 0; st < 3; st++)
            for (int j = 0; j < 7; j++) {
                double mult = side_of[j] > 0 ? 2.0 : 0.6;
                s[k++] = (Step){side_of[j] * d, (st < 2 && j == 6) ? d : 0, m_qty(m, mult, 0.3), 1.0};
            }
        break;
    }
    default: /* liquidity: 6 trades alternating sides, starting against the heavy side */
        for (int j = 0; j < 6; j++) s[k++] = (Step){j % 2 == 0 ? -d : d, 0, m_qty(m, 1.0, -1), 1.0};
        m->big = 4.0 * m->spec->book_mean;
        m->small = 0.4 * m->spec->book_mean;
        break;
    }
    m->nsteps = k;
    m->istep = 0;
}

/* Decides what trade n + 1 is (the top of the Python loop, unless inside a pattern) and sets its pace multiplier. */
static void model_prepare(Instr *in)
{
    Model *m = in->model;
    int64_t next = m->n + 1;
    if (m->in_pattern) {
        in->trades_per_event = m->steps[m->istep].dt;
        return;
    }
    while (m->reg[m->cur].end < next) {
        if (m->cur + 1 == m->nreg && !regime_append(m)) { /* out of memory: the last regime goes on */
            pthread_mutex_lock(&g_regime_mu);
            m->reg[m->cur].end = INT64_MAX;
            pthread_mutex_unlock(&g_regime_mu);
            break;
        }
        m->cur++;
        stat_add(S_REGIME_SWITCHES, 1);
    }
    m->vol = m->reg[m->cur].vol;
    if (next >= m->next_pattern) {
        m->kind = (int)(m_u(m) * PAT_COUNT);
        m->dir = m_sign(m);
        m->pattern_regime = m->cur;
        m_plan_pattern(m);
        m->in_pattern = m->pattern_new = 1;
    }
    in->trades_per_event = m->in_pattern ? m->steps[m->istep].dt : 1.0;
}

static void model_event(Conn *c, Instr *in, int64_t ts)
{
    Model *m = in->model;
    if (!m->in_pattern) {
        int side = m_sign(m);
        int64_t qty = m_qty(m, 1.0, -1);
        m_trade(c, in, side, qty, ts);
        m_after_hit(c, in, side, qty);
        m_moves(c, in);
    } else {
        if (m->pattern_new) { /* what the pattern shows before its first trade */
            m->pattern_new = 0;
            m->patterns[m->kind]++;
            if (m->kind == PAT_FOOTPRINT) m_shift(c, in, m->dir);
            if (m->kind == PAT_LIQUIDITY) m_liq_book(c, in);
        }
        const Step *s = &m->steps[m->istep++];
        m_trade(c, in, s->side, s->qty, ts);
        if (m->kind == PAT_LIQUIDITY) {
            m_liq_book(c, in); /* the big level is refilled after every hit */
        } else if (m->kind == PAT_TAPE && (double)s->qty > 5.0 * m->spec->median_qty) {
            double *lvl = s->side > 0 ? &m->qa : &m->qb; /* a large print: the level is replenished */
            *lvl = m_size(m, 1.0);
            m_book(c, in, s->side > 0 ? SIDE_ASK : SIDE_BID);
        } else {
            m_after_hit(c, in, s->side, s->qty);
        }
        if (s->move) m_shift(c, in, s->move);
        if (m->istep == m->nsteps) { /* the pattern is over */
            const SigRegime *rg = &m->reg[m->pattern_regime];
            if (m->kind == PAT_LIQUIDITY) { /* the imbalance goes away with the pattern */
                m->qb = m_size(m, 1.0);
                m->qa = m_size(m, 1.0);
                m_book(c, in, SIDE_BID);
                m_book(c, in, SIDE_ASK);
            }
            double total = rg->edge * m->spec->cost_ticks;
            int64_t n_moves = (int64_t)total + (m_u(m) < total - (double)(int64_t)total ? 1 : 0);
            int direction;
            if (rg->informative == m->kind) {
                direction = m->dir;
                m->planted++;
            } else {
                direction = m_sign(m);
            }
            if (n_moves) { /* one jump, so no momentum is left to catch once it has started */
                int64_t at = m->n + 1 + (int64_t)(m_u(m) * (double)m->drift_trades);
                m->drift[at % DRIFT_RING] += (int32_t)(direction * n_moves);
            }
            m->in_pattern = 0;
            m->next_pattern = m->n + m_gap(m);
            m_moves(c, in);
        }
    }
    model_prepare(in);
    schedule_next(in, ts, c->p);
}

/* Called from market_create (connector thread) when p[P_SCENARIO] != 0: the model takes over the book. */
static void model_create(Instr *in, const double *p)
{
    Model *m = calloc(1, sizeof *m);
    if (!m) return; /* out of memory: this ticker keeps the default market */
    m->spec = &k_models[in->root];
    m->scenario = (int)p[P_SCENARIO];
    int64_t a = (int64_t)p[P_REGIME_LO], b = (int64_t)p[P_REGIME_HI];
    m->regime_lo = a < b ? a : b;
    m->regime_hi = a < b ? b : a;
    a = (int64_t)p[P_GAP_LO], b = (int64_t)p[P_GAP_HI];
    m->gap_lo = a < b ? a : b;
    m->gap_hi = a < b ? b : a;
    m->edge_lo = p[P_EDGE_LO] < p[P_EDGE_HI] ? p[P_EDGE_LO] : p[P_EDGE_HI];
    m->edge_hi = p[P_EDGE_LO] < p[P_EDGE_HI] ? p[P_EDGE_HI] : p[P_EDGE_LO];
    m->vol_lo = p[P_VOL_LO] < p[P_VOL_HI] ? p[P_VOL_LO] : p[P_VOL_HI];
    m->vol_hi = p[P_VOL_LO] < p[P_VOL_HI] ? p[P_VOL_HI] : p[P_VOL_LO];
    m->drift_trades = (int64_t)p[P_DRIFT_TRADES];
    uint64_t seed = (uint64_t)p[P_SEED] ^ fnv1a_w(in->ticker);
    rng_seed(&m->r, seed ^ 0x6D61726B65740001ull);     /* per ticker, independent of subscription order */
    rng_seed(&m->sched, seed ^ 0x726567696D650002ull); /* regimes do not depend on the market's draws */
    m->prev_inf = -2;
    m->bid = (int64_t)(m->spec->start / m->spec->tick + 0.5);
    m->qb = m->qa = m->spec->book_mean;
    m->next_pattern = m_gap(m);
    if (!regime_append(m)) {
        free(m);
        return;
    }
    m->base = in->trade_no;
    pthread_mutex_lock(&g_regime_mu);
    in->model = m;
    pthread_mutex_unlock(&g_regime_mu);
    for (int s = 0; s < 2; s++) {
        model_fill_side(in, s);
        m->pub[s] = in->side[s];
    }
    model_prepare(in);
}

/* Login/connection state sequence, connect_ms apart. Returns 0 when the market is connected and may trade. */
static int login_sequence(Conn *c)
{
    if (c->user_invalid) {
        emit_state(0, 1);
        return 1;
    }
    if (c->p[P_LOGIN_RESULT] != 0) { /* e.g. 200 LOGIN_UNKNOWN_ERR: a stale session with these credentials */
        emit_state(0, (int32_t)c->p[P_LOGIN_RESULT]);
        return 1;
    }
    emit_state(0, 0);
    if (sleep_ms(c->p[P_CONNECT_MS])) return 1;
    emit_state(2, 1);
    if (sleep_ms(c->p[P_CONNECT_MS])) return 1;
    emit_state(2, 2);
    emit_state(2, 3);
    /* set before the callback: a client that subscribes as soon as it sees (2,4) must succeed */
    atomic_store(&g_market_up, 1);
    emit_state(2, 4);
    if (sleep_ms(c->p[P_CONNECT_MS])) return 1;
    emit_state(3, c->key_invalid ? 1 : 0);
    if (c->login && !c->key_invalid) routing_login(); /* routing states (1,x), accounts: after the market login */
    return 0;
}

static void market_loop(Conn *c)
{
    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        if (atomic_load_explicit(&g_param_gen, memory_order_acquire) != c->param_gen) apply_params(c);
        if (atomic_load_explicit(&g_sub_gen, memory_order_acquire) != c->sub_gen) {
            refresh_subs(c);
            continue; /* callbacks may have taken a while: re-check stop and changes */
        }
        routing_service(); /* orders the owner thread sent, routing timers, order callbacks */
        int64_t t_next = INT64_MAX;
        Instr *who = NULL;
        if (!c->key_invalid && !halted(c))
            for (int k = 0; k < c->nact; k++) {
                Instr *in = &g_instr[c->act[k]];
                if (in->next_ns < t_next) {
                    t_next = in->next_ns;
                    who = in;
                }
            }
        if (c->down && c->recover_at <= t_next) {
            t_next = c->recover_at;
            who = NULL;
        }
        double pace = c->p[P_PACE];
        if (pace <= 0 && c->p[P_FLOOD_UNTIL] > 0 && (double)stat_get(S_DELIVERED) >= c->p[P_FLOOD_UNTIL]) pace = 1.0;
        if (pace > 0) set_mode(c, MODE_PACED, pace);
        else if (t_next != INT64_MAX) set_mode(c, MODE_FLOOD, 0.0);
        else set_mode(c, MODE_IDLE, 1.0); /* nothing to do: the clock keeps real time */
        int64_t rt = routing_deadline(); /* -1: no routing timer */
        if (t_next == INT64_MAX) {
            wait_until(rt);
            continue;
        }
        if (c->mode == MODE_PACED) {
            int64_t deadline = c->anc_real + (int64_t)((double)(t_next - c->anc_sim) / c->speed);
            if (mono_ns() < deadline) {
                wait_until(rt >= 0 && rt < deadline ? rt : deadline);
                continue;
            }
        }
        if (t_next < c->last) t_next = c->last;
        c->last = t_next;
        atomic_store_explicit(&g_last_event_ns, t_next, memory_order_relaxed);
        if (who) market_event(c, who, t_next);
        else connection_recover(c);
    }
}

static void *connector_main(void *arg)
{
    Conn *c = arg;
    t_is_connector = 1;
    c->param_gen = atomic_load(&g_param_gen);
    params_snapshot(c->p);
    g_poison = c->p[P_POISON] != 0;
    g_garbage = c->p[P_GARBAGE] != 0;
    g_depth_quirks = c->p[P_DEPTH_QUIRKS] != 0;
    c->mode = MODE_NONE;
    c->anc_sim = c->last = c->start_ns;
    c->anc_real = mono_ns();
    c->speed = 1.0;
    c->recover_at = INT64_MAX;
    if (login_sequence(c) == 0) market_loop(c);
    else
        while (!wait_until(-1)) {
        }
    atomic_store(&g_alive, 0);
    return NULL;
}

/* ------------------------------------------------------------------------------------------------------------
 * Exported API: lifecycle
 * ------------------------------------------------------------------------------------------------------------ */
/* Common entry of request functions. On NL_OK the caller holds g_api_mu and must call request_end. */
static int32_t request_begin(void)
{
    if (t_is_connector) { /* called from inside a callback: the real DLL deadlocks or misbehaves */
        stat_add(S_VIOLATIONS, 1);
        return NL_INTERNAL_ERROR;
    }
    pthread_mutex_lock(&g_api_mu);
    if (atomic_load(&g_phase) != PH_RUNNING) {
        pthread_mutex_unlock(&g_api_mu);
        return NL_NOT_INITIALIZED;
    }
    if (!pthread_equal(pthread_self(), g_owner)) stat_add(S_FOREIGN, 1);
    return NL_OK;
}

static void request_end(void) { pthread_mutex_unlock(&g_api_mu); }

static int32_t initialize(int login, const wchar_t *key, const wchar_t *user, const wchar_t *pass,
                          TStateCallback state, TNewTradeCallback trade, TTinyBookCallback tiny, void *const *slots,
                          int nslots)
{
    if (t_is_connector) {
        stat_add(S_VIOLATIONS, 1);
        return NL_INTERNAL_ERROR;
    }
    pthread_once(&g_once, once_init);
    pthread_mutex_lock(&g_api_mu);
    int phase = atomic_load(&g_phase);
    int32_t rc = NL_OK;
    if (phase == PH_FINALIZED) {
        double p[P_COUNT];
        params_snapshot(p);
        if (p[P_REINIT_ABORT] != 0) abort(); /* what the real DLL effectively does (spec §8.2) */
        rc = NL_INTERNAL_ERROR;
    } else if (phase == PH_RUNNING) {
        rc = NL_INTERNAL_ERROR;
    } else if (!key || !user || !pass) {
        rc = NL_INVALID_ARGS;
    }
    if (rc != NL_OK) {
        pthread_mutex_unlock(&g_api_mu);
        return rc;
    }
    for (int i = 0; i < nslots && i < 8; i++) g_unused_slots[i] = slots[i];
    atomic_store(&g_cb_state, state);
    atomic_store(&g_cb_trade_v1, trade);
    atomic_store(&g_cb_tiny, tiny);

    double p[P_COUNT];
    params_snapshot(p);
    Conn *c = &g_conn;
    memset(c, 0, sizeof *c);
    c->login = login;
    c->key_invalid = wcscmp(key, L"INVALID") == 0;
    c->user_invalid = wcscmp(user, L"INVALID") == 0;
    c->seed = (uint64_t)p[P_SEED];
    if (p[P_START_TIME] >= 0) {
        c->start_ns = (int64_t)(p[P_START_TIME] * 1e9);
    } else {
        int64_t now = (int64_t)time(NULL);
        c->start_ns = (now - now % 86400 + 13 * 3600) * NS_PER_S; /* today 13:00 UTC = 10:00 B3 */
    }
    atomic_store(&g_last_event_ns, c->start_ns);
    clock_publish(c->start_ns, mono_ns(), 1.0);

    g_owner = pthread_self();
    atomic_store(&g_stop, 0);
    atomic_store(&g_alive, 1);
    atomic_store(&g_phase, PH_RUNNING);
    if (pthread_create(&g_thread, NULL, connector_main, c) != 0) {
        atomic_store(&g_alive, 0);
        atomic_store(&g_phase, PH_NEW);
        rc = NL_INTERNAL_ERROR;
    }
    pthread_mutex_unlock(&g_api_mu);
    return rc;
}

EXPORT int32_t DLLInitializeLogin(const wchar_t *key, const wchar_t *user, const wchar_t *pass, TStateCallback state,
                                  void *history, void *orderChange, void *account, TNewTradeCallback newTrade,
                                  void *newDaily, void *priceBook, void *offerBook, void *historyTrade,
                                  void *progress, TTinyBookCallback tinyBook)
{
    void *slots[8] = {history, orderChange, account, newDaily, priceBook, offerBook, historyTrade, progress};
    if (atomic_load(&g_phase) == PH_NEW) routing_init(orderChange, account); /* before the thread can log in */
    return initialize(1, key, user, pass, state, newTrade, tinyBook, slots, 8);
}

EXPORT int32_t DLLInitializeMarketLogin(const wchar_t *key, const wchar_t *user, const wchar_t *pass,
                                        TStateCallback state, TNewTradeCallback newTrade, void *newDaily,
                                        void *priceBook, void *offerBook, void *historyTrade, void *progress,
                                        TTinyBookCallback tinyBook)
{
    void *slots[5] = {newDaily, priceBook, offerBook, historyTrade, progress};
    return initialize(0, key, user, pass, state, newTrade, tinyBook, slots, 5);
}

EXPORT int32_t DLLFinalize(void)
{
    int32_t rc = request_begin();
    if (rc != NL_OK) return rc;
    double p[P_COUNT];
    params_snapshot(p);
    if (p[P_FINALIZE_HANG_MS] > 0) {
        struct timespec ts = {(time_t)(p[P_FINALIZE_HANG_MS] / 1000), (long)(p[P_FINALIZE_HANG_MS] * 1e6) % NS_PER_S};
        nanosleep(&ts, NULL);
    }
    atomic_store(&g_stop, 1);
    wake_connector();
    pthread_join(g_thread, NULL); /* after this no callback runs on the connector thread */
    routing_finalize();
    /* the real DLL reports the disconnection from inside DLLFinalize, synchronously on the caller's thread */
    stat_add(S_FINALIZE_STATES, 1);
    emit_state(2, 0);
    atomic_store(&g_fin_done, 1);
    atomic_store(&g_market_up, 0);
    atomic_store(&g_phase, PH_FINALIZED);
    pthread_mutex_lock(&g_sub_mu);
    for (int i = 0; i < g_ninstr; i++) g_instr[i].sub_trade = g_instr[i].sub_depth = 0;
    g_npending = 0;
    atomic_store(&g_nsub, 0);
    pthread_mutex_unlock(&g_sub_mu);
    request_end();
    return NL_OK;
}

/* ------------------------------------------------------------------------------------------------------------
 * Exported API: subscriptions
 * ------------------------------------------------------------------------------------------------------------ */
enum { SUB_TRADE, SUB_DEPTH };

static int32_t subscription(const wchar_t *ticker, const wchar_t *exch, int kind, int on)
{
    if (!ticker || !exch || !ticker[0] || !exch[0]) return NL_INVALID_ARGS;
    int is_f = wcscmp(exch, L"F") == 0;
    if (!is_f && wcscmp(exch, L"B") != 0) return NL_EXCHANGE_UNKNOWN;
    if (!atomic_load(&g_market_up)) return NL_NOT_INITIALIZED; /* real pitfall: subscribing before (2,4) */
    int root = is_f ? ticker_root(ticker) : -1;                 /* this market has only the B3 minis */
    int32_t rc = NL_OK;
    pthread_mutex_lock(&g_sub_mu);
    int idx = -1;
    for (int i = 0; i < g_ninstr && idx < 0; i++)
        if (wcsncmp(g_instr[i].ticker, ticker, TICKER_MAX - 1) == 0 && wcscmp(g_instr[i].exch, exch) == 0) idx = i;
    if (idx < 0 && on) {
        if (g_ninstr == MAX_INSTR) {
            rc = NL_OUT_OF_RANGE;
        } else {
            idx = g_ninstr++;
            wcopy(g_instr[idx].ticker, ticker, TICKER_MAX);
            wcopy(g_instr[idx].exch, exch, 8);
            g_instr[idx].root = root;
        }
    }
    if (idx >= 0) {
        Instr *in = &g_instr[idx];
        int *flag = kind == SUB_TRADE ? &in->sub_trade : &in->sub_depth;
        int was_any = in->sub_trade || in->sub_depth, changed = *flag != on;
        *flag = on;
        if (in->root < 0) { /* NL_OK now; the connector reports it through the invalid-ticker callback */
            if (on && !was_any && g_npending < MAX_PENDING) g_pending[g_npending++] = idx;
        } else if (changed && kind == SUB_TRADE) {
            in->need_tiny = on;
            atomic_fetch_add(&g_nsub, on ? 1 : -1);
        } else if (changed) {
            in->need_depth = on;
        }
    }
    atomic_fetch_add_explicit(&g_sub_gen, 1, memory_order_release);
    pthread_mutex_unlock(&g_sub_mu);
    wake_connector();
    return rc;
}

static int32_t subscription_request(const wchar_t *ticker, const wchar_t *exch, int kind, int on)
{
    int32_t rc = request_begin();
    if (rc != NL_OK) return rc;
    rc = subscription(ticker, exch, kind, on);
    request_end();
    return rc;
}

static int32_t depth_request(const TConnectorAssetIdentifier *asset, int on)
{
    int32_t rc = request_begin();
    if (rc != NL_OK) return rc;
    if (!asset) rc = NL_INVALID_ARGS;
    else if (asset->Version != 0) rc = NL_VERSION_NOT_SUPPORTED;
    else rc = subscription(asset->Ticker, asset->Exchange, SUB_DEPTH, on);
    request_end();
    return rc;
}

EXPORT int32_t SubscribeTicker(const wchar_t *ticker, const wchar_t *exchange)
{
    return subscription_request(ticker, exchange, SUB_TRADE, 1);
}

EXPORT int32_t UnsubscribeTicker(const wchar_t *ticker, const wchar_t *exchange)
{
    return subscription_request(ticker, exchange, SUB_TRADE, 0);
}

EXPORT int32_t SubscribePriceDepth(TConnectorAssetIdentifier *asset) { return depth_request(asset, 1); }
EXPORT int32_t UnsubscribePriceDepth(TConnectorAssetIdentifier *asset) { return depth_request(asset, 0); }

/* ------------------------------------------------------------------------------------------------------------
 * Exported API: callback setters, clock
 * ------------------------------------------------------------------------------------------------------------ */
#define DEFINE_SETTER(name, type, slot)                                                                        \
    EXPORT int32_t name(type cb)                                                                               \
    {                                                                                                          \
        int32_t rc = request_begin();                                                                          \
        if (rc != NL_OK) return rc;                                                                            \
        atomic_store(&slot, cb);                                                                               \
        request_end();                                                                                         \
        return NL_OK;                                                                                          \
    }

DEFINE_SETTER(SetStateCallback, TStateCallback, g_cb_state)
DEFINE_SETTER(SetTradeCallback, TNewTradeCallback, g_cb_trade_v1)
DEFINE_SETTER(SetTradeCallbackV2, TConnectorTradeCallback, g_cb_trade_v2)
DEFINE_SETTER(SetTinyBookCallback, TTinyBookCallback, g_cb_tiny)
DEFINE_SETTER(SetPriceDepthCallback, TConnectorPriceDepthCallback, g_cb_depth)
DEFINE_SETTER(SetInvalidTickerCallback, TInvalidTickerCallback, g_cb_invalid)

#ifndef PROFITSIM_PRE_4_0_0_41
/* Added by 4.0.0.41 (MAN42): their presence tells a build with the depth/trade-V2/resubscribe fixes. The watchdog
 * here never sees a frozen thread, so the state is always shsResponsive and the callback never fires. */
static _Atomic(TSystemHealthCallback) g_cb_health;
DEFINE_SETTER(SetHealthCallback, TSystemHealthCallback, g_cb_health)

EXPORT int32_t GetHealthStatus(int32_t *state)
{
    if (atomic_load(&g_phase) != PH_RUNNING) return NL_NOT_INITIALIZED;
    if (!state) return NL_INVALID_ARGS;
    *state = 0;
    return NL_OK;
}
#endif

EXPORT int32_t GetServerClock(double *dtDate, int32_t *year, int32_t *month, int32_t *day, int32_t *hour,
                              int32_t *min, int32_t *sec, int32_t *msec)
{
    int32_t rc = request_begin();
    if (rc != NL_OK) return rc;
    if (!dtDate || !year || !month || !day || !hour || !min || !sec || !msec) {
        request_end();
        return NL_INVALID_ARGS;
    }
    double p[P_COUNT];
    params_snapshot(p);
    /* a server clock kept in another zone reads as B3 time shifted by that zone's offset from B3 */
    int64_t utc_ns = clock_now() + (int64_t)(p[P_CLOCK_OFFSET_S] * 1e9), local_ns = utc_ns + B3_UTC_OFFSET_NS;
    Civil c;
    civil_from_utc_ns(utc_ns, &c);
    *dtDate = 25569.0 + (double)local_ns / (86400.0 * NS_PER_S); /* Delphi TDateTime: days since 1899-12-30 */
    *year = c.y;
    *month = c.mo;
    *day = c.d;
    *hour = c.h;
    *min = c.mi;
    *sec = c.s;
    *msec = c.ms;
    request_end();
    return NL_OK;
}

/* ------------------------------------------------------------------------------------------------------------
 * Exported API: accessors, valid only synchronously inside the callback they belong to
 * ------------------------------------------------------------------------------------------------------------ */
static int32_t misuse(void)
{
    stat_add(S_MISUSE, 1);
    return NL_INVALID_ARGS;
}

EXPORT int32_t TranslateTrade(void *tradeHandle, TConnectorTrade *out)
{
    if (atomic_load(&g_phase) != PH_RUNNING) return NL_NOT_INITIALIZED;
    /* the thread test comes first: only the connector thread may look at the handle */
    if (!t_is_connector || g_cb_kind != CB_TRADE_V2 || tradeHandle != (const void *)g_cur_trade) return misuse();
    const TradeRecord *rec = g_cur_trade;
    if (rec->magic != TRADE_MAGIC || rec->seq != g_trade_seq) return misuse();
    if (!out) return NL_INVALID_ARGS;
    if (out->Version != 0) return NL_VERSION_NOT_SUPPORTED;
    *out = rec->trade;
    return NL_OK;
}

/* Validates a depth accessor call; on success *in is the instrument whose depth callback is running. */
static int32_t depth_accessor(const TConnectorAssetIdentifier *asset, uint8_t side, const Instr **in)
{
    if (atomic_load(&g_phase) != PH_RUNNING) return NL_NOT_INITIALIZED;
    if (!t_is_connector || g_cb_kind != CB_DEPTH || !g_cur_depth) return misuse();
    if (!asset || !asset->Ticker || !asset->Exchange) return NL_INVALID_ARGS;
    if (asset->Version != 0) return NL_VERSION_NOT_SUPPORTED;
    if (wcscmp(asset->Ticker, g_cur_depth->ticker) != 0 || wcscmp(asset->Exchange, L"F") != 0) return misuse();
    if (side > SIDE_ASK) return NL_INVALID_ARGS;
    *in = g_cur_depth;
    return NL_OK;
}

EXPORT int32_t GetPriceDepthSideCount(TConnectorAssetIdentifier *asset, uint8_t side)
{
    const Instr *in;
    int32_t rc = depth_accessor(asset, side, &in);
    return rc != NL_OK ? rc : in->side[side].n + (in->theoric ? 1 : 0);
}

EXPORT int32_t GetPriceGroup(TConnectorAssetIdentifier *asset, uint8_t side, int32_t position,
                             TConnectorPriceGroup *out)
{
    const Instr *in;
    int32_t rc = depth_accessor(asset, side, &in);
    if (rc != NL_OK) return rc;
    if (!out) return NL_INVALID_ARGS;
    if (out->Version != 0) return NL_VERSION_NOT_SUPPORTED;
    const Side *sd = &in->side[side];
    if (in->theoric) {
        if (position == 0) { /* the auction's theoretical level leads the side */
            out->Price = -__builtin_inf();
            out->Count = 0;
            out->Quantity = sd->n ? sd->lv[0].qty : 0;
            out->PriceGroupFlags = PG_IS_THEORIC;
            return NL_OK;
        }
        position--;
    }
    if (position < 0 || position >= sd->n) return NL_OUT_OF_RANGE;
    const Level *l = &sd->lv[position];
    out->Price = (double)l->px * k_roots[in->root].tick;
    out->Count = (uint32_t)level_count(l);
    out->Quantity = l->qty;
    out->PriceGroupFlags = 0;
    return NL_OK;
}

/* ------------------------------------------------------------------------------------------------------------
 * SIM_ control API (not part of the real DLL)
 * ------------------------------------------------------------------------------------------------------------ */
EXPORT int32_t SIM_SetParam(const char *name, double value)
{
    if (!name) return NL_INVALID_ARGS;
    for (int i = 0; i < P_COUNT; i++) {
        const ParamDef *d = &k_params[i];
        if (strcmp(name, d->name) != 0) continue;
        if (!(value >= d->lo && value <= d->hi)) return NL_INVALID_ARGS; /* also rejects NaN */
        if (d->integral && value != (double)(int64_t)value) return NL_INVALID_ARGS;
        pthread_mutex_lock(&g_param_mu);
        g_param[i] = value;
        pthread_mutex_unlock(&g_param_mu);
        atomic_fetch_add_explicit(&g_param_gen, 1, memory_order_release);
        wake_connector();
        return NL_OK;
    }
    return routing_set_param(name, value); /* the routing_* parameters live with routing */
}

EXPORT int64_t SIM_GetStat(const char *name)
{
    static const char *const names[S_COUNT] = {
        [S_VIOLATIONS] = "violations", [S_FOREIGN] = "foreign_thread_calls", [S_MISUSE] = "accessor_misuse",
        [S_CALLBACKS] = "callbacks", [S_GENERATED] = "trades_generated", [S_DELIVERED] = "trades_delivered",
        [S_UNDELIVERED] = "undelivered", [S_AFTER_FIN] = "callbacks_after_finalize",
        [S_REGIME_SWITCHES] = "regime_switches", [S_DEPTH_BOOKS] = "depth_books",
        [S_POST_FLUSH_ADDS] = "post_flush_adds", [S_DELETE_FROM] = "delete_from", [S_THEORIC] = "theoric",
        [S_BOTH_SIDES] = "both_sides", [S_RECONNECTS] = "reconnects", [S_FINALIZE_STATES] = "finalize_states",
    };
    if (!name) return -1;
    for (int i = 0; i < S_COUNT; i++)
        if (strcmp(name, names[i]) == 0) return stat_get(i);
    if (strcmp(name, "initialized") == 0) return atomic_load(&g_phase) == PH_RUNNING;
    if (strcmp(name, "finalized") == 0) return atomic_load(&g_phase) == PH_FINALIZED;
    if (strcmp(name, "connector_alive") == 0) return atomic_load(&g_alive);
    if (strcmp(name, "subscribed") == 0) return atomic_load(&g_nsub);
    return routing_get_stat(name);
}

/* The signal regime a scenario market was in at a trade (TradeNumber as delivered): informative -1 none,
 * 0 orderflow, 1 liquidity, 2 tape, 3 footprint; edge in round-trip costs. NL_NOT_FOUND for a ticker without a
 * scenario market or a trade number outside the regimes drawn so far. Any thread. */
EXPORT int32_t SIM_RegimeAt(const wchar_t *ticker, int64_t trade_number, int32_t *informative, double *edge)
{
    if (!ticker) return NL_INVALID_ARGS;
    int idx = -1;
    pthread_mutex_lock(&g_sub_mu);
    for (int i = 0; i < g_ninstr && idx < 0; i++)
        if (g_instr[i].root >= 0 && wcsncmp(g_instr[i].ticker, ticker, TICKER_MAX - 1) == 0) idx = i;
    pthread_mutex_unlock(&g_sub_mu); /* entries are never removed: idx stays valid */
    if (idx < 0) return NL_NOT_FOUND;
    int32_t rc = NL_NOT_FOUND;
    pthread_mutex_lock(&g_regime_mu);
    const Model *m = g_instr[idx].model;
    if (m && m->nreg > 0) {
        int64_t n = trade_number - (int64_t)m->base, lo = 0, hi = m->nreg - 1;
        if (n >= 1 && n <= m->reg[hi].end) {
            while (lo < hi) { /* the last regime starting at or before n */
                int64_t mid = lo + (hi - lo + 1) / 2;
                if (m->reg[mid].start <= n) lo = mid;
                else hi = mid - 1;
            }
            if (informative) *informative = m->reg[lo].informative;
            if (edge) *edge = m->reg[lo].edge;
            rc = NL_OK;
        }
    }
    pthread_mutex_unlock(&g_regime_mu);
    return rc;
}

EXPORT int32_t SIM_Version(void) { return 1; }

/* ------------------------------------------------------------------------------------------------------------
 * What profitsim_routing.c may use (profitsim.h): thin wrappers, so the market's state stays private here
 * ------------------------------------------------------------------------------------------------------------ */
int32_t psim_request_begin(void) { return request_begin(); }
void psim_request_end(void) { request_end(); }
int psim_on_connector(void) { return t_is_connector; }
int psim_cb_begin(void) { return cb_begin(CB_OTHER); } /* CB_OTHER: no market accessor works inside it */
void psim_cb_end(void) { cb_end(); }
int32_t psim_misuse(void) { return misuse(); }
void psim_emit_state(int32_t type, int32_t result) { emit_state(type, result); }
void psim_wake(void) { wake_connector(); }
int64_t psim_sim_now(void) { return clock_now(); }
uint64_t psim_seed(void) { return g_conn.seed; }
int psim_market_up(void) { return atomic_load(&g_market_up) && !g_conn.down; }

void psim_systemtime(int64_t utc_ns, SYSTEMTIME *out)
{
    Civil c;
    civil_from_utc_ns(utc_ns, &c);
    *out = (SYSTEMTIME){(uint16_t)c.y, (uint16_t)c.mo, (uint16_t)c.dow, (uint16_t)c.d,
                        (uint16_t)c.h, (uint16_t)c.mi, (uint16_t)c.s, (uint16_t)c.ms};
}

int psim_ticker_valid(const wchar_t *ticker, const wchar_t *exch)
{
    return ticker && exch && wcscmp(exch, L"F") == 0 && ticker_root(ticker) >= 0;
}

int psim_book(const wchar_t *ticker, const wchar_t *exch, int cap, double *bid_px, int64_t *bid_qty, int *nb,
              double *ask_px, int64_t *ask_qty, int *na, double *tick)
{
    int idx = -1;
    pthread_mutex_lock(&g_sub_mu);
    for (int i = 0; i < g_ninstr && idx < 0; i++)
        if (g_instr[i].root >= 0 && wcsncmp(g_instr[i].ticker, ticker, TICKER_MAX - 1) == 0 &&
            wcscmp(g_instr[i].exch, exch) == 0)
            idx = i;
    pthread_mutex_unlock(&g_sub_mu); /* entries are never removed; the book itself is the connector's */
    if (idx < 0) return -1;
    const Instr *in = &g_instr[idx];
    if (!in->ready || !in->active) return -1; /* no running market: nobody to trade with */
    double t = in->model ? in->model->spec->tick : k_roots[in->root].tick;
    *tick = t;
    *nb = in->side[SIDE_BID].n < cap ? in->side[SIDE_BID].n : cap;
    *na = in->side[SIDE_ASK].n < cap ? in->side[SIDE_ASK].n : cap;
    for (int i = 0; i < *nb; i++) {
        bid_px[i] = (double)in->side[SIDE_BID].lv[i].px * t;
        bid_qty[i] = in->side[SIDE_BID].lv[i].qty;
    }
    for (int i = 0; i < *na; i++) {
        ask_px[i] = (double)in->side[SIDE_ASK].lv[i].px * t;
        ask_qty[i] = in->side[SIDE_ASK].lv[i].qty;
    }
    return 0;
}
