/* The Engine.IO / Socket.IO protocol of one session, apart from the
 * transport that carries it (eng.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "privydrop/pd_eio.h"
#include "privydrop/pd_log.h"
#include "privydrop/pd_sio.h"
#include "privydrop/pd_wsscan.h"
#include "eng.h"

#define ENG_NO_SLOT UINT32_MAX

static void eng_send_lit(pd_eng *e, const char *lit)
{
    e->tp->send(e, lit, strlen(lit));
}

/* ---- the pd_conn the handler sees ---------------------------------------- */

static void ops_send(pd_conn *c, const char *pkt, size_t len)
{
    pd_eng *e = pd_eng_of(c);
    if (!e->closed)
        e->tp->send(e, pkt, len);
}

static void ops_close(pd_conn *c, uint16_t code, const char *reason)
{
    pd_eng_close(pd_eng_of(c), code, reason);
}

static void eng_send_connect(pd_eng *e)
{
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "40{\"sid\":\"%s\"}", e->conn.sid);
    e->tp->send(e, buf, (size_t)n);
    e->sio_connected = 1;
    e->connect_pending = 0;
}

static void ops_counted(pd_conn *c)
{
    pd_eng *e = pd_eng_of(c);
    e->counted = 1;
    if (e->connect_pending && !e->closed)
        eng_send_connect(e);
}

static const pd_conn_ops ENG_OPS = {ops_send, ops_close, ops_counted};

void pd_eng_layer_set_handler(pd_worker *w, const pd_conn_handler *h, void *ud)
{
    w->conn_handler = h;
    w->conn_ud = ud;
}

/* ---- deadlines: one binary heap per worker, one timer at its top ---------- */

static void heap_set(pd_worker *w, uint32_t i, pd_eng *e)
{
    w->eng_heap[i] = e;
    e->heap_idx = i;
}

static void heap_up(pd_worker *w, uint32_t i)
{
    pd_eng *e = w->eng_heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (w->eng_heap[parent]->deadline <= e->deadline)
            break;
        heap_set(w, i, w->eng_heap[parent]);
        i = parent;
    }
    heap_set(w, i, e);
}

static void heap_down(pd_worker *w, uint32_t i)
{
    pd_eng *e = w->eng_heap[i];
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        uint64_t best = e->deadline;
        if (l < w->eng_heap_n && w->eng_heap[l]->deadline < best) {
            m = l;
            best = w->eng_heap[l]->deadline;
        }
        if (r < w->eng_heap_n && w->eng_heap[r]->deadline < best)
            m = r;
        if (m == i)
            break;
        heap_set(w, i, w->eng_heap[m]);
        i = m;
    }
    heap_set(w, i, e);
}

static void heap_remove(pd_worker *w, pd_eng *e)
{
    uint32_t i = e->heap_idx;
    if (i == ENG_NO_SLOT || i >= w->eng_heap_n || w->eng_heap[i] != e)
        return;
    e->heap_idx = ENG_NO_SLOT;
    pd_eng *last = w->eng_heap[--w->eng_heap_n];
    if (last == e)
        return;
    heap_set(w, i, last);
    heap_up(w, i);
    heap_down(w, last->heap_idx);
}

static void on_deadline(uv_timer_t *t);

/* Keep the timer due at the heap's top. */
static void heap_schedule(pd_worker *w)
{
    if (w->eng_heap_n == 0) {
        uv_timer_stop(&w->eng_timer);
        w->eng_timer_due = 0;
        return;
    }
    uint64_t due = w->eng_heap[0]->deadline;
    if (due == w->eng_timer_due && uv_is_active((uv_handle_t *)&w->eng_timer))
        return;
    uint64_t now = pd_mono_ms();
    w->eng_timer_due = due;
    uv_timer_start(&w->eng_timer, on_deadline, due > now ? due - now : 0, 0);
}

static void eng_on_timer(pd_eng *e);

static void on_deadline(uv_timer_t *t)
{
    pd_worker *w = t->data;
    w->eng_timer_due = 0;
    uint64_t now = pd_mono_ms();
    /* Each callback may re-arm its own engine (it goes back into the heap
     * with a later deadline) or release it; it never touches another. */
    while (w->eng_heap_n > 0 && w->eng_heap[0]->deadline <= now) {
        pd_eng *e = w->eng_heap[0];
        heap_remove(w, e);
        e->deadline = 0;
        if (e->closed)
            e->tp->expired(e);
        else
            eng_on_timer(e);
    }
    heap_schedule(w);
}

void pd_eng_arm(pd_eng *e, uint64_t ms)
{
    pd_worker *w = e->w;
    e->deadline = pd_mono_ms() + (ms ? ms : 1);
    if (e->heap_idx != ENG_NO_SLOT) {
        heap_up(w, e->heap_idx);
        heap_down(w, e->heap_idx);
    } else {
        if (w->eng_heap_n == w->eng_heap_cap) {
            uint32_t cap = w->eng_heap_cap ? w->eng_heap_cap * 2 : 1024;
            pd_eng **h = realloc(w->eng_heap, (size_t)cap * sizeof(*h));
            if (!h) {
                /* No deadline means no heartbeat: a session we cannot time
                 * must not stay. Closing from here is safe (callers expect a
                 * close at any point of their own flow). */
                e->deadline = 0;
                if (!e->closed)
                    pd_eng_close(e, PD_WS_CLOSE_INTERNAL, "out of memory");
                else
                    e->tp->expired(e);
                return;
            }
            w->eng_heap = h;
            w->eng_heap_cap = cap;
        }
        heap_set(w, w->eng_heap_n, e);
        w->eng_heap_n++;
        heap_up(w, e->heap_idx);
    }
    heap_schedule(w);
}

void pd_eng_disarm(pd_eng *e)
{
    if (!e->w)
        return;
    heap_remove(e->w, e);
    e->deadline = 0;
}

int pd_eng_layer_init(pd_worker *w)
{
    w->eng_heap = NULL;
    w->eng_heap_n = w->eng_heap_cap = 0;
    w->eng_timer_due = 0;
    uv_timer_init(w->loop, &w->eng_timer);
    w->eng_timer.data = w;
    return PD_OK;
}

void pd_eng_layer_close(pd_worker *w)
{
    uv_close((uv_handle_t *)&w->eng_timer, NULL);
    free(w->eng_heap);
    w->eng_heap = NULL;
    w->eng_heap_n = w->eng_heap_cap = 0;
}

/* ---- life cycle ------------------------------------------------------------ */

/* The next heartbeat deadline `ms` from now, but no later than the connect
 * timeout while the socket has not connected (a pong re-arms for a whole
 * ping interval, which may be longer than the time left to connect). */
static void eng_arm_beat(pd_eng *e, uint64_t ms)
{
    pd_worker *w = e->w;
    if (!e->sio_connected) {
        uint32_t age = (uint32_t)pd_mono_ms() - e->opened;
        uint64_t limit = (uint64_t)w->cfg.connect_timeout_ms;
        ms = PD_MIN(ms, age >= limit ? 1 : limit - age);
    }
    pd_eng_arm(e, ms);
}

int pd_eng_open(pd_eng *e, pd_worker *w, const pd_eng_transport *tp, const char *client_ip,
                const char *eio_sid, int can_upgrade)
{
    char open[256];
    int n = pd_eio_encode_open(open, sizeof(open), eio_sid, (unsigned)w->cfg.ping_interval_ms,
                               (unsigned)w->cfg.ping_timeout_ms, (size_t)w->cfg.max_message_bytes,
                               can_upgrade);
    if (n <= 0 || pd_id_socket_tagged(e->conn.sid, w->eio_tag) != PD_OK)
        return PD_ERR;
    e->conn.ops = &ENG_OPS;
    e->w = w;
    e->tp = tp;
    e->heap_idx = ENG_NO_SLOT;
    pd_conn_set_ip(&e->conn, client_ip);
    e->opened = (uint32_t)pd_mono_ms();
    if (w->conn_handler) {
        e->handler_open = 1;
        w->conn_handler->on_open(w->conn_ud, &e->conn);
    }
    tp->send(e, open, (size_t)n);
    eng_arm_beat(e, (uint64_t)w->cfg.ping_interval_ms);
    return PD_OK;
}

void pd_eng_mark_closed(pd_eng *e)
{
    if (e->closed)
        return;
    e->closed = 1;
    heap_remove(e->w, e);
    e->deadline = 0;
    if (!e->handler_open)
        return;
    e->handler_open = 0;
    pd_worker *w = e->w;
    if (w->conn_handler)
        w->conn_handler->on_close(w->conn_ud, &e->conn);
}

void pd_eng_close(pd_eng *e, uint16_t code, const char *reason)
{
    if (e->closed)
        return;
    pd_eng_mark_closed(e);
    e->tp->close(e, code, reason);
}

void pd_eng_release(pd_eng *e)
{
    if (!e->w)
        return; /* never opened */
    pd_eng_mark_closed(e);
    heap_remove(e->w, e);
    e->deadline = 0;
    heap_schedule(e->w);
}

void pd_eng_move(pd_eng *dst, pd_eng *src, const pd_eng_transport *tp)
{
    pd_worker *w = src->w;
    pd_eng_disarm(dst); /* its own deadline (a probe's timeout) ends here */
    *dst = *src;
    dst->tp = tp;
    if (src->heap_idx != ENG_NO_SLOT)
        w->eng_heap[src->heap_idx] = dst;
    src->heap_idx = ENG_NO_SLOT;
    src->deadline = 0;
    src->closed = 1;
    src->handler_open = 0;
    if (dst->handler_open && w->conn_handler && w->conn_handler->on_moved)
        w->conn_handler->on_moved(w->conn_ud, &dst->conn);
}

/* ---- what the client sends --------------------------------------------------- */

int pd_eng_take(pd_eng *e, const char *what)
{
    pd_worker *w = e->w;
    if (pd_bucket_take(&e->events, (double)w->cfg.event_rate, (double)w->cfg.event_burst, pd_mono_ms())) {
        e->limited_in_row = 0;
        return 1;
    }
    pd_metric_add(w->m_dropped, what, 1);
    if (++e->limited_in_row > (unsigned)w->cfg.event_burst) {
        pd_metric_add(w->m_closed, "event_flood", 1);
        pd_eng_close(e, PD_WS_CLOSE_POLICY, "event rate exceeded");
    }
    return 0;
}

/* An EVENT's data must be a JSON array with at least one element (its
 * name); the shape is checked here, the JSON itself by the handler. */
static int event_shaped(pd_slice d)
{
    size_t i = 0;
    if (d.len == 0 || d.base[0] != '[')
        return 0;
    for (i = 1; i < d.len; i++) {
        char c = d.base[i];
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
            return c != ']';
    }
    return 0;
}

/* A client's 41 on the main namespace: its socket leaves (the handler
 * hears on_close: rooms left, peers told), the Engine.IO session stays,
 * and the connect timeout runs again; a later 40 connects a new socket
 * with a fresh id, which the handler hears as a new on_open
 * (docs/wire-protocol.md §Socket.IO). Each 41 draws from the socket's
 * rate, so a 40/41 loop cannot make Redis work faster than events can. */
static void eng_sio_disconnect(pd_eng *e)
{
    pd_worker *w = e->w;
    if (e->handler_open) {
        e->handler_open = 0;
        if (w->conn_handler)
            w->conn_handler->on_close(w->conn_ud, &e->conn);
    }
    if (w->draining) {
        /* The drain listed the sockets open at SIGTERM and closes them by
         * id: a new socket here would be on no list and keep the worker
         * up until the drain limit. The client reconnects elsewhere. */
        pd_eng_close(e, 1001, "server shutting down");
        return;
    }
    e->sio_connected = 0;
    e->connect_pending = 0;
    e->counted = 0;
    if (pd_id_socket_tagged(e->conn.sid, w->eio_tag) != PD_OK) {
        pd_eng_close(e, PD_WS_CLOSE_INTERNAL, "no socket id");
        return;
    }
    e->opened = (uint32_t)pd_mono_ms();
    if (w->conn_handler) {
        e->handler_open = 1;
        w->conn_handler->on_open(w->conn_ud, &e->conn);
    }
    if (!e->closed && !e->awaiting_pong)
        eng_arm_beat(e, (uint64_t)w->cfg.ping_interval_ms);
}

/* A Socket.IO v5 packet inside an Engine.IO message. */
static void eng_sio(pd_eng *e, pd_slice payload)
{
    pd_worker *w = e->w;
    pd_sio_packet p;
    if (pd_sio_parse(payload, &p) != PD_OK) {
        pd_metric_add(w->m_dropped, "bad_packet", 1);
        pd_eng_close(e, PD_WS_CLOSE_PROTOCOL, "invalid Socket.IO packet");
        return;
    }
    int main_nsp = pd_slice_eq(p.nsp, "/");
    if (p.type == PD_SIO_CONNECT) {
        if (!main_nsp) {
            /* CONNECT_ERROR on the namespace that was asked for; the session
             * stays. An answer per packet, so it draws from the rate. */
            if (!pd_eng_take(e, "connect_rate"))
                return;
            char buf[PD_ID_MAX + 192];
            int n = snprintf(buf, sizeof(buf), "44%.*s,{\"message\":\"Invalid namespace\"}",
                             (int)PD_MIN(p.nsp.len, 128), p.nsp.base);
            if (n > 0 && (size_t)n < sizeof(buf))
                e->tp->send(e, buf, (size_t)n);
            return;
        }
        if (e->sio_connected || e->connect_pending)
            return;
        if (e->counted)
            eng_send_connect(e);
        else
            e->connect_pending = 1;
        return;
    }
    /* v5: an EVENT whose data is not a non-empty array is malformed, on any
     * namespace, and the connection is closed. (JSON errors inside the
     * array are the handler's to refuse; it drops the packet.) */
    if (p.type == PD_SIO_EVENT && !event_shaped(p.data)) {
        pd_metric_add(w->m_dropped, "bad_packet", 1);
        pd_eng_close(e, PD_WS_CLOSE_PROTOCOL, "invalid event payload");
        return;
    }
    /* Socket.IO v5: anything but CONNECT before the socket is connected is
     * a protocol error, and the connection is closed at once. */
    if (!e->sio_connected && main_nsp) {
        pd_metric_add(w->m_dropped, "not_connected", 1);
        /* A client whose CONNECT waits for its answer (the count in Redis)
         * has done nothing wrong yet: its early packets are dropped. */
        if (!e->connect_pending)
            pd_eng_close(e, PD_WS_CLOSE_PROTOCOL, "packet before connect");
        return;
    }
    switch (p.type) {
    case PD_SIO_CONNECT:
        return; /* handled above */
    case PD_SIO_DISCONNECT:
        if (main_nsp && pd_eng_take(e, "connect_rate"))
            eng_sio_disconnect(e);
        return;
    case PD_SIO_EVENT:
        if (!main_nsp) {
            /* A namespace that never connected: nobody listens there. */
            pd_metric_add(w->m_dropped, "not_connected", 1);
            return;
        }
        if (!pd_eng_take(e, "event_rate"))
            return;
        if (e->handler_open && w->conn_handler)
            w->conn_handler->on_event(w->conn_ud, &e->conn, p.data, p.ack_id);
        return;
    case PD_SIO_ACK:
        return; /* we never ask for acks */
    case PD_SIO_CONNECT_ERROR:
        pd_eng_close(e, PD_WS_CLOSE_PROTOCOL, "unexpected packet from client");
        return;
    case PD_SIO_BINARY_EVENT:
    case PD_SIO_BINARY_ACK:
        pd_metric_add(w->m_dropped, "binary", 1);
        pd_eng_close(e, PD_WS_CLOSE_UNSUPPORTED, "binary packets are not supported");
        return;
    }
}

void pd_eng_input(pd_eng *e, pd_slice pkt)
{
    if (e->closed)
        return;
    pd_eio_packet p;
    if (pd_eio_parse(pkt, &p) != PD_OK) {
        pd_metric_add(e->w->m_dropped, "bad_packet", 1);
        pd_eng_close(e, PD_WS_CLOSE_PROTOCOL, "invalid Engine.IO packet");
        return;
    }
    switch (p.type) {
    case PD_EIO_PONG:
        if (e->awaiting_pong) {
            e->awaiting_pong = 0;
            eng_arm_beat(e, (uint64_t)e->w->cfg.ping_interval_ms);
        }
        return;
    case PD_EIO_PING: {
        /* v4 clients do not ping (the upgrade probe is the transport's);
         * answering is cheap, but only within the socket's rate. */
        if (!pd_eng_take(e, "ping_rate"))
            return;
        char buf[64];
        size_t n = PD_MIN(p.data.len, sizeof(buf) - 1);
        buf[0] = '3';
        memcpy(buf + 1, p.data.base, n);
        e->tp->send(e, buf, n + 1);
        return;
    }
    case PD_EIO_MESSAGE:
        eng_sio(e, p.data);
        return;
    case PD_EIO_CLOSE:
        pd_eng_close(e, PD_WS_CLOSE_NORMAL, "client close");
        return;
    case PD_EIO_UPGRADE:
    case PD_EIO_NOOP:
        return;
    case PD_EIO_OPEN:
        pd_eng_close(e, PD_WS_CLOSE_PROTOCOL, "unexpected open packet");
        return;
    }
}

/* The heartbeat and the connect timeout. */
static void eng_on_timer(pd_eng *e)
{
    pd_worker *w = e->w;
    uint64_t now = pd_mono_ms();
    uint32_t age = (uint32_t)now - e->opened;
    if (!e->sio_connected && age >= (uint64_t)w->cfg.connect_timeout_ms) {
        pd_metric_add(w->m_closed, "connect_timeout", 1);
        pd_eng_close(e, PD_WS_CLOSE_POLICY, "connect timeout");
        return;
    }
    if (e->awaiting_pong) {
        pd_metric_add(w->m_closed, "ping_timeout", 1);
        pd_eng_close(e, PD_WS_CLOSE_NORMAL, "ping timeout");
        return;
    }
    eng_send_lit(e, "2");
    e->awaiting_pong = 1;
    eng_arm_beat(e, (uint64_t)w->cfg.ping_timeout_ms);
}
