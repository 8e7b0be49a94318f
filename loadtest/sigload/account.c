/* account.c — where one relayed signal belongs: new, repeated or never sent
 * (by its sequence number on an ordered path), and in time, late or outside
 * the measured window (by its due time). Pure functions over numbers, so
 * that the rules relay.c reports by are tested on their own
 * (tests/test_account.c). */
#include "sigload.h"

sl_seq_verdict sl_seq_take(uint64_t *next, uint64_t seq, uint64_t sent, uint64_t *gaps)
{
    if (seq >= sent)
        return SL_SEQ_UNSENT;
    if (seq < *next)
        return SL_SEQ_REPEAT;
    /* The path is ordered: the ones skipped can no longer arrive in order. */
    *gaps += seq - *next;
    *next = seq + 1;
    return SL_SEQ_NEW;
}

sl_when sl_window_when(uint64_t t, uint64_t t_measure, uint64_t t_end, int measuring, int ended)
{
    if (t < t_measure)
        return SL_WHEN_OUTSIDE;
    if (measuring)
        return SL_WHEN_IN_TIME;
    if (ended && t <= t_end)
        return SL_WHEN_LATE;
    return SL_WHEN_OUTSIDE;
}
