/* test_events.c — payload checks of the hub's events, and the relay fast
 * path's packet, which must equal what the general (jansson) path encodes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "../src/events.h"
#include "privydrop/pd_jscan.h"
#include "privydrop/pd_sio.h"

/* The general path: decode with jansson, rebuild, encode. */
static char *general_packet(const char *data, const char *event, const char *field, const char *sid)
{
    json_t *args = NULL;
    const char *name = NULL;
    assert_int_equal(pd_sio_decode_event(pd_slice_cstr(data), 65536, &args, &name), PD_OK);
    pd_slice peer;
    json_t *value = NULL;
    assert_int_equal(pd_event_signal(json_array_get(args, 1), field, &peer, &value), PD_EVENT_OK);
    json_t *out = json_object();
    json_object_set(out, field, value);
    json_object_set_new(out, "from", json_string(sid));
    json_object_set_new(out, "peerId", json_string(sid));
    size_t len = 0;
    char *pkt = pd_sio_encode_event(event, out, &len);
    json_decref(out);
    json_decref(args);
    return pkt;
}

static char *fast_packet(const char *data, const char *field, const char *event, const char *sid)
{
    pd_slice name, payload;
    int esc = 0;
    assert_int_equal(pd_jscan_event(pd_slice_cstr(data), 32, &name, &esc, &payload), PD_OK);
    pd_jscan_member m[2] = {{"peerId", {NULL, 0}}, {field, {NULL, 0}}};
    assert_int_equal(pd_jscan_object(payload, m, 2), PD_OK);
    assert_non_null(m[1].value.base);
    size_t len = pd_event_signal_packet(NULL, 0, event, field, m[1].value, sid);
    char *out = calloc(1, len + 1);
    assert_int_equal(pd_event_signal_packet(out, len, event, field, m[1].value, sid), len);
    return out;
}

static void fast_path_packet_equals_general_path(void **state)
{
    (void)state;
    const char *sid = "AbCdEfGhIjKlMnOpQrSt";
    struct {
        const char *data, *event, *field;
    } cases[] = {
        {"[\"offer\",{\"peerId\":\"x1\",\"offer\":{\"type\":\"offer\",\"sdp\":\"v=0\\r\\no=- 1 2 IN IP4 0.0.0.0\\r\\n\"},"
         "\"from\":\"forged\"}]",
         "offer", "offer"},
        {"[\"answer\",{\"peerId\":\"x1\",\"answer\":{\"type\":\"answer\",\"sdp\":\"\\u00e9\"}}]", "answer", "answer"},
        {"[\"ice-candidate\",{\"peerId\":\"x1\",\"candidate\":{\"candidate\":\"candidate:1 1 udp 2 1.2.3.4 5 typ host\","
         "\"sdpMid\":\"0\",\"sdpMLineIndex\":0}}]",
         "ice-candidate", "candidate"},
        {"[\"ice-candidate\",{\"peerId\":\"x1\",\"candidate\":null}]", "ice-candidate", "candidate"},
        {"[\"offer\",{\"peerId\":\"x1\",\"offer\":[1,2.5,true,\"s\"]}]", "offer", "offer"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *g = general_packet(cases[i].data, cases[i].event, cases[i].field, sid);
        char *f = fast_packet(cases[i].data, cases[i].field, cases[i].event, sid);
        /* Equal as JSON always; equal as bytes unless the client wrote
         * escapes the encoder would not (case 1: \u00e9). */
        json_t *jg = json_loads(g + 2, 0, NULL), *jf = json_loads(f + 2, 0, NULL);
        assert_non_null(jg);
        assert_non_null(jf);
        if (!json_equal(jg, jf) || strncmp(g, f, 2) != 0 || (i != 1 && strcmp(g, f) != 0))
            fail_msg("case %zu differs:\n general %s\n fast    %s", i, g, f);
        json_decref(jg);
        json_decref(jf);
        free(g);
        free(f);
    }
}

static void signal_checks_fields(void **state)
{
    (void)state;
    pd_slice peer;
    json_t *value = NULL;
    json_t *p = json_loads("{\"peerId\":\"ok_id\",\"offer\":{}}", 0, NULL);
    assert_int_equal(pd_event_signal(p, "offer", &peer, &value), PD_EVENT_OK);
    assert_int_equal(pd_event_signal(p, "answer", &peer, &value), PD_EVENT_BAD_PAYLOAD);
    json_decref(p);
    p = json_loads("{\"peerId\":\"bad id!\",\"offer\":{}}", 0, NULL);
    assert_int_equal(pd_event_signal(p, "offer", &peer, &value), PD_EVENT_BAD_ID);
    json_decref(p);
    p = json_loads("{\"peerId\":5,\"offer\":{}}", 0, NULL);
    assert_int_equal(pd_event_signal(p, "offer", &peer, &value), PD_EVENT_BAD_PAYLOAD);
    json_decref(p);
    assert_int_equal(pd_event_signal(NULL, "offer", &peer, &value), PD_EVENT_BAD_PAYLOAD);
}

static void join_checks_room_id(void **state)
{
    (void)state;
    pd_slice room;
    json_t *p = json_loads("{\"roomId\":\"1234\"}", 0, NULL);
    assert_int_equal(pd_event_join(p, &room), PD_EVENT_OK);
    assert_true(pd_slice_eq(room, "1234"));
    json_decref(p);
    p = json_loads("{\"roomId\":123}", 0, NULL);
    assert_int_equal(pd_event_join(p, &room), PD_EVENT_BAD_PAYLOAD);
    json_decref(p);
    p = json_loads("{\"roomId\":\"a b\"}", 0, NULL);
    assert_int_equal(pd_event_join(p, &room), PD_EVENT_BAD_ID);
    json_decref(p);
}

static void event_table_names_every_event_once(void **state)
{
    (void)state;
    const struct {
        const char *name;
        pd_event_kind kind;
        const char *field;
    } want[] = {
        {"join", PD_EVENT_JOIN, NULL},
        {"offer", PD_EVENT_SIGNAL, "offer"},
        {"answer", PD_EVENT_SIGNAL, "answer"},
        {"ice-candidate", PD_EVENT_SIGNAL, "candidate"},
        {"initiator-online", PD_EVENT_ROOM, NULL},
        {"recipient-ready", PD_EVENT_ROOM, NULL},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const pd_event_def *ev = pd_event_lookup(pd_slice_cstr(want[i].name));
        assert_non_null(ev);
        assert_string_equal(ev->name, want[i].name);
        assert_int_equal(ev->kind, want[i].kind);
        if (want[i].field)
            assert_string_equal(ev->field, want[i].field);
        else
            assert_null(ev->field);
    }
    /* bytewise: no prefix, case or NUL tricks */
    assert_null(pd_event_lookup(pd_slice_cstr("offe")));
    assert_null(pd_event_lookup(pd_slice_cstr("Offer")));
    assert_null(pd_event_lookup(pd_slice_make("offer\0x", 7)));
    assert_null(pd_event_lookup(pd_slice_make("", 0)));
}

static void echo_len_never_splits_a_character(void **state)
{
    (void)state;
    /* "aé" with the cut falling inside é (2 bytes). */
    assert_int_equal(pd_event_echo_len(pd_slice_cstr("a\xc3\xa9"), 2), 1);
    assert_int_equal(pd_event_echo_len(pd_slice_cstr("a\xc3\xa9"), 3), 3);
    assert_int_equal(pd_event_echo_len(pd_slice_cstr("abc"), 2), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fast_path_packet_equals_general_path),
        cmocka_unit_test(signal_checks_fields),
        cmocka_unit_test(join_checks_room_id),
        cmocka_unit_test(echo_len_never_splits_a_character),
        cmocka_unit_test(event_table_names_every_event_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
