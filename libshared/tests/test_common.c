/* test_common.c — id validation and case-insensitive slice comparison. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "privydrop/pd_common.h"

static void id_valid_accepts_room_and_socket_ids(void **state)
{
    (void)state;
    const char *ok[] = {"1", "1234", "abcD", "a_b-c", "-", "_", "Zz09_-", "AbCdEfGhIjKlMnOpQrSt"};
    for (size_t i = 0; i < PD_ARRAY_LEN(ok); i++)
        assert_true(pd_id_valid(pd_slice_cstr(ok[i])));
    char max[PD_ID_MAX + 1];
    memset(max, 'a', PD_ID_MAX);
    max[PD_ID_MAX] = '\0';
    assert_true(pd_id_valid(pd_slice_cstr(max)));
}

static void id_valid_rejects_everything_else(void **state)
{
    (void)state;
    assert_false(pd_id_valid(pd_slice_make(NULL, 0)));
    assert_false(pd_id_valid(pd_slice_cstr("")));
    const char *bad[] = {"a b", "a:b", "room:1", "a*", "a?", "[a]", "a\n", "a/b", "a.b",
                         "caf\xc3\xa9", "\"a\"", "a\\b", "{a}", "a%20"};
    for (size_t i = 0; i < PD_ARRAY_LEN(bad); i++)
        assert_false(pd_id_valid(pd_slice_cstr(bad[i])));
    /* An embedded NUL cannot hide the rest of the id. */
    assert_false(pd_id_valid(pd_slice_make("ab\0cd", 5)));
    char over[PD_ID_MAX + 2];
    memset(over, 'a', PD_ID_MAX + 1);
    over[PD_ID_MAX + 1] = '\0';
    assert_false(pd_id_valid(pd_slice_cstr(over)));
    /* Only `len` bytes count. */
    assert_true(pd_id_valid(pd_slice_make("abc def", 3)));
}

static void slice_ieq_ignores_ascii_case_only(void **state)
{
    (void)state;
    assert_true(pd_slice_ieq(pd_slice_cstr("Upgrade"), "upgrade"));
    assert_true(pd_slice_ieq(pd_slice_cstr("WEBSOCKET"), "websocket"));
    assert_true(pd_slice_ieq(pd_slice_cstr("x-Forwarded-FOR"), "X-Forwarded-For"));
    assert_true(pd_slice_ieq(pd_slice_make(NULL, 0), ""));
    assert_true(pd_slice_ieq(pd_slice_make("keep-alive, Upgrade", 10), "KEEP-ALIVE"));
    assert_false(pd_slice_ieq(pd_slice_cstr("upgrade"), "upgrades"));
    assert_false(pd_slice_ieq(pd_slice_cstr("upgrades"), "upgrade"));
    assert_false(pd_slice_ieq(pd_slice_cstr(""), "a"));
    assert_false(pd_slice_ieq(pd_slice_cstr("a"), ""));
    /* '@' and '`' sit next to the letters; they must not fold. */
    assert_false(pd_slice_ieq(pd_slice_cstr("@"), "`"));
    assert_false(pd_slice_ieq(pd_slice_cstr("["), "{"));
    /* Non-ASCII bytes compare exactly. */
    assert_false(pd_slice_ieq(pd_slice_cstr("\xc3\xa9"), "\xc3\x89"));
    assert_true(pd_slice_ieq(pd_slice_cstr("\xc3\xa9"), "\xc3\xa9"));
    /* An embedded NUL in the slice never matches a shorter literal. */
    assert_false(pd_slice_ieq(pd_slice_make("ab\0", 3), "ab"));
}

static void slice_eq_is_exact(void **state)
{
    (void)state;
    assert_true(pd_slice_eq(pd_slice_cstr("abc"), "abc"));
    assert_false(pd_slice_eq(pd_slice_cstr("ABC"), "abc"));
    assert_true(pd_slice_eq(pd_slice_make(NULL, 0), ""));
    assert_int_equal(pd_slice_cstr(NULL).len, 0);
}

/* A second, independent reading of RFC 3629: decode the code point and
 * check its range, instead of checking byte ranges. */
static int utf8_reference(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n;
        uint8_t b = s[i];
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xe0) == 0xc0) {
            n = 2, cp = b & 0x1f;
        } else if ((b & 0xf0) == 0xe0) {
            n = 3, cp = b & 0x0f;
        } else if ((b & 0xf8) == 0xf0) {
            n = 4, cp = b & 0x07;
        } else {
            return 0;
        }
        if (len - i < n)
            return 0;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n;
    }
    return 1;
}

static void utf8_agrees_with_a_reference_on_every_short_sequence(void **state)
{
    (void)state;
    uint8_t s[12];
    for (unsigned a = 0; a < 256; a++) {
        s[0] = (uint8_t)a;
        assert_int_equal(pd_utf8_valid(s, 1), utf8_reference(s, 1));
        for (unsigned b = 0; b < 256; b++) {
            s[1] = (uint8_t)b;
            assert_int_equal(pd_utf8_valid(s, 2), utf8_reference(s, 2));
            if (a < 0xc0)
                continue;
            for (unsigned c = 0; c < 256; c++) {
                s[2] = (uint8_t)c;
                assert_int_equal(pd_utf8_valid(s, 3), utf8_reference(s, 3));
                if (a < 0xf0 || (b & 0xc0) != 0x80)
                    continue;
                /* Four-byte leads with a valid-looking second byte: the
                 * fourth byte at its edges. */
                static const uint8_t last[] = {0x00, 0x7f, 0x80, 0xbf, 0xc0, 0xff};
                for (size_t k = 0; k < sizeof(last); k++) {
                    s[3] = last[k];
                    assert_int_equal(pd_utf8_valid(s, 4), utf8_reference(s, 4));
                }
            }
        }
    }
    /* Behind an ASCII run that the fast path skips in eight-byte steps. */
    memcpy(s, "abcdefghi", 9);
    s[9] = 0xe2, s[10] = 0x82, s[11] = 0xac; /* € */
    assert_true(pd_utf8_valid(s, 12));
    assert_false(pd_utf8_valid(s, 11));
    s[8] = 0xff;
    assert_false(pd_utf8_valid(s, 12));
}

/* The ASCII fast paths (sixteen and eight bytes a step) must stop for a
 * non-ASCII byte wherever it falls, and check what follows it. */
static void utf8_finds_a_sequence_at_every_offset(void **state)
{
    (void)state;
    static const struct {
        const char *seq;
        int valid;
    } cases[] = {{"\xe2\x82\xac", 1}, {"\xc3\xa9", 1}, {"\xf0\x9f\x98\x80", 1}, {"\xff", 0},
                 {"\xc0\xaf", 0}, {"\xed\xa0\x80", 0}, {"\xe2\x82", 0}, {"\x80", 0}};
    uint8_t buf[80];
    for (size_t off = 0; off < 40; off++)
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            size_t n = strlen(cases[i].seq);
            memset(buf, 'a', sizeof(buf));
            memcpy(buf + off, cases[i].seq, n);
            assert_int_equal(pd_utf8_valid(buf, off + n + 20), cases[i].valid);
            assert_int_equal(pd_utf8_valid(buf, off + n), cases[i].valid);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(id_valid_accepts_room_and_socket_ids),
        cmocka_unit_test(id_valid_rejects_everything_else),
        cmocka_unit_test(slice_ieq_ignores_ascii_case_only),
        cmocka_unit_test(slice_eq_is_exact),
        cmocka_unit_test(utf8_agrees_with_a_reference_on_every_short_sequence),
        cmocka_unit_test(utf8_finds_a_sequence_at_every_offset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
