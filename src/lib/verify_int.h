/*
 * verify_int.h - the parts of verification that live in their own files:
 * timestamps (verify_ts.c: RFC 3161 tokens and Authenticode
 * countersignatures) and revocation (revocation.c: CRLs from files or
 * fetched from CRL distribution points).  verify.c drives them.
 */
#ifndef SG_VERIFY_INT_H
#define SG_VERIFY_INT_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>

#include "signgate/signgate.h"

/* An ASN.1 UTCTime or GeneralizedTime as Unix seconds; 0 if unreadable. */
static inline int sg_vfy_time(const ASN1_TIME *t, int64_t *out)
{
	struct tm tm;

	*out = 0;
	if(!t || !ASN1_TIME_to_tm(t, &tm))
		return 0;
	*out = (int64_t)timegm(&tm);
	return 1;
}

/* Unix seconds as ISO 8601 UTC ("2040-01-01T00:00:00Z") into buf[21+]. */
static inline const char *sg_vfy_iso(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if(!gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "@%lld", (long long)t);
	return buf;
}

/* A timestamp's verdict. */
typedef struct sg_ts_check {
	sg_ts_kind kind;
	int ok;
	int64_t time;
	char tsa[256];          /* subject of the TSA's certificate */
	char reason[400];       /* what failed, when !ok */
} sg_ts_check;

/*
 * Finds the timestamp of si (the SignerInfo of the Authenticode
 * SignedData p7) and checks it: the first RFC 3161 token
 * (1.3.6.1.4.1.311.3.3.1) or, failing that, the first countersignature
 * (1.2.840.113549.1.9.6).  The TSA's chain is built with store (plus the
 * certificates of the token, or of p7 for a countersignature) and checked
 * at the timestamp's own time.  Fills *out; kind SG_TS_NONE when there is
 * none.  Never fails: what is wrong goes to out->reason.
 */
void sg_vfy_timestamp(PKCS7 *p7, PKCS7_SIGNER_INFO *si, X509_STORE *store,
                      sg_ts_check *out);

/* CRLs for revocation checks: from files, and fetched on demand. */
typedef struct sg_crl_set sg_crl_set;

/* Loads every CRL of each file (PEM, several per file, or one DER).
 * fetch: CRLs missing for a certificate are fetched from its CRL
 * distribution points.  SG_ERR_IO / SG_ERR_MALFORMED naming the file. */
sg_status sg_crl_set_new(const char *const *files, size_t nfiles, int fetch,
                         const sg_proxy *proxy, sg_crl_set **out);
void sg_crl_set_free(sg_crl_set *cs);

/*
 * The revocation status of chain (leaf first, trust anchor last; the
 * anchor itself is not checked, as Windows excludes the root): each
 * certificate is looked up in a current CRL of its issuer whose signature
 * that issuer's key verifies.  A certificate counts as revoked if its
 * revocationDate is at or before rev_time (the timestamp's time for a
 * timestamped signature: a revocation after it leaves the signature
 * valid).  CRLs must be current at now.  detail says which certificate,
 * which CRL, or why the answer is unknown.  Without a timestamp
 * (timestamped 0) any listed certificate is revoked.
 */
sg_revocation sg_crl_check_chain(sg_crl_set *cs, STACK_OF(X509) *chain,
                                 int64_t rev_time, int timestamped, int64_t now,
                                 char *detail, size_t len);

#endif
