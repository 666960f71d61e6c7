/*
 * cli.h - shared pieces of the signgate command: exit codes and the
 * mapping of library statuses onto them.
 */
#ifndef SG_CLI_H
#define SG_CLI_H

#include "signgate/signgate.h"

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

#endif
