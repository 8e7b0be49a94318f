/* test_wsscan.c — the WebSocket frame-header pre-check (RFC 6455 §5.2,
 * §5.4, §5.5): every rule it enforces, headers split across reads, and the
 * prefix it reports as safe before a bad frame. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "privydrop/pd_wsscan.h"

/* Build a masked (or not) client frame header + payload of `len` zero bytes
 * into buf; returns its size. */
static size_t frame(uint8_t *buf, int fin, int rsv, int opcode, int masked, uint64_t len, int with_payload)
{
    size_t n = 0;
    buf[n++] = (uint8_t)((fin ? 0x80 : 0) | (rsv << 4) | opcode);
    uint8_t m = masked ? 0x80 : 0;
    if (len < 126) {
        buf[n++] = (uint8_t)(m | len);
    } else if (len < 65536) {
        buf[n++] = m | 126;
        buf[n++] = (uint8_t)(len >> 8);
        buf[n++] = (uint8_t)len;
    } else {
        buf[n++] = m | 127;
        for (int i = 7; i >= 0; i--)
            buf[n++] = (uint8_t)(len >> (8 * i));
    }
    if (masked) {
        memcpy(buf + n, "\x01\x02\x03\x04", 4);
        n += 4;
    }
    if (with_payload) {
        memset(buf + n, 'a', (size_t)len);
        n += (size_t)len;
    }
    return n;
}

static uint16_t scan_all(pd_ws_scanner *sc, const uint8_t *buf, size_t n, size_t *ok)
{
    return pd_ws_scan(sc, buf, n, ok);
}

static void valid_text_frames_pass_whole(void **state)
{
    (void)state;
    pd_ws_scanner sc;
    pd_ws_scan_init(&sc, 1000);
    uint8_t buf[4096];
    size_t n = frame(buf, 1, 0, 1, 1, 10, 1);
    n += frame(buf + n, 1, 0, 1, 1, 300, 1);
    n += frame(buf + n, 1, 0, 9, 1, 5, 1); /* ping */
    size_t ok = 0;
    assert_int_equal(scan_all(&sc, buf, n, &ok), 0);
    assert_int_equal(ok, n);
}

static void header_split_byte_by_byte_is_checked_when_complete(void **state)
{
    (void)state;
    pd_ws_scanner sc;
    pd_ws_scan_init(&sc, 100);
    uint8_t buf[64];
    size_t n = frame(buf, 1, 0, 1, 1, 70000, 0); /* 2 + 8 + 4 header bytes */
    size_t ok = 0;
    for (size_t i = 0; i + 1 < n; i++)
        assert_int_equal(pd_ws_scan(&sc, buf + i, 1, &ok), 0);
    assert_int_equal(pd_ws_scan(&sc, buf + n - 1, 1, &ok), 1009);
    assert_int_equal(ok, 0);
}

static void declared_length_over_limit_is_refused_without_payload(void **state)
{
    (void)state;
    pd_ws_scanner sc;
    pd_ws_scan_init(&sc, 65536);
    uint8_t buf[64];
    size_t n = frame(buf, 1, 0, 1, 1, 1000000000000ULL, 0);
    size_t ok = 99;
    assert_int_equal(scan_all(&sc, buf, n, &ok), 1009);
    assert_int_equal(ok, 0);
}

static void fragments_add_up_to_the_limit(void **state)
{
    (void)state;
    pd_ws_scanner sc;
    pd_ws_scan_init(&sc, 100);
    uint8_t buf[512];
    size_t a = frame(buf, 0, 0, 1, 1, 60, 1);
    size_t b = frame(buf + a, 0, 0, 0, 1, 40, 1);  /* 100: still fine */
    size_t c = frame(buf + a + b, 1, 0, 0, 1, 1, 1); /* 101: too big */
    size_t ok = 0;
    assert_int_equal(scan_all(&sc, buf, a + b + c, &ok), 1009);
    assert_int_equal(ok, a + b);
}

static void fragment_counter_resets_for_each_message(void **state)
{
    (void)state;
    pd_ws_scanner sc;
    pd_ws_scan_init(&sc, 100);
    uint8_t buf[1024];
    size_t n = 0;
    for (int i = 0; i < 5; i++) {
        n += frame(buf + n, 0, 0, 1, 1, 50, 1);
        n += frame(buf + n, 1, 0, 0, 1, 50, 1);
    }
    size_t ok = 0;
    assert_int_equal(scan_all(&sc, buf, n, &ok), 0);
}

static void ping_between_fragments_is_allowed(void **state)
{
    (void)state;
    pd_ws_scanner sc;
    pd_ws_scan_init(&sc, 100);
    uint8_t buf[256];
    size_t n = frame(buf, 0, 0, 1, 1, 3, 1);
    n += frame(buf + n, 1, 0, 9, 1, 2, 1);
    n += frame(buf + n, 1, 0, 0, 1, 3, 1);
    size_t ok = 0;
    assert_int_equal(scan_all(&sc, buf, n, &ok), 0);
}

static void protocol_errors_are_1002(void **state)
{
    (void)state;
    struct {
        int fin, rsv, opcode, masked;
        uint64_t len;
        int pre_fragment; /* send an unfinished text frame first */
    } cases[] = {
        {1, 0, 1, 0, 5, 0},   /* unmasked */
        {1, 4, 1, 1, 5, 0},   /* RSV1 */
        {1, 1, 1, 1, 5, 0},   /* RSV3 */
        {1, 0, 3, 1, 5, 0},   /* reserved data opcode */
        {1, 0, 0xb, 1, 5, 0}, /* reserved control opcode */
        {0, 0, 9, 1, 5, 0},   /* fragmented ping */
        {1, 0, 9, 1, 126, 0}, /* ping over 125 */
        {1, 0, 8, 1, 1, 0},   /* close with a one-byte payload */
        {1, 0, 0, 1, 5, 0},   /* continuation without a start */
        {1, 0, 1, 1, 5, 1},   /* new message inside a fragmented one */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pd_ws_scanner sc;
        pd_ws_scan_init(&sc, 1000);
        uint8_t buf[512];
        size_t pre = cases[i].pre_fragment ? frame(buf, 0, 0, 1, 1, 4, 1) : 0;
        size_t n = pre + frame(buf + pre, cases[i].fin, cases[i].rsv, cases[i].opcode, cases[i].masked,
                               cases[i].len, 1);
        size_t ok = 12345;
        uint16_t code = scan_all(&sc, buf, n, &ok);
        if (code != 1002)
            fail_msg("case %zu: expected 1002, got %u", i, code);
        assert_int_equal(ok, pre);
    }
}

static void top_bit_of_64_bit_length_is_refused(void **state)
{
    (void)state;
    pd_ws_scanner sc;
    pd_ws_scan_init(&sc, (uint64_t)-1);
    uint8_t buf[16] = {0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
    size_t ok = 0;
    assert_int_equal(pd_ws_scan(&sc, buf, 14, &ok), 1002);
}

static void close_frames_with_code_pass(void **state)
{
    (void)state;
    pd_ws_scanner sc;
    pd_ws_scan_init(&sc, 100);
    uint8_t buf[64];
    size_t n = frame(buf, 1, 0, 8, 1, 2, 1);
    size_t ok = 0;
    assert_int_equal(scan_all(&sc, buf, n, &ok), 0);
    pd_ws_scan_init(&sc, 100);
    n = frame(buf, 1, 0, 8, 1, 0, 1);
    assert_int_equal(scan_all(&sc, buf, n, &ok), 0);
}

static void simple_text_frames_are_recognised_whole_only(void **state)
{
    (void)state;
    uint8_t buf[400];
    size_t plen = 0;
    size_t n = frame(buf, 1, 0, 1, 1, 5, 1);
    assert_int_equal(pd_ws_simple_text(buf, n, 100, &plen), 6);
    assert_int_equal(plen, 5);
    assert_int_equal(pd_ws_simple_text(buf, n - 1, 100, &plen), 0); /* incomplete */
    n = frame(buf, 1, 0, 1, 1, 300, 1);
    assert_int_equal(pd_ws_simple_text(buf, n, 1000, &plen), 8);
    assert_int_equal(plen, 300);
    assert_int_equal(pd_ws_simple_text(buf, n, 299, &plen), 0); /* over the limit */
    assert_int_equal(pd_ws_simple_text(buf, 7, 1000, &plen), 0);
    /* Everything else is for the full path. */
    n = frame(buf, 0, 0, 1, 1, 5, 1);
    assert_int_equal(pd_ws_simple_text(buf, n, 100, &plen), 0); /* not final */
    n = frame(buf, 1, 0, 2, 1, 5, 1);
    assert_int_equal(pd_ws_simple_text(buf, n, 100, &plen), 0); /* binary */
    n = frame(buf, 1, 0, 1, 0, 5, 1);
    assert_int_equal(pd_ws_simple_text(buf, n, 100, &plen), 0); /* unmasked */
    n = frame(buf, 1, 1, 1, 1, 5, 1);
    assert_int_equal(pd_ws_simple_text(buf, n, 100, &plen), 0); /* reserved bit */
    n = frame(buf, 1, 0, 9, 1, 5, 1);
    assert_int_equal(pd_ws_simple_text(buf, n, 100, &plen), 0); /* ping */
}

/* A frame cut short by a read: its size as soon as its header tells it, for
 * exactly the frames pd_ws_simple_text takes once whole. */
static void simple_text_size_of_a_cut_frame(void **state)
{
    (void)state;
    uint8_t buf[400];
    size_t plen = 0;
    size_t n = frame(buf, 1, 0, 1, 1, 5, 1);
    assert_int_equal(pd_ws_simple_text_size(buf, 1, 100), 1); /* header unknown yet */
    for (size_t len = 2; len <= n; len++)
        assert_int_equal(pd_ws_simple_text_size(buf, len, 100), n);
    n = frame(buf, 1, 0, 1, 1, 300, 1);
    for (size_t len = 1; len < 4; len++)
        assert_int_equal(pd_ws_simple_text_size(buf, len, 1000), 1);
    for (size_t len = 4; len <= n; len++)
        assert_int_equal(pd_ws_simple_text_size(buf, len, 1000), n);
    assert_int_equal(pd_ws_simple_text(buf, n, 1000, &plen), 8);
    assert_int_equal(pd_ws_simple_text_size(buf, 4, 299), 0); /* over the limit */
    /* What pd_ws_simple_text refuses whole is refused cut, too. */
    const int shapes[][4] = {{0, 0, 1, 1}, {1, 0, 2, 1}, {1, 0, 1, 0}, {1, 1, 1, 1}, {1, 0, 9, 1}, {1, 0, 8, 1}};
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        n = frame(buf, shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3], 5, 1);
        assert_int_equal(pd_ws_simple_text(buf, n, 100, &plen), 0);
        /* (one byte 0x81 could still start a masked text frame) */
        for (size_t len = buf[0] == 0x81 ? 2 : 1; len <= n; len++)
            assert_int_equal(pd_ws_simple_text_size(buf, len, 100), 0);
    }
}

static void unmask_matches_the_bytewise_rule(void **state)
{
    (void)state;
    const uint8_t key[4] = {0x12, 0x9a, 0xff, 0x01};
    for (size_t len = 0; len < 40; len++) {
        uint8_t a[40], b[40];
        for (size_t i = 0; i < len; i++)
            a[i] = b[i] = (uint8_t)(i * 37 + 5);
        pd_ws_unmask(a, len, key);
        for (size_t i = 0; i < len; i++)
            assert_int_equal(a[i], (uint8_t)(b[i] ^ key[i % 4]));
    }
}


/* The frame library keeps each frame, and each read of a frame, of a data
 * message as one allocation: a message in tiny pieces must stop at
 * pd_ws_scan_max_pieces, whatever its byte count. */
static void a_message_in_too_many_pieces_is_1009(void **state)
{
    (void)state;
    pd_ws_scanner sc;
    pd_ws_scan_init(&sc, 65536);
    uint32_t max = pd_ws_scan_max_pieces(&sc);
    assert_int_equal(max, 1024);
    uint8_t buf[64];
    size_t ok = 0;
    size_t n = frame(buf, 0, 0, 1, 1, 1, 1);
    assert_int_equal(scan_all(&sc, buf, n, &ok), 0);
    for (uint32_t i = 1; i < max; i++) {
        n = frame(buf, 0, 0, 0, 1, 1, 1);
        size_t m = frame(buf + n, 1, 0, 9, 1, 0, 1); /* pings in between are no pieces */
        assert_int_equal(scan_all(&sc, buf, n + m, &ok), 0);
    }
    n = frame(buf, 0, 0, 0, 1, 0, 1); /* empty fragments count too */
    n += frame(buf + n, 1, 0, 0, 1, 1, 1);
    assert_int_equal(scan_all(&sc, buf, n, &ok), 1009);
    assert_int_equal(ok, 0);

    /* A new message starts counting afresh. */
    pd_ws_scan_init(&sc, 65536);
    for (uint32_t i = 0; i < 2 * max; i++) {
        n = frame(buf, 1, 0, 1, 1, 1, 1);
        assert_int_equal(scan_all(&sc, buf, n, &ok), 0);
    }
}

static void a_frame_trickled_a_byte_per_read_is_1009(void **state)
{
    (void)state;
    pd_ws_scanner sc;
    pd_ws_scan_init(&sc, 4096); /* 64 pieces */
    static uint8_t buf[4200];
    size_t n = frame(buf, 1, 0, 1, 1, 4000, 1);
    size_t ok = 0, pos = 0;
    uint16_t code = 0;
    /* The header and the first payload byte are one piece. */
    assert_int_equal(scan_all(&sc, buf, 9, &ok), 0);
    pos = 9;
    while (pos < n && (code = scan_all(&sc, buf + pos, 1, &ok)) == 0)
        pos++;
    assert_int_equal(code, 1009);
    assert_int_equal(ok, 0);
    assert_int_equal(pos, 9 + pd_ws_scan_max_pieces(&sc) - 1);

    /* The same frame in reads of 100 bytes passes. */
    pd_ws_scan_init(&sc, 4096);
    for (pos = 0; pos < n; pos += 100)
        assert_int_equal(scan_all(&sc, buf + pos, n - pos < 100 ? n - pos : 100, &ok), 0);
    assert_true(pd_ws_scan_idle(&sc));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_text_frames_pass_whole),
        cmocka_unit_test(header_split_byte_by_byte_is_checked_when_complete),
        cmocka_unit_test(declared_length_over_limit_is_refused_without_payload),
        cmocka_unit_test(fragments_add_up_to_the_limit),
        cmocka_unit_test(fragment_counter_resets_for_each_message),
        cmocka_unit_test(ping_between_fragments_is_allowed),
        cmocka_unit_test(protocol_errors_are_1002),
        cmocka_unit_test(top_bit_of_64_bit_length_is_refused),
        cmocka_unit_test(close_frames_with_code_pass),
        cmocka_unit_test(simple_text_frames_are_recognised_whole_only),
        cmocka_unit_test(simple_text_size_of_a_cut_frame),
        cmocka_unit_test(unmask_matches_the_bytewise_rule),
        cmocka_unit_test(a_message_in_too_many_pieces_is_1009),
        cmocka_unit_test(a_frame_trickled_a_byte_per_read_is_1009),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
