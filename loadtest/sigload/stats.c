/* Latency histogram and /proc readings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sigload.h"

void sl_hist_reset(sl_hist *h)
{
    memset(h, 0, sizeof(*h));
}

/* Values below 64 ns get a bucket each; above, each power of two is split
 * into 32 equal sub-buckets. */
static unsigned hist_index(uint64_t v)
{
    if (v < 64)
        return (unsigned)v;
    unsigned k = 63u - (unsigned)__builtin_clzll(v); /* floor(log2 v) >= 6 */
    unsigned shift = k - 5;
    unsigned m = (unsigned)(v >> shift);            /* 32..63 */
    return 64 + (k - 6) * 32 + (m - 32);
}

static uint64_t hist_value(unsigned idx)
{
    if (idx < 64)
        return idx;
    unsigned k = (idx - 64) / 32 + 6;
    unsigned m = (idx - 64) % 32 + 32;
    unsigned shift = k - 5;
    return ((uint64_t)m << shift) + (((uint64_t)1 << shift) >> 1);
}

void sl_hist_merge(sl_hist *dst, const sl_hist *src)
{
    if (!src->count)
        return;
    if (!dst->count || src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->count += src->count;
    dst->sum += src->sum;
    for (int i = 0; i < SL_HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
}

void sl_hist_add(sl_hist *h, uint64_t ns)
{
    if (h->count == 0 || ns < h->min)
        h->min = ns;
    if (ns > h->max)
        h->max = ns;
    h->count++;
    h->sum += (double)ns;
    h->b[hist_index(ns)]++;
}

uint64_t sl_hist_quantile(const sl_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if (rank >= h->count)
        rank = h->count - 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < SL_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen > rank) {
            uint64_t v = hist_value(i);
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max;
}

int sl_proc_read(int pid, sl_proc *out)
{
    char path[64], buf[4096];
    memset(out, 0, sizeof(*out));
    out->fds = -1;
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces: fields count from the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p += 2; /* field 3, state */
    unsigned long utime = 0, stime = 0;
    int field = 3;
    while (*p && field < 14) {
        if (*p == ' ')
            field++;
        p++;
    }
    if (sscanf(p, "%lu %lu", &utime, &stime) != 2)
        return -1;
    out->cpu_s = (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    f = fopen(path, "r");
    if (f) {
        while (fgets(buf, sizeof(buf), f))
            if (strncmp(buf, "VmRSS:", 6) == 0)
                out->rss_kb = strtol(buf + 6, NULL, 10);
        fclose(f);
    }
    return 0;
}

int sl_cores_read(double *busy_s, double *steal_s, int max)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return 0;
    char line[512];
    int n = 0;
    double tck = (double)sysconf(_SC_CLK_TCK);
    while (n < max && fgets(line, sizeof(line), f)) {
        /* "cpu " is the sum; "cpuN " one core, in order. */
        if (strncmp(line, "cpu", 3) != 0 || line[3] < '0' || line[3] > '9')
            continue;
        unsigned long long us = 0, ni = 0, sy = 0, id = 0, io = 0, irq = 0, sirq = 0, st = 0;
        char *p = strchr(line, ' ');
        if (!p || sscanf(p, "%llu %llu %llu %llu %llu %llu %llu %llu", &us, &ni, &sy, &id, &io, &irq, &sirq, &st) < 4)
            break;
        busy_s[n] = (double)(us + ni + sy + irq + sirq + st) / tck;
        steal_s[n] = (double)st / tck;
        n++;
    }
    fclose(f);
    return n;
}

int sl_sockstat(long *tcp_mem_bytes, long *tcp_inuse)
{
    FILE *f = fopen("/proc/net/sockstat", "r");
    char line[512];
    *tcp_mem_bytes = *tcp_inuse = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "TCP:", 4) != 0)
            continue;
        char *p = strstr(line, "inuse ");
        if (p)
            *tcp_inuse = strtol(p + 6, NULL, 10);
        p = strstr(line, "mem ");
        if (p)
            *tcp_mem_bytes = strtol(p + 4, NULL, 10) * sysconf(_SC_PAGESIZE);
    }
    fclose(f);
    return 0;
}
