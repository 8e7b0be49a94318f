/* The claims of pooled ids (claim.h) against a real redis-server: gathered
 * per loop turn, applied, sent again when the link drops under them, and
 * a lost reservation reported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../../../libshared/tests/redis_fixture.h"
#include "../src/claim.h"

typedef struct claim_fx {
    rfx_loop l;
    pd_redis *r;
    redisContext *c;
    pd_claimq *q;
    int lost;     /* on_lost calls */
    int ups;      /* times Redis became ready */
} claim_fx;

static void on_state(pd_redis *r, int ready, void *data)
{
    (void)r;
    claim_fx *f = data;
    f->ups += ready;
    if (f->q)
        pd_claimq_on_redis_state(f->q, ready);
}

static void on_lost(void *data)
{
    ((claim_fx *)data)->lost++;
}

static int fx_setup(void **state)
{
    claim_fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    rfx_loop_init(&f->l);
    pd_redis_options opt = {.host = "127.0.0.1", .port = rfx_group_server.port};
    f->r = pd_redis_create(&f->l.loop, &opt, on_state, NULL, f);
    if (!f->r)
        return -1;
    RFX_WAIT(&f->l, pd_redis_ready(f->r), 3000);
    f->c = rfx_sync(rfx_group_server.port);
    if (!pd_redis_ready(f->r) || !f->c)
        return -1;
    rfx_ok(f->c, "FLUSHALL");
    f->q = pd_claimq_create(&f->l.loop, f->r, on_lost, f);
    if (!f->q)
        return -1;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    claim_fx *f = *state;
    if (!f)
        return 0;
    pd_claimq_close(f->q);
    pd_redis_free(f->r);
    rfx_loop_close(&f->l);
    pd_claimq_free(f->q);
    redisFree(f->c);
    free(f);
    return 0;
}

/* n rooms as the pool reserves them: "1000", "1001", ... */
static void reserve_rooms(claim_fx *f, int first, int n)
{
    for (int i = first; i < first + n; i++) {
        rfx_ok(f->c, "HSET room:%04d created_at 1 reserved 1", i);
        rfx_ok(f->c, "EXPIRE room:%04d 120", i);
    }
}

static pd_claimq_stats stats(claim_fx *f)
{
    pd_claimq_stats st;
    pd_claimq_get_stats(f->q, &st);
    return st;
}

static void claims_of_one_turn_are_applied_and_the_rooms_live_a_day(void **state)
{
    claim_fx *f = *state;
    reserve_rooms(f, 1000, 300); /* more than one call's PD_ROOM_CLAIM_MAX */
    char id[16];
    for (int i = 1000; i < 1300; i++) {
        snprintf(id, sizeof id, "%04d", i);
        assert_int_equal(pd_claimq_push(f->q, id), PD_OK);
    }
    assert_int_equal(stats(f).pending, 300);
    RFX_WAIT(&f->l, stats(f).pending == 0, 5000);
    pd_claimq_stats st = stats(f);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.claimed, 300);
    assert_int_equal(st.created + st.taken + st.lost, 0);
    assert_int_equal(f->lost, 0);
    for (int i = 1000; i < 1300; i++) {
        assert_int_equal(rfx_int(f->c, "HEXISTS room:%04d reserved", i), 0);
        assert_true(rfx_int(f->c, "TTL room:%04d", i) > 86000);
    }
}

static void a_lost_reservation_is_created_again_and_reported(void **state)
{
    claim_fx *f = *state;
    reserve_rooms(f, 2000, 2);
    rfx_ok(f->c, "DEL room:2001");  /* Redis lost it */
    rfx_ok(f->c, "HDEL room:2000 reserved"); /* a claim that ran, sent again */
    assert_int_equal(pd_claimq_push(f->q, "2000"), PD_OK);
    assert_int_equal(pd_claimq_push(f->q, "2001"), PD_OK);
    RFX_WAIT(&f->l, stats(f).pending == 0, 5000);
    pd_claimq_stats st = stats(f);
    assert_int_equal(st.claimed, 0);
    assert_int_equal(st.created, 1);
    assert_int_equal(st.taken, 1);
    assert_int_equal(f->lost, 1);
    assert_true(rfx_int(f->c, "TTL room:2001") > 86000);
    assert_int_equal(rfx_int(f->c, "HEXISTS room:2001 reserved"), 0);
}

static void claims_cut_off_by_a_dropped_link_go_again_once_it_is_back(void **state)
{
    claim_fx *f = *state;
    reserve_rooms(f, 3000, 50);
    char id[16];
    for (int i = 3000; i < 3050; i++) {
        snprintf(id, sizeof id, "%04d", i);
        assert_int_equal(pd_claimq_push(f->q, id), PD_OK);
    }
    /* Redis drops the link before the turn ends: the claims are sent into
     * a dead link, or wait for the next one. */
    rfx_ok(f->c, "CLIENT KILL TYPE normal SKIPME yes");
    RFX_WAIT(&f->l, stats(f).pending == 0 && f->ups >= 2, 10000);
    pd_claimq_stats st = stats(f);
    assert_int_equal(st.pending, 0);
    assert_true(f->ups >= 2); /* the link did go down and come back */
    assert_int_equal(st.claimed + st.taken, 50);
    assert_int_equal(st.lost + st.created, 0);
    for (int i = 3000; i < 3050; i++)
        assert_int_equal(rfx_int(f->c, "HEXISTS room:%04d reserved", i), 0);
}

static void full_or_closed_it_takes_no_more(void **state)
{
    claim_fx *f = *state;
    /* Within one turn (nothing is sent before it ends): up to the bound. */
    char id[16];
    int taken = 0;
    for (int i = 0; i < PD_CLAIMQ_MAX + 10; i++) {
        snprintf(id, sizeof id, "%04d", i % 10000);
        taken += pd_claimq_push(f->q, id) == PD_OK;
    }
    assert_int_equal(taken, PD_CLAIMQ_MAX);
    assert_false(pd_claimq_has_room(f->q));
    assert_int_equal(pd_claimq_push(f->q, "x"), PD_ERR);
    assert_int_equal(pd_claimq_push(f->q, "1234567"), PD_ERR);
    pd_claimq_close(f->q);
    assert_false(pd_claimq_has_room(f->q));
    assert_int_equal(pd_claimq_push(f->q, "1234"), PD_ERR);
}

#define CLAIM_TEST(t) cmocka_unit_test_setup_teardown(t, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        CLAIM_TEST(claims_of_one_turn_are_applied_and_the_rooms_live_a_day),
        CLAIM_TEST(a_lost_reservation_is_created_again_and_reported),
        CLAIM_TEST(claims_cut_off_by_a_dropped_link_go_again_once_it_is_back),
        CLAIM_TEST(full_or_closed_it_takes_no_more),
    };
    return cmocka_run_group_tests(tests, rfx_group_setup, rfx_group_teardown);
}
