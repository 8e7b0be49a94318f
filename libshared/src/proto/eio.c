/* eio.c — Engine.IO v4 packet codec (docs/engine.io-protocol/v4-current.md).
 * Pure functions over buffers; the WebSocket layer hands us one text frame at
 * a time and writes what we encode. */
#include "privydrop/pd_eio.h"

#include <stdio.h>

/* "Packet encoding": over WebSocket a packet is its type digit followed by the
 * payload, one packet per frame (no length prefix, no record separator). */
int pd_eio_parse(pd_slice frame, pd_eio_packet *out)
{
    if (frame.len == 0 || frame.base == NULL)
        return PD_ERR;
    char t = frame.base[0];
    if (t < '0' || t > '6')
        return PD_ERR;
    out->type = (pd_eio_type)(t - '0');
    out->data = pd_slice_make(frame.base + 1, frame.len - 1);
    return PD_OK;
}

/* "Handshake": the open packet carries the session parameters as JSON. The
 * sid is written unescaped, so it must be from the id alphabet (no quotes or
 * backslashes can reach the JSON). upgrades lists "websocket" only for a
 * session opened over polling: one already on WebSocket has nowhere to go. */
int pd_eio_encode_open(char *buf, size_t cap, const char *sid, unsigned ping_interval_ms,
                       unsigned ping_timeout_ms, size_t max_payload, int can_upgrade)
{
    if (buf == NULL || sid == NULL || !pd_id_valid(pd_slice_cstr(sid)))
        return PD_ERR;
    int n = snprintf(buf, cap,
                     "0{\"sid\":\"%s\",\"upgrades\":[%s],\"pingInterval\":%u,"
                     "\"pingTimeout\":%u,\"maxPayload\":%zu}",
                     sid, can_upgrade ? "\"websocket\"" : "", ping_interval_ms, ping_timeout_ms, max_payload);
    if (n < 0 || (size_t)n >= cap)
        return PD_ERR;
    return n;
}

/* How often a handshake parameter was seen and its (last) value. */
typedef struct eio_param {
    unsigned count; /* occurrences in the query */
    pd_slice value; /* raw value of the last occurrence */
} eio_param;

/* Order of the checks follows the engine.io server: the transport first
 * (code 0), then the protocol version (code 5); a session id is handed to
 * the caller, who knows whether it exists (code 1 if not). A repeated
 * parameter is treated as invalid, as a Node query parser would turn it into
 * an array that never equals the expected string. Values are compared raw:
 * the clients we serve never percent-encode these ASCII tokens. */
const char *pd_eio_check_query(pd_slice query, pd_eio_query *out)
{
    eio_param eio = {0, {NULL, 0}}, transport = {0, {NULL, 0}}, sid = {0, {NULL, 0}};
    size_t i = 0;

    while (i < query.len) {
        size_t start = i;
        while (i < query.len && query.base[i] != '&')
            i++;
        pd_slice pair = pd_slice_make(query.base + start, i - start);
        if (i < query.len)
            i++; /* skip '&' */

        size_t eq = 0;
        while (eq < pair.len && pair.base[eq] != '=')
            eq++;
        pd_slice key = pd_slice_make(pair.base, eq);
        pd_slice val = eq < pair.len ? pd_slice_make(pair.base + eq + 1, pair.len - eq - 1)
                                     : pd_slice_make(NULL, 0);
        if (pd_slice_eq(key, "EIO")) {
            eio.count++;
            eio.value = val;
        } else if (pd_slice_eq(key, "transport")) {
            transport.count++;
            transport.value = val;
        } else if (pd_slice_eq(key, "sid")) {
            sid.count++;
            sid.value = val;
        }
    }

    pd_eio_transport t;
    if (transport.count == 1 && pd_slice_eq(transport.value, "websocket"))
        t = PD_EIO_WEBSOCKET;
    else if (transport.count == 1 && pd_slice_eq(transport.value, "polling"))
        t = PD_EIO_POLLING;
    else
        return PD_EIO_ERR_TRANSPORT;
    if (eio.count != 1 || !pd_slice_eq(eio.value, "4"))
        return PD_EIO_ERR_PROTOCOL;
    if (sid.count > 1)
        return PD_EIO_ERR_BAD_REQUEST;
    if (out) {
        out->transport = t;
        out->sid = sid.count ? sid.value : pd_slice_make(NULL, 0);
        out->has_sid = sid.count == 1;
    }
    return NULL;
}
