/*
 * cmd_sign.c - `signgate sign`: hash a file, sign the digest with a local
 * key (PKCS#11 token or key file), embed the signature, write atomically.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char sign_help[] =
"Usage: signgate sign --cert CHAIN.pem --key KEY [OPTIONS] IN -o OUT\n"
"       signgate sign --pfx FILE.p12 [OPTIONS] IN -o OUT\n"
"\n"
"Signs IN with Authenticode and writes the signed file to OUT (through a\n"
"temporary file and a rename: OUT is never half-written).  IN is not changed\n"
"unless OUT names it.\n"
"\n"
"  --key KEY        a PEM private key file, or a PKCS#11 URI (RFC 7512), e.g.\n"
"                   'pkcs11:token=signgate;object=codesign?module-path=\n"
"                    /usr/lib/softhsm/libsofthsm2.so&pin-source=file:pin.txt'\n"
"  --cert FILE      PEM certificate chain (leaf and intermediates); optional\n"
"                   with a PKCS#11 key whose certificate is on the token\n"
"  --pfx FILE       PKCS#12 file with key and chain (legacy method)\n"
"  --pass SPEC      key file or PKCS#12 password, or token PIN:\n"
"                   file:PATH, env:VAR, or pass:TEXT (visible to ps)\n"
"  --digest ALG     sha256 (default), sha1, sha384, sha512\n"
"  --name TEXT      program name shown by Windows (SpcSpOpusInfo)\n"
"  --url URL        program URL (SpcSpOpusInfo)\n"
"  --nest           keep existing signatures and add this one as nested\n"
"                   (default: replace an existing signature)\n"
CLI_TIMESTAMP_HELP
"  --timestamp-policy fail|skip\n"
"                   when no TSA gives a timestamp: fail (the default: no\n"
"                   output is written) or sign without one and warn\n"
"  -o, --out OUT    output file (required)\n"
"  -h, --help       this help\n"
"\n"
"Requests to the TSAs honour the http_proxy, https_proxy (HTTPS_PROXY) and\n"
"no_proxy environment variables, as curl does; https:// TSAs are reached\n"
"through the proxy by CONNECT.  A proxy's user and password go in the\n"
"variable's URL: https_proxy=http://USER:PASSWORD@HOST:PORT.\n"
"\n"
"Exit status: 0 signed, 1 signing or timestamping failed (key, PIN, token,\n"
"TSA), 2 usage, bad input or I/O error.\n";

int cmd_sign(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "cert", required_argument, NULL, 'c' },
		{ "pfx", required_argument, NULL, 'p' },
		{ "pass", required_argument, NULL, 'P' },
		{ "digest", required_argument, NULL, 'd' },
		{ "name", required_argument, NULL, 'n' },
		{ "url", required_argument, NULL, 'u' },
		{ "nest", no_argument, NULL, 'N' },
		CLI_TIMESTAMP_OPTIONS,
		{ "timestamp-policy", required_argument, NULL, CLI_OPT_TIMESTAMP_POLICY },
		{ "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *key = NULL, *cert = NULL, *pfx = NULL, *pass = NULL, *out = NULL;
	const char *digest = "sha256";
	sg_sign_opts so = { 0 };
	sg_timestamp_result tr;
	cli_timestamp ts;
	int nest = 0, c;
	sg_signer *signer = NULL;
	sg_md md;
	sg_status rc;

	cli_timestamp_init(&ts);
	optind = 1;
	opterr = 0; /* we say it ourselves, once */
	while((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch(c) {
		case 'k': key = optarg; break;
		case 'c': cert = optarg; break;
		case 'p': pfx = optarg; break;
		case 'P': pass = optarg; break;
		case 'd': digest = optarg; break;
		case 'n': so.program_name = optarg; break;
		case 'u': so.url = optarg; break;
		case 'N': nest = 1; break;
		case CLI_OPT_TIMESTAMP: case CLI_OPT_TIMESTAMP_CA: case CLI_OPT_TIMESTAMP_TIMEOUT:
		case CLI_OPT_TIMESTAMP_POLICY:
			if(cli_timestamp_option(&ts, "sign", c, optarg))
				return EXIT_USAGE;
			break;
		case 'o': out = optarg; break;
		case 'h': fputs(sign_help, stdout); return EXIT_OK;
		default: return cli_bad_option("sign", argv);
		}
	}
	if(optind + 1 != argc)
		return cli_usage("sign", "give exactly one input file");
	if(!out)
		return cli_usage("sign", "no output file: give -o OUT");
	if(!pfx && !key)
		return cli_usage("sign", "give --key (with --cert) or --pfx");
	if(pfx && (key || cert))
		return cli_usage("sign", "--pfx replaces --key and --cert: give one or the other");
	if(sg_md_from_name(digest, &md))
		return cli_usage("sign", "%s", sg_last_error());
	if(cli_timestamp_check(&ts, "sign"))
		return EXIT_USAGE;

	rc = pfx ? sg_signer_open_pfx(pfx, pass, &signer)
	         : sg_signer_open(key, cert, pass, &signer);
	if(rc)
		return cli_error("sign", rc);
	if(sg_signer_chain_incomplete(signer))
		fprintf(stderr, "signgate sign: warning: the chain has only the leaf "
		        "certificate (%s); verifiers that trust only the root will "
		        "fail: give the intermediates with --cert\n", sg_signer_subject(signer));
	if(ts.o.nurls) {
		rc = sg_sign_file_timestamped(argv[optind], out, md, nest, signer, &so, &ts.o,
		                              ts.policy, &tr);
		if(!rc && !tr.stamped)
			fprintf(stderr, "signgate sign: warning: %s is signed WITHOUT a timestamp "
			        "(--timestamp-policy skip): %s\n", out, tr.reason);
	} else {
		rc = sg_sign_file(argv[optind], out, md, nest, signer, &so);
	}
	sg_signer_free(signer);
	if(rc)
		return cli_error("sign", rc);
	return EXIT_OK;
}
