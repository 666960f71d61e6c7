/*
 * cli.h - shared pieces of the signgate command: exit codes and the
 * mapping of library statuses onto them.
 */
#ifndef SG_CLI_H
#define SG_CLI_H

#include "signgate/signgate.h"
#include "signgate/timestamp.h"

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

/* Prints "signgate CMD: <sg_last_error or strerror>" to stderr and returns
 * the exit code for st: 1 for a failed signing or verification, 2 for
 * usage, I/O and bad input. */
int cli_error(const char *cmd, sg_status st);
/* Prints a usage error and a pointer to --help; returns EXIT_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* For getopt's '?': names the option that is unknown or lacks its value. */
int cli_bad_option(const char *cmd, char **argv);

int cmd_sign(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_hash(int argc, char **argv);
int cmd_extract(int argc, char **argv);
int cmd_attach(int argc, char **argv);
int cmd_remove(int argc, char **argv);
int cmd_timestamp(int argc, char **argv);
int cmd_audit(int argc, char **argv);

/* The --timestamp options of sign and timestamp (cmd_timestamp.c).  Put
 * CLI_TIMESTAMP_OPTIONS in the getopt_long table and hand those option
 * values to cli_timestamp_option(). */
enum { CLI_OPT_TIMESTAMP = 0x100, CLI_OPT_TIMESTAMP_CA, CLI_OPT_TIMESTAMP_TIMEOUT,
       CLI_OPT_TIMESTAMP_POLICY };
#define CLI_TIMESTAMP_OPTIONS \
	{ "timestamp", required_argument, NULL, CLI_OPT_TIMESTAMP }, \
	{ "timestamp-ca", required_argument, NULL, CLI_OPT_TIMESTAMP_CA }, \
	{ "timestamp-timeout", required_argument, NULL, CLI_OPT_TIMESTAMP_TIMEOUT }

typedef struct cli_timestamp {
	const char *urls[SG_TSA_MAX_URLS];
	sg_tsa_opts o;               /* o.urls points at urls; nurls 0: none given */
	sg_timestamp_policy policy;  /* --timestamp-policy (sign only) */
	int extra_given;             /* a --timestamp-* option was given */
} cli_timestamp;

/* Help lines for the options above (not --timestamp-policy). */
#define CLI_TIMESTAMP_HELP \
"  --timestamp URL  an RFC 3161 time-stamping authority (http:// or https://);\n" \
"                   repeat it to give fallbacks, tried in order until one\n" \
"                   gives a timestamp\n" \
"  --timestamp-ca FILE\n" \
"                   PEM roots for https TSAs (default: the system store)\n" \
"  --timestamp-timeout SECS\n" \
"                   limit for one request to a TSA (default 30); a TSA that\n" \
"                   times out is not asked again, the next URL is\n"
void cli_timestamp_init(cli_timestamp *t);
/* Takes one option; EXIT_OK, or EXIT_USAGE after printing why. */
int cli_timestamp_option(cli_timestamp *t, const char *cmd, int opt, const char *arg);
/* After parsing: --timestamp-* without --timestamp, bad URLs. */
int cli_timestamp_check(const cli_timestamp *t, const char *cmd);

#endif
