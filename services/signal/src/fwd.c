/* Polling requests forwarded between workers through Redis (fwd.h). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "privydrop/pd_eio.h"
#include "privydrop/pd_id.h"
#include "privydrop/pd_log.h"
#include "privydrop/pd_map.h"
#include "privydrop/pd_netaddr.h"
#include "privydrop/pd_ptab.h"
#include "fwd.h"
#include "peer.h"
#include "poll.h"
#include "session.h"
#include "privydrop/pd_wsscan.h"

/* How long a forwarded request may wait for its owner: a GET is answered
 * by the next ping at the latest; a POST at once. Past that the owner is
 * taken for gone. */
#define FWD_POST_TIMEOUT_MS 10000
#define FWD_GET_SLACK_MS 5000
#define FWD_SWEEP_MS 500

typedef struct fwd_req {
    struct fwd_req *prev, *next; /* every waiting request */
    pd_http_conn *conn;          /* the client's request, answered once */
    char *cors;                  /* CORS header lines for the answer (owned), or NULL */
    char ip_key[INET6_ADDRSTRLEN]; /* a waiting GET let out of the HTTP cap: its client's key, else "" */
    uint64_t deadline;           /* monotonic ms */
    char owner[PD_FWD_TAG_LEN + 1]; /* the session's worker */
    char id[24];                 /* decimal request id: the table's key */
} fwd_req;

/* How many owners' channels one sweep asks about at most (PUBSUB NUMSUB). */
#define FWD_MAX_OWNERS_PER_SWEEP 32

/* A WebSocket on this worker carrying a session of another worker. */
typedef struct fwd_tunnel {
    pd_sess *s;                  /* the WebSocket (borrowed; it tells us when it goes) */
    char ip_key[INET6_ADDRSTRLEN]; /* its client's address key, for the per-address count */
    char owner[PD_FWD_TAG_LEN + 1];
    char sid[PD_FWD_MAX_SID + 1];   /* the table's key */
} fwd_tunnel;

struct pd_fwd {
    pd_map *tunnel_ips;          /* pd_addr_key of the client → tunnels open (uintptr_t) */
    pd_map *get_ips;             /* the same → forwarded GETs waiting outside the HTTP cap */
    pd_ptab *tunnels;            /* fwd_tunnel by sid */
    pd_ptab *reqs;               /* fwd_req by id */
    fwd_req *head;               /* the same, as a list for the sweep */
    uint64_t next_id;
    uv_timer_t sweep;
    char channel[sizeof(PD_FWD_CHANNEL_PREFIX) + PD_FWD_TAG_LEN];
};

static pd_slice tunnel_key(const void *item)
{
    return pd_slice_cstr(((const fwd_tunnel *)item)->sid);
}

static pd_slice req_key(const void *item)
{
    return pd_slice_cstr(((const fwd_req *)item)->id);
}

static const char *type_of(char t)
{
    return t == 't' ? "text/plain; charset=UTF-8" : t == 'h' ? "text/html" : "application/json";
}

/* Per-address counters (pd_addr_key → count as a pointer). */
static size_t ip_get(const pd_map *m, const char *key)
{
    return (uintptr_t)pd_map_get(m, pd_slice_cstr(key));
}

static int ip_add(pd_map *m, const char *key, int d)
{
    uintptr_t n = (uintptr_t)pd_map_get(m, pd_slice_cstr(key));
    if (d < 0 && n <= 1) {
        pd_map_del(m, pd_slice_cstr(key));
        return PD_OK;
    }
    return pd_map_put(m, pd_slice_cstr(key), (void *)(uintptr_t)(d < 0 ? n - 1 : n + 1));
}

/* Answer and forget one request. */
static void req_finish(pd_worker *w, fwd_req *r, int status, char type, const char *body, size_t len)
{
    pd_fwd *f = w->fwd;
    if (r->ip_key[0])
        ip_add(f->get_ips, r->ip_key, -1);
    pd_ptab_del(f->reqs, pd_slice_cstr(r->id));
    if (r->prev)
        r->prev->next = r->next;
    else
        f->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    pd_http_respond(r->conn, status, type_of(type), r->cors, body, len, 0);
    free(r->cors);
    free(r);
    pd_metric_set(w->m_fwd_pending, NULL, (double)pd_ptab_count(f->reqs));
}

static void req_unknown(pd_worker *w, fwd_req *r)
{
    req_finish(w, r, 400, 'j', PD_EIO_ERR_UNKNOWN_SID, strlen(PD_EIO_ERR_UNKNOWN_SID));
}

/* An owner whose channel nobody hears any more is gone (its worker died:
 * Redis drops a dead client's subscriptions at once): everything waiting on
 * it is answered now instead of at its deadline. */
static void owner_gone(pd_worker *w, pd_slice owner)
{
    pd_fwd *f = w->fwd;
    fwd_req *r = f->head;
    while (r) {
        fwd_req *next = r->next;
        if (pd_slice_eq(owner, r->owner)) {
            pd_metric_add(w->m_dropped, "poll_owner_gone", 1);
            req_unknown(w, r);
        }
        r = next;
    }
    pd_fwd_tunnels_owner_gone(w, owner);
}

/* `data` is the worker; the reply lists channel, count pairs. */
static void on_numsub(redisReply *reply, void *data)
{
    pd_worker *w = data;
    if (!w->fwd || !reply || reply->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        redisReply *ch = reply->element[i], *n = reply->element[i + 1];
        size_t pre = sizeof(PD_FWD_CHANNEL_PREFIX) - 1;
        if (ch->type != REDIS_REPLY_STRING || n->type != REDIS_REPLY_INTEGER || n->integer != 0 ||
            ch->len != pre + PD_FWD_TAG_LEN)
            continue;
        owner_gone(w, pd_slice_make(ch->str + pre, PD_FWD_TAG_LEN));
    }
}

static void on_sweep(uv_timer_t *t)
{
    pd_worker *w = t->data;
    pd_fwd *f = w->fwd;
    uint64_t now = pd_mono_ms();
    /* The owners this worker waits on, each once. */
    char chans[FWD_MAX_OWNERS_PER_SWEEP][sizeof(PD_FWD_CHANNEL_PREFIX) + PD_FWD_TAG_LEN];
    size_t n = 0;
    fwd_req *r = f->head;
    while (r) {
        fwd_req *next = r->next;
        if (r->deadline <= now) {
            pd_metric_add(w->m_dropped, "poll_forward_timeout", 1);
            req_unknown(w, r);
        } else if (n < FWD_MAX_OWNERS_PER_SWEEP) {
            char ch[sizeof(chans[0])];
            snprintf(ch, sizeof(ch), "%s%s", PD_FWD_CHANNEL_PREFIX, r->owner);
            size_t i = 0;
            while (i < n && strcmp(chans[i], ch) != 0)
                i++;
            if (i == n)
                memcpy(chans[n++], ch, sizeof(ch));
        }
        r = next;
    }
    n += pd_fwd_tunnel_owners(w, chans + n, FWD_MAX_OWNERS_PER_SWEEP - n, chans, n);
    if (n > 0) {
        const char *argv[2 + FWD_MAX_OWNERS_PER_SWEEP];
        size_t lens[2 + FWD_MAX_OWNERS_PER_SWEEP];
        argv[0] = "PUBSUB";
        argv[1] = "NUMSUB";
        lens[0] = 6;
        lens[1] = 6;
        for (size_t i = 0; i < n; i++) {
            argv[2 + i] = chans[i];
            lens[2 + i] = strlen(chans[i]);
        }
        pd_redis_cmd_argv(w->redis, on_numsub, w, (int)(2 + n), argv, lens);
    }
    if (!f->head && pd_ptab_count(f->tunnels) == 0)
        uv_timer_stop(t);
}

/* The sweep runs while anything waits on another worker. */
static void sweep_start(pd_worker *w)
{
    pd_fwd *f = w->fwd;
    if (!uv_is_active((uv_handle_t *)&f->sweep))
        uv_timer_start(&f->sweep, on_sweep, FWD_SWEEP_MS, FWD_SWEEP_MS);
}

int pd_fwd_init(pd_worker *w)
{
    if (pd_id_random(w->eio_tag, PD_FWD_TAG_LEN, PD_ALPHABET_ALNUM) != PD_OK)
        return PD_ERR;
    pd_fwd *f = calloc(1, sizeof(*f));
    if (!f)
        return PD_ERR;
    f->reqs = pd_ptab_create(req_key);
    f->tunnels = pd_ptab_create(tunnel_key);
    f->tunnel_ips = pd_map_create();
    f->get_ips = pd_map_create();
    if (!f->reqs || !f->tunnels || !f->tunnel_ips || !f->get_ips) {
        pd_ptab_free(f->reqs);
        pd_ptab_free(f->tunnels);
        pd_map_free(f->tunnel_ips);
        pd_map_free(f->get_ips);
        free(f);
        return PD_ERR;
    }
    snprintf(f->channel, sizeof(f->channel), "%s%s", PD_FWD_CHANNEL_PREFIX, w->eio_tag);
    uv_timer_init(w->loop, &f->sweep);
    f->sweep.data = w;
    w->fwd = f;
    if (pd_redis_subscribe(w->redis, pd_slice_cstr(f->channel)) != PD_OK)
        return PD_ERR;
    return PD_OK;
}

static void on_sweep_closed(uv_handle_t *h)
{
    free((char *)h - offsetof(pd_fwd, sweep));
}

void pd_fwd_close(pd_worker *w)
{
    pd_fwd *f = w->fwd;
    if (!f)
        return;
    while (f->head)
        req_finish(w, f->head, 503, 'j', "{\"error\":\"Server shutting down\"}", 32);
    pd_ptab_free(f->reqs);
    /* Tunnels belong to their WebSockets, which the session layer closes
     * (each calls pd_fwd_tunnel_end); what is left is only the table. */
    pd_ptab_free(f->tunnels);
    pd_map_free(f->tunnel_ips);
    pd_map_free(f->get_ips);
    uv_close((uv_handle_t *)&f->sweep, on_sweep_closed);
    w->fwd = NULL;
}

int pd_fwd_is_local(const pd_worker *w, pd_slice sid)
{
    return sid.len > PD_FWD_TAG_LEN && memcmp(sid.base, w->eio_tag, PD_FWD_TAG_LEN) == 0;
}

size_t pd_fwd_pending(const pd_worker *w)
{
    return w->fwd ? pd_ptab_count(w->fwd->reqs) : 0;
}

/* The PUBLISH of a request was answered: 0 listeners means its owner is
 * gone. `data` is a copy of the request id (the request may already have
 * its answer: replies travel on the other Redis link). */
static void on_published(redisReply *reply, void *data)
{
    char *id = data;
    pd_worker *w = NULL;
    memcpy(&w, id, sizeof(w));
    pd_fwd *f = w->fwd;
    fwd_req *r = f ? pd_ptab_get(f->reqs, pd_slice_cstr(id + sizeof(w))) : NULL;
    if (r) {
        if (!reply || reply->type == REDIS_REPLY_ERROR)
            req_finish(w, r, 503, 'j', "{\"error\":\"Service unavailable\"}", 31);
        else if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0)
            req_unknown(w, r);
    }
    free(id);
}

void pd_fwd_request(pd_worker *w, pd_http_conn *c, const pd_http_request *req, pd_slice sid,
                    const char *client_ip, const char *cors)
{
    pd_fwd *f = w->fwd;
    int post = req->method == PD_HTTP_POST;
    if ((!post && req->method != PD_HTTP_GET) || sid.len <= PD_FWD_TAG_LEN || sid.len > PD_FWD_MAX_SID ||
        !pd_id_valid(sid)) {
        pd_http_respond(c, 400, "application/json", cors, PD_EIO_ERR_UNKNOWN_SID, strlen(PD_EIO_ERR_UNKNOWN_SID), 0);
        return;
    }
    fwd_req *r = calloc(1, sizeof(*r));
    char *cb_id = NULL;
    if (r) {
        snprintf(r->id, sizeof(r->id), "%llu", (unsigned long long)++f->next_id);
        cb_id = malloc(sizeof(w) + sizeof(r->id));
    }
    if (!r || !cb_id || pd_ptab_put(f->reqs, r) != PD_OK) {
        free(r);
        free(cb_id);
        pd_http_respond_json(c, 500, cors, "{\"error\":\"Internal server error\"}", 1);
        return;
    }
    char head[96 + PD_FWD_MAX_SID];
    int n = snprintf(head, sizeof(head), "Q %c %s %s %.*s\n", post ? 'P' : 'G', w->eio_tag, r->id, (int)sid.len,
                     sid.base);
    r->conn = c;
    r->cors = cors ? strdup(cors) : NULL;
    memcpy(r->owner, sid.base, PD_FWD_TAG_LEN);
    if (!post) {
        /* A GET may wait long: like a local one it leaves the HTTP layer's
         * per-host cap, bounded instead by as many per address as it may
         * have sessions. */
        char key[INET6_ADDRSTRLEN];
        pd_addr_key(client_ip, key);
        if (ip_get(f->get_ips, key) < (size_t)w->cfg.max_conns_per_ip && ip_add(f->get_ips, key, 1) == PD_OK) {
            memcpy(r->ip_key, key, sizeof(key));
            pd_http_conn_release_slot(c);
        }
    }
    r->deadline = pd_mono_ms() + (post ? FWD_POST_TIMEOUT_MS
                                       : (uint64_t)(w->cfg.ping_interval_ms + w->cfg.ping_timeout_ms) + FWD_GET_SLACK_MS);
    r->next = f->head;
    if (f->head)
        f->head->prev = r;
    f->head = r;
    sweep_start(w);
    memcpy(cb_id, &w, sizeof(w));
    memcpy(cb_id + sizeof(w), r->id, sizeof(r->id));
    pd_metric_add(w->m_poll_forwarded, NULL, 1);
    pd_metric_set(w->m_fwd_pending, NULL, (double)pd_ptab_count(f->reqs));
    pd_slice owner = pd_slice_make(sid.base, PD_FWD_TAG_LEN);
    const char *body = post ? req->body.base : NULL;
    size_t blen = post ? req->body.len : 0;
    /* The direct link when one is up (peer.h): no Redis hop either way.
     * A dead owner is noticed by the sweep then, not by PUBLISH's count. */
    if (pd_peer_send_query(w, owner, head, (size_t)n, body, blen) == PD_OK) {
        free(cb_id);
        pd_metric_add(w->m_fwd_path, "link", 1);
        return;
    }
    pd_metric_add(w->m_fwd_path, "redis", 1);
    if (pd_fwd_publish(w, owner, head, (size_t)n, body, blen, on_published, cb_id) != PD_OK) {
        free(cb_id);
        req_finish(w, r, 503, 'j', "{\"error\":\"Service unavailable\"}", 31);
    }
}

int pd_fwd_publish(pd_worker *w, pd_slice to, const char *head, size_t hlen, const char *body, size_t blen,
                   void (*cb)(redisReply *, void *), void *data)
{
    if (to.len != PD_FWD_TAG_LEN)
        return PD_ERR;
    /* Every cross-worker signal comes this way: no formatter. */
    char channel[sizeof(PD_FWD_CHANNEL_PREFIX) - 1 + PD_FWD_TAG_LEN];
    memcpy(channel, PD_FWD_CHANNEL_PREFIX, sizeof(PD_FWD_CHANNEL_PREFIX) - 1);
    memcpy(channel + sizeof(PD_FWD_CHANNEL_PREFIX) - 1, to.base, PD_FWD_TAG_LEN);
    pd_slice parts[2] = {pd_slice_make(head, hlen), pd_slice_make(body, blen)};
    return pd_redis_publish(w->redis, pd_slice_make(channel, sizeof(channel)), parts, 2, cb, data);
}

void pd_fwd_reply(pd_worker *w, pd_slice to, pd_slice id, int status, char type, const char *body,
                  size_t len)
{
    if (to.len != PD_FWD_TAG_LEN || id.len == 0 || id.len > 20)
        return;
    char head[48];
    int n = snprintf(head, sizeof(head), "A %.*s %d %c\n", (int)id.len, id.base, status, type);
    /* On the link the request may have come by, if it is up (peer.h);
     * the forwarder takes an answer from either way. */
    if (pd_peer_send_answer(w, to, head, (size_t)n, body, len) == PD_OK)
        return;
    /* Not sent (Redis down): the forwarder times the request out. */
    pd_fwd_publish(w, to, head, (size_t)n, body, len, NULL, NULL);
}

/* Split "word " off the front of *s. */
static int take_word(pd_slice *s, pd_slice *out)
{
    size_t i = 0;
    while (i < s->len && s->base[i] != ' ' && s->base[i] != '\n')
        i++;
    if (i == 0 || i >= s->len)
        return PD_ERR;
    *out = pd_slice_make(s->base, i);
    *s = pd_slice_make(s->base + i + 1, s->len - i - 1);
    return PD_OK;
}

void pd_fwd_on_message(pd_worker *w, pd_slice m, pd_slice via)
{
    pd_fwd *f = w->fwd;
    pd_slice kind, a, b, c, d;
    if (!f || take_word(&m, &kind) != PD_OK || kind.len != 1)
        return;
    if (kind.base[0] == 'A') {
        if (take_word(&m, &a) != PD_OK || take_word(&m, &b) != PD_OK || take_word(&m, &c) != PD_OK ||
            c.len != 1 || a.len >= 24 || b.len != 3)
            return;
        char id[24];
        memcpy(id, a.base, a.len);
        id[a.len] = '\0';
        fwd_req *r = pd_ptab_get(f->reqs, pd_slice_make(id, a.len));
        if (!r)
            return; /* timed out meanwhile */
        /* By a link, only from the owner it was sent to: request ids are
         * a counter, and a link's far end is only known by its tag. */
        if (via.len && !pd_slice_eq(via, r->owner))
            return;
        int status = (b.base[0] - '0') * 100 + (b.base[1] - '0') * 10 + (b.base[2] - '0');
        if (status < 200 || status > 599)
            status = 502;
        req_finish(w, r, status, c.base[0], m.base, m.len);
        return;
    }
    if (kind.base[0] == 'T' || kind.base[0] == 'X') {
        /* T|X <from> <sid>\n<packet> */
        if (take_word(&m, &a) != PD_OK || take_word(&m, &b) != PD_OK)
            return;
        if (kind.base[0] == 'T')
            pd_poll_tunnel_in(w, a, b, m);
        else
            pd_poll_tunnel_gone(w, a, b);
        return;
    }
    if (kind.base[0] == 'O' || kind.base[0] == 'C') {
        /* O <sid>\n<packet> | C <sid> <code>\n<reason> */
        if (take_word(&m, &a) != PD_OK || a.len > PD_FWD_MAX_SID)
            return;
        fwd_tunnel *t = pd_ptab_get(f->tunnels, a);
        if (!t)
            return;
        if (kind.base[0] == 'O') {
            pd_sess_tunnel_out(t->s, m);
            return;
        }
        uint16_t code = PD_WS_CLOSE_NORMAL;
        if (take_word(&m, &b) == PD_OK && b.len == 4)
            code = (uint16_t)((b.base[0] - '0') * 1000 + (b.base[1] - '0') * 100 + (b.base[2] - '0') * 10 + (b.base[3] - '0'));
        if (code < 1000 || code > 4999)
            code = PD_WS_CLOSE_NORMAL;
        pd_sess_tunnel_close(t->s, code);
        return;
    }
    if (kind.base[0] == 'Q') {
        /* Q <G|P> <from> <id> <sid>\n<body> */
        if (take_word(&m, &a) != PD_OK || take_word(&m, &b) != PD_OK || take_word(&m, &c) != PD_OK ||
            take_word(&m, &d) != PD_OK || a.len != 1)
            return;
        pd_poll_remote(w, a.base[0], b, c, d, m);
    }
}

/* ---- WebSockets carrying another worker's session ---------------------------- */

size_t pd_fwd_tunnel_count(const pd_worker *w, const char *client_ip)
{
    if (!w->fwd)
        return 0;
    if (!client_ip)
        return pd_ptab_count(w->fwd->tunnels);
    char key[INET6_ADDRSTRLEN];
    pd_addr_key(client_ip, key);
    return ip_get(w->fwd->tunnel_ips, key);
}

int pd_fwd_tunnel_begin(pd_worker *w, pd_slice sid, const char *client_ip, pd_sess *s)
{
    pd_fwd *f = w->fwd;
    if (sid.len <= PD_FWD_TAG_LEN || sid.len > PD_FWD_MAX_SID || pd_ptab_get(f->tunnels, sid))
        return PD_ERR;
    fwd_tunnel *t = calloc(1, sizeof(*t));
    if (!t)
        return PD_ERR;
    pd_addr_key(client_ip, t->ip_key);
    if (ip_add(f->tunnel_ips, t->ip_key, 1) != PD_OK) {
        free(t);
        return PD_ERR;
    }
    t->s = s;
    memcpy(t->owner, sid.base, PD_FWD_TAG_LEN);
    memcpy(t->sid, sid.base, sid.len);
    if (pd_ptab_put(f->tunnels, t) != PD_OK) {
        ip_add(f->tunnel_ips, t->ip_key, -1);
        free(t);
        return PD_ERR;
    }
    pd_metric_set(w->m_tunnels, NULL, (double)pd_ptab_count(f->tunnels));
    sweep_start(w);
    return PD_OK;
}

typedef struct owners_walk {
    char (*out)[sizeof(PD_FWD_CHANNEL_PREFIX) + PD_FWD_TAG_LEN];
    size_t cap, n;
    char (*have)[sizeof(PD_FWD_CHANNEL_PREFIX) + PD_FWD_TAG_LEN];
    size_t nhave;
} owners_walk;

static int add_owner(pd_slice key, void *item, void *data)
{
    (void)key;
    owners_walk *ow = data;
    const fwd_tunnel *t = item;
    char ch[sizeof(PD_FWD_CHANNEL_PREFIX) + PD_FWD_TAG_LEN];
    snprintf(ch, sizeof(ch), "%s%s", PD_FWD_CHANNEL_PREFIX, t->owner);
    for (size_t i = 0; i < ow->nhave; i++)
        if (strcmp(ow->have[i], ch) == 0)
            return 0;
    for (size_t i = 0; i < ow->n; i++)
        if (strcmp(ow->out[i], ch) == 0)
            return 0;
    if (ow->n >= ow->cap)
        return 1; /* enough for this sweep */
    memcpy(ow->out[ow->n++], ch, sizeof(ch));
    return 0;
}

size_t pd_fwd_tunnel_owners(pd_worker *w, char (*out)[sizeof(PD_FWD_CHANNEL_PREFIX) + PD_FWD_TAG_LEN], size_t cap,
                            char (*have)[sizeof(PD_FWD_CHANNEL_PREFIX) + PD_FWD_TAG_LEN], size_t nhave)
{
    owners_walk ow = {out, cap, 0, have, nhave};
    if (cap > 0)
        pd_ptab_foreach(w->fwd->tunnels, add_owner, &ow);
    return ow.n;
}

typedef struct gone_walk {
    pd_slice owner;
    pd_sess *list[64];
    size_t n;
} gone_walk;

static int collect_gone(pd_slice key, void *item, void *data)
{
    (void)key;
    gone_walk *g = data;
    const fwd_tunnel *t = item;
    if (pd_slice_eq(g->owner, t->owner) && g->n < 64)
        g->list[g->n++] = t->s;
    return 0;
}

void pd_fwd_tunnels_owner_gone(pd_worker *w, pd_slice owner)
{
    /* Closing a tunnel takes it out of the table, which the walk must not
     * see happen: collect first (a batch per sweep), close after. */
    gone_walk g = {owner, {0}, 0};
    pd_ptab_foreach(w->fwd->tunnels, collect_gone, &g);
    for (size_t i = 0; i < g.n; i++)
        pd_sess_tunnel_close(g.list[i], PD_WS_CLOSE_GOING_AWAY);
}

/* The owner of a tunnel is gone when nobody hears its channel. `data` is a
 * copy of the worker pointer and the sid. */
static void on_tunnel_published(redisReply *reply, void *data)
{
    pd_worker *w = NULL;
    memcpy(&w, data, sizeof(w));
    const char *sid = (const char *)data + sizeof(w);
    pd_fwd *f = w->fwd;
    fwd_tunnel *t = f ? pd_ptab_get(f->tunnels, pd_slice_cstr(sid)) : NULL;
    if (t && (!reply || reply->type == REDIS_REPLY_ERROR ||
              (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0)))
        pd_sess_tunnel_close(t->s, PD_WS_CLOSE_GOING_AWAY);
    free(data);
}

void pd_fwd_tunnel_packet(pd_worker *w, pd_slice sid, pd_slice pkt)
{
    pd_fwd *f = w->fwd;
    fwd_tunnel *t = f ? pd_ptab_get(f->tunnels, sid) : NULL;
    if (!t)
        return;
    char head[PD_FWD_MAX_SID + 32];
    int n = snprintf(head, sizeof(head), "T %s %s\n", w->eio_tag, t->sid);
    char *cb = malloc(sizeof(w) + sizeof(t->sid));
    if (!cb) {
        pd_sess_tunnel_close(t->s, PD_WS_CLOSE_INTERNAL);
        return;
    }
    memcpy(cb, &w, sizeof(w));
    memcpy(cb + sizeof(w), t->sid, sizeof(t->sid));
    pd_metric_add(w->m_poll_forwarded, NULL, 1);
    if (pd_fwd_publish(w, pd_slice_cstr(t->owner), head, (size_t)n, pkt.base, pkt.len, on_tunnel_published, cb) !=
        PD_OK) {
        free(cb);
        pd_sess_tunnel_close(t->s, PD_WS_CLOSE_GOING_AWAY);
    }
}

void pd_fwd_tunnel_end(pd_worker *w, pd_slice sid)
{
    pd_fwd *f = w->fwd;
    fwd_tunnel *t = f ? pd_ptab_del(f->tunnels, sid) : NULL;
    if (!t)
        return;
    ip_add(f->tunnel_ips, t->ip_key, -1);
    pd_metric_set(w->m_tunnels, NULL, (double)pd_ptab_count(f->tunnels));
    char head[PD_FWD_MAX_SID + 32];
    int n = snprintf(head, sizeof(head), "X %s %s\n", w->eio_tag, t->sid);
    pd_fwd_publish(w, pd_slice_cstr(t->owner), head, (size_t)n, NULL, 0, NULL, NULL);
    free(t);
}
