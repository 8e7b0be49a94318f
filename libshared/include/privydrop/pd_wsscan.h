/* pd_wsscan.h — a pre-check of client WebSocket frame headers (RFC 6455
 * §5.2, §5.4, §5.5), run on every received byte range before the frame
 * library sees it. It reads only headers and skips payloads by count, so it
 * can refuse a frame the moment its header arrives: before any payload is
 * buffered, whatever length the header declares. Pure; no I/O. */
#ifndef PD_WSSCAN_H
#define PD_WSSCAN_H

#include <stddef.h>
#include <stdint.h>

/* WebSocket close codes we send (RFC 6455 §7.4.1). */
#define PD_WS_CLOSE_NORMAL 1000        /* the session ended as asked (or timed out) */
#define PD_WS_CLOSE_GOING_AWAY 1001    /* the server is shutting down */
#define PD_WS_CLOSE_PROTOCOL 1002      /* a frame or packet the protocol does not allow */
#define PD_WS_CLOSE_UNSUPPORTED 1003   /* binary data: we speak text only */
#define PD_WS_CLOSE_ABNORMAL 1006      /* never on the wire: the transport failed */
#define PD_WS_CLOSE_INVALID_DATA 1007  /* text that is not UTF-8 */
#define PD_WS_CLOSE_POLICY 1008        /* a limit: rate, send queue, connect timeout */
#define PD_WS_CLOSE_TOO_BIG 1009       /* a message over the size limit */
#define PD_WS_CLOSE_INTERNAL 1011      /* the server could not go on (memory) */

/* One per connection, so it is small: lengths are 32-bit because no frame
 * longer than max_message (at most UINT32_MAX) is ever let through. */
typedef struct pd_ws_scanner {
    uint32_t remaining;   /* payload bytes of the current frame still to skip */
    uint32_t msg_bytes;   /* payload bytes of the fragmented message so far */
    uint32_t max_message; /* largest message accepted (sum of fragments) */
    uint32_t pieces;      /* frames and reads the current data message came in */
    uint8_t hdr[14];      /* header bytes of the frame being read */
    uint8_t hdr_len;      /* bytes in hdr */
    uint8_t in_message;   /* a non-final data frame was seen */
    uint8_t in_data;      /* the payload being skipped is a data frame's */
} pd_ws_scanner;

/* Start scanning a new connection's client-to-server stream; max_message
 * above UINT32_MAX counts as UINT32_MAX. */
void pd_ws_scan_init(pd_ws_scanner *sc, uint64_t max_message);

/* Scan `len` more bytes. Returns 0 when everything is acceptable, else the
 * close code to send: 1002 (protocol error: unmasked frame, reserved bits or
 * opcodes, fragmented or oversized control frame, continuation without a
 * start, a new message inside a fragmented one, a close payload of one
 * byte, a 64-bit length with the top bit set) or 1009 (message larger than
 * max_message, or in more pieces than pd_ws_scan_max_pieces: the frame
 * library keeps every frame and every read of a data message as its own
 * allocation, so a message of 1-byte fragments, or a frame trickled in a
 * byte per packet, would cost tens of times its size). On a violation, *ok_len is the number of leading bytes that
 * belong to frames before the offending one; otherwise it equals len. */
uint16_t pd_ws_scan(pd_ws_scanner *sc, const uint8_t *data, size_t len, size_t *ok_len);

/* How many pieces (data frames, plus each further read that continues a
 * frame's payload) one message may arrive in: max_message / 64, at least
 * 64, so the bookkeeping for them stays within the size of the message. */
uint32_t pd_ws_scan_max_pieces(const pd_ws_scanner *sc);

/* 1 when the stream is between messages: no partial header, no payload
 * left to skip, no fragmented message open. */
int pd_ws_scan_idle(const pd_ws_scanner *sc);

/* The common case, handled without the frame library: a complete, final,
 * masked text frame (no reserved bits, 7- or 16-bit length, payload at most
 * `max` bytes) at the start of data[0..len). Returns its header size (6 or
 * 8, mask key included) and sets *payload_len; 0 for anything else, which
 * includes a frame not yet complete: such bytes are for the full path. Only
 * meaningful while the stream is between messages (pd_ws_scan_idle). */
size_t pd_ws_simple_text(const uint8_t *data, size_t len, uint64_t max, size_t *payload_len);

/* For the first len (>= 1) bytes of a frame that the read cut short: the
 * whole frame's size (header and payload) if it is one pd_ws_simple_text
 * would take once complete; 1 while its header is too short to tell; 0 if
 * it is anything else (control frame, fragment, binary, unmasked, over
 * `max`), which is for the full path. */
size_t pd_ws_simple_text_size(const uint8_t *data, size_t len, uint64_t max);

/* Unmask a payload in place with the frame's 4-byte key (RFC 6455 §5.3). */
void pd_ws_unmask(uint8_t *payload, size_t len, const uint8_t key[4]);

#endif
