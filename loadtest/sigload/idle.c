/* idle.c — what a held socket costs the servers.
 *
 * --conns sockets connect at --connect-rate, join rooms of two (or not,
 * --no-join) and then only answer Engine.IO pings for --duration seconds.
 * Two seconds after the last join, when everything is quiet, the servers'
 * RSS (--pids) and the kernel's TCP memory are read: the growth divided by
 * the sockets joined is the memory per socket. The connect+join time of
 * each socket is the latency shown.
 *
 * phase 0 ramp, 1 settle, 2 hold, 3 closing */
#include <stdio.h>
#include <string.h>

#include "app.h"

static void idle_ready(sl_conn *c)
{
    app *a = app_of(c->run);
    if (a->o.join) {
        app_send_join(a, c);
        return;
    }
    c->joined = 1;
    a->joined++;
    sl_hist_add(&a->hist_connect, uv_hrtime() - c->t_start);
    app_handshake_over(a, 1);
}

static void idle_event(sl_conn *c, const char *name, size_t nl, const char *pkt, size_t len)
{
    app *a = app_of(c->run);
    if (nl == 12 && memcmp(name, "joinResponse", 12) == 0 && !c->joined) {
        if (app_join_ok(pkt, len)) {
            c->joined = 1;
            a->joined++;
            sl_hist_add(&a->hist_connect, uv_hrtime() - c->t_start);
            app_handshake_over(a, 1);
        } else {
            app_handshake_over(a, 0);
            c->joined = -1;
            sl_conn_close(c);
        }
    }
}

static void idle_closed(sl_conn *c, int err)
{
    app *a = app_of(c->run);
    (void)err;
    if (c->joined == 1) {
        if (a->phase < 3) {
            a->dropped++;
            a->joined--;
        }
    } else if (c->joined == 0) {
        app_handshake_over(a, 0);
    }
    c->joined = -1;
}

static const sl_mode_ops IDLE_OPS = {idle_ready, idle_event, idle_closed};

static void idle_start(app *a)
{
    a->ramp_t0 = uv_hrtime();
    a->phase = 0;
    a->started = 1;
}

static void idle_setup(app *a)
{
    a->run.ops = &IDLE_OPS;
    app_conns(a, a->o.conns, 1);
    app_create_rooms(a, a->o.join ? (a->o.conns + 1) / 2 : 0, idle_start);
}

static void idle_tick(app *a)
{
    uint64_t now = uv_hrtime();
    if (a->phase == 0) {
        app_ramp_step(a);
        if (a->next_conn == a->nconns && a->handshakes == 0) {
            a->ramp_done = 1;
            a->ramp_s = (double)(now - a->ramp_t0) / 1e9;
            /* bench/run.sh waits for this line ("settling") and reads the count from it. */
            app_say(a, "idle: %llu joined, %llu failed in %.1fs; settling\n", (unsigned long long)a->joined,
                    (unsigned long long)a->join_failed, a->ramp_s);
            a->phase = 1;
            a->t0 = now;
        }
    } else if (a->phase == 1 && now - a->t0 >= 2000000000ull) {
        /* Memory once everything is connected and quiet. */
        sl_sockstat(&a->sock_mem, &a->sock_inuse);
        app_measure_begin(a);
        a->phase = 2;
        a->t_end = a->t_measure + (uint64_t)(a->o.duration * 1e9);
    } else if (a->phase == 2 && now >= a->t_end) {
        app_measure_end(a);
        a->open_at_end = a->joined;
        a->phase = 3;
        app_finish(a);
    }
}

static void idle_progress(app *a)
{
    app_say(a, "  joined %llu  failed %llu  dropped %llu  pings %llu\n", (unsigned long long)a->joined,
            (unsigned long long)a->join_failed, (unsigned long long)a->dropped, (unsigned long long)a->run.pings);
}

static const sl_hist *idle_report(app *a, sl_sbuf *j, const sl_measured *m)
{
    /* Interrupted (SIGINT) before the hold ended: what was open then. */
    uint64_t open = a->open_at_end ? a->open_at_end : a->joined;
    double per = a->joined ? (double)(m->rss0 - m->rss_base) * 1024.0 / (double)a->joined : 0;
    long kmem = a->sock_mem - a->sock_mem_base;
    sl_sb(j, "\"idle\":{\"joined\":%llu,\"failed\":%llu,\"dropped\":%llu,\"open_at_end\":%llu,\"ramp_s\":%.2f,"
             "\"rss_bytes_per_conn\":%.1f,\"kernel_tcp_mem_bytes\":%ld,\"kernel_tcp_mem_per_conn\":%.1f,"
             "\"tcp_sockets\":%ld,",
          (unsigned long long)a->joined, (unsigned long long)a->join_failed, (unsigned long long)a->dropped,
          (unsigned long long)open, a->ramp_s, per, kmem, a->joined ? (double)kmem / (double)a->joined : 0,
          a->sock_inuse - a->sock_inuse_base);
    sl_sb_hist(j, "connect_join", &a->hist_connect);
    sl_sb(j, "},");
    printf("  %llu sockets joined (%llu failed, %llu dropped) in %.1fs; %llu still open after %.0fs\n",
           (unsigned long long)a->joined, (unsigned long long)a->join_failed, (unsigned long long)a->dropped,
           a->ramp_s, (unsigned long long)open, m->window_s);
    if (a->o.npids)
        printf("  server RSS %ld kB at start, %ld kB joined: %.0f bytes per socket\n", m->rss_base, m->rss0, per);
    printf("  kernel TCP buffers (both ends): %ld kB, %.0f bytes per socket\n", kmem / 1024,
           a->joined ? (double)kmem / (double)a->joined : 0);
    return &a->hist_connect;
}

static int idle_failed(const app *a)
{
    return a->joined == 0;
}

const sl_scenario SL_IDLE = {
    .name = "idle",
    .setup = idle_setup,
    .tick = idle_tick,
    .progress = idle_progress,
    .report = idle_report,
    .failed = idle_failed,
};
