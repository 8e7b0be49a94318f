/* pd_jscan.h — a validating, non-allocating JSON scanner (RFC 8259) for the
 * signal relay hot path. The relay never needs a JSON tree: it checks that
 * the packet is valid JSON, finds two members of the payload object and
 * copies the rest through as raw bytes. Pure; no I/O, no allocation.
 * Nesting deeper than the caller's bound counts as invalid, so the caller
 * can fall back to the general decoder (pd_sio_decode_event). */
#ifndef PD_JSCAN_H
#define PD_JSCAN_H

#include "privydrop/pd_common.h"

/* 1 if `text` is exactly one JSON value (surrounding whitespace allowed)
 * nested at most max_depth deep. Strings are checked for control bytes and
 * escapes, not for UTF-8 (the WebSocket layer has validated that). */
int pd_jscan_valid(pd_slice text, int max_depth);

typedef struct pd_jscan_member {
    const char *key;  /* member name to look for (compared to the raw key) */
    pd_slice value;   /* raw span of its value; base NULL if absent */
} pd_jscan_member;

/* Socket.IO event data `["<name>", <payload>, …]`: PD_OK if the whole text
 * is valid (as above) and an array whose first element is a string. *name
 * is the raw string content between the quotes (escapes left as written);
 * *has_escape tells whether it contains any. *payload is the raw span of
 * the second element, or empty if there is none. */
int pd_jscan_event(pd_slice data, int max_depth, pd_slice *name, int *has_escape, pd_slice *payload);

/* pd_jscan_event, and in the same single pass over the text (the relay's
 * hot path reads each packet once): when the payload is an object, the
 * values of the members named in members[0..n) (as pd_jscan_object
 * finds them). Every value is left empty (base NULL) when the payload is no
 * object, or on PD_ERR. */
int pd_jscan_event_members(pd_slice data, int max_depth, pd_slice *name, int *has_escape, pd_slice *payload,
                           pd_jscan_member *members, size_t n);


/* For `obj`, a span already known to be valid JSON: PD_OK if it is an
 * object, filling in the members' values (the last occurrence wins, as in
 * JSON.parse). Keys written with escapes never match. */
int pd_jscan_object(pd_slice obj, pd_jscan_member *members, size_t n);

#endif
