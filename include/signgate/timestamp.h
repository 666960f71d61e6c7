/*
 * timestamp.h - RFC 3161 timestamps for Authenticode signatures, from a
 * time-stamping authority (TSA) over HTTP or HTTPS.
 *
 * Windows checks a signature's timestamp to decide whether the file was
 * signed while the certificate was valid: a timestamped signature stays
 * valid after the certificate expires.  The timestamp token covers the
 * SignerInfo's signature value (encryptedDigest) and is stored as the
 * unauthenticated attribute 1.3.6.1.4.1.311.3.3.1 of that SignerInfo, as
 * signtool and osslsigncode do.  Only the primary signature of a file is
 * timestamped; nested signatures are left as they are.
 *
 * The token is checked for the nonce and message imprint we asked for; its
 * signature and the TSA's certificate chain are checked by verification
 * (signgate verify, Windows), not here.
 */
#ifndef SIGNGATE_TIMESTAMP_H
#define SIGNGATE_TIMESTAMP_H

#include <stddef.h>

#include "signgate/signgate.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most TSA URLs one call tries. */
#define SG_TSA_MAX_URLS 16

typedef struct sg_tsa_opts {
	const char *const *urls; /* http:// or https:// URLs (no user:password),
	                            tried in order until one gives a timestamp */
	size_t nurls;            /* 1 .. SG_TSA_MAX_URLS */
	const char *ca_file;     /* PEM roots for https TSAs; NULL: system store */
	sg_proxy proxy;          /* url NULL: libcurl's default, which honours
	                            the http_proxy, https_proxy (HTTPS_PROXY) and
	                            no_proxy variables; "": no proxy at all */
	long connect_timeout;    /* seconds per attempt; 0: 10 (at most timeout) */
	long timeout;            /* seconds for a whole attempt; 0: 30 */
	int retries;             /* extra attempts per URL after a connection
	                            failure or HTTP 502/503/504, waiting 500 ms, 1 s,
	                            ... (0 .. 10).  A URL that timed out is not
	                            tried again: the next one is. */
} sg_tsa_opts;

/* Checks o without any network traffic: URLs, counts, timeouts.
 * SG_ERR_USAGE naming the bad setting. */
sg_status sg_tsa_opts_check(const sg_tsa_opts *o);

/*
 * Adds an RFC 3161 timestamp to the DER Authenticode SignedData sig (its
 * primary signature) and re-encodes it into *out (sg_free).  An existing
 * RFC 3161 timestamp of that signature is replaced.  The imprint is the
 * hash of the signature value: SHA-256 for a sha256, sha384 or sha512
 * signature, SHA-1 for a sha1 one.
 *
 * SG_ERR_NETWORK: the TSA could not be reached or did not answer in time;
 * SG_ERR_REMOTE: it answered with something other than a granted
 * timestamp for this request (the detail names the URL, HTTP status and
 * Content-Type; a body that is not application/timestamp-reply is never
 * parsed).  When every URL fails, the last failure is returned and the
 * detail says how many URLs were tried.  SG_ERR_MALFORMED: sig is not an
 * Authenticode signature.
 */
sg_status sg_timestamp_add(const unsigned char *sig, size_t siglen,
                           const sg_tsa_opts *o, unsigned char **out,
                           size_t *outlen);

/*
 * Adds (or replaces) the timestamp of the signature of the signed file
 * in, writing out atomically (out may equal in).  The file's digest must
 * match its signature (SG_ERR_VERIFY otherwise) and the file must carry
 * exactly one certificate-table entry (SG_ERR_UNSUPPORTED otherwise, so
 * no signature is dropped).  SG_ERR_NOT_SIGNED for an unsigned file.
 */
sg_status sg_timestamp_file(const char *in, const char *out, const sg_tsa_opts *o);

/* What to do when no TSA gives a timestamp while signing. */
typedef enum sg_timestamp_policy {
	SG_TIMESTAMP_FAIL = 0,  /* fail: nothing is written */
	SG_TIMESTAMP_SKIP = 1,  /* sign without a timestamp; the result says why */
} sg_timestamp_policy;

/* How timestamping went, for the caller's warning or log. */
typedef struct sg_timestamp_result {
	int stamped;            /* 1: the signature carries a timestamp */
	int url_index;          /* which of o->urls gave it; -1 if none */
	sg_status status;       /* not stamped: the failure */
	char reason[512];       /* not stamped: its detail; "" otherwise */
} sg_timestamp_result;

/*
 * sg_sign_file() with a timestamp on the new signature (added before it
 * is nested, when nest is set).  With SG_TIMESTAMP_FAIL a timestamping
 * failure fails the call and nothing is written; with SG_TIMESTAMP_SKIP
 * the file is signed without a timestamp and res says why.  res may be
 * NULL.  Bad TSA options fail under either policy (SG_ERR_USAGE).
 */
sg_status sg_sign_file_timestamped(const char *in, const char *out, sg_md md,
                                   int nest, sg_signer *s,
                                   const sg_sign_opts *opts,
                                   const sg_tsa_opts *tsa,
                                   sg_timestamp_policy policy,
                                   sg_timestamp_result *res);

#ifdef __cplusplus
}
#endif
#endif /* SIGNGATE_TIMESTAMP_H */
