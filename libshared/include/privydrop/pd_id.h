/* pd_id.h — random identifiers from the kernel CSPRNG (getrandom). */
#ifndef PD_ID_H
#define PD_ID_H

#include <stddef.h>

#include "privydrop/pd_common.h"

#define PD_SOCKET_ID_LEN 20
/* A worker's tag: PD_ID_TAG_LEN characters of PD_ALPHABET_ALNUM, random at
 * start. The sockets a worker opens carry it in front of their ids, so any
 * instance can tell where a socket lives from its id alone
 * (docs/architecture.md §Signals). */
#define PD_ID_TAG_LEN 8
/* The longest socket id this software makes: a tag, then the random part. */
#define PD_SOCKET_ID_MAX (PD_ID_TAG_LEN + PD_SOCKET_ID_LEN)

/* 20 characters of base64url (15 random bytes) + NUL. PD_OK or PD_ERR if the
 * CSPRNG failed. */
int pd_id_socket(char out[PD_SOCKET_ID_LEN + 1]);

/* A socket id of worker `tag`: the tag's PD_ID_TAG_LEN characters, then
 * pd_id_socket's 20 + NUL. A tag that is not PD_ID_TAG_LEN alphanumerics
 * (NULL, "") gives a plain 20-character id. PD_OK or PD_ERR. */
int pd_id_socket_tagged(char out[PD_SOCKET_ID_MAX + 1], const char *tag);

/* 1 if `id` has the shape pd_id_socket_tagged gives with a tag (then *tag
 * is its first PD_ID_TAG_LEN characters), 0 if not (an id of another shape,
 * e.g. one made by an instance that predates tags). */
int pd_id_tag_of(pd_slice id, pd_slice *tag);

/* `n` characters drawn uniformly (rejection sampling, no modulo bias) from
 * `alphabet` + NUL; out must hold n + 1 bytes. PD_OK or PD_ERR. */
int pd_id_random(char *out, size_t n, const char *alphabet);

/* Fill buf with random bytes. PD_OK or PD_ERR. */
int pd_random_bytes(void *buf, size_t n);

#define PD_ALPHABET_DIGITS "0123456789"
#define PD_ALPHABET_ALNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

#endif
