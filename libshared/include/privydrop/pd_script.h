/* pd_script.h — Lua scripts run by digest: EVALSHA with the script's
 * SHA-1, and the whole text (EVAL) only when the server answers NOSCRIPT
 * (after a restart, a failover to a server that never saw it, or a SCRIPT
 * FLUSH). Sending a 2 KiB script with every call made Redis read and hash
 * it every time (docs/benchmarks.md, "get_room when the short ids run
 * out"); a digest is 40 bytes.
 *
 * Ownership: a pd_script points at its text (static storage, never copied
 * or freed). pd_script_eval copies the keys and arguments it is given, so
 * the caller's buffers may go as soon as it returns. The reply handed to
 * the callback is hiredis's, valid during the call only, as with
 * pd_redis_cmd. */
#ifndef PD_SCRIPT_H
#define PD_SCRIPT_H

#include "privydrop/pd_common.h"
#include "privydrop/pd_redis.h"

typedef struct pd_script {
    const char *text; /* the Lua source, static storage */
    char sha[41];     /* its SHA-1 in lower-case hex; "" until first used */
    /* The connection its text last went to (pd_script_eval's own): a
     * pd_redis and its pd_redis_connects() count then. */
    const pd_redis *text_to;
    unsigned long text_conn;
} pd_script;

#define PD_SCRIPT(src) {(src), {0}, NULL, 0}

/* Keys plus arguments in one call, as Redis bounds nothing itself. */
#define PD_SCRIPT_MAX_PARTS 136

/* Runs the script with nkeys keys and nargs arguments. cb gets exactly one
 * reply: the script's, an error reply (a NOSCRIPT is never passed on: the
 * text is sent once and the server's answer to that is), or NULL when the
 * link failed. PD_ERR (cb not called) when the command link is down, on
 * allocation failure, or for more than PD_SCRIPT_MAX_PARTS parts. The
 * digest is computed on first use: these processes run one loop on one
 * thread. */
int pd_script_eval(pd_redis *r, pd_script *s, pd_redis_reply_fn cb, void *data, int nkeys,
                   const pd_slice *keys, int nargs, const pd_slice *args);

/* Times a NOSCRIPT made this process send a script's text, since start. */
unsigned long pd_script_text_sends(void);

#endif
