/* pd_room.h — the Redis schema of rooms in one place
 * (docs/architecture.md §Redis schema, §Lua scripts).
 *
 * PrivyDrop's keys, so existing data and tools keep working:
 *   room:<id>               hash created_at (ms)   24 h, refreshed on join; 900 s once empty
 *   room:<id>:sockets       set of socket ids      same as the room
 *   socket:<sid>            string → room id       25 h
 *   ratelimit:join:<ip>     sorted set of times    5 s
 *   pd:rejoin:<room>:<ip>   re-join credits        PD_REJOIN_GRACE_S (ours)
 *   referrers:daily:<date>  hash ref → count       30 days
 *   pd:short:free           set of 4-digit ids believed free      (ours, no TTL)
 *   pd:short:used           zset 4-digit id → earliest expiry ms  (ours, no TTL)
 *   pd:short:seeded         how many of the 10 000 ids are sorted (ours, no TTL)
 * Cluster keys are ours, under pd: (see pd_cluster_* below).
 *
 * Every multi-key change is one Lua script, so it is atomic and costs one
 * round trip. Each call returns PD_ERR without calling back when Redis is not
 * connected; otherwise its callback runs exactly once. Slices passed in are
 * copied before the call returns. Ids must already be validated
 * (pd_id_valid). */
#ifndef PD_ROOM_H
#define PD_ROOM_H

#include <stdint.h>

#include "privydrop/pd_bus.h"
#include "privydrop/pd_redis.h"

#define PD_ROOM_TTL_S 86400
#define PD_ROOM_EMPTY_TTL_S 900
#define PD_SOCKET_TTL_S 90000
#define PD_REFERRER_TTL_S 2592000
#define PD_JOIN_LIMIT 2
#define PD_JOIN_WINDOW_S 5
/* How long a re-join credit (pd_room_grant_rejoin) stays usable. */
#define PD_REJOIN_GRACE_S 30

typedef enum pd_join_status {
    PD_JOIN_OK = 0,            /* newly bound */
    PD_JOIN_REJOIN,            /* was already bound to this room */
    PD_JOIN_BOUND_ELSEWHERE,   /* bound to another room */
    PD_JOIN_RATE_LIMITED,      /* too many joins from this client address */
    PD_JOIN_NO_ROOM,           /* room does not exist */
    PD_JOIN_FULL,              /* room already has max_peers sockets */
    PD_JOIN_RESERVED,          /* reserved by the room API, not claimed (yet) */
    PD_JOIN_HANDED_BEFORE,     /* asked again: the room was not handed out to this join */
    PD_JOIN_ERROR,             /* Redis failed */
} pd_join_status;

typedef struct pd_join_result {
    pd_join_status status;
    long remaining;     /* RATE_LIMITED: attempts left */
    long reset_after_s; /* RATE_LIMITED: seconds until the window frees */
    const char *error;  /* ERROR: short reason (static or valid during the callback) */
    long long seen_ms;  /* RESERVED: when Redis found it so (ms, Redis's clock) */
} pd_join_result;

typedef void (*pd_room_join_fn)(const pd_join_result *res, void *data);
/* value < 0 means Redis failed. */
typedef void (*pd_room_long_fn)(long value, void *data);
/* room NULL means failure (or, for get_free, no free id found). */
typedef void (*pd_room_str_fn)(const char *room, void *data);

/* Join in the order of docs/wire-protocol.md §Join: bound elsewhere, then
 * the per-address rate limit (skipped for a re-join of the same room, if a
 * re-join credit of (room, client_ip) pays instead, or if !rate_limit), then
 * existence (PD_JOIN_RESERVED for a room the room API reserved and has
 * not claimed), then room size (max_peers sockets, 0 = unbounded); on success
 * bind, refresh the room TTL and record the socket in instance `owner`'s
 * socket set. */
int pd_room_join(pd_redis *r, pd_slice sid, pd_slice room, const char *client_ip, int rate_limit,
                 long max_peers, const char *owner, pd_room_join_fn cb, void *data);

/* A join asked again after PD_JOIN_RESERVED (seen_ms: that answer's
 * seen_ms), without the rate limit: as pd_room_join, except that a room
 * handed out from the pool more than PD_JOIN_HANDED_SLACK_MS after seen_ms,
 * or created since by other means, answers PD_JOIN_HANDED_BEFORE (the join
 * was waiting before the hand-out: not the client's). PD_ERR on a Redis
 * Cluster (no pool there). */
#define PD_JOIN_HANDED_SLACK_MS 50
int pd_room_join_again(pd_redis *r, pd_slice sid, pd_slice room, const char *client_ip, long long seen_ms,
                       long max_peers, const char *owner, pd_room_join_fn cb, void *data);

/* Re-join credits. A worker that closes a socket on purpose (its drain)
 * grants, before closing it, one credit to the socket's (room, client
 * address); the next join of that room from that address within
 * PD_REJOIN_GRACE_S spends it instead of counting against the join limit.
 * Only the server creates credits, one per socket it closed, and only for a
 * room that socket had joined (and paid for), so a credit never helps anyone
 * guess or flood other rooms; genuinely new joins count as before. Callback
 * value: credits now held, or -1 on error. */
int pd_room_grant_rejoin(pd_redis *r, pd_slice room, const char *client_ip, pd_room_long_fn cb, void *data);

/* Unbind sid from room (socket key only if it points there); a room that
 * this leave empties drops to PD_ROOM_EMPTY_TTL_S. Only a member's leave
 * shortens a room's life: naming a socket that is not in the room changes
 * nothing, so nobody can expire someone else's room early. `owner` (may be
 * NULL) is the instance whose
 * socket set also loses sid. Callback value: -1 error; else bit 0 = sid was
 * a member, bit 1 = the room exists. */
int pd_room_leave(pd_redis *r, pd_slice sid, pd_slice room, const char *owner, pd_room_long_fn cb,
                  void *data);

/* Sockets per pd_room_refresh call. */
#define PD_ROOM_REFRESH_MAX 16
/* A room where this instance (`owner`) has the live members `sids` (at most
 * PD_ROOM_REFRESH_MAX; a room with more takes several calls): renew the
 * bindings of those still bound to it, and the room's life (PD_ROOM_TTL_S)
 * if one of them is still in it, so that it does not expire, and its id is
 * not handed out again, while they are there. With `restore` (the first
 * refresh after Redis became ready again) a room Redis lost (restarted
 * empty, or failed over to a replica that was behind) is created again,
 * marked `restored`, and for 15 min every instance may bind its members
 * there again; a room someone else created meanwhile is never joined.
 * Fire and forget. */
int pd_room_refresh(pd_redis *r, pd_slice room, const char *owner, int restore, const pd_slice *sids, size_t n);
#define PD_LEAVE_WAS_MEMBER 1
#define PD_LEAVE_ROOM_EXISTS 2

/* 1 exists, 0 not, -1 error. */
int pd_room_exists(pd_redis *r, pd_slice room, pd_room_long_fn cb, void *data);

/* Create if absent (HSETNX): 1 created, 0 already existed, -1 error. */
int pd_room_create(pd_redis *r, pd_slice room, pd_room_long_fn cb, void *data);

/* A free room id, created atomically in one round trip and never handed
 * out twice: a 4-digit id from the set of known free ones (pd:short:free,
 * kept with pd:short:used; see store.c) while any is free, else one of 8
 * random 4-character alphanumeric ids, else one of 4 random 6-character
 * ones; NULL only if all of those were taken or Redis failed. Work per call
 * is bounded whatever the fill of the 4-digit space. */
int pd_room_get_free(pd_redis *r, pd_room_str_fn cb, void *data);

/* Reserving ids ahead of get_room (the room API's pool, docs/architecture.md
 * "get_room from a pool"): up to `want` (1..PD_ROOM_RESERVE_MAX) free ids
 * taken as pd_room_get_free takes one, each room created living only
 * `ttl_s` and marked `reserved`: no join gets into it until it is claimed.
 * cb gets the ids (valid during the call) and their count, 0 when none was
 * free, -1 when Redis failed. A single Redis only: PD_ERR on a Redis
 * Cluster (a room's keys are in its own slot there, so a batch would be one
 * step per room, and save nothing). */
#define PD_ROOM_RESERVE_MAX 64
#define PD_ROOM_RESERVED_ID_MAX 6 /* a 4-digit id or a random 4- or 6-character one */
typedef void (*pd_room_ids_fn)(const char *const *ids, int n, void *data);
int pd_room_reserve(pd_redis *r, int want, long ttl_s, pd_room_ids_fn cb, void *data);

/* Ids handed out from the room API's pool (docs/architecture.md, "get_room
 * from a pool"): each room still reserved loses the mark and gets
 * get_room's 24 h; each that is gone (Redis lost it) is created again as
 * get_room creates a room; one that exists unreserved is left alone. cb
 * (may be NULL) gets how many were claimed and how many created again
 * (the rest were somebody's), and Redis's time; claimed -1 when Redis
 * failed, and then any of them may or may not have been done, so sending
 * them again is safe.
 * At most PD_ROOM_CLAIM_MAX ids a call; a single Redis only, as above. */
#define PD_ROOM_CLAIM_MAX 64 /* two script arguments each: within PD_SCRIPT_MAX_PARTS */
typedef struct pd_room_claimed {
    long claimed;       /* -1: Redis failed */
    long created;
    long long redis_ms; /* Redis's clock when the script ran */
} pd_room_claimed;
typedef void (*pd_room_claim_fn)(const pd_room_claimed *res, void *data);
/* An id and when it was handed out, recorded in its room for
 * pd_room_join_again: handed_ms on Redis's clock, as the caller estimates
 * it; or, while it has no estimate (handed_ms 0), age_ms, how long ago. */
typedef struct pd_room_claim_id {
    pd_slice id;
    uint64_t handed_ms;
    uint64_t age_ms;
} pd_room_claim_id;
int pd_room_claim(pd_redis *r, const pd_room_claim_id *ids, size_t n, pd_room_claim_fn cb, void *data);

/* HINCRBY referrers:daily:<date> ref 1 with a 30-day TTL. 0 ok, -1 error. */
int pd_room_track(pd_redis *r, pd_slice date, pd_slice ref, pd_room_long_fn cb, void *data);

/* ---- the bus (docs/architecture.md §Bus) ---------------------------------
 * Publish an envelope on the room's channel. Fire and forget: PD_ERR if it
 * could not be encoded or sent (Redis down). */
int pd_room_publish(pd_redis *r, pd_slice room, const pd_bus_envelope *env);

/* The same, calling cb once Redis has handled the PUBLISH (or with NULL on
 * failure) — so the caller can act only once every subscriber has it. When
 * PD_ERR is returned cb is not called. */
int pd_room_publish_then(pd_redis *r, pd_slice room, const pd_bus_envelope *env, pd_redis_reply_fn cb,
                         void *data);

/* Tell the room that `sid` left (peer-disconnected), as an L envelope: the
 * instance holding sid forgets its binding, everyone else hears it. */
int pd_room_publish_left(pd_redis *r, const char *origin, pd_slice room, pd_slice sid);

/* ---- cluster bookkeeping (pd: keys) -------------------------------------
 *   pd:workers                set of live instance ids
 *   pd:worker:<id>:hb         heartbeat, expires after PD_CLUSTER_HB_TTL_MS
 *   pd:worker:<id>:sockets    sockets bound to rooms through that instance
 *   pd:conns                  hash instance → open sockets */
#define PD_CLUSTER_HB_TTL_MS 15000

/* Refresh the heartbeat, register the instance and set its connection count.
 * Fire and forget. */
int pd_cluster_heartbeat(pd_redis *r, const char *owner, long connections);

/* A socket of this instance was unbound from its room by someone else (the
 * room API's leave, the reaper): drop it from pd:worker:<owner>:sockets.
 * Fire and forget. */
int pd_cluster_forget_socket(pd_redis *r, const char *owner, pd_slice sid);

/* Add delta to the instance's connection count; cb may be NULL. */
int pd_cluster_conn_delta(pd_redis *r, const char *owner, long delta, pd_room_long_fn cb,
                          void *data);

/* Sum of the connection counts of live instances (-1 on error). */
int pd_cluster_conn_total(pd_redis *r, pd_room_long_fn cb, void *data);

/* One reaped socket: the room it was in. */
typedef void (*pd_cluster_reaped_fn)(const char *room, const char *sid, void *data);
/* If this instance wins the reaper lock, clean up every instance whose
 * heartbeat expired: unbind its sockets (empty rooms → 900 s) and forget the
 * instance. reaped_cb runs once per socket so the caller can tell the room;
 * done_cb (may be NULL) gets the number reaped or -1. */
int pd_cluster_reap(pd_redis *r, const char *owner, pd_cluster_reaped_fn reaped_cb,
                    pd_room_long_fn done_cb, void *data);

/* Once per process, before its first heartbeat: unbind the sockets that an
 * earlier run under the same id left bound (a crash, then a restart faster
 * than the reaper: its heartbeat never lapses, so no reaper would take
 * them). Ids are unique per live instance, so every socket in the set is
 * dead. reaped_cb and done_cb as for pd_cluster_reap. */
int pd_cluster_take_over(pd_redis *r, const char *owner, pd_cluster_reaped_fn reaped_cb, pd_room_long_fn done_cb,
                         void *data);

/* Remove this instance's cluster keys (clean shutdown). */
int pd_cluster_retire(pd_redis *r, const char *owner, pd_room_long_fn cb, void *data);

#endif
