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
