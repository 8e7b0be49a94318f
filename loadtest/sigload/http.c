/* HTTP/1.1 keep-alive client connections: one request outstanding per
 * connection, responses framed by Content-Length (both the C room API and
 * Express send it for JSON). Anything else closes the connection. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sigload.h"

#define SL_HTTP_MAX_BODY (16L << 20)

static void http_on_closed(uv_handle_t *h)
{
    sl_http *c = h->data;
    free(c->rx);
    c->rx = NULL;
    c->rx_len = c->rx_cap = 0;
}

void sl_http_close(sl_http *c)
{
    if (c->closed)
        return;
    c->closed = 1;
    c->connected = 0;
    uv_close((uv_handle_t *)&c->tcp, http_on_closed);
}

static void http_fail(sl_http *c)
{
    int was_busy = c->busy;
    c->busy = 0;
    sl_http_close(c);
    if (was_busy && c->done)
        c->done(c, -1, NULL, 0);
    if (c->dead)
        c->dead(c);
}

/* Returns the length of a complete response at the front of rx, 0 if more
 * is needed, -1 if it cannot be framed. */
static long response_length(const char *p, size_t n, int *status, size_t *body_off, size_t *body_len)
{
    const char *end = memmem(p, n, "\r\n\r\n", 4);
    if (!end)
        return n > 16384 ? -1 : 0;
    if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0)
        return -1;
    *status = atoi(p + 9);
    size_t head = (size_t)(end + 4 - p);
    long clen = -1;
    const char *line = memchr(p, '\n', head);
    while (line && line + 1 < end) {
        line++;
        if ((size_t)(end - line) > 15 && strncasecmp(line, "content-length:", 15) == 0)
            clen = strtol(line + 15, NULL, 10);
        else if ((size_t)(end - line) > 18 && strncasecmp(line, "transfer-encoding:", 18) == 0)
            return -1;
        line = memchr(line, '\n', (size_t)(end - line));
    }
    if (clen < 0)
        clen = 0;
    /* A body this large is no answer either stack gives: a broken peer. */
    if (clen > SL_HTTP_MAX_BODY)
        return -1;
    if (n < head + (size_t)clen)
        return 0;
    *body_off = head;
    *body_len = (size_t)clen;
    return (long)(head + (size_t)clen);
}

static void http_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    sl_http *c = h->data;
    if (c->rx_cap - c->rx_len < 4096) {
        size_t cap = c->rx_cap ? c->rx_cap * 2 : 8192;
        char *p = realloc(c->rx, cap);
        if (!p) {
            buf->base = NULL;
            buf->len = 0;
            return;
        }
        c->rx = p;
        c->rx_cap = cap;
    }
    buf->base = c->rx + c->rx_len;
    buf->len = c->rx_cap - c->rx_len;
}

static void http_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    sl_http *c = s->data;
    if (nread < 0) {
        http_fail(c);
        return;
    }
    c->rx_len += (size_t)nread;
    for (;;) {
        int status = 0;
        size_t boff = 0, blen = 0;
        long n = response_length(c->rx, c->rx_len, &status, &boff, &blen);
        if (n < 0) {
            http_fail(c);
            return;
        }
        if (n == 0)
            return;
        c->busy = 0;
        if (c->done)
            c->done(c, status, c->rx + boff, blen);
        if (c->closed)
            return;
        memmove(c->rx, c->rx + n, c->rx_len - (size_t)n);
        c->rx_len -= (size_t)n;
        sl_http_kick(c);
    }
}

static void http_written(uv_write_t *req, int status)
{
    sl_http *c = req->data;
    if (status < 0 && !c->closed)
        http_fail(c);
}

void sl_http_kick(sl_http *c)
{
    if (!c->connected || c->busy || c->closed || !c->next)
        return;
    size_t n = c->next(c, c->wbuf, sizeof(c->wbuf));
    if (n == 0)
        return;
    c->busy = 1;
    uv_buf_t b = uv_buf_init(c->wbuf, (unsigned)n);
    int w = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (w == (int)n)
        return;
    if (w < 0 && w != UV_EAGAIN) {
        http_fail(c);
        return;
    }
    if (w > 0) {
        memmove(c->wbuf, c->wbuf + w, n - (size_t)w);
        b = uv_buf_init(c->wbuf, (unsigned)(n - (size_t)w));
    }
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, http_written) != 0)
        http_fail(c);
}

static void http_connected(uv_connect_t *req, int status)
{
    sl_http *c = req->data;
    if (c->closed)
        return;
    if (status < 0) {
        http_fail(c);
        return;
    }
    c->connected = 1;
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, http_alloc, http_read);
    sl_http_kick(c);
}

int sl_http_start(sl_http *c, const struct sockaddr_in *dst)
{
    c->closed = c->connected = c->busy = 0;
    uv_tcp_init(c->run->loop, &c->tcp);
    c->tcp.data = c;
    c->creq.data = c;
    int rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)dst, http_connected);
    if (rc != 0)
        sl_http_close(c);
    return rc;
}
