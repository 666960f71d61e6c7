/*
 * verify.c - checks the Authenticode signatures of a file and reaches the
 * verdict Windows' WinVerifyTrust reaches: for the primary signature and
 * each nested one (unauthenticated attribute 1.3.6.1.4.1.311.2.4.1), that
 * the digest in SpcIndirectDataContent equals the file's, that the
 * signature over the signed attributes is valid and the messageDigest
 * attribute covers the content, that the timestamp if any is valid
 * (verify_ts.c), that the signer's chain reaches a trusted root at the
 * timestamp's time (or, without a valid timestamp, now or the caller's
 * time; a leaf with Microsoft's lifetime-signing EKU is always checked
 * at that time), that the leaf allows code signing, and whether the chain
 * is revoked (revocation.c).  Certificates in the trusted-roots file are
 * trust anchors even when not self-signed (UEFI's db works so).
 * Not here: Authenticode's page hashes, catalog signatures, OCSP.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "authenticode_int.h"
#include "internal.h"
#include "spc.h"
#include "verify_int.h"

/* Microsoft's lifetime signing EKU: the signature expires with the
 * certificate, timestamp or not. */
#define LIFETIME_SIGNING_OBJID "1.3.6.1.4.1.311.10.3.13"

#define MAX_SIGS 16

typedef struct ac_sig {
	PKCS7 *p7;
	sg_md md;
	unsigned char digest[SG_MAX_MD];
	size_t dlen;
	const unsigned char *content; /* SpcIndirectDataContent value octets */
	long content_len;
	sg_status parse_rc;
	char parse_err[256];
	int entry, nested;
} ac_sig;

static void rep_fail(sg_sig_report *rep, sg_status st, const char *fmt, ...)
	SG_PRINTF(3, 4);
static void rep_fail(sg_sig_report *rep, sg_status st, const char *fmt, ...)
{
	va_list ap;

	if(rep->status)
		return; /* keep the first failure */
	rep->status = st;
	va_start(ap, fmt);
	vsnprintf(rep->reason, sizeof(rep->reason), fmt, ap);
	va_end(ap);
}

/* Appends a primary signature and its nested ones, in order.  Takes
 * ownership of primary. */
static sg_status ac_collect(PKCS7 *primary, ac_sig *sigs, size_t *n)
{
	PKCS7_SIGNER_INFO *si = sk_PKCS7_SIGNER_INFO_value(PKCS7_get_signer_info(primary), 0);
	int idx;

	if(*n >= MAX_SIGS) {
		PKCS7_free(primary);
		return sg_fail(SG_ERR_TOO_LARGE, "more than %d signatures", MAX_SIGS);
	}
	sigs[*n].p7 = primary;
	int entry = sigs[*n].entry;
	(*n)++;
	idx = X509at_get_attr_by_OBJ(si->unauth_attr,
	                             OBJ_nid2obj(sg_nid_spc_nested_signature), -1);
	for(; idx >= 0; idx = X509at_get_attr_by_OBJ(si->unauth_attr,
	                        OBJ_nid2obj(sg_nid_spc_nested_signature), idx)) {
		X509_ATTRIBUTE *attr = X509at_get_attr(si->unauth_attr, idx);
		for(int i = 0; i < X509_ATTRIBUTE_count(attr); i++) {
			ASN1_TYPE *t = X509_ATTRIBUTE_get0_type(attr, i);
			ac_sig *s = &sigs[*n];
			if(*n >= MAX_SIGS)
				return sg_fail(SG_ERR_TOO_LARGE, "more than %d signatures", MAX_SIGS);
			s->entry = entry;
			s->nested = 1;
			(*n)++;
			if(!t || t->type != V_ASN1_SEQUENCE) {
				s->parse_rc = SG_ERR_MALFORMED;
				snprintf(s->parse_err, sizeof(s->parse_err),
				         "nested signature %zu is not a SEQUENCE", *n - 1);
				continue;
			}
			s->parse_rc = sg_ac_parse(t->value.sequence->data,
			                          (size_t)t->value.sequence->length, &s->p7);
			if(s->parse_rc)
				snprintf(s->parse_err, sizeof(s->parse_err), "nested signature %zu: %s",
				         *n - 1, sg_last_error());
		}
	}
	return SG_OK;
}

/* What verification of one signature needs besides the signature. */
typedef struct ac_ctx {
	X509_STORE *store;      /* roots for signers */
	X509_STORE *tsa_store;  /* roots for TSAs (may be store) */
	sg_crl_set *crls;
	int64_t now;            /* at_time or the current time */
} ac_ctx;

const char *sg_ts_kind_name(sg_ts_kind k)
{
	return k == SG_TS_RFC3161 ? "rfc3161" : k == SG_TS_COUNTERSIGNATURE ? "countersignature"
	                                                                     : "none";
}

const char *sg_revocation_name(sg_revocation r)
{
	return r == SG_REV_REVOKED ? "revoked" : r == SG_REV_GOOD ? "not revoked" : "unknown";
}

static int ac_has_lifetime_signing(X509 *x)
{
	EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
	ASN1_OBJECT *lt = OBJ_txt2obj(LIFETIME_SIGNING_OBJID, 1);
	int found = 0;

	for(int i = 0; lt && i < sk_ASN1_OBJECT_num(eku); i++)
		if(!OBJ_cmp(sk_ASN1_OBJECT_value(eku, i), lt))
			found = 1;
	ASN1_OBJECT_free(lt);
	EXTENDED_KEY_USAGE_free(eku);
	return found;
}

/* How the time certificates are checked at was chosen. */
enum { AC_AT_NOW, AC_AT_TIMESTAMP, AC_AT_NOW_LIFETIME };

/* The validity failures say which certificate, which date and whether a
 * timestamp was there to help. */
static void ac_time_fail(sg_sig_report *rep, X509_STORE_CTX *ctx, int err, int at)
{
	static const char *const why[] = {
		[AC_AT_NOW] = "the signature has no timestamp",
		[AC_AT_TIMESTAMP] = "the time of the timestamp",
		[AC_AT_NOW_LIFETIME] = ("the signer certificate has the lifetime-signing "
		                        "usage, so its timestamp does not count"),
	};
	X509 *x = X509_STORE_CTX_get_current_cert(ctx);
	int depth = X509_STORE_CTX_get_error_depth(ctx), expired = err == X509_V_ERR_CERT_HAS_EXPIRED;
	char sub[160] = "?", d[32], when[32];
	int64_t t;

	sg_vfy_time(x ? (expired ? X509_get0_notAfter(x) : X509_get0_notBefore(x)) : NULL, &t);
	sg_vfy_iso(t, d, sizeof(d));
	sg_vfy_iso(rep->checked_at, when, sizeof(when));
	if(x)
		X509_NAME_oneline(X509_get_subject_name(x), sub, sizeof(sub));
	if(depth == 0 && expired && at == AC_AT_TIMESTAMP)
		rep_fail(rep, SG_ERR_VERIFY, "signer certificate had already expired (on %s) at "
		         "the time of the timestamp (%s)", d, when);
	else if(depth == 0 && expired && at == AC_AT_NOW)
		rep_fail(rep, SG_ERR_VERIFY, "signer certificate expired on %s and the signature "
		         "has no timestamp", d);
	else if(depth == 0 && expired)
		rep_fail(rep, SG_ERR_VERIFY, "signer certificate expired on %s; %s", d, why[at]);
	else if(depth == 0)
		rep_fail(rep, SG_ERR_VERIFY, "signer certificate was not yet valid (from %s) at %s%s",
		         d, when, at == AC_AT_TIMESTAMP ? ", the time of the timestamp" : "");
	else
		rep_fail(rep, SG_ERR_VERIFY, "certificate chain: CA certificate %s %s %s (checked "
		         "at %s, %s)", sub, expired ? "expired on" : "is not valid before", d, when,
		         why[at]);
}

/* Builds and checks the signer's chain at rep->checked_at; *chain gets it
 * when it verifies. */
static void ac_check_chain(PKCS7 *p7, X509 *signer, X509_STORE *store, int at,
                           sg_sig_report *rep, STACK_OF(X509) **chain)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int err;

	*chain = NULL;
	if(!ctx || !X509_STORE_CTX_init(ctx, store, signer, p7->d.sign->cert)) {
		rep_fail(rep, SG_ERR_CRYPTO, "cannot set up chain verification");
		X509_STORE_CTX_free(ctx);
		return;
	}
	X509_STORE_CTX_set_time(ctx, 0, (time_t)rep->checked_at);
	if(X509_verify_cert(ctx) == 1) {
		rep->chain_ok = 1;
		*chain = X509_STORE_CTX_get1_chain(ctx);
	} else {
		err = X509_STORE_CTX_get_error(ctx);
		if(err == X509_V_ERR_CERT_HAS_EXPIRED || err == X509_V_ERR_CERT_NOT_YET_VALID)
			ac_time_fail(rep, ctx, err, at);
		else
			rep_fail(rep, SG_ERR_VERIFY, "certificate chain: %s (at depth %d)",
			         X509_verify_cert_error_string(err), X509_STORE_CTX_get_error_depth(ctx));
	}
	X509_STORE_CTX_free(ctx);
	ERR_clear_error();
}

static void ac_verify_one(ac_sig *s, const unsigned char (*fd)[SG_MAX_MD],
                          const sg_md *mds, size_t nmds, const ac_ctx *c,
                          sg_sig_report *rep)
{
	STACK_OF(X509) *signers = NULL, *chain = NULL;
	PKCS7_SIGNER_INFO *si;
	X509 *signer;
	BIO *content = NULL;
	sg_ts_check ts;
	unsigned long e;
	uint32_t xku;
	int at;

	rep->checked_at = c->now;
	snprintf(rep->revocation_detail, sizeof(rep->revocation_detail), "not checked");
	if(s->parse_rc) {
		rep_fail(rep, s->parse_rc, "%s", s->parse_err);
		return;
	}
	snprintf(rep->md, sizeof(rep->md), "%s", sg_md_name(s->md));
	sg_hex(s->digest, s->dlen, rep->signed_digest);
	for(size_t i = 0; i < nmds; i++) {
		if(mds[i] != s->md)
			continue;
		sg_hex(fd[i], s->dlen, rep->file_digest);
		rep->digest_ok = !CRYPTO_memcmp(fd[i], s->digest, s->dlen);
	}
	if(!rep->digest_ok)
		rep_fail(rep, SG_ERR_VERIFY,
		         "file digest mismatch: the file was changed after signing "
		         "(signed %s %s, file has %s)", rep->md, rep->signed_digest,
		         rep->file_digest);

	signers = PKCS7_get0_signers(s->p7, NULL, 0);
	signer = sk_X509_num(signers) > 0 ? sk_X509_value(signers, 0) : NULL;
	if(!signer) {
		ERR_clear_error();
		rep_fail(rep, SG_ERR_VERIFY, "the signer's certificate is not in the signature");
		goto out;
	}
	X509_NAME_oneline(X509_get_subject_name(signer), rep->signer, sizeof(rep->signer));
	X509_NAME_oneline(X509_get_issuer_name(signer), rep->issuer, sizeof(rep->issuer));

	/* Behind a null filter: OpenSSL 3.0's PKCS7_verify copies a memory BIO
	 * into one of its own and leaks that copy when the SignedData names a
	 * digest it cannot set up (found by fuzz_pe). */
	content = BIO_new(BIO_f_null());
	if(content) {
		BIO *mem = BIO_new_mem_buf(s->content, (int)s->content_len);
		if(mem)
			BIO_push(content, mem);
		else {
			BIO_free(content);
			content = NULL;
		}
	}
	if(content && PKCS7_verify(s->p7, NULL, NULL, content, NULL,
	                           PKCS7_NOVERIFY | PKCS7_NOCHAIN) == 1) {
		rep->signature_ok = 1;
	} else {
		e = ERR_peek_last_error();
		if(ERR_GET_REASON(e) == PKCS7_R_DIGEST_FAILURE)
			rep_fail(rep, SG_ERR_VERIFY,
			         "messageDigest attribute does not match SpcIndirectDataContent");
		else
			rep_fail(rep, SG_ERR_VERIFY,
			         "signature over the signed attributes is invalid (%s)",
			         ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "?");
		ERR_clear_error();
	}

	/* A timestamp that is there must be valid; a valid one moves the time
	 * at which the certificates must be valid to its own. */
	si = sk_PKCS7_SIGNER_INFO_value(PKCS7_get_signer_info(s->p7), 0);
	sg_vfy_timestamp(s->p7, si, c->tsa_store, &ts);
	rep->ts_kind = ts.kind;
	rep->ts_ok = ts.kind != SG_TS_NONE && ts.ok;
	rep->ts_time = ts.time;
	snprintf(rep->ts_signer, sizeof(rep->ts_signer), "%s", ts.tsa);
	if(ts.kind != SG_TS_NONE && !ts.ok)
		rep_fail(rep, SG_ERR_VERIFY, "timestamp (%s): %s",
		         ts.kind == SG_TS_RFC3161 ? "RFC 3161" : "countersignature", ts.reason);
	at = !rep->ts_ok ? AC_AT_NOW : ac_has_lifetime_signing(signer) ? AC_AT_NOW_LIFETIME
	                                                                : AC_AT_TIMESTAMP;
	if(at == AC_AT_TIMESTAMP)
		rep->checked_at = ts.time;

	ac_check_chain(s->p7, signer, c->store, at, rep, &chain);

	/* Windows wants the code-signing EKU on the leaf when it has an EKU
	 * extension at all. */
	xku = X509_get_extended_key_usage(signer);
	rep->eku_ok = (X509_get_extension_flags(signer) & EXFLAG_XKUSAGE) == 0 ||
	              (xku & XKU_CODE_SIGN) != 0;
	if(!rep->eku_ok)
		rep_fail(rep, SG_ERR_VERIFY,
		         "signer certificate lacks the code-signing extended key usage");

	if(chain) {
		rep->revocation = sg_crl_check_chain(c->crls, chain, rep->checked_at,
		                                     at == AC_AT_TIMESTAMP,
		                                     c->now, rep->revocation_detail,
		                                     sizeof(rep->revocation_detail));
		if(rep->revocation == SG_REV_REVOKED)
			rep_fail(rep, SG_ERR_VERIFY, "certificate revoked: %s", rep->revocation_detail);
	} else {
		snprintf(rep->revocation_detail, sizeof(rep->revocation_detail),
		         "not checked: the chain did not verify");
	}
out:
	sk_X509_pop_free(chain, X509_free);
	sk_X509_free(signers);
	BIO_free_all(content);
	ERR_clear_error();
}

/* Trusted roots: every certificate of file is an anchor (partial chains
 * allowed); NULL file: the system store. */
static sg_status ac_store(const char *file, X509_STORE **out)
{
	X509_STORE *store = X509_STORE_new();

	*out = NULL;
	if(!store)
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	if(file) {
		if(!X509_STORE_load_file(store, file)) {
			X509_STORE_free(store);
			return sg_fail_ossl(SG_ERR_IO, "cannot load trusted roots from %s", file);
		}
	} else if(!X509_STORE_set_default_paths(store)) {
		X509_STORE_free(store);
		return sg_fail_ossl(SG_ERR_IO, "cannot load the system trust store");
	}
	X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
	*out = store;
	return SG_OK;
}

sg_status sg_verify_file(sg_file *f, const sg_verify_opts *opts,
                         sg_sig_report *reps, size_t max, size_t *n)
{
	ac_sig sigs[MAX_SIGS];
	unsigned char digests[4][SG_MAX_MD];
	sg_md mds[4];
	size_t nsigs = 0, nmds = 0;
	ac_ctx c = { 0 };
	sg_status rc;
	int bad = 0;

	*n = 0;
	memset(sigs, 0, sizeof(sigs));
	sg_spc_init();
	/* Every signature entry of the file, each with its nested ones. */
	for(unsigned e = 0;; e++) {
		unsigned char *der = NULL;
		size_t derlen;
		PKCS7 *primary = NULL;

		rc = sg_file_get_signature_n(f, e, &der, &derlen);
		if(rc == SG_ERR_NOT_FOUND && e > 0) {
			sg_clear_error();
			break;
		}
		if(rc)
			goto out;
		rc = sg_ac_parse(der, derlen, &primary);
		free(der);
		if(nsigs < MAX_SIGS)
			sigs[nsigs].entry = (int)e;
		/* A signature that cannot be read is an invalid signature. */
		if(rc) {
			if(nsigs >= MAX_SIGS)
				break;
			sigs[nsigs].parse_rc = rc;
			snprintf(sigs[nsigs].parse_err, sizeof(sigs[nsigs].parse_err),
			         "signature entry %u: %s", e, sg_last_error());
			nsigs++;
			continue;
		}
		rc = ac_collect(primary, sigs, &nsigs);
		if(rc)
			goto out;
	}
	for(size_t i = 0; i < nsigs; i++) {
		size_t k;
		if(sigs[i].parse_rc)
			continue;
		sigs[i].parse_rc = sg_ac_read_content(sigs[i].p7, &sigs[i].md, sigs[i].digest,
		                                      &sigs[i].content, &sigs[i].content_len);
		sigs[i].dlen = sg_md_size(sigs[i].md);
		if(sigs[i].parse_rc) {
			snprintf(sigs[i].parse_err, sizeof(sigs[i].parse_err), "%s", sg_last_error());
			continue;
		}
		for(k = 0; k < nmds && mds[k] != sigs[i].md; k++)
			;
		if(k == nmds)
			mds[nmds++] = sigs[i].md;
	}
	if(nmds) {
		rc = sg_file_digests(f, mds, nmds, digests);
		if(rc)
			goto out;
	}
	/* Trust and CRLs are read before any signature is judged: a bad
	 * --ca or --crl file is an error, not an invalid signature. */
	rc = ac_store(opts ? opts->ca_file : NULL, &c.store);
	if(!rc && opts && opts->tsa_ca_file)
		rc = ac_store(opts->tsa_ca_file, &c.tsa_store);
	if(!rc)
		rc = sg_crl_set_new(opts ? opts->crl_files : NULL, opts ? opts->n_crl_files : 0,
		                    opts ? opts->fetch_crl : 0, opts ? &opts->proxy : NULL, &c.crls);
	if(rc)
		goto out;
	if(!c.tsa_store)
		c.tsa_store = c.store;
	c.now = opts && opts->at_time ? opts->at_time : (int64_t)time(NULL);
	for(size_t i = 0; i < nsigs; i++) {
		sg_sig_report tmp, *rep = i < max ? &reps[i] : &tmp;
		memset(rep, 0, sizeof(*rep));
		rep->index = (int)i;
		rep->entry = sigs[i].entry;
		rep->nested = sigs[i].nested;
		ac_verify_one(&sigs[i], (const unsigned char (*)[SG_MAX_MD])digests, mds,
		              nmds, &c, rep);
		if(rep->status)
			bad = 1;
	}
	*n = nsigs;
	rc = bad ? sg_fail(SG_ERR_VERIFY, "%s signature is not valid",
	                   nsigs > 1 ? "at least one" : "the")
	         : SG_OK;
out:
	for(size_t i = 0; i < nsigs; i++)
		PKCS7_free(sigs[i].p7);
	if(c.tsa_store != c.store)
		X509_STORE_free(c.tsa_store);
	X509_STORE_free(c.store);
	sg_crl_set_free(c.crls);
	return rc;
}
