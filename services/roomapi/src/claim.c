/* The claims of pooled ids (claim.h; docs/architecture.md, "get_room from
 * a pool"). */
#include "claim.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "privydrop/pd_common.h"

typedef struct claim_entry {
    char id[PD_ROOM_RESERVED_ID_MAX + 1];
    uint64_t at_ms; /* when it was handed out (monotonic) */
} claim_entry;

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

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
    /* Redis's clock against ours (pd_mono_ms), from the round trip whose
     * time was least in doubt: Redis's time sits somewhere in the trip, so
     * the estimate is off by half of it at most. A newer trip replaces it
     * when shorter than the kept one plus 1 ms per second of its age
     * (clocks drift). A trip that waited behind a slow command is long and
     * ignored: that is why the hand-out's time is not simply Redis's time
     * when the claim runs. */
    int have_offset;
    int64_t offset_ms;
    uint64_t offset_rtt_us, offset_at_ms;
};

/* One `TIME` round trip at link-up, so the first claims carry an estimate. */
typedef struct clock_call {
    pd_claimq *q;
    uint64_t sent_us;
} clock_call;

/* One call to Redis, until it answers. */
typedef struct claim_call {
    pd_claimq *q;
    size_t n;
    uint64_t sent_us;
    claim_entry e[PD_ROOM_CLAIM_MAX];
} claim_call;

static void clock_sample(pd_claimq *q, uint64_t sent_us, uint64_t recv_us, long long redis_ms)
{
    if (redis_ms <= 0 || recv_us < sent_us)
        return;
    uint64_t rtt = recv_us - sent_us, now = pd_mono_ms();
    uint64_t kept = q->offset_rtt_us + (now - q->offset_at_ms); /* + 1 ms (1000 us) per s (1000 ms) */
    if (q->have_offset && rtt > kept)
        return;
    q->have_offset = 1;
    q->offset_ms = (int64_t)redis_ms - (int64_t)((sent_us + recv_us) / 2000);
    q->offset_rtt_us = rtt;
    q->offset_at_ms = now;
}

static void on_clock(redisReply *rep, void *data)
{
    clock_call *c = data;
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 && rep->element[0]->type == REDIS_REPLY_STRING &&
        rep->element[1]->type == REDIS_REPLY_STRING && !c->q->closed) {
        long long ms = atoll(rep->element[0]->str) * 1000 + atoll(rep->element[1]->str) / 1000;
        clock_sample(c->q, c->sent_us, mono_us(), ms);
    }
    free(c);
}

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

static void on_claimed(const pd_room_claimed *res, void *data)
{
    claim_call *c = data;
    pd_claimq *q = c->q;
    long claimed = res->claimed, created = res->created;
    q->inflight -= c->n;
    q->calls--;
    if (claimed >= 0)
        clock_sample(q, c->sent_us, mono_us(), res->redis_ms);
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
        pd_room_claim_id ids[PD_ROOM_CLAIM_MAX];
        while (q->count && c->n < PD_ROOM_CLAIM_MAX) {
            claim_entry *e = &q->ring[q->head];
            q->head = (q->head + 1) % PD_CLAIMQ_MAX;
            q->count--;
            if (now - e->at_ms >= PD_CLAIMQ_KEEP_MS) {
                q->st.lost++; /* its reservation is over: its client gave up long ago */
                continue;
            }
            c->e[c->n] = *e;
            ids[c->n].id = pd_slice_cstr(c->e[c->n].id);
            ids[c->n].handed_ms = q->have_offset ? (uint64_t)((int64_t)e->at_ms + q->offset_ms) : 0;
            ids[c->n].age_ms = now - e->at_ms;
            c->n++;
        }
        if (c->n == 0) {
            free(c);
            return;
        }
        c->sent_us = mono_us();
        if (pd_room_claim(q->redis, ids, c->n, on_claimed, c) != PD_OK) {
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
    if (!ready)
        q->have_offset = 0; /* the Redis that answers next may be another host, another clock */
    if (ready) {
        uv_timer_stop(&q->retry);
        clock_call *c = q->closed ? NULL : malloc(sizeof(*c));
        if (c) {
            c->q = q;
            c->sent_us = mono_us();
            if (pd_redis_cmd(q->redis, on_clock, c, "TIME") != PD_OK)
                free(c);
        }
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
