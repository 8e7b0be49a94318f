/* pd_id.h — random identifiers from the kernel CSPRNG (getrandom). */
#ifndef PD_ID_H
#define PD_ID_H

#include <stddef.h>

#define PD_SOCKET_ID_LEN 20

/* 20 characters of base64url (15 random bytes) + NUL. PD_OK or PD_ERR if the
 * CSPRNG failed. */
int pd_id_socket(char out[PD_SOCKET_ID_LEN + 1]);

/* `n` characters drawn uniformly (rejection sampling, no modulo bias) from
 * `alphabet` + NUL; out must hold n + 1 bytes. PD_OK or PD_ERR. */
int pd_id_random(char *out, size_t n, const char *alphabet);

/* Fill buf with random bytes. PD_OK or PD_ERR. */
int pd_random_bytes(void *buf, size_t n);

#define PD_ALPHABET_DIGITS "0123456789"
#define PD_ALPHABET_ALNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

#endif
