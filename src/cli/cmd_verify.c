/*
 * cmd_verify.c - `signgate verify`: every signature of a file, checked,
 * and a verdict per signature, as text or (--json) as one JSON object.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"

#define MAX_CRL_FILES 32

static const char verify_help[] =
"Usage: signgate verify [--ca ROOTS.pem] [--tsa-ca ROOTS.pem] [--time T]\n"
"                       [--crl FILE]... [--fetch-crl] [--json] FILE\n"
"\n"
"Checks every Authenticode signature of FILE (the primary one and each\n"
"nested one) and reaches the verdict Windows reaches:\n"
"  - the file digest matches the signed digest, and the signature over the\n"
"    signed attributes is valid;\n"
"  - a timestamp, if there is one (RFC 3161 token or legacy Authenticode\n"
"    countersignature), covers this signature, its signature is valid, and\n"
"    the TSA's chain reaches a trusted root with the timeStamping usage;\n"
"  - the signer's chain reaches a trusted root and was valid at the\n"
"    timestamp's time (without a valid timestamp: now, or T), and the\n"
"    signer certificate allows code signing;\n"
"  - the chain is not revoked: answered from CRLs as \"revoked\" (invalid),\n"
"    \"not revoked\" or \"unknown\" (no current CRL for some certificate;\n"
"    reported, but not a failure, as Windows treats an offline check).\n"
"\n"
"  --ca FILE      trusted roots (PEM); every certificate in it is a trust\n"
"                 anchor; default: the system trust store\n"
"  --tsa-ca FILE  trusted roots for timestamps (default: those of --ca)\n"
"  --time T       check validity at T instead of now, for signatures without\n"
"                 a timestamp: ISO 8601 UTC (2040-01-01T00:00:00Z) or Unix\n"
"                 seconds\n"
"  --crl FILE     CRLs (PEM, or one DER), repeatable\n"
"  --fetch-crl    fetch missing CRLs from the certificates' CRL distribution\n"
"                 points over HTTP or HTTPS (honours http_proxy,\n"
"                 https_proxy and no_proxy; a proxy's user and password go\n"
"                 in its URL: http://USER:PASSWORD@HOST:PORT)\n"
"  --json         print the verdict as JSON on standard output\n"
"  -q, --quiet    print nothing; the exit status tells\n"
"  -h, --help     this help\n"
"\n"
"Exit status: 0 every signature valid, 1 invalid or not signed, 2 usage,\n"
"bad input or I/O error.\n";

static const char *iso(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if(!gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "%lld", (long long)t);
	return buf;
}

/* ISO 8601 UTC: YYYY-MM-DDTHH:MM:SSZ (or YYYY-MM-DD, midnight), or Unix
 * seconds.  0 if it is neither or out of range. */
static int64_t parse_time(const char *s)
{
	int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
	struct tm tm = { 0 }, back;
	time_t t;
	char *end;

	if(isdigit((unsigned char)s[0]) && !strchr(s, '-')) {
		long long v;
		errno = 0;
		v = strtoll(s, &end, 10);
		return *end || errno || v <= 0 || v > 253402300799LL ? 0 : (int64_t)v;
	}
	if(sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
	   s[n]) {
		n = 0;
		h = mi = sec = 0;
		if(sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || s[n] || n != 10)
			return 0;
	}
	if(y < 1970 || y > 9999)
		return 0;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	/* timegm normalises 2040-02-30 to March: refuse what moved. */
	if(t <= 0 || !gmtime_r(&t, &back) || back.tm_year != y - 1900 || back.tm_mon != mo - 1 ||
	   back.tm_mday != d || back.tm_hour != h || back.tm_min != mi || back.tm_sec != sec)
		return 0;
	return (int64_t)t;
}

static void print_report(const sg_sig_report *r)
{
	char t1[32], t2[32];

	printf("Signature %d (%s, certificate table entry %d)\n", r->index,
	       r->nested ? "nested" : "primary", r->entry);
	if(r->signer[0])
		printf("  Signer:       %s\n  Issuer:       %s\n", r->signer, r->issuer);
	if(r->md[0])
		printf("  Digest:       %s\n  Signed hash:  %s\n  File hash:    %s\n",
		       r->md, r->signed_digest, r->file_digest[0] ? r->file_digest : "-");
	if(r->ts_kind == SG_TS_NONE)
		printf("  Timestamp:    none\n");
	else
		printf("  Timestamp:    %s, %s, TSA %s: %s\n",
		       r->ts_kind == SG_TS_RFC3161 ? "RFC 3161" : "countersignature",
		       r->ts_time ? iso(r->ts_time, t1, sizeof(t1)) : "no time",
		       r->ts_signer[0] ? r->ts_signer : "?", r->ts_ok ? "ok" : "INVALID");
	if(r->signer[0]) {
		printf("  Validity:     checked at %s (%s)\n", iso(r->checked_at, t2, sizeof(t2)),
		       r->ts_ok && r->checked_at == r->ts_time ? "the timestamp's time"
		                                               : "no valid timestamp");
		printf("  Revocation:   %s: %s\n", sg_revocation_name(r->revocation),
		       r->revocation_detail);
	}
	printf("  Checks:       digest %s, signature %s, chain %s, code-signing EKU %s\n",
	       r->digest_ok ? "ok" : "FAILED", r->signature_ok ? "ok" : "FAILED",
	       r->chain_ok ? "ok" : "FAILED", r->eku_ok ? "ok" : "FAILED");
	if(r->status)
		printf("  Verdict:      INVALID: %s\n", r->reason);
	else
		printf("  Verdict:      valid\n");
}

static json_t *str_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

static json_t *json_report(const sg_sig_report *r)
{
	char t1[32], t2[32];

	return json_pack("{s:i, s:i, s:b, s:s, s:o, s:o, s:o, s:o, s:{s:o, s:o}, "
	                 "s:b, s:b, s:b, s:b, s:o, s:{s:s, s:o, s:o, s:b}, s:s, "
	                 "s:{s:s, s:s}}",
	                 "index", r->index,
	                 "entry", r->entry,
	                 "nested", r->nested,
	                 "status", r->status ? "invalid" : "valid",
	                 "reason", str_or_null(r->reason),
	                 "md", str_or_null(r->md),
	                 "signer", str_or_null(r->signer),
	                 "issuer", str_or_null(r->issuer),
	                 "digests",
	                   "signed", str_or_null(r->signed_digest),
	                   "file", str_or_null(r->file_digest),
	                 "digest_ok", r->digest_ok,
	                 "signature_ok", r->signature_ok,
	                 "chain_ok", r->chain_ok,
	                 "eku_ok", r->eku_ok,
	                 "program_name", str_or_null(r->program_name),
	                 "timestamp",
	                   "kind", sg_ts_kind_name(r->ts_kind),
	                   "time", r->ts_time ? json_string(iso(r->ts_time, t1, sizeof(t1)))
	                                      : json_null(),
	                   "tsa", str_or_null(r->ts_signer),
	                   "ok", r->ts_ok,
	                 "checked_at", iso(r->checked_at, t2, sizeof(t2)),
	                 "revocation",
	                   "status", sg_revocation_name(r->revocation),
	                   "detail", r->revocation_detail);
}

/* The whole verdict as one JSON object on stdout.  error: the message of
 * a verification that could not run (NULL otherwise). */
static void print_json(const char *file, sg_status rc, const sg_sig_report *reps,
                       size_t n, const char *error)
{
	json_t *sigs = json_array(), *root;
	const char *result = rc == SG_OK ? "valid" : rc == SG_ERR_VERIFY ? "invalid"
	                   : rc == SG_ERR_NOT_SIGNED ? "not signed" : "error";

	for(size_t i = 0; sigs && i < n; i++)
		json_array_append_new(sigs, json_report(&reps[i]));
	root = json_pack("{s:s, s:b, s:s, s:o, s:I, s:o}", "file", file, "valid", rc == SG_OK,
	                 "result", result, "error", str_or_null(error), "count",
	                 (json_int_t)n, "signatures", sigs ? sigs : json_array());
	if(root) {
		json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
	}
	json_decref(root);
}

int cmd_verify(int argc, char **argv)
{
	enum { OPT_TSA_CA = 0x200, OPT_CRL, OPT_FETCH_CRL, OPT_JSON };
	static const struct option opts[] = {
		{ "ca", required_argument, NULL, 'c' },
		{ "tsa-ca", required_argument, NULL, OPT_TSA_CA },
		{ "time", required_argument, NULL, 't' },
		{ "crl", required_argument, NULL, OPT_CRL },
		{ "fetch-crl", no_argument, NULL, OPT_FETCH_CRL },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *crls[MAX_CRL_FILES];
	sg_verify_opts vo = { 0 };
	sg_sig_report reps[16];
	size_t n = 0, nshown;
	sg_file *f = NULL;
	int quiet = 0, json = 0, c;
	sg_status rc;

	optind = 1;
	opterr = 0; /* we say it ourselves, once */
	while((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		switch(c) {
		case 'c': vo.ca_file = optarg; break;
		case OPT_TSA_CA: vo.tsa_ca_file = optarg; break;
		case 't':
			vo.at_time = parse_time(optarg);
			if(!vo.at_time)
				return cli_usage("verify", "--time takes ISO 8601 UTC "
				                 "(2040-01-01T00:00:00Z) or Unix seconds, not '%s'", optarg);
			break;
		case OPT_CRL:
			if(vo.n_crl_files >= MAX_CRL_FILES)
				return cli_usage("verify", "at most %d --crl files", MAX_CRL_FILES);
			crls[vo.n_crl_files++] = optarg;
			break;
		case OPT_FETCH_CRL: vo.fetch_crl = 1; break;
		case OPT_JSON: json = 1; break;
		case 'q': quiet = 1; break;
		case 'h': fputs(verify_help, stdout); return EXIT_OK;
		default: return cli_bad_option("verify", argv);
		}
	}
	vo.crl_files = crls;
	if(optind + 1 != argc)
		return cli_usage("verify", "give exactly one file");
	rc = sg_file_open(argv[optind], &f);
	if(!rc)
		rc = sg_verify_file(f, &vo, reps, sizeof(reps) / sizeof(reps[0]), &n);
	sg_file_close(f);
	nshown = n < sizeof(reps) / sizeof(reps[0]) ? n : sizeof(reps) / sizeof(reps[0]);
	if(json && !quiet)
		print_json(argv[optind], rc, reps, nshown,
		           rc && rc != SG_ERR_VERIFY ? sg_last_error() : NULL);
	if(!quiet && !json) {
		if(n)
			printf("File:           %s\n", argv[optind]);
		for(size_t i = 0; i < nshown; i++)
			print_report(&reps[i]);
	}
	if(rc == SG_ERR_VERIFY) {
		if(!quiet && !json)
			printf("Result: INVALID\n");
		/* The likeliest cause of a chain that ends nowhere. */
		if(!quiet && !json && !vo.ca_file) {
			int untrusted = 0;
			for(size_t i = 0; i < nshown; i++)
				untrusted |= strstr(reps[i].reason, "local issuer") != NULL;
			if(untrusted)
				printf("Hint: no --ca given, so only the system's trusted roots "
				       "count; give the signer's root with --ca ROOTS.pem\n");
		}
		return EXIT_FAILED;
	}
	if(rc)
		return cli_error("verify", rc);
	if(!quiet && !json)
		printf("Result: valid (%zu signature%s)\n", n, n == 1 ? "" : "s");
	return EXIT_OK;
}
