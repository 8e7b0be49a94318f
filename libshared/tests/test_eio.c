/* test_eio.c — Engine.IO v4 packet parsing, open packet, handshake checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "privydrop/pd_eio.h"

static void parse_each_type_keeps_payload_view(void **state)
{
    (void)state;
    const char *frames[] = {"0{}", "1", "2", "3probe", "442[\"join\"]", "5", "6"};
    for (int t = 0; t <= 6; t++) {
        pd_eio_packet p;
        pd_slice f = pd_slice_cstr(frames[t]);
        assert_int_equal(pd_eio_parse(f, &p), PD_OK);
        assert_int_equal(p.type, t);
        assert_ptr_equal(p.data.base, f.base + 1);
        assert_int_equal(p.data.len, f.len - 1);
    }
}

static void parse_message_payload_is_rest_of_frame(void **state)
{
    (void)state;
    pd_eio_packet p;
    assert_int_equal(pd_eio_parse(pd_slice_cstr("442[\"a\",1]"), &p), PD_OK);
    assert_int_equal(p.type, PD_EIO_MESSAGE);
    assert_true(pd_slice_eq(p.data, "42[\"a\",1]"));
}

static void parse_rejects_empty_and_unknown_types(void **state)
{
    (void)state;
    pd_eio_packet p;
    assert_int_equal(pd_eio_parse(pd_slice_make(NULL, 0), &p), PD_ERR);
    assert_int_equal(pd_eio_parse(pd_slice_make("", 0), &p), PD_ERR);
    const char *bad[] = {"7", "9", "b4AQID", "x", " 4", "-1", "\xff"};
    for (size_t i = 0; i < PD_ARRAY_LEN(bad); i++)
        assert_int_equal(pd_eio_parse(pd_slice_cstr(bad[i]), &p), PD_ERR);
    /* A NUL type byte must not be read as a valid digit. */
    assert_int_equal(pd_eio_parse(pd_slice_make("\0" "4", 2), &p), PD_ERR);
}

static void open_packet_is_exact_json(void **state)
{
    (void)state;
    char buf[256];
    int n = pd_eio_encode_open(buf, sizeof buf, "AbC-_123", 25000, 20000, 1000000, 0);
    const char *want = "0{\"sid\":\"AbC-_123\",\"upgrades\":[],\"pingInterval\":25000,"
                       "\"pingTimeout\":20000,\"maxPayload\":1000000}";
    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(buf, want);
    /* The JSON after the type digit parses and carries the values. */
    json_error_t err;
    json_t *j = json_loads(buf + 1, 0, &err);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "sid")), "AbC-_123");
    assert_int_equal(json_integer_value(json_object_get(j, "maxPayload")), 1000000);
    json_decref(j);
    /* Opened over polling: the WebSocket upgrade is offered. */
    n = pd_eio_encode_open(buf, sizeof buf, "AbC-_123", 25000, 20000, 1000000, 1);
    assert_string_equal(buf, "0{\"sid\":\"AbC-_123\",\"upgrades\":[\"websocket\"],\"pingInterval\":25000,"
                             "\"pingTimeout\":20000,\"maxPayload\":1000000}");
    assert_int_equal(n, (int)strlen(buf));
}

static void open_packet_rejects_small_buffer_and_bad_sid(void **state)
{
    (void)state;
    char buf[256];
    const char *want = "0{\"sid\":\"abc\",\"upgrades\":[],\"pingInterval\":1,"
                       "\"pingTimeout\":2,\"maxPayload\":3}";
    size_t need = strlen(want);
    assert_int_equal(pd_eio_encode_open(buf, need, "abc", 1, 2, 3, 0), PD_ERR);
    assert_int_equal(pd_eio_encode_open(buf, need + 1, "abc", 1, 2, 3, 0), (int)need);
    assert_string_equal(buf, want);
    assert_int_equal(pd_eio_encode_open(buf, 0, "abc", 1, 2, 3, 0), PD_ERR);
    /* A sid that could break out of the JSON string is refused. */
    assert_int_equal(pd_eio_encode_open(buf, sizeof buf, "a\"b", 1, 2, 3, 0), PD_ERR);
    assert_int_equal(pd_eio_encode_open(buf, sizeof buf, "a\\b", 1, 2, 3, 0), PD_ERR);
    assert_int_equal(pd_eio_encode_open(buf, sizeof buf, "", 1, 2, 3, 0), PD_ERR);
    assert_int_equal(pd_eio_encode_open(buf, sizeof buf, NULL, 1, 2, 3, 0), PD_ERR);
}

static const char *hs(const char *q)
{
    return pd_eio_check_query(pd_slice_cstr(q), NULL);
}

static void handshake_accepts_websocket_v4(void **state)
{
    (void)state;
    assert_null(hs("EIO=4&transport=websocket"));
    assert_null(hs("transport=websocket&EIO=4"));
    assert_null(hs("EIO=4&transport=websocket&t=N8hyd6w"));
    assert_null(hs("foo&EIO=4&&transport=websocket&"));
}

static void handshake_rejects_other_protocol_versions(void **state)
{
    (void)state;
    assert_string_equal(hs("transport=websocket"), PD_EIO_ERR_PROTOCOL);
    assert_string_equal(hs("EIO=3&transport=websocket"), PD_EIO_ERR_PROTOCOL);
    assert_string_equal(hs("EIO=&transport=websocket"), PD_EIO_ERR_PROTOCOL);
    assert_string_equal(hs("EIO=44&transport=websocket"), PD_EIO_ERR_PROTOCOL);
    assert_string_equal(hs("EIO&transport=websocket"), PD_EIO_ERR_PROTOCOL);
    assert_string_equal(hs("eio=4&transport=websocket"), PD_EIO_ERR_PROTOCOL);
    /* Repeated parameter: ambiguous, refused. */
    assert_string_equal(hs("EIO=4&EIO=4&transport=websocket"), PD_EIO_ERR_PROTOCOL);
}

static void handshake_rejects_other_transports(void **state)
{
    (void)state;
    assert_string_equal(hs("EIO=4"), PD_EIO_ERR_TRANSPORT);
    assert_string_equal(hs(""), PD_EIO_ERR_TRANSPORT);
    assert_string_equal(hs("EIO=4&transport=WebSocket"), PD_EIO_ERR_TRANSPORT);
    assert_string_equal(hs("EIO=4&transport=websocketx"), PD_EIO_ERR_TRANSPORT);
    assert_string_equal(hs("EIO=4&transport=websocket&transport=polling"),
                        PD_EIO_ERR_TRANSPORT);
    /* The transport is checked first, as engine.io does. */
    assert_string_equal(hs("EIO=3&transport=flash"), PD_EIO_ERR_TRANSPORT);
    assert_string_equal(hs("EIO=3&transport=polling"), PD_EIO_ERR_PROTOCOL);
}

static void query_names_transport_and_sid(void **state)
{
    (void)state;
    pd_eio_query q;
    assert_null(pd_eio_check_query(pd_slice_cstr("EIO=4&transport=polling&t=abc"), &q));
    assert_int_equal(q.transport, PD_EIO_POLLING);
    assert_int_equal(q.has_sid, 0);
    assert_null(pd_eio_check_query(pd_slice_cstr("EIO=4&transport=websocket&sid=ab-C_1"), &q));
    assert_int_equal(q.transport, PD_EIO_WEBSOCKET);
    assert_int_equal(q.has_sid, 1);
    assert_true(pd_slice_eq(q.sid, "ab-C_1"));
    assert_null(pd_eio_check_query(pd_slice_cstr("sid=&EIO=4&transport=polling"), &q));
    assert_int_equal(q.has_sid, 1);
    assert_int_equal(q.sid.len, 0);
    /* A repeated sid is ambiguous. */
    assert_string_equal(hs("EIO=4&transport=polling&sid=a&sid=b"), PD_EIO_ERR_BAD_REQUEST);
    /* The protocol version is checked on every request. */
    assert_string_equal(hs("EIO=3&transport=polling&sid=a"), PD_EIO_ERR_PROTOCOL);
}

static void handshake_survives_long_query(void **state)
{
    (void)state;
    size_t n = 1 << 20;
    char *q = malloc(n + 1);
    assert_non_null(q);
    memset(q, '&', n);
    q[n] = '\0';
    assert_string_equal(pd_eio_check_query(pd_slice_make(q, n), NULL), PD_EIO_ERR_TRANSPORT);
    memset(q, '=', n);
    assert_string_equal(pd_eio_check_query(pd_slice_make(q, n), NULL), PD_EIO_ERR_TRANSPORT);
    free(q);
    /* Not NUL-terminated: only `len` bytes are read. */
    const char raw[] = {'E', 'I', 'O', '=', '4', '&', 't', 'r', 'a', 'n', 's', 'p', 'o', 'r', 't',
                        '=', 'w', 'e', 'b', 's', 'o', 'c', 'k', 'e', 't', 'X'};
    assert_null(pd_eio_check_query(pd_slice_make(raw, sizeof raw - 1), NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_each_type_keeps_payload_view),
        cmocka_unit_test(parse_message_payload_is_rest_of_frame),
        cmocka_unit_test(parse_rejects_empty_and_unknown_types),
        cmocka_unit_test(open_packet_is_exact_json),
        cmocka_unit_test(open_packet_rejects_small_buffer_and_bad_sid),
        cmocka_unit_test(handshake_accepts_websocket_v4),
        cmocka_unit_test(handshake_rejects_other_protocol_versions),
        cmocka_unit_test(handshake_rejects_other_transports),
        cmocka_unit_test(query_names_transport_and_sid),
        cmocka_unit_test(handshake_survives_long_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
