/* Room ids reserved ahead of get_room (pool.h; docs/architecture.md,
 * "get_room from a pool"). */
#include "pool.h"

#include <stdlib.h>
#include <string.h>

#include "privydrop/pd_common.h"

#define POOL_CAP PD_POOL_MAX
#define DEMAND_WINDOW_MS 250
#define REFILLS_MAX 4 /* reservations on their way at once */

typedef struct pool_entry {
    char id[PD_ROOM_RESERVED_ID_MAX + 1];
    uint64_t at_ms; /* when its reservation was sent (monotonic) */
} pool_entry;

struct pd_pool {
    uv_timer_t timer; /* claim batching; first, so the handle's data finds us */
    pd_redis *redis;  /* borrowed */
    size_t max;
    uint64_t max_age_ms;
    pool_entry ring[POOL_CAP]; /* oldest at head */
    size_t head, count;
    char claims[PD_ROOM_CLAIM_MAX][PD_ROOM_RESERVED_ID_MAX + 1]; /* handed out, not yet sent */
    size_t nclaims;
    size_t claiming;  /* ids in claims sent and not yet answered */
    int refills;      /* reservations of this generation on their way */
    size_t requested; /* ids they asked for */
    unsigned gen;     /* bumped by pd_pool_reset: older answers are ignored */
    int closed;
    uint64_t win_start, win_count, prev_count; /* get_rooms per DEMAND_WINDOW_MS */
    uint64_t hits;
};

/* One Redis call of the pool's, until it answers. */
typedef struct pool_call {
    pd_pool *p;
    unsigned gen;
    size_t n;        /* ids claimed (claims) or asked for (reservations) */
    uint64_t sent_ms; /* reservations */
} pool_call;

static void on_timer(uv_timer_t *t);

pd_pool *pd_pool_create(uv_loop_t *loop, pd_redis *redis, const pd_pool_config *cfg)
{
    uint64_t age = cfg->max_age_ms ? cfg->max_age_ms : (uint64_t)PD_POOL_MAX_AGE_S * 1000;
    if (cfg->max < 1 || cfg->max > POOL_CAP || age >= (uint64_t)PD_POOL_RESERVE_S * 1000)
        return NULL;
    pd_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->redis = redis;
    p->max = cfg->max;
    p->max_age_ms = age;
    uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    return p;
}

void pd_pool_close(pd_pool *p)
{
    if (!p || p->closed)
        return;
    pd_pool_flush(p);
    p->closed = 1;
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, NULL);
}

void pd_pool_free(pd_pool *p)
{
    free(p);
}

static void on_claimed(long v, void *data)
{
    (void)v; /* a room already gone was joined and left, or expired: nothing to do */
    pool_call *c = data;
    c->p->claiming -= c->n;
    free(c);
}

void pd_pool_flush(pd_pool *p)
{
    if (!p->nclaims)
        return;
    uv_timer_stop(&p->timer);
    pd_slice ids[PD_ROOM_CLAIM_MAX];
    for (size_t i = 0; i < p->nclaims; i++)
        ids[i] = pd_slice_cstr(p->claims[i]);
    pool_call *c = calloc(1, sizeof(*c));
    if (c) {
        c->p = p;
        c->n = p->nclaims;
        if (pd_room_claim(p->redis, ids, p->nclaims, on_claimed, c) == PD_OK)
            p->claiming += c->n;
        else
            free(c);
    }
    /* Sent or not, they are done with here: an unclaimed room still has
     * its reservation's life for its client to join it. */
    p->nclaims = 0;
}

static void on_timer(uv_timer_t *t)
{
    pd_pool_flush(t->data);
}

static void on_reserved(const char *const *ids, int n, void *data)
{
    pool_call *c = data;
    pd_pool *p = c->p;
    if (c->gen == p->gen && !p->closed) {
        p->refills--;
        p->requested -= c->n;
        for (int i = 0; i < n && p->count < POOL_CAP; i++) {
            pool_entry *e = &p->ring[(p->head + p->count) % POOL_CAP];
            memcpy(e->id, ids[i], strlen(ids[i]) + 1);
            e->at_ms = c->sent_ms;
            p->count++;
        }
    }
    free(c);
}

/* Demand: get_rooms in this window and the last, each DEMAND_WINDOW_MS. */
static size_t demand_target(pd_pool *p, uint64_t now)
{
    if (now - p->win_start >= DEMAND_WINDOW_MS) {
        p->prev_count = now - p->win_start < 2 * DEMAND_WINDOW_MS ? p->win_count : 0;
        p->win_start = now;
        p->win_count = 0;
    }
    p->win_count++;
    uint64_t d = p->win_count > p->prev_count ? p->win_count : p->prev_count;
    return d < p->max ? (size_t)d : p->max;
}

/* Below three quarters of the target (counting what is on its way), ask
 * for the rest in batches of at most PD_ROOM_RESERVE_MAX, up to
 * REFILLS_MAX at once: a refill starts while a quarter of the target is
 * still there to hand out, so the pool rides out a slow answer. */
static void maybe_refill(pd_pool *p, size_t target, uint64_t now)
{
    if (p->closed || (p->count + p->requested) * 4 > target * 3)
        return;
    while (p->refills < REFILLS_MAX && p->count + p->requested < target) {
        size_t want = target - p->count - p->requested;
        if (want > PD_ROOM_RESERVE_MAX)
            want = PD_ROOM_RESERVE_MAX;
        pool_call *c = calloc(1, sizeof(*c));
        if (!c)
            return;
        c->p = p;
        c->gen = p->gen;
        c->n = want;
        c->sent_ms = now;
        if (pd_room_reserve(p->redis, (int)want, PD_POOL_RESERVE_S, on_reserved, c) != PD_OK) {
            free(c);
            return;
        }
        p->refills++;
        p->requested += want;
    }
}

int pd_pool_take(pd_pool *p, char out[PD_ROOM_RESERVED_ID_MAX + 1])
{
    if (p->closed)
        return 0;
    uint64_t now = pd_mono_ms();
    size_t target = demand_target(p, now);
    int got = 0;
    while (p->count && !got) {
        pool_entry *e = &p->ring[p->head];
        p->head = (p->head + 1) % POOL_CAP;
        p->count--;
        /* Too old: left to expire with its reservation. */
        if (now - e->at_ms <= p->max_age_ms) {
            memcpy(out, e->id, sizeof(e->id));
            got = 1;
        }
    }
    if (got) {
        memcpy(p->claims[p->nclaims++], out, PD_ROOM_RESERVED_ID_MAX + 1);
        p->hits++;
        if (p->nclaims == PD_ROOM_CLAIM_MAX)
            pd_pool_flush(p);
        else if (!uv_is_active((uv_handle_t *)&p->timer))
            uv_timer_start(&p->timer, on_timer, PD_POOL_CLAIM_DELAY_MS, 0);
    }
    maybe_refill(p, target, now);
    return got;
}

void pd_pool_reset(pd_pool *p)
{
    p->gen++;
    p->refills = 0;
    p->requested = 0;
    p->head = p->count = 0;
    p->nclaims = 0;
    if (!p->closed)
        uv_timer_stop(&p->timer);
}

size_t pd_pool_pending(const pd_pool *p)
{
    return p->nclaims + p->claiming;
}

size_t pd_pool_size(const pd_pool *p)
{
    return p->count;
}

uint64_t pd_pool_hits(const pd_pool *p)
{
    return p->hits;
}
