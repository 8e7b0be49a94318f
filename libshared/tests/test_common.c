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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(id_valid_accepts_room_and_socket_ids),
        cmocka_unit_test(id_valid_rejects_everything_else),
        cmocka_unit_test(slice_ieq_ignores_ascii_case_only),
        cmocka_unit_test(slice_eq_is_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
