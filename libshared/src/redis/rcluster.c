/* Redis Cluster behind the pd_redis call shape (pd_rcluster.h,
 * docs/architecture.md §Redis Cluster).
 *
 * Nodes: every master of the current map, plus the seeds of
 * REDIS_CLUSTER_NODES (kept so there is always someone to ask for the map).
 * A node owns a command link (a single-instance pd_redis) and, for masters
 * of a subscriber handle, a sharded subscriber link spoken here with
 * pd_subparse (bounded, no allocation per message) on a plain libuv TCP
 * handle.
 *
 * Re-entrancy: replies arrive inside hiredis callbacks, where freeing the
 * pd_redis that delivered them is not safe. So a new map is only parsed
 * there; it is applied (nodes created and freed, channels moved) by the
 * 50 ms tick. */
#include "privydrop/pd_rcluster.h"

#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "privydrop/pd_id.h"
#include "privydrop/pd_ptab.h"
#include "privydrop/pd_sentinel.h"
#include "privydrop/pd_slot.h"
#include "privydrop/pd_subparse.h"

#define TICK_MS 50u
#define SUB_BACKOFF_MIN_MS 100u
#define SUB_BACKOFF_MAX_MS 5000u
#define REFRESH_MIN_GAP_MS 200u      /* between two CLUSTER SLOTS */
#define REFRESH_NOT_READY_MS 1000u   /* while not ready, ask this often */
#define SUB_READ_CHUNK 65536

typedef struct rcl_node rcl_node;

/* A sharded subscriber link. Its memory lives until libuv closes the TCP
 * handle; `node` is NULL once the node let go of it. */
typedef struct rcl_sub {
    uv_tcp_t tcp;
    uv_connect_t creq;
    rcl_node *node;
    pd_subparse *sp;      /* the link's stream, parsed with its bounds (pd_subparse.h) */
    int up;                 /* TCP connected, commands written */
    int verified;           /* a PONG came back: every SSUBSCRIBE before it is live */
    uint64_t started_ms;    /* connect began */
    uint64_t ping_sent_ms;  /* outstanding PING, 0 if none */
    uint64_t last_ping_ms;  /* last PING written */
} rcl_sub;

struct rcl_node {
    pd_rcluster *owner;
    char host[PD_SLOT_HOST_MAX + 1];
    int port;
    pd_redis *cmd;           /* command link (owned) */
    int in_map;              /* a master of the current map */
    int seed;                /* from REDIS_CLUSTER_NODES */
    rcl_sub *sub;            /* subscriber link or NULL */
    unsigned sub_backoff_ms;
    uint64_t sub_next_ms;    /* no reconnect before */
    uint64_t sub_heard_ms;   /* last bytes on the subscriber link */
    unsigned long sub_connects;
    /* Slots this node's link answered -MOVED for since the last tick, one
     * bit each (PD_SLOT_COUNT / 8 bytes, allocated on the first), or NULL. */
    uint8_t *refused;
    rcl_node *next;
};

/* One wanted channel; `node` is the master it is subscribed on (or will be
 * once that node's link is up), NULL when it needs a home. */
typedef struct rcl_chan {
    rcl_node *node;
    uint16_t len;
    uint8_t moved; /* re-homed by a -MOVED since the last map */
    char name[];
} rcl_chan;

static pd_slice chan_key(const void *p)
{
    const rcl_chan *ch = p;
    return pd_slice_make(ch->name, ch->len);
}

struct pd_rcluster {
    uv_loop_t *loop;
    pd_redis *outer;
    pd_redis_state_fn state_cb;
    pd_redis_message_fn message_cb;
    void *data;
    char *password;
    unsigned watchdog_ms;
    int subscriber;
    size_t sub_max_message;   /* the subscriber links' payload bound */
    rcl_node *nodes;
    pd_slot_map *map;         /* current map, or NULL */
    pd_slot_map *next_map;    /* parsed, to apply at the next tick */
    /* The node asked for the map: a master announced with an empty host
     * (a node that does not know its own address) is at that host. */
    char map_host[PD_SLOT_HOST_MAX + 1];
    char next_map_host[PD_SLOT_HOST_MAX + 1];
    int map_complete;         /* every master of the map has a node */
    char asked_host[PD_SLOT_HOST_MAX + 1]; /* host of the node the question went to */
    int refresh_wanted;
    int refresh_inflight;
    uint64_t refresh_sent_ms;
    unsigned long refreshes;
    unsigned long redirects;
    unsigned long master_changes; /* maps applied that gave slots to another master */
    int ready;
    size_t pending;           /* user commands not yet answered */
    pd_ptab *chans;
    unsigned long chan_walks; /* walks of `chans` (pd_rcluster_chan_walks) */
    int refusals;             /* some node's `refused` is set */
    uv_timer_t tick;
    int closing;
};

/* Every walk of the channel table goes through here: counted, as what a
 * walk costs grows with the channels held (pd_rcluster_chan_walks). */
static void chans_walk(pd_rcluster *c, pd_ptab_visit_fn fn, void *data)
{
    c->chan_walks++;
    pd_ptab_foreach(c->chans, fn, data);
}

/* ---- pure helpers ---------------------------------------------------------- */

/* A decimal length at buf[*pos] up to "\r\n". -1 if malformed. */
static long read_len(const char *buf, size_t len, size_t *pos)
{
    long v = 0;
    size_t p = *pos, start = p;
    while (p < len && buf[p] >= '0' && buf[p] <= '9') {
        v = v * 10 + (buf[p] - '0');
        if (v > (1L << 30))
            return -1;
        p++;
    }
    if (p == start || p + 1 >= len || buf[p] != '\r' || buf[p + 1] != '\n')
        return -1;
    *pos = p + 2;
    return v;
}

int pd_rcluster_split(const char *buf, size_t len, const char **argv, size_t *lens, int cap)
{
    size_t pos = 1;
    if (!buf || len < 4 || buf[0] != '*')
        return -1;
    long n = read_len(buf, len, &pos);
    if (n < 1 || n > cap)
        return -1;
    for (long i = 0; i < n; i++) {
        if (pos >= len || buf[pos] != '$')
            return -1;
        pos++;
        long l = read_len(buf, len, &pos);
        if (l < 0 || (size_t)l > len - pos || len - pos - (size_t)l < 2)
            return -1;
        argv[i] = buf + pos;
        lens[i] = (size_t)l;
        pos += (size_t)l;
        if (buf[pos] != '\r' || buf[pos + 1] != '\n')
            return -1;
        pos += 2;
    }
    return pos == len ? (int)n : -1;
}

static int arg_is(const char *a, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len == n && strncasecmp(a, lit, n) == 0;
}

pd_rcluster_route_kind pd_rcluster_route(int argc, const char **argv, const size_t *lens, pd_slice *key)
{
    if (argc < 1)
        return PD_RCL_REFUSED;
    const char *c = argv[0];
    size_t cl = lens[0];
    static const char *const keyless[] = {"PING", "INFO", "CLUSTER", "TIME", "ECHO", "ROLE", "ASKING", NULL};
    for (int i = 0; keyless[i]; i++)
        if (arg_is(c, cl, keyless[i]))
            return PD_RCL_ANY;
    /* A subscription needs a connection of its own (pd_rcluster_subscribe);
     * a transaction would need every command on one node. */
    static const char *const refused[] = {"SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE",
                                          "PUNSUBSCRIBE", "SUNSUBSCRIBE", "MULTI", "EXEC", "WATCH",
                                          "MONITOR", "SELECT", NULL};
    for (int i = 0; refused[i]; i++)
        if (arg_is(c, cl, refused[i]))
            return PD_RCL_REFUSED;
    if (arg_is(c, cl, "PUBSUB")) {
        if (argc >= 2 && arg_is(argv[1], lens[1], "NUMSUB"))
            return argc - 2 <= PD_RCLUSTER_MAX_NUMSUB ? PD_RCL_NUMSUB : PD_RCL_REFUSED;
        if (argc >= 3 && arg_is(argv[1], lens[1], "SHARDNUMSUB") && argc == 3) {
            *key = pd_slice_make(argv[2], lens[2]);
            return PD_RCL_KEY;
        }
        return PD_RCL_REFUSED;
    }
    if (arg_is(c, cl, "EVAL") || arg_is(c, cl, "EVALSHA") || arg_is(c, cl, "FCALL")) {
        if (argc < 3)
            return PD_RCL_REFUSED;
        long nk = 0;
        for (size_t i = 0; i < lens[2]; i++) {
            if (argv[2][i] < '0' || argv[2][i] > '9' || nk > 100000)
                return PD_RCL_REFUSED;
            nk = nk * 10 + (argv[2][i] - '0');
        }
        if (lens[2] == 0 || nk > argc - 3)
            return PD_RCL_REFUSED;
        if (nk == 0)
            return PD_RCL_ANY;
        *key = pd_slice_make(argv[3], lens[3]);
        return PD_RCL_KEY;
    }
    if (argc < 2)
        return PD_RCL_REFUSED;
    *key = pd_slice_make(argv[1], lens[1]);
    return PD_RCL_KEY;
}

/* ---- nodes ------------------------------------------------------------------ */

static void update_ready(pd_rcluster *c);
static void sub_drop(rcl_node *n, int backoff);

static void on_node_state(pd_redis *r, int ready, void *data)
{
    (void)r;
    rcl_node *n = data;
    pd_rcluster *c = n->owner;
    /* A lost master may have failed over: ask where its slots went. */
    if (!ready)
        c->refresh_wanted = 1;
    update_ready(c);
}

static rcl_node *node_find(pd_rcluster *c, const char *host, int port)
{
    for (rcl_node *n = c->nodes; n; n = n->next)
        if (n->port == port && strcmp(n->host, host) == 0)
            return n;
    return NULL;
}

static rcl_node *node_get(pd_rcluster *c, const char *host, int port)
{
    rcl_node *n = node_find(c, host, port);
    if (n)
        return n;
    if (strlen(host) > PD_SLOT_HOST_MAX || port < 1 || port > 65535)
        return NULL;
    n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->owner = c;
    snprintf(n->host, sizeof(n->host), "%s", host);
    n->port = port;
    n->sub_backoff_ms = SUB_BACKOFF_MIN_MS;
    pd_redis_options o = {0};
    o.host = n->host;
    o.port = port;
    o.password = c->password;
    o.watchdog_ms = c->watchdog_ms;
    n->cmd = pd_redis_create(c->loop, &o, on_node_state, NULL, n);
    if (!n->cmd) {
        free(n);
        return NULL;
    }
    n->next = c->nodes;
    c->nodes = n;
    return n;
}

static int unhome_visit(pd_slice key, void *item, void *data)
{
    (void)key;
    rcl_chan *ch = item;
    if (ch->node == data)
        ch->node = NULL;
    return 0;
}

static void node_free(pd_rcluster *c, rcl_node *n)
{
    for (rcl_node **p = &c->nodes; *p; p = &(*p)->next) {
        if (*p == n) {
            *p = n->next;
            break;
        }
    }
    chans_walk(c, unhome_visit, n);
    sub_drop(n, 0);
    pd_redis_free(n->cmd);
    free(n->refused);
    free(n);
}

static const char *slot_node_host(const pd_rcluster *c, const pd_slot_node *m)
{
    return m->host[0] ? m->host : c->map_host;
}

static rcl_node *node_for_slot(pd_rcluster *c, unsigned slot)
{
    const pd_slot_node *m = c->map ? pd_slot_map_lookup(c->map, slot) : NULL;
    return m ? node_find(c, slot_node_host(c, m), m->port) : NULL;
}

/* ---- the sharded subscriber link -------------------------------------------- */

typedef struct sub_write {
    uv_write_t req;
    char *buf;
} sub_write;

static void on_sub_written(uv_write_t *req, int status)
{
    (void)status; /* a failed write shows up as a read error or the watchdog */
    sub_write *w = (sub_write *)req;
    free(w->buf);
    free(w);
}

static int sub_send(rcl_sub *s, int argc, const char **argv, const size_t *lens)
{
    if (!s || !s->up)
        return PD_ERR;
    char *buf = NULL;
    int len = redisFormatCommandArgv(&buf, argc, argv, lens);
    if (len < 0 || !buf)
        return PD_ERR;
    sub_write *w = malloc(sizeof(*w));
    if (!w) {
        free(buf);
        return PD_ERR;
    }
    w->buf = buf;
    uv_buf_t b = uv_buf_init(buf, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, on_sub_written) != 0) {
        free(buf);
        free(w);
        return PD_ERR;
    }
    return PD_OK;
}

static int sub_chan_cmd(rcl_sub *s, const char *verb, const rcl_chan *ch)
{
    const char *argv[2] = {verb, ch->name};
    size_t lens[2] = {strlen(verb), ch->len};
    return sub_send(s, 2, argv, lens);
}

static void sub_ping(rcl_sub *s, uint64_t now)
{
    const char *argv[1] = {"PING"};
    size_t lens[1] = {4};
    if (sub_send(s, 1, argv, lens) == PD_OK) {
        s->ping_sent_ms = now;
        s->last_ping_ms = now;
    }
}

static void on_sub_closed(uv_handle_t *h)
{
    rcl_sub *s = h->data;
    pd_subparse_free(s->sp);
    free(s);
}

/* Let go of the node's subscriber link; with `backoff`, reconnect later. */
static void sub_drop(rcl_node *n, int backoff)
{
    rcl_sub *s = n->sub;
    if (!s)
        return;
    n->sub = NULL;
    s->node = NULL;
    uv_read_stop((uv_stream_t *)&s->tcp);
    uv_close((uv_handle_t *)&s->tcp, on_sub_closed);
    if (backoff) {
        unsigned jitter = 0;
        pd_random_bytes(&jitter, sizeof(jitter));
        unsigned d = n->sub_backoff_ms;
        d = d - d / 4 + jitter % (d / 2 + 1);
        n->sub_next_ms = pd_mono_ms() + d;
        n->sub_backoff_ms = PD_MIN(n->sub_backoff_ms * 2, SUB_BACKOFF_MAX_MS);
        /* The node may be gone for good (a failover): ask where its slots are. */
        n->owner->refresh_wanted = 1;
    }
    update_ready(n->owner);
}

static int sub_resubscribe_visit(pd_slice key, void *item, void *data)
{
    (void)key;
    rcl_chan *ch = item;
    rcl_sub *s = data;
    if (ch->node == s->node)
        sub_chan_cmd(s, "SSUBSCRIBE", ch);
    return 0;
}

static void chan_home(pd_rcluster *c, rcl_chan *ch);

/* Note that n's link answered -MOVED for `slot`: the SSUBSCRIBE of a
 * channel of that slot was refused there. Which channel is not said, and
 * finding out means a walk of every channel held: that is left to the
 * tick, one walk for all the refusals heard since (a stale map refuses
 * every channel a master was sent, one -MOVED each, and a walk per -MOVED
 * would cost channels squared, with the loop stopped meanwhile). */
static int node_refuse(rcl_node *n, unsigned slot)
{
    if (slot >= PD_SLOT_COUNT)
        return PD_ERR;
    if (!n->refused && !(n->refused = calloc(PD_SLOT_COUNT / 8, 1)))
        return PD_ERR;
    n->refused[slot >> 3] |= (uint8_t)(1u << (slot & 7));
    n->owner->refusals = 1;
    return PD_OK;
}

/* A channel whose node refused its slot: not subscribed there, so homed
 * afresh by the (patched) map — once per map: two masters that each name
 * the other while the cluster settles would otherwise bounce the
 * SSUBSCRIBE between them at network speed. A second refusal leaves the
 * channel for the next map (asked within REFRESH_MIN_GAP_MS). */
static int refused_visit(pd_slice key, void *item, void *data)
{
    rcl_chan *ch = item;
    rcl_node *n = ch->node;
    if (!n || !n->refused)
        return 0;
    unsigned slot = pd_slot_of(key);
    if (!(n->refused[slot >> 3] & (1u << (slot & 7))))
        return 0;
    ch->node = NULL;
    if (!ch->moved) {
        ch->moved = 1;
        chan_home(data, ch);
    }
    return 0;
}

/* From the tick: the refusals heard since the last one, in one walk. */
static void refusals_take(pd_rcluster *c)
{
    c->refusals = 0;
    chans_walk(c, refused_visit, c);
    for (rcl_node *n = c->nodes; n; n = n->next) {
        free(n->refused);
        n->refused = NULL;
    }
}

/* One frame on a subscriber link. */
static void sub_event(rcl_sub *s, const pd_subparse_event *ev)
{
    rcl_node *n = s->node;
    pd_rcluster *c = n->owner;
    switch (ev->kind) {
    case PD_SUB_ERROR: {
        /* -MOVED: an SSUBSCRIBE went out on a stale map, typically while a
         * slot is being resharded and the master asked for the map had not
         * heard of the move yet. The error names the slot and its owner,
         * and the link with its other channels is sound: move that slot's
         * channels there (at the next tick: node_refuse) and ask for
         * the map again. Dropping the link instead would leave the worker
         * not ready (joins refused) for as long as the map stays stale. */
        pd_slot_redirect rd;
        c->refresh_wanted = 1;
        if (pd_slot_parse_redirect(ev->payload, &rd) == PD_OK && rd.kind == PD_SLOT_MOVED && c->map &&
            pd_slot_map_apply(c->map, &rd) == PD_OK && node_refuse(n, rd.slot) == PD_OK) {
            c->redirects++;
            return;
        }
        /* -NOAUTH, -CLUSTERDOWN, anything else: none says which command
         * failed, so start the link over once the map is asked again;
         * every channel is sent anew on reconnect. */
        sub_drop(n, 1);
        return;
    }
    case PD_SUB_STATUS:
        /* +OK of AUTH, or +PONG while nothing is subscribed yet. */
        if (!pd_slice_eq(ev->payload, "PONG"))
            return;
        /* fall through */
    case PD_SUB_PONG:
        s->ping_sent_ms = 0;
        if (!s->verified) {
            s->verified = 1;
            n->sub_backoff_ms = SUB_BACKOFF_MIN_MS;
            update_ready(c);
        }
        return;
    case PD_SUB_SMESSAGE:
        if (c->message_cb && !c->closing)
            c->message_cb(ev->channel, ev->payload, c->data);
        return;
    case PD_SUB_SUNSUBSCRIBE: {
        if (!ev->channel.base)
            return;
        /* Asked for (the channel is no longer wanted here: nothing to do) or
         * not: the node gave the slot away (resharding, or it became a
         * replica) and dropped its subscribers. The channel needs a home. */
        rcl_chan *ch = pd_ptab_get(c->chans, ev->channel);
        if (ch && ch->node == n) {
            ch->node = NULL;
            c->refresh_wanted = 1;
        }
        return;
    }
    default:
        return; /* ssubscribe confirmations; no plain pub/sub on these links */
    }
}

/* Reads go straight into the parser's buffer; a buffer it cannot grow
 * (memory) is an empty one, which libuv reports as UV_ENOBUFS: dropped. */
static void on_sub_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    rcl_sub *s = h->data;
    char *b = NULL;
    size_t room = 0;
    if (pd_subparse_space(s->sp, &b, &room) != PD_OK)
        room = 0;
    *buf = uv_buf_init(b, (unsigned)PD_MIN(room, (size_t)SUB_READ_CHUNK));
}

static void on_sub_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf; /* the parser's own space (on_sub_alloc) */
    rcl_sub *s = stream->data;
    if (!s->node)
        return;
    if (nread < 0) {
        sub_drop(s->node, 1);
        return;
    }
    if (nread == 0)
        return;
    pd_subparse_wrote(s->sp, (size_t)nread);
    pd_subparse_event ev;
    int rc, heard = 0;
    while ((rc = pd_subparse_next(s->sp, &ev)) == PD_SUBPARSE_EVENT) {
        /* Only whole frames count as heard: a node that dribbles one
         * frame a byte at a time is as dead as a silent one. */
        if (!heard++)
            s->node->sub_heard_ms = pd_mono_ms();
        sub_event(s, &ev);
        if (!s->node)
            return; /* dropped while handling the frame */
    }
    if (rc == PD_SUBPARSE_BAD) /* malformed or over a bound: nothing after it can be trusted */
        sub_drop(s->node, 1);
}

static void on_sub_connected(uv_connect_t *req, int status)
{
    rcl_sub *s = req->data;
    if (!s->node)
        return; /* dropped meanwhile; the close callback frees it */
    rcl_node *n = s->node;
    if (status != 0 || uv_read_start((uv_stream_t *)&s->tcp, on_sub_alloc, on_sub_read) != 0) {
        sub_drop(n, 1);
        return;
    }
    s->up = 1;
    n->sub_connects++;
    n->sub_heard_ms = pd_mono_ms();
    pd_rcluster *c = n->owner;
    if (c->password) {
        const char *argv[2] = {"AUTH", c->password};
        size_t lens[2] = {4, strlen(c->password)};
        sub_send(s, 2, argv, lens);
    }
    chans_walk(c, sub_resubscribe_visit, s);
    /* Last: its answer comes after every confirmation above. */
    sub_ping(s, pd_mono_ms());
}

static int resolve(const char *host, int port, struct sockaddr_storage *out)
{
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)out) == 0)
        return PD_OK;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)out) == 0)
        return PD_OK;
    /* A host name (nodes announce addresses, so this is rare): blocking,
     * like hiredis's own connect. */
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
        return PD_ERR;
    memcpy(out, res->ai_addr, res->ai_addrlen);
    if (res->ai_family == AF_INET)
        ((struct sockaddr_in *)out)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)out)->sin6_port = htons((uint16_t)port);
    freeaddrinfo(res);
    return PD_OK;
}

static void sub_connect(rcl_node *n)
{
    pd_rcluster *c = n->owner;
    struct sockaddr_storage addr;
    n->sub_next_ms = pd_mono_ms() + n->sub_backoff_ms;
    if (resolve(n->host, n->port, &addr) != PD_OK)
        return;
    rcl_sub *s = calloc(1, sizeof(*s));
    if (!s)
        return;
    s->sp = pd_subparse_create(c->sub_max_message);
    if (!s->sp || uv_tcp_init(c->loop, &s->tcp) != 0) {
        pd_subparse_free(s->sp);
        free(s);
        return;
    }
    s->tcp.data = s;
    s->creq.data = s;
    s->node = n;
    s->started_ms = pd_mono_ms();
    n->sub = s;
    uv_tcp_nodelay(&s->tcp, 1);
    if (uv_tcp_connect(&s->creq, &s->tcp, (const struct sockaddr *)&addr, on_sub_connected) != 0)
        sub_drop(n, 1);
}

/* ---- channels ------------------------------------------------------------------ */

/* Subscribe the channel on the master that owns its slot, leaving the one
 * it was on if that changed. */
static void chan_home(pd_rcluster *c, rcl_chan *ch)
{
    rcl_node *owner = node_for_slot(c, pd_slot_of(pd_slice_make(ch->name, ch->len)));
    if (ch->node == owner)
        return;
    if (ch->node && ch->node->sub)
        sub_chan_cmd(ch->node->sub, "SUNSUBSCRIBE", ch);
    ch->node = owner;
    if (owner && owner->sub && owner->sub->up)
        sub_chan_cmd(owner->sub, "SSUBSCRIBE", ch);
    /* Otherwise sent when the owner's link connects. */
}

static int home_visit(pd_slice key, void *item, void *data)
{
    (void)key;
    rcl_chan *ch = item;
    ch->moved = 0; /* a new map: a -MOVED may re-home it again */
    chan_home(data, ch);
    return 0;
}

int pd_rcluster_subscribe(pd_rcluster *c, pd_slice channel)
{
    if (!c->subscriber || channel.len > UINT16_MAX)
        return PD_ERR;
    if (pd_ptab_get(c->chans, channel))
        return PD_OK;
    rcl_chan *ch = calloc(1, sizeof(*ch) + channel.len + 1);
    if (!ch)
        return PD_ERR;
    memcpy(ch->name, channel.base, channel.len);
    ch->len = (uint16_t)channel.len;
    if (pd_ptab_put(c->chans, ch) != PD_OK) {
        free(ch);
        return PD_ERR;
    }
    chan_home(c, ch);
    return PD_OK;
}

int pd_rcluster_unsubscribe(pd_rcluster *c, pd_slice channel)
{
    rcl_chan *ch = pd_ptab_del(c->chans, channel);
    if (!ch)
        return PD_OK;
    /* A message already on its way is still delivered; callers ignore
     * channels they no longer hold, as with a plain UNSUBSCRIBE. */
    if (ch->node && ch->node->sub)
        sub_chan_cmd(ch->node->sub, "SUNSUBSCRIBE", ch);
    free(ch);
    return PD_OK;
}

size_t pd_rcluster_subscription_count(const pd_rcluster *c)
{
    return pd_ptab_count(c->chans);
}

/* ---- the map ---------------------------------------------------------------------- */

static void on_slots(redisReply *rep, void *data)
{
    pd_rcluster *c = data;
    c->refresh_inflight = 0;
    if (c->closing)
        return;
    const char *err = NULL;
    pd_slot_map *m = rep && rep->type == REDIS_REPLY_ARRAY ? pd_slot_map_from_reply(rep, &err) : NULL;
    if (!m)
        return; /* asked again at the next tick while not ready */
    pd_slot_map_free(c->next_map);
    c->next_map = m;
    memcpy(c->next_map_host, c->asked_host, sizeof(c->next_map_host));
}

static void refresh_send(pd_rcluster *c, uint64_t now)
{
    /* Ask a master of the current map first, a seed otherwise. */
    rcl_node *pick = NULL;
    for (rcl_node *n = c->nodes; n; n = n->next) {
        if (!pd_redis_ready(n->cmd))
            continue;
        if (!pick || (n->in_map && !pick->in_map))
            pick = n;
    }
    if (!pick)
        return;
    if (pd_redis_cmd(pick->cmd, on_slots, c, "CLUSTER SLOTS") == PD_OK) {
        memcpy(c->asked_host, pick->host, sizeof(c->asked_host));
        c->refresh_inflight = 1;
        c->refresh_sent_ms = now;
        c->refresh_wanted = 0;
    }
}

/* Take a new map: a node per master, the others (seeds apart) freed,
 * channels moved to their slots' masters. Runs from the tick only. */
/* 1 when some slot is served by another master (or by none) in `m`. */
static int map_moves_slots(const pd_slot_map *old, const char *old_host, const pd_slot_map *m,
                           const char *new_host)
{
    for (unsigned s = 0; s < PD_SLOT_COUNT; s++) {
        const pd_slot_node *a = pd_slot_map_lookup(old, s), *b = pd_slot_map_lookup(m, s);
        if (!a || !b) {
            if (a != b)
                return 1;
            continue;
        }
        if (a->port != b->port || strcmp(a->host[0] ? a->host : old_host, b->host[0] ? b->host : new_host) != 0)
            return 1;
    }
    return 0;
}

static void map_apply(pd_rcluster *c, pd_slot_map *m)
{
    if (c->map && map_moves_slots(c->map, c->map_host, m, c->next_map_host))
        c->master_changes++;
    pd_slot_map_free(c->map);
    c->map = m;
    memcpy(c->map_host, c->next_map_host, sizeof(c->map_host));
    c->refreshes++;
    for (rcl_node *n = c->nodes; n; n = n->next)
        n->in_map = 0;
    c->map_complete = 1;
    for (size_t i = 0; i < pd_slot_map_node_count(m); i++) {
        const pd_slot_node *sn = pd_slot_map_node(m, i);
        rcl_node *n = node_get(c, slot_node_host(c, sn), sn->port);
        if (n)
            n->in_map = 1;
        else
            c->map_complete = 0; /* out of memory: not ready, asked again */
    }
    for (rcl_node *n = c->nodes, *next; n; n = next) {
        next = n->next;
        if (n->in_map)
            continue;
        if (n->seed) {
            chans_walk(c, unhome_visit, n);
            sub_drop(n, 0);
        } else {
            node_free(c, n);
        }
    }
    chans_walk(c, home_visit, c);
    update_ready(c);
}

/* ---- readiness ------------------------------------------------------------------- */

static void update_ready(pd_rcluster *c)
{
    int ready = c->map && c->map_complete && pd_slot_map_covered(c->map) == PD_SLOT_COUNT && !c->closing;
    for (rcl_node *n = c->nodes; n && ready; n = n->next) {
        if (!n->in_map)
            continue;
        if (!pd_redis_ready(n->cmd) || (c->subscriber && !(n->sub && n->sub->verified)))
            ready = 0;
    }
    if (ready != c->ready) {
        c->ready = ready;
        if (!ready)
            c->refresh_wanted = 1;
        if (c->state_cb && !c->closing)
            c->state_cb(c->outer, ready, c->data);
    }
}

int pd_rcluster_ready(const pd_rcluster *c)
{
    return c->ready;
}

/* ---- the tick: map, subscriber links, their watchdog ---------------------------------- */

static void on_tick(uv_timer_t *t)
{
    pd_rcluster *c = t->data;
    if (c->closing)
        return;
    uint64_t now = pd_mono_ms();
    if (c->next_map) {
        pd_slot_map *m = c->next_map;
        c->next_map = NULL;
        map_apply(c, m);
    }
    if (c->refusals)
        refusals_take(c);
    uint64_t limit = 3ull * c->watchdog_ms;
    for (rcl_node *n = c->nodes; n; n = n->next) {
        if (!c->subscriber || !n->in_map)
            continue;
        rcl_sub *s = n->sub;
        if (!s) {
            if (now >= n->sub_next_ms)
                sub_connect(n);
            continue;
        }
        if (!s->up) {
            if (now - s->started_ms > limit)
                sub_drop(n, 1);
            continue;
        }
        if (s->ping_sent_ms) {
            /* Dead means silent, as in pd_redis's watchdog. */
            if (now - s->ping_sent_ms > limit && now - n->sub_heard_ms > limit)
                sub_drop(n, 1);
            continue;
        }
        /* A PING a period while idle; every tick while messages flow, so
         * that how late it comes back says how far behind we read. */
        if (now - s->last_ping_ms >= c->watchdog_ms || (s->verified && now - n->sub_heard_ms <= 200))
            sub_ping(s, now);
    }
    int want = c->refresh_wanted || (!c->ready && now - c->refresh_sent_ms >= REFRESH_NOT_READY_MS);
    if (want && !c->refresh_inflight && now - c->refresh_sent_ms >= REFRESH_MIN_GAP_MS)
        refresh_send(c, now);
}

int pd_rcluster_sub_behind(const pd_rcluster *c)
{
    if (!c->ready)
        return 0;
    uint64_t now = pd_mono_ms();
    for (const rcl_node *n = c->nodes; n; n = n->next) {
        const rcl_sub *s = n->sub;
        if (n->in_map && s && s->verified && s->ping_sent_ms && now - s->ping_sent_ms > 100 &&
            now - n->sub_heard_ms < 100)
            return 1;
    }
    return 0;
}

/* ---- commands ------------------------------------------------------------------- */

typedef struct numsub numsub;

/* A user command in flight. The arguments are copied: a redirection sends
 * them again. */
typedef struct rcl_call {
    pd_rcluster *c;
    pd_redis_reply_fn cb;
    void *data;
    numsub *ns;          /* a part of a NUMSUB fan-out, or NULL */
    int ns_index;
    int keyed;
    unsigned slot;
    int hops;
    int argc;
    const char **argv;   /* into the same allocation */
    size_t *lens;
} rcl_call;

struct numsub {
    pd_rcluster *c;
    pd_redis_reply_fn cb;
    void *data;
    int n;               /* channels */
    int outstanding;     /* parts not yet answered */
    int failed;          /* a part failed: the caller gets NULL */
    char **names;
    size_t *name_lens;
    long long *counts;
};

static void on_call_reply(redisReply *rep, void *data);
static void numsub_part_done(numsub *ns, int index, redisReply *rep);

static rcl_call *call_new(pd_rcluster *c, int argc, const char **argv, const size_t *lens)
{
    size_t bytes = sizeof(rcl_call) + (size_t)argc * (sizeof(char *) + sizeof(size_t));
    for (int i = 0; i < argc; i++)
        bytes += lens[i] + 1;
    rcl_call *k = calloc(1, bytes);
    if (!k)
        return NULL;
    k->c = c;
    k->argc = argc;
    k->argv = (const char **)(k + 1);
    k->lens = (size_t *)(k->argv + argc);
    char *p = (char *)(k->lens + argc);
    for (int i = 0; i < argc; i++) {
        memcpy(p, argv[i], lens[i]);
        p[lens[i]] = '\0';
        k->argv[i] = p;
        k->lens[i] = lens[i];
        p += lens[i] + 1;
    }
    return k;
}

/* Send to `to`, or to the slot's master (any ready master for a keyless
 * command). */
static int call_send(rcl_call *k, rcl_node *to, int asking)
{
    pd_rcluster *c = k->c;
    rcl_node *n = to;
    if (!n && k->keyed)
        n = node_for_slot(c, k->slot);
    if (!n && !k->keyed)
        for (rcl_node *m = c->nodes; m && !n; m = m->next)
            if (m->in_map && pd_redis_ready(m->cmd))
                n = m;
    if (!n)
        return PD_ERR;
    if (asking && pd_redis_cmd(n->cmd, NULL, NULL, "ASKING") != PD_OK)
        return PD_ERR;
    return pd_redis_cmd_argv(n->cmd, on_call_reply, k, k->argc, k->argv, k->lens);
}

static void call_finish(rcl_call *k, redisReply *rep)
{
    pd_rcluster *c = k->c;
    if (k->ns) {
        numsub_part_done(k->ns, k->ns_index, rep);
    } else {
        c->pending--;
        if (k->cb)
            k->cb(rep, k->data);
    }
    free(k);
}

static void on_call_reply(redisReply *rep, void *data)
{
    rcl_call *k = data;
    pd_rcluster *c = k->c;
    if (rep && rep->type == REDIS_REPLY_ERROR && !c->closing) {
        pd_slot_redirect rd;
        if (pd_slot_parse_redirect(pd_slice_make(rep->str, rep->len), &rd) == PD_OK) {
            if (rd.kind == PD_SLOT_MOVED) {
                if (c->map)
                    pd_slot_map_apply(c->map, &rd);
                c->refresh_wanted = 1;
            }
            rcl_node *to = rd.host[0] && k->hops < PD_RCLUSTER_MAX_REDIRECTS ? node_get(c, rd.host, rd.port) : NULL;
            if (to && pd_redis_ready(to->cmd)) {
                k->hops++;
                c->redirects++;
                if (call_send(k, to, rd.kind == PD_SLOT_ASK) == PD_OK)
                    return;
            }
            /* The node is new (not connected yet) or too many hops: the
             * caller gets the redirection as an error; the map is being
             * asked again, so the next command goes the right way. */
        } else if (rep->len >= 11 && memcmp(rep->str, "CLUSTERDOWN", 11) == 0) {
            c->refresh_wanted = 1;
        }
    }
    call_finish(k, rep);
}

/* ---- PUBSUB NUMSUB as SHARDNUMSUB per channel ---------------------------------------- */

static void numsub_free(numsub *ns)
{
    for (int i = 0; i < ns->n; i++)
        free(ns->names[i]);
    free(ns->names);
    free(ns->name_lens);
    free(ns->counts);
    free(ns);
}

/* Every part answered: one reply shaped as PUBSUB NUMSUB's, built here. */
static void numsub_complete(numsub *ns)
{
    pd_rcluster *c = ns->c;
    c->pending--;
    if (ns->failed) {
        if (ns->cb)
            ns->cb(NULL, ns->data);
        numsub_free(ns);
        return;
    }
    size_t m = 2u * (size_t)ns->n;
    redisReply top = {0};
    redisReply *el = calloc(m ? m : 1, sizeof(*el));
    redisReply **ptrs = calloc(m ? m : 1, sizeof(*ptrs));
    if (!el || !ptrs) {
        free(el);
        free(ptrs);
        if (ns->cb)
            ns->cb(NULL, ns->data);
        numsub_free(ns);
        return;
    }
    top.type = REDIS_REPLY_ARRAY;
    top.elements = m;
    top.element = ptrs;
    for (int i = 0; i < ns->n; i++) {
        el[2 * i].type = REDIS_REPLY_STRING;
        el[2 * i].str = ns->names[i];
        el[2 * i].len = ns->name_lens[i];
        el[2 * i + 1].type = REDIS_REPLY_INTEGER;
        el[2 * i + 1].integer = ns->counts[i];
        ptrs[2 * i] = &el[2 * i];
        ptrs[2 * i + 1] = &el[2 * i + 1];
    }
    if (ns->cb)
        ns->cb(&top, ns->data);
    free(el);
    free(ptrs);
    numsub_free(ns);
}

static void numsub_part_done(numsub *ns, int index, redisReply *rep)
{
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 && rep->element[1]->type == REDIS_REPLY_INTEGER)
        ns->counts[index] = rep->element[1]->integer;
    else
        ns->failed = 1;
    if (--ns->outstanding == 0)
        numsub_complete(ns);
}

static int numsub_start(pd_rcluster *c, pd_redis_reply_fn cb, void *data, int argc, const char **argv,
                        const size_t *lens)
{
    numsub *ns = calloc(1, sizeof(*ns));
    if (!ns)
        return PD_ERR;
    ns->c = c;
    ns->cb = cb;
    ns->data = data;
    ns->n = argc - 2;
    ns->names = calloc(ns->n ? (size_t)ns->n : 1, sizeof(char *));
    ns->name_lens = calloc(ns->n ? (size_t)ns->n : 1, sizeof(size_t));
    ns->counts = calloc(ns->n ? (size_t)ns->n : 1, sizeof(long long));
    if (!ns->names || !ns->name_lens || !ns->counts) {
        numsub_free(ns);
        return PD_ERR;
    }
    for (int i = 0; i < ns->n; i++) {
        ns->names[i] = malloc(lens[2 + i] + 1);
        if (!ns->names[i]) {
            numsub_free(ns);
            return PD_ERR;
        }
        memcpy(ns->names[i], argv[2 + i], lens[2 + i]);
        ns->names[i][lens[2 + i]] = '\0';
        ns->name_lens[i] = lens[2 + i];
    }
    /* Every part must be sent, or none: the caller learns of a failure
     * at once rather than reading a partial count as "nobody listens". */
    rcl_call *parts[PD_RCLUSTER_MAX_NUMSUB];
    for (int i = 0; i < ns->n; i++) {
        const char *pa[3] = {"PUBSUB", "SHARDNUMSUB", ns->names[i]};
        size_t pl[3] = {6, 11, ns->name_lens[i]};
        parts[i] = call_new(c, 3, pa, pl);
        rcl_node *n = parts[i] ? node_for_slot(c, pd_slot_of(pd_slice_make(pa[2], pl[2]))) : NULL;
        if (!n || !pd_redis_ready(n->cmd)) {
            for (int j = 0; j <= i; j++)
                free(parts[j]);
            numsub_free(ns);
            return PD_ERR;
        }
        parts[i]->ns = ns;
        parts[i]->ns_index = i;
        parts[i]->keyed = 1;
        parts[i]->slot = pd_slot_of(pd_slice_make(pa[2], pl[2]));
    }
    c->pending++;
    if (ns->n == 0) {
        numsub_complete(ns);
        return PD_OK;
    }
    ns->outstanding = ns->n;
    for (int i = 0; i < ns->n; i++) {
        if (call_send(parts[i], NULL, 0) != PD_OK) {
            /* Ready a moment ago, so only an allocation failed. */
            ns->failed = 1;
            rcl_call *k = parts[i];
            free(k);
            if (--ns->outstanding == 0) {
                numsub_complete(ns);
                return PD_OK;
            }
        }
    }
    return PD_OK;
}

int pd_rcluster_cmd_argv(pd_rcluster *c, pd_redis_reply_fn cb, void *data, int argc, const char **argv,
                         const size_t *lens)
{
    if (c->closing || argc < 1 || argc > PD_RCLUSTER_MAX_ARGS)
        return PD_ERR;
    pd_slice key = {0};
    pd_rcluster_route_kind kind = pd_rcluster_route(argc, argv, lens, &key);
    if (kind == PD_RCL_REFUSED)
        return PD_ERR;
    if (kind == PD_RCL_NUMSUB)
        return numsub_start(c, cb, data, argc, argv, lens);
    rcl_call *k = call_new(c, argc, argv, lens);
    if (!k)
        return PD_ERR;
    /* Pub/sub per shard: a plain PUBLISH would be broadcast to every node
     * of the cluster; SPUBLISH reaches the channel's shard only, where its
     * subscribers are (they SSUBSCRIBE there). */
    if (arg_is(argv[0], lens[0], "PUBLISH")) {
        k->argv[0] = "SPUBLISH";
        k->lens[0] = 8;
    }
    k->cb = cb;
    k->data = data;
    k->keyed = kind == PD_RCL_KEY;
    k->slot = k->keyed ? pd_slot_of(key) : 0;
    if (call_send(k, NULL, 0) != PD_OK) {
        free(k);
        return PD_ERR;
    }
    c->pending++;
    return PD_OK;
}

size_t pd_rcluster_pending(const pd_rcluster *c)
{
    return c->pending;
}

unsigned long pd_rcluster_connects(const pd_rcluster *c)
{
    unsigned long n = 0;
    for (const rcl_node *x = c->nodes; x; x = x->next)
        n += pd_redis_connects(x->cmd) + x->sub_connects;
    return n;
}

unsigned long pd_rcluster_map_refreshes(const pd_rcluster *c)
{
    return c->refreshes;
}

unsigned long pd_rcluster_redirects(const pd_rcluster *c)
{
    return c->redirects;
}

unsigned long pd_rcluster_chan_walks(const pd_rcluster *c)
{
    return c->chan_walks;
}

unsigned long pd_rcluster_master_changes(const pd_rcluster *c)
{
    return c->master_changes;
}

/* ---- life cycle ------------------------------------------------------------------------ */

pd_rcluster *pd_rcluster_create(uv_loop_t *loop, const pd_redis_options *opt, pd_redis *outer,
                                pd_redis_state_fn state_cb, pd_redis_message_fn message_cb, void *data)
{
    pd_sentinel_addr seeds[PD_SENTINEL_MAX];
    size_t nseeds = 0;
    const char *err = NULL;
    if (!opt->cluster_nodes ||
        pd_sentinel_parse_list(opt->cluster_nodes, seeds, PD_SENTINEL_MAX, &nseeds, &err) != PD_OK)
        return NULL;
    pd_rcluster *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->loop = loop;
    c->outer = outer;
    c->state_cb = state_cb;
    c->message_cb = message_cb;
    c->data = data;
    c->subscriber = opt->subscriber;
    c->sub_max_message = opt->sub_max_message ? opt->sub_max_message : PD_REDIS_SUB_MAX_MESSAGE;
    c->watchdog_ms = opt->watchdog_ms ? opt->watchdog_ms : 1000;
    c->password = (opt->password && *opt->password) ? strdup(opt->password) : NULL;
    c->chans = pd_ptab_create(chan_key);
    if (!c->chans || (opt->password && *opt->password && !c->password)) {
        pd_ptab_free(c->chans);
        free(c->password);
        free(c);
        return NULL;
    }
    for (size_t i = 0; i < nseeds; i++) {
        rcl_node *n = node_get(c, seeds[i].host, seeds[i].port);
        if (n)
            n->seed = 1;
    }
    uv_timer_init(loop, &c->tick);
    c->tick.data = c;
    uv_timer_start(&c->tick, on_tick, TICK_MS, TICK_MS);
    c->refresh_wanted = 1;
    return c;
}

static int free_chan(pd_slice key, void *item, void *data)
{
    (void)key;
    (void)data;
    free(item);
    return 0;
}

static void on_tick_closed(uv_handle_t *h)
{
    pd_rcluster *c = h->data;
    pd_ptab_foreach(c->chans, free_chan, NULL);
    pd_ptab_free(c->chans);
    pd_slot_map_free(c->map);
    pd_slot_map_free(c->next_map);
    free(c->password);
    free(c);
}

void pd_rcluster_free(pd_rcluster *c)
{
    if (!c)
        return;
    c->closing = 1;
    while (c->nodes)
        node_free(c, c->nodes);
    uv_close((uv_handle_t *)&c->tick, on_tick_closed);
}
