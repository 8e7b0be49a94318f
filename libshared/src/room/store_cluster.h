/* store_cluster.h — the room schema on a Redis Cluster (internal): the same
 * operations as pd_room.h, with hash-tagged key names and the scripts that
 * span slots split into per-slot steps (docs/architecture.md §Redis
 * Cluster). store.c hands every call here when pd_redis_is_cluster(). */
#ifndef PD_STORE_CLUSTER_H
#define PD_STORE_CLUSTER_H

#include "privydrop/pd_room.h"

/* Create a room if it does not exist: KEYS room, ARGV now ms → 1 created,
 * 0 taken. One key, so the same script serves both modes (store.c). */
extern const char PD_STORE_CREATE_LUA[];

/* Lua, for a refresh that may restore (the first after Redis became ready
 * again, ARGV[2] == '1'): creates the room KEYS[1] again if Redis lost it,
 * with a `restored` field (Redis's clock, ms), and sets `restoring` if the room
 * was restored in the last 15 min. Then every worker with members there
 * may bind its own again, whichever came first; nobody binds into a room
 * that someone else created meanwhile (get_room, create_room): it has no
 * such field. A room created here gets the empty room's 900 s at once, so
 * that it expires even if nothing after this ever runs (a worker killed
 * between the steps of a cluster refresh); a live one gets 24 h below. */
#define PD_STORE_LUA_RESTORING                                                                            \
    "if ARGV[2] == '1' then\n"                                                                            \
    "  local t = redis.call('TIME')\n"                                                                    \
    "  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"                           \
    "  if redis.call('EXISTS', KEYS[1]) == 0 then\n"                                                      \
    "    redis.call('HSET', KEYS[1], 'created_at', now, 'restored', now)\n"                               \
    "    redis.call('EXPIRE', KEYS[1], 900)\n"                                                            \
    "  end\n"                                                                                             \
    "  local r = tonumber(redis.call('HGET', KEYS[1], 'restored'))\n"                                     \
    "  restoring = r ~= nil and now - r < 900000\n"                                                       \
    "end\n"

/* Lua: the room KEYS[1] (set KEYS[2]) lives on 24 h if `live`; a room
 * that has no TTL (just restored, but none of its members could be bound)
 * gets the empty room's 900 s. */
#define PD_STORE_LUA_RENEW                                                                                \
    "if live then\n"                                                                                      \
    "  redis.call('EXPIRE', KEYS[1], 86400)\n"                                                            \
    "  redis.call('EXPIRE', KEYS[2], 86400)\n"                                                            \
    "end\n"                                                                                               \
    "if redis.call('TTL', KEYS[1]) == -1 then redis.call('EXPIRE', KEYS[1], 900) end\n"

/* The join rate limit's arguments, alike in both modes: now (ms), a member
 * unique to this join, the limit and the window (pd_room.h). */
typedef struct pd_store_rate {
    char now[32];
    char member[64];
    char limit[16];
    char window[16];
} pd_store_rate;
void pd_store_rate_fill(pd_store_rate *r);

int pd_cstore_join(pd_redis *r, pd_slice sid, pd_slice room, const char *client_ip, int rate_limit,
                   long max_peers, const char *owner, pd_room_join_fn cb, void *data);
int pd_cstore_grant_rejoin(pd_redis *r, pd_slice room, const char *client_ip, pd_room_long_fn cb, void *data);
int pd_cstore_leave(pd_redis *r, pd_slice sid, pd_slice room, const char *owner, pd_room_long_fn cb,
                    void *data);
int pd_cstore_exists(pd_redis *r, pd_slice room, pd_room_long_fn cb, void *data);
int pd_cstore_create(pd_redis *r, pd_slice room, pd_room_long_fn cb, void *data);
int pd_cstore_get_free(pd_redis *r, pd_room_str_fn cb, void *data);
int pd_cstore_heartbeat(pd_redis *r, const char *owner, long connections);
int pd_cstore_forget_socket(pd_redis *r, const char *owner, pd_slice sid);
int pd_cstore_conn_delta(pd_redis *r, const char *owner, long delta, pd_room_long_fn cb, void *data);
int pd_cstore_conn_total(pd_redis *r, pd_room_long_fn cb, void *data);
int pd_cstore_reap(pd_redis *r, const char *owner, pd_cluster_reaped_fn reaped_cb, pd_room_long_fn done_cb,
                   void *data);
int pd_cstore_refresh(pd_redis *r, pd_slice room, const char *owner, int restore, const pd_slice *sids, size_t n);
int pd_cstore_take_over(pd_redis *r, const char *owner, pd_cluster_reaped_fn reaped_cb, pd_room_long_fn done_cb,
                        void *data);
int pd_cstore_retire(pd_redis *r, const char *owner, pd_room_long_fn cb, void *data);

#endif
