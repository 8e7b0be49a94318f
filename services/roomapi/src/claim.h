/* claim.h — the claims of ids get_room handed out from the pool
 * (docs/architecture.md, "get_room from a pool").
 *
 * get_room answers a pooled id at once; its claim (pd_room_claim: the
 * room loses its `reserved` mark and gets its 24 h) follows at the end of
 * the loop turn, gathered with the other claims of the turn into one call;
 * calls go at most one per PD_CLAIMQ_BATCH_MS and one at a time, so under
 * load each carries many claims. The client's join may reach Redis first:
 * the signal worker asks again for a moment while the room is still
 * reserved.
 *
 * A claim that fails (the link drops, Redis answers an error) is sent
 * again, after PD_CLAIMQ_RETRY_MS or as soon as the link is back: it is
 * safe to repeat (pd_room_claim leaves a room that is no longer reserved
 * alone, and creates again one Redis lost). An id is given up after
 * PD_CLAIMQ_KEEP_MS, the life of its reservation (counted as lost).
 *
 * A claim that finds its reservation gone tells the owner through
 * `on_lost` (the pool's other reservations may be gone with it). */
#ifndef PD_ROOMAPI_CLAIM_H
#define PD_ROOMAPI_CLAIM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "privydrop/pd_redis.h"
#include "privydrop/pd_room.h"
#include "pool.h"

#define PD_CLAIMQ_MAX 4096      /* ids waiting or on their way, at most */
#define PD_CLAIMQ_BATCH_MS 2    /* one call at most this often */
#define PD_CLAIMQ_RETRY_MS 100  /* after a failed call, before the next */
#define PD_CLAIMQ_KEEP_MS (PD_POOL_RESERVE_S * 1000) /* the reservation's life: an id not claimed by then is given up */

typedef struct pd_claimq pd_claimq;

typedef struct pd_claimq_stats {
    size_t pending;    /* ids waiting or on their way */
    uint64_t claimed;  /* reserved rooms claimed */
    uint64_t created;  /* rooms Redis had lost, created again */
    uint64_t taken;    /* rooms found unreserved: a repeated claim, or somebody's */
    uint64_t lost;     /* ids given up (PD_CLAIMQ_KEEP_MS, full, shutdown) */
} pd_claimq_stats;

typedef void (*pd_claimq_lost_fn)(void *data);

/* The loop and Redis handle are borrowed; Redis must outlive the queue's
 * use (pd_claimq_close before freeing it). NULL on allocation failure. */
pd_claimq *pd_claimq_create(uv_loop_t *loop, pd_redis *redis, pd_claimq_lost_fn on_lost, void *data);

/* Room for one more id (check before handing a pooled id out). */
int pd_claimq_has_room(const pd_claimq *q);

/* An id just answered: claimed at the end of this loop turn, or with the
 * next call (PD_CLAIMQ_BATCH_MS). PD_ERR when
 * full (the caller must not hand the id out). */
int pd_claimq_push(pd_claimq *q, const char *id);

/* Before anything that may create a room by a free id (a per-request
 * get_room, a pool refill, create_room): what waits goes now, so Redis
 * runs those claims first (one connection keeps the order). Otherwise,
 * after Redis lost its data, such a command could take an id already
 * answered whose claim had not run yet, and hand it out again. */
void pd_claimq_flush_now(pd_claimq *q);

/* Redis readiness (wired to pd_redis): what waits goes out once ready. */
void pd_claimq_on_redis_state(pd_claimq *q, int ready);

/* Shutdown: no more sends, and the handles close; answers still on their
 * way are counted and dropped. Then, once the loop has ended,
 * pd_claimq_free. */
void pd_claimq_close(pd_claimq *q);
void pd_claimq_free(pd_claimq *q);

void pd_claimq_get_stats(const pd_claimq *q, pd_claimq_stats *out);

#endif
