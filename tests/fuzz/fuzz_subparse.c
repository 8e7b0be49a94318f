/* fuzz_subparse.c — the subscriber link's RESP parser (pd_subparse.h) on
 * what a hostile or broken Redis could send.
 *
 *   byte 0   how the rest is cut into reads (seed of a small generator)
 *   byte 1   the payload bound: 1 + byte1 * 97 bytes (1 .. 24 736), so both
 *            sides of every bound and frames longer than the first buffer
 *            are reachable within -max_len
 *   the rest the stream
 *
 * The stream is parsed twice: in as few pieces as the bound allows
 * (pd_subparse_feed) and in reads
 * into the parser's own space (pd_subparse_space / pd_subparse_wrote, as
 * the link reads the socket). Properties beyond "no crash, no leak": both
 * give the same events and the same end (more wanted, or refused with a
 * reason); every event respects its bounds; after a reset the parser
 * accepts a valid frame again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "privydrop/pd_subparse.h"

#define FZ_CHECK(cond)                                                                       \
    do {                                                                                     \
        if (!(cond))                                                                         \
            __builtin_trap();                                                                \
    } while (0)

/* Events as bytes, to compare the two runs. */
typedef struct fz_log {
    uint8_t *b;
    size_t len, cap;
} fz_log;

static void fz_put(fz_log *l, const void *p, size_t n)
{
    if (l->len + n > l->cap) {
        size_t cap = l->cap ? l->cap : 1024;
        while (cap < l->len + n)
            cap *= 2;
        uint8_t *b = realloc(l->b, cap);
        FZ_CHECK(b);
        l->b = b;
        l->cap = cap;
    }
    if (n)
        memcpy(l->b + l->len, p, n);
    l->len += n;
}

static void fz_slice(fz_log *l, pd_slice s)
{
    uint8_t null = s.base == NULL;
    fz_put(l, &null, 1);
    fz_put(l, &s.len, sizeof(s.len));
    fz_put(l, s.base, s.len);
}

static void fz_event(fz_log *l, const pd_subparse_event *ev, size_t max_message)
{
    FZ_CHECK(ev->kind >= PD_SUB_MESSAGE && ev->kind <= PD_SUB_ERROR);
    FZ_CHECK(ev->channel.len <= PD_SUBPARSE_MAX_NAME);
    FZ_CHECK(ev->pattern.len <= PD_SUBPARSE_MAX_NAME);
    if (ev->kind == PD_SUB_STATUS || ev->kind == PD_SUB_ERROR)
        FZ_CHECK(ev->payload.len <= PD_SUBPARSE_MAX_LINE);
    else if (ev->kind == PD_SUB_PONG)
        FZ_CHECK(ev->payload.len <= PD_SUBPARSE_MAX_NAME);
    else
        FZ_CHECK(ev->payload.len <= max_message);
    if (ev->kind == PD_SUB_MESSAGE || ev->kind == PD_SUB_PMESSAGE || ev->kind == PD_SUB_SMESSAGE)
        FZ_CHECK(ev->channel.base != NULL && ev->payload.base != NULL);
    FZ_CHECK(ev->count >= 0);
    uint8_t k = (uint8_t)ev->kind;
    fz_put(l, &k, 1);
    fz_slice(l, ev->channel);
    fz_slice(l, ev->pattern);
    fz_slice(l, ev->payload);
    fz_put(l, &ev->count, sizeof(ev->count));
}

/* Drain; the final code. */
static int fz_drain(pd_subparse *p, fz_log *l, size_t max_message)
{
    pd_subparse_event ev;
    int rc;
    while ((rc = pd_subparse_next(p, &ev)) == PD_SUBPARSE_EVENT)
        fz_event(l, &ev, max_message);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint32_t seed = data[0] * 2654435761u + 1;
    size_t max_message = 1 + (size_t)data[1] * 97;
    const char *in = (const char *)data + 2;
    size_t len = size - 2;

    fz_log whole = {0}, cut = {0};
    pd_subparse *a = pd_subparse_create(max_message);
    pd_subparse *b = pd_subparse_create(max_message);
    FZ_CHECK(a && b);

    /* As few pieces as the bound allows (the parser holds at most one
     * frame's worth of bytes not yet taken by pd_subparse_next). */
    int ra = PD_SUBPARSE_MORE;
    size_t frame_max = PD_SUBPARSE_FRAME_MAX(max_message);
    for (size_t at = 0; at < len && ra != PD_SUBPARSE_BAD;) {
        size_t held = pd_subparse_buffered(a);
        FZ_CHECK(held < frame_max);
        size_t n = len - at < frame_max - held ? len - at : frame_max - held;
        FZ_CHECK(pd_subparse_feed(a, in + at, n) == PD_OK);
        at += n;
        ra = fz_drain(a, &whole, max_message);
    }

    int rb = PD_SUBPARSE_MORE;
    for (size_t at = 0; at < len && rb != PD_SUBPARSE_BAD;) {
        char *buf;
        size_t room;
        FZ_CHECK(pd_subparse_space(b, &buf, &room) == PD_OK);
        FZ_CHECK(room >= 1);
        seed = seed * 1103515245u + 12345u;
        /* Mostly short reads, now and then a long one. */
        size_t step = (seed >> 16) % 8 == 0 ? 1 + (seed >> 8) % 4096 : 1 + (seed >> 16) % 24;
        size_t n = step < room ? step : room;
        if (n > len - at)
            n = len - at;
        memcpy(buf, in + at, n);
        pd_subparse_wrote(b, n);
        at += n;
        rb = fz_drain(b, &cut, max_message);
    }

    FZ_CHECK(ra == rb);
    FZ_CHECK(whole.len == cut.len && (whole.len == 0 || memcmp(whole.b, cut.b, whole.len) == 0));
    FZ_CHECK((ra == PD_SUBPARSE_BAD) == (pd_subparse_why(a) != NULL));
    if (ra == PD_SUBPARSE_MORE)
        FZ_CHECK(pd_subparse_buffered(a) < PD_SUBPARSE_FRAME_MAX(max_message));

    /* A new connection: the parser starts clean. */
    pd_subparse_reset(a);
    static const char ok[] = "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nx\r\n";
    FZ_CHECK(pd_subparse_feed(a, ok, sizeof(ok) - 1) == PD_OK);
    pd_subparse_event ev;
    FZ_CHECK(pd_subparse_next(a, &ev) == PD_SUBPARSE_EVENT && ev.kind == PD_SUB_MESSAGE);
    FZ_CHECK(ev.payload.len == 1 && ev.payload.base[0] == 'x');

    pd_subparse_free(a);
    pd_subparse_free(b);
    free(whole.b);
    free(cut.b);
    return 0;
}
