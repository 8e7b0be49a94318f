/* poll.c — what Engine.IO long-polling costs the workers, and what a packet
 * crossing workers adds.
 *
 * relay.c's scenario over HTTP long-polling only, as socket.io-client speaks
 * it when WebSocket is blocked: --rooms rooms of two Socket.IO clients, each
 * with a handshake GET (the open packet gives the Engine.IO sid), a POST
 * "40", then one waiting GET at a time, re-issued as soon as it is answered
 * (its body: packets joined by 0x1e), and one POST at a time carrying every
 * packet queued meanwhile, joined the same way. Pings ("2" in a GET) are
 * answered "3". Both peers of a room share a home worker (the rooms spread
 * over the --target list); the clients join, offer and answer, then relay
 * ICE candidates with relay.c's accounting (due time and sequence number in
 * each, in time / late / lost, the drain) in a closed loop (--window per
 * peer) or at --rate per second.
 *
 * --layout owner: every request of a session goes to the worker that
 * answered its handshake (the session's owner: what sticky sessions give).
 * --layout rotate: the handshake goes to the home worker, then each GET and
 * each POST to the next --target in turn (GETs and POSTs counted apart, so
 * both kinds cross), as a balancer with no affinity would send them: with
 * two workers half of them reach a worker that must forward them to the
 * owner (through Redis, docs/architecture.md §Long-polling across workers).
 *
 * With rotate, each signal is also sorted by the path it took: whether the
 * POST that carried it and the GET that brought it reached the owner or
 * another worker. Their latencies, taken in the same run at the same load,
 * show what crossing adds without the noise between two runs (the report's
 * "by_path": each path, and "forwarded", any of the three that cross). The POST of a signal is found from the sender's log of its
 * recent POSTs (the highest sequence number each carried, and where it
 * went); a signal older than that log counts as "unknown".
 *
 * Each client keeps, per worker it uses, one connection for its GETs and one
 * for its POSTs (a browser's two: the waiting GET holds one). Packets are
 * queued on the client and posted once per loop turn, so one POST batches
 * what the loop produced; the queue is bounded (PL_MAX_QUEUE), a signal
 * that does not fit is not sent and counts as an error.
 *
 * phase 0 rooms+handshakes, 1 signalling (warmup then measured), 2 drain, 3 done */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

#define PL_MAX_QUEUE (1u << 20)   /* packets waiting for a POST, per client */
#define PL_RAMP_LIMIT_NS (60ull * 1000000000ull) /* handshakes still pending then fail */
#define PL_POST_LOG 32           /* recent POSTs remembered per client (rotate) */

/* One POST of a client: the highest candidate sequence number it carried,
 * and whether it went to a worker other than the session's owner. */
typedef struct pl_posted {
    uint64_t upto;
    int crossed;
} pl_posted;

/* Paths a signal can take with rotate (index: POST crossed + 2 × GET crossed). */
enum { PL_PATH_DIRECT, PL_PATH_POST, PL_PATH_GET, PL_PATH_BOTH, PL_PATH_ANY, PL_PATHS };
static const char *const PL_PATH_NAMES[PL_PATHS] = {"direct", "post_forwarded", "get_forwarded", "both_forwarded",
                                                    "forwarded"}; /* the last: any of the three before it */

enum { PL_NEW, PL_OPENING, PL_OPEN, PL_READY, PL_DEAD };

typedef struct pl_client {
    struct pl_client *peer;
    int index, room, home;
    int state;                    /* PL_… */
    int joined;                   /* as relay: 1 joined, 2 offer/answer done, -1 failed */
    char eio_sid[40];             /* Engine.IO session id (the one every request quotes) */
    char sid[32];                 /* Socket.IO id (peerId in events) */
    char *out;                    /* packets waiting for a POST, joined by 0x1e */
    size_t out_len, out_cap;
    int get_busy, post_busy;      /* one GET and one POST at a time, as engine.io-client */
    unsigned get_turn, post_turn; /* rotate: requests sent so far, by kind */
    int dirty;
    struct pl_client *dirty_next;
    uint64_t sent, rx_next;       /* signals sent (the next sequence number); expected from the peer */
    pl_posted posted[PL_POST_LOG]; /* rotate: the last POSTs, a ring */
    uint64_t nposted;             /* POSTs logged so far */
    int get_crossed;              /* rotate: the GET being read went to another worker */
} pl_client;

typedef struct poll_state {
    pl_client *clients;
    int nclients;
    pl_client *dirty;             /* clients with packets to post */
    uv_prepare_t flush;           /* posts them once per loop turn */
    uint64_t gets, posts, posted_packets, got_packets, pings, http_errors, queue_full;
    sl_hist by_path[PL_PATHS];    /* rotate: in-time latencies by path */
    uint64_t path_unknown;        /* in time, but its POST no longer in the log */
} poll_state;

/* The connection of client c to worker w for GETs (kind 0) or POSTs (1). */
static sl_http *pl_http(app *a, const pl_client *c, int w, int kind)
{
    return &a->https[((size_t)c->index * (size_t)a->run.ntargets + (size_t)w) * 2 + (size_t)kind];
}

static int pl_target(const app *a, const pl_client *c, unsigned turn)
{
    if (!a->o.rotate || c->state < PL_OPEN)
        return c->home;
    return (int)((c->home + 1 + turn) % (unsigned)a->run.ntargets);
}

static void pl_mark(app *a, pl_client *c)
{
    if (c->dirty)
        return;
    c->dirty = 1;
    c->dirty_next = a->poll->dirty;
    a->poll->dirty = c;
}

static int pl_queue(app *a, pl_client *c, const char *pkt, size_t len)
{
    size_t need = c->out_len + len + 1;
    if (need > PL_MAX_QUEUE) {
        a->poll->queue_full++;
        return -1;
    }
    if (need > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < need)
            cap *= 2;
        char *p = realloc(c->out, cap);
        if (!p) {
            a->poll->queue_full++;
            return -1;
        }
        c->out = p;
        c->out_cap = cap;
    }
    if (c->out_len)
        c->out[c->out_len++] = '\x1e';
    memcpy(c->out + c->out_len, pkt, len);
    c->out_len += len;
    pl_mark(a, c);
    return 0;
}

static void pl_kick_post(app *a, pl_client *c)
{
    if (c->state < PL_OPEN || c->state == PL_DEAD || c->post_busy || !c->out_len)
        return;
    sl_http_kick(pl_http(a, c, pl_target(a, c, c->post_turn), 1));
}

static void pl_kick_get(app *a, pl_client *c)
{
    if (c->state == PL_DEAD || c->get_busy)
        return;
    sl_http_kick(pl_http(a, c, pl_target(a, c, c->get_turn), 0));
}

static void pl_on_flush(uv_prepare_t *p)
{
    app *a = p->data;
    pl_client *c = a->poll->dirty;
    a->poll->dirty = NULL;
    while (c) {
        pl_client *next = c->dirty_next;
        c->dirty = 0;
        c->dirty_next = NULL;
        pl_kick_post(a, c);
        c = next;
    }
}

static void pl_established(app *a, int ok)
{
    a->handshakes -= 2;
    if (ok)
        a->established++;
    else
        a->join_failed++;
}

/* The client is gone (an HTTP failure, the server's close, a refused
 * request): before its room was set up the pair failed, after that a
 * session dropped. */
static void pl_dead(app *a, pl_client *c)
{
    if (c->state == PL_DEAD)
        return;
    c->state = PL_DEAD;
    if (a->phase == 0 && c->joined >= 0 && c->joined < 2 && c->peer->joined != -1) {
        pl_established(a, 0);
        c->peer->joined = -1;
    } else if (a->phase > 0 && a->phase < 3) {
        a->dropped++;
    }
    c->joined = -1;
}

static int pl_alive(const pl_client *c)
{
    return c->state == PL_READY;
}

static void pl_send_candidate(app *a, pl_client *from, uint64_t t)
{
    char pkt[512];
    int n = app_candidate(pkt, sizeof(pkt), from->peer->sid, from->sid, t, from->sent);
    if (pl_queue(a, from, pkt, (size_t)n) != 0) {
        a->errors++;
        return;
    }
    from->sent++;
    app_signal_sent(a, t);
}

static void pl_send_sdp(app *a, pl_client *from, const char *kind)
{
    char pkt[768];
    int n = app_sdp(pkt, sizeof(pkt), kind, from->peer->sid, from->sid);
    pl_queue(a, from, pkt, (size_t)n);
}

/* Log a POST of c that carried body (rotate): its last candidate's number. */
static void pl_log_post(pl_client *c, const char *body, size_t len, int crossed)
{
    /* The last "s": in the body is the last candidate's: scan back. */
    for (size_t i = len; i >= 5; i--) {
        if (memcmp(body + i - 5, ",\"s\":", 5) != 0)
            continue;
        uint64_t v = 0;
        size_t k = i;
        while (k < len && body[k] >= '0' && body[k] <= '9')
            v = v * 10 + (uint64_t)(body[k++] - '0');
        if (k == i)
            return;
        c->posted[c->nposted % PL_POST_LOG] = (pl_posted){v, crossed};
        c->nposted++;
        return;
    }
}

/* Whether the POST of `from` that carried candidate seq crossed: 0/1, or
 * -1 if it is older than the log. */
static int pl_post_crossed(const pl_client *from, uint64_t seq)
{
    uint64_t n = from->nposted, first = n > PL_POST_LOG ? n - PL_POST_LOG : 0;
    for (uint64_t k = first; k < n; k++) {
        const pl_posted *p = &from->posted[k % PL_POST_LOG];
        /* The oldest entry left starts where an overwritten one ended:
         * whether seq was in it or before it is not known. */
        if (p->upto >= seq)
            return k == first && first > 0 ? -1 : p->crossed;
    }
    return -1;
}

static void pl_event(app *a, pl_client *c, const char *name, size_t nl, const char *pkt, size_t len)
{
    if (nl == 13 && memcmp(name, "ice-candidate", 13) == 0) {
        uint64_t now = uv_hrtime();
        a->received++;
        uint64_t lat = app_signal_arrived(a, &c->rx_next, c->peer->sent, pkt, len, now);
        if (lat != UINT64_MAX && a->o.rotate) {
            int post = pl_post_crossed(c->peer, app_payload_u64(pkt, len, "\"s\":"));
            if (post < 0)
                a->poll->path_unknown++;
            else {
                int path = post + 2 * c->get_crossed;
                sl_hist_add(&a->poll->by_path[path], lat);
                if (path != PL_PATH_DIRECT)
                    sl_hist_add(&a->poll->by_path[PL_PATH_ANY], lat);
            }
        }
        if (a->o.rate <= 0 && a->sending && pl_alive(c->peer))
            pl_send_candidate(a, c, now);
        return;
    }
    if (nl == 12 && memcmp(name, "joinResponse", 12) == 0) {
        if (!app_join_ok(pkt, len)) {
            c->joined = -1;
            if (c->peer->joined != -1)
                pl_established(a, 0);
            c->peer->joined = -1;
            return;
        }
        c->joined = 1;
        if (c->peer->joined == 1)
            pl_send_sdp(a, (c->index & 1) ? c->peer : c, "offer"); /* A offers */
        return;
    }
    if (nl == 5 && memcmp(name, "offer", 5) == 0) {
        pl_send_sdp(a, c, "answer");
        return;
    }
    if (nl == 6 && memcmp(name, "answer", 6) == 0 && c->joined == 1) {
        c->joined = 2;
        c->peer->joined = 2;
        pl_established(a, 1);
    }
}

/* The value of "sid":"…" in text, into out; 0 if found. */
static int pl_sid(const char *p, size_t n, char *out, size_t cap)
{
    const char *s = memmem(p, n, "\"sid\":\"", 7);
    if (!s)
        return -1;
    s += 7;
    const char *e = memchr(s, '"', (size_t)(p + n - s));
    if (!e || e == s || (size_t)(e - s) >= cap)
        return -1;
    memcpy(out, s, (size_t)(e - s));
    out[e - s] = '\0';
    return 0;
}

static void pl_packet(app *a, pl_client *c, const char *p, size_t n)
{
    poll_state *ps = a->poll;
    ps->got_packets++;
    if (n == 0) {
        a->run.protocol_errors++;
        return;
    }
    switch (p[0]) {
    case '2': /* ping */
        ps->pings++;
        pl_queue(a, c, "3", 1);
        return;
    case '6': /* noop: the server ended a GET (an upgrade elsewhere) */
        return;
    case '1': /* close */
        a->run.closed_by_server++;
        pl_dead(a, c);
        return;
    case '4':
        break;
    default:
        a->run.protocol_errors++;
        return;
    }
    if (n >= 2 && p[1] == '0') { /* 40{"sid":"…"}: Socket.IO connected */
        if (c->state != PL_OPEN || pl_sid(p, n, c->sid, sizeof(c->sid)) != 0) {
            a->run.protocol_errors++;
            return;
        }
        c->state = PL_READY;
        char id[64], pkt[128];
        app_room_id(a, c->room, id, sizeof(id));
        int k = snprintf(pkt, sizeof(pkt), "42[\"join\",{\"roomId\":\"%s\"}]", id);
        pl_queue(a, c, pkt, (size_t)k);
        return;
    }
    if (n >= 2 && (p[1] == '1' || p[1] == '4')) { /* disconnect, connect error */
        a->run.closed_by_server++;
        pl_dead(a, c);
        return;
    }
    if (n >= 5 && p[1] == '2' && p[2] == '[' && p[3] == '"') {
        const char *name = p + 4;
        const char *e = memchr(name, '"', n - 4);
        if (e)
            pl_event(a, c, name, (size_t)(e - name), p, n);
        return;
    }
    a->run.protocol_errors++;
}

/* ---- the HTTP side -------------------------------------------------------------------------- */

static size_t pl_next(sl_http *h, char *buf, size_t cap)
{
    app *a = app_of(h->run);
    pl_client *c = h->data;
    int w = (h->index / 2) % a->run.ntargets, kind = h->index % 2;
    const char *host = a->run.target_names[w];
    if (c->state == PL_DEAD || a->finished)
        return 0;
    if (kind == 0) {
        if (c->get_busy || pl_target(a, c, c->get_turn) != w)
            return 0;
        int n;
        if (c->state == PL_NEW) {
            n = snprintf(buf, cap, "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: %s\r\n\r\n", host);
            c->state = PL_OPENING;
        } else if (c->state == PL_OPEN || c->state == PL_READY) {
            n = snprintf(buf, cap, "GET /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: %s\r\n\r\n",
                         c->eio_sid, host);
            c->get_turn++;
        } else {
            return 0;
        }
        c->get_busy = 1;
        a->poll->gets++;
        return (size_t)n;
    }
    if (c->post_busy || !c->out_len || c->state < PL_OPEN || pl_target(a, c, c->post_turn) != w)
        return 0;
    char head[256];
    size_t room = cap - sizeof(head);
    size_t packets;
    size_t body = sl_batch_len(c->out, c->out_len, room, &packets);
    if (body == 0)
        return 0; /* cannot happen: every packet is far below cap */
    int hl = snprintf(head, sizeof(head),
                      "POST /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: %s\r\n"
                      "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: %zu\r\n\r\n",
                      c->eio_sid, host, body);
    memcpy(buf, head, (size_t)hl);
    memcpy(buf + hl, c->out, body);
    if (a->o.rotate)
        pl_log_post(c, c->out, body, w != c->home);
    size_t rest = c->out_len - body - (body < c->out_len ? 1 : 0);
    memmove(c->out, c->out + c->out_len - rest, rest);
    c->out_len = rest;
    c->post_busy = 1;
    c->post_turn++;
    a->poll->posts++;
    a->poll->posted_packets += packets;
    return (size_t)hl + body;
}

static void pl_done(sl_http *h, int status, const char *body, size_t len)
{
    app *a = app_of(h->run);
    pl_client *c = h->data;
    int kind = h->index % 2;
    if (kind == 0)
        c->get_busy = 0;
    else
        c->post_busy = 0;
    if (c->state == PL_DEAD || a->finished)
        return;
    if (status != 200) {
        /* -1: the connection failed; otherwise the worker refused the
         * request (400 "Session ID unknown": the session is gone). */
        a->poll->http_errors++;
        pl_dead(a, c);
        return;
    }
    if (kind == 1) {
        pl_kick_post(a, c);
        return;
    }
    if (c->state == PL_OPENING) {
        if (len < 2 || body[0] != '0' || pl_sid(body, len, c->eio_sid, sizeof(c->eio_sid)) != 0) {
            a->run.protocol_errors++;
            pl_dead(a, c);
            return;
        }
        a->run.connects_ok++;
        c->state = PL_OPEN;
        pl_queue(a, c, "40", 2);
    } else {
        c->get_crossed = (h->index / 2) % a->run.ntargets != c->home;
        const char *p = body, *end = body + len;
        while (p <= end && c->state != PL_DEAD) {
            const char *sep = memchr(p, '\x1e', (size_t)(end - p));
            const char *e = sep ? sep : end;
            pl_packet(a, c, p, (size_t)(e - p));
            p = e + 1;
        }
    }
    pl_kick_get(a, c);
}

/* ---- the scenario -------------------------------------------------------------------------- */

static void pl_start(app *a)
{
    a->ramp_t0 = uv_hrtime();
    a->phase = 0;
    a->started = 1;
}

static void poll_setup(app *a)
{
    int n = 2 * a->o.rooms, nt = a->run.ntargets;
    poll_state *ps = app_calloc(1, sizeof(*ps));
    a->poll = ps;
    ps->nclients = n;
    ps->clients = app_calloc((size_t)n, sizeof(pl_client));
    for (int k = 0; k < PL_PATHS; k++)
        sl_hist_reset(&ps->by_path[k]);
    a->nhttps = n * nt * 2;
    a->https = app_calloc((size_t)a->nhttps, sizeof(sl_http));
    for (int i = 0; i < n; i++) {
        pl_client *c = &ps->clients[i];
        c->index = i;
        c->peer = &ps->clients[i ^ 1];
        c->room = i / 2;
        c->home = c->room % nt;
    }
    for (int i = 0; i < a->nhttps; i++) {
        sl_http *h = &a->https[i];
        h->run = &a->run;
        h->index = i;
        h->next = pl_next;
        h->done = pl_done;
        h->data = &ps->clients[i / (2 * nt)];
        h->closed = 1; /* until started */
    }
    uv_prepare_init(a->run.loop, &ps->flush);
    ps->flush.data = a;
    uv_prepare_start(&ps->flush, pl_on_flush);
    app_create_rooms(a, a->o.rooms, pl_start);
}

/* Start a client: its connections (to its home worker, or with rotate to
 * every worker), then the handshake GET. */
static void pl_connect(app *a, pl_client *c)
{
    for (int w = 0; w < a->run.ntargets; w++) {
        if (!a->o.rotate && w != c->home)
            continue;
        for (int kind = 0; kind < 2; kind++)
            if (sl_http_start(pl_http(a, c, w, kind), &a->run.targets[w]) != 0) {
                a->run.connects_failed++;
                pl_dead(a, c);
                return;
            }
    }
    pl_kick_get(a, c);
}

static void poll_pace(app *a)
{
    if (a->phase != 1 || !a->sending)
        return;
    poll_state *ps = a->poll;
    uint64_t now = uv_hrtime();
    uint64_t rooms = (uint64_t)(ps->nclients / 2);
    while (app_due_at(a, a->issued) <= now) {
        uint64_t k = a->issued++;
        pl_client *c = &ps->clients[2 * (k % rooms) + ((k / rooms) & 1)];
        uint64_t t = app_due_at(a, k);
        if (c->joined == 2 && pl_alive(c) && pl_alive(c->peer)) {
            pl_send_candidate(a, c, t);
            if (a->measuring && t >= a->t_measure)
                sl_hist_add(&a->hist_lag, uv_hrtime() - t);
        }
    }
}

static void poll_tick(app *a)
{
    poll_state *ps = a->poll;
    uint64_t now = uv_hrtime();
    if (a->phase == 0) {
        if (!a->ramp_done) {
            double el = (double)(now - a->ramp_t0) / 1e9;
            long allowed = (long)(el * a->o.connect_rate) + 1;
            while (a->next_conn < ps->nclients && a->next_conn < allowed && a->handshakes < a->o.inflight) {
                a->handshakes++;
                pl_connect(a, &ps->clients[a->next_conn++]);
            }
        }
        int all = a->next_conn == ps->nclients && a->handshakes <= 0;
        if (!all && now - a->ramp_t0 < PL_RAMP_LIMIT_NS)
            return;
        if (!a->ramp_done) {
            a->ramp_done = 1;
            a->ramp_s = (double)(now - a->ramp_t0) / 1e9;
            app_say(a, "poll: %llu rooms ready, %llu failed in %.1fs%s\n", (unsigned long long)a->established,
                    (unsigned long long)a->join_failed, a->ramp_s, all ? "" : " (the rest timed out)");
            if (a->established == 0) {
                app_finish(a);
                return;
            }
        }
        if (app_signals_start(a, now)) {
            for (int i = 0; i < ps->nclients; i++) {
                pl_client *c = &ps->clients[i];
                if (c->joined == 2 && pl_alive(c) && pl_alive(c->peer))
                    for (int k = 0; k < a->o.window; k++)
                        pl_send_candidate(a, c, now);
            }
        }
        return;
    }
    app_signals_step(a, now);
}

static void poll_progress(app *a)
{
    app_say(a, "  rooms %llu  sent %llu  received %llu  GETs %llu  POSTs %llu\n",
            (unsigned long long)a->established, (unsigned long long)a->sent, (unsigned long long)a->received,
            (unsigned long long)a->poll->gets, (unsigned long long)a->poll->posts);
}

static const sl_hist *poll_report(app *a, sl_sbuf *j, const sl_measured *m)
{
    poll_state *ps = a->poll;
    sl_sb(j,
          "\"polling\":{\"layout\":\"%s\",\"gets\":%llu,\"posts\":%llu,\"posted_packets\":%llu,"
          "\"received_packets\":%llu,\"pings\":%llu,\"http_errors\":%llu,\"queue_full\":%llu},",
          a->o.rotate ? "rotate" : "owner", (unsigned long long)ps->gets, (unsigned long long)ps->posts,
          (unsigned long long)ps->posted_packets, (unsigned long long)ps->got_packets,
          (unsigned long long)ps->pings, (unsigned long long)ps->http_errors, (unsigned long long)ps->queue_full);
    printf("  long-polling, %s: %llu GETs, %llu POSTs (%.1f packets each), %llu refused or failed\n",
           a->o.rotate ? "each request to the next worker" : "every request to the session's worker",
           (unsigned long long)ps->gets, (unsigned long long)ps->posts,
           ps->posts ? (double)ps->posted_packets / (double)ps->posts : 0.0, (unsigned long long)ps->http_errors);
    if (a->o.rotate) {
        sl_sb(j, "\"by_path\":{");
        for (int k = 0; k < PL_PATHS; k++) {
            sl_sb_hist(j, PL_PATH_NAMES[k], &ps->by_path[k]);
            sl_sb(j, ",");
        }
        sl_sb(j, "\"unknown\":%llu},", (unsigned long long)ps->path_unknown);
        printf("  by path (same run): ");
        for (int k = 0; k < PL_PATHS; k++)
            printf("%s%s p50 %.0f us p99 %.0f us (%llu)", k ? ", " : "", PL_PATH_NAMES[k],
                   (double)sl_hist_quantile(&ps->by_path[k], 0.5) / 1e3,
                   (double)sl_hist_quantile(&ps->by_path[k], 0.99) / 1e3,
                   (unsigned long long)ps->by_path[k].count);
        printf(", unknown %llu\n", (unsigned long long)ps->path_unknown);
    }
    return app_signals_report(a, j, m, "poll");
}

static int poll_failed(const app *a)
{
    return a->established == 0;
}

static void poll_free(app *a)
{
    poll_state *ps = a->poll;
    if (!ps)
        return;
    for (int i = 0; i < ps->nclients; i++)
        free(ps->clients[i].out);
    free(ps->clients);
    free(ps);
    a->poll = NULL;
}

const sl_scenario SL_POLL = {
    .name = "poll",
    .setup = poll_setup,
    .tick = poll_tick,
    .pace = poll_pace,
    .progress = poll_progress,
    .report = poll_report,
    .failed = poll_failed,
    .free = poll_free,
};
