/* fuzz_ws_path.c — the path from received WebSocket bytes to a hub event,
 * with the same codecs and limits the signal worker uses (session.c, hub.c):
 *
 *   1. byte 0 seeds how the rest is cut into reads; those reads go through
 *      pd_ws_scan (frame-header pre-check) and what it accepts into a wslay
 *      server context, as feed() does. Every text message wslay assembles
 *      takes step 2. The chunked scan must agree with a one-shot scan.
 *   2. the whole input as one text frame: pd_eio_parse → pd_sio_parse →
 *      pd_sio_decode_event → the hub's payload checks (events.h) and the
 *      answers the hub would encode from them.
 *   3. the input as a bus envelope (pd_bus_decode) and as a handshake query
 *      (pd_eio_check_query).
 *   4. the stream again, into the real WebSocket session (session.c) over a
 *      socketpair, with a handler (conn.h) that takes every Socket.IO event
 *      it reports through step 2's checks: as the bytes a handshake left
 *      over (byte 0 even) or as reads from the socket (odd).
 *
 * Properties checked beyond "no crash, no leak": slices stay inside the
 * input, scans agree, and what the hub echoes can always be encoded. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
#include <wslay/wslay.h>

#include "../../services/signal/src/events.h"
#include "../../services/signal/src/session.h"
#include "privydrop/pd_bus.h"
#include "privydrop/pd_jscan.h"
#include "privydrop/pd_eio.h"
#include "privydrop/pd_sio.h"
#include "privydrop/pd_wsscan.h"

/* PD_MAX_MESSAGE_BYTES default of the worker. */
#define FZ_MAX_MESSAGE 65536
/* Most reads one input is cut into. */
#define FZ_MAX_CHUNKS 64

#define FZ_CHECK(cond)                                                                       \
    do {                                                                                     \
        if (!(cond))                                                                         \
            __builtin_trap();                                                                \
    } while (0)

static int fz_within(pd_slice s, const uint8_t *base, size_t len)
{
    if (s.len == 0)
        return 1;
    const char *b = (const char *)base;
    return s.base >= b && s.len <= len && s.base - b <= (ptrdiff_t)(len - s.len);
}

/* ---- step 2: one text frame --------------------------------------------- */

/* What the hub does with an event's payload, minus sessions and Redis. */
static void fz_hub_event(const char *name, json_t *args)
{
    json_t *payload = json_array_get(args, 1);
    const pd_event_def *ev = pd_event_lookup(pd_slice_cstr(name));
    if (!ev)
        return; /* the hub counts it as unknown */
    if (ev->kind == PD_EVENT_JOIN) {
        pd_slice room;
        pd_event_check chk = pd_event_join(payload, &room);
        if (chk == PD_EVENT_BAD_PAYLOAD)
            return;
        FZ_CHECK(room.base != NULL);
        if (chk == PD_EVENT_OK) {
            FZ_CHECK(room.len >= 1 && room.len <= PD_ID_MAX && strlen(room.base) == room.len);
            return;
        }
        /* on_join echoes an invalid id back, cut to PD_ID_MAX * 2 bytes. */
        json_t *out = json_pack("{s:b, s:s, s:s#}", "success", 0, "message", "Room does not exist",
                                "roomId", room.base, pd_event_echo_len(room, (size_t)PD_ID_MAX * 2));
        FZ_CHECK(out != NULL);
        size_t len = 0;
        char *pkt = pd_sio_encode_event("joinResponse", out, &len);
        json_decref(out);
        FZ_CHECK(pkt != NULL);
        free(pkt);
    } else if (ev->kind == PD_EVENT_SIGNAL) {
        const char *field = ev->field;
        pd_slice peer;
        json_t *value = NULL;
        pd_event_check chk = pd_event_signal(payload, field, &peer, &value);
        if (chk == PD_EVENT_BAD_PAYLOAD)
            return;
        FZ_CHECK(value != NULL);
        if (chk != PD_EVENT_OK)
            return;
        FZ_CHECK(peer.len >= 1 && peer.len <= PD_ID_MAX);
        /* on_signal forwards {<field>, from, peerId} to the target. */
        json_t *out = json_object();
        FZ_CHECK(out != NULL);
        json_object_set(out, field, value);
        json_object_set_new(out, "from", json_string("AAAAAAAAAAAAAAAAAAAA"));
        json_object_set_new(out, "peerId", json_string("AAAAAAAAAAAAAAAAAAAA"));
        size_t len = 0;
        char *pkt = pd_sio_encode_event(name, out, &len);
        json_decref(out);
        FZ_CHECK(pkt != NULL);
        /* The packet must read back as the same event. */
        pd_eio_packet ep;
        pd_sio_packet sp;
        json_t *back = NULL;
        const char *bname = NULL;
        FZ_CHECK(pd_eio_parse(pd_slice_make(pkt, len), &ep) == PD_OK && ep.type == PD_EIO_MESSAGE);
        FZ_CHECK(pd_sio_parse(ep.data, &sp) == PD_OK && sp.type == PD_SIO_EVENT);
        FZ_CHECK(pd_sio_decode_event(sp.data, SIZE_MAX, &back, &bname) == PD_OK);
        FZ_CHECK(strcmp(bname, name) == 0);
        json_decref(back);
        free(pkt);
    } else {
        const char *room = NULL;
        if (pd_event_room(payload, &room) == PD_EVENT_OK)
            FZ_CHECK(room != NULL);
    }
}

static void fz_text_frame(const uint8_t *data, size_t size)
{
    pd_eio_packet ep;
    if (pd_eio_parse(pd_slice_make((const char *)data, size), &ep) != PD_OK)
        return;
    FZ_CHECK(ep.type <= PD_EIO_NOOP && fz_within(ep.data, data, size));
    if (ep.type != PD_EIO_MESSAGE)
        return;
    pd_sio_packet sp;
    if (pd_sio_parse(ep.data, &sp) != PD_OK)
        return;
    FZ_CHECK(sp.type <= PD_SIO_BINARY_ACK);
    FZ_CHECK(sp.ack_id == PD_SIO_NO_ACK || (sp.ack_id >= 0 && sp.ack_id <= PD_SIO_MAX_ACK_ID));
    FZ_CHECK(fz_within(sp.data, data, size));
    FZ_CHECK(pd_slice_eq(sp.nsp, "/") || fz_within(sp.nsp, data, size));
    if (!pd_slice_eq(sp.nsp, "/")) {
        /* session.c echoes a foreign namespace in CONNECT_ERROR. */
        char buf[PD_ID_MAX + 96];
        size_t n = PD_MIN(sp.nsp.len, (size_t)PD_ID_MAX);
        FZ_CHECK(snprintf(buf, sizeof buf, "44%.*s,{\"message\":\"Invalid namespace\"}", (int)n,
                          sp.nsp.base) > 0);
    }
    if (sp.type != PD_SIO_EVENT)
        return;
    json_t *args = NULL;
    const char *name = NULL;
    if (pd_sio_decode_event(sp.data, FZ_MAX_MESSAGE, &args, &name) != PD_OK) {
        FZ_CHECK(args == NULL && name == NULL);
        return;
    }
    FZ_CHECK(json_is_array(args) && name != NULL);
    if (sp.ack_id != PD_SIO_NO_ACK) {
        char buf[48];
        FZ_CHECK(pd_sio_encode_ack_empty(buf, sizeof buf, sp.ack_id) > 0);
    }
    fz_hub_event(name, args);
    json_decref(args);
}

/* ---- step 1: the byte stream --------------------------------------------- */

typedef struct fz_stream {
    const uint8_t *buf; /* bytes of the current read */
    size_t len, pos;    /* unconsumed bytes are buf[pos, len) */
    size_t messages;    /* text messages delivered */
} fz_stream;

static ssize_t fz_ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                          void *ud)
{
    (void)flags;
    fz_stream *st = ud;
    if (st->pos == st->len) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = PD_MIN(len, st->len - st->pos);
    memcpy(buf, st->buf + st->pos, n);
    st->pos += n;
    return (ssize_t)n;
}

static ssize_t fz_ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                          void *ud)
{
    (void)ctx;
    (void)data;
    (void)flags;
    (void)ud;
    return (ssize_t)len; /* answers (pong, close) go nowhere */
}

static void fz_ws_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                      void *ud)
{
    (void)ctx;
    fz_stream *st = ud;
    if (arg->opcode != WSLAY_TEXT_FRAME)
        return;
    FZ_CHECK(arg->msg_length <= FZ_MAX_MESSAGE);
    st->messages++;
    /* wslay's buffer may be NULL for an empty message. */
    static const uint8_t empty[1];
    fz_text_frame(arg->msg_length ? arg->msg : empty, arg->msg_length);
}

/* Cut sizes from a one-byte seed: 0 = one read; else a small LCG drives
 * sizes of 1..(seed's low bits give the largest) bytes. */
static size_t fz_next_chunk(uint32_t *state, uint8_t seed, size_t left)
{
    if (seed == 0)
        return left;
    *state = *state * 1103515245u + 12345u;
    size_t max = (size_t)1 << (1 + (seed & 7)); /* 2..256 */
    size_t n = 1 + ((*state >> 16) % max);
    return PD_MIN(n, left);
}

static void fz_stream_path(uint8_t seed, const uint8_t *data, size_t size)
{
    /* Reference: the whole stream in one scan. */
    pd_ws_scanner whole;
    pd_ws_scan_init(&whole, FZ_MAX_MESSAGE);
    size_t whole_ok = 0;
    uint16_t whole_code = pd_ws_scan(&whole, data, size, &whole_ok);
    FZ_CHECK(whole_code == 0 || whole_code == 1002 || whole_code == 1009);
    FZ_CHECK(whole_ok <= size && (whole_code != 0 || whole_ok == size));

    fz_stream st = {NULL, 0, 0, 0};
    struct wslay_event_callbacks cbs = {fz_ws_recv, fz_ws_send, NULL, NULL, NULL, NULL, fz_ws_msg};
    wslay_event_context_ptr ws = NULL;
    FZ_CHECK(wslay_event_context_server_init(&ws, &cbs, &st) == 0);
    wslay_event_config_set_max_recv_msg_length(ws, FZ_MAX_MESSAGE);

    pd_ws_scanner sc;
    pd_ws_scan_init(&sc, FZ_MAX_MESSAGE);
    uint32_t lcg = seed;
    size_t off = 0, chunks = 0;
    uint16_t code = 0;
    size_t code_at = 0; /* absolute offset the chunked scan stopped at */
    while (off < size) {
        size_t n = fz_next_chunk(&lcg, seed, size - off);
        if (++chunks >= FZ_MAX_CHUNKS)
            n = size - off;
        size_t ok = n;
        code = pd_ws_scan(&sc, data + off, n, &ok);
        FZ_CHECK(ok <= n && (code != 0 || ok == n));
        st.buf = data + off;
        st.len = ok;
        st.pos = 0;
        int rc = wslay_event_recv(ws);
        FZ_CHECK(st.pos <= st.len);
        if (code) {
            code_at = off + ok;
            break;
        }
        if (rc != 0)
            break; /* wslay refused something the scanner let through: the session closes */
        off += n;
    }
    /* A split read must not change the verdict. The stop offset may differ
     * only by header bytes of the offending frame that an earlier read
     * already accepted (at most a full 14-byte header). */
    if (off < size && code == 0) {
        /* stopped by wslay: no statement about the scanner */
    } else if (code == 1009 && whole_code != 1009 && sc.pieces > pd_ws_scan_max_pieces(&sc)) {
        /* Each read that continues a data frame is one more piece: a
         * finer split may reach the piece cap where one read did not. */
        FZ_CHECK(code_at < whole_ok + 14);
    } else {
        FZ_CHECK(code == whole_code);
        if (code)
            FZ_CHECK(code_at >= whole_ok && code_at - whole_ok < 14);
    }
    wslay_event_context_free(ws);
}

/* ---- step 4: the real session ------------------------------------------------ */

static void fzh_open(void *ud, pd_conn *c)
{
    (void)ud;
    c->data = c;
    c->ops->counted(c); /* the CONNECT is answered at once */
}

static void fzh_event(void *ud, pd_conn *c, pd_slice data, long long ack_id)
{
    (void)ud;
    FZ_CHECK(c->data == c); /* only between open and close */
    json_t *args = NULL;
    const char *name = NULL;
    if (pd_sio_decode_event(data, FZ_MAX_MESSAGE, &args, &name) != PD_OK)
        return;
    if (ack_id != PD_SIO_NO_ACK)
        pd_conn_send(c, "43[]", 4);
    fz_hub_event(name, args);
    json_decref(args);
}

static void fzh_close(void *ud, pd_conn *c)
{
    (void)ud;
    FZ_CHECK(c->data == c); /* once */
    c->data = NULL;
}

static int fzh_may_read(void *ud, int resuming)
{
    (void)ud;
    (void)resuming;
    return 1;
}

static const pd_conn_handler FZ_HANDLER = {fzh_open, fzh_event, fzh_close, fzh_may_read, NULL};

/* The worker's defaults (services/signal/src/main.c). */
static pd_worker *fz_worker(uv_loop_t *loop)
{
    static pd_worker *w;
    if (w)
        return w;
    w = calloc(1, sizeof(*w));
    FZ_CHECK(w != NULL);
    w->loop = loop;
    w->cfg.ping_interval_ms = 25000;
    w->cfg.ping_timeout_ms = 20000;
    w->cfg.connect_timeout_ms = 45000;
    w->cfg.max_message_bytes = FZ_MAX_MESSAGE;
    w->cfg.max_send_queue_bytes = 262144;
    w->cfg.event_rate = 50;
    w->cfg.event_burst = 100;
    w->metrics = pd_metrics_create();
    FZ_CHECK(w->metrics != NULL);
    w->m_dropped = pd_metrics_add(w->metrics, PD_METRIC_COUNTER, "fz_dropped", "d", "reason");
    w->m_closed = pd_metrics_add(w->metrics, PD_METRIC_COUNTER, "fz_closed", "c", "reason");
    return w;
}

static void fz_drain(int fd)
{
    char sink[4096];
    while (read(fd, sink, sizeof(sink)) > 0) {
    }
}

static void fz_session(uint8_t seed, const uint8_t *data, size_t size)
{
    static uv_loop_t loop;
    static int loop_ready;
    if (!loop_ready) {
        FZ_CHECK(uv_loop_init(&loop) == 0);
        loop_ready = 1;
    }
    pd_worker *w = fz_worker(&loop);
    int sv[2];
    FZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    pd_eng_layer_init(w);
    pd_sess_layer_init(w);
    pd_eng_layer_set_handler(w, &FZ_HANDLER, NULL);
    uv_tcp_t *tcp = malloc(sizeof(*tcp));
    FZ_CHECK(tcp != NULL);
    FZ_CHECK(uv_tcp_init(&loop, tcp) == 0);
    FZ_CHECK(uv_tcp_open(tcp, sv[0]) == 0);
    const char *leftover = (seed & 1) == 0 ? (const char *)data : NULL;
    pd_sess_create(w, tcp, "192.0.2.1", leftover, leftover ? size : 0);
    if (!leftover && size) {
        ssize_t n = write(sv[1], data, size); /* max_len keeps it within the socket buffer */
        FZ_CHECK(n == (ssize_t)size);
    }
    for (int i = 0; i < 8; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        fz_drain(sv[1]);
    }
    close(sv[1]);
    uv_run(&loop, UV_RUN_NOWAIT);
    /* Whatever is left (a session lingering after its close frame) goes
     * now, with the layer's handles; the loop ends empty. */
    pd_sess_layer_close(w);
    pd_eng_layer_close(w);
    for (int i = 0; i < 100 && uv_loop_alive(&loop); i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    FZ_CHECK(!uv_loop_alive(&loop));
    FZ_CHECK(w->sessions == NULL);
}

/* ---- entry point ---------------------------------------------------------- */

/* The relay fast path's scanner: it must agree with jansson on what is
 * valid JSON (inside its depth bound; jansson refuses \u0000, the scanner
 * does not), its spans must lie inside the input, and the packet built from
 * them must be valid JSON again. */
static void fz_jscan(const uint8_t *data, size_t size)
{
    pd_slice text = pd_slice_make((const char *)data, size);
    int sv = pd_jscan_valid(text, 32);
    json_error_t jerr;
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    /* jansson also checks UTF-8, which the scanner leaves to the WebSocket
     * layer; so only "scanner valid ⇒ jansson valid" on valid UTF-8 input,
     * and "jansson valid within depth ⇒ scanner valid" always. */
    /* jansson stops at a NUL byte as if the text ended there. */
    if (j && !sv && !memchr(data, 0, size)) {
        /* Only possible when nesting passes the scanner's bound. */
        FZ_CHECK(pd_jscan_valid(text, 4096));
    }
    json_decref(j);
    pd_slice name, payload;
    int esc = 0;
    if (pd_jscan_event(text, 32, &name, &esc, &payload) == PD_OK) {
        FZ_CHECK(fz_within(name, data, size) && fz_within(payload, data, size));
        pd_jscan_member m[2] = {{"peerId", {NULL, 0}}, {"offer", {NULL, 0}}};
        if (payload.len && pd_jscan_object(payload, m, 2) == PD_OK && m[1].value.base) {
            FZ_CHECK(fz_within(m[1].value, data, size));
            FZ_CHECK(pd_jscan_valid(m[1].value, 32));
            size_t len = pd_event_signal_packet(NULL, 0, "offer", "offer", m[1].value, "AbCdEfGhIjKlMnOpQrSt");
            char *pkt = malloc(len);
            FZ_CHECK(pkt != NULL);
            pd_event_signal_packet(pkt, len, "offer", "offer", m[1].value, "AbCdEfGhIjKlMnOpQrSt");
            FZ_CHECK(len > 2 && pd_jscan_valid(pd_slice_make(pkt + 2, len - 2), 34));
            free(pkt);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_jscan(data, size);
    if (size > 0) {
        fz_stream_path(data[0], data + 1, size - 1);
        fz_session(data[0], data + 1, size - 1);
    }

    fz_text_frame(data, size);

    pd_bus_envelope env;
    pd_slice msg = pd_slice_make((const char *)data, size);
    if (pd_bus_decode(msg, &env) == PD_OK) {
        FZ_CHECK(env.kind == PD_BUS_TO_SOCKET || env.kind == PD_BUS_BROADCAST ||
                 env.kind == PD_BUS_LEAVE);
        FZ_CHECK(env.origin.len >= 1 && env.origin.len <= PD_BUS_MAX_ORIGIN);
        FZ_CHECK(fz_within(env.origin, data, size) && fz_within(env.target, data, size) &&
                 fz_within(env.packet, data, size));
        /* Re-encoding what was decoded gives the same bytes back ("-" is
         * how an empty target is written both ways): decoder and encoder
         * accept the same tokens. */
        size_t len = 0;
        char *again = pd_bus_encode(&env, &len);
        FZ_CHECK(again != NULL && len == size && memcmp(again, data, size) == 0);
        free(again);
    }

    const char *err = pd_eio_check_query(msg, NULL);
    FZ_CHECK(err == NULL || strcmp(err, PD_EIO_ERR_TRANSPORT) == 0 ||
             strcmp(err, PD_EIO_ERR_BAD_REQUEST) == 0 || strcmp(err, PD_EIO_ERR_PROTOCOL) == 0);
    return 0;
}
