/*
 * signer.c - sg_signer: a key backend (PKCS#11 token or software key) and
 * the certificate chain that goes with it.  Opening a signer proves that
 * the key and the certificate belong together with a test signature, so a
 * mismatch is found before any file is signed, for every backend alike.
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "internal.h"
#include "signer_int.h"

#define CERT_FILE_MAX (1u << 20)

struct sg_signer {
	const struct sg_signer_ops *ops;
	void *ctx;
	sg_key_type type;
	X509 *leaf;             /* also in certs */
	STACK_OF(X509) *certs;  /* leaf first */
	char subject[256];
	int chain_incomplete;   /* the leaf's issuer is not among certs */
};

int sg_signer_chain_incomplete(const sg_signer *s)
{
	return s->chain_incomplete;
}

X509 *sg_signer_leaf(const sg_signer *s)
{
	return s->leaf;
}

STACK_OF(X509) *sg_signer_certs(const sg_signer *s)
{
	return s->certs;
}

sg_key_type sg_signer_key_type(const sg_signer *s)
{
	return s->type;
}

const char *sg_signer_subject(const sg_signer *s)
{
	return s->subject;
}

int64_t sg_signer_not_after(const sg_signer *s)
{
	struct tm tm;

	if(!ASN1_TIME_to_tm(X509_get0_notAfter(s->leaf), &tm))
		return 0;
	return (int64_t)timegm(&tm);
}

void sg_signer_free(sg_signer *s)
{
	if(!s)
		return;
	if(s->ops)
		s->ops->free(s->ctx);
	sk_X509_pop_free(s->certs, X509_free);
	free(s);
}

/* 1 if sig over digest verifies with cert's public key. */
static int signer_sig_matches(X509 *cert, sg_md md, const unsigned char *digest,
                              size_t dlen, const unsigned char *sig,
                              size_t siglen)
{
	EVP_PKEY *pub = X509_get0_pubkey(cert);
	EVP_PKEY_CTX *pctx;
	int ok = 0;

	if(!pub)
		return 0;
	pctx = EVP_PKEY_CTX_new(pub, NULL);
	if(pctx && EVP_PKEY_verify_init(pctx) > 0 &&
	   (!EVP_PKEY_is_a(pub, "RSA") ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0) &&
	   EVP_PKEY_CTX_set_signature_md(pctx, sg_md_evp(md)) > 0)
		ok = EVP_PKEY_verify(pctx, sig, siglen, digest, dlen) == 1;
	EVP_PKEY_CTX_free(pctx);
	ERR_clear_error();
	return ok;
}

/*
 * Every signature is checked with the certificate's public key before it is
 * used: a key that is no longer the one opened (a token swapped for another
 * with the same label, on a module without serial numbers to tell them
 * apart) or a faulty signature from the device never goes out.  An RSA or
 * P-256 verification costs far less than the signature.
 */
sg_status sg_signer_sign_digest(sg_signer *s, sg_md md,
                                const unsigned char *digest, size_t dlen,
                                unsigned char **sig, size_t *siglen)
{
	sg_status rc;

	if(dlen != sg_md_size(md))
		return sg_fail(SG_ERR_USAGE, "digest is %zu bytes, %s needs %zu", dlen,
		               sg_md_name(md), sg_md_size(md));
	rc = s->ops->sign(s->ctx, md, digest, dlen, sig, siglen);
	if(rc)
		return rc;
	if(!signer_sig_matches(s->leaf, md, digest, dlen, *sig, *siglen)) {
		free(*sig);
		*sig = NULL;
		*siglen = 0;
		return sg_fail(SG_ERR_KEY,
		               "the key made a signature that does not verify with the "
		               "certificate of %s: it is not the key that was opened (a "
		               "token swapped for another?) or the device is faulty; not "
		               "signing", s->subject);
	}
	return SG_OK;
}

sg_status sg_signer_chain_pem(const sg_signer *s, char **pem)
{
	BIO *b = BIO_new(BIO_s_mem());
	BUF_MEM *bm;
	sg_status rc = SG_OK;

	*pem = NULL;
	if(!b)
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	for(int i = 0; i < sk_X509_num(s->certs); i++)
		if(!PEM_write_bio_X509(b, sk_X509_value(s->certs, i)))
			rc = sg_fail_ossl(SG_ERR_CRYPTO, "cannot write certificate");
	BIO_get_mem_ptr(b, &bm);
	if(!rc && !(*pem = malloc(bm->length + 1)))
		rc = sg_fail(SG_ERR_NOMEM, "out of memory");
	if(!rc) {
		memcpy(*pem, bm->data, bm->length);
		(*pem)[bm->length] = '\0';
	}
	BIO_free(b);
	return rc;
}

static sg_status signer_load_certs(const char *path, STACK_OF(X509) **out)
{
	unsigned char *buf = NULL;
	size_t len;
	STACK_OF(X509) *certs = NULL;
	BIO *b = NULL;
	X509 *x;
	sg_status rc;

	*out = NULL;
	rc = sg_read_file(path, CERT_FILE_MAX, &buf, &len);
	if(rc)
		return sg_fail_prefix(rc, "certificate chain");
	b = BIO_new_mem_buf(buf, (int)len);
	certs = sk_X509_new_null();
	if(!b || !certs) {
		rc = sg_fail(SG_ERR_NOMEM, "out of memory");
		goto out;
	}
	while((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		if(!sk_X509_push(certs, x)) {
			X509_free(x);
			rc = sg_fail(SG_ERR_NOMEM, "out of memory");
			goto out;
		}
	}
	/* Running out of PEM blocks ends the loop with "no start line". */
	if(ERR_GET_REASON(ERR_peek_last_error()) == PEM_R_NO_START_LINE)
		ERR_clear_error();
	if(ERR_peek_error()) {
		rc = sg_fail_ossl(SG_ERR_MALFORMED, "%s: bad PEM certificate", path);
		goto out;
	}
	if(sk_X509_num(certs) == 0) {
		rc = sg_fail(SG_ERR_MALFORMED, "%s: no PEM certificate found", path);
		goto out;
	}
	*out = certs;
	certs = NULL;
out:
	sk_X509_pop_free(certs, X509_free);
	BIO_free(b);
	free(buf);
	return rc;
}

/*
 * Finds the certificate of s's key among certs by a test signature, puts
 * it first, and fills in the signer's leaf, type and subject.
 */
static sg_status signer_pick_leaf(sg_signer *s, STACK_OF(X509) *certs,
                                  const char *where)
{
	static const char probe[] = "signgate: does this key match its certificate?";
	unsigned char digest[32], *sig = NULL;
	size_t siglen = 0;
	int found = -1;
	sg_status rc;

	if(!EVP_Digest(probe, sizeof(probe), digest, NULL, EVP_sha256(), NULL))
		return sg_fail_ossl(SG_ERR_CRYPTO, "digest failed");
	rc = s->ops->sign(s->ctx, SG_MD_SHA256, digest, sizeof(digest), &sig, &siglen);
	if(rc)
		return sg_fail_prefix(rc, "test signature with the key failed");
	for(int i = 0; i < sk_X509_num(certs) && found < 0; i++)
		if(signer_sig_matches(sk_X509_value(certs, i), SG_MD_SHA256, digest,
		                      sizeof(digest), sig, siglen))
			found = i;
	free(sig);
	if(found < 0) {
		char subj[256] = "";
		X509_NAME_oneline(X509_get_subject_name(sk_X509_value(certs, 0)), subj,
		                  sizeof(subj));
		return sg_fail(SG_ERR_KEY,
		               "the key does not match the certificate%s in %s (first: %s)",
		               sk_X509_num(certs) > 1 ? "s" : "", where, subj);
	}
	s->leaf = sk_X509_delete(certs, found);
	if(!sk_X509_unshift(certs, s->leaf)) {
		X509_free(s->leaf);
		s->leaf = NULL;
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	}
	s->certs = certs;
	s->type = EVP_PKEY_is_a(X509_get0_pubkey(s->leaf), "RSA") ? SG_KEY_RSA : SG_KEY_EC;
	/* Verifiers need the intermediates from the signature itself. */
	s->chain_incomplete = X509_NAME_cmp(X509_get_subject_name(s->leaf),
	                                    X509_get_issuer_name(s->leaf)) != 0;
	for(int i = 1; i < sk_X509_num(certs) && s->chain_incomplete; i++)
		if(X509_check_issued(sk_X509_value(certs, i), s->leaf) == X509_V_OK)
			s->chain_incomplete = 0;
	X509_NAME_oneline(X509_get_subject_name(s->leaf), s->subject, sizeof(s->subject));
	return SG_OK;
}

static int signer_pem_pass(char *buf, int size, int rwflag, void *u)
{
	const char *pass = u;
	size_t n;

	if(!pass)
		return -1;
	n = strlen(pass);
	if(n > (size_t)size)
		return -1;
	memcpy(buf, pass, n);
	return (int)n;
}

static sg_status signer_load_pem_key(const char *path, const char *pass,
                                     EVP_PKEY **out)
{
	unsigned char *buf = NULL;
	char *pw = NULL;
	size_t len;
	BIO *b;
	sg_status rc;
	int encrypted;

	*out = NULL;
	rc = sg_read_file(path, CERT_FILE_MAX, &buf, &len);
	if(rc)
		return sg_fail_prefix(rc, "private key");
	/* "BEGIN ENCRYPTED PRIVATE KEY" or a legacy "Proc-Type: 4,ENCRYPTED". */
	encrypted = memmem(buf, len, "ENCRYPTED", 9) != NULL;
	if(pass && (rc = sg_secret_read(pass, &pw)) != SG_OK) {
		OPENSSL_cleanse(buf, len);
		free(buf);
		return sg_fail_prefix(rc, "key password");
	}
	b = BIO_new_mem_buf(buf, (int)len);
	if(b)
		*out = PEM_read_bio_PrivateKey(b, NULL, signer_pem_pass, pw);
	BIO_free(b);
	OPENSSL_cleanse(buf, len);
	free(buf);
	if(!*out) {
		if(encrypted && !pw)
			rc = sg_fail(SG_ERR_PIN, "%s is encrypted: give its password (--pass)", path);
		else if(encrypted)
			rc = sg_fail(SG_ERR_PIN, "wrong password for key file %s", path);
		else
			rc = sg_fail_ossl(SG_ERR_KEY, "%s: cannot read a PEM private key", path);
		ERR_clear_error();
	}
	sg_secret_free(pw);
	return rc;
}

sg_status sg_signer_open(const char *key, const char *cert, const char *pass,
                         sg_signer **out)
{
	STACK_OF(X509) *certs = NULL;
	X509 *tokcert = NULL;
	sg_key_type type;
	sg_signer *s;
	sg_status rc;

	*out = NULL;
	if(!key)
		return sg_fail(SG_ERR_USAGE, "no key given");
	s = calloc(1, sizeof(*s));
	if(!s)
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	if(!strncmp(key, "pkcs11:", 7)) {
		rc = sg_pkcs11_open(key, pass, &s->ops, &s->ctx, &type,
		                    cert ? NULL : &tokcert);
	} else {
		EVP_PKEY *pkey;
		if(!cert) {
			rc = sg_fail(SG_ERR_USAGE, "a key file needs its certificate (--cert)");
			goto out;
		}
		rc = signer_load_pem_key(key, pass, &pkey);
		if(!rc)
			rc = sg_softkey_new(pkey, &s->ops, &s->ctx);
	}
	if(rc)
		goto out;
	if(cert) {
		rc = signer_load_certs(cert, &certs);
		if(rc)
			goto out;
	} else {
		if(!tokcert) {
			rc = sg_fail(SG_ERR_USAGE,
			             "no certificate on the token for this key: give one (--cert)");
			goto out;
		}
		certs = sk_X509_new_null();
		if(!certs || !sk_X509_push(certs, tokcert)) {
			X509_free(tokcert);
			rc = sg_fail(SG_ERR_NOMEM, "out of memory");
			goto out;
		}
		tokcert = NULL;
	}
	rc = signer_pick_leaf(s, certs, cert ? cert : "the token");
	if(rc)
		goto out;
	certs = NULL;
	*out = s;
	return SG_OK;
out:
	sk_X509_pop_free(certs, X509_free);
	sg_signer_free(s);
	return rc;
}

sg_status sg_signer_open_pfx(const char *path, const char *pass,
                             sg_signer **out)
{
	unsigned char *buf = NULL;
	const unsigned char *p;
	size_t len;
	char *pw = NULL;
	PKCS12 *p12 = NULL;
	EVP_PKEY *pkey = NULL;
	X509 *leaf = NULL;
	STACK_OF(X509) *ca = NULL;
	sg_signer *s = NULL;
	sg_status rc;

	*out = NULL;
	rc = sg_read_file(path, CERT_FILE_MAX, &buf, &len);
	if(rc)
		return sg_fail_prefix(rc, "PKCS#12 file");
	if(pass && (rc = sg_secret_read(pass, &pw)) != SG_OK) {
		rc = sg_fail_prefix(rc, "PKCS#12 password");
		goto out;
	}
	p = buf;
	p12 = d2i_PKCS12(NULL, &p, (long)len);
	if(!p12) {
		rc = sg_fail_ossl(SG_ERR_MALFORMED, "%s is not a PKCS#12 file", path);
		goto out;
	}
	if(!PKCS12_verify_mac(p12, pw ? pw : "", -1) &&
	   !(pw == NULL && PKCS12_verify_mac(p12, NULL, 0))) {
		ERR_clear_error();
		rc = pw ? sg_fail(SG_ERR_PIN, "wrong password for PKCS#12 file %s", path)
		        : sg_fail(SG_ERR_PIN, "PKCS#12 file %s is protected by a password: "
		                  "give it (--pass)", path);
		goto out;
	}
	if(!PKCS12_parse(p12, pw ? pw : "", &pkey, &leaf, &ca) || !pkey || !leaf) {
		rc = sg_fail_ossl(SG_ERR_KEY, "%s: no key and certificate in the PKCS#12 file",
		                  path);
		goto out;
	}
	if(!ca && !(ca = sk_X509_new_null())) {
		rc = sg_fail(SG_ERR_NOMEM, "out of memory");
		goto out;
	}
	if(!sk_X509_unshift(ca, leaf)) {
		rc = sg_fail(SG_ERR_NOMEM, "out of memory");
		goto out;
	}
	leaf = NULL;
	s = calloc(1, sizeof(*s));
	if(!s) {
		rc = sg_fail(SG_ERR_NOMEM, "out of memory");
		goto out;
	}
	sg_softkey_new(pkey, &s->ops, &s->ctx);
	pkey = NULL;
	rc = signer_pick_leaf(s, ca, path);
	if(rc)
		goto out;
	ca = NULL;
	*out = s;
	s = NULL;
out:
	sg_signer_free(s);
	EVP_PKEY_free(pkey);
	X509_free(leaf);
	sk_X509_pop_free(ca, X509_free);
	PKCS12_free(p12);
	sg_secret_free(pw);
	if(buf) {
		OPENSSL_cleanse(buf, len);
		free(buf);
	}
	return rc;
}
