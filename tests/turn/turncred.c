/* turncred — print the /api/ice_servers body that pd_turn builds, for
 * tests/turn/run.sh to hand to turnutils_uclient against a real coturn.
 * Reads the room API's own variables: PD_TURN_SECRET, PD_TURN_HOST,
 * PD_TURN_PORT, PD_TURN_TTL_S, PD_STUN_URLS. Exit 0, or 1 with a message. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "privydrop/pd_turn.h"

static unsigned long env_ulong(const char *name, unsigned long dflt)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return dflt;
    char *end = NULL;
    unsigned long n = strtoul(v, &end, 10);
    return (end && *end == '\0') ? n : dflt;
}

int main(void)
{
    pd_turn_config cfg = {
        .stun_urls = getenv("PD_STUN_URLS"),
        .host = getenv("PD_TURN_HOST"),
        .port = (uint16_t)env_ulong("PD_TURN_PORT", 0),
        .secret = getenv("PD_TURN_SECRET"),
        .ttl_s = (uint32_t)env_ulong("PD_TURN_TTL_S", 0),
    };
    const char *err = NULL;
    pd_turn *t = pd_turn_create(&cfg, &err);
    if (t == NULL) {
        fprintf(stderr, "turncred: %s\n", err);
        return 1;
    }
    json_t *body = pd_turn_ice_servers(t, (uint64_t)time(NULL));
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    int rc = 1;
    if (text != NULL && pd_turn_has_relay(t)) {
        puts(text);
        rc = 0;
    } else {
        fprintf(stderr, "turncred: no TURN entry (PD_TURN_HOST and PD_TURN_SECRET set?)\n");
    }
    free(text);
    json_decref(body);
    pd_turn_free(t);
    return rc;
}
