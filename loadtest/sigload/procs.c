/* procs.c — one relay run spread over --procs generator processes.
 *
 * One process paces every signal on one core; at high open-loop rates that
 * core saturates and its own queueing shows up as latency (the send lag).
 * With --procs N the run forks N children before any loop exists, each with
 * its share of the rooms and of --rate, its own room ids and connections.
 * They start signalling together and measure the same window: each tells
 * the parent when its rooms are ready ('R' on its pipe up); once all have,
 * the parent sends every child one start time (uv_hrtime is CLOCK_MONOTONIC,
 * shared by the processes) on its pipe down. At the end each child sends its
 * tally ('T' and a struct: counters, server readings, histograms) and the
 * parent merges them and reports as one run. The parent runs no loop: it
 * only waits on the pipes.
 *
 * Same machine, same binary: the tally is a plain struct, not a wire format. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "app.h"

#define PROCS_MAX 64

/* What one child measured. */
typedef struct tally {
    uint64_t established, join_failed, sent, received, received_window, dropped, errors;
    uint64_t sent_window, in_time, late, delivered, lost_gaps, duplicates;
    uint64_t connects_ok, connects_failed, closed_by_server, protocol_errors, pings, upgrades_refused;
    uint64_t t_measure, t_end;    /* its measured window (hrtime) */
    double drain_s, gen_cpu_s, ramp_s;
    int drain_timed_out;
    sl_proc proc0[SL_MAX_PIDS], proc1[SL_MAX_PIDS];
    sl_hist hist, hist_with_late, hist_lag;
} tally;

static pid_t g_pids[PROCS_MAX];
static int g_nprocs;

/* The parent passes SIGINT on: every child ends its run and reports. */
static void on_parent_sigint(int sig)
{
    (void)sig;
    for (int i = 0; i < g_nprocs; i++)
        if (g_pids[i] > 0)
            kill(g_pids[i], SIGINT);
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Blocking; 0 on success, -1 on end of file or error. */
static int read_all(int fd, void *p, size_t n)
{
    char *s = p;
    while (n) {
        ssize_t r = read(fd, s, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        s += r;
        n -= (size_t)r;
    }
    return 0;
}

/* ---- the child's side ------------------------------------------------------------ */

int sl_procs_may_start(app *a)
{
    if (a->procs_up < 0)
        return 1;
    if (!a->procs_said_ready) {
        a->procs_said_ready = 1;
        if (write_all(a->procs_up, "R", 1) != 0)
            return 1; /* the parent is gone: run alone */
    }
    if (!a->procs_t0) {
        uint64_t t0;
        ssize_t r = read(a->procs_down, &t0, sizeof(t0)); /* non-blocking */
        if (r == (ssize_t)sizeof(t0))
            a->procs_t0 = t0 ? t0 : 1;
        else if (r == 0)
            return 1; /* the parent is gone */
        else
            return 0;
    }
    return uv_hrtime() >= a->procs_t0;
}

void sl_procs_send_tally(app *a)
{
    tally *t = calloc(1, sizeof(*t));
    if (!t)
        return;
    *t = (tally){
        .established = a->established, .join_failed = a->join_failed, .sent = a->sent, .received = a->received,
        .received_window = a->received_window, .dropped = a->dropped, .errors = a->errors,
        .sent_window = a->sent_window, .in_time = a->in_time, .late = a->late, .delivered = a->delivered,
        .lost_gaps = a->lost_gaps, .duplicates = a->duplicates, .connects_ok = a->run.connects_ok,
        .connects_failed = a->run.connects_failed, .closed_by_server = a->run.closed_by_server,
        .protocol_errors = a->run.protocol_errors, .pings = a->run.pings,
        .upgrades_refused = a->run.upgrades_refused, .t_measure = a->t_measure, .t_end = a->t_end,
        .drain_s = a->drain_s, .gen_cpu_s = a->self_cpu1 - a->self_cpu0, .ramp_s = a->ramp_s,
        .drain_timed_out = a->drain_timed_out,
    };
    memcpy(t->proc0, a->proc0, sizeof(t->proc0));
    memcpy(t->proc1, a->proc1, sizeof(t->proc1));
    t->hist = a->hist;
    t->hist_with_late = a->hist_with_late;
    t->hist_lag = a->hist_lag;
    if (write_all(a->procs_up, "T", 1) != 0 || write_all(a->procs_up, t, sizeof(*t)) != 0)
        fprintf(stderr, "sigload: child %d: cannot report to the parent: %s\n", a->procs_index, strerror(errno));
    free(t);
}

/* ---- the parent's side ------------------------------------------------------------- */

static void merge(app *a, const tally *t, int *first_window, uint64_t *window_ns_sum, int *windows)
{
    a->established += t->established;
    a->join_failed += t->join_failed;
    a->sent += t->sent;
    a->received += t->received;
    a->received_window += t->received_window;
    a->dropped += t->dropped;
    a->errors += t->errors;
    a->sent_window += t->sent_window;
    a->in_time += t->in_time;
    a->late += t->late;
    a->delivered += t->delivered;
    a->lost_gaps += t->lost_gaps;
    a->duplicates += t->duplicates;
    a->run.connects_ok += t->connects_ok;
    a->run.connects_failed += t->connects_failed;
    a->run.closed_by_server += t->closed_by_server;
    a->run.protocol_errors += t->protocol_errors;
    a->run.pings += t->pings;
    a->run.upgrades_refused += t->upgrades_refused;
    a->self_cpu1 += t->gen_cpu_s;
    if (t->drain_s > a->drain_s)
        a->drain_s = t->drain_s;
    if (t->ramp_s > a->ramp_s)
        a->ramp_s = t->ramp_s;
    a->drain_timed_out |= t->drain_timed_out;
    sl_hist_merge(&a->hist, &t->hist);
    sl_hist_merge(&a->hist_with_late, &t->hist_with_late);
    sl_hist_merge(&a->hist_lag, &t->hist_lag);
    if (t->t_end > t->t_measure) {
        /* The servers' readings: the children read the same processes over
         * the same window (to a tick), so the first child's stand for all. */
        if (*first_window) {
            memcpy(a->proc0, t->proc0, sizeof(a->proc0));
            memcpy(a->proc1, t->proc1, sizeof(a->proc1));
            *first_window = 0;
        }
        if (!a->t_measure || t->t_measure < a->t_measure)
            a->t_measure = t->t_measure;
        *window_ns_sum += t->t_end - t->t_measure;
        (*windows)++;
    }
}

int sl_procs_fork(app *a)
{
    int n = a->o.procs;
    int up[PROCS_MAX], down[PROCS_MAX];
    int rooms = a->o.rooms;
    g_nprocs = 0;
    app_read_procs(a, a->proc_base);
    fflush(NULL);
    for (int i = 0; i < n; i++) {
        int u[2], d[2];
        if (pipe(u) != 0 || pipe(d) != 0) {
            fprintf(stderr, "sigload: pipe: %s\n", strerror(errno));
            exit(1);
        }
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "sigload: fork: %s\n", strerror(errno));
            exit(1);
        }
        if (pid == 0) {
            for (int k = 0; k < i; k++) {
                close(up[k]);
                close(down[k]);
            }
            close(u[0]);
            close(d[1]);
            fcntl(d[0], F_SETFL, fcntl(d[0], F_GETFL) | O_NONBLOCK);
            a->procs_index = i;
            a->procs_up = u[1];
            a->procs_down = d[0];
            /* Its share: rooms split as evenly as they go, the rate in
             * proportion, its progress lines only from the first. */
            a->o.rooms = rooms / n + (i < rooms % n ? 1 : 0);
            a->o.rate = a->o.rate * a->o.rooms / rooms;
            a->o.json = NULL;
            if (i > 0)
                a->o.quiet = 1;
            return -1;
        }
        close(u[1]);
        close(d[0]);
        up[i] = u[0];
        down[i] = d[1];
        g_pids[i] = pid;
        g_nprocs = i + 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_parent_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* 0 running, 1 ready, 2 reported, 3 gone without a report */
    int state[PROCS_MAX] = {0};
    tally *t = app_calloc(1, sizeof(*t));
    int first_window = 1, windows = 0;
    uint64_t window_ns_sum = 0;
    for (int phase = 0; phase < 2; phase++) {
        /* phase 0: until each child is ready or done; then the start time;
         * phase 1: the reports of those that were started. */
        for (int i = 0; i < n; i++) {
            if (state[i] != phase)
                continue;
            char tag;
            if (read_all(up[i], &tag, 1) != 0) {
                state[i] = 3;
            } else if (tag == 'R' && phase == 0) {
                state[i] = 1;
            } else if (tag == 'T' && read_all(up[i], t, sizeof(*t)) == 0) {
                merge(a, t, &first_window, &window_ns_sum, &windows);
                state[i] = 2;
            } else {
                state[i] = 3;
            }
        }
        if (phase == 0) {
            /* A little ahead, so that every child sees it before it is due. */
            uint64_t t0 = uv_hrtime() + 20000000ull;
            for (int i = 0; i < n; i++)
                if (state[i] == 1 && write_all(down[i], &t0, sizeof(t0)) != 0)
                    state[i] = 3;
        }
    }
    free(t);
    int gone = 0;
    for (int i = 0; i < n; i++) {
        int st = 0;
        while (waitpid(g_pids[i], &st, 0) < 0 && errno == EINTR)
            ;
        close(up[i]);
        close(down[i]);
        if (state[i] == 3)
            gone++;
    }
    if (gone) {
        fprintf(stderr, "sigload: %d of %d generator processes ended without a report\n", gone, n);
        a->errors += (uint64_t)gone;
    }
    if (windows)
        a->t_end = a->t_measure + window_ns_sum / (uint64_t)windows;
    app_report(a);
    int bad = gone > 0 || a->run.protocol_errors > 0 || a->sc->failed(a);
    return bad ? 1 : 0;
}
