#include "privydrop/pd_ratelimit.h"

#include <stdlib.h>

#include "privydrop/pd_map.h"

int pd_bucket_take(pd_bucket *b, double rate, double burst, uint64_t now_ms)
{
    if (b->last_ms == 0) {
        b->tokens = burst;
    } else if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * rate / 1000.0;
        if (b->tokens > burst)
            b->tokens = burst;
    }
    b->last_ms = now_ms ? now_ms : 1;
    if (b->tokens < 1.0)
        return 0;
    b->tokens -= 1.0;
    return 1;
}

struct pd_ratelimit {
    pd_map *buckets;   /* key → pd_bucket* */
    double rate;       /* tokens per second */
    double burst;      /* bucket size */
    size_t max_keys;   /* bound on tracked keys */
};

pd_ratelimit *pd_ratelimit_create(double rate, double burst, size_t max_keys)
{
    pd_ratelimit *rl = calloc(1, sizeof(*rl));
    if (!rl)
        return NULL;
    rl->buckets = pd_map_create();
    if (!rl->buckets) {
        free(rl);
        return NULL;
    }
    rl->rate = rate;
    rl->burst = burst;
    rl->max_keys = max_keys ? max_keys : 1;
    return rl;
}

static int free_bucket(pd_slice key, void *value, void *data)
{
    (void)key;
    (void)data;
    free(value);
    return 0;
}

void pd_ratelimit_free(pd_ratelimit *rl)
{
    if (!rl)
        return;
    pd_map_foreach(rl->buckets, free_bucket, NULL);
    pd_map_free(rl->buckets);
    free(rl);
}

typedef struct evict_ctx {
    pd_ratelimit *rl;
    uint64_t now;
    char keys[64][PD_ID_MAX * 2];
    size_t lens[64];
    size_t n;
} evict_ctx;

static int find_full(pd_slice key, void *value, void *data)
{
    evict_ctx *c = data;
    pd_bucket *b = value;
    double refill = (double)(c->now - b->last_ms) * c->rl->rate / 1000.0;
    if (b->tokens + refill >= c->rl->burst && key.len <= sizeof(c->keys[0])) {
        memcpy(c->keys[c->n], key.base, key.len);
        c->lens[c->n] = key.len;
        if (++c->n == PD_ARRAY_LEN(c->keys))
            return 1;
    }
    return 0;
}

int pd_ratelimit_take(pd_ratelimit *rl, pd_slice key, uint64_t now_ms)
{
    pd_bucket *b = pd_map_get(rl->buckets, key);
    if (!b) {
        if (pd_map_count(rl->buckets) >= rl->max_keys) {
            /* A bucket that has refilled completely holds no information. */
            evict_ctx *c = calloc(1, sizeof(*c));
            if (!c)
                return 0;
            c->rl = rl;
            c->now = now_ms;
            pd_map_foreach(rl->buckets, find_full, c);
            for (size_t i = 0; i < c->n; i++)
                free(pd_map_del(rl->buckets, pd_slice_make(c->keys[i], c->lens[i])));
            free(c);
            if (pd_map_count(rl->buckets) >= rl->max_keys)
                return 0;
        }
        b = calloc(1, sizeof(*b));
        if (!b || pd_map_put(rl->buckets, key, b) != PD_OK) {
            free(b);
            return 0;
        }
    }
    return pd_bucket_take(b, rl->rate, rl->burst, now_ms);
}

size_t pd_ratelimit_keys(const pd_ratelimit *rl)
{
    return pd_map_count(rl->buckets);
}
