/* api.c — what the room API answers, how fast and how soon.
 *
 * --conns keep-alive HTTP connections ask one --route (check_room on a room
 * created first, or get_room) again and again: as soon as answered (closed
 * loop, --rate 0: the maximum), or at --rate requests per second in all,
 * each issued at its due time (open loop). Latency is from when a request
 * was due, so a generator behind its schedule shows; the rate is answers
 * (200) inside the measured window divided by its length. That latency is
 * also split in two: how long a due request waited in the generator before
 * it left (the send lag: every connection busy, or the generator off its
 * core) and how long it took from leaving to its answer (the service time,
 * the servers' part). A maximum per 100 ms of the window shows whether a
 * tail is spread out or one stall.
 *
 * phase 0 warmup, 1 measured, 2 winding down, 3 done */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "probe.h"

static size_t api_next(sl_http *h, char *buf, size_t cap)
{
    app *a = app_of(h->run);
    if (a->phase >= 2)
        return 0;
    uint64_t now = uv_hrtime();
    if (a->o.rate > 0) {
        uint64_t due = app_due_at(a, a->issued);
        if (due > now)
            return 0;
        h->t_sched = due;
    } else {
        h->t_sched = now;
    }
    a->issued++;
    h->t_sent = now;
    if (a->measuring && a->o.rate > 0)
        sl_hist_add(&a->hist_lag, now - h->t_sched);
    if (strcmp(a->o.route, "get_room") == 0)
        return (size_t)snprintf(buf, cap, "GET /api/get_room HTTP/1.1\r\nHost: %s\r\n\r\n", a->o.api_name);
    char id[64], body[128];
    app_room_id(a, 0, id, sizeof(id));
    int bl = snprintf(body, sizeof(body), "{\"roomId\":\"%s\"}", id);
    return (size_t)snprintf(buf, cap,
                            "POST /api/check_room HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                            "Content-Length: %d\r\n\r\n%s",
                            a->o.api_name, bl, body);
}

static void api_done(sl_http *h, int status, const char *body, size_t len)
{
    app *a = app_of(h->run);
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
            sl_hist_add(&a->hist_service, now - h->t_sent);
            uint64_t slot = (now - a->t_measure) / 100000000ull;
            if (slot < SL_API_SLOTS && now - h->t_sched > a->slot_max[slot])
                a->slot_max[slot] = now - h->t_sched;
        }
    } else {
        a->errors++;
    }
}

static void api_kick_all(app *a)
{
    for (int i = 0; i < a->nhttps; i++)
        sl_http_kick(&a->https[i]);
}

/* At each 100 ms boundary of the window, how long the hypervisor kept each
 * core from running (steal): a server pinned to a core that was stolen for
 * 30 ms stops for 30 ms, whatever its own work. */
static void api_read_steal(app *a, uint64_t now)
{
    double busy[SL_MAX_CORES], steal[SL_MAX_CORES];
    uint64_t slot = (now - a->t_measure) / 100000000ull;
    if (slot < a->slot_next)
        return;
    int n = sl_cores_read(busy, steal, SL_MAX_CORES);
    if (a->slot_next > 0 && a->slot_next - 1 < SL_API_SLOTS) {
        double most = 0;
        for (int i = 0; i < n; i++)
            if (steal[i] - a->slot_steal_prev[i] > most)
                most = steal[i] - a->slot_steal_prev[i];
        a->slot_steal[a->slot_next - 1] = (float)most;
    }
    for (int i = 0; i < n; i++)
        a->slot_steal_prev[i] = steal[i];
    a->slot_next = slot + 1;
}

static void api_tick(app *a)
{
    uint64_t now = uv_hrtime();
    if (a->phase == 1)
        api_read_steal(a, now);
    if (a->phase == 0 && now >= a->t_measure) {
        app_measure_begin(a);
        a->t_end = a->t_measure + (uint64_t)(a->o.duration * 1e9);
        a->phase = 1;
    } else if (a->phase == 1 && now >= a->t_end) {
        app_measure_end(a);
        app_pace_stop(a);
        a->phase = 2;
        a->t0 = now;
    } else if (a->phase == 2 && now - a->t0 > 300000000ull) {
        a->phase = 3;
        app_finish(a);
        return;
    }
    if (a->phase < 2)
        api_kick_all(a);
}

static void api_pace(app *a)
{
    if (a->phase < 2)
        api_kick_all(a);
}

static void api_start(app *a)
{
    if (a->o.probe_cpu >= 0) {
        char err[128];
        /* From the load's start (the room may have taken long to create):
         * buckets for the warm-up, the window and its wind-down. */
        a->probe = sl_probe_start(a->o.probe_cpu, a->o.warmup + a->o.duration + SL_PROBE_SLACK_S, err, sizeof(err));
        if (!a->probe) {
            fprintf(stderr, "privydrop-sigload: --probe-cpu: %s\n", err);
            exit(2);
        }
    }
    a->https = app_calloc((size_t)a->o.conns, sizeof(sl_http));
    a->nhttps = a->o.conns;
    uint64_t now = uv_hrtime();
    a->t0 = now;
    a->t_measure = now + (uint64_t)(a->o.warmup * 1e9);
    a->t_end = a->t_measure + (uint64_t)(a->o.duration * 1e9);
    a->phase = 0;
    a->started = 1;
    /* A connection that dies stays dead; the run still ends on time, and
     * with no answer at all it fails (api_failed). */
    app_start_https(a, a->https, a->nhttps, api_next, api_done, NULL);
    if (a->o.rate > 0)
        app_pace_start(a);
}

static void api_setup(app *a)
{
    /* One room, for check_room to find. */
    app_create_rooms(a, 1, api_start);
}

static void api_progress(app *a)
{
    app_say(a, "  ok %llu  errors %llu\n", (unsigned long long)a->ok, (unsigned long long)a->errors);
}

static const sl_hist *api_report(app *a, sl_sbuf *j, const sl_measured *m)
{
    double rate = m->window_s > 0 ? (double)a->ok_window / m->window_s : 0;
    sl_sb(j, "\"api\":{\"ok\":%llu,\"errors\":%llu,\"ok_window\":%llu,\"per_s\":%.1f,\"per_server_cpu_s\":%.1f},",
          (unsigned long long)a->ok, (unsigned long long)a->errors, (unsigned long long)a->ok_window, rate,
          m->cpu_s > 0 ? (double)a->ok_window / m->cpu_s : 0);
    if (a->hist_lag.count) {
        sl_sb_hist(j, "send_lag", &a->hist_lag);
        sl_sb(j, ",");
    }
    sl_sb_hist(j, "service", &a->hist_service);
    /* The slowest answer (from its due time) in each 100 ms of the window. */
    sl_sb(j, ",\"latency_max_us_by_100ms\":[");
    size_t nslots = (size_t)(m->window_s * 10.0 + 0.999);
    if (nslots > SL_API_SLOTS)
        nslots = SL_API_SLOTS;
    for (size_t i = 0; i < nslots; i++)
        sl_sb(j, "%s%.0f", i ? "," : "", (double)a->slot_max[i] / 1e3);
    /* The most steal time of any core in the same 100 ms (read at the
     * boundaries the generator's tick saw; /proc/stat counts in 10 ms). */
    sl_sb(j, "],\"steal_ms_by_100ms\":[");
    for (size_t i = 0; i < nslots; i++)
        sl_sb(j, "%s%.0f", i ? "," : "", (double)a->slot_steal[i] * 1e3);
    sl_sb(j, "],");
    if (a->probe)
        sl_probe_stop(a->probe);
    uint64_t t1 = a->t_measure + (uint64_t)(m->window_s * 1e9);
    if (a->probe && !sl_probe_covers(a->probe, a->t_measure, t1)) {
        /* A window it did not watch (cut short before it began): no
         * reading, rather than a clean-looking one. */
        sl_sb(j, "\"probe\":null,");
        printf("  core %d probe: did not watch the whole window, no reading\n", a->o.probe_cpu);
    } else if (a->probe) {
        /* How late the probe's wake-ups came on its core: in each 100 ms
         * of the window, and stalls over 5 ms in all (probe.h). */
        size_t stalls = sl_probe_count(a->probe, a->t_measure, t1, 5000000u);
        double worst = (double)sl_probe_worst(a->probe, a->t_measure, t1) / 1e6;
        sl_sb(j, "\"probe\":{\"cpu\":%d,\"fifo\":%s,\"period_us\":%llu,\"worst_ms\":%.1f,\"stalls_over_5ms\":%zu,"
                 "\"late_ms_by_100ms\":[",
              a->o.probe_cpu, sl_probe_fifo(a->probe) ? "true" : "false",
              (unsigned long long)(SL_PROBE_PERIOD_NS / 1000u), worst, stalls);
        for (size_t i = 0; i < nslots; i++) {
            uint64_t s0 = a->t_measure + i * 100000000ull;
            sl_sb(j, "%s%.1f", i ? "," : "", (double)sl_probe_worst(a->probe, s0, s0 + 100000000ull) / 1e6);
        }
        sl_sb(j, "]},");
        printf("  core %d probe%s: worst wake-up %.1f ms late; %zu stalls over 5 ms\n", a->o.probe_cpu,
               sl_probe_fifo(a->probe) ? " (SCHED_FIFO)" : " (not SCHED_FIFO: includes waiting for the core's processes)",
               worst, stalls);
    }
    printf("  %s: %llu ok, %llu errors; %.0f/s in the window", a->o.route, (unsigned long long)a->ok,
           (unsigned long long)a->errors, rate);
    if (m->cpu_s > 0)
        printf(", %.0f per server CPU-second", (double)a->ok_window / m->cpu_s);
    printf("\n");
    if (a->hist_lag.count)
        printf("  generator send lag: p50 %.0f us  p99 %.0f us  max %.0f us\n",
               (double)sl_hist_quantile(&a->hist_lag, 0.5) / 1e3, (double)sl_hist_quantile(&a->hist_lag, 0.99) / 1e3,
               (double)a->hist_lag.max / 1e3);
    printf("  service (sent to answered): p50 %.0f us  p99 %.0f us  max %.0f us\n",
           (double)sl_hist_quantile(&a->hist_service, 0.5) / 1e3,
           (double)sl_hist_quantile(&a->hist_service, 0.99) / 1e3, (double)a->hist_service.max / 1e3);
    return &a->hist;
}

static int api_failed(const app *a)
{
    return a->ok == 0;
}

static void api_free(app *a)
{
    sl_probe_free(a->probe);
    a->probe = NULL;
}

const sl_scenario SL_API = {
    .name = "api",
    .setup = api_setup,
    .tick = api_tick,
    .pace = api_pace,
    .progress = api_progress,
    .report = api_report,
    .failed = api_failed,
    .free = api_free,
};
