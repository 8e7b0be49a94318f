/* How late one core let a thread of ours run (probe.h). */
#include "probe.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct sl_probe {
    pthread_t thread;
    int cpu;
    int running;          /* the thread exists and has not been joined */
    int fifo;             /* set before the thread exists: its policy came with its attributes */
    atomic_int stop;
    uint64_t t0;          /* due time of bucket 0 (ns, CLOCK_MONOTONIC) */
    uint64_t t_stop;      /* when sl_probe_stop ended it; 0 while running */
    size_t nbuckets;
    uint32_t *worst_us;   /* per bucket: the latest wake-up, in µs (saturating) */
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void note(sl_probe *p, uint64_t due, uint64_t late)
{
    if (due < p->t0)
        return;
    uint64_t b = (due - p->t0) / SL_PROBE_BUCKET_NS;
    if (b >= p->nbuckets)
        return;
    uint64_t us = late / 1000u;
    uint32_t v = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    if (v > p->worst_us[b])
        p->worst_us[b] = v;
}

static void *probe_main(void *arg)
{
    sl_probe *p = arg;
    uint64_t due = mono_ns() + SL_PROBE_PERIOD_NS;
    while (!atomic_load_explicit(&p->stop, memory_order_relaxed)) {
        struct timespec ts = {.tv_sec = (time_t)(due / 1000000000ull), .tv_nsec = (long)(due % 1000000000ull)};
        int rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        if (rc == EINTR)
            continue;
        uint64_t now = mono_ns();
        note(p, due, now > due ? now - due : 0);
        /* After a stall the schedule restarts from now: the wake-ups it
         * swallowed are one stall, not a run of late ones. */
        due += SL_PROBE_PERIOD_NS;
        if (due <= now)
            due = now + SL_PROBE_PERIOD_NS;
    }
    return NULL;
}

sl_probe *sl_probe_start(int cpu, double span_s, char *err, size_t errlen)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpu < 0 || cpu >= ncpu || cpu >= CPU_SETSIZE) {
        snprintf(err, errlen, "no core %d (cores online: %ld)", cpu, ncpu);
        return NULL;
    }
    if (!(span_s >= 1) || span_s > SL_PROBE_MAX_S) {
        snprintf(err, errlen, "span %.0f s out of range", span_s);
        return NULL;
    }
    sl_probe *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->cpu = cpu;
    p->nbuckets = (size_t)(span_s * 1e9 / (double)SL_PROBE_BUCKET_NS) + 1;
    p->worst_us = calloc(p->nbuckets, sizeof(*p->worst_us));
    if (!p->worst_us) {
        free(p);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&p->stop, 0);
    p->t0 = mono_ns();
    /* Pinned and SCHED_FIFO before it starts, so not one wake-up happens
     * elsewhere or at another priority, and whether it is FIFO is known
     * here, not read from a running thread. Without the permission for
     * FIFO (EPERM) it starts with the default policy instead. */
    int rc = EPERM;
    for (int fifo = 1; fifo >= 0 && rc == EPERM; fifo--) {
        pthread_attr_t attr;
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        rc = pthread_attr_init(&attr);
        if (rc != 0)
            break;
        rc = pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
        if (rc == 0 && fifo) {
            struct sched_param sp = {.sched_priority = 1};
            rc = pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
            if (rc == 0)
                rc = pthread_attr_setschedpolicy(&attr, SCHED_FIFO);
            if (rc == 0)
                rc = pthread_attr_setschedparam(&attr, &sp);
        }
        if (rc == 0) {
            rc = pthread_create(&p->thread, &attr, probe_main, p);
            p->fifo = fifo;
        }
        pthread_attr_destroy(&attr);
    }
    if (rc != 0) {
        snprintf(err, errlen, "thread on core %d: %s", cpu, strerror(rc));
        free(p->worst_us);
        free(p);
        return NULL;
    }
    p->running = 1;
    return p;
}

void sl_probe_stop(sl_probe *p)
{
    if (!p || !p->running)
        return;
    atomic_store(&p->stop, 1);
    pthread_join(p->thread, NULL);
    p->running = 0;
    p->t_stop = mono_ns();
}

int sl_probe_covers(const sl_probe *p, uint64_t from, uint64_t to)
{
    return p->t_stop && from >= p->t0 && to <= p->t_stop &&
           to <= p->t0 + (uint64_t)p->nbuckets * SL_PROBE_BUCKET_NS;
}

int sl_probe_fifo(const sl_probe *p)
{
    return p->fifo;
}

/* The buckets that start in [from, to): each bucket belongs to exactly one
 * of a run of adjacent ranges, so one stall shows in one of them. */
static void span(const sl_probe *p, uint64_t from, uint64_t to, size_t *b0, size_t *b1)
{
    from = from > p->t0 ? from - p->t0 : 0;
    to = to > p->t0 ? to - p->t0 : 0;
    *b0 = (size_t)((from + SL_PROBE_BUCKET_NS - 1) / SL_PROBE_BUCKET_NS);
    *b1 = (size_t)((to + SL_PROBE_BUCKET_NS - 1) / SL_PROBE_BUCKET_NS);
    if (*b1 > p->nbuckets)
        *b1 = p->nbuckets;
}

uint64_t sl_probe_worst(const sl_probe *p, uint64_t from, uint64_t to)
{
    size_t b0, b1;
    uint64_t w = 0;
    span(p, from, to, &b0, &b1);
    for (size_t b = b0; b < b1; b++)
        if (p->worst_us[b] > w)
            w = p->worst_us[b];
    return w * 1000u;
}

size_t sl_probe_count(const sl_probe *p, uint64_t from, uint64_t to, uint64_t over)
{
    size_t b0, b1, n = 0;
    span(p, from, to, &b0, &b1);
    for (size_t b = b0; b < b1; b++)
        if ((uint64_t)p->worst_us[b] * 1000u > over)
            n++;
    return n;
}

void sl_probe_free(sl_probe *p)
{
    if (!p)
        return;
    sl_probe_stop(p);
    free(p->worst_us);
    free(p);
}
