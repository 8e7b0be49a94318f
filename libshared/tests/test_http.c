/* test_http.c — pd_http server against real sockets.
 *
 * Each test runs the server on a libuv loop in the main thread, bound to an
 * ephemeral port on 127.0.0.1, and a blocking client script in a second
 * thread. The client records what it saw; assertions run in the main thread
 * after the loop has finished (cmocka is not thread-safe). When the client is
 * done it wakes the loop with uv_async_send, which frees the server; the loop
 * then ends once every handle is closed, and uv_loop_close() proves it. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cmocka.h>

#include "privydrop/pd_http.h"

#define MAX_RESP 16
#define CL_BUF 131072

/* One parsed response as the client saw it. */
typedef struct resp {
    int status;          /* status code, 0 if none */
    char head[4096];     /* status line + headers, NUL-terminated */
    char body[16384];    /* body, NUL-terminated */
    size_t body_len;     /* body length */
} resp;

typedef struct fixture fixture;
typedef void (*client_fn)(fixture *fx);

struct fixture {
    uv_loop_t loop;            /* server loop (main thread) */
    pd_http_server *srv;       /* server under test */
    uv_async_t done;           /* client → loop: finished */
    int port;                  /* bound port */
    client_fn client;          /* client script */
    pthread_t th;              /* client thread */
    /* client-side observations */
    resp r[MAX_RESP];          /* parsed responses */
    int nr;                    /* responses parsed */
    int eof[MAX_RESP];         /* 1: peer closed as expected */
    char raw[CL_BUF];          /* raw bytes for free-form checks */
    size_t raw_len;            /* bytes in raw */
    int flag[8];               /* script-specific results */
    /* server-side observations */
    int handled;               /* handler calls */
    int responded_async;       /* async answers given */
    char leftover[256];        /* bytes handed over by detach */
    size_t leftover_len;       /* length of leftover */
    int detach_ok;             /* detach returned a stream */
    size_t conns_at_done;      /* conn count when the client finished */
};

/* ---------- blocking client helpers ---------- */

typedef struct cl_conn {
    int fd;            /* socket */
    char buf[CL_BUF];  /* received, not yet consumed */
    size_t len;        /* bytes in buf */
} cl_conn;

static cl_conn *cl_connect(int port)
{
    cl_conn *c = calloc(1, sizeof(*c));
    struct sockaddr_in sa;
    struct timeval tv = {3, 0};
    int one = 1;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(c->fd);
        c->fd = -1;
    }
    return c;
}

static void cl_free(cl_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

static int cl_send(cl_conn *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static int cl_sends(cl_conn *c, const char *s)
{
    return cl_send(c, s, strlen(s));
}

/* Read more bytes; returns bytes read, 0 on EOF, -1 on error/timeout. */
static ssize_t cl_fill(cl_conn *c)
{
    if (c->len >= sizeof c->buf)
        return -1;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (n > 0)
        c->len += (size_t)n;
    return n < 0 ? -1 : n;
}

static void cl_consume(cl_conn *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Parse one response (Content-Length framed). head_req: no body follows. */
static int cl_response(cl_conn *c, resp *r, int head_req)
{
    memset(r, 0, sizeof *r);
    char *end;
    for (;;) {
        end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (end)
            break;
        if (cl_fill(c) <= 0)
            return -1;
    }
    size_t hlen = (size_t)(end - c->buf) + 4;
    if (hlen >= sizeof r->head)
        return -1;
    memcpy(r->head, c->buf, hlen);
    r->head[hlen] = '\0';
    if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1)
        return -1;
    size_t clen = 0;
    const char *cl = strcasestr(r->head, "\r\nContent-Length:");
    if (cl)
        clen = strtoul(cl + 17, NULL, 10);
    if (head_req)
        clen = 0;
    if (clen >= sizeof r->body)
        return -1;
    while (c->len < hlen + clen)
        if (cl_fill(c) <= 0)
            return -1;
    memcpy(r->body, c->buf + hlen, clen);
    r->body[clen] = '\0';
    r->body_len = clen;
    cl_consume(c, hlen + clen);
    return 0;
}

/* 1 if the server closed the connection (EOF or reset) within the timeout. */
static int cl_wait_close(cl_conn *c)
{
    for (;;) {
        char tmp[4096];
        ssize_t n = recv(c->fd, tmp, sizeof tmp, 0);
        if (n == 0)
            return 1;
        if (n < 0)
            return errno == ECONNRESET ? 1 : 0;
    }
}

/* Record the next response on c into fx->r[fx->nr]. */
static int cl_record(fixture *fx, cl_conn *c, int head_req)
{
    if (fx->nr >= MAX_RESP)
        return -1;
    if (cl_response(c, &fx->r[fx->nr], head_req) != 0)
        return -1;
    fx->nr++;
    return 0;
}

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---------- server-side test handler ---------- */

typedef struct async_job {
    uv_timer_t timer;     /* fires the late answer */
    pd_http_conn *conn;   /* request to answer */
    fixture *fx;          /* test */
    char body[64];        /* answer */
} async_job;

static void on_job_close(uv_handle_t *h)
{
    free(h->data);
}

static void on_detached_close(uv_handle_t *h)
{
    free(h);
}

static void on_job_timer(uv_timer_t *t)
{
    async_job *j = t->data;
    pd_http_respond(j->conn, 200, "text/plain", NULL, j->body, strlen(j->body), 0);
    j->fx->responded_async++;
    uv_close((uv_handle_t *)&j->timer, on_job_close);
}

static void on_detached_write(uv_write_t *w, int status)
{
    (void)status;
    uv_stream_t *s = w->handle;
    free(w);
    uv_close((uv_handle_t *)s, on_detached_close);
}

static void on_late_detach(uv_timer_t *t)
{
    async_job *j = t->data;
    char *left = NULL;
    size_t left_len = 0;
    uv_tcp_t *tcp = pd_http_conn_detach(j->conn, "HTTP/1.1 101 Switching Protocols\r\n\r\n", 36,
                                        &left, &left_len);
    j->fx->detach_ok = tcp != NULL;
    j->fx->responded_async++;
    if (left && left_len < sizeof j->fx->leftover) {
        memcpy(j->fx->leftover, left, left_len);
        j->fx->leftover_len = left_len;
    }
    free(left);
    if (tcp)
        uv_close((uv_handle_t *)tcp, on_detached_close);
    uv_close((uv_handle_t *)&j->timer, on_job_close);
}

static void handler(pd_http_conn *conn, const pd_http_request *req, void *data)
{
    fixture *fx = data;
    pd_slice v;
    fx->handled++;
    if (pd_slice_eq(req->path, "/hello")) {
        pd_http_respond(conn, 200, "text/plain", "X-Test: yes\r\n", "hello", 5, 0);
    } else if (pd_slice_eq(req->path, "/echo")) {
        pd_http_respond(conn, 200, "application/octet-stream", NULL, req->body.base,
                        req->body.len, 0);
    } else if (pd_slice_eq(req->path, "/header")) {
        const pd_slice *h = pd_http_request_header(req, "x-probe");
        char out[128];
        int n = snprintf(out, sizeof out, "[%.*s] n=%zu ip=%s", h ? (int)h->len : 0,
                         h ? h->base : "", req->nheaders, req->peer_ip);
        pd_http_respond(conn, 200, "text/plain", NULL, out, (size_t)n, 0);
    } else if (pd_slice_eq(req->path, "/async")) {
        async_job *j = calloc(1, sizeof(*j));
        int ms = 0;
        if (pd_http_query_param(req, "ms", &v) == PD_OK)
            ms = atoi(v.base); /* query ends at a non-digit; fine for tests */
        j->conn = conn;
        j->fx = fx;
        snprintf(j->body, sizeof j->body, "async%d", ms);
        uv_timer_init(&fx->loop, &j->timer);
        j->timer.data = j;
        uv_timer_start(&j->timer, on_job_timer, (uint64_t)ms, 0);
    } else if (pd_slice_eq(req->path, "/late-upgrade") && req->upgrade) {
        /* detach later, from a timer, like a handler waiting on Redis */
        async_job *j = calloc(1, sizeof(*j));
        j->conn = conn;
        j->fx = fx;
        uv_timer_init(&fx->loop, &j->timer);
        j->timer.data = j;
        uv_timer_start(&j->timer, on_late_detach, 100, 0);
    } else if (pd_slice_eq(req->path, "/upgrade") && req->upgrade) {
        static const char head[] =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n";
        char *left = NULL;
        size_t left_len = 0;
        uv_tcp_t *tcp = pd_http_conn_detach(conn, head, sizeof head - 1, &left, &left_len);
        fx->detach_ok = tcp != NULL;
        if (left && left_len < sizeof fx->leftover) {
            memcpy(fx->leftover, left, left_len);
            fx->leftover_len = left_len;
        }
        if (tcp) {
            /* Prove the stream is ours now: answer on it, then close it. */
            static char msg[300];
            int n = snprintf(msg, sizeof msg, "left=%.*s\n", (int)left_len, left ? left : "");
            uv_write_t *w = malloc(sizeof(*w));
            uv_buf_t b = uv_buf_init(msg, (unsigned int)n);
            uv_write(w, (uv_stream_t *)tcp, &b, 1, on_detached_write);
        }
        free(left);
    } else if (pd_slice_eq(req->path, "/upgrade")) {
        pd_http_respond_json(conn, 400, NULL, "{\"error\":\"no upgrade\"}", 0);
    } else {
        pd_http_respond_json(conn, 404, NULL, "{\"error\":\"Not found\"}", 0);
    }
}

/* ---------- harness ---------- */

static void on_done_close(uv_handle_t *h)
{
    (void)h;
}

static void on_done(uv_async_t *a)
{
    fixture *fx = a->data;
    fx->conns_at_done = pd_http_server_conn_count(fx->srv);
    pd_http_server_free(fx->srv);
    fx->srv = NULL;
    uv_close((uv_handle_t *)a, on_done_close);
}

static void *client_main(void *arg)
{
    fixture *fx = arg;
    fx->client(fx);
    uv_async_send(&fx->done);
    return NULL;
}

static fixture *run(client_fn client, const pd_http_limits *limits)
{
    fixture *fx = calloc(1, sizeof(*fx));
    const char *err = NULL;
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    fx->srv = pd_http_server_create(&fx->loop, "127.0.0.1", 0, limits, handler, fx, &err);
    assert_non_null(fx->srv);
    fx->port = pd_http_server_port(fx->srv);
    assert_true(fx->port > 0);
    uv_async_init(&fx->loop, &fx->done, on_done);
    fx->done.data = fx;
    fx->client = client;
    assert_int_equal(pthread_create(&fx->th, NULL, client_main, fx), 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    pthread_join(fx->th, NULL);
    /* Every handle (listener, conns, timers) must be closed by now. */
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    return fx;
}

static void done(fixture *fx)
{
    free(fx);
}

static void small_limits(pd_http_limits *l)
{
    pd_http_limits_default(l);
    l->max_header_bytes = 1024;
    l->max_headers = 8;
    l->max_body_bytes = 2048;
}

/* ---------- client scripts and tests ---------- */

static void cl_keepalive(fixture *fx)
{
    cl_conn *c = cl_connect(fx->port);
    cl_sends(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    cl_record(fx, c, 0);
    cl_sends(c, "GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n");
    cl_record(fx, c, 0);
    cl_free(c);
}

static void test_get_keepalive_two_requests(void **state)
{
    (void)state;
    fixture *fx = run(cl_keepalive, NULL);
    assert_int_equal(fx->nr, 2);
    assert_int_equal(fx->r[0].status, 200);
    assert_string_equal(fx->r[0].body, "hello");
    assert_non_null(strstr(fx->r[0].head, "Connection: keep-alive\r\n"));
    assert_non_null(strstr(fx->r[0].head, "X-Test: yes\r\n"));
    assert_non_null(strstr(fx->r[0].head, "Content-Type: text/plain\r\n"));
    /* routing by the handler: unknown path gets its JSON 404 */
    assert_int_equal(fx->r[1].status, 404);
    assert_string_equal(fx->r[1].body, "{\"error\":\"Not found\"}");
    assert_int_equal(fx->handled, 2);
    done(fx);
}

static void cl_pipelined(fixture *fx)
{
    cl_conn *c = cl_connect(fx->port);
    cl_sends(c, "GET /async?ms=60 HTTP/1.1\r\nHost: x\r\n\r\n"
                "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                "GET /async?ms=5 HTTP/1.1\r\nHost: x\r\n\r\n"
                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
    for (int i = 0; i < 4; i++)
        cl_record(fx, c, 0);
    cl_free(c);
}

static void test_pipelined_answered_in_order(void **state)
{
    (void)state;
    fixture *fx = run(cl_pipelined, NULL);
    assert_int_equal(fx->nr, 4);
    assert_string_equal(fx->r[0].body, "async60");
    assert_string_equal(fx->r[1].body, "hello");
    assert_string_equal(fx->r[2].body, "async5");
    assert_string_equal(fx->r[3].body, "abc");
    assert_int_equal(fx->responded_async, 2);
    done(fx);
}

/* Many pipelined requests, more than the retained-bytes buffer holds, with
 * async answers in between: reading must pause and resume without loss. */
static void cl_pipelined_many(fixture *fx)
{
    cl_conn *c = cl_connect(fx->port);
    char *big = malloc(600 * 64);
    size_t len = 0;
    for (int i = 0; i < 600; i++)
        len += (size_t)sprintf(big + len, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n",
                               i % 3 == 0 ? "/async?ms=0" : "/hello");
    cl_send(c, big, len);
    free(big);
    int ok = 0;
    resp r;
    for (int i = 0; i < 600; i++) {
        if (cl_response(c, &r, 0) != 0)
            break;
        if (strcmp(r.body, i % 3 == 0 ? "async0" : "hello") == 0)
            ok++;
    }
    fx->flag[0] = ok;
    cl_free(c);
}

static void test_pipelined_many_with_backpressure(void **state)
{
    (void)state;
    fixture *fx = run(cl_pipelined_many, NULL);
    assert_int_equal(fx->flag[0], 600);
    done(fx);
}

static void cl_post(fixture *fx)
{
    cl_conn *c = cl_connect(fx->port);
    cl_sends(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world");
    cl_record(fx, c, 0);
    cl_sends(c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                "5\r\nchunk\r\n6\r\ned-abc\r\n0\r\n\r\n");
    cl_record(fx, c, 0);
    /* Expect: 100-continue gets the interim answer before the body is sent. */
    cl_sends(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    resp interim;
    if (cl_response(c, &interim, 1) == 0)
        fx->flag[0] = interim.status;
    cl_sends(c, "data");
    cl_record(fx, c, 0);
    /* trailers are accepted but not merged into the request's headers */
    cl_sends(c, "POST /header HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                "1\r\nz\r\n0\r\nX-Probe: trailer\r\n\r\n");
    cl_record(fx, c, 0);
    cl_free(c);
}

static void test_post_body_length_and_chunked(void **state)
{
    (void)state;
    fixture *fx = run(cl_post, NULL);
    assert_int_equal(fx->nr, 4);
    assert_int_equal(fx->r[0].status, 200);
    assert_string_equal(fx->r[0].body, "hello world");
    assert_string_equal(fx->r[1].body, "chunked-abc");
    assert_int_equal(fx->flag[0], 100);
    assert_string_equal(fx->r[2].body, "data");
    assert_string_equal(fx->r[3].body, "[] n=2 ip=127.0.0.1");
    done(fx);
}

static void cl_async(fixture *fx)
{
    cl_conn *c = cl_connect(fx->port);
    cl_sends(c, "GET /async?ms=30 HTTP/1.1\r\nHost: x\r\n\r\n");
    cl_record(fx, c, 0);
    cl_sends(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    cl_record(fx, c, 0);
    cl_free(c);
}

static void test_async_response_from_timer(void **state)
{
    (void)state;
    fixture *fx = run(cl_async, NULL);
    assert_int_equal(fx->nr, 2);
    assert_string_equal(fx->r[0].body, "async30");
    assert_string_equal(fx->r[1].body, "hello");
    assert_int_equal(fx->responded_async, 1);
    done(fx);
}

static void cl_headers_query(fixture *fx)
{
    cl_conn *c = cl_connect(fx->port);
    cl_sends(c, "GET /header?x=1 HTTP/1.1\r\nHost: x\r\nX-PROBE:   spaced value  \r\n\r\n");
    cl_record(fx, c, 0);
    cl_sends(c, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    cl_record(fx, c, 1);
    cl_sends(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    cl_record(fx, c, 0);
    /* a value and a URL split across reads are joined, not taken for a fold */
    cl_sends(c, "GET /hea");
    msleep(30);
    cl_sends(c, "der HTTP/1.1\r\nHost: x\r\nX-Probe: abc");
    msleep(30);
    cl_sends(c, "def \r\n\r\n");
    cl_record(fx, c, 0);
    cl_free(c);
}

static void test_headers_trimmed_and_head_without_body(void **state)
{
    (void)state;
    fixture *fx = run(cl_headers_query, NULL);
    assert_int_equal(fx->nr, 4);
    assert_string_equal(fx->r[3].body, "[abcdef] n=2 ip=127.0.0.1");
    assert_string_equal(fx->r[0].body, "[spaced value] n=2 ip=127.0.0.1");
    assert_int_equal(fx->r[1].status, 200);
    assert_non_null(strstr(fx->r[1].head, "Content-Length: 5\r\n"));
    /* the next response follows the HEAD answer directly: no body was sent */
    assert_string_equal(fx->r[2].body, "hello");
    done(fx);
}

static void cl_http10(fixture *fx)
{
    cl_conn *c = cl_connect(fx->port);
    cl_sends(c, "GET /hello HTTP/1.0\r\n\r\n");
    cl_record(fx, c, 0);
    fx->eof[0] = cl_wait_close(c);
    cl_free(c);
    c = cl_connect(fx->port);
    cl_sends(c, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    cl_record(fx, c, 0);
    fx->eof[1] = cl_wait_close(c);
    cl_free(c);
    c = cl_connect(fx->port);
    cl_sends(c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    cl_record(fx, c, 0);
    cl_free(c);
}

static void test_http10_and_connection_close(void **state)
{
    (void)state;
    fixture *fx = run(cl_http10, NULL);
    assert_int_equal(fx->nr, 3);
    assert_non_null(strstr(fx->r[0].head, "Connection: close\r\n"));
    assert_true(fx->eof[0]);
    assert_non_null(strstr(fx->r[1].head, "Connection: close\r\n"));
    assert_true(fx->eof[1]);
    assert_non_null(strstr(fx->r[2].head, "Connection: keep-alive\r\n"));
    assert_int_equal(fx->handled, 3); /* the request after "close" was not served */
    done(fx);
}

/* Send `req` on a fresh connection; record the answer and whether it closed. */
static void cl_one_bad(fixture *fx, const char *req, size_t len)
{
    cl_conn *c = cl_connect(fx->port);
    cl_send(c, req, len);
    if (cl_record(fx, c, 0) == 0)
        fx->eof[fx->nr - 1] = cl_wait_close(c);
    cl_free(c);
}

static void cl_limits(fixture *fx)
{
    char big[2048];
    /* one header over max_header_bytes (1024) */
    int n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: %01500d\r\n\r\n", 0);
    cl_one_bad(fx, big, (size_t)n);
    /* more headers than max_headers (8) */
    n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 10; i++)
        n += snprintf(big + n, sizeof big - (size_t)n, "X-H%d: v\r\n", i);
    n += snprintf(big + n, sizeof big - (size_t)n, "\r\n");
    cl_one_bad(fx, big, (size_t)n);
    /* body over max_body_bytes (2048), announced by Content-Length */
    const char *clreq = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n";
    cl_one_bad(fx, clreq, strlen(clreq));
    /* chunked body growing past the limit */
    n = snprintf(big, sizeof big, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  "%x\r\n", 1500);
    memset(big + n, 'a', 1500);
    n += 1500;
    n += snprintf(big + n, sizeof big - (size_t)n, "\r\n");
    {
        cl_conn *c = cl_connect(fx->port);
        cl_send(c, big, (size_t)n);
        cl_send(c, big + n - 1500 - 2 - 5, 1500 + 2 + 5); /* second 1500-byte chunk */
        if (cl_record(fx, c, 0) == 0)
            fx->eof[fx->nr - 1] = cl_wait_close(c);
        cl_free(c);
    }
    /* whitespace padding does not reach the arena but still counts */
    {
        cl_conn *c = cl_connect(fx->port);
        cl_sends(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Pad:");
        char sp[600];
        memset(sp, ' ', sizeof sp);
        cl_send(c, sp, sizeof sp);
        msleep(20);
        cl_send(c, sp, sizeof sp);
        if (cl_record(fx, c, 0) == 0)
            fx->eof[fx->nr - 1] = cl_wait_close(c);
        cl_free(c);
    }
}

static void test_limits_431_and_413(void **state)
{
    (void)state;
    pd_http_limits l;
    small_limits(&l);
    fixture *fx = run(cl_limits, &l);
    assert_int_equal(fx->nr, 5);
    int want[] = {431, 431, 413, 413, 431};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(fx->r[i].status, want[i]);
        assert_true(fx->eof[i]);
        assert_non_null(strstr(fx->r[i].head, "Connection: close\r\n"));
        assert_non_null(strstr(fx->r[i].head, "Content-Type: application/json"));
    }
    assert_string_equal(fx->r[0].body, "{\"error\":\"Request header fields too large\"}");
    assert_string_equal(fx->r[2].body, "{\"error\":\"Payload too large\"}");
    assert_int_equal(fx->handled, 0);
    done(fx);
}

static const char *const smuggling[] = {
    /* Content-Length together with Transfer-Encoding */
    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
    "0\r\n\r\n",
    /* bare LF line endings */
    "GET /hello HTTP/1.1\nHost: x\n\n",
    /* obs-fold header continuation */
    "GET /hello HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n",
    /* obs-fold after an empty first line: a folded Transfer-Encoding */
    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\tchunked\r\n\r\n0\r\n\r\n",
    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:  \r\n  chunked\r\n\r\n0\r\n\r\n",
    /* obs-fold of an empty value onto an empty line */
    "GET /hello HTTP/1.1\r\nHost: x\r\nX-A:\r\n \r\n\r\n",
    /* chunked not the final coding */
    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    /* Transfer-Encoding in two header lines (a proxy that reads the first
     * one sees no body), and codings we do not implement before chunked */
    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n"
    "0\r\n\r\n",
    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
    "0\r\n\r\n",
    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    /* not HTTP at all */
    "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 junk\r\n\r\n",
    /* duplicate Content-Length with different values */
    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
};

static void cl_smuggling(fixture *fx)
{
    for (size_t i = 0; i < PD_ARRAY_LEN(smuggling); i++)
        cl_one_bad(fx, smuggling[i], strlen(smuggling[i]));
    /* obs-fold whose continuation arrives in a later read: after a value,
     * and after an empty first line (the fold's whitespace in its own read) */
    static const char *const split[][3] = {
        {"GET /hello HTTP/1.1\r\nHost: x\r\nX-A: one\r\n", " two\r\n\r\n", NULL},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n", " chunked\r\n\r\n0\r\n\r\n", NULL},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n", " ", "chunked\r\n\r\n0\r\n\r\n"},
    };
    for (size_t i = 0; i < PD_ARRAY_LEN(split); i++) {
        cl_conn *c = cl_connect(fx->port);
        for (size_t k = 0; k < 3 && split[i][k]; k++) {
            cl_sends(c, split[i][k]);
            msleep(30);
        }
        if (cl_record(fx, c, 0) == 0)
            fx->eof[fx->nr - 1] = cl_wait_close(c);
        cl_free(c);
    }
}

static void test_parse_errors_400_and_close(void **state)
{
    (void)state;
    fixture *fx = run(cl_smuggling, NULL);
    assert_int_equal(fx->nr, (int)PD_ARRAY_LEN(smuggling) + 3);
    for (size_t i = 0; i < PD_ARRAY_LEN(smuggling) + 3; i++) {
        assert_int_equal(fx->r[i].status, 400);
        assert_string_equal(fx->r[i].body, "{\"error\":\"Bad request\"}");
        assert_true(fx->eof[i]);
    }
    assert_int_equal(fx->handled, 0);
    done(fx);
}

static void cl_timeouts(fixture *fx)
{
    /* slowloris: a request that never completes gets 408, then close */
    cl_conn *c = cl_connect(fx->port);
    cl_sends(c, "GET /hello HTTP/1.1\r\nHost: x\r\n");
    msleep(100);
    cl_sends(c, "X-Slow: 1\r\n");
    if (cl_record(fx, c, 0) == 0)
        fx->eof[0] = cl_wait_close(c);
    cl_free(c);
    /* idle keep-alive connection: closed without an answer */
    c = cl_connect(fx->port);
    cl_sends(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    cl_record(fx, c, 0);
    fx->eof[1] = cl_wait_close(c);
    cl_free(c);
    /* connected but silent: closed too */
    c = cl_connect(fx->port);
    fx->eof[2] = cl_wait_close(c);
    cl_free(c);
}

static void test_request_and_idle_timeouts(void **state)
{
    (void)state;
    pd_http_limits l;
    pd_http_limits_default(&l);
    l.request_timeout_ms = 250;
    l.idle_timeout_ms = 150;
    fixture *fx = run(cl_timeouts, &l);
    assert_int_equal(fx->nr, 2);
    assert_int_equal(fx->r[0].status, 408);
    assert_true(fx->eof[0]);
    assert_int_equal(fx->r[1].status, 200);
    assert_true(fx->eof[1]);
    assert_true(fx->eof[2]);
    done(fx);
}

static void cl_disconnect_pending(fixture *fx)
{
    cl_conn *c = cl_connect(fx->port);
    cl_sends(c, "GET /async?ms=150 HTTP/1.1\r\nHost: x\r\n\r\n"
                "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    msleep(30);
    cl_free(c); /* gone before the answer */
    msleep(300); /* let the handler answer into the void */
}

static void test_peer_disconnects_while_pending(void **state)
{
    (void)state;
    fixture *fx = run(cl_disconnect_pending, NULL);
    /* A close looks like a half-close (a FIN either way), so both requests
     * are handled; the answers go nowhere and nothing is left behind. */
    assert_int_equal(fx->handled, 2);
    assert_int_equal(fx->responded_async, 1);
    assert_int_equal(fx->conns_at_done, 0);
    done(fx); /* LeakSanitizer checks the conn was freed */
}

static void cl_free_while_pending(fixture *fx)
{
    cl_conn *c = cl_connect(fx->port);
    cl_sends(c, "GET /async?ms=200 HTTP/1.1\r\nHost: x\r\n\r\n");
    msleep(50);
    fx->flag[0] = 1;
    /* returning frees the server while the request is pending; the handler
     * answers later and that frees the conn */
    fx->flag[1] = c->fd;
    free(c); /* fd closed by the test after the loop ends */
}

static void test_server_free_while_pending(void **state)
{
    (void)state;
    fixture *fx = run(cl_free_while_pending, NULL);
    assert_int_equal(fx->handled, 1);
    assert_int_equal(fx->responded_async, 1);
    close(fx->flag[1]);
    done(fx);
}

static void cl_upgrade(fixture *fx)
{
    cl_conn *c = cl_connect(fx->port);
    cl_sends(c, "GET /upgrade HTTP/1.1\r\nHost: x\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n"
                "HELLO");
    /* read everything until the detached stream is closed by its new owner */
    for (;;) {
        ssize_t n = cl_fill(c);
        if (n <= 0)
            break;
    }
    memcpy(fx->raw, c->buf, c->len);
    fx->raw_len = c->len;
    cl_free(c);
    /* a response still being written when the next request detaches */
    c = cl_connect(fx->port);
    cl_sends(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                "GET /upgrade HTTP/1.1\r\nHost: x\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n");
    if (cl_record(fx, c, 0) == 0)
        fx->flag[0] = 1;
    cl_wait_close(c);
    cl_free(c);
    /* an Upgrade the handler refuses: answered, then closed */
    c = cl_connect(fx->port);
    cl_sends(c, "GET /nope HTTP/1.1\r\nHost: x\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n");
    if (cl_record(fx, c, 0) == 0)
        fx->eof[fx->nr - 1] = cl_wait_close(c);
    cl_free(c);
}

static void test_upgrade_detach_with_leftover(void **state)
{
    (void)state;
    fixture *fx = run(cl_upgrade, NULL);
    assert_true(fx->detach_ok);
    assert_int_equal(fx->leftover_len, 5);
    assert_memory_equal(fx->leftover, "HELLO", 5);
    fx->raw[fx->raw_len] = '\0';
    assert_non_null(strstr(fx->raw, "HTTP/1.1 101 Switching Protocols\r\n"));
    /* the 101 comes first, then what the new owner wrote */
    const char *tail = strstr(fx->raw, "\r\n\r\n");
    assert_non_null(tail);
    assert_string_equal(tail + 4, "left=HELLO\n");
    assert_int_equal(fx->nr, 2);
    assert_true(fx->flag[0]);
    assert_string_equal(fx->r[0].body, "hello");
    assert_int_equal(fx->r[1].status, 404);
    assert_true(fx->eof[1]);
    done(fx);
}

static void cl_late_upgrade(fixture *fx)
{
    /* bytes that arrive while the upgrade is pending are handed over too */
    cl_conn *c = cl_connect(fx->port);
    cl_sends(c, "GET /late-upgrade HTTP/1.1\r\nHost: x\r\nUpgrade: t\r\nConnection: upgrade\r\n\r\nEARLY");
    msleep(30);
    cl_sends(c, "LATE");
    for (;;)
        if (cl_fill(c) <= 0)
            break;
    memcpy(fx->raw, c->buf, c->len);
    fx->raw_len = c->len;
    cl_free(c);
}

static void test_upgrade_late_detach_keeps_bytes(void **state)
{
    (void)state;
    fixture *fx = run(cl_late_upgrade, NULL);
    assert_true(fx->detach_ok);
    assert_int_equal(fx->leftover_len, 9);
    assert_memory_equal(fx->leftover, "EARLYLATE", 9);
    fx->raw[fx->raw_len] = '\0';
    assert_string_equal(fx->raw, "HTTP/1.1 101 Switching Protocols\r\n\r\n");
    done(fx);
}

static void cl_late_upgrade_gone(fixture *fx)
{
    cl_conn *c = cl_connect(fx->port);
    cl_sends(c, "GET /late-upgrade HTTP/1.1\r\nHost: x\r\nUpgrade: t\r\nConnection: upgrade\r\n\r\n");
    msleep(20);
    cl_free(c);
    msleep(200);
}

static void test_upgrade_detach_after_peer_left(void **state)
{
    (void)state;
    fixture *fx = run(cl_late_upgrade_gone, NULL);
    assert_int_equal(fx->responded_async, 1);
    assert_false(fx->detach_ok); /* nothing to hand over; the conn is freed */
    assert_int_equal(fx->conns_at_done, 0);
    done(fx);
}

/* After a close, the server frees the slot once its loop has seen the
 * close; on a busy machine that can take a while. Ask until a connection
 * gets in (each refusal is an immediate answer), and record that answer. */
static void cl_get_when_free(fixture *fx)
{
    for (int i = 0; i < 200; i++) {
        cl_conn *c = cl_connect(fx->port);
        resp r;
        cl_sends(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        int got = cl_response(c, &r, 0) == 0;
        if (got && r.status == 200) {
            fx->r[fx->nr++] = r;
            cl_free(c);
            return;
        }
        cl_free(c);
        msleep(50);
    }
}

/* A client that shuts its sending side after its requests gets every
 * answer, then the server's close (RFC 9112 §9.6 allows the half-close). */
static void cl_half_close(fixture *fx)
{
    cl_conn *c = cl_connect(fx->port);
    cl_sends(c, "GET /async?ms=100 HTTP/1.1\r\nHost: x\r\n\r\n");
    shutdown(c->fd, SHUT_WR);
    cl_record(fx, c, 0);
    fx->eof[0] = cl_wait_close(c);
    cl_free(c);
    /* pipelined behind a pending request, then the half-close */
    c = cl_connect(fx->port);
    cl_sends(c, "GET /async?ms=100 HTTP/1.1\r\nHost: x\r\n\r\n"
                "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    shutdown(c->fd, SHUT_WR);
    cl_record(fx, c, 0);
    cl_record(fx, c, 0);
    fx->eof[1] = cl_wait_close(c);
    cl_free(c);
    /* half-closed in the middle of a request: nothing to answer, closed */
    c = cl_connect(fx->port);
    cl_sends(c, "GET /hello HTTP/1.1\r\nHo");
    shutdown(c->fd, SHUT_WR);
    fx->eof[2] = cl_wait_close(c);
    fx->flag[0] = (int)c->len;
    cl_free(c);
}

static void test_half_close_gets_its_answer(void **state)
{
    (void)state;
    fixture *fx = run(cl_half_close, NULL);
    assert_int_equal(fx->nr, 3);
    assert_int_equal(fx->r[0].status, 200);
    assert_string_equal(fx->r[0].body, "async100");
    assert_non_null(strstr(fx->r[0].head, "Connection: close"));
    assert_string_equal(fx->r[1].body, "async100");
    assert_non_null(strstr(fx->r[1].head, "Connection: keep-alive"));
    assert_string_equal(fx->r[2].body, "hello");
    assert_non_null(strstr(fx->r[2].head, "Connection: close"));
    assert_true(fx->eof[0]);
    assert_true(fx->eof[1]);
    assert_true(fx->eof[2]);
    assert_int_equal(fx->flag[0], 0);
    assert_int_equal(fx->conns_at_done, 0);
    done(fx);
}

/* Per-host cap: connections beyond it are refused with 429 at once, others
 * are unaffected, and a closed connection frees its place. */
static int per_ip_exempt; /* cl_per_ip: the server trusts the client's address */

static void cl_per_ip(fixture *fx)
{
    cl_conn *a = cl_connect(fx->port);
    cl_conn *b = cl_connect(fx->port);
    cl_sends(a, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    cl_record(fx, a, 0);
    cl_sends(b, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    cl_record(fx, b, 0);
    cl_conn *c = cl_connect(fx->port);
    if (per_ip_exempt) {
        cl_sends(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        cl_record(fx, c, 0);
    } else {
        cl_record(fx, c, 0); /* the refusal, unasked */
        fx->eof[0] = cl_wait_close(c);
    }
    cl_free(c);
    cl_free(a);
    cl_get_when_free(fx); /* a's place is free again */
    cl_free(b);
}

static void test_per_ip_cap(void **state)
{
    (void)state;
    pd_http_limits l;
    pd_http_limits_default(&l);
    l.max_conns_per_ip = 2;
    fixture *fx = run(cl_per_ip, &l);
    assert_int_equal(fx->nr, 4);
    assert_int_equal(fx->r[0].status, 200);
    assert_int_equal(fx->r[1].status, 200);
    assert_int_equal(fx->r[2].status, 429);
    assert_string_equal(fx->r[2].body, "{\"error\":\"Too many connections from this address\"}");
    assert_true(fx->eof[0]);
    assert_int_equal(fx->r[3].status, 200);
    assert_int_equal(fx->handled, 3);
    done(fx);

    /* A trusted proxy's connections are not counted per address. */
    const char *err = NULL;
    pd_cidr_list *trusted = pd_cidr_list_create("127.0.0.1/32", &err);
    assert_non_null(trusted);
    l.trusted = trusted;
    per_ip_exempt = 1;
    fx = run(cl_per_ip, &l);
    per_ip_exempt = 0;
    assert_int_equal(fx->nr, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(fx->r[i].status, 200);
    assert_int_equal(fx->handled, 4);
    done(fx);
    pd_cidr_list_free(trusted);
}

/* Keep-alive ends once a connection is older than max_conn_age_ms, however
 * often it asks. */
static void cl_aged(fixture *fx)
{
    cl_conn *c = cl_connect(fx->port);
    for (int i = 0; i < 200 && fx->nr < MAX_RESP; i++) {
        cl_sends(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        if (cl_record(fx, c, 0) != 0)
            break;
        if (strstr(fx->r[fx->nr - 1].head, "Connection: close")) {
            fx->eof[0] = cl_wait_close(c);
            break;
        }
        msleep(20);
    }
    cl_free(c);
}

static void test_keepalive_age_limit(void **state)
{
    (void)state;
    pd_http_limits l;
    pd_http_limits_default(&l);
    l.max_conn_age_ms = 100;
    fixture *fx = run(cl_aged, &l);
    assert_true(fx->nr >= 1);
    assert_non_null(strstr(fx->r[fx->nr - 1].head, "Connection: close"));
    assert_true(fx->eof[0]);
    done(fx);
}

static void cl_maxconn(fixture *fx)
{
    cl_conn *a = cl_connect(fx->port);
    cl_conn *b = cl_connect(fx->port);
    cl_sends(a, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    cl_record(fx, a, 0);
    cl_sends(b, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    cl_record(fx, b, 0);
    cl_conn *c = cl_connect(fx->port);
    cl_record(fx, c, 0);
    fx->eof[0] = cl_wait_close(c); /* over the cap: accepted, refused and closed */
    cl_free(c);
    cl_sends(a, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    cl_record(fx, a, 0);
    cl_free(a);
    cl_free(b);
    cl_get_when_free(fx); /* slots are free again */
}

static void test_max_connections(void **state)
{
    (void)state;
    pd_http_limits l;
    pd_http_limits_default(&l);
    l.max_connections = 2;
    fixture *fx = run(cl_maxconn, &l);
    assert_int_equal(fx->nr, 5);
    assert_true(fx->eof[0]);
    assert_int_equal(fx->r[2].status, 503); /* the refusal, unasked */
    for (int i = 0; i < 5; i++)
        if (i != 2)
            assert_int_equal(fx->r[i].status, 200);
    done(fx);
}

/* ---------- pure functions and server setup ---------- */

static void test_query_param_and_status_text(void **state)
{
    (void)state;
    pd_http_request req;
    pd_slice v;
    memset(&req, 0, sizeof req);
    req.query = pd_slice_cstr("EIO=4&transport=websocket&empty=&flag&x=a=b");
    assert_int_equal(pd_http_query_param(&req, "EIO", &v), PD_OK);
    assert_true(pd_slice_eq(v, "4"));
    assert_int_equal(pd_http_query_param(&req, "transport", &v), PD_OK);
    assert_true(pd_slice_eq(v, "websocket"));
    assert_int_equal(pd_http_query_param(&req, "empty", &v), PD_OK);
    assert_int_equal(v.len, 0);
    assert_int_equal(pd_http_query_param(&req, "flag", &v), PD_OK);
    assert_int_equal(v.len, 0);
    assert_int_equal(pd_http_query_param(&req, "x", &v), PD_OK);
    assert_true(pd_slice_eq(v, "a=b"));
    assert_int_equal(pd_http_query_param(&req, "EI", &v), PD_ERR);
    assert_int_equal(pd_http_query_param(&req, "missing", &v), PD_ERR);
    req.query = pd_slice_make("", 0);
    assert_int_equal(pd_http_query_param(&req, "EIO", &v), PD_ERR);

    int codes[] = {101, 200, 204, 400, 403, 404, 405, 408, 413, 415, 426, 429, 431, 500, 503};
    for (size_t i = 0; i < PD_ARRAY_LEN(codes); i++)
        assert_string_not_equal(pd_http_status_text(codes[i]), "Unknown");
    assert_string_equal(pd_http_status_text(404), "Not Found");
    assert_string_equal(pd_http_status_text(431), "Request Header Fields Too Large");
}

static void noop_handler(pd_http_conn *conn, const pd_http_request *req, void *data)
{
    (void)req;
    (void)data;
    pd_http_respond(conn, 204, NULL, NULL, NULL, 0, 0);
}

static void test_reuseport_and_addresses(void **state)
{
    (void)state;
    uv_loop_t loop;
    const char *err = NULL;
    uv_loop_init(&loop);
    pd_http_server *a = pd_http_server_create(&loop, "127.0.0.1", 0, NULL, noop_handler, NULL, &err);
    assert_non_null(a);
    int port = pd_http_server_port(a);
    /* a second listener on the same port (SO_REUSEPORT) */
    pd_http_server *b = pd_http_server_create(&loop, "127.0.0.1", port, NULL, noop_handler, NULL, &err);
    assert_non_null(b);
    assert_int_equal(pd_http_server_port(b), port);
    pd_http_server *c = pd_http_server_create(&loop, "0.0.0.0", 0, NULL, noop_handler, NULL, &err);
    assert_non_null(c);
    /* IPv6 may be unavailable in a sandbox; only a clean failure is required */
    pd_http_server *d = pd_http_server_create(&loop, "::", 0, NULL, noop_handler, NULL, &err);
    pd_http_server *e = pd_http_server_create(&loop, "not-an-ip", 0, NULL, noop_handler, NULL, &err);
    assert_null(e);
    assert_non_null(err);
    pd_http_server_stop_accepting(a);
    pd_http_server_free(a);
    pd_http_server_free(b);
    pd_http_server_free(c);
    pd_http_server_free(d);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    /* As in the services: a write to a peer that left is an error, not a
     * signal that ends the process. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_param_and_status_text),
        cmocka_unit_test(test_reuseport_and_addresses),
        cmocka_unit_test(test_get_keepalive_two_requests),
        cmocka_unit_test(test_pipelined_answered_in_order),
        cmocka_unit_test(test_pipelined_many_with_backpressure),
        cmocka_unit_test(test_post_body_length_and_chunked),
        cmocka_unit_test(test_async_response_from_timer),
        cmocka_unit_test(test_headers_trimmed_and_head_without_body),
        cmocka_unit_test(test_http10_and_connection_close),
        cmocka_unit_test(test_limits_431_and_413),
        cmocka_unit_test(test_parse_errors_400_and_close),
        cmocka_unit_test(test_request_and_idle_timeouts),
        cmocka_unit_test(test_peer_disconnects_while_pending),
        cmocka_unit_test(test_server_free_while_pending),
        cmocka_unit_test(test_upgrade_detach_with_leftover),
        cmocka_unit_test(test_upgrade_late_detach_keeps_bytes),
        cmocka_unit_test(test_upgrade_detach_after_peer_left),
        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_half_close_gets_its_answer),
        cmocka_unit_test(test_per_ip_cap),
        cmocka_unit_test(test_keepalive_age_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
