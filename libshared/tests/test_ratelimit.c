/* test_ratelimit.c — token buckets: burst, refill, cap, keyed buckets and
 * the bound on tracked keys (fail closed when full of active keys). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>

#include "privydrop/pd_ratelimit.h"

static void new_bucket_allows_the_burst_then_refuses(void **state)
{
    (void)state;
    pd_bucket b = {0, 0};
    for (int i = 0; i < 5; i++)
        assert_true(pd_bucket_take(&b, 1, 5, 1000));
    assert_false(pd_bucket_take(&b, 1, 5, 1000));
}

static void bucket_refills_at_its_rate_and_caps_at_burst(void **state)
{
    (void)state;
    pd_bucket b = {0, 0};
    for (int i = 0; i < 3; i++)
        assert_true(pd_bucket_take(&b, 10, 3, 1000));
    assert_false(pd_bucket_take(&b, 10, 3, 1000));
    assert_false(pd_bucket_take(&b, 10, 3, 1050)); /* half a token */
    assert_true(pd_bucket_take(&b, 10, 3, 1100));  /* one token at 10/s */
    /* A long pause refills only up to the burst. */
    int allowed = 0;
    while (pd_bucket_take(&b, 10, 3, 100000))
        allowed++;
    assert_int_equal(allowed, 3);
}

static void clock_going_backwards_never_adds_tokens(void **state)
{
    (void)state;
    pd_bucket b = {0, 0};
    assert_true(pd_bucket_take(&b, 1, 1, 5000));
    assert_false(pd_bucket_take(&b, 1, 1, 1000));
}

static void keys_have_independent_buckets(void **state)
{
    (void)state;
    pd_ratelimit *rl = pd_ratelimit_create(1, 2, 100);
    assert_non_null(rl);
    assert_true(pd_ratelimit_take(rl, pd_slice_cstr("10.0.0.1"), 1000));
    assert_true(pd_ratelimit_take(rl, pd_slice_cstr("10.0.0.1"), 1000));
    assert_false(pd_ratelimit_take(rl, pd_slice_cstr("10.0.0.1"), 1000));
    assert_true(pd_ratelimit_take(rl, pd_slice_cstr("10.0.0.2"), 1000));
    assert_int_equal(pd_ratelimit_keys(rl), 2);
    pd_ratelimit_free(rl);
}

static void full_table_evicts_refilled_keys_only(void **state)
{
    (void)state;
    pd_ratelimit *rl = pd_ratelimit_create(1, 1, 10);
    char key[32];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_true(pd_ratelimit_take(rl, pd_slice_cstr(key), 1000));
    }
    /* All ten are empty right now: a new address is refused, not given a
     * fresh bucket at someone's expense. */
    assert_false(pd_ratelimit_take(rl, pd_slice_cstr("new"), 1000));
    assert_int_equal(pd_ratelimit_keys(rl), 10);
    /* Two seconds later they have refilled and carry no information. */
    assert_true(pd_ratelimit_take(rl, pd_slice_cstr("new"), 3000));
    assert_true(pd_ratelimit_keys(rl) <= 10);
    pd_ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(new_bucket_allows_the_burst_then_refuses),
        cmocka_unit_test(bucket_refills_at_its_rate_and_caps_at_burst),
        cmocka_unit_test(clock_going_backwards_never_adds_tokens),
        cmocka_unit_test(keys_have_independent_buckets),
        cmocka_unit_test(full_table_evicts_refilled_keys_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
