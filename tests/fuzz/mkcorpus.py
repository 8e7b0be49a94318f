#!/usr/bin/env python3
"""Write the hand-made seed corpus of the fuzz targets (tests/fuzz/corpus/).

Run from anywhere; it rewrites the seed files it knows and leaves others
(regression inputs added by hand) alone. Seeds are small and each covers one
shape, valid or hostile."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
MASK = b"\x11\x22\x33\x44"


def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None):
    """One client WebSocket frame (RFC 6455 5.2); `length` overrides the
    declared payload length (for truncated or oversized claims)."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n < 65536:
        head = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if mask:
        body = bytes(c ^ MASK[i % 4] for i, c in enumerate(payload))
        return head + MASK + body
    return head + payload


def text(s):
    return frame(1, s.encode() if isinstance(s, str) else s)


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


JOIN = '42["join",{"roomId":"1234"}]'
OFFER = '42["offer",{"peerId":"AbCdEfGhIjKlMnOpQrSt","offer":{"type":"offer","sdp":"v=0\\r\\n"}}]'
NESTED = "42[\"join\"," + "[" * 3000 + "]" * 3000 + "]"

# ---- ws_path: byte 0 = how the stream is cut into reads, then frames ------
ws = {
    "stream_open_join": b"\x00" + text("40") + text(JOIN),
    "stream_split_small": b"\x01" + text("40") + text(JOIN) + text(OFFER),
    "stream_split_mid": b"\x13" + text("2probe") + text("3") + text(JOIN),
    "stream_fragmented": b"\x05" + frame(1, b'42["jo', fin=False) + frame(0, b'in",{"roomId":"1234"}]'),
    "stream_ping_inside_fragment": b"\x02" + frame(1, b"42", fin=False) + frame(9, b"hi") + frame(0, b"[\"x\"]"),
    "stream_close_1000": b"\x00" + frame(8, struct.pack(">H", 1000) + b"bye"),
    "stream_close_len1": b"\x00" + frame(8, b"\x03"),
    "stream_binary": b"\x00" + frame(2, b"\x00\x01\x02"),
    "stream_len126": b"\x07" + text("42" + '["x","' + "a" * 200 + '"]'),
    "stream_len127_huge": b"\x04" + frame(1, b"", length=1 << 40),
    "stream_len127_topbit": b"\x00" + frame(1, b"", length=1 << 63),
    "stream_len_at_max_truncated": b"\x06" + frame(1, b"4", length=65536),
    "stream_len_over_max": b"\x00" + frame(1, b"", length=65537),
    "stream_unmasked": b"\x00" + frame(1, b"40", mask=False),
    "stream_rsv": b"\x00" + frame(1, b"40", rsv=4),
    "stream_opcode3": b"\x00" + frame(3, b"40"),
    "stream_control_len126": b"\x00" + frame(9, b"p" * 126),
    "stream_control_fragmented": b"\x00" + frame(9, b"p", fin=False),
    "stream_continuation_first": b"\x00" + frame(0, b"40"),
    "stream_new_inside_fragment": b"\x03" + frame(1, b"4", fin=False) + frame(1, b"0"),
    "stream_fragments_over_max": b"\x00" + frame(1, b"", fin=False, length=40000) + b"x" * 10,
    "stream_empty_text": b"\x00" + text(b""),
    # step 2 (whole input is one text frame) and step 3 shapes
    "eio_join": JOIN,
    "eio_join_ack": '4212["join",{"roomId":"abc_DEF-9"}]',
    "eio_join_bad_id": '42["join",{"roomId":"room with spaces"}]',
    "eio_join_long_utf8": '42["join",{"roomId":"' + "a" * 127 + '\u00e9"}]',
    "eio_join_nul": '42["join",{"roomId":"ab\\u0000cd"}]',
    "eio_join_not_object": '42["join","1234"]',
    "eio_offer": OFFER,
    "eio_answer": '42["answer",{"peerId":"p1","answer":{"type":"answer","sdp":""}}]',
    "eio_candidate": '42["ice-candidate",{"peerId":"p1","candidate":{"candidate":"c","sdpMid":"0"}}]',
    "eio_offer_bad_peer": '42["offer",{"peerId":"../../x","offer":1}]',
    "eio_initiator": '42["initiator-online",{"roomId":"1234"}]',
    "eio_recipient": '42["recipient-ready",{"roomId":"1234","peerId":"AbCdEfGhIjKlMnOpQrSt"}]',
    "eio_nsp": '42/admin,7["join",{"roomId":"1"}]',
    "eio_nsp_no_comma": "40/admin",
    "eio_connect": "40",
    "eio_connect_nsp": "40/chat,",
    "eio_binary_event": '451-["upload",{"_placeholder":true,"num":0}]',
    "eio_binary_ack_nsp": '461-/admin,5[{"_placeholder":true,"num":0}]',
    "eio_ack_too_long": "43999999999999[]",
    "eio_ping": "2probe",
    "eio_noop": "6",
    "eio_bad_type": "7",
    "eio_nested": NESTED,
    "eio_trailing_garbage": '42["join",{"roomId":"1"}] x',
    "bus_socket": "PD1 S worker-1 AbCdEfGhIjKlMnOpQrSt\n" + JOIN,
    "bus_broadcast": "PD1 B worker-1 -\n" + JOIN,
    "bus_leave": 'PD1 L worker-2 AbCdEfGhIjKlMnOpQrSt\n42["peer-disconnected",{"peerId":"x"}]',
    "bus_bad": "PD1 X w t\n",
    "handshake_ok": "EIO=4&transport=websocket",
    "handshake_polling_sid": "EIO=4&transport=polling&sid=abc",
    "handshake_repeat": "EIO=4&EIO=4&transport=websocket",
    "handshake_eio3": "transport=websocket&EIO=3&t=N8hyd6w",
}
for k, v in ws.items():
    write("ws_path", k, v)

# ---- http: "\xff\xfe" marks where the client splits its writes ------------
CRLF = "\r\n"
SPLIT = b"\xff\xfe"
UPG = ("GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: localhost\r\n"
       "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
       "Sec-WebSocket-Version: 13\r\nOrigin: https://privydrop.app\r\n\r\n")
body = '{"roomId":"1234"}'
http = {
    "get": "GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
    "get_keepalive_two": "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
    "pipelined_async": "GET /a1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /a2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /close HTTP/1.1\r\n\r\n",
    "post_json": f"POST /api/create_room HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}",
    "post_chunked": "POST /api/check_room HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"roo\r\nc;ext=1\r\nmId\":\"1234\"}\r\n0\r\nTrailer: x\r\n\r\n",
    "expect_continue": f"POST /api/set_track HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n{body}",
    "upgrade": UPG,
    "upgrade_leftover": UPG.encode() + frame(1, b"40"),
    "upgrade_async": UPG.replace("/socket.io/", "/async.io/"),
    "upgrade_then_pipelined": UPG + "GET /x HTTP/1.1\r\n\r\n",
    "http10": "GET /health HTTP/1.0\r\n\r\n",
    "http10_keepalive": "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
    "head": "HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n",
    "options_origin": "OPTIONS /api/get_room HTTP/1.1\r\nOrigin: https://privydrop.app\r\nAccess-Control-Request-Method: POST\r\n\r\n",
    "xff": "GET /api/get_room HTTP/1.1\r\nX-Forwarded-For: 203.0.113.9, 10.0.0.2, ::ffff:10.1.1.1\r\n\r\n",
    "xff_garbage": "GET / HTTP/1.1\r\nX-Forwarded-For: ,,[::1]:80, fd00::1%eth0,  \r\n\r\n",
    "close_async": "GET /a/close HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    "smuggle_cl_te": "POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /evil HTTP/1.1\r\n\r\n",
    "smuggle_te_cl": "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n1\r\nA\r\n0\r\n\r\n",
    "smuggle_double_cl": "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "smuggle_te_obfuscated": "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "smuggle_te_twice": "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    "smuggle_obs_fold": "GET / HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n",
    "smuggle_bare_lf": "GET / HTTP/1.1\nHost: x\n\n",
    "smuggle_space_before_colon": "GET / HTTP/1.1\r\nContent-Length : 5\r\n\r\nhello",
    "chunk_size_overflow": "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
    "headers_too_big": "GET / HTTP/1.1\r\nX-Big: " + "a" * 2100 + "\r\n\r\n",
    "too_many_headers": "GET / HTTP/1.1\r\n" + "".join(f"X-{i}: v\r\n" for i in range(20)) + "\r\n",
    "body_too_big_cl": "POST / HTTP/1.1\r\nContent-Length: 4096\r\n\r\n" + "b" * 100,
    "body_too_big_chunked": "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + "400\r\n" + "c" * 1024 + "\r\n" + "400\r\n" + "c" * 1024 + "\r\n" + "400\r\n" + "c" * 1024 + "\r\n0\r\n\r\n",
    "bad_method": "BREW /pot HTTP/1.1\r\n\r\n",
    "bad_version": "GET / HTTP/9.9\r\n\r\n",
    "split_request_line": SPLIT.join([b"GE", b"T /hea", b"lth HTTP/1.1\r\nHo", b"st: x\r\n\r\n"]),
    "split_header_value": b"GET / HTTP/1.1\r\nHost: ex" + SPLIT + b"ample.org\r\nX-Y: 1" + SPLIT + b"2\r\n\r\n",
    "split_fold_across_reads": b"GET / HTTP/1.1\r\nX-A: one\r\n" + SPLIT + b" two\r\n\r\n",
    "split_pipelined": b"GET /a HTTP/1.1\r\n\r\nGET /b" + SPLIT + b" HTTP/1.1\r\n\r\n",
    "split_body": b"POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n01234" + SPLIT + b"56789",
    "retained_overflow": ("GET /a HTTP/1.1\r\n\r\n" + "GET / HTTP/1.1\r\nX-Pad: " + "p" * 1500 + "\r\n\r\n") + ("GET / HTTP/1.1\r\nX-Pad: " + "p" * 1500 + "\r\n\r\n") * 12,
    "empty": "",
    "crlf_only": "\r\n\r\n\r\n",
}
for k, v in http.items():
    write("http", k, v)

# ---- json: a body, "<METHOD> <path>" line, and "<list>\n<origin>" -----------
js = {
    "room": '{"roomId":"1234"}',
    "leave": '{"roomId":"abc","socketId":"AbCdEfGhIjKlMnOpQrSt"}',
    "track_ms": '{"ref":"homepage","timestamp":1704067200000}',
    "track_iso": '{"ref":"x","timestamp":"2024-02-30T10:00:00.000Z"}',
    "track_iso_space": '{"timestamp":"2024-12-31 23:59"}',
    "track_bad_month": '{"timestamp":"2024-13-01"}',
    "track_negative": '{"timestamp":-1}',
    "track_huge": '{"timestamp":1e300}',
    "track_edge": '{"timestamp":253402300799999}',
    "track_float": '{"timestamp":1704067200000.9999}',
    "track_object": '{"timestamp":{"t":1}}',
    "null_id": '{"roomId":null,"socketId":""}',
    "number_id": '{"roomId":123,"socketId":[1]}',
    "nul_id": '{"roomId":"a\\u0000b"}',
    "long_id": '{"roomId":"' + "a" * 65 + '"}',
    "unicode_id": '{"roomId":"\u00e9t\u00e9"}',
    "dup_key": '{"roomId":"x","roomId":"y"}',
    "not_object": '["roomId","1234"]',
    "nested": "[" * 3000 + "]" * 3000,
    "nested_obj": '{"a":' * 2100 + "1" + "}" * 2100,
    "whitespace": " \t\r\n ",
    "empty": "",
    "bad_json": '{"roomId":',
    "route_get": "GET /api/get_room/?x=1",
    "route_head": "HEAD /health",
    "route_options": "OPTIONS /anything",
    "route_post_wrong": "POST /metrics/",
    "route_double_slash": "GET /health//",
    "origin_list": "https://a.example, https://b.example\nhttps://b.example",
    "origin_star": " , *,\nhttps://evil.example",
    "origin_comma": "https://a.example\nhttps://a.example,https://b.example",
}
for k, v in js.items():
    write("json", k, v)

# ---- fuzz_subparse: byte 0 = how to cut into reads, byte 1 = payload bound
# (1 + b * 97 bytes), then what a subscribed Redis connection sends.
def bulk(b):
    b = b.encode() if isinstance(b, str) else b
    return b"$%d\r\n" % len(b) + b + b"\r\n"


def push(*elems):
    out = b"*%d\r\n" % len(elems)
    for e in elems:
        out += (b":%d\r\n" % e) if isinstance(e, int) else (b"$-1\r\n" if e is None else bulk(e))
    return out


sub = {
    "message": push("message", "pd:room:1234", "PD1 S w1 sock\n42[\"signal\",{}]"),
    "pmessage": push("pmessage", "pd:*", "pd:room:1", "x"),
    "smessage": push("smessage", "{pd}:room:1", "hello"),
    "confirmations": b"+OK\r\n" + push("subscribe", "pd:room:1", 1) + push("subscribe", "pd:probe:x", 2)
    + push("unsubscribe", "pd:room:1", 1) + push("ssubscribe", "{s}a", 1) + push("sunsubscribe", "{s}a", 0)
    + push("psubscribe", "pd:*", 3) + push("punsubscribe", "pd:*", 2) + push("unsubscribe", None, 0),
    "interleaved": push("subscribe", "c", 1) + push("message", "c", "a") + b"-NOAUTH Authentication required.\r\n"
    + push("message", "c", "b\r\nc") + push("pong", "") + push("message", "c", ""),
    "long_payload": push("message", "c", "y" * 6000),
    "over_bound": push("message", "c", "z" * 200),
    "long_channel": push("subscribe", "c" * 1024, 1) + push("subscribe", "c" * 1025, 2),
    "status_long": b"-" + b"e" * 600 + b"\r\n",
    "bad_kind": push("nope", "c", "x"),
    "bad_length": b"*3\r\n$7\r\nmessage\r\n$-2\r\n",
    "resp3_push": b">3\r\n" + push("message", "c", "x")[4:],
    "truncated": push("message", "pd:room:1", "payload")[:-5],
}
for k, v in sub.items():
    write("subparse", k, bytes([len(k) * 37 % 256, 2 if k != "over_bound" else 1]) + v)
