/* pd_rcluster.h — Redis Cluster behind the pd_redis call shape
 * (docs/architecture.md §Redis Cluster).
 *
 * pd_redis_create returns a cluster-backed handle when
 * pd_redis_options.cluster_nodes is set; every pd_redis_* call then lands
 * here. What it does:
 * - one command connection per master (a single-instance pd_redis each,
 *   with its own reconnects and watchdog), the slot → master map from
 *   CLUSTER SLOTS (pd_slot.h), asked at start, after -MOVED, after a
 *   node's link is lost, and every second while the handle is not ready;
 * - every command routed by its first key's slot (the first key of
 *   EVAL/EVALSHA, the channel of PUBLISH); -MOVED updates the map and the
 *   command is sent again to the named node, -ASK sends ASKING and the
 *   command there once; at most PD_RCLUSTER_MAX_REDIRECTS hops;
 * - pub/sub per shard: PUBLISH is sent as SPUBLISH and PUBSUB NUMSUB as one
 *   PUBSUB SHARDNUMSUB per channel (the replies merged into one NUMSUB-shaped
 *   reply), and a subscription is an SSUBSCRIBE on the master that owns the
 *   channel's slot, over a subscriber link per master that this module
 *   speaks itself (hiredis 0.14's async context does not track the sharded
 *   replies); channels follow their slot when it moves or fails over.
 *
 * Ownership as in pd_redis.h: replies handed to callbacks are valid during
 * the callback only; every accepted command gets exactly one callback,
 * NULL on a transport failure. */
#ifndef PD_RCLUSTER_H
#define PD_RCLUSTER_H

#include "privydrop/pd_redis.h"

#define PD_RCLUSTER_MAX_REDIRECTS 5
#define PD_RCLUSTER_MAX_ARGS 256     /* arguments in one routed command */
#define PD_RCLUSTER_MAX_NUMSUB 64    /* channels in one PUBSUB NUMSUB */

typedef struct pd_rcluster pd_rcluster;

/* ---- pure helpers (no I/O) ------------------------------------------------ */

/* Split a command as hiredis formats it (a RESP array of bulk strings) into
 * argument views pointing into buf. Returns the count, or -1 when buf is not
 * exactly one such array or holds more than `cap` arguments. */
int pd_rcluster_split(const char *buf, size_t len, const char **argv, size_t *lens, int cap);

typedef enum pd_rcluster_route_kind {
    PD_RCL_KEY = 1,  /* goes to the master of *key's slot */
    PD_RCL_ANY,      /* keyless: any master will do */
    PD_RCL_NUMSUB,   /* PUBSUB NUMSUB: one SHARDNUMSUB per channel */
    PD_RCL_REFUSED,  /* not routable here (SUBSCRIBE and friends, MULTI, too few arguments) */
} pd_rcluster_route_kind;

/* Where a command goes: EVAL/EVALSHA/FCALL → its first key (PD_RCL_ANY
 * with 0 keys), PUBLISH/SPUBLISH → the channel, PING/INFO/CLUSTER/… → any
 * master, PUBSUB NUMSUB → PD_RCL_NUMSUB, every other command → argv[1]. */
pd_rcluster_route_kind pd_rcluster_route(int argc, const char **argv, const size_t *lens, pd_slice *key);

/* ---- the handle (used through pd_redis.h) ---------------------------------- */

/* `outer` is the pd_redis handle callers hold (passed to state_cb). NULL on
 * allocation failure or a node list that does not parse. */
pd_rcluster *pd_rcluster_create(uv_loop_t *loop, const pd_redis_options *opt, pd_redis *outer,
                                pd_redis_state_fn state_cb, pd_redis_message_fn message_cb, void *data);
/* Pending callbacks receive NULL synchronously; memory goes once libuv has
 * closed the handles (run the loop afterwards). */
void pd_rcluster_free(pd_rcluster *c);

int pd_rcluster_ready(const pd_rcluster *c);
int pd_rcluster_cmd_argv(pd_rcluster *c, pd_redis_reply_fn cb, void *data, int argc, const char **argv,
                         const size_t *lens);
size_t pd_rcluster_pending(const pd_rcluster *c);
int pd_rcluster_sub_behind(const pd_rcluster *c);
int pd_rcluster_subscribe(pd_rcluster *c, pd_slice channel);
int pd_rcluster_unsubscribe(pd_rcluster *c, pd_slice channel);
size_t pd_rcluster_subscription_count(const pd_rcluster *c);
unsigned long pd_rcluster_connects(const pd_rcluster *c);
/* CLUSTER SLOTS maps taken, and -MOVED / -ASK redirections followed. */
unsigned long pd_rcluster_map_refreshes(const pd_rcluster *c);
unsigned long pd_rcluster_redirects(const pd_rcluster *c);
/* New maps that gave slots to another master (a failover, a resharding);
 * the first map is not a change. pd_redis_master_changes reports it. */
unsigned long pd_rcluster_master_changes(const pd_rcluster *c);
/* Walks of the wanted channels (each costs one step per channel): a new
 * map, a subscriber link (re)connected or let go, and at most one per tick
 * for every -MOVED its subscriber links answered since the last. */
unsigned long pd_rcluster_chan_walks(const pd_rcluster *c);

#endif
