/*
 * tsa.h - a time-stamping authority (RFC 3161) on an sg_signer: answers a
 * DER TimeStampReq with a DER TimeStampResp.  Used by the signing service
 * (POST /tsa); the key may live in a PKCS#11 token.  Not installed.
 */
#ifndef SG_TSA_H
#define SG_TSA_H

#include <stddef.h>
#include <stdint.h>

#include "signgate/signgate.h"

/* Policy OID used when none is configured: 1.3.6.1.4.1.32473 is the
 * enterprise number IANA reserves for documentation (RFC 5612), so it
 * names no real policy.  A site's TSA should set its own. */
#define SG_TSA_DEFAULT_POLICY "1.3.6.1.4.1.32473.1"

/* Largest TimeStampReq accepted (a request is ~60-100 bytes plus a nonce). */
#define SG_TSA_MAX_REQ 4096

typedef struct sg_tsa_policy {
	const char *policy;  /* dotted OID of the TSA policy; NULL: SG_TSA_DEFAULT_POLICY */
	sg_md md;            /* digest of the token's own signature */
} sg_tsa_policy;

/* What a response said, for the caller's log. */
typedef struct sg_tsa_info {
	int granted;                       /* 1: a token was issued */
	int fail_info;                     /* rejected: the PKIFailureInfo bit (TS_INFO_*); else -1 */
	char reason[160];                  /* rejected: why; "" when granted */
	char serial[2 * 20 + 1];           /* granted: serialNumber, hex */
	char imprint_alg[16];              /* "sha256", ...; "" if unknown */
	char imprint[2 * SG_MAX_MD + 1];   /* hashedMessage, hex ("" if unknown) */
	int64_t gen_time;                  /* granted: genTime, Unix seconds */
	int cert_req;                      /* the request's certReq */
	int has_nonce;
} sg_tsa_info;

/*
 * Answers the DER TimeStampReq req with a DER TimeStampResp in *resp
 * (sg_free).  SG_OK whenever a response was made: granted (a token signed
 * by s, its certificates included only when certReq is set), or rejection
 * with a PKIFailureInfo for a request we refuse (bad version, unknown or
 * malformed imprint, other policy, any extension); info (may be NULL)
 * says which.  SG_ERR_MALFORMED: req is not a DER TimeStampReq at all (an
 * HTTP server answers 400).  Other errors: no token could be made (HSM,
 * OpenSSL); sg_tsa_reject() can then answer with systemFailure.
 * Thread-safe if s is (every sg_signer is).
 */
sg_status sg_tsa_respond(sg_signer *s, const unsigned char *req, size_t reqlen,
                         const sg_tsa_policy *p, unsigned char **resp,
                         size_t *resplen, sg_tsa_info *info);

/* A TimeStampResp with status rejection, failInfo bit fail_info (TS_INFO_*
 * of <openssl/ts.h>) and text (may be NULL).  *resp freed with sg_free. */
sg_status sg_tsa_reject(int fail_info, const char *text, unsigned char **resp,
                        size_t *resplen);

/* Checks that s may act as a TSA (RFC 3161 2.3): its certificate has an
 * extendedKeyUsage extension, marked critical, holding only timeStamping,
 * and is valid now.  SG_ERR_KEY with the reason otherwise. */
sg_status sg_tsa_check_signer(const sg_signer *s);

#endif
