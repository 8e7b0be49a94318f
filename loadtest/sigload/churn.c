/* churn.c — what connecting and leaving costs the workers.
 *
 * --conns pairs, each cycling on its own: both peers connect (with --cross
 * to two different workers), join a fresh room's id, the first offers, and
 * as soon as the offer has arrived both close. A cycle's latency is from
 * its connects to the offer's arrival; the rate is cycles completed inside
 * the measured window divided by its length.
 *
 * Each slot is a pair (2i, 2i+1). phase 0 warmup, 1 measured, 2 winding
 * down, 3 done. */
#include <stdio.h>
#include <string.h>

#include "app.h"

static void churn_cycle_start(app *a, int slot)
{
    sl_conn *x = &a->conns[2 * slot], *y = &a->conns[2 * slot + 1];
    x->t_start = y->t_start = uv_hrtime();
    x->joined = y->joined = 0;
    sl_conn_start(x);
    sl_conn_start(y);
}

static void churn_end_cycle(app *a, sl_conn *c, int ok)
{
    sl_conn *x = (c->index & 1) ? c->peer : c;
    if (x->joined == 3) /* already ended */
        return;
    uint64_t now = uv_hrtime();
    if (ok) {
        a->cycles++;
        if (a->measuring) {
            a->ok_window++;
            sl_hist_add(&a->hist, now - x->t_start);
        }
    } else {
        a->cycles_failed++;
    }
    x->joined = 3;
    x->peer->joined = 3;
    sl_conn_close(x);
    sl_conn_close(x->peer);
}

static void churn_ready(sl_conn *c)
{
    app_send_join(app_of(c->run), c);
}

static void churn_event(sl_conn *c, const char *name, size_t nl, const char *pkt, size_t len)
{
    app *a = app_of(c->run);
    if (nl == 12 && memcmp(name, "joinResponse", 12) == 0) {
        if (!app_join_ok(pkt, len)) {
            churn_end_cycle(a, c, 0);
            return;
        }
        c->joined = 1;
        if (c->peer->joined == 1) {
            sl_conn *x = (c->index & 1) ? c->peer : c;
            app_send_sdp(x, "offer");
        }
        return;
    }
    if (nl == 5 && memcmp(name, "offer", 5) == 0)
        churn_end_cycle(a, c, 1);
}

static void churn_closed(sl_conn *c, int err)
{
    app *a = app_of(c->run);
    (void)err;
    if (c->joined != 3)
        churn_end_cycle(a, c, 0);
    if (c->peer->state != SL_C_IDLE)
        return;
    /* Both halves closed: next cycle. */
    if (a->phase < 2)
        churn_cycle_start(a, c->index / 2);
}

static const sl_mode_ops CHURN_OPS = {churn_ready, churn_event, churn_closed};

static void churn_start(app *a)
{
    uint64_t now = uv_hrtime();
    a->t_measure = now + (uint64_t)(a->o.warmup * 1e9);
    a->t_end = a->t_measure + (uint64_t)(a->o.duration * 1e9);
    a->phase = 0;
    a->started = 1;
    for (int i = 0; i < a->nconns / 2; i++)
        churn_cycle_start(a, i);
}

static void churn_setup(app *a)
{
    a->run.ops = &CHURN_OPS;
    app_conns(a, 2 * a->o.conns, 0);
    app_create_rooms(a, a->o.conns, churn_start);
}

static void churn_tick(app *a)
{
    uint64_t now = uv_hrtime();
    if (a->phase == 0 && now >= a->t_measure) {
        app_measure_begin(a);
        a->t_end = a->t_measure + (uint64_t)(a->o.duration * 1e9);
        a->phase = 1;
    } else if (a->phase == 1 && now >= a->t_end) {
        app_measure_end(a);
        a->phase = 2;
        a->t0 = now;
    } else if (a->phase == 2) {
        int busy = 0;
        for (int i = 0; i < a->nconns; i++)
            busy += a->conns[i].state != SL_C_IDLE;
        if (!busy || now - a->t0 > 3000000000ull) {
            a->phase = 3;
            app_finish(a);
        }
    }
}

static void churn_progress(app *a)
{
    app_say(a, "  cycles %llu  failed %llu\n", (unsigned long long)a->cycles, (unsigned long long)a->cycles_failed);
}

static const sl_hist *churn_report(app *a, sl_sbuf *j, const sl_measured *m)
{
    double rate = m->window_s > 0 ? (double)a->ok_window / m->window_s : 0;
    sl_sb(j, "\"churn\":{\"cycles\":%llu,\"failed\":%llu,\"cycles_window\":%llu,\"per_s\":%.1f,"
             "\"per_server_cpu_s\":%.1f},",
          (unsigned long long)a->cycles, (unsigned long long)a->cycles_failed, (unsigned long long)a->ok_window, rate,
          m->cpu_s > 0 ? (double)a->ok_window / m->cpu_s : 0);
    printf("  %llu cycles (%llu failed); %.0f/s in the window\n", (unsigned long long)a->cycles,
           (unsigned long long)a->cycles_failed, rate);
    return &a->hist;
}

static int churn_failed(const app *a)
{
    return a->cycles == 0;
}

const sl_scenario SL_CHURN = {
    .name = "churn",
    .setup = churn_setup,
    .tick = churn_tick,
    .progress = churn_progress,
    .report = churn_report,
    .failed = churn_failed,
};
