/* app.c — what every scenario needs around its own logic: rooms created
 * through the room API, the paced connection ramp, join and SDP packets,
 * the measured window (CPU readings at its two ends), open-loop pacing and
 * the orderly end of the run. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "app.h"

uint64_t sl_rand(sl_run *run)
{
    uint64_t x = run->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    run->rng = x;
    return x;
}

void app_say(const app *a, const char *fmt, ...)
{
    if (a->o.quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

double app_self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

void *app_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "sigload: out of memory\n");
        exit(1);
    }
    return p;
}

void app_read_procs(app *a, sl_proc *out)
{
    for (int i = 0; i < a->o.npids; i++)
        sl_proc_read(a->o.pids[i], &out[i]);
}

void app_room_id(const app *a, int i, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s-%d", a->prefix, i);
}

void app_conns(app *a, int n, int spread)
{
    a->nconns = n;
    a->conns = app_calloc((size_t)n, sizeof(sl_conn));
    for (int i = 0; i < n; i++) {
        sl_conn *c = &a->conns[i];
        c->run = &a->run;
        c->index = i;
        c->peer = &a->conns[(i ^ 1) < n ? (i ^ 1) : i];
        c->room = i / 2;
        int room = i / 2;
        if (spread)
            c->target = i % a->run.ntargets;
        else
            c->target = (room + ((i & 1) && a->o.cross ? 1 : 0)) % a->run.ntargets;
    }
}

/* ---- room creation through the API ------------------------------------ */

static size_t rooms_next(sl_http *h, char *buf, size_t cap)
{
    app *a = app_of(h->run);
    if (a->rooms_next >= a->rooms_total)
        return 0;
    char id[64], body[128];
    app_room_id(a, a->rooms_next++, id, sizeof(id));
    int bl = snprintf(body, sizeof(body), "{\"roomId\":\"%s\"}", id);
    int n = snprintf(buf, cap,
                     "POST /api/create_room HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     a->o.api_name, bl, body);
    return (size_t)n;
}

static void rooms_close_all(app *a)
{
    for (int i = 0; i < a->nroom_https; i++)
        sl_http_close(&a->room_https[i]);
}

/* Every room answered (or given up): on to the scenario, or the end. */
static void rooms_over(app *a)
{
    app_say(a, "rooms: %d created, %d failed\n", a->rooms_ok, a->rooms_failed);
    rooms_close_all(a);
    if (a->rooms_failed) {
        a->errors += (uint64_t)a->rooms_failed;
        app_finish(a);
        return;
    }
    a->after_rooms(a);
}

static void rooms_done(sl_http *h, int status, const char *body, size_t len)
{
    app *a = app_of(h->run);
    if (status == 200 && memmem(body, len, "\"success\":true", 14))
        a->rooms_ok++;
    else
        a->rooms_failed++;
    /* A dead connection's remaining rooms go through the others. */
    if (++a->rooms_done == a->rooms_total)
        rooms_over(a);
}

/* With every connection gone (the room API refused them, or went away),
 * nothing would ever answer the rooms left: they failed, and the run
 * ends instead of waiting for ever. */
static void rooms_conn_gone(app *a)
{
    if (++a->rooms_conns_gone < a->nroom_https || a->rooms_done == a->rooms_total)
        return;
    a->rooms_failed += a->rooms_total - a->rooms_done;
    a->rooms_done = a->rooms_total;
    rooms_over(a);
}

static void rooms_dead(sl_http *h)
{
    rooms_conn_gone(app_of(h->run));
}

int app_start_https(app *a, sl_http *https, int n, sl_http_next_fn next, sl_http_done_fn done,
                    sl_http_dead_fn dead)
{
    int failed = 0;
    for (int i = 0; i < n; i++) {
        sl_http *h = &https[i];
        h->run = &a->run;
        h->index = i;
        h->next = next;
        h->done = done;
        h->dead = dead;
        if (sl_http_start(h, &a->o.api) != 0)
            failed++;
    }
    return failed;
}

void app_create_rooms(app *a, int n, void (*then)(app *))
{
    a->rooms_total = n;
    a->after_rooms = then;
    if (n == 0) {
        then(a);
        return;
    }
    a->nroom_https = n < 16 ? n : 16;
    a->room_https = app_calloc((size_t)a->nroom_https, sizeof(sl_http));
    int failed = app_start_https(a, a->room_https, a->nroom_https, rooms_next, rooms_done, rooms_dead);
    while (failed-- > 0 && !a->finished)
        rooms_conn_gone(a);
}

/* ---- connections ----------------------------------------------------------- */

void app_ramp_step(app *a)
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

void app_handshake_over(app *a, int ok)
{
    a->handshakes--;
    if (!ok)
        a->join_failed++;
}

void app_send_join(app *a, sl_conn *c)
{
    char id[64], pkt[128];
    app_room_id(a, c->room, id, sizeof(id));
    int n = snprintf(pkt, sizeof(pkt), "42[\"join\",{\"roomId\":\"%s\"}]", id);
    sl_conn_send(c, pkt, (size_t)n);
}

int app_join_ok(const char *pkt, size_t len)
{
    return memmem(pkt, len, "\"success\":true", 14) != NULL;
}

const char APP_CANDIDATE[] =
    "candidate:842163049 1 udp 1677729535 203.0.113.7 51234 typ srflx raddr 10.0.0.5 rport 51234 "
    "generation 0 ufrag EsAw network-cost 999";

int app_sdp(char *pkt, size_t cap, const char *kind, const char *to, const char *from)
{
    return snprintf(pkt, cap,
                     "42[\"%s\",{\"peerId\":\"%s\",\"%s\":{\"type\":\"%s\",\"sdp\":\"v=0\\r\\no=- "
                     "4611731400430051336 2 IN IP4 127.0.0.1\\r\\ns=-\\r\\nt=0 0\\r\\na=group:BUNDLE "
                     "0\\r\\na=msid-semantic: WMS\\r\\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\\r\\n"
                     "c=IN IP4 0.0.0.0\\r\\na=ice-ufrag:EsAw\\r\\na=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\\r\\n"
                     "a=fingerprint:sha-256 "
                     "D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F"
                     "\\r\\na=setup:actpass\\r\\na=mid:0\\r\\na=sctp-port:5000\\r\\n\"},\"from\":\"%s\"}]",
                     kind, to, kind, kind, from);
}

void app_send_sdp(sl_conn *from, const char *kind)
{
    char pkt[768];
    int n = app_sdp(pkt, sizeof(pkt), kind, from->peer->sid, from->sid);
    sl_conn_send(from, pkt, (size_t)n);
}

uint64_t app_payload_u64(const char *pkt, size_t len, const char *key)
{
    size_t kl = strlen(key);
    const char *p = memmem(pkt, len, key, kl);
    if (!p)
        return UINT64_MAX;
    p += kl;
    uint64_t v = 0;
    int digits = 0;
    while (p < pkt + len && *p >= '0' && *p <= '9' && digits < 19) {
        v = v * 10 + (uint64_t)(*p++ - '0');
        digits++;
    }
    return digits ? v : UINT64_MAX;
}

/* ---- relayed signals (relay.c, poll.c) -------------------------------------------- */

int app_candidate(char *buf, size_t cap, const char *to, const char *from, uint64_t t, uint64_t seq)
{
    return snprintf(buf, cap,
                    "42[\"ice-candidate\",{\"peerId\":\"%s\",\"candidate\":{\"candidate\":\"%s\","
                    "\"sdpMid\":\"0\",\"sdpMLineIndex\":0,\"usernameFragment\":\"EsAw\",\"t\":%llu,\"s\":%llu},"
                    "\"from\":\"%s\"}]",
                    to, APP_CANDIDATE, (unsigned long long)t, (unsigned long long)seq, from);
}

void app_signal_sent(app *a, uint64_t t)
{
    a->sent++;
    if (a->measuring && t >= a->t_measure)
        a->sent_window++;
}

/* Where one arrival belongs. Both ends of the window are the moments the
 * CPU readings were taken: a signal is "in the window" when it was due at
 * or after its start and sent before its end, which is exactly what
 * app_signal_sent counted. */
uint64_t app_signal_arrived(app *a, uint64_t *rx_next, uint64_t peer_sent, const char *pkt, size_t len, uint64_t now)
{
    uint64_t t = app_payload_u64(pkt, len, "\"t\":"), seq = app_payload_u64(pkt, len, "\"s\":");
    if (t == UINT64_MAX || t > now || seq == UINT64_MAX) {
        a->errors++; /* not a candidate the peer sent */
        return UINT64_MAX;
    }
    switch (sl_seq_take(rx_next, seq, peer_sent, &a->lost_gaps)) {
    case SL_SEQ_UNSENT:
        a->errors++;
        return UINT64_MAX;
    case SL_SEQ_REPEAT:
        a->duplicates++;
        return UINT64_MAX;
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
        return now - t;
    case SL_WHEN_LATE:
        a->late++;
        sl_hist_add(&a->hist_with_late, now - t);
        break;
    case SL_WHEN_OUTSIDE:
        break;
    }
    return UINT64_MAX;
}

const sl_hist *app_signals_report(app *a, sl_sbuf *j, const sl_measured *m, const char *key)
{
    double rate = m->window_s > 0 ? (double)a->received_window / m->window_s : 0;
    double sent_rate = m->window_s > 0 ? (double)a->sent_window / m->window_s : 0;
    uint64_t lost = a->sent > a->delivered ? a->sent - a->delivered : 0;
    uint64_t arrived = a->in_time + a->late;
    uint64_t lost_window = a->sent_window > arrived ? a->sent_window - arrived : 0;
    sl_sb(j, "\"%s\":{\"rooms_ready\":%llu,\"rooms_failed\":%llu,\"sent\":%llu,\"received\":%llu,"
             "\"received_window\":%llu,\"dropped\":%llu,\"per_s\":%.1f,\"per_server_cpu_s\":%.1f,",
          key, (unsigned long long)a->established, (unsigned long long)a->join_failed, (unsigned long long)a->sent,
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

/* ---- the measured window, pacing, the end ------------------------------------ */

int app_signals_start(app *a, uint64_t now)
{
    a->phase = 1;
    a->t0 = now;
    a->t_measure = now + (uint64_t)(a->o.warmup * 1e9);
    a->t_end = a->t_measure + (uint64_t)(a->o.duration * 1e9);
    a->sending = 1;
    if (a->o.rate > 0) {
        app_pace_start(a);
        return 0;
    }
    return 1;
}

void app_signals_step(app *a, uint64_t now)
{
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

void app_measure_begin(app *a)
{
    app_read_procs(a, a->proc0);
    a->self_cpu0 = app_self_cpu();
    a->ncores = sl_cores_read(a->core_busy0, a->core_steal0, SL_MAX_CORES);
    a->t_measure = uv_hrtime();
    a->measuring = 1;
}

void app_measure_end(app *a)
{
    app_read_procs(a, a->proc1);
    a->self_cpu1 = app_self_cpu();
    if (sl_cores_read(a->core_busy1, a->core_steal1, SL_MAX_CORES) != a->ncores)
        a->ncores = 0;
    a->t_end = uv_hrtime();
    a->measuring = 0;
}

/* Open-loop runs poll instead of sleeping between timer ticks, so that
 * each signal or request leaves within microseconds of its due time rather
 * than in a burst once a millisecond; the generator's core is busy for it. */
static void on_pace(uv_idle_t *idle)
{
    app *a = idle->data;
    if (!a->finished && a->sc->pace)
        a->sc->pace(a);
}

uint64_t app_due_at(const app *a, uint64_t k)
{
    return a->t0 + (uint64_t)((double)k * 1e9 / a->o.rate);
}

void app_pace_start(app *a)
{
    if (!uv_is_active((uv_handle_t *)&a->pace))
        uv_idle_start(&a->pace, on_pace);
}

void app_pace_stop(app *a)
{
    uv_idle_stop(&a->pace);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void app_finish(app *a)
{
    if (a->finished)
        return;
    a->finished = 1;
    a->phase = 3;
    uv_timer_stop(&a->tick);
    uv_timer_stop(&a->progress);
    app_pace_stop(a);
    for (int i = 0; i < a->nconns; i++)
        sl_conn_close(&a->conns[i]);
    for (int i = 0; i < a->nhttps; i++)
        sl_http_close(&a->https[i]);
    rooms_close_all(a);
    uv_walk(a->run.loop, close_walk, NULL);
}
