/* The front of the rolling scenario: what a balancer in front of the workers
 * does with new connections. Every target's GET /readyz is probed on a fresh
 * TCP connection every interval (as a Kubernetes Service's endpoints follow
 * readiness, or nginx/HAProxy active health checks); a new client connection
 * goes, among the targets whose last probe answered 200, to the next one
 * round-robin, or (least-connections) to the one holding the fewest of our
 * connections. A target that refuses the connection, answers anything
 * else or stays silent for a second is out until a probe says otherwise.
 * Kept in the generator rather than as a proxy process: the client still
 * opens its own TCP connection straight to the chosen worker (no extra hop
 * or process on a 2-core machine), and the choice is the balancer's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sigload.h"

#define PROBE_TIMEOUT_NS 1000000000ull

typedef struct probe {
    uv_tcp_t tcp;                 /* tcp.data == this */
    uv_connect_t creq;
    uv_write_t wreq;
    sl_front *front;
    int target;                   /* index into run->targets */
    int busy;                     /* a probe is in flight (handle open) */
    int ready;                    /* last verdict */
    uint64_t t_start;             /* hrtime the probe in flight began */
    char rx[64];                  /* start of the answer */
    size_t rx_len;
} probe;

struct sl_front {
    sl_run *run;
    uv_timer_t timer;             /* one probe round per interval */
    probe probes[SL_MAX_TARGETS];
    int conns[SL_MAX_TARGETS];    /* our connections picked for each target and not yet released */
    int leastconn;                /* policy: 0 round-robin, 1 least connections */
    unsigned next;                /* round-robin cursor (also breaks ties) */
    int closing;
};

static const char REQ[] = "GET /readyz HTTP/1.1\r\nHost: front\r\nConnection: close\r\n\r\n";

static void probe_closed(uv_handle_t *h)
{
    probe *p = h->data;
    p->busy = 0;
}

static void probe_end(probe *p, int ready)
{
    p->ready = ready;
    if (!uv_is_closing((uv_handle_t *)&p->tcp))
        uv_close((uv_handle_t *)&p->tcp, probe_closed);
}

static void probe_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    probe *p = h->data;
    buf->base = p->rx + p->rx_len;
    buf->len = sizeof(p->rx) - p->rx_len;
}

static void probe_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    probe *p = s->data;
    if (n < 0) {
        probe_end(p, 0);
        return;
    }
    p->rx_len += (size_t)n;
    if (p->rx_len >= 12 || p->rx_len == sizeof(p->rx))
        probe_end(p, p->rx_len >= 12 && memcmp(p->rx, "HTTP/1.1 200", 12) == 0);
}

static void probe_written(uv_write_t *w, int status)
{
    probe *p = w->data;
    if (status < 0)
        probe_end(p, 0);
}

static void probe_connected(uv_connect_t *c, int status)
{
    probe *p = c->data;
    if (uv_is_closing((uv_handle_t *)&p->tcp))
        return;
    if (status < 0) {
        probe_end(p, 0);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)REQ, sizeof(REQ) - 1);
    p->wreq.data = p;
    if (uv_write(&p->wreq, (uv_stream_t *)&p->tcp, &b, 1, probe_written) != 0 ||
        uv_read_start((uv_stream_t *)&p->tcp, probe_alloc, probe_read) != 0)
        probe_end(p, 0);
}

static void probe_start(sl_front *f, probe *p)
{
    p->busy = 1;
    p->rx_len = 0;
    p->t_start = uv_hrtime();
    uv_tcp_init(f->run->loop, &p->tcp);
    p->tcp.data = p;
    p->creq.data = p;
    if (uv_tcp_connect(&p->creq, &p->tcp, (const struct sockaddr *)&f->run->targets[p->target], probe_connected) != 0)
        probe_end(p, 0);
}

static void on_round(uv_timer_t *t)
{
    sl_front *f = t->data;
    uint64_t now = uv_hrtime();
    for (int i = 0; i < f->run->ntargets; i++) {
        probe *p = &f->probes[i];
        if (!p->busy)
            probe_start(f, p);
        else if (now - p->t_start > PROBE_TIMEOUT_NS)
            probe_end(p, 0); /* silent: out */
    }
}

sl_front *sl_front_create(sl_run *run, int interval_ms, int leastconn)
{
    sl_front *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->run = run;
    f->leastconn = leastconn;
    for (int i = 0; i < run->ntargets; i++) {
        f->probes[i].front = f;
        f->probes[i].target = i;
        f->probes[i].tcp.data = &f->probes[i];
    }
    uv_timer_init(run->loop, &f->timer);
    f->timer.data = f;
    uv_timer_start(&f->timer, on_round, 0, (uint64_t)(interval_ms > 0 ? interval_ms : 100));
    return f;
}

int sl_front_ready_count(const sl_front *f)
{
    int n = 0;
    for (int i = 0; i < f->run->ntargets; i++)
        n += f->probes[i].ready;
    return n;
}

static int pick(sl_front *f)
{
    int n = f->run->ntargets, best = -1;
    for (int k = 0; k < n; k++) {
        int i = (int)((f->next + (unsigned)k) % (unsigned)n);
        if (!f->probes[i].ready)
            continue;
        if (!f->leastconn) {
            f->next += (unsigned)k + 1;
            return i;
        }
        if (best < 0 || f->conns[i] < f->conns[best])
            best = i;
    }
    if (best >= 0) {
        f->next++;
        return best;
    }
    /* None ready (all restarting at once): any, as a balancer with every
     * backend down still tries one; the client's backoff does the rest. */
    return (int)(f->next++ % (unsigned)n);
}

int sl_front_pick(sl_front *f)
{
    int i = pick(f);
    f->conns[i]++;
    return i;
}

void sl_front_release(sl_front *f, int target)
{
    if (target >= 0 && target < f->run->ntargets && f->conns[target] > 0)
        f->conns[target]--;
}

void sl_front_free(sl_front *f)
{
    free(f);
}
