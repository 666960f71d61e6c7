/*
 * cmd_misc.c - `signgate hash`, `extract-signature`, `attach-signature`
 * and `remove-signature`.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* Options shared by these commands: -o OUT, --digest, --signature, help. */
struct misc_args {
	const char *in, *out, *sig;
	sg_md md;
};

static int misc_parse(const char *cmd, const char *help, int argc, char **argv,
                      int want_out, int want_sig, struct misc_args *a)
{
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "digest", required_argument, NULL, 'd' },
		{ "signature", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	memset(a, 0, sizeof(*a));
	a->md = SG_MD_SHA256;
	optind = 1;
	opterr = 0; /* we say it ourselves, once */
	while((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch(c) {
		case 'o': a->out = optarg; break;
		case 'd':
			if(sg_md_from_name(optarg, &a->md))
				return cli_usage(cmd, "%s", sg_last_error());
			break;
		case 's': a->sig = optarg; break;
		case 'h': fputs(help, stdout); return -1;
		default: return cli_bad_option(cmd, argv);
		}
	}
	if(optind + 1 != argc)
		return cli_usage(cmd, "give exactly one input file");
	a->in = argv[optind];
	if(want_out && !a->out)
		return cli_usage(cmd, "no output file: give -o OUT");
	if(!want_out && a->out)
		return cli_usage(cmd, "-o does not apply here");
	if(want_sig && !a->sig)
		return cli_usage(cmd, "no signature file: give --signature SIG.der");
	return 0;
}

#define PARSE(cmd, help, out, sig)                                            \
	do {                                                                  \
		int r_ = misc_parse(cmd, help, argc, argv, out, sig, &a);     \
		if(r_)                                                        \
			return r_ < 0 ? EXIT_OK : r_;                         \
	} while(0)

static const char hash_help[] =
"Usage: signgate hash [--digest ALG] FILE\n"
"\n"
"Prints the Authenticode digest of FILE in hex: the digest a signature of\n"
"the file carries (an existing signature is left out of it).\n"
"\n"
"  --digest ALG  sha256 (default), sha1, sha384, sha512\n"
"  -h, --help    this help\n"
"\n"
"Exit status: 0 printed, 2 usage, bad input or I/O error.\n";

int cmd_hash(int argc, char **argv)
{
	unsigned char d[SG_MAX_MD];
	char hex[2 * SG_MAX_MD + 1];
	struct misc_args a;
	sg_file *f;
	size_t len;
	sg_status rc;

	PARSE("hash", hash_help, 0, 0);
	rc = sg_file_open(a.in, &f);
	if(rc)
		return cli_error("hash", rc);
	rc = sg_file_digest(f, a.md, -1, d, &len);
	sg_file_close(f);
	if(rc)
		return cli_error("hash", rc);
	sg_hex(d, len, hex);
	printf("%s  %s\n", hex, a.in);
	return EXIT_OK;
}

static const char extract_help[] =
"Usage: signgate extract-signature IN -o SIG.der\n"
"\n"
"Writes the Authenticode signature of IN (DER PKCS#7 SignedData, nested\n"
"signatures included) to SIG.der.\n"
"\n"
"  -o, --out FILE  where to write it (required)\n"
"  -h, --help      this help\n"
"\n"
"Exit status: 0 written, 1 IN is not signed, 2 usage, bad input or I/O error.\n";

int cmd_extract(int argc, char **argv)
{
	struct misc_args a;
	unsigned char *der = NULL;
	size_t len = 0;
	sg_file *f;
	sg_status rc;

	PARSE("extract-signature", extract_help, 1, 0);
	rc = sg_file_open(a.in, &f);
	if(rc)
		return cli_error("extract-signature", rc);
	rc = sg_file_get_signature(f, &der, &len);
	sg_file_close(f);
	if(!rc)
		rc = sg_write_file_atomic(a.out, der, len);
	sg_free(der);
	return rc ? cli_error("extract-signature", rc) : EXIT_OK;
}

static const char attach_help[] =
"Usage: signgate attach-signature IN --signature SIG.der -o OUT\n"
"\n"
"Embeds SIG.der (DER PKCS#7, e.g. from extract-signature or a signing\n"
"service) as the signature of IN, replacing any existing one, and writes\n"
"OUT.  The signature's digest must match IN.\n"
"\n"
"  --signature FILE  the signature (DER), required\n"
"  -o, --out FILE    output file (required); IN is not changed unless OUT names it\n"
"  -h, --help        this help\n"
"\n"
"Exit status: 0 written, 1 the signature is for another file, 2 usage, bad\n"
"input or I/O error.\n";

int cmd_attach(int argc, char **argv)
{
	struct misc_args a;
	sg_status rc;

	PARSE("attach-signature", attach_help, 1, 1);
	rc = sg_attach_signature_file(a.in, a.sig, a.out);
	return rc ? cli_error("attach-signature", rc) : EXIT_OK;
}

static const char remove_help[] =
"Usage: signgate remove-signature IN -o OUT\n"
"\n"
"Writes IN without its signature (and with its checksum recomputed) to OUT.\n"
"Like osslsigncode, the zero padding that signing added before the\n"
"signature stays: `signgate hash` of OUT equals that of the unsigned file.\n"
"\n"
"  -o, --out FILE  output file (required)\n"
"  -h, --help      this help\n"
"\n"
"Exit status: 0 written, 1 IN is not signed, 2 usage, bad input or I/O error.\n";

int cmd_remove(int argc, char **argv)
{
	struct misc_args a;
	sg_file *f;
	sg_status rc;

	PARSE("remove-signature", remove_help, 1, 0);
	rc = sg_file_open(a.in, &f);
	if(rc)
		return cli_error("remove-signature", rc);
	{
		unsigned char *der = NULL;
		size_t len;
		rc = sg_file_get_signature(f, &der, &len);
		sg_free(der);
	}
	if(!rc)
		rc = sg_file_write(f, NULL, 0, a.out);
	sg_file_close(f);
	return rc ? cli_error("remove-signature", rc) : EXIT_OK;
}
