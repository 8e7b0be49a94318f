/* The room schema as Lua scripts (atomic, one round trip each). On a Redis
 * Cluster every call goes to store_cluster.c instead (hash-tagged keys,
 * per-slot steps). */
#include "privydrop/pd_room.h"

#include <stdio.h>
#include <stdlib.h>

#include "privydrop/pd_id.h"
#include "privydrop/pd_script.h"
#include "privydrop/pd_sio.h"
#include "store_cluster.h"

/* A number macro as Lua text. */
#define STORE_STR_(x) #x
#define STORE_STR(x) STORE_STR_(x)

/* KEYS: room, room sockets, socket:<sid>, ratelimit:join:<ip>, owner's set,
 *       pd:rejoin:<room>:<ip>
 * ARGV: sid, room id, now ms, rate limit on, unique member, limit, window s,
 *       max peers (0 = unbounded), seen ms (pd_room_join_again; 0: a first try)
 * A re-join credit (granted when a draining worker closed a socket of this
 * address that was in this room) pays for the join instead of the limit. */
static const char JOIN_LUA[] =
    "local cur = redis.call('GET', KEYS[3])\n"
    "if cur and cur ~= ARGV[2] then return {2} end\n"
    "local rejoin = (cur == ARGV[2])\n"
    "local credited = false\n"
    "if (not rejoin) and ARGV[4] == '1' and (tonumber(redis.call('GET', KEYS[6])) or 0) > 0 then\n"
    "  if redis.call('DECR', KEYS[6]) <= 0 then redis.call('DEL', KEYS[6]) end\n"
    "  credited = true\n"
    "end\n"
    "if (not rejoin) and (not credited) and ARGV[4] == '1' then\n"
    "  local now = tonumber(ARGV[3])\n"
    "  local win = tonumber(ARGV[7]) * 1000\n"
    "  redis.call('ZADD', KEYS[4], now, ARGV[5])\n"
    "  redis.call('ZREMRANGEBYSCORE', KEYS[4], 0, now - win)\n"
    "  local count = redis.call('ZCARD', KEYS[4])\n"
    "  local oldest = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')\n"
    "  redis.call('EXPIRE', KEYS[4], ARGV[7])\n"
    "  local limit = tonumber(ARGV[6])\n"
    "  if count > limit then\n"
    "    local o = tonumber(oldest[2]) or now\n"
    "    local reset = math.ceil((o + win - now) / 1000)\n"
    "    if reset < 0 then reset = 0 end\n"
    "    local rem = limit - count\n"
    "    if rem < 0 then rem = 0 end\n"
    "    return {3, rem, reset}\n"
    "  end\n"
    "end\n"
    /* A room the room API's pool reserved (`reserved`, see GET_FREE_LUA)
     * is not there for anyone to join until its claim has run: {6}, and
     * the worker asks again for a moment, since the claim of an id just
     * handed out may still be on its way (hub.c). */
    "if redis.call('HEXISTS', KEYS[1], 'created_at') == 0 then return {4} end\n"
    "if redis.call('HEXISTS', KEYS[1], 'reserved') == 1 then\n"
    "  local t = redis.call('TIME')\n"
    "  return {6, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}\n"
    "end\n"
    /* A join asked again after it found the room reserved at ARGV[9] (ms,
     * Redis's clock) gets in only if the room was handed out from the pool
     * (`handed_at`, set by its claim; a room created since by other means
     * is not the one it waited for) no later than that, plus a slack for
     * the estimate of the hand-out's time: a join that was waiting before
     * the hand-out is not the client's {7}. */
    "if ARGV[9] and ARGV[9] ~= '0' then\n"
    "  local handed = tonumber(redis.call('HGET', KEYS[1], 'handed_at'))\n"
    "  if (not handed) or tonumber(ARGV[9]) < handed - " STORE_STR(PD_JOIN_HANDED_SLACK_MS) " then return {7} end\n"
    "end\n"
    "local maxp = tonumber(ARGV[8]) or 0\n"
    "if (not rejoin) and maxp > 0 and redis.call('SCARD', KEYS[2]) >= maxp then return {5} end\n"
    "if not rejoin then\n"
    "  redis.call('SET', KEYS[3], ARGV[2], 'EX', 90000)\n"
    "  redis.call('SADD', KEYS[2], ARGV[1])\n"
    "  redis.call('SADD', KEYS[5], ARGV[1])\n"
    "end\n"
    "redis.call('EXPIRE', KEYS[1], 86400)\n"
    "redis.call('EXPIRE', KEYS[2], 86400)\n"
    "if rejoin then return {1} end\n"
    "return {0}\n";

/* KEYS: pd:rejoin:<room>:<ip>  ARGV: grace s */
static const char GRANT_REJOIN_LUA[] =
    "local n = redis.call('INCR', KEYS[1])\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[1])\n"
    "return n\n";

/* A 4-digit room whose life drops to 900 s can be free sooner than
 * pd:short:used says (see GET_FREE_LUA): move its score (only if it is
 * there: XX) to the new expiry. Lua over the room id expression `v`. */
#define SHORT_USED_KEY "pd:short:used"
#define SHORT_SOONER(v)                                                                                  \
    "  if string.match(" v ", '^%d%d%d%d$') then\n"                                                       \
    "    local t = redis.call('TIME')\n"                                                                    \
    "    redis.call('ZADD', '" SHORT_USED_KEY "', 'XX', tonumber(t[1]) * 1000 + 900000, " v ")\n"           \
    "  end\n"

/* KEYS: room, room sockets, socket:<sid>[, owner's set]  ARGV: sid, room id */
static const char LEAVE_LUA[] =
    "local removed = redis.call('SREM', KEYS[2], ARGV[1])\n"
    "if redis.call('GET', KEYS[3]) == ARGV[2] then redis.call('DEL', KEYS[3]) end\n"
    "if KEYS[4] then redis.call('SREM', KEYS[4], ARGV[1]) end\n"
    "local exists = redis.call('EXISTS', KEYS[1])\n"
    "if exists == 1 and removed == 1 and redis.call('SCARD', KEYS[2]) == 0 then\n"
    "  redis.call('EXPIRE', KEYS[1], 900)\n"
    SHORT_SOONER("ARGV[2]")
    "end\n"
    "return removed + 2 * exists\n";

/* KEYS: room, room sockets, owner's set  ARGV: room id, restore (1/0), sid...
 * A room with live members here (pd_room_refresh): the bindings of those
 * still bound to it are renewed, and the room too if one of them is still
 * in it (a leave through the room API that raced the refresh stays a
 * leave, and an emptied room keeps its 900 s). */
static const char REFRESH_LUA[] =
    "local restoring = false\n"
    PD_STORE_LUA_RESTORING
    "local live = false\n"
    "for i = 3, #ARGV do\n"
    "  local k = 'socket:' .. ARGV[i]\n"
    "  local cur = redis.call('GET', k)\n"
    "  if restoring and not cur then\n"
    "    redis.call('SET', k, ARGV[1], 'EX', 90000)\n"
    "    redis.call('SADD', KEYS[3], ARGV[i])\n"
    "    cur = ARGV[1]\n"
    "  end\n"
    "  if cur == ARGV[1] then\n"
    "    redis.call('EXPIRE', k, 90000)\n"
    "    if restoring then redis.call('SADD', KEYS[2], ARGV[i]) end\n"
    "    if redis.call('SISMEMBER', KEYS[2], ARGV[i]) == 1 then live = true end\n"
    "  end\n"
    "end\n"
    PD_STORE_LUA_RENEW
    "if restoring then return 1 end\n"
    "return 0\n";

/* KEYS: room  ARGV: now ms (store_cluster.h) */
const char PD_STORE_CREATE_LUA[] =
    "if redis.call('HSETNX', KEYS[1], 'created_at', ARGV[1]) == 1 then\n"
    "  redis.call('EXPIRE', KEYS[1], 86400)\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

/* The 4-digit ids are known, not guessed (docs/design-notes.md, "Short room
 * ids"): pd:short:free holds the ids believed free, pd:short:used every
 * other 4-digit id scored by the earliest time (Redis clock, ms) its room
 * can have expired. A score is never later than the room's real expiry:
 * handing out sets it to the 24 h TTL, a join only lengthens a room's life,
 * and the leave and reap scripts that shorten it to 900 s move the score
 * too. So an id becomes due no later than its room can be gone, and one
 * EXISTS settles it: gone → free again, still there → rescored by PTTL.
 * A free entry can be stale only when create_room took that id by name;
 * HSETNX finds that out and the id moves to used.
 * Work per call is bounded: a seeding step of 500 ids (only until
 * pd:short:seeded reaches 10 000), up to 8 pops per id wanted; only if the
 * free set ran dry, due ids reclaimed (8, or as many as wanted) and the
 * pops tried again; then the random candidates in ARGV.
 * A room handed out lives `ttl` s: 24 h from get_room, or the short life
 * of a reservation (pd_room_reserve), marked `reserved` so that no join
 * gets in, until CLAIM_LUA gives it its 24 h.
 * KEYS: pd:short:free, pd:short:used, pd:short:seeded
 * ARGV: now ms (created_at), ids wanted, ttl s, reserve (1/0), then the
 * fallback candidates, shortest first. Returns the ids taken (none: empty
 * list). */
#define SHORT_FREE_KEY "pd:short:free"
#define SHORT_SEEDED_KEY "pd:short:seeded"
static const char GET_FREE_LUA[] =
    /* Redis's own clock in ms. Where it is only passed on, it stays a
     * string, and so do constant arguments: Redis formats a Lua number
     * argument with snprintf("%.17g"), which cost more than the key
     * operation it went with (docs/benchmarks.md, "get_room when the short
     * ids run out"). */
    "local t = redis.call('TIME')\n"
    "local nowstr = t[1] .. string.sub('00000' .. t[2], -6, -4)\n"
    "local now = tonumber(nowstr)\n"
    "local want = tonumber(ARGV[2])\n"
    "local ttl = ARGV[3]\n"
    "local ttlms = tonumber(ttl) * 1000\n"
    "local reserve = ARGV[4] == '1'\n"
    "local function take(id)\n"
    "  if redis.call('HSETNX', 'room:' .. id, 'created_at', ARGV[1]) == 0 then return false end\n"
    "  if reserve then redis.call('HSET', 'room:' .. id, 'reserved', '1') end\n"
    "  redis.call('EXPIRE', 'room:' .. id, ttl)\n"
    "  return true\n"
    "end\n"
    "local function due_at(id)\n"
    "  local ttl = redis.call('PTTL', 'room:' .. id)\n"
    "  if ttl < 0 then ttl = 86400000 end\n"
    "  return now + ttl\n"
    "end\n"
    /* Seeding: one step of 500 of the 10 000 ids per call, in a scattered
     * order (7919 is prime to 10 000), each sorted by one EXISTS, until all
     * are sorted (20 calls, once per data set). One step at most: sorting
     * a full space in one call took half a second of Redis on a loaded
     * machine, and Redis serves everyone. A call whose step found no free
     * id takes the fallback below. */
    "local seeded = redis.call('GET', KEYS[3])\n"
    "if seeded ~= '10000' then\n"
    "  seeded = tonumber(seeded) or 0\n"
    "  local stop = math.min(seeded + 500, 10000)\n"
    "  for j = seeded, stop - 1 do\n"
    "    local id = string.format('%04d', (j * 7919) % 10000)\n"
    "    if redis.call('EXISTS', 'room:' .. id) == 1 then\n"
    "      redis.call('ZADD', KEYS[2], due_at(id), id)\n"
    "    else\n"
    "      redis.call('SADD', KEYS[1], id)\n"
    "    end\n"
    "  end\n"
    "  redis.call('SET', KEYS[3], stop)\n"
    "end\n"
    /* Up to 8 pops until HSETNX takes one: the id, nil when the free set
     * ran dry, false after 8 stale entries (work stays bounded). */
    "local function pop()\n"
    "  for i = 1, 8 do\n"
    "    local id = redis.call('SPOP', KEYS[1])\n"
    "    if not id then return nil end\n"
    "    if take(id) then\n"
    "      redis.call('ZADD', KEYS[2], now + ttlms, id)\n"
    "      return id\n"
    "    end\n"
    "    redis.call('ZADD', KEYS[2], due_at(id), id)\n"
    "  end\n"
    "  return false\n"
    "end\n"
    "local out = {}\n"
    "local reclaimed = false\n"
    "while #out < want do\n"
    "  local id = pop()\n"
    /* Reclaiming ids whose rooms may have expired only when no free id is
     * left, once per call: each id is reclaimed once either way, and a
     * call that finds free ids does no more than it must (the common case
     * at any fill). A second pop only if this freed an id: nil said the
     * set is empty. */
    "  if id == nil and not reclaimed then\n"
    "    reclaimed = true\n"
    "    local freed = false\n"
    "    local n = math.max(8, want)\n"
    "    for _, due in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', nowstr, 'LIMIT', '0', n)) do\n"
    "      if redis.call('EXISTS', 'room:' .. due) == 1 then\n"
    "        redis.call('ZADD', KEYS[2], due_at(due), due)\n"
    "      else\n"
    "        redis.call('ZREM', KEYS[2], due)\n"
    "        redis.call('SADD', KEYS[1], due)\n"
    "        freed = true\n"
    "      end\n"
    "    end\n"
    "    if freed then id = pop() end\n"
    "  end\n"
    "  if not id then break end\n"
    "  out[#out + 1] = id\n"
    "end\n"
    /* No 4-digit id (left): random candidates, shortest first. */
    "for i = 5, #ARGV do\n"
    "  if #out >= want then break end\n"
    "  if take(ARGV[i]) then out[#out + 1] = ARGV[i] end\n"
    "end\n"
    "return out\n";

/* Ids the room API has handed out from its pool (pd_room_claim). A room
 * still reserved (no join can have got in) loses the mark and gets
 * get_room's 24 h, and its 4-digit id the matching score. A room that is
 * gone (Redis lost the reservation: FLUSHALL, a restart, a claim later
 * than the reservation's life) is created again as get_room would create
 * it, since its id has already gone to a client who will join it. Either
 * way the room records when it was handed out (`handed_at`, Redis's clock),
 * for the joins that waited for it (JOIN_LUA). A room that exists and is
 * not reserved is somebody's: left alone (a claim sent again after its
 * answer was lost, or, after a loss of data, an id another get_room handed
 * out first).
 * ARGV: id, when, id, when, ...: `when` the hand-out in ms on Redis's clock
 * as the room API estimated it, or "a<ms>", how long ago it was (no
 * estimate yet: now less that, later than the truth by the time the claim
 * took to run). Returns {claimed, created again, now in ms}. */
static const char CLAIM_LUA[] =
    "local t = redis.call('TIME')\n"
    "local nowms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local now = t[1] .. string.sub('00000' .. t[2], -6, -4)\n"
    "local due = tostring(tonumber(t[1]) * 1000 + 86400000)\n"
    "local claimed, created = 0, 0\n"
    "for i = 1, #ARGV - 1, 2 do\n"
    "  local id = ARGV[i]\n"
    "  local k = 'room:' .. id\n"
    "  local short = string.match(id, '^%d%d%d%d$')\n"
    "  local w = ARGV[i + 1]\n"
    "  local handed\n"
    "  if string.sub(w, 1, 1) == 'a' then\n"
    "    handed = string.format('%d', nowms - (tonumber(string.sub(w, 2)) or 0))\n"
    "  else\n"
    "    handed = string.format('%d', tonumber(w) or nowms)\n"
    "  end\n"
    "  if redis.call('HDEL', k, 'reserved') == 1 then\n"
    "    claimed = claimed + 1\n"
    "    redis.call('HSET', k, 'handed_at', handed)\n"
    "    redis.call('EXPIRE', k, '86400')\n"
    "    if short then redis.call('ZADD', '" SHORT_USED_KEY "', 'XX', due, id) end\n"
    "  elseif redis.call('HSETNX', k, 'created_at', now) == 1 then\n"
    "    created = created + 1\n"
    "    redis.call('HSET', k, 'handed_at', handed)\n"
    "    redis.call('EXPIRE', k, '86400')\n"
    "    if short then\n"
    "      redis.call('SREM', '" SHORT_FREE_KEY "', id)\n"
    "      redis.call('ZADD', '" SHORT_USED_KEY "', due, id)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return {claimed, created, nowms}\n";

/* KEYS: referrers:daily:<date>  ARGV: ref */
static const char TRACK_LUA[] =
    "redis.call('HINCRBY', KEYS[1], ARGV[1], 1)\n"
    "redis.call('EXPIRE', KEYS[1], 2592000)\n"
    "return 0\n";

/* KEYS: pd:conns */
static const char CONN_TOTAL_LUA[] =
    "local t = 0\n"
    "local h = redis.call('HGETALL', KEYS[1])\n"
    "for i = 1, #h, 2 do\n"
    "  if redis.call('EXISTS', 'pd:worker:' .. h[i] .. ':hb') == 1 then\n"
    "    t = t + (tonumber(h[i + 1]) or 0)\n"
    "  end\n"
    "end\n"
    "return t\n";

/* Lua: unbinds every socket in the set named by the local `skey` from its
 * room (empty rooms → 900 s) and appends room, sid to the local `out`. */
#define REAP_SOCKETS                                                                                   \
    "for _, sid in ipairs(redis.call('SMEMBERS', skey)) do\n"                                             \
    "  local room = redis.call('GET', 'socket:' .. sid)\n"                                                \
    "  if room then\n"                                                                                    \
    "    redis.call('DEL', 'socket:' .. sid)\n"                                                           \
    "    redis.call('SREM', 'room:' .. room .. ':sockets', sid)\n"                                        \
    "    if redis.call('EXISTS', 'room:' .. room) == 1 and\n"                                             \
    "       redis.call('SCARD', 'room:' .. room .. ':sockets') == 0 then\n"                               \
    "      redis.call('EXPIRE', 'room:' .. room, 900)\n"                                                  \
    SHORT_SOONER("room")                                                                                  \
    "    end\n"                                                                                           \
    "    table.insert(out, room)\n"                                                                       \
    "    table.insert(out, sid)\n"                                                                        \
    "  end\n"                                                                                             \
    "end\n"                                                                                               \
    "redis.call('DEL', skey)\n"

/* KEYS: pd:workers, pd:conns, pd:reaper:lock  ARGV: owner, lock ms
 * Returns a flat list room1, sid1, room2, sid2, ... or false if the lock
 * is held by someone else. */
static const char REAP_LUA[] =
    "if not redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end\n"
    "local out = {}\n"
    "for _, w in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  if redis.call('EXISTS', 'pd:worker:' .. w .. ':hb') == 0 then\n"
    "    local skey = 'pd:worker:' .. w .. ':sockets'\n"
    REAP_SOCKETS
    "    redis.call('HDEL', KEYS[2], w)\n"
    "    redis.call('SREM', KEYS[1], w)\n"
    "  end\n"
    "end\n"
    "return out\n";

/* KEYS: pd:worker:<owner>:sockets → room1, sid1, ... (as REAP_LUA) */
static const char TAKE_OVER_LUA[] =
    "local out = {}\n"
    "local skey = KEYS[1]\n"
    REAP_SOCKETS
    "return out\n";

/* KEYS: pd:workers, pd:conns, hb, sockets  ARGV: owner */
static const char RETIRE_LUA[] =
    "redis.call('SREM', KEYS[1], ARGV[1])\n"
    "redis.call('HDEL', KEYS[2], ARGV[1])\n"
    "redis.call('DEL', KEYS[3], KEYS[4])\n"
    "return 0\n";

typedef struct store_call {
    union {
        pd_room_join_fn join;
        pd_room_long_fn num;
        pd_room_str_fn str;
        pd_room_ids_fn ids;
        pd_room_claim_fn claim;
    } cb;
    pd_cluster_reaped_fn reaped; /* reap only */
    void *data;
} store_call;

static store_call *call_new(void *data)
{
    store_call *c = calloc(1, sizeof(*c));
    if (c)
        c->data = data;
    return c;
}

/* Every script goes by digest once its text has reached the connection
 * (pd_script.h). */
static pd_script join_script = PD_SCRIPT(JOIN_LUA);
static pd_script grant_rejoin_script = PD_SCRIPT(GRANT_REJOIN_LUA);
static pd_script leave_script = PD_SCRIPT(LEAVE_LUA);
static pd_script refresh_script = PD_SCRIPT(REFRESH_LUA);
static pd_script create_script = PD_SCRIPT(PD_STORE_CREATE_LUA);
static pd_script track_script = PD_SCRIPT(TRACK_LUA);
static pd_script get_free_script = PD_SCRIPT(GET_FREE_LUA);
static pd_script claim_script = PD_SCRIPT(CLAIM_LUA);
static pd_script conn_total_script = PD_SCRIPT(CONN_TOTAL_LUA);
static pd_script reap_script = PD_SCRIPT(REAP_LUA);
static pd_script take_over_script = PD_SCRIPT(TAKE_OVER_LUA);
static pd_script retire_script = PD_SCRIPT(RETIRE_LUA);

/* EVAL a script; on failure the call is freed. */
static int store_eval(pd_redis *r, pd_redis_reply_fn fn, store_call *call, pd_script *script,
                      int nkeys, const pd_slice *keys, int nargs, const pd_slice *args)
{
    if (pd_script_eval(r, script, fn, call, nkeys, keys, nargs, args) != PD_OK) {
        free(call);
        return PD_ERR;
    }
    return PD_OK;
}

/* Key builders write into caller buffers; ids are ≤ PD_ID_MAX so 160 bytes
 * always suffice. */
#define KEYBUF 160
static pd_slice key_fmt(char *buf, const char *pre, pd_slice id, const char *post)
{
    int n = snprintf(buf, KEYBUF, "%s%.*s%s", pre, (int)id.len, id.base ? id.base : "", post);
    if (n < 0 || n >= KEYBUF)
        n = 0;
    return pd_slice_make(buf, (size_t)n);
}

static long reply_integer(const redisReply *rep, long dflt)
{
    if (!rep)
        return dflt;
    if (rep->type == REDIS_REPLY_INTEGER)
        return (long)rep->integer;
    return dflt;
}

/* pd:rejoin:<room>:<ip>: at most 10 + 64 + 1 + 45 bytes. */
static pd_slice rejoin_key(char *buf, pd_slice room, const char *client_ip)
{
    int n = snprintf(buf, KEYBUF, "pd:rejoin:%.*s:%s", (int)room.len, room.base ? room.base : "",
                     client_ip ? client_ip : "");
    if (n < 0 || n >= KEYBUF)
        n = 0;
    return pd_slice_make(buf, (size_t)n);
}

/* ---- join --------------------------------------------------------------- */

static void on_join(redisReply *rep, void *data)
{
    store_call *c = data;
    pd_join_result res = {PD_JOIN_ERROR, 0, 0, "redis unavailable", 0};
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
        rep->element[0]->type == REDIS_REPLY_INTEGER) {
        switch (rep->element[0]->integer) {
        case 0: res.status = PD_JOIN_OK; break;
        case 1: res.status = PD_JOIN_REJOIN; break;
        case 2: res.status = PD_JOIN_BOUND_ELSEWHERE; break;
        case 3:
            res.status = PD_JOIN_RATE_LIMITED;
            if (rep->elements >= 3) {
                res.remaining = reply_integer(rep->element[1], 0);
                res.reset_after_s = reply_integer(rep->element[2], PD_JOIN_WINDOW_S);
            }
            break;
        case 4: res.status = PD_JOIN_NO_ROOM; break;
        case 5: res.status = PD_JOIN_FULL; break;
        case 7: res.status = PD_JOIN_HANDED_BEFORE; break;
        case 6:
            res.status = PD_JOIN_RESERVED;
            if (rep->elements >= 2)
                res.seen_ms = reply_integer(rep->element[1], 0);
            break;
        default: res.error = "unexpected reply"; break;
        }
    } else if (rep && rep->type == REDIS_REPLY_ERROR) {
        res.error = "redis error";
    }
    c->cb.join(&res, c->data);
    free(c);
}

void pd_store_rate_fill(pd_store_rate *r)
{
    uint64_t t = pd_now_ms();
    unsigned rnd = 0;
    pd_random_bytes(&rnd, sizeof(rnd));
    snprintf(r->now, sizeof(r->now), "%llu", (unsigned long long)t);
    snprintf(r->member, sizeof(r->member), "%llu-%u", (unsigned long long)t, rnd);
    snprintf(r->limit, sizeof(r->limit), "%d", PD_JOIN_LIMIT);
    snprintf(r->window, sizeof(r->window), "%d", PD_JOIN_WINDOW_S);
}

static int join_eval(pd_redis *r, pd_slice sid, pd_slice room, const char *client_ip, int rate_limit,
                     long long seen_ms, long max_peers, const char *owner, pd_room_join_fn cb, void *data)
{
    store_call *c = call_new(data);
    if (!c)
        return PD_ERR;
    c->cb.join = cb;
    char k1[KEYBUF], k2[KEYBUF], k3[KEYBUF], k4[KEYBUF], k5[KEYBUF], k6[KEYBUF];
    pd_slice keys[6] = {
        key_fmt(k1, "room:", room, ""),
        key_fmt(k2, "room:", room, ":sockets"),
        key_fmt(k3, "socket:", sid, ""),
        key_fmt(k4, "ratelimit:join:", pd_slice_cstr(client_ip), ""),
        key_fmt(k5, "pd:worker:", pd_slice_cstr(owner), ":sockets"),
        rejoin_key(k6, room, client_ip),
    };
    pd_store_rate rt;
    pd_store_rate_fill(&rt);
    char maxp[24], seen[24];
    snprintf(maxp, sizeof(maxp), "%ld", max_peers > 0 ? max_peers : 0);
    snprintf(seen, sizeof(seen), "%lld", seen_ms > 0 ? seen_ms : 0);
    pd_slice args[9] = {sid, room, pd_slice_cstr(rt.now), pd_slice_cstr(rate_limit ? "1" : "0"),
                        pd_slice_cstr(rt.member), pd_slice_cstr(rt.limit), pd_slice_cstr(rt.window),
                        pd_slice_cstr(maxp), pd_slice_cstr(seen)};
    return store_eval(r, on_join, c, &join_script, 6, keys, 9, args);
}

int pd_room_join(pd_redis *r, pd_slice sid, pd_slice room, const char *client_ip, int rate_limit,
                 long max_peers, const char *owner, pd_room_join_fn cb, void *data)
{
    if (pd_redis_is_cluster(r))
        return pd_cstore_join(r, sid, room, client_ip, rate_limit, max_peers, owner, cb, data);
    return join_eval(r, sid, room, client_ip, rate_limit, 0, max_peers, owner, cb, data);
}

int pd_room_join_again(pd_redis *r, pd_slice sid, pd_slice room, const char *client_ip, long long seen_ms,
                       long max_peers, const char *owner, pd_room_join_fn cb, void *data)
{
    /* No pool, so no reserved room, on a Redis Cluster. */
    if (pd_redis_is_cluster(r) || seen_ms <= 0)
        return PD_ERR;
    return join_eval(r, sid, room, client_ip, 0, seen_ms, max_peers, owner, cb, data);
}

/* ---- simple integer-returning scripts --------------------------------- */

static void on_long(redisReply *rep, void *data)
{
    store_call *c = data;
    long v = reply_integer(rep, -1);
    if (c->cb.num)
        c->cb.num(v, c->data);
    free(c);
}

int pd_room_grant_rejoin(pd_redis *r, pd_slice room, const char *client_ip, pd_room_long_fn cb, void *data)
{
    if (pd_redis_is_cluster(r))
        return pd_cstore_grant_rejoin(r, room, client_ip, cb, data);
    store_call *c = call_new(data);
    if (!c)
        return PD_ERR;
    c->cb.num = cb;
    char k1[KEYBUF], grace[16];
    pd_slice key = rejoin_key(k1, room, client_ip);
    snprintf(grace, sizeof(grace), "%d", PD_REJOIN_GRACE_S);
    pd_slice args[1] = {pd_slice_cstr(grace)};
    return store_eval(r, on_long, c, &grant_rejoin_script, 1, &key, 1, args);
}

int pd_room_leave(pd_redis *r, pd_slice sid, pd_slice room, const char *owner, pd_room_long_fn cb,
                  void *data)
{
    if (pd_redis_is_cluster(r))
        return pd_cstore_leave(r, sid, room, owner, cb, data);
    store_call *c = call_new(data);
    if (!c)
        return PD_ERR;
    c->cb.num = cb;
    char k1[KEYBUF], k2[KEYBUF], k3[KEYBUF], k4[KEYBUF];
    pd_slice keys[4] = {
        key_fmt(k1, "room:", room, ""),
        key_fmt(k2, "room:", room, ":sockets"),
        key_fmt(k3, "socket:", sid, ""),
        owner ? key_fmt(k4, "pd:worker:", pd_slice_cstr(owner), ":sockets") : pd_slice_make(NULL, 0),
    };
    pd_slice args[2] = {sid, room};
    return store_eval(r, on_long, c, &leave_script, owner ? 4 : 3, keys, 2, args);
}

int pd_room_refresh(pd_redis *r, pd_slice room, const char *owner, int restore, const pd_slice *sids, size_t n)
{
    if (n > PD_ROOM_REFRESH_MAX)
        return PD_ERR;
    if (pd_redis_is_cluster(r))
        return pd_cstore_refresh(r, room, owner, restore, sids, n);
    store_call *c = call_new(NULL);
    if (!c)
        return PD_ERR;
    char k1[KEYBUF], k2[KEYBUF], k3[KEYBUF];
    pd_slice keys[3] = {key_fmt(k1, "room:", room, ""), key_fmt(k2, "room:", room, ":sockets"),
                        key_fmt(k3, "pd:worker:", pd_slice_cstr(owner), ":sockets")};
    pd_slice args[2 + PD_ROOM_REFRESH_MAX];
    args[0] = room;
    args[1] = pd_slice_cstr(restore ? "1" : "0");
    for (size_t i = 0; i < n; i++)
        args[2 + i] = sids[i];
    return store_eval(r, on_long, c, &refresh_script, 3, keys, 2 + (int)n, args);
}

int pd_room_exists(pd_redis *r, pd_slice room, pd_room_long_fn cb, void *data)
{
    if (pd_redis_is_cluster(r))
        return pd_cstore_exists(r, room, cb, data);
    store_call *c = call_new(data);
    if (!c)
        return PD_ERR;
    c->cb.num = cb;
    char k1[KEYBUF];
    pd_slice key = key_fmt(k1, "room:", room, "");
    const char *argv[3] = {"HEXISTS", key.base, "created_at"};
    size_t lens[3] = {7, key.len, 10};
    if (pd_redis_cmd_argv(r, on_long, c, 3, argv, lens) != PD_OK) {
        free(c);
        return PD_ERR;
    }
    return PD_OK;
}

int pd_room_create(pd_redis *r, pd_slice room, pd_room_long_fn cb, void *data)
{
    if (pd_redis_is_cluster(r))
        return pd_cstore_create(r, room, cb, data);
    store_call *c = call_new(data);
    if (!c)
        return PD_ERR;
    c->cb.num = cb;
    char k1[KEYBUF], now[32];
    pd_slice keys[1] = {key_fmt(k1, "room:", room, "")};
    snprintf(now, sizeof(now), "%llu", (unsigned long long)pd_now_ms());
    pd_slice args[1] = {pd_slice_cstr(now)};
    return store_eval(r, on_long, c, &create_script, 1, keys, 1, args);
}

int pd_room_track(pd_redis *r, pd_slice date, pd_slice ref, pd_room_long_fn cb, void *data)
{
    store_call *c = call_new(data);
    if (!c)
        return PD_ERR;
    c->cb.num = cb;
    char k1[KEYBUF];
    pd_slice keys[1] = {key_fmt(k1, "referrers:daily:", date, "")};
    pd_slice args[1] = {ref};
    return store_eval(r, on_long, c, &track_script, 1, keys, 1, args);
}

/* ---- get_room ----------------------------------------------------------- */

/* Candidates for when no 4-digit id is free: PrivyDrop's next form, four
 * alphanumeric characters (14.8 million ids, so a handful of guesses
 * miss only if millions of rooms exist), then six (56.8 billion). */
#define FREE_ALNUM4_TRIES 8
#define FREE_ALNUM6_TRIES 4

static void on_get_free(redisReply *rep, void *data)
{
    store_call *c = data;
    char room[PD_ID_MAX + 1];
    const char *out = NULL;
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
        rep->element[0]->type == REDIS_REPLY_STRING && rep->element[0]->len <= PD_ID_MAX) {
        memcpy(room, rep->element[0]->str, rep->element[0]->len);
        room[rep->element[0]->len] = '\0';
        out = room;
    }
    c->cb.str(out, c->data);
    free(c);
}

/* GET_FREE_LUA for `want` ids living `ttl` s each (marked reserved or not),
 * with `alnum4` random
 * 4-character and FREE_ALNUM6_TRIES 6-character fallback candidates. */
static int get_free_eval(pd_redis *r, int want, const char *ttl, int reserve, int alnum4, pd_redis_reply_fn fn,
                         store_call *c)
{
    enum { MAXCAND = PD_ROOM_RESERVE_MAX + FREE_ALNUM6_TRIES, NARGS = 4 };
    int ncand = alnum4 + FREE_ALNUM6_TRIES;
    char ids[MAXCAND][8];
    pd_slice args[NARGS + MAXCAND];
    char now[32], n[16];
    for (int i = 0; i < ncand; i++) {
        size_t len = i < alnum4 ? 4 : 6;
        if (pd_id_random(ids[i], len, PD_ALPHABET_ALNUM) != PD_OK) {
            free(c);
            return PD_ERR;
        }
        args[NARGS + i] = pd_slice_make(ids[i], len);
    }
    snprintf(now, sizeof(now), "%llu", (unsigned long long)pd_now_ms());
    snprintf(n, sizeof(n), "%d", want);
    args[0] = pd_slice_cstr(now);
    args[1] = pd_slice_cstr(n);
    args[2] = pd_slice_cstr(ttl);
    args[3] = pd_slice_cstr(reserve ? "1" : "0");
    pd_slice keys[3] = {pd_slice_cstr(SHORT_FREE_KEY), pd_slice_cstr(SHORT_USED_KEY),
                        pd_slice_cstr(SHORT_SEEDED_KEY)};
    /* One script, one round trip: Redis runs it atomically, so two callers
     * can never get the same id. */
    return store_eval(r, fn, c, &get_free_script, 3, keys, NARGS + ncand, args);
}

int pd_room_get_free(pd_redis *r, pd_room_str_fn cb, void *data)
{
    if (pd_redis_is_cluster(r))
        return pd_cstore_get_free(r, cb, data);
    store_call *c = call_new(data);
    if (!c)
        return PD_ERR;
    c->cb.str = cb;
    return get_free_eval(r, 1, "86400", 0, FREE_ALNUM4_TRIES, on_get_free, c);
}

static void on_reserve(redisReply *rep, void *data)
{
    store_call *c = data;
    char ids[PD_ROOM_RESERVE_MAX][PD_ROOM_RESERVED_ID_MAX + 1];
    const char *out[PD_ROOM_RESERVE_MAX];
    int n = -1;
    if (rep && rep->type == REDIS_REPLY_ARRAY) {
        n = 0;
        for (size_t i = 0; i < rep->elements && n < PD_ROOM_RESERVE_MAX; i++) {
            const redisReply *e = rep->element[i];
            if (e->type != REDIS_REPLY_STRING || e->len == 0 || e->len > PD_ROOM_RESERVED_ID_MAX)
                continue;
            memcpy(ids[n], e->str, e->len);
            ids[n][e->len] = '\0';
            out[n] = ids[n];
            n++;
        }
    }
    c->cb.ids(out, n, c->data);
    free(c);
}

int pd_room_reserve(pd_redis *r, int want, long ttl_s, pd_room_ids_fn cb, void *data)
{
    if (pd_redis_is_cluster(r) || want < 1 || want > PD_ROOM_RESERVE_MAX || ttl_s < 1 || ttl_s > 86400)
        return PD_ERR;
    store_call *c = call_new(data);
    if (!c)
        return PD_ERR;
    c->cb.ids = cb;
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%ld", ttl_s);
    /* One 4-character candidate per id wanted: at a full 4-digit space
     * each still finds a room nearly always (see FREE_ALNUM4_TRIES). */
    return get_free_eval(r, want, ttl, 1, want, on_reserve, c);
}

static void on_claim(redisReply *rep, void *data)
{
    store_call *c = data;
    pd_room_claimed res = {-1, 0, 0};
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 3) {
        res.claimed = reply_integer(rep->element[0], -1);
        res.created = reply_integer(rep->element[1], 0);
        res.redis_ms = reply_integer(rep->element[2], 0);
    }
    if (c->cb.claim)
        c->cb.claim(&res, c->data);
    free(c);
}

int pd_room_claim(pd_redis *r, const pd_room_claim_id *ids, size_t n, pd_room_claim_fn cb, void *data)
{
    if (pd_redis_is_cluster(r) || n == 0 || n > PD_ROOM_CLAIM_MAX)
        return PD_ERR;
    store_call *c = call_new(data);
    if (!c)
        return PD_ERR;
    c->cb.claim = cb;
    pd_slice args[2 * PD_ROOM_CLAIM_MAX];
    char when[PD_ROOM_CLAIM_MAX][24];
    for (size_t i = 0; i < n; i++) {
        if (ids[i].handed_ms)
            snprintf(when[i], sizeof(when[i]), "%llu", (unsigned long long)ids[i].handed_ms);
        else
            snprintf(when[i], sizeof(when[i]), "a%llu", (unsigned long long)ids[i].age_ms);
        args[2 * i] = ids[i].id;
        args[2 * i + 1] = pd_slice_cstr(when[i]);
    }
    return store_eval(r, on_claim, c, &claim_script, 0, NULL, (int)(2 * n), args);
}

/* ---- cluster ------------------------------------------------------------ */

int pd_cluster_heartbeat(pd_redis *r, const char *owner, long connections)
{
    if (pd_redis_is_cluster(r))
        return pd_cstore_heartbeat(r, owner, connections);
    char hb[KEYBUF], now[32], count[32];
    key_fmt(hb, "pd:worker:", pd_slice_cstr(owner), ":hb");
    snprintf(now, sizeof(now), "%llu", (unsigned long long)pd_now_ms());
    snprintf(count, sizeof(count), "%ld", connections);
    /* Heartbeat first: a reaper must never see the instance registered
     * without a live heartbeat. One connection keeps the order. */
    if (pd_redis_cmd(r, NULL, NULL, "SET %s %s PX %d", hb, now, PD_CLUSTER_HB_TTL_MS) != PD_OK)
        return PD_ERR;
    pd_redis_cmd(r, NULL, NULL, "SADD pd:workers %s", owner);
    pd_redis_cmd(r, NULL, NULL, "HSET pd:conns %s %s", owner, count);
    return PD_OK;
}

int pd_cluster_forget_socket(pd_redis *r, const char *owner, pd_slice sid)
{
    if (pd_redis_is_cluster(r))
        return pd_cstore_forget_socket(r, owner, sid);
    char key[KEYBUF];
    key_fmt(key, "pd:worker:", pd_slice_cstr(owner), ":sockets");
    return pd_redis_cmd(r, NULL, NULL, "SREM %s %b", key, sid.base, sid.len);
}

int pd_cluster_conn_delta(pd_redis *r, const char *owner, long delta, pd_room_long_fn cb, void *data)
{
    if (pd_redis_is_cluster(r))
        return pd_cstore_conn_delta(r, owner, delta, cb, data);
    store_call *c = call_new(data);
    if (!c)
        return PD_ERR;
    c->cb.num = cb;
    if (pd_redis_cmd(r, on_long, c, "HINCRBY pd:conns %s %ld", owner, delta) != PD_OK) {
        free(c);
        return PD_ERR;
    }
    return PD_OK;
}

int pd_cluster_conn_total(pd_redis *r, pd_room_long_fn cb, void *data)
{
    if (pd_redis_is_cluster(r))
        return pd_cstore_conn_total(r, cb, data);
    store_call *c = call_new(data);
    if (!c)
        return PD_ERR;
    c->cb.num = cb;
    pd_slice keys[1] = {pd_slice_cstr("pd:conns")};
    return store_eval(r, on_long, c, &conn_total_script, 1, keys, 0, NULL);
}

static void on_reap(redisReply *rep, void *data)
{
    store_call *c = data;
    long n = -1;
    if (rep && rep->type == REDIS_REPLY_NIL) {
        n = 0; /* another instance holds the lock */
    } else if (rep && rep->type == REDIS_REPLY_ARRAY) {
        n = 0;
        for (size_t i = 0; i + 1 < rep->elements; i += 2) {
            redisReply *room = rep->element[i], *sid = rep->element[i + 1];
            if (room->type != REDIS_REPLY_STRING || sid->type != REDIS_REPLY_STRING)
                continue;
            n++;
            if (c->reaped)
                c->reaped(room->str, sid->str, c->data);
        }
    }
    if (c->cb.num)
        c->cb.num(n, c->data);
    free(c);
}

int pd_cluster_reap(pd_redis *r, const char *owner, pd_cluster_reaped_fn reaped_cb,
                    pd_room_long_fn done_cb, void *data)
{
    if (pd_redis_is_cluster(r))
        return pd_cstore_reap(r, owner, reaped_cb, done_cb, data);
    store_call *c = call_new(data);
    if (!c)
        return PD_ERR;
    c->cb.num = done_cb;
    c->reaped = reaped_cb;
    pd_slice keys[3] = {pd_slice_cstr("pd:workers"), pd_slice_cstr("pd:conns"),
                        pd_slice_cstr("pd:reaper:lock")};
    pd_slice args[2] = {pd_slice_cstr(owner), pd_slice_cstr("4000")};
    return store_eval(r, on_reap, c, &reap_script, 3, keys, 2, args);
}

int pd_cluster_take_over(pd_redis *r, const char *owner, pd_cluster_reaped_fn reaped_cb, pd_room_long_fn done_cb,
                         void *data)
{
    if (pd_redis_is_cluster(r))
        return pd_cstore_take_over(r, owner, reaped_cb, done_cb, data);
    store_call *c = call_new(data);
    if (!c)
        return PD_ERR;
    c->cb.num = done_cb;
    c->reaped = reaped_cb;
    char socks[KEYBUF];
    pd_slice keys[1] = {key_fmt(socks, "pd:worker:", pd_slice_cstr(owner), ":sockets")};
    return store_eval(r, on_reap, c, &take_over_script, 1, keys, 0, NULL);
}

int pd_cluster_retire(pd_redis *r, const char *owner, pd_room_long_fn cb, void *data)
{
    if (pd_redis_is_cluster(r))
        return pd_cstore_retire(r, owner, cb, data);
    store_call *c = call_new(data);
    if (!c)
        return PD_ERR;
    c->cb.num = cb;
    char hb[KEYBUF], socks[KEYBUF];
    pd_slice keys[4] = {pd_slice_cstr("pd:workers"), pd_slice_cstr("pd:conns"),
                        key_fmt(hb, "pd:worker:", pd_slice_cstr(owner), ":hb"),
                        key_fmt(socks, "pd:worker:", pd_slice_cstr(owner), ":sockets")};
    pd_slice args[1] = {pd_slice_cstr(owner)};
    return store_eval(r, on_long, c, &retire_script, 4, keys, 1, args);
}

/* ---- bus ----------------------------------------------------------------- */

int pd_room_publish(pd_redis *r, pd_slice room, const pd_bus_envelope *env)
{
    return pd_room_publish_then(r, room, env, NULL, NULL);
}

int pd_room_publish_then(pd_redis *r, pd_slice room, const pd_bus_envelope *env, pd_redis_reply_fn cb,
                         void *data)
{
    char ch[PD_ID_MAX + 16];
    int chlen = pd_bus_channel(ch, sizeof(ch), room);
    /* Header and packet go out as they are, without joining them first. */
    char head[2 * PD_BUS_MAX_ORIGIN + 16];
    int hlen = chlen > 0 ? pd_bus_encode_head(env, head, sizeof(head)) : PD_ERR;
    if (hlen <= 0)
        return PD_ERR;
    pd_slice parts[2] = {pd_slice_make(head, (size_t)hlen), env->packet};
    return pd_redis_publish(r, pd_slice_make(ch, (size_t)chlen), parts, 2, cb, data);
}

int pd_room_publish_left(pd_redis *r, const char *origin, pd_slice room, pd_slice sid)
{
    json_t *payload = json_pack("{s:s#}", "peerId", sid.base, sid.len);
    size_t plen = 0;
    char *pkt = payload ? pd_sio_encode_event("peer-disconnected", payload, &plen) : NULL;
    json_decref(payload);
    if (!pkt)
        return PD_ERR;
    pd_bus_envelope env = {PD_BUS_LEAVE, pd_slice_cstr(origin), sid, pd_slice_make(pkt, plen), {NULL, 0}};
    int rc = pd_room_publish(r, room, &env);
    free(pkt);
    return rc;
}
