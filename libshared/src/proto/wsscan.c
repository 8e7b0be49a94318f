#include "privydrop/pd_wsscan.h"

#include <string.h>

void pd_ws_scan_init(pd_ws_scanner *sc, uint64_t max_message)
{
    memset(sc, 0, sizeof(*sc));
    sc->max_message = max_message > UINT32_MAX ? UINT32_MAX : (uint32_t)max_message;
}

uint32_t pd_ws_scan_max_pieces(const pd_ws_scanner *sc)
{
    uint32_t n = sc->max_message / 64;
    return n < 64 ? 64 : n;
}

/* Count one more piece of the current data message; 1009 past the cap. */
static uint16_t add_piece(pd_ws_scanner *sc)
{
    return ++sc->pieces > pd_ws_scan_max_pieces(sc) ? 1009 : 0;
}

/* Bytes of header needed once the first two are known. */
static size_t header_size(const uint8_t *h)
{
    size_t n = 2;
    uint8_t len7 = h[1] & 0x7f;
    if (len7 == 126)
        n += 2;
    else if (len7 == 127)
        n += 8;
    if (h[1] & 0x80)
        n += 4;
    return n;
}

/* Validate a complete header; returns 0 or a close code. */
static uint16_t check_header(pd_ws_scanner *sc)
{
    const uint8_t *h = sc->hdr;
    int fin = (h[0] & 0x80) != 0;
    int rsv = (h[0] >> 4) & 0x7;
    int opcode = h[0] & 0x0f;
    int masked = (h[1] & 0x80) != 0;
    uint64_t len = h[1] & 0x7f;
    if (len == 126) {
        len = ((uint64_t)h[2] << 8) | h[3];
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | h[2 + i];
        if (len >> 63)
            return 1002; /* §5.2: the most significant bit MUST be 0 */
    }
    if (rsv || !masked)
        return 1002; /* no extension negotiated; §5.3: clients mask */
    if (opcode >= 0x8) {
        if (opcode > 0xa || !fin || len > 125 || (opcode == 0x8 && len == 1))
            return 1002;
    } else {
        if (opcode > 0x2)
            return 1002;
        if (opcode == 0x0 && !sc->in_message)
            return 1002; /* continuation without a start */
        if (opcode != 0x0 && sc->in_message)
            return 1002; /* new message inside a fragmented one */
        if (opcode != 0x0)
            sc->msg_bytes = sc->pieces = 0;
        if (len > sc->max_message || (uint64_t)sc->msg_bytes + len > sc->max_message || add_piece(sc))
            return 1009;
        sc->msg_bytes += (uint32_t)len;
        sc->in_message = !fin;
    }
    sc->remaining = (uint32_t)len; /* at most max_message, or 125 for control frames */
    sc->in_data = opcode < 0x8;
    return 0;
}

uint16_t pd_ws_scan(pd_ws_scanner *sc, const uint8_t *data, size_t len, size_t *ok_len)
{
    size_t pos = 0;
    size_t frame_start = 0; /* where the frame whose header we read began */
    /* A data frame's payload resuming in this read is one more piece. */
    if (len > 0 && sc->remaining && sc->in_data && add_piece(sc)) {
        *ok_len = 0;
        return 1009;
    }
    while (pos < len) {
        if (sc->remaining) {
            uint64_t take = sc->remaining < (uint64_t)(len - pos) ? sc->remaining : (uint64_t)(len - pos);
            sc->remaining -= take;
            pos += (size_t)take;
            continue;
        }
        if (sc->hdr_len == 0)
            frame_start = pos;
        sc->hdr[sc->hdr_len++] = data[pos++];
        if (sc->hdr_len < 2 || sc->hdr_len < header_size(sc->hdr))
            continue;
        uint16_t code = check_header(sc);
        sc->hdr_len = 0;
        if (code) {
            *ok_len = frame_start;
            return code;
        }
    }
    *ok_len = len;
    return 0;
}

int pd_ws_scan_idle(const pd_ws_scanner *sc)
{
    return sc->hdr_len == 0 && sc->remaining == 0 && !sc->in_message;
}

size_t pd_ws_simple_text(const uint8_t *data, size_t len, uint64_t max, size_t *payload_len)
{
    if (len < 6 || data[0] != 0x81 || !(data[1] & 0x80))
        return 0;
    size_t plen = data[1] & 0x7f, hdr = 6;
    if (plen == 127)
        return 0;
    if (plen == 126) {
        if (len < 8)
            return 0;
        plen = ((size_t)data[2] << 8) | data[3];
        hdr = 8;
    }
    if (plen > max || len - hdr < plen)
        return 0;
    *payload_len = plen;
    return hdr;
}

size_t pd_ws_simple_text_size(const uint8_t *data, size_t len, uint64_t max)
{
    if (len < 1 || data[0] != 0x81)
        return 0;
    if (len < 2)
        return 1;
    if (!(data[1] & 0x80))
        return 0;
    size_t plen = data[1] & 0x7f, hdr = 6;
    if (plen == 127)
        return 0;
    if (plen == 126) {
        if (len < 4)
            return 1;
        plen = ((size_t)data[2] << 8) | data[3];
        hdr = 8;
    }
    return plen > max ? 0 : hdr + plen;
}

void pd_ws_unmask(uint8_t *payload, size_t len, const uint8_t key[4])
{
    uint64_t k8;
    memcpy(&k8, key, 4);
    memcpy((uint8_t *)&k8 + 4, key, 4);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t v;
        memcpy(&v, payload + i, 8);
        v ^= k8;
        memcpy(payload + i, &v, 8);
    }
    for (; i < len; i++)
        payload[i] ^= key[i & 3];
}
