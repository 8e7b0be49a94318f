/* events.h — the payload checks of the Socket.IO events the hub serves
 * (docs/wire-protocol.md §Events), apart from sessions and Redis so they can
 * be fuzzed alone.
 * Pure: every returned pointer or slice is borrowed from `payload`. */
#ifndef PD_SIGNAL_EVENTS_H
#define PD_SIGNAL_EVENTS_H

#include <jansson.h>

#include "privydrop/pd_common.h"

/* ---- the event table ------------------------------------------------------
 * Every event a client may send, once: the hub's fast path (relay from the
 * raw text), its general path (a decoded tree) and the fuzzer all dispatch
 * through it. */
typedef enum pd_event_kind {
    PD_EVENT_JOIN,   /* join: {roomId} → Redis join, joinResponse */
    PD_EVENT_SIGNAL, /* offer / answer / ice-candidate: {peerId, <field>} → the peer */
    PD_EVENT_ROOM,   /* initiator-online / recipient-ready: {roomId} → the rest of the room */
} pd_event_kind;

typedef struct pd_event_def {
    const char *name;   /* the Socket.IO event name, also the metric label (messages_total{event}) */
    pd_event_kind kind; /* how the hub handles it */
    const char *field;  /* PD_EVENT_SIGNAL: the payload member carried to the peer; else NULL */
} pd_event_def;

/* The event called `name` (compared bytewise, no unescaping), or NULL. */
const pd_event_def *pd_event_lookup(pd_slice name);

typedef enum pd_event_check {
    PD_EVENT_OK = 0,      /* every field present, ids valid */
    PD_EVENT_BAD_PAYLOAD, /* not an object, or a required field absent or mistyped */
    PD_EVENT_BAD_ID,      /* the id field is a string but not a valid id (pd_id_valid) */
} pd_event_check;

/* join: {roomId: <id>}. *room views the roomId string (NUL-terminated) on
 * OK and on BAD_ID, so the caller can echo it back. */
pd_event_check pd_event_join(const json_t *payload, pd_slice *room);

/* offer / answer / ice-candidate: {peerId: <id>, <field>: any}. *peer and
 * *value are set on OK and on BAD_ID. */
pd_event_check pd_event_signal(const json_t *payload, const char *field, pd_slice *peer,
                               json_t **value);

/* initiator-online / recipient-ready: {roomId: string}. *room is set on OK;
 * whether it is the sender's own room is the caller's business. */
pd_event_check pd_event_room(const json_t *payload, const char **room);

/* Length of `s` cut to at most `max` bytes without splitting a UTF-8
 * sequence, for echoing a client's string back (jansson refuses a string
 * cut mid-character). `s` is valid UTF-8, as every jansson string is. */
size_t pd_event_echo_len(pd_slice s, size_t max);

/* Write the relayed signal
 *     42["<event>",{"<field>":<value>,"from":"<sid>","peerId":"<sid>"}]
 * into out (not NUL-terminated) when cap allows; returns its length either
 * way (call with out NULL to size a buffer). `value` is copied as raw JSON,
 * so the packet equals the general path's encoding of the same value up to
 * the whitespace the client put inside it. */
size_t pd_event_signal_packet(char *out, size_t cap, const char *event, const char *field, pd_slice value,
                              const char *sid);

#endif
