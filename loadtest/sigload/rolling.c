/* rolling.c — what clients see while the workers are restarted in turn.
 *
 * --rooms rooms of two peers behind the front (front.c) while the caller
 * restarts the workers one by one (bench/run.sh). Each peer behaves as
 * PrivyDrop's client (services/web/src/signaling.ts with socket.io-client):
 * on losing its connection it reconnects through the front with
 * socket.io-client's backoff (500 ms doubling to 4 s, ±30 %), joins the same
 * room again, and on "Rate limit exceeded" waits as the page does. Whoever
 * is in the room when the other (re)joins hears `ready` and offers; the
 * newcomer answers: the room has met again. Peers learn each other's ids
 * only from the wire (ready, offer, answer), never from this process.
 *
 * ICE candidates flow between met peers at --rate in all; each carries its
 * sender's sequence number, so every one sent is either received or lost.
 * A lost one is "in the reconnect window" when it is among the last sent on
 * a path that then closed (roll_count_losses); any other loss is a defect.
 *
 * phase 0 rooms, connect, first meeting; 1 steady (signals), waiting for
 * SIGUSR1 = the rollout is over; 2 settling (until every room has met
 * again, at most --settle s); 3 winding down (signals in flight arrive). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

#define ROLL_GENS 64

typedef struct roll_sig {
    uint64_t t;                   /* hrtime sent */
    uint16_t sgen, rgen;          /* sender's, receiver's connection generation */
    uint8_t got;                  /* received (count, saturating) */
} roll_sig;

typedef struct roll_peer {
    sl_conn *c;
    uv_timer_t retry;             /* reconnect or re-join after a delay */
    char psid[32];                /* the partner's socket id as last heard */
    int met;                      /* this connection has met the partner (offer/answer) */
    int want_join;                /* connected, join not yet answered */
    int attempt;                  /* failed connects since the last success */
    int limited;                  /* rate-limited join answers in a row */
    uint64_t t_lost;              /* hrtime its connection was lost, 0 while fine */
    uint16_t gen;                 /* connection generation (1, 2, ...) */
    uint64_t gen_close[ROLL_GENS];/* hrtime each generation closed, 0 = open */
    uint32_t moves;               /* connections lost after having joined */
    int ramping;                  /* started by the ramp, not yet connected */
    roll_sig *sig;                /* candidates sent, by sequence number */
    size_t nsig, capsig;
} roll_peer;

typedef struct roll_room {
    uint64_t t_apart;             /* hrtime the room lost a peer, 0 while met */
    int met;                      /* both peers met on their current connections */
    int disrupted;                /* lost a peer at least once */
} roll_room;

/* The scenario's own state, hung from the app. */
typedef struct roll_state {
    app *app;                     /* owner */
    roll_peer *peers;             /* per connection slot */
    roll_room *rooms;             /* per room */
    sl_front *front;
    uv_signal_t sigusr1;          /* the rollout is over */
    int rollout_done, timed_out, rooms_met;
    unsigned cursor;              /* the next connection to send a signal from */
    uint64_t t_rollout_end, t_stop, t_quiet, last_received;
    double settle_s;
    uint64_t rate_limited, server_errors, connects_refused, moves;
    uint64_t lost_outside;        /* counted by the report: the verdict needs it */
    sl_hist hist_rejoin;          /* connection lost → joined again */
    sl_hist hist_remeet;          /* room lost a peer → both met again */
} roll_state;

static roll_peer *RP(app *a, sl_conn *c) { return &a->roll->peers[c->index]; }

static uint64_t roll_backoff_ms(app *a, int attempt)
{
    /* socket.io-client: reconnectionDelay 500 × 2^attempt, at most 4000,
     * randomizationFactor 0.3 (the web client's settings). */
    double d = 500.0 * (double)(1u << (attempt < 4 ? attempt : 4));
    if (d > 4000)
        d = 4000;
    double r = (double)(sl_rand(&a->run) % 10000) / 10000.0;
    return (uint64_t)(d * (0.7 + 0.6 * r));
}

static void roll_connect(app *a, sl_conn *c)
{
    roll_peer *p = RP(a, c);
    if (a->finished || c->state != SL_C_IDLE)
        return;
    c->target = sl_front_pick(a->roll->front);
    p->met = 0;
    p->want_join = 0;
    p->psid[0] = '\0';
    if (p->gen + 1 < ROLL_GENS)
        p->gen++;
    p->gen_close[p->gen] = 0;
    sl_conn_start(c);
}

static void roll_on_retry(uv_timer_t *t)
{
    sl_conn *c = sl_container_of(t, roll_peer, retry)->c;
    app *a = app_of(c->run);
    if (c->state == SL_C_IDLE)
        roll_connect(a, c);
    else if (c->state == SL_C_READY && RP(a, c)->want_join)
        app_send_join(a, c);
}

static void roll_later(app *a, sl_conn *c, uint64_t ms)
{
    if (!a->finished)
        uv_timer_start(&RP(a, c)->retry, roll_on_retry, ms, 0);
}

static void roll_room_check(app *a, int room)
{
    roll_room *r = &a->roll->rooms[room];
    sl_conn *x = &a->conns[2 * room], *y = &a->conns[2 * room + 1];
    int met = RP(a, x)->met && RP(a, y)->met;
    if (met && !r->met) {
        r->met = 1;
        a->roll->rooms_met++;
        if (r->t_apart) {
            sl_hist_add(&a->roll->hist_remeet, uv_hrtime() - r->t_apart);
            r->t_apart = 0;
        }
    } else if (!met && r->met) {
        r->met = 0;
        a->roll->rooms_met--;
    }
}

static void roll_ready(sl_conn *c)
{
    app *a = app_of(c->run);
    roll_peer *p = RP(a, c);
    p->attempt = 0;
    p->want_join = 1;
    if (p->ramping) {
        p->ramping = 0;
        a->handshakes--;
    }
    app_send_join(a, c);
}

/* Copy a "key":"value" string field of pkt into out (cap bytes). */
static int roll_field(const char *pkt, size_t len, const char *key, char *out, size_t cap)
{
    char k[24];
    int kn = snprintf(k, sizeof(k), "\"%s\":\"", key);
    const char *s = memmem(pkt, len, k, (size_t)kn);
    if (!s)
        return -1;
    s += kn;
    const char *e = memchr(s, '"', len - (size_t)(s - pkt));
    if (!e || (size_t)(e - s) >= cap)
        return -1;
    memcpy(out, s, (size_t)(e - s));
    out[e - s] = '\0';
    return 0;
}

static void roll_send_candidate(app *a, sl_conn *c)
{
    roll_peer *p = RP(a, c);
    sl_conn *q = c->peer;
    roll_peer *pq = RP(a, q);
    if (p->nsig == p->capsig) {
        size_t n = p->capsig ? 2 * p->capsig : 64;
        roll_sig *s = realloc(p->sig, n * sizeof(*s));
        if (!s)
            return;
        p->sig = s;
        p->capsig = n;
    }
    uint64_t now = uv_hrtime();
    /* The receiver's connection the sender is talking to: its current one
     * if the id matches, else one already gone (generation 0 = gone). */
    uint16_t rgen = (q->state == SL_C_READY && strcmp(q->sid, p->psid) == 0) ? pq->gen : 0;
    size_t seq = p->nsig++;
    p->sig[seq] = (roll_sig){now, p->gen, rgen, 0};
    char pkt[512];
    int n = snprintf(pkt, sizeof(pkt),
                     "42[\"ice-candidate\",{\"peerId\":\"%s\",\"candidate\":{\"candidate\":\"%s\","
                     "\"sdpMid\":\"0\",\"sdpMLineIndex\":0,\"t\":%llu,\"s\":%zu},\"from\":\"%s\"}]",
                     p->psid, APP_CANDIDATE, (unsigned long long)now, seq, c->sid);
    sl_conn_send(c, pkt, (size_t)n);
    a->sent++;
}

static void roll_join_answer(app *a, sl_conn *c, const char *pkt, size_t len)
{
    roll_peer *p = RP(a, c);
    if (!p->want_join)
        return;
    if (app_join_ok(pkt, len)) {
        p->want_join = 0;
        p->limited = 0;
        c->joined = 1;
        if (p->t_lost) {
            sl_hist_add(&a->roll->hist_rejoin, uv_hrtime() - p->t_lost);
            p->t_lost = 0;
        }
        return;
    }
    char msg[160] = "";
    roll_field(pkt, len, "message", msg, sizeof(msg));
    const char *m = strstr(msg, "Try again in ");
    if (strstr(msg, "Rate limit exceeded")) {
        /* The page's rule: the hinted time + 300 ms, at least the whole
         * window (5.5 s) × 1.5 per refusal in a row, at most 30 s. */
        a->roll->rate_limited++;
        p->limited++;
        double hinted = m ? atof(m + 13) * 1000 + 300 : 0;
        double ms = 5500;
        for (int i = 1; i < p->limited; i++)
            ms *= 1.5;
        if (hinted > ms)
            ms = hinted;
        if (ms > 30000)
            ms = 30000;
        roll_later(a, c, (uint64_t)ms);
    } else if (strstr(msg, "Server error")) {
        a->roll->server_errors++;
        roll_later(a, c, 3000);
    } else {
        a->join_failed++;
        p->want_join = 0;
    }
}

static void roll_event(sl_conn *c, const char *name, size_t nl, const char *pkt, size_t len)
{
    app *a = app_of(c->run);
    roll_peer *p = RP(a, c);
    if (nl == 13 && memcmp(name, "ice-candidate", 13) == 0) {
        uint64_t seq = app_payload_u64(pkt, len, "\"s\":"), t = app_payload_u64(pkt, len, "\"t\":");
        roll_peer *ps = RP(a, c->peer);
        if (seq < ps->nsig && ps->sig[seq].got < 255)
            ps->sig[seq].got++;
        else
            a->errors++; /* a candidate nobody sent */
        a->received++;
        if (t != UINT64_MAX)
            sl_hist_add(&a->hist, uv_hrtime() - t);
        return;
    }
    if (nl == 12 && memcmp(name, "joinResponse", 12) == 0) {
        roll_join_answer(a, c, pkt, len);
        return;
    }
    char from[32];
    if (nl == 5 && memcmp(name, "ready", 5) == 0) {
        /* The partner (re)joined: offer to it. This can arrive before our
         * own joinResponse (the server answers the joiner only once its own
         * ready is published), as in the browser, which offers then too. */
        if (roll_field(pkt, len, "peerId", from, sizeof(from)) != 0)
            return;
        memcpy(p->psid, from, sizeof(from));
        p->met = 0;
        roll_room_check(a, c->room);
        char o[256];
        int n = snprintf(o, sizeof(o),
                         "42[\"offer\",{\"peerId\":\"%s\",\"offer\":{\"type\":\"offer\",\"sdp\":\"v=0\"},"
                         "\"from\":\"%s\"}]", from, c->sid);
        sl_conn_send(c, o, (size_t)n);
        return;
    }
    if (nl == 5 && memcmp(name, "offer", 5) == 0) {
        if (roll_field(pkt, len, "from", from, sizeof(from)) != 0)
            return;
        memcpy(p->psid, from, sizeof(from));
        char o[256];
        int n = snprintf(o, sizeof(o),
                         "42[\"answer\",{\"peerId\":\"%s\",\"answer\":{\"type\":\"answer\",\"sdp\":\"v=0\"},"
                         "\"from\":\"%s\"}]", from, c->sid);
        sl_conn_send(c, o, (size_t)n);
        p->met = 1;
        roll_room_check(a, c->room);
        return;
    }
    if (nl == 6 && memcmp(name, "answer", 6) == 0) {
        if (roll_field(pkt, len, "from", from, sizeof(from)) != 0 || strcmp(from, p->psid) != 0)
            return;
        p->met = 1;
        roll_room_check(a, c->room);
        return;
    }
    if (nl == 17 && memcmp(name, "peer-disconnected", 17) == 0) {
        if (roll_field(pkt, len, "peerId", from, sizeof(from)) == 0 && strcmp(from, p->psid) == 0) {
            p->met = 0;
            roll_room_check(a, c->room);
        }
    }
}

static void roll_closed(sl_conn *c, int err)
{
    app *a = app_of(c->run);
    roll_peer *p = RP(a, c);
    uint64_t now = uv_hrtime();
    int was_ready = c->sid[0] != '\0';
    sl_front_release(a->roll->front, c->target);
    if (!a->finished)
        p->gen_close[p->gen] = now; /* closes at the run's end are not losses' causes */
    if (p->ramping) {
        p->ramping = 0;
        a->handshakes--;
    }
    if (a->finished || a->phase >= 3)
        return;
    (void)err;
    if (c->joined == 1) {
        p->moves++;
        a->roll->moves++;
        if (!p->t_lost)
            p->t_lost = now;
    } else if (!was_ready) {
        a->roll->connects_refused++;
        p->attempt++;
    }
    c->joined = 0;
    p->met = 0;
    p->want_join = 0;
    roll_room_check(a, c->room);
    if (!a->roll->rooms[c->room].t_apart && a->phase > 0) {
        a->roll->rooms[c->room].t_apart = now;
        a->roll->rooms[c->room].disrupted = 1;
    }
    roll_later(a, c, roll_backoff_ms(a, was_ready ? 0 : p->attempt));
}

static const sl_mode_ops ROLL_OPS = {roll_ready, roll_event, roll_closed};

static void roll_pace(app *a)
{
    if (a->phase < 1 || a->phase > 2)
        return;
    uint64_t now = uv_hrtime();
    uint64_t due = (uint64_t)((double)(now - a->t0) / 1e9 * a->o.rate);
    int n = a->nconns;
    int tries = 0;
    while (a->issued < due && tries < n) {
        sl_conn *c = &a->conns[a->roll->cursor++ % (unsigned)n];
        roll_peer *p = RP(a, c);
        if (c->state == SL_C_READY && c->joined && p->met && p->psid[0]) {
            roll_send_candidate(a, c);
            a->issued++;
            tries = 0;
        } else {
            tries++;
        }
    }
    if (a->issued < due)
        a->issued = due; /* nobody to send for now: not owed later */
}

static void roll_write_ready_file(app *a)
{
    if (!a->o.ready_file)
        return;
    FILE *f = fopen(a->o.ready_file, "w");
    if (f) {
        fprintf(f, "steady %d rooms\n", a->roll->rooms_met);
        fclose(f);
    }
}

static void roll_tick(app *a)
{
    uint64_t now = uv_hrtime();
    if (a->t_end && now >= a->t_end && a->phase < 3) {
        app_say(a, "rolling: --duration reached (phase %d), stopping\n", a->phase);
        a->roll->timed_out = 1;
        a->phase = 3;
        a->t0 = now;
    }
    if (a->phase == 0) {
        if (sl_front_ready_count(a->roll->front) == 0)
            return;
        if (!a->ramp_t0)
            a->ramp_t0 = now;
        double el = (double)(now - a->ramp_t0) / 1e9;
        long allowed = (long)(el * a->o.connect_rate) + 1;
        while (a->next_conn < a->nconns && a->next_conn < allowed && a->handshakes < a->o.inflight) {
            a->handshakes++;
            a->roll->peers[a->next_conn].ramping = 1;
            roll_connect(a, &a->conns[a->next_conn++]);
        }
        if (a->roll->rooms_met == a->nconns / 2) {
            a->ramp_s = (double)(now - a->ramp_t0) / 1e9;
            app_say(a, "rolling: steady, %d rooms met in %.1fs; signals flowing, waiting for SIGUSR1\n", a->roll->rooms_met,
                a->ramp_s);
            a->phase = 1;
            a->t0 = now;
            a->issued = 0;
            a->t_measure = now;
            app_measure_begin(a);
            roll_write_ready_file(a);
        }
        return;
    }
    roll_pace(a); /* once a millisecond: signals leave in small batches */
    if (a->phase == 1 && a->roll->rollout_done) {
        a->phase = 2;
        a->roll->t_rollout_end = now;
        app_say(a, "rolling: rollout over; %d/%d rooms met, settling\n", a->roll->rooms_met, a->nconns / 2);
    }
    if (a->phase == 2) {
        int all = a->roll->rooms_met == a->nconns / 2;
        if (all || now - a->roll->t_rollout_end >= (uint64_t)(a->o.settle * 1e9)) {
            a->roll->settle_s = (double)(now - a->roll->t_rollout_end) / 1e9;
            a->phase = 3;
            a->t0 = now;
        }
        return;
    }
    if (a->phase == 3) {
        if (!a->roll->t_stop) {
            a->roll->t_stop = now;
            a->t_end = now;
            app_measure_end(a);
        }
        /* Signals still in flight arrive: wait until nothing more has come
         * for 500 ms (at least 1 s, at most 10 s as a hang guard). */
        if (a->received != a->roll->last_received) {
            a->roll->last_received = a->received;
            a->roll->t_quiet = now;
        }
        if (!a->roll->t_quiet)
            a->roll->t_quiet = now;
        if ((now - a->roll->t_stop >= 1000000000ull && now - a->roll->t_quiet >= 500000000ull) ||
            now - a->roll->t_stop >= 10000000000ull) {
            a->phase = 4;
            app_finish(a);
        }
    }
}

static void roll_on_usr1(uv_signal_t *s, int sig)
{
    (void)sig;
    app *a = sl_container_of(s, roll_state, sigusr1)->app;
    a->roll->rollout_done = 1;
}

static void roll_start(app *a)
{
    roll_state *rs = a->roll;
    rs->peers = app_calloc((size_t)a->nconns, sizeof(roll_peer));
    rs->rooms = app_calloc((size_t)a->nconns / 2, sizeof(roll_room));
    for (int i = 0; i < a->nconns; i++) {
        roll_peer *p = &rs->peers[i];
        p->c = &a->conns[i];
        uv_timer_init(a->run.loop, &p->retry);
    }
    rs->front = sl_front_create(&a->run, a->o.health_interval, a->o.leastconn);
    if (!rs->front) {
        fprintf(stderr, "sigload: out of memory\n");
        exit(1);
    }
    uv_signal_init(a->run.loop, &rs->sigusr1);
    uv_signal_start(&rs->sigusr1, roll_on_usr1, SIGUSR1);
    uint64_t now = uv_hrtime();
    a->t_end = now + (uint64_t)(a->o.duration * 1e9);
    a->phase = 0;
    a->started = 1;
}

static void roll_setup(app *a)
{
    a->roll = app_calloc(1, sizeof(roll_state));
    a->roll->app = a;
    a->run.ops = &ROLL_OPS;
    app_conns(a, 2 * a->o.rooms, 0);
    app_create_rooms(a, a->o.rooms, roll_start);
}

/* Lost candidates, split by cause. One sender connection's signals to one
 * receiver connection travel one ordered path (a TCP connection, one worker,
 * one Redis channel, one worker, a TCP connection), so within such a stream
 * a signal missing before one that arrived is a true loss, whatever the
 * timing. Missing ones after the last that arrived are the stream's tail:
 * lost in the reconnect window when either connection closed (or the
 * sender was talking to an id already gone), and a true loss when both
 * stayed open until the end of the run. */
static void roll_count_losses(app *a, uint64_t *in_window, uint64_t *outside, uint64_t *dups)
{
    *in_window = *outside = *dups = 0;
    for (int i = 0; a->roll->peers && i < a->nconns; i++) {
        roll_peer *p = &a->roll->peers[i], *q = &a->roll->peers[i ^ 1];
        size_t k = 0;
        while (k < p->nsig) {
            size_t end = k, last = SIZE_MAX;
            while (end < p->nsig && p->sig[end].sgen == p->sig[k].sgen && p->sig[end].rgen == p->sig[k].rgen) {
                if (p->sig[end].got)
                    last = end;
                end++;
            }
            const roll_sig *s0 = &p->sig[k];
            int closed = s0->rgen == 0 || p->gen_close[s0->sgen] || q->gen_close[s0->rgen];
            for (; k < end; k++) {
                const roll_sig *s = &p->sig[k];
                if (s->got) {
                    *dups += s->got - 1u;
                } else if ((last != SIZE_MAX && k < last) || !closed) {
                    (*outside)++;
                } else {
                    (*in_window)++;
                }
            }
        }
    }
}


static void roll_progress(app *a)
{
    roll_state *rs = a->roll;
    app_say(a, "  rooms met %d/%d  moves %llu  rate-limited %llu  signals %llu/%llu\n", rs->rooms_met, a->nconns / 2,
            (unsigned long long)rs->moves, (unsigned long long)rs->rate_limited, (unsigned long long)a->received,
            (unsigned long long)a->sent);
}

static const sl_hist *roll_report(app *a, sl_sbuf *j, const sl_measured *m)
{
    (void)m;
    roll_state *rs = a->roll;
    uint64_t lost_in, lost_out, dups;
    roll_count_losses(a, &lost_in, &lost_out, &dups);
    int rooms = a->nconns / 2, disrupted = 0, apart_met = 0;
    uint32_t max_moves = 0;
    for (int i = 0; rs->rooms && i < rooms; i++) {
        disrupted += rs->rooms[i].disrupted;
        apart_met += rs->rooms[i].disrupted && rs->rooms[i].met;
    }
    for (int i = 0; rs->peers && i < a->nconns; i++)
        if (rs->peers[i].moves > max_moves)
            max_moves = rs->peers[i].moves;
    rs->lost_outside = lost_out;
    sl_sb(j, "\"rolling\":{\"front\":\"%s\",\"rooms\":%d,\"rooms_met_at_end\":%d,\"rooms_disrupted\":%d,"
             "\"rooms_met_again\":%d,\"met_again_pct\":%.2f,\"rollout_seen\":%s,\"timed_out\":%s,"
             "\"settle_s\":%.3f,\"moves\":%llu,\"max_moves_per_peer\":%u,\"connects_refused\":%llu,"
             "\"rate_limited\":%llu,\"server_errors\":%llu,\"join_refused\":%llu,\"signals_sent\":%llu,"
             "\"signals_received\":%llu,\"lost_in_window\":%llu,\"lost_outside\":%llu,\"duplicates\":%llu,",
          a->o.leastconn ? "leastconn" : "rr", rooms, rs->rooms_met, disrupted, apart_met,
          disrupted ? 100.0 * apart_met / disrupted : 0.0, rs->rollout_done ? "true" : "false",
          rs->timed_out ? "true" : "false", rs->settle_s, (unsigned long long)rs->moves, max_moves,
          (unsigned long long)rs->connects_refused, (unsigned long long)rs->rate_limited,
          (unsigned long long)rs->server_errors, (unsigned long long)a->join_failed, (unsigned long long)a->sent,
          (unsigned long long)a->received, (unsigned long long)lost_in, (unsigned long long)lost_out,
          (unsigned long long)dups);
    sl_sb_hist(j, "rejoin", &rs->hist_rejoin);
    sl_sb(j, ",");
    sl_sb_hist(j, "remeet", &rs->hist_remeet);
    sl_sb(j, "},");
    printf("  %d rooms: %d met at the end; %d disrupted by the rollout, %d met again (%.1f %%)%s\n", rooms,
           rs->rooms_met, disrupted, apart_met, disrupted ? 100.0 * apart_met / disrupted : 0.0,
           rs->rollout_done ? "" : " — the rollout's end was never signalled");
    printf("  %llu moves (at most %u for one peer), %llu refused connects, %llu joins rate-limited, "
           "%llu server errors, %llu refused\n",
           (unsigned long long)rs->moves, max_moves, (unsigned long long)rs->connects_refused,
           (unsigned long long)rs->rate_limited, (unsigned long long)rs->server_errors,
           (unsigned long long)a->join_failed);
    printf("  re-join p50 %.0f ms  p99 %.0f ms  max %.0f ms; met again p50 %.0f ms  p99 %.0f ms  max %.0f ms\n",
           (double)sl_hist_quantile(&rs->hist_rejoin, 0.5) / 1e6, (double)sl_hist_quantile(&rs->hist_rejoin, 0.99) / 1e6,
           (double)rs->hist_rejoin.max / 1e6, (double)sl_hist_quantile(&rs->hist_remeet, 0.5) / 1e6,
           (double)sl_hist_quantile(&rs->hist_remeet, 0.99) / 1e6, (double)rs->hist_remeet.max / 1e6);
    printf("  signals: %llu sent, %llu received; lost %llu in reconnect windows, %llu outside\n",
           (unsigned long long)a->sent, (unsigned long long)a->received, (unsigned long long)lost_in,
           (unsigned long long)lost_out);
    return &a->hist;
}

/* Every room met at the end, after a rollout, with no signal lost outside
 * a reconnect window. */
static int roll_failed(const app *a)
{
    const roll_state *rs = a->roll;
    return !rs->rollout_done || rs->timed_out || rs->rooms_met != a->o.rooms || rs->lost_outside > 0 ||
           a->errors > 0;
}

static void roll_free(app *a)
{
    roll_state *rs = a->roll;
    if (!rs)
        return;
    for (int i = 0; rs->peers && i < a->nconns; i++)
        free(rs->peers[i].sig);
    free(rs->peers);
    free(rs->rooms);
    sl_front_free(rs->front);
    free(rs);
    a->roll = NULL;
}

const sl_scenario SL_ROLLING = {
    .name = "rolling",
    .setup = roll_setup,
    .tick = roll_tick,
    .progress = roll_progress,
    .report = roll_report,
    .failed = roll_failed,
    .free = roll_free,
};
