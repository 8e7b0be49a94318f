/* Redis Sentinel discovery (pd_sentinel.h).
 *
 * Two hiredis contexts at most: `q` asks one sentinel for the master's
 * address during a discovery round, `w` holds the +switch-master
 * subscription. As in redis.c, a context is forgotten (set to NULL) before
 * it is freed, so callbacks that hiredis runs from inside redisAsyncFree
 * can tell a context we dropped from the live one. */
#include "privydrop/pd_sentinel.h"

#include "uvadapter.h"
#include <errno.h>
#include <hiredis/async.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "privydrop/pd_id.h"

#define ROUND_PAUSE_MIN_MS 100u
#define ROUND_PAUSE_MAX_MS 5000u
#define WATCH_RETRY_MIN_MS 200u
#define WATCH_RETRY_MAX_MS 5000u

/* ---- pure helpers ------------------------------------------------------- */

static int parse_port(const char *s, size_t len, int *out)
{
    if (len == 0 || len > 5)
        return PD_ERR;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return PD_ERR;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return PD_ERR;
    *out = (int)v;
    return PD_OK;
}

static int host_valid(const char *s, size_t len)
{
    if (len == 0 || len > PD_SENTINEL_HOST_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        /* Names and IP literals only: anything else is a typo or worse. */
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '-' || c == '_' || c == ':' || c == '%'))
            return 0;
    }
    return 1;
}

/* One "host:port" or "[v6]:port" entry, already trimmed. */
static int parse_entry(const char *s, size_t len, pd_sentinel_addr *out, const char **err)
{
    const char *host, *port;
    size_t hlen, plen;
    if (len && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close || (size_t)(close - s) + 1 >= len || close[1] != ':') {
            *err = "an IPv6 sentinel is written [address]:port";
            return PD_ERR;
        }
        host = s + 1;
        hlen = (size_t)(close - host);
        port = close + 2;
        plen = len - (size_t)(port - s);
    } else {
        const char *colon = NULL;
        for (size_t i = 0; i < len; i++)
            if (s[i] == ':') {
                if (colon) {
                    *err = "an IPv6 sentinel is written [address]:port";
                    return PD_ERR;
                }
                colon = s + i;
            }
        if (!colon) {
            *err = "each sentinel is host:port";
            return PD_ERR;
        }
        host = s;
        hlen = (size_t)(colon - s);
        port = colon + 1;
        plen = len - hlen - 1;
    }
    if (!host_valid(host, hlen)) {
        *err = "a sentinel host is empty, too long or has characters a host name cannot have";
        return PD_ERR;
    }
    if (parse_port(port, plen, &out->port) != PD_OK) {
        *err = "a sentinel port is not a number in 1..65535";
        return PD_ERR;
    }
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    return PD_OK;
}

int pd_sentinel_parse_list(const char *spec, pd_sentinel_addr *out, size_t max, size_t *n, const char **err)
{
    *n = 0;
    if (!spec) {
        *err = "no sentinels given";
        return PD_ERR;
    }
    const char *p = spec;
    for (;;) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (a == b) {
            *err = "an entry of the sentinel list is empty";
            return PD_ERR;
        }
        if (*n >= max) {
            *err = "too many sentinels (at most 16)";
            return PD_ERR;
        }
        if (parse_entry(a, (size_t)(b - a), &out[*n], err) != PD_OK)
            return PD_ERR;
        (*n)++;
        if (!*end)
            break;
        p = end + 1;
    }
    return PD_OK;
}

int pd_sentinel_name_valid(const char *name)
{
    if (!name)
        return 0;
    size_t len = strlen(name);
    if (len == 0 || len > PD_SENTINEL_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] <= ' ' || (unsigned char)name[i] >= 0x7f)
            return 0;
    return 1;
}

static int string_to_addr(const char *host, size_t hlen, const char *port, size_t plen, pd_sentinel_addr *out)
{
    if (!host_valid(host, hlen))
        return PD_ERR;
    int p;
    if (parse_port(port, plen, &p) != PD_OK)
        return PD_ERR;
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    out->port = p;
    return PD_OK;
}

int pd_sentinel_parse_master_reply(const redisReply *reply, pd_sentinel_addr *out)
{
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2)
        return PD_ERR;
    const redisReply *h = reply->element[0], *p = reply->element[1];
    if (!h || !p || h->type != REDIS_REPLY_STRING || p->type != REDIS_REPLY_STRING)
        return PD_ERR;
    return string_to_addr(h->str, h->len, p->str, p->len, out);
}

int pd_sentinel_parse_switch(pd_slice payload, const char *master, pd_sentinel_addr *out)
{
    /* Exactly five space-separated fields. */
    pd_slice f[5];
    size_t nf = 0, i = 0;
    while (i < payload.len) {
        if (payload.base[i] == ' ') {
            i++;
            continue;
        }
        size_t start = i;
        while (i < payload.len && payload.base[i] != ' ')
            i++;
        if (nf == 5)
            return PD_ERR;
        f[nf++] = pd_slice_make(payload.base + start, i - start);
    }
    if (nf != 5 || !master)
        return PD_ERR;
    if (f[0].len != strlen(master) || memcmp(f[0].base, master, f[0].len) != 0)
        return PD_ERR;
    return string_to_addr(f[3].base, f[3].len, f[4].base, f[4].len, out);
}

int pd_sentinel_role_is_master(const redisReply *reply)
{
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1)
        return 0;
    const redisReply *k = reply->element[0];
    return k && k->type == REDIS_REPLY_STRING && k->len == 6 && memcmp(k->str, "master", 6) == 0;
}

void pd_sentinel_order(size_t n, size_t preferred, size_t *order)
{
    if (n == 0)
        return;
    if (preferred >= n)
        preferred = 0;
    size_t k = 0;
    order[k++] = preferred;
    for (size_t i = 0; i < n; i++)
        if (i != preferred)
            order[k++] = i;
}

/* ---- the client --------------------------------------------------------- */

typedef enum q_state {
    Q_IDLE = 0, /* no round */
    Q_ASKING,   /* q talks to sentinels[order[pos]]; qtimer is its deadline */
    Q_PAUSED,   /* a round failed; qtimer starts the next */
} q_state;

struct pd_sentinel {
    uv_loop_t *loop;                            /* not owned */
    pd_sentinel_addr list[PD_SENTINEL_MAX];     /* the configured sentinels */
    size_t count;                               /* entries in list */
    char master[PD_SENTINEL_NAME_MAX + 1];      /* the master's name */
    char *password;                             /* AUTH for sentinels, or NULL */
    unsigned timeout_ms;                        /* per sentinel */
    pd_sentinel_master_fn cb;
    void *data;
    /* discovery */
    redisAsyncContext *q;                       /* asking context or NULL */
    uv_timer_t qtimer;                          /* deadline (Q_ASKING) or pause (Q_PAUSED) */
    q_state qstate;
    size_t order[PD_SENTINEL_MAX];              /* this round's order */
    size_t pos;                                 /* index into order */
    size_t preferred;                           /* the sentinel that answered last */
    unsigned pause_ms;                          /* next pause between failed rounds */
    /* +switch-master watch */
    redisAsyncContext *w;                       /* watch context or NULL */
    uv_timer_t wtimer;                          /* subscribe or probe deadline, probe period, or retry delay */
    size_t widx;                                /* sentinel the watch uses or tries next */
    int wsubscribed;                            /* subscription confirmed */
    int wprobing;                               /* a repeated SUBSCRIBE awaits its confirmation */
    unsigned wretry_ms;                         /* next retry delay */
    unsigned long answers, switches;            /* for tests and logs */
    int closing;                                /* pd_sentinel_free called */
    int open_handles;                           /* timers not yet closed */
};

static void q_ask(pd_sentinel *s);
static void q_next(pd_sentinel *s);
static void w_connect(pd_sentinel *s);
static void w_retry(pd_sentinel *s);
static void on_qtimer(uv_timer_t *t);
static void on_wtimer(uv_timer_t *t);

static void ctx_forget_free(redisAsyncContext **slot)
{
    redisAsyncContext *ac = *slot;
    if (!ac)
        return;
    *slot = NULL;
    redisAsyncFree(ac);
}

/* A live context failed to connect or was lost: hiredis frees it after
 * this callback, so it is only forgotten here. The asking context moves
 * on to the next sentinel, the watch retries. Contexts we dropped
 * ourselves are no longer s->q or s->w and are ignored. */
static void on_ctx_lost(const redisAsyncContext *ac)
{
    pd_sentinel *s = ac->data;
    if (!s)
        return;
    if (s->q == ac) {
        s->q = NULL;
        q_next(s);
    } else if (s->w == ac) {
        s->w = NULL;
        w_retry(s);
    }
}

static void on_ctx_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK)
        on_ctx_lost(ac); /* success: the queued commands' replies decide */
}

static void on_ctx_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    on_ctx_lost(ac);
}

/* Connect to sentinel i; AUTH is queued first when there is a password. */
static redisAsyncContext *ctx_open(pd_sentinel *s, size_t i)
{
    redisAsyncContext *ac = redisAsyncConnect(s->list[i].host, s->list[i].port);
    if (!ac)
        return NULL;
    if (ac->err || pd_redis_uv_attach(ac, s->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = s;
    redisAsyncSetConnectCallback(ac, on_ctx_connect);
    redisAsyncSetDisconnectCallback(ac, on_ctx_disconnect);
    if (s->password && redisAsyncCommand(ac, NULL, NULL, "AUTH %s", s->password) != REDIS_OK) {
        redisAsyncFree(ac);
        return NULL;
    }
    return ac;
}

/* -- discovery -- */

static void q_next(pd_sentinel *s)
{
    ctx_forget_free(&s->q);
    if (s->closing)
        return;
    s->pos++;
    if (s->pos < s->count) {
        q_ask(s);
        return;
    }
    /* Nobody answered: pause, growing, then a new round. */
    s->qstate = Q_PAUSED;
    unsigned d = s->pause_ms;
    unsigned jitter = 0;
    pd_random_bytes(&jitter, sizeof(jitter));
    d = d - d / 4 + jitter % (d / 2 + 1); /* ±25 %: workers do not ask in lockstep */
    s->pause_ms = PD_MIN(s->pause_ms * 2, ROUND_PAUSE_MAX_MS);
    uv_timer_start(&s->qtimer, on_qtimer, d, 0);
}

static void q_on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    pd_sentinel *s = privdata;
    if (s->q != ac)
        return; /* dropped: deadline, shutdown */
    pd_sentinel_addr addr;
    if (pd_sentinel_parse_master_reply(reply, &addr) != PD_OK) {
        q_next(s); /* error, nil (unknown master), junk: ask the next one */
        return;
    }
    uv_timer_stop(&s->qtimer);
    s->preferred = s->order[s->pos];
    s->pause_ms = ROUND_PAUSE_MIN_MS;
    s->qstate = Q_IDLE;
    s->answers++;
    ctx_forget_free(&s->q); /* freed by hiredis once this callback returns */
    if (s->cb)
        s->cb(s, &addr, s->data);
}

static void q_ask(pd_sentinel *s)
{
    s->qstate = Q_ASKING;
    uv_timer_start(&s->qtimer, on_qtimer, s->timeout_ms, 0);
    redisAsyncContext *ac = ctx_open(s, s->order[s->pos]);
    if (!ac)
        return; /* the deadline moves on */
    if (redisAsyncCommand(ac, q_on_reply, s, "SENTINEL get-master-addr-by-name %s", s->master) != REDIS_OK) {
        redisAsyncFree(ac);
        return;
    }
    s->q = ac;
}

/* Deadline of one sentinel (Q_ASKING) or end of a pause (Q_PAUSED). */
static void on_qtimer(uv_timer_t *t)
{
    pd_sentinel *s = t->data;
    if (s->closing)
        return;
    if (s->qstate == Q_ASKING) {
        q_next(s);
    } else if (s->qstate == Q_PAUSED) {
        pd_sentinel_order(s->count, s->preferred, s->order);
        s->pos = 0;
        q_ask(s);
    }
}

void pd_sentinel_discover(pd_sentinel *s)
{
    if (s->closing || s->qstate != Q_IDLE)
        return;
    pd_sentinel_order(s->count, s->preferred, s->order);
    s->pos = 0;
    q_ask(s);
}

int pd_sentinel_discovering(const pd_sentinel *s)
{
    return s->qstate != Q_IDLE;
}

/* -- +switch-master watch -- */

static void w_retry(pd_sentinel *s)
{
    ctx_forget_free(&s->w);
    s->wsubscribed = 0;
    s->wprobing = 0;
    if (s->closing)
        return;
    s->widx = (s->widx + 1) % s->count; /* maybe that sentinel is the one down */
    unsigned d = s->wretry_ms;
    s->wretry_ms = PD_MIN(s->wretry_ms * 2, WATCH_RETRY_MAX_MS);
    uv_timer_stop(&s->wtimer);
    uv_timer_start(&s->wtimer, on_wtimer, d, 0);
}

static void w_on_message(redisAsyncContext *ac, void *reply, void *privdata)
{
    pd_sentinel *s = privdata;
    redisReply *rep = reply;
    if (s->w != ac || !rep)
        return;
    if (rep->type == REDIS_REPLY_ERROR) {
        w_retry(s); /* NOAUTH or the like: another sentinel may do better */
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 || rep->element[0]->type != REDIS_REPLY_STRING)
        return;
    const redisReply *kind = rep->element[0], *payload = rep->element[2];
    if (strcmp(kind->str, "subscribe") == 0) {
        /* Subscribed, or a probe answered: the sentinel is alive. */
        s->wsubscribed = 1;
        s->wprobing = 0;
        s->wretry_ms = WATCH_RETRY_MIN_MS;
        uv_timer_stop(&s->wtimer);
        uv_timer_start(&s->wtimer, on_wtimer, 2ull * s->timeout_ms, 0);
        return;
    }
    if (strcmp(kind->str, "message") != 0 || payload->type != REDIS_REPLY_STRING)
        return;
    pd_sentinel_addr addr;
    if (pd_sentinel_parse_switch(pd_slice_make(payload->str, payload->len), s->master, &addr) != PD_OK)
        return; /* another master's failover, or junk */
    s->switches++;
    if (s->cb)
        s->cb(s, &addr, s->data);
}

static void w_connect(pd_sentinel *s)
{
    if (s->closing || s->w)
        return;
    /* The deadline covers connect + subscribe confirmation. */
    uv_timer_start(&s->wtimer, on_wtimer, s->timeout_ms, 0);
    redisAsyncContext *ac = ctx_open(s, s->widx);
    if (!ac)
        return;
    if (redisAsyncCommand(ac, w_on_message, s, "SUBSCRIBE +switch-master") != REDIS_OK) {
        redisAsyncFree(ac);
        return;
    }
    s->w = ac;
}

/* The watch's timer. Subscribed and idle: time to probe. A stopped or
 * cut-off sentinel keeps a TCP link that looks healthy and never says
 * +switch-master, so the subscription is repeated every two timeouts
 * (hiredis 0.14 would keep the callback of a PING in subscribed mode
 * forever; a repeated SUBSCRIBE is confirmed like the first). Otherwise a
 * deadline passed (subscribe or probe unconfirmed: try the next sentinel)
 * or a retry delay ended (connect). */
static void on_wtimer(uv_timer_t *t)
{
    pd_sentinel *s = t->data;
    if (s->closing)
        return;
    if (s->w && s->wsubscribed && !s->wprobing) {
        if (redisAsyncCommand(s->w, w_on_message, s, "SUBSCRIBE +switch-master") != REDIS_OK) {
            w_retry(s);
            return;
        }
        s->wprobing = 1;
        uv_timer_start(&s->wtimer, on_wtimer, s->timeout_ms, 0);
    } else if (s->w) {
        w_retry(s);
    } else {
        w_connect(s);
    }
}

/* -- life cycle -- */

pd_sentinel *pd_sentinel_create(uv_loop_t *loop, const pd_sentinel_options *opt, pd_sentinel_master_fn cb,
                                void *data)
{
    if (!opt || opt->count == 0 || opt->count > PD_SENTINEL_MAX || !pd_sentinel_name_valid(opt->master))
        return NULL;
    pd_sentinel *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    if (opt->password && *opt->password) {
        s->password = strdup(opt->password);
        if (!s->password) {
            free(s);
            return NULL;
        }
    }
    s->loop = loop;
    memcpy(s->list, opt->sentinels, opt->count * sizeof(s->list[0]));
    s->count = opt->count;
    snprintf(s->master, sizeof(s->master), "%s", opt->master);
    s->timeout_ms = opt->timeout_ms ? opt->timeout_ms : 1000;
    s->cb = cb;
    s->data = data;
    s->pause_ms = ROUND_PAUSE_MIN_MS;
    s->wretry_ms = WATCH_RETRY_MIN_MS;
    uv_timer_init(loop, &s->qtimer);
    uv_timer_init(loop, &s->wtimer);
    s->qtimer.data = s->wtimer.data = s;
    s->open_handles = 2;
    w_connect(s);
    return s;
}

unsigned long pd_sentinel_answers(const pd_sentinel *s)
{
    return s->answers;
}

unsigned long pd_sentinel_switches(const pd_sentinel *s)
{
    return s->switches;
}

static void on_closed(uv_handle_t *h)
{
    pd_sentinel *s = h->data;
    if (--s->open_handles == 0) {
        free(s->password);
        free(s);
    }
}

void pd_sentinel_free(pd_sentinel *s)
{
    if (!s)
        return;
    s->closing = 1;
    ctx_forget_free(&s->q);
    ctx_forget_free(&s->w);
    uv_close((uv_handle_t *)&s->qtimer, on_closed);
    uv_close((uv_handle_t *)&s->wtimer, on_closed);
}
