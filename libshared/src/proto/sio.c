/* sio.c — Socket.IO v5 packet codec (docs/socket.io-protocol/v5-current.md,
 * "Packet format"):
 *     <type>[<attachments>-][<nsp>,][<ack id>][<JSON data>]
 * Pure functions over buffers. The header fields are parsed here; the JSON
 * data is decoded separately so callers can refuse a packet before paying for
 * the JSON parse. */
#include "privydrop/pd_sio.h"

#include <stdio.h>
#include <stdlib.h>

/* Nesting of attacker-supplied JSON must stay bounded: jansson's recursive
 * descent parser stops at JSON_PARSER_MAX_DEPTH (2048 in the versions we
 * build against). Refuse to build against one without that limit. */
#ifndef JSON_PARSER_MAX_DEPTH
#error "jansson without JSON_PARSER_MAX_DEPTH: deeply nested input would be unbounded"
#endif
_Static_assert(JSON_PARSER_MAX_DEPTH <= 4096, "jansson parser depth limit too large");

/* 12 digits is exactly the range 0..PD_SIO_MAX_ACK_ID, so a digit count check
 * is enough to keep the conversion from overflowing. */
#define SIO_MAX_NUM_DIGITS 12
_Static_assert(PD_SIO_MAX_ACK_ID == 999999999999LL, "digit bound must match PD_SIO_MAX_ACK_ID");

/* Namespaces are echoed back in CONNECT_ERROR packets, so they are bounded
 * and limited to printable ASCII; anything else is a malformed packet. */
#define SIO_MAX_NSP 128

static const char sio_root_nsp[] = "/";

static int sio_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Read 1..SIO_MAX_NUM_DIGITS decimal digits at *pos; PD_ERR on none or too
 * many (the caller decides what may follow). */
static int sio_read_number(pd_slice s, size_t *pos, long long *out)
{
    size_t i = *pos;
    long long v = 0;
    while (i < s.len && sio_is_digit(s.base[i])) {
        if (i - *pos >= SIO_MAX_NUM_DIGITS)
            return PD_ERR;
        v = v * 10 + (s.base[i] - '0');
        i++;
    }
    if (i == *pos)
        return PD_ERR;
    *pos = i;
    *out = v;
    return PD_OK;
}

int pd_sio_parse(pd_slice payload, pd_sio_packet *out)
{
    if (payload.len == 0 || payload.base == NULL || out == NULL)
        return PD_ERR;
    const char *p = payload.base;
    size_t i = 0;

    if (p[0] < '0' || p[0] > '6')
        return PD_ERR;
    out->type = (pd_sio_type)(p[0] - '0');
    out->attachments = 0;
    out->nsp = pd_slice_make(sio_root_nsp, 1);
    out->ack_id = PD_SIO_NO_ACK;
    i = 1;

    /* Binary types always carry "<n>-" ("Packet encoding": the number of
     * binary attachments is followed by a dash). */
    if (out->type == PD_SIO_BINARY_EVENT || out->type == PD_SIO_BINARY_ACK) {
        if (sio_read_number(payload, &i, &out->attachments) != PD_OK)
            return PD_ERR;
        if (i >= payload.len || p[i] != '-')
            return PD_ERR;
        i++;
    }

    /* A namespace starts with '/' and ends at the first ',' or at the end of
     * the packet (the reference decoder reads it that way: "40/chat" is a
     * CONNECT to "/chat" with no payload). */
    if (i < payload.len && p[i] == '/') {
        size_t start = i;
        while (i < payload.len && p[i] != ',') {
            unsigned char c = (unsigned char)p[i];
            if (c < 0x21 || c > 0x7e || i - start >= SIO_MAX_NSP)
                return PD_ERR;
            i++;
        }
        out->nsp = pd_slice_make(p + start, i - start);
        if (i < payload.len)
            i++; /* skip ',' */
    }

    /* Every JSON payload Socket.IO sends is an object, array or string, so a
     * leading digit here can only be an ack id. */
    if (i < payload.len && sio_is_digit(p[i])) {
        if (sio_read_number(payload, &i, &out->ack_id) != PD_OK)
            return PD_ERR;
    }

    out->data = pd_slice_make(p + i, payload.len - i);
    return PD_OK;
}

int pd_sio_decode_event(pd_slice data, size_t max_bytes, json_t **args, const char **name)
{
    if (args == NULL || name == NULL)
        return PD_ERR;
    *args = NULL;
    *name = NULL;
    /* Size is checked before any parsing work is spent on the input. */
    if (data.len == 0 || data.base == NULL || data.len > max_bytes)
        return PD_ERR;

    /* Flags are 0 on purpose: the EOF check rejects trailing garbage, and
     * without JSON_ALLOW_NUL a "\u0000" cannot truncate the event name. */
    json_error_t err;
    json_t *root = json_loadb(data.base, data.len, 0, &err);
    if (root == NULL)
        return PD_ERR;
    /* "EVENT": the data is an array whose first element is the event name. */
    if (!json_is_array(root) || json_array_size(root) == 0 ||
        !json_is_string(json_array_get(root, 0))) {
        json_decref(root);
        return PD_ERR;
    }
    *args = root;
    *name = json_string_value(json_array_get(root, 0));
    return PD_OK;
}

char *pd_sio_encode_event(const char *event, const json_t *payload, size_t *len)
{
    if (event == NULL)
        return NULL;
    /* Encode the name through jansson so quotes, backslashes and control
     * characters are escaped; invalid UTF-8 makes json_string fail. */
    json_t *name = json_string(event);
    if (name == NULL)
        return NULL;
    char *name_txt = json_dumps(name, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(name);
    char *payload_txt = NULL;
    if (payload != NULL) {
        payload_txt = json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY);
        if (payload_txt == NULL) {
            free(name_txt);
            return NULL;
        }
    }
    if (name_txt == NULL) {
        free(payload_txt);
        return NULL;
    }

    size_t nlen = strlen(name_txt);
    size_t plen = payload_txt ? strlen(payload_txt) : 0;
    /* "42" "[" name ["," payload] "]" NUL */
    size_t total = 2 + 1 + nlen + (payload_txt ? 1 + plen : 0) + 1;
    char *out = malloc(total + 1);
    if (out != NULL) {
        char *w = out;
        memcpy(w, "42[", 3);
        w += 3;
        memcpy(w, name_txt, nlen);
        w += nlen;
        if (payload_txt != NULL) {
            *w++ = ',';
            memcpy(w, payload_txt, plen);
            w += plen;
        }
        *w++ = ']';
        *w = '\0';
        if (len != NULL)
            *len = (size_t)(w - out);
    }
    free(name_txt);
    free(payload_txt);
    return out;
}

/* "ACK": an acknowledgement with no arguments is an empty array. */
int pd_sio_encode_ack_empty(char *buf, size_t cap, long long ack_id)
{
    if (buf == NULL || ack_id < 0 || ack_id > PD_SIO_MAX_ACK_ID)
        return PD_ERR;
    int n = snprintf(buf, cap, "43%lld[]", ack_id);
    if (n < 0 || (size_t)n >= cap)
        return PD_ERR;
    return n;
}
