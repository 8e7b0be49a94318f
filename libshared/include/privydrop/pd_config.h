/* pd_config.h — configuration from the environment (12-factor). Values are
 * validated and bounded here so a typo fails start-up with a clear message
 * instead of running with a surprising value. */
#ifndef PD_CONFIG_H
#define PD_CONFIG_H

/* getenv(name) if set and non-empty, else def (borrowed, not copied). */
const char *pd_env_str(const char *name, const char *def);

/* Integer in [min, max]; def when unset or empty. PD_ERR if set but not a
 * number in range; *err then names the problem (static text). */
int pd_env_long(const char *name, long def, long min, long max, long *out, const char **err);

/* "1", "true", "yes", "on" (any case) → 1; unset or anything else → 0. */
int pd_env_flag(const char *name);

/* The command line of our daemons, which take no arguments but --help
 * (-h) and --version: prints usage or "<program> <version>" and returns the
 * exit status (0, or 2 for anything else, with the usage on stderr);
 * returns -1 when there are no arguments and the program should run. */
int pd_cli_handle(int argc, char **argv, const char *program, const char *usage);

#endif
