/* pd_subparse.h — a bounded parser for what a Redis connection in
 * subscribed mode receives (RESP2), used by the subscriber link instead of
 * hiredis's reply reader (docs/architecture.md §Redis).
 *
 * Only the shapes such a connection can carry are accepted:
 *   pushes          message <channel> <payload>
 *                   pmessage <pattern> <channel> <payload>
 *                   smessage <channel> <payload>
 *   confirmations   (p|s)(un)subscribe <channel or pattern, or null> <count>
 *                   pong <argument>
 *   simple replies  +<status> (AUTH's +OK), -<error>
 * Anything else (another type, another array length, an unknown kind, a
 * length over its bound, a missing CRLF) makes the stream malformed: the
 * caller drops the connection. Bounds are checked on the headers, before
 * any body is waited for, so a hostile server cannot make the buffer grow
 * past PD_SUBPARSE_FRAME_MAX(max_message).
 *
 * Zero copies: the bytes are read straight into the parser's buffer
 * (pd_subparse_space / pd_subparse_wrote) and events are slices into it.
 * No allocation per message: the buffer grows only for a frame longer than
 * it (up to the bound) and returns to its first size once empty.
 *
 * Ownership: the parser owns its buffer. An event's slices stay valid
 * until the next pd_subparse_space, pd_subparse_feed or pd_subparse_reset. */
#ifndef PD_SUBPARSE_H
#define PD_SUBPARSE_H

#include "privydrop/pd_common.h"

/* Longest channel, pattern or pong argument accepted. */
#define PD_SUBPARSE_MAX_NAME 1024
/* Longest status or error text accepted. */
#define PD_SUBPARSE_MAX_LINE 512
/* Longest frame for a given payload bound: a pmessage with the longest
 * pattern and channel, plus headers. */
#define PD_SUBPARSE_FRAME_MAX(max_message) ((size_t)(max_message) + 2 * PD_SUBPARSE_MAX_NAME + 128)
/* Largest payload bound accepted by pd_subparse_create. */
#define PD_SUBPARSE_MAX_MESSAGE ((size_t)1 << 30)

typedef enum pd_subparse_kind {
    PD_SUB_MESSAGE = 1,
    PD_SUB_PMESSAGE,
    PD_SUB_SMESSAGE,
    PD_SUB_SUBSCRIBE,
    PD_SUB_UNSUBSCRIBE,
    PD_SUB_PSUBSCRIBE,
    PD_SUB_PUNSUBSCRIBE,
    PD_SUB_SSUBSCRIBE,
    PD_SUB_SUNSUBSCRIBE,
    PD_SUB_PONG,
    PD_SUB_STATUS,
    PD_SUB_ERROR,
} pd_subparse_kind;

typedef struct pd_subparse_event {
    pd_subparse_kind kind;
    pd_slice channel; /* messages: the channel; confirmations: the channel or
                         pattern (base NULL for a null one) */
    pd_slice pattern; /* PMESSAGE: the pattern that matched; else empty */
    pd_slice payload; /* messages: the payload; PONG: its argument;
                         STATUS / ERROR: the text after '+' / '-' */
    long long count;  /* confirmations: subscriptions left; else 0 */
} pd_subparse_event;

enum {
    PD_SUBPARSE_BAD = -1,  /* malformed or over a bound: drop the connection */
    PD_SUBPARSE_MORE = 0,  /* no complete frame buffered */
    PD_SUBPARSE_EVENT = 1, /* *ev filled */
};

typedef struct pd_subparse pd_subparse;

/* A parser for payloads of at most max_message bytes (1 ..
 * PD_SUBPARSE_MAX_MESSAGE). NULL on allocation failure or a bad bound. */
pd_subparse *pd_subparse_create(size_t max_message);
void pd_subparse_free(pd_subparse *p);

/* Forget everything buffered (a new connection). */
void pd_subparse_reset(pd_subparse *p);

/* Where to read the next bytes into: *room ≥ 1. Invalidates earlier
 * events' slices (the buffer may move). PD_ERR on allocation failure. */
int pd_subparse_space(pd_subparse *p, char **buf, size_t *room);
/* n (≤ the room given) bytes were written at the space's start. */
void pd_subparse_wrote(pd_subparse *p, size_t n);

/* Copy data in (through pd_subparse_space): for tests and fuzzing, which
 * have their bytes elsewhere. PD_ERR on allocation failure, or when more
 * than PD_SUBPARSE_FRAME_MAX(max_message) bytes would be held without
 * pd_subparse_next taking complete frames in between. */
int pd_subparse_feed(pd_subparse *p, const char *data, size_t len);

/* The next complete frame: PD_SUBPARSE_EVENT with *ev filled, then the
 * frame is consumed; PD_SUBPARSE_MORE; or PD_SUBPARSE_BAD, after which
 * every call says PD_SUBPARSE_BAD until pd_subparse_reset. */
int pd_subparse_next(pd_subparse *p, pd_subparse_event *ev);

/* Why the stream was refused (static text), or NULL while it is fine. */
const char *pd_subparse_why(const pd_subparse *p);

/* Bytes buffered and not yet consumed. */
size_t pd_subparse_buffered(const pd_subparse *p);

#endif
