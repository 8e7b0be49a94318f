/* Lua scripts by digest (pd_script.h).
 *
 * When the text goes: a script's text is sent (EVAL) the first time it
 * runs on a connection, and its digest (EVALSHA) after that. Redis caches
 * a script as soon as an EVAL compiles it, and one connection executes
 * commands in order, so every EVALSHA that follows on that connection
 * finds it. pd_redis_connects() tells a new connection (a reconnect, or a
 * new master after a Sentinel failover) from the one the text went to.
 *
 * NOSCRIPT can still happen when the cache is emptied under a live
 * connection (SCRIPT FLUSH, or a server replaced without dropping the
 * link). The call is then sent again with its text. Commands the caller
 * pipelined behind it in that one round trip run before the re-sent call:
 * the only case in which this module can reorder, and why the text is
 * sent up front on every new connection rather than relying on NOSCRIPT. */
#include "privydrop/pd_script.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long g_text_sends;

unsigned long pd_script_text_sends(void)
{
    return g_text_sends;
}

static int script_digest(pd_script *s)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(s->text, strlen(s->text), md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
        return PD_ERR;
    for (unsigned i = 0; i < 20; i++)
        snprintf(s->sha + 2 * i, 3, "%02x", md[i]);
    return PD_OK;
}

/* One call in flight: the parts are copied into the same block, after the
 * struct, so a NOSCRIPT can send them again. */
typedef struct script_call {
    pd_redis *r;
    pd_script *s;
    pd_redis_reply_fn cb;
    void *data;
    int argc;
    int with_text; /* argv[0..1] are EVAL + text, not EVALSHA + digest */
    const char **argv;
    size_t *lens;
    char nkeys[16];
} script_call;

static int is_noscript(const redisReply *rep)
{
    return rep && rep->type == REDIS_REPLY_ERROR && rep->len >= 8 && memcmp(rep->str, "NOSCRIPT", 8) == 0;
}

static void call_set_head(script_call *c, int with_text)
{
    c->with_text = with_text;
    c->argv[0] = with_text ? "EVAL" : "EVALSHA";
    c->lens[0] = with_text ? 4 : 7;
    c->argv[1] = with_text ? c->s->text : c->s->sha;
    c->lens[1] = with_text ? strlen(c->s->text) : 40;
}

static void on_script_reply(redisReply *rep, void *data)
{
    script_call *c = data;
    if (!c->with_text && is_noscript(rep)) {
        call_set_head(c, 1);
        g_text_sends++;
        if (pd_redis_cmd_argv(c->r, on_script_reply, c, c->argc, c->argv, c->lens) == PD_OK)
            return;
        rep = NULL; /* the link went down under us: a transport failure */
    }
    if (c->cb)
        c->cb(rep, c->data);
    free(c);
}

int pd_script_eval(pd_redis *r, pd_script *s, pd_redis_reply_fn cb, void *data, int nkeys,
                   const pd_slice *keys, int nargs, const pd_slice *args)
{
    if (nkeys < 0 || nargs < 0 || nkeys + nargs > PD_SCRIPT_MAX_PARTS)
        return PD_ERR;
    if (!s->sha[0] && script_digest(s) != PD_OK)
        return PD_ERR;
    int argc = 3 + nkeys + nargs;
    size_t bytes = 0;
    for (int i = 0; i < nkeys; i++)
        bytes += keys[i].len;
    for (int i = 0; i < nargs; i++)
        bytes += args[i].len;
    script_call *c = malloc(sizeof(*c) + (size_t)argc * (sizeof(char *) + sizeof(size_t)) + bytes);
    if (!c)
        return PD_ERR;
    c->r = r;
    c->s = s;
    c->cb = cb;
    c->data = data;
    c->argc = argc;
    c->argv = (const char **)(c + 1);
    c->lens = (size_t *)(c->argv + argc);
    char *p = (char *)(c->lens + argc);
    snprintf(c->nkeys, sizeof(c->nkeys), "%d", nkeys);
    c->argv[2] = c->nkeys;
    c->lens[2] = strlen(c->nkeys);
    for (int i = 0; i < nkeys + nargs; i++) {
        pd_slice part = i < nkeys ? keys[i] : args[i - nkeys];
        if (part.len)
            memcpy(p, part.base, part.len);
        c->argv[3 + i] = p;
        c->lens[3 + i] = part.len;
        p += part.len;
    }
    unsigned long conn = pd_redis_connects(r);
    int with_text = s->text_to != r || s->text_conn != conn;
    call_set_head(c, with_text);
    if (pd_redis_cmd_argv(r, on_script_reply, c, argc, c->argv, c->lens) != PD_OK) {
        free(c);
        return PD_ERR;
    }
    if (with_text) {
        s->text_to = r;
        s->text_conn = conn;
    }
    return PD_OK;
}
