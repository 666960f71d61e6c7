/*
 * main.c - the signgate command: dispatches to a subcommand.  Each
 * subcommand parses its own options and calls the library; nothing here
 * knows about file formats or keys.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "servers.h"

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "sign", cmd_sign, "sign a file with a key in a PKCS#11 token or a key file" },
	{ "verify", cmd_verify, "check a file's signatures as Windows does: digest, signature, chain, EKU, timestamp, revocation" },
	{ "hash", cmd_hash, "print a file's Authenticode digest" },
	{ "extract-signature", cmd_extract, "write a file's signature (DER PKCS#7) to a file" },
	{ "attach-signature", cmd_attach, "embed a detached signature in a file" },
	{ "remove-signature", cmd_remove, "write a file without its signature" },
	{ "timestamp", cmd_timestamp, "add an RFC 3161 timestamp to a signed file" },
	{ "audit", cmd_audit, "check the signing service's audit log (audit verify FILE)" },
	{ "service", sg_service_main, "run the signing service (HTTPS, keys in an HSM)" },
	{ "serve", sg_serve_main, "run the download server (signs files as they are downloaded)" },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

int cli_error(const char *cmd, sg_status st)
{
	const char *detail = sg_last_error();

	fprintf(stderr, "signgate %s: %s\n", cmd, *detail ? detail : sg_strerror(st));
	switch(st) {
	case SG_OK:
		return EXIT_OK;
	case SG_ERR_CRYPTO: case SG_ERR_HSM: case SG_ERR_PIN: case SG_ERR_KEY:
	case SG_ERR_NETWORK: case SG_ERR_REMOTE: case SG_ERR_VERIFY:
	case SG_ERR_NOT_SIGNED: case SG_ERR_NOT_FOUND:
		return EXIT_FAILED;
	default:
		return EXIT_USAGE;
	}
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "signgate %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'signgate %s --help'.\n", cmd);
	return EXIT_USAGE;
}

int cli_bad_option(const char *cmd, char **argv)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "?";

	if(optopt && !strchr(arg, optopt))
		return cli_usage(cmd, "unknown option '-%c'", optopt);
	return cli_usage(cmd, "unknown option, or one missing its value: '%s'", arg);
}

static void usage(FILE *out)
{
	fprintf(out, "Usage: signgate COMMAND [OPTIONS] [ARGS]\n\n"
	             "Authenticode signing for Windows PE files (.exe, .dll, .sys, .efi)\n"
	             "with keys in a PKCS#11 token (HSM, USB token, SoftHSM2) or a key file.\n\n"
	             "Commands:\n");
	for(size_t i = 0; i < NCOMMANDS; i++)
		fprintf(out, "  %-18s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n'signgate COMMAND --help' describes a command.\n"
	             "Exit status: 0 success, 1 signing or verification failed,\n"
	             "2 usage error, bad input or I/O error.\n");
}

int main(int argc, char **argv)
{
	if(argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if(!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return EXIT_OK;
	}
	if(!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("signgate %s\n", SG_VERSION);
		return EXIT_OK;
	}
	for(size_t i = 0; i < NCOMMANDS; i++)
		if(!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "signgate: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
