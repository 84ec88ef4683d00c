/*
 * profitsim_routing.c - the order-routing side of the ProfitDLL stand-in (spec §3.4, §4, §5.2-§5.7, §6.2, §6.4).
 *
 * A simulated broker behind the real routing ABI: orders sent by the owner thread are queued, and the connector
 * thread (the one that delivers every callback) accepts, matches and reports them, so order callbacks arrive on
 * the same thread as market data, serially, as in the real DLL. Orders trade against the stand-in's own market
 * (profitsim.c's books and trades, read through profitsim.h): market orders take the touch level by level, limits
 * rest and fill when the tape trades through them, stop-limits trigger on a trade at or through the stop.
 * Rejects (status 8 with a text, plus a trading-message result) for a market not running, a price outside the band
 * around the last trade, a quantity over the limit, a wrong routing password.
 *
 * Hostile modes (routing_* parameters, each a rate per order, chosen by hashing seed and order id so a run is
 * reproducible): deliver one update twice, swap the last two updates of one processing step, drop the routing
 * connection right after an order is working (updates, fills included, queue until it is back), and let a fill win
 * the race against a cancel (the cancel is then rejected).
 *
 * Broker state file (SIM_SetRoutingFile, before DLLInitializeLogin): orders and positions are loaded at init and
 * rewritten atomically (tmp + fsync + rename) after every change, so a new process sees the same broker and the
 * local ids carry on where the previous process stopped.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

#include "profitsim.h"

/* ------------------------------------------------------------------------------------------------------------
 * ABI (x64 layouts of spec §5; inline WideChar arrays are UTF-16 code units, byte for byte as on Windows)
 * ------------------------------------------------------------------------------------------------------------ */
typedef struct {
    uint8_t Version;
    int32_t BrokerID;
    const wchar_t *AccountID;
    const wchar_t *SubAccountID;
    int64_t Reserved;
} TConnectorAccountIdentifier;

typedef struct {
    uint8_t Version;
    int32_t BrokerID;
    uint16_t AccountID[100];
    int32_t AccountIDLength;
    uint16_t SubAccountID[100];
    int32_t SubAccountIDLength;
    int64_t Reserved;
} TConnectorAccountIdentifierOut;

typedef struct {
    uint8_t Version;
    wchar_t *Ticker;
    int32_t TickerLength;
    wchar_t *Exchange;
    int32_t ExchangeLength;
    uint8_t FeedType;
} TConnectorAssetIdentifierOut;

typedef struct {
    uint8_t Version;
    int64_t LocalOrderID;
    const wchar_t *ClOrderID;
} TConnectorOrderIdentifier;

typedef struct {
    uint8_t Version;
    TConnectorAccountIdentifier AccountID;
    TConnectorAssetIdentifier AssetID;
    const wchar_t *Password;
    uint8_t OrderType, OrderSide;
    double Price, StopPrice;
    int64_t Quantity;
    int64_t MessageID; /* V2, written back */
} TConnectorSendOrder;

typedef struct {
    uint8_t Version;
    TConnectorAccountIdentifier AccountID;
    TConnectorOrderIdentifier OrderID;
    const wchar_t *Password;
    double Price, StopPrice;
    int64_t Quantity;
    int64_t MessageID; /* V1 */
} TConnectorChangeOrder;

typedef struct {
    uint8_t Version;
    TConnectorAccountIdentifier AccountID;
    TConnectorOrderIdentifier OrderID;
    const wchar_t *Password;
    int64_t MessageID; /* V1 */
} TConnectorCancelOrder;

typedef struct {
    uint8_t Version;
    TConnectorAccountIdentifier AccountID;
    const wchar_t *Password;
} TConnectorCancelAllOrders;

typedef struct {
    uint8_t Version;
    TConnectorAccountIdentifier AccountID;
    TConnectorAssetIdentifier AssetID;
    const wchar_t *Password;
    double Price;
    uint8_t PositionType; /* V1 */
    int64_t MessageID;    /* V2 */
} TConnectorZeroPosition;

typedef struct {
    uint8_t Version;
    TConnectorAccountIdentifier AccountID;
    wchar_t *BrokerName;
    int32_t BrokerNameLength;
    wchar_t *OwnerName;
    int32_t OwnerNameLength;
    wchar_t *SubOwnerName;
    int32_t SubOwnerNameLength;
    uint32_t AccountFlags;
    uint8_t AccountType; /* V1 */
} TConnectorTradingAccountOut;

typedef struct {
    uint8_t Version;
    TConnectorAccountIdentifier AccountID;
    TConnectorAssetIdentifier AssetID;
    int64_t OpenQuantity;
    double OpenAveragePrice;
    uint8_t OpenSide;
    double DailyAverageSellPrice;
    int64_t DailySellQuantity;
    double DailyAverageBuyPrice;
    int64_t DailyBuyQuantity;
    int64_t D1, D2, D3, Blocked, Pending, Alloc, Provision, DailyQuantity, DailyQuantityAvailable;
    uint8_t PositionType; /* V1 */
    int64_t EventID;      /* V2 */
} TConnectorTradingAccountPosition;

typedef struct {
    uint8_t Version;
    TConnectorOrderIdentifier OrderID;
    TConnectorAccountIdentifier AccountID;
    TConnectorAssetIdentifier AssetID;
    int64_t Quantity, TradedQuantity, LeavesQuantity;
    double Price, StopPrice, AveragePrice;
    uint8_t OrderSide, OrderType, OrderStatus, ValidityType;
    SYSTEMTIME Date, LastUpdate, CloseDate, ValidityDate;
    const wchar_t *TextMessage;
    int64_t EventID; /* V1 */
} TConnectorOrder;

typedef struct {
    uint8_t Version;
    TConnectorOrderIdentifier OrderID;
    TConnectorAccountIdentifierOut AccountID;
    TConnectorAssetIdentifierOut AssetID;
    int64_t Quantity, TradedQuantity, LeavesQuantity;
    double Price, StopPrice, AveragePrice;
    uint8_t OrderSide, OrderType, OrderStatus, ValidityType;
    SYSTEMTIME Date, LastUpdate, CloseDate, ValidityDate;
    wchar_t *TextMessage;
    int32_t TextMessageLength;
    int64_t EventID; /* V1 */
} TConnectorOrderOut;

typedef struct {
    uint8_t Version;
    int32_t BrokerID;
    TConnectorOrderIdentifier OrderID;
    int64_t MessageID;
    uint8_t ResultCode;
    const wchar_t *Message;
    int32_t MessageLength;
} TConnectorTradingMessageResult;

#define CHECK_LAYOUT(t, size) _Static_assert(sizeof(t) == (size), #t " size (spec §5)")
CHECK_LAYOUT(TConnectorAccountIdentifier, 32);
CHECK_LAYOUT(TConnectorAccountIdentifierOut, 424);
CHECK_LAYOUT(TConnectorAssetIdentifierOut, 40);
CHECK_LAYOUT(TConnectorOrderIdentifier, 24);
CHECK_LAYOUT(TConnectorSendOrder, 120);
CHECK_LAYOUT(TConnectorChangeOrder, 104);
CHECK_LAYOUT(TConnectorCancelOrder, 80);
CHECK_LAYOUT(TConnectorCancelAllOrders, 48);
CHECK_LAYOUT(TConnectorZeroPosition, 104);
CHECK_LAYOUT(TConnectorTradingAccountOut, 96);
CHECK_LAYOUT(TConnectorTradingAccountPosition, 216);
CHECK_LAYOUT(TConnectorOrder, 232);
CHECK_LAYOUT(TConnectorOrderOut, 640);
CHECK_LAYOUT(TConnectorTradingMessageResult, 64);
_Static_assert(offsetof(TConnectorOrderOut, AssetID) == 456 && offsetof(TConnectorOrderOut, TextMessage) == 616,
               "TConnectorOrderOut offsets");
_Static_assert(offsetof(TConnectorOrder, TextMessage) == 216, "TConnectorOrder.TextMessage");
_Static_assert(offsetof(TConnectorTradingAccountPosition, PositionType) == 200, "Position.PositionType");
_Static_assert(offsetof(TConnectorTradingMessageResult, Message) == 48, "TradingMessageResult.Message");

typedef void (*TAccountCallback)(int32_t broker, const wchar_t *brokerName, const wchar_t *account,
                                 const wchar_t *holder);
typedef void (*TOrderChangeCallback)(TAssetIDRec asset, int32_t broker, int32_t qty, int32_t traded, int32_t leaves,
                                     int32_t side, double price, double stop, double avg, int64_t profitId,
                                     const wchar_t *orderType, const wchar_t *account, const wchar_t *holder,
                                     const wchar_t *clOrdId, const wchar_t *status, const wchar_t *date,
                                     const wchar_t *text);
typedef void (*TConnectorOrderCallback)(TConnectorOrderIdentifier order);
typedef void (*TConnectorAccountCallback)(TConnectorAccountIdentifier account);
typedef void (*TConnectorTradingMessageResultCallback)(const TConnectorTradingMessageResult *result);
typedef int32_t (*TConnectorEnumerateOrdersProc)(const TConnectorOrder *order, intptr_t param);

enum { OT_MARKET = 1, OT_LIMIT = 2, OT_STOP_LIMIT = 4 };
enum { SIDE_BUY = 1, SIDE_SELL = 2 };
enum { ST_NEW = 0, ST_PARTIAL = 1, ST_FILLED = 2, ST_CANCELED = 4, ST_REPLACED = 5, ST_REJECTED = 8,
       ST_PENDING_NEW = 10 };
enum { RC_NOT_CONNECTED = 1, RC_REJECTED_BROKER = 7, RC_REJECTED_MARKET = 9, RC_ACCEPTED = 10 };

/* ------------------------------------------------------------------------------------------------------------
 * Parameters and counters (through SIM_SetParam / SIM_GetStat)
 * ------------------------------------------------------------------------------------------------------------ */
enum { R_MAX_QTY, R_BAND, R_DUP, R_REORDER, R_DROP, R_DROP_MS, R_RACE, R_COUNT };
static const struct {
    const char *name;
    double lo, hi, def;
} k_rparams[R_COUNT] = {
    [R_MAX_QTY] = {"routing_max_qty", 1, 1e9, 500},     /* larger orders are rejected */
    [R_BAND] = {"routing_band", 0, 1, 0.05},            /* limit/stop prices beyond last trade +- band: rejected */
    [R_DUP] = {"routing_dup_rate", 0, 1, 0},            /* orders with one update delivered twice */
    [R_REORDER] = {"routing_reorder_rate", 0, 1, 0},    /* orders with two updates swapped */
    [R_DROP] = {"routing_drop_rate", 0, 1, 0},          /* orders after whose New routing drops */
    [R_DROP_MS] = {"routing_drop_ms", 0, 600000, 300},  /* how long routing stays down */
    [R_RACE] = {"routing_cancel_race_rate", 0, 1, 0},   /* orders whose cancel loses the race to a fill */
};
static double g_rp[R_COUNT] = {500, 0.05, 0, 0, 0, 300, 0};

enum { RS_ORDERS, RS_UPDATES, RS_DUPS, RS_REORDERS, RS_DROPS, RS_RACES, RS_REJECTS, RS_FILLS, RS_SAVES,
       RS_SAVE_ERRORS, RS_LOADED, RS_COUNT };
static const char *const k_rstats[RS_COUNT] = {
    "routing_orders", "routing_updates", "routing_dups", "routing_reorders", "routing_drops", "routing_races",
    "routing_rejects", "routing_fills", "routing_saves", "routing_save_errors", "routing_loaded_orders"};
static _Atomic int64_t g_rs[RS_COUNT];

/* ------------------------------------------------------------------------------------------------------------
 * Broker state
 * ------------------------------------------------------------------------------------------------------------ */
#define TXT 96
#define SYM 32
#define MAX_ORDERS 8192
#define MAX_POS 256
#define BOOK_CAP 32

typedef struct {
    int32_t broker;
    const wchar_t *id, *broker_name, *owner;
} Account;
static const Account k_accounts[2] = {
    {1, L"SIM-0001", L"Simulated Broker", L"Simulated Trader"},
    {1, L"SIM-0002", L"Simulated Broker", L"Simulated Trader Two"},
};
#define NACCOUNTS 2
static const wchar_t k_password[] = L"simulator"; /* the stand-in's routing (signature) password */

typedef struct {
    int64_t local_id, message_id;
    int acct;
    wchar_t cl_ord[SYM], ticker[SYM], exch[8], text[TXT];
    uint8_t side, type, status;
    int64_t qty, traded, leaves;
    double price, stop, avg;
    int triggered;          /* stop-limit: the stop was hit, now a plain limit */
    int64_t created_ns, updated_ns;
    int dup_done, reorder_done, drop_done;
} ROrder;

typedef struct {
    int acct;
    wchar_t ticker[SYM], exch[8];
    int64_t open; /* signed contracts */
    double avg;
    int64_t buy_qty, sell_qty;
    double buy_avg, sell_avg;
    int64_t event_id;
} RPos;

/* What the connector delivers, in order: a snapshot of an order, or a trading-message result. */
enum { OUT_ORDER, OUT_RESULT };
typedef struct {
    int kind;
    ROrder o;
    int32_t broker;
    int64_t message_id;
    uint8_t code;
    wchar_t message[TXT];
} Out;

/* A request from the owner thread, carried out on the connector thread. */
enum { CMD_NEW, CMD_CHANGE, CMD_CANCEL, CMD_CANCEL_ALL };
typedef struct {
    int kind;
    int64_t local_id, message_id;
    int acct;
    double price, stop;
    int64_t qty;
    int bad_password;
} Cmd;

static pthread_mutex_t g_rt_mu = PTHREAD_MUTEX_INITIALIZER; /* everything below */
static ROrder *g_orders;
static int g_norders, g_cap_orders;
static RPos g_pos[MAX_POS];
static int g_npos;
static int64_t g_next_id = 1, g_next_msg = 1, g_event_id;
static Cmd *g_cmds;
static int g_ncmds, g_cap_cmds;
static Out *g_out;
static int g_nout, g_cap_out;
static double g_last_px[64]; /* last trade per ticker seen (small table: the stand-in has a few tickers) */
static wchar_t g_last_tk[64][SYM];
static int g_nlast;
static char g_file[4096];
static atomic_int g_enabled; /* read without the lock by routing_on_trade: market-only runs pay nothing */
static int g_loaded, g_routing_up, g_logged_in;
static int64_t g_down_until = -1; /* monotonic ns when a dropped routing connection comes back; -1 = not down */
static int g_drop_pending;

static _Atomic(TAccountCallback) g_cb_account;
static _Atomic(TOrderChangeCallback) g_cb_order_change;
static _Atomic(TConnectorOrderCallback) g_cb_order;
static _Atomic(TConnectorAccountCallback) g_cb_history;
static _Atomic(TConnectorTradingMessageResultCallback) g_cb_result;

/* the order snapshot whose callback is running (connector thread only): what GetOrderDetails may read */
static const ROrder *g_cur_order;

static int64_t mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void wcp(wchar_t *dst, const wchar_t *src, size_t cap)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < cap; i++) dst[i] = src[i];
    dst[i] = 0;
}

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* is this order subject to hostile mode `salt`? A pure function of (seed, order id, mode): reproducible */
static int chosen(int64_t local_id, int salt, double rate)
{
    if (rate <= 0) return 0;
    uint64_t h = mix(psim_seed() ^ mix((uint64_t)local_id * 0x100000001B3ull + (uint64_t)salt));
    return (double)(h >> 11) * 0x1.0p-53 < rate;
}

static void *grow(void *p, int *cap, int need, size_t elem)
{
    if (need <= *cap) return p;
    int n = *cap ? *cap * 2 : 64;
    while (n < need) n *= 2;
    void *q = realloc(p, (size_t)n * elem);
    if (!q) abort(); /* out of memory in a test stand-in: nothing sensible to do */
    *cap = n;
    return q;
}

static int find_account(const TConnectorAccountIdentifier *a)
{
    if (!a || !a->AccountID) return -1;
    for (int i = 0; i < NACCOUNTS; i++)
        if (a->BrokerID == k_accounts[i].broker && wcscmp(a->AccountID, k_accounts[i].id) == 0) return i;
    return -1;
}

static ROrder *find_order(int64_t local_id, const wchar_t *cl_ord)
{
    for (int i = 0; i < g_norders; i++)
        if ((local_id > 0 && g_orders[i].local_id == local_id) ||
            (local_id <= 0 && cl_ord && cl_ord[0] && wcscmp(g_orders[i].cl_ord, cl_ord) == 0))
            return &g_orders[i];
    return NULL;
}

static int working(const ROrder *o)
{
    return o->status == ST_NEW || o->status == ST_PARTIAL || o->status == ST_REPLACED;
}

static RPos *position(int acct, const wchar_t *ticker, const wchar_t *exch, int create)
{
    for (int i = 0; i < g_npos; i++)
        if (g_pos[i].acct == acct && wcscmp(g_pos[i].ticker, ticker) == 0 && wcscmp(g_pos[i].exch, exch) == 0)
            return &g_pos[i];
    if (!create || g_npos == MAX_POS) return NULL;
    RPos *p = &g_pos[g_npos++];
    memset(p, 0, sizeof *p);
    p->acct = acct;
    wcp(p->ticker, ticker, SYM);
    wcp(p->exch, exch, 8);
    return p;
}

static double last_price(const wchar_t *ticker)
{
    for (int i = 0; i < g_nlast; i++)
        if (wcscmp(g_last_tk[i], ticker) == 0) return g_last_px[i];
    return 0;
}

/* ------------------------------------------------------------------------------------------------------------
 * Broker state file: one line per record, ASCII; written to <file>.tmp, fsynced, renamed over <file>
 * ------------------------------------------------------------------------------------------------------------ */
static void put_w(FILE *f, const wchar_t *s)
{
    fputc('"', f);
    for (; *s; s++) fputc((*s >= 32 && *s < 127 && *s != '"') ? (int)*s : '?', f);
    fputc('"', f);
}

static int get_w(const char **p, wchar_t *dst, size_t cap)
{
    const char *s = *p;
    while (*s == ' ') s++;
    if (*s++ != '"') return -1;
    size_t i = 0;
    for (; *s && *s != '"'; s++)
        if (i + 1 < cap) dst[i++] = (wchar_t)(unsigned char)*s;
    dst[i] = 0;
    if (*s != '"') return -1;
    *p = s + 1;
    return 0;
}

static void save_locked(void)
{
    if (!g_file[0]) return;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", g_file);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        g_rs[RS_SAVE_ERRORS]++;
        return;
    }
    fprintf(f, "profitsim-broker 1\nnext %lld %lld %lld\n", (long long)g_next_id, (long long)g_next_msg,
            (long long)g_event_id);
    for (int i = 0; i < g_norders; i++) {
        const ROrder *o = &g_orders[i];
        fprintf(f, "order %lld %lld %d %u %u %u %lld %lld %lld %.17g %.17g %.17g %d %lld %lld ", (long long)o->local_id,
                (long long)o->message_id, o->acct, o->side, o->type, o->status, (long long)o->qty,
                (long long)o->traded, (long long)o->leaves, o->price, o->stop, o->avg, o->triggered,
                (long long)o->created_ns, (long long)o->updated_ns);
        put_w(f, o->cl_ord);
        fputc(' ', f);
        put_w(f, o->ticker);
        fputc(' ', f);
        put_w(f, o->exch);
        fputc(' ', f);
        put_w(f, o->text);
        fputc('\n', f);
    }
    for (int i = 0; i < g_npos; i++) {
        const RPos *p = &g_pos[i];
        fprintf(f, "pos %d %lld %.17g %lld %lld %.17g %.17g %lld ", p->acct, (long long)p->open, p->avg,
                (long long)p->buy_qty, (long long)p->sell_qty, p->buy_avg, p->sell_avg, (long long)p->event_id);
        put_w(f, p->ticker);
        fputc(' ', f);
        put_w(f, p->exch);
        fputc('\n', f);
    }
    int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, g_file) != 0) {
        g_rs[RS_SAVE_ERRORS]++;
        return;
    }
    g_rs[RS_SAVES]++;
}

static void push_cmd(const Cmd *c);

static void load_locked(void)
{
    FILE *f = g_file[0] ? fopen(g_file, "r") : NULL;
    if (!f) return; /* no file yet: a new broker */
    char line[2048];
    while (fgets(line, sizeof line, f)) {
        long long a, b, c, d, e, g, h, k;
        unsigned side, type, status;
        int acct, trig, n;
        double x, y, z;
        if (sscanf(line, "next %lld %lld %lld", &a, &b, &c) == 3) {
            g_next_id = a;
            g_next_msg = b;
            g_event_id = c;
        } else if (sscanf(line, "order %lld %lld %d %u %u %u %lld %lld %lld %lf %lf %lf %d %lld %lld %n", &a, &b, &acct,
                          &side, &type, &status, &c, &d, &e, &x, &y, &z, &trig, &g, &h, &n) == 15) {
            if (g_norders == MAX_ORDERS) break;
            g_orders = grow(g_orders, &g_cap_orders, g_norders + 1, sizeof *g_orders);
            ROrder *o = &g_orders[g_norders];
            memset(o, 0, sizeof *o);
            o->local_id = a;
            o->message_id = b;
            o->acct = acct;
            o->side = (uint8_t)side;
            o->type = (uint8_t)type;
            o->status = (uint8_t)status;
            o->qty = c;
            o->traded = d;
            o->leaves = e;
            o->price = x;
            o->stop = y;
            o->avg = z;
            o->triggered = trig;
            o->created_ns = g;
            o->updated_ns = h;
            o->dup_done = o->reorder_done = o->drop_done = 1; /* hostile modes apply to this process's orders */
            const char *p = line + n;
            if (get_w(&p, o->cl_ord, SYM) || get_w(&p, o->ticker, SYM) || get_w(&p, o->exch, 8) ||
                get_w(&p, o->text, TXT) || acct < 0 || acct >= NACCOUNTS)
                continue;
            g_norders++;
            g_rs[RS_LOADED]++;
            if (o->status == ST_PENDING_NEW) {
                /* the previous process took the order and died before processing it: the broker still has it
                   and goes on with it, so this process does (a lost PendingNew would never fill nor cancel) */
                Cmd cmd = {.kind = CMD_NEW, .local_id = o->local_id, .message_id = o->message_id};
                push_cmd(&cmd);
            }
        } else if (sscanf(line, "pos %d %lld %lf %lld %lld %lf %lf %lld %n", &acct, &a, &x, &b, &c, &y, &z, &k, &n) ==
                   8) {
            if (g_npos == MAX_POS || acct < 0 || acct >= NACCOUNTS) continue;
            RPos *p = &g_pos[g_npos];
            memset(p, 0, sizeof *p);
            const char *s = line + n;
            if (get_w(&s, p->ticker, SYM) || get_w(&s, p->exch, 8)) continue;
            p->acct = acct;
            p->open = a;
            p->avg = x;
            p->buy_qty = b;
            p->sell_qty = c;
            p->buy_avg = y;
            p->sell_avg = z;
            p->event_id = k;
            g_npos++;
        }
    }
    fclose(f);
}

/* ------------------------------------------------------------------------------------------------------------
 * Connector side: producing updates, matching, delivery
 * ------------------------------------------------------------------------------------------------------------ */
static void push_out(const Out *o)
{
    g_out = grow(g_out, &g_cap_out, g_nout + 1, sizeof *g_out);
    g_out[g_nout++] = *o;
}

/* One order update, with the dup hostile mode applied (reorder_step runs after a processing step). */
static void emit_order(ROrder *o, uint8_t status, const wchar_t *text)
{
    o->status = status;
    o->updated_ns = psim_sim_now();
    if (text) wcp(o->text, text, TXT);
    Out e = {.kind = OUT_ORDER, .o = *o};
    push_out(&e);
    g_rs[RS_UPDATES]++;
    if (status != ST_PENDING_NEW && !o->dup_done && chosen(o->local_id, 1, g_rp[R_DUP])) {
        o->dup_done = 1;
        push_out(&e); /* the same update again, as a broker re-send would */
        g_rs[RS_DUPS]++;
    }
}

/* reorder mode: the order's last two updates still queued change places (e.g. New before PendingNew, Filled
 * before PartiallyFilled), as updates crossing on different broker links would */
static void reorder_step(ROrder *o)
{
    if (o->reorder_done || !chosen(o->local_id, 2, g_rp[R_REORDER])) return;
    int j = -1, i = -1;
    for (int k = g_nout - 1; k >= 0 && i < 0; k--) {
        if (g_out[k].kind != OUT_ORDER || g_out[k].o.local_id != o->local_id) continue;
        if (j < 0) j = k;
        else if (g_out[k].o.status != g_out[j].o.status || g_out[k].o.traded != g_out[j].o.traded)
            i = k; /* swapping a duplicate with itself would show nothing */
    }
    if (i < 0) return;
    Out t = g_out[i];
    g_out[i] = g_out[j];
    g_out[j] = t;
    o->reorder_done = 1;
    g_rs[RS_REORDERS]++;
}

static void emit_result(const ROrder *o, int64_t message_id, uint8_t code, const wchar_t *message)
{
    Out e = {.kind = OUT_RESULT, .broker = k_accounts[o ? o->acct : 0].broker, .message_id = message_id, .code = code};
    if (o) e.o = *o;
    wcp(e.message, message, TXT);
    push_out(&e);
}

static void apply_fill(ROrder *o, int64_t q, double px)
{
    o->avg = (o->avg * (double)o->traded + px * (double)q) / (double)(o->traded + q);
    o->traded += q;
    o->leaves -= q;
    g_rs[RS_FILLS]++;
    RPos *p = position(o->acct, o->ticker, o->exch, 1);
    if (p) {
        int64_t d = o->side == SIDE_BUY ? q : -q;
        if (o->side == SIDE_BUY) {
            p->buy_avg = (p->buy_avg * (double)p->buy_qty + px * (double)q) / (double)(p->buy_qty + q);
            p->buy_qty += q;
        } else {
            p->sell_avg = (p->sell_avg * (double)p->sell_qty + px * (double)q) / (double)(p->sell_qty + q);
            p->sell_qty += q;
        }
        if (p->open == 0 || (p->open > 0) == (d > 0)) { /* opening or adding: the average moves */
            p->avg = (p->avg * (double)llabs(p->open) + px * (double)q) / (double)(llabs(p->open) + q);
            p->open += d;
        } else { /* reducing or flipping: the remainder keeps its price, a flip starts at this one */
            int64_t after = p->open + d;
            if (after == 0) p->avg = 0;
            else if ((after > 0) != (p->open > 0)) p->avg = px;
            p->open = after;
        }
        p->event_id = ++g_event_id;
    }
    emit_order(o, o->leaves == 0 ? ST_FILLED : ST_PARTIAL, NULL);
}

/* Fills a marketable order against the book's visible levels (the stand-in's market keeps its own flow; the
 * order takes what is shown without consuming it). Returns 0, or -1 when the ticker has no running market. */
static int take_book(ROrder *o)
{
    double bpx[BOOK_CAP], apx[BOOK_CAP], tick;
    int64_t bq[BOOK_CAP], aq[BOOK_CAP];
    int nb, na;
    if (psim_book(o->ticker, o->exch, BOOK_CAP, bpx, bq, &nb, apx, aq, &na, &tick) != 0) return -1;
    int buy = o->side == SIDE_BUY;
    const double *px = buy ? apx : bpx;
    const int64_t *qty = buy ? aq : bq;
    int n = buy ? na : nb;
    double limit = o->type == OT_MARKET ? (buy ? 1e300 : -1e300) : o->price;
    for (int i = 0; i < n && o->leaves > 0; i++) {
        if (buy ? px[i] > limit + 1e-9 : px[i] < limit - 1e-9) break;
        int64_t q = o->leaves < qty[i] ? o->leaves : qty[i];
        if (q > 0) apply_fill(o, q, px[i]);
    }
    return 0;
}

static const wchar_t *band_reject(const ROrder *o, double price, double stop)
{
    static wchar_t msg[TXT];
    double ref = last_price(o->ticker), band = g_rp[R_BAND];
    if (ref <= 0) return NULL; /* no trade seen yet: nothing to measure against */
    double lo = ref * (1 - band), hi = ref * (1 + band);
    if ((o->type != OT_MARKET && (price < lo || price > hi)) || (o->type == OT_STOP_LIMIT && (stop < lo || stop > hi))) {
        swprintf(msg, TXT, L"price outside the band %.2f..%.2f (last trade %.2f +- %g%%)", lo, hi, ref, band * 100);
        return msg;
    }
    return NULL;
}

static void reject(ROrder *o, int64_t message_id, uint8_t code, const wchar_t *text)
{
    emit_order(o, ST_REJECTED, text);
    emit_result(o, message_id, code, text);
    g_rs[RS_REJECTS]++;
}

/* a limit or triggered stop-limit that is marketable trades now; market orders always try */
static void try_match(ROrder *o)
{
    if (!working(o) || o->leaves <= 0) return;
    if (o->type == OT_STOP_LIMIT && !o->triggered) return;
    take_book(o);
}

static void do_new(const Cmd *c)
{
    ROrder *o = find_order(c->local_id, NULL);
    if (!o) return;
    wchar_t why[TXT];
    double bpx[1], apx[1], tick;
    int64_t bq[1], aq[1];
    int nb, na;
    if (c->bad_password) {
        reject(o, c->message_id, RC_REJECTED_BROKER, L"invalid routing password");
    } else if (!psim_market_up()) {
        reject(o, c->message_id, RC_NOT_CONNECTED, L"market not connected");
    } else if (psim_book(o->ticker, o->exch, 1, bpx, bq, &nb, apx, aq, &na, &tick) != 0) {
        swprintf(why, TXT, L"market closed for %ls (no trading session in the stand-in)", o->ticker);
        reject(o, c->message_id, RC_REJECTED_MARKET, why);
    } else if (o->qty > (int64_t)g_rp[R_MAX_QTY]) {
        swprintf(why, TXT, L"quantity %lld over the limit %lld", (long long)o->qty, (long long)g_rp[R_MAX_QTY]);
        reject(o, c->message_id, RC_REJECTED_BROKER, why);
    } else {
        const wchar_t *band = band_reject(o, o->price, o->stop);
        if (band) {
            reject(o, c->message_id, RC_REJECTED_BROKER, band);
        } else {
            swprintf(o->cl_ord, SYM, L"SIM%lld", (long long)o->local_id);
            emit_order(o, ST_NEW, L"");
            emit_result(o, c->message_id, RC_ACCEPTED, L"accepted");
            try_match(o);
            if (working(o) && !o->drop_done && chosen(o->local_id, 3, g_rp[R_DROP])) {
                o->drop_done = 1;
                g_drop_pending = 1; /* after this step's updates are out: a working order at the broker */
            }
        }
    }
    reorder_step(o);
}

static void do_change(const Cmd *c)
{
    ROrder *o = find_order(c->local_id, NULL);
    if (!o) return;
    wchar_t why[TXT];
    if (c->bad_password) {
        emit_result(o, c->message_id, RC_REJECTED_BROKER, L"invalid routing password");
    } else if (!working(o)) {
        emit_result(o, c->message_id, RC_REJECTED_BROKER, L"change rejected: the order is not working");
    } else if (c->qty <= o->traded || c->qty > (int64_t)g_rp[R_MAX_QTY]) {
        swprintf(why, TXT, L"change rejected: quantity %lld (traded %lld, limit %lld)", (long long)c->qty,
                 (long long)o->traded, (long long)g_rp[R_MAX_QTY]);
        emit_result(o, c->message_id, RC_REJECTED_BROKER, why);
    } else {
        const wchar_t *band = band_reject(o, o->type == OT_MARKET ? o->price : c->price, c->stop);
        if (band) {
            emit_result(o, c->message_id, RC_REJECTED_BROKER, band);
        } else {
            if (o->type != OT_MARKET) o->price = c->price;
            if (o->type == OT_STOP_LIMIT) o->stop = c->stop;
            o->leaves = c->qty - o->traded;
            o->qty = c->qty;
            emit_order(o, ST_REPLACED, L"");
            emit_result(o, c->message_id, RC_ACCEPTED, L"accepted");
            try_match(o);
        }
    }
    reorder_step(o);
}

static void do_cancel(ROrder *o, int64_t message_id, int bad_password)
{
    if (bad_password) {
        emit_result(o, message_id, RC_REJECTED_BROKER, L"invalid routing password");
    } else if (!working(o)) {
        emit_result(o, message_id, RC_REJECTED_BROKER, L"cancel rejected: the order is no longer working");
    } else if (chosen(o->local_id, 4, g_rp[R_RACE])) {
        /* the market filled the rest while the cancel was on its way: the fill wins, the cancel is too late */
        double px = o->type == OT_MARKET || o->price <= 0 ? last_price(o->ticker) : o->price;
        apply_fill(o, o->leaves, px);
        emit_result(o, message_id, RC_REJECTED_BROKER, L"cancel rejected: the order was filled first");
        g_rs[RS_RACES]++;
    } else {
        o->leaves = 0;
        emit_order(o, ST_CANCELED, L"canceled by the client");
        emit_result(o, message_id, RC_ACCEPTED, L"accepted");
    }
    reorder_step(o);
}

/* every trade of the market: resting orders of that ticker that it trades through, and stops it triggers */
void routing_on_trade(const wchar_t *ticker, double price, int64_t qty)
{
    if (!atomic_load_explicit(&g_enabled, memory_order_relaxed)) return;
    pthread_mutex_lock(&g_rt_mu);
    int k = 0;
    while (k < g_nlast && wcscmp(g_last_tk[k], ticker) != 0) k++;
    if (k == g_nlast && g_nlast < 64) wcp(g_last_tk[g_nlast++], ticker, SYM);
    if (k < 64) g_last_px[k] = price;
    int changed = 0;
    for (int i = 0; i < g_norders; i++) {
        ROrder *o = &g_orders[i];
        if (!working(o) || o->leaves <= 0 || wcscmp(o->ticker, ticker) != 0) continue;
        int buy = o->side == SIDE_BUY;
        if (o->type == OT_STOP_LIMIT && !o->triggered) {
            if (buy ? price >= o->stop - 1e-9 : price <= o->stop + 1e-9) {
                o->triggered = 1; /* now a limit: marketable ones take the book at once */
                changed = 1;
                take_book(o);
            }
            reorder_step(o);
            continue;
        }
        int64_t q = o->leaves < qty ? o->leaves : qty;
        if (o->type == OT_MARKET) {
            apply_fill(o, q, price); /* the leftover of a market order trades with the tape */
            changed = 1;
        } else if (buy ? price < o->price - 1e-9 : price > o->price + 1e-9) {
            apply_fill(o, q, o->price); /* traded through: a resting limit fills at its price */
            changed = 1;
        }
        reorder_step(o);
    }
    if (changed) save_locked();
    pthread_mutex_unlock(&g_rt_mu);
    if (changed) psim_wake(); /* delivery happens in routing_service, outside the market event */
}

/* ------------------------------------------------------------------------------------------------------------
 * Delivery (connector thread)
 * ------------------------------------------------------------------------------------------------------------ */
static const wchar_t *status_word(uint8_t s)
{
    switch (s) {
    case ST_NEW: return L"New";
    case ST_PARTIAL: return L"PartiallyFilled";
    case ST_FILLED: return L"Filled";
    case ST_CANCELED: return L"Canceled";
    case ST_REPLACED: return L"Replaced";
    case ST_REJECTED: return L"Rejected";
    case ST_PENDING_NEW: return L"PendingNew";
    default: return L"Unknown";
    }
}

static void deliver_order(const ROrder *o)
{
    TConnectorOrderCallback cb = atomic_load(&g_cb_order);
    if (cb && psim_cb_begin()) {
        wchar_t cl[SYM];
        wcp(cl, o->cl_ord, SYM);
        g_cur_order = o;
        cb((TConnectorOrderIdentifier){0, o->local_id, cl});
        g_cur_order = NULL;
        psim_cb_end();
        wcp(cl, L"\x2620POISONED", SYM); /* a kept ClOrderID pointer reads garbage, as in the real DLL */
    }
    TOrderChangeCallback legacy = atomic_load(&g_cb_order_change);
    if (legacy && psim_cb_begin()) {
        wchar_t date[32];
        SYSTEMTIME st;
        psim_systemtime(o->updated_ns, &st);
        swprintf(date, 32, L"%02u/%02u/%04u %02u:%02u:%02u.%03u", st.wDay, st.wMonth, st.wYear, st.wHour,
                 st.wMinute, st.wSecond, st.wMilliseconds);
        const Account *a = &k_accounts[o->acct];
        TAssetIDRec asset = {o->ticker, o->exch, 0};
        const wchar_t *type = o->type == OT_MARKET ? L"Market" : o->type == OT_LIMIT ? L"Limit" : L"StopLimit";
        legacy(asset, a->broker, (int32_t)o->qty, (int32_t)o->traded, (int32_t)o->leaves, o->side, o->price, o->stop,
               o->avg, o->local_id, type, a->id, a->owner, o->cl_ord, status_word(o->status), date, o->text);
        psim_cb_end();
    }
}

static void deliver_result(const Out *e)
{
    TConnectorTradingMessageResultCallback cb = atomic_load(&g_cb_result);
    if (!cb || !psim_cb_begin()) return;
    wchar_t cl[SYM], msg[TXT];
    wcp(cl, e->o.cl_ord, SYM);
    wcp(msg, e->message, TXT);
    TConnectorTradingMessageResult r = {0, e->broker, {0, e->o.local_id, cl}, e->message_id, e->code, msg,
                                        (int32_t)wcslen(msg)};
    cb(&r);
    psim_cb_end();
    memset(&r, 0xDB, sizeof r); /* the pointer is valid only during the call */
}

static void deliver_history(void) /* TConnectorAccountCallback: each account's order history is loaded */
{
    TConnectorAccountCallback cb = atomic_load(&g_cb_history);
    for (int i = 0; cb && i < NACCOUNTS; i++) {
        if (!psim_cb_begin()) return;
        cb((TConnectorAccountIdentifier){0, k_accounts[i].broker, k_accounts[i].id, L"", 0});
        psim_cb_end();
    }
}

static void routing_up_sequence(void)
{
    psim_emit_state(1, 1);
    psim_emit_state(1, 2);
    psim_emit_state(1, 4);
    pthread_mutex_lock(&g_rt_mu);
    g_routing_up = 1;
    g_down_until = -1;
    pthread_mutex_unlock(&g_rt_mu);
    psim_emit_state(1, 5);
}

void routing_login(void)
{
    if (!atomic_load(&g_enabled)) return;
    routing_up_sequence();
    pthread_mutex_lock(&g_rt_mu);
    g_logged_in = 1;
    pthread_mutex_unlock(&g_rt_mu);
    TAccountCallback acc = atomic_load(&g_cb_account);
    for (int i = 0; acc && i < NACCOUNTS; i++) {
        if (!psim_cb_begin()) return;
        acc(k_accounts[i].broker, k_accounts[i].broker_name, k_accounts[i].id, k_accounts[i].owner);
        psim_cb_end();
    }
    deliver_history();
}

void routing_service(void)
{
    if (!atomic_load(&g_enabled)) return;
    pthread_mutex_lock(&g_rt_mu);
    if (!g_logged_in) {
        pthread_mutex_unlock(&g_rt_mu);
        return;
    }
    if (g_down_until >= 0 && mono() >= g_down_until) {
        pthread_mutex_unlock(&g_rt_mu);
        routing_up_sequence(); /* back: the history is reloaded, then everything that happened meanwhile */
        deliver_history();
        pthread_mutex_lock(&g_rt_mu);
    }
    int changed = g_ncmds > 0;
    for (int i = 0; i < g_ncmds; i++) {
        const Cmd *c = &g_cmds[i];
        if (c->kind == CMD_NEW) do_new(c);
        else if (c->kind == CMD_CHANGE) do_change(c);
        else if (c->kind == CMD_CANCEL) {
            ROrder *o = find_order(c->local_id, NULL);
            if (o) do_cancel(o, c->message_id, c->bad_password);
        } else {
            for (int k = 0; k < g_norders; k++)
                if (g_orders[k].acct == c->acct && working(&g_orders[k])) do_cancel(&g_orders[k], c->message_id, 0);
        }
    }
    g_ncmds = 0;
    if (changed) save_locked();
    if (!g_routing_up) { /* disconnected: the broker keeps everything until the connection is back */
        pthread_mutex_unlock(&g_rt_mu);
        return;
    }
    int n = g_nout;
    Out *batch = n ? malloc((size_t)n * sizeof *batch) : NULL;
    if (n && !batch) abort();
    if (n) memcpy(batch, g_out, (size_t)n * sizeof *batch);
    g_nout = 0;
    int drop = g_drop_pending;
    g_drop_pending = 0;
    pthread_mutex_unlock(&g_rt_mu);
    /* outside the lock: a callback may call GetOrderDetails, and the owner thread may send meanwhile */
    for (int i = 0; i < n; i++) {
        if (batch[i].kind == OUT_ORDER) deliver_order(&batch[i].o);
        else deliver_result(&batch[i]);
    }
    free(batch);
    if (drop) {
        pthread_mutex_lock(&g_rt_mu);
        g_routing_up = 0;
        g_down_until = mono() + (int64_t)(g_rp[R_DROP_MS] * 1e6);
        g_rs[RS_DROPS]++;
        pthread_mutex_unlock(&g_rt_mu);
        psim_emit_state(1, 0);
    }
}

int64_t routing_deadline(void)
{
    pthread_mutex_lock(&g_rt_mu);
    int64_t d = g_down_until;
    pthread_mutex_unlock(&g_rt_mu);
    return d;
}

void routing_init(void *orderChange, void *account)
{
    atomic_store(&g_cb_order_change, (TOrderChangeCallback)orderChange);
    atomic_store(&g_cb_account, (TAccountCallback)account);
    pthread_mutex_lock(&g_rt_mu);
    atomic_store(&g_enabled, 1);
    if (!g_loaded) {
        g_loaded = 1;
        load_locked();
    }
    pthread_mutex_unlock(&g_rt_mu);
}

void routing_finalize(void)
{
    pthread_mutex_lock(&g_rt_mu);
    save_locked();
    g_routing_up = 0;
    atomic_store(&g_enabled, 0);
    pthread_mutex_unlock(&g_rt_mu);
}

int32_t routing_set_param(const char *name, double value)
{
    for (int i = 0; i < R_COUNT; i++) {
        if (strcmp(name, k_rparams[i].name) != 0) continue;
        if (!(value >= k_rparams[i].lo && value <= k_rparams[i].hi)) return NL_INVALID_ARGS;
        pthread_mutex_lock(&g_rt_mu);
        g_rp[i] = value;
        pthread_mutex_unlock(&g_rt_mu);
        return NL_OK;
    }
    return NL_INVALID_ARGS;
}

int64_t routing_get_stat(const char *name)
{
    for (int i = 0; i < RS_COUNT; i++)
        if (strcmp(name, k_rstats[i]) == 0) return atomic_load(&g_rs[i]);
    if (strcmp(name, "routing_connected") == 0) return g_routing_up;
    return -1;
}

/* ------------------------------------------------------------------------------------------------------------
 * Exported API: requests (owner thread)
 * ------------------------------------------------------------------------------------------------------------ */
/* request entry for routing: NL_OK with the API lock and g_rt_mu held */
static int32_t rt_begin(void)
{
    int32_t rc = psim_request_begin();
    if (rc != NL_OK) return rc;
    pthread_mutex_lock(&g_rt_mu);
    if (!g_enabled || !g_logged_in) rc = NL_NO_LOGIN;        /* DLLInitializeMarketLogin, or not logged in yet */
    else if (!g_routing_up) rc = NL_NO_LOGIN;                /* the routing connection is down */
    if (rc != NL_OK) {
        pthread_mutex_unlock(&g_rt_mu);
        psim_request_end();
    }
    return rc;
}

static void rt_end(int queued)
{
    pthread_mutex_unlock(&g_rt_mu);
    psim_request_end();
    if (queued) psim_wake();
}

static int password_state(const wchar_t *pw) /* -1 missing, 1 wrong, 0 right */
{
    if (!pw || !pw[0]) return -1;
    return wcscmp(pw, k_password) != 0;
}

static void push_cmd(const Cmd *c)
{
    g_cmds = grow(g_cmds, &g_cap_cmds, g_ncmds + 1, sizeof *g_cmds);
    g_cmds[g_ncmds++] = *c;
}

static int64_t new_order(int acct, const TConnectorAssetIdentifier *asset, uint8_t type, uint8_t side, double price,
                         double stop, int64_t qty, int bad_pw, int64_t *message_id)
{
    if (g_norders == MAX_ORDERS) return NL_OUT_OF_RANGE;
    g_orders = grow(g_orders, &g_cap_orders, g_norders + 1, sizeof *g_orders);
    ROrder *o = &g_orders[g_norders++];
    memset(o, 0, sizeof *o);
    o->local_id = g_next_id++;
    o->message_id = g_next_msg++;
    o->acct = acct;
    wcp(o->ticker, asset->Ticker, SYM);
    wcp(o->exch, asset->Exchange, 8);
    o->type = type;
    o->side = side;
    o->price = type == OT_MARKET ? -1 : price;
    o->stop = type == OT_STOP_LIMIT ? stop : -1;
    o->qty = o->leaves = qty;
    o->status = ST_PENDING_NEW;
    o->created_ns = o->updated_ns = psim_sim_now();
    g_rs[RS_ORDERS]++;
    Out e = {.kind = OUT_ORDER, .o = *o}; /* PendingNew: the broker has it, nothing decided yet */
    push_out(&e);
    g_rs[RS_UPDATES]++;
    Cmd c = {.kind = CMD_NEW, .local_id = o->local_id, .message_id = o->message_id, .bad_password = bad_pw};
    push_cmd(&c);
    save_locked(); /* before SendOrder returns: a crash right after cannot lose an order the broker took */
    if (message_id) *message_id = o->message_id;
    return o->local_id;
}

EXPORT int64_t SendOrder(TConnectorSendOrder *s)
{
    if (!s) return NL_INVALID_ARGS;
    if (s->Version > 2) return NL_VERSION_NOT_SUPPORTED;
    int32_t rc = rt_begin();
    if (rc != NL_OK) return rc;
    int acct = find_account(&s->AccountID);
    uint8_t type = 0, side = 0;
    if (s->Version == 0) { /* the old enums: type 0 limit, 1 stop(-limit), 2 market; side 0 buy, 1 sell */
        type = s->OrderType == 0 ? OT_LIMIT : s->OrderType == 1 ? OT_STOP_LIMIT : s->OrderType == 2 ? OT_MARKET : 0;
        side = s->OrderSide == 0 ? SIDE_BUY : s->OrderSide == 1 ? SIDE_SELL : 0;
    } else {
        type = (s->OrderType == OT_MARKET || s->OrderType == OT_LIMIT || s->OrderType == OT_STOP_LIMIT) ? s->OrderType : 0;
        side = (s->OrderSide == SIDE_BUY || s->OrderSide == SIDE_SELL) ? s->OrderSide : 0;
    }
    int pw = password_state(s->Password);
    int64_t out;
    if (acct < 0) out = NL_NOT_FOUND;
    else if (pw < 0) out = NL_NO_PASSWORD;
    else if (!type || !side || s->Quantity <= 0 || !s->AssetID.Ticker || !s->AssetID.Exchange) out = NL_INVALID_ARGS;
    else if (type != OT_MARKET && !(s->Price > 0)) out = NL_INVALID_ARGS;
    else if (type == OT_STOP_LIMIT && !(s->StopPrice > 0)) out = NL_INVALID_ARGS;
    else if (wcscmp(s->AssetID.Exchange, L"F") != 0 && wcscmp(s->AssetID.Exchange, L"B") != 0) out = NL_EXCHANGE_UNKNOWN;
    else if (!psim_ticker_valid(s->AssetID.Ticker, s->AssetID.Exchange)) out = NL_INVALID_TICKER;
    else {
        int64_t mid = 0;
        out = new_order(acct, &s->AssetID, type, side, s->Price, s->StopPrice, s->Quantity, pw > 0, &mid);
        if (out > 0 && s->Version >= 2) s->MessageID = mid;
    }
    rt_end(out > 0);
    return out;
}

static ROrder *order_of(int acct, const TConnectorOrderIdentifier *id)
{
    ROrder *o = find_order(id->LocalOrderID, id->ClOrderID);
    return o && o->acct == acct ? o : NULL;
}

EXPORT int32_t SendChangeOrderV2(TConnectorChangeOrder *s)
{
    if (!s) return NL_INVALID_ARGS;
    if (s->Version > 1) return NL_VERSION_NOT_SUPPORTED;
    int32_t rc = rt_begin();
    if (rc != NL_OK) return rc;
    int acct = find_account(&s->AccountID), pw = password_state(s->Password);
    ROrder *o = acct < 0 ? NULL : order_of(acct, &s->OrderID);
    if (acct < 0 || !o) rc = NL_NOT_FOUND;
    else if (pw < 0) rc = NL_NO_PASSWORD;
    else if (s->Quantity <= 0 || (o->type != OT_MARKET && !(s->Price > 0))) rc = NL_INVALID_ARGS;
    else {
        int64_t mid = g_next_msg++;
        Cmd c = {.kind = CMD_CHANGE, .local_id = o->local_id, .message_id = mid, .price = s->Price,
                 .stop = s->StopPrice, .qty = s->Quantity, .bad_password = pw > 0};
        push_cmd(&c);
        if (s->Version >= 1) s->MessageID = mid;
    }
    rt_end(rc == NL_OK);
    return rc;
}

EXPORT int32_t SendCancelOrderV2(TConnectorCancelOrder *s)
{
    if (!s) return NL_INVALID_ARGS;
    if (s->Version > 1) return NL_VERSION_NOT_SUPPORTED;
    int32_t rc = rt_begin();
    if (rc != NL_OK) return rc;
    int acct = find_account(&s->AccountID), pw = password_state(s->Password);
    ROrder *o = acct < 0 ? NULL : order_of(acct, &s->OrderID);
    if (acct < 0 || !o) rc = NL_NOT_FOUND;
    else if (pw < 0) rc = NL_NO_PASSWORD;
    else {
        int64_t mid = g_next_msg++;
        Cmd c = {.kind = CMD_CANCEL, .local_id = o->local_id, .message_id = mid, .bad_password = pw > 0};
        push_cmd(&c);
        if (s->Version >= 1) s->MessageID = mid;
    }
    rt_end(rc == NL_OK);
    return rc;
}

EXPORT int32_t SendCancelAllOrdersV2(TConnectorCancelAllOrders *s)
{
    if (!s) return NL_INVALID_ARGS;
    if (s->Version != 0) return NL_VERSION_NOT_SUPPORTED;
    int32_t rc = rt_begin();
    if (rc != NL_OK) return rc;
    int acct = find_account(&s->AccountID), pw = password_state(s->Password);
    if (acct < 0) rc = NL_NOT_FOUND;
    else if (pw != 0) rc = pw < 0 ? NL_NO_PASSWORD : NL_INVALID_ARGS;
    else {
        Cmd c = {.kind = CMD_CANCEL_ALL, .acct = acct, .message_id = g_next_msg++};
        push_cmd(&c);
    }
    rt_end(rc == NL_OK);
    return rc;
}

EXPORT int64_t SendZeroPositionV2(TConnectorZeroPosition *s)
{
    if (!s) return NL_INVALID_ARGS;
    if (s->Version > 2) return NL_VERSION_NOT_SUPPORTED;
    int32_t rc = rt_begin();
    if (rc != NL_OK) return rc;
    int acct = find_account(&s->AccountID), pw = password_state(s->Password);
    int64_t out;
    RPos *p = acct < 0 || !s->AssetID.Ticker || !s->AssetID.Exchange
                  ? NULL : position(acct, s->AssetID.Ticker, s->AssetID.Exchange, 0);
    if (acct < 0) out = NL_NOT_FOUND;
    else if (pw < 0) out = NL_NO_PASSWORD;
    else if (s->Version >= 1 && s->PositionType != 1 && s->PositionType != 2) out = NL_INVALID_ARGS;
    else if (!p || p->open == 0) out = NL_NO_POSITION;
    else {
        int64_t mid = 0;
        uint8_t side = p->open > 0 ? SIDE_SELL : SIDE_BUY, type = s->Price < 0 ? OT_MARKET : OT_LIMIT;
        out = new_order(acct, &s->AssetID, type, side, s->Price, -1, llabs(p->open), pw > 0, &mid);
        if (out > 0 && s->Version >= 2) s->MessageID = mid;
    }
    rt_end(out > 0);
    return out;
}

/* ------------------------------------------------------------------------------------------------------------
 * Exported API: queries and accessors
 * ------------------------------------------------------------------------------------------------------------ */
static int32_t put16(uint16_t *dst, int32_t *len, const wchar_t *src) /* inline UTF-16 (BMP only here) */
{
    int32_t n = 0;
    for (; src[n] && n < 99; n++) dst[n] = (uint16_t)src[n];
    dst[n] = 0;
    *len = n;
    return n;
}

/* two-call pattern: *len always receives the length; the text is copied when buf is set (room for len + 1) */
static void put_str(wchar_t *buf, int32_t *len, const wchar_t *src)
{
    int32_t n = (int32_t)wcslen(src);
    if (buf) {
        int32_t cap = *len < n ? *len : n; /* never past what the caller said it has */
        if (cap < 0) cap = 0;
        wmemcpy(buf, src, (size_t)cap);
        buf[cap] = 0;
    }
    *len = n;
}

EXPORT int32_t GetOrderDetails(TConnectorOrderOut *out)
{
    /* an accessor: only synchronously inside the order callback, on the connector thread (spec §7.1) */
    if (!psim_on_connector() || !g_cur_order) return psim_misuse();
    if (!out) return NL_INVALID_ARGS;
    if (out->Version > 1) return NL_VERSION_NOT_SUPPORTED;
    const ROrder *o = g_cur_order;
    if (out->OrderID.LocalOrderID != o->local_id &&
        !(out->OrderID.LocalOrderID <= 0 && out->OrderID.ClOrderID && wcscmp(out->OrderID.ClOrderID, o->cl_ord) == 0))
        return NL_NOT_FOUND;
    const Account *a = &k_accounts[o->acct];
    out->AccountID.Version = 0;
    out->AccountID.BrokerID = a->broker;
    put16(out->AccountID.AccountID, &out->AccountID.AccountIDLength, a->id);
    put16(out->AccountID.SubAccountID, &out->AccountID.SubAccountIDLength, L"");
    out->AccountID.Reserved = 0;
    put_str(out->AssetID.Ticker, &out->AssetID.TickerLength, o->ticker);
    put_str(out->AssetID.Exchange, &out->AssetID.ExchangeLength, o->exch);
    out->AssetID.FeedType = 0;
    out->Quantity = o->qty;
    out->TradedQuantity = o->traded;
    out->LeavesQuantity = o->leaves;
    out->Price = o->price;
    out->StopPrice = o->stop;
    out->AveragePrice = o->avg;
    out->OrderSide = o->side;
    out->OrderType = o->type;
    out->OrderStatus = o->status;
    out->ValidityType = 0; /* Day */
    psim_systemtime(o->created_ns, &out->Date);
    psim_systemtime(o->updated_ns, &out->LastUpdate);
    memset(&out->CloseDate, 0, sizeof out->CloseDate);
    memset(&out->ValidityDate, 0, sizeof out->ValidityDate);
    if (!working(o) && o->status != ST_PENDING_NEW) psim_systemtime(o->updated_ns, &out->CloseDate);
    put_str(out->TextMessage, &out->TextMessageLength, o->text);
    if (out->Version >= 1) out->EventID = o->updated_ns;
    return NL_OK;
}

EXPORT int32_t GetAccountCount(void)
{
    int32_t rc = rt_begin();
    if (rc != NL_OK) return rc;
    rt_end(0);
    return NACCOUNTS;
}

EXPORT int32_t GetAccounts(int32_t startSource, int32_t startDest, int32_t count, TConnectorAccountIdentifierOut *arr)
{
    if (!arr || startSource < 0 || startDest < 0 || count < 0) return NL_INVALID_ARGS;
    int32_t rc = rt_begin();
    if (rc != NL_OK) return rc;
    if (startSource > NACCOUNTS) {
        rt_end(0);
        return NL_OUT_OF_RANGE;
    }
    int32_t n = 0;
    for (; n < count && startSource + n < NACCOUNTS; n++) {
        const Account *a = &k_accounts[startSource + n];
        TConnectorAccountIdentifierOut *d = &arr[startDest + n];
        d->Version = 0;
        d->BrokerID = a->broker;
        put16(d->AccountID, &d->AccountIDLength, a->id);
        put16(d->SubAccountID, &d->SubAccountIDLength, L"");
        d->Reserved = 0;
    }
    rt_end(0);
    return n;
}

EXPORT int32_t GetAccountDetails(TConnectorTradingAccountOut *d)
{
    if (!d) return NL_INVALID_ARGS;
    if (d->Version > 1) return NL_VERSION_NOT_SUPPORTED;
    int32_t rc = rt_begin();
    if (rc != NL_OK) return rc;
    int acct = find_account(&d->AccountID);
    if (acct < 0) {
        rt_end(0);
        return NL_NOT_FOUND;
    }
    const Account *a = &k_accounts[acct];
    put_str(d->BrokerName, &d->BrokerNameLength, a->broker_name);
    put_str(d->OwnerName, &d->OwnerNameLength, a->owner);
    put_str(d->SubOwnerName, &d->SubOwnerNameLength, L"");
    d->AccountFlags = 2; /* CA_IS_ENABLED */
    if (d->Version >= 1) d->AccountType = 0; /* Owner */
    rt_end(0);
    return NL_OK;
}

EXPORT int32_t GetPositionV2(TConnectorTradingAccountPosition *d)
{
    if (!d) return NL_INVALID_ARGS;
    if (d->Version > 2) return NL_VERSION_NOT_SUPPORTED;
    if (d->Version >= 1 && d->PositionType != 1 && d->PositionType != 2) return NL_INVALID_ARGS;
    int32_t rc = rt_begin();
    if (rc != NL_OK) return rc;
    int acct = find_account(&d->AccountID);
    const RPos *p = acct < 0 || !d->AssetID.Ticker || !d->AssetID.Exchange
                        ? NULL : position(acct, d->AssetID.Ticker, d->AssetID.Exchange, 0);
    if (acct < 0) rc = NL_NOT_FOUND;
    else if (!p) rc = NL_NO_POSITION;
    else {
        d->OpenQuantity = llabs(p->open);
        d->OpenAveragePrice = p->avg;
        d->OpenSide = p->open > 0 ? SIDE_BUY : p->open < 0 ? SIDE_SELL : 0;
        d->DailyAverageSellPrice = p->sell_avg;
        d->DailySellQuantity = p->sell_qty;
        d->DailyAverageBuyPrice = p->buy_avg;
        d->DailyBuyQuantity = p->buy_qty;
        d->D1 = d->D2 = d->D3 = d->Blocked = d->Pending = d->Alloc = d->Provision = 0;
        d->DailyQuantity = d->DailyQuantityAvailable = p->open;
        if (d->Version >= 2) d->EventID = p->event_id;
    }
    rt_end(0);
    return rc;
}

/* Synchronous on the caller's thread; the data handed to the proc is valid only during that call. */
EXPORT int32_t EnumerateAllOrders(TConnectorAccountIdentifier *account, uint8_t version, intptr_t param,
                                  TConnectorEnumerateOrdersProc proc)
{
    if (!account || !proc) return NL_INVALID_ARGS;
    if (version > 1) return NL_VERSION_NOT_SUPPORTED;
    int32_t rc = rt_begin();
    if (rc != NL_OK) return rc;
    int acct = find_account(account), n = 0;
    ROrder *copy = NULL;
    if (acct >= 0 && g_norders) {
        copy = malloc((size_t)g_norders * sizeof *copy);
        if (!copy) abort();
        for (int i = 0; i < g_norders; i++)
            if (g_orders[i].acct == acct) copy[n++] = g_orders[i];
    }
    pthread_mutex_unlock(&g_rt_mu); /* the proc runs unlocked: the connector keeps delivering meanwhile */
    if (acct < 0) rc = NL_NOT_FOUND;
    for (int i = 0; i < n; i++) {
        const ROrder *o = &copy[i];
        const Account *a = &k_accounts[o->acct];
        TConnectorOrder r;
        memset(&r, 0, sizeof r);
        r.Version = version;
        r.OrderID = (TConnectorOrderIdentifier){0, o->local_id, o->cl_ord};
        r.AccountID = (TConnectorAccountIdentifier){0, a->broker, a->id, L"", 0};
        r.AssetID = (TConnectorAssetIdentifier){0, o->ticker, o->exch, 0};
        r.Quantity = o->qty;
        r.TradedQuantity = o->traded;
        r.LeavesQuantity = o->leaves;
        r.Price = o->price;
        r.StopPrice = o->stop;
        r.AveragePrice = o->avg;
        r.OrderSide = o->side;
        r.OrderType = o->type;
        r.OrderStatus = o->status;
        psim_systemtime(o->created_ns, &r.Date);
        psim_systemtime(o->updated_ns, &r.LastUpdate);
        r.TextMessage = o->text;
        if (version >= 1) r.EventID = o->updated_ns;
        int32_t more = proc(&r, param);
        memset(&r, 0xDB, sizeof r); /* "destroyed after each iteration" */
        if (!more) break;
    }
    free(copy);
    psim_request_end();
    return rc;
}

/* ------------------------------------------------------------------------------------------------------------
 * Exported API: callback setters and the broker file
 * ------------------------------------------------------------------------------------------------------------ */
#define RT_SETTER(name, type, slot)                                                                            \
    EXPORT int32_t name(type cb)                                                                               \
    {                                                                                                          \
        int32_t rc = psim_request_begin();                                                                     \
        if (rc != NL_OK) return rc;                                                                            \
        atomic_store(&slot, cb);                                                                               \
        psim_request_end();                                                                                    \
        return NL_OK;                                                                                          \
    }

RT_SETTER(SetOrderCallback, TConnectorOrderCallback, g_cb_order)
RT_SETTER(SetAccountCallback, TAccountCallback, g_cb_account)
RT_SETTER(SetOrderHistoryCallback, TConnectorAccountCallback, g_cb_history)
RT_SETTER(SetTradingMessageResultCallback, TConnectorTradingMessageResultCallback, g_cb_result)

/* Where the broker keeps its accounts' orders and positions ("" = memory only). Before DLLInitializeLogin. */
EXPORT int32_t SIM_SetRoutingFile(const char *path)
{
    if (!path || strlen(path) >= sizeof g_file) return NL_INVALID_ARGS;
    pthread_mutex_lock(&g_rt_mu);
    /* the broker already started from another file: it cannot move (the same file again is fine) */
    int32_t rc = g_loaded && strcmp(g_file, path) != 0 ? NL_INTERNAL_ERROR : NL_OK;
    if (rc == NL_OK) snprintf(g_file, sizeof g_file, "%s", path);
    pthread_mutex_unlock(&g_rt_mu);
    return rc;
}
