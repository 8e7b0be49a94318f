/* http.c — HTTP/1.1 server plumbing: libuv streams, llhttp parsing, limits.
 *
 * Lifetime rules (libuv's free-on-close):
 *  - a connection owns two handles, its heap uv_tcp_t and a uv_timer_t; it is
 *    freed only when both are closed (or the tcp was detached) AND no request
 *    is pending in the handler. So a handler may answer long after the peer
 *    left: the answer is dropped and the memory freed then.
 *  - memory is never freed synchronously inside a libuv callback that still
 *    uses it: a conn can only reach "no handles open" in a close callback, or
 *    in pd_http_respond()/pd_http_conn_detach() after its handles are gone.
 *
 * Parsing: every llhttp_execute() stops at the end of a message
 * (on_message_complete returns HPE_PAUSED), so one execute call never spans
 * two requests. Bytes after a pending request are kept in the conn's own
 * buffer and parsed once the handler has answered (pipelining, in order).
 */
#include "privydrop/pd_http.h"
#include "privydrop/pd_map.h"
#include "privydrop/pd_netaddr.h"

#include <errno.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Bytes read per read call; also the size of a conn's retained-bytes buffer,
 * which bounds how much a client may pipeline behind a pending request. */
#define PD_HTTP_RBUF_SIZE 16384
/* Unsent response bytes above which we stop parsing further pipelined
 * requests, so a client that never reads cannot grow our write queue. */
#define PD_HTTP_MAX_WQ 262144
/* After a response that closes the connection we half-close and drain input
 * for at most this long, so the peer reads our answer instead of an RST. */
#define PD_HTTP_LINGER_MS 2000
/* Initial size of the per-request header arena; it grows up to the limit. */
#define PD_HTTP_ARENA_MIN 512
/* Raw-byte allowance for chunked framing (sizes, CRLFs, extensions) on top
 * of header and body limits, so a body of 1-byte chunks stays bounded. */
#define PD_HTTP_FRAMING_SLACK 8192

typedef enum pd_http_conn_state {
    PD_HTTP_OPEN = 0, /* reading and parsing requests */
    PD_HTTP_LINGER,   /* final response queued, write side shut, input discarded */
    PD_HTTP_CLOSING,  /* uv_close() called on our handles */
    PD_HTTP_DETACHED, /* tcp handed to the caller; only our timer remains */
} pd_http_conn_state;

typedef enum pd_http_timer_mode {
    PD_HTTP_T_NONE = 0, /* not armed */
    PD_HTTP_T_REQUEST,  /* waiting for the rest of a request (408 on expiry) */
    PD_HTTP_T_IDLE,     /* keep-alive between requests (close on expiry) */
    PD_HTTP_T_LINGER,   /* closing; bounds the drain */
} pd_http_timer_mode;

/* A header recorded as arena offsets while parsing (the arena may move). */
typedef struct pd_http_hdr_off {
    size_t name_off;  /* start of the name in the arena */
    size_t name_len;  /* name length */
    size_t value_off; /* start of the value in the arena */
    size_t value_len; /* value length, untrimmed */
} pd_http_hdr_off;

struct pd_http_conn {
    pd_http_server *srv;        /* owning server; NULL once unlinked from it */
    pd_http_conn *prev, *next;  /* server's list of conns with an open tcp */
    uv_tcp_t *tcp;              /* heap handle (detach hands it over); NULL after detach */
    uv_timer_t timer;           /* request / idle / linger timer */
    int handles_open;           /* our handles not yet through their close callback */
    pd_http_conn_state state;   /* see pd_http_conn_state */
    pd_http_timer_mode tmode;   /* what the armed timer means */
    pd_http_limits limits;      /* copy, so a conn never needs the server for limits */
    llhttp_t parser;            /* request parser; data points back to this conn */
    int pending;                /* handler owns the current request */
    int in_feed;                /* inside conn_feed(): respond must not re-enter it */
    size_t writes;              /* our queued writes whose callback has not run */
    int reading;                /* uv_read_start is in effect */
    int msg_started;            /* bytes of the current message have arrived */
    int headers_done;           /* current message's header section is complete */
    int err_status;             /* status to answer when a callback aborts the parse */
    int last_cb;                /* which data callback appended last (0/url/field/value) */
    size_t msg_raw;             /* raw bytes fed for the current message */
    const char *feed_begin;     /* bounds of the buffer in the running llhttp_execute */
    const char *feed_end;       /* (to tell a split value from an obs-fold) */
    int val_at_end;             /* last value piece ended at its buffer's end */
    int tail_line_start;        /* the last feed ended at a line start, maybe after SP/HTAB */
    int peer_eof;               /* the peer shut its sending side (half-close) */
    uint64_t born_ms;           /* loop time at accept (bounds keep-alive life) */
    int ip_counted;             /* counted in the server's per-address table */
    int ip_released;            /* taken out of it while its request waits (pd_http_conn_release_slot) */
    char ip_key[INET6_ADDRSTRLEN]; /* pd_addr_key of the peer, for that table */
    char *rbuf;                 /* retained input (after a paused request) */
    size_t rpos, rlen;          /* unparsed retained bytes are rbuf[rpos, rlen) */
    char *arena;                /* url and header bytes of the current request */
    size_t arena_len, arena_cap;/* bytes used / allocated in the arena */
    size_t url_off, url_len;    /* request-target within the arena */
    pd_http_hdr_off hdr[PD_HTTP_MAX_HEADERS_CAP]; /* headers seen so far */
    size_t nhdr;                /* number of entries in hdr */
    char *body;                 /* request body bytes */
    size_t body_len, body_cap;  /* bytes used / allocated for the body */
    pd_http_request req;        /* request handed to the handler; slices into arena/body */
    char peer_ip[INET6_ADDRSTRLEN]; /* textual TCP peer */
};

struct pd_http_server {
    uv_loop_t *loop;             /* not owned */
    uv_tcp_t listener;           /* listening socket */
    int listener_state;          /* 0 open, 1 closing, 2 closed */
    int free_requested;          /* pd_http_server_free called; free at listener close */
    int draining;                /* stop_accepting called: answers say Connection: close */
    pd_http_limits limits;       /* effective limits */
    pd_http_handler_fn handler;  /* request callback */
    void *data;                  /* handler context */
    pd_http_conn *conns;         /* head of the list of conns with an open tcp */
    size_t nconns;               /* length of that list */
    pd_map *per_ip;              /* pd_addr_key -> open conns (as uintptr_t), untrusted peers */
    char rbuf[PD_HTTP_RBUF_SIZE];/* shared read buffer for conns with nothing retained */
};

/* A queued write and its bytes; freed in the write callback. conn is NULL
 * when the stream no longer belongs to us (detach head) or no follow-up is needed. */
typedef struct pd_http_wreq {
    uv_write_t req;      /* libuv request */
    pd_http_conn *conn;  /* conn to notify on completion, or NULL */
    size_t len;          /* bytes in data */
    char data[];         /* payload */
} pd_http_wreq;

static void conn_feed(pd_http_conn *c, const char *p, size_t n);
static void conn_resume_input(pd_http_conn *c);
static void conn_close(pd_http_conn *c);
static void conn_fail(pd_http_conn *c, int status);
static void conn_start_reading(pd_http_conn *c);

/* ---------- small helpers ---------- */

void pd_http_limits_default(pd_http_limits *l)
{
    l->max_header_bytes = 8192;
    l->max_headers = 32;
    l->max_body_bytes = 16384;
    l->request_timeout_ms = 10000;
    l->idle_timeout_ms = 30000;
    l->max_connections = 20000;
    l->max_conns_per_ip = 32;
    l->trusted = NULL;
    l->max_conn_age_ms = 60000;
}

const char *pd_http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

const pd_slice *pd_http_request_header(const pd_http_request *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (pd_slice_ieq(req->headers[i].name, name))
            return &req->headers[i].value;
    return NULL;
}

int pd_http_query_param(const pd_http_request *req, const char *name, pd_slice *out)
{
    size_t nlen = strlen(name);
    const char *p = req->query.base, *end = p + req->query.len;
    if (req->query.len == 0)
        return PD_ERR;
    while (p <= end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *kend = eq ? eq : stop;
        if ((size_t)(kend - p) == nlen && memcmp(p, name, nlen) == 0) {
            if (out)
                *out = eq ? pd_slice_make(eq + 1, (size_t)(stop - eq - 1)) : pd_slice_make(stop, 0);
            return PD_OK;
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    return PD_ERR;
}

static pd_http_method method_from_llhttp(uint8_t m)
{
    switch (m) {
    case HTTP_GET: return PD_HTTP_GET;
    case HTTP_HEAD: return PD_HTTP_HEAD;
    case HTTP_POST: return PD_HTTP_POST;
    case HTTP_OPTIONS: return PD_HTTP_OPTIONS;
    case HTTP_PUT: return PD_HTTP_PUT;
    case HTTP_DELETE: return PD_HTTP_DELETE;
    default: return PD_HTTP_OTHER;
    }
}

static pd_slice trim_ows(const char *p, size_t n)
{
    while (n > 0 && (p[0] == ' ' || p[0] == '\t')) {
        p++;
        n--;
    }
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    return pd_slice_make(p, n);
}

/* ---------- server list ---------- */

/* Take c out of the per-address table (if it is in). */
static void conn_uncount_peer(pd_http_server *srv, pd_http_conn *c)
{
    if (!c->ip_counted)
        return;
    pd_slice key = pd_slice_cstr(c->ip_key);
    uintptr_t n = (uintptr_t)pd_map_get(srv->per_ip, key);
    if (n > 1)
        pd_map_put(srv->per_ip, key, (void *)(n - 1)); /* replaces: no allocation */
    else
        pd_map_del(srv->per_ip, key);
    c->ip_counted = 0;
}

static void conn_unlink(pd_http_conn *c)
{
    pd_http_server *srv = c->srv;
    if (!srv)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    srv->nconns--;
    conn_uncount_peer(srv, c);
    c->ip_released = 0;
    c->srv = NULL;
}

static void conn_maybe_free(pd_http_conn *c)
{
    /* After a detach the caller owns the tcp, but writes we queued before
     * still report to us, so those keep the conn too. */
    if (c->handles_open > 0 || c->pending || c->writes > 0)
        return;
    free(c->rbuf);
    free(c->arena);
    free(c->body);
    free(c);
}

static void on_tcp_close(uv_handle_t *h)
{
    pd_http_conn *c = h->data;
    free(h);
    c->tcp = NULL;
    conn_unlink(c);
    c->handles_open--;
    conn_maybe_free(c);
}

static void on_timer_close(uv_handle_t *h)
{
    pd_http_conn *c = h->data;
    c->handles_open--;
    conn_maybe_free(c);
}

/* Start closing our handles; memory goes in the close callbacks (or at
 * respond time if a request is still pending). */
static void conn_close(pd_http_conn *c)
{
    if (c->state == PD_HTTP_CLOSING || c->state == PD_HTTP_DETACHED)
        return;
    c->state = PD_HTTP_CLOSING;
    c->reading = 0;
    uv_timer_stop(&c->timer);
    c->tmode = PD_HTTP_T_NONE;
    uv_close((uv_handle_t *)c->tcp, on_tcp_close);
    uv_close((uv_handle_t *)&c->timer, on_timer_close);
}

/* ---------- timers ---------- */

static void on_timer(uv_timer_t *t)
{
    pd_http_conn *c = t->data;
    pd_http_timer_mode mode = c->tmode;
    c->tmode = PD_HTTP_T_NONE;
    if (mode == PD_HTTP_T_REQUEST && c->msg_started && !c->pending && c->state == PD_HTTP_OPEN)
        conn_fail(c, 408); /* slow or stalled request */
    else
        conn_close(c);
}

static void conn_arm(pd_http_conn *c, pd_http_timer_mode mode, uint64_t ms)
{
    c->tmode = mode;
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void conn_disarm(pd_http_conn *c)
{
    c->tmode = PD_HTTP_T_NONE;
    uv_timer_stop(&c->timer);
}

/* ---------- writing ---------- */

static void on_write(uv_write_t *req, int status)
{
    pd_http_wreq *w = (pd_http_wreq *)req;
    pd_http_conn *c = w->conn;
    free(w);
    if (!c)
        return;
    c->writes--;
    if (c->state == PD_HTTP_DETACHED) {
        conn_maybe_free(c);
        return;
    }
    /* Writes complete before their handle's close callback, so c is alive. */
    if (status < 0) {
        conn_close(c);
        return;
    }
    /* A drained write queue may unblock parsing of pipelined requests. */
    conn_resume_input(c);
}

/* Send w (which this takes): straight to the socket first, as a response
 * usually fits its buffer. A uv_write that completes at once still costs
 * the loop an epoll_ctl (libuv re-arms the watcher once the write queue
 * drains) and a callback pass; only what the socket did not take is
 * queued. uv_try_write refuses while earlier writes are queued, so the
 * order holds. `notify` counts the queued write, if any. */
static int wreq_send(uv_tcp_t *tcp, pd_http_conn *notify, pd_http_wreq *w)
{
    w->conn = notify;
    int rc = uv_try_write((uv_stream_t *)tcp, &(uv_buf_t){.base = w->data, .len = w->len}, 1);
    if (rc >= 0 && (size_t)rc == w->len) {
        free(w);
        return 0;
    }
    if (rc < 0 && rc != UV_EAGAIN) {
        free(w);
        return rc;
    }
    size_t done = rc > 0 ? (size_t)rc : 0;
    uv_buf_t buf = uv_buf_init(w->data + done, (unsigned int)(w->len - done));
    rc = uv_write(&w->req, (uv_stream_t *)tcp, &buf, 1, on_write);
    if (rc < 0)
        free(w);
    else if (notify)
        notify->writes++;
    return rc;
}

static int stream_write(uv_tcp_t *tcp, pd_http_conn *notify, const char *a, size_t alen,
                        const char *b, size_t blen)
{
    pd_http_wreq *w = malloc(sizeof(*w) + alen + blen);
    if (!w)
        return UV_ENOMEM;
    w->len = alen + blen;
    if (alen)
        memcpy(w->data, a, alen);
    if (blen)
        memcpy(w->data + alen, b, blen);
    return wreq_send(tcp, notify, w);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    pd_http_conn *c = req->data;
    free(req);
    /* A peer that already half-closed sends nothing more to drain: once our
     * answer is out, the connection is done. (A cancelled shutdown reports
     * here before the handle's close callback, so c is still alive.) */
    if (status == 0 && c->peer_eof && c->state == PD_HTTP_LINGER)
        conn_close(c);
}

/* Half-close after the final response and drain input for a bounded time. */
static void conn_linger(pd_http_conn *c)
{
    c->state = PD_HTTP_LINGER;
    conn_arm(c, PD_HTTP_T_LINGER, PD_HTTP_LINGER_MS);
    uv_shutdown_t *sd = malloc(sizeof(*sd));
    if (sd)
        sd->data = c;
    if (!sd || uv_shutdown(sd, (uv_stream_t *)c->tcp, on_shutdown) < 0) {
        free(sd);
        conn_close(c);
        return;
    }
    conn_start_reading(c); /* drain, so our close does not become an RST */
}

/* Compose and queue a response. `head_only` omits the body (HEAD). */
static int conn_send(pd_http_conn *c, int status, const char *ctype, const char *extra,
                     const char *body, size_t body_len, int keep, int head_only)
{
    char head[1024];
    int no_body = (status >= 100 && status < 200) || status == 204 || status == 304;
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n", status, pd_http_status_text(status));
    if (ctype && !no_body)
        n += snprintf(head + n, sizeof head - (size_t)n, "Content-Type: %s\r\n", ctype);
    if (!no_body)
        n += snprintf(head + n, sizeof head - (size_t)n, "Content-Length: %zu\r\n", body_len);
    n += snprintf(head + n, sizeof head - (size_t)n, "Connection: %s\r\n",
                  keep ? "keep-alive" : "close");
    if (n < 0 || (size_t)n >= sizeof head)
        return UV_E2BIG;
    size_t elen = extra ? strlen(extra) : 0;
    size_t blen = (no_body || head_only) ? 0 : body_len;
    if (elen > UINT32_MAX / 4 || blen > UINT32_MAX / 2)
        return UV_E2BIG; /* a uv_buf_t length is 32 bits */
    /* Header block and body go out in one write: extra headers then CRLF. */
    pd_http_wreq *w = malloc(sizeof(*w) + (size_t)n + elen + 2 + blen);
    if (!w)
        return UV_ENOMEM;
    memcpy(w->data, head, (size_t)n);
    if (elen)
        memcpy(w->data + n, extra, elen);
    memcpy(w->data + (size_t)n + elen, "\r\n", 2);
    if (blen)
        memcpy(w->data + (size_t)n + elen + 2, body, blen);
    w->len = (size_t)n + elen + 2 + blen;
    return wreq_send(c->tcp, c, w);
}

/* Answer a request the handler never saw (parse error, limit, timeout), then close. */
static void conn_fail(pd_http_conn *c, int status)
{
    const char *msg;
    switch (status) {
    case 408: msg = "{\"error\":\"Request timeout\"}"; break;
    case 413: msg = "{\"error\":\"Payload too large\"}"; break;
    case 431: msg = "{\"error\":\"Request header fields too large\"}"; break;
    case 500: msg = "{\"error\":\"Internal server error\"}"; break;
    default: msg = "{\"error\":\"Bad request\"}"; break;
    }
    if (c->state != PD_HTTP_OPEN)
        return;
    if (conn_send(c, status, "application/json; charset=utf-8", NULL, msg, strlen(msg), 0, 0) < 0) {
        conn_close(c);
        return;
    }
    conn_linger(c);
}

/* ---------- reading ---------- */

static int conn_can_parse(const pd_http_conn *c)
{
    return c->state == PD_HTTP_OPEN && !c->pending &&
           uv_stream_get_write_queue_size((const uv_stream_t *)c->tcp) <= PD_HTTP_MAX_WQ;
}

static int conn_has_retained(const pd_http_conn *c)
{
    return c->rlen > c->rpos;
}

static int conn_ensure_rbuf(pd_http_conn *c)
{
    if (!c->rbuf) {
        c->rbuf = malloc(PD_HTTP_RBUF_SIZE);
        if (!c->rbuf)
            return PD_ERR;
        c->rpos = c->rlen = 0;
    }
    return PD_OK;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    pd_http_conn *c = h->data;
    (void)suggested;
    if (c->state == PD_HTTP_OPEN && (!conn_can_parse(c) || conn_has_retained(c))) {
        /* Keep incoming bytes behind the retained ones, in order. */
        if (conn_ensure_rbuf(c) < 0) {
            *buf = uv_buf_init(NULL, 0);
            return;
        }
        if (c->rpos > 0) {
            memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
            c->rlen -= c->rpos;
            c->rpos = 0;
        }
        *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned int)(PD_HTTP_RBUF_SIZE - c->rlen));
        return;
    }
    *buf = uv_buf_init(c->srv->rbuf, sizeof c->srv->rbuf);
}

/* Keep p[0..n) (unparsed) for later. p is either inside our own buffer or in
 * the server's shared buffer; in the latter case our buffer is empty. */
static int conn_retain(pd_http_conn *c, const char *p, size_t n)
{
    if (c->rbuf && p >= c->rbuf && p <= c->rbuf + PD_HTTP_RBUF_SIZE) {
        c->rpos = (size_t)(p - c->rbuf);
        c->rlen = c->rpos + n;
        return PD_OK;
    }
    if (n == 0) {
        c->rpos = c->rlen = 0;
        return PD_OK;
    }
    if (conn_ensure_rbuf(c) < 0 || n > PD_HTTP_RBUF_SIZE - (c->rlen - c->rpos))
        return PD_ERR;
    if (c->rpos > 0) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    memcpy(c->rbuf + c->rlen, p, n);
    c->rlen += n;
    return PD_OK;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    pd_http_conn *c = s->data;
    if (nread == UV_ENOBUFS) {
        /* Retained buffer full: backpressure until the handler answers. */
        uv_read_stop(s);
        c->reading = 0;
        return;
    }
    if (nread < 0) {
        if (nread == UV_EOF && c->state == PD_HTTP_OPEN && (c->pending || conn_has_retained(c))) {
            /* A half-close: the client shut its sending side after its
             * request(s), which HTTP allows. Answer what it sent, then
             * close (pd_http_respond sees peer_eof). */
            c->peer_eof = 1;
            uv_read_stop(s);
            c->reading = 0;
            return;
        }
        /* EOF or error: the peer is gone; a pending request keeps the conn. */
        conn_close(c);
        return;
    }
    if (nread == 0 || c->state != PD_HTTP_OPEN)
        return; /* LINGER discards input */
    if (c->rbuf && buf->base >= c->rbuf && buf->base < c->rbuf + PD_HTTP_RBUF_SIZE) {
        c->rlen += (size_t)nread;
        conn_resume_input(c);
        return;
    }
    if (conn_can_parse(c)) {
        conn_feed(c, buf->base, (size_t)nread);
    } else if (conn_retain(c, buf->base, (size_t)nread) < 0) {
        conn_close(c);
    }
}

static void conn_start_reading(pd_http_conn *c)
{
    if (c->reading || c->peer_eof || (c->state != PD_HTTP_OPEN && c->state != PD_HTTP_LINGER))
        return;
    if (uv_read_start((uv_stream_t *)c->tcp, on_alloc, on_read) == 0)
        c->reading = 1;
    else
        conn_close(c);
}

/* Parse retained bytes if allowed, and make sure we are reading. */
static void conn_resume_input(pd_http_conn *c)
{
    if (c->in_feed || c->state != PD_HTTP_OPEN)
        return;
    if (conn_can_parse(c) && conn_has_retained(c)) {
        const char *p = c->rbuf + c->rpos;
        size_t n = c->rlen - c->rpos;
        c->rpos = c->rlen = 0; /* taken; conn_retain puts back what stays unparsed */
        conn_feed(c, p, n);
    }
    /* Idle again with nothing kept: give the retained-bytes buffer back, so
     * only connections that actually pipeline hold one. Not inside a feed
     * (returned above), so nobody is parsing from it. */
    if (c->rbuf && !conn_has_retained(c) && conn_can_parse(c)) {
        free(c->rbuf);
        c->rbuf = NULL;
        c->rpos = c->rlen = 0;
    }
    conn_start_reading(c);
}

/* ---------- request assembly (llhttp callbacks) ---------- */

enum { CB_NONE = 0, CB_URL, CB_FIELD, CB_VALUE };

static int arena_append(pd_http_conn *c, const char *at, size_t len)
{
    if (len > c->limits.max_header_bytes - c->arena_len) {
        c->err_status = 431;
        return -1;
    }
    if (c->arena_len + len > c->arena_cap) {
        size_t cap = c->arena_cap ? c->arena_cap : PD_HTTP_ARENA_MIN;
        while (cap < c->arena_len + len)
            cap *= 2;
        if (cap > c->limits.max_header_bytes)
            cap = c->limits.max_header_bytes;
        char *a = realloc(c->arena, cap);
        if (!a) {
            c->err_status = 500;
            return -1;
        }
        c->arena = a;
        c->arena_cap = cap;
    }
    memcpy(c->arena + c->arena_len, at, len);
    c->arena_len += len;
    return 0;
}

static int cb_message_begin(llhttp_t *p)
{
    pd_http_conn *c = p->data;
    c->msg_started = 1;
    c->headers_done = 0;
    c->arena_len = 0;
    c->url_off = c->url_len = 0;
    c->nhdr = 0;
    c->body_len = 0;
    c->last_cb = CB_NONE;
    return 0;
}

static int cb_url(llhttp_t *p, const char *at, size_t len)
{
    pd_http_conn *c = p->data;
    if (c->last_cb != CB_URL) {
        c->url_off = c->arena_len;
        c->last_cb = CB_URL;
    }
    if (arena_append(c, at, len) < 0)
        return -1;
    c->url_len = c->arena_len - c->url_off;
    return 0;
}

static int cb_header_field(llhttp_t *p, const char *at, size_t len)
{
    pd_http_conn *c = p->data;
    if (c->headers_done)
        return 0; /* chunked trailer: not merged into the request's headers */
    if (c->last_cb != CB_FIELD) {
        if (c->nhdr >= c->limits.max_headers) {
            c->err_status = 431;
            return -1;
        }
        pd_http_hdr_off *h = &c->hdr[c->nhdr++];
        h->name_off = c->arena_len;
        h->name_len = 0;
        h->value_off = c->arena_len;
        h->value_len = 0;
        c->last_cb = CB_FIELD;
    }
    if (arena_append(c, at, len) < 0)
        return -1;
    c->hdr[c->nhdr - 1].name_len += len;
    return 0;
}

/* 1 if the value piece at `at` opens a continuation line: only SP/HTAB
 * stand between it and a line feed, looking back into the previous read
 * when the piece starts this one. llhttp skips the fold's whitespace and
 * reports what follows as a value, also when the folded header's first
 * line had no value at all ("Transfer-Encoding:\r\n chunked"). */
static int value_opens_line(const pd_http_conn *c, const char *at)
{
    const char *q = at;
    while (q > c->feed_begin && (q[-1] == ' ' || q[-1] == '\t'))
        q--;
    if (q > c->feed_begin)
        return q[-1] == '\n';
    return c->tail_line_start;
}

static int cb_header_value(llhttp_t *p, const char *at, size_t len)
{
    pd_http_conn *c = p->data;
    if (c->headers_done)
        return 0; /* chunked trailer (bounded by the raw message limit) */
    if (c->nhdr == 0)
        return -1; /* llhttp never sends a value first; refuse if it did */
    pd_http_hdr_off *h = &c->hdr[c->nhdr - 1];
    if (value_opens_line(c, at)) {
        /* RFC 9112 §5.2: obs-fold may be rejected, and we do (a folded
         * Transfer-Encoding is a smuggling shape). */
        c->err_status = 400;
        return -1;
    }
    if (c->last_cb != CB_VALUE) {
        h->value_off = c->arena_len;
        h->value_len = 0;
        c->last_cb = CB_VALUE;
    } else if (!(c->val_at_end && at == c->feed_begin)) {
        /* llhttp 8 accepts obs-fold even when strict and reports the
         * continuation as another piece of the same value. A piece that is
         * not just the value resuming at a new read buffer is a fold:
         * RFC 9112 §5.2 lets us reject it, and we do (smuggling shape). */
        c->err_status = 400;
        return -1;
    }
    c->val_at_end = at + len == c->feed_end;
    if (arena_append(c, at, len) < 0)
        return -1;
    h->value_len += len;
    return 0;
}

/* The value is over: the next field starts a new header, and any further
 * value piece would be a continuation line. */
static int cb_header_value_complete(llhttp_t *p)
{
    pd_http_conn *c = p->data;
    c->last_cb = CB_NONE;
    return 0;
}

static int slice_has_token_ci(const char *v, size_t n, const char *tok)
{
    return pd_slice_ieq(trim_ows(v, n), tok);
}

/* 1 unless Transfer-Encoding is exactly one header line saying "chunked".
 * llhttp joins repeated lines into one list and only wants chunked last;
 * a proxy that reads just the first line ("identity") sees no body and
 * takes ours for its next request, and a coding we do not decode (gzip)
 * before chunked is no body we could read: both are refused. */
static int te_unsupported(const pd_http_conn *c)
{
    size_t n = 0;
    int chunked = 0;
    for (size_t i = 0; i < c->nhdr; i++) {
        const pd_http_hdr_off *h = &c->hdr[i];
        if (!pd_slice_ieq(pd_slice_make(c->arena + h->name_off, h->name_len), "transfer-encoding"))
            continue;
        n++;
        chunked = slice_has_token_ci(c->arena + h->value_off, h->value_len, "chunked");
    }
    return n > 1 || (n == 1 && !chunked);
}

static int cb_headers_complete(llhttp_t *p)
{
    pd_http_conn *c = p->data;
    c->headers_done = 1;
    if ((p->flags & F_TRANSFER_ENCODING) && te_unsupported(c)) {
        c->err_status = 400;
        return -1;
    }
    int has_body = (p->flags & F_CHUNKED) || p->content_length > 0;
    if (p->content_length > c->limits.max_body_bytes && !(p->flags & F_CHUNKED)) {
        c->err_status = 413; /* refuse before receiving it */
        return -1;
    }
    /* curl and others wait for "100 Continue" before sending a body. */
    if (has_body && p->http_major == 1 && p->http_minor >= 1) {
        for (size_t i = 0; i < c->nhdr; i++) {
            const pd_http_hdr_off *h = &c->hdr[i];
            if (pd_slice_ieq(pd_slice_make(c->arena + h->name_off, h->name_len), "expect") &&
                slice_has_token_ci(c->arena + h->value_off, h->value_len, "100-continue")) {
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                if (stream_write(c->tcp, c, cont, sizeof cont - 1, NULL, 0) < 0) {
                    c->err_status = 500;
                    return -1;
                }
                break;
            }
        }
    }
    return 0;
}

static int cb_body(llhttp_t *p, const char *at, size_t len)
{
    pd_http_conn *c = p->data;
    if (len > c->limits.max_body_bytes - c->body_len) {
        c->err_status = 413;
        return -1;
    }
    if (c->body_len + len > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap : 1024;
        while (cap < c->body_len + len)
            cap *= 2;
        if (cap > c->limits.max_body_bytes)
            cap = c->limits.max_body_bytes;
        char *b = realloc(c->body, cap);
        if (!b) {
            c->err_status = 500;
            return -1;
        }
        c->body = b;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, at, len);
    c->body_len += len;
    return 0;
}

static int cb_message_complete(llhttp_t *p)
{
    pd_http_conn *c = p->data;
    pd_http_request *r = &c->req;
    r->method = method_from_llhttp(llhttp_get_method(p));
    r->keep_alive = llhttp_should_keep_alive(p);
    r->upgrade = llhttp_get_upgrade(p) ? 1 : 0;
    /* For an upgrade llhttp itself stops with HPE_PAUSED_UPGRADE after us. */
    return r->upgrade ? 0 : HPE_PAUSED;
}

static const llhttp_settings_t pd_http_settings = {
    .on_message_begin = cb_message_begin,
    .on_url = cb_url,
    .on_header_field = cb_header_field,
    .on_header_value = cb_header_value,
    .on_header_value_complete = cb_header_value_complete,
    .on_headers_complete = cb_headers_complete,
    .on_body = cb_body,
    .on_message_complete = cb_message_complete,
};

/* Build the handler's view of the request from the offsets gathered. */
static void conn_build_request(pd_http_conn *c)
{
    pd_http_request *r = &c->req;
    const char *a = c->arena;
    r->target = pd_slice_make(c->url_len ? a + c->url_off : "", c->url_len);
    const char *q = r->target.len ? memchr(r->target.base, '?', r->target.len) : NULL;
    if (q) {
        r->path = pd_slice_make(r->target.base, (size_t)(q - r->target.base));
        r->query = pd_slice_make(q + 1, r->target.len - r->path.len - 1);
    } else {
        r->path = r->target;
        r->query = pd_slice_make(r->target.base + r->target.len, 0);
    }
    r->nheaders = c->nhdr;
    for (size_t i = 0; i < c->nhdr; i++) {
        const pd_http_hdr_off *h = &c->hdr[i];
        r->headers[i].name = pd_slice_make(a + h->name_off, h->name_len);
        r->headers[i].value = trim_ows(a + h->value_off, h->value_len);
    }
    r->body = pd_slice_make(c->body_len ? c->body : "", c->body_len);
    memcpy(r->peer_ip, c->peer_ip, sizeof r->peer_ip);
}

static void conn_dispatch(pd_http_conn *c)
{
    pd_http_server *srv = c->srv;
    conn_build_request(c);
    c->pending = 1;
    c->msg_started = 0;
    c->msg_raw = 0;
    conn_disarm(c); /* the handler's time is not the client's */
    srv->handler(c, &c->req, srv->data);
}

/* Whether bytes b[0..n) end at the start of a line, possibly after SP/HTAB
 * (n == 0, or only whitespace: unchanged from `prev`). */
static int tail_at_line_start(const char *b, size_t n, int prev)
{
    while (n > 0 && (b[n - 1] == ' ' || b[n - 1] == '\t'))
        n--;
    return n == 0 ? prev : b[n - 1] == '\n';
}

/* Parse p[0..n) until it is used up or parsing must wait. Bytes left over
 * after a pause are retained. Never frees c (see file comment). */
static void conn_feed(pd_http_conn *c, const char *p, size_t n)
{
    size_t raw_cap = c->limits.max_header_bytes + c->limits.max_body_bytes + PD_HTTP_FRAMING_SLACK;
    c->in_feed = 1;
    while (n > 0) {
        if (!conn_can_parse(c)) {
            if (c->state == PD_HTTP_OPEN && conn_retain(c, p, n) < 0)
                conn_close(c);
            break;
        }
        if (c->tmode != PD_HTTP_T_REQUEST)
            conn_arm(c, PD_HTTP_T_REQUEST, c->limits.request_timeout_ms);
        c->feed_begin = p;
        c->feed_end = p + n;
        enum llhttp_errno e = llhttp_execute(&c->parser, p, n);
        size_t used = n;
        if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE)
            used = (size_t)(llhttp_get_error_pos(&c->parser) - p);
        c->tail_line_start = tail_at_line_start(p, used, c->tail_line_start);
        c->msg_raw += used;
        p += used;
        n -= used;
        if (e == HPE_OK) {
            /* Whitespace padding never reaches the arena; count raw bytes too. */
            if (!c->headers_done && c->msg_raw > c->limits.max_header_bytes)
                conn_fail(c, 431);
            else if (c->msg_raw > raw_cap)
                conn_fail(c, 413);
            break;
        }
        if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
            if (conn_retain(c, p, n) < 0) {
                conn_close(c);
                break;
            }
            n = 0;
            conn_dispatch(c);
            /* Answered synchronously and still open: go on with what we kept. */
            if (c->state == PD_HTTP_OPEN && conn_can_parse(c) && conn_has_retained(c)) {
                p = c->rbuf + c->rpos;
                n = c->rlen - c->rpos;
                c->rpos = c->rlen = 0;
            }
            continue;
        }
        conn_fail(c, c->err_status ? c->err_status : 400);
        break;
    }
    c->in_feed = 0;
}

/* ---------- respond / detach ---------- */

/* Release per-request memory so an idle keep-alive conn costs little. */
static void conn_reset_request(pd_http_conn *c)
{
    free(c->arena);
    c->arena = NULL;
    c->arena_len = c->arena_cap = 0;
    free(c->body);
    c->body = NULL;
    c->body_len = c->body_cap = 0;
    c->nhdr = 0;
    c->url_off = c->url_len = 0;
    c->err_status = 0;
    memset(&c->req, 0, sizeof c->req);
}

void pd_http_respond(pd_http_conn *conn, int status, const char *content_type,
                     const char *extra_headers, const char *body, size_t body_len,
                     int close_after)
{
    pd_http_conn *c = conn;
    if (!c || !c->pending)
        return; /* not a pending request: nothing to answer */
    c->pending = 0;
    if (c->state != PD_HTTP_OPEN) {
        /* The peer left (or the server was freed) meanwhile: drop the answer. */
        conn_maybe_free(c);
        return;
    }
    if (c->ip_released && c->srv) {
        /* Answered: it counts again (never refused here: it is open). */
        pd_slice key = pd_slice_cstr(c->ip_key);
        uintptr_t n = (uintptr_t)pd_map_get(c->srv->per_ip, key);
        if (pd_map_put(c->srv->per_ip, key, (void *)(n + 1)) == PD_OK)
            c->ip_counted = 1;
        c->ip_released = 0;
    }
    /* Keep-alive is for clients, not for holding a slot: a connection past
     * its age limit is told to go (browsers reconnect transparently), and a
     * half-closed one ends with its last answer. */
    uv_loop_t *loop = c->tcp->loop;
    int aged = c->limits.max_conn_age_ms && uv_now(loop) - c->born_ms >= c->limits.max_conn_age_ms;
    int keep = c->req.keep_alive && !close_after && !c->req.upgrade &&
               !(c->srv && c->srv->draining) && !aged && !(c->peer_eof && !conn_has_retained(c));
    int head_only = c->req.method == PD_HTTP_HEAD;
    if (!body)
        body_len = 0;
    if (conn_send(c, status, content_type, extra_headers, body, body_len, keep, head_only) < 0) {
        conn_close(c);
        return;
    }
    conn_reset_request(c);
    if (!keep) {
        conn_linger(c);
        return;
    }
    llhttp_resume(&c->parser);
    conn_arm(c, PD_HTTP_T_IDLE, c->limits.idle_timeout_ms);
    conn_resume_input(c);
}

void pd_http_respond_json(pd_http_conn *conn, int status, const char *extra_headers,
                          const char *json, int close_after)
{
    pd_http_respond(conn, status, "application/json; charset=utf-8", extra_headers, json,
                    json ? strlen(json) : 0, close_after);
}

const char *pd_http_conn_peer_ip(const pd_http_conn *conn)
{
    return conn->peer_ip;
}

uv_tcp_t *pd_http_conn_detach(pd_http_conn *conn, const char *head, size_t head_len,
                              char **leftover, size_t *leftover_len)
{
    pd_http_conn *c = conn;
    if (leftover)
        *leftover = NULL;
    if (leftover_len)
        *leftover_len = 0;
    if (!c || !c->pending)
        return NULL;
    /* A peer that stopped sending (half-close) can never speak the
     * protocol it asked for: nothing worth handing over. */
    if (c->peer_eof && c->state == PD_HTTP_OPEN)
        conn_close(c);
    if (c->state != PD_HTTP_OPEN) {
        /* The peer already left: nothing to hand over; the conn is gone now. */
        c->pending = 0;
        conn_maybe_free(c);
        return NULL;
    }
    uv_tcp_t *tcp = c->tcp;
    uv_read_stop((uv_stream_t *)tcp);
    c->reading = 0;
    size_t n = c->rlen - c->rpos;
    if (n > 0 && leftover && leftover_len) {
        char *copy = malloc(n);
        if (copy) {
            memcpy(copy, c->rbuf + c->rpos, n);
            *leftover = copy;
            *leftover_len = n;
        }
    }
    /* The write outlives the conn, so it reports to nobody. */
    if (head && head_len > 0 && stream_write(tcp, NULL, head, head_len, NULL, 0) < 0) {
        /* Hand the stream over anyway; the caller's next write will fail too. */
    }
    tcp->data = NULL;
    c->tcp = NULL;
    conn_unlink(c);
    c->state = PD_HTTP_DETACHED;
    c->pending = 0;
    c->handles_open--; /* the tcp is the caller's now */
    conn_disarm(c);
    uv_close((uv_handle_t *)&c->timer, on_timer_close); /* frees c */
    return tcp;
}

/* ---------- server ---------- */

static void peer_name(uv_tcp_t *tcp, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    out[0] = '\0';
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)&ss, out, cap);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
        /* A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d; report them
         * as plain IPv4 so rate limits and proxy lists match either way. */
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            struct sockaddr_in s4;
            memset(&s4, 0, sizeof s4);
            s4.sin_family = AF_INET;
            memcpy(&s4.sin_addr, &s6->sin6_addr.s6_addr[12], 4);
            uv_ip4_name(&s4, out, cap);
        } else {
            uv_ip6_name(s6, out, cap);
        }
    }
}

static void on_reject_close(uv_handle_t *h)
{
    free(h);
}

/* A connection refused before any request: one short answer, written only
 * if the socket takes it at once (a fresh socket always does), then close.
 * Nothing is queued, so refusing costs no memory beyond the handle. */
static void reject_conn(uv_tcp_t *tcp, int status, const char *msg)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n{\"error\":\"%s\"}",
                     status, pd_http_status_text(status), strlen(msg) + 12, msg);
    if (n > 0 && (size_t)n < sizeof buf) {
        uv_buf_t b = uv_buf_init(buf, (unsigned)n);
        (void)uv_try_write((uv_stream_t *)tcp, &b, 1);
    }
    uv_close((uv_handle_t *)tcp, on_reject_close);
}

/* Connections that have not been handed over (no upgrade yet) are bounded
 * per client host, so one host can never hold the slots everyone else
 * needs. Peers that are trusted proxies carry many clients on their
 * connections and are exempt; per-client limits behind them apply once the
 * request names the client (X-Forwarded-For). Returns 0 if over the cap. */
static int conn_count_peer(pd_http_server *srv, pd_http_conn *c)
{
    if (srv->limits.max_conns_per_ip == 0 || pd_cidr_list_contains(srv->limits.trusted, c->peer_ip))
        return 1;
    pd_addr_key(c->peer_ip, c->ip_key);
    pd_slice key = pd_slice_cstr(c->ip_key);
    uintptr_t n = (uintptr_t)pd_map_get(srv->per_ip, key);
    if (n >= srv->limits.max_conns_per_ip || pd_map_put(srv->per_ip, key, (void *)(n + 1)) != PD_OK)
        return 0;
    c->ip_counted = 1;
    return 1;
}

void pd_http_conn_release_slot(pd_http_conn *c)
{
    if (!c || !c->pending || !c->srv || !c->ip_counted)
        return;
    conn_uncount_peer(c->srv, c);
    c->ip_released = 1;
}

static void on_connection(uv_stream_t *listener, int status)
{
    pd_http_server *srv = listener->data;
    if (status < 0)
        return; /* transient accept failure; libuv keeps listening */
    uv_tcp_t *tcp = malloc(sizeof(*tcp));
    if (!tcp)
        return;
    if (uv_tcp_init(srv->loop, tcp) != 0) {
        free(tcp);
        return;
    }
    if (uv_accept(listener, (uv_stream_t *)tcp) != 0) {
        uv_close((uv_handle_t *)tcp, on_reject_close);
        return;
    }
    if (srv->nconns >= srv->limits.max_connections) {
        reject_conn(tcp, 503, "Server is at its connection limit");
        return;
    }
    pd_http_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        uv_close((uv_handle_t *)tcp, on_reject_close);
        return;
    }
    peer_name(tcp, c->peer_ip, sizeof c->peer_ip);
    if (!conn_count_peer(srv, c)) {
        free(c);
        reject_conn(tcp, 429, "Too many connections from this address");
        return;
    }
    c->srv = srv;
    c->born_ms = uv_now(srv->loop);
    c->tcp = tcp;
    c->limits = srv->limits;
    tcp->data = c;
    uv_timer_init(srv->loop, &c->timer);
    c->timer.data = c;
    c->handles_open = 2;
    llhttp_init(&c->parser, HTTP_REQUEST, &pd_http_settings);
    c->parser.data = c;
    uv_tcp_nodelay(tcp, 1);
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    /* A new connection must deliver its first request in time, too. */
    conn_arm(c, PD_HTTP_T_REQUEST, c->limits.request_timeout_ms);
    conn_start_reading(c);
}

static void server_release(pd_http_server *srv)
{
    pd_map_free(srv->per_ip);
    free(srv);
}

static void on_listener_close(uv_handle_t *h)
{
    pd_http_server *srv = h->data;
    srv->listener_state = 2;
    if (srv->free_requested)
        server_release(srv);
}

pd_http_server *pd_http_server_create(uv_loop_t *loop, const char *addr, int port,
                                      const pd_http_limits *limits,
                                      pd_http_handler_fn handler, void *data,
                                      const char **err)
{
    const char *dummy;
    struct sockaddr_storage ss;
    int family;
    if (!err)
        err = &dummy;
    if (!loop || !handler || !addr || port < 0 || port > 65535) {
        *err = "invalid arguments";
        return NULL;
    }
    memset(&ss, 0, sizeof ss);
    if (uv_ip4_addr(addr, port, (struct sockaddr_in *)&ss) == 0) {
        family = AF_INET;
    } else if (uv_ip6_addr(addr, port, (struct sockaddr_in6 *)&ss) == 0) {
        family = AF_INET6;
    } else {
        *err = "invalid listen address";
        return NULL;
    }
    pd_http_server *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        *err = "out of memory";
        return NULL;
    }
    srv->loop = loop;
    srv->handler = handler;
    srv->data = data;
    if (limits)
        srv->limits = *limits;
    else
        pd_http_limits_default(&srv->limits);
    if (srv->limits.max_headers > PD_HTTP_MAX_HEADERS_CAP)
        srv->limits.max_headers = PD_HTTP_MAX_HEADERS_CAP;
    if (!(srv->per_ip = pd_map_create())) {
        free(srv);
        *err = "out of memory";
        return NULL;
    }

    /* Our own socket, so SO_REUSEPORT is set before bind (sibling processes
     * share the port) and bind errors come back before any handle exists. */
    int one = 1;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const char *fail = NULL;
    if (fd < 0)
        fail = "socket creation failed";
    else if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
             setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
        fail = "setting SO_REUSEPORT failed";
    else if (bind(fd, (const struct sockaddr *)&ss,
                  family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)) != 0)
        fail = errno == EADDRINUSE ? "address in use" : "bind failed";
    else if (listen(fd, SOMAXCONN) != 0)
        fail = "listen failed";
    if (fail) {
        if (fd >= 0)
            close(fd);
        server_release(srv);
        *err = fail;
        return NULL;
    }
    if (uv_tcp_init(loop, &srv->listener) != 0) {
        close(fd);
        server_release(srv);
        *err = "socket creation failed";
        return NULL;
    }
    srv->listener.data = srv;
    if (uv_tcp_open(&srv->listener, fd) != 0 ||
        uv_listen((uv_stream_t *)&srv->listener, SOMAXCONN, on_connection) != 0) {
        /* The handle exists now: it must go through uv_close, and the server
         * memory with it (freed in the close callback when the loop runs). */
        srv->free_requested = 1;
        srv->listener_state = 1;
        uv_close((uv_handle_t *)&srv->listener, on_listener_close);
        *err = "listen failed";
        return NULL;
    }
    return srv;
}

int pd_http_server_port(const pd_http_server *srv)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

void pd_http_server_stop_accepting(pd_http_server *srv)
{
    srv->draining = 1;
    if (srv->listener_state == 0) {
        srv->listener_state = 1;
        uv_close((uv_handle_t *)&srv->listener, on_listener_close);
    }
}

size_t pd_http_server_conn_count(const pd_http_server *srv)
{
    return srv->nconns;
}

void pd_http_server_free(pd_http_server *srv)
{
    if (!srv)
        return;
    /* Conns outlive the server only while closing or pending; unlink them so
     * none of their callbacks reach back into freed server memory. */
    while (srv->conns) {
        pd_http_conn *c = srv->conns;
        conn_unlink(c);
        conn_close(c);
    }
    srv->free_requested = 1;
    if (srv->listener_state == 0) {
        srv->listener_state = 1;
        uv_close((uv_handle_t *)&srv->listener, on_listener_close);
    } else if (srv->listener_state == 2) {
        server_release(srv);
    }
}

int pd_http_origin_listed(const char *list, pd_slice origin)
{
    if (!list)
        return 0;
    const char *p = list;
    int any = 0;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && t[-1] == ' ')
            t--;
        pd_slice item = pd_slice_make(p, (size_t)(t - p));
        /* "*" is the wildcard even when the Origin itself reads "*": it
         * names no origin. */
        if (pd_slice_eq(item, "*"))
            any = PD_ORIGIN_ANY;
        else if (item.len == origin.len && item.len && memcmp(item.base, origin.base, item.len) == 0)
            return PD_ORIGIN_NAMED;
        p = e;
    }
    return any;
}
