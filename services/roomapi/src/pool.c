/* Room ids reserved ahead of get_room (pool.h; docs/architecture.md,
 * "get_room from a pool"). */
#include "pool.h"

#include <stdlib.h>
#include <string.h>

#include "privydrop/pd_common.h"

#define POOL_CAP PD_POOL_MAX
#define DEMAND_WINDOW_MS 250
#define REFILLS_MAX 4 /* reservations on their way at once */
#define RETRY_MS 100   /* after a reservation that failed or found no id: no refill before */

typedef struct pool_entry {
    char id[PD_ROOM_RESERVED_ID_MAX + 1];
    uint64_t at_ms; /* when its reservation was sent (monotonic) */
} pool_entry;

struct pd_pool {
    pd_redis *redis; /* borrowed */
    size_t max;
    uint64_t max_age_ms;
    pool_entry ring[POOL_CAP]; /* oldest at head */
    size_t head, count;
    int refills;      /* reservations of this generation on their way */
    size_t requested; /* ids they asked for */
    unsigned gen;     /* bumped by pd_pool_reset: older answers are ignored */
    int closed;
    uint64_t win_start, win_count, prev_count; /* get_rooms per DEMAND_WINDOW_MS */
    uint64_t hits;
    size_t target;    /* ids to hold, as the last pd_pool_demand found it */
    uint64_t retry_at; /* no refill before (monotonic ms): the last reservation failed */
    pd_pool_ready_fn on_ready; /* after each answer, a reset and the close */
    void *ready_data;
};

/* One reservation, until Redis answers. */
typedef struct pool_call {
    pd_pool *p;
    unsigned gen;
    size_t n;         /* ids asked for */
    uint64_t sent_ms;
} pool_call;

pd_pool *pd_pool_create(pd_redis *redis, const pd_pool_config *cfg)
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
    return p;
}

static void ready(pd_pool *p)
{
    if (p->on_ready)
        p->on_ready(p->ready_data);
}

void pd_pool_on_ready(pd_pool *p, pd_pool_ready_fn fn, void *data)
{
    p->on_ready = fn;
    p->ready_data = data;
}

void pd_pool_close(pd_pool *p)
{
    if (p && !p->closed) {
        p->closed = 1;
        ready(p);
    }
}

int pd_pool_closed(const pd_pool *p)
{
    return p->closed;
}

void pd_pool_free(pd_pool *p)
{
    free(p);
}

static int in_pool(const pd_pool *p, const char *id)
{
    for (size_t i = 0; i < p->count; i++)
        if (strcmp(p->ring[(p->head + i) % POOL_CAP].id, id) == 0)
            return 1;
    return 0;
}

static void on_reserved(const char *const *ids, int n, void *data)
{
    pool_call *c = data;
    pd_pool *p = c->p;
    int ours = c->gen == p->gen && !p->closed;
    if (ours) {
        p->refills--;
        p->requested -= c->n;
        /* Redis answering errors (out of memory, no replicas to write
         * to) or no free id at all: asking again at once would only keep
         * Redis busier, and the get_rooms waiting go their own way now. */
        p->retry_at = n <= 0 ? pd_mono_ms() + RETRY_MS : 0;
        for (int i = 0; i < n && p->count < POOL_CAP; i++) {
            /* Only a Redis that lost the first reservation hands out the
             * same id again; one copy is enough. */
            if (in_pool(p, ids[i]))
                continue;
            pool_entry *e = &p->ring[(p->head + p->count) % POOL_CAP];
            memcpy(e->id, ids[i], strlen(ids[i]) + 1);
            e->at_ms = c->sent_ms;
            p->count++;
        }
    }
    free(c);
    if (ours)
        ready(p);
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
int pd_pool_refill_due(const pd_pool *p)
{
    return !p->closed && (p->count + p->requested) * 4 <= p->target * 3 && p->refills < REFILLS_MAX &&
           p->count + p->requested < p->target && pd_mono_ms() >= p->retry_at;
}

void pd_pool_refill(pd_pool *p)
{
    if (!pd_pool_refill_due(p))
        return;
    uint64_t now = pd_mono_ms();
    size_t target = p->target;
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

/* The oldest id still young enough to hand out, if any. */
static int take_id(pd_pool *p, uint64_t now, char out[PD_ROOM_RESERVED_ID_MAX + 1])
{
    while (p->count) {
        pool_entry *e = &p->ring[p->head];
        p->head = (p->head + 1) % POOL_CAP;
        p->count--;
        /* Too old: left to expire with its reservation. */
        if (now - e->at_ms <= p->max_age_ms) {
            memcpy(out, e->id, sizeof(e->id));
            p->hits++;
            return 1;
        }
    }
    return 0;
}

void pd_pool_demand(pd_pool *p)
{
    if (!p->closed)
        p->target = demand_target(p, pd_mono_ms());
}

int pd_pool_take(pd_pool *p, char out[PD_ROOM_RESERVED_ID_MAX + 1])
{
    return !p->closed && take_id(p, pd_mono_ms(), out);
}

void pd_pool_reset(pd_pool *p)
{
    p->gen++;
    p->refills = 0;
    p->requested = 0;
    p->head = p->count = 0;
    ready(p);
}

size_t pd_pool_size(const pd_pool *p)
{
    return p->count;
}

size_t pd_pool_coming(const pd_pool *p)
{
    return p->closed ? 0 : p->requested;
}

uint64_t pd_pool_hits(const pd_pool *p)
{
    return p->hits;
}
