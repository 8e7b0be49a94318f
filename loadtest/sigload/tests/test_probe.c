/* test_probe.c — sigload's lateness probe (probe.h): bad arguments are
 * refused with a reason; a core taken from the probe for 30 ms shows as
 * a wake-up at least that late, kept where it was due, and no run of
 * late ones after it.
 *
 * Taking the core is done the way the kernel must honour whatever else
 * runs: this thread, SCHED_FIFO at a priority above the probe's, spins on
 * the probe's core. Where the test may not use SCHED_FIFO (no permission)
 * that case is skipped; the verdict never depends on how busy the machine
 * is, only on the probe not being run while a higher priority spins. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "../probe.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* sl_probe_start refuses, and its reason names `why`. */
static void refused(int cpu, double span_s, const char *why)
{
    char err[128] = "";
    assert_null(sl_probe_start(cpu, span_s, err, sizeof(err)));
    assert_non_null(strstr(err, why));
}

static void bad_arguments_are_refused(void **state)
{
    (void)state;
    refused(-1, 10, "no core");
    refused(4095, 10, "no core");
    refused(0, 0, "span");
    refused(0, SL_PROBE_MAX_S + 1, "span");
    sl_probe_free(NULL);
}

static void stop_is_idempotent_and_empty_ranges_read_zero(void **state)
{
    (void)state;
    char err[128];
    uint64_t t0 = now_ns();
    sl_probe *p = sl_probe_start(0, 5, err, sizeof(err));
    assert_non_null(p);
    sleep_ms(20);
    sl_probe_stop(p);
    sl_probe_stop(p);
    assert_int_equal(sl_probe_worst(p, t0, t0), 0);       /* empty range */
    assert_int_equal(sl_probe_count(p, t0, t0, 0), 0);
    assert_int_equal(sl_probe_count(p, t0, now_ns(), UINT64_MAX), 0);
    /* Far past its span: nothing kept there. */
    assert_int_equal(sl_probe_worst(p, t0 + 3600ull * 1000000000ull, t0 + 3601ull * 1000000000ull), 0);
    sl_probe_free(p);
}

static void a_taken_core_shows_as_one_late_wake_up(void **state)
{
    (void)state;
    char err[128];
    uint64_t t0 = now_ns();
    /* Started before this thread pins itself: the probe must be on core 0
     * by its own doing, or the spin below would not hold it up. */
    sl_probe *p = sl_probe_start(0, 5, err, sizeof(err));
    assert_non_null(p);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    struct sched_param sp = {.sched_priority = 2};
    if (!sl_probe_fifo(p) || pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0 ||
        pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) != 0) {
        sl_probe_free(p);
        skip();
    }
    uint64_t b0 = now_ns();
    while (now_ns() - b0 < 30000000ull) {
        /* spin: the probe (priority 1) cannot run on this core now */
    }
    sp.sched_priority = 0;
    pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp);
    sleep_ms(50);
    sl_probe_stop(p);
    uint64_t t1 = now_ns();
    assert_true(sl_probe_covers(p, b0, t1 - SL_PROBE_BUCKET_NS));
    assert_false(sl_probe_covers(p, t0 - 1000000000ull, b0)); /* before its start */
    assert_false(sl_probe_covers(p, t0, t1 + 1000000000ull)); /* past its stop */
    /* A wake-up due in the spin's first millisecond came at its end. */
    assert_true(sl_probe_worst(p, t0, t1) >= 29000000ull);
    assert_true(sl_probe_worst(p, b0 - 2 * SL_PROBE_BUCKET_NS, b0 + SL_PROBE_BUCKET_NS) >= 29000000ull);
    assert_true(sl_probe_count(p, t0, t1, 25000000ull) >= 1);
    /* The schedule restarted after the stall: no wake-up was due in the
     * middle of the spin, so none is kept there as late (a probe that
     * caught up one period at a time would keep 10-20 ms ones). */
    assert_true(sl_probe_worst(p, b0 + 12000000ull, b0 + 20000000ull) < 5000000ull);
    sl_probe_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_arguments_are_refused),
        cmocka_unit_test(stop_is_idempotent_and_empty_ranges_read_zero),
        cmocka_unit_test(a_taken_core_shows_as_one_late_wake_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
