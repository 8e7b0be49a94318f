/* hiredis async on libuv with reconnects, a watchdog and resubscription.
 *
 * Each link (command, subscriber) owns at most one redisAsyncContext. The
 * context is forgotten (link->ac = NULL) *before* we free it, so the
 * disconnect callback that hiredis runs from inside redisAsyncFree can tell
 * a connection we dropped on purpose from one that died. */
#include "privydrop/pd_redis.h"

#include "uvadapter.h"
#include <errno.h>
#include <hiredis/async.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "privydrop/pd_id.h"
#include "privydrop/pd_ptab.h"
#include "privydrop/pd_rcluster.h"
#include "privydrop/pd_sentinel.h"
#include "privydrop/pd_subparse.h"

#define RECONNECT_MIN_MS 100u
#define RECONNECT_MAX_MS 5000u

typedef struct pd_redis_link {
    pd_redis *owner;         /* back pointer */
    redisAsyncContext *ac;   /* live context or NULL */
    int up;                  /* connect callback reported success */
    int verified;            /* the server answered on this link since it connected */
    int is_sub;              /* subscriber link */
    uv_timer_t timer;        /* reconnect backoff */
    unsigned backoff_ms;     /* next reconnect delay */
} pd_redis_link;

typedef enum chan_state { CHAN_NONE = 0, CHAN_SUB, CHAN_UNSUB } chan_state;

/* One per subscribed room on every worker: kept small. */
typedef struct pd_redis_chan {
    uint8_t want;      /* the owner wants messages */
    uint8_t state;     /* chan_state: what we last asked the server for */
    uint16_t len;      /* channel name length */
    char name[];       /* channel name */
} pd_redis_chan;

static pd_slice chan_key(const void *c)
{
    const pd_redis_chan *ch = c;
    return pd_slice_make(ch->name, ch->len);
}

typedef struct pd_redis_call {
    pd_redis *owner;        /* to count pending commands */
    pd_redis_reply_fn cb;   /* user callback or NULL */
    void *data;             /* user data */
    int internal_ping;      /* CALL_PING or CALL_ROLE: ours, not the user's */
} pd_redis_call;

enum { CALL_USER = 0, CALL_PING = 1, CALL_ROLE = 2 };

struct pd_redis {
    pd_rcluster *rc;             /* Redis Cluster mode: every call goes there (owned) */
    uv_loop_t *loop;             /* not owned */
    char host[PD_SENTINEL_HOST_MAX + 1]; /* server (the master, in sentinel mode) */
    int port;
    pd_sentinel *sentinel;       /* sentinel mode: owned; NULL for a fixed address */
    int addr_known;              /* sentinel mode: host/port are the sentinels' latest answer */
    int addr_ever;               /* sentinel mode: host/port were ever set */
    unsigned long role_rejects;  /* servers left for not being a master */
    unsigned long master_changes; /* new master addresses taken */
    char *password;              /* copy or NULL */
    pd_redis_link cmd;           /* command connection */
    pd_redis_link sub;           /* pub/sub connection (if subscriber) */
    int subscriber;              /* sub link in use */
    pd_redis_state_fn state_cb;
    pd_redis_message_fn message_cb;
    void *data;
    int ready;                   /* last readiness reported */
    size_t pending;              /* commands awaiting a reply */
    pd_ptab *chans;              /* pd_redis_chan by name */
    pd_subparse *subp;           /* the subscriber link's stream (subscriber only; owned) */
    uv_timer_t watchdog;         /* PING timer */
    uv_timer_t prober;           /* probes the subscriber link while it is busy */
    unsigned watchdog_ms;
    uint64_t ping_sent_ms;       /* when the outstanding PING left, 0 if none */
    uint64_t probe_sent_ms;      /* when the outstanding bus probe was published, 0 if none */
    uint64_t cmd_heard_ms;       /* last reply of any kind on the command link */
    uint64_t sub_heard_ms;       /* last message of any kind on the subscriber link */
    char probe_chan[48];         /* private channel that proves the subscriber link works */
    unsigned long connects;      /* successful connects */
    int closing;                 /* pd_redis_free called */
    int open_handles;            /* timers not yet closed */
};

static void link_connect(pd_redis_link *l);
static void on_reconnect_timer(uv_timer_t *t);
static void link_verify_cmd(pd_redis *r);
static int sub_read(void *data, int fd);
static int sub_append(redisAsyncContext *ac, const char *fmt, ...);

static void redis_update_ready(pd_redis *r)
{
    /* A connect alone proves little (a stopped server's kernel still
     * accepts); ready means each link has seen an answer. */
    int ready = r->cmd.verified && (!r->subscriber || r->sub.verified);
    if (ready != r->ready) {
        r->ready = ready;
        if (r->state_cb && !r->closing)
            r->state_cb(r, ready, r->data);
    }
}

static void link_schedule(pd_redis_link *l)
{
    if (l->owner->closing)
        return;
    /* Every lost link comes through here: with sentinels, the address it
     * used may be a master no longer, so the next connect asks first. */
    if (l->owner->sentinel)
        l->owner->addr_known = 0;
    unsigned d = l->backoff_ms;
    unsigned jitter = 0;
    pd_random_bytes(&jitter, sizeof(jitter));
    /* ±25 % so that a fleet of workers does not reconnect in lockstep. */
    unsigned span = d / 2 + 1;
    d = d - d / 4 + jitter % span;
    l->backoff_ms = PD_MIN(l->backoff_ms * 2, RECONNECT_MAX_MS);
    uv_timer_start(&l->timer, on_reconnect_timer, d, 0);
}

static void link_drop(pd_redis_link *l);

/* The link timer is the reconnect backoff while no context exists, and the
 * connect deadline while one is connecting. */
static void on_reconnect_timer(uv_timer_t *t)
{
    pd_redis_link *l = t->data;
    if (l->ac && !l->up) {
        /* The connect neither succeeded nor failed in time. hiredis 0.14's
         * libuv adapter drops poll errors, so a refused connect is never
         * reported and would otherwise leave the link stuck for good. */
        link_drop(l);
        link_schedule(l);
        return;
    }
    link_connect(l);
}

/* Drop the link's context on purpose (watchdog, shutdown). Pending
 * callbacks run with NULL from inside redisAsyncFree. */
static void link_drop(pd_redis_link *l)
{
    redisAsyncContext *ac = l->ac;
    if (!ac)
        return;
    l->ac = NULL;
    l->up = 0;
    l->verified = 0;
    if (l->is_sub)
        l->owner->probe_sent_ms = 0;
    redisAsyncFree(ac);
}

/* Give up on the server: both links dropped (pending callbacks get NULL
 * now), readiness reported, reconnects scheduled (which, with sentinels,
 * ask where the master is first). */
static void drop_both_links(pd_redis *r)
{
    r->ping_sent_ms = 0;
    link_drop(&r->cmd);
    link_drop(&r->sub);
    redis_update_ready(r);
    link_schedule(&r->cmd);
    if (r->subscriber)
        link_schedule(&r->sub);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    pd_redis_link *l = ac->data;
    if (!l || l->ac != ac)
        return; /* dropped on purpose; already handled */
    l->ac = NULL;
    l->up = 0;
    l->verified = 0;
    redis_update_ready(l->owner);
    link_schedule(l);
}

static void resubscribe_all(pd_redis *r);

static void on_connect(const redisAsyncContext *ac, int status)
{
    pd_redis_link *l = ac->data;
    if (!l || l->ac != ac)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees a context whose connect failed, after this call. */
        l->ac = NULL;
        l->up = 0;
        link_schedule(l);
        return;
    }
    uv_timer_stop(&l->timer); /* connect deadline */
    l->up = 1;
    /* The backoff is reset only once the server has answered on this link
     * (see the two "verified = 1" sites): something that accepts and drops
     * connections (a proxy without a backend, a full server) would otherwise
     * be retried every 100 ms forever. */
    l->owner->connects++;
    if (l->is_sub) {
        l->owner->probe_sent_ms = 0;
        resubscribe_all(l->owner);
    } else {
        link_verify_cmd(l->owner);
    }
}

/* -READONLY: the server we write to has become a replica under us (a
 * REPLICAOF that did not drop its clients, as Sentinel's own
 * reconfiguration does). */
static int is_readonly_error(const redisReply *rep)
{
    return rep && rep->type == REDIS_REPLY_ERROR && rep->len >= 8 && memcmp(rep->str, "READONLY", 8) == 0;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    pd_redis_call *call = privdata;
    pd_redis *r = call->owner;
    r->pending--;
    if (reply)
        r->cmd_heard_ms = pd_mono_ms();
    if (call->internal_ping == CALL_ROLE && reply && !pd_sentinel_role_is_master(reply)) {
        /* A replica (a failover the sentinels have not told us of, or a
         * restarted old master) or a server that refuses ROLE: leave it
         * and ask the sentinels again. */
        r->role_rejects++;
        drop_both_links(r);
    } else if (call->internal_ping) {
        redisReply *rep = reply;
        if (rep && rep->type != REDIS_REPLY_ERROR) {
            r->ping_sent_ms = 0;
            if (r->cmd.up && !r->cmd.verified) {
                r->cmd.verified = 1;
                r->cmd.backoff_ms = RECONNECT_MIN_MS;
                redis_update_ready(r);
            }
        }
    } else {
        /* With sentinels, a write refused by a replica means the master
         * moved: leave at once and ask where it went (the caller still
         * gets this reply, an error). */
        int moved = r->sentinel && ac == r->cmd.ac && is_readonly_error(reply);
        if (call->cb)
            call->cb(reply, call->data);
        if (moved) {
            r->role_rejects++;
            drop_both_links(r);
        }
    }
    free(call);
}

/* The reply to a PUBLISH nobody waits for (most relayed signals): the
 * client itself is the callback's data, so such a command needs no
 * allocation of ours. Same bookkeeping as on_reply's user branch. */
static void on_reply_unwatched(redisAsyncContext *ac, void *reply, void *privdata)
{
    pd_redis *r = privdata;
    r->pending--;
    if (!reply)
        return;
    r->cmd_heard_ms = pd_mono_ms();
    if (r->sentinel && ac == r->cmd.ac && is_readonly_error(reply)) {
        r->role_rejects++;
        drop_both_links(r);
    }
}

/* PING right after connecting (ROLE with sentinels: the server must be
 * the master); ready only once it is answered. */
static void link_verify_cmd(pd_redis *r)
{
    pd_redis_call *call = calloc(1, sizeof(*call));
    if (!call)
        return;
    call->owner = r;
    call->internal_ping = r->sentinel ? CALL_ROLE : CALL_PING;
    if (redisAsyncCommand(r->cmd.ac, on_reply, call, r->sentinel ? "ROLE" : "PING") == REDIS_OK) {
        r->pending++;
        r->ping_sent_ms = pd_mono_ms();
    } else {
        free(call);
    }
}

static void link_connect(pd_redis_link *l)
{
    pd_redis *r = l->owner;
    if (r->closing || l->ac)
        return;
    if (r->sentinel && !r->addr_known) {
        /* on_master connects every link once the sentinels answer. */
        pd_sentinel_discover(r->sentinel);
        return;
    }
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (!ac) {
        link_schedule(l);
        return;
    }
    if (ac->err) {
        redisAsyncFree(ac);
        link_schedule(l);
        return;
    }
    ac->data = l;
    if (pd_redis_uv_attach(ac, r->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        link_schedule(l);
        return;
    }
    l->ac = ac;
    if (l->is_sub) {
        pd_subparse_reset(r->subp);
        pd_redis_uv_set_reader(ac, sub_read, r);
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* Same rule as the watchdog: three periods without an answer. */
    uv_timer_start(&l->timer, on_reconnect_timer, 3ull * r->watchdog_ms, 0);
    if (r->password) {
        /* Queued now, written first once the socket connects. A wrong
         * password makes every later command fail with NOAUTH, which callers
         * see as error replies. */
        pd_redis_call *call = l->is_sub ? NULL : calloc(1, sizeof(*call));
        if (l->is_sub) {
            sub_append(ac, "AUTH %s", r->password);
        } else if (call) {
            call->owner = r;
            if (redisAsyncCommand(ac, on_reply, call, "AUTH %s", r->password) == REDIS_OK)
                r->pending++;
            else
                free(call);
        }
    }
}

/* ---- pub/sub ---------------------------------------------------------- */

static void chan_send(pd_redis *r, pd_redis_chan *c, int subscribe);

/* The subscriber link's replies never reach hiredis (docs/architecture.md
 * §Redis): the adapter hands its reads to sub_read, which parses them with
 * pd_subparse into slices of one reused buffer, so a message costs no
 * allocation and no callback lookup. Commands on this link are appended to
 * hiredis's output buffer without a callback, and hiredis still connects,
 * writes and frees the context. */
static int sub_append(redisAsyncContext *ac, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = redisvAppendCommand(&ac->c, fmt, ap);
    va_end(ap);
    if (rc == REDIS_OK && ac->ev.addWrite)
        ac->ev.addWrite(ac->ev.data); /* written before the loop polls */
    return rc;
}

/* The link is unusable (closed, broken, or a stream we refuse): drop it
 * and reconnect, which resubscribes. */
static void sub_lost(pd_redis *r)
{
    link_drop(&r->sub);
    redis_update_ready(r);
    link_schedule(&r->sub);
}

static void on_sub_event(pd_redis *r, const pd_subparse_event *ev)
{
    switch (ev->kind) {
    case PD_SUB_MESSAGE:
    case PD_SUB_SMESSAGE:
        if (pd_slice_eq(ev->channel, r->probe_chan)) {
            /* Our own probe: the link carries data. */
            r->probe_sent_ms = 0;
        } else if (r->message_cb && !r->closing) {
            r->message_cb(ev->channel, ev->payload, r->data);
        }
        return;
    case PD_SUB_SUBSCRIBE:
        /* The probe channel is subscribed last on connect: its
         * confirmation says every subscription is live. */
        if (pd_slice_eq(ev->channel, r->probe_chan) && r->sub.up && !r->sub.verified) {
            r->sub.verified = 1;
            r->sub.backoff_ms = RECONNECT_MIN_MS;
            redis_update_ready(r);
        }
        return;
    case PD_SUB_UNSUBSCRIBE: {
        /* If the owner asked for the channel again meanwhile, subscribe
         * anew now. */
        pd_redis_chan *c = ev->channel.base ? pd_ptab_get(r->chans, ev->channel) : NULL;
        if (!c)
            return;
        c->state = CHAN_NONE;
        if (c->want)
            chan_send(r, c, 1);
        else
            free(pd_ptab_del(r->chans, ev->channel));
        return;
    }
    default:
        /* AUTH's +OK; errors (a wrong password fails every SUBSCRIBE, and
         * the link never becomes ready); kinds we never ask for. */
        return;
    }
}

/* One read of the subscriber link (the adapter's reader). */
static int sub_read(void *data, int fd)
{
    pd_redis *r = data;
    redisAsyncContext *ac = r->sub.ac;
    char *buf;
    size_t room;
    if (!ac || pd_subparse_space(r->subp, &buf, &room) != PD_OK) {
        sub_lost(r);
        return -1;
    }
    ssize_t n = read(fd, buf, room);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (n <= 0) {
        sub_lost(r); /* closed by the server, or a socket error */
        return -1;
    }
    pd_subparse_wrote(r->subp, (size_t)n);
    pd_subparse_event ev;
    int rc, heard = 0;
    while ((rc = pd_subparse_next(r->subp, &ev)) == PD_SUBPARSE_EVENT) {
        /* Heard means a whole reply, noted once per read: bytes of a frame
         * that never completes (a link dribbling a byte at a time) must
         * not keep the watchdog from giving up on the link. */
        if (!heard) {
            heard = 1;
            r->sub_heard_ms = pd_mono_ms();
        }
        on_sub_event(r, &ev);
        if (r->sub.ac != ac)
            return -1; /* dropped meanwhile (pd_redis_free from a callback) */
    }
    if (rc == PD_SUBPARSE_BAD) {
        /* Malformed, or over a bound: nothing after it can be trusted. */
        sub_lost(r);
        return -1;
    }
    return (size_t)n == room ? 1 : 0;
}

static void chan_send(pd_redis *r, pd_redis_chan *c, int subscribe)
{
    if (!r->sub.up || !r->sub.ac)
        return; /* sent by resubscribe_all on connect */
    int rc = sub_append(r->sub.ac, subscribe ? "SUBSCRIBE %b" : "UNSUBSCRIBE %b", c->name, (size_t)c->len);
    if (rc == REDIS_OK)
        c->state = subscribe ? CHAN_SUB : CHAN_UNSUB;
}

static int resub_visit(pd_slice key, void *value, void *data)
{
    (void)key;
    pd_redis *r = data;
    pd_redis_chan *c = value;
    c->state = CHAN_NONE;
    if (c->want)
        chan_send(r, c, 1);
    return 0;
}

static int collect_unwanted(pd_slice key, void *value, void *data)
{
    (void)key;
    pd_redis_chan *c = value;
    pd_redis_chan ***cursor = data;
    if (!c->want)
        *(*cursor)++ = c;
    return 0;
}

static void resubscribe_all(pd_redis *r)
{
    /* Channels nobody wants any more are forgotten rather than resent. */
    size_t n = pd_ptab_count(r->chans);
    if (n) {
        pd_redis_chan **gone = calloc(n, sizeof(*gone)), **cur = gone;
        if (gone) {
            pd_ptab_foreach(r->chans, collect_unwanted, &cur);
            for (pd_redis_chan **p = gone; p < cur; p++)
                free(pd_ptab_del(r->chans, pd_slice_make((*p)->name, (*p)->len)));
            free(gone);
        }
    }
    pd_ptab_foreach(r->chans, resub_visit, r);
    /* Last, so its confirmation arrives after every other subscription's. */
    sub_append(r->sub.ac, "SUBSCRIBE %s", r->probe_chan);
}

int pd_redis_subscribe(pd_redis *r, pd_slice channel)
{
    if (r->rc)
        return pd_rcluster_subscribe(r->rc, channel);
    pd_redis_chan *c = pd_ptab_get(r->chans, channel);
    if (!c) {
        if (channel.len > UINT16_MAX)
            return PD_ERR;
        c = calloc(1, sizeof(*c) + channel.len + 1);
        if (!c)
            return PD_ERR;
        memcpy(c->name, channel.base, channel.len);
        c->len = (uint16_t)channel.len;
        if (pd_ptab_put(r->chans, c) != PD_OK) {
            free(c);
            return PD_ERR;
        }
    }
    c->want = 1;
    if (c->state == CHAN_NONE)
        chan_send(r, c, 1);
    /* CHAN_UNSUB: the unsubscribe confirmation will resubscribe. */
    return PD_OK;
}

int pd_redis_unsubscribe(pd_redis *r, pd_slice channel)
{
    if (r->rc)
        return pd_rcluster_unsubscribe(r->rc, channel);
    pd_redis_chan *c = pd_ptab_get(r->chans, channel);
    if (!c)
        return PD_OK;
    c->want = 0;
    if (c->state == CHAN_SUB)
        chan_send(r, c, 0);
    else if (c->state == CHAN_NONE)
        free(pd_ptab_del(r->chans, channel));
    return PD_OK;
}

size_t pd_redis_subscription_count(const pd_redis *r)
{
    if (r->rc)
        return pd_rcluster_subscription_count(r->rc);
    return pd_ptab_count(r->chans);
}

/* ---- commands ---------------------------------------------------------- */

/* Sentinel mode also waits for ROLE: until then the server may be a
 * replica, where a write fails and a read may be stale. */
static int cmd_usable(const pd_redis *r)
{
    return r->cmd.up && r->cmd.ac && !r->closing && (!r->sentinel || r->cmd.verified);
}

static pd_redis_call *call_new(pd_redis *r, pd_redis_reply_fn cb, void *data)
{
    pd_redis_call *call = malloc(sizeof(*call));
    if (!call)
        return NULL;
    call->owner = r;
    call->cb = cb;
    call->data = data;
    call->internal_ping = CALL_USER;
    return call;
}

static int cluster_vcmd(pd_redis *r, pd_redis_reply_fn cb, void *data, const char *fmt, va_list ap)
{
    /* Format as hiredis would, then route by the formatted arguments. */
    char *buf = NULL;
    int len = redisvFormatCommand(&buf, fmt, ap);
    const char *argv[PD_RCLUSTER_MAX_ARGS];
    size_t lens[PD_RCLUSTER_MAX_ARGS];
    int argc = len > 0 ? pd_rcluster_split(buf, (size_t)len, argv, lens, PD_RCLUSTER_MAX_ARGS) : -1;
    int rc = argc > 0 ? pd_rcluster_cmd_argv(r->rc, cb, data, argc, argv, lens) : PD_ERR;
    free(buf);
    return rc;
}

int pd_redis_cmd(pd_redis *r, pd_redis_reply_fn cb, void *data, const char *fmt, ...)
{
    if (r->rc) {
        va_list ap;
        va_start(ap, fmt);
        int rc = cluster_vcmd(r, cb, data, fmt, ap);
        va_end(ap);
        return rc;
    }
    if (!cmd_usable(r))
        return PD_ERR;
    pd_redis_call *call = call_new(r, cb, data);
    if (!call)
        return PD_ERR;
    va_list ap;
    va_start(ap, fmt);
    int rc = redisvAsyncCommand(r->cmd.ac, on_reply, call, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK) {
        free(call);
        return PD_ERR;
    }
    r->pending++;
    return PD_OK;
}

int pd_redis_cmd_argv(pd_redis *r, pd_redis_reply_fn cb, void *data, int argc, const char **argv,
                      const size_t *lens)
{
    if (r->rc)
        return pd_rcluster_cmd_argv(r->rc, cb, data, argc, argv, lens);
    if (!cmd_usable(r))
        return PD_ERR;
    pd_redis_call *call = call_new(r, cb, data);
    if (!call)
        return PD_ERR;
    if (redisAsyncCommandArgv(r->cmd.ac, on_reply, call, argc, argv, lens) != REDIS_OK) {
        free(call);
        return PD_ERR;
    }
    r->pending++;
    return PD_OK;
}

/* "$<n>\r\n" at p; the bytes written. */
static size_t put_len(char *p, char type, size_t n)
{
    char digits[20];
    size_t k = 0;
    do {
        digits[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    *p++ = type;
    for (size_t i = 0; i < k; i++)
        p[i] = digits[k - 1 - i];
    p[k] = '\r';
    p[k + 1] = '\n';
    return 1 + k + 2;
}

/* The protocol text is written here directly: hiredis's formatter
 * (redisFormatCommandArgv) costs about as much per PUBLISH as the rest of
 * sending it (docs/benchmarks.md §Cross-worker relay). */
/* A cluster handle routes the publish by its channel (as SPUBLISH, to the
 * master that serves the channel's slot): the parts are joined into one
 * argument for pd_rcluster_cmd_argv. */
static int publish_cluster(pd_redis *r, pd_slice channel, const pd_slice *parts, size_t nparts, size_t plen,
                           pd_redis_reply_fn cb, void *data)
{
    char stack[2048];
    char *buf = plen <= sizeof(stack) ? stack : malloc(plen ? plen : 1);
    if (!buf)
        return PD_ERR;
    size_t off = 0;
    for (size_t i = 0; i < nparts; i++) {
        if (parts[i].len)
            memcpy(buf + off, parts[i].base, parts[i].len);
        off += parts[i].len;
    }
    const char *argv[3] = {"PUBLISH", channel.base, buf};
    size_t lens[3] = {7, channel.len, plen};
    int rc = pd_rcluster_cmd_argv(r->rc, cb, data, 3, argv, lens);
    if (buf != stack)
        free(buf);
    return rc;
}

int pd_redis_publish(pd_redis *r, pd_slice channel, const pd_slice *parts, size_t nparts, pd_redis_reply_fn cb,
                     void *data)
{
    size_t plen = 0;
    for (size_t i = 0; i < nparts; i++)
        plen += parts[i].len;
    if (r->rc)
        return publish_cluster(r, channel, parts, nparts, plen, cb, data);
    if (!cmd_usable(r))
        return PD_ERR;
    /* "*3\r\n$7\r\nPUBLISH\r\n" + two "$<len>\r\n…\r\n" */
    size_t n = 17 + 2 * (1 + 20 + 2) + channel.len + 2 + plen + 2;
    char stack[2048];
    char *buf = n <= sizeof(stack) ? stack : malloc(n);
    if (!buf)
        return PD_ERR;
    char *p = buf;
    memcpy(p, "*3\r\n$7\r\nPUBLISH\r\n", 17);
    p += 17;
    p += put_len(p, '$', channel.len);
    memcpy(p, channel.base, channel.len);
    p += channel.len;
    *p++ = '\r';
    *p++ = '\n';
    p += put_len(p, '$', plen);
    for (size_t i = 0; i < nparts; i++) {
        if (parts[i].len)
            memcpy(p, parts[i].base, parts[i].len);
        p += parts[i].len;
    }
    *p++ = '\r';
    *p++ = '\n';
    int rc = PD_ERR;
    if (!cb) {
        if (redisAsyncFormattedCommand(r->cmd.ac, on_reply_unwatched, r, buf, (size_t)(p - buf)) == REDIS_OK) {
            r->pending++;
            rc = PD_OK;
        }
    } else {
        pd_redis_call *call = call_new(r, cb, data);
        if (call && redisAsyncFormattedCommand(r->cmd.ac, on_reply, call, buf, (size_t)(p - buf)) == REDIS_OK) {
            r->pending++;
            rc = PD_OK;
        } else {
            free(call);
        }
    }
    if (buf != stack)
        free(buf);
    return rc;
}

size_t pd_redis_pending(const pd_redis *r)
{
    if (r->rc)
        return pd_rcluster_pending(r->rc);
    return r->pending;
}

int pd_redis_sub_behind(const pd_redis *r)
{
    if (r->rc)
        return pd_rcluster_sub_behind(r->rc);
    if (!r->ready)
        return 0;
    /* Overdue while messages keep arriving: we are behind. Overdue in
     * silence is a stalled server, which is the watchdog's business, and
     * must not stop same-worker traffic. */
    uint64_t now = pd_mono_ms();
    return r->probe_sent_ms && now - r->probe_sent_ms > 100 && now - r->sub_heard_ms < 100;
}

int pd_redis_congested(const pd_redis *r, size_t max_pending)
{
    if (r->rc)
        return pd_rcluster_ready(r->rc) && (pd_rcluster_pending(r->rc) > max_pending || pd_rcluster_sub_behind(r->rc));
    if (!r->ready)
        return 0;
    return r->pending > max_pending || pd_redis_sub_behind(r);
}

int pd_redis_ready(const pd_redis *r)
{
    if (r->rc)
        return pd_rcluster_ready(r->rc);
    return r->ready;
}

int pd_redis_is_cluster(const pd_redis *r)
{
    return r->rc != NULL;
}

unsigned long pd_redis_connects(const pd_redis *r)
{
    if (r->rc)
        return pd_rcluster_connects(r->rc);
    return r->connects;
}

unsigned long pd_redis_role_rejects(const pd_redis *r)
{
    return r->role_rejects;
}

unsigned long pd_redis_master_changes(const pd_redis *r)
{
    if (r->rc)
        return pd_rcluster_master_changes(r->rc);
    return r->master_changes;
}

/* ---- sentinel mode ----------------------------------------------------- */

/* The sentinels named the master: from a discovery we asked for, or a
 * +switch-master. A new address ends both links at once (their pending
 * commands fail now rather than at the watchdog); then every link without
 * a connection connects. */
static void on_master(pd_sentinel *s, const pd_sentinel_addr *a, void *data)
{
    (void)s;
    pd_redis *r = data;
    if (r->closing)
        return;
    int first = !r->addr_ever;
    int moved = first || strcmp(r->host, a->host) != 0 || r->port != a->port;
    memcpy(r->host, a->host, sizeof(r->host));
    r->port = a->port;
    r->addr_ever = 1;
    r->addr_known = 1;
    pd_redis_link *links[2] = {&r->cmd, &r->sub};
    if (moved) {
        if (!first)
            r->master_changes++;
        r->ping_sent_ms = 0;
        link_drop(&r->cmd);
        link_drop(&r->sub);
        redis_update_ready(r);
    }
    for (int i = 0; i < (r->subscriber ? 2 : 1); i++) {
        pd_redis_link *l = links[i];
        if (l->ac)
            continue;
        uv_timer_stop(&l->timer);
        link_connect(l);
    }
}

static pd_sentinel *sentinel_create(uv_loop_t *loop, const pd_redis_options *opt, pd_redis *r)
{
    pd_sentinel_addr list[PD_SENTINEL_MAX];
    size_t n = 0;
    const char *err = NULL;
    if (pd_sentinel_parse_list(opt->sentinels, list, PD_SENTINEL_MAX, &n, &err) != PD_OK)
        return NULL;
    /* Bounded like a connect: a sentinel that does not answer within the
     * watchdog's three periods is skipped. */
    pd_sentinel_options so = {list, n, opt->sentinel_master, opt->sentinel_password, 3u * r->watchdog_ms};
    return pd_sentinel_create(loop, &so, on_master, r);
}

void pd_redis_config_load(pd_config_check *chk, pd_redis_options *out)
{
    long port = 6379;
    pd_config_long(chk, "REDIS_PORT", 6379, 1, 65535, &port);
    out->host = pd_env_str("REDIS_HOST", "127.0.0.1");
    out->port = (int)port;
    out->password = pd_env_str("REDIS_PASSWORD", NULL);
    out->sentinels = pd_env_str("REDIS_SENTINELS", NULL);
    out->sentinel_master = pd_env_str("REDIS_SENTINEL_MASTER", NULL);
    out->sentinel_password = pd_env_str("REDIS_SENTINEL_PASSWORD", NULL);
    out->cluster_nodes = pd_env_str("REDIS_CLUSTER_NODES", NULL);
    if (out->cluster_nodes) {
        pd_sentinel_addr list[PD_SENTINEL_MAX];
        size_t n = 0;
        const char *err = NULL;
        /* The sentinel list's syntax; its messages name sentinels, so not theirs. */
        if (pd_sentinel_parse_list(out->cluster_nodes, list, PD_SENTINEL_MAX, &n, &err) != PD_OK)
            pd_config_check_add(chk, "REDIS_CLUSTER_NODES", out->cluster_nodes,
                                "1 to 16 host:port entries, comma-separated (IPv6 as [addr]:port)");
        if (out->sentinels)
            pd_config_check_add(chk, "REDIS_CLUSTER_NODES", out->cluster_nodes,
                                "set with REDIS_SENTINELS: a cluster or sentinels, not both");
    }
    if (out->sentinels) {
        pd_sentinel_addr list[PD_SENTINEL_MAX];
        size_t n = 0;
        const char *err = NULL;
        if (pd_sentinel_parse_list(out->sentinels, list, PD_SENTINEL_MAX, &n, &err) != PD_OK)
            pd_config_check_add(chk, "REDIS_SENTINELS", out->sentinels, err);
        if (!out->sentinel_master)
            pd_config_check_add(chk, "REDIS_SENTINEL_MASTER", NULL,
                                "required with REDIS_SENTINELS: the master's name in the sentinels");
        else if (!pd_sentinel_name_valid(out->sentinel_master))
            pd_config_check_add(chk, "REDIS_SENTINEL_MASTER", out->sentinel_master,
                                "1 to 128 printable characters without spaces");
    } else if (out->sentinel_master) {
        pd_config_check_add(chk, "REDIS_SENTINEL_MASTER", out->sentinel_master,
                            "set without REDIS_SENTINELS: name the sentinels too, or unset it");
    } else if (out->sentinel_password) {
        pd_config_check_add(chk, "REDIS_SENTINEL_PASSWORD", NULL,
                            "set without REDIS_SENTINELS: name the sentinels too, or unset it");
    }
}

void pd_redis_describe(const pd_redis_options *opt, char *buf, size_t size)
{
    if (opt->cluster_nodes)
        snprintf(buf, size, "cluster via %s", opt->cluster_nodes);
    else if (opt->sentinels)
        snprintf(buf, size, "sentinel master %s via %s", opt->sentinel_master ? opt->sentinel_master : "?",
                 opt->sentinels);
    else
        snprintf(buf, size, "%s:%d", opt->host ? opt->host : "127.0.0.1", opt->port);
}

/* ---- watchdog ---------------------------------------------------------- */

/* Publish our private probe on the command link; it comes back through the
 * subscriber link (on_sub_event clears probe_sent_ms). */
static void probe_send(pd_redis *r, uint64_t now)
{
    if (redisAsyncCommand(r->cmd.ac, NULL, NULL, "PUBLISH %s p", r->probe_chan) == REDIS_OK)
        r->probe_sent_ms = now;
}

static void on_watchdog(uv_timer_t *t)
{
    pd_redis *r = t->data;
    if (!r->cmd.up || !r->cmd.ac)
        return;
    uint64_t now = pd_mono_ms();
    uint64_t limit = 3ull * r->watchdog_ms;
    /* Dead means silent: a PING stuck behind a long queue of replies that
     * keep arriving is a busy link, not a dead one. */
    if (r->ping_sent_ms && now - r->ping_sent_ms > limit && now - r->cmd_heard_ms > limit) {
        /* The server accepted our bytes but stopped answering (stopped
         * process, black-holed network): give up on both links so callers
         * get their failures now and the reconnect loop takes over. */
        drop_both_links(r);
        return;
    }
    if (r->subscriber && r->sub.verified) {
        if (r->probe_sent_ms && now - r->probe_sent_ms > limit && now - r->sub_heard_ms > limit) {
            /* hiredis 0.14's libuv adapter drops socket errors, so a broken
             * subscriber link can look healthy: a probe that does not come
             * back through it proves otherwise. */
            sub_lost(r);
        } else if (!r->probe_sent_ms) {
            probe_send(r, now);
        }
    }
    if (r->ping_sent_ms)
        return;
    pd_redis_call *call = call_new(r, NULL, NULL);
    if (!call)
        return;
    call->internal_ping = CALL_PING;
    if (redisAsyncCommand(r->cmd.ac, on_reply, call, "PING") == REDIS_OK) {
        r->pending++;
        r->ping_sent_ms = now;
    } else {
        free(call);
    }
}

/* A probe through the subscriber link every 50 ms while it carries
 * messages: how late it comes back is how far behind we read. An idle link
 * gets the watchdog's probe once a period, which is enough to prove it
 * alive. */
static void on_prober(uv_timer_t *t)
{
    pd_redis *r = t->data;
    if (!r->subscriber || !r->sub.verified || !r->cmd.up || !r->cmd.ac || r->probe_sent_ms)
        return;
    uint64_t now = pd_mono_ms();
    if (now - r->sub_heard_ms <= 200)
        probe_send(r, now);
}

/* ---- life cycle -------------------------------------------------------- */

pd_redis *pd_redis_create(uv_loop_t *loop, const pd_redis_options *opt,
                          pd_redis_state_fn state_cb, pd_redis_message_fn message_cb, void *data)
{
    pd_redis *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    if (opt->cluster_nodes) {
        /* A shell: the cluster handle does everything (pd_rcluster.h). */
        r->rc = pd_rcluster_create(loop, opt, r, state_cb, message_cb, data);
        if (!r->rc) {
            free(r);
            return NULL;
        }
        return r;
    }
    r->loop = loop;
    snprintf(r->host, sizeof(r->host), "%s", opt->host ? opt->host : "127.0.0.1");
    r->port = opt->port;
    r->watchdog_ms = opt->watchdog_ms ? opt->watchdog_ms : 1000;
    r->password = (opt->password && *opt->password) ? strdup(opt->password) : NULL;
    r->chans = pd_ptab_create(chan_key);
    if (opt->subscriber)
        r->subp = pd_subparse_create(opt->sub_max_message ? opt->sub_max_message : PD_REDIS_SUB_MAX_MESSAGE);
    if (opt->sentinels)
        r->sentinel = sentinel_create(loop, opt, r);
    if (!r->chans || (opt->subscriber && !r->subp) || (opt->password && *opt->password && !r->password) ||
        (opt->sentinels && !r->sentinel)) {
        free(r->password);
        pd_ptab_free(r->chans);
        pd_subparse_free(r->subp);
        if (r->sentinel) {
            /* Its handles close on the next loop turn; it frees itself. */
            pd_sentinel_free(r->sentinel);
        }
        free(r);
        return NULL;
    }
    r->subscriber = opt->subscriber;
    r->state_cb = state_cb;
    r->message_cb = message_cb;
    r->data = data;
    char token[17];
    if (pd_id_random(token, 16, PD_ALPHABET_ALNUM) != PD_OK)
        snprintf(token, sizeof(token), "%lx", (unsigned long)(uintptr_t)r);
    snprintf(r->probe_chan, sizeof(r->probe_chan), "pd:probe:%s", token);

    pd_redis_link *links[2] = {&r->cmd, &r->sub};
    for (int i = 0; i < 2; i++) {
        links[i]->owner = r;
        links[i]->is_sub = (i == 1);
        links[i]->backoff_ms = RECONNECT_MIN_MS;
        uv_timer_init(loop, &links[i]->timer);
        links[i]->timer.data = links[i];
        r->open_handles++;
    }
    uv_timer_init(loop, &r->watchdog);
    r->watchdog.data = r;
    r->open_handles++;
    uv_timer_start(&r->watchdog, on_watchdog, r->watchdog_ms, r->watchdog_ms);
    uv_timer_init(loop, &r->prober);
    r->prober.data = r;
    r->open_handles++;
    uv_timer_start(&r->prober, on_prober, 50, 50);

    link_connect(&r->cmd);
    if (r->subscriber)
        link_connect(&r->sub);
    return r;
}

static int free_chan(pd_slice key, void *value, void *data)
{
    (void)key;
    (void)data;
    free(value);
    return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
    pd_redis *r = h->data;
    if (h != (uv_handle_t *)&r->watchdog && h != (uv_handle_t *)&r->prober)
        r = ((pd_redis_link *)h->data)->owner;
    if (--r->open_handles == 0) {
        pd_ptab_foreach(r->chans, free_chan, NULL);
        pd_ptab_free(r->chans);
        pd_subparse_free(r->subp);
        free(r->password);
        free(r);
    }
}

void pd_redis_free(pd_redis *r)
{
    if (!r)
        return;
    if (r->rc) {
        pd_rcluster_free(r->rc);
        free(r);
        return;
    }
    r->closing = 1;
    link_drop(&r->cmd);
    link_drop(&r->sub);
    pd_sentinel_free(r->sentinel);
    r->sentinel = NULL;
    uv_close((uv_handle_t *)&r->cmd.timer, on_handle_closed);
    uv_close((uv_handle_t *)&r->sub.timer, on_handle_closed);
    uv_close((uv_handle_t *)&r->watchdog, on_handle_closed);
    uv_close((uv_handle_t *)&r->prober, on_handle_closed);
}
