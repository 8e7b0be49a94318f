/* Direct links between workers for forwarded polling requests (peer.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "privydrop/pd_id.h"
#include "privydrop/pd_log.h"
#include "fwd.h"
#include "peer.h"

#define PEER_TOKEN_LEN PD_PEER_TOKEN_LEN
#define PEER_KEY_PREFIX "pd:peer:"
/* The record outlives three missed renewals. */
#define PEER_RECORD_TTL_MS 15000
#define PEER_RENEW_MS 5000
#define PEER_TICK_MS 1000
/* A connect, or a hello and its acknowledgement, must finish within this. */
#define PEER_SETUP_MS 2000
/* Retry a failed owner after this, doubling up to the maximum. */
#define PEER_BACKOFF_MIN_MS 500
#define PEER_BACKOFF_MAX_MS 30000
/* An outbound link unused this long is closed (its owner may be gone). */
#define PEER_IDLE_MS 120000
/* Inbound links (one per other worker, plus reconnections racing the
 * close of the old one) and owners we keep links to. */
#define PEER_MAX_IN 256
#define PEER_MAX_OUT 64
/* Frames before the hello is accepted are hellos only. */
#define PEER_HELLO_MAX 128
/* Bytes a link may hold unsent; past that messages go through Redis. */
#define PEER_QUEUE_MIN (4u << 20)
#define PEER_READ_CHUNK 65536
#define PEER_KEEPALIVE_S 30

enum { DIR_IN = 1, DIR_OUT };
/* In: HELLO → UP. Out: IDLE (no connection) → LOOKUP → CONNECTING → ACK → UP → IDLE. */
enum { ST_IDLE = 0, ST_LOOKUP, ST_CONNECTING, ST_ACK, ST_HELLO, ST_UP };

typedef struct peer_link {
    uv_tcp_t tcp;              /* valid while tcp_open */
    uv_connect_t creq;
    uv_write_t wreq;
    struct pd_peer *p;
    struct peer_link *prev, *next;
    int dir, state;
    int tcp_open;              /* handle initialised, close callback not yet run */
    int closing;               /* uv_close called */
    int dead;                  /* free when the handle is closed */
    char tag[PD_FWD_TAG_LEN + 1]; /* in: the forwarder's (from its hello); out: the owner's */
    char token[PEER_TOKEN_LEN + 1]; /* out: the owner's, from its record */
    uint64_t since;            /* when the current state began (monotonic ms) */
    uint64_t used;             /* out: last request sent */
    uint64_t retry_at;         /* out, IDLE: no new attempt before */
    uint64_t backoff;          /* out: the next wait after a failure */
    char *rbuf;                /* bytes read, not yet a whole frame */
    size_t rlen, rcap;
    char *pend;                /* frames waiting for the write in flight */
    size_t plen, pcap;
    char *fly;                 /* the write in flight */
    size_t flen, fcap;
    int writing;
    int dirty;                 /* in the flush list */
    struct peer_link *dirty_next;
} peer_link;

struct pd_peer {
    pd_worker *w;
    uv_tcp_t listener;
    uv_timer_t tick;
    int tick_init;             /* the tick's handle was initialised */
    int open_handles;          /* listener, tick, address lookup, open links: freed at 0 after close */
    peer_link *in, *out;       /* lists; newest first */
    peer_link *dirty;          /* links with frames queued this turn */
    uv_idle_t flush;           /* writes them once per loop turn */
    size_t n_in, n_out;
    size_t max_frame, max_queue;
    char token[PEER_TOKEN_LEN + 1];
    char addr[INET6_ADDRSTRLEN + 8]; /* "ip port" once known */
    int port;                  /* the listener's */
    int resolving;             /* the Redis host's address is being looked up */
    uv_getaddrinfo_t gai;
    uint64_t renewed;          /* last record SET sent (monotonic ms), 0 = never */
    int closing;
};

/* ---- links ---------------------------------------------------------------------- */

static void update_gauges(pd_peer *p)
{
    size_t in = 0, out = 0;
    for (peer_link *l = p->in; l; l = l->next)
        in += l->state == ST_UP;
    for (peer_link *l = p->out; l; l = l->next)
        out += l->state == ST_UP;
    pd_metric_set(p->w->m_peer_links, "in", (double)in);
    pd_metric_set(p->w->m_peer_links, "out", (double)out);
}

static void unlink_from(peer_link **head, peer_link *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        *head = l->next;
    if (l->next)
        l->next->prev = l->prev;
    l->prev = l->next = NULL;
}

static void push_front(peer_link **head, peer_link *l)
{
    l->prev = NULL;
    l->next = *head;
    if (*head)
        (*head)->prev = l;
    *head = l;
}

static void drop_buffers(peer_link *l)
{
    free(l->rbuf);
    free(l->pend);
    free(l->fly);
    l->rbuf = l->pend = l->fly = NULL;
    l->rlen = l->rcap = l->plen = l->pcap = l->flen = l->fcap = 0;
    l->writing = 0;
}

static void link_free(peer_link *l)
{
    drop_buffers(l);
    free(l);
}

/* An owner's entry that is not connected now: no new attempt before its
 * back-off, which doubles for the next time (a link that comes up resets it). */
static void out_wait(peer_link *l)
{
    l->state = ST_IDLE;
    l->since = pd_mono_ms();
    l->retry_at = l->since + l->backoff;
    l->backoff = PD_MIN(l->backoff * 2, PEER_BACKOFF_MAX_MS);
}

static void start_write(peer_link *l);
static void on_flush(uv_idle_t *h);
static void undirty(peer_link *l);

static void on_link_closed(uv_handle_t *h)
{
    peer_link *l = h->data;
    pd_peer *p = l->p;
    l->tcp_open = 0;
    l->closing = 0;
    undirty(l);
    drop_buffers(l);
    if (l->dir == DIR_IN || l->dead) {
        if (l->dir == DIR_IN) {
            unlink_from(&p->in, l);
            p->n_in--;
        }
        link_free(l);
    } else {
        /* An owner's link: the entry stays, to be tried again later. */
        out_wait(l);
    }
    p->open_handles--;
    if (!p->closing)
        update_gauges(p);
    else if (p->open_handles == 0)
        free(p);
}

static void link_close(peer_link *l, const char *why)
{
    if (!l->tcp_open || l->closing)
        return;
    if (why && l->state == ST_UP)
        pd_log(PD_LOG_INFO, "peer link closed", "{s:s, s:s, s:s}", "peer", l->tag, "dir",
               l->dir == DIR_IN ? "in" : "out", "reason", why);
    l->closing = 1;
    l->state = l->dir == DIR_OUT ? ST_IDLE : ST_HELLO;
    uv_close((uv_handle_t *)&l->tcp, on_link_closed);
}

/* ---- writing --------------------------------------------------------------------- */

static int buf_append(char **b, size_t *len, size_t *cap, const void *data, size_t n)
{
    if (n == 0)
        return PD_OK;
    if (*len + n > *cap) {
        size_t nc = *cap ? *cap : 4096;
        while (nc < *len + n)
            nc *= 2;
        char *nb = realloc(*b, nc);
        if (!nb)
            return PD_ERR;
        *b = nb;
        *cap = nc;
    }
    memcpy(*b + *len, data, n);
    *len += n;
    return PD_OK;
}


static void on_written(uv_write_t *req, int status)
{
    peer_link *l = req->data;
    l->writing = 0;
    l->flen = 0;
    if (status < 0) {
        link_close(l, uv_strerror(status));
        return;
    }
    if (l->fcap > 4 * PEER_READ_CHUNK) {
        free(l->fly);
        l->fly = NULL;
        l->fcap = 0;
    }
    if (l->plen)
        start_write(l);
}

static void start_write(peer_link *l)
{
    if (l->writing || l->plen == 0 || l->closing)
        return;
    /* The queued frames become the write in flight; new ones queue behind. */
    char *b = l->fly;
    size_t c = l->fcap;
    l->fly = l->pend;
    l->fcap = l->pcap;
    l->flen = l->plen;
    l->pend = b;
    l->pcap = c;
    l->plen = 0;
    uv_buf_t buf = uv_buf_init(l->fly, (unsigned)l->flen);
    l->wreq.data = l;
    int rc = uv_write(&l->wreq, (uv_stream_t *)&l->tcp, &buf, 1, on_written);
    if (rc < 0) {
        l->flen = 0;
        link_close(l, uv_strerror(rc));
        return;
    }
    l->writing = 1;
}

/* Frames queue on the link and go out once per loop turn (on_flush): a
 * turn that forwards several requests to one owner writes them with one
 * system call. An idle handle, not a check one: answers are mostly queued
 * by the polling layer's own idle callback or by timers, and a check
 * handle started there would only run after the loop next waits for I/O
 * (until some unrelated event or timer wakes it). An active idle handle
 * keeps the loop from waiting, so a lone frame waits for nothing. */
static void mark_dirty(peer_link *l)
{
    pd_peer *p = l->p;
    if (l->dirty)
        return;
    l->dirty = 1;
    l->dirty_next = p->dirty;
    p->dirty = l;
    if (!uv_is_active((uv_handle_t *)&p->flush))
        uv_idle_start(&p->flush, on_flush);
}

static void undirty(peer_link *l)
{
    if (!l->dirty)
        return;
    for (peer_link **pp = &l->p->dirty; *pp; pp = &(*pp)->dirty_next)
        if (*pp == l) {
            *pp = l->dirty_next;
            break;
        }
    l->dirty = 0;
    l->dirty_next = NULL;
}

static void flush_link(peer_link *l)
{
    if (l->writing || l->plen == 0 || l->closing)
        return;
    uv_buf_t buf = uv_buf_init(l->pend, (unsigned)l->plen);
    int n = uv_try_write((uv_stream_t *)&l->tcp, &buf, 1);
    if (n == UV_EAGAIN)
        n = 0;
    if (n < 0) {
        link_close(l, uv_strerror(n));
        return;
    }
    if ((size_t)n < l->plen) {
        memmove(l->pend, l->pend + n, l->plen - (size_t)n);
        l->plen -= (size_t)n;
        start_write(l);
        return;
    }
    l->plen = 0;
    if (l->pcap > 4 * PEER_READ_CHUNK) {
        free(l->pend);
        l->pend = NULL;
        l->pcap = 0;
    }
}

static void on_flush(uv_idle_t *h)
{
    pd_peer *p = h->data;
    while (p->dirty) {
        peer_link *l = p->dirty;
        p->dirty = l->dirty_next;
        l->dirty = 0;
        l->dirty_next = NULL;
        flush_link(l);
    }
    uv_idle_stop(h);
}

/* One frame, queued for this turn's flush. `force` skips the queue bound
 * (the hello and its acknowledgement). PD_ERR: not queued (nothing of it
 * was written). */
static int link_send(peer_link *l, const char *head, size_t hlen, const char *body, size_t blen, int force)
{
    pd_peer *p = l->p;
    size_t total = hlen + blen;
    if (l->closing || !l->tcp_open || total > p->max_frame)
        return PD_ERR;
    if (!force && l->plen + l->flen + 4 + total > p->max_queue)
        return PD_ERR;
    uint8_t len[4] = {(uint8_t)(total >> 24), (uint8_t)(total >> 16), (uint8_t)(total >> 8), (uint8_t)total};
    size_t before = l->plen;
    if (buf_append(&l->pend, &l->plen, &l->pcap, len, 4) != PD_OK ||
        buf_append(&l->pend, &l->plen, &l->pcap, head, hlen) != PD_OK ||
        buf_append(&l->pend, &l->plen, &l->pcap, body, blen) != PD_OK) {
        l->plen = before;
        return PD_ERR;
    }
    mark_dirty(l);
    return PD_OK;
}

/* ---- reading --------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    peer_link *l = h->data;
    size_t limit = (l->state == ST_UP ? l->p->max_frame : PEER_HELLO_MAX) + 4;
    if (l->rcap - l->rlen < PEER_READ_CHUNK / 4 && l->rcap < limit) {
        size_t nc = PD_MIN(PD_MAX(l->rcap * 2, l->rlen + PEER_READ_CHUNK), limit);
        char *nb = realloc(l->rbuf, nc);
        if (nb) {
            l->rbuf = nb;
            l->rcap = nc;
        }
    }
    *buf = uv_buf_init(l->rbuf ? l->rbuf + l->rlen : NULL, (unsigned)(l->rcap - l->rlen));
}

static int tag_valid(pd_slice t)
{
    return t.len == PD_FWD_TAG_LEN && pd_id_valid(t);
}

static int ct_equal(const char *a, const char *b, size_t n)
{
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

/* A whole frame. PD_ERR closes the link. */
static int on_frame(peer_link *l, const char *f, size_t n)
{
    pd_peer *p = l->p;
    pd_worker *w = p->w;
    if (l->dir == DIR_IN && l->state == ST_HELLO) {
        /* H <token> <tag> */
        if (n != 2 + PEER_TOKEN_LEN + 1 + PD_FWD_TAG_LEN || f[0] != 'H' || f[1] != ' ' ||
            f[2 + PEER_TOKEN_LEN] != ' ' || !ct_equal(f + 2, p->token, PEER_TOKEN_LEN))
            return PD_ERR;
        pd_slice tag = pd_slice_make(f + 3 + PEER_TOKEN_LEN, PD_FWD_TAG_LEN);
        if (!tag_valid(tag))
            return PD_ERR;
        memcpy(l->tag, tag.base, PD_FWD_TAG_LEN);
        l->state = ST_UP;
        l->since = pd_mono_ms();
        update_gauges(p);
        char ack[2 + PD_FWD_TAG_LEN];
        ack[0] = 'K';
        ack[1] = ' ';
        memcpy(ack + 2, w->eio_tag, PD_FWD_TAG_LEN);
        return link_send(l, ack, sizeof(ack), NULL, 0, 1);
    }
    if (l->dir == DIR_OUT && l->state == ST_ACK) {
        if (n != 2 + PD_FWD_TAG_LEN || f[0] != 'K' || f[1] != ' ' || memcmp(f + 2, l->tag, PD_FWD_TAG_LEN) != 0)
            return PD_ERR; /* another worker now listens there */
        l->state = ST_UP;
        l->since = l->used = pd_mono_ms();
        l->backoff = PEER_BACKOFF_MIN_MS;
        update_gauges(p);
        return PD_OK;
    }
    if (l->state != ST_UP || n < 2 || f[1] != ' ')
        return PD_ERR;
    if (l->dir == DIR_IN) {
        /* Q <G|P> <from> ...: from must be who said hello, since the
         * answer comes back by that name. */
        if (f[0] != 'Q' || n < 5 + PD_FWD_TAG_LEN || memcmp(f + 4, l->tag, PD_FWD_TAG_LEN) != 0 ||
            f[4 + PD_FWD_TAG_LEN] != ' ')
            return PD_ERR;
    } else if (f[0] != 'A') {
        return PD_ERR;
    }
    pd_fwd_on_message(w, pd_slice_make(f, n), pd_slice_make(l->tag, PD_FWD_TAG_LEN));
    return PD_OK;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    peer_link *l = s->data;
    if (nread < 0) {
        link_close(l, nread == UV_EOF ? "closed by peer" : uv_strerror((int)nread));
        return;
    }
    if (nread == 0 || l->closing)
        return;
    l->rlen += (size_t)nread;
    size_t off = 0;
    while (!l->closing && l->rlen - off >= 4) {
        const uint8_t *b = (const uint8_t *)l->rbuf + off;
        size_t n = ((size_t)b[0] << 24) | ((size_t)b[1] << 16) | ((size_t)b[2] << 8) | b[3];
        size_t limit = l->state == ST_UP ? l->p->max_frame : PEER_HELLO_MAX;
        if (n == 0 || n > limit) {
            link_close(l, "bad frame length");
            return;
        }
        if (l->rlen - off < 4 + n)
            break;
        if (on_frame(l, l->rbuf + off + 4, n) != PD_OK) {
            link_close(l, "bad frame");
            return;
        }
        off += 4 + n;
    }
    if (l->closing)
        return;
    if (off) {
        memmove(l->rbuf, l->rbuf + off, l->rlen - off);
        l->rlen -= off;
    }
    if (l->rlen == 0 && l->rcap > 4 * PEER_READ_CHUNK) {
        /* A long answer went through: give its room back. */
        free(l->rbuf);
        l->rbuf = NULL;
        l->rcap = 0;
    }
}

/* ---- inbound --------------------------------------------------------------------- */

/* Past the cap, the oldest connection still owing its hello goes, not the
 * newcomer: otherwise anyone reaching the port could keep every slot taken
 * with silent connections (each lasting its 2 s) and no worker's link would
 * ever come up. A worker's hello follows its connect at once, so it is never
 * the oldest for long. Links being closed still count until their handle
 * is: past twice the cap the newcomer goes. */
static int make_room_in(pd_peer *p, peer_link *newcomer)
{
    if (p->n_in <= PEER_MAX_IN)
        return PD_OK;
    if (p->n_in > 2 * PEER_MAX_IN)
        return PD_ERR;
    peer_link *oldest = NULL;
    for (peer_link *l = p->in; l; l = l->next)
        if (l != newcomer && l->state == ST_HELLO && !l->closing)
            oldest = l;
    if (!oldest)
        return PD_ERR; /* every slot holds a link that is up */
    link_close(oldest, NULL);
    return PD_OK;
}

static void on_accept(uv_stream_t *server, int status)
{
    pd_peer *p = server->data;
    if (status < 0 || p->closing)
        return;
    peer_link *l = calloc(1, sizeof(*l));
    if (!l)
        return;
    uv_tcp_init(p->w->loop, &l->tcp);
    p->open_handles++;
    l->tcp.data = l;
    l->p = p;
    l->dir = DIR_IN;
    l->state = ST_HELLO;
    l->tcp_open = 1;
    l->since = pd_mono_ms();
    push_front(&p->in, l);
    p->n_in++;
    if (uv_accept(server, (uv_stream_t *)&l->tcp) != 0 || make_room_in(p, l) != PD_OK) {
        link_close(l, NULL);
        return;
    }
    uv_tcp_nodelay(&l->tcp, 1);
    /* A far end that vanished without a close (its node died) is found
     * by the kernel's probes, not left holding a slot for ever. */
    uv_tcp_keepalive(&l->tcp, 1, PEER_KEEPALIVE_S);
    if (uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read) != 0)
        link_close(l, NULL);
}

/* ---- outbound -------------------------------------------------------------------- */

static peer_link *find_out(pd_peer *p, pd_slice tag)
{
    for (peer_link *l = p->out; l; l = l->next)
        if (memcmp(l->tag, tag.base, PD_FWD_TAG_LEN) == 0)
            return l;
    return NULL;
}

static void on_connected(uv_connect_t *req, int status)
{
    peer_link *l = req->data;
    if (l->closing)
        return;
    if (status < 0) {
        link_close(l, NULL);
        return;
    }
    uv_tcp_nodelay(&l->tcp, 1);
    /* A far end that vanished without a close (its node died) is found
     * by the kernel's probes, not left holding a slot for ever. */
    uv_tcp_keepalive(&l->tcp, 1, PEER_KEEPALIVE_S);
    if (uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read) != 0) {
        link_close(l, NULL);
        return;
    }
    l->state = ST_ACK;
    l->since = pd_mono_ms();
    char hello[2 + PEER_TOKEN_LEN + 1 + PD_FWD_TAG_LEN];
    hello[0] = 'H';
    hello[1] = ' ';
    memcpy(hello + 2, l->token, PEER_TOKEN_LEN);
    hello[2 + PEER_TOKEN_LEN] = ' ';
    memcpy(hello + 3 + PEER_TOKEN_LEN, l->p->w->eio_tag, PD_FWD_TAG_LEN);
    link_send(l, hello, sizeof(hello), NULL, 0, 1);
}

int pd_peer_parse_record(pd_slice rec, struct sockaddr_storage *addr, char token[PD_PEER_TOKEN_LEN + 1])
{
    char buf[129], ip[INET6_ADDRSTRLEN], tok[PD_PEER_TOKEN_LEN + 1], tail;
    int port = 0;
    if (rec.len == 0 || rec.len >= sizeof(buf) || memchr(rec.base, '\0', rec.len))
        return PD_ERR;
    memcpy(buf, rec.base, rec.len);
    buf[rec.len] = '\0';
    if (sscanf(buf, "%45s %d %32s%c", ip, &port, tok, &tail) != 3 || port < 1 || port > 65535 ||
        strlen(tok) != PD_PEER_TOKEN_LEN || !pd_id_valid(pd_slice_cstr(tok)))
        return PD_ERR;
    memset(addr, 0, sizeof(*addr));
    if (uv_ip4_addr(ip, port, (struct sockaddr_in *)addr) != 0 &&
        uv_ip6_addr(ip, port, (struct sockaddr_in6 *)addr) != 0)
        return PD_ERR;
    memcpy(token, tok, sizeof(tok));
    return PD_OK;
}

typedef struct lookup_ctx {
    pd_worker *w;
    char tag[PD_FWD_TAG_LEN + 1];
} lookup_ctx;

/* The owner's record: "<ip> <port> <token>". */
static void on_record(redisReply *reply, void *data)
{
    lookup_ctx *ctx = data;
    pd_peer *p = ctx->w->peer;
    peer_link *l = p && !p->closing ? find_out(p, pd_slice_make(ctx->tag, PD_FWD_TAG_LEN)) : NULL;
    free(ctx);
    if (!l || l->state != ST_LOOKUP)
        return;
    out_wait(l); /* unless the record leads to a connect below */
    struct sockaddr_storage sa;
    char token[PD_PEER_TOKEN_LEN + 1];
    if (!reply || reply->type != REDIS_REPLY_STRING ||
        pd_peer_parse_record(pd_slice_make(reply->str, reply->len), &sa, token) != PD_OK)
        return;
    memcpy(l->token, token, sizeof(l->token));
    uv_tcp_init(p->w->loop, &l->tcp);
    p->open_handles++;
    l->tcp.data = l;
    l->tcp_open = 1;
    l->state = ST_CONNECTING;
    l->creq.data = l;
    if (uv_tcp_connect(&l->creq, &l->tcp, (const struct sockaddr *)&sa, on_connected) != 0)
        link_close(l, NULL);
}

static void start_lookup(pd_peer *p, peer_link *l)
{
    pd_worker *w = p->w;
    lookup_ctx *ctx = malloc(sizeof(*ctx));
    if (!ctx)
        return;
    ctx->w = w;
    memcpy(ctx->tag, l->tag, sizeof(ctx->tag));
    char key[sizeof(PEER_KEY_PREFIX) + PD_FWD_TAG_LEN];
    snprintf(key, sizeof(key), "%s%s", PEER_KEY_PREFIX, l->tag);
    const char *argv[2] = {"GET", key};
    size_t lens[2] = {3, strlen(key)};
    l->state = ST_LOOKUP;
    l->since = pd_mono_ms();
    if (pd_redis_cmd_argv(w->redis, on_record, ctx, 2, argv, lens) != PD_OK) {
        free(ctx);
        l->state = ST_IDLE;
        l->retry_at = l->since + l->backoff;
    }
}

/* Room for one more owner: an entry with no connection goes (the others
 * are in use). */
static int make_room_out(pd_peer *p)
{
    if (p->n_out < PEER_MAX_OUT)
        return PD_OK;
    for (peer_link *l = p->out; l; l = l->next)
        if (l->state == ST_IDLE && !l->tcp_open) {
            unlink_from(&p->out, l);
            p->n_out--;
            link_free(l);
            return PD_OK;
        }
    return PD_ERR;
}

int pd_peer_send_query(pd_worker *w, pd_slice owner, const char *head, size_t hlen, const char *body,
                       size_t blen)
{
    pd_peer *p = w->peer;
    if (!p || p->closing || owner.len != PD_FWD_TAG_LEN)
        return PD_ERR;
    peer_link *l = find_out(p, owner);
    uint64_t now = pd_mono_ms();
    if (!l) {
        if (make_room_out(p) != PD_OK || !(l = calloc(1, sizeof(*l))))
            return PD_ERR;
        l->p = p;
        l->dir = DIR_OUT;
        l->backoff = PEER_BACKOFF_MIN_MS;
        memcpy(l->tag, owner.base, PD_FWD_TAG_LEN);
        push_front(&p->out, l);
        p->n_out++;
        start_lookup(p, l);
        return PD_ERR;
    }
    if (l->state == ST_UP) {
        l->used = now;
        return link_send(l, head, hlen, body, blen, 0);
    }
    if (l->state == ST_IDLE && !l->tcp_open && now >= l->retry_at)
        start_lookup(p, l);
    return PD_ERR;
}

int pd_peer_send_answer(pd_worker *w, pd_slice to, const char *head, size_t hlen, const char *body,
                        size_t blen)
{
    pd_peer *p = w->peer;
    if (!p || p->closing || to.len != PD_FWD_TAG_LEN)
        return PD_ERR;
    /* Newest first: a forwarder that reconnected answers on its new link. */
    for (peer_link *l = p->in; l; l = l->next)
        if (l->state == ST_UP && !l->closing && memcmp(l->tag, to.base, PD_FWD_TAG_LEN) == 0)
            return link_send(l, head, hlen, body, blen, 0);
    return PD_ERR;
}

/* ---- the record ------------------------------------------------------------------ */

/* The first Redis address configured: the other workers reach Redis too,
 * so the local address we reach it from is one they can reach us at. */
int pd_peer_redis_host(const pd_redis_options *o, char *host, size_t size, char *port, size_t psize)
{
    const char *list = o->cluster_nodes ? o->cluster_nodes : o->sentinels;
    if (!list) {
        if (!o->host || strlen(o->host) >= size)
            return PD_ERR;
        snprintf(host, size, "%s", o->host);
        snprintf(port, psize, "%d", o->port);
        return PD_OK;
    }
    size_t n = strcspn(list, ",");
    const char *colon = NULL;
    for (size_t i = 0; i < n; i++)
        if (list[i] == ':')
            colon = list + i;
    if (!colon)
        return PD_ERR;
    const char *h = list;
    size_t hl = (size_t)(colon - list);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    size_t pl = (size_t)(list + n - colon - 1);
    if (hl == 0 || hl >= size || pl == 0 || pl >= psize)
        return PD_ERR;
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, colon + 1, pl);
    port[pl] = '\0';
    return PD_OK;
}

static void set_addr(pd_peer *p, const char *ip)
{
    snprintf(p->addr, sizeof(p->addr), "%s %d", ip, p->port);
    pd_log(PD_LOG_INFO, "peer links", "{s:s, s:i}", "advertise", ip, "port", p->port);
}

static void on_redis_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    pd_peer *p = req->data;
    p->resolving = 0;
    if (status == 0 && res && !p->closing) {
        /* A datagram socket "connected" sends nothing: it only asks the
         * routing table which local address would be used. */
        int fd = socket(res->ai_family, SOCK_DGRAM, 0);
        struct sockaddr_storage local;
        socklen_t llen = sizeof(local);
        char ip[INET6_ADDRSTRLEN];
        if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) == 0 &&
            getsockname(fd, (struct sockaddr *)&local, &llen) == 0 &&
            uv_ip_name((struct sockaddr *)&local, ip, sizeof(ip)) == 0)
            set_addr(p, ip);
        if (fd >= 0)
            close(fd);
    }
    if (res)
        uv_freeaddrinfo(res);
    if (--p->open_handles == 0 && p->closing)
        free(p);
}

static void find_addr(pd_peer *p)
{
    pd_worker *w = p->w;
    if (w->cfg.peer_advertise) {
        set_addr(p, w->cfg.peer_advertise);
        return;
    }
    const char *la = w->cfg.listen_addr;
    if (strcmp(la, "0.0.0.0") != 0 && strcmp(la, "::") != 0) {
        set_addr(p, la);
        return;
    }
    char host[256], port[16];
    if (p->resolving || pd_peer_redis_host(&w->cfg.redis, host, sizeof(host), port, sizeof(port)) != PD_OK)
        return;
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_DGRAM;
    p->gai.data = p;
    if (uv_getaddrinfo(w->loop, &p->gai, on_redis_resolved, host, port, &hints) == 0) {
        p->resolving = 1;
        p->open_handles++;
    }
}

static void renew_record(pd_peer *p, uint64_t now)
{
    pd_worker *w = p->w;
    if (!p->addr[0]) {
        find_addr(p);
        if (!p->addr[0])
            return;
    }
    if (w->retiring || !pd_redis_ready(w->redis) || (p->renewed && now - p->renewed < PEER_RENEW_MS))
        return;
    char key[sizeof(PEER_KEY_PREFIX) + PD_FWD_TAG_LEN], val[sizeof(p->addr) + PEER_TOKEN_LEN + 2], ttl[16];
    snprintf(key, sizeof(key), "%s%s", PEER_KEY_PREFIX, w->eio_tag);
    snprintf(val, sizeof(val), "%s %s", p->addr, p->token);
    snprintf(ttl, sizeof(ttl), "%d", PEER_RECORD_TTL_MS);
    const char *argv[5] = {"SET", key, val, "PX", ttl};
    size_t lens[5] = {3, strlen(key), strlen(val), 2, strlen(ttl)};
    if (pd_redis_cmd_argv(w->redis, NULL, NULL, 5, argv, lens) == PD_OK)
        p->renewed = now;
}

void pd_peer_retire(pd_worker *w)
{
    pd_peer *p = w->peer;
    if (!p || !pd_redis_ready(w->redis))
        return;
    char key[sizeof(PEER_KEY_PREFIX) + PD_FWD_TAG_LEN];
    snprintf(key, sizeof(key), "%s%s", PEER_KEY_PREFIX, w->eio_tag);
    const char *argv[2] = {"DEL", key};
    size_t lens[2] = {3, strlen(key)};
    pd_redis_cmd_argv(w->redis, NULL, NULL, 2, argv, lens);
}

/* ---- the tick: announce, time out set-ups, forget idle owners --------------------- */

static void on_tick(uv_timer_t *t)
{
    pd_peer *p = t->data;
    uint64_t now = pd_mono_ms();
    renew_record(p, now);
    for (peer_link *l = p->in, *next; l; l = next) {
        next = l->next;
        if (l->state == ST_HELLO && now - l->since >= PEER_SETUP_MS)
            link_close(l, NULL);
    }
    for (peer_link *l = p->out, *next; l; l = next) {
        next = l->next;
        if ((l->state == ST_CONNECTING || l->state == ST_ACK) && now - l->since >= PEER_SETUP_MS)
            link_close(l, NULL);
        else if (l->state == ST_UP && now - l->used >= PEER_IDLE_MS)
            link_close(l, "idle");
        else if (l->state == ST_IDLE && !l->tcp_open && now - l->since >= PEER_IDLE_MS) {
            unlink_from(&p->out, l);
            p->n_out--;
            link_free(l);
        }
    }
}

/* ---- life -------------------------------------------------------------------------- */

const char *pd_peer_advertised(const pd_worker *w)
{
    return w->peer ? w->peer->addr : "";
}

int pd_peer_init(pd_worker *w)
{
    if (!w->cfg.peer_links)
        return PD_OK;
    pd_peer *p = calloc(1, sizeof(*p));
    if (!p)
        return PD_ERR;
    p->w = w;
    /* The longest message either way is what the subscriber link takes. */
    p->max_frame = pd_worker_bus_max_packet(w) + PD_BUS_ENVELOPE_ROOM;
    p->max_queue = PD_MAX(PEER_QUEUE_MIN, 2 * p->max_frame);
    if (pd_id_random(p->token, PEER_TOKEN_LEN, PD_ALPHABET_ALNUM) != PD_OK) {
        free(p);
        return PD_ERR;
    }
    struct sockaddr_storage sa;
    const char *la = w->cfg.listen_addr;
    if (uv_ip4_addr(la, (int)w->cfg.peer_port, (struct sockaddr_in *)&sa) != 0 &&
        uv_ip6_addr(la, (int)w->cfg.peer_port, (struct sockaddr_in6 *)&sa) != 0) {
        free(p);
        return PD_ERR;
    }
    uv_tcp_init(w->loop, &p->listener);
    p->listener.data = p;
    p->open_handles = 1;
    int rc = uv_tcp_bind(&p->listener, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&p->listener, 128, on_accept);
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    if (rc == 0)
        rc = uv_tcp_getsockname(&p->listener, (struct sockaddr *)&bound, &blen);
    if (rc != 0) {
        pd_log(PD_LOG_ERROR, "cannot listen for peer links", "{s:s, s:i, s:s}", "addr", la, "port",
               (int)w->cfg.peer_port, "error", uv_strerror(rc));
        p->closing = 1;
        w->peer = p;
        pd_peer_close(w);
        return PD_ERR;
    }
    p->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    uv_timer_init(w->loop, &p->tick);
    p->tick.data = p;
    uv_idle_init(w->loop, &p->flush);
    p->flush.data = p;
    p->tick_init = 1;
    p->open_handles += 2;
    uv_timer_start(&p->tick, on_tick, 50, PEER_TICK_MS);
    w->peer = p;
    update_gauges(p);
    return PD_OK;
}

static void on_handle_closed(uv_handle_t *h)
{
    pd_peer *p = h->data;
    if (--p->open_handles == 0)
        free(p);
}

void pd_peer_close(pd_worker *w)
{
    pd_peer *p = w->peer;
    if (!p)
        return;
    w->peer = NULL;
    p->closing = 1;
    /* Every handle's close callback counts p->open_handles down; the last
     * one frees p (libuv runs them in no order we may rely on). */
    for (peer_link *l = p->in, *next; l; l = next) {
        next = l->next;
        link_close(l, NULL);
    }
    for (peer_link *l = p->out, *next; l; l = next) {
        next = l->next;
        unlink_from(&p->out, l);
        if (l->tcp_open) {
            l->dead = 1;
            link_close(l, NULL);
        } else {
            link_free(l);
        }
    }
    if (p->resolving)
        uv_cancel((uv_req_t *)&p->gai); /* its callback still runs (UV_ECANCELED) */
    if (p->tick_init) {
        uv_close((uv_handle_t *)&p->tick, on_handle_closed);
        uv_close((uv_handle_t *)&p->flush, on_handle_closed);
    }
    uv_close((uv_handle_t *)&p->listener, on_handle_closed);
}
