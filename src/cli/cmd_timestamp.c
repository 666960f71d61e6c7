/*
 * cmd_timestamp.c - `signgate timestamp`: adds an RFC 3161 timestamp to an
 * already signed file; and the --timestamp options that `signgate sign`
 * shares with it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char timestamp_help[] =
"Usage: signgate timestamp --timestamp URL [--timestamp URL ...] [OPTIONS] IN -o OUT\n"
"\n"
"Adds an RFC 3161 timestamp to the signature of the signed file IN, replacing\n"
"any timestamp it had, and writes the result to OUT (through a temporary file\n"
"and a rename: OUT is never half-written; OUT may be IN).  The file is not\n"
"signed again: its signature must match its contents.  Only the primary\n"
"signature is timestamped; nested signatures are kept as they are.\n"
"Windows uses the timestamp to accept the signature after the signing\n"
"certificate has expired.\n"
"\n"
CLI_TIMESTAMP_HELP
"  -o, --out OUT    output file (required)\n"
"  -h, --help       this help\n"
"\n"
"Requests to the TSAs honour the http_proxy, https_proxy (HTTPS_PROXY) and\n"
"no_proxy environment variables, as curl does; https:// TSAs are reached\n"
"through the proxy by CONNECT.  A proxy's user and password go in the\n"
"variable's URL: https_proxy=http://USER:PASSWORD@HOST:PORT.\n"
"\n"
"Exit status: 0 timestamped, 1 no TSA gave a timestamp or the file is not\n"
"signed (or its signature does not match it), 2 usage, bad input or I/O error.\n";

void cli_timestamp_init(cli_timestamp *t)
{
	memset(t, 0, sizeof(*t));
	t->o.urls = t->urls;
	t->o.retries = 1;
	t->policy = SG_TIMESTAMP_FAIL;
}

int cli_timestamp_option(cli_timestamp *t, const char *cmd, int opt, const char *arg)
{
	char *end;
	long v;

	switch(opt) {
	case CLI_OPT_TIMESTAMP:
		if(t->o.nurls == SG_TSA_MAX_URLS)
			return cli_usage(cmd, "at most %d --timestamp URLs", SG_TSA_MAX_URLS);
		t->urls[t->o.nurls++] = arg;
		return EXIT_OK;
	case CLI_OPT_TIMESTAMP_CA:
		t->o.ca_file = arg;
		t->extra_given = 1;
		return EXIT_OK;
	case CLI_OPT_TIMESTAMP_TIMEOUT:
		errno = 0;
		v = strtol(arg, &end, 10);
		if(errno || end == arg || *end || v < 1 || v > 600)
			return cli_usage(cmd, "--timestamp-timeout must be 1 to 600 seconds, not '%s'",
			                 arg);
		t->o.timeout = v;
		t->o.connect_timeout = v < 10 ? v : 10;
		t->extra_given = 1;
		return EXIT_OK;
	case CLI_OPT_TIMESTAMP_POLICY:
		if(!strcmp(arg, "fail"))
			t->policy = SG_TIMESTAMP_FAIL;
		else if(!strcmp(arg, "skip"))
			t->policy = SG_TIMESTAMP_SKIP;
		else
			return cli_usage(cmd, "--timestamp-policy must be 'fail' or 'skip', not '%s'",
			                 arg);
		t->extra_given = 1;
		return EXIT_OK;
	}
	return cli_usage(cmd, "bad option");
}

int cli_timestamp_check(const cli_timestamp *t, const char *cmd)
{
	if(!t->o.nurls) {
		if(t->extra_given)
			return cli_usage(cmd, "the --timestamp-* options need --timestamp URL");
		return EXIT_OK;
	}
	if(sg_tsa_opts_check(&t->o))
		return cli_usage(cmd, "%s", sg_last_error());
	return EXIT_OK;
}

int cmd_timestamp(int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_TIMESTAMP_OPTIONS,
		{ "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *out = NULL;
	cli_timestamp ts;
	sg_status rc;
	int c;

	cli_timestamp_init(&ts);
	optind = 1;
	opterr = 0; /* we say it ourselves, once */
	while((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch(c) {
		case CLI_OPT_TIMESTAMP: case CLI_OPT_TIMESTAMP_CA: case CLI_OPT_TIMESTAMP_TIMEOUT:
			if(cli_timestamp_option(&ts, "timestamp", c, optarg))
				return EXIT_USAGE;
			break;
		case 'o': out = optarg; break;
		case 'h':
			fputs(timestamp_help, stdout);
			return EXIT_OK;
		default: return cli_bad_option("timestamp", argv);
		}
	}
	if(optind + 1 != argc)
		return cli_usage("timestamp", "give exactly one input file");
	if(!out)
		return cli_usage("timestamp", "no output file: give -o OUT");
	if(!ts.o.nurls)
		return cli_usage("timestamp", "no time-stamping authority: give --timestamp URL");
	if(cli_timestamp_check(&ts, "timestamp"))
		return EXIT_USAGE;
	rc = sg_timestamp_file(argv[optind], out, &ts.o);
	if(rc)
		return cli_error("timestamp", rc);
	return EXIT_OK;
}
