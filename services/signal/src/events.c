/* events.c — payload field checks of the hub's Socket.IO events. */
#include "events.h"

#include <string.h>

/* The relay's events first: they are most of the traffic, candidates most
 * of all. */
static const pd_event_def EVENTS[] = {
    {"ice-candidate", PD_EVENT_SIGNAL, "candidate"},
    {"offer", PD_EVENT_SIGNAL, "offer"},
    {"answer", PD_EVENT_SIGNAL, "answer"},
    {"join", PD_EVENT_JOIN, NULL},
    {"initiator-online", PD_EVENT_ROOM, NULL},
    {"recipient-ready", PD_EVENT_ROOM, NULL},
};

/* Six names: a scan costs less than hashing. */
const pd_event_def *pd_event_lookup(pd_slice name)
{
    for (size_t i = 0; i < PD_ARRAY_LEN(EVENTS); i++)
        if (pd_slice_eq(name, EVENTS[i].name))
            return &EVENTS[i];
    return NULL;
}

/* The string member `key` of an object payload, or NULL. */
static const json_t *event_string_field(const json_t *payload, const char *key)
{
    const json_t *v = json_is_object(payload) ? json_object_get(payload, key) : NULL;
    return json_is_string(v) ? v : NULL;
}

pd_event_check pd_event_join(const json_t *payload, pd_slice *room)
{
    const json_t *jroom = event_string_field(payload, "roomId");
    if (!jroom)
        return PD_EVENT_BAD_PAYLOAD;
    *room = pd_slice_make(json_string_value(jroom), json_string_length(jroom));
    /* strlen catches an embedded NUL, which a C-string key would truncate. */
    if (!pd_id_valid(*room) || strlen(room->base) != room->len)
        return PD_EVENT_BAD_ID;
    return PD_EVENT_OK;
}

pd_event_check pd_event_signal(const json_t *payload, const char *field, pd_slice *peer,
                               json_t **value)
{
    const json_t *jpeer = event_string_field(payload, "peerId");
    json_t *v = json_is_object(payload) ? json_object_get(payload, field) : NULL;
    if (!jpeer || !v)
        return PD_EVENT_BAD_PAYLOAD;
    *peer = pd_slice_make(json_string_value(jpeer), json_string_length(jpeer));
    *value = v;
    return pd_id_valid(*peer) ? PD_EVENT_OK : PD_EVENT_BAD_ID;
}

pd_event_check pd_event_room(const json_t *payload, const char **room)
{
    const json_t *jroom = event_string_field(payload, "roomId");
    if (!jroom)
        return PD_EVENT_BAD_PAYLOAD;
    *room = json_string_value(jroom);
    return PD_EVENT_OK;
}

size_t pd_event_echo_len(pd_slice s, size_t max)
{
    if (s.len <= max)
        return s.len;
    size_t n = max;
    /* s.base[n] is the first byte left out: back off over continuation
     * bytes (10xxxxxx) so the lead byte of that character goes too. */
    while (n > 0 && ((unsigned char)s.base[n] & 0xc0) == 0x80)
        n--;
    return n;
}

size_t pd_event_signal_packet(char *out, size_t cap, const char *event, const char *field, pd_slice value,
                              const char *sid)
{
    size_t elen = strlen(event), flen = strlen(field), slen = strlen(sid);
    size_t len = 4 + elen + 4 + flen + 2 + value.len + 9 + slen + 12 + slen + 3;
    if (!out || cap < len)
        return len;
    char *o = out;
    memcpy(o, "42[\"", 4), o += 4;
    memcpy(o, event, elen), o += elen;
    memcpy(o, "\",{\"", 4), o += 4;
    memcpy(o, field, flen), o += flen;
    memcpy(o, "\":", 2), o += 2;
    if (value.len)
        memcpy(o, value.base, value.len), o += value.len;
    memcpy(o, ",\"from\":\"", 9), o += 9;
    memcpy(o, sid, slen), o += slen;
    memcpy(o, "\",\"peerId\":\"", 12), o += 12;
    memcpy(o, sid, slen), o += slen;
    memcpy(o, "\"}]", 3);
    return len;
}
