/* probe.h — how late one core let a thread of ours run.
 *
 * A tail in an open-loop run has two kinds of cause: the servers' own
 * work, or the core taken from them (a hypervisor running another guest on
 * it, a stretch with interrupts off). The guest's steal counter shows the
 * first kind of taking only where the hypervisor reports it, and this one
 * may not. So the probe measures it: a thread pinned to the core sleeps
 * SL_PROBE_PERIOD_NS at a time and notes how late each wake-up came. It
 * runs SCHED_FIFO where allowed, so the kernel runs it as soon as it is
 * due, ahead of the servers' processes on that core: a late wake-up then
 * says the core ran nothing of the guest's choosing, whatever the
 * servers were doing. Without SCHED_FIFO (no permission) it says so
 * (sl_probe_fifo), and its lateness includes waiting behind them.
 *
 * Kept: the worst lateness per SL_PROBE_BUCKET_NS of due time, from
 * the start. The thread writes the buckets and nobody reads them until
 * sl_probe_stop has joined it: nothing is locked. */
#ifndef SIGLOAD_PROBE_H
#define SIGLOAD_PROBE_H

#include <stddef.h>
#include <stdint.h>

#define SL_PROBE_PERIOD_NS 1000000ull  /* 1 ms between wake-ups */
#define SL_PROBE_BUCKET_NS 10000000ull /* 10 ms of due time per bucket */
#define SL_PROBE_MAX_S 7200            /* buckets for two hours at most */
#define SL_PROBE_SLACK_S 30            /* kept past warm-up + window: its wind-down */

typedef struct sl_probe sl_probe;

/* Starts the thread on `cpu` (0-based), keeping buckets for `span_s`
 * seconds from now (1 .. SL_PROBE_MAX_S; wake-ups due later are not
 * kept). NULL with a reason in err on failure (no such core, no thread). */
sl_probe *sl_probe_start(int cpu, double span_s, char *err, size_t errlen);

/* Ends the thread and waits for it; the readings stay. Idempotent. */
void sl_probe_stop(sl_probe *p);

/* 1 if the thread runs SCHED_FIFO (known from the start). */
int sl_probe_fifo(const sl_probe *p);

/* After sl_probe_stop: 1 if the probe ran all through [from, to) and kept
 * its buckets; otherwise what the two calls below say of it is nothing. */
int sl_probe_covers(const sl_probe *p, uint64_t from, uint64_t to);

/* After sl_probe_stop: the worst lateness (ns) of the wake-ups due in the
 * buckets that start in [from, to) (to the nearest SL_PROBE_BUCKET_NS;
 * adjacent ranges share no bucket), times on uv_hrtime's clock
 * (CLOCK_MONOTONIC). */
uint64_t sl_probe_worst(const sl_probe *p, uint64_t from, uint64_t to);

/* After sl_probe_stop: how many of those buckets hold a wake-up more
 * than `over` ns late (for lateness over half a bucket: how many such
 * stalls, since a stall restarts the schedule after it). */
size_t sl_probe_count(const sl_probe *p, uint64_t from, uint64_t to, uint64_t over);

/* Stops it if still running, then frees it. NULL is fine. */
void sl_probe_free(sl_probe *p);

#endif
