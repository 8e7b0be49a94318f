/* id.c — random identifiers from the kernel CSPRNG.
 *
 * Socket ids are created on every connection, so random bytes are fetched
 * from getrandom(2) in blocks and handed out from a small buffer. This buffer
 * is the one piece of process-wide mutable state we allow: it is per thread,
 * wiped as it is consumed, and dropped in a forked child so two processes
 * never hand out the same bytes. */
#include "privydrop/pd_id.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>

#include "privydrop/pd_common.h"

#define ID_POOL_SIZE 256

typedef struct id_pool {
    unsigned char bytes[ID_POOL_SIZE]; /* random bytes; the last `avail` are unused */
    size_t avail;                      /* unused bytes left; 0 (all-zero pool) = empty */
} id_pool;

static _Thread_local id_pool id_tls_pool;
static pthread_once_t id_atfork_once = PTHREAD_ONCE_INIT;

/* Runs in the child after fork(), in the (only) thread that forked: that
 * thread's pool is a copy of the parent's and must not be reused. */
static void id_atfork_child(void)
{
    explicit_bzero(&id_tls_pool, sizeof id_tls_pool);
}

static void id_register_atfork(void)
{
    (void)pthread_atfork(NULL, NULL, id_atfork_child);
}

/* getrandom(2) without flags blocks only until the pool is initialised at
 * boot; requests up to 256 bytes are never short once it is, but EINTR and
 * short reads are still handled for larger ones. */
static int id_getrandom(unsigned char *buf, size_t n)
{
    while (n > 0) {
        ssize_t r = getrandom(buf, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return PD_ERR;
        }
        buf += r;
        n -= (size_t)r;
    }
    return PD_OK;
}

int pd_random_bytes(void *buf, size_t n)
{
    unsigned char *out = buf;
    if (n == 0)
        return PD_OK;
    if (out == NULL)
        return PD_ERR;
    (void)pthread_once(&id_atfork_once, id_register_atfork);
    /* Large requests go straight to the kernel rather than draining the pool. */
    if (n > ID_POOL_SIZE / 2)
        return id_getrandom(out, n);

    id_pool *p = &id_tls_pool;
    while (n > 0) {
        if (p->avail == 0) {
            if (id_getrandom(p->bytes, ID_POOL_SIZE) != PD_OK)
                return PD_ERR;
            p->avail = ID_POOL_SIZE;
        }
        size_t take = PD_MIN(n, p->avail);
        unsigned char *src = p->bytes + (ID_POOL_SIZE - p->avail);
        memcpy(out, src, take);
        explicit_bzero(src, take);
        p->avail -= take;
        out += take;
        n -= take;
    }
    return PD_OK;
}

static const char id_b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 15 bytes are 120 bits, exactly 20 base64 digits, so no padding is needed. */
int pd_id_socket(char out[PD_SOCKET_ID_LEN + 1])
{
    unsigned char raw[PD_SOCKET_ID_LEN / 4 * 3];
    if (pd_random_bytes(raw, sizeof raw) != PD_OK)
        return PD_ERR;
    char *w = out;
    for (size_t i = 0; i < sizeof raw; i += 3) {
        unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
        *w++ = id_b64url[(v >> 18) & 63];
        *w++ = id_b64url[(v >> 12) & 63];
        *w++ = id_b64url[(v >> 6) & 63];
        *w++ = id_b64url[v & 63];
    }
    *w = '\0';
    explicit_bzero(raw, sizeof raw);
    return PD_OK;
}

static int id_is_tag(const char *s, size_t n)
{
    if (n != PD_ID_TAG_LEN)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return 0;
    }
    return 1;
}

int pd_id_socket_tagged(char out[PD_SOCKET_ID_MAX + 1], const char *tag)
{
    if (!tag || !id_is_tag(tag, strnlen(tag, PD_ID_TAG_LEN + 1)))
        return pd_id_socket(out);
    memcpy(out, tag, PD_ID_TAG_LEN);
    return pd_id_socket(out + PD_ID_TAG_LEN);
}

int pd_id_tag_of(pd_slice id, pd_slice *tag)
{
    /* The random part is base64url, which pd_id_valid checks where ids
     * come in; the length and an alphanumeric head are what tell the
     * shapes apart (a plain id is 20 characters). */
    if (id.len != PD_SOCKET_ID_MAX || !id_is_tag(id.base, PD_ID_TAG_LEN))
        return 0;
    *tag = pd_slice_make(id.base, PD_ID_TAG_LEN);
    return 1;
}

int pd_id_random(char *out, size_t n, const char *alphabet)
{
    if (out == NULL || alphabet == NULL)
        return PD_ERR;
    size_t k = strlen(alphabet);
    if (k == 0 || k > 256)
        return PD_ERR;
    /* Bytes at or above `limit` would favour the first 256 % k symbols;
     * they are thrown away and redrawn instead. */
    unsigned limit = 256u - (256u % (unsigned)k);
    size_t done = 0;
    while (done < n) {
        unsigned char chunk[64];
        size_t want = PD_MIN(n - done, sizeof chunk);
        if (pd_random_bytes(chunk, want) != PD_OK)
            return PD_ERR;
        for (size_t i = 0; i < want && done < n; i++) {
            if (chunk[i] < limit)
                out[done++] = alphabet[chunk[i] % k];
        }
        explicit_bzero(chunk, sizeof chunk);
    }
    out[n] = '\0';
    return PD_OK;
}
