/* pd_turn.h — TURN REST API credentials and the /api/ice_servers answer.
 *
 * coturn runs with `use-auth-secret` + `static-auth-secret` (the "TURN REST
 * API", draft-uberti-behave-turn-rest-00 §2.2 as implemented by coturn): it
 * accepts any username of the form "<unix expiry>:<anything>" whose expiry is
 * still in the future, when the password is
 *     base64(HMAC-SHA1(secret, username)).
 * The room API therefore never stores a credential: it mints one per request.
 *
 * Two layers:
 *   - pd_turn_hmac / pd_turn_credential_make: pure functions, no state.
 *   - pd_turn (create/free): a validated copy of the TURN configuration, made
 *     once at start-up, from which pd_turn_ice_servers builds the JSON body
 *     of GET /api/ice_servers (docs/wire-protocol.md §Room API) on every
 *     request.
 * Nothing here prints: errors are returned (PD_ERR / NULL + a static message). */
#ifndef PD_TURN_H
#define PD_TURN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "privydrop/pd_common.h"

/* base64 of a 20-byte SHA-1 MAC: 28 characters (one '=' of padding). */
#define PD_TURN_CREDENTIAL_LEN 28
/* Random part of the username: characters of PD_ALPHABET_ALNUM (~95 bits). */
#define PD_TURN_ID_LEN 16
/* "<20 digits max>:<id>" + NUL fits comfortably. */
#define PD_TURN_USERNAME_MAX 64

#define PD_TURN_DEFAULT_PORT 3478
#define PD_TURN_DEFAULT_TLS_PORT 5349
#define PD_TURN_DEFAULT_TTL_S 86400u
/* Bounds for the lifetime: at least a minute, at most a week. */
#define PD_TURN_MIN_TTL_S 60u
#define PD_TURN_MAX_TTL_S 604800u
/* At most this many PD_STUN_URLS entries. */
#define PD_TURN_MAX_STUN_URLS 8

/* One minted credential. Plain value type: no heap, nothing to free. */
typedef struct pd_turn_credential {
    char username[PD_TURN_USERNAME_MAX];           /* "<expires_at>:<id>", NUL-terminated */
    char credential[PD_TURN_CREDENTIAL_LEN + 1];  /* base64(HMAC-SHA1(secret, username)) */
    uint64_t expires_at;                           /* unix seconds: now + ttl */
} pd_turn_credential;

/* base64(HMAC-SHA1(secret, username)) into `out` (NUL-terminated).
 * secret must not be empty. PD_OK, or PD_ERR (bad arguments, OpenSSL failure). */
int pd_turn_hmac(pd_slice secret, pd_slice username, char out[PD_TURN_CREDENTIAL_LEN + 1]);

/* Mint a credential valid until now_s + ttl_s. The username's random part is
 * `id` when given (1..PD_TURN_ID_LEN characters of [A-Za-z0-9_-], for tests
 * and tools), else PD_TURN_ID_LEN fresh characters from the kernel CSPRNG
 * (getrandom, through pd_id_random). PD_OK, or PD_ERR (empty secret, bad id,
 * ttl_s == 0, CSPRNG or OpenSSL failure); `out` is wiped on failure. */
int pd_turn_credential_make(pd_turn_credential *out, pd_slice secret, uint64_t now_s,
                            uint32_t ttl_s, const char *id);

/* What the room API reads from its environment (the caller does the reading;
 * this header knows no getenv). All strings are borrowed for the duration of
 * pd_turn_create only: it copies what it keeps. */
typedef struct pd_turn_config {
    const char *stun_urls; /* PD_STUN_URLS: comma-separated "stun:"/"stuns:" URLs, or NULL/"" */
    const char *host;      /* PD_TURN_HOST: public DNS name or IP of coturn, or NULL/"" */
    uint16_t port;         /* PD_TURN_PORT: STUN/TURN over UDP and TCP; 0 = 3478 */
    uint16_t tls_port;     /* PD_TURNS_PORT: TURN over TLS; 0 = 5349; used only when tls */
    int tls;               /* PD_TURN_TLS=1: also offer "turns:" */
    const char *secret;    /* PD_TURN_SECRET: shared with coturn's static-auth-secret, or NULL/"" */
    uint32_t ttl_s;        /* PD_TURN_TTL_S: credential lifetime; 0 = 86400 */
} pd_turn_config;

/* Validated, immutable TURN settings. Opaque; owned by whoever created it. */
typedef struct pd_turn pd_turn;

/* Validate `cfg` and keep a private copy (the secret is wiped on free).
 * Rules:
 *   - STUN URLs: PD_STUN_URLS when set; otherwise "stun:<host>:<port>" when a
 *     host is set (coturn answers STUN too); otherwise none: we never point
 *     browsers at a third party by default.
 *   - TURN is offered only when both host and secret are set; a secret without
 *     a host (or a host without a secret, for a TURN answer) is not an error
 *     but gives a STUN-only answer; pd_turn_has_relay tells which.
 *   - host: 1..253 characters of [A-Za-z0-9.-], or an IPv6 literal (with or
 *     without brackets); ttl within [PD_TURN_MIN_TTL_S, PD_TURN_MAX_TTL_S].
 * Returns NULL on invalid input or OOM and, when err is not NULL, sets *err to
 * a static English message (never NULL then). */
pd_turn *pd_turn_create(const pd_turn_config *cfg, const char **err);
void pd_turn_free(pd_turn *t);

/* 1 when pd_turn_ice_servers will include a TURN entry with credentials. */
int pd_turn_has_relay(const pd_turn *t);

/* Credential lifetime in seconds (the "ttl" of the answer). */
uint32_t pd_turn_ttl(const pd_turn *t);

/* Build the body of GET /api/ice_servers at time now_s (unix seconds):
 *   {"iceServers":[{"urls":["stun:…",…]},
 *                  {"urls":["turn:H:P?transport=udp","turn:H:P?transport=tcp",
 *                           "turns:H:TP?transport=tcp"],   <- only when tls
 *                   "username":"<now+ttl>:<id>","credential":"<base64>"}],
 *    "ttl":<ttl>}
 * The STUN entry is left out when there are no STUN URLs, the TURN entry when
 * there is no relay. Returns a new reference (caller json_decref's it), or
 * NULL on OOM / CSPRNG / OpenSSL failure. */
json_t *pd_turn_ice_servers(const pd_turn *t, uint64_t now_s);

#endif
