/* The room schema on a Redis Cluster (store_cluster.h).
 *
 * A cluster runs a script only when every key it names lives in one slot,
 * so keys get hash tags and the scripts of store.c that span slots become
 * chains of per-slot steps. Key names here (store.c keeps PrivyDrop's):
 *   room:{<id>}  room:{<id>}:sockets  pd:rejoin:{<id>}:<ip>   a room's slot
 *   socket:{<w>}:<sid>  pd:worker:{<w>}:sockets                worker w's slot
 *   pd:{fleet}:workers  pd:{fleet}:conns  pd:{fleet}:hb:<w>  pd:{fleet}:reaper:lock
 *                                                              one slot for the fleet
 *   ratelimit:join:<ip>, referrers:daily:<date>                one key each
 * The socket binding lives with the socket's worker, not with the room: a
 * socket is always joined, left and reaped through its own worker (or its
 * worker's keys), so that is where it is looked up by sid alone.
 *
 * Why the steps keep the guarantees of the single scripts
 * (docs/architecture.md §Redis Cluster):
 * - each step is one script on one slot, so atomic; each writes exactly
 *   what the single script writes at that point of its run, and the steps
 *   run in the single script's order, so a chain is the single script with
 *   other clients' commands allowed between its steps;
 * - the capacity check and the SADD into the room are in one step, so a
 *   room never passes max_peers; an id is taken by HSETNX, so two callers
 *   never get the same room;
 * - a socket's binding and its worker-set entry are written before it
 *   enters a room and removed after it leaves one, so a socket in a room's
 *   set can always be found from its worker's keys, which is all the reaper
 *   needs; the reaper forgets a dead worker only after its sockets have left
 *   their rooms, so a reaper that stops half-way leaves work the next one
 *   finds (every step is idempotent);
 * - the join's rate limit is counted before the room is looked at, as in
 *   the single script, so it still bounds probing for room ids. */
#include "store_cluster.h"

#include <stdio.h>
#include <stdlib.h>

#include "privydrop/pd_id.h"

#define CKEY 192
#define FLEET_WORKERS "pd:{fleet}:workers"
#define FLEET_CONNS "pd:{fleet}:conns"
#define FLEET_LOCK "pd:{fleet}:reaper:lock"
#define FLEET_HB "pd:{fleet}:hb:"

/* ---- scripts (one slot each) ------------------------------------------------ */

/* Worker slot. KEYS: socket:{w}:<sid>, pd:worker:{w}:sockets  ARGV: room, sid
 * 2: bound to another room; 1: bound to this one already (its TTL left as
 * it was, as store.c does); 0: bound now. */
static const char BIND_LUA[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur and cur ~= ARGV[1] then return 2 end\n"
    "if not cur then redis.call('SET', KEYS[1], ARGV[1], 'EX', 90000) end\n"
    "redis.call('SADD', KEYS[2], ARGV[2])\n"
    "if cur then return 1 end\n"
    "return 0\n";

/* Worker slot: undo a binding of a join that failed.
 * KEYS: socket:{w}:<sid>, pd:worker:{w}:sockets  ARGV: room, sid */
static const char UNBIND_LUA[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end\n"
    "redis.call('SREM', KEYS[2], ARGV[2])\n"
    "return 0\n";

/* Room slot. KEYS: pd:rejoin:{room}:<ip>  → 1 when a re-join credit paid. */
static const char CREDIT_LUA[] =
    "if (tonumber(redis.call('GET', KEYS[1])) or 0) > 0 then\n"
    "  if redis.call('DECR', KEYS[1]) <= 0 then redis.call('DEL', KEYS[1]) end\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

/* The rate limit's own slot. KEYS: ratelimit:join:<ip>
 * ARGV: now ms, unique member, limit, window s → {0} or {3, remaining, reset} */
static const char RATE_LUA[] =
    "local now = tonumber(ARGV[1])\n"
    "local win = tonumber(ARGV[4]) * 1000\n"
    "redis.call('ZADD', KEYS[1], now, ARGV[2])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, now - win)\n"
    "local count = redis.call('ZCARD', KEYS[1])\n"
    "local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[4])\n"
    "local limit = tonumber(ARGV[3])\n"
    "if count > limit then\n"
    "  local o = tonumber(oldest[2]) or now\n"
    "  local reset = math.ceil((o + win - now) / 1000)\n"
    "  if reset < 0 then reset = 0 end\n"
    "  local rem = limit - count\n"
    "  if rem < 0 then rem = 0 end\n"
    "  return {3, rem, reset}\n"
    "end\n"
    "return {0}\n";

/* Room slot. KEYS: room, room sockets  ARGV: sid, max peers (0 = unbounded)
 * 4: no room; 5: full; 1: already a member; 0: joined. */
static const char ROOM_JOIN_LUA[] =
    "if redis.call('HEXISTS', KEYS[1], 'created_at') == 0 then return 4 end\n"
    "local member = redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1\n"
    "local maxp = tonumber(ARGV[2]) or 0\n"
    "if (not member) and maxp > 0 and redis.call('SCARD', KEYS[2]) >= maxp then return 5 end\n"
    "if not member then redis.call('SADD', KEYS[2], ARGV[1]) end\n"
    "redis.call('EXPIRE', KEYS[1], 86400)\n"
    "redis.call('EXPIRE', KEYS[2], 86400)\n"
    "if member then return 1 end\n"
    "return 0\n";

/* A refresh spans two slots, so it is three steps, in this order
 * (pd_cstore_refresh), each atomic on its own slot and each sent once the
 * one before has answered:
 * 1. Room slot, only on a refresh that may restore. KEYS: room, room
 *    sockets  ARGV: -, '1', sid... → 1 if the room is being restored
 *    (store_cluster.h), and then the sockets are put in its set at once.
 *    Putting them in first, not last, means a leave that runs between the
 *    steps removes what it should and leaves no member behind. */
static const char ROOM_RESTORE_LUA[] =
    "local restoring = false\n"
    PD_STORE_LUA_RESTORING
    "if not restoring then return 0 end\n"
    "for i = 3, #ARGV do redis.call('SADD', KEYS[2], ARGV[i]) end\n"
    "if redis.call('TTL', KEYS[2]) == -1 then redis.call('EXPIRE', KEYS[2], 900) end\n"
    "return 1\n";

/* 2. Worker slot. KEYS: pd:worker:{w}:sockets  ARGV: binding prefix, room
 *    id, restoring, sid... → the sids now bound to the room: bindings
 *    naming it are renewed, and while the room is being restored those
 *    Redis lost are bound again (never into a room someone else created
 *    meanwhile: step 1 said it is not being restored). */
static const char BIND_REFRESH_LUA[] =
    "local bound = {}\n"
    "for i = 4, #ARGV do\n"
    "  local k = ARGV[1] .. ARGV[i]\n"
    "  local cur = redis.call('GET', k)\n"
    "  if cur == ARGV[2] then\n"
    "    redis.call('EXPIRE', k, 90000)\n"
    "    bound[#bound + 1] = ARGV[i]\n"
    "  elseif ARGV[3] == '1' and not cur then\n"
    "    redis.call('SET', k, ARGV[2], 'EX', 90000)\n"
    "    redis.call('SADD', KEYS[1], ARGV[i])\n"
    "    bound[#bound + 1] = ARGV[i]\n"
    "  end\n"
    "end\n"
    "return bound\n";

/* 3. Room slot. KEYS: room, room sockets  ARGV: k, the k sids step 2
 *    found bound here, then (restoring) those it did not, which step 1
 *    put in the set and come out again. As store.c's REFRESH_LUA for the
 *    room's keys: the room lives on if a bound one is in it. */
static const char ROOM_RENEW_LUA[] =
    "local k = tonumber(ARGV[1])\n"
    "local live = false\n"
    "for i = 2, k + 1 do\n"
    "  if redis.call('SISMEMBER', KEYS[2], ARGV[i]) == 1 then live = true end\n"
    "end\n"
    "for i = k + 2, #ARGV do redis.call('SREM', KEYS[2], ARGV[i]) end\n"
    PD_STORE_LUA_RENEW
    "return 0\n";

/* Room slot. KEYS: room, room sockets  ARGV: sid → removed + 2 * exists */
static const char ROOM_LEAVE_LUA[] =
    "local removed = redis.call('SREM', KEYS[2], ARGV[1])\n"
    "local exists = redis.call('EXISTS', KEYS[1])\n"
    "if exists == 1 and removed == 1 and redis.call('SCARD', KEYS[2]) == 0 then\n"
    "  redis.call('EXPIRE', KEYS[1], 900)\n"
    "end\n"
    "return removed + 2 * exists\n";

/* Fleet slot. KEYS: conns  ARGV: heartbeat prefix */
static const char CONN_TOTAL_LUA[] =
    "local t = 0\n"
    "local h = redis.call('HGETALL', KEYS[1])\n"
    "for i = 1, #h, 2 do\n"
    "  if redis.call('EXISTS', ARGV[1] .. h[i]) == 1 then\n"
    "    t = t + (tonumber(h[i + 1]) or 0)\n"
    "  end\n"
    "end\n"
    "return t\n";

/* Fleet slot. KEYS: workers, lock  ARGV: owner, lock ms, heartbeat prefix
 * → the workers whose heartbeat expired, or false if the lock is held. */
static const char REAP_FIND_LUA[] =
    "if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end\n"
    "local out = {}\n"
    "for _, w in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  if redis.call('EXISTS', ARGV[3] .. w) == 0 then table.insert(out, w) end\n"
    "end\n"
    "return out\n";

/* Worker slot, read only. KEYS: pd:worker:{w}:sockets  ARGV: binding prefix
 * → room1, sid1, room2, sid2, … */
static const char REAP_LIST_LUA[] =
    "local out = {}\n"
    "for _, sid in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  local room = redis.call('GET', ARGV[1] .. sid)\n"
    "  if room then\n"
    "    table.insert(out, room)\n"
    "    table.insert(out, sid)\n"
    "  end\n"
    "end\n"
    "return out\n";

/* Worker slot, once every socket has left its room.
 * KEYS: pd:worker:{w}:sockets  ARGV: binding prefix */
static const char REAP_CLEAR_LUA[] =
    "for _, sid in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  redis.call('DEL', ARGV[1] .. sid)\n"
    "end\n"
    "redis.call('DEL', KEYS[1])\n"
    "return 0\n";

/* Fleet slot. KEYS: workers, conns, hb  ARGV: owner */
static const char FORGET_WORKER_LUA[] =
    "redis.call('SREM', KEYS[1], ARGV[1])\n"
    "redis.call('HDEL', KEYS[2], ARGV[1])\n"
    "redis.call('DEL', KEYS[3])\n"
    "return 0\n";

/* Worker slot. KEYS: pd:worker:{w}:sockets, socket:{w}:<sid>  ARGV: sid */
static const char FORGET_SOCKET_LUA[] =
    "redis.call('SREM', KEYS[1], ARGV[1])\n"
    "redis.call('DEL', KEYS[2])\n"
    "return 0\n";

/* ---- helpers ----------------------------------------------------------------- */

#define EVAL_MAX 32
static int ceval(pd_redis *r, pd_redis_reply_fn fn, void *data, const char *script, int nkeys,
                 const pd_slice *keys, int nargs, const pd_slice *args)
{
    const char *argv[EVAL_MAX];
    size_t lens[EVAL_MAX];
    char nk[8];
    int n = 0;
    if (3 + nkeys + nargs > EVAL_MAX)
        return PD_ERR;
    snprintf(nk, sizeof(nk), "%d", nkeys);
    argv[n] = "EVAL";
    lens[n++] = 4;
    argv[n] = script;
    lens[n++] = strlen(script);
    argv[n] = nk;
    lens[n++] = strlen(nk);
    for (int i = 0; i < nkeys; i++, n++) {
        argv[n] = keys[i].base;
        lens[n] = keys[i].len;
    }
    for (int i = 0; i < nargs; i++, n++) {
        argv[n] = args[i].base;
        lens[n] = args[i].len;
    }
    return pd_redis_cmd_argv(r, fn, data, n, argv, lens);
}

/* "<pre>{<tag>}<post>": ids are [A-Za-z0-9_-] and worker ids
 * [A-Za-z0-9._-], so a tag never holds a brace. */
static pd_slice tkey(char *buf, const char *pre, pd_slice tag, const char *post, pd_slice tail)
{
    int n = snprintf(buf, CKEY, "%s{%.*s}%s%.*s", pre, (int)tag.len, tag.base ? tag.base : "", post,
                     (int)tail.len, tail.base ? tail.base : "");
    if (n < 0 || n >= CKEY)
        n = 0;
    return pd_slice_make(buf, (size_t)n);
}

static const pd_slice NOSLICE = {NULL, 0};

static pd_slice room_key(char *b, pd_slice room) { return tkey(b, "room:", room, "", NOSLICE); }
static pd_slice room_socks_key(char *b, pd_slice room) { return tkey(b, "room:", room, ":sockets", NOSLICE); }
static pd_slice bind_key(char *b, const char *w, pd_slice sid) { return tkey(b, "socket:", pd_slice_cstr(w), ":", sid); }
static pd_slice bind_prefix(char *b, const char *w) { return tkey(b, "socket:", pd_slice_cstr(w), ":", NOSLICE); }
static pd_slice wsocks_key(char *b, const char *w) { return tkey(b, "pd:worker:", pd_slice_cstr(w), ":sockets", NOSLICE); }
static pd_slice rejoin_key(char *b, pd_slice room, const char *ip)
{
    return tkey(b, "pd:rejoin:", room, ":", pd_slice_cstr(ip ? ip : ""));
}
static pd_slice hb_key(char *b, const char *w)
{
    int n = snprintf(b, CKEY, "%s%s", FLEET_HB, w);
    return pd_slice_make(b, n > 0 && n < CKEY ? (size_t)n : 0);
}

static long rep_int(const redisReply *rep, long dflt)
{
    return rep && rep->type == REDIS_REPLY_INTEGER ? (long)rep->integer : dflt;
}

/* A single-step call returning an integer. */
typedef struct lcall {
    pd_room_long_fn cb;
    void *data;
} lcall;

static void on_lcall(redisReply *rep, void *data)
{
    lcall *c = data;
    if (c->cb)
        c->cb(rep_int(rep, -1), c->data);
    free(c);
}

static int eval_long(pd_redis *r, pd_room_long_fn cb, void *data, const char *script, int nkeys,
                     const pd_slice *keys, int nargs, const pd_slice *args)
{
    lcall *c = malloc(sizeof(*c));
    if (!c)
        return PD_ERR;
    c->cb = cb;
    c->data = data;
    if (ceval(r, on_lcall, c, script, nkeys, keys, nargs, args) != PD_OK) {
        free(c);
        return PD_ERR;
    }
    return PD_OK;
}

/* ---- join: bind (worker) → credit (room) → rate (ip) → room ------------------- */

typedef struct join_call {
    pd_redis *r;
    pd_room_join_fn cb;
    void *data;
    int rate_limit;
    long max_peers;
    int bound_before;      /* the binding named this room already */
    int bind_done;         /* the bind step answered (so an undo is ours to send) */
    char sid[PD_ID_MAX + 1];
    char room[PD_ID_MAX + 1];
    char ip[64];
    char owner[96];
} join_call;

static void join_finish(join_call *j, pd_join_result *res)
{
    /* A join that did not happen leaves no binding behind (unless the
     * binding was there before: a re-join keeps it). */
    if (res->status != PD_JOIN_OK && res->status != PD_JOIN_REJOIN && res->status != PD_JOIN_BOUND_ELSEWHERE &&
        j->bind_done && !j->bound_before) {
        char k1[CKEY], k2[CKEY];
        pd_slice keys[2] = {bind_key(k1, j->owner, pd_slice_cstr(j->sid)), wsocks_key(k2, j->owner)};
        pd_slice args[2] = {pd_slice_cstr(j->room), pd_slice_cstr(j->sid)};
        ceval(j->r, NULL, NULL, UNBIND_LUA, 2, keys, 2, args);
    }
    j->cb(res, j->data);
    free(j);
}

static void join_fail(join_call *j, const redisReply *rep)
{
    pd_join_result res = {PD_JOIN_ERROR, 0, 0, rep && rep->type == REDIS_REPLY_ERROR ? "redis error" : "redis unavailable", 0};
    join_finish(j, &res);
}

static void on_join_room(redisReply *rep, void *data)
{
    join_call *j = data;
    pd_join_result res = {PD_JOIN_ERROR, 0, 0, "unexpected reply", 0};
    if (!rep || rep->type != REDIS_REPLY_INTEGER) {
        join_fail(j, rep);
        return;
    }
    switch (rep->integer) {
    case 0: res.status = PD_JOIN_OK; break;
    case 1: res.status = PD_JOIN_REJOIN; break;
    case 4: res.status = PD_JOIN_NO_ROOM; break;
    case 5: res.status = PD_JOIN_FULL; break;
    default: break;
    }
    join_finish(j, &res);
}

static void join_room_step(join_call *j)
{
    char k1[CKEY], k2[CKEY], maxp[24];
    snprintf(maxp, sizeof(maxp), "%ld", j->max_peers > 0 ? j->max_peers : 0);
    pd_slice keys[2] = {room_key(k1, pd_slice_cstr(j->room)), room_socks_key(k2, pd_slice_cstr(j->room))};
    pd_slice args[2] = {pd_slice_cstr(j->sid), pd_slice_cstr(maxp)};
    if (ceval(j->r, on_join_room, j, ROOM_JOIN_LUA, 2, keys, 2, args) != PD_OK)
        join_fail(j, NULL);
}

static void on_join_rate(redisReply *rep, void *data)
{
    join_call *j = data;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 || rep->element[0]->type != REDIS_REPLY_INTEGER) {
        join_fail(j, rep);
        return;
    }
    if (rep->element[0]->integer == 3) {
        pd_join_result res = {PD_JOIN_RATE_LIMITED, 0, PD_JOIN_WINDOW_S, NULL, 0};
        if (rep->elements >= 3) {
            res.remaining = rep_int(rep->element[1], 0);
            res.reset_after_s = rep_int(rep->element[2], PD_JOIN_WINDOW_S);
        }
        join_finish(j, &res);
        return;
    }
    join_room_step(j);
}

static void join_rate_step(join_call *j)
{
    char k1[CKEY];
    int n = snprintf(k1, sizeof(k1), "ratelimit:join:%s", j->ip);
    pd_store_rate rt;
    pd_store_rate_fill(&rt);
    pd_slice keys[1] = {pd_slice_make(k1, n > 0 ? (size_t)n : 0)};
    pd_slice args[4] = {pd_slice_cstr(rt.now), pd_slice_cstr(rt.member), pd_slice_cstr(rt.limit),
                        pd_slice_cstr(rt.window)};
    if (ceval(j->r, on_join_rate, j, RATE_LUA, 1, keys, 4, args) != PD_OK)
        join_fail(j, NULL);
}

static void on_join_credit(redisReply *rep, void *data)
{
    join_call *j = data;
    if (!rep || rep->type != REDIS_REPLY_INTEGER) {
        join_fail(j, rep);
        return;
    }
    if (rep->integer == 1)
        join_room_step(j); /* the credit paid for the join */
    else
        join_rate_step(j);
}

static void on_join_bind(redisReply *rep, void *data)
{
    join_call *j = data;
    if (!rep || rep->type != REDIS_REPLY_INTEGER) {
        join_fail(j, rep);
        return;
    }
    j->bind_done = 1;
    if (rep->integer == 2) {
        pd_join_result res = {PD_JOIN_BOUND_ELSEWHERE, 0, 0, NULL, 0};
        j->bound_before = 1; /* not ours to undo */
        join_finish(j, &res);
        return;
    }
    j->bound_before = rep->integer == 1;
    if (j->bound_before || !j->rate_limit) {
        join_room_step(j); /* a re-join is not counted, as in store.c */
        return;
    }
    char k1[CKEY];
    pd_slice key = rejoin_key(k1, pd_slice_cstr(j->room), j->ip);
    if (ceval(j->r, on_join_credit, j, CREDIT_LUA, 1, &key, 0, NULL) != PD_OK)
        join_fail(j, NULL);
}

int pd_cstore_join(pd_redis *r, pd_slice sid, pd_slice room, const char *client_ip, int rate_limit,
                   long max_peers, const char *owner, pd_room_join_fn cb, void *data)
{
    if (sid.len > PD_ID_MAX || room.len > PD_ID_MAX || !owner || strlen(owner) >= sizeof(((join_call *)0)->owner))
        return PD_ERR;
    join_call *j = calloc(1, sizeof(*j));
    if (!j)
        return PD_ERR;
    j->r = r;
    j->cb = cb;
    j->data = data;
    j->rate_limit = rate_limit;
    j->max_peers = max_peers;
    memcpy(j->sid, sid.base, sid.len);
    memcpy(j->room, room.base, room.len);
    snprintf(j->ip, sizeof(j->ip), "%s", client_ip ? client_ip : "");
    snprintf(j->owner, sizeof(j->owner), "%s", owner);
    char k1[CKEY], k2[CKEY];
    pd_slice keys[2] = {bind_key(k1, owner, sid), wsocks_key(k2, owner)};
    pd_slice args[2] = {room, sid};
    if (ceval(r, on_join_bind, j, BIND_LUA, 2, keys, 2, args) != PD_OK) {
        free(j);
        return PD_ERR;
    }
    return PD_OK;
}

/* ---- leave: room → worker ------------------------------------------------------- */

typedef struct leave_call {
    pd_redis *r;
    pd_room_long_fn cb;
    void *data;
    int has_owner;
    char sid[PD_ID_MAX + 1];
    char room[PD_ID_MAX + 1];
    char owner[96];
} leave_call;

static void on_leave_room(redisReply *rep, void *data)
{
    leave_call *l = data;
    long v = rep_int(rep, -1);
    if (v >= 0 && l->has_owner) {
        /* After the room: the binding outlives the membership. */
        char k1[CKEY], k2[CKEY];
        pd_slice keys[2] = {bind_key(k1, l->owner, pd_slice_cstr(l->sid)), wsocks_key(k2, l->owner)};
        pd_slice args[2] = {pd_slice_cstr(l->room), pd_slice_cstr(l->sid)};
        ceval(l->r, NULL, NULL, UNBIND_LUA, 2, keys, 2, args);
    }
    if (l->cb)
        l->cb(v, l->data);
    free(l);
}

int pd_cstore_leave(pd_redis *r, pd_slice sid, pd_slice room, const char *owner, pd_room_long_fn cb,
                    void *data)
{
    if (sid.len > PD_ID_MAX || room.len > PD_ID_MAX || (owner && strlen(owner) >= sizeof(((leave_call *)0)->owner)))
        return PD_ERR;
    leave_call *l = calloc(1, sizeof(*l));
    if (!l)
        return PD_ERR;
    l->r = r;
    l->cb = cb;
    l->data = data;
    memcpy(l->sid, sid.base, sid.len);
    memcpy(l->room, room.base, room.len);
    if (owner) {
        l->has_owner = 1;
        snprintf(l->owner, sizeof(l->owner), "%s", owner);
    }
    /* Without an owner (the room API), the socket's worker drops the
     * binding when the leave envelope reaches it (pd_cluster_forget_socket). */
    char k1[CKEY], k2[CKEY];
    pd_slice keys[2] = {room_key(k1, room), room_socks_key(k2, room)};
    pd_slice args[1] = {sid};
    if (ceval(r, on_leave_room, l, ROOM_LEAVE_LUA, 2, keys, 1, args) != PD_OK) {
        free(l);
        return PD_ERR;
    }
    return PD_OK;
}

/* ---- one-key operations ------------------------------------------------------------ */

int pd_cstore_grant_rejoin(pd_redis *r, pd_slice room, const char *client_ip, pd_room_long_fn cb, void *data)
{
    static const char GRANT_LUA[] =
        "local n = redis.call('INCR', KEYS[1])\n"
        "redis.call('EXPIRE', KEYS[1], ARGV[1])\n"
        "return n\n";
    char k1[CKEY], grace[16];
    snprintf(grace, sizeof(grace), "%d", PD_REJOIN_GRACE_S);
    pd_slice key = rejoin_key(k1, room, client_ip);
    pd_slice args[1] = {pd_slice_cstr(grace)};
    return eval_long(r, cb, data, GRANT_LUA, 1, &key, 1, args);
}

int pd_cstore_exists(pd_redis *r, pd_slice room, pd_room_long_fn cb, void *data)
{
    static const char EXISTS_LUA[] = "return redis.call('HEXISTS', KEYS[1], 'created_at')\n";
    char k1[CKEY];
    pd_slice key = room_key(k1, room);
    return eval_long(r, cb, data, EXISTS_LUA, 1, &key, 0, NULL);
}

int pd_cstore_create(pd_redis *r, pd_slice room, pd_room_long_fn cb, void *data)
{
    char k1[CKEY], now[32];
    snprintf(now, sizeof(now), "%llu", (unsigned long long)pd_now_ms());
    pd_slice key = room_key(k1, room);
    pd_slice args[1] = {pd_slice_cstr(now)};
    return eval_long(r, cb, data, PD_STORE_CREATE_LUA, 1, &key, 1, args);
}

/* ---- get_room: candidates, one HSETNX step each ---------------------------------------
 * The known-free pool of store.c (pd:short:*) reads every room key from one
 * script, which a cluster refuses. Here each candidate is tried on its own
 * slot, 4-digit ids first as PrivyDrop hands out, then 4 and 6 alphanumeric
 * characters; HSETNX still guarantees one owner per id. The work per call
 * is bounded by the candidate count. */
#define GF_DIGITS 8
#define GF_ALNUM4 8
#define GF_ALNUM6 4
#define GF_N (GF_DIGITS + GF_ALNUM4 + GF_ALNUM6)

typedef struct free_call {
    pd_redis *r;
    pd_room_str_fn cb;
    void *data;
    int next;
    char ids[GF_N][8];
} free_call;

static void free_try(free_call *f);

static void on_free_try(redisReply *rep, void *data)
{
    free_call *f = data;
    long v = rep_int(rep, -1);
    if (v == 1) {
        f->cb(f->ids[f->next - 1], f->data);
        free(f);
    } else if (v == 0 && f->next < GF_N) {
        free_try(f);
    } else {
        f->cb(NULL, f->data);
        free(f);
    }
}

static void free_try(free_call *f)
{
    char k1[CKEY], now[32];
    snprintf(now, sizeof(now), "%llu", (unsigned long long)pd_now_ms());
    pd_slice key = room_key(k1, pd_slice_cstr(f->ids[f->next++]));
    pd_slice args[1] = {pd_slice_cstr(now)};
    if (ceval(f->r, on_free_try, f, PD_STORE_CREATE_LUA, 1, &key, 1, args) != PD_OK) {
        f->cb(NULL, f->data);
        free(f);
    }
}

int pd_cstore_get_free(pd_redis *r, pd_room_str_fn cb, void *data)
{
    free_call *f = calloc(1, sizeof(*f));
    if (!f)
        return PD_ERR;
    for (int i = 0; i < GF_N; i++) {
        size_t len = i < GF_DIGITS + GF_ALNUM4 ? 4 : 6;
        const char *alpha = i < GF_DIGITS ? "0123456789" : PD_ALPHABET_ALNUM;
        if (pd_id_random(f->ids[i], len, alpha) != PD_OK) {
            free(f);
            return PD_ERR;
        }
    }
    f->r = r;
    f->cb = cb;
    f->data = data;
    char k1[CKEY], now[32];
    snprintf(now, sizeof(now), "%llu", (unsigned long long)pd_now_ms());
    pd_slice key = room_key(k1, pd_slice_cstr(f->ids[f->next++]));
    pd_slice args[1] = {pd_slice_cstr(now)};
    if (ceval(r, on_free_try, f, PD_STORE_CREATE_LUA, 1, &key, 1, args) != PD_OK) {
        free(f);
        return PD_ERR;
    }
    return PD_OK;
}

/* ---- the fleet ------------------------------------------------------------------------ */

int pd_cstore_heartbeat(pd_redis *r, const char *owner, long connections)
{
    char hb[CKEY], now[32], count[32];
    hb_key(hb, owner);
    snprintf(now, sizeof(now), "%llu", (unsigned long long)pd_now_ms());
    snprintf(count, sizeof(count), "%ld", connections);
    /* The fleet's keys share a slot, so one connection keeps the order:
     * heartbeat first, as in store.c. */
    if (pd_redis_cmd(r, NULL, NULL, "SET %s %s PX %d", hb, now, PD_CLUSTER_HB_TTL_MS) != PD_OK)
        return PD_ERR;
    pd_redis_cmd(r, NULL, NULL, "SADD %s %s", FLEET_WORKERS, owner);
    pd_redis_cmd(r, NULL, NULL, "HSET %s %s %s", FLEET_CONNS, owner, count);
    return PD_OK;
}

int pd_cstore_forget_socket(pd_redis *r, const char *owner, pd_slice sid)
{
    char k1[CKEY], k2[CKEY];
    pd_slice keys[2] = {wsocks_key(k1, owner), bind_key(k2, owner, sid)};
    pd_slice args[1] = {sid};
    return ceval(r, NULL, NULL, FORGET_SOCKET_LUA, 2, keys, 1, args);
}

int pd_cstore_conn_delta(pd_redis *r, const char *owner, long delta, pd_room_long_fn cb, void *data)
{
    lcall *c = malloc(sizeof(*c));
    if (!c)
        return PD_ERR;
    c->cb = cb;
    c->data = data;
    if (pd_redis_cmd(r, on_lcall, c, "HINCRBY %s %s %ld", FLEET_CONNS, owner, delta) != PD_OK) {
        free(c);
        return PD_ERR;
    }
    return PD_OK;
}

int pd_cstore_conn_total(pd_redis *r, pd_room_long_fn cb, void *data)
{
    pd_slice keys[1] = {pd_slice_cstr(FLEET_CONNS)};
    pd_slice args[1] = {pd_slice_cstr(FLEET_HB)};
    return eval_long(r, cb, data, CONN_TOTAL_LUA, 1, keys, 1, args);
}

int pd_cstore_retire(pd_redis *r, const char *owner, pd_room_long_fn cb, void *data)
{
    char k1[CKEY], k2[CKEY], hb[CKEY];
    pd_slice wkeys[1] = {wsocks_key(k1, owner)};
    pd_slice wargs[1] = {bind_prefix(k2, owner)};
    /* Sockets first (after a drain there are none left), then the fleet. */
    ceval(r, NULL, NULL, REAP_CLEAR_LUA, 1, wkeys, 1, wargs);
    pd_slice keys[3] = {pd_slice_cstr(FLEET_WORKERS), pd_slice_cstr(FLEET_CONNS), hb_key(hb, owner)};
    pd_slice args[1] = {pd_slice_cstr(owner)};
    return eval_long(r, cb, data, FORGET_WORKER_LUA, 3, keys, 1, args);
}

/* ---- reap: find (fleet) → per dead worker: list (worker) → leave each room
 * (room) → clear (worker) → forget (fleet) --------------------------------------------- */

typedef struct reap_call {
    pd_redis *r;
    pd_cluster_reaped_fn reaped;
    pd_room_long_fn done;
    void *data;
    int chains;         /* dead workers still being cleaned */
    long reaped_n;
    int failed;
} reap_call;

typedef struct reap_worker {
    reap_call *rc;
    char w[128];
    int rooms_left;     /* room steps in flight */
    int failed;
    int own;            /* a take-over: the worker lives on, only its listed sockets go */
} reap_worker;

typedef struct reap_room {
    reap_worker *rw;
    char room[PD_ID_MAX + 1];
    char sid[PD_ID_MAX + 1];
} reap_room;

static void reap_call_end(reap_call *rc)
{
    if (--rc->chains > 0)
        return;
    if (rc->done)
        rc->done(rc->failed ? -1 : rc->reaped_n, rc->data);
    free(rc);
}

static void reap_worker_end(reap_worker *rw)
{
    reap_call *rc = rw->rc;
    if (rw->failed) {
        /* Left registered: the next reaper finds it dead and goes again. */
        rc->failed = 1;
    } else if (rw->own) {
        /* Each socket was forgotten as it left its room (on_reap_room): the
         * set may already hold sockets of the new run. */
    } else {
        char k1[CKEY], k2[CKEY], hb[CKEY];
        pd_slice wkeys[1] = {wsocks_key(k1, rw->w)};
        pd_slice wargs[1] = {bind_prefix(k2, rw->w)};
        ceval(rc->r, NULL, NULL, REAP_CLEAR_LUA, 1, wkeys, 1, wargs);
        pd_slice keys[3] = {pd_slice_cstr(FLEET_WORKERS), pd_slice_cstr(FLEET_CONNS), hb_key(hb, rw->w)};
        pd_slice args[1] = {pd_slice_cstr(rw->w)};
        ceval(rc->r, NULL, NULL, FORGET_WORKER_LUA, 3, keys, 1, args);
    }
    free(rw);
    reap_call_end(rc);
}

static void on_reap_room(redisReply *rep, void *data)
{
    reap_room *rr = data;
    reap_worker *rw = rr->rw;
    if (rep_int(rep, -1) < 0) {
        rw->failed = 1;
    } else {
        rw->rc->reaped_n++;
        if (rw->own)
            pd_cstore_forget_socket(rw->rc->r, rw->w, pd_slice_cstr(rr->sid));
        if (rw->rc->reaped)
            rw->rc->reaped(rr->room, rr->sid, rw->rc->data);
    }
    free(rr);
    if (--rw->rooms_left == 0)
        reap_worker_end(rw);
}

static void on_reap_list(redisReply *rep, void *data)
{
    reap_worker *rw = data;
    if (!rep || rep->type != REDIS_REPLY_ARRAY) {
        rw->failed = 1;
        reap_worker_end(rw);
        return;
    }
    rw->rooms_left = 1; /* held until every step is sent */
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        redisReply *room = rep->element[i], *sid = rep->element[i + 1];
        if (room->type != REDIS_REPLY_STRING || sid->type != REDIS_REPLY_STRING || room->len > PD_ID_MAX ||
            sid->len > PD_ID_MAX)
            continue;
        reap_room *rr = calloc(1, sizeof(*rr));
        if (!rr) {
            rw->failed = 1;
            break;
        }
        rr->rw = rw;
        memcpy(rr->room, room->str, room->len);
        memcpy(rr->sid, sid->str, sid->len);
        char k1[CKEY], k2[CKEY];
        pd_slice keys[2] = {room_key(k1, pd_slice_make(room->str, room->len)),
                            room_socks_key(k2, pd_slice_make(room->str, room->len))};
        pd_slice args[1] = {pd_slice_make(sid->str, sid->len)};
        rw->rooms_left++;
        if (ceval(rw->rc->r, on_reap_room, rr, ROOM_LEAVE_LUA, 2, keys, 1, args) != PD_OK) {
            rw->rooms_left--;
            rw->failed = 1;
            free(rr);
        }
    }
    if (--rw->rooms_left == 0)
        reap_worker_end(rw);
}

static void on_reap_find(redisReply *rep, void *data)
{
    reap_call *rc = data;
    if (rep && rep->type == REDIS_REPLY_NIL) {
        rc->chains = 1; /* another instance holds the lock */
        reap_call_end(rc);
        return;
    }
    if (!rep || rep->type != REDIS_REPLY_ARRAY) {
        rc->failed = 1;
        rc->chains = 1;
        reap_call_end(rc);
        return;
    }
    rc->chains = 1;
    for (size_t i = 0; i < rep->elements; i++) {
        redisReply *w = rep->element[i];
        if (w->type != REDIS_REPLY_STRING || w->len >= sizeof(((reap_worker *)0)->w))
            continue;
        reap_worker *rw = calloc(1, sizeof(*rw));
        if (!rw) {
            rc->failed = 1;
            break;
        }
        rw->rc = rc;
        memcpy(rw->w, w->str, w->len);
        char k1[CKEY], k2[CKEY];
        pd_slice keys[1] = {wsocks_key(k1, rw->w)};
        pd_slice args[1] = {bind_prefix(k2, rw->w)};
        rc->chains++;
        if (ceval(rc->r, on_reap_list, rw, REAP_LIST_LUA, 1, keys, 1, args) != PD_OK) {
            rc->chains--;
            rc->failed = 1;
            free(rw);
        }
    }
    reap_call_end(rc);
}

/* One refresh on its way through its steps (see ROOM_RESTORE_LUA). */
typedef struct refresh_call {
    pd_redis *r;
    int restoring;
    size_t n;
    char room[PD_ID_MAX + 1];
    char owner[128];
    char sids[PD_ROOM_REFRESH_MAX][PD_ID_MAX + 1];
} refresh_call;

static void on_refresh_bound(redisReply *rep, void *data)
{
    refresh_call *f = data;
    if (rep && rep->type == REDIS_REPLY_ARRAY) {
        /* Which of the sids sent came back bound; anything else in the
         * reply is ignored. */
        int bound[PD_ROOM_REFRESH_MAX] = {0};
        size_t k = 0;
        for (size_t i = 0; i < rep->elements; i++) {
            redisReply *e = rep->element[i];
            for (size_t j = 0; e->type == REDIS_REPLY_STRING && j < f->n; j++) {
                if (!bound[j] && strlen(f->sids[j]) == e->len && memcmp(f->sids[j], e->str, e->len) == 0) {
                    bound[j] = 1;
                    k++;
                    break;
                }
            }
        }
        char count[16], k1[CKEY], k2[CKEY];
        pd_slice args[1 + PD_ROOM_REFRESH_MAX];
        size_t n = 0, u = 1 + k;
        snprintf(count, sizeof(count), "%zu", k);
        args[n++] = pd_slice_cstr(count);
        for (size_t j = 0; j < f->n; j++) {
            if (bound[j])
                args[n++] = pd_slice_cstr(f->sids[j]);
            else if (f->restoring)
                args[u++] = pd_slice_cstr(f->sids[j]);
        }
        pd_slice rkeys[2] = {room_key(k1, pd_slice_cstr(f->room)), room_socks_key(k2, pd_slice_cstr(f->room))};
        ceval(f->r, NULL, NULL, ROOM_RENEW_LUA, 2, rkeys, (int)u, args);
    }
    free(f);
}

/* Step 2; f is freed here if it cannot be sent. */
static int refresh_bind(refresh_call *f)
{
    char k1[CKEY], k2[CKEY];
    pd_slice args[3 + PD_ROOM_REFRESH_MAX];
    pd_slice wkeys[1] = {wsocks_key(k1, f->owner)};
    args[0] = bind_prefix(k2, f->owner);
    args[1] = pd_slice_cstr(f->room);
    args[2] = pd_slice_cstr(f->restoring ? "1" : "0");
    for (size_t i = 0; i < f->n; i++)
        args[3 + i] = pd_slice_cstr(f->sids[i]);
    if (ceval(f->r, on_refresh_bound, f, BIND_REFRESH_LUA, 1, wkeys, 3 + (int)f->n, args) != PD_OK) {
        free(f);
        return PD_ERR;
    }
    return PD_OK;
}

static void on_refresh_restore(redisReply *rep, void *data)
{
    refresh_call *f = data;
    if (!rep || rep->type != REDIS_REPLY_INTEGER) {
        free(f);
        return;
    }
    f->restoring = rep->integer == 1;
    (void)refresh_bind(f);
}

int pd_cstore_refresh(pd_redis *r, pd_slice room, const char *owner, int restore, const pd_slice *sids, size_t n)
{
    if (n > PD_ROOM_REFRESH_MAX || room.len > PD_ID_MAX || strlen(owner) >= sizeof(((refresh_call *)0)->owner))
        return PD_ERR;
    refresh_call *f = calloc(1, sizeof(*f));
    if (!f)
        return PD_ERR;
    f->r = r;
    memcpy(f->room, room.base, room.len);
    memcpy(f->owner, owner, strlen(owner));
    for (size_t i = 0; i < n; i++) {
        if (sids[i].len > PD_ID_MAX) {
            free(f);
            return PD_ERR;
        }
        memcpy(f->sids[i], sids[i].base, sids[i].len);
    }
    f->n = n;
    if (!restore)
        return refresh_bind(f);
    char k1[CKEY], k2[CKEY];
    pd_slice keys[2] = {room_key(k1, room), room_socks_key(k2, room)};
    pd_slice args[2 + PD_ROOM_REFRESH_MAX] = {room, pd_slice_cstr("1")};
    for (size_t i = 0; i < n; i++)
        args[2 + i] = pd_slice_cstr(f->sids[i]);
    if (ceval(r, on_refresh_restore, f, ROOM_RESTORE_LUA, 2, keys, 2 + (int)n, args) != PD_OK) {
        free(f);
        return PD_ERR;
    }
    return PD_OK;
}

int pd_cstore_take_over(pd_redis *r, const char *owner, pd_cluster_reaped_fn reaped_cb, pd_room_long_fn done_cb,
                        void *data)
{
    reap_call *rc = calloc(1, sizeof(*rc));
    reap_worker *rw = calloc(1, sizeof(*rw));
    if (!rc || !rw || strlen(owner) >= sizeof(rw->w)) {
        free(rc);
        free(rw);
        return PD_ERR;
    }
    rc->r = r;
    rc->reaped = reaped_cb;
    rc->done = done_cb;
    rc->data = data;
    rc->chains = 1;
    rw->rc = rc;
    rw->own = 1;
    memcpy(rw->w, owner, strlen(owner));
    char k1[CKEY], k2[CKEY];
    pd_slice keys[1] = {wsocks_key(k1, rw->w)};
    pd_slice args[1] = {bind_prefix(k2, rw->w)};
    if (ceval(r, on_reap_list, rw, REAP_LIST_LUA, 1, keys, 1, args) != PD_OK) {
        free(rc);
        free(rw);
        return PD_ERR;
    }
    return PD_OK;
}

int pd_cstore_reap(pd_redis *r, const char *owner, pd_cluster_reaped_fn reaped_cb, pd_room_long_fn done_cb,
                   void *data)
{
    reap_call *rc = calloc(1, sizeof(*rc));
    if (!rc)
        return PD_ERR;
    rc->r = r;
    rc->reaped = reaped_cb;
    rc->done = done_cb;
    rc->data = data;
    pd_slice keys[2] = {pd_slice_cstr(FLEET_WORKERS), pd_slice_cstr(FLEET_LOCK)};
    pd_slice args[3] = {pd_slice_cstr(owner), pd_slice_cstr("4000"), pd_slice_cstr(FLEET_HB)};
    if (ceval(r, on_reap_find, rc, REAP_FIND_LUA, 2, keys, 3, args) != PD_OK) {
        free(rc);
        return PD_ERR;
    }
    return PD_OK;
}
