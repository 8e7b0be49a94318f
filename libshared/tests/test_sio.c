/* test_sio.c — Socket.IO v5 packet header parsing, event decoding/encoding,
 * and hostile input: bad headers, oversized numbers, bad JSON, huge and
 * deeply nested payloads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "privydrop/pd_eio.h"
#include "privydrop/pd_sio.h"

#define MAX_EVENT (64 * 1024)

static pd_sio_packet parse_ok(const char *s)
{
    pd_sio_packet p;
    memset(&p, 0x5a, sizeof p);
    assert_int_equal(pd_sio_parse(pd_slice_cstr(s), &p), PD_OK);
    return p;
}

static int parse(const char *s)
{
    pd_sio_packet p;
    return pd_sio_parse(pd_slice_cstr(s), &p);
}

static void connect_default_namespace(void **state)
{
    (void)state;
    pd_sio_packet p = parse_ok("0");
    assert_int_equal(p.type, PD_SIO_CONNECT);
    assert_true(pd_slice_eq(p.nsp, "/"));
    assert_int_equal(p.ack_id, PD_SIO_NO_ACK);
    assert_int_equal(p.attachments, 0);
    assert_int_equal(p.data.len, 0);

    p = parse_ok("0{\"token\":\"x\"}");
    assert_true(pd_slice_eq(p.nsp, "/"));
    assert_true(pd_slice_eq(p.data, "{\"token\":\"x\"}"));
}

static void connect_other_namespace(void **state)
{
    (void)state;
    pd_sio_packet p = parse_ok("0/admin,");
    assert_int_equal(p.type, PD_SIO_CONNECT);
    assert_true(pd_slice_eq(p.nsp, "/admin"));
    assert_int_equal(p.data.len, 0);

    p = parse_ok("0/admin,{\"a\":1}");
    assert_true(pd_slice_eq(p.nsp, "/admin"));
    assert_true(pd_slice_eq(p.data, "{\"a\":1}"));

    /* "/" written out explicitly is still the main namespace. */
    p = parse_ok("0/,");
    assert_true(pd_slice_eq(p.nsp, "/"));
}

static void event_with_and_without_ack(void **state)
{
    (void)state;
    pd_sio_packet p = parse_ok("2[\"join\",{\"roomId\":\"1234\"}]");
    assert_int_equal(p.type, PD_SIO_EVENT);
    assert_int_equal(p.ack_id, PD_SIO_NO_ACK);
    assert_true(pd_slice_eq(p.data, "[\"join\",{\"roomId\":\"1234\"}]"));

    p = parse_ok("212[\"join\"]");
    assert_int_equal(p.ack_id, 12);
    assert_true(pd_slice_eq(p.data, "[\"join\"]"));

    p = parse_ok("20[\"x\"]");
    assert_int_equal(p.ack_id, 0);

    p = parse_ok("2/chat,7[\"x\"]");
    assert_true(pd_slice_eq(p.nsp, "/chat"));
    assert_int_equal(p.ack_id, 7);
    assert_true(pd_slice_eq(p.data, "[\"x\"]"));

    p = parse_ok("3999999999999[]");
    assert_int_equal(p.type, PD_SIO_ACK);
    assert_int_equal(p.ack_id, PD_SIO_MAX_ACK_ID);
    assert_true(pd_slice_eq(p.data, "[]"));

    p = parse_ok("1");
    assert_int_equal(p.type, PD_SIO_DISCONNECT);
    p = parse_ok("4{\"message\":\"x\"}");
    assert_int_equal(p.type, PD_SIO_CONNECT_ERROR);
}

static void huge_ack_ids_are_rejected(void **state)
{
    (void)state;
    assert_int_equal(parse("21000000000000[\"x\"]"), PD_ERR);          /* 13 digits */
    assert_int_equal(parse("299999999999999999999999[\"x\"]"), PD_ERR); /* > int64 */
    assert_int_equal(parse("2/admin,18446744073709551616[]"), PD_ERR);
    /* Leading zeros count toward the bound: no unbounded digit run. */
    assert_int_equal(parse("20000000000001[\"x\"]"), PD_ERR);
    char big[4096];
    big[0] = '2';
    memset(big + 1, '9', sizeof big - 2);
    big[sizeof big - 1] = '\0';
    assert_int_equal(parse(big), PD_ERR);
}

static void bad_ack_ids_end_up_in_data(void **state)
{
    (void)state;
    /* Non-digits after the type are the data; the JSON decode rejects them. */
    pd_sio_packet p = parse_ok("2-1[\"x\"]");
    assert_int_equal(p.ack_id, PD_SIO_NO_ACK);
    assert_true(pd_slice_eq(p.data, "-1[\"x\"]"));
    json_t *args;
    const char *name;
    assert_int_equal(pd_sio_decode_event(p.data, MAX_EVENT, &args, &name), PD_ERR);
    assert_null(args);

    p = parse_ok("212abc");
    assert_int_equal(p.ack_id, 12);
    assert_int_equal(pd_sio_decode_event(p.data, MAX_EVENT, &args, &name), PD_ERR);
}

static void binary_headers(void **state)
{
    (void)state;
    pd_sio_packet p = parse_ok("51-[\"up\",{\"_placeholder\":true,\"num\":0}]");
    assert_int_equal(p.type, PD_SIO_BINARY_EVENT);
    assert_int_equal(p.attachments, 1);
    assert_int_equal(p.ack_id, PD_SIO_NO_ACK);
    assert_true(pd_slice_eq(p.data, "[\"up\",{\"_placeholder\":true,\"num\":0}]"));

    /* The Engine.IO frame "451-[...]" reaches us without its '4'. */
    pd_eio_packet e;
    assert_int_equal(pd_eio_parse(pd_slice_cstr("451-[\"x\"]"), &e), PD_OK);
    assert_int_equal(pd_sio_parse(e.data, &p), PD_OK);
    assert_int_equal(p.type, PD_SIO_BINARY_EVENT);
    assert_int_equal(p.attachments, 1);

    p = parse_ok("62-/admin,9[]");
    assert_int_equal(p.type, PD_SIO_BINARY_ACK);
    assert_int_equal(p.attachments, 2);
    assert_true(pd_slice_eq(p.nsp, "/admin"));
    assert_int_equal(p.ack_id, 9);
}

static void attachment_bombs_and_bad_binary_headers(void **state)
{
    (void)state;
    assert_int_equal(parse("5999999999999999999-[\"x\"]"), PD_ERR);
    assert_int_equal(parse("5999999999999999999999999999-"), PD_ERR);
    assert_int_equal(parse("6999999999999999999-[]"), PD_ERR);
    assert_int_equal(parse("5-[\"x\"]"), PD_ERR);   /* no count */
    assert_int_equal(parse("51[\"x\"]"), PD_ERR);   /* no dash */
    assert_int_equal(parse("5"), PD_ERR);
    assert_int_equal(parse("51"), PD_ERR);
    assert_int_equal(parse("5[\"x\"]"), PD_ERR);
    assert_int_equal(parse("5a-[\"x\"]"), PD_ERR);
    /* "451-" as an Engine.IO payload is not a Socket.IO packet: '4' then
     * '5' would be read as CONNECT_ERROR with ack id 51 and data "-". */
    pd_sio_packet p = parse_ok("451-[]");
    assert_int_equal(p.type, PD_SIO_CONNECT_ERROR);
}

static void malformed_headers(void **state)
{
    (void)state;
    pd_sio_packet p;
    assert_int_equal(pd_sio_parse(pd_slice_make(NULL, 0), &p), PD_ERR);
    assert_int_equal(pd_sio_parse(pd_slice_make("", 0), &p), PD_ERR);
    assert_int_equal(parse("7"), PD_ERR);
    assert_int_equal(parse("9[\"x\"]"), PD_ERR);
    assert_int_equal(parse("a"), PD_ERR);
    assert_int_equal(parse("[\"x\"]"), PD_ERR);
    assert_int_equal(parse(" 2[\"x\"]"), PD_ERR);
    assert_int_equal(pd_sio_parse(pd_slice_make("\0" "2", 2), &p), PD_ERR);
    /* Namespaces with spaces, control bytes or non-ASCII are refused. */
    assert_int_equal(parse("0/ad min,"), PD_ERR);
    assert_int_equal(parse("0/ad\tmin,"), PD_ERR);
    assert_int_equal(parse("0/\xc3\xa9,"), PD_ERR);
    assert_int_equal(pd_sio_parse(pd_slice_make("0/a\0b,", 6), &p), PD_ERR);
}

static void namespace_length_is_bounded(void **state)
{
    (void)state;
    char buf[512];
    buf[0] = '0';
    buf[1] = '/';
    memset(buf + 2, 'a', 127); /* "/" + 127 = 128 bytes */
    strcpy(buf + 129, ",");
    pd_sio_packet p = parse_ok(buf);
    assert_int_equal(p.nsp.len, 128);
    buf[129] = 'a';
    strcpy(buf + 130, ",");
    assert_int_equal(parse(buf), PD_ERR);
}

static void payload_is_not_nul_terminated(void **state)
{
    (void)state;
    const char raw[] = "2/x,5[\"a\"]ZZZ";
    pd_sio_packet p;
    assert_int_equal(pd_sio_parse(pd_slice_make(raw, 10), &p), PD_OK);
    assert_true(pd_slice_eq(p.data, "[\"a\"]"));
    /* Cut inside the namespace: it ends where the packet ends. */
    assert_int_equal(pd_sio_parse(pd_slice_make(raw, 3), &p), PD_OK);
    assert_true(pd_slice_eq(p.nsp, "/x"));
    assert_int_equal(p.data.len, 0);
}

/* The namespace ends at ',' or at the end of the packet. */
static void namespace_without_comma_ends_with_packet(void **state)
{
    (void)state;
    pd_sio_packet p = parse_ok("0/admin");
    assert_int_equal(p.type, PD_SIO_CONNECT);
    assert_true(pd_slice_eq(p.nsp, "/admin"));
    assert_int_equal(p.data.len, 0);
    p = parse_ok("0/");
    assert_true(pd_slice_eq(p.nsp, "/"));
    /* No comma, so what follows is still namespace. */
    p = parse_ok("2/admin[\"x\"]");
    assert_true(pd_slice_eq(p.nsp, "/admin[\"x\"]"));
    assert_int_equal(p.data.len, 0);
}

static void decode_event_ok(void **state)
{
    (void)state;
    json_t *args = NULL;
    const char *name = NULL;
    const char *d = "[\"offer\",{\"peerId\":\"abc\",\"offer\":{\"sdp\":\"v=0\"}}]";
    assert_int_equal(pd_sio_decode_event(pd_slice_cstr(d), MAX_EVENT, &args, &name), PD_OK);
    assert_string_equal(name, "offer");
    assert_int_equal(json_array_size(args), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(args, 1), "peerId")),
                        "abc");
    json_decref(args);

    assert_int_equal(pd_sio_decode_event(pd_slice_cstr("[\"x\"]"), MAX_EVENT, &args, &name),
                     PD_OK);
    assert_string_equal(name, "x");
    json_decref(args);

    /* Whitespace around JSON is still JSON. */
    assert_int_equal(pd_sio_decode_event(pd_slice_cstr(" [ \"x\" , 1 ] \n"), MAX_EVENT, &args,
                                         &name),
                     PD_OK);
    json_decref(args);
}

static void decode_event_rejects_bad_json_and_shapes(void **state)
{
    (void)state;
    const char *bad[] = {
        "",          "[",       "]",          "[\"x\"",       "[\"x\"]]",  "[\"x\"] 1",
        "[\"x\"]\0", "{}",      "{\"a\":1}",  "\"join\"",     "42",        "null",
        "[]",        "[1]",     "[null]",     "[[\"x\"]]",    "[{}]",      "[true,\"x\"]",
        "[\"x\",]",  "['x']",   "[\"\\u0000x\"]", "[\"\xff\"]", "[\"x\"/*c*/]", "[NaN]",
    };
    for (size_t i = 0; i < PD_ARRAY_LEN(bad); i++) {
        json_t *args = (json_t *)1;
        const char *name = "stale";
        size_t len = strlen(bad[i]);
        if (i == 6)
            len = 6; /* include the embedded NUL */
        assert_int_equal(pd_sio_decode_event(pd_slice_make(bad[i], len), MAX_EVENT, &args,
                                             &name),
                         PD_ERR);
        assert_null(args);
        assert_null(name);
    }
}

static void decode_event_size_limit_checked_first(void **state)
{
    (void)state;
    json_t *args;
    const char *name;
    const char *d = "[\"join\",{}]";
    size_t n = strlen(d);
    assert_int_equal(pd_sio_decode_event(pd_slice_make(d, n), n, &args, &name), PD_OK);
    json_decref(args);
    assert_int_equal(pd_sio_decode_event(pd_slice_make(d, n), n - 1, &args, &name), PD_ERR);
    assert_int_equal(pd_sio_decode_event(pd_slice_make(d, n), 0, &args, &name), PD_ERR);
}

static void decode_event_ten_megabyte_string(void **state)
{
    (void)state;
    size_t n = 10u * 1024 * 1024;
    char *d = malloc(n + 16);
    assert_non_null(d);
    memcpy(d, "[\"", 2);
    memset(d + 2, 'A', n);
    memcpy(d + 2 + n, "\"]", 2);
    pd_slice s = pd_slice_make(d, n + 4);
    json_t *args;
    const char *name;
    /* Over the limit: refused without parsing. */
    assert_int_equal(pd_sio_decode_event(s, MAX_EVENT, &args, &name), PD_ERR);
    assert_null(args);
    /* With a limit that allows it, it parses and the name is the whole string. */
    assert_int_equal(pd_sio_decode_event(s, n + 4, &args, &name), PD_OK);
    assert_int_equal(strlen(name), n);
    json_decref(args);
    /* Through the packet parser as well. */
    char *pkt = malloc(n + 8);
    assert_non_null(pkt);
    pkt[0] = '2';
    memcpy(pkt + 1, d, n + 4);
    pd_sio_packet p;
    assert_int_equal(pd_sio_parse(pd_slice_make(pkt, n + 5), &p), PD_OK);
    assert_int_equal(p.data.len, n + 4);
    assert_int_equal(pd_sio_decode_event(p.data, MAX_EVENT, &args, &name), PD_ERR);
    free(pkt);
    free(d);
}

static char *nested(size_t depth, int close)
{
    char *d = malloc(2 * depth + 8);
    assert_non_null(d);
    size_t i = 0;
    memcpy(d, "[\"x\",", 5);
    i = 5;
    memset(d + i, '[', depth - 1);
    i += depth - 1;
    if (close) {
        memset(d + i, ']', depth);
        i += depth;
    }
    d[i] = '\0';
    return d;
}

static void decode_event_deep_nesting_rejected(void **state)
{
    (void)state;
    json_t *args;
    const char *name;
    /* 100000 levels of '[' — unterminated and terminated — must fail cleanly
     * (jansson stops at JSON_PARSER_MAX_DEPTH, no stack exhaustion). */
    size_t n = 100000;
    char *open_only = malloc(n);
    assert_non_null(open_only);
    memset(open_only, '[', n);
    assert_int_equal(pd_sio_decode_event(pd_slice_make(open_only, n), 1u << 30, &args, &name),
                     PD_ERR);
    free(open_only);

    char *d = nested(n, 1);
    assert_int_equal(pd_sio_decode_event(pd_slice_cstr(d), 1u << 30, &args, &name), PD_ERR);
    free(d);

    d = nested(n, 0);
    assert_int_equal(pd_sio_decode_event(pd_slice_cstr(d), 1u << 30, &args, &name), PD_ERR);
    free(d);

    /* Objects nest the same way. */
    size_t m = 100000;
    char *o = malloc(m * 5 + 1);
    assert_non_null(o);
    for (size_t i = 0; i < m; i++)
        memcpy(o + i * 5, "{\"a\":", 5);
    assert_int_equal(pd_sio_decode_event(pd_slice_make(o, m * 5), 1u << 30, &args, &name),
                     PD_ERR);
    free(o);
}

static void decode_event_depth_limit_is_jansson_max(void **state)
{
    (void)state;
    json_t *args;
    const char *name;
    /* The outer array counts as one level. */
    char *d = nested(JSON_PARSER_MAX_DEPTH, 1);
    assert_int_equal(pd_sio_decode_event(pd_slice_cstr(d), 1u << 20, &args, &name), PD_OK);
    assert_string_equal(name, "x");
    json_decref(args);
    free(d);
    d = nested(JSON_PARSER_MAX_DEPTH + 1, 1);
    assert_int_equal(pd_sio_decode_event(pd_slice_cstr(d), 1u << 20, &args, &name), PD_ERR);
    free(d);
}

static void encode_event_exact(void **state)
{
    (void)state;
    json_t *payload = json_pack("{s:b, s:s, s:s}", "success", 1, "message", "ok", "roomId",
                                "1234");
    size_t len = 0;
    char *s = pd_sio_encode_event("joinResponse", payload, &len);
    assert_non_null(s);
    assert_string_equal(s, "42[\"joinResponse\",{\"success\":true,\"message\":\"ok\","
                           "\"roomId\":\"1234\"}]");
    assert_int_equal(len, strlen(s));
    free(s);
    json_decref(payload);

    s = pd_sio_encode_event("ping", NULL, &len);
    assert_string_equal(s, "42[\"ping\"]");
    assert_int_equal(len, 10);
    free(s);

    json_t *str = json_string("a/b");
    s = pd_sio_encode_event("e", str, NULL);
    assert_string_equal(s, "42[\"e\",\"a/b\"]");
    free(s);
    json_decref(str);
}

static void encode_event_escapes_name_and_round_trips(void **state)
{
    (void)state;
    json_t *payload = json_pack("{s:s}", "peerId", "q\"\\\n\x01");
    size_t len;
    char *s = pd_sio_encode_event("we\"ird\\", payload, &len);
    assert_non_null(s);
    pd_sio_packet p;
    /* Skip the Engine.IO message type '4'. */
    assert_int_equal(pd_sio_parse(pd_slice_make(s + 1, len - 1), &p), PD_OK);
    assert_int_equal(p.type, PD_SIO_EVENT);
    json_t *args;
    const char *name;
    assert_int_equal(pd_sio_decode_event(p.data, MAX_EVENT, &args, &name), PD_OK);
    assert_string_equal(name, "we\"ird\\");
    assert_true(json_equal(json_array_get(args, 1), payload));
    json_decref(args);
    json_decref(payload);
    free(s);
    /* Invalid UTF-8 in the event name cannot be encoded. */
    assert_null(pd_sio_encode_event("\xff", NULL, NULL));
    assert_null(pd_sio_encode_event(NULL, NULL, NULL));
}

static void encode_ack_empty(void **state)
{
    (void)state;
    char buf[32];
    assert_int_equal(pd_sio_encode_ack_empty(buf, sizeof buf, 0), 5);
    assert_string_equal(buf, "430[]");
    assert_int_equal(pd_sio_encode_ack_empty(buf, sizeof buf, 12), 6);
    assert_string_equal(buf, "4312[]");
    assert_int_equal(pd_sio_encode_ack_empty(buf, sizeof buf, PD_SIO_MAX_ACK_ID), 16);
    assert_string_equal(buf, "43999999999999[]");
    assert_int_equal(pd_sio_encode_ack_empty(buf, sizeof buf, -1), PD_ERR);
    assert_int_equal(pd_sio_encode_ack_empty(buf, sizeof buf, PD_SIO_MAX_ACK_ID + 1), PD_ERR);
    assert_int_equal(pd_sio_encode_ack_empty(buf, 6, 12), PD_ERR); /* no room for NUL */
    assert_int_equal(pd_sio_encode_ack_empty(buf, 7, 12), 6);
    /* The ack we write parses back to the same id. */
    pd_sio_packet p = parse_ok("3999999999999[]");
    assert_int_equal(pd_sio_encode_ack_empty(buf, sizeof buf, p.ack_id), 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(connect_default_namespace),
        cmocka_unit_test(connect_other_namespace),
        cmocka_unit_test(event_with_and_without_ack),
        cmocka_unit_test(huge_ack_ids_are_rejected),
        cmocka_unit_test(bad_ack_ids_end_up_in_data),
        cmocka_unit_test(binary_headers),
        cmocka_unit_test(attachment_bombs_and_bad_binary_headers),
        cmocka_unit_test(malformed_headers),
        cmocka_unit_test(namespace_length_is_bounded),
        cmocka_unit_test(payload_is_not_nul_terminated),
        cmocka_unit_test(namespace_without_comma_ends_with_packet),
        cmocka_unit_test(decode_event_ok),
        cmocka_unit_test(decode_event_rejects_bad_json_and_shapes),
        cmocka_unit_test(decode_event_size_limit_checked_first),
        cmocka_unit_test(decode_event_ten_megabyte_string),
        cmocka_unit_test(decode_event_deep_nesting_rejected),
        cmocka_unit_test(decode_event_depth_limit_is_jansson_max),
        cmocka_unit_test(encode_event_exact),
        cmocka_unit_test(encode_event_escapes_name_and_round_trips),
        cmocka_unit_test(encode_ack_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
