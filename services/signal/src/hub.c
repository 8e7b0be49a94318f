/* The sockets and rooms of this worker, the Socket.IO events
 * (docs/wire-protocol.md §Events) and the bus between workers
 * (docs/architecture.md §Bus).
 *
 * Local state is a cache of what Redis says, kept for the sockets this
 * worker owns: sid → session, room → local members. Redis stays the truth
 * for joins (one Lua script decides); the bus carries every room-scoped
 * packet once per room channel, and a worker is subscribed to a room's
 * channel while it has a member there (plus a short grace period, so a
 * leave followed by a join does not race an UNSUBSCRIBE). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "privydrop/pd_bus.h"
#include "privydrop/pd_jscan.h"
#include "privydrop/pd_log.h"
#include "privydrop/pd_ptab.h"
#include "privydrop/pd_room.h"
#include "privydrop/pd_sio.h"
#include "privydrop/pd_wsscan.h"
#include "events.h"
#include "fwd.h"
#include "hub.h"
#include "maint.h"

#define HUB_UNSUB_GRACE_MS 5000
#define HUB_MAX_JOINS_INFLIGHT 4
#define HUB_MAX_PENDING_CLEANUPS 200000
/* A pressure notice from another worker (maint.c sends ours) holds us back
 * this long. */
#define HUB_PRESSURE_HOLD_MS 150
/* A join that finds its room reserved (PD_JOIN_RESERVED) is asked again
 * after 1, 2, 4, ... ms (at most HUB_RESERVED_STEP_MAX_MS apart), for
 * PD_JOIN_RESERVED_WAIT_MS in all: the room API answers an id from its
 * pool without waiting for the claim (docs/architecture.md, "get_room from
 * a pool"), so the client's join can reach Redis before it. A join to a
 * reserved room nobody claims still ends in "Room does not exist". */
#define HUB_RESERVED_STEP_MAX_MS 250
/* Waits of 1, 2, 4, ... 128 ms, then HUB_RESERVED_STEP_MAX_MS: one queue
 * each. Within a queue every join waits the same, so the first queued is
 * the first due, and finding the next due join costs one look per queue,
 * however many joins wait. */
#define HUB_WAIT_QUEUES 9

/* Rooms of two are the rule: their members fit in the entry itself. */
#define HUB_ROOM_INLINE 2

typedef struct hub_room hub_room;

/* The hub's record of one open connection, in conn->data from on_open to
 * on_close; the sessions table holds it by sid. */
typedef struct hub_sock {
    pd_conn *conn;            /* the transport's connection (borrowed until on_close) */
    hub_room *room;           /* bound room or NULL; the entry lives while bound */
    uint8_t joins_inflight;   /* joins sent to Redis and not yet answered */
} hub_sock;

struct hub_room {
    hub_sock **members;       /* local sockets bound to it: `inline_members` or owned */
    uint32_t n, cap;
    int joins_pending;        /* joins in flight that want the channel */
    uint64_t empty_since;     /* monotonic ms when n and joins hit 0 */
    uint64_t refreshed_at;    /* monotonic ms its Redis keys were last renewed; 0: due */
    int restore;              /* the next refresh may restore it (Redis became ready again) */
    hub_sock *inline_members[HUB_ROOM_INLINE];
    char id[];                /* room id */
};

static pd_slice sess_key(const void *s)
{
    return pd_slice_cstr(((const hub_sock *)s)->conn->sid);
}

static pd_slice room_key(const void *r)
{
    return pd_slice_cstr(((const hub_room *)r)->id);
}

/* The id of the room a socket is bound to, "" if none. */
static const char *sess_room_id(hub_sock *s)
{
    hub_room *r = s->room;
    return r ? r->id : "";
}

/* A socket whose Redis cleanup could not run (Redis down): retried. */
typedef struct hub_cleanup {
    struct hub_cleanup *next;
    char sid[PD_SOCKET_ID_MAX + 1];
    char room[PD_ID_MAX + 1];
} hub_cleanup;

/* One socket a drain still has to close. */
typedef struct hub_drain_entry {
    char sid[PD_SOCKET_ID_MAX + 1];
} hub_drain_entry;

struct pd_hub {
    pd_worker *w;
    pd_ptab *sessions;        /* hub_sock by sid */
    pd_ptab *rooms;           /* hub_room by id */
    pd_map *ips;              /* client address → open sockets (as uintptr_t) */
    pd_maint *maint;          /* heartbeat, reaper, sweep and pressure timers (owned) */
    uint64_t held_until;      /* a peer asked us to hold back until then (monotonic ms) */
    int holding;              /* may_read said no and has not said yes since */
    hub_cleanup *cleanups;    /* pending Redis cleanups */
    size_t ncleanups;
    struct join_ctx *wait_head[HUB_WAIT_QUEUES]; /* joins that found their room reserved (owned), */
    struct join_ctx *wait_tail[HUB_WAIT_QUEUES]; /* by the length of their wait, oldest first */
    uv_timer_t *wait_timer;   /* asks them again when due (owned; closed by pd_hub_free) */
    hub_drain_entry *drain;   /* SIGTERM: the sockets to close, in order (owned) */
    size_t ndrain;            /* entries in drain */
    size_t drain_next;        /* first entry not yet handled */
};

/* ---- rooms -------------------------------------------------------------- */

static hub_room *room_get(pd_hub *h, pd_slice id)
{
    return pd_ptab_get(h->rooms, id);
}

/* Find or create the local room entry and make sure its channel is wanted. */
static hub_room *room_want(pd_hub *h, pd_slice id)
{
    hub_room *r = room_get(h, id);
    if (r)
        return r;
    r = calloc(1, sizeof(*r) + id.len + 1);
    if (!r)
        return NULL;
    memcpy(r->id, id.base, id.len);
    r->members = r->inline_members;
    r->cap = HUB_ROOM_INLINE;
    if (pd_ptab_put(h->rooms, r) != PD_OK) {
        free(r);
        return NULL;
    }
    char ch[PD_ID_MAX + 16];
    int n = pd_bus_channel(ch, sizeof(ch), id);
    if (n > 0)
        pd_redis_subscribe(h->w->redis, pd_slice_make(ch, (size_t)n));
    pd_metric_set(h->w->m_rooms, NULL, (double)pd_ptab_count(h->rooms));
    return r;
}

static void room_maybe_empty(hub_room *r)
{
    if (r->n == 0 && r->joins_pending == 0)
        r->empty_since = pd_mono_ms();
}

static int room_add(hub_room *r, hub_sock *s)
{
    for (uint32_t i = 0; i < r->n; i++)
        if (r->members[i] == s)
            return PD_OK;
    if (r->n == r->cap) {
        uint32_t cap = r->cap * 2;
        hub_sock **m = r->members == r->inline_members ? malloc(cap * sizeof(*m))
                                                      : realloc(r->members, cap * sizeof(*m));
        if (!m)
            return PD_ERR;
        if (r->members == r->inline_members)
            memcpy(m, r->inline_members, sizeof(r->inline_members));
        r->members = m;
        r->cap = cap;
    }
    r->members[r->n++] = s;
    r->empty_since = 0;
    return PD_OK;
}

static void room_remove(hub_room *r, hub_sock *s)
{
    for (uint32_t i = 0; i < r->n; i++) {
        if (r->members[i] == s) {
            r->members[i] = r->members[--r->n];
            break;
        }
    }
    room_maybe_empty(r);
}

static void room_free(pd_hub *h, hub_room *r)
{
    char ch[PD_ID_MAX + 16];
    int n = pd_bus_channel(ch, sizeof(ch), pd_slice_cstr(r->id));
    if (n > 0)
        pd_redis_unsubscribe(h->w->redis, pd_slice_make(ch, (size_t)n));
    pd_ptab_del(h->rooms, pd_slice_cstr(r->id));
    if (r->members != r->inline_members)
        free(r->members);
    free(r);
    pd_metric_set(h->w->m_rooms, NULL, (double)pd_ptab_count(h->rooms));
}

/* ---- delivery ----------------------------------------------------------- */

static void deliver_local(hub_room *r, const char *except, const char *pkt, size_t len)
{
    for (size_t i = 0; i < r->n; i++) {
        hub_sock *m = r->members[i];
        if (except && strcmp(m->conn->sid, except) == 0)
            continue;
        pd_conn_send(m->conn, pkt, len);
    }
}

/* Publish a packet on the bus: on the room's channel, which every worker
 * with a member in `room` hears, or, when `tag` names a worker, on that
 * worker's own channel only (a signal for its socket `target`: no other
 * worker hears it, the sender's included, and the envelope names the room
 * the channel does not). */
static void publish(pd_hub *h, pd_slice tag, const char *room, pd_bus_kind kind, pd_slice target,
                    const char *pkt, size_t len)
{
    pd_worker *w = h->w;
    if (len > pd_worker_bus_max_packet(w)) {
        /* Longer than the subscriber links take: it would cost every
         * subscribed worker its link, and still not arrive. */
        pd_metric_add(w->m_dropped, "too_large", 1);
        return;
    }
    pd_bus_envelope env = {kind, pd_slice_cstr(w->cfg.worker_id), target, pd_slice_make(pkt, len), {NULL, 0}};
    const char *fail = NULL;
    if (!tag.len) {
        if (pd_room_publish(w->redis, pd_slice_cstr(room), &env) != PD_OK)
            fail = pd_redis_ready(w->redis) ? "encode" : "redis_down";
    } else {
        env.room = pd_slice_cstr(room);
        char head[PD_BUS_MAX_ORIGIN + 2 * PD_ID_MAX + 16];
        int hlen = pd_bus_encode_head(&env, head, sizeof(head));
        if (hlen <= 0)
            fail = "encode";
        else if (pd_fwd_publish(w, tag, head, (size_t)hlen, pkt, len, NULL, NULL) != PD_OK)
            fail = "redis_down";
    }
    if (fail)
        pd_metric_add(w->m_dropped, fail, 1);
    else
        pd_metric_add(w->m_publishes, NULL, 1);
}

/* A packet for everyone in `room` but `except`: local members directly,
 * the others through the bus. */
static void emit_room(pd_hub *h, const char *room, const char *except, pd_bus_kind kind,
                      const char *pkt, size_t len)
{
    hub_room *r = room_get(h, pd_slice_cstr(room));
    if (r)
        deliver_local(r, except, pkt, len);
    publish(h, (pd_slice){NULL, 0}, room, kind, pd_slice_cstr(except ? except : ""), pkt, len);
}

/* Encode and let `payload` go. A NULL payload (a json_pack that could not
 * allocate) encodes nothing: a packet without its fields must not go out. */
static char *encode_event(const char *event, json_t *payload, size_t *len)
{
    if (!payload)
        return NULL;
    char *pkt = pd_sio_encode_event(event, payload, len);
    json_decref(payload);
    return pkt;
}

static void emit_to(hub_sock *s, const char *event, json_t *payload /* stolen */)
{
    size_t len = 0;
    char *pkt = encode_event(event, payload, &len);
    if (pkt)
        pd_conn_send(s->conn, pkt, len);
    free(pkt);
}

static void emit_peer_disconnected(pd_hub *h, const char *room, const char *sid, pd_bus_kind kind)
{
    size_t len = 0;
    char *pkt = encode_event("peer-disconnected", json_pack("{s:s}", "peerId", sid), &len);
    if (pkt)
        emit_room(h, room, sid, kind, pkt, len);
    free(pkt);
}

/* ---- Redis cleanup with retry ------------------------------------------- */

/* A leave Redis did not take is kept for a retry. When the queue is full
 * (or memory is short) it is dropped and counted: the socket's keys then
 * expire with their TTLs, and the reaper removes it from its room once this
 * worker is gone. */
static void cleanup_queue(pd_hub *h, const char *sid, const char *room)
{
    hub_cleanup *c = h->ncleanups < HUB_MAX_PENDING_CLEANUPS ? calloc(1, sizeof(*c)) : NULL;
    if (!c) {
        pd_metric_add(h->w->m_dropped, "cleanup_queue_full", 1);
        pd_log(PD_LOG_WARN, "room cleanup dropped", "{s:s, s:i}", "room", room, "pending", (int)h->ncleanups);
        return;
    }
    snprintf(c->sid, sizeof(c->sid), "%s", sid);
    snprintf(c->room, sizeof(c->room), "%s", room);
    c->next = h->cleanups;
    h->cleanups = c;
    h->ncleanups++;
}

typedef struct leave_ctx {
    pd_hub *h;
    char sid[PD_SOCKET_ID_MAX + 1];
    char room[PD_ID_MAX + 1];
} leave_ctx;

static void on_leave_done(long v, void *data)
{
    leave_ctx *c = data;
    if (v < 0)
        cleanup_queue(c->h, c->sid, c->room);
    free(c);
}

static void redis_leave(pd_hub *h, const char *sid, const char *room)
{
    leave_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->h = h;
    snprintf(c->sid, sizeof(c->sid), "%s", sid);
    snprintf(c->room, sizeof(c->room), "%s", room);
    if (pd_room_leave(h->w->redis, pd_slice_cstr(sid), pd_slice_cstr(room), h->w->cfg.worker_id,
                      on_leave_done, c) != PD_OK) {
        cleanup_queue(h, sid, room);
        free(c);
    }
}

static void cleanups_retry(pd_hub *h)
{
    if (!pd_redis_ready(h->w->redis))
        return;
    hub_cleanup *list = h->cleanups;
    h->cleanups = NULL;
    h->ncleanups = 0;
    while (list) {
        hub_cleanup *next = list->next;
        redis_leave(h, list->sid, list->room);
        free(list);
        list = next;
    }
}

/* ---- session life cycle -------------------------------------------------- */

typedef struct count_ctx {
    pd_hub *h;
    char sid[PD_SOCKET_ID_MAX + 1];
} count_ctx;

static void on_counted(long v, void *data)
{
    (void)v;
    count_ctx *c = data;
    hub_sock *s = pd_ptab_get(c->h->sessions, pd_slice_cstr(c->sid));
    if (s)
        s->conn->ops->counted(s->conn);
    free(c);
}

static void ip_adjust(pd_hub *h, const char *ip, int delta)
{
    pd_slice key = pd_slice_cstr(ip);
    uintptr_t n = (uintptr_t)pd_map_get(h->ips, key);
    n = delta > 0 ? n + 1 : (n ? n - 1 : 0);
    if (n == 0)
        pd_map_del(h->ips, key);
    else
        pd_map_put(h->ips, key, (void *)n);
}

size_t pd_hub_ip_count(const pd_hub *h, const char *ip)
{
    return (size_t)(uintptr_t)pd_map_get(h->ips, pd_slice_cstr(ip));
}

static void hub_on_open(void *ud, pd_conn *conn)
{
    pd_hub *h = ud;
    char ip[INET6_ADDRSTRLEN];
    hub_sock *s = calloc(1, sizeof(*s));
    if (s)
        s->conn = conn;
    if (!s || pd_ptab_put(h->sessions, s) != PD_OK) {
        free(s);
        pd_conn_close(conn, PD_WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    conn->data = s;
    ip_adjust(h, pd_conn_client_ip(s->conn, ip), +1);
    pd_metric_set(h->w->m_connections, NULL, (double)pd_ptab_count(h->sessions));
    /* /health/detailed must count this socket as soon as its client sees
     * "connect", so the Socket.IO connect answer waits for this reply. */
    count_ctx *c = calloc(1, sizeof(*c));
    if (c) {
        c->h = h;
        snprintf(c->sid, sizeof(c->sid), "%s", s->conn->sid);
        if (pd_cluster_conn_delta(h->w->redis, h->w->cfg.worker_id, 1, on_counted, c) == PD_OK)
            return;
        free(c);
    }
    conn->ops->counted(conn); /* Redis down: the next heartbeat sets the count */
}

static void hub_on_close(void *ud, pd_conn *conn)
{
    pd_hub *h = ud;
    hub_sock *s = conn->data;
    if (!s)
        return; /* its open failed */
    conn->data = NULL;
    const char *sid = conn->sid;
    pd_ptab_del(h->sessions, pd_slice_cstr(sid));
    char ip[INET6_ADDRSTRLEN];
    ip_adjust(h, pd_conn_client_ip(s->conn, ip), -1);
    pd_metric_set(h->w->m_connections, NULL, (double)pd_ptab_count(h->sessions));
    pd_cluster_conn_delta(h->w->redis, h->w->cfg.worker_id, -1, NULL, NULL);
    hub_room *r = s->room;
    if (r) {
        emit_peer_disconnected(h, r->id, sid, PD_BUS_BROADCAST);
        room_remove(r, s);
        redis_leave(h, sid, r->id);
        s->room = NULL;
    }
    free(s);
}

/* ---- join ---------------------------------------------------------------- */

typedef struct join_ctx {
    pd_hub *h;
    struct join_ctx *next;    /* in its wait queue while it waits */
    uint64_t first_ms;        /* monotonic ms the room was first found reserved; 0: not yet */
    uint64_t due_ms;          /* waiting: when to ask again */
    int tries;                /* times it found the room reserved */
    long long seen_ms;        /* when Redis first found it reserved (its clock) */
    char sid[PD_SOCKET_ID_MAX + 1];
    char room[PD_ID_MAX + 1];
} join_ctx;

static void join_respond(hub_sock *s, int ok, const char *message, const char *room)
{
    emit_to(s, "joinResponse",
            json_pack("{s:b, s:s, s:s}", "success", ok, "message", message, "roomId", room));
}

static void join_server_error(hub_sock *s, const char *error)
{
    emit_to(s, "joinResponse",
            json_pack("{s:b, s:s, s:s}", "success", 0, "message", "Server error while joining room",
                      "error", error));
}

static void on_ready_published(redisReply *reply, void *data)
{
    (void)reply;
    join_ctx *c = data;
    hub_sock *s = pd_ptab_get(c->h->sessions, pd_slice_cstr(c->sid));
    if (s && strcmp(sess_room_id(s), c->room) == 0)
        join_respond(s, 1, "Successfully joined room", c->room);
    free(c);
}

/* `ready` to the others, then the joiner's joinResponse — only once Redis
 * has handled the PUBLISH. A client that reacts to its joinResponse (say,
 * by having a second socket join on another worker) can then never cause a
 * subscription to overtake the ready: nobody hears a stale ready for a peer
 * that joined before them. */
static void announce_join(pd_hub *h, hub_sock *s, hub_room *r, const join_ctx *c)
{
    pd_worker *w = h->w;
    size_t len = 0;
    char *pkt = encode_event("ready", json_pack("{s:s}", "peerId", c->sid), &len);
    if (!pkt) {
        join_respond(s, 1, "Successfully joined room", c->room);
        return;
    }
    deliver_local(r, c->sid, pkt, len);
    join_ctx *ack = malloc(sizeof(*ack));
    pd_bus_envelope env = {PD_BUS_BROADCAST, pd_slice_cstr(w->cfg.worker_id), pd_slice_cstr(c->sid),
                           pd_slice_make(pkt, len), {NULL, 0}};
    if (ack) {
        *ack = *c;
        if (pd_room_publish_then(w->redis, pd_slice_cstr(c->room), &env, on_ready_published, ack) == PD_OK) {
            pd_metric_add(w->m_publishes, NULL, 1);
            free(pkt);
            return;
        }
        free(ack);
    }
    pd_metric_add(w->m_dropped, "redis_down", 1);
    join_respond(s, 1, "Successfully joined room", c->room);
    free(pkt);
}

static void on_join_done(const pd_join_result *res, void *data);
static void on_wait_timer(uv_timer_t *t);

/* The earliest waiting join decides when the timer fires next. */
static void wait_timer_arm(pd_hub *h, uint64_t now)
{
    uint64_t next = UINT64_MAX;
    for (int k = 0; k < HUB_WAIT_QUEUES; k++)
        if (h->wait_head[k] && h->wait_head[k]->due_ms < next)
            next = h->wait_head[k]->due_ms;
    if (next == UINT64_MAX)
        uv_timer_stop(h->wait_timer);
    else
        uv_timer_start(h->wait_timer, on_wait_timer, next > now ? next - now : 0, 0);
}

/* A join that found its room reserved, its time come: asked again, without
 * the rate limit (the first try was counted), and let in only if the room
 * was handed out after it first found it reserved (pd_room_join_again: a
 * join that waited from before the hand-out is a stranger's). Its
 * socket's and room's counts of joins in flight held while it waited. */
static void join_again(pd_hub *h, join_ctx *c)
{
    pd_worker *w = h->w;
    hub_room *r = room_get(h, pd_slice_cstr(c->room));
    hub_sock *s = pd_ptab_get(h->sessions, pd_slice_cstr(c->sid));
    char ip[INET6_ADDRSTRLEN];
    if (!s)
        pd_metric_add(w->m_join_waits, "gone", 1);
    if (s && r && pd_redis_ready(w->redis) &&
        pd_room_join_again(w->redis, pd_slice_cstr(c->sid), pd_slice_cstr(c->room), pd_conn_client_ip(s->conn, ip),
                           c->seen_ms, w->cfg.max_room_peers, w->cfg.worker_id, on_join_done, c) == PD_OK)
        return;
    pd_join_result res = {PD_JOIN_ERROR, 0, 0, "redis unavailable", 0};
    on_join_done(&res, c);
}

static void on_wait_timer(uv_timer_t *t)
{
    pd_hub *h = t->data;
    uint64_t now = pd_mono_ms();
    /* Those due are taken off their queues first: a join asked again may
     * come straight back (Redis failing at once) and must not be seen
     * twice. */
    join_ctx *due = NULL;
    for (int k = 0; k < HUB_WAIT_QUEUES; k++) {
        while (h->wait_head[k] && h->wait_head[k]->due_ms <= now) {
            join_ctx *c = h->wait_head[k];
            h->wait_head[k] = c->next;
            c->next = due;
            due = c;
        }
        if (!h->wait_head[k])
            h->wait_tail[k] = NULL;
    }
    while (due) {
        join_ctx *c = due;
        due = c->next;
        c->next = NULL;
        join_again(h, c);
    }
    wait_timer_arm(h, pd_mono_ms());
}

/* PD_JOIN_RESERVED (or its room lost since): wait and ask again, unless
 * the socket is gone or the wait is over (then 0: answered as a room that
 * does not exist). */
static int join_wait(pd_hub *h, join_ctx *c)
{
    uint64_t now = pd_mono_ms();
    if (!c->first_ms)
        c->first_ms = now;
    /* A draining worker's sockets are closed soon (then "gone"): their
     * clients join again elsewhere. */
    if (!pd_ptab_get(h->sessions, pd_slice_cstr(c->sid))) {
        pd_metric_add(h->w->m_join_waits, "gone", 1);
        return 0;
    }
    if (now - c->first_ms >= (uint64_t)h->w->cfg.join_reserved_wait_ms) {
        pd_metric_add(h->w->m_join_waits, "timeout", 1);
        return 0;
    }
    int k = c->tries < HUB_WAIT_QUEUES - 1 ? c->tries : HUB_WAIT_QUEUES - 1;
    c->tries++;
    uint64_t step = k < HUB_WAIT_QUEUES - 1 ? (uint64_t)1 << k : HUB_RESERVED_STEP_MAX_MS;
    c->due_ms = now + step;
    c->next = NULL;
    if (h->wait_tail[k])
        h->wait_tail[k]->next = c;
    else
        h->wait_head[k] = c;
    h->wait_tail[k] = c;
    if (h->wait_head[k] == c)
        wait_timer_arm(h, now);
    return 1;
}

static void on_join_done(const pd_join_result *res, void *data)
{
    join_ctx *c = data;
    pd_hub *h = c->h;
    /* Waiting too: a room this join already found reserved and now finds
     * gone. Redis lost it (a restart, a FLUSHALL), and the claim the room
     * API sends again creates it again (claim.h). */
    if (res->status == PD_JOIN_RESERVED && !c->seen_ms)
        c->seen_ms = res->seen_ms;
    if ((res->status == PD_JOIN_RESERVED || (res->status == PD_JOIN_NO_ROOM && c->first_ms)) && join_wait(h, c))
        return;
    hub_room *r = room_get(h, pd_slice_cstr(c->room));
    if (r) {
        r->joins_pending--;
        room_maybe_empty(r);
    }
    hub_sock *s = pd_ptab_get(h->sessions, pd_slice_cstr(c->sid));
    if (!s) {
        /* The socket closed while Redis was binding it: undo the binding so
         * no ghost stays in the room. */
        if (res->status == PD_JOIN_OK)
            redis_leave(h, c->sid, c->room);
        free(c);
        return;
    }
    s->joins_inflight--;
    hub_room *bound = s->room;
    char msg[128];
    switch (res->status) {
    case PD_JOIN_OK:
    case PD_JOIN_REJOIN:
        if (bound && strcmp(bound->id, c->room) != 0) {
            /* Bound elsewhere by a concurrent join that finished first. */
            join_respond(s, 0, "Socket is already bound to another room", c->room);
            break;
        }
        if (!r)
            r = room_want(h, pd_slice_cstr(c->room));
        if (!r || room_add(r, s) != PD_OK) {
            join_server_error(s, "out of memory");
            break;
        }
        s->room = r;
        if (c->first_ms)
            pd_metric_add(h->w->m_join_waits, "joined", 1);
        if (!r->refreshed_at)
            r->refreshed_at = pd_mono_ms(); /* the join renewed the room's life */
        announce_join(h, s, r, c);
        break;
    case PD_JOIN_BOUND_ELSEWHERE:
        join_respond(s, 0, "Socket is already bound to another room", c->room);
        break;
    case PD_JOIN_RATE_LIMITED:
        snprintf(msg, sizeof(msg), "Rate limit exceeded. Try again in %lds. Attempts left: %ld.",
                 res->reset_after_s, res->remaining);
        join_respond(s, 0, msg, c->room);
        break;
    case PD_JOIN_NO_ROOM:
    case PD_JOIN_RESERVED: /* and nobody claimed it while we waited */
        join_respond(s, 0, "Room does not exist", c->room);
        break;
    case PD_JOIN_HANDED_BEFORE: /* handed out to a client that asked after us */
        pd_metric_add(h->w->m_join_waits, "refused", 1);
        join_respond(s, 0, "Room does not exist", c->room);
        break;
    case PD_JOIN_FULL:
        join_respond(s, 0, "Room is full", c->room);
        break;
    case PD_JOIN_ERROR:
        join_server_error(s, res->error ? res->error : "redis error");
        break;
    }
    free(c);
}

static void on_join(pd_hub *h, hub_sock *s, json_t *payload)
{
    pd_worker *w = h->w;
    pd_slice rs;
    pd_event_check chk = pd_event_join(payload, &rs);
    if (chk == PD_EVENT_BAD_PAYLOAD) {
        pd_metric_add(w->m_dropped, "bad_payload", 1);
        return;
    }
    const char *room = rs.base;
    if (chk == PD_EVENT_BAD_ID) {
        /* No such id can ever be created (create_room refuses it). */
        emit_to(s, "joinResponse",
                json_pack("{s:b, s:s, s:s#}", "success", 0, "message", "Room does not exist",
                          "roomId", room, pd_event_echo_len(rs, (size_t)PD_ID_MAX * 2)));
        return;
    }
    hub_room *bound = s->room;
    if (bound && strcmp(bound->id, room) != 0) {
        join_respond(s, 0, "Socket is already bound to another room", room);
        return;
    }
    if (s->joins_inflight >= HUB_MAX_JOINS_INFLIGHT) {
        pd_metric_add(w->m_dropped, "join_flood", 1);
        return;
    }
    if (w->draining) {
        /* A client that reached us just before the drain: "Server error"
         * would make it wait 3 s to retry here, where it will be closed
         * anyway; closed now, it reconnects to a worker that stays. */
        pd_conn_close(s->conn, 1001, "server shutting down");
        return;
    }
    if (!pd_redis_ready(w->redis)) {
        join_server_error(s, "redis unavailable");
        return;
    }
    join_ctx *c = calloc(1, sizeof(*c));
    hub_room *r = room_want(h, rs); /* subscribe before the peers hear of us */
    if (!c || !r) {
        free(c);
        if (r)
            room_maybe_empty(r); /* nobody joined it after all: unsubscribe */
        join_server_error(s, "out of memory");
        return;
    }
    c->h = h;
    snprintf(c->sid, sizeof(c->sid), "%s", s->conn->sid);
    snprintf(c->room, sizeof(c->room), "%s", room);
    char ip[INET6_ADDRSTRLEN];
    if (pd_room_join(w->redis, pd_slice_cstr(c->sid), rs, pd_conn_client_ip(s->conn, ip), w->cfg.join_rate_limit,
                     w->cfg.max_room_peers, w->cfg.worker_id, on_join_done, c) != PD_OK) {
        free(c);
        room_maybe_empty(r);
        join_server_error(s, "redis unavailable");
        return;
    }
    r->joins_pending++;
    s->joins_inflight++;
}

/* ---- signals and room broadcasts ---------------------------------------- */

/* Deliver an encoded signal to its target: directly when local (and in
 * the sender's room); to the worker its id names (docs/architecture.md
 * §Signals); or, for an id without a tag, once on the sender's room
 * channel. */
static void relay_to(pd_hub *h, const char *room, hub_sock *target, pd_slice peer, const char *pkt, size_t len)
{
    if (target) {
        pd_conn_send(target->conn, pkt, len);
        return;
    }
    pd_slice tag;
    if (!pd_id_tag_of(peer, &tag)) {
        publish(h, (pd_slice){NULL, 0}, room, PD_BUS_TO_SOCKET, peer, pkt, len);
        return;
    }
    if (pd_fwd_is_local(h->w, peer)) {
        /* Ours, yet not open here: it has closed, and no other worker
         * can hold it. */
        pd_metric_add(h->w->m_dropped, "gone", 1);
        return;
    }
    publish(h, tag, room, PD_BUS_TO_SOCKET, peer, pkt, len);
}

/* Whether s may signal `peer` (both paths ask here): 1 if so, with *target
 * the peer's record when it is on this worker (NULL: relay through the
 * bus); 0 if not, counted by reason. Only inside the sender's room — a
 * target on another worker is checked there, against its own room. */
static int relay_allowed(pd_hub *h, hub_sock *s, pd_slice peer, int peer_valid, hub_sock **target)
{
    pd_metric *dropped = h->w->m_dropped;
    *target = NULL;
    if (!s->room) {
        pd_metric_add(dropped, "not_in_room", 1);
        return 0;
    }
    if (!peer_valid) {
        pd_metric_add(dropped, "bad_target", 1);
        return 0;
    }
    *target = pd_ptab_get(h->sessions, peer);
    if (*target && (*target)->room != s->room) {
        pd_metric_add(dropped, "other_room", 1);
        return 0;
    }
    return 1;
}

/* offer / answer / ice-candidate: {peerId, <field>, from?} → the target gets
 * {<field>, from: sender, peerId: sender}. */
static void on_signal(pd_hub *h, hub_sock *s, const pd_event_def *ev, json_t *payload)
{
    pd_slice peer;
    json_t *value = NULL;
    pd_event_check chk = pd_event_signal(payload, ev->field, &peer, &value);
    if (chk == PD_EVENT_BAD_PAYLOAD) {
        pd_metric_add(h->w->m_dropped, "bad_payload", 1);
        return;
    }
    hub_sock *target;
    if (!relay_allowed(h, s, peer, chk == PD_EVENT_OK, &target))
        return;
    json_t *out = json_object();
    if (!out || json_object_set(out, ev->field, value) != 0 ||
        json_object_set_new(out, "from", json_string(s->conn->sid)) != 0 ||
        json_object_set_new(out, "peerId", json_string(s->conn->sid)) != 0) {
        json_decref(out); /* out of memory: no half-built signal goes out */
        return;
    }
    size_t len = 0;
    char *pkt = encode_event(ev->name, out, &len);
    if (!pkt)
        return;
    relay_to(h, s->room->id, target, peer, pkt, len);
    free(pkt);
}

/* Deep enough for any SDP or candidate object; deeper packets take the
 * general path. */
#define RAW_MAX_DEPTH 32

/* The relay fast path: offer / answer / ice-candidate straight from the
 * packet's JSON text (validated by pd_jscan, never turned into a tree).
 * Returns 0 when the packet is anything else (another event, escapes in the
 * name or target, nesting beyond the scanner's bound) and the caller must use
 * the general path; 1 when it was handled (relayed or dropped). */
static int on_event_raw(pd_hub *h, hub_sock *s, pd_slice data)
{
    pd_worker *w = h->w;
    pd_slice name, payload;
    int esc = 0;
    /* The members any signal needs, found in the same pass that validates
     * the packet (the event's name is known only once that pass is over):
     * peerId, then each signal event's field (events.c). */
    pd_jscan_member m[] = {{"peerId", {NULL, 0}}, {"candidate", {NULL, 0}}, {"offer", {NULL, 0}},
                           {"answer", {NULL, 0}}};
    if (pd_jscan_event_members(data, RAW_MAX_DEPTH, &name, &esc, &payload, m, PD_ARRAY_LEN(m)) != PD_OK ||
        esc)
        return 0;
    const pd_event_def *ev = pd_event_lookup(name);
    if (!ev || ev->kind != PD_EVENT_SIGNAL)
        return 0;
    size_t f = 1;
    while (f < PD_ARRAY_LEN(m) && strcmp(m[f].key, ev->field) != 0)
        f++;
    if (f == PD_ARRAY_LEN(m))
        return 0; /* a signal field not listed above: the general path knows it */
    if (!m[0].value.base || !m[f].value.base || m[0].value.base[0] != '"') {
        pd_metric_add(w->m_messages, ev->name, 1);
        pd_metric_add(w->m_dropped, "bad_payload", 1);
        return 1;
    }
    pd_slice peer = pd_slice_make(m[0].value.base + 1, m[0].value.len - 2);
    if (memchr(peer.base, '\\', peer.len))
        return 0; /* an escaped id: let the decoder unescape it */
    pd_metric_add(w->m_messages, ev->name, 1);
    hub_sock *target;
    if (!relay_allowed(h, s, peer, pd_id_valid(peer), &target))
        return 1;
    const char *sid = s->conn->sid;
    size_t len = pd_event_signal_packet(NULL, 0, ev->name, ev->field, m[f].value, sid);
    char stackbuf[2048];
    char *pkt = len <= sizeof(stackbuf) ? stackbuf : malloc(len);
    if (!pkt)
        return 1;
    pd_event_signal_packet(pkt, len, ev->name, ev->field, m[f].value, sid);
    relay_to(h, s->room->id, target, peer, pkt, len);
    if (pkt != stackbuf)
        free(pkt);
    return 1;
}

/* initiator-online / recipient-ready: to the rest of the sender's room. */
static void on_room_event(pd_hub *h, hub_sock *s, const char *event, json_t *payload)
{
    pd_worker *w = h->w;
    const char *asked = NULL;
    const char *room = sess_room_id(s);
    if (pd_event_room(payload, &asked) != PD_EVENT_OK) {
        pd_metric_add(w->m_dropped, "bad_payload", 1);
        return;
    }
    /* Stricter than PrivyDrop: only the sender's own room. */
    if (!room[0] || strcmp(asked, room) != 0) {
        pd_metric_add(w->m_dropped, "other_room", 1);
        return;
    }
    json_t *out;
    if (strcmp(event, "initiator-online") == 0) {
        out = json_pack("{s:s}", "roomId", room);
    } else {
        json_t *jpeer = json_object_get(payload, "peerId");
        if (jpeer && (!json_is_string(jpeer) || strcmp(json_string_value(jpeer), s->conn->sid) != 0)) {
            pd_metric_add(w->m_dropped, "forged_peer", 1);
            return;
        }
        out = json_pack("{s:s}", "peerId", s->conn->sid);
    }
    size_t len = 0;
    char *pkt = encode_event(event, out, &len);
    if (pkt)
        emit_room(h, room, s->conn->sid, PD_BUS_BROADCAST, pkt, len);
    free(pkt);
}

/* The general path: a decoded event, name and argument array (borrowed). */
static void on_event(pd_hub *h, hub_sock *s, const char *name, json_t *args)
{
    pd_worker *w = h->w;
    json_t *payload = json_array_get(args, 1);
    const pd_event_def *ev = pd_event_lookup(pd_slice_cstr(name));
    if (!ev) {
        pd_metric_add(w->m_messages, "unknown", 1);
        pd_metric_add(w->m_dropped, "unknown_event", 1);
        return;
    }
    pd_metric_add(w->m_messages, ev->name, 1);
    switch (ev->kind) {
    case PD_EVENT_JOIN:
        on_join(h, s, payload);
        break;
    case PD_EVENT_SIGNAL:
        on_signal(h, s, ev, payload);
        break;
    case PD_EVENT_ROOM:
        on_room_event(h, s, ev->name, payload);
        break;
    }
}

/* ---- bus ----------------------------------------------------------------- */

/* 1 while another instance has told us it cannot keep up with the bus. */
static int peers_behind(const pd_hub *h)
{
    return h->held_until > pd_mono_ms();
}

/* An envelope of `room`, from a room channel or our own: what it asks of
 * this worker's members of that room. */
static void bus_deliver(pd_hub *h, pd_slice room, const pd_bus_envelope *e)
{
    pd_worker *w = h->w;
    if (pd_slice_eq(e->origin, w->cfg.worker_id))
        return; /* our own: already delivered locally */
    hub_room *r = room_get(h, room);
    if (!r || e->target.len > PD_ID_MAX)
        return;
    pd_metric_add(w->m_bus_received, NULL, 1);
    if (e->kind == PD_BUS_TO_SOCKET) {
        hub_sock *s = pd_ptab_get(h->sessions, e->target);
        if (s && s->room == r)
            pd_conn_send(s->conn, e->packet.base, e->packet.len);
        return;
    }
    /* The member left out, as a string for deliver_local. "Nobody
     * excluded" decodes as an empty slice with no base: memcpy must not be
     * handed that NULL, even for zero bytes. */
    char target[PD_ID_MAX + 1] = "";
    if (e->target.len)
        memcpy(target, e->target.base, e->target.len);
    target[e->target.len] = '\0';
    if (e->kind == PD_BUS_LEAVE) {
        /* Left through the room API (or reaped): forget the binding here. */
        hub_sock *s = pd_ptab_get(h->sessions, e->target);
        if (s && s->room == r) {
            room_remove(r, s);
            s->room = NULL;
            pd_cluster_forget_socket(w->redis, w->cfg.worker_id, e->target);
        }
        deliver_local(r, target, e->packet.base, e->packet.len);
        return;
    }
    deliver_local(r, target[0] ? target : NULL, e->packet.base, e->packet.len);
}

void pd_hub_on_bus_message(pd_hub *h, pd_slice channel, pd_slice message)
{
    pd_worker *w = h->w;
    if (pd_slice_eq(channel, PD_BUS_PRESSURE_CHANNEL)) {
        if (!pd_slice_eq(message, w->cfg.worker_id)) {
            if (!peers_behind(h))
                pd_metric_add(w->m_backpressure, "peer_behind", 1);
            /* pd_mono_ms truncates to the millisecond: one more makes the
             * hold last at least HUB_PRESSURE_HOLD_MS of real time. */
            h->held_until = pd_mono_ms() + HUB_PRESSURE_HOLD_MS + 1;
        }
        return;
    }
    size_t pre = sizeof(PD_BUS_CHANNEL_PREFIX) - 1;
    if (channel.len <= pre || memcmp(channel.base, PD_BUS_CHANNEL_PREFIX, pre) != 0)
        return;
    pd_bus_envelope env;
    if (pd_bus_decode(message, &env) != PD_OK || env.room.len) {
        pd_metric_add(w->m_dropped, "bad_envelope", 1);
        return;
    }
    bus_deliver(h, pd_slice_make(channel.base + pre, channel.len - pre), &env);
}

void pd_hub_on_worker_message(pd_hub *h, pd_slice message)
{
    pd_bus_envelope env;
    /* Only signals come this way, each naming its room. */
    if (pd_bus_decode(message, &env) != PD_OK || env.kind != PD_BUS_TO_SOCKET || !env.room.len) {
        pd_metric_add(h->w->m_dropped, "bad_envelope", 1);
        return;
    }
    bus_deliver(h, env.room, &env);
}

/* ---- periodic duties (maint.h) -------------------------------------------- */

static size_t maint_sockets(void *ud)
{
    return pd_ptab_count(((pd_hub *)ud)->sessions);
}

static void maint_retry(void *ud)
{
    cleanups_retry(ud);
}

static void maint_reaped(void *ud, const char *room, const char *sid)
{
    pd_log(PD_LOG_INFO, "reaped socket of a dead worker", "{s:s, s:s}", "room", room, "sid", sid);
    emit_peer_disconnected(ud, room, sid, PD_BUS_LEAVE);
}

typedef struct sweep_ctx {
    hub_room *victims[256];
    size_t n;
    uint64_t now;
} sweep_ctx;

static int sweep_visit(pd_slice key, void *value, void *data)
{
    (void)key;
    hub_room *r = value;
    sweep_ctx *c = data;
    if (r->n == 0 && r->joins_pending == 0 && r->empty_since &&
        c->now - r->empty_since >= HUB_UNSUB_GRACE_MS) {
        c->victims[c->n++] = r;
        if (c->n == PD_ARRAY_LEN(c->victims))
            return 1;
    }
    return 0;
}

static void rooms_refresh(pd_hub *h, int force);

/* Unsubscribe rooms left empty for the grace period, and renew the rooms
 * whose refresh is due. */
static void maint_sweep(void *ud)
{
    pd_hub *h = ud;
    sweep_ctx c;
    do {
        c.n = 0;
        c.now = pd_mono_ms();
        pd_ptab_foreach(h->rooms, sweep_visit, &c);
        for (size_t i = 0; i < c.n; i++)
            room_free(h, c.victims[i]);
    } while (c.n == PD_ARRAY_LEN(c.victims));
    rooms_refresh(h, 0);
}

/* Rooms with members here keep their Redis keys alive (pd_room_refresh):
 * without it a room lives 24 h from its last join, and then its id can be
 * handed out again while its members are still here, and a stranger who
 * gets it would join their session (docs/architecture.md, "Rooms that
 * outlive their TTL"). At most this many rooms per sweep; when more are
 * due (all of them, once Redis came back), the next sweep comes after
 * HUB_REFRESH_AGAIN_MS, not a whole sweep period: the room API holds its
 * room routes only PD_RESTORE_HOLD_MS for the restore. */
#define HUB_REFRESH_PER_SWEEP 1024
#define HUB_REFRESH_AGAIN_MS 200

typedef struct refresh_ctx {
    pd_hub *h;
    uint64_t now;
    int left;
    int force;                /* every room is due (Redis came back) */
    int more;                 /* a due room is left for the next sweep */
} refresh_ctx;

static void room_refresh(pd_hub *h, hub_room *r, uint64_t now)
{
    pd_worker *w = h->w;
    pd_slice sids[PD_ROOM_REFRESH_MAX];
    for (uint32_t i = 0; i < r->n;) {
        size_t k = 0;
        for (; k < PD_ROOM_REFRESH_MAX && i < r->n; k++, i++)
            sids[k] = pd_slice_cstr(r->members[i]->conn->sid);
        pd_room_refresh(w->redis, pd_slice_cstr(r->id), w->cfg.worker_id, r->restore, sids, k);
    }
    r->refreshed_at = now;
    r->restore = 0;
}

static int refresh_visit(pd_slice key, void *value, void *data)
{
    (void)key;
    hub_room *r = value;
    refresh_ctx *c = data;
    if (r->n == 0)
        return 0;
    if (c->force) {
        r->refreshed_at = 0;
        r->restore = 1;
    } else if (r->refreshed_at && c->now - r->refreshed_at < (uint64_t)c->h->w->cfg.room_refresh_ms)
        return 0;
    if (c->left == 0) {
        c->more = 1;
        return c->force ? 0 : 1; /* the next sweep takes the rest */
    }
    c->left--;
    room_refresh(c->h, r, c->now);
    return 0;
}

static void rooms_refresh(pd_hub *h, int force)
{
    if (!pd_redis_ready(h->w->redis))
        return;
    refresh_ctx c = {h, pd_mono_ms(), HUB_REFRESH_PER_SWEEP, force, 0};
    pd_ptab_foreach(h->rooms, refresh_visit, &c);
    if (c.more)
        pd_maint_sweep_in(h->maint, HUB_REFRESH_AGAIN_MS);
}

void pd_hub_on_redis_state(pd_hub *h, int ready)
{
    pd_metric_set(h->w->m_redis_up, NULL, ready ? 1 : 0);
    if (!ready)
        return;
    pd_maint_beat_now(h->maint); /* Redis may have restarted empty: re-register at once */
    /* ... and lost the rooms: every room with members here is renewed, or
     * created again with them, as soon as it can be. */
    rooms_refresh(h, 1);
}

/* ---- life cycle ----------------------------------------------------------- */

pd_hub *pd_hub_create(pd_worker *w)
{
    pd_hub *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->w = w;
    h->sessions = pd_ptab_create(sess_key);
    h->rooms = pd_ptab_create(room_key);
    h->ips = pd_map_create();
    static const pd_maint_hooks hooks = {maint_sockets, maint_retry, maint_reaped, maint_sweep};
    h->maint = h->sessions && h->rooms && h->ips ? pd_maint_create(w, &hooks, h) : NULL;
    if (!h->maint) {
        pd_ptab_free(h->sessions);
        pd_ptab_free(h->rooms);
        pd_map_free(h->ips);
        free(h);
        return NULL;
    }
    h->wait_timer = malloc(sizeof(*h->wait_timer));
    if (!h->wait_timer) {
        pd_hub_free(h);
        return NULL;
    }
    uv_timer_init(w->loop, h->wait_timer);
    h->wait_timer->data = h;
    pd_redis_subscribe(w->redis, pd_slice_cstr(PD_BUS_PRESSURE_CHANNEL));
    return h;
}

size_t pd_hub_session_count(const pd_hub *h)
{
    return pd_ptab_count(h->sessions);
}

size_t pd_hub_pending_cleanups(const pd_hub *h)
{
    return h->ncleanups;
}

/* Sessions closed per pass of pd_hub_close_all. */
#define HUB_CLOSE_BATCH 256

typedef struct collect_ctx {
    hub_sock **list; /* HUB_CLOSE_BATCH slots */
    size_t n;       /* slots filled */
} collect_ctx;

static int collect_sess(pd_slice key, void *value, void *data)
{
    (void)key;
    collect_ctx *c = data;
    c->list[c->n++] = value;
    return c->n == HUB_CLOSE_BATCH; /* full: stop the walk */
}

void pd_hub_close_all(pd_hub *h)
{
    /* Closing a session takes it out of the table, which the walk must not
     * see happen; so sessions are taken a batch at a time into an array on
     * the stack (a drain cannot fail for want of memory) until none is left,
     * or a pass closes nothing. */
    hub_sock *batch[HUB_CLOSE_BATCH];
    for (;;) {
        size_t before = pd_ptab_count(h->sessions);
        collect_ctx c = {batch, 0};
        pd_ptab_foreach(h->sessions, collect_sess, &c);
        for (size_t i = 0; i < c.n; i++)
            pd_conn_close(batch[i]->conn, PD_WS_CLOSE_GOING_AWAY, "server shutting down");
        if (c.n == 0 || pd_ptab_count(h->sessions) >= before)
            break;
    }
}

/* ---- drain ------------------------------------------------------------------ */

static int collect_sid(pd_slice key, void *value, void *data)
{
    (void)value;
    pd_hub *h = data;
    size_t n = key.len < PD_SOCKET_ID_MAX ? key.len : PD_SOCKET_ID_MAX;
    memcpy(h->drain[h->ndrain].sid, key.base, n);
    h->drain[h->ndrain].sid[n] = '\0';
    h->ndrain++;
    return 0;
}

size_t pd_hub_drain_begin(pd_hub *h)
{
    free(h->drain);
    h->drain = NULL;
    h->ndrain = h->drain_next = 0;
    size_t n = pd_ptab_count(h->sessions);
    if (!n)
        return 0;
    h->drain = calloc(n, sizeof(*h->drain));
    if (!h->drain)
        return 0; /* the caller's close_all at the deadline still closes them */
    pd_ptab_foreach(h->sessions, collect_sid, h);
    return h->ndrain;
}

typedef struct drain_ctx {
    pd_hub *h;
    char sid[PD_SOCKET_ID_MAX + 1];
} drain_ctx;

static void drain_close(pd_hub *h, const char *sid)
{
    hub_sock *s = pd_ptab_get(h->sessions, pd_slice_cstr(sid));
    if (s)
        pd_conn_close(s->conn, 1001, "server shutting down");
}

/* The credit is in Redis (or Redis failed): only now is the client told to go,
 * so its re-join on another worker cannot overtake the credit. */
static void on_rejoin_granted(long v, void *data)
{
    (void)v;
    drain_ctx *c = data;
    drain_close(c->h, c->sid);
    free(c);
}

void pd_hub_drain_step(pd_hub *h, size_t upto)
{
    if (upto > h->ndrain)
        upto = h->ndrain;
    while (h->drain_next < upto) {
        const char *sid = h->drain[h->drain_next++].sid;
        hub_sock *s = pd_ptab_get(h->sessions, pd_slice_cstr(sid));
        if (!s)
            continue; /* gone by itself */
        hub_room *r = s->room;
        drain_ctx *c = r ? calloc(1, sizeof(*c)) : NULL;
        if (c) {
            char ip[INET6_ADDRSTRLEN];
            c->h = h;
            snprintf(c->sid, sizeof(c->sid), "%s", sid);
            if (pd_room_grant_rejoin(h->w->redis, pd_slice_cstr(r->id), pd_conn_client_ip(s->conn, ip),
                                     on_rejoin_granted, c) == PD_OK)
                continue;
            free(c);
        }
        drain_close(h, sid);
    }
}

static int free_room_visit(pd_slice key, void *value, void *data)
{
    (void)key;
    (void)data;
    hub_room *r = value;
    if (r->members != r->inline_members)
        free(r->members);
    free(r);
    return 0;
}

static int free_sock_visit(pd_slice key, void *value, void *data)
{
    (void)key;
    (void)data;
    hub_sock *s = value;
    s->conn->data = NULL;
    free(s);
    return 0;
}

static void free_handle(uv_handle_t *t)
{
    free(t);
}

void pd_hub_free(pd_hub *h)
{
    if (!h)
        return;
    pd_maint_free(h->maint); /* no duty runs after this */
    if (h->wait_timer)
        uv_close((uv_handle_t *)h->wait_timer, free_handle);
    for (int k = 0; k < HUB_WAIT_QUEUES; k++) {
        while (h->wait_head[k]) {
            join_ctx *n = h->wait_head[k]->next;
            free(h->wait_head[k]);
            h->wait_head[k] = n;
        }
    }
    pd_ptab_foreach(h->rooms, free_room_visit, NULL);
    pd_ptab_foreach(h->sessions, free_sock_visit, NULL);
    pd_ptab_free(h->rooms);
    pd_ptab_free(h->sessions);
    pd_map_free(h->ips);
    free(h->drain);
    h->drain = NULL;
    while (h->cleanups) {
        hub_cleanup *n = h->cleanups->next;
        free(h->cleanups);
        h->cleanups = n;
    }
    free(h);
}

/* ---- the transport's handler (conn.h) --------------------------------------- */

static void hub_on_event(void *ud, pd_conn *conn, pd_slice data, long long ack_id)
{
    pd_hub *h = ud;
    hub_sock *s = conn->data;
    pd_worker *w = h->w;
    if (!s)
        return;
    if (ack_id == PD_SIO_NO_ACK && data.len <= (size_t)w->cfg.max_message_bytes && on_event_raw(h, s, data))
        return; /* relayed without building a JSON tree */
    json_t *args = NULL;
    const char *name = NULL;
    if (pd_sio_decode_event(data, (size_t)w->cfg.max_message_bytes, &args, &name) != PD_OK) {
        pd_metric_add(w->m_dropped, "bad_payload", 1);
        return;
    }
    if (ack_id != PD_SIO_NO_ACK) {
        char buf[48];
        int n = pd_sio_encode_ack_empty(buf, sizeof(buf), ack_id);
        if (n > 0)
            pd_conn_send(conn, buf, (size_t)n);
    }
    on_event(h, s, name, args);
    json_decref(args);
}

/* Back-pressure policy: Redis commands in flight above which clients are no
 * longer read, and below which they are again (hysteresis). */
#define HUB_REDIS_PENDING_HIGH 20000
#define HUB_REDIS_PENDING_LOW 5000

/* Redis (or our own reading of its answers, or another worker's reading of
 * the bus) is behind: transports stop taking work from clients until it
 * catches up, so overload becomes delay instead of a subscriber dropped for
 * its output buffer. */
static int hub_may_read(void *ud, int resuming)
{
    pd_hub *h = ud;
    pd_redis *redis = h->w->redis;
    if (!redis)
        return 1;
    if (resuming) {
        if (pd_redis_congested(redis, HUB_REDIS_PENDING_LOW) || peers_behind(h))
            return 0;
        h->holding = 0;
        return 1;
    }
    int own = pd_redis_congested(redis, HUB_REDIS_PENDING_HIGH);
    if (!own && !peers_behind(h))
        return 1;
    if (!h->holding && own)
        pd_metric_add(h->w->m_backpressure, "redis_behind", 1);
    h->holding = 1;
    return 0;
}

/* A polling session upgraded to WebSocket: same socket, new address. */
static void hub_on_moved(void *ud, pd_conn *conn)
{
    (void)ud;
    hub_sock *s = conn->data;
    if (s)
        s->conn = conn;
}

const pd_conn_handler pd_hub_conn_handler = {hub_on_open, hub_on_event, hub_on_close, hub_may_read, hub_on_moved};
