/* maint.h — a worker's periodic duties, apart from the rooms that need them:
 *   heartbeat  every PD_MAINT_HEARTBEAT_MS: the cluster heartbeat with the
 *              open socket count (pd_cluster_heartbeat), then the owner's
 *              retry of Redis work that failed (its `retry` hook).
 *   reaper     every PD_MAINT_REAP_MS: unbind the sockets of workers whose
 *              heartbeat expired (pd_cluster_reap); each one reaped goes to
 *              the `reaped` hook. Not while draining.
 *   sweep      every PD_MAINT_SWEEP_MS: the owner's `sweep` hook (rooms
 *              left empty are unsubscribed).
 *   pressure   every PD_MAINT_PRESSURE_MS while our subscriber link is
 *              behind: tell the other workers on PD_BUS_PRESSURE_CHANNEL.
 * Each first fires at half its period plus a random jitter (< 1 s), so the
 * workers of a cluster started together do not beat in step. */
#ifndef PD_SIGNAL_MAINT_H
#define PD_SIGNAL_MAINT_H

#include <stddef.h>

#include "worker.h"

#define PD_MAINT_HEARTBEAT_MS 5000
#define PD_MAINT_REAP_MS 5000
#define PD_MAINT_SWEEP_MS 2000
/* While behind on the bus we tell the others this often. */
#define PD_MAINT_PRESSURE_MS 50

typedef struct pd_maint pd_maint;

/* What the owner (the hub) does for its duties; `ud` is given to each. */
typedef struct pd_maint_hooks {
    size_t (*sockets)(void *ud);                             /* open sockets, for the heartbeat */
    void (*retry)(void *ud);                                 /* Redis is up: retry what failed */
    void (*reaped)(void *ud, const char *room, const char *sid); /* a dead worker's socket */
    void (*sweep)(void *ud);                                 /* periodic local cleanup */
} pd_maint_hooks;

/* Starts the timers on w->loop; uses w->redis, w->cfg.worker_id,
 * w->draining and w->m_backpressure. `hooks` is copied. NULL on allocation
 * failure. */
pd_maint *pd_maint_create(pd_worker *w, const pd_maint_hooks *hooks, void *ud);
/* Stop every duty at once (no hook runs after this returns); the memory
 * goes once the loop has closed the timers. */
void pd_maint_free(pd_maint *m);

/* Redis came (back): heartbeat and retry now instead of at the next beat —
 * it may have restarted empty. */
void pd_maint_beat_now(pd_maint *m);

/* The owner's sweep has more left than one pass takes (rooms to restore
 * after Redis came back): run it once in `ms`, then at its period again. */
void pd_maint_sweep_in(pd_maint *m, uint64_t ms);

#endif
