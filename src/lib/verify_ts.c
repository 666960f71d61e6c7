/*
 * verify_ts.c - checks the timestamp of an Authenticode signature, as
 * Windows does.  Two kinds exist:
 *
 * - An RFC 3161 token in Microsoft's unauthenticated attribute
 *   1.3.6.1.4.1.311.3.3.1: a TimeStampToken (RFC 3161 2.4.2: SignedData
 *   over a TSTInfo) whose messageImprint is the hash of the SignerInfo's
 *   encryptedDigest (the signature value).  The time is TSTInfo.genTime.
 * - A legacy Authenticode countersignature, the PKCS #9 countersignature
 *   attribute 1.2.840.113549.1.9.6: a SignerInfo whose messageDigest
 *   attribute is the hash of the encryptedDigest and whose signingTime
 *   attribute is the time; the countersigner's certificate is in the
 *   certificate set of the outer SignedData.
 *
 * For either, the signature is checked, the TSA's chain is built to a
 * trusted root at the timestamp's own time (a TSA certificate that has
 * expired since still vouches for old timestamps, as with signtool and
 * osslsigncode), and the TSA certificate must carry the timeStamping EKU:
 * for RFC 3161 as section 2.3 asks, in a critical extension; for a
 * countersignature, listed if the certificate has an EKU extension.
 *
 * Not here: revocation of the TSA's chain; more than the first timestamp;
 * the token's ESS signingCertificate attribute (OpenSSL's check wants
 * every certificate it lists in the chain, and Microsoft's tokens list
 * their root, which a trust anchor below it leaves out).
 */
#include <stdarg.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pkcs7.h>
#include <openssl/ts.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "internal.h"
#include "spc.h"
#include "verify_int.h"

static void ts_fail(sg_ts_check *o, const char *fmt, ...) SG_PRINTF(2, 3);
static void ts_fail(sg_ts_check *o, const char *fmt, ...)
{
	va_list ap;

	o->ok = 0;
	if(o->reason[0])
		return; /* keep the first failure */
	va_start(ap, fmt);
	vsnprintf(o->reason, sizeof(o->reason), fmt, ap);
	va_end(ap);
}

/* The hash, under the algorithm nid, of the signature value that a
 * timestamp covers.  0 if the algorithm is not one we take. */
static int ts_hash(int nid, const ASN1_OCTET_STRING *sigval, unsigned char *out,
                   size_t *outlen)
{
	unsigned int n = 0;
	sg_md md;

	*outlen = 0;
	if(sg_md_from_nid(nid, &md)) {
		sg_clear_error();
		return 0;
	}
	if(!EVP_Digest(sigval->data, (size_t)sigval->length, out, &n, sg_md_evp(md), NULL))
		return 0;
	*outlen = n;
	return 1;
}

static const char *ts_nid_name(int nid)
{
	const char *s = OBJ_nid2sn(nid);
	return nid != NID_undef && s ? s : "unknown";
}

/* The TSA certificate must allow time stamping.  RFC 3161 2.3: "The
 * corresponding certificate MUST contain only one instance of the extended
 * key usage field extension ... with KeyPurposeID having value
 * id-kp-timeStamping.  This extension MUST be critical."  A countersigner
 * follows Windows' rule for EKUs: none at all means any purpose. */
static void ts_check_eku(X509 *tsa, int rfc3161, sg_ts_check *o)
{
	int has_eku = (X509_get_extension_flags(tsa) & EXFLAG_XKUSAGE) != 0;
	int idx;

	if(!rfc3161 && !has_eku)
		return;
	if(!has_eku || !(X509_get_extended_key_usage(tsa) & XKU_TIMESTAMP)) {
		ts_fail(o, "the TSA certificate lacks the timeStamping extended key usage");
		return;
	}
	if(!rfc3161)
		return;
	idx = X509_get_ext_by_NID(tsa, NID_ext_key_usage, -1);
	if(idx < 0 || !X509_EXTENSION_get_critical(X509_get_ext(tsa, idx)))
		ts_fail(o, "the TSA certificate's extended key usage extension is not "
		        "critical (RFC 3161 section 2.3)");
}

/* Builds the TSA's chain to a trusted root as of the timestamp's time;
 * *chain gets it when it verifies (NULL otherwise). */
static void ts_check_chain(X509 *tsa, STACK_OF(X509) *untrusted, X509_STORE *store,
                           sg_ts_check *o, STACK_OF(X509) **chain)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	char when[32];

	*chain = NULL;
	if(!ctx || !X509_STORE_CTX_init(ctx, store, tsa, untrusted)) {
		ts_fail(o, "cannot set up the TSA's chain verification");
		goto out;
	}
	X509_STORE_CTX_set_time(ctx, 0, (time_t)o->time);
	if(X509_verify_cert(ctx) == 1) {
		*chain = X509_STORE_CTX_get1_chain(ctx);
	} else {
		int err = X509_STORE_CTX_get_error(ctx);
		ts_fail(o, "TSA certificate chain at the timestamp's time (%s): %s (at depth %d)",
		        sg_vfy_iso(o->time, when, sizeof(when)),
		        X509_verify_cert_error_string(err), X509_STORE_CTX_get_error_depth(ctx));
	}
out:
	X509_STORE_CTX_free(ctx);
}

/* The token is read as CMS, not PKCS #7: TSAs such as Microsoft's use
 * CMS SignedData version 3, whose certificate set OpenSSL's PKCS #7
 * decoder refuses. */
static void ts_rfc3161(PKCS7_SIGNER_INFO *si, const ASN1_STRING *seq,
                       X509_STORE *store, sg_ts_check *o)
{
	const unsigned char *p = seq->data, *q;
	CMS_ContentInfo *tok = d2i_CMS_ContentInfo(NULL, &p, seq->length);
	STACK_OF(CMS_SignerInfo) *sis;
	STACK_OF(X509) *certs = NULL, *chain = NULL;
	ASN1_OCTET_STRING **content;
	TS_TST_INFO *tst = NULL;
	unsigned char h[EVP_MAX_MD_SIZE];
	size_t hlen;
	X509 *tsa = NULL;
	unsigned long e;

	if(!tok || p != seq->data + seq->length) {
		ts_fail(o, "the RFC 3161 token is not a DER CMS ContentInfo");
		goto out;
	}
	/* RFC 3161 2.4.2: a SignedData whose eContentType is id-ct-TSTInfo;
	 * it "MUST NOT include any signatures other than the TSA's". */
	sis = OBJ_obj2nid(CMS_get0_type(tok)) == NID_pkcs7_signed ? CMS_get0_SignerInfos(tok) : NULL;
	content = sis ? CMS_get0_content(tok) : NULL;
	if(!sis || sk_CMS_SignerInfo_num(sis) != 1 || !content || !*content ||
	   OBJ_obj2nid(CMS_get0_eContentType(tok)) != NID_id_smime_ct_TSTInfo) {
		ts_fail(o, "the RFC 3161 token is not a SignedData with one signer over a "
		        "TSTInfo (RFC 3161 section 2.4.2)");
		goto out;
	}
	q = (*content)->data;
	tst = d2i_TS_TST_INFO(NULL, &q, (*content)->length);
	if(!tst || q != (*content)->data + (*content)->length) {
		ts_fail(o, "the token's TSTInfo cannot be decoded");
		goto out;
	}
	if(TS_TST_INFO_get_version(tst) != 1) {
		ts_fail(o, "TSTInfo version is %ld; RFC 3161 section 2.4.2 knows 1",
		        TS_TST_INFO_get_version(tst));
		goto out;
	}
	if(!sg_vfy_time(TS_TST_INFO_get_time(tst), &o->time)) {
		ts_fail(o, "the TSTInfo's genTime cannot be read");
		goto out;
	}
	{
		TS_MSG_IMPRINT *mi = TS_TST_INFO_get_msg_imprint(tst);
		X509_ALGOR *alg = TS_MSG_IMPRINT_get_algo(mi);
		ASN1_OCTET_STRING *want = TS_MSG_IMPRINT_get_msg(mi);
		int nid = OBJ_obj2nid(alg->algorithm);
		if(!ts_hash(nid, si->enc_digest, h, &hlen)) {
			ts_fail(o, "the token's message imprint uses %s, which is not supported",
			        ts_nid_name(nid));
			goto out;
		}
		if((size_t)want->length != hlen || CRYPTO_memcmp(want->data, h, hlen)) {
			ts_fail(o, "the token was made for another signature: its message imprint "
			        "is not the %s hash of this signature's value", ts_nid_name(nid));
			goto out;
		}
	}
	certs = CMS_get1_certs(tok);
	if(!certs || CMS_set1_signers_certs(tok, certs, 0) < 0)
		ERR_clear_error();
	CMS_SignerInfo_get0_algs(sk_CMS_SignerInfo_value(sis, 0), NULL, &tsa, NULL, NULL);
	if(!tsa) {
		ts_fail(o, "the TSA's certificate is not in the token");
		goto out;
	}
	X509_NAME_oneline(X509_get_subject_name(tsa), o->tsa, sizeof(o->tsa));
	/* The content digest and the signature over the signed attributes;
	 * the chain is ours to check, below. */
	if(CMS_verify(tok, certs, NULL, NULL, NULL, CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) != 1) {
		e = ERR_peek_last_error();
		if(ERR_GET_REASON(e) == CMS_R_CONTENT_VERIFY_ERROR)
			ts_fail(o, "the token's messageDigest attribute does not match its TSTInfo");
		else
			ts_fail(o, "the token's signature is invalid (%s)",
			        ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "?");
		goto out;
	}
	ts_check_eku(tsa, 1, o);
	ts_check_chain(tsa, certs, store, o, &chain);
out:
	sk_X509_pop_free(chain, X509_free);
	sk_X509_pop_free(certs, X509_free);
	TS_TST_INFO_free(tst);
	CMS_ContentInfo_free(tok);
}

static void ts_countersignature(PKCS7 *p7, PKCS7_SIGNER_INFO *si, const ASN1_STRING *seq,
                                X509_STORE *store, sg_ts_check *o)
{
	const unsigned char *p = seq->data;
	PKCS7_SIGNER_INFO *csi = d2i_PKCS7_SIGNER_INFO(NULL, &p, seq->length);
	STACK_OF(X509) *chain = NULL;
	EVP_MD_CTX *mctx = NULL;
	unsigned char *abuf = NULL;
	unsigned char h[EVP_MAX_MD_SIZE];
	size_t hlen;
	ASN1_OCTET_STRING *md_attr;
	ASN1_TYPE *st;
	X509 *tsa;
	int alen, nid;
	sg_md md;

	if(!csi || p != seq->data + seq->length) {
		ts_fail(o, "the countersignature is not a DER SignerInfo");
		goto out;
	}
	tsa = X509_find_by_issuer_and_serial(p7->d.sign->cert, csi->issuer_and_serial->issuer,
	                                     csi->issuer_and_serial->serial);
	if(!tsa) {
		ts_fail(o, "the countersigner's certificate is not in the signature");
		goto out;
	}
	X509_NAME_oneline(X509_get_subject_name(tsa), o->tsa, sizeof(o->tsa));
	/* PKCS #9: signingTime is UTCTime for dates 1950-2049, else
	 * GeneralizedTime. */
	st = PKCS7_get_signed_attribute(csi, NID_pkcs9_signingTime);
	if(!st || (st->type != V_ASN1_UTCTIME && st->type != V_ASN1_GENERALIZEDTIME) ||
	   !sg_vfy_time((const ASN1_TIME *)st->value.asn1_string, &o->time)) {
		ts_fail(o, "the countersignature has no readable signingTime attribute");
		goto out;
	}
	nid = OBJ_obj2nid(csi->digest_alg->algorithm);
	if(sg_md_from_nid(nid, &md)) {
		sg_clear_error();
		ts_fail(o, "the countersignature uses digest %s, which is not supported",
		        ts_nid_name(nid));
		goto out;
	}
	md_attr = PKCS7_digest_from_attributes(csi->auth_attr);
	if(!md_attr) {
		ts_fail(o, "the countersignature has no messageDigest attribute");
		goto out;
	}
	if(!ts_hash(nid, si->enc_digest, h, &hlen) || (size_t)md_attr->length != hlen ||
	   CRYPTO_memcmp(md_attr->data, h, hlen)) {
		ts_fail(o, "the countersignature was made for another signature: its "
		        "messageDigest is not the %s hash of this signature's value",
		        ts_nid_name(nid));
		goto out;
	}
	/* The signature covers the DER of the signed attributes as a SET OF
	 * (PKCS #7 9.3), as for any SignerInfo. */
	alen = ASN1_item_i2d((ASN1_VALUE *)csi->auth_attr, &abuf,
	                     ASN1_ITEM_rptr(PKCS7_ATTR_VERIFY));
	mctx = EVP_MD_CTX_new();
	if(alen <= 0 || !mctx ||
	   EVP_DigestVerifyInit(mctx, NULL, sg_md_evp(md), NULL, X509_get0_pubkey(tsa)) != 1 ||
	   EVP_DigestVerify(mctx, csi->enc_digest->data, (size_t)csi->enc_digest->length,
	                    abuf, (size_t)alen) != 1) {
		ts_fail(o, "the countersignature's signature is invalid");
		goto out;
	}
	ts_check_eku(tsa, 0, o);
	ts_check_chain(tsa, p7->d.sign->cert, store, o, &chain);
out:
	sk_X509_pop_free(chain, X509_free);
	EVP_MD_CTX_free(mctx);
	OPENSSL_free(abuf);
	PKCS7_SIGNER_INFO_free(csi);
}

void sg_vfy_timestamp(PKCS7 *p7, PKCS7_SIGNER_INFO *si, X509_STORE *store,
                      sg_ts_check *out)
{
	STACK_OF(X509_ATTRIBUTE) *ua = si->unauth_attr;
	X509_ATTRIBUTE *attr;
	ASN1_TYPE *t;
	int idx;

	memset(out, 0, sizeof(*out));
	sg_spc_init();
	out->kind = SG_TS_RFC3161;
	idx = X509at_get_attr_by_NID(ua, sg_nid_spc_rfc3161, -1);
	if(idx < 0) {
		out->kind = SG_TS_COUNTERSIGNATURE;
		idx = X509at_get_attr_by_NID(ua, NID_pkcs9_countersignature, -1);
	}
	if(idx < 0) {
		out->kind = SG_TS_NONE;
		return;
	}
	out->ok = 1;
	attr = X509at_get_attr(ua, idx);
	t = X509_ATTRIBUTE_get0_type(attr, 0);
	if(X509_ATTRIBUTE_count(attr) != 1 || !t || t->type != V_ASN1_SEQUENCE) {
		ts_fail(out, "the %s attribute does not hold exactly one SEQUENCE",
		        out->kind == SG_TS_RFC3161 ? "RFC 3161 timestamp" : "countersignature");
		return;
	}
	if(out->kind == SG_TS_RFC3161)
		ts_rfc3161(si, t->value.sequence, store, out);
	else
		ts_countersignature(p7, si, t->value.sequence, store, out);
	ERR_clear_error();
}
