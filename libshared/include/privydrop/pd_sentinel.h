/* pd_sentinel.h — where the Redis master is, according to Redis Sentinel.
 *
 * A pd_sentinel asks the configured sentinels, one at a time with a bounded
 * deadline each, `SENTINEL get-master-addr-by-name <master>`, and keeps one
 * subscription to `+switch-master` on a sentinel so that a failover is known
 * at once rather than when the old master's link times out. It only reports
 * addresses; the caller (pd_redis) connects, checks the server's ROLE and
 * asks again (pd_sentinel_discover) whenever that fails or a link is lost.
 *
 * Protocol: https://redis.io/docs/reference/sentinel-clients/ — "Redis
 * service discovery via Sentinel" (steps 1-3) and the "+switch-master"
 * event of the Sentinel Pub/Sub API.
 *
 * Ownership: every string given to create is copied; addresses handed to
 * callbacks are valid during the call only. */
#ifndef PD_SENTINEL_H
#define PD_SENTINEL_H

#include <hiredis/hiredis.h>
#include <uv.h>

#include "privydrop/pd_common.h"

#define PD_SENTINEL_MAX 16         /* sentinels in REDIS_SENTINELS */
#define PD_SENTINEL_HOST_MAX 255   /* bytes in one host name */
#define PD_SENTINEL_NAME_MAX 128   /* bytes in the master's name */

typedef struct pd_sentinel_addr {
    char host[PD_SENTINEL_HOST_MAX + 1]; /* IP literal (no brackets) or host name */
    int port;                            /* 1..65535 */
} pd_sentinel_addr;

/* ---- pure helpers (no I/O) --------------------------------------------- */

/* "host:port,host:port,…" (IPv6 as "[::1]:26379"; spaces around entries
 * are ignored) into out[0..*n). PD_ERR with *err (static text) for an empty
 * list, an entry without a valid port, an empty or too long host, or more
 * than `max` entries. */
int pd_sentinel_parse_list(const char *spec, pd_sentinel_addr *out, size_t max, size_t *n, const char **err);

/* A master name sentinels accept in one token: 1..PD_SENTINEL_NAME_MAX
 * printable ASCII bytes without spaces. */
int pd_sentinel_name_valid(const char *name);

/* The reply to SENTINEL get-master-addr-by-name: a two-element array of
 * host and port. PD_ERR for anything else (nil: the sentinel does not know
 * the master; an error; a bad port). */
int pd_sentinel_parse_master_reply(const redisReply *reply, pd_sentinel_addr *out);

/* The payload of a +switch-master message, "<name> <old-ip> <old-port>
 * <new-ip> <new-port>": PD_OK and the new address when it names `master`;
 * PD_ERR for another master or a malformed payload. */
int pd_sentinel_parse_switch(pd_slice payload, const char *master, pd_sentinel_addr *out);

/* 1 if a reply to ROLE says the server is a master ("master" as the first
 * element), 0 otherwise (replica, sentinel, error, nil). */
int pd_sentinel_role_is_master(const redisReply *reply);

/* The order in which a discovery round asks: the sentinel that answered
 * last first (it is the likeliest to be up), then the others in their
 * configured order. Fills order[0..n) with indices. */
void pd_sentinel_order(size_t n, size_t preferred, size_t *order);

/* ---- the discovery client ---------------------------------------------- */

typedef struct pd_sentinel pd_sentinel;

/* A master address: the answer of a discovery round, or a +switch-master. */
typedef void (*pd_sentinel_master_fn)(pd_sentinel *s, const pd_sentinel_addr *master, void *data);

typedef struct pd_sentinel_options {
    const pd_sentinel_addr *sentinels; /* copied */
    size_t count;                      /* 1..PD_SENTINEL_MAX */
    const char *master;                /* master name (copied) */
    const char *password;              /* AUTH for the sentinels, or NULL (copied) */
    unsigned timeout_ms;               /* per sentinel: connect + answer; 0 → 1000 */
} pd_sentinel_options;

/* Starts the +switch-master watch at once; discovery runs on
 * pd_sentinel_discover. NULL on allocation failure or bad options. */
pd_sentinel *pd_sentinel_create(uv_loop_t *loop, const pd_sentinel_options *opt, pd_sentinel_master_fn cb,
                                void *data);

/* Find the master (again). Asks the sentinels in pd_sentinel_order; a
 * round in which none answers is followed by another after a capped,
 * growing pause, until one does; then `cb` runs once. Calling it while a
 * round is running or waiting changes nothing. */
void pd_sentinel_discover(pd_sentinel *s);

/* 1 while a discovery round runs or waits to run. */
int pd_sentinel_discovering(const pd_sentinel *s);

/* Successful discoveries and +switch-master messages taken; for tests. */
unsigned long pd_sentinel_answers(const pd_sentinel *s);
unsigned long pd_sentinel_switches(const pd_sentinel *s);

/* Disconnect and free once libuv has closed the handles; run the loop
 * afterwards. No callback runs after this. */
void pd_sentinel_free(pd_sentinel *s);

#endif
