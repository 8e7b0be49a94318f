/* test_bus.c — the pub/sub envelope codec (docs/architecture.md §Bus): round
 * trips for every kind, the "-" target, and everything a malformed envelope
 * can get wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "privydrop/pd_bus.h"
#include "privydrop/pd_common.h"

static pd_bus_envelope envelope(pd_bus_kind kind, const char *origin, const char *target, const char *packet)
{
    pd_bus_envelope e = {kind, pd_slice_cstr(origin), pd_slice_cstr(target), pd_slice_cstr(packet), {NULL, 0}};
    return e;
}

/* Decode from a heap copy of exactly msg.len bytes so that any read past
 * the end is caught by AddressSanitizer. */
static int decode_exact(const char *bytes, size_t len, pd_bus_envelope *out, char **owned)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, bytes, len);
    *owned = copy;
    return pd_bus_decode(pd_slice_make(copy, len), out);
}

static int decode_str(const char *text)
{
    pd_bus_envelope out;
    char *owned = NULL;
    int rc = decode_exact(text, strlen(text), &out, &owned);
    free(owned);
    return rc;
}

static void assert_slice(pd_slice s, const char *want, size_t want_len)
{
    assert_int_equal(s.len, want_len);
    if (want_len)
        assert_memory_equal(s.base, want, want_len);
}

static void encode_writes_the_documented_wire_form(void **state)
{
    (void)state;
    pd_bus_envelope e = envelope(PD_BUS_TO_SOCKET, "worker-1", "sockAAAA", "42[\"offer\",{}]");
    size_t len = 0;
    char *buf = pd_bus_encode(&e, &len);
    assert_non_null(buf);
    const char *want = "PD1 S worker-1 sockAAAA\n42[\"offer\",{}]";
    assert_int_equal(len, strlen(want));
    assert_memory_equal(buf, want, len);
    assert_int_equal(buf[len], '\0');
    free(buf);
}

static void every_kind_round_trips(void **state)
{
    (void)state;
    const pd_bus_kind kinds[] = {PD_BUS_TO_SOCKET, PD_BUS_BROADCAST, PD_BUS_LEAVE};
    for (size_t i = 0; i < PD_ARRAY_LEN(kinds); i++) {
        pd_bus_envelope e = envelope(kinds[i], "inst-a_9", "Zm9vYmFyYmF6cXV4MTIz", "42[\"ready\",{\"peerId\":\"x\"}]");
        size_t len = 0;
        char *buf = pd_bus_encode(&e, &len);
        assert_non_null(buf);
        pd_bus_envelope d;
        char *owned = NULL;
        assert_int_equal(decode_exact(buf, len, &d, &owned), PD_OK);
        assert_int_equal(d.kind, kinds[i]);
        assert_slice(d.origin, "inst-a_9", 8);
        assert_slice(d.target, "Zm9vYmFyYmF6cXV4MTIz", 20);
        assert_slice(d.packet, e.packet.base, e.packet.len);
        /* Decoded slices point into the message, not at copies. */
        assert_true(d.origin.base >= owned && d.origin.base < owned + len);
        assert_true(d.packet.base >= owned && d.packet.base + d.packet.len == owned + len);
        free(owned);
        free(buf);
    }
}

static void empty_target_is_written_as_dash_and_decodes_empty(void **state)
{
    (void)state;
    pd_bus_envelope e = envelope(PD_BUS_BROADCAST, "w1", "", "42[\"x\"]");
    size_t len = 0;
    char *buf = pd_bus_encode(&e, &len);
    assert_non_null(buf);
    assert_int_equal(len, strlen("PD1 B w1 -\n42[\"x\"]"));
    assert_memory_equal(buf, "PD1 B w1 -\n42[\"x\"]", len);
    pd_bus_envelope d;
    char *owned = NULL;
    assert_int_equal(decode_exact(buf, len, &d, &owned), PD_OK);
    assert_int_equal(d.target.len, 0);
    assert_int_equal(d.kind, PD_BUS_BROADCAST);
    free(owned);
    free(buf);

    /* A NULL-based empty target is the same as "". */
    pd_bus_envelope n = {PD_BUS_BROADCAST, pd_slice_cstr("w1"), pd_slice_make(NULL, 0), pd_slice_cstr("4"), {NULL, 0}};
    buf = pd_bus_encode(&n, &len);
    assert_non_null(buf);
    assert_memory_equal(buf, "PD1 B w1 -\n4", len);
    free(buf);
}

static void packet_with_newlines_and_spaces_is_preserved(void **state)
{
    (void)state;
    const char pkt[] = "42[\"offer\",{\"sdp\":\"v=0\\r\\n a=b \\n\"}]\n\n tail with spaces \r\n";
    pd_bus_envelope e = envelope(PD_BUS_TO_SOCKET, "w", "t", pkt);
    size_t len = 0;
    char *buf = pd_bus_encode(&e, &len);
    assert_non_null(buf);
    pd_bus_envelope d;
    char *owned = NULL;
    assert_int_equal(decode_exact(buf, len, &d, &owned), PD_OK);
    assert_slice(d.packet, pkt, strlen(pkt));
    free(owned);
    free(buf);

    /* Binary bytes, including NUL, also survive. */
    const char bin[] = {'4', '\0', '\n', ' ', (char)0xff};
    pd_bus_envelope b = {PD_BUS_LEAVE, pd_slice_cstr("w"), pd_slice_cstr("t"), pd_slice_make(bin, sizeof bin), {NULL, 0}};
    buf = pd_bus_encode(&b, &len);
    assert_non_null(buf);
    assert_int_equal(decode_exact(buf, len, &d, &owned), PD_OK);
    assert_slice(d.packet, bin, sizeof bin);
    free(owned);
    free(buf);
}

static void empty_packet_round_trips(void **state)
{
    (void)state;
    pd_bus_envelope e = {PD_BUS_LEAVE, pd_slice_cstr("w"), pd_slice_cstr("s"), pd_slice_make(NULL, 0), {NULL, 0}};
    size_t len = 0;
    char *buf = pd_bus_encode(&e, &len);
    assert_non_null(buf);
    assert_int_equal(len, strlen("PD1 L w s\n"));
    pd_bus_envelope d;
    char *owned = NULL;
    assert_int_equal(decode_exact(buf, len, &d, &owned), PD_OK);
    assert_int_equal(d.packet.len, 0);
    assert_int_equal(d.kind, PD_BUS_LEAVE);
    free(owned);
    free(buf);
}

static void encode_refuses_separators_in_origin_or_target(void **state)
{
    (void)state;
    const char *bad[] = {"a b", "a\nb", "a\rb", " ", "\n", "ab ", " ab"};
    size_t len = 12345;
    for (size_t i = 0; i < PD_ARRAY_LEN(bad); i++) {
        pd_bus_envelope o = envelope(PD_BUS_TO_SOCKET, bad[i], "t", "4");
        assert_null(pd_bus_encode(&o, &len));
        pd_bus_envelope t = envelope(PD_BUS_TO_SOCKET, "w", bad[i], "4");
        assert_null(pd_bus_encode(&t, &len));
    }
}

static void encode_refuses_empty_or_over_long_origin(void **state)
{
    (void)state;
    size_t len = 0;
    pd_bus_envelope e = envelope(PD_BUS_BROADCAST, "", "-", "4");
    assert_null(pd_bus_encode(&e, &len));

    char origin[PD_BUS_MAX_ORIGIN + 2];
    memset(origin, 'o', sizeof origin);
    origin[PD_BUS_MAX_ORIGIN + 1] = '\0';
    e = envelope(PD_BUS_BROADCAST, origin, "t", "4");
    assert_null(pd_bus_encode(&e, &len));

    origin[PD_BUS_MAX_ORIGIN] = '\0'; /* exactly the maximum is fine */
    e = envelope(PD_BUS_BROADCAST, origin, "t", "4");
    char *buf = pd_bus_encode(&e, &len);
    assert_non_null(buf);
    pd_bus_envelope d;
    char *owned = NULL;
    assert_int_equal(decode_exact(buf, len, &d, &owned), PD_OK);
    assert_int_equal(d.origin.len, PD_BUS_MAX_ORIGIN);
    free(owned);
    free(buf);
}

static void decode_rejects_wrong_magic(void **state)
{
    (void)state;
    assert_int_equal(decode_str("PD2 S w t\n4"), PD_ERR);
    assert_int_equal(decode_str("pd1 S w t\n4"), PD_ERR);
    assert_int_equal(decode_str("PD1S w t\n4"), PD_ERR);
    assert_int_equal(decode_str("XPD1 S w t\n4"), PD_ERR);
    assert_int_equal(decode_str("42[\"offer\",{}]"), PD_ERR);
}

static void decode_rejects_unknown_kind(void **state)
{
    (void)state;
    assert_int_equal(decode_str("PD1 X w t\n4"), PD_ERR);
    assert_int_equal(decode_str("PD1 s w t\n4"), PD_ERR);
    assert_int_equal(decode_str("PD1   w t\n4"), PD_ERR);
    assert_int_equal(decode_str("PD1 SS w t\n4"), PD_ERR);
    /* Sanity: the same envelope with a known kind is accepted. */
    assert_int_equal(decode_str("PD1 S w t\n4"), PD_OK);
}

static void decode_rejects_missing_fields(void **state)
{
    (void)state;
    assert_int_equal(decode_str(""), PD_ERR);
    assert_int_equal(decode_str("PD1 "), PD_ERR);
    assert_int_equal(decode_str("PD1 S"), PD_ERR);
    assert_int_equal(decode_str("PD1 S "), PD_ERR);
    assert_int_equal(decode_str("PD1 S w"), PD_ERR);        /* no target, no newline */
    assert_int_equal(decode_str("PD1 S w\n4"), PD_ERR);     /* no target */
    assert_int_equal(decode_str("PD1 S w t"), PD_ERR);      /* no newline */
    assert_int_equal(decode_str("PD1 S w t 4"), PD_ERR);    /* space instead of newline */
    assert_int_equal(decode_str("PD1 S  t\n4"), PD_ERR);    /* empty origin */
    assert_int_equal(decode_str("PD1 S w \n4"), PD_ERR);    /* empty target */
    assert_int_equal(decode_str("PD1 S w t r x\n4"), PD_ERR); /* a field after the room */
}

static void decode_rejects_over_long_origin(void **state)
{
    (void)state;
    char msg[PD_BUS_MAX_ORIGIN + 32];
    memcpy(msg, "PD1 B ", 6);
    memset(msg + 6, 'o', PD_BUS_MAX_ORIGIN + 1);
    memcpy(msg + 6 + PD_BUS_MAX_ORIGIN + 1, " t\n4", 5);
    assert_int_equal(decode_str(msg), PD_ERR);
    /* One byte shorter fits. */
    memmove(msg + 6 + PD_BUS_MAX_ORIGIN, msg + 6 + PD_BUS_MAX_ORIGIN + 1, 5);
    assert_int_equal(decode_str(msg), PD_OK);
}

static void decode_only_reads_slice_length(void **state)
{
    (void)state;
    /* The packet ends where the slice ends, not at a NUL. */
    const char text[] = "PD1 S w t\n42[1]GARBAGE";
    pd_bus_envelope d;
    assert_int_equal(pd_bus_decode(pd_slice_make(text, strlen("PD1 S w t\n42[1]")), &d), PD_OK);
    assert_slice(d.packet, "42[1]", 5);
    /* A slice that stops before the newline is incomplete. */
    assert_int_equal(pd_bus_decode(pd_slice_make(text, strlen("PD1 S w t")), &d), PD_ERR);
}

static void channel_name_is_prefix_plus_room(void **state)
{
    (void)state;
    char buf[32];
    int n = pd_bus_channel(buf, sizeof buf, pd_slice_cstr("1234"));
    assert_int_equal(n, (int)strlen("pd:room:1234"));
    assert_string_equal(buf, "pd:room:1234");
    /* Exactly enough room for the name and its NUL. */
    char exact[13];
    assert_int_equal(pd_bus_channel(exact, sizeof exact, pd_slice_cstr("1234")), 12);
    assert_string_equal(exact, "pd:room:1234");
    char small[12];
    assert_int_equal(pd_bus_channel(small, sizeof small, pd_slice_cstr("1234")), PD_ERR);
    /* Only len bytes of the room are used. */
    assert_int_equal(pd_bus_channel(buf, sizeof buf, pd_slice_make("abcdef", 2)), 10);
    assert_string_equal(buf, "pd:room:ab");
    /* An empty room (even with a NULL base) gives just the prefix. */
    assert_int_equal(pd_bus_channel(buf, sizeof buf, pd_slice_make(NULL, 0)), 8);
    assert_string_equal(buf, "pd:room:");
}

/* The header alone is pd_bus_encode's output up to the packet; refused
 * for what pd_bus_encode refuses and for a buffer too small. */
static void encode_head_is_the_encoded_prefix(void **state)
{
    (void)state;
    pd_bus_envelope e = envelope(PD_BUS_BROADCAST, "worker-1", "", "42[\"x\"]");
    size_t len = 0;
    char *whole = pd_bus_encode(&e, &len);
    assert_non_null(whole);
    char head[64];
    int n = pd_bus_encode_head(&e, head, sizeof(head));
    assert_int_equal(n, strlen("PD1 B worker-1 -\n"));
    assert_memory_equal(head, "PD1 B worker-1 -\n", (size_t)n);
    assert_int_equal((size_t)n + e.packet.len, len);
    assert_memory_equal(whole, head, (size_t)n);
    free(whole);
    assert_int_equal(pd_bus_encode_head(&e, head, (size_t)n), n);
    assert_int_equal(pd_bus_encode_head(&e, head, (size_t)n - 1), PD_ERR);
    pd_bus_envelope bad = envelope(PD_BUS_TO_SOCKET, "w 1", "s", "");
    assert_int_equal(pd_bus_encode_head(&bad, head, sizeof(head)), PD_ERR);
}

/* A signal on a worker's own channel names its room after the target. */
static void room_field_round_trips_and_is_bounded(void **state)
{
    (void)state;
    pd_bus_envelope e = envelope(PD_BUS_TO_SOCKET, "w1", "AbCd1234sock", "42[\"offer\",{}]");
    e.room = pd_slice_cstr("4821");
    size_t len = 0;
    char *buf = pd_bus_encode(&e, &len);
    assert_non_null(buf);
    const char *want = "PD1 S w1 AbCd1234sock 4821\n42[\"offer\",{}]";
    assert_int_equal(len, strlen(want));
    assert_memory_equal(buf, want, len);
    char head[64];
    assert_int_equal(pd_bus_encode_head(&e, head, sizeof(head)), (int)(strchr(want, '\n') - want + 1));
    pd_bus_envelope out;
    char *owned = NULL;
    assert_int_equal(decode_exact(buf, len, &out, &owned), PD_OK);
    assert_slice(out.room, "4821", 4);
    assert_slice(out.target, "AbCd1234sock", 12);
    assert_slice(out.packet, "42[\"offer\",{}]", strlen("42[\"offer\",{}]"));
    free(owned);
    free(buf);
    /* Without a room the field is absent, and decodes empty. */
    assert_int_equal(decode_exact("PD1 S w1 t\n4", 12, &out, &owned), PD_OK);
    assert_int_equal(out.room.len, 0);
    free(owned);
    /* A room field that is empty, too long, or followed by more fields. */
    assert_int_equal(decode_str("PD1 S w1 t \n4"), PD_ERR);
    assert_int_equal(decode_str("PD1 S w1 t 12 34\n4"), PD_ERR);
    assert_int_equal(decode_str("PD1 S w1 t 12\r\n4"), PD_ERR);
    assert_int_equal(decode_str("PD1 S w1 t 12"), PD_ERR);
    char longer[200];
    snprintf(longer, sizeof(longer), "PD1 S w1 t %065d\n4", 1);
    assert_int_equal(decode_str(longer), PD_ERR);
    e.room = pd_slice_cstr("a b");
    assert_null(pd_bus_encode(&e, &len));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(encode_writes_the_documented_wire_form),
        cmocka_unit_test(every_kind_round_trips),
        cmocka_unit_test(empty_target_is_written_as_dash_and_decodes_empty),
        cmocka_unit_test(packet_with_newlines_and_spaces_is_preserved),
        cmocka_unit_test(empty_packet_round_trips),
        cmocka_unit_test(encode_refuses_separators_in_origin_or_target),
        cmocka_unit_test(encode_refuses_empty_or_over_long_origin),
        cmocka_unit_test(decode_rejects_wrong_magic),
        cmocka_unit_test(decode_rejects_unknown_kind),
        cmocka_unit_test(decode_rejects_missing_fields),
        cmocka_unit_test(decode_rejects_over_long_origin),
        cmocka_unit_test(decode_only_reads_slice_length),
        cmocka_unit_test(channel_name_is_prefix_plus_room),
        cmocka_unit_test(encode_head_is_the_encoded_prefix),
        cmocka_unit_test(room_field_round_trips_and_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
