/*
 * cmd_audit.c - `signgate audit verify FILE`: checks the hash chain of the
 * signing service's audit log (src/server/audit.h; format in docs/API.md)
 * and names the first line that was changed, removed or inserted.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "audit.h"
#include "cli.h"

static const char audit_help[] =
"Usage: signgate audit verify [--json] FILE\n"
"\n"
"Checks the audit log FILE that the signing service writes ([service]\n"
"audit_log): every line a complete record, the first with seq 1 and the\n"
"genesis prev (64 zeros), each next seq one more, and each prev the SHA-256\n"
"of the line before.  Prints the number of records and the last seq and\n"
"hash, or the first bad line and what is wrong with it.\n"
"\n"
"A chain cannot show that lines were cut off at its end: compare the last\n"
"seq and hash with a copy kept elsewhere (the service logs them at start\n"
"and at stop).\n"
"\n"
"  --json        print the result as one JSON object on standard output\n"
"  -h, --help    this help\n"
"\n"
"Exit status: 0 intact, 1 the chain is broken, 2 usage or I/O error.\n";

static void audit_print_json(const char *file, sg_status rc, const sg_audit_check *res)
{
	json_t *j = json_pack("{s:s, s:b, s:I, s:I, s:s}", "file", file, "intact", rc == SG_OK,
	                      "records", (json_int_t)res->records,
	                      "last_seq", (json_int_t)res->last_seq, "last_hash", res->last_hash);

	if(j && rc) {
		json_object_set_new(j, "line", json_integer((json_int_t)res->bad_line));
		json_object_set_new(j, "problem", json_string(res->problem));
	}
	if(j) {
		json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
	}
	json_decref(j);
}

int cmd_audit(int argc, char **argv)
{
	enum { OPT_JSON = 0x200 };
	static const struct option opts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	sg_audit_check res;
	int json = 0, c;
	sg_status rc;

	optind = 1;
	opterr = 0; /* we say it ourselves, once */
	while((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch(c) {
		case 'h': fputs(audit_help, stdout); return EXIT_OK;
		default: return cli_bad_option("audit", argv);
		}
	}
	if(optind == argc)
		return cli_usage("audit", "give a subcommand: verify FILE");
	if(strcmp(argv[optind], "verify"))
		return cli_usage("audit", "unknown subcommand '%s' (there is: verify)", argv[optind]);
	argc -= optind;
	argv += optind;
	optind = 1;
	while((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch(c) {
		case OPT_JSON: json = 1; break;
		case 'h': fputs(audit_help, stdout); return EXIT_OK;
		default: return cli_bad_option("audit verify", argv);
		}
	}
	if(optind + 1 != argc)
		return cli_usage("audit verify", "give exactly one audit log");
	rc = sg_audit_verify(argv[optind], &res);
	if(rc && rc != SG_ERR_VERIFY)
		return cli_error("audit verify", rc);
	if(json) {
		audit_print_json(argv[optind], rc, &res);
	} else if(rc) {
		printf("audit log BROKEN: %s\n", res.problem);
		printf("intact before line %llu: %llu record%s, last seq %llu, last hash %s\n",
		       (unsigned long long)res.records + 1, (unsigned long long)res.records,
		       res.records == 1 ? "" : "s", (unsigned long long)res.last_seq, res.last_hash);
	} else {
		printf("audit log intact: %llu record%s, last seq %llu, last hash %s\n",
		       (unsigned long long)res.records, res.records == 1 ? "" : "s",
		       (unsigned long long)res.last_seq, res.last_hash);
	}
	return rc ? EXIT_FAILED : EXIT_OK;
}
