/*
 * tsa.c - a time-stamping authority after RFC 3161 on an sg_signer, so the
 * key can stay in a PKCS#11 token.  Parses a TimeStampReq (2.4.1), builds
 * the TSTInfo (2.4.2) with OpenSSL's TS API, and signs it with sg_p7_sign:
 * a SignedData (version 3, as RFC 5652 wants for non-data content) whose
 * eContent is the TSTInfo, with the signed attributes contentType,
 * signingCertificateV2 (RFC 5035, SHA-256 of the TSA certificate) and
 * messageDigest.  OpenSSL's TS_RESP_CTX is not used: it wants an EVP_PKEY.
 *
 * Requests we do not serve are answered with status rejection and a
 * PKIFailureInfo, as 2.4.2 asks: a version other than 1 (badDataFormat),
 * a hash we do not know or a hashedMessage of the wrong length (badAlg,
 * badDataFormat), a policy other than ours (unacceptedPolicy), and any
 * extension, critical or not, since we recognise none (unacceptedExtension,
 * 2.4.1).  Not here: HTTP (the service), clock sources other than the
 * system clock, grantedWithMods, ordering.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1t.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/ess.h>
#include <openssl/objects.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>
#include <openssl/ts.h>
#include <openssl/x509v3.h>

#include "authenticode_int.h"
#include "internal.h"
#include "signer_int.h"
#include "tsa.h"

#define TSA_SERIAL_BYTES 16  /* 128 random bits: unique without state (2.4.2) */

/*
 * PKIStatusInfo (RFC 3161 2.4.2) with the fields OpenSSL's TS_STATUS_INFO
 * has no setters for (statusString, failInfo).  Encoded here, then read
 * back as a TS_STATUS_INFO for TS_RESP.
 */
typedef struct tsa_status_st {
	ASN1_INTEGER *status;
	STACK_OF(ASN1_UTF8STRING) *text;
	ASN1_BIT_STRING *failure_info;
} TSA_STATUS;

ASN1_SEQUENCE(TSA_STATUS) = {
	ASN1_SIMPLE(TSA_STATUS, status, ASN1_INTEGER),
	ASN1_SEQUENCE_OF_OPT(TSA_STATUS, text, ASN1_UTF8STRING),
	ASN1_OPT(TSA_STATUS, failure_info, ASN1_BIT_STRING)
} static_ASN1_SEQUENCE_END(TSA_STATUS)
IMPLEMENT_STATIC_ASN1_ALLOC_FUNCTIONS(TSA_STATUS)

/* A TS_STATUS_INFO with status, and when fail_info >= 0 that failInfo bit
 * and text. */
static sg_status tsa_status(int status, int fail_info, const char *text,
                            TS_STATUS_INFO **out)
{
	TSA_STATUS *st = TSA_STATUS_new();
	ASN1_UTF8STRING *s = NULL;
	unsigned char *der = NULL;
	const unsigned char *p;
	int len;
	sg_status rc = SG_OK;

	*out = NULL;
	if(!st || !ASN1_INTEGER_set(st->status, status)) {
		rc = sg_fail_ossl(SG_ERR_NOMEM, "cannot build PKIStatusInfo");
		goto out;
	}
	if(text && *text) {
		if(!(st->text = sk_ASN1_UTF8STRING_new_null()) || !(s = ASN1_UTF8STRING_new()) ||
		   !ASN1_STRING_set(s, text, -1) || !sk_ASN1_UTF8STRING_push(st->text, s)) {
			rc = sg_fail_ossl(SG_ERR_NOMEM, "cannot build PKIStatusInfo");
			goto out;
		}
		s = NULL;
	}
	if(fail_info >= 0 &&
	   (!(st->failure_info = ASN1_BIT_STRING_new()) ||
	    !ASN1_BIT_STRING_set_bit(st->failure_info, fail_info, 1))) {
		rc = sg_fail_ossl(SG_ERR_NOMEM, "cannot build PKIStatusInfo");
		goto out;
	}
	len = ASN1_item_i2d((ASN1_VALUE *)st, &der, ASN1_ITEM_rptr(TSA_STATUS));
	p = der;
	if(len <= 0 || !(*out = d2i_TS_STATUS_INFO(NULL, &p, len)))
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "cannot encode PKIStatusInfo");
out:
	OPENSSL_free(der);
	ASN1_UTF8STRING_free(s);
	TSA_STATUS_free(st);
	return rc;
}

/* DER of resp in malloc'd memory. */
static sg_status tsa_encode(TS_RESP *resp, unsigned char **der, size_t *derlen)
{
	unsigned char *buf = NULL;
	int len = i2d_TS_RESP(resp, &buf);

	if(len <= 0)
		return sg_fail_ossl(SG_ERR_CRYPTO, "cannot encode TimeStampResp");
	*der = malloc((size_t)len);
	if(!*der) {
		OPENSSL_free(buf);
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	}
	memcpy(*der, buf, (size_t)len);
	*derlen = (size_t)len;
	OPENSSL_free(buf);
	return SG_OK;
}

sg_status sg_tsa_reject(int fail_info, const char *text, unsigned char **resp,
                        size_t *resplen)
{
	TS_RESP *r = TS_RESP_new();
	TS_STATUS_INFO *si = NULL;
	sg_status rc;

	*resp = NULL;
	*resplen = 0;
	if(!r) {
		rc = sg_fail(SG_ERR_NOMEM, "out of memory");
		goto out;
	}
	rc = tsa_status(TS_STATUS_REJECTION, fail_info, text, &si);
	if(rc)
		goto out;
	if(!TS_RESP_set_status_info(r, si)) {
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "cannot set PKIStatusInfo");
		goto out;
	}
	rc = tsa_encode(r, resp, resplen);
out:
	TS_STATUS_INFO_free(si);
	TS_RESP_free(r);
	return rc;
}

/* ---------------------------------------------------------------- the request */

/* Why a request is refused: the failInfo bit and a message for the client. */
typedef struct tsa_refusal {
	int fail_info;
	char text[160];
} tsa_refusal;

static int tsa_refuse(tsa_refusal *r, int fail_info, const char *fmt, ...) SG_PRINTF(3, 4);
static int tsa_refuse(tsa_refusal *r, int fail_info, const char *fmt, ...)
{
	va_list ap;

	r->fail_info = fail_info;
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
	return 0;
}

/* Checks a parsed TimeStampReq against RFC 3161 2.4.1 and our policy;
 * returns 1 if a token may be issued, else 0 with the refusal filled.
 * Fills the imprint fields of info on the way. */
static int tsa_check_request(TS_REQ *tr, const ASN1_OBJECT *policy,
                             sg_tsa_info *info, tsa_refusal *r)
{
	TS_MSG_IMPRINT *mi = TS_REQ_get_msg_imprint(tr);
	X509_ALGOR *alg = mi ? TS_MSG_IMPRINT_get_algo(mi) : NULL;
	ASN1_OCTET_STRING *msg = mi ? TS_MSG_IMPRINT_get_msg(mi) : NULL;
	const ASN1_OBJECT *aobj = NULL, *req_policy;
	const void *aval = NULL;
	int ptype = V_ASN1_UNDEF;
	sg_md md;

	/* version INTEGER { v1(1) } */
	if(TS_REQ_get_version(tr) != 1)
		return tsa_refuse(r, TS_INFO_BAD_DATA_FORMAT, "request version %ld (only 1 is defined)",
		                  TS_REQ_get_version(tr));
	if(!alg || !msg)
		return tsa_refuse(r, TS_INFO_BAD_DATA_FORMAT, "request has no messageImprint");
	/* hashAlgorithm: one we know, parameters absent or NULL. */
	X509_ALGOR_get0(&aobj, &ptype, &aval, alg);
	if(sg_md_from_nid(OBJ_obj2nid(aobj), &md)) {
		char oid[80];
		OBJ_obj2txt(oid, sizeof(oid), aobj, 1);
		sg_clear_error();
		return tsa_refuse(r, TS_INFO_BAD_ALG, "hash algorithm %s not accepted "
		                  "(sha1, sha256, sha384, sha512 are)", oid);
	}
	snprintf(info->imprint_alg, sizeof(info->imprint_alg), "%s", sg_md_name(md));
	if(ptype != V_ASN1_UNDEF && ptype != V_ASN1_NULL)
		return tsa_refuse(r, TS_INFO_BAD_ALG, "hash algorithm %s has parameters",
		                  sg_md_name(md));
	/* hashedMessage: "The length of the hash MUST correspond to the hash
	 * algorithm" (2.4.1). */
	if((size_t)ASN1_STRING_length(msg) != sg_md_size(md))
		return tsa_refuse(r, TS_INFO_BAD_DATA_FORMAT,
		                  "hashedMessage is %d bytes; %s needs %zu",
		                  ASN1_STRING_length(msg), sg_md_name(md), sg_md_size(md));
	sg_hex(ASN1_STRING_get0_data(msg), sg_md_size(md), info->imprint);
	/* reqPolicy, if given, must be ours. */
	req_policy = TS_REQ_get_policy_id(tr);
	if(req_policy && OBJ_cmp(req_policy, policy)) {
		char want[80], got[80];
		OBJ_obj2txt(got, sizeof(got), req_policy, 1);
		OBJ_obj2txt(want, sizeof(want), policy, 1);
		return tsa_refuse(r, TS_INFO_UNACCEPTED_POLICY,
		                  "policy %s not accepted (this TSA issues under %s)", got, want);
	}
	/* "If an extension ... is used by a requester but is not recognized by
	 * a time-stamping server, the server SHALL not issue a token" (2.4.1).
	 * We recognise none. */
	if(TS_REQ_get_ext_count(tr) > 0) {
		char oid[80];
		X509_EXTENSION *e = TS_REQ_get_ext(tr, 0);
		OBJ_obj2txt(oid, sizeof(oid), X509_EXTENSION_get_object(e), 1);
		return tsa_refuse(r, TS_INFO_UNACCEPTED_EXTENSION, "%sextension %s not supported",
		                  X509_EXTENSION_get_critical(e) ? "critical " : "", oid);
	}
	return 1;
}

/* ---------------------------------------------------------------- the token */

/* serialNumber: 128 random bits, positive (2.4.2: unique per TSA). */
static sg_status tsa_serial(ASN1_INTEGER **out, char *hex, size_t hexlen)
{
	unsigned char rnd[TSA_SERIAL_BYTES];
	BIGNUM *bn = NULL;
	char *h = NULL;
	sg_status rc = SG_OK;

	*out = NULL;
	if(RAND_bytes(rnd, sizeof(rnd)) != 1) {
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "no random bytes for the serial number");
		goto out;
	}
	rnd[0] |= 0x01; /* never zero */
	if(!(bn = BN_bin2bn(rnd, sizeof(rnd), NULL)) || !(*out = BN_to_ASN1_INTEGER(bn, NULL)) ||
	   !(h = BN_bn2hex(bn))) {
		ASN1_INTEGER_free(*out);
		*out = NULL;
		rc = sg_fail_ossl(SG_ERR_NOMEM, "cannot make the serial number");
		goto out;
	}
	snprintf(hex, hexlen, "%s", h);
out:
	OPENSSL_free(h);
	BN_free(bn);
	return rc;
}

/* The TSTInfo for request tr, issued now under policy by the TSA whose
 * certificate is leaf. */
static sg_status tsa_tst_info(TS_REQ *tr, const ASN1_OBJECT *policy, X509 *leaf,
                              sg_tsa_info *info, TS_TST_INFO **out)
{
	TS_TST_INFO *tst = TS_TST_INFO_new();
	ASN1_INTEGER *serial = NULL, *one = NULL;
	ASN1_GENERALIZEDTIME *gt = NULL;
	TS_ACCURACY *acc = NULL;
	GENERAL_NAME *tsa = NULL;
	const ASN1_INTEGER *nonce = TS_REQ_get_nonce(tr);
	time_t now = time(NULL);
	sg_status rc = SG_OK;

	*out = NULL;
	if(!tst) {
		rc = sg_fail(SG_ERR_NOMEM, "out of memory");
		goto out;
	}
	rc = tsa_serial(&serial, info->serial, sizeof(info->serial));
	if(rc)
		goto out;
	/* genTime: GeneralizedTime in UTC, whole seconds ("YYYYMMDDhhmmssZ");
	 * accuracy: one second, since the clock is the system's. */
	gt = ASN1_GENERALIZEDTIME_set(NULL, now);
	acc = TS_ACCURACY_new();
	one = ASN1_INTEGER_new();
	/* tsa: the TSA's subject, so a client can tell who stamped (2.4.2). */
	tsa = GENERAL_NAME_new();
	if(!gt || !acc || !one || !ASN1_INTEGER_set(one, 1) || !tsa) {
		rc = sg_fail_ossl(SG_ERR_NOMEM, "cannot build TSTInfo");
		goto out;
	}
	tsa->type = GEN_DIRNAME;
	if(!(tsa->d.directoryName = X509_NAME_dup(X509_get_subject_name(leaf))) ||
	   !TS_ACCURACY_set_seconds(acc, one) ||
	   !TS_TST_INFO_set_version(tst, 1) ||
	   !TS_TST_INFO_set_policy_id(tst, (ASN1_OBJECT *)policy) ||
	   !TS_TST_INFO_set_msg_imprint(tst, TS_REQ_get_msg_imprint(tr)) ||
	   !TS_TST_INFO_set_serial(tst, serial) ||
	   !TS_TST_INFO_set_time(tst, gt) ||
	   !TS_TST_INFO_set_accuracy(tst, acc) ||
	   !TS_TST_INFO_set_ordering(tst, 0) ||
	   (nonce && !TS_TST_INFO_set_nonce(tst, nonce)) ||
	   !TS_TST_INFO_set_tsa(tst, tsa)) {
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "cannot build TSTInfo");
		goto out;
	}
	info->gen_time = (int64_t)now;
	*out = tst;
	tst = NULL;
out:
	GENERAL_NAME_free(tsa);
	ASN1_INTEGER_free(one);
	TS_ACCURACY_free(acc);
	ASN1_GENERALIZEDTIME_free(gt);
	ASN1_INTEGER_free(serial);
	TS_TST_INFO_free(tst);
	return rc;
}

/* Signed attribute signingCertificateV2 (RFC 5035 3): the SHA-256 of the
 * TSA certificate and its issuer and serial.  RFC 3161 2.4.2 requires an
 * ESS signing-certificate attribute; `openssl ts -verify` checks it. */
static sg_status tsa_signing_cert(PKCS7_SIGNER_INFO *si, void *arg)
{
	const sg_signer *s = arg;
	ESS_SIGNING_CERT_V2 *sc = NULL;
	ASN1_STRING *seq = NULL;
	unsigned char *der = NULL;
	int len;
	sg_status rc = SG_OK;

	sc = OSSL_ESS_signing_cert_v2_new_init(EVP_sha256(), sg_signer_leaf(s), NULL, 1);
	if(!sc || (len = i2d_ESS_SIGNING_CERT_V2(sc, &der)) <= 0 || !(seq = ASN1_STRING_new())) {
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "cannot build signingCertificateV2");
		goto out;
	}
	ASN1_STRING_set0(seq, der, len);
	der = NULL;
	if(!PKCS7_add_signed_attribute(si, NID_id_smime_aa_signingCertificateV2,
	                               V_ASN1_SEQUENCE, seq)) {
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "cannot add signingCertificateV2");
		goto out;
	}
	seq = NULL;
out:
	ASN1_STRING_free(seq);
	OPENSSL_free(der);
	ESS_SIGNING_CERT_V2_free(sc);
	return rc;
}

/* The timeStampToken: tst signed by s, with the certificates if cert_req. */
static sg_status tsa_token(sg_signer *s, sg_md md, TS_TST_INFO *tst, int cert_req,
                           PKCS7 **out)
{
	unsigned char *der = NULL;
	int len;
	ASN1_OCTET_STRING *os = NULL;
	ASN1_TYPE *content = NULL;
	PKCS7 *p7 = NULL;
	sg_status rc;

	*out = NULL;
	len = i2d_TS_TST_INFO(tst, &der);
	if(len <= 0)
		return sg_fail_ossl(SG_ERR_CRYPTO, "cannot encode TSTInfo");
	/* eContent: an OCTET STRING holding the DER TSTInfo; messageDigest
	 * covers that DER (RFC 5652 5.4). */
	os = ASN1_OCTET_STRING_new();
	content = ASN1_TYPE_new();
	if(!os || !content || !ASN1_OCTET_STRING_set(os, der, len)) {
		ASN1_TYPE_free(content);
		rc = sg_fail_ossl(SG_ERR_NOMEM, "cannot build the token's content");
		goto out;
	}
	ASN1_TYPE_set(content, V_ASN1_OCTET_STRING, os);
	os = NULL;
	rc = sg_p7_sign(s, md, NID_id_smime_ct_TSTInfo, content, der, (size_t)len,
	                tsa_signing_cert, s, &p7);
	if(rc)
		goto out;
	/* RFC 5652 5.1: version 3 when eContentType is not id-data. */
	if(!ASN1_INTEGER_set(p7->d.sign->version, 3)) {
		rc = sg_fail_ossl(SG_ERR_NOMEM, "cannot set SignedData version");
		goto out;
	}
	/* 2.4.1: "If the certReq field is false or missing, the certificates
	 * field MUST NOT be present in the response." */
	if(!cert_req) {
		sk_X509_pop_free(p7->d.sign->cert, X509_free);
		p7->d.sign->cert = NULL;
	}
	*out = p7;
	p7 = NULL;
out:
	PKCS7_free(p7);
	ASN1_OCTET_STRING_free(os);
	OPENSSL_free(der);
	return rc;
}

/* ---------------------------------------------------------------- the response */

sg_status sg_tsa_respond(sg_signer *s, const unsigned char *req, size_t reqlen,
                         const sg_tsa_policy *p, unsigned char **resp,
                         size_t *resplen, sg_tsa_info *info)
{
	const char *policy_txt = p && p->policy ? p->policy : SG_TSA_DEFAULT_POLICY;
	sg_md md = p ? p->md : SG_MD_SHA256;
	sg_tsa_info dummy;
	const unsigned char *q = req;
	ASN1_OBJECT *policy = NULL;
	TS_REQ *tr = NULL;
	TS_TST_INFO *tst = NULL;
	TS_STATUS_INFO *si = NULL;
	TS_RESP *r = NULL;
	PKCS7 *token = NULL;
	tsa_refusal refusal = { -1, "" };
	sg_status rc = SG_OK;

	*resp = NULL;
	*resplen = 0;
	if(!info)
		info = &dummy;
	memset(info, 0, sizeof(*info));
	info->fail_info = -1;
	if(reqlen > SG_TSA_MAX_REQ)
		return sg_fail(SG_ERR_TOO_LARGE, "TimeStampReq of %zu bytes (at most %d)",
		               reqlen, SG_TSA_MAX_REQ);
	policy = OBJ_txt2obj(policy_txt, 1);
	if(!policy) {
		rc = sg_fail_ossl(SG_ERR_USAGE, "TSA policy '%s' is not a dotted OID", policy_txt);
		goto out;
	}
	tr = reqlen ? d2i_TS_REQ(NULL, &q, (long)reqlen) : NULL;
	if(!tr) {
		rc = sg_fail_ossl(SG_ERR_MALFORMED, "not a DER TimeStampReq (RFC 3161 2.4.1)");
		goto out;
	}
	if(q != req + reqlen) {
		rc = sg_fail(SG_ERR_MALFORMED, "%zu bytes follow the TimeStampReq",
		             reqlen - (size_t)(q - req));
		goto out;
	}
	info->cert_req = TS_REQ_get_cert_req(tr) != 0;
	info->has_nonce = TS_REQ_get_nonce(tr) != NULL;

	if(!tsa_check_request(tr, policy, info, &refusal)) {
		snprintf(info->reason, sizeof(info->reason), "%s", refusal.text);
		info->fail_info = refusal.fail_info;
		rc = sg_tsa_reject(refusal.fail_info, refusal.text, resp, resplen);
		goto out;
	}
	/* A token from a certificate that is not valid at genTime is worth
	 * nothing to the client: say so instead. */
	if(X509_cmp_current_time(X509_get0_notBefore(sg_signer_leaf(s))) >= 0 ||
	   X509_cmp_current_time(X509_get0_notAfter(sg_signer_leaf(s))) <= 0) {
		snprintf(info->reason, sizeof(info->reason), "the TSA certificate is not valid now");
		info->fail_info = TS_INFO_SYSTEM_FAILURE;
		rc = sg_tsa_reject(info->fail_info, info->reason, resp, resplen);
		goto out;
	}
	rc = tsa_tst_info(tr, policy, sg_signer_leaf(s), info, &tst);
	if(!rc)
		rc = tsa_token(s, md, tst, info->cert_req, &token);
	if(!rc && !(r = TS_RESP_new()))
		rc = sg_fail(SG_ERR_NOMEM, "out of memory");
	if(!rc)
		rc = tsa_status(TS_STATUS_GRANTED, -1, NULL, &si);
	if(rc)
		goto out;
	if(!TS_RESP_set_status_info(r, si)) {
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "cannot set PKIStatusInfo");
		goto out;
	}
	TS_RESP_set_tst_info(r, token, tst); /* takes both */
	token = NULL;
	tst = NULL;
	rc = tsa_encode(r, resp, resplen);
	if(!rc)
		info->granted = 1;
out:
	TS_RESP_free(r);
	TS_STATUS_INFO_free(si);
	PKCS7_free(token);
	TS_TST_INFO_free(tst);
	TS_REQ_free(tr);
	ASN1_OBJECT_free(policy);
	return rc;
}

sg_status sg_tsa_check_signer(const sg_signer *s)
{
	X509 *leaf = sg_signer_leaf(s);
	int idx = X509_get_ext_by_NID(leaf, NID_ext_key_usage, -1);
	uint32_t ku;

	if(idx < 0)
		return sg_fail(SG_ERR_KEY, "certificate %s has no extendedKeyUsage; a TSA "
		               "certificate needs a critical one with only timeStamping (RFC 3161 2.3)",
		               sg_signer_subject(s));
	if(!X509_EXTENSION_get_critical(X509_get_ext(leaf, idx)))
		return sg_fail(SG_ERR_KEY, "certificate %s: extendedKeyUsage is not critical; "
		               "RFC 3161 2.3 requires it to be", sg_signer_subject(s));
	if(X509_get_extended_key_usage(leaf) != XKU_TIMESTAMP)
		return sg_fail(SG_ERR_KEY, "certificate %s: extendedKeyUsage must hold only "
		               "timeStamping (RFC 3161 2.3)", sg_signer_subject(s));
	ku = X509_get_key_usage(leaf);
	if(ku != UINT32_MAX && !(ku & (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION)))
		return sg_fail(SG_ERR_KEY, "certificate %s: keyUsage allows neither "
		               "digitalSignature nor nonRepudiation", sg_signer_subject(s));
	if(X509_cmp_current_time(X509_get0_notBefore(leaf)) >= 0 ||
	   X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0)
		return sg_fail(SG_ERR_KEY, "certificate %s is not valid now", sg_signer_subject(s));
	return SG_OK;
}
