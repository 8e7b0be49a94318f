/* pd_ratelimit.h — token buckets, alone (one per socket) or keyed by client
 * address with a bounded number of keys. In-process limits that protect one
 * instance; the cluster-wide join limit lives in Redis (pd_room.h).
 * Not thread-safe (one loop per process). */
#ifndef PD_RATELIMIT_H
#define PD_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "privydrop/pd_common.h"

typedef struct pd_bucket {
    double tokens;     /* available now */
    uint64_t last_ms;  /* last refill (monotonic ms); 0 = never used */
} pd_bucket;

/* Take one token from a bucket refilled at `rate` per second up to `burst`.
 * A new (zeroed) bucket starts full. 1 if allowed. */
int pd_bucket_take(pd_bucket *b, double rate, double burst, uint64_t now_ms);

typedef struct pd_ratelimit pd_ratelimit;

/* At most max_keys addresses are tracked; when full, buckets idle long
 * enough to be full again are evicted, and if none are, the new key is
 * refused (fail closed: a flood of addresses cannot buy fresh buckets). */
pd_ratelimit *pd_ratelimit_create(double rate, double burst, size_t max_keys);
void pd_ratelimit_free(pd_ratelimit *rl);

/* 1 if `key` may act now (and a token was taken), 0 if limited. */
int pd_ratelimit_take(pd_ratelimit *rl, pd_slice key, uint64_t now_ms);

size_t pd_ratelimit_keys(const pd_ratelimit *rl);

#endif
