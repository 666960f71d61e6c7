/*
 * cmd_verify.c - `signgate verify`: every signature of a file, checked,
 * and a verdict per signature.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char verify_help[] =
"Usage: signgate verify [--ca ROOTS.pem] [--time T] FILE\n"
"\n"
"Checks every Authenticode signature of FILE (the primary one and each\n"
"nested one): the file digest matches the signed digest, the signature over\n"
"the signed attributes is valid, the signer's chain reaches a trusted root,\n"
"and the signer certificate allows code signing.\n"
"\n"
"  --ca FILE     trusted roots (PEM); default: the system trust store\n"
"  --time T      check certificate validity at T (Unix seconds) instead of now\n"
"  -q, --quiet   print nothing; the exit status tells\n"
"  -h, --help    this help\n"
"\n"
"Exit status: 0 every signature valid, 1 invalid or not signed, 2 usage,\n"
"bad input or I/O error.\n";

static void print_report(const sg_sig_report *r)
{
	printf("Signature %d (%s, certificate table entry %d)\n", r->index,
	       r->nested ? "nested" : "primary", r->entry);
	if(r->signer[0])
		printf("  Signer:       %s\n  Issuer:       %s\n", r->signer, r->issuer);
	if(r->md[0])
		printf("  Digest:       %s\n  Signed hash:  %s\n  File hash:    %s\n",
		       r->md, r->signed_digest, r->file_digest[0] ? r->file_digest : "-");
	printf("  Checks:       digest %s, signature %s, chain %s, code-signing EKU %s\n",
	       r->digest_ok ? "ok" : "FAILED", r->signature_ok ? "ok" : "FAILED",
	       r->chain_ok ? "ok" : "FAILED", r->eku_ok ? "ok" : "FAILED");
	if(r->status)
		printf("  Verdict:      INVALID: %s\n", r->reason);
	else
		printf("  Verdict:      valid\n");
}

int cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ca", required_argument, NULL, 'c' },
		{ "time", required_argument, NULL, 't' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	sg_verify_opts vo = { 0 };
	sg_sig_report reps[16];
	size_t n = 0;
	sg_file *f = NULL;
	int quiet = 0, c;
	sg_status rc;
	char *end;

	optind = 1;
	opterr = 0; /* we say it ourselves, once */
	while((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		switch(c) {
		case 'c': vo.ca_file = optarg; break;
		case 't':
			errno = 0;
			vo.at_time = strtoll(optarg, &end, 10);
			if(*end || errno || vo.at_time <= 0 || vo.at_time > 253402300799LL)
				return cli_usage("verify", "--time takes Unix seconds, not '%s'", optarg);
			break;
		case 'q': quiet = 1; break;
		case 'h': fputs(verify_help, stdout); return EXIT_OK;
		default: return cli_bad_option("verify", argv);
		}
	}
	if(optind + 1 != argc)
		return cli_usage("verify", "give exactly one file");
	rc = sg_file_open(argv[optind], &f);
	if(rc)
		return cli_error("verify", rc);
	rc = sg_verify_file(f, &vo, reps, sizeof(reps) / sizeof(reps[0]), &n);
	sg_file_close(f);
	if(!quiet) {
		if(n)
			printf("File:           %s\n", argv[optind]);
		for(size_t i = 0; i < n && i < sizeof(reps) / sizeof(reps[0]); i++)
			print_report(&reps[i]);
	}
	if(rc == SG_ERR_VERIFY) {
		if(!quiet)
			printf("Result: INVALID\n");
		return EXIT_FAILED;
	}
	if(rc)
		return cli_error("verify", rc);
	if(!quiet)
		printf("Result: valid (%zu signature%s)\n", n, n == 1 ? "" : "s");
	return EXIT_OK;
}
