/*
 * fuzz_timestamp.c - libFuzzer harness for everything that reads RFC 3161
 * timestamps.  Each input goes, whole, to four parsers:
 *  1. the TSA (POST /tsa of the signing service, src/lib/tsa.c) as a
 *     TimeStampReq, answered with the known-answer test's key;
 *  2. the timestamp client (src/lib/timestamp.c) as the TimeStampResp body
 *     a TSA sent back: status, imprint, nonce, certificate, token span.
 *     Tried against a fixed request and, when the input parses, once more
 *     against the imprint and nonce it carries, so the checks after those
 *     are reached too;
 *  3. the verifier (src/lib/verify_ts.c) as an RFC 3161 token in the
 *     unsigned attributes of a good Authenticode signature;
 *  4. the verifier as an Authenticode countersignature (a SignerInfo).
 * Built by `make fuzz` (tests/fuzz/run.sh), replayed by ctest (replay.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pkcs7.h>
#include <openssl/ts.h>
#include <openssl/x509.h>

#include "authenticode_int.h"
#include "internal.h"
#include "signgate/signgate.h"
#include "spc.h"
#include "tsa.h"
#include "verify_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifndef SG_FUZZ_CA
#define SG_FUZZ_CA "tests/kat/cert.pem"
#endif
#ifndef SG_FUZZ_KEY
#define SG_FUZZ_KEY "tests/kat/key.pem"
#endif

static sg_signer *signer;
static unsigned char *base;      /* a good Authenticode signature */
static size_t baselen;
static X509_STORE *store;

static void fuzz_init(void)
{
	unsigned char digest[32] = { 0 };

	if(sg_signer_open(SG_FUZZ_KEY, SG_FUZZ_CA, NULL, &signer) ||
	   sg_authenticode_sign(signer, "pe", SG_MD_SHA256, digest, sizeof(digest), NULL, &base,
	                        &baselen)) {
		fprintf(stderr, "fuzz_timestamp: set-up failed: %s\n", sg_last_error());
		abort();
	}
	store = X509_STORE_new();
	if(!store || X509_STORE_load_file(store, SG_FUZZ_CA) != 1)
		abort();
	sg_spc_init();
}

/* 2: the client's checks of a TimeStampResp. */
static void fuzz_reply(const uint8_t *data, size_t size)
{
	static const unsigned char zero[32];
	const unsigned char *p = data;
	ASN1_INTEGER *one = ASN1_INTEGER_new();
	unsigned char *tok = NULL;
	size_t toklen;
	TS_RESP *resp;
	TS_TST_INFO *tst;

	if(one && ASN1_INTEGER_set(one, 1))
		(void)sg_ts_parse_reply_der(data, size, NID_sha256, zero, sizeof(zero), one, &tok,
		                            &toklen);
	free(tok);
	tok = NULL;
	ASN1_INTEGER_free(one);
	resp = d2i_TS_RESP(NULL, &p, (long)size);
	tst = resp ? TS_RESP_get_tst_info(resp) : NULL;
	if(tst) {
		TS_MSG_IMPRINT *mi = TS_TST_INFO_get_msg_imprint(tst);
		const ASN1_OCTET_STRING *msg = TS_MSG_IMPRINT_get_msg(mi);
		const ASN1_INTEGER *nonce = TS_TST_INFO_get_nonce(tst);
		if(msg && nonce && (size_t)msg->length <= SG_MAX_MD)
			(void)sg_ts_parse_reply_der(data, size,
			                            OBJ_obj2nid(TS_MSG_IMPRINT_get_algo(mi)->algorithm),
			                            msg->data, (size_t)msg->length, nonce, &tok,
			                            &toklen);
		free(tok);
	}
	TS_RESP_free(resp);
}

/* 3 and 4: the input as the value of attribute nid of the base
 * signature's signer, checked by the verifier. */
static void fuzz_attr(const uint8_t *data, size_t size, int nid)
{
	PKCS7 *p7 = NULL;
	PKCS7_SIGNER_INFO *si;
	ASN1_STRING *seq;
	sg_ts_check chk;

	if(size > INT32_MAX || sg_ac_parse(base, baselen, &p7))
		return;
	si = sk_PKCS7_SIGNER_INFO_value(PKCS7_get_signer_info(p7), 0);
	seq = ASN1_STRING_type_new(V_ASN1_SEQUENCE);
	if(si && seq && ASN1_STRING_set(seq, data, (int)size) &&
	   PKCS7_add_attribute(si, nid, V_ASN1_SEQUENCE, seq)) {
		seq = NULL;   /* the attribute owns it */
		sg_vfy_timestamp(p7, si, store, &chk);
	}
	ASN1_STRING_free(seq);
	PKCS7_free(p7);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sg_tsa_info info;
	unsigned char *resp = NULL;
	size_t resplen;

	if(!signer)
		fuzz_init();
	if(size <= SG_TSA_MAX_REQ &&
	   sg_tsa_respond(signer, data, size, NULL, &resp, &resplen, &info) == SG_OK)
		sg_free(resp);
	fuzz_reply(data, size);
	fuzz_attr(data, size, sg_nid_spc_rfc3161);
	fuzz_attr(data, size, NID_pkcs9_countersignature);
	ERR_clear_error();
	sg_clear_error();
	return 0;
}
