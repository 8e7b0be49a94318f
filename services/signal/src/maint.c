/* maint.c — a worker's periodic duties (maint.h). */
#include "maint.h"

#include <stdlib.h>

#include "privydrop/pd_bus.h"
#include "privydrop/pd_id.h"
#include "privydrop/pd_room.h"

enum { MAINT_HEARTBEAT, MAINT_REAPER, MAINT_SWEEP, MAINT_PRESSURE, MAINT_NTIMERS };

struct pd_maint {
    pd_worker *w;                      /* loop, Redis, configuration */
    pd_maint_hooks hooks;              /* the owner's side */
    void *ud;                          /* the owner */
    uv_timer_t timers[MAINT_NTIMERS];  /* indexed by the enum above */
    int open_timers;                   /* not yet closed (free-on-close) */
    int took_over;                     /* pd_cluster_take_over sent (once per process) */
};

static void on_reaped(const char *room, const char *sid, void *data);

void pd_maint_beat_now(pd_maint *m)
{
    pd_worker *w = m->w;
    if (!pd_redis_ready(w->redis) || w->retiring)
        return;
    /* First: no join of this run can be in the set yet (joins wait for
     * Redis), so whatever is there was left by an earlier run under this id
     * (docs/architecture.md, "Heartbeats and the reaper"). */
    if (!m->took_over) {
        /* Sent once, never retried: by a later beat, joins of this run
         * could be in the set. */
        m->took_over = 1;
        pd_cluster_take_over(w->redis, w->cfg.worker_id, on_reaped, NULL, m);
    }
    pd_cluster_heartbeat(w->redis, w->cfg.worker_id, (long)m->hooks.sockets(m->ud));
    m->hooks.retry(m->ud);
}

static pd_maint *maint_of(uv_timer_t *t)
{
    return t->data;
}

static void on_heartbeat(uv_timer_t *t)
{
    pd_maint_beat_now(maint_of(t));
}

static void on_reaped(const char *room, const char *sid, void *data)
{
    pd_maint *m = data;
    m->hooks.reaped(m->ud, room, sid);
}

static void on_reaper(uv_timer_t *t)
{
    pd_maint *m = maint_of(t);
    pd_worker *w = m->w;
    if (!pd_redis_ready(w->redis) || w->draining)
        return;
    pd_cluster_reap(w->redis, w->cfg.worker_id, on_reaped, NULL, m);
}

static void on_sweep(uv_timer_t *t)
{
    pd_maint *m = maint_of(t);
    m->hooks.sweep(m->ud);
}

void pd_maint_sweep_in(pd_maint *m, uint64_t ms)
{
    uv_timer_t *t = &m->timers[MAINT_SWEEP];
    if (uv_timer_get_due_in(t) > ms)
        uv_timer_start(t, on_sweep, ms, PD_MAINT_SWEEP_MS);
}

/* Our subscriber link is behind: the others publish faster than we can
 * read, and Redis will drop the link (losing messages) once its output
 * buffer for us passes its limit. Only the publishers can fix that. */
static void on_pressure(uv_timer_t *t)
{
    pd_worker *w = maint_of(t)->w;
    if (!pd_redis_sub_behind(w->redis))
        return;
    pd_metric_add(w->m_backpressure, "bus_behind", 1);
    pd_redis_cmd(w->redis, NULL, NULL, "PUBLISH %s %s", PD_BUS_PRESSURE_CHANNEL, w->cfg.worker_id);
}

pd_maint *pd_maint_create(pd_worker *w, const pd_maint_hooks *hooks, void *ud)
{
    pd_maint *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->w = w;
    m->hooks = *hooks;
    m->ud = ud;
    static const uv_timer_cb cbs[MAINT_NTIMERS] = {on_heartbeat, on_reaper, on_sweep, on_pressure};
    static const uint64_t periods[MAINT_NTIMERS] = {PD_MAINT_HEARTBEAT_MS, PD_MAINT_REAP_MS,
                                                    PD_MAINT_SWEEP_MS, PD_MAINT_PRESSURE_MS};
    unsigned jitter = 0;
    pd_random_bytes(&jitter, sizeof(jitter));
    for (int i = 0; i < MAINT_NTIMERS; i++) {
        uv_timer_init(w->loop, &m->timers[i]);
        m->timers[i].data = m;
        uv_timer_start(&m->timers[i], cbs[i], periods[i] / 2 + jitter % 1000, periods[i]);
    }
    return m;
}

static void on_timer_closed(uv_handle_t *t)
{
    pd_maint *m = t->data;
    if (--m->open_timers == 0)
        free(m);
}

void pd_maint_free(pd_maint *m)
{
    if (!m)
        return;
    m->open_timers = MAINT_NTIMERS;
    for (int i = 0; i < MAINT_NTIMERS; i++)
        uv_close((uv_handle_t *)&m->timers[i], on_timer_closed);
}
