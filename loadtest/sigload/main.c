/* privydrop-sigload — load generator for privydrop-signal / privydrop-roomapi
 * (and anything wire-compatible, such as the Node reference in
 * loadtest/reference). See USAGE below and loadtest/README.md. */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

#include "sigload.h"

static const char USAGE[] =
    "Usage: privydrop-sigload MODE [options]\n"
    "\n"
    "Modes:\n"
    "  idle    open --conns connections, join them in rooms of two, hold them\n"
    "          (answering Engine.IO pings) and read the servers' memory\n"
    "  relay   --rooms rooms of two peers exchange offer/answer, then ICE\n"
    "          candidates at --rate per second (0: closed loop, --window in\n"
    "          flight per peer); latency from a timestamp in each payload\n"
    "  churn   --conns pairs in flight, each cycle: connect, join, offer, leave\n"
    "  api     HTTP keep-alive load on the room API (--route), --conns connections\n"
    "  rolling --rooms rooms of two peers behind a front that probes every --target's\n"
    "          /readyz and sends each new connection to the next ready one; peers\n"
    "          reconnect and re-join as PrivyDrop's client does while the caller\n"
    "          restarts the workers in turn, then sends SIGUSR1; signals at --rate\n"
    "          (default 2 per room per second). Exit 1 unless every room met again\n"
    "          and no signal was lost outside a reconnect window\n"
    "\n"
    "Options:\n"
    "  --target H:P[,H:P...]  signal workers, used round-robin (127.0.0.1:3001)\n"
    "  --api H:P              room API; rooms are created through it (127.0.0.1:3002)\n"
    "  --conns N              idle: sockets; churn: pairs; api: connections (100)\n"
    "  --rooms N              relay, rolling: rooms (100)\n"
    "  --cross                relay/churn: the two peers on different targets\n"
    "  --rate R               relay: signals/s; api: requests/s; 0 = as fast as answered (0)\n"
    "  --window W             closed-loop relay: signals in flight per peer (4)\n"
    "  --signals N            relay: send N ICE candidates in all, end once all arrived\n"
    "                         (--duration stays the limit); for fixed-count cost runs\n"
    "  --route NAME           api: check_room or get_room (check_room)\n"
    "  --duration S           measured seconds (10); idle: seconds to hold; rolling: the\n"
    "                         whole run's limit (a hang guard)\n"
    "  --warmup S             seconds before measuring (1)\n"
    "  --connect-rate N       new connections per second (4000)\n"
    "  --inflight N           handshakes in flight at most (200)\n"
    "  --src-base A.B.C.D     first source address (127.0.0.1)\n"
    "  --src-count N          consecutive source addresses to spread over (1)\n"
    "  --congestion NAME      TCP congestion control of the generator's own sockets\n"
    "                         (e.g. cubic; default: the system's)\n"
    "  --xff                  a distinct X-Forwarded-For per connection\n"
    "  --no-join              idle: connect only, no rooms\n"
    "  --pids P[,P...]        server processes whose CPU time and RSS are read\n"
    "  --label TEXT           free text copied into the JSON report\n"
    "  --json FILE            also write the report as JSON (- for stdout)\n"
    "  --ready-file FILE      rolling: written once every room has met (start the rollout then)\n"
    "  --settle S             rolling: seconds after SIGUSR1 for every room to meet again (15)\n"
    "  --health-interval MS   rolling: the front's /readyz probe period (100)\n"
    "  --front rr|leastconn   rolling: among ready workers the next one, or the one\n"
    "                         holding the fewest of our connections (rr)\n"
    "  --quiet                no progress lines\n";

typedef enum mode { M_IDLE, M_RELAY, M_CHURN, M_API, M_ROLLING } mode;
static const char *const MODE_NAMES[] = {"idle", "relay", "churn", "api", "rolling"};
#define NMODES 5

typedef struct opts {
    mode mode;
    int conns, rooms, cross, window, join, quiet;
    double rate, duration, warmup;
    uint64_t signals;             /* relay: candidates to send in all, 0 = no limit */
    int connect_rate, inflight;
    const char *route, *json, *label;
    const char *ready_file;       /* rolling: written once every room has met */
    double settle;                /* rolling: seconds allowed after the rollout */
    int health_interval;          /* rolling: the front's /readyz probe period, ms */
    int leastconn;                /* rolling: the front picks the least-loaded ready worker */
    struct sockaddr_in api;
    char api_name[64];
    int pids[SL_MAX_PIDS];
    int npids;
} opts;

/* The whole program state; run is first so a sl_run* is an app*. */
typedef struct app {
    sl_run run;
    opts o;
    char prefix[16];              /* room id prefix, random per run */
    sl_conn *conns;               /* idle/relay/churn */
    int nconns;
    sl_http *https;               /* api load and room creation */
    int nhttps;
    uv_timer_t tick;              /* 1 ms: rates, ramps, phases */
    uv_idle_t pace;               /* open loop: issues what is due on every loop turn */
    uv_timer_t progress;          /* 1 s */
    uv_signal_t sigint;
    int phase;                    /* mode-specific, see each mode */
    int finished;
    uint64_t t0;                  /* start of the current phase (hrtime) */
    uint64_t t_measure, t_end;    /* measured window */
    int measuring;
    /* ramp */
    int next_conn, handshakes, ramp_done;
    uint64_t ramp_t0;
    /* room creation */
    int rooms_total, rooms_next, rooms_ok, rooms_failed, rooms_done;
    void (*after_rooms)(struct app *a);
    /* counters */
    uint64_t sent, received, received_window, lost_late, errors;
    uint64_t joined, join_failed, established, dropped, cycles, cycles_failed;
    uint64_t issued;              /* api: requests scheduled so far */
    uint64_t ok, ok_window;
    int sending;
    sl_hist hist;                 /* latency */
    sl_hist hist_connect;         /* idle: connect+join time */
    sl_hist hist_lag;             /* open-loop relay: how late each signal left (generator's own delay) */
    /* readings */
    sl_proc proc0[SL_MAX_PIDS], proc1[SL_MAX_PIDS], proc_base[SL_MAX_PIDS];
    double self_cpu0, self_cpu1;
    long sock_mem_base, sock_mem, sock_inuse_base, sock_inuse;
    double ramp_s;
    uint64_t open_at_end;
    /* rolling */
    struct roll_peer *roll;       /* per connection slot */
    struct roll_room *rooms_roll; /* per room */
    sl_front *front;
    uv_signal_t sigusr1;          /* the rollout is over */
    int roll_started, rollout_done, timed_out, rooms_met;
    unsigned roll_cursor;
    uint64_t t_rollout_end, t_roll_stop, t_roll_quiet, roll_last_received;
    double settle_s;
    uint64_t rate_limited, server_errors, connects_refused, moves, lost_outside;
    sl_hist hist_rejoin;          /* connection lost → joined again */
    sl_hist hist_remeet;          /* room lost a peer → both met again */
} app;

static app *A(sl_run *r) { return (app *)r; }

uint64_t sl_rand(sl_run *run)
{
    uint64_t x = run->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    run->rng = x;
    return x;
}

static void say(const app *a, const char *fmt, ...)
{
    if (a->o.quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

static void read_procs(app *a, sl_proc *out)
{
    for (int i = 0; i < a->o.npids; i++)
        sl_proc_read(a->o.pids[i], &out[i]);
}

static void room_id(const app *a, int i, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s-%d", a->prefix, i);
}

static void finish(app *a);

/* ---- room creation through the API ------------------------------------ */

static size_t rooms_next(sl_http *h, char *buf, size_t cap)
{
    app *a = A(h->run);
    if (a->rooms_next >= a->rooms_total)
        return 0;
    char id[64], body[128];
    room_id(a, a->rooms_next++, id, sizeof(id));
    int bl = snprintf(body, sizeof(body), "{\"roomId\":\"%s\"}", id);
    int n = snprintf(buf, cap,
                     "POST /api/create_room HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     a->o.api_name, bl, body);
    return (size_t)n;
}

static void rooms_close_all(app *a)
{
    for (int i = 0; i < a->nhttps; i++)
        sl_http_close(&a->https[i]);
}

static void rooms_done(sl_http *h, int status, const char *body, size_t len)
{
    app *a = A(h->run);
    if (status == 200 && memmem(body, len, "\"success\":true", 14))
        a->rooms_ok++;
    else
        a->rooms_failed++;
    if (++a->rooms_done == a->rooms_total) {
        say(a, "rooms: %d created, %d failed\n", a->rooms_ok, a->rooms_failed);
        rooms_close_all(a);
        if (a->rooms_failed) {
            a->errors += (uint64_t)a->rooms_failed;
            finish(a);
            return;
        }
        a->after_rooms(a);
    } else if (status < 0 && a->rooms_next < a->rooms_total) {
        /* a dead connection: the remaining rooms go through the others */
    }
}

/* Connect a->nhttps keep-alive clients (already allocated) to the room API. */
static void start_https(app *a, sl_http_next_fn next, sl_http_done_fn done)
{
    for (int i = 0; i < a->nhttps; i++) {
        sl_http *h = &a->https[i];
        h->run = &a->run;
        h->index = i;
        h->next = next;
        h->done = done;
        sl_http_start(h, &a->o.api);
    }
}

static void create_rooms(app *a, int n, void (*then)(app *))
{
    a->rooms_total = n;
    a->after_rooms = then;
    if (n == 0) {
        then(a);
        return;
    }
    a->nhttps = n < 16 ? n : 16;
    a->https = calloc((size_t)a->nhttps, sizeof(sl_http));
    start_https(a, rooms_next, rooms_done);
}

/* ---- connection ramp (idle, relay) ------------------------------------- */

/* Start connections at --connect-rate with at most --inflight handshakes. */
static void ramp_step(app *a)
{
    if (a->ramp_done)
        return;
    double el = (double)(uv_hrtime() - a->ramp_t0) / 1e9;
    long allowed = (long)(el * a->o.connect_rate) + 1;
    while (a->next_conn < a->nconns && a->next_conn < allowed && a->handshakes < a->o.inflight) {
        sl_conn *c = &a->conns[a->next_conn++];
        a->handshakes++;
        sl_conn_start(c);
    }
}

static void handshake_over(app *a, sl_conn *c, int ok)
{
    (void)c;
    a->handshakes--;
    if (!ok)
        a->join_failed++;
}

static void send_join(app *a, sl_conn *c)
{
    char id[64], pkt[128];
    room_id(a, c->room, id, sizeof(id));
    int n = snprintf(pkt, sizeof(pkt), "42[\"join\",{\"roomId\":\"%s\"}]", id);
    sl_conn_send(c, pkt, (size_t)n);
}

static int join_ok(const char *pkt, size_t len)
{
    return memmem(pkt, len, "\"success\":true", 14) != NULL;
}

/* ---- idle ------------------------------------------------------------------ */

/* phase 0 ramp, 1 settle, 2 hold, 3 closing */

static void idle_ready(sl_conn *c)
{
    app *a = A(c->run);
    if (a->o.join) {
        send_join(a, c);
        return;
    }
    c->joined = 1;
    a->joined++;
    sl_hist_add(&a->hist_connect, uv_hrtime() - c->t_start);
    handshake_over(a, c, 1);
}

static void idle_event(sl_conn *c, const char *name, size_t nl, const char *pkt, size_t len)
{
    app *a = A(c->run);
    if (nl == 12 && memcmp(name, "joinResponse", 12) == 0 && !c->joined) {
        if (join_ok(pkt, len)) {
            c->joined = 1;
            a->joined++;
            sl_hist_add(&a->hist_connect, uv_hrtime() - c->t_start);
            handshake_over(a, c, 1);
        } else {
            handshake_over(a, c, 0);
            c->joined = -1;
            sl_conn_close(c);
        }
    }
}

static void idle_closed(sl_conn *c, int err)
{
    app *a = A(c->run);
    (void)err;
    if (c->joined == 1) {
        if (a->phase < 3) {
            a->dropped++;
            a->joined--;
        }
    } else if (c->joined == 0) {
        handshake_over(a, c, 0);
    }
    c->joined = -1;
}

static const sl_mode_ops IDLE_OPS = {idle_ready, idle_event, idle_closed};

/* The measured window: server and generator CPU (and server memory) read
 * at its start and end. */
static void measure_begin(app *a)
{
    read_procs(a, a->proc0);
    a->self_cpu0 = self_cpu();
    a->measuring = 1;
}

static void measure_end(app *a)
{
    read_procs(a, a->proc1);
    a->self_cpu1 = self_cpu();
    a->measuring = 0;
}

static void idle_tick(app *a)
{
    uint64_t now = uv_hrtime();
    if (a->phase == 0) {
        ramp_step(a);
        if (a->next_conn == a->nconns && a->handshakes == 0) {
            a->ramp_done = 1;
            a->ramp_s = (double)(now - a->ramp_t0) / 1e9;
            say(a, "idle: %llu joined, %llu failed in %.1fs; settling\n", (unsigned long long)a->joined,
                (unsigned long long)a->join_failed, a->ramp_s);
            a->phase = 1;
            a->t0 = now;
        }
    } else if (a->phase == 1 && now - a->t0 >= 2000000000ull) {
        /* Memory once everything is connected and quiet. */
        read_procs(a, a->proc0);
        sl_sockstat(&a->sock_mem, &a->sock_inuse);
        a->self_cpu0 = self_cpu();
        a->phase = 2;
        a->t_measure = now;
        a->t_end = now + (uint64_t)(a->o.duration * 1e9);
        a->measuring = 1;
    } else if (a->phase == 2 && now >= a->t_end) {
        measure_end(a);
        a->open_at_end = a->joined;
        a->phase = 3;
        finish(a);
    }
}

static void idle_start(app *a)
{
    a->ramp_t0 = uv_hrtime();
    a->phase = 0;
}

/* ---- relay --------------------------------------------------------------------- */

/* phase 0 ramp+handshake, 1 signalling (warmup then measured), 2 drain */

static const char CANDIDATE[] =
    "candidate:842163049 1 udp 1677729535 203.0.113.7 51234 typ srflx raddr 10.0.0.5 rport 51234 "
    "generation 0 ufrag EsAw network-cost 999";

static void send_candidate(app *a, sl_conn *from, uint64_t t)
{
    if (a->o.signals && a->sent >= a->o.signals)
        return;
    char pkt[512];
    int n = snprintf(pkt, sizeof(pkt),
                     "42[\"ice-candidate\",{\"peerId\":\"%s\",\"candidate\":{\"candidate\":\"%s\","
                     "\"sdpMid\":\"0\",\"sdpMLineIndex\":0,\"usernameFragment\":\"EsAw\",\"t\":%llu},"
                     "\"from\":\"%s\"}]",
                     from->peer->sid, CANDIDATE, (unsigned long long)t, from->sid);
    sl_conn_send(from, pkt, (size_t)n);
    from->sent++;
    a->sent++;
}

static void send_sdp(sl_conn *from, const char *kind)
{
    char pkt[768];
    int n = snprintf(pkt, sizeof(pkt),
                     "42[\"%s\",{\"peerId\":\"%s\",\"%s\":{\"type\":\"%s\",\"sdp\":\"v=0\\r\\no=- "
                     "4611731400430051336 2 IN IP4 127.0.0.1\\r\\ns=-\\r\\nt=0 0\\r\\na=group:BUNDLE "
                     "0\\r\\na=msid-semantic: WMS\\r\\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\\r\\n"
                     "c=IN IP4 0.0.0.0\\r\\na=ice-ufrag:EsAw\\r\\na=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\\r\\n"
                     "a=fingerprint:sha-256 "
                     "D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F"
                     "\\r\\na=setup:actpass\\r\\na=mid:0\\r\\na=sctp-port:5000\\r\\n\"},\"from\":\"%s\"}]",
                     kind, from->peer->sid, kind, kind, from->sid);
    sl_conn_send(from, pkt, (size_t)n);
}

static uint64_t payload_time(const char *pkt, size_t len)
{
    const char *p = memmem(pkt, len, "\"t\":", 4);
    if (!p)
        return 0;
    p += 4;
    uint64_t v = 0;
    while (p < pkt + len && *p >= '0' && *p <= '9')
        v = v * 10 + (uint64_t)(*p++ - '0');
    return v;
}

static void relay_ready(sl_conn *c)
{
    send_join(A(c->run), c);
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
    app *a = A(c->run);
    if (nl == 13 && memcmp(name, "ice-candidate", 13) == 0) {
        uint64_t now = uv_hrtime();
        uint64_t t = payload_time(pkt, len);
        c->received++;
        a->received++;
        if (a->measuring && t >= a->t_measure) {
            a->received_window++;
            sl_hist_add(&a->hist, now - t);
        }
        if (a->o.rate <= 0 && a->sending && c->peer->state == SL_C_READY)
            send_candidate(a, c, now);
        return;
    }
    if (nl == 12 && memcmp(name, "joinResponse", 12) == 0) {
        if (!join_ok(pkt, len)) {
            c->joined = -1;
            if (c->peer->joined != -1)
                relay_established(a, 0);
            c->peer->joined = -1;
            return;
        }
        c->joined = 1;
        if (c->peer->joined == 1) {
            sl_conn *first = (c->index & 1) ? c->peer : c; /* A offers */
            send_sdp(first, "offer");
        }
        return;
    }
    if (nl == 5 && memcmp(name, "offer", 5) == 0) {
        send_sdp(c, "answer");
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
    app *a = A(c->run);
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

static void pace_start(app *a);
static void pace_stop(app *a);

static void relay_tick(app *a)
{
    uint64_t now = uv_hrtime();
    if (a->phase == 0) {
        ramp_step(a);
        if (a->next_conn == a->nconns && a->handshakes <= 0) {
            a->ramp_done = 1;
            a->ramp_s = (double)(now - a->ramp_t0) / 1e9;
            say(a, "relay: %llu rooms ready, %llu failed in %.1fs\n", (unsigned long long)a->established,
                (unsigned long long)a->join_failed, a->ramp_s);
            if (a->established == 0) {
                finish(a);
                return;
            }
            a->phase = 1;
            a->t0 = now;
            a->t_measure = now + (uint64_t)(a->o.warmup * 1e9);
            a->t_end = a->t_measure + (uint64_t)(a->o.duration * 1e9);
            a->sending = 1;
            if (a->o.rate > 0)
                pace_start(a);
            if (a->o.rate <= 0) {
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
        if (!a->measuring && now >= a->t_measure && now < a->t_end) {
            measure_begin(a);
        }
        if (now >= a->t_end || (a->o.signals && a->received >= a->o.signals)) {
            if (!a->measuring)
                measure_begin(a);
            measure_end(a);
            a->sending = 0;
            pace_stop(a);
            a->phase = 2;
            a->t0 = now;
            return;
        }
        return;
    }
    if (a->phase == 2 && now - a->t0 >= 500000000ull) {
        a->phase = 3;
        finish(a);
    }
}

static void relay_start(app *a)
{
    a->ramp_t0 = uv_hrtime();
    a->phase = 0;
}

/* ---- churn ------------------------------------------------------------------------ */

/* Each slot is a pair (2i, 2i+1) cycling through connect, join, offer, close.
 * phase 0 warmup, 1 measured, 2 winding down. */

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

static void churn_event(sl_conn *c, const char *name, size_t nl, const char *pkt, size_t len)
{
    app *a = A(c->run);
    if (nl == 12 && memcmp(name, "joinResponse", 12) == 0) {
        if (!join_ok(pkt, len)) {
            churn_end_cycle(a, c, 0);
            return;
        }
        c->joined = 1;
        if (c->peer->joined == 1) {
            sl_conn *x = (c->index & 1) ? c->peer : c;
            send_sdp(x, "offer");
        }
        return;
    }
    if (nl == 5 && memcmp(name, "offer", 5) == 0)
        churn_end_cycle(a, c, 1);
}

static void churn_closed(sl_conn *c, int err)
{
    app *a = A(c->run);
    (void)err;
    if (c->joined != 3)
        churn_end_cycle(a, c, 0);
    if (c->peer->state != SL_C_IDLE)
        return;
    /* Both halves closed: next cycle. */
    if (a->phase < 2)
        churn_cycle_start(a, c->index / 2);
}

static const sl_mode_ops CHURN_OPS = {relay_ready, churn_event, churn_closed};

static void churn_tick(app *a)
{
    uint64_t now = uv_hrtime();
    if (a->phase == 0 && now >= a->t_measure) {
        measure_begin(a);
        a->phase = 1;
    } else if (a->phase == 1 && now >= a->t_end) {
        measure_end(a);
        a->phase = 2;
        a->t0 = now;
    } else if (a->phase == 2) {
        int busy = 0;
        for (int i = 0; i < a->nconns; i++)
            busy += a->conns[i].state != SL_C_IDLE;
        if (!busy || now - a->t0 > 3000000000ull) {
            a->phase = 3;
            finish(a);
        }
    }
}

static void churn_start(app *a)
{
    uint64_t now = uv_hrtime();
    a->t_measure = now + (uint64_t)(a->o.warmup * 1e9);
    a->t_end = a->t_measure + (uint64_t)(a->o.duration * 1e9);
    a->phase = 0;
    for (int i = 0; i < a->nconns / 2; i++)
        churn_cycle_start(a, i);
}

/* ---- api ---------------------------------------------------------------------------- */

static size_t api_next(sl_http *h, char *buf, size_t cap)
{
    app *a = A(h->run);
    if (a->phase >= 2)
        return 0;
    uint64_t now = uv_hrtime();
    if (a->o.rate > 0) {
        uint64_t due = (uint64_t)((double)(now - a->t0) / 1e9 * a->o.rate);
        if (a->issued >= due)
            return 0;
        h->t_sched = a->t0 + (uint64_t)((double)a->issued * 1e9 / a->o.rate);
    } else {
        h->t_sched = now;
    }
    a->issued++;
    if (strcmp(a->o.route, "get_room") == 0)
        return (size_t)snprintf(buf, cap, "GET /api/get_room HTTP/1.1\r\nHost: %s\r\n\r\n", a->o.api_name);
    char id[64], body[128];
    room_id(a, 0, id, sizeof(id));
    int bl = snprintf(body, sizeof(body), "{\"roomId\":\"%s\"}", id);
    return (size_t)snprintf(buf, cap,
                            "POST /api/check_room HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                            "Content-Length: %d\r\n\r\n%s",
                            a->o.api_name, bl, body);
}

static void api_done(sl_http *h, int status, const char *body, size_t len)
{
    app *a = A(h->run);
    (void)body;
    (void)len;
    uint64_t now = uv_hrtime();
    if (status == 200) {
        a->ok++;
        /* Every answer that comes inside the window counts, and its latency
         * is measured from when it was due. If the answer had to be scheduled
         * inside the window too, a generator that fell behind its own
         * schedule during the warm-up (a busy machine) would have no sample
         * at all. Measuring from the due time already charges the lateness
         * to the latency. */
        if (a->measuring) {
            a->ok_window++;
            sl_hist_add(&a->hist, now - h->t_sched);
        }
    } else {
        a->errors++;
    }
}

static void api_tick(app *a)
{
    uint64_t now = uv_hrtime();
    if (a->phase == 0 && now >= a->t_measure) {
        measure_begin(a);
        a->phase = 1;
    } else if (a->phase == 1 && now >= a->t_end) {
        measure_end(a);
        pace_stop(a);
        a->phase = 2;
        a->t0 = now;
    } else if (a->phase == 2 && now - a->t0 > 300000000ull) {
        a->phase = 3;
        finish(a);
        return;
    }
    if (a->phase < 2)
        for (int i = 0; i < a->nhttps; i++)
            sl_http_kick(&a->https[i]);
}

static void api_start(app *a)
{
    a->https = calloc((size_t)a->o.conns, sizeof(sl_http));
    a->nhttps = a->o.conns;
    uint64_t now = uv_hrtime();
    a->t0 = now;
    a->t_measure = now + (uint64_t)(a->o.warmup * 1e9);
    a->t_end = a->t_measure + (uint64_t)(a->o.duration * 1e9);
    a->phase = 0;
    start_https(a, api_next, api_done);
    if (a->o.rate > 0)
        pace_start(a);
}

/* ---- rolling ---------------------------------------------------------------------- */

/* --rooms rooms of two peers behind the front (front.c) while the caller
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

static roll_peer *RP(app *a, sl_conn *c) { return &a->roll[c->index]; }

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
    c->target = sl_front_pick(a->front);
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
    sl_conn *c = t->data;
    app *a = A(c->run);
    if (c->state == SL_C_IDLE)
        roll_connect(a, c);
    else if (c->state == SL_C_READY && RP(a, c)->want_join)
        send_join(a, c);
}

static void roll_later(app *a, sl_conn *c, uint64_t ms)
{
    if (!a->finished)
        uv_timer_start(&RP(a, c)->retry, roll_on_retry, ms, 0);
}

static void roll_room_check(app *a, int room)
{
    roll_room *r = &a->rooms_roll[room];
    sl_conn *x = &a->conns[2 * room], *y = &a->conns[2 * room + 1];
    int met = RP(a, x)->met && RP(a, y)->met;
    if (met && !r->met) {
        r->met = 1;
        a->rooms_met++;
        if (r->t_apart) {
            sl_hist_add(&a->hist_remeet, uv_hrtime() - r->t_apart);
            r->t_apart = 0;
        }
    } else if (!met && r->met) {
        r->met = 0;
        a->rooms_met--;
    }
}

static void roll_ready(sl_conn *c)
{
    app *a = A(c->run);
    roll_peer *p = RP(a, c);
    p->attempt = 0;
    p->want_join = 1;
    if (p->ramping) {
        p->ramping = 0;
        a->handshakes--;
    }
    send_join(a, c);
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
                     p->psid, CANDIDATE, (unsigned long long)now, seq, c->sid);
    sl_conn_send(c, pkt, (size_t)n);
    a->sent++;
}

static uint64_t payload_u64(const char *pkt, size_t len, const char *key)
{
    const char *p = memmem(pkt, len, key, strlen(key));
    if (!p)
        return UINT64_MAX;
    p += strlen(key);
    uint64_t v = 0;
    int digits = 0;
    while (p < pkt + len && *p >= '0' && *p <= '9' && digits < 20) {
        v = v * 10 + (uint64_t)(*p++ - '0');
        digits++;
    }
    return digits ? v : UINT64_MAX;
}

static void roll_join_answer(app *a, sl_conn *c, const char *pkt, size_t len)
{
    roll_peer *p = RP(a, c);
    if (!p->want_join)
        return;
    if (join_ok(pkt, len)) {
        p->want_join = 0;
        p->limited = 0;
        c->joined = 1;
        if (p->t_lost) {
            sl_hist_add(&a->hist_rejoin, uv_hrtime() - p->t_lost);
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
        a->rate_limited++;
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
        a->server_errors++;
        roll_later(a, c, 3000);
    } else {
        a->join_failed++;
        p->want_join = 0;
    }
}

static void roll_event(sl_conn *c, const char *name, size_t nl, const char *pkt, size_t len)
{
    app *a = A(c->run);
    roll_peer *p = RP(a, c);
    if (nl == 13 && memcmp(name, "ice-candidate", 13) == 0) {
        uint64_t seq = payload_u64(pkt, len, "\"s\":"), t = payload_u64(pkt, len, "\"t\":");
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
    app *a = A(c->run);
    roll_peer *p = RP(a, c);
    uint64_t now = uv_hrtime();
    int was_ready = c->sid[0] != '\0';
    sl_front_release(a->front, c->target);
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
        a->moves++;
        if (!p->t_lost)
            p->t_lost = now;
    } else if (!was_ready) {
        a->connects_refused++;
        p->attempt++;
    }
    c->joined = 0;
    p->met = 0;
    p->want_join = 0;
    roll_room_check(a, c->room);
    if (!a->rooms_roll[c->room].t_apart && a->phase > 0) {
        a->rooms_roll[c->room].t_apart = now;
        a->rooms_roll[c->room].disrupted = 1;
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
        sl_conn *c = &a->conns[a->roll_cursor++ % (unsigned)n];
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
        fprintf(f, "steady %d rooms\n", a->rooms_met);
        fclose(f);
    }
}

static void roll_tick(app *a)
{
    uint64_t now = uv_hrtime();
    if (a->t_end && now >= a->t_end && a->phase < 3) {
        say(a, "rolling: --duration reached (phase %d), stopping\n", a->phase);
        a->timed_out = 1;
        a->phase = 3;
        a->t0 = now;
    }
    if (a->phase == 0) {
        if (sl_front_ready_count(a->front) == 0)
            return;
        if (!a->ramp_t0)
            a->ramp_t0 = now;
        double el = (double)(now - a->ramp_t0) / 1e9;
        long allowed = (long)(el * a->o.connect_rate) + 1;
        while (a->next_conn < a->nconns && a->next_conn < allowed && a->handshakes < a->o.inflight) {
            a->handshakes++;
            a->roll[a->next_conn].ramping = 1;
            roll_connect(a, &a->conns[a->next_conn++]);
        }
        if (a->rooms_met == a->nconns / 2) {
            a->ramp_s = (double)(now - a->ramp_t0) / 1e9;
            say(a, "rolling: steady, %d rooms met in %.1fs; signals flowing, waiting for SIGUSR1\n", a->rooms_met,
                a->ramp_s);
            a->phase = 1;
            a->t0 = now;
            a->issued = 0;
            a->t_measure = now;
            measure_begin(a);
            roll_write_ready_file(a);
        }
        return;
    }
    roll_pace(a); /* once a millisecond: signals leave in small batches */
    if (a->phase == 1 && a->rollout_done) {
        a->phase = 2;
        a->t_rollout_end = now;
        say(a, "rolling: rollout over; %d/%d rooms met, settling\n", a->rooms_met, a->nconns / 2);
    }
    if (a->phase == 2) {
        int all = a->rooms_met == a->nconns / 2;
        if (all || now - a->t_rollout_end >= (uint64_t)(a->o.settle * 1e9)) {
            a->settle_s = (double)(now - a->t_rollout_end) / 1e9;
            a->phase = 3;
            a->t0 = now;
        }
        return;
    }
    if (a->phase == 3) {
        if (!a->t_roll_stop) {
            a->t_roll_stop = now;
            a->t_end = now;
            measure_end(a);
        }
        /* Signals still in flight arrive: wait until nothing more has come
         * for 500 ms (at least 1 s, at most 10 s as a hang guard). */
        if (a->received != a->roll_last_received) {
            a->roll_last_received = a->received;
            a->t_roll_quiet = now;
        }
        if (!a->t_roll_quiet)
            a->t_roll_quiet = now;
        if ((now - a->t_roll_stop >= 1000000000ull && now - a->t_roll_quiet >= 500000000ull) ||
            now - a->t_roll_stop >= 10000000000ull) {
            a->phase = 4;
            finish(a);
        }
    }
}

static void roll_on_usr1(uv_signal_t *s, int sig)
{
    (void)sig;
    app *a = s->data;
    a->rollout_done = 1;
}

static void roll_start(app *a)
{
    a->roll = calloc((size_t)a->nconns, sizeof(roll_peer));
    a->rooms_roll = calloc((size_t)a->nconns / 2, sizeof(roll_room));
    if (!a->roll || !a->rooms_roll) {
        fprintf(stderr, "sigload: out of memory\n");
        exit(1);
    }
    for (int i = 0; i < a->nconns; i++) {
        roll_peer *p = &a->roll[i];
        p->c = &a->conns[i];
        uv_timer_init(a->run.loop, &p->retry);
        p->retry.data = p->c;
    }
    a->front = sl_front_create(&a->run, a->o.health_interval, a->o.leastconn);
    if (!a->front) {
        fprintf(stderr, "sigload: out of memory\n");
        exit(1);
    }
    uv_signal_init(a->run.loop, &a->sigusr1);
    a->sigusr1.data = a;
    uv_signal_start(&a->sigusr1, roll_on_usr1, SIGUSR1);
    uint64_t now = uv_hrtime();
    a->t_end = now + (uint64_t)(a->o.duration * 1e9);
    a->phase = 0;
    a->roll_started = 1;
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
    for (int i = 0; a->roll && i < a->nconns; i++) {
        roll_peer *p = &a->roll[i], *q = &a->roll[i ^ 1];
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

/* ---- loop plumbing ---------------------------------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
    app *a = t->data;
    if (a->finished)
        return;
    switch (a->o.mode) {
    case M_IDLE:
        /* Not before the rooms exist (idle_start), or early joins would
         * find no room. */
        if (a->conns && a->ramp_t0)
            idle_tick(a);
        break;
    case M_RELAY:
        if (a->conns && a->ramp_t0)
            relay_tick(a);
        break;
    case M_CHURN:
        if (a->t_end)
            churn_tick(a);
        break;
    case M_API:
        if (a->t_end)
            api_tick(a);
        break;
    case M_ROLLING:
        if (a->roll_started)
            roll_tick(a);
        break;
    }
}

static void on_progress(uv_timer_t *t)
{
    app *a = t->data;
    if (a->finished)
        return;
    switch (a->o.mode) {
    case M_IDLE:
        say(a, "  joined %llu  failed %llu  dropped %llu  pings %llu\n", (unsigned long long)a->joined,
            (unsigned long long)a->join_failed, (unsigned long long)a->dropped, (unsigned long long)a->run.pings);
        break;
    case M_RELAY:
        say(a, "  rooms %llu  sent %llu  received %llu\n", (unsigned long long)a->established,
            (unsigned long long)a->sent, (unsigned long long)a->received);
        break;
    case M_CHURN:
        say(a, "  cycles %llu  failed %llu\n", (unsigned long long)a->cycles, (unsigned long long)a->cycles_failed);
        break;
    case M_API:
        say(a, "  ok %llu  errors %llu\n", (unsigned long long)a->ok, (unsigned long long)a->errors);
        break;
    case M_ROLLING:
        say(a, "  rooms met %d/%d  moves %llu  rate-limited %llu  signals %llu/%llu\n", a->rooms_met,
            a->nconns / 2, (unsigned long long)a->moves, (unsigned long long)a->rate_limited,
            (unsigned long long)a->received, (unsigned long long)a->sent);
        break;
    }
}

/* Open-loop runs poll instead of sleeping between timer ticks, so that
 * each signal or request leaves within microseconds of its due time rather
 * than in a burst once a millisecond; the generator's core is busy for it. */
static void on_pace(uv_idle_t *idle)
{
    app *a = idle->data;
    if (a->finished)
        return;
    if (a->o.mode == M_RELAY) {
        relay_pace(a);
    } else if (a->o.mode == M_API && a->phase < 2) {
        for (int i = 0; i < a->nhttps; i++)
            sl_http_kick(&a->https[i]);
    }
}

static void pace_start(app *a)
{
    if (!uv_is_active((uv_handle_t *)&a->pace))
        uv_idle_start(&a->pace, on_pace);
}

static void pace_stop(app *a)
{
    uv_idle_stop(&a->pace);
}

static void on_flush(uv_prepare_t *p)
{
    sl_flush_dirty(p->data);
}

static void on_sigint(uv_signal_t *s, int sig)
{
    (void)sig;
    app *a = s->data;
    say(a, "interrupted\n");
    if (a->measuring) {
        read_procs(a, a->proc1);
        a->self_cpu1 = self_cpu();
        a->t_end = uv_hrtime();
        a->measuring = 0;
    }
    finish(a);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void finish(app *a)
{
    if (a->finished)
        return;
    a->finished = 1;
    a->phase = 3;
    uv_timer_stop(&a->tick);
    uv_timer_stop(&a->progress);
    pace_stop(a);
    if (a->o.mode == M_IDLE && !a->open_at_end)
        a->open_at_end = a->joined;
    for (int i = 0; i < a->nconns; i++)
        sl_conn_close(&a->conns[i]);
    for (int i = 0; i < a->nhttps; i++)
        sl_http_close(&a->https[i]);
    uv_walk(a->run.loop, close_walk, NULL);
}

/* ---- report ------------------------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb(sbuf *s, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(s->p ? s->p + s->len : NULL, s->p ? s->cap - s->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (s->p && s->len + (size_t)n < s->cap) {
            s->len += (size_t)n;
            return;
        }
        size_t cap = s->cap ? s->cap * 2 : 4096;
        while (cap < s->len + (size_t)n + 1)
            cap *= 2;
        char *q = realloc(s->p, cap);
        if (!q)
            return;
        s->p = q;
        s->cap = cap;
    }
}

static void sb_hist(sbuf *s, const char *key, const sl_hist *h)
{
    sb(s, "\"%s\":{\"count\":%llu,\"min_us\":%.1f,\"mean_us\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,"
          "\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f}",
       key, (unsigned long long)h->count, (double)h->min / 1e3, h->count ? h->sum / (double)h->count / 1e3 : 0.0,
       (double)sl_hist_quantile(h, 0.5) / 1e3, (double)sl_hist_quantile(h, 0.9) / 1e3,
       (double)sl_hist_quantile(h, 0.99) / 1e3, (double)sl_hist_quantile(h, 0.999) / 1e3, (double)h->max / 1e3);
}

static void report(app *a)
{
    const opts *o = &a->o;
    double window = a->t_end > a->t_measure ? (double)(a->t_end - a->t_measure) / 1e9 : 0;
    double cpu = 0;
    long rss_base = 0, rss0 = 0, rss1 = 0;
    for (int i = 0; i < o->npids; i++) {
        cpu += a->proc1[i].cpu_s - a->proc0[i].cpu_s;
        rss_base += a->proc_base[i].rss_kb;
        rss0 += a->proc0[i].rss_kb;
        rss1 += a->proc1[i].rss_kb;
    }
    double gen_cpu = a->self_cpu1 - a->self_cpu0;
    sbuf j = {0};
    sb(&j, "{\"tool\":\"privydrop-sigload\",\"mode\":\"%s\",\"label\":\"%s\",\"targets\":[", MODE_NAMES[o->mode],
       o->label ? o->label : "");
    for (int i = 0; i < a->run.ntargets; i++)
        sb(&j, "%s\"%s\"", i ? "," : "", a->run.target_names[i]);
    sb(&j, "],\"api\":\"%s\",\"params\":{\"conns\":%d,\"rooms\":%d,\"cross\":%s,\"rate\":%.0f,\"window\":%d,"
           "\"route\":\"%s\",\"duration_s\":%.2f,\"warmup_s\":%.2f,\"src_count\":%d},",
       o->api_name, o->conns, o->rooms, o->cross ? "true" : "false", o->rate, o->window, o->route, o->duration,
       o->warmup, a->run.src_count);
    sb(&j, "\"window_s\":%.3f,\"servers\":{\"pids\":[", window);
    for (int i = 0; i < o->npids; i++)
        sb(&j, "%s%d", i ? "," : "", o->pids[i]);
    sb(&j, "],\"cpu_s\":%.3f,\"cpu_s_each\":[", cpu);
    for (int i = 0; i < o->npids; i++)
        sb(&j, "%s%.3f", i ? "," : "", a->proc1[i].cpu_s - a->proc0[i].cpu_s);
    sb(&j, "],\"rss_kb_base\":%ld,\"rss_kb_start\":%ld,\"rss_kb_end\":%ld},", rss_base, rss0, rss1);
    sb(&j, "\"generator_cpu_s\":%.3f,\"client\":{\"connects_ok\":%llu,\"connects_failed\":%llu,"
           "\"closed_by_server\":%llu,\"protocol_errors\":%llu,\"pings\":%llu,\"upgrades_refused\":%llu},",
       gen_cpu, (unsigned long long)a->run.connects_ok, (unsigned long long)a->run.connects_failed,
       (unsigned long long)a->run.closed_by_server, (unsigned long long)a->run.protocol_errors,
       (unsigned long long)a->run.pings, (unsigned long long)a->run.upgrades_refused);
    printf("privydrop-sigload %s%s%s: %.1fs measured", MODE_NAMES[o->mode], o->label ? " " : "",
           o->label ? o->label : "", window);
    if (o->npids)
        printf(", servers used %.2f CPU-s (%.0f%% of one core)", cpu, window > 0 ? 100 * cpu / window : 0);
    printf(", generator %.2f CPU-s\n", gen_cpu);
    const sl_hist *lat = &a->hist;
    switch (o->mode) {
    case M_IDLE: {
        double per = a->joined ? (double)(rss0 - rss_base) * 1024.0 / (double)a->joined : 0;
        long kmem = a->sock_mem - a->sock_mem_base;
        sb(&j, "\"idle\":{\"joined\":%llu,\"failed\":%llu,\"dropped\":%llu,\"open_at_end\":%llu,\"ramp_s\":%.2f,"
               "\"rss_bytes_per_conn\":%.1f,\"kernel_tcp_mem_bytes\":%ld,\"kernel_tcp_mem_per_conn\":%.1f,"
               "\"tcp_sockets\":%ld,",
           (unsigned long long)a->joined, (unsigned long long)a->join_failed, (unsigned long long)a->dropped,
           (unsigned long long)a->open_at_end, a->ramp_s, per, kmem,
           a->joined ? (double)kmem / (double)a->joined : 0, a->sock_inuse - a->sock_inuse_base);
        sb_hist(&j, "connect_join", &a->hist_connect);
        sb(&j, "},");
        printf("  %llu sockets joined (%llu failed, %llu dropped) in %.1fs; %llu still open after %.0fs\n",
               (unsigned long long)a->joined, (unsigned long long)a->join_failed, (unsigned long long)a->dropped,
               a->ramp_s, (unsigned long long)a->open_at_end, window);
        if (o->npids)
            printf("  server RSS %ld kB at start, %ld kB joined: %.0f bytes per socket\n", rss_base, rss0, per);
        printf("  kernel TCP buffers (both ends): %ld kB, %.0f bytes per socket\n", kmem / 1024,
               a->joined ? (double)kmem / (double)a->joined : 0);
        lat = &a->hist_connect;
        break;
    }
    case M_RELAY: {
        double rate = window > 0 ? (double)a->received_window / window : 0;
        sb(&j, "\"relay\":{\"rooms_ready\":%llu,\"rooms_failed\":%llu,\"sent\":%llu,\"received\":%llu,"
               "\"received_window\":%llu,\"dropped\":%llu,\"per_s\":%.1f,\"per_server_cpu_s\":%.1f},",
           (unsigned long long)a->established, (unsigned long long)a->join_failed, (unsigned long long)a->sent,
           (unsigned long long)a->received, (unsigned long long)a->received_window, (unsigned long long)a->dropped,
           rate, cpu > 0 ? (double)a->received_window / cpu : 0);
        if (a->hist_lag.count) {
            /* Time a signal waited in the generator before leaving: when
             * it grows, the generator is the bottleneck and the latency
             * below is partly its own. */
            sb_hist(&j, "send_lag", &a->hist_lag);
            sb(&j, ",");
        }
        printf("  %llu rooms, %llu signals sent, %llu received; %.0f/s in the window", (unsigned long long)a->established,
               (unsigned long long)a->sent, (unsigned long long)a->received, rate);
        if (cpu > 0)
            printf(", %.0f per server CPU-second", (double)a->received_window / cpu);
        printf("\n");
        if (a->hist_lag.count)
            printf("  generator send lag: p50 %.0f us  p99 %.0f us  max %.0f us\n",
                   (double)sl_hist_quantile(&a->hist_lag, 0.5) / 1e3,
                   (double)sl_hist_quantile(&a->hist_lag, 0.99) / 1e3, (double)a->hist_lag.max / 1e3);
        break;
    }
    case M_CHURN: {
        double rate = window > 0 ? (double)a->ok_window / window : 0;
        sb(&j, "\"churn\":{\"cycles\":%llu,\"failed\":%llu,\"cycles_window\":%llu,\"per_s\":%.1f,"
               "\"per_server_cpu_s\":%.1f},",
           (unsigned long long)a->cycles, (unsigned long long)a->cycles_failed, (unsigned long long)a->ok_window,
           rate, cpu > 0 ? (double)a->ok_window / cpu : 0);
        printf("  %llu cycles (%llu failed); %.0f/s in the window\n", (unsigned long long)a->cycles,
               (unsigned long long)a->cycles_failed, rate);
        break;
    }
    case M_API: {
        double rate = window > 0 ? (double)a->ok_window / window : 0;
        sb(&j, "\"api\":{\"ok\":%llu,\"errors\":%llu,\"ok_window\":%llu,\"per_s\":%.1f,\"per_server_cpu_s\":%.1f},",
           (unsigned long long)a->ok, (unsigned long long)a->errors, (unsigned long long)a->ok_window, rate,
           cpu > 0 ? (double)a->ok_window / cpu : 0);
        printf("  %s: %llu ok, %llu errors; %.0f/s in the window", o->route, (unsigned long long)a->ok,
               (unsigned long long)a->errors, rate);
        if (cpu > 0)
            printf(", %.0f per server CPU-second", (double)a->ok_window / cpu);
        printf("\n");
        break;
    }
    case M_ROLLING: {
        uint64_t lost_in, lost_out, dups;
        roll_count_losses(a, &lost_in, &lost_out, &dups);
        int rooms = a->nconns / 2, disrupted = 0, apart_met = 0;
        uint32_t max_moves = 0;
        for (int i = 0; a->rooms_roll && i < rooms; i++) {
            disrupted += a->rooms_roll[i].disrupted;
            apart_met += a->rooms_roll[i].disrupted && a->rooms_roll[i].met;
        }
        for (int i = 0; a->roll && i < a->nconns; i++)
            if (a->roll[i].moves > max_moves)
                max_moves = a->roll[i].moves;
        a->lost_outside = lost_out;
        sb(&j, "\"rolling\":{\"front\":\"%s\",\"rooms\":%d,\"rooms_met_at_end\":%d,\"rooms_disrupted\":%d,"
               "\"rooms_met_again\":%d,\"met_again_pct\":%.2f,\"rollout_seen\":%s,\"timed_out\":%s,"
               "\"settle_s\":%.3f,\"moves\":%llu,\"max_moves_per_peer\":%u,\"connects_refused\":%llu,"
               "\"rate_limited\":%llu,\"server_errors\":%llu,\"join_refused\":%llu,\"signals_sent\":%llu,"
               "\"signals_received\":%llu,\"lost_in_window\":%llu,\"lost_outside\":%llu,\"duplicates\":%llu,",
           o->leastconn ? "leastconn" : "rr", rooms, a->rooms_met, disrupted, apart_met,
           disrupted ? 100.0 * apart_met / disrupted : 0.0, a->rollout_done ? "true" : "false", a->timed_out ? "true" : "false", a->settle_s,
           (unsigned long long)a->moves, max_moves, (unsigned long long)a->connects_refused,
           (unsigned long long)a->rate_limited, (unsigned long long)a->server_errors,
           (unsigned long long)a->join_failed, (unsigned long long)a->sent, (unsigned long long)a->received,
           (unsigned long long)lost_in, (unsigned long long)lost_out, (unsigned long long)dups);
        sb_hist(&j, "rejoin", &a->hist_rejoin);
        sb(&j, ",");
        sb_hist(&j, "remeet", &a->hist_remeet);
        sb(&j, "},");
        printf("  %d rooms: %d met at the end; %d disrupted by the rollout, %d met again (%.1f %%)%s\n", rooms,
               a->rooms_met, disrupted, apart_met, disrupted ? 100.0 * apart_met / disrupted : 0.0,
               a->rollout_done ? "" : " — the rollout's end was never signalled");
        printf("  %llu moves (at most %u for one peer), %llu refused connects, %llu joins rate-limited, "
               "%llu server errors, %llu refused\n",
               (unsigned long long)a->moves, max_moves, (unsigned long long)a->connects_refused,
               (unsigned long long)a->rate_limited, (unsigned long long)a->server_errors,
               (unsigned long long)a->join_failed);
        printf("  re-join p50 %.0f ms  p99 %.0f ms  max %.0f ms; met again p50 %.0f ms  p99 %.0f ms  max %.0f ms\n",
               (double)sl_hist_quantile(&a->hist_rejoin, 0.5) / 1e6,
               (double)sl_hist_quantile(&a->hist_rejoin, 0.99) / 1e6, (double)a->hist_rejoin.max / 1e6,
               (double)sl_hist_quantile(&a->hist_remeet, 0.5) / 1e6,
               (double)sl_hist_quantile(&a->hist_remeet, 0.99) / 1e6, (double)a->hist_remeet.max / 1e6);
        printf("  signals: %llu sent, %llu received; lost %llu in reconnect windows, %llu outside\n",
               (unsigned long long)a->sent, (unsigned long long)a->received, (unsigned long long)lost_in,
               (unsigned long long)lost_out);
        break;
    }
    }
    sb_hist(&j, "latency", &a->hist);
    sb(&j, "}\n");
    if (lat->count)
        printf("  latency%s: p50 %.0f us  p90 %.0f us  p99 %.0f us  p99.9 %.0f us  max %.0f us\n",
               lat == &a->hist_connect ? " (connect+join)" : "", (double)sl_hist_quantile(lat, 0.5) / 1e3,
               (double)sl_hist_quantile(lat, 0.9) / 1e3, (double)sl_hist_quantile(lat, 0.99) / 1e3,
               (double)sl_hist_quantile(lat, 0.999) / 1e3, (double)lat->max / 1e3);
    if (a->errors || a->run.protocol_errors)
        printf("  errors: %llu, protocol errors: %llu\n", (unsigned long long)a->errors,
               (unsigned long long)a->run.protocol_errors);
    fflush(stdout);
    if (o->json) {
        FILE *f = strcmp(o->json, "-") == 0 ? stdout : fopen(o->json, "w");
        if (f) {
            fwrite(j.p, 1, j.len, f);
            if (f != stdout)
                fclose(f);
        } else {
            fprintf(stderr, "sigload: cannot write %s: %s\n", o->json, strerror(errno));
        }
    }
    free(j.p);
}

/* ---- options ------------------------------------------------------------------------------- */

static int parse_hostport(const char *s, struct sockaddr_in *out, char *name, size_t cap)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof(host))
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    int port = atoi(colon + 1);
    if (port <= 0 || port > 65535 || uv_ip4_addr(host, port, out) != 0)
        return -1;
    snprintf(name, cap, "%.40s:%d", host, port);
    return 0;
}

static int die_usage(const char *msg, const char *arg)
{
    fprintf(stderr, "privydrop-sigload: %s%s%s\n\n%s", msg, arg ? " " : "", arg ? arg : "", USAGE);
    return 2;
}

static int parse_args(app *a, int argc, char **argv)
{
    opts *o = &a->o;
    sl_run *r = &a->run;
    o->conns = 100;
    o->rooms = 100;
    o->window = 4;
    o->duration = 10;
    o->warmup = 1;
    o->connect_rate = 4000;
    o->inflight = 200;
    o->route = "check_room";
    o->join = 1;
    o->settle = 15;
    o->health_interval = 100;
    parse_hostport("127.0.0.1:3001", &r->targets[0], r->target_names[0], sizeof(r->target_names[0]));
    r->ntargets = 1;
    parse_hostport("127.0.0.1:3002", &o->api, o->api_name, sizeof(o->api_name));
    inet_pton(AF_INET, "127.0.0.1", &r->src_base);
    if (argc < 2)
        return die_usage("a mode is required", NULL);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(USAGE, stdout);
        exit(0);
    }
    int m = -1;
    for (int i = 0; i < NMODES; i++)
        if (strcmp(argv[1], MODE_NAMES[i]) == 0)
            m = i;
    if (m < 0)
        return die_usage("unknown mode", argv[1]);
    o->mode = (mode)m;
    int duration_set = 0;
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED()                                                                                                    \
    do {                                                                                                          \
        if (!v)                                                                                                   \
            return die_usage("missing value for", k);                                                           \
        i++;                                                                                                      \
    } while (0)
        if (strcmp(k, "--help") == 0) {
            fputs(USAGE, stdout);
            exit(0);
        } else if (strcmp(k, "--target") == 0) {
            NEED();
            char tmp[1024];
            snprintf(tmp, sizeof(tmp), "%s", v);
            r->ntargets = 0;
            for (char *save = NULL, *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (r->ntargets == SL_MAX_TARGETS ||
                    parse_hostport(t, &r->targets[r->ntargets], r->target_names[r->ntargets],
                                   sizeof(r->target_names[0])) != 0)
                    return die_usage("bad --target", t);
                r->ntargets++;
            }
        } else if (strcmp(k, "--api") == 0) {
            NEED();
            if (parse_hostport(v, &o->api, o->api_name, sizeof(o->api_name)) != 0)
                return die_usage("bad --api", v);
        } else if (strcmp(k, "--conns") == 0) {
            NEED();
            o->conns = atoi(v);
        } else if (strcmp(k, "--rooms") == 0) {
            NEED();
            o->rooms = atoi(v);
        } else if (strcmp(k, "--cross") == 0) {
            o->cross = 1;
        } else if (strcmp(k, "--rate") == 0) {
            NEED();
            o->rate = atof(v);
        } else if (strcmp(k, "--window") == 0) {
            NEED();
            o->window = atoi(v);
        } else if (strcmp(k, "--signals") == 0) {
            NEED();
            o->signals = strtoull(v, NULL, 10);
        } else if (strcmp(k, "--route") == 0) {
            NEED();
            o->route = v;
        } else if (strcmp(k, "--duration") == 0) {
            NEED();
            o->duration = atof(v);
            duration_set = 1;
        } else if (strcmp(k, "--warmup") == 0) {
            NEED();
            o->warmup = atof(v);
        } else if (strcmp(k, "--connect-rate") == 0) {
            NEED();
            o->connect_rate = atoi(v);
        } else if (strcmp(k, "--inflight") == 0) {
            NEED();
            o->inflight = atoi(v);
        } else if (strcmp(k, "--src-base") == 0) {
            NEED();
            if (inet_pton(AF_INET, v, &r->src_base) != 1)
                return die_usage("bad --src-base", v);
            if (!r->src_count)
                r->src_count = 1;
        } else if (strcmp(k, "--src-count") == 0) {
            NEED();
            r->src_count = atoi(v);
        } else if (strcmp(k, "--congestion") == 0) {
            NEED();
            r->congestion = v;
        } else if (strcmp(k, "--xff") == 0) {
            r->xff = 1;
        } else if (strcmp(k, "--no-join") == 0) {
            o->join = 0;
        } else if (strcmp(k, "--pids") == 0) {
            NEED();
            char tmp[1024];
            snprintf(tmp, sizeof(tmp), "%s", v);
            for (char *save = NULL, *t = strtok_r(tmp, ",", &save); t && o->npids < SL_MAX_PIDS;
                 t = strtok_r(NULL, ",", &save))
                o->pids[o->npids++] = atoi(t);
        } else if (strcmp(k, "--label") == 0) {
            NEED();
            o->label = v;
        } else if (strcmp(k, "--json") == 0) {
            NEED();
            o->json = v;
        } else if (strcmp(k, "--ready-file") == 0) {
            NEED();
            o->ready_file = v;
        } else if (strcmp(k, "--settle") == 0) {
            NEED();
            o->settle = atof(v);
        } else if (strcmp(k, "--front") == 0) {
            NEED();
            if (strcmp(v, "leastconn") == 0)
                o->leastconn = 1;
            else if (strcmp(v, "rr") != 0)
                return die_usage("unknown --front", v);
        } else if (strcmp(k, "--health-interval") == 0) {
            NEED();
            o->health_interval = atoi(v);
        } else if (strcmp(k, "--quiet") == 0) {
            o->quiet = 1;
        } else {
            return die_usage("unknown option", k);
        }
#undef NEED
    }
    if (o->conns < 1 || o->rooms < 1 || o->window < 1 || o->duration <= 0 || o->warmup < 0 ||
        o->connect_rate < 1 || o->inflight < 1 || r->src_count < 0 || o->settle < 0 || o->health_interval < 1)
        return die_usage("a count or time is out of range", NULL);
    if (o->mode == M_ROLLING) {
        if (o->rate <= 0)
            o->rate = 2.0 * o->rooms;
        if (!duration_set)
            o->duration = 600;
    }
    if (strcmp(o->route, "check_room") != 0 && strcmp(o->route, "get_room") != 0)
        return die_usage("unknown --route", o->route);
    if (o->cross && r->ntargets < 2)
        return die_usage("--cross needs two --target addresses", NULL);
    return 0;
}

/* ---- main ------------------------------------------------------------------------------------ */

static void setup_conns(app *a, int n)
{
    a->nconns = n;
    a->conns = calloc((size_t)n, sizeof(sl_conn));
    if (!a->conns) {
        fprintf(stderr, "sigload: out of memory\n");
        exit(1);
    }
    for (int i = 0; i < n; i++) {
        sl_conn *c = &a->conns[i];
        c->run = &a->run;
        c->index = i;
        c->peer = &a->conns[(i ^ 1) < n ? (i ^ 1) : i];
        c->room = i / 2;
        /* Peers of a room: the first on target r, the second on r (or r+1
         * with --cross). Idle spreads plainly round-robin. */
        int room = i / 2;
        if (a->o.mode == M_IDLE)
            c->target = i % a->run.ntargets;
        else
            c->target = (room + ((i & 1) && a->o.cross ? 1 : 0)) % a->run.ntargets;
    }
}

int main(int argc, char **argv)
{
    app *a = calloc(1, sizeof(*a));
    if (!a)
        return 1;
    int rc = parse_args(a, argc, argv);
    if (rc)
        return rc;
    sl_run *r = &a->run;
    r->loop = uv_default_loop();
    if (getrandom(&r->rng, sizeof(r->rng), 0) != sizeof(r->rng) || r->rng == 0)
        r->rng = (uint64_t)uv_hrtime() | 1;
    static const char ALNUM[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    memcpy(a->prefix, "sl", 2);
    for (int i = 2; i < 10; i++)
        a->prefix[i] = ALNUM[sl_rand(r) % 36];
    a->prefix[10] = '\0';
    signal(SIGPIPE, SIG_IGN);

    read_procs(a, a->proc_base);
    sl_sockstat(&a->sock_mem_base, &a->sock_inuse_base);
    uv_prepare_init(r->loop, &r->flush);
    r->flush.data = r;
    uv_prepare_start(&r->flush, on_flush);
    uv_timer_init(r->loop, &a->tick);
    a->tick.data = a;
    uv_timer_start(&a->tick, on_tick, 1, 1);
    uv_idle_init(r->loop, &a->pace);
    a->pace.data = a;
    uv_timer_init(r->loop, &a->progress);
    a->progress.data = a;
    uv_timer_start(&a->progress, on_progress, 1000, 1000);
    uv_signal_init(r->loop, &a->sigint);
    a->sigint.data = a;
    uv_signal_start(&a->sigint, on_sigint, SIGINT);

    const opts *o = &a->o;
    switch (o->mode) {
    case M_IDLE:
        r->ops = &IDLE_OPS;
        setup_conns(a, o->conns);
        create_rooms(a, o->join ? (o->conns + 1) / 2 : 0, idle_start);
        break;
    case M_RELAY:
        r->ops = &RELAY_OPS;
        setup_conns(a, 2 * o->rooms);
        create_rooms(a, o->rooms, relay_start);
        break;
    case M_CHURN:
        r->ops = &CHURN_OPS;
        setup_conns(a, 2 * o->conns);
        create_rooms(a, o->conns, churn_start);
        break;
    case M_API:
        create_rooms(a, 1, api_start);
        break;
    case M_ROLLING:
        r->ops = &ROLL_OPS;
        setup_conns(a, 2 * o->rooms);
        create_rooms(a, o->rooms, roll_start);
        break;
    }
    uv_run(r->loop, UV_RUN_DEFAULT);
    report(a);
    /* rolling: every room met at the end, after a rollout, with no signal
     * lost outside a reconnect window. */
    int bad = a->run.protocol_errors > 0 || (o->mode == M_RELAY && a->established == 0) ||
              (o->mode == M_IDLE && a->joined == 0) || (o->mode == M_CHURN && a->cycles == 0) ||
              (o->mode == M_API && a->ok == 0) ||
              (o->mode == M_ROLLING && (!a->rollout_done || a->timed_out || a->rooms_met != o->rooms ||
                                        a->lost_outside > 0 || a->errors > 0));
    uv_loop_close(r->loop);
    if (a->roll)
        for (int i = 0; i < a->nconns; i++)
            free(a->roll[i].sig);
    free(a->roll);
    free(a->rooms_roll);
    sl_front_free(a->front);
    free(a->conns);
    free(a->https);
    free(a);
    return bad ? 1 : 0;
}
