#include "privydrop/pd_jscan.h"

#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

typedef struct jcur {
    const char *p;   /* next byte */
    const char *end; /* one past the last byte */
} jcur;

static void skip_ws(jcur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int hexdig(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* Nonzero when one of the 8 bytes in v is '"', '\\' or below 0x20: the
 * bytes a string scan must stop at. Bytes from 0x80 up never count (their
 * top bit is masked off first), so a multi-byte UTF-8 sequence is skipped
 * like ASCII; the WebSocket layer has validated it. */
static uint64_t string_stops(uint64_t v)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t low7 = v & ~highs;
    uint64_t quote = low7 ^ (ones * '"'), bslash = low7 ^ (ones * '\\');
    /* (x + 0x7f) sets a byte's top bit unless the byte is 0 (low 7 bits
     * only, so no carry crosses bytes); control bytes are those whose low
     * 7 bits plus 0x60 stay below 0x80 and whose own top bit is clear. */
    uint64_t zq = ~((quote + ones * 0x7f) | quote) & highs;
    uint64_t zb = ~((bslash + ones * 0x7f) | bslash) & highs;
    uint64_t ctl = ~((low7 + ones * 0x60) | v) & highs;
    return zq | zb | ctl;
}

/* At '"': consume the string; *esc set if it holds an escape. */
static int scan_string(jcur *c, int *esc)
{
    c->p++;
    while (c->p < c->end) {
#if defined(__SSE2__)
        /* Sixteen bytes at a time, straight to the first byte to stop at. */
        const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'), ctl = _mm_set1_epi8(0x1f);
        while (c->end - c->p >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)c->p);
            /* max(v, 0x1f) == 0x1f exactly for the bytes 0x00-0x1f (unsigned) */
            __m128i stop = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                        _mm_cmpeq_epi8(_mm_max_epu8(v, ctl), ctl));
            unsigned m = (unsigned)_mm_movemask_epi8(stop);
            if (m) {
                c->p += __builtin_ctz(m);
                break;
            }
            c->p += 16;
        }
#endif
        /* Eight bytes at a time through the long runs (SDP text). */
        while (c->end - c->p >= 8) {
            uint64_t v;
            memcpy(&v, c->p, 8);
            if (string_stops(v))
                break;
            c->p += 8;
        }
        if (c->p >= c->end)
            break;
        unsigned char ch = (unsigned char)*c->p++;
        if (ch == '"')
            return 1;
        if (ch < 0x20)
            return 0;
        if (ch == '\\') {
            if (c->p >= c->end)
                return 0;
            char e = *c->p++;
            if (esc)
                *esc = 1;
            if (e == 'u') {
                if (c->end - c->p < 4 || !hexdig(c->p[0]) || !hexdig(c->p[1]) || !hexdig(c->p[2]) ||
                    !hexdig(c->p[3]))
                    return 0;
                c->p += 4;
            } else if (!(e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' ||
                         e == 't')) {
                return 0;
            }
        }
    }
    return 0;
}

static int digits(jcur *c)
{
    const char *s = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
        c->p++;
    return c->p > s;
}

static int scan_number(jcur *c)
{
    if (c->p < c->end && *c->p == '-')
        c->p++;
    if (c->p >= c->end)
        return 0;
    if (*c->p == '0')
        c->p++;
    else if (!digits(c))
        return 0;
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (!digits(c))
            return 0;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (!digits(c))
            return 0;
    }
    return 1;
}

static int scan_literal(jcur *c, const char *lit, size_t n)
{
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
        return 0;
    c->p += n;
    return 1;
}

static int scan_value(jcur *c, int depth);

static int scan_array(jcur *c, int depth)
{
    c->p++;
    skip_ws(c);
    if (c->p < c->end && *c->p == ']') {
        c->p++;
        return 1;
    }
    for (;;) {
        if (!scan_value(c, depth))
            return 0;
        skip_ws(c);
        if (c->p >= c->end)
            return 0;
        if (*c->p == ']') {
            c->p++;
            return 1;
        }
        if (*c->p++ != ',')
            return 0;
        skip_ws(c);
    }
}

/* At '{': consume the object, its values nested at most `depth` deep.
 * Members whose (unescaped) key is among members[0..n) get their value's
 * raw span; the last occurrence wins, as in JSON.parse. */
static int scan_object_members(jcur *c, int depth, pd_jscan_member *members, size_t n)
{
    c->p++;
    skip_ws(c);
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        return 1;
    }
    for (;;) {
        if (c->p >= c->end || *c->p != '"')
            return 0;
        const char *k = c->p + 1;
        int esc = 0;
        if (!scan_string(c, n ? &esc : NULL))
            return 0;
        size_t klen = (size_t)(c->p - 1 - k);
        skip_ws(c);
        if (c->p >= c->end || *c->p++ != ':')
            return 0;
        skip_ws(c);
        const char *v = c->p;
        if (!scan_value(c, depth))
            return 0;
        for (size_t i = 0; i < n && !esc; i++)
            if (members[i].key[0] == *k && strncmp(members[i].key, k, klen) == 0 && members[i].key[klen] == '\0')
                members[i].value = pd_slice_make(v, (size_t)(c->p - v));
        skip_ws(c);
        if (c->p >= c->end)
            return 0;
        if (*c->p == '}') {
            c->p++;
            return 1;
        }
        if (*c->p++ != ',')
            return 0;
        skip_ws(c);
    }
}

static int scan_object(jcur *c, int depth)
{
    return scan_object_members(c, depth, NULL, 0);
}

/* Recursion is bounded by `depth`, so the C stack is too. */
static int scan_value(jcur *c, int depth)
{
    if (c->p >= c->end)
        return 0;
    switch (*c->p) {
    case '{':
        return depth > 0 && scan_object(c, depth - 1);
    case '[':
        return depth > 0 && scan_array(c, depth - 1);
    case '"':
        return scan_string(c, NULL);
    case 't':
        return scan_literal(c, "true", 4);
    case 'f':
        return scan_literal(c, "false", 5);
    case 'n':
        return scan_literal(c, "null", 4);
    default:
        return scan_number(c);
    }
}

int pd_jscan_valid(pd_slice text, int max_depth)
{
    jcur c = {text.base, text.base + text.len};
    skip_ws(&c);
    if (!scan_value(&c, max_depth))
        return 0;
    skip_ws(&c);
    return c.p == c.end;
}

/* One walk validates the whole text and takes it apart: the packet is read
 * once, however large its payload. The depth bookkeeping matches
 * pd_jscan_valid: the array takes one level, its elements the rest. */
int pd_jscan_event_members(pd_slice data, int max_depth, pd_slice *name, int *has_escape, pd_slice *payload,
                           pd_jscan_member *members, size_t n)
{
    for (size_t i = 0; i < n; i++)
        members[i].value = pd_slice_make(NULL, 0);
    *payload = pd_slice_make(NULL, 0);
    if (max_depth < 1)
        return PD_ERR;
    jcur c = {data.base, data.base + data.len};
    skip_ws(&c);
    if (c.p >= c.end || *c.p != '[')
        return PD_ERR;
    c.p++;
    skip_ws(&c);
    if (c.p >= c.end || *c.p != '"')
        return PD_ERR;
    const char *s = c.p + 1;
    int esc = 0;
    if (!scan_string(&c, &esc))
        return PD_ERR;
    *name = pd_slice_make(s, (size_t)(c.p - 1 - s));
    *has_escape = esc;
    int depth = max_depth - 1; /* for the array's elements */
    for (int k = 1;; k++) {
        skip_ws(&c);
        if (c.p >= c.end)
            goto fail;
        if (*c.p == ']')
            break;
        if (*c.p++ != ',')
            goto fail;
        skip_ws(&c);
        const char *v = c.p;
        int ok;
        if (k == 1 && n && c.p < c.end && *c.p == '{')
            ok = depth > 0 && scan_object_members(&c, depth - 1, members, n);
        else
            ok = scan_value(&c, depth);
        if (!ok)
            goto fail;
        if (k == 1)
            *payload = pd_slice_make(v, (size_t)(c.p - v));
    }
    c.p++;
    skip_ws(&c);
    if (c.p == c.end)
        return PD_OK;
fail:
    for (size_t i = 0; i < n; i++)
        members[i].value = pd_slice_make(NULL, 0);
    *payload = pd_slice_make(NULL, 0);
    return PD_ERR;
}

int pd_jscan_event(pd_slice data, int max_depth, pd_slice *name, int *has_escape, pd_slice *payload)
{
    return pd_jscan_event_members(data, max_depth, name, has_escape, payload, NULL, 0);
}

int pd_jscan_object(pd_slice obj, pd_jscan_member *members, size_t n)
{
    for (size_t i = 0; i < n; i++)
        members[i].value = pd_slice_make(NULL, 0);
    jcur c = {obj.base, obj.base + obj.len};
    skip_ws(&c);
    if (c.p >= c.end || *c.p != '{')
        return PD_ERR;
    c.p++;
    skip_ws(&c);
    while (c.p < c.end && *c.p == '"') {
        const char *k = c.p + 1;
        int esc = 0;
        if (!scan_string(&c, &esc))
            return PD_ERR;
        pd_slice key = pd_slice_make(k, (size_t)(c.p - 1 - k));
        skip_ws(&c);
        c.p++; /* ':' */
        skip_ws(&c);
        const char *v = c.p;
        /* The span was validated by the caller; depth is irrelevant here. */
        if (!scan_value(&c, 4096))
            return PD_ERR;
        pd_slice value = pd_slice_make(v, (size_t)(c.p - v));
        for (size_t i = 0; i < n && !esc; i++)
            if (pd_slice_eq(key, members[i].key))
                members[i].value = value;
        skip_ws(&c);
        if (c.p < c.end && *c.p == ',') {
            c.p++;
            skip_ws(&c);
        }
    }
    return PD_OK;
}
