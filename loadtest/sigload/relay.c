/* relay.c — how many signals the workers relay, how soon, and where every
 * one of them went.
 *
 * --rooms rooms of two peers (both on one worker, or with --cross on two,
 * so that every signal goes through Redis) join and exchange offer/answer;
 * then ICE candidates flow both ways. Closed loop (--rate 0): each peer
 * keeps --window in flight and sends one more for each it receives, which
 * gives the maximum. Open loop (--rate R): R per second in all, spread over
 * the rooms and alternating direction, each sent at its own due time
 * (the generator polls instead of sleeping), which gives latency at a
 * chosen load.
 *
 * Each candidate carries its due time ("t", this process's hrtime) and its
 * sender's sequence number ("s"); the receiver is the other peer, in this
 * process. Latency is arrival minus due time, so time a signal waited in
 * the generator counts too (shown apart as the send lag). One sender's
 * signals to its peer travel one ordered path (TCP, worker, Redis channel,
 * worker, TCP): a sequence number skipped is a signal lost, one seen again
 * a duplicate.
 *
 * After --warmup the measured window lasts --duration s. Then sending stops
 * and the drain reads on until every signal sent has arrived or is known
 * lost, or --drain s have passed. Each signal sent in the window is then
 * in time (arrived inside the window: its latency is in the histogram),
 * late (arrived during the drain) or lost (never arrived). The rate is the
 * signals that arrived inside the window divided by its length, the same
 * span as the servers' CPU reading.
 *
 * phase 0 ramp+handshake, 1 signalling (warmup then measured), 2 drain, 3 done */
#include <stdio.h>
#include <string.h>

#include "app.h"

static void send_candidate(app *a, sl_conn *from, uint64_t t)
{
    if (a->o.signals && a->sent >= a->o.signals)
        return;
    char pkt[512];
    int n = snprintf(pkt, sizeof(pkt),
                     "42[\"ice-candidate\",{\"peerId\":\"%s\",\"candidate\":{\"candidate\":\"%s\","
                     "\"sdpMid\":\"0\",\"sdpMLineIndex\":0,\"usernameFragment\":\"EsAw\",\"t\":%llu,\"s\":%llu},"
                     "\"from\":\"%s\"}]",
                     from->peer->sid, APP_CANDIDATE, (unsigned long long)t, (unsigned long long)from->sent,
                     from->sid);
    sl_conn_send(from, pkt, (size_t)n);
    from->sent++;
    a->sent++;
    if (a->measuring && t >= a->t_measure)
        a->sent_window++;
}

/* Where one arrival belongs. Both ends of the window are the moments the
 * CPU readings were taken: a signal is "in the window" when it was due at
 * or after its start and sent before its end, which is exactly what
 * send_candidate counted. */
static void relay_account(app *a, sl_conn *c, const char *pkt, size_t len, uint64_t now)
{
    uint64_t t = app_payload_u64(pkt, len, "\"t\":"), seq = app_payload_u64(pkt, len, "\"s\":");
    if (t == UINT64_MAX || t > now || seq == UINT64_MAX) {
        a->errors++; /* not a candidate the peer sent */
        return;
    }
    switch (sl_seq_take(&c->rx_next, seq, c->peer->sent, &a->lost_gaps)) {
    case SL_SEQ_UNSENT:
        a->errors++;
        return;
    case SL_SEQ_REPEAT:
        a->duplicates++;
        return;
    case SL_SEQ_NEW:
        break;
    }
    a->delivered++;
    if (a->measuring)
        a->received_window++;
    switch (sl_window_when(t, a->t_measure, a->t_end, a->measuring, a->phase >= 2)) {
    case SL_WHEN_IN_TIME:
        a->in_time++;
        sl_hist_add(&a->hist, now - t);
        sl_hist_add(&a->hist_with_late, now - t);
        break;
    case SL_WHEN_LATE:
        a->late++;
        sl_hist_add(&a->hist_with_late, now - t);
        break;
    case SL_WHEN_OUTSIDE:
        break;
    }
}

static void relay_ready(sl_conn *c)
{
    app_send_join(app_of(c->run), c);
}

static void relay_established(app *a, int ok)
{
    a->handshakes -= 2;
    if (ok)
        a->established++;
    else
        a->join_failed++;
}

static void relay_event(sl_conn *c, const char *name, size_t nl, const char *pkt, size_t len)
{
    app *a = app_of(c->run);
    if (nl == 13 && memcmp(name, "ice-candidate", 13) == 0) {
        uint64_t now = uv_hrtime();
        c->received++;
        a->received++;
        relay_account(a, c, pkt, len, now);
        if (a->o.rate <= 0 && a->sending && c->peer->state == SL_C_READY)
            send_candidate(a, c, now);
        return;
    }
    if (nl == 12 && memcmp(name, "joinResponse", 12) == 0) {
        if (!app_join_ok(pkt, len)) {
            c->joined = -1;
            if (c->peer->joined != -1)
                relay_established(a, 0);
            c->peer->joined = -1;
            return;
        }
        c->joined = 1;
        if (c->peer->joined == 1) {
            sl_conn *first = (c->index & 1) ? c->peer : c; /* A offers */
            app_send_sdp(first, "offer");
        }
        return;
    }
    if (nl == 5 && memcmp(name, "offer", 5) == 0) {
        app_send_sdp(c, "answer");
        return;
    }
    if (nl == 6 && memcmp(name, "answer", 6) == 0) {
        c->joined = 2;
        c->peer->joined = 2;
        relay_established(a, 1);
    }
}

static void relay_closed(sl_conn *c, int err)
{
    app *a = app_of(c->run);
    (void)err;
    if (a->phase == 0 && c->joined >= 0 && c->joined < 2 && c->peer->joined != -1) {
        relay_established(a, 0);
        c->peer->joined = -1;
    } else if (a->phase > 0 && a->phase < 3) {
        a->dropped++;
    }
    c->joined = -1;
}

static const sl_mode_ops RELAY_OPS = {relay_ready, relay_event, relay_closed};

static void relay_start(app *a)
{
    a->ramp_t0 = uv_hrtime();
    a->phase = 0;
    a->started = 1;
}

static void relay_setup(app *a)
{
    a->run.ops = &RELAY_OPS;
    app_conns(a, 2 * a->o.rooms, 0);
    app_create_rooms(a, a->o.rooms, relay_start);
}

/* Open loop: the signals due by now, spread over the rooms and alternating
 * direction; each carries its due time, so time it spent waiting to leave
 * counts as latency. */
static void relay_pace(app *a)
{
    if (a->phase != 1 || !a->sending)
        return;
    uint64_t now = uv_hrtime();
    uint64_t due = (uint64_t)((double)(now - a->t0) / 1e9 * a->o.rate);
    uint64_t rooms = (uint64_t)(a->nconns / 2);
    while (a->issued < due) {
        uint64_t k = a->issued++;
        sl_conn *c = &a->conns[2 * (k % rooms) + ((k / rooms) & 1)];
        uint64_t t = a->t0 + (uint64_t)((double)k * 1e9 / a->o.rate);
        if (c->joined == 2 && c->state == SL_C_READY && c->peer->state == SL_C_READY) {
            send_candidate(a, c, t);
            if (a->measuring && t >= a->t_measure)
                sl_hist_add(&a->hist_lag, uv_hrtime() - t);
        }
    }
}

static void relay_tick(app *a)
{
    uint64_t now = uv_hrtime();
    if (a->phase == 0) {
        app_ramp_step(a);
        if (a->next_conn == a->nconns && a->handshakes <= 0) {
            if (!a->ramp_done) {
                a->ramp_done = 1;
                a->ramp_s = (double)(now - a->ramp_t0) / 1e9;
                app_say(a, "relay: %llu rooms ready, %llu failed in %.1fs\n", (unsigned long long)a->established,
                        (unsigned long long)a->join_failed, a->ramp_s);
                if (a->established == 0) {
                    app_finish(a);
                    return;
                }
            }
            /* With --procs, every generator process starts at once. */
            if (!sl_procs_may_start(a))
                return;
            a->phase = 1;
            a->t0 = now;
            a->t_measure = now + (uint64_t)(a->o.warmup * 1e9);
            a->t_end = a->t_measure + (uint64_t)(a->o.duration * 1e9);
            a->sending = 1;
            if (a->o.rate > 0) {
                app_pace_start(a);
            } else {
                for (int i = 0; i < a->nconns; i++) {
                    sl_conn *c = &a->conns[i];
                    if (c->joined == 2 && c->state == SL_C_READY)
                        for (int k = 0; k < a->o.window; k++)
                            send_candidate(a, c, now);
                }
            }
        }
        return;
    }
    if (a->phase == 1) {
        if (!a->measuring && now >= a->t_measure) {
            /* --duration from when the readings were really taken, even
             * if this tick comes late (a starved generator): the window
             * is never skipped. */
            app_measure_begin(a);
            a->t_end = a->t_measure + (uint64_t)(a->o.duration * 1e9);
        }
        if ((a->measuring && now >= a->t_end) || (a->o.signals && a->received >= a->o.signals)) {
            if (!a->measuring)
                app_measure_begin(a);
            app_measure_end(a);
            a->sending = 0;
            app_pace_stop(a);
            a->phase = 2;
            a->t0 = now;
        }
        return;
    }
    if (a->phase == 2) {
        /* Every signal sent has arrived, or is known lost (a later one on
         * its path arrived): nothing more can come. */
        int all = a->delivered + a->lost_gaps >= a->sent;
        if (all || now - a->t0 >= (uint64_t)(a->o.drain * 1e9)) {
            a->drain_s = (double)(now - a->t0) / 1e9;
            a->drain_timed_out = !all;
            a->phase = 3;
            app_finish(a);
        }
    }
}

static void relay_progress(app *a)
{
    app_say(a, "  rooms %llu  sent %llu  received %llu\n", (unsigned long long)a->established,
            (unsigned long long)a->sent, (unsigned long long)a->received);
}

static const sl_hist *relay_report(app *a, sl_sbuf *j, const sl_measured *m)
{
    double rate = m->window_s > 0 ? (double)a->received_window / m->window_s : 0;
    double sent_rate = m->window_s > 0 ? (double)a->sent_window / m->window_s : 0;
    uint64_t lost = a->sent > a->delivered ? a->sent - a->delivered : 0;
    uint64_t arrived = a->in_time + a->late;
    uint64_t lost_window = a->sent_window > arrived ? a->sent_window - arrived : 0;
    sl_sb(j, "\"relay\":{\"rooms_ready\":%llu,\"rooms_failed\":%llu,\"sent\":%llu,\"received\":%llu,"
             "\"received_window\":%llu,\"dropped\":%llu,\"per_s\":%.1f,\"per_server_cpu_s\":%.1f,",
          (unsigned long long)a->established, (unsigned long long)a->join_failed, (unsigned long long)a->sent,
          (unsigned long long)a->received, (unsigned long long)a->received_window, (unsigned long long)a->dropped,
          rate, m->cpu_s > 0 ? (double)a->received_window / m->cpu_s : 0);
    sl_sb(j, "\"sent_window\":%llu,\"sent_per_s\":%.1f,\"in_time\":%llu,\"late\":%llu,\"lost_window\":%llu,"
             "\"delivered\":%llu,\"lost\":%llu,\"lost_gaps\":%llu,\"duplicates\":%llu,\"drain_s\":%.3f,"
             "\"drain_limit_s\":%.3f,\"drain_timed_out\":%s},",
          (unsigned long long)a->sent_window, sent_rate, (unsigned long long)a->in_time,
          (unsigned long long)a->late, (unsigned long long)lost_window, (unsigned long long)a->delivered,
          (unsigned long long)lost, (unsigned long long)a->lost_gaps, (unsigned long long)a->duplicates,
          a->drain_s, a->o.drain, a->drain_timed_out ? "true" : "false");
    if (a->late) {
        /* The slowest signals of the window are the late ones: the
         * latency above leaves them out, this one does not. */
        sl_sb_hist(j, "latency_with_late", &a->hist_with_late);
        sl_sb(j, ",");
    }
    if (a->hist_lag.count) {
        /* Time a signal waited in the generator before leaving: when it
         * grows, the generator is the bottleneck and the latency below is
         * partly its own. */
        sl_sb_hist(j, "send_lag", &a->hist_lag);
        sl_sb(j, ",");
    }
    printf("  %llu rooms, %llu signals sent, %llu received; %.0f/s in the window", (unsigned long long)a->established,
           (unsigned long long)a->sent, (unsigned long long)a->received, rate);
    if (m->cpu_s > 0)
        printf(", %.0f per server CPU-second", (double)a->received_window / m->cpu_s);
    printf("\n");
    printf("  sent in the window %llu (%.0f/s): %llu in time, %llu late (in the %.2fs drain), %llu lost\n",
           (unsigned long long)a->sent_window, sent_rate, (unsigned long long)a->in_time,
           (unsigned long long)a->late, a->drain_s, (unsigned long long)lost_window);
    if (a->hist_lag.count)
        printf("  generator send lag: p50 %.0f us  p99 %.0f us  max %.0f us\n",
               (double)sl_hist_quantile(&a->hist_lag, 0.5) / 1e3, (double)sl_hist_quantile(&a->hist_lag, 0.99) / 1e3,
               (double)a->hist_lag.max / 1e3);
    if (a->late)
        printf("  latency with the late ones: p50 %.0f us  p99 %.0f us  max %.0f us\n",
               (double)sl_hist_quantile(&a->hist_with_late, 0.5) / 1e3,
               (double)sl_hist_quantile(&a->hist_with_late, 0.99) / 1e3, (double)a->hist_with_late.max / 1e3);
    if (lost || a->duplicates)
        printf("  WARNING: %llu of %llu signals never arrived (%llu skipped on their path, %llu missing when the "
               "drain %s), %llu duplicates\n",
               (unsigned long long)lost, (unsigned long long)a->sent, (unsigned long long)a->lost_gaps,
               (unsigned long long)(lost - (a->lost_gaps < lost ? a->lost_gaps : lost)),
               a->drain_timed_out ? "timed out" : "ended", (unsigned long long)a->duplicates);
    return &a->hist;
}

static int relay_failed(const app *a)
{
    return a->established == 0;
}

const sl_scenario SL_RELAY = {
    .name = "relay",
    .setup = relay_setup,
    .tick = relay_tick,
    .pace = relay_pace,
    .progress = relay_progress,
    .report = relay_report,
    .failed = relay_failed,
};
