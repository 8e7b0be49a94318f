/* The subscriber link's RESP parser (pd_subparse.h).
 *
 * A frame is parsed from its first byte each time enough bytes may be
 * there; an incomplete one records how many bytes it needs at least (the
 * whole bulk string once its header is read), so a long payload arriving
 * in many reads is not re-scanned for each of them. Headers are short and
 * bounded, so re-reading them costs little. */
#include "privydrop/pd_subparse.h"

#include <stdlib.h>
#include <string.h>

/* The first buffer: a read takes many small messages at once. */
#define SUBPARSE_INITIAL 65536u
/* Less room than this after the buffered bytes: move them to the front
 * before reading, so reads stay large. */
#define SUBPARSE_MIN_READ 4096u
/* Digits of a length or an integer: 10^18 fits in a long long. */
#define SUBPARSE_MAX_DIGITS 18
/* Longest kind name ("punsubscribe", "sunsubscribe"). */
#define SUBPARSE_MAX_KIND 12

struct pd_subparse {
    char *buf;          /* owned */
    size_t cap;         /* bytes allocated */
    size_t initial;     /* the size the buffer returns to once empty */
    size_t start;       /* first byte not consumed */
    size_t end;         /* one past the last byte buffered */
    size_t need;        /* the current frame needs at least this many bytes from start */
    size_t max_message; /* payload bound */
    size_t frame_max;   /* PD_SUBPARSE_FRAME_MAX(max_message) */
    const char *why;    /* set once the stream is refused */
};

pd_subparse *pd_subparse_create(size_t max_message)
{
    if (max_message < 1 || max_message > PD_SUBPARSE_MAX_MESSAGE)
        return NULL;
    pd_subparse *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->max_message = max_message;
    p->frame_max = PD_SUBPARSE_FRAME_MAX(max_message);
    p->initial = PD_MIN((size_t)SUBPARSE_INITIAL, p->frame_max);
    p->buf = malloc(p->initial);
    if (!p->buf) {
        free(p);
        return NULL;
    }
    p->cap = p->initial;
    return p;
}

void pd_subparse_free(pd_subparse *p)
{
    if (!p)
        return;
    free(p->buf);
    free(p);
}

static void shrink(pd_subparse *p)
{
    /* A long message had the buffer grow: give the memory back. */
    if (p->cap > p->initial) {
        char *b = realloc(p->buf, p->initial);
        if (b) {
            p->buf = b;
            p->cap = p->initial;
        }
    }
}

void pd_subparse_reset(pd_subparse *p)
{
    p->start = p->end = 0;
    p->need = 0;
    p->why = NULL;
    shrink(p);
}

int pd_subparse_space(pd_subparse *p, char **buf, size_t *room)
{
    size_t have = p->end - p->start;
    if (have == 0) {
        p->start = p->end = 0;
        shrink(p);
    }
    /* The frame in progress needs `want` bytes in all (at least one more
     * than buffered when its length is not known yet). */
    size_t want = PD_MAX(p->need, have + 1);
    if (want > p->frame_max)
        want = p->frame_max; /* next() refuses such a frame; still give room */
    if (p->start > 0 && (p->cap - p->end < SUBPARSE_MIN_READ || p->start + want > p->cap)) {
        memmove(p->buf, p->buf + p->start, have);
        p->start = 0;
        p->end = have;
    }
    if (want > p->cap || p->end == p->cap) {
        size_t cap = PD_MAX(p->cap * 2, want);
        cap = PD_MIN(cap, p->frame_max);
        if (cap <= p->end)
            return PD_ERR; /* a full frame_max buffered and still no frame: next() says BAD */
        char *b = realloc(p->buf, cap);
        if (!b)
            return PD_ERR;
        p->buf = b;
        p->cap = cap;
    }
    *buf = p->buf + p->end;
    *room = p->cap - p->end;
    return PD_OK;
}

void pd_subparse_wrote(pd_subparse *p, size_t n)
{
    p->end += PD_MIN(n, p->cap - p->end);
}

int pd_subparse_feed(pd_subparse *p, const char *data, size_t len)
{
    while (len) {
        char *b;
        size_t room;
        if (pd_subparse_space(p, &b, &room) != PD_OK)
            return PD_ERR;
        size_t n = PD_MIN(room, len);
        memcpy(b, data, n);
        pd_subparse_wrote(p, n);
        data += n;
        len -= n;
    }
    return PD_OK;
}

const char *pd_subparse_why(const pd_subparse *p)
{
    return p->why;
}

size_t pd_subparse_buffered(const pd_subparse *p)
{
    return p->end - p->start;
}

/* ---- one frame ------------------------------------------------------------ */

enum { R_BAD = -1, R_MORE = 0, R_OK = 1 };

typedef struct cursor {
    const char *s;    /* the frame's first byte */
    size_t len;       /* bytes buffered from there */
    size_t pos;       /* next byte to read */
    size_t need;      /* on R_MORE: bytes the frame needs at least */
    const char *why;  /* on R_BAD */
} cursor;

static int more(cursor *c)
{
    if (c->need <= c->len)
        c->need = c->len + 1;
    return R_MORE;
}

static int bad(cursor *c, const char *why)
{
    c->why = why;
    return R_BAD;
}

/* The integer after a type byte, up to CRLF: digits, or exactly "-1" when
 * minus_one is allowed (a null bulk string). Values over max are refused
 * as soon as their digits say so. */
static int read_int(cursor *c, long long max, int minus_one, long long *out)
{
    size_t i = c->pos;
    if (i >= c->len)
        return more(c);
    if (c->s[i] == '-') {
        if (!minus_one)
            return bad(c, "negative length or integer");
        if (i + 1 >= c->len)
            return more(c);
        if (c->s[i + 1] != '1')
            return bad(c, "negative length other than -1");
        i += 2;
        if (i + 1 >= c->len)
            return more(c);
        if (c->s[i] != '\r' || c->s[i + 1] != '\n')
            return bad(c, "no CRLF after a length");
        c->pos = i + 2;
        *out = -1;
        return R_OK;
    }
    long long v = 0;
    int digits = 0;
    for (;; i++) {
        if (i >= c->len)
            return more(c);
        char ch = c->s[i];
        if (ch == '\r')
            break;
        if (ch < '0' || ch > '9')
            return bad(c, "not a digit in a length or integer");
        if (++digits > SUBPARSE_MAX_DIGITS)
            return bad(c, "length or integer too long");
        v = v * 10 + (ch - '0');
        if (v > max)
            return bad(c, "length over its bound");
    }
    if (digits == 0)
        return bad(c, "empty length or integer");
    if (i + 1 >= c->len)
        return more(c);
    if (c->s[i + 1] != '\n')
        return bad(c, "no CRLF after a length");
    c->pos = i + 2;
    *out = v;
    return R_OK;
}

/* A bulk string of at most max bytes; a null one only when nullable
 * (slice base NULL). */
static int read_bulk(cursor *c, size_t max, int nullable, pd_slice *out)
{
    if (c->pos >= c->len)
        return more(c);
    if (c->s[c->pos] != '$')
        return bad(c, "element is not a bulk string");
    c->pos++;
    long long n = 0;
    int rc = read_int(c, (long long)max, nullable, &n);
    if (rc != R_OK)
        return rc;
    if (n < 0) {
        *out = pd_slice_make(NULL, 0);
        return R_OK;
    }
    size_t body = c->pos, stop = body + (size_t)n;
    if (stop + 2 > c->len) {
        c->need = stop + 2;
        return R_MORE;
    }
    if (c->s[stop] != '\r' || c->s[stop + 1] != '\n')
        return bad(c, "no CRLF after a bulk string");
    *out = pd_slice_make(c->s + body, (size_t)n);
    c->pos = stop + 2;
    return R_OK;
}

static int read_integer(cursor *c, long long *out)
{
    if (c->pos >= c->len)
        return more(c);
    if (c->s[c->pos] != ':')
        return bad(c, "count is not an integer");
    c->pos++;
    return read_int(c, 999999999999999999LL, 0, out);
}

/* "+text" or "-text" up to CRLF, at most PD_SUBPARSE_MAX_LINE bytes. */
static int read_line(cursor *c, pd_subparse_event *ev)
{
    size_t limit = PD_MIN(c->len, (size_t)1 + PD_SUBPARSE_MAX_LINE + 1);
    for (size_t i = 1; i < limit; i++) {
        if (c->s[i] == '\n')
            return bad(c, "LF inside a status line");
        if (c->s[i] != '\r')
            continue;
        if (i + 1 >= c->len)
            return more(c);
        if (c->s[i + 1] != '\n')
            return bad(c, "CR without LF in a status line");
        ev->kind = c->s[0] == '+' ? PD_SUB_STATUS : PD_SUB_ERROR;
        ev->payload = pd_slice_make(c->s + 1, i - 1);
        c->pos = i + 2;
        return R_OK;
    }
    if (c->len >= (size_t)1 + PD_SUBPARSE_MAX_LINE + 1)
        return bad(c, "status line too long");
    return more(c);
}

static int kind_of(pd_slice k)
{
    static const struct {
        const char *name;
        pd_subparse_kind kind;
    } kinds[] = {
        {"message", PD_SUB_MESSAGE},         {"pmessage", PD_SUB_PMESSAGE},
        {"smessage", PD_SUB_SMESSAGE},       {"subscribe", PD_SUB_SUBSCRIBE},
        {"unsubscribe", PD_SUB_UNSUBSCRIBE}, {"psubscribe", PD_SUB_PSUBSCRIBE},
        {"punsubscribe", PD_SUB_PUNSUBSCRIBE}, {"ssubscribe", PD_SUB_SSUBSCRIBE},
        {"sunsubscribe", PD_SUB_SUNSUBSCRIBE}, {"pong", PD_SUB_PONG},
    };
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (pd_slice_eq(k, kinds[i].name))
            return kinds[i].kind;
    return 0;
}

static int parse_frame(cursor *c, size_t max_message, pd_subparse_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    char type = c->s[0];
    if (type == '+' || type == '-')
        return read_line(c, ev);
    /* '>' is RESP3's push: the same shapes, should a server send them. */
    if (type != '*' && type != '>')
        return bad(c, "not an array, status or error");
    c->pos = 1;
    long long n = 0;
    int rc = read_int(c, 4, 0, &n);
    if (rc != R_OK)
        return rc;
    if (n < 2)
        return bad(c, "array too short for a push");
    pd_slice k;
    if ((rc = read_bulk(c, SUBPARSE_MAX_KIND, 0, &k)) != R_OK)
        return rc;
    int kind = kind_of(k);
    if (!kind)
        return bad(c, "unknown push kind");
    ev->kind = (pd_subparse_kind)kind;
    switch (ev->kind) {
    case PD_SUB_MESSAGE:
    case PD_SUB_SMESSAGE:
        if (n != 3)
            return bad(c, "message without 3 elements");
        if ((rc = read_bulk(c, PD_SUBPARSE_MAX_NAME, 0, &ev->channel)) != R_OK)
            return rc;
        return read_bulk(c, max_message, 0, &ev->payload);
    case PD_SUB_PMESSAGE:
        if (n != 4)
            return bad(c, "pmessage without 4 elements");
        if ((rc = read_bulk(c, PD_SUBPARSE_MAX_NAME, 0, &ev->pattern)) != R_OK)
            return rc;
        if ((rc = read_bulk(c, PD_SUBPARSE_MAX_NAME, 0, &ev->channel)) != R_OK)
            return rc;
        return read_bulk(c, max_message, 0, &ev->payload);
    case PD_SUB_PONG:
        if (n != 2)
            return bad(c, "pong without 2 elements");
        return read_bulk(c, PD_SUBPARSE_MAX_NAME, 0, &ev->payload);
    default: /* a (un)subscribe confirmation */
        if (n != 3)
            return bad(c, "confirmation without 3 elements");
        if ((rc = read_bulk(c, PD_SUBPARSE_MAX_NAME, 1, &ev->channel)) != R_OK)
            return rc;
        return read_integer(c, &ev->count);
    }
}

int pd_subparse_next(pd_subparse *p, pd_subparse_event *ev)
{
    if (p->why)
        return PD_SUBPARSE_BAD;
    size_t have = p->end - p->start;
    if (have == 0 || have < p->need)
        return PD_SUBPARSE_MORE;
    cursor c = {p->buf + p->start, have, 0, 0, NULL};
    int rc = parse_frame(&c, p->max_message, ev);
    if (rc == R_OK) {
        p->start += c.pos;
        p->need = 0;
        return PD_SUBPARSE_EVENT;
    }
    if (rc == R_MORE) {
        if (c.need > p->frame_max) {
            p->why = "frame over its bound";
            return PD_SUBPARSE_BAD;
        }
        p->need = c.need;
        return PD_SUBPARSE_MORE;
    }
    p->why = c.why;
    return PD_SUBPARSE_BAD;
}
