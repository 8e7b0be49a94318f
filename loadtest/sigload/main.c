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
    "\n"
    "Options:\n"
    "  --target H:P[,H:P...]  signal workers, used round-robin (127.0.0.1:3001)\n"
    "  --api H:P              room API; rooms are created through it (127.0.0.1:3002)\n"
    "  --conns N              idle: sockets; churn: pairs; api: connections (100)\n"
    "  --rooms N              relay: rooms (100)\n"
    "  --cross                relay/churn: the two peers on different targets\n"
    "  --rate R               relay: signals/s; api: requests/s; 0 = as fast as answered (0)\n"
    "  --window W             closed-loop relay: signals in flight per peer (4)\n"
    "  --route NAME           api: check_room or get_room (check_room)\n"
    "  --duration S           measured seconds (10); idle: seconds to hold\n"
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
    "  --quiet                no progress lines\n";

typedef enum mode { M_IDLE, M_RELAY, M_CHURN, M_API } mode;
static const char *const MODE_NAMES[] = {"idle", "relay", "churn", "api"};

typedef struct opts {
    mode mode;
    int conns, rooms, cross, window, join, quiet;
    double rate, duration, warmup;
    int connect_rate, inflight;
    const char *route, *json, *label;
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
        if (now >= a->t_end) {
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
           "\"closed_by_server\":%llu,\"protocol_errors\":%llu,\"pings\":%llu},",
       gen_cpu, (unsigned long long)a->run.connects_ok, (unsigned long long)a->run.connects_failed,
       (unsigned long long)a->run.closed_by_server, (unsigned long long)a->run.protocol_errors,
       (unsigned long long)a->run.pings);
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
    for (int i = 0; i < 4; i++)
        if (strcmp(argv[1], MODE_NAMES[i]) == 0)
            m = i;
    if (m < 0)
        return die_usage("unknown mode", argv[1]);
    o->mode = (mode)m;
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
        } else if (strcmp(k, "--route") == 0) {
            NEED();
            o->route = v;
        } else if (strcmp(k, "--duration") == 0) {
            NEED();
            o->duration = atof(v);
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
        } else if (strcmp(k, "--quiet") == 0) {
            o->quiet = 1;
        } else {
            return die_usage("unknown option", k);
        }
#undef NEED
    }
    if (o->conns < 1 || o->rooms < 1 || o->window < 1 || o->duration <= 0 || o->warmup < 0 ||
        o->connect_rate < 1 || o->inflight < 1 || r->src_count < 0)
        return die_usage("a count or time is out of range", NULL);
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
    }
    uv_run(r->loop, UV_RUN_DEFAULT);
    report(a);
    int bad = a->run.protocol_errors > 0 || (o->mode == M_RELAY && a->established == 0) ||
              (o->mode == M_IDLE && a->joined == 0) || (o->mode == M_CHURN && a->cycles == 0) ||
              (o->mode == M_API && a->ok == 0);
    uv_loop_close(r->loop);
    free(a->conns);
    free(a->https);
    free(a);
    return bad ? 1 : 0;
}
