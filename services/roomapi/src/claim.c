/* The claims of pooled ids (claim.h; docs/architecture.md, "get_room from
 * a pool"). */
#include "claim.h"

#include <stdlib.h>
#include <string.h>

#include "privydrop/pd_common.h"

typedef struct claim_entry {
    char id[PD_ROOM_RESERVED_ID_MAX + 1];
    uint64_t at_ms; /* when it was handed out (monotonic) */
} claim_entry;

struct pd_claimq {
    pd_redis *redis; /* borrowed */
    pd_claimq_lost_fn on_lost;
    void *data;
    uv_check_t turn;   /* sends what this loop turn gathered */
    uv_timer_t later;  /* sends once PD_CLAIMQ_BATCH_MS have passed since the last call */
    uv_timer_t retry;  /* after a failed call */
    uint64_t sent_ms;  /* when the last call went (monotonic) */
    claim_entry ring[PD_CLAIMQ_MAX]; /* waiting, oldest at head */
    size_t head, count;
    size_t inflight;   /* ids in calls Redis has not answered */
    int calls;         /* those calls */
    int closed;
    pd_claimq_stats st;
};

/* One call to Redis, until it answers. */
typedef struct claim_call {
    pd_claimq *q;
    size_t n;
    claim_entry e[PD_ROOM_CLAIM_MAX];
} claim_call;

static void ring_put(pd_claimq *q, const claim_entry *e)
{
    if (q->count + q->inflight >= PD_CLAIMQ_MAX) {
        q->st.lost++;
        return;
    }
    q->ring[(q->head + q->count) % PD_CLAIMQ_MAX] = *e;
    q->count++;
}

static void on_retry(uv_timer_t *t);

static void retry_later(pd_claimq *q)
{
    if (!q->closed && !uv_is_active((uv_handle_t *)&q->retry))
        uv_timer_start(&q->retry, on_retry, PD_CLAIMQ_RETRY_MS, 0);
}

static void schedule(pd_claimq *q);

static void on_claimed(long claimed, long created, void *data)
{
    claim_call *c = data;
    pd_claimq *q = c->q;
    q->inflight -= c->n;
    q->calls--;
    if (claimed < 0) {
        /* Any of them may have run: all go again (a repeat is harmless). */
        if (q->closed) {
            q->st.lost += c->n;
        } else {
            for (size_t i = 0; i < c->n; i++)
                ring_put(q, &c->e[i]);
            retry_later(q);
        }
    } else {
        q->st.claimed += (uint64_t)claimed;
        q->st.created += (uint64_t)created;
        long rest = (long)c->n - claimed - created;
        q->st.taken += rest > 0 ? (uint64_t)rest : 0;
        if ((size_t)claimed < c->n && !q->closed && q->on_lost)
            q->on_lost(q->data);
    }
    free(c);
    schedule(q); /* what gathered while Redis worked on these */
}

/* Everything waiting, in calls of up to PD_ROOM_CLAIM_MAX ids; `now` even
 * while calls are on their way. */
static void flush_if(pd_claimq *q, int now_anyway)
{
    uv_check_stop(&q->turn);
    uv_timer_stop(&q->later);
    if (q->closed || (q->calls && !now_anyway) || !pd_redis_ready(q->redis) ||
        uv_is_active((uv_handle_t *)&q->retry))
        return;
    uint64_t now = pd_mono_ms();
    q->sent_ms = now;
    while (q->count) {
        claim_call *c = malloc(sizeof(*c));
        if (!c) {
            retry_later(q);
            return;
        }
        c->q = q;
        c->n = 0;
        pd_slice ids[PD_ROOM_CLAIM_MAX];
        uint64_t ages[PD_ROOM_CLAIM_MAX];
        while (q->count && c->n < PD_ROOM_CLAIM_MAX) {
            claim_entry *e = &q->ring[q->head];
            q->head = (q->head + 1) % PD_CLAIMQ_MAX;
            q->count--;
            if (now - e->at_ms >= PD_CLAIMQ_KEEP_MS) {
                q->st.lost++; /* its reservation is over: its client gave up long ago */
                continue;
            }
            c->e[c->n] = *e;
            ids[c->n] = pd_slice_cstr(c->e[c->n].id);
            ages[c->n] = now - e->at_ms;
            c->n++;
        }
        if (c->n == 0) {
            free(c);
            return;
        }
        if (pd_room_claim(q->redis, ids, ages, c->n, on_claimed, c) != PD_OK) {
            for (size_t i = 0; i < c->n; i++)
                ring_put(q, &c->e[i]);
            free(c);
            retry_later(q);
            return;
        }
        q->inflight += c->n;
        q->calls++;
    }
}

static void flush(pd_claimq *q)
{
    flush_if(q, 0);
}

static void on_turn(uv_check_t *h)
{
    flush(h->data);
}

static void on_later(uv_timer_t *t)
{
    flush(t->data);
}

void pd_claimq_flush_now(pd_claimq *q)
{
    if (q && q->count)
        flush_if(q, 1);
}

/* When what waits goes: at the end of this loop turn if no call went in
 * the last PD_CLAIMQ_BATCH_MS, else once they have passed; never while a
 * call is on its way (its answer schedules the next), after a failure
 * (the retry does), or with the link down (its return does). At light
 * load each claim goes at the end of its turn; under load a call carries
 * what PD_CLAIMQ_BATCH_MS gathered, and Redis runs one script, with one
 * read and one write, for many claims. */
static void schedule(pd_claimq *q)
{
    if (q->closed || !q->count || q->calls || !pd_redis_ready(q->redis) ||
        uv_is_active((uv_handle_t *)&q->retry) || uv_is_active((uv_handle_t *)&q->turn) ||
        uv_is_active((uv_handle_t *)&q->later))
        return;
    uint64_t now = pd_mono_ms(), due = q->sent_ms + PD_CLAIMQ_BATCH_MS;
    if (now >= due)
        uv_check_start(&q->turn, on_turn);
    else
        uv_timer_start(&q->later, on_later, due - now, 0);
}

static void on_retry(uv_timer_t *t)
{
    schedule(t->data);
}

pd_claimq *pd_claimq_create(uv_loop_t *loop, pd_redis *redis, pd_claimq_lost_fn on_lost, void *data)
{
    pd_claimq *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->redis = redis;
    q->on_lost = on_lost;
    q->data = data;
    uv_check_init(loop, &q->turn);
    uv_timer_init(loop, &q->later);
    uv_timer_init(loop, &q->retry);
    q->turn.data = q->later.data = q->retry.data = q;
    return q;
}

int pd_claimq_has_room(const pd_claimq *q)
{
    return !q->closed && q->count + q->inflight < PD_CLAIMQ_MAX;
}

int pd_claimq_push(pd_claimq *q, const char *id)
{
    size_t len = strlen(id);
    if (!pd_claimq_has_room(q) || len == 0 || len > PD_ROOM_RESERVED_ID_MAX)
        return PD_ERR;
    claim_entry e;
    memcpy(e.id, id, len + 1);
    e.at_ms = pd_mono_ms();
    ring_put(q, &e);
    schedule(q);
    return PD_OK;
}

void pd_claimq_on_redis_state(pd_claimq *q, int ready)
{
    if (ready) {
        uv_timer_stop(&q->retry);
        schedule(q);
    }
}

void pd_claimq_close(pd_claimq *q)
{
    if (!q || q->closed)
        return;
    q->closed = 1;
    q->st.lost += q->count;
    q->count = 0;
    uv_close((uv_handle_t *)&q->turn, NULL);
    uv_close((uv_handle_t *)&q->later, NULL);
    uv_close((uv_handle_t *)&q->retry, NULL);
}

void pd_claimq_free(pd_claimq *q)
{
    free(q);
}

void pd_claimq_get_stats(const pd_claimq *q, pd_claimq_stats *out)
{
    *out = q->st;
    out->pending = q->count + q->inflight;
}
