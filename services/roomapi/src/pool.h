/* pool.h — room ids reserved ahead of get_room (docs/architecture.md,
 * "get_room from a pool").
 *
 * A get_room that waits for Redis pays a round trip and, on a shared core,
 * two process switches; answered from memory it pays neither. The pool
 * reserves ids in batches (pd_room_reserve: each room created in Redis at
 * once, living PD_POOL_RESERVE_S), hands one out per get_room, and claims
 * the ones handed out (pd_room_claim: the room gets get_room's 24 h) in a
 * batch PD_POOL_CLAIM_DELAY_MS later. An id is handed out only while its
 * reservation has at least PD_POOL_RESERVE_S - PD_POOL_MAX_AGE_S to run,
 * so a claim that comes late or not at all (Redis slow, this process
 * killed) leaves a room its client can still join; joining gives it 24 h
 * anyway. An id never handed out expires with its reservation.
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
#include <uv.h>

#include "privydrop/pd_redis.h"
#include "privydrop/pd_room.h"

#define PD_POOL_RESERVE_S 120      /* a reserved room's life until claimed */
#define PD_POOL_MAX_AGE_S 60       /* handed out only this long after reserving */
#define PD_POOL_CLAIM_DELAY_MS 10  /* claims wait this long to share one call */
#define PD_POOL_MAX 256            /* PD_ROOM_POOL at most */

typedef struct pd_pool pd_pool;

typedef struct pd_pool_config {
    size_t max;          /* ids held at most, 1..PD_POOL_MAX */
    uint64_t max_age_ms; /* 0 = PD_POOL_MAX_AGE_S; less than the reservation's life */
} pd_pool_config;

/* The loop and the Redis handle are borrowed and must outlive the pool.
 * NULL on allocation failure or a bad config. */
pd_pool *pd_pool_create(uv_loop_t *loop, pd_redis *redis, const pd_pool_config *cfg);

/* Close the claim timer (queued claims are sent first, if Redis takes
 * them); run the loop afterwards. Then pd_pool_free, which may also come
 * after the loop has ended. Replies that arrive in between are ignored. */
void pd_pool_close(pd_pool *p);
void pd_pool_free(pd_pool *p);

/* A get_room: copy a reserved id into `out` and queue its claim, 1; or 0
 * when none is ready (the caller takes the per-request path). Either way
 * the request counts as demand, and a refill starts when the pool runs
 * low. Call only while the room routes are open and Redis is ready. */
int pd_pool_take(pd_pool *p, char out[PD_ROOM_RESERVED_ID_MAX + 1]);

/* The Redis link went down: forget every id (Redis may come back empty,
 * or from a replica without them) and drop the queued claims; a refill or
 * claim still on its way is ignored when it answers. */
void pd_pool_reset(pd_pool *p);

/* Send the queued claims now (SIGTERM drain). */
void pd_pool_flush(pd_pool *p);

/* Claims queued or sent and not yet answered: a drain waits for them. */
size_t pd_pool_pending(const pd_pool *p);

/* Ids ready to hand out, and get_rooms answered from the pool since start. */
size_t pd_pool_size(const pd_pool *p);
uint64_t pd_pool_hits(const pd_pool *p);

#endif
