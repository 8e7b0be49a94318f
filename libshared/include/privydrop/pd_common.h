/* pd_common.h — small shared vocabulary: status codes, byte slices, clocks.
 *
 * A pd_slice is a view (base + len) into memory owned by someone else; it is
 * never freed through the slice and is not NUL-terminated unless stated. */
#ifndef PD_COMMON_H
#define PD_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PD_OK 0
#define PD_ERR (-1)

#define PD_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define PD_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PD_MAX(a, b) ((a) > (b) ? (a) : (b))

#define PD_VERSION "0.1.0"

typedef struct pd_slice {
    const char *base; /* first byte; may be NULL when len == 0 */
    size_t len;       /* number of bytes */
} pd_slice;

static inline pd_slice pd_slice_make(const char *base, size_t len)
{
    pd_slice s = {base, len};
    return s;
}

static inline pd_slice pd_slice_cstr(const char *s)
{
    return pd_slice_make(s, s ? strlen(s) : 0);
}

/* Exact byte comparison with a NUL-terminated string. */
static inline int pd_slice_eq(pd_slice s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && (n == 0 || memcmp(s.base, lit, n) == 0);
}

/* ASCII case-insensitive comparison (HTTP header names, tokens). */
int pd_slice_ieq(pd_slice s, const char *lit);

/* 1 if data is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF): WebSocket text (RFC 6455 §8.1),
 * metric label values. */
int pd_utf8_valid(const uint8_t *data, size_t len);

/* Wall clock in milliseconds since the Unix epoch. */
uint64_t pd_now_ms(void);

/* Monotonic clock in milliseconds (intervals, timeouts). */
uint64_t pd_mono_ms(void);

/* A room id is 1..64 bytes of [A-Za-z0-9_-] (docs/wire-protocol.md §Ids).
 * Socket ids use the same alphabet, so the same check bounds both before they
 * reach Redis keys. */
#define PD_ID_MAX 64
int pd_id_valid(pd_slice id);

#endif
