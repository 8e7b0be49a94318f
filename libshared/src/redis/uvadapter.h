/* uvadapter.h — attach a hiredis async context to a libuv loop (internal).
 *
 * Our own adapter rather than hiredis 0.14's adapters/libuv.h, for two
 * reasons: that one ignores poll errors (so a refused connect or a reset
 * link is never reported and the context hangs), and it reads at most one
 * buffer per wake-up, so a busy pub/sub link falls behind until Redis drops
 * it for exceeding its output buffer. */
#ifndef PD_REDIS_UVADAPTER_H
#define PD_REDIS_UVADAPTER_H

#include <hiredis/async.h>
#include <uv.h>

/* REDIS_OK or REDIS_ERR. The adapter is freed by hiredis's cleanup hook
 * when the context goes away. */
int pd_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

/* Take the socket's reads away from hiredis once the context is connected:
 * `read` is called instead of redisAsyncHandleRead (the subscriber link
 * parses its own stream, pd_subparse.h; hiredis still connects, writes and
 * frees). It returns 1 when it filled its buffer (more may be waiting), 0
 * when the socket is drained, -1 when it dropped the link (the context may
 * be gone). At most PD_REDIS_UV_MAX_READS calls per wake-up. */
typedef int (*pd_redis_uv_read_fn)(void *data, int fd);
void pd_redis_uv_set_reader(redisAsyncContext *ac, pd_redis_uv_read_fn read, void *data);

#endif
