/*
 * verify.c - checks the Authenticode signatures of a file: for the primary
 * signature and each nested one (unauthenticated attribute
 * 1.3.6.1.4.1.311.2.4.1), that the digest in SpcIndirectDataContent equals
 * the file's, that the signature over the signed attributes is valid and
 * the messageDigest attribute covers the content, that the signer's chain
 * reaches a trusted root at the checking time, and that the leaf allows
 * code signing.  Timestamps and revocation are not checked here yet.
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

static int ac_verify_cb(int ok, X509_STORE_CTX *ctx)
{
	return ok;
}

static void ac_check_chain(PKCS7 *p7, X509 *signer, X509_STORE *store,
                           const sg_verify_opts *opts, sg_sig_report *rep)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int err;

	if(!ctx || !X509_STORE_CTX_init(ctx, store, signer, p7->d.sign->cert)) {
		rep_fail(rep, SG_ERR_CRYPTO, "cannot set up chain verification");
		X509_STORE_CTX_free(ctx);
		return;
	}
	if(opts && opts->at_time)
		X509_STORE_CTX_set_time(ctx, 0, (time_t)opts->at_time);
	X509_STORE_CTX_set_verify_cb(ctx, ac_verify_cb);
	if(X509_verify_cert(ctx) == 1) {
		rep->chain_ok = 1;
	} else {
		err = X509_STORE_CTX_get_error(ctx);
		rep_fail(rep, SG_ERR_VERIFY, "certificate chain: %s (at depth %d)",
		         X509_verify_cert_error_string(err), X509_STORE_CTX_get_error_depth(ctx));
	}
	X509_STORE_CTX_free(ctx);
	ERR_clear_error();
}

static void ac_verify_one(ac_sig *s, const unsigned char (*fd)[SG_MAX_MD],
                          const sg_md *mds, size_t nmds, X509_STORE *store,
                          const sg_verify_opts *opts, sg_sig_report *rep)
{
	STACK_OF(X509) *signers = NULL;
	X509 *signer;
	BIO *content = NULL;
	unsigned long e;
	uint32_t xku;

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

	content = BIO_new_mem_buf(s->content, (int)s->content_len);
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

	ac_check_chain(s->p7, signer, store, opts, rep);

	/* Windows wants the code-signing EKU on the leaf when it has an EKU
	 * extension at all. */
	xku = X509_get_extended_key_usage(signer);
	rep->eku_ok = (X509_get_extension_flags(signer) & EXFLAG_XKUSAGE) == 0 ||
	              (xku & XKU_CODE_SIGN) != 0;
	if(!rep->eku_ok)
		rep_fail(rep, SG_ERR_VERIFY,
		         "signer certificate lacks the code-signing extended key usage");
out:
	sk_X509_free(signers);
	BIO_free(content);
}

static sg_status ac_store(const sg_verify_opts *opts, X509_STORE **out)
{
	X509_STORE *store = X509_STORE_new();

	*out = NULL;
	if(!store)
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	if(opts && opts->ca_file) {
		if(!X509_STORE_load_file(store, opts->ca_file)) {
			X509_STORE_free(store);
			return sg_fail_ossl(SG_ERR_IO, "cannot load trusted roots from %s",
			                    opts->ca_file);
		}
	} else if(!X509_STORE_set_default_paths(store)) {
		X509_STORE_free(store);
		return sg_fail_ossl(SG_ERR_IO, "cannot load the system trust store");
	}
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
	X509_STORE *store = NULL;
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
	rc = ac_store(opts, &store);
	if(rc)
		goto out;
	for(size_t i = 0; i < nsigs; i++) {
		sg_sig_report tmp, *rep = i < max ? &reps[i] : &tmp;
		memset(rep, 0, sizeof(*rep));
		rep->index = (int)i;
		rep->entry = sigs[i].entry;
		rep->nested = sigs[i].nested;
		ac_verify_one(&sigs[i], (const unsigned char (*)[SG_MAX_MD])digests, mds,
		              nmds, store, opts, rep);
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
	X509_STORE_free(store);
	return rc;
}
