/*
 * signer_int.h - the signer backend interface.  A backend signs digests
 * with a key it holds (PKCS#11 token, software key); signer.c owns the
 * certificate chain and checks key and certificate agree.
 */
#ifndef SG_SIGNER_INT_H
#define SG_SIGNER_INT_H

#include <openssl/x509.h>

#include "signgate/signgate.h"

struct sg_signer_ops {
	const char *name;
	/* Signs digest (already hashed with md).  RSA: PKCS#1 v1.5 with the
	 * DigestInfo for md; EC: DER ECDSA-Sig-Value.  *sig from malloc. */
	sg_status (*sign)(void *ctx, sg_md md, const unsigned char *digest,
	                  size_t dlen, unsigned char **sig, size_t *siglen);
	void (*free)(void *ctx);
};

/*
 * PKCS#11 backend (pkcs11.c).  uri per RFC 7512; pin: a secret spec for the
 * PIN or NULL to use the URI's pin-source / pin-value.  If the token holds
 * a certificate with the key's CKA_ID (or label) and cert_out is not NULL,
 * it is returned there (the caller may ignore it when a PEM file is given).
 * *type_out: the key's type.
 */
sg_status sg_pkcs11_open(const char *uri, const char *pin,
                         const struct sg_signer_ops **ops, void **ctx,
                         sg_key_type *type_out, X509 **cert_out);

/* Software key backend (softkey.c): takes ownership of pkey. */
sg_status sg_softkey_new(EVP_PKEY *pkey, const struct sg_signer_ops **ops,
                         void **ctx);

/* For authenticode.c: the leaf, and every certificate to embed (leaf
 * first).  Owned by the signer. */
X509 *sg_signer_leaf(const sg_signer *s);
STACK_OF(X509) *sg_signer_certs(const sg_signer *s);

#endif
