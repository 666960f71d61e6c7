/*
 * softkey.c - the software key backend: a private key held in memory,
 * loaded from a PEM or PKCS#12 file (the legacy method).
 */
#include <stdlib.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "internal.h"
#include "signer_int.h"

static sg_status softkey_sign(void *ctx, sg_md md, const unsigned char *digest,
                              size_t dlen, unsigned char **sig, size_t *siglen)
{
	EVP_PKEY *pkey = ctx;
	EVP_PKEY_CTX *pctx;
	unsigned char *out = NULL;
	size_t outlen = 0;
	sg_status rc = SG_OK;

	*sig = NULL;
	*siglen = 0;
	pctx = EVP_PKEY_CTX_new(pkey, NULL);
	if(!pctx || EVP_PKEY_sign_init(pctx) <= 0 ||
	   (EVP_PKEY_is_a(pkey, "RSA") &&
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0) ||
	   EVP_PKEY_CTX_set_signature_md(pctx, sg_md_evp(md)) <= 0 ||
	   EVP_PKEY_sign(pctx, NULL, &outlen, digest, dlen) <= 0 ||
	   !(out = malloc(outlen)) ||
	   EVP_PKEY_sign(pctx, out, &outlen, digest, dlen) <= 0) {
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "signing with the software key failed");
		free(out);
		out = NULL;
	}
	EVP_PKEY_CTX_free(pctx);
	*sig = out;
	*siglen = out ? outlen : 0;
	return rc;
}

static void softkey_free(void *ctx)
{
	EVP_PKEY_free(ctx);
}

static const struct sg_signer_ops softkey_ops = {
	.name = "software key",
	.sign = softkey_sign,
	.free = softkey_free,
};

sg_status sg_softkey_new(EVP_PKEY *pkey, const struct sg_signer_ops **ops,
                         void **ctx)
{
	*ops = &softkey_ops;
	*ctx = pkey;
	return SG_OK;
}
