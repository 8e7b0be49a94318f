/* account.c — where one relayed signal belongs: new, repeated or never sent
 * (by its sequence number on an ordered path), and in time, late or outside
 * the measured window (by its due time); and how much of a polling client's
 * queue one POST carries. Pure functions, so that the rules relay.c and
 * poll.c report and send by are tested on their own (tests/test_account.c). */
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

size_t sl_batch_len(const char *q, size_t len, size_t room, size_t *packets)
{
    size_t body = len;
    if (len > room) {
        /* Whole packets only: the last separator within room ends the batch. */
        body = 0;
        for (size_t i = 0; i < len && i <= room; i++)
            if (q[i] == '\x1e')
                body = i;
    }
    size_t n = body ? 1 : 0;
    for (size_t i = 0; i < body; i++)
        n += q[i] == '\x1e';
    *packets = n;
    return body;
}
