/* One client WebSocket connection speaking Engine.IO v4 / Socket.IO v5, as
 * socket.io-client does over the websocket transport:
 *   GET /socket.io/?EIO=4&transport=websocket (upgrade) → 101
 *   ← 0{"sid":…}      → 40       ← 40{"sid":"<socket id>"}
 *   ← 2 (ping)        → 3 (pong)
 * Client frames are masked (RFC 6455 §5.3); server frames are not.
 *
 * Input is read into the run's shared buffer and parsed in place; only the
 * tail of a frame cut by a read is kept per connection. Output is appended
 * to a per-connection buffer and flushed once per loop turn, with
 * uv_try_write first so that most flushes cost one syscall and no copy. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "privydrop/pd_wsscan.h"
#include "sigload.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

static void conn_fail(sl_conn *c, int err);
static void on_closed(uv_handle_t *h);

/* ---- buffers ------------------------------------------------------------ */

static int buf_reserve(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    char *p = realloc(*buf, n);
    if (!p)
        return -1;
    *buf = p;
    *cap = n;
    return 0;
}

static void mark_dirty(sl_conn *c)
{
    if (c->dirty)
        return;
    c->dirty = 1;
    c->dirty_next = c->run->dirty;
    c->run->dirty = c;
}

static void raw_append(sl_conn *c, const char *data, size_t len)
{
    if (buf_reserve(&c->tx, &c->tx_cap, c->tx_len + len) != 0) {
        conn_fail(c, UV_ENOMEM);
        return;
    }
    memcpy(c->tx + c->tx_len, data, len);
    c->tx_len += len;
    mark_dirty(c);
}

/* A masked frame of `op` around data. */
static void frame_append(sl_conn *c, int op, const char *data, size_t len)
{
    size_t hdr = 2 + (len >= 126 ? (len > 65535 ? 8 : 2) : 0) + 4;
    if (buf_reserve(&c->tx, &c->tx_cap, c->tx_len + hdr + len) != 0) {
        conn_fail(c, UV_ENOMEM);
        return;
    }
    uint8_t *p = (uint8_t *)c->tx + c->tx_len;
    *p++ = (uint8_t)(0x80 | op);
    if (len < 126) {
        *p++ = (uint8_t)(0x80 | len);
    } else if (len <= 65535) {
        *p++ = 0x80 | 126;
        *p++ = (uint8_t)(len >> 8);
        *p++ = (uint8_t)len;
    } else {
        *p++ = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            *p++ = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint32_t key32 = (uint32_t)sl_rand(c->run);
    uint8_t key[4];
    memcpy(key, &key32, 4);
    memcpy(p, key, 4);
    p += 4;
    memcpy(p, data, len);
    pd_ws_unmask(p, len, key); /* masking and unmasking are the same XOR */
    c->tx_len += hdr + len;
    mark_dirty(c);
}

void sl_conn_send(sl_conn *c, const char *pkt, size_t len)
{
    if (c->state < SL_C_EIO || c->state == SL_C_CLOSING)
        return;
    frame_append(c, 1, pkt, len);
}

/* ---- writing -------------------------------------------------------------- */

static void on_write(uv_write_t *req, int status)
{
    sl_conn *c = req->data;
    c->writing = 0;
    free(c->wbuf);
    c->wbuf = NULL;
    if (c->state == SL_C_CLOSING)
        return;
    if (status < 0) {
        conn_fail(c, status);
        return;
    }
    if (c->tx_len)
        mark_dirty(c);
}

static void conn_flush(sl_conn *c)
{
    if (c->writing || c->tx_len == 0 || c->state == SL_C_CLOSING || c->state == SL_C_CONNECTING)
        return;
    uv_buf_t b = uv_buf_init(c->tx, (unsigned)c->tx_len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)c->tx_len) {
        c->tx_len = 0;
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        conn_fail(c, n);
        return;
    }
    size_t done = n > 0 ? (size_t)n : 0;
    /* Hand the rest to a queued write; the tx buffer stays for new frames. */
    c->wbuf = malloc(c->tx_len - done);
    if (!c->wbuf) {
        conn_fail(c, UV_ENOMEM);
        return;
    }
    memcpy(c->wbuf, c->tx + done, c->tx_len - done);
    b = uv_buf_init(c->wbuf, (unsigned)(c->tx_len - done));
    c->tx_len = 0;
    c->wreq.data = c;
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc != 0) {
        free(c->wbuf);
        c->wbuf = NULL;
        conn_fail(c, rc);
        return;
    }
    c->writing = 1;
}

void sl_flush_dirty(sl_run *run)
{
    while (run->dirty) {
        sl_conn *c = run->dirty;
        run->dirty = c->dirty_next;
        c->dirty_next = NULL;
        c->dirty = 0;
        conn_flush(c);
    }
}

/* ---- closing ---------------------------------------------------------------- */

static void unlink_dirty(sl_conn *c)
{
    if (!c->dirty)
        return;
    sl_conn **pp = &c->run->dirty;
    while (*pp && *pp != c)
        pp = &(*pp)->dirty_next;
    if (*pp)
        *pp = c->dirty_next;
    c->dirty = 0;
    c->dirty_next = NULL;
}

static void on_closed(uv_handle_t *h)
{
    sl_conn *c = h->data;
    free(c->rx);
    free(c->tx);
    c->rx = c->tx = NULL;
    c->rx_len = c->rx_cap = c->tx_len = c->tx_cap = 0;
    c->state = SL_C_IDLE;
    if (c->run->ops->on_closed)
        c->run->ops->on_closed(c, c->err);
}

static void conn_close_now(sl_conn *c)
{
    if (c->state == SL_C_CLOSING || c->state == SL_C_IDLE)
        return;
    c->state = SL_C_CLOSING;
    unlink_dirty(c);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void conn_fail(sl_conn *c, int err)
{
    if (!c->err)
        c->err = err ? err : UV_EPROTO;
    conn_close_now(c);
}

void sl_conn_close(sl_conn *c)
{
    if (c->state >= SL_C_EIO && c->state < SL_C_CLOSING && !c->writing) {
        /* Close frame 1000, written at once (best effort) before the socket goes. */
        static const char code[2] = {0x03, (char)0xE8};
        frame_append(c, 8, code, 2);
        unlink_dirty(c);
        uv_buf_t b = uv_buf_init(c->tx, (unsigned)c->tx_len);
        uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        c->tx_len = 0;
    }
    conn_close_now(c);
}

/* ---- Engine.IO / Socket.IO ------------------------------------------------------ */

static void on_text(sl_conn *c, const char *p, size_t n)
{
    sl_run *run = c->run;
    if (n == 0)
        return;
    switch (p[0]) {
    case '0': /* open */
        if (c->state == SL_C_EIO) {
            c->state = SL_C_SIO;
            sl_conn_send(c, "40", 2);
        }
        return;
    case '2': /* ping → pong with the same data */
        run->pings++;
        {
            char buf[64];
            size_t k = n < sizeof(buf) ? n : sizeof(buf);
            memcpy(buf, p, k);
            buf[0] = '3';
            sl_conn_send(c, buf, k);
        }
        return;
    case '1':
        run->closed_by_server++;
        conn_fail(c, UV_ECONNRESET);
        return;
    case '4':
        break;
    default:
        return;
    }
    if (n < 2)
        return;
    if (p[1] == '2') { /* event: 42["name",...] */
        if (n < 6 || p[2] != '[' || p[3] != '"')
            return;
        const char *name = p + 4;
        const char *q = memchr(name, '"', n - 4);
        if (!q)
            return;
        if (run->ops->on_event)
            run->ops->on_event(c, name, (size_t)(q - name), p, n);
        return;
    }
    if (p[1] == '0' && c->state == SL_C_SIO) { /* 40{"sid":"…"} */
        const char *s = memmem(p, n, "\"sid\":\"", 7);
        if (s) {
            s += 7;
            const char *e = memchr(s, '"', n - (size_t)(s - p));
            size_t k = e ? (size_t)(e - s) : 0;
            if (k >= sizeof(c->sid))
                k = sizeof(c->sid) - 1;
            memcpy(c->sid, s, k);
            c->sid[k] = '\0';
        }
        c->state = SL_C_READY;
        run->connects_ok++;
        if (run->ops->on_ready)
            run->ops->on_ready(c);
        return;
    }
    if (p[1] == '1' || p[1] == '4') { /* disconnect / connect error */
        run->closed_by_server++;
        conn_fail(c, UV_ECONNREFUSED);
    }
}

/* Parse as many whole frames as `data` holds; returns bytes consumed, or
 * (size_t)-1 after closing the connection. */
static size_t parse_frames(sl_conn *c, const char *data, size_t len)
{
    size_t off = 0;
    while (len - off >= 2) {
        const uint8_t *p = (const uint8_t *)data + off;
        size_t avail = len - off;
        int op = p[0] & 0x0f;
        int masked = p[1] & 0x80;
        uint64_t plen = p[1] & 0x7f;
        size_t hdr = 2;
        if (plen == 126) {
            if (avail < 4)
                break;
            plen = ((uint64_t)p[2] << 8) | p[3];
            hdr = 4;
        } else if (plen == 127) {
            if (avail < 10)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = (plen << 8) | p[2 + i];
            hdr = 10;
        }
        if (masked)
            hdr += 4;
        if (plen > (1u << 24)) {
            c->run->protocol_errors++;
            conn_fail(c, UV_E2BIG);
            return (size_t)-1;
        }
        if (avail < hdr + plen)
            break;
        char *payload = (char *)p + hdr;
        if (masked) {
            const uint8_t *key = p + hdr - 4;
            for (uint64_t i = 0; i < plen; i++)
                payload[i] ^= (char)key[i & 3];
        }
        off += hdr + (size_t)plen;
        if (!(p[0] & 0x80) || op == 0) {
            /* Neither stack fragments its messages; we do not reassemble. */
            c->run->protocol_errors++;
            conn_fail(c, UV_EPROTO);
            return (size_t)-1;
        }
        switch (op) {
        case 1:
            on_text(c, payload, (size_t)plen);
            break;
        case 8:
            c->run->closed_by_server++;
            conn_fail(c, UV_ECONNRESET);
            return (size_t)-1;
        case 9:
            frame_append(c, 10, payload, (size_t)plen);
            break;
        case 10:
            break;
        default:
            c->run->protocol_errors++;
            conn_fail(c, UV_EPROTO);
            return (size_t)-1;
        }
        if (c->state == SL_C_CLOSING || c->state == SL_C_IDLE)
            return (size_t)-1;
    }
    return off;
}

/* The 101 answer: returns bytes of the head, 0 if incomplete, -1 on refusal. */
static long parse_upgrade(sl_conn *c, const char *data, size_t len)
{
    const char *end = memmem(data, len, "\r\n\r\n", 4);
    if (!end)
        return len > 8192 ? -1 : 0;
    if (len < 12 || memcmp(data, "HTTP/1.1 101", 12) != 0)
        return -1;
    c->state = SL_C_EIO;
    return (long)(end + 4 - data);
}

static void consume(sl_conn *c, const char *data, size_t len)
{
    size_t off = 0;
    if (c->state == SL_C_UPGRADING) {
        long n = parse_upgrade(c, data, len);
        if (n < 0) {
            /* An HTTP answer other than 101 (a worker shutting down or at a
             * limit answers 503) is a refusal; anything else is garbage. */
            if (len >= 9 && memcmp(data, "HTTP/1.1 ", 9) == 0)
                c->run->upgrades_refused++;
            else
                c->run->protocol_errors++;
            conn_fail(c, UV_ECONNREFUSED);
            return;
        }
        if (n == 0) {
            if (data != c->rx) { /* keep for the next read */
                if (buf_reserve(&c->rx, &c->rx_cap, len) == 0) {
                    memcpy(c->rx, data, len);
                    c->rx_len = len;
                }
            } else {
                c->rx_len = len;
            }
            return;
        }
        off = (size_t)n;
    }
    size_t used = parse_frames(c, data + off, len - off);
    if (used == (size_t)-1)
        return;
    off += used;
    size_t rest = len - off;
    if (rest == 0) {
        c->rx_len = 0;
        if (c->rx_cap > 4096) { /* do not hold a big buffer on an idle socket */
            free(c->rx);
            c->rx = NULL;
            c->rx_cap = 0;
        }
        return;
    }
    if (data == c->rx) {
        memmove(c->rx, c->rx + off, rest);
    } else {
        if (buf_reserve(&c->rx, &c->rx_cap, rest) != 0) {
            conn_fail(c, UV_ENOMEM);
            return;
        }
        memcpy(c->rx, data + off, rest);
    }
    c->rx_len = rest;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    sl_conn *c = h->data;
    buf->base = (char *)c->run->rbuf;
    buf->len = sizeof(c->run->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    sl_conn *c = s->data;
    if (nread < 0) {
        if (c->state != SL_C_CLOSING)
            c->run->closed_by_server++;
        conn_fail(c, (int)nread);
        return;
    }
    if (nread == 0 || c->state == SL_C_CLOSING)
        return;
    if (c->rx_len == 0) {
        consume(c, buf->base, (size_t)nread);
        return;
    }
    if (buf_reserve(&c->rx, &c->rx_cap, c->rx_len + (size_t)nread) != 0) {
        conn_fail(c, UV_ENOMEM);
        return;
    }
    memcpy(c->rx + c->rx_len, buf->base, (size_t)nread);
    consume(c, c->rx, c->rx_len + (size_t)nread);
}

/* ---- connecting -------------------------------------------------------------------- */

static void b64(const uint8_t *in, size_t n, char *out)
{
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = A[(v >> 18) & 63];
        out[o++] = A[(v >> 12) & 63];
        out[o++] = i + 1 < n ? A[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? A[v & 63] : '=';
    }
    out[o] = '\0';
}

static void on_connect(uv_connect_t *req, int status)
{
    sl_conn *c = req->data;
    if (c->state == SL_C_CLOSING)
        return;
    if (status < 0) {
        c->run->connects_failed++;
        conn_fail(c, status);
        return;
    }
    sl_run *run = c->run;
    uv_tcp_nodelay(&c->tcp, 1);
    uint8_t key[16];
    for (int i = 0; i < 2; i++) {
        uint64_t r = sl_rand(run);
        memcpy(key + 8 * i, &r, 8);
    }
    char k64[32];
    b64(key, 16, k64);
    char xff[64] = "";
    if (run->xff) {
        /* Distinct client addresses for the join limit, from 10.x.y.z
         * strings in a header only (no traffic goes there). */
        unsigned v = (unsigned)c->index + 1;
        snprintf(xff, sizeof(xff), "X-Forwarded-For: 10.%u.%u.%u\r\n", (v >> 16) & 255, (v >> 8) & 255,
                 v & 255);
    }
    char req_buf[512];
    int n = snprintf(req_buf, sizeof(req_buf),
                     "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: %s\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     run->target_names[c->target], k64, xff);
    c->state = SL_C_UPGRADING;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_fail(c, UV_EIO);
        return;
    }
    raw_append(c, req_buf, (size_t)n);
}

/* A TCP socket bound to the next source address with the port left to
 * connect(), so each (source, destination) pair has its own port range. */
static int open_socket(sl_run *run)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (run->congestion) {
        /* The generator's own sockets only; failure leaves the default. */
        setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, run->congestion, (socklen_t)strlen(run->congestion));
    }
    if (run->src_count > 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        struct sockaddr_in src;
        memset(&src, 0, sizeof(src));
        src.sin_family = AF_INET;
        uint32_t base = ntohl(run->src_base.s_addr);
        src.sin_addr.s_addr = htonl(base + (run->src_next++ % (unsigned)run->src_count));
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
            int e = -errno;
            close(fd);
            return e;
        }
    }
    return fd;
}

int sl_conn_start(sl_conn *c)
{
    sl_run *run = c->run;
    if (c->state != SL_C_IDLE)
        return UV_EBUSY;
    c->err = 0;
    c->sid[0] = '\0';
    c->joined = 0;
    c->writing = 0;
    c->t_start = uv_hrtime();
    uv_tcp_init(run->loop, &c->tcp);
    c->tcp.data = c;
    int fd = open_socket(run);
    int rc = fd < 0 ? fd : uv_tcp_open(&c->tcp, fd);
    if (rc != 0 && fd >= 0)
        close(fd);
    if (rc == 0) {
        c->creq.data = c;
        rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&run->targets[c->target], on_connect);
    }
    c->state = SL_C_CONNECTING;
    if (rc != 0) {
        run->connects_failed++;
        conn_fail(c, rc);
        return rc;
    }
    return 0;
}
