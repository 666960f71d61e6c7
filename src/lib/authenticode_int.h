/*
 * authenticode_int.h - helpers shared by authenticode.c (building) and
 * verify.c (checking).
 */
#ifndef SG_AUTHENTICODE_INT_H
#define SG_AUTHENTICODE_INT_H

#include <limits.h>

#include <openssl/pkcs7.h>

#include "signgate/signgate.h"

/* DER SpcIndirectDataContent for a file of format fmt with this digest. */
sg_status sg_ac_build_idc(const char *fmt, sg_md md, const unsigned char *digest,
                          size_t dlen, unsigned char **der, int *derlen);
/* The value of a DER SEQUENCE without its tag and length: what the
 * messageDigest attribute of an Authenticode signature covers. */
sg_status sg_ac_content_octets(const unsigned char *der, long len,
                               const unsigned char **val, long *vallen);
/*
 * A PKCS#7 SignedData signed by s: content (taken, even on failure) is the
 * encapsulated content of type ctype_nid; the messageDigest attribute is
 * md over covered; add_attrs (may be NULL) adds more signed attributes
 * between contentType and messageDigest; every certificate of s is
 * embedded.  Authenticode signatures and timestamp tokens are built so.
 */
struct sg_signer;
typedef sg_status (*sg_attr_fn)(PKCS7_SIGNER_INFO *si, void *arg);
sg_status sg_p7_sign(struct sg_signer *s, sg_md md, int ctype_nid, ASN1_TYPE *content,
                     const unsigned char *covered, size_t covlen,
                     sg_attr_fn add_attrs, void *arg, PKCS7 **out);

/* Parses DER into a SignedData with at least one signer. */
sg_status sg_ac_parse(const unsigned char *der, size_t len, PKCS7 **out);

/* The digest algorithm and digest that p7's SpcIndirectDataContent
 * carries, and the content octets its messageDigest attribute covers
 * (pointing into p7). */
sg_status sg_ac_read_content(PKCS7 *p7, sg_md *md, unsigned char *digest,
                             const unsigned char **content, long *content_len);

/* The checks a TimeStampResp body gets from the timestamp client
 * (timestamp.c), against a request of that imprint and nonce: status,
 * imprint, nonce, the TSA's certificate present.  The token, exactly as
 * received, in *tok (free()).  For the fuzz harness; the client calls the
 * same code. */
sg_status sg_ts_parse_reply_der(const unsigned char *body, size_t len, int imprint_nid,
                               const unsigned char *imprint, size_t imprint_len,
                               const ASN1_INTEGER *nonce, unsigned char **tok, size_t *toklen);

/* Signature entry idx of the file (see format.h). */
sg_status sg_file_get_signature_n(sg_file *f, unsigned idx, unsigned char **der,
                                  size_t *len);

/* Several digests of a file in one pass (file.c). */
sg_status sg_file_digests(sg_file *f, const sg_md *mds, size_t n,
                          unsigned char (*out)[SG_MAX_MD]);

#endif
