/* pool.h — room ids reserved ahead of get_room (docs/architecture.md,
 * "get_room from a pool").
 *
 * get_room's own script (GET_FREE_LUA) sorts, pops and reclaims short ids;
 * the pool does that work ahead, in batches (pd_room_reserve: each room
 * created in Redis at once, living PD_POOL_RESERVE_S and marked reserved,
 * so that no join gets in before it is handed out), and leaves get_room
 * one small claim (pd_room_claim, by the caller): the mark goes and the
 * room gets get_room's 24 h, and only then is the id answered. An id is
 * handed out only within PD_POOL_MAX_AGE_S of reserving it; older ones,
 * and ones never handed out, expire with their reservation.
 *
 * How many ids it keeps follows demand: about a quarter of a second's
 * worth of get_room (at least one, at most `max`), so a quiet deployment
 * does not keep short ids out of circulation. It refills, in batches of at
 * most PD_ROOM_RESERVE_MAX with up to four on their way at once, once it
 * falls below three quarters of that.
 *
 * A single Redis only (pd_room_reserve); the caller makes no pool on a
 * Redis Cluster. */
#ifndef PD_ROOMAPI_POOL_H
#define PD_ROOMAPI_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "privydrop/pd_redis.h"
#include "privydrop/pd_room.h"

#define PD_POOL_RESERVE_S 120   /* a reserved room's life until claimed */
#define PD_POOL_MAX_AGE_S 60    /* handed out only this long after reserving */
#define PD_POOL_MAX 256         /* PD_ROOM_POOL at most */

typedef struct pd_pool pd_pool;

typedef struct pd_pool_config {
    size_t max;          /* ids held at most, 1..PD_POOL_MAX */
    uint64_t max_age_ms; /* 0 = PD_POOL_MAX_AGE_S; less than the reservation's life */
} pd_pool_config;

/* The Redis handle is borrowed and must outlive the pool. NULL on
 * allocation failure or a bad config. */
pd_pool *pd_pool_create(pd_redis *redis, const pd_pool_config *cfg);

/* Called after each answer to a reservation (ids added, or none), after
 * pd_pool_reset and at pd_pool_close: the moments when get_rooms waiting
 * for ids (the room API's, api.c) can be served, or must go another way.
 * Set once, before the first refill; `data` is borrowed. */
typedef void (*pd_pool_ready_fn)(void *data);
void pd_pool_on_ready(pd_pool *p, pd_pool_ready_fn fn, void *data);

/* Hand out nothing more and start no refill (shutdown); then, once the
 * loop has ended (late replies still reach the pool until then),
 * pd_pool_free. */
void pd_pool_close(pd_pool *p);
void pd_pool_free(pd_pool *p);
int pd_pool_closed(const pd_pool *p);

/* A get_room asks: it counts as demand (call once per get_room, taken
 * from the pool or not). Then pd_pool_take: a reserved id in `out`, 1
 * (the caller answers it and has it claimed, claim.h); or 0 when none is
 * ready (the caller waits for those on their way, pd_pool_coming, or
 * takes the per-request path). Call only while the room routes are open
 * and Redis is ready. */
void pd_pool_demand(pd_pool *p);
int pd_pool_take(pd_pool *p, char out[PD_ROOM_RESERVED_ID_MAX + 1]);

/* After a take: the pool runs low (pd_pool_refill_due), and pd_pool_refill
 * asks Redis for more; not for 100 ms after a reservation that failed or
 * found no free id. Apart, so that the caller can first send the claims
 * of the ids it answered (pd_claimq_flush_now): after Redis lost its data,
 * a reservation that ran before them could take one of those ids. */
int pd_pool_refill_due(const pd_pool *p);
void pd_pool_refill(pd_pool *p);

/* Forget every id and ignore the answers still on their way: the Redis
 * link went down (Redis may come back empty, or from a replica without
 * them), or a claim found its reservation gone. */
void pd_pool_reset(pd_pool *p);

/* Ids ready to hand out; ids asked of Redis and not yet answered (0 once
 * closed); and get_rooms answered from the pool since start. */
size_t pd_pool_size(const pd_pool *p);
size_t pd_pool_coming(const pd_pool *p);
uint64_t pd_pool_hits(const pd_pool *p);

#endif
