/* pd_config.h — configuration from the environment (12-factor). Values are
 * validated and bounded here so a typo fails start-up with a clear message
 * instead of running with a surprising value. */
#ifndef PD_CONFIG_H
#define PD_CONFIG_H

#include <stddef.h>

/* getenv(name) if set and non-empty, else def (borrowed, not copied). */
const char *pd_env_str(const char *name, const char *def);

/* Integer in [min, max]; def when unset or empty. PD_ERR if set but not a
 * number in range; *err then names the problem (static text). */
int pd_env_long(const char *name, long def, long min, long max, long *out, const char **err);

/* "1", "true", "yes", "on" (any case) → 1; unset or anything else → 0. */
int pd_env_flag(const char *name);

/* Every problem found in the environment, collected so that one run names
 * them all (start-up logs each; --check-config prints each) instead of the
 * operator fixing them one restart at a time. Bounded: past
 * PD_CONFIG_MAX_PROBLEMS further problems are only counted. */
#define PD_CONFIG_MAX_PROBLEMS 64
typedef struct pd_config_check pd_config_check;

/* NULL on OOM. */
pd_config_check *pd_config_check_create(void);
void pd_config_check_free(pd_config_check *c);

/* Records that `variable` is wrong. `value` (may be NULL: secrets are never
 * shown) is quoted with non-printable bytes escaped and cut at 64 bytes;
 * every string is copied. Always returns PD_ERR, for `return ...add(...)`. */
int pd_config_check_add(pd_config_check *c, const char *variable, const char *value, const char *error);

/* Problems recorded, including those past the bound. */
size_t pd_config_check_count(const pd_config_check *c);

/* The i-th problem (i < min(count, PD_CONFIG_MAX_PROBLEMS)) as one line,
 * `VARIABLE="value": error`; owned by c. */
const char *pd_config_check_line(const pd_config_check *c, size_t i);

/* pd_env_long, but a problem is recorded in c (naming the allowed range)
 * and *out is then def, so checking can go on. PD_OK or PD_ERR. */
int pd_config_long(pd_config_check *c, const char *name, long def, long min, long max, long *out);

/* PD_LOG_LEVEL: unset/empty, or one of debug, info, warn, error. */
int pd_config_log_level(pd_config_check *c);

/* PD_LISTEN_ADDR (default def): an IPv4 or IPv6 literal, as the listener
 * needs. The address (borrowed from the environment or def) goes to *out. */
int pd_config_listen_addr(pd_config_check *c, const char *def, const char **out);

/* The command line of our daemons, which take no arguments but --help
 * (-h), --version and --check-config: prints usage or "<program> <version>"
 * and returns the exit status (0, or 2 for anything else, with the usage on
 * stderr); returns PD_CLI_RUN when there are no arguments and the program
 * should run, PD_CLI_CHECK_CONFIG for --check-config. */
#define PD_CLI_RUN (-1)
#define PD_CLI_CHECK_CONFIG (-2)
int pd_cli_handle(int argc, char **argv, const char *program, const char *usage);

/* The end of a configuration check: with check_only (--check-config), every
 * problem on stderr as "<program>: <line>" (or "<program>: configuration
 * ok") and returns 0 or 2, the exit status; otherwise logs each problem as
 * an error and returns 2 if there were any, -1 if start-up may go on. */
int pd_config_check_report(const pd_config_check *c, const char *program, int check_only);

#endif
