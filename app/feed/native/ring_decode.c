/*
 * ring_decode.c - the owner thread's hot loop in C: drained ring records (ring.h) into the very events
 * app/feed/native/ring_records.py's RecordDecoder builds in Python, for the kinds that carry market data.
 *
 * A CPython extension (app.feed.native._decode), unlike the ring itself: it runs on the owner thread with the GIL
 * held and builds Python objects. It decodes records only while nothing could make the result differ from the
 * Python code's: it stops at the first record that needs Python - a kind it does not handle, a name or hour not in
 * the decoder's caches yet, a date that is not plain ASCII digits, anything that would raise there - and returns
 * where it stopped. RecordDecoder.decode then converts that one record in Python (filling the caches) and calls it
 * again. So every rule (and every error message) lives in one place, the Python decoder; this file only repeats its
 * common path, field for field, and tests/feed/native/test_ring_decode.py compares the two on the same records.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "ring.h"

#include <string.h>

static PyObject *s_depth, *s_tiny, *s_zero;

/* names[name_id] = (ticker, exchange) once the Python decoder met the name; NULL (no new reference) otherwise */
static PyObject *cached_name(PyObject *names, const RecHead *h)
{
    if (h->name_id == 0 || (Py_ssize_t)h->name_id >= PyList_GET_SIZE(names)) return NULL;
    PyObject *pair = PyList_GET_ITEM(names, h->name_id);
    return PyTuple_CheckExact(pair) && PyTuple_GET_SIZE(pair) == 2 ? pair : NULL;
}

/* hours[key] as a C integer; 0 when missing (or not an int64: the Python path then decides) */
static int hour_base(PyObject *hours, uint64_t key, int64_t *base)
{
    PyObject *k = PyLong_FromUnsignedLongLong(key);
    if (!k) return -1;
    PyObject *v = PyDict_GetItemWithError(hours, k);
    Py_DECREF(k);
    if (!v) return PyErr_Occurred() ? -1 : 0;
    int overflow = 0;
    long long b = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || (b == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    *base = b;
    return 1;
}

static int digits(const uint16_t *s, int at, int n, int *out)
{
    int v = 0;
    for (int i = at; i < at + n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

/* 'DD/MM/YYYY HH:MM:SS[.ZZZ]' as b3time.parse_dll_datetime reads it (positions 10 and 19 are not looked at
 * there either), ASCII digits only: anything else is left to Python's int() */
static int v1_date(const uint16_t *s, int len, uint64_t *key, int64_t *rest_ns)
{
    int d, mo, y, h, mi, se, ms = 0;
    if (len < 19 || s[2] != '/' || s[5] != '/' || s[13] != ':' || s[16] != ':') return 0;
    if (!digits(s, 0, 2, &d) || !digits(s, 3, 2, &mo) || !digits(s, 6, 4, &y) || !digits(s, 11, 2, &h) ||
        !digits(s, 14, 2, &mi) || !digits(s, 17, 2, &se))
        return 0;
    if (len >= 23 && !digits(s, 20, 3, &ms)) return 0;
    *key = (uint64_t)y << 48 | (uint64_t)mo << 32 | (uint64_t)d << 16 | (uint64_t)h;
    *rest_ns = ((int64_t)mi * 60 + se) * 1000000000LL + (int64_t)ms * 1000000LL;
    return 1;
}

/* Appends to `out` and keeps last_ts as the Python decoder would; 0 = done, 1 = this record needs Python */
static int trade(PyObject *out, PyObject *trade_type, PyObject *pair, int64_t ts, PyObject *last_ts, uint32_t number,
                 double price, long long qty, double volume, int32_t buyer, int32_t seller, PyObject *aggressor,
                 int64_t received, int edit)
{
    PyObject *ticker = PyTuple_GET_ITEM(pair, 0), *args[12] = {NULL};
    PyObject *ts_obj = PyLong_FromLongLong(ts);
    if (!ts_obj || PyDict_SetItem(last_ts, ticker, ts_obj) < 0) {
        Py_XDECREF(ts_obj);
        return -1;
    }
    args[0] = ticker;
    args[1] = PyTuple_GET_ITEM(pair, 1);
    args[2] = ts_obj;
    args[3] = PyLong_FromUnsignedLong(number);
    args[4] = PyFloat_FromDouble(price);
    args[5] = PyLong_FromLongLong(qty);
    args[6] = PyFloat_FromDouble(volume);
    args[7] = PyLong_FromLong(buyer);
    args[8] = PyLong_FromLong(seller);
    args[9] = aggressor;
    args[10] = PyLong_FromLongLong(received);
    args[11] = edit ? Py_True : Py_False;
    PyObject *ev = NULL;
    if (args[3] && args[4] && args[5] && args[6] && args[7] && args[8] && args[10])
        ev = PyObject_Vectorcall(trade_type, args, 12, NULL);
    Py_DECREF(ts_obj);
    for (int i = 3; i <= 10; i++)
        if (i != 9) Py_XDECREF(args[i]);
    if (!ev) return -1;
    int rc = PyList_Append(out, ev);
    Py_DECREF(ev);
    return rc;
}

static int book(PyObject *out, PyObject *book_type, PyObject *ticker, PyObject *last_ts, PyObject *side,
                PyObject *levels, int64_t received, PyObject *source)
{
    PyObject *ts = PyDict_GetItemWithError(last_ts, ticker); /* last_ts.get(ticker, 0) */
    if (!ts) {
        if (PyErr_Occurred()) return -1;
        ts = s_zero;
    }
    PyObject *recv = PyLong_FromLongLong(received);
    if (!recv) return -1;
    PyObject *args[6] = {ticker, ts, side, levels, recv, source};
    PyObject *ev = PyObject_Vectorcall(book_type, args, 6, NULL);
    Py_DECREF(recv);
    if (!ev) return -1;
    int rc = PyList_Append(out, ev);
    Py_DECREF(ev);
    return rc;
}

static PyObject *level(double price, long long qty, long long count)
{
    PyObject *p = PyFloat_FromDouble(price), *q = PyLong_FromLongLong(qty), *c = PyLong_FromLongLong(count);
    PyObject *t = (p && q && c) ? PyTuple_Pack(3, p, q, c) : NULL;
    Py_XDECREF(p);
    Py_XDECREF(q);
    Py_XDECREF(c);
    return t;
}

/* One record at `rec` (nslots * 64 bytes, all inside the buffer): 0 = appended, 1 = needs Python, -1 = error set */
static int one(const unsigned char *rec, size_t size, PyObject *const *a)
{
    PyObject *out = a[3], *names = a[4], *hours = a[5], *last_ts = a[6], *trade_type = a[7], *book_type = a[8];
    PyObject *aggressors = a[9], *sides = a[10];
    RecHead h;
    memcpy(&h, rec, sizeof h);
    PyObject *pair = cached_name(names, &h);
    if (!pair) return 1;
    const unsigned char *body = rec + sizeof h;
    if (h.kind == RK_TRADE_V2) {
        BodyTradeV2 b;
        if (size < sizeof h + sizeof b) return 1;
        memcpy(&b, body, sizeof b);
        int64_t base;
        int got = hour_base(hours, b.hour_key, &base);
        if (got <= 0) return got < 0 ? -1 : 1;
        /* ts = base + ms_of_hour * 1_000_000 in Python's integers: stay exact or let Python do it */
        if (b.ms_of_hour > INT64_MAX / 1000000 || b.ms_of_hour < INT64_MIN / 1000000) return 1;
        int64_t ts, rest = b.ms_of_hour * 1000000;
        if ((rest > 0 && base > INT64_MAX - rest) || (rest < 0 && base < INT64_MIN - rest)) return 1;
        ts = base + rest;
        return trade(out, trade_type, pair, ts, last_ts, b.number, b.price, (long long)b.qty, b.volume, b.buyer,
                     b.seller, PyTuple_GET_ITEM(aggressors, b.trade_type), h.received_ns, b.flags & 1);
    }
    if (h.kind == RK_TRADE_V1) {
        BodyTradeV1 b;
        if (h.flags & RF_DATE_NULL) return 1;
        size_t at = sizeof h + sizeof b + 2 * ((size_t)h.ticker_len + h.exch_len);
        if (size < at + 2 * (size_t)h.date_len) return 1;
        memcpy(&b, body, sizeof b);
        uint16_t date[RING_DATE_MAX];
        int dl = h.date_len < RING_DATE_MAX ? h.date_len : RING_DATE_MAX;
        memcpy(date, rec + at, 2 * (size_t)dl);
        uint64_t key;
        int64_t rest, base;
        if (dl != h.date_len || !v1_date(date, dl, &key, &rest)) return 1;
        int got = hour_base(hours, key, &base);
        if (got <= 0) return got < 0 ? -1 : 1;
        if (base > INT64_MAX - rest) return 1;
        return trade(out, trade_type, pair, base + rest, last_ts, b.number, b.price, b.qty, b.volume, b.buyer,
                     b.seller, PyTuple_GET_ITEM(aggressors, b.trade_type & 0xFF), h.received_ns,
                     (b.edit & 0xFFFF) != 0);
    }
    if (h.kind == RK_DEPTH) {
        BodyDepth b;
        memcpy(&b, body, sizeof b);
        if (b.side >= PyTuple_GET_SIZE(sides) || h.nlevels > RING_LEVELS_MAX) return 1;
        size_t at = (sizeof h + sizeof b + 2 * ((size_t)h.ticker_len + h.exch_len) + 7) & ~(size_t)7;
        if (size < at + h.nlevels * sizeof(RecLevel)) return 1;
        PyObject *levels = PyTuple_New(h.nlevels);
        if (!levels) return -1;
        for (int i = 0; i < h.nlevels; i++) {
            RecLevel l;
            memcpy(&l, rec + at + i * sizeof l, sizeof l);
            PyObject *t = level(l.price, (long long)l.qty, (long long)l.count);
            if (!t) {
                Py_DECREF(levels);
                return -1;
            }
            PyTuple_SET_ITEM(levels, i, t);
        }
        int rc = book(out, book_type, PyTuple_GET_ITEM(pair, 0), last_ts, PyTuple_GET_ITEM(sides, b.side), levels,
                      h.received_ns, s_depth);
        Py_DECREF(levels);
        return rc;
    }
    if (h.kind == RK_TINY) {
        BodyTiny b;
        memcpy(&b, body, sizeof b);
        PyObject *t = level(b.price, b.qty, 0), *levels = t ? PyTuple_Pack(1, t) : NULL;
        Py_XDECREF(t);
        if (!levels) return -1;
        int rc = book(out, book_type, PyTuple_GET_ITEM(pair, 0), last_ts, PyTuple_GET_ITEM(sides, b.side & 1),
                      levels, h.received_ns, s_tiny);
        Py_DECREF(levels);
        return rc;
    }
    return 1;
}

/* a[3..10] as run() and pump() take them: out, names, hours, last_ts, Trade, Book, aggressors, sides */
static int check_targets(PyObject *const *a)
{
    return PyList_CheckExact(a[3]) && PyList_CheckExact(a[4]) && PyDict_CheckExact(a[5]) && PyDict_CheckExact(a[6]) &&
           PyTuple_CheckExact(a[9]) && PyTuple_GET_SIZE(a[9]) == 256 && PyTuple_CheckExact(a[10]) &&
           PyTuple_GET_SIZE(a[10]) >= 2;
}

/* Converts records of buf[*off:nbytes] until one needs Python; *off and *records advance. -1: an exception. */
static int convert(const unsigned char *buf, Py_ssize_t nbytes, Py_ssize_t *off, Py_ssize_t *records,
                   PyObject *const *a)
{
    while (*off >= 0 && *off + (Py_ssize_t)sizeof(RecHead) <= nbytes) {
        size_t size = (size_t)buf[*off + 1] * RING_SLOT;
        if (size < sizeof(RecHead) || *off + (Py_ssize_t)size > nbytes) break; /* Python says what is wrong */
        int rc = one(buf + *off, size, a);
        if (rc < 0) return -1;
        if (rc != 0) break;
        *off += (Py_ssize_t)size;
        (*records)++;
    }
    return 0;
}

/* run(buf, off, nbytes, out, names, hours, last_ts, Trade, Book, aggressors, sides) -> (off, records):
 * converts records from byte `off` until one needs Python (or nbytes), appending their events to `out`. */
static PyObject *run(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
    (void)self;
    if (n != 11 || !check_targets(a)) {
        PyErr_SetString(PyExc_TypeError, "run(buf, off, nbytes, out: list, names: list, hours: dict, last_ts: dict, "
                                         "Trade, Book, aggressors: 256-tuple, sides: tuple)");
        return NULL;
    }
    Py_ssize_t off = PyLong_AsSsize_t(a[1]), nbytes = PyLong_AsSsize_t(a[2]), records = 0;
    if ((off == -1 || nbytes == -1) && PyErr_Occurred()) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(a[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    if (nbytes > view.len) nbytes = view.len;
    int rc = convert(view.buf, nbytes, &off, &records, a);
    PyBuffer_Release(&view);
    return rc < 0 ? NULL : Py_BuildValue("(nn)", off, records);
}

/* ---- the owner thread's whole turn in one call --------------------------------------------------------------
 * The ring library's ring_pump_wait and ring_drain, by address (bind): a ctypes call costs the owner thread tens
 * of microseconds when it wakes on cold caches (two per batch: 44 us against 16 for two calls of an extension's,
 * 10 ms apart on the reference machine), which is what every batch does at a few hundred events a second. */
typedef int32_t (*pump_wait_fn)(int64_t, int32_t, int64_t, int64_t);
typedef int64_t (*drain_fn)(void *, int64_t, int64_t, int64_t *);
static pump_wait_fn g_pump_wait;
static drain_fn g_drain;

/* bind(ring_pump_wait address, ring_drain address) */
static PyObject *bind(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
    (void)self;
    if (n != 2) {
        PyErr_SetString(PyExc_TypeError, "bind(ring_pump_wait address, ring_drain address)");
        return NULL;
    }
    void *w = PyLong_AsVoidPtr(a[0]), *d = PyLong_AsVoidPtr(a[1]);
    if (PyErr_Occurred()) return NULL;
    g_pump_wait = (pump_wait_fn)w;
    g_drain = (drain_fn)d;
    Py_RETURN_NONE;
}

/* pump(buf, max_records, wait, out, names, hours, last_ts, Trade, Book, aggressors, sides, nap_ns, naps, idle_ns,
 *      window_ns) -> (flags, records, nbytes, off, converted):
 * if `wait`, ring_pump_wait(nap_ns, naps, idle_ns, window_ns) with the GIL released (flags: its result, else 0);
 * then, unless it was ended by ring_notify (flags bit 1: a DLL command goes first), ring_drain up to max_records
 * into buf and convert them as run() does, from byte 0: `off` is where a record needing Python stopped it. */
static PyObject *pump(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
    (void)self;
    if (n != 15 || !check_targets(a)) {
        PyErr_SetString(PyExc_TypeError, "pump(buf, max_records, wait, out: list, names: list, hours: dict, "
                                         "last_ts: dict, Trade, Book, aggressors: 256-tuple, sides: tuple, nap_ns, "
                                         "naps, idle_ns, window_ns)");
        return NULL;
    }
    if (!g_pump_wait || !g_drain) {
        PyErr_SetString(PyExc_RuntimeError, "pump() before bind()");
        return NULL;
    }
    long long max_records = PyLong_AsLongLong(a[1]), nap_ns = PyLong_AsLongLong(a[11]);
    long naps = PyLong_AsLong(a[12]);
    long long idle_ns = PyLong_AsLongLong(a[13]), window_ns = PyLong_AsLongLong(a[14]);
    int wait = PyObject_IsTrue(a[2]);
    if (PyErr_Occurred() || wait < 0) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(a[0], &view, PyBUF_WRITABLE) < 0) return NULL;
    int32_t flags = 0;
    if (wait) {
        Py_BEGIN_ALLOW_THREADS
        flags = g_pump_wait(nap_ns, (int32_t)naps, idle_ns, window_ns);
        Py_END_ALLOW_THREADS
    }
    int64_t records = 0, nbytes = 0;
    Py_ssize_t off = 0, converted = 0;
    int rc = 0;
    if (!(flags & 2)) {
        records = g_drain(view.buf, (int64_t)view.len, max_records, &nbytes);
        rc = convert(view.buf, (Py_ssize_t)nbytes, &off, &converted, a);
    }
    PyBuffer_Release(&view);
    return rc < 0 ? NULL : Py_BuildValue("(iLLnn)", (int)flags, (long long)records, (long long)nbytes, off, converted);
}

static PyMethodDef methods[] = {
    {"run", (PyCFunction)(void (*)(void))run, METH_FASTCALL, "convert records until one needs Python"},
    {"bind", (PyCFunction)(void (*)(void))bind, METH_FASTCALL, "the ring library's ring_pump_wait and ring_drain"},
    {"pump", (PyCFunction)(void (*)(void))pump, METH_FASTCALL, "wait, drain and convert: the owner thread's turn"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_decode", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__decode(void)
{
    s_depth = PyUnicode_InternFromString("depth");
    s_tiny = PyUnicode_InternFromString("tiny");
    s_zero = PyLong_FromLong(0);
    if (!s_depth || !s_tiny || !s_zero) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "RING_SLOT", RING_SLOT) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
