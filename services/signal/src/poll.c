/* Engine.IO v4 HTTP long-polling (poll.h).
 *
 * Output: packets the engine sends are appended to the session's buffer,
 * joined by 0x1e, and the session goes on the layer's dirty list; an idle
 * handle answers every waiting GET once per loop turn with all that is
 * queued. The buffer is capped like a WebSocket's send queue.
 * Closing: the engine may close a session from inside a POST's packets or a
 * broadcast, so a closed session only leaves the table at once (later
 * requests get "Session ID unknown"); its memory goes at the next flush,
 * after a waiting GET got the close packet. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "privydrop/pd_log.h"
#include "privydrop/pd_ptab.h"
#include "privydrop/pd_wsscan.h"
#include "fwd.h"
#include "poll.h"
#include "session.h"

/* An Engine.IO sid: the owning worker's tag, then a socket id's worth of
 * randomness. */
#define POLL_SID_LEN (PD_FWD_TAG_LEN + PD_SOCKET_ID_LEN)

struct pd_poll {
    pd_eng eng;                    /* the protocol (eng.h) */
    pd_http_conn *get;             /* the waiting GET, NULL if none */
    char *get_headers;             /* its CORS header lines (owned), NULL if none */
    char rget_to[PD_FWD_TAG_LEN + 1]; /* a waiting GET on another worker: its tag */
    char rget_id[24];              /* and its request id there */
    void *probe;                   /* a WebSocket probing an upgrade, NULL if none */
    pd_poll *dirty_next;           /* the layer's dirty list */
    char *out;                     /* packets for the next GET, joined by 0x1e */
    uint32_t out_len, out_cap;
    char sid[POLL_SID_LEN + 1];    /* the Engine.IO session id: the table's key */
    unsigned gone : 1;             /* closed and out of the table; freed at the next flush */
    unsigned in_dirty : 1;         /* on the dirty list */
    unsigned overflow : 1;         /* the client stopped polling past the send cap */
    unsigned has_rget : 1;         /* rget_to/rget_id name a waiting GET */
    unsigned bad_input : 1;        /* closed for a protocol error in the client's packets */
    unsigned rprobe : 1;           /* a WebSocket on worker `peer` probes the upgrade */
    unsigned tunnelled : 1;        /* upgraded: carried by a WebSocket on worker `peer` */
    unsigned probed : 1;           /* a probe ran: GETs are answered at once (noop) so the
                                      client can pause polling and send "5" */
    char peer[PD_FWD_TAG_LEN + 1]; /* that worker's tag */
};

static const char TEXT_TYPE[] = "text/plain; charset=UTF-8";

static pd_slice poll_key(const void *item)
{
    return pd_slice_cstr(((const pd_poll *)item)->sid);
}

static pd_poll *poll_of(pd_eng *e)
{
    return (pd_poll *)(void *)((char *)e - offsetof(pd_poll, eng));
}

static void on_flush(uv_idle_t *idle);

static void poll_mark_dirty(pd_poll *p)
{
    pd_worker *w = p->eng.w;
    if (p->in_dirty)
        return;
    p->in_dirty = 1;
    p->dirty_next = w->poll_dirty;
    w->poll_dirty = p;
    if (!uv_is_active((uv_handle_t *)&w->poll_idle))
        uv_idle_start(&w->poll_idle, on_flush);
}

/* Append one packet (with its separator) to the output. */
static int poll_append(pd_poll *p, const char *pkt, size_t len)
{
    size_t need = p->out_len + len + 1;
    if (need > (size_t)p->eng.w->cfg.max_send_queue_bytes)
        return PD_ERR;
    if (need > p->out_cap) {
        size_t cap = p->out_cap ? p->out_cap : 256;
        while (cap < need)
            cap *= 2;
        char *o = realloc(p->out, cap);
        if (!o)
            return PD_ERR;
        p->out = o;
        p->out_cap = (uint32_t)cap;
    }
    if (p->out_len)
        p->out[p->out_len++] = PD_EIO_SEPARATOR;
    memcpy(p->out + p->out_len, pkt, len);
    p->out_len += (uint32_t)len;
    return PD_OK;
}

/* ---- the transport the engine sees ----------------------------------------- */

static void tp_send(pd_eng *e, const char *pkt, size_t len)
{
    pd_poll *p = poll_of(e);
    if (p->gone || p->overflow)
        return;
    if (poll_append(p, pkt, len) != PD_OK)
        p->overflow = 1; /* acted on at the flush: we may be inside a broadcast */
    poll_mark_dirty(p);
}

static void poll_unlink(pd_poll *p)
{
    pd_worker *w = p->eng.w;
    if (p->gone)
        return;
    p->gone = 1;
    pd_ptab_del(w->polls, pd_slice_cstr(p->sid));
    if (p->probe) {
        void *probe = p->probe;
        p->probe = NULL;
        pd_sess_probe_lost(probe);
    }
}

static void tp_close(pd_eng *e, uint16_t code, const char *reason)
{
    pd_poll *p = poll_of(e);
    if (p->gone)
        return;
    if (code == PD_WS_CLOSE_PROTOCOL || code == PD_WS_CLOSE_UNSUPPORTED)
        p->bad_input = 1;
    /* The close packet goes to a waiting (or the next, if it comes before
     * the flush) GET; anything after finds no session. */
    p->overflow = 0;
    /* The client's own close: a waiting GET just ends (noop), as the
     * reference server answers it; any other close tells the client. */
    const char *last = reason && strcmp(reason, "client close") == 0 ? "6" : "1";
    if (poll_append(p, last, 1) != PD_OK) {
        p->out_len = 0;
        poll_append(p, last, 1);
    }
    poll_unlink(p);
    poll_mark_dirty(p);
}

static void tp_expired(pd_eng *e)
{
    (void)e; /* a polling session arms no deadline of its own */
}

static const pd_eng_transport POLL_TP = {tp_send, tp_close, tp_expired};

/* After an upgrade that landed on another worker, the engine stays here and
 * its packets travel to the WebSocket there (fwd.h). */
static void tun_send(pd_eng *e, const char *pkt, size_t len)
{
    pd_poll *p = poll_of(e);
    char head[POLL_SID_LEN + 8];
    int n = snprintf(head, sizeof(head), "O %s\n", p->sid);
    if (pd_fwd_publish(e->w, pd_slice_cstr(p->peer), head, (size_t)n, pkt, len, NULL, NULL) != PD_OK)
        pd_metric_add(e->w->m_dropped, "tunnel_redis_down", 1);
}

static void tun_close(pd_eng *e, uint16_t code, const char *reason)
{
    (void)reason;
    pd_poll *p = poll_of(e);
    char head[POLL_SID_LEN + 16];
    int n = snprintf(head, sizeof(head), "C %s %04u\n", p->sid, (unsigned)code);
    pd_fwd_publish(e->w, pd_slice_cstr(p->peer), head, (size_t)n, NULL, 0, NULL, NULL);
    poll_unlink(p);
    poll_mark_dirty(p); /* frees it */
}

static const pd_eng_transport TUNNEL_TP = {tun_send, tun_close, tp_expired};

/* ---- answering -------------------------------------------------------------- */

/* A GET is waiting, here or on another worker. */
static int poll_waiting(const pd_poll *p)
{
    return p->get || p->has_rget;
}

/* Answer the waiting GET with `body`. */
static void poll_answer_get(pd_poll *p, const char *body, size_t len)
{
    if (p->has_rget) {
        p->has_rget = 0;
        pd_fwd_reply(p->eng.w, pd_slice_cstr(p->rget_to), pd_slice_cstr(p->rget_id), 200, 't', body, len);
        return;
    }
    pd_http_conn *c = p->get;
    p->get = NULL;
    p->eng.w->poll_gets--;
    pd_metric_set(p->eng.w->m_poll_gets, NULL, (double)p->eng.w->poll_gets);
    pd_http_respond(c, 200, TEXT_TYPE, p->get_headers, body, len, 0);
    free(p->get_headers);
    p->get_headers = NULL;
}

static void poll_free(pd_poll *p)
{
    pd_eng_release(&p->eng);
    pd_metric_set(p->eng.w->m_polls, NULL, (double)pd_poll_count(p->eng.w));
    free(p->get_headers);
    free(p->out);
    free(p);
}

static void poll_flush(pd_poll *p)
{
    if (p->overflow && !p->gone) {
        pd_metric_add(p->eng.w->m_closed, "send_queue_full", 1);
        p->overflow = 0;
        pd_eng_close(&p->eng, PD_WS_CLOSE_POLICY, "send queue full"); /* queues "1" */
    }
    if (poll_waiting(p) && p->out_len) {
        poll_answer_get(p, p->out, p->out_len);
        p->out_len = 0;
        if (p->out_cap > 4096) {
            free(p->out);
            p->out = NULL;
            p->out_cap = 0;
        }
    }
    if (p->gone) {
        /* A close just now put it back on the dirty list: the same pass
         * comes back to it, and frees it then. */
        if (p->in_dirty)
            return;
        if (poll_waiting(p)) /* nothing left to say: the session is over */
            poll_answer_get(p, "1", 1);
        poll_free(p);
    }
}

static void on_flush(uv_idle_t *idle)
{
    pd_worker *w = idle->data;
    while (w->poll_dirty) {
        pd_poll *p = w->poll_dirty;
        w->poll_dirty = p->dirty_next;
        p->dirty_next = NULL;
        p->in_dirty = 0;
        poll_flush(p);
    }
    uv_idle_stop(idle);
}

/* ---- requests --------------------------------------------------------------- */

static char *dup_headers(const char *cors)
{
    return cors ? strdup(cors) : NULL;
}

static void answer_error(pd_http_conn *c, int status, const char *cors, const char *body)
{
    pd_http_respond(c, status, "application/json", cors, body, strlen(body), 0);
}

static void poll_handshake(pd_worker *w, pd_http_conn *c, const char *client_ip, const char *cors)
{
    pd_poll *p = calloc(1, sizeof(*p));
    if (p)
        memcpy(p->sid, w->eio_tag, PD_FWD_TAG_LEN);
    if (!p || pd_id_socket(p->sid + PD_FWD_TAG_LEN) != PD_OK) {
        free(p);
        pd_http_respond_json(c, 500, cors, "{\"error\":\"Internal server error\"}", 1);
        return;
    }
    p->eng.w = w;
    if (pd_ptab_put(w->polls, p) != PD_OK) {
        free(p);
        pd_http_respond_json(c, 500, cors, "{\"error\":\"Internal server error\"}", 1);
        return;
    }
    if (pd_eng_open(&p->eng, w, &POLL_TP, client_ip, p->sid, 1) != PD_OK) {
        pd_ptab_del(w->polls, pd_slice_cstr(p->sid));
        free(p->out);
        free(p);
        pd_http_respond_json(c, 500, cors, "{\"error\":\"Internal server error\"}", 1);
        return;
    }
    pd_metric_set(w->m_polls, NULL, (double)pd_poll_count(w));
    /* The open packet is queued: answer with it now. */
    p->get = c;
    w->poll_gets++;
    p->get_headers = dup_headers(cors);
    poll_mark_dirty(p);
}

/* After an upgrade: the packets queued for polling leave, in order, through
 * the transport now carrying engine `e`. */
static void poll_hand_over(pd_poll *p, pd_eng *e)
{
    size_t i = 0;
    while (i < p->out_len) {
        size_t j = i;
        while (j < p->out_len && p->out[j] != PD_EIO_SEPARATOR)
            j++;
        e->tp->send(e, p->out + i, j - i);
        i = j + 1;
    }
    p->out_len = 0;
}

/* A POST's body: packets joined by 0x1e, each handed to the engine. */
static void poll_take_packets(pd_poll *p, pd_slice body)
{
    size_t i = 0;
    while (i <= body.len && !p->eng.closed) {
        size_t j = i;
        while (j < body.len && body.base[j] != PD_EIO_SEPARATOR)
            j++;
        pd_eng_input(&p->eng, pd_slice_make(body.base + i, j - i));
        i = j + 1;
    }
}

static void poll_post(pd_poll *p, pd_http_conn *c, const pd_http_request *req, const char *cors)
{
    if (req->body.len == 0) {
        answer_error(c, 400, cors, PD_EIO_ERR_BAD_REQUEST);
        return;
    }
    poll_take_packets(p, req->body);
    if (p->bad_input) /* the session is closed; the request was bad */
        answer_error(c, 400, cors, PD_EIO_ERR_BAD_REQUEST);
    else
        pd_http_respond(c, 200, "text/html", cors, "ok", 2, 0);
}

/* Two GETs at once: the spec closes the session (the first gets the close
 * packet at the flush). */
static void poll_overlap(pd_poll *p)
{
    pd_metric_add(p->eng.w->m_closed, "poll_overlap", 1);
    pd_eng_close(&p->eng, PD_WS_CLOSE_PROTOCOL, "overlapping GET");
}

void pd_poll_remote(pd_worker *w, char kind, pd_slice from, pd_slice id, pd_slice sid, pd_slice body)
{
    if (from.len != PD_FWD_TAG_LEN || id.len == 0 || id.len >= sizeof(((pd_poll *)0)->rget_id))
        return;
    pd_poll *p = pd_poll_find(w, sid);
    if (!p) {
        pd_fwd_reply(w, from, id, 400, 'j', PD_EIO_ERR_UNKNOWN_SID, strlen(PD_EIO_ERR_UNKNOWN_SID));
        return;
    }
    if (kind == 'P') {
        if (body.len == 0 || body.len > (size_t)w->cfg.max_message_bytes) {
            pd_fwd_reply(w, from, id, 400, 'j', PD_EIO_ERR_BAD_REQUEST, strlen(PD_EIO_ERR_BAD_REQUEST));
            return;
        }
        poll_take_packets(p, body);
        if (p->bad_input)
            pd_fwd_reply(w, from, id, 400, 'j', PD_EIO_ERR_BAD_REQUEST, strlen(PD_EIO_ERR_BAD_REQUEST));
        else
            pd_fwd_reply(w, from, id, 200, 'h', "ok", 2);
        return;
    }
    if (kind != 'G')
        return;
    if (poll_waiting(p)) {
        pd_fwd_reply(w, from, id, 400, 'j', PD_EIO_ERR_BAD_REQUEST, strlen(PD_EIO_ERR_BAD_REQUEST));
        poll_overlap(p);
        return;
    }
    memcpy(p->rget_to, from.base, from.len);
    p->rget_to[from.len] = '\0';
    memcpy(p->rget_id, id.base, id.len);
    p->rget_id[id.len] = '\0';
    p->has_rget = 1;
    if (p->out_len)
        poll_mark_dirty(p);
    else if (p->probed)
        poll_answer_get(p, "6", 1);
}

void pd_poll_request(pd_worker *w, pd_http_conn *c, const pd_http_request *req, const pd_eio_query *q,
                     const char *client_ip, const char *cors)
{
    if (!q->has_sid) {
        if (req->method != PD_HTTP_GET) {
            answer_error(c, 400, cors, PD_EIO_ERR_HANDSHAKE_METHOD);
            return;
        }
        poll_handshake(w, c, client_ip, cors);
        return;
    }
    pd_poll *p = pd_poll_find(w, q->sid);
    if (!p) {
        answer_error(c, 400, cors, PD_EIO_ERR_UNKNOWN_SID);
        return;
    }
    if (req->method == PD_HTTP_POST) {
        poll_post(p, c, req, cors);
        return;
    }
    if (req->method != PD_HTTP_GET) {
        answer_error(c, 400, cors, PD_EIO_ERR_BAD_REQUEST);
        return;
    }
    if (poll_waiting(p)) {
        answer_error(c, 400, cors, PD_EIO_ERR_BAD_REQUEST);
        poll_overlap(p);
        return;
    }
    p->get = c;
    w->poll_gets++;
    pd_metric_set(w->m_poll_gets, NULL, (double)w->poll_gets);
    p->get_headers = dup_headers(cors);
    /* A waiting GET is bounded by the per-address session cap, not by the
     * HTTP layer's cap on short-lived connections. */
    pd_http_conn_release_slot(c);
    if (p->out_len)
        poll_mark_dirty(p);
    else if (p->probed)
        poll_answer_get(p, "6", 1); /* the upgrade is under way: don't hold the client */
}

pd_poll *pd_poll_find(pd_worker *w, pd_slice sid)
{
    if (sid.len != POLL_SID_LEN)
        return NULL;
    pd_poll *p = pd_ptab_get(w->polls, sid);
    return p && !p->gone && !p->tunnelled ? p : NULL;
}

size_t pd_poll_count(const pd_worker *w)
{
    return w->polls ? pd_ptab_count(w->polls) : 0;
}

/* ---- the upgrade ------------------------------------------------------------- */

int pd_poll_probe_attach(pd_poll *p, void *probe)
{
    if (p->gone || p->probe || p->rprobe)
        return PD_ERR;
    p->probe = probe;
    return PD_OK;
}

void pd_poll_probe_ping(pd_poll *p)
{
    p->probed = 1;
    /* The client pauses polling once its waiting GET returns; a noop makes
     * it return now. */
    if (!p->gone && poll_waiting(p) && p->out_len == 0)
        poll_answer_get(p, "6", 1);
}

void pd_poll_probe_detach(pd_poll *p)
{
    p->probe = NULL;
    p->probed = 0;
}

int pd_poll_probe_upgrade(pd_poll *p, pd_eng *dst, const pd_eng_transport *tp)
{
    if (p->gone)
        return PD_ERR;
    p->probe = NULL;
    pd_eng_move(dst, &p->eng, tp);
    /* What the engine queued for polling goes out on the WebSocket first. */
    poll_hand_over(p, dst);
    poll_unlink(p);
    if (poll_waiting(p))
        poll_answer_get(p, "6", 1);
    poll_mark_dirty(p); /* frees it */
    return PD_OK;
}

/* ---- the upgrade through another worker (fwd.h) --------------------------- */

static void tunnel_tell(pd_worker *w, pd_slice to, pd_slice sid, const char *what, size_t len, int close_code)
{
    char head[PD_FWD_MAX_SID + 16];
    int n = close_code ? snprintf(head, sizeof(head), "C %.*s %04d\n", (int)sid.len, sid.base, close_code)
                       : snprintf(head, sizeof(head), "O %.*s\n", (int)sid.len, sid.base);
    pd_fwd_publish(w, to, head, (size_t)n, what, len, NULL, NULL);
}

void pd_poll_tunnel_in(pd_worker *w, pd_slice from, pd_slice sid, pd_slice pkt)
{
    if (from.len != PD_FWD_TAG_LEN || sid.len > PD_FWD_MAX_SID)
        return;
    pd_poll *p = sid.len == POLL_SID_LEN ? pd_ptab_get(w->polls, sid) : NULL;
    if (!p || p->gone) {
        tunnel_tell(w, from, sid, NULL, 0, PD_WS_CLOSE_GOING_AWAY);
        return;
    }
    int same_peer = pd_slice_eq(from, p->peer);
    if (p->tunnelled) {
        if (same_peer)
            pd_eng_input(&p->eng, pkt);
        return;
    }
    if (p->probe || (p->rprobe && !same_peer)) {
        tunnel_tell(w, from, sid, NULL, 0, PD_WS_CLOSE_POLICY); /* another probe holds it */
        return;
    }
    if (pd_slice_eq(pkt, "2probe")) {
        p->rprobe = 1;
        p->probed = 1;
        memcpy(p->peer, from.base, from.len);
        p->peer[from.len] = '\0';
        tunnel_tell(w, from, sid, "3probe", 6, 0);
        if (poll_waiting(p) && p->out_len == 0)
            poll_answer_get(p, "6", 1);
        return;
    }
    if (p->rprobe && pd_slice_eq(pkt, "5")) {
        p->rprobe = 0;
        p->tunnelled = 1;
        p->eng.tp = &TUNNEL_TP;
        /* What waited for polling goes down the tunnel, in order. */
        poll_hand_over(p, &p->eng);
        if (poll_waiting(p))
            poll_answer_get(p, "6", 1);
        return;
    }
    pd_metric_add(w->m_dropped, "bad_probe", 1);
    p->rprobe = 0;
    p->probed = 0;
    tunnel_tell(w, from, sid, NULL, 0, PD_WS_CLOSE_PROTOCOL);
}

void pd_poll_tunnel_gone(pd_worker *w, pd_slice from, pd_slice sid)
{
    pd_poll *p = sid.len == POLL_SID_LEN ? pd_ptab_get(w->polls, sid) : NULL;
    if (!p || p->gone || !pd_slice_eq(from, p->peer))
        return;
    if (p->rprobe) {
        p->rprobe = 0; /* a failed probe: polling goes on */
        p->probed = 0;
        return;
    }
    if (p->tunnelled) {
        pd_metric_add(w->m_closed, "transport_close", 1);
        pd_eng_mark_closed(&p->eng);
        poll_unlink(p);
        poll_mark_dirty(p); /* frees it */
    }
}

/* ---- the layer ----------------------------------------------------------------- */

int pd_poll_layer_init(pd_worker *w)
{
    w->polls = pd_ptab_create(poll_key);
    if (!w->polls)
        return PD_ERR;
    w->poll_dirty = NULL;
    uv_idle_init(w->loop, &w->poll_idle);
    w->poll_idle.data = w;
    return PD_OK;
}

static int collect(pd_slice key, void *item, void *data)
{
    (void)key;
    pd_poll **list = data;
    pd_poll *p = item;
    p->dirty_next = *list;
    *list = p;
    return 0;
}

void pd_poll_layer_close(pd_worker *w)
{
    if (!w->polls)
        return;
    /* First what waits for a flush (closed ones go, open ones stay in the
     * table), then every session still in the table. */
    while (w->poll_dirty) {
        pd_poll *p = w->poll_dirty;
        w->poll_dirty = p->dirty_next;
        p->dirty_next = NULL;
        p->in_dirty = 0;
        if (p->gone) {
            if (poll_waiting(p))
                poll_answer_get(p, "1", 1);
            poll_free(p);
        }
    }
    pd_poll *list = NULL;
    pd_ptab_foreach(w->polls, collect, &list);
    while (list) {
        pd_poll *p = list;
        list = p->dirty_next;
        pd_eng_mark_closed(&p->eng);
        poll_unlink(p);
        if (poll_waiting(p))
            poll_answer_get(p, "1", 1);
        poll_free(p);
    }
    pd_ptab_free(w->polls);
    w->polls = NULL;
    uv_close((uv_handle_t *)&w->poll_idle, NULL);
}
