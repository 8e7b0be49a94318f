/* fuzz_http.c — the HTTP request path of libshared/src/net/http.c, over a
 * real loopback TCP connection driven by the same libuv loop.
 *
 * One pd_http_server listens on 127.0.0.1:<ephemeral> for the whole run.
 * Each input is written over a fresh connection, then the client half-closes
 * and reads until the server closes; the loop runs until every handle but
 * the listener is closed, so anything the server still holds afterwards is
 * a leak LeakSanitizer reports.
 *
 * The input is cut into separate writes at each "\xff\xfe" marker (the
 * marker itself is not sent; at most FZ_MAX_PIECES writes). A write is held
 * back two loop turns after the previous one, so the server reads the
 * pieces separately: split request lines, header values cut mid-way (the
 * obs-fold check), pipelining across reads.
 *
 * The handler answers every request with 200 and the request body echoed,
 * detaches upgrades (as the signal worker does for WebSocket), and exercises
 * the request accessors. A path starting with "/a" is answered from a timer
 * instead (the room API answers after Redis), and one containing "close"
 * asks for Connection: close. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "privydrop/pd_eio.h"
#include "privydrop/pd_http.h"
#include "privydrop/pd_netaddr.h"

#define FZ_MAX_PIECES 16
/* A run that is not over after this long is a hang: the server kept the
 * connection although its peer half-closed and read everything. */
#define FZ_GUARD_MS 3000

#define FZ_CHECK(cond)                                                                       \
    do {                                                                                     \
        if (!(cond))                                                                         \
            __builtin_trap();                                                                \
    } while (0)

static uv_loop_t fz_loop;
static pd_http_server *fz_srv;
static struct sockaddr_in fz_addr;
static pd_cidr_list *fz_trusted;
static volatile unsigned fz_sink; /* keeps the byte-touching loops alive */

/* ---- the server's handler -------------------------------------------------- */

typedef struct fz_job {
    uv_timer_t timer;   /* 0 ms: the answer comes on a later loop turn */
    pd_http_conn *conn; /* request to answer */
    int upgrade;        /* detach instead of responding */
    int close_after;    /* ask for Connection: close */
    char *body;         /* copy of the request body to echo */
    size_t body_len;
} fz_job;

static void fz_touch(pd_slice s)
{
    unsigned acc = 0;
    for (size_t i = 0; i < s.len; i++)
        acc += (unsigned char)s.base[i];
    fz_sink += acc;
}

static void fz_free_handle(uv_handle_t *h)
{
    free(h);
}

static const char fz_101[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\n\r\n";

static void fz_detach(pd_http_conn *conn)
{
    char *left = NULL;
    size_t left_len = 0;
    uv_tcp_t *tcp = pd_http_conn_detach(conn, fz_101, sizeof fz_101 - 1, &left, &left_len);
    if (left) {
        FZ_CHECK(left_len > 0);
        fz_touch(pd_slice_make(left, left_len));
        free(left);
    }
    /* The stream is ours now: close it, which also ends the client side. */
    if (tcp)
        uv_close((uv_handle_t *)tcp, fz_free_handle);
}

static void fz_job_closed(uv_handle_t *h)
{
    fz_job *j = h->data;
    free(j->body);
    free(j);
}

static void fz_job_fire(uv_timer_t *t)
{
    fz_job *j = t->data;
    if (j->upgrade)
        fz_detach(j->conn);
    else
        pd_http_respond(j->conn, 200, "text/plain", "X-Fuzz: async\r\n", j->body, j->body_len,
                        j->close_after);
    uv_close((uv_handle_t *)&j->timer, fz_job_closed);
}

static void fz_handler(pd_http_conn *conn, const pd_http_request *req, void *data)
{
    (void)data;
    /* Every slice the request hands out must be readable (ASan checks). */
    fz_touch(req->target);
    fz_touch(req->path);
    fz_touch(req->query);
    fz_touch(req->body);
    FZ_CHECK(req->nheaders <= PD_HTTP_MAX_HEADERS_CAP);
    for (size_t i = 0; i < req->nheaders; i++) {
        fz_touch(req->headers[i].name);
        fz_touch(req->headers[i].value);
    }
    FZ_CHECK(req->path.len <= req->target.len);
    FZ_CHECK(memchr(req->peer_ip, '\0', sizeof req->peer_ip) != NULL);

    /* What the signal worker and the room API ask of a request. */
    pd_slice v;
    if (pd_http_query_param(req, "EIO", &v) == PD_OK)
        fz_touch(v);
    (void)pd_eio_check_query(req->query, NULL);
    const pd_slice *h = pd_http_request_header(req, "Sec-WebSocket-Key");
    if (h)
        fz_touch(*h);
    char ip[INET6_ADDRSTRLEN];
    pd_client_ip(fz_trusted, req->peer_ip, pd_http_request_header(req, "X-Forwarded-For"), ip);
    FZ_CHECK(memchr(ip, '\0', sizeof ip) != NULL);

    int async = req->path.len >= 2 && memcmp(req->path.base, "/a", 2) == 0;
    int close_after = memmem(req->path.base, req->path.len, "close", 5) != NULL;
    if (!async) {
        if (req->upgrade)
            fz_detach(conn);
        else
            pd_http_respond(conn, 200, "text/plain", NULL, req->body.base, req->body.len,
                            close_after);
        return;
    }
    fz_job *j = calloc(1, sizeof *j);
    FZ_CHECK(j != NULL);
    j->conn = conn;
    j->upgrade = req->upgrade;
    j->close_after = close_after;
    if (req->body.len) {
        j->body = malloc(req->body.len);
        FZ_CHECK(j->body != NULL);
        memcpy(j->body, req->body.base, req->body.len);
        j->body_len = req->body.len;
    }
    uv_timer_init(&fz_loop, &j->timer);
    j->timer.data = j;
    uv_timer_start(&j->timer, fz_job_fire, 0, 0);
}

/* ---- the client ------------------------------------------------------------ */

typedef struct fz_client {
    uv_tcp_t tcp;                 /* connection to the server */
    uv_connect_t creq;            /* its connect request */
    uv_idle_t idle;               /* paces the writes, one check per loop turn */
    uv_timer_t guard;             /* hang detector */
    uv_write_t wreq[FZ_MAX_PIECES]; /* one per piece */
    uv_shutdown_t sreq;           /* half-close after the last piece */
    pd_slice piece[FZ_MAX_PIECES]; /* the input cut at the markers */
    size_t npieces, next;         /* pieces, and the next one to write */
    unsigned turns;               /* loop turns since the last write */
    int connected;                /* connect succeeded */
    int tcp_closing;              /* uv_close called on tcp */
    char head[9];                 /* first bytes of the answer */
    size_t head_len;              /* bytes in head */
    size_t received;              /* bytes of answer read */
} fz_client;

static char fz_rbuf[65536];

static void fz_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(fz_rbuf, sizeof fz_rbuf);
}

static void fz_client_close(fz_client *c)
{
    if (c->tcp_closing)
        return;
    c->tcp_closing = 1;
    uv_close((uv_handle_t *)&c->tcp, NULL);
    if (uv_is_active((uv_handle_t *)&c->idle))
        uv_idle_stop(&c->idle);
    uv_timer_stop(&c->guard);
}

static void fz_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    fz_client *c = s->data;
    if (nread < 0) {
        fz_client_close(c); /* EOF or reset: the server is done with us */
        return;
    }
    size_t take = PD_MIN((size_t)nread, sizeof c->head - c->head_len);
    memcpy(c->head + c->head_len, buf->base, take);
    c->head_len += take;
    c->received += (size_t)nread;
    /* Every answer, the 101 of a detach included, is an HTTP/1.1 status line. */
    FZ_CHECK(memcmp(c->head, "HTTP/1.1 ", c->head_len) == 0);
}

static void fz_written(uv_write_t *w, int status)
{
    (void)w;
    (void)status; /* the server may have closed already: not our concern */
}

static void fz_shut(uv_shutdown_t *r, int status)
{
    (void)r;
    (void)status;
}

static void fz_idle(uv_idle_t *idle)
{
    fz_client *c = idle->data;
    /* The first piece waits until the server has accepted (and so reads). */
    if (c->next == 0 && pd_http_server_conn_count(fz_srv) == 0)
        return;
    if (c->next > 0 && ++c->turns < 2)
        return;
    c->turns = 0;
    if (c->next < c->npieces) {
        pd_slice p = c->piece[c->next];
        uv_buf_t b = uv_buf_init((char *)p.base, (unsigned)p.len);
        if (p.len && uv_write(&c->wreq[c->next], (uv_stream_t *)&c->tcp, &b, 1, fz_written) != 0) {
            fz_client_close(c);
            return;
        }
        c->next++;
        return;
    }
    uv_idle_stop(idle);
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, fz_shut) != 0)
        fz_client_close(c);
}

static void fz_connected(uv_connect_t *req, int status)
{
    fz_client *c = req->data;
    FZ_CHECK(status == 0); /* loopback connect to our own listener */
    c->connected = 1;
    FZ_CHECK(uv_read_start((uv_stream_t *)&c->tcp, fz_alloc, fz_read) == 0);
    uv_idle_start(&c->idle, fz_idle);
}

static void fz_guard(uv_timer_t *t)
{
    (void)t;
    __builtin_trap(); /* see FZ_GUARD_MS */
}

static void fz_count_handle(uv_handle_t *h, void *arg)
{
    (void)h;
    (*(size_t *)arg)++;
}

static size_t fz_handles(void)
{
    size_t n = 0;
    uv_walk(&fz_loop, fz_count_handle, &n);
    return n;
}

static void fz_init(void)
{
    FZ_CHECK(uv_loop_init(&fz_loop) == 0);
    pd_http_limits lim;
    pd_http_limits_default(&lim);
    /* Small limits, so short inputs reach the 413/431 paths. */
    lim.max_header_bytes = 2048;
    lim.max_headers = 16;
    lim.max_body_bytes = 2048;
    lim.request_timeout_ms = 2000;
    lim.idle_timeout_ms = 2000;
    /* Every input comes from 127.0.0.1: no per-host cap, so each one reaches
     * the parser (the cap itself is covered by test_http). */
    lim.max_conns_per_ip = 0;
    const char *err = NULL;
    fz_srv = pd_http_server_create(&fz_loop, "127.0.0.1", 0, &lim, fz_handler, NULL, &err);
    FZ_CHECK(fz_srv != NULL);
    int port = pd_http_server_port(fz_srv);
    FZ_CHECK(port > 0);
    FZ_CHECK(uv_ip4_addr("127.0.0.1", port, &fz_addr) == 0);
    fz_trusted = pd_cidr_list_create("127.0.0.1, 10.0.0.0/8, ::1, fd00::/8", &err);
    FZ_CHECK(fz_trusted != NULL);
}

static size_t fz_split(const uint8_t *data, size_t size, pd_slice *out)
{
    size_t n = 0, start = 0, i = 0;
    while (i + 1 < size && n + 1 < FZ_MAX_PIECES) {
        if (data[i] == 0xff && data[i + 1] == 0xfe) {
            out[n++] = pd_slice_make((const char *)data + start, i - start);
            i += 2;
            start = i;
        } else {
            i++;
        }
    }
    out[n++] = pd_slice_make((const char *)data + start, size - start);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fz_srv)
        fz_init();
    fz_client *c = calloc(1, sizeof *c);
    FZ_CHECK(c != NULL);
    c->npieces = fz_split(data, size, c->piece);

    FZ_CHECK(uv_tcp_init(&fz_loop, &c->tcp) == 0);
    c->tcp.data = c;
    uv_idle_init(&fz_loop, &c->idle);
    c->idle.data = c;
    uv_timer_init(&fz_loop, &c->guard);
    c->guard.data = c;
    uv_timer_start(&c->guard, fz_guard, FZ_GUARD_MS, 0);
    c->creq.data = c;
    FZ_CHECK(uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&fz_addr, fz_connected) == 0);

    /* Run until the client is closed and the server holds nothing but its
     * listener (server-side conns, detached streams, answer timers). */
    for (;;) {
        uv_run(&fz_loop, UV_RUN_ONCE);
        if (c->tcp_closing && !uv_is_closing((uv_handle_t *)&c->idle) &&
            !uv_is_closing((uv_handle_t *)&c->guard)) {
            uv_close((uv_handle_t *)&c->idle, NULL);
            uv_close((uv_handle_t *)&c->guard, NULL);
        }
        if (c->tcp_closing && fz_handles() == 1 && pd_http_server_conn_count(fz_srv) == 0)
            break;
    }
    FZ_CHECK(c->connected);
    free(c);
    return 0;
}
