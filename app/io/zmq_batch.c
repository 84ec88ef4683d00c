/*
 * zmq_batch.c - the ZMQ publisher's sends for a whole drained batch in one call (app.io._zmq_batch).
 *
 * pyzmq's send is one Python call per frame, and each releases and re-takes the GIL around zmq_msg_send: two of
 * those per message were the loop's largest cost per event (docs/PERFORMANCE.md, "Where the loop's time goes").
 * This module calls libzmq's public zmq_send itself, on the very socket pyzmq opened (its handle, `underlying`), for
 * every [topic, payload] pair of a batch, keeping the GIL: every send is non-blocking and copies into ZeroMQ's queue.
 * The libzmq functions are the ones pyzmq loaded (their addresses come from app/io/zmq_native.py), so there is one
 * libzmq in the process and nothing to link at build time. Without this module the publisher sends through pyzmq.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef int (*zmq_send_fn)(void *socket, const void *buf, size_t len, int flags);
typedef int (*zmq_errno_fn)(void);

#define ZMQ_DONTWAIT 1 /* zmq.h: stable since libzmq 3 */
#define ZMQ_SNDMORE 2

static zmq_send_fn g_send;
static zmq_errno_fn g_errno;

/* bind(zmq_send address, zmq_errno address) */
static PyObject *bind(PyObject *self, PyObject *args)
{
    (void)self;
    unsigned long long send_addr, errno_addr;
    if (!PyArg_ParseTuple(args, "KK", &send_addr, &errno_addr)) return NULL;
    if (!send_addr || !errno_addr) {
        PyErr_SetString(PyExc_ValueError, "zmq_send and zmq_errno addresses must not be 0");
        return NULL;
    }
    g_send = (zmq_send_fn)(uintptr_t)send_addr;
    g_errno = (zmq_errno_fn)(uintptr_t)errno_addr;
    Py_RETURN_NONE;
}

static int send_one(void *socket, PyObject *frame, int flags, int eintr)
{
    for (;;) {
        int rc = g_send(socket, PyBytes_AS_STRING(frame), (size_t)PyBytes_GET_SIZE(frame), flags);
        if (rc >= 0) return 0;
        int e = g_errno();
        if (e != eintr) return e;
    }
}

/* send(socket handle, [topic, payload, topic, payload, ...] as bytes, EAGAIN, EINTR)
 *   -> (sent, dropped, errors, errno of the last error or 0)
 * A pair whose topic frame is refused with EAGAIN (a subscriber's queue is full under XPUB_NODROP) is dropped
 * whole; once ZeroMQ took the topic frame it takes the payload (a message is queued atomically). */
static PyObject *send(PyObject *self, PyObject *args)
{
    (void)self;
    unsigned long long handle;
    PyObject *frames;
    int eagain, eintr;
    if (!PyArg_ParseTuple(args, "KO!ii", &handle, &PyList_Type, &frames, &eagain, &eintr)) return NULL;
    if (!g_send) {
        PyErr_SetString(PyExc_RuntimeError, "bind() was not called");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(frames);
    if (n % 2) {
        PyErr_SetString(PyExc_ValueError, "frames must be [topic, payload] pairs");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if (!PyBytes_CheckExact(PyList_GET_ITEM(frames, i))) {
            PyErr_Format(PyExc_TypeError, "frame %zd is not bytes", i);
            return NULL;
        }
    void *socket = (void *)(uintptr_t)handle;
    Py_ssize_t sent = 0, dropped = 0, errors = 0;
    int last = 0;
    for (Py_ssize_t i = 0; i < n; i += 2) {
        int e = send_one(socket, PyList_GET_ITEM(frames, i), ZMQ_SNDMORE | ZMQ_DONTWAIT, eintr);
        if (!e) e = send_one(socket, PyList_GET_ITEM(frames, i + 1), ZMQ_DONTWAIT, eintr);
        if (!e) {
            sent++;
        } else if (e == eagain) {
            dropped++;
        } else {
            errors++;
            last = e;
        }
    }
    return Py_BuildValue("(nnni)", sent, dropped, errors, last);
}

static PyMethodDef methods[] = {
    {"bind", bind, METH_VARARGS, "bind(zmq_send address, zmq_errno address)"},
    {"send", send, METH_VARARGS, "send(handle, frames, EAGAIN, EINTR) -> (sent, dropped, errors, last errno)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_zmq_batch", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__zmq_batch(void) { return PyModule_Create(&module); }
