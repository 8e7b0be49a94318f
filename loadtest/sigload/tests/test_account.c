/* test_account.c — the rules privydrop-sigload's relay reports by: a
 * signal's sequence number on an ordered path (new, repeated, never sent,
 * and the gaps that make a loss certain), and its due time against the
 * measured window (in time, late, outside); and the whole packets one
 * polling POST carries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../sigload.h"

static void in_order_every_one_is_new(void **state)
{
    (void)state;
    uint64_t next = 0, gaps = 0;
    for (uint64_t s = 0; s < 5; s++)
        assert_int_equal(sl_seq_take(&next, s, 5, &gaps), SL_SEQ_NEW);
    assert_int_equal(next, 5);
    assert_int_equal(gaps, 0);
}

static void a_skipped_number_is_a_loss_once(void **state)
{
    (void)state;
    uint64_t next = 0, gaps = 0;
    assert_int_equal(sl_seq_take(&next, 0, 10, &gaps), SL_SEQ_NEW);
    assert_int_equal(sl_seq_take(&next, 3, 10, &gaps), SL_SEQ_NEW); /* 1 and 2 skipped */
    assert_int_equal(gaps, 2);
    assert_int_equal(next, 4);
    /* One of the skipped arriving after all is not new: the path should
     * not reorder, and it is already counted lost. */
    assert_int_equal(sl_seq_take(&next, 2, 10, &gaps), SL_SEQ_REPEAT);
    assert_int_equal(sl_seq_take(&next, 4, 10, &gaps), SL_SEQ_NEW);
    assert_int_equal(gaps, 2);
}

static void a_repeat_is_a_duplicate(void **state)
{
    (void)state;
    uint64_t next = 0, gaps = 0;
    assert_int_equal(sl_seq_take(&next, 0, 3, &gaps), SL_SEQ_NEW);
    assert_int_equal(sl_seq_take(&next, 0, 3, &gaps), SL_SEQ_REPEAT);
    assert_int_equal(next, 1);
    assert_int_equal(gaps, 0);
}

static void a_number_not_yet_sent_is_refused_without_effect(void **state)
{
    (void)state;
    uint64_t next = 2, gaps = 0;
    assert_int_equal(sl_seq_take(&next, 7, 7, &gaps), SL_SEQ_UNSENT);
    assert_int_equal(sl_seq_take(&next, UINT64_MAX - 1, 7, &gaps), SL_SEQ_UNSENT);
    assert_int_equal(next, 2);
    assert_int_equal(gaps, 0);
}

/* The window [1000, 2000]: before it (warm-up), inside, in the drain after. */
static void due_time_against_the_window(void **state)
{
    (void)state;
    /* Warm-up: the window's start is still the scheduled one, ahead. */
    assert_int_equal(sl_window_when(500, 1000, 2000, 0, 0), SL_WHEN_OUTSIDE);
    /* Open: due at or after its start. */
    assert_int_equal(sl_window_when(1000, 1000, 0, 1, 0), SL_WHEN_IN_TIME);
    assert_int_equal(sl_window_when(1500, 1000, 0, 1, 0), SL_WHEN_IN_TIME);
    /* Sent during the warm-up, arriving inside: delivered, not timed. */
    assert_int_equal(sl_window_when(999, 1000, 0, 1, 0), SL_WHEN_OUTSIDE);
    /* Closed: due inside it, arriving now, is late. */
    assert_int_equal(sl_window_when(1500, 1000, 2000, 0, 1), SL_WHEN_LATE);
    assert_int_equal(sl_window_when(2000, 1000, 2000, 0, 1), SL_WHEN_LATE);
    assert_int_equal(sl_window_when(999, 1000, 2000, 0, 1), SL_WHEN_OUTSIDE);
    assert_int_equal(sl_window_when(2001, 1000, 2000, 0, 1), SL_WHEN_OUTSIDE);
}

static void a_batch_takes_whole_packets(void **state)
{
    (void)state;
    const char q[] = "42[a]\x1e" "3\x1e" "42[bcd]";
    size_t len = sizeof(q) - 1, n = 0;
    assert_int_equal(sl_batch_len(q, len, 100, &n), len); /* all fits */
    assert_int_equal(n, 3);
    assert_int_equal(sl_batch_len(q, len, len - 1, &n), 7); /* "42[a]" "3" */
    assert_int_equal(n, 2);
    assert_int_equal(sl_batch_len(q, len, 6, &n), 5); /* the first alone */
    assert_int_equal(n, 1);
    assert_int_equal(sl_batch_len(q, len, 4, &n), 0); /* not even the first */
    assert_int_equal(n, 0);
    assert_int_equal(sl_batch_len(q, 0, 10, &n), 0);
    assert_int_equal(n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(in_order_every_one_is_new),
        cmocka_unit_test(a_skipped_number_is_a_loss_once),
        cmocka_unit_test(a_repeat_is_a_duplicate),
        cmocka_unit_test(a_number_not_yet_sent_is_refused_without_effect),
        cmocka_unit_test(due_time_against_the_window),
        cmocka_unit_test(a_batch_takes_whole_packets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
