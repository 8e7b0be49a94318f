/* report.c — the summary of a run: a few human lines on stdout and, with
 * --json, the same as one JSON object. Around each scenario's own part it
 * puts what every run has: parameters, the measured window, the servers'
 * CPU and memory, the generator's CPU, connection counters and latency.
 * bench/run.sh and bench/report.mjs read the JSON; its members only grow. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"

void sl_sb(sl_sbuf *s, const char *fmt, ...)
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

void sl_sb_hist(sl_sbuf *s, const char *key, const sl_hist *h)
{
    sl_sb(s,
          "\"%s\":{\"count\":%llu,\"min_us\":%.1f,\"mean_us\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,"
          "\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f}",
          key, (unsigned long long)h->count, (double)h->min / 1e3, h->count ? h->sum / (double)h->count / 1e3 : 0.0,
          (double)sl_hist_quantile(h, 0.5) / 1e3, (double)sl_hist_quantile(h, 0.9) / 1e3,
          (double)sl_hist_quantile(h, 0.99) / 1e3, (double)sl_hist_quantile(h, 0.999) / 1e3, (double)h->max / 1e3);
}

void app_report(app *a)
{
    const opts *o = &a->o;
    sl_measured m = {0};
    m.window_s = a->t_end > a->t_measure ? (double)(a->t_end - a->t_measure) / 1e9 : 0;
    for (int i = 0; i < o->npids; i++) {
        m.cpu_s += a->proc1[i].cpu_s - a->proc0[i].cpu_s;
        m.rss_base += a->proc_base[i].rss_kb;
        m.rss0 += a->proc0[i].rss_kb;
        m.rss1 += a->proc1[i].rss_kb;
    }
    double gen_cpu = a->self_cpu1 - a->self_cpu0;
    const char *name = a->sc->name;
    /* With --json - the JSON alone goes to stdout, for a pipe to read: the
     * summary, printed to stdout by every scenario's report, goes to
     * stderr meanwhile. */
    int json_out = o->json && strcmp(o->json, "-") == 0 ? dup(STDOUT_FILENO) : -1;
    if (json_out >= 0) {
        fflush(stdout);
        dup2(STDERR_FILENO, STDOUT_FILENO);
    }
    sl_sbuf j = {0};
    sl_sb(&j, "{\"tool\":\"privydrop-sigload\",\"mode\":\"%s\",\"label\":\"%s\",\"targets\":[", name,
          o->label ? o->label : "");
    for (int i = 0; i < a->run.ntargets; i++)
        sl_sb(&j, "%s\"%s\"", i ? "," : "", a->run.target_names[i]);
    sl_sb(&j,
          "],\"api\":\"%s\",\"params\":{\"conns\":%d,\"rooms\":%d,\"cross\":%s,\"rate\":%.0f,\"window\":%d,"
          "\"route\":\"%s\",\"duration_s\":%.2f,\"warmup_s\":%.2f,\"src_count\":%d,\"drain_s\":%.2f,"
          "\"procs\":%d},",
          o->api_name, o->conns, o->rooms, o->cross ? "true" : "false", o->rate, o->window, o->route, o->duration,
          o->warmup, a->run.src_count, o->drain, o->procs);
    /* The window's start on CLOCK_MONOTONIC (uv_hrtime's clock, and
     * perf's), so a trace taken beside the run lines up with its slots. */
    sl_sb(&j, "\"window_start_mono_ns\":%llu,\"window_s\":%.3f,\"servers\":{\"pids\":[",
          (unsigned long long)a->t_measure, m.window_s);
    for (int i = 0; i < o->npids; i++)
        sl_sb(&j, "%s%d", i ? "," : "", o->pids[i]);
    sl_sb(&j, "],\"cpu_s\":%.3f,\"cpu_s_each\":[", m.cpu_s);
    for (int i = 0; i < o->npids; i++)
        sl_sb(&j, "%s%.3f", i ? "," : "", a->proc1[i].cpu_s - a->proc0[i].cpu_s);
    sl_sb(&j, "],\"rss_kb_base\":%ld,\"rss_kb_start\":%ld,\"rss_kb_end\":%ld},", m.rss_base, m.rss0, m.rss1);
    sl_sb(&j,
          "\"generator_cpu_s\":%.3f,\"client\":{\"connects_ok\":%llu,\"connects_failed\":%llu,"
          "\"closed_by_server\":%llu,\"protocol_errors\":%llu,\"pings\":%llu,\"upgrades_refused\":%llu},",
          gen_cpu, (unsigned long long)a->run.connects_ok, (unsigned long long)a->run.connects_failed,
          (unsigned long long)a->run.closed_by_server, (unsigned long long)a->run.protocol_errors,
          (unsigned long long)a->run.pings, (unsigned long long)a->run.upgrades_refused);
    /* Every core's busy time in the window: beside the servers' and the
     * generator's own CPU it shows what the rest of the machine took. */
    sl_sb(&j, "\"cores\":{\"busy_s\":[");
    for (int i = 0; i < a->ncores; i++)
        sl_sb(&j, "%s%.2f", i ? "," : "", a->core_busy1[i] - a->core_busy0[i]);
    sl_sb(&j, "],\"steal_s\":[");
    for (int i = 0; i < a->ncores; i++)
        sl_sb(&j, "%s%.2f", i ? "," : "", a->core_steal1[i] - a->core_steal0[i]);
    sl_sb(&j, "]},");
    printf("privydrop-sigload %s%s%s: %.1fs measured", name, o->label ? " " : "", o->label ? o->label : "",
           m.window_s);
    if (o->npids)
        printf(", servers used %.2f CPU-s (%.0f%% of one core)", m.cpu_s,
               m.window_s > 0 ? 100 * m.cpu_s / m.window_s : 0);
    printf(", generator %.2f CPU-s\n", gen_cpu);
    if (a->ncores) {
        printf("  cores busy (all processes):");
        for (int i = 0; i < a->ncores; i++)
            printf(" cpu%d %.2f s", i, a->core_busy1[i] - a->core_busy0[i]);
        printf("\n");
    }
    const sl_hist *lat = a->sc->report(a, &j, &m);
    sl_sb_hist(&j, "latency", &a->hist);
    sl_sb(&j, "}\n");
    if (lat->count)
        printf("  latency%s: p50 %.0f us  p90 %.0f us  p99 %.0f us  p99.9 %.0f us  max %.0f us\n",
               lat == &a->hist_connect ? " (connect+join)" : "", (double)sl_hist_quantile(lat, 0.5) / 1e3,
               (double)sl_hist_quantile(lat, 0.9) / 1e3, (double)sl_hist_quantile(lat, 0.99) / 1e3,
               (double)sl_hist_quantile(lat, 0.999) / 1e3, (double)lat->max / 1e3);
    if (a->errors || a->run.protocol_errors)
        printf("  errors: %llu, protocol errors: %llu\n", (unsigned long long)a->errors,
               (unsigned long long)a->run.protocol_errors);
    fflush(stdout);
    if (json_out >= 0) {
        dup2(json_out, STDOUT_FILENO);
        close(json_out);
    }
    if (o->json) {
        FILE *f = strcmp(o->json, "-") == 0 ? stdout : fopen(o->json, "w");
        if (f) {
            fwrite(j.p, 1, j.len, f);
            if (f != stdout)
                fclose(f);
            else
                fflush(stdout);
        } else {
            fprintf(stderr, "sigload: cannot write %s: %s\n", o->json, strerror(errno));
        }
    }
    free(j.p);
}
