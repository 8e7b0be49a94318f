/* pd_redis.h — Redis for a libuv process: hiredis async connections that
 * reconnect by themselves (capped, jittered backoff), a watchdog that treats
 * an unanswered PING as a dead server, and an optional second connection
 * for pub/sub that re-subscribes every wanted channel after a reconnect.
 *
 * Ownership: replies handed to callbacks belong to hiredis and are valid only
 * during the callback. A callback receives NULL when its command failed for
 * any transport reason (disconnect, watchdog, shutdown); Redis error replies
 * arrive as REDIS_REPLY_ERROR. Every accepted command gets exactly one
 * callback. */
#ifndef PD_REDIS_H
#define PD_REDIS_H

#include <hiredis/hiredis.h>
#include <uv.h>

#include "privydrop/pd_common.h"
#include "privydrop/pd_config.h"

typedef struct pd_redis pd_redis;

/* The subscriber link's default payload bound (pd_redis_options). */
#define PD_REDIS_SUB_MAX_MESSAGE ((size_t)1 << 20)

typedef void (*pd_redis_reply_fn)(redisReply *reply, void *data);
/* Readiness changed: 1 once every connection is up, 0 when one is lost. */
typedef void (*pd_redis_state_fn)(pd_redis *r, int ready, void *data);
/* A pub/sub message; slices valid during the call only. */
typedef void (*pd_redis_message_fn)(pd_slice channel, pd_slice message, void *data);

typedef struct pd_redis_options {
    const char *host;       /* server host (copied) */
    int port;               /* server port */
    const char *password;   /* AUTH password or NULL (copied) */
    int subscriber;         /* open the pub/sub connection too */
    unsigned watchdog_ms;   /* PING period; a PING unanswered (or a connect unfinished) for 3 periods kills the link; 0 → 1000 */
    /* Longest pub/sub payload the subscriber link accepts (1 ..
     * PD_SUBPARSE_MAX_MESSAGE); a longer one, like any malformed reply,
     * drops the link (which reconnects and resubscribes). Keep it above
     * anything published. 0 → PD_REDIS_SUB_MAX_MESSAGE. */
    size_t sub_max_message;
    /* Sentinel mode (pd_sentinel.h) when `sentinels` is set: host and port
     * are then ignored; the master is whatever the sentinels name, checked
     * with ROLE on every connect (a server that is not a master is left and
     * the sentinels asked again), and asked again after any lost link. */
    const char *sentinels;         /* "host:port,…" or NULL (copied) */
    const char *sentinel_master;   /* the master's name in the sentinels (copied) */
    const char *sentinel_password; /* AUTH for the sentinels, or NULL (copied) */
    /* Redis Cluster mode (pd_rcluster.h) when set: "host:port,…" of some
     * nodes, asked for the slot map; host, port and the sentinel fields
     * are then ignored, `password` is every node's (copied). */
    const char *cluster_nodes;
} pd_redis_options;

/* Reads REDIS_HOST, REDIS_PORT, REDIS_PASSWORD, REDIS_CLUSTER_NODES and,
 * for Sentinel, REDIS_SENTINELS, REDIS_SENTINEL_MASTER, REDIS_SENTINEL_PASSWORD into
 * *out's connection fields (strings borrowed from the environment; the
 * other fields untouched), recording each problem in chk: a sentinel list
 * that does not parse, one of the two sentinel variables without the other,
 * a bad master name, a cluster node list that does not parse or comes with
 * REDIS_SENTINELS. */
void pd_redis_config_load(pd_config_check *chk, pd_redis_options *out);

/* "host:port", "sentinel master <m> via <list>" or "cluster via <list>",
 * for start-up logs. */
void pd_redis_describe(const pd_redis_options *opt, char *buf, size_t size);

/* Start connecting at once; never fails for an unreachable server (it keeps
 * trying). NULL only on allocation failure or a sentinel list that does not
 * parse (check it with pd_redis_config_load first). Callbacks may be NULL. */
pd_redis *pd_redis_create(uv_loop_t *loop, const pd_redis_options *opt,
                          pd_redis_state_fn state_cb, pd_redis_message_fn message_cb, void *data);

/* Disconnect (pending callbacks receive NULL, synchronously) and free once
 * libuv has closed the handles; run the loop afterwards. */
void pd_redis_free(pd_redis *r);

int pd_redis_ready(const pd_redis *r);

/* 1 for a Redis Cluster handle: key names get hash tags and multi-key
 * scripts run as per-slot steps (pd_room.h, docs/architecture.md
 * §Redis Cluster). */
int pd_redis_is_cluster(const pd_redis *r);

/* Send a command (hiredis format). PD_ERR when the command connection is not
 * up — then cb is not called and the caller answers the failure itself. */
int pd_redis_cmd(pd_redis *r, pd_redis_reply_fn cb, void *data, const char *fmt, ...);
int pd_redis_cmd_argv(pd_redis *r, pd_redis_reply_fn cb, void *data, int argc, const char **argv,
                      const size_t *lens);

/* PUBLISH channel <the parts, joined>, written without hiredis's
 * formatter; same contract as pd_redis_cmd (the reply is the number of
 * subscribers that received it). */
int pd_redis_publish(pd_redis *r, pd_slice channel, const pd_slice *parts, size_t nparts, pd_redis_reply_fn cb,
                     void *data);

/* Commands sent and not yet answered. */
size_t pd_redis_pending(const pd_redis *r);

/* 1 while Redis is connected but behind: more than `max_pending` commands
 * unanswered, or the subscriber link's own probe message overdue by more
 * than 100 ms while other messages keep arriving (Redis is queueing
 * messages for us faster than we read them, and will drop the link once its
 * output buffer limit is reached). Callers slow their producers while it
 * holds. */
int pd_redis_congested(const pd_redis *r, size_t max_pending);

/* 1 while the subscriber link alone is behind (the second condition
 * above): other instances' publishes arrive faster than we read them. Only
 * they can relieve that, so callers tell them (see the hub's pressure
 * channel). While messages flow, a probe goes out every 50 ms so this is
 * noticed within about 150 ms. */
int pd_redis_sub_behind(const pd_redis *r);

/* Want / stop wanting messages of a channel (subscriber connection only).
 * Idempotent; remembered across reconnects. PD_ERR on allocation failure. */
int pd_redis_subscribe(pd_redis *r, pd_slice channel);
int pd_redis_unsubscribe(pd_redis *r, pd_slice channel);
size_t pd_redis_subscription_count(const pd_redis *r);

/* Times a connection was (re-)established; for metrics and tests. */
unsigned long pd_redis_connects(const pd_redis *r);

/* Sentinel mode: servers left because ROLE did not say master (or a write
 * was refused with -READONLY: the server became a replica), and master
 * changes taken (an address other than the previous one; the first address
 * is not a change). Cluster mode: no rejects; master changes are new slot
 * maps that gave slots to another master. 0 otherwise. */
unsigned long pd_redis_role_rejects(const pd_redis *r);
unsigned long pd_redis_master_changes(const pd_redis *r);

#endif
