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
    int n = app_candidate(pkt, sizeof(pkt), from->peer->sid, from->sid, t, from->sent);
    sl_conn_send(from, pkt, (size_t)n);
    from->sent++;
    app_signal_sent(a, t);
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
        app_signal_arrived(a, &c->rx_next, c->peer->sent, pkt, len, now);
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
    uint64_t rooms = (uint64_t)(a->nconns / 2);
    while (app_due_at(a, a->issued) <= now) {
        uint64_t k = a->issued++;
        sl_conn *c = &a->conns[2 * (k % rooms) + ((k / rooms) & 1)];
        uint64_t t = app_due_at(a, k);
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
            if (app_signals_start(a, now)) {
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
    app_signals_step(a, now);
}

static void relay_progress(app *a)
{
    app_say(a, "  rooms %llu  sent %llu  received %llu\n", (unsigned long long)a->established,
            (unsigned long long)a->sent, (unsigned long long)a->received);
}

static const sl_hist *relay_report(app *a, sl_sbuf *j, const sl_measured *m)
{
    return app_signals_report(a, j, m, "relay");
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
