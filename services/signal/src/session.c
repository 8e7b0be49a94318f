/* One WebSocket connection carrying one Engine.IO v4 session and its
 * Socket.IO v5 socket on the main namespace.
 *
 * Input: libuv reads into the worker's shared buffer. Whole text frames are
 * handled straight from it (feed_simple); a text frame cut by the end of a
 * read is kept (sess_part) until the next reads complete it; everything
 * else (control frames, fragments) goes to wslay, which keeps its own
 * partial frames. An idle session holds no read buffer.
 * Output: text frames are written straight into the session's output buffer
 * (server frames are unmasked, so framing is a 2–10 byte header) and the
 * session is put on the worker's dirty list; an idle handle flushes every
 * dirty session once per loop turn into one uv_write each. wslay writes its
 * control replies (pong, close) into the same buffer, whole frames at a time.
 * The wslay context (about 9 KiB) exists only while a session is between
 * frames or has control frames to send: an idle socket holds none. Sending is therefore never re-entrant with wslay's
 * receive path, and a broadcast never closes a session under its caller:
 * overflow is only noted, and acted on at flush time. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <wslay/wslay.h>

#include "privydrop/pd_eio.h"
#include "privydrop/pd_log.h"
#include "privydrop/pd_ratelimit.h"
#include "privydrop/pd_sio.h"
#include "privydrop/pd_wsscan.h"
#include "fwd.h"
#include "poll.h"
#include "session.h"

typedef enum sess_state { S_OPEN, S_CLOSING, S_CLOSED } sess_state;

/* A closing session waits this long for its close frame to drain (or for
 * the peer's answering close) before the TCP connection is cut. */
#define SESS_CLOSE_LINGER_MS 2000

/* Output buffer kept between flushes up to this size, so a busy socket
 * does not allocate (and grow by reallocation) for every write: a loop
 * turn's frames for one peer are often a few KiB under load. Larger ones are
 * given back at once; an idle socket's goes back at the next tick (on_tick). */
#define SESS_OUT_KEEP 16384
/* An upgrade probe (or a tunnel not yet upgraded) must finish within this,
 * or its connection is cut: it holds the session's one probe slot. */
#define SESS_UPGRADE_TIMEOUT_MS 10000
/* How often buffers left empty are given back. */
#define SESS_OUT_TICK_MS 250

/* The start of a text frame that a read cut short, kept until the next
 * reads complete it (the direct path then handles it like any other); only
 * while such a frame is open. */
typedef struct sess_part {
    uint32_t len;    /* bytes held */
    uint32_t cap;    /* bytes allocated in data */
    uint32_t pieces; /* reads it came in, bounded like the frame library's */
    uint8_t data[];
} sess_part;

/* A write in flight and the bytes it carries; allocated per write so idle
 * sessions do not carry a uv_write_t. */
typedef struct sess_write {
    uv_write_t req;
    char *buf;  /* the frames, owned */
    size_t len; /* their length */
} sess_write;


/* Tens of thousands of these sit idle on a worker, so the layout is
 * compact: flags are bits, and buffers exist only while in use. */
struct pd_sess {
    pd_eng eng;                    /* the protocol this connection carries (eng.h) */
    uv_tcp_t *tcp;                 /* owned stream; tcp->data == this */
    pd_sess *prev, *next;          /* the worker's list of sessions not yet closed */
    pd_sess *dirty_next;           /* worker dirty list link */
    wslay_event_context_ptr ws;    /* receive state and control replies; NULL while idle */
    sess_part *part;               /* a text frame cut by a read; NULL between frames */
    char *out;                     /* frames waiting for the next write */
    uint32_t out_len, out_cap;
    uint32_t writes;               /* writes handed to libuv and not yet completed */
    pd_ws_scanner scan;            /* frame-header pre-check */
    union {
        pd_poll *probe;            /* probing: the polling session here this connection takes over, or NULL */
        char *tunnel;              /* tunnelling: the sid of another worker's session it carries (owned) */
    } up;
    unsigned state : 2;            /* sess_state */
    unsigned overflow : 1;         /* send queue passed the cap */
    unsigned peer_gone : 1;        /* transport failed: no close frame */
    unsigned read_paused : 1;      /* reading stopped by back-pressure */
    unsigned out_used : 1;         /* output queued since the last tick */
    unsigned in_dirty : 1;         /* on the worker's dirty list */
    unsigned probing : 1;          /* an upgrade probe: no session of its own yet */
    unsigned tunnelling : 1;       /* carries another worker's session (fwd.h) */
};

static void sess_finish(pd_sess *s);
static void sess_flush(pd_sess *s);
static size_t sess_queued(const pd_sess *s);
static wslay_event_context_ptr sess_ws(pd_sess *s);
static void sess_send(pd_sess *s, const char *pkt, size_t len);
static void sess_close(pd_sess *s, uint16_t code, const char *reason);
static void sess_drop_probe(pd_sess *s);

/* The session an engine is embedded in. */
static pd_sess *sess_of(pd_eng *e)
{
    return (pd_sess *)(void *)((char *)e - offsetof(pd_sess, eng));
}

static void tp_send(pd_eng *e, const char *pkt, size_t len) { sess_send(sess_of(e), pkt, len); }
static void tp_close(pd_eng *e, uint16_t code, const char *reason) { sess_close(sess_of(e), code, reason); }
static void tp_expired(pd_eng *e) { sess_finish(sess_of(e)); }

static const pd_eng_transport SESS_TP = {tp_send, tp_close, tp_expired};

/* ---- dirty list / flushing --------------------------------------------- */

static void sess_mark_dirty(pd_sess *s);

/* Give the (empty) output buffer back. */
static void sess_out_release(pd_sess *s)
{
    free(s->out);
    s->out = NULL;
    s->out_cap = 0;
}

/* The transport failed where the session cannot be closed at once (a
 * caller may be iterating a room): the next flush closes it. */
static void sess_fail_later(pd_sess *s)
{
    s->peer_gone = 1;
    s->overflow = 1;
    sess_mark_dirty(s);
}

static void on_flush_idle(uv_idle_t *idle)
{
    pd_worker *w = idle->data;
    /* Pop one session at a time: a flush may put a session back on the
     * list (a close frame queued by overflow handling), and popping from the
     * head then simply flushes it again in this same pass. */
    while (w->dirty) {
        pd_sess *s = w->dirty;
        w->dirty = s->dirty_next;
        s->dirty_next = NULL;
        s->in_dirty = 0;
        sess_flush(s);
    }
    uv_idle_stop(idle);
}

static void sess_mark_dirty(pd_sess *s)
{
    if (s->in_dirty)
        return;
    s->in_dirty = 1;
    s->dirty_next = s->eng.w->dirty;
    s->eng.w->dirty = s;
    if (!uv_is_active((uv_handle_t *)&s->eng.w->flush_idle))
        uv_idle_start(&s->eng.w->flush_idle, on_flush_idle);
}

static void sess_unlink_dirty(pd_sess *s)
{
    if (!s->in_dirty)
        return;
    pd_sess **pp = &s->eng.w->dirty;
    while (*pp && *pp != s)
        pp = &(*pp)->dirty_next;
    if (*pp)
        *pp = s->dirty_next;
    s->in_dirty = 0;
    s->dirty_next = NULL;
}

static void on_tick(uv_timer_t *t);

void pd_sess_layer_init(pd_worker *w)
{
    uv_idle_init(w->loop, &w->flush_idle);
    w->flush_idle.data = w;
    w->dirty = NULL;
    w->sessions = NULL;
    /* Deadlines (heartbeat, linger) are the engine's (eng.h); this clock
     * only gives back output buffers that sat empty for a whole tick. */
    uint64_t tick = SESS_OUT_TICK_MS;
    uv_timer_init(w->loop, &w->sess_tick);
    w->sess_tick.data = w;
    uv_timer_init(w->loop, &w->resume_timer);
    w->resume_timer.data = w;
    uv_timer_start(&w->sess_tick, on_tick, tick, tick);
}

void pd_sess_layer_close(pd_worker *w)
{
    /* Whatever is still closing (a peer that never took its close frame)
     * goes now, so the loop can end. */
    pd_sess *s = w->sessions;
    while (s) {
        pd_sess *next = s->next;
        sess_finish(s);
        s = next;
    }
    uv_close((uv_handle_t *)&w->flush_idle, NULL);
    uv_close((uv_handle_t *)&w->sess_tick, NULL);
    uv_close((uv_handle_t *)&w->resume_timer, NULL);
}

/* ---- wslay callbacks ---------------------------------------------------- */

static ssize_t ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *ud)
{
    (void)flags;
    pd_worker *w = ((pd_sess *)ud)->eng.w;
    size_t avail = w->feed_len - w->feed_pos;
    if (avail == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = PD_MIN(avail, len);
    memcpy(buf, w->feed_buf + w->feed_pos, n);
    w->feed_pos += n;
    return (ssize_t)n;
}

/* Make room for n more output bytes. */
static int out_reserve(pd_sess *s, size_t n)
{
    if (s->out_len + n <= s->out_cap)
        return PD_OK;
    if (n > UINT32_MAX / 4 || s->out_len + n > UINT32_MAX / 4)
        return PD_ERR; /* lengths are 32-bit; the send-queue cap is far below */
    size_t cap = s->out_cap ? s->out_cap : 256;
    while (cap < s->out_len + n)
        cap *= 2;
    char *p = realloc(s->out, cap);
    if (!p)
        return PD_ERR;
    s->out = p;
    s->out_cap = cap;
    return PD_OK;
}

/* wslay hands us its control replies (pong, close) here. They count against
 * the same send cap as everything else: a peer that pings and never reads
 * must not grow our output without bound. Over the cap the bytes stay in
 * wslay (would-block) and the session is closed at the next flush. */
static ssize_t ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *ud)
{
    (void)flags;
    pd_sess *s = ud;
    size_t in_kernel_wait = s->writes ? uv_stream_get_write_queue_size((const uv_stream_t *)s->tcp) : 0;
    if (s->state == S_OPEN && s->out_len + in_kernel_wait + len > (size_t)s->eng.w->cfg.max_send_queue_bytes) {
        s->overflow = 1;
        sess_mark_dirty(s);
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (out_reserve(s, len) != PD_OK) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    memcpy(s->out + s->out_len, data, len);
    s->out_len += len;
    return (ssize_t)len;
}

/* One Engine.IO packet from the client. While probing an upgrade the
 * connection carries no session yet: "2probe" is answered "3probe" (and the
 * polling side lets its waiting GET go), "5" moves the session here; the
 * Engine.IO spec allows nothing else. */
static void sess_input(pd_sess *s, pd_slice pkt)
{
    if (s->tunnelling) {
        /* The owner judges every packet, but this worker still bounds what
         * one client makes it publish. */
        pd_worker *w = s->eng.w;
        if (!pd_bucket_take(&s->eng.events, 2.0 * (double)w->cfg.event_rate, 2.0 * (double)w->cfg.event_burst,
                            pd_mono_ms())) {
            pd_metric_add(w->m_dropped, "tunnel_rate", 1);
            return;
        }
        if (s->probing && pd_slice_eq(pkt, "5")) {
            s->probing = 0; /* upgraded: the owner's heartbeat times it now */
            pd_eng_disarm(&s->eng);
        }
        pd_fwd_tunnel_packet(w, pd_slice_cstr(s->up.tunnel), pkt);
        return;
    }
    if (!s->probing) {
        pd_eng_input(&s->eng, pkt);
        return;
    }
    if (s->up.probe && pd_slice_eq(pkt, "2probe")) {
        sess_send(s, "3probe", 6);
        pd_poll_probe_ping(s->up.probe);
        return;
    }
    if (s->up.probe && pd_slice_eq(pkt, "5")) {
        pd_poll *p = s->up.probe;
        s->up.probe = NULL;
        s->probing = 0;
        if (pd_poll_probe_upgrade(p, &s->eng, &SESS_TP) != PD_OK)
            sess_close(s, PD_WS_CLOSE_NORMAL, "session closed");
        return;
    }
    pd_metric_add(s->eng.w->m_dropped, "bad_probe", 1);
    sess_close(s, PD_WS_CLOSE_PROTOCOL, "unexpected packet during upgrade");
}

/* From the owner of a tunnelled session (fwd.c). */
void pd_sess_tunnel_out(pd_sess *s, pd_slice pkt)
{
    sess_send(s, pkt.base, pkt.len);
}

void pd_sess_tunnel_close(pd_sess *s, uint16_t code)
{
    sess_close(s, code, code == PD_WS_CLOSE_GOING_AWAY ? "session gone" : "session closed");
}

/* The polling session closed under a probe. */
void pd_sess_probe_lost(void *probe)
{
    pd_sess *s = probe;
    s->up.probe = NULL;
    sess_close(s, PD_WS_CLOSE_NORMAL, "session closed");
}

static void ws_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                      void *ud)
{
    (void)ctx;
    pd_sess *s = ud;
    if (s->state != S_OPEN)
        return;
    switch (arg->opcode) {
    case WSLAY_TEXT_FRAME:
        sess_input(s, pd_slice_make((const char *)arg->msg, arg->msg_length));
        break;
    case WSLAY_BINARY_FRAME:
        pd_metric_add(s->eng.w->m_dropped, "binary", 1);
        sess_close(s, PD_WS_CLOSE_UNSUPPORTED, "binary frames are not supported");
        break;
    case WSLAY_CONNECTION_CLOSE:
        /* wslay has queued the answering close frame; clean up the room now
         * and let the flush finish the connection. */
        s->state = S_CLOSING;
        pd_metric_add(s->eng.w->m_closed, "client_close", 1);
        pd_eng_mark_closed(&s->eng);
        uv_read_stop((uv_stream_t *)s->tcp);
        pd_eng_arm(&s->eng, SESS_CLOSE_LINGER_MS);
        sess_mark_dirty(s);
        break;
    case WSLAY_PING:
    case WSLAY_PONG:
        /* wslay has already queued the pong for a ping (the send cap bounds
         * it); a flood of control frames is closed like an event flood. */
        pd_eng_take(&s->eng, "ping_rate");
        break;
    default:
        break;
    }
}

/* ---- the output-buffer clock ------------------------------------------------ */

static void on_tick(uv_timer_t *t)
{
    pd_worker *w = t->data;
    /* An output buffer left empty for a whole tick goes back: idle sockets
     * hold none. */
    for (pd_sess *s = w->sessions; s; s = s->next) {
        if (s->out && s->out_len == 0) {
            if (!s->out_used)
                sess_out_release(s);
            s->out_used = 0;
        }
    }
}

/* ---- I/O ---------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    pd_sess *s = h->data;
    buf->base = (char *)s->eng.w->read_buf;
    buf->len = sizeof(s->eng.w->read_buf);
}

static void feed(pd_sess *s, const char *data, size_t len)
{
    /* Frame headers are checked before wslay buffers anything, so a bad or
     * oversized frame is refused the moment its header arrives. */
    size_t ok_len = len;
    uint16_t violation = pd_ws_scan(&s->scan, (const uint8_t *)data, len, &ok_len);
    len = ok_len;
    pd_worker *w = s->eng.w;
    w->feed_buf = (const uint8_t *)data;
    w->feed_len = len;
    w->feed_pos = 0;
    wslay_event_context_ptr ws = sess_ws(s);
    if (!ws) {
        w->feed_buf = NULL;
        w->feed_len = w->feed_pos = 0;
        sess_close(s, PD_WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    int rc = wslay_event_recv(ws);
    w->feed_buf = NULL;
    w->feed_len = w->feed_pos = 0;
    if (s->state == S_CLOSED)
        return;
    /* Pongs wslay queued for this read's pings count against the cap too;
     * one read adds at most a read buffer's worth before this check. */
    if (s->state == S_OPEN && sess_queued(s) > (size_t)w->cfg.max_send_queue_bytes)
        s->overflow = 1;
    if (violation && s->state == S_OPEN) {
        pd_metric_add(s->eng.w->m_closed, violation == PD_WS_CLOSE_TOO_BIG ? "message_too_big" : "protocol_error", 1);
        sess_close(s, violation, violation == PD_WS_CLOSE_TOO_BIG ? "message too big" : "protocol error");
        return;
    }
    if (rc != 0 && s->state == S_OPEN) {
        /* wslay queued a close frame for protocol errors (1002) and
         * oversized messages (1009); record why and let the flush send it. */
        pd_metric_add(s->eng.w->m_closed, "protocol_error", 1);
        s->state = S_CLOSING;
        pd_eng_mark_closed(&s->eng);
        uv_read_stop((uv_stream_t *)s->tcp);
        pd_eng_arm(&s->eng, SESS_CLOSE_LINGER_MS);
    }
    sess_mark_dirty(s);
}

/* One complete, final, masked text frame, unmasked in place and handled.
 * Returns 0 if the session was closed (invalid UTF-8). */
static int simple_frame(pd_sess *s, uint8_t *frame, size_t hdr, size_t plen)
{
    uint8_t *payload = frame + hdr;
    pd_ws_unmask(payload, plen, payload - 4);
    if (!pd_utf8_valid(payload, plen)) {
        pd_metric_add(s->eng.w->m_closed, "protocol_error", 1);
        sess_close(s, PD_WS_CLOSE_INVALID_DATA, "invalid UTF-8");
        return 0;
    }
    sess_input(s, pd_slice_make((const char *)payload, plen));
    return 1;
}

/* Whether the direct path may take the next frame: the stream is between
 * messages and wslay holds nothing. */
static int direct_ok(const pd_sess *s)
{
    return s->state == S_OPEN && !s->ws && !s->part && pd_ws_scan_idle(&s->scan);
}

/* Complete, final, masked text frames read while the stream is between
 * messages skip wslay (which would copy each payload twice and unmask it a
 * byte at a time): they are unmasked in place in the worker's read buffer,
 * checked for UTF-8 and handled at once. Returns how many leading bytes were
 * consumed; the rest (control frames, fragments, a frame cut by the read,
 * anything the pre-check must refuse) is for part_start() or feed(). */
static size_t feed_simple(pd_sess *s, uint8_t *data, size_t len)
{
    size_t pos = 0, plen = 0, hdr;
    uint64_t max = (uint64_t)s->eng.w->cfg.max_message_bytes;
    while (direct_ok(s) && (hdr = pd_ws_simple_text(data + pos, len - pos, max, &plen)) != 0) {
        size_t at = pos;
        pos += hdr + plen;
        if (!simple_frame(s, data + at, hdr, plen))
            return len;
    }
    return pos;
}

/* A text frame cut by the end of a read is kept and finished from the next
 * reads instead of going to wslay: otherwise, once a busy peer's reads
 * start ending inside frames (a full read buffer nearly always does), every
 * later frame would take the slow path and the worker would fall further
 * behind. Returns 1 if data[0..len) (the read's tail) was kept. */
static int part_start(pd_sess *s, const uint8_t *data, size_t len)
{
    size_t size = pd_ws_simple_text_size(data, len, (uint64_t)s->eng.w->cfg.max_message_bytes);
    if (!direct_ok(s) || size == 0 || (size > 1 && size <= len))
        return 0;
    size_t cap = size > 1 ? size : 8; /* 8: the longest header it may have */
    sess_part *p = malloc(sizeof(*p) + cap);
    if (!p)
        return 0; /* wslay takes it */
    p->len = (uint32_t)len;
    p->cap = (uint32_t)cap;
    p->pieces = 1;
    memcpy(p->data, data, len);
    s->part = p;
    return 1;
}

/* Continue the kept frame from a new read: returns how many of its bytes
 * were taken. The frame, once whole, is handled; a header that turns out to
 * be no simple text frame sends what was kept to feed(). */
static size_t part_fill(pd_sess *s, const uint8_t *data, size_t len)
{
    uint64_t max = (uint64_t)s->eng.w->cfg.max_message_bytes;
    size_t pos = 0;
    if (++s->part->pieces > pd_ws_scan_max_pieces(&s->scan)) {
        /* Trickled a few bytes per read: refused as the pre-check would. */
        pd_metric_add(s->eng.w->m_closed, "message_too_big", 1);
        sess_close(s, PD_WS_CLOSE_TOO_BIG, "message too big");
        return len;
    }
    while (s->part && pos < len) {
        sess_part *p = s->part;
        size_t size = pd_ws_simple_text_size(p->data, p->len, max);
        if (size == 0) {
            /* Not ours after all (its header is complete now): the full
             * path sees the frame from its first byte. */
            s->part = NULL;
            feed(s, (const char *)p->data, p->len);
            free(p);
            return pos;
        }
        size_t want = size > 1 ? size : (p->len < 2 ? 2 : 4);
        if (want > p->cap) {
            sess_part *q = realloc(p, sizeof(*p) + want);
            if (!q) {
                sess_close(s, PD_WS_CLOSE_INTERNAL, "out of memory");
                return len;
            }
            s->part = p = q;
            p->cap = (uint32_t)want;
        }
        size_t take = PD_MIN(want - p->len, len - pos);
        memcpy(p->data + p->len, data + pos, take);
        p->len += (uint32_t)take;
        pos += take;
        if (size > 1 && p->len == size) {
            size_t hdr = (p->data[1] & 0x7f) == 126 ? 8 : 6;
            s->part = NULL;
            simple_frame(s, p->data, hdr, size - hdr);
            free(p);
        }
    }
    return pos;
}

static void on_resume(uv_timer_t *t);

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    pd_sess *s = stream->data;
    if (nread < 0) {
        s->peer_gone = 1;
        if (s->state == S_OPEN) {
            pd_metric_add(s->eng.w->m_closed, "transport_close", 1);
            sess_close(s, PD_WS_CLOSE_ABNORMAL, "transport close");
        } else {
            sess_finish(s);
        }
        return;
    }
    if (nread == 0 || s->state != S_OPEN)
        return;
    uint8_t *data = (uint8_t *)buf->base;
    size_t len = (size_t)nread, done = 0;
    if (s->part)
        done = part_fill(s, data, len);
    if (done < len && s->state == S_OPEN)
        done += feed_simple(s, data + done, len - done);
    if (done < len && s->state == S_OPEN && !part_start(s, data + done, len - done))
        feed(s, (const char *)data + done, len - done);
    pd_worker *w = s->eng.w;
    if (s->state != S_OPEN || !w->conn_handler)
        return;
    if (!w->conn_handler->may_read(w->conn_ud, 0)) {
        /* The layer above is behind (its policy, not ours): stop taking
         * more work from clients until it says so, so overload becomes
         * delay instead of lost messages. */
        uv_read_stop(stream);
        s->read_paused = 1;
        if (!uv_is_active((uv_handle_t *)&w->resume_timer))
            uv_timer_start(&w->resume_timer, on_resume, 1, 1);
    }
}

static void on_resume(uv_timer_t *t)
{
    pd_worker *w = t->data;
    if (w->conn_handler && !w->conn_handler->may_read(w->conn_ud, 1))
        return;
    for (pd_sess *s = w->sessions; s; s = s->next) {
        if (!s->read_paused)
            continue;
        s->read_paused = 0;
        if (s->state == S_OPEN && uv_read_start((uv_stream_t *)s->tcp, on_alloc, on_read) != 0) {
            sess_fail_later(s);
        }
    }
    uv_timer_stop(t);
}

static void on_write(uv_write_t *req, int status)
{
    pd_sess *s = req->data;
    sess_write *wr = (sess_write *)req;
    free(wr->buf);
    free(wr);
    s->writes--;
    if (status < 0) {
        s->peer_gone = 1;
        if (s->state == S_OPEN)
            sess_close(s, PD_WS_CLOSE_ABNORMAL, "write failed");
        else if (s->state == S_CLOSING)
            sess_finish(s);
        return;
    }
    if (s->state != S_CLOSED && s->writes == 0)
        sess_flush(s);
}

/* Bytes this peer has not taken yet: what waits for the next write, and
 * what the kernel would not accept of the write in flight (libuv writes
 * synchronously as far as the socket buffer allows). */
static size_t sess_queued(const pd_sess *s)
{
    return (s->ws ? wslay_event_get_queued_msg_length(s->ws) : 0) + s->out_len +
           (s->writes ? uv_stream_get_write_queue_size((const uv_stream_t *)s->tcp) : 0);
}

/* Hand s->out to libuv (which writes at once what the socket takes and
 * queues the rest, in order). Failures are only noted (overflow), never
 * acted on here: callers may be iterating a room. */
static void sess_start_write(pd_sess *s)
{
    if (s->out_len == 0 || s->peer_gone)
        return;
    /* Most flushes fit in the socket buffer: write them directly. A write
     * request costs an allocation and, once it completes, an epoll_ctl. */
    if (s->writes == 0) {
        uv_buf_t b = uv_buf_init(s->out, (unsigned)s->out_len);
        int n = uv_try_write((uv_stream_t *)s->tcp, &b, 1);
        if (n == (int)s->out_len) {
            s->out_len = 0;
            if (s->out_cap > SESS_OUT_KEEP)
                sess_out_release(s);
            return;
        }
        if (n > 0) {
            memmove(s->out, s->out + n, s->out_len - (size_t)n);
            s->out_len -= (size_t)n;
        } else if (n != UV_EAGAIN) {
            sess_fail_later(s);
            return;
        }
    }
    sess_write *wr = malloc(sizeof(*wr));
    if (!wr) {
        s->overflow = 1;
        sess_mark_dirty(s);
        return;
    }
    wr->buf = s->out;
    wr->len = s->out_len;
    s->out = NULL;
    s->out_len = s->out_cap = 0;
    uv_buf_t b = uv_buf_init(wr->buf, (unsigned)wr->len);
    wr->req.data = s;
    if (uv_write(&wr->req, (uv_stream_t *)s->tcp, &b, 1, on_write) == 0) {
        s->writes++;
    } else {
        free(wr->buf);
        free(wr);
        sess_fail_later(s);
    }
}

static void sess_flush(pd_sess *s)
{
    if (s->state == S_CLOSED)
        return;
    if (s->overflow && s->state == S_OPEN) {
        /* A reader that stopped reading: drop what it has not taken and
         * close, so it cannot hold memory or stall anyone else. */
        pd_metric_add(s->eng.w->m_closed, s->peer_gone ? "write_failed" : "send_queue_full", 1);
        s->overflow = 0;
        sess_close(s, PD_WS_CLOSE_POLICY, "send queue full");
        return;
    }
    if (!s->peer_gone && s->ws && wslay_event_want_write(s->ws))
        wslay_event_send(s->ws);
    /* Between frames with nothing of wslay's left to send, the context holds
     * no state worth 9 KiB: drop it until the next byte arrives. */
    if (s->ws && s->state == S_OPEN && pd_ws_scan_idle(&s->scan) && wslay_event_want_read(s->ws) &&
        !wslay_event_want_write(s->ws)) {
        wslay_event_context_free(s->ws);
        s->ws = NULL;
    }
    /* Small packets wait for the write in flight, so they share a write. */
    if (s->writes == 0)
        sess_start_write(s);
    if (s->writes)
        return;
    if (s->state == S_CLOSING && (s->peer_gone || !s->ws || !wslay_event_want_write(s->ws)))
        sess_finish(s);
    else if (s->state == S_OPEN && s->ws && !wslay_event_want_read(s->ws) && !wslay_event_want_write(s->ws))
        sess_close(s, PD_WS_CLOSE_NORMAL, "closed");
}

static void sess_send(pd_sess *s, const char *pkt, size_t len)
{
    if (s->state != S_OPEN || s->overflow)
        return;
    if (sess_queued(s) + len > (size_t)s->eng.w->cfg.max_send_queue_bytes) {
        s->overflow = 1;
        sess_mark_dirty(s);
        return;
    }
    /* RFC 6455 §5.2: FIN + text opcode, unmasked, 7/16/64-bit length. */
    uint8_t hdr[10];
    size_t hlen = 0;
    hdr[hlen++] = 0x81;
    if (len < 126) {
        hdr[hlen++] = (uint8_t)len;
    } else if (len < 65536) {
        hdr[hlen++] = 126;
        hdr[hlen++] = (uint8_t)(len >> 8);
        hdr[hlen++] = (uint8_t)len;
    } else {
        hdr[hlen++] = 127;
        for (int i = 7; i >= 0; i--)
            hdr[hlen++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    if (out_reserve(s, hlen + len) != PD_OK) {
        s->overflow = 1;
    } else {
        s->out_used = 1;
        memcpy(s->out + s->out_len, hdr, hlen);
        memcpy(s->out + s->out_len + hlen, pkt, len);
        s->out_len += hlen + len;
        /* A burst toward this peer goes to the kernel as it builds up, so
         * the cap measures what the peer has not read, not what one loop
         * turn produced. */
        if (s->out_len >= 65536)
            sess_start_write(s);
    }
    sess_mark_dirty(s);
}

/* ---- life cycle --------------------------------------------------------- */

static wslay_event_context_ptr sess_ws(pd_sess *s)
{
    if (s->ws)
        return s->ws;
    static const struct wslay_event_callbacks cbs = {ws_recv, ws_send, NULL, NULL, NULL, NULL, ws_on_msg};
    if (wslay_event_context_server_init(&s->ws, &cbs, s) != 0) {
        s->ws = NULL;
        return NULL;
    }
    wslay_event_config_set_max_recv_msg_length(s->ws, (uint64_t)s->eng.w->cfg.max_message_bytes);
    return s->ws;
}

static void on_handle_closed(uv_handle_t *h)
{
    pd_sess *s = h->data;
    free(s->tcp);
    free(s->part);
    if (s->ws)
        wslay_event_context_free(s->ws);
    free(s->out);
    free(s);
}

static void sess_finish(pd_sess *s)
{
    if (s->state == S_CLOSED)
        return;
    if (s->state == S_OPEN) {
        /* Only at shutdown, or on a failed start: keep the handler
         * consistent. */
        pd_eng_mark_closed(&s->eng);
    }
    sess_drop_probe(s);
    s->state = S_CLOSED;
    sess_unlink_dirty(s);
    if (s->prev)
        s->prev->next = s->next;
    else
        s->eng.w->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    pd_eng_release(&s->eng);
    uv_close((uv_handle_t *)s->tcp, on_handle_closed);
}

/* A probe that ends before "5" leaves the polling session as it was; a
 * tunnel that ends tells the owner. */
static void sess_drop_probe(pd_sess *s)
{
    if (s->tunnelling) {
        s->tunnelling = 0;
        pd_fwd_tunnel_end(s->eng.w, pd_slice_cstr(s->up.tunnel));
        free(s->up.tunnel);
        s->up.tunnel = NULL;
        return;
    }
    if (s->up.probe) {
        pd_poll_probe_detach(s->up.probe);
        s->up.probe = NULL;
    }
}

static void sess_close(pd_sess *s, uint16_t code, const char *reason)
{
    if (s->state != S_OPEN)
        return;
    sess_drop_probe(s);
    s->state = S_CLOSING;
    pd_eng_mark_closed(&s->eng);
    uv_read_stop((uv_stream_t *)s->tcp);
    if (s->peer_gone) {
        sess_finish(s);
        return;
    }
    /* Packets already queued still go out, then the close frame (wslay
     * sends it after what it holds); the linger timer bounds the wait. */
    size_t rlen = reason ? PD_MIN(strlen(reason), 120) : 0;
    wslay_event_context_ptr ws = sess_ws(s);
    if (!ws) {
        sess_finish(s);
        return;
    }
    wslay_event_queue_close(ws, code == PD_WS_CLOSE_ABNORMAL ? PD_WS_CLOSE_NORMAL : code, (const uint8_t *)reason, rlen);
    pd_eng_arm(&s->eng, SESS_CLOSE_LINGER_MS);
    sess_mark_dirty(s);
}

/* A session record around `tcp`, linked into the worker, reading started
 * by the caller. NULL (tcp closed) on allocation failure. */
static pd_sess *sess_new(pd_worker *w, uv_tcp_t *tcp)
{
    pd_sess *s = calloc(1, sizeof(*s));
    if (!s) {
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        return NULL;
    }
    s->tcp = tcp;
    tcp->data = s;
    s->state = S_OPEN;
    pd_ws_scan_init(&s->scan, (uint64_t)w->cfg.max_message_bytes);
    uv_tcp_nodelay(tcp, 1);
    s->eng.w = w;
    return s;
}

static void sess_link(pd_sess *s)
{
    pd_worker *w = s->eng.w;
    s->next = w->sessions;
    if (w->sessions)
        w->sessions->prev = s;
    w->sessions = s;
}

static pd_sess *sess_start(pd_sess *s, const char *leftover, size_t leftover_len)
{
    if (uv_read_start((uv_stream_t *)s->tcp, on_alloc, on_read) != 0) {
        s->peer_gone = 1;
        sess_close(s, PD_WS_CLOSE_ABNORMAL, "read failed");
        return s;
    }
    if (leftover && leftover_len)
        feed(s, leftover, leftover_len);
    return s;
}

pd_sess *pd_sess_create(pd_worker *w, uv_tcp_t *tcp, const char *client_ip, const char *leftover,
                        size_t leftover_len)
{
    char eio_sid[PD_SOCKET_ID_LEN + 1]; /* Engine.IO session id: we never look it up again */
    if (pd_id_socket(eio_sid) != PD_OK) {
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        return NULL;
    }
    pd_sess *s = sess_new(w, tcp);
    if (!s)
        return NULL;
    /* The engine sends its open packet through us: the session must be
     * able to queue output before it opens. */
    if (pd_eng_open(&s->eng, w, &SESS_TP, client_ip, eio_sid, 0) != PD_OK) {
        sess_unlink_dirty(s);
        free(s->out);
        free(s);
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        return NULL;
    }
    sess_link(s);
    return sess_start(s, leftover, leftover_len);
}

/* A session with no engine of its own (a probe, a tunnel): the engine
 * stays closed, and its transport is set so a linger or the upgrade
 * timeout is ours. Linked, reading not started. */
static pd_sess *sess_new_carrier(pd_worker *w, uv_tcp_t *tcp)
{
    pd_sess *s = sess_new(w, tcp);
    if (!s)
        return NULL;
    s->eng.tp = &SESS_TP;
    s->eng.heap_idx = UINT32_MAX;
    s->eng.closed = 1;
    s->probing = 1;
    return s;
}

pd_sess *pd_sess_create_probe(pd_worker *w, uv_tcp_t *tcp, pd_poll *p, const char *leftover,
                              size_t leftover_len)
{
    /* The engine is the polling session's until "5". */
    pd_sess *s = sess_new_carrier(w, tcp);
    if (!s)
        return NULL;
    if (pd_poll_probe_attach(p, s) == PD_OK)
        s->up.probe = p;
    sess_link(s);
    pd_eng_arm(&s->eng, SESS_UPGRADE_TIMEOUT_MS);
    if (!s->up.probe) {
        /* Another probe holds the session: this one is refused. */
        s->state = S_OPEN;
        sess_close(s, PD_WS_CLOSE_POLICY, "upgrade already in progress");
        return s;
    }
    return sess_start(s, leftover, leftover_len);
}

pd_sess *pd_sess_create_tunnel(pd_worker *w, uv_tcp_t *tcp, pd_slice sid, const char *client_ip,
                               const char *leftover, size_t leftover_len)
{
    pd_sess *s = sess_new_carrier(w, tcp);
    if (!s)
        return NULL;
    sess_link(s);
    char *copy = malloc(sid.len + 1);
    if (copy) {
        memcpy(copy, sid.base, sid.len);
        copy[sid.len] = '\0';
    }
    if (!copy || pd_fwd_tunnel_begin(w, sid, client_ip, s) != PD_OK) {
        free(copy);
        sess_close(s, PD_WS_CLOSE_POLICY, "upgrade already in progress");
        return s;
    }
    s->up.tunnel = copy;
    s->tunnelling = 1; /* probing until the client's "5" goes through */
    pd_eng_arm(&s->eng, SESS_UPGRADE_TIMEOUT_MS);
    return sess_start(s, leftover, leftover_len);
}
