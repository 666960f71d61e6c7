/*
 * revocation.c - is a signer's chain revoked?  Answered from CRLs (RFC 5280
 * section 5) given as files, or fetched over HTTP from a certificate's CRL
 * distribution points (RFC 5280 4.2.1.13) with libcurl, which honours the
 * http_proxy, https_proxy and no_proxy variables.
 *
 * Three answers, as Windows gives them: revoked; not revoked (every
 * certificate of the chain but the trust anchor has a current CRL signed
 * by its issuer, and none lists it); unknown (some certificate has no such
 * CRL: none given, none fetched, or only out-of-date ones).  Unknown does
 * not make a signature invalid, like Windows' default when the revocation
 * server is offline.  A certificate whose revocationDate comes after the
 * timestamp of a timestamped signature does not revoke that signature:
 * CAs date a revocation to the key's compromise for exactly this reason.
 * A CRL entry with reason removeFromCRL does not count; certificateHold
 * does.
 *
 * Not here: OCSP, delta CRLs (skipped), indirect CRLs and the issuing
 * distribution point's scoping, LDAP distribution points.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "http.h"
#include "internal.h"
#include "verify_int.h"

#define CRL_FILE_MAX    (64u << 20)  /* a CRL file or download */
#define CRL_MAX_FETCHES 32           /* URLs tried per verification */
#define CRL_URLS_PER_CERT 4

struct crl_tried {
	char *url;
	char err[200];          /* "" if it gave a CRL */
};

struct sg_crl_set {
	STACK_OF(X509_CRL) *crls;
	int fetch;
	const sg_proxy *proxy;  /* for fetches; NULL: the environment */
	struct crl_tried tried[CRL_MAX_FETCHES];
	size_t ntried;
};

/* PEM text has "-----BEGIN" somewhere (text may precede it); DER starts
 * with a SEQUENCE tag and never holds it in the first bytes. */
static int crl_is_pem(const unsigned char *buf, size_t len)
{
	for(size_t i = 0; i + 10 <= len && i < 65536; i++)
		if(buf[i] == '-' && !memcmp(buf + i, "-----BEGIN", 10))
			return 1;
	return 0;
}

/* Every CRL in buf: PEM (any number) or one DER.  Returns how many were
 * added to cs, or -1 when buf holds something that is not a CRL. */
static int crl_parse(sg_crl_set *cs, const unsigned char *buf, size_t len)
{
	BIO *b;
	X509_CRL *crl;
	int n = 0;

	if(len > INT_MAX)
		return -1;
	if(crl_is_pem(buf, len)) {
		b = BIO_new_mem_buf(buf, (int)len);
		while(b && (crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL))) {
			if(!sk_X509_CRL_push(cs->crls, crl)) {
				X509_CRL_free(crl);
				break;
			}
			n++;
		}
		BIO_free(b);
		ERR_clear_error(); /* the end of the PEM stream */
		return n ? n : -1;
	}
	{
		const unsigned char *p = buf;
		crl = d2i_X509_CRL(NULL, &p, (long)len);
		if(!crl || p != buf + len || !sk_X509_CRL_push(cs->crls, crl)) {
			X509_CRL_free(crl);
			ERR_clear_error();
			return -1;
		}
	}
	return 1;
}

sg_status sg_crl_set_new(const char *const *files, size_t nfiles, int fetch,
                         const sg_proxy *proxy, sg_crl_set **out)
{
	sg_crl_set *cs;
	unsigned char *buf;
	size_t len;
	sg_status rc;

	*out = NULL;
	cs = calloc(1, sizeof(*cs));
	if(!cs || !(cs->crls = sk_X509_CRL_new_null())) {
		free(cs);
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	}
	cs->fetch = fetch;
	cs->proxy = proxy;
	for(size_t i = 0; i < nfiles; i++) {
		rc = sg_read_file(files[i], CRL_FILE_MAX, &buf, &len);
		if(rc) {
			sg_crl_set_free(cs);
			return sg_fail_prefix(rc, "CRL file");
		}
		if(crl_parse(cs, buf, len) < 0) {
			free(buf);
			sg_crl_set_free(cs);
			return sg_fail(SG_ERR_MALFORMED, "%s holds no CRL (PEM or DER X509_CRL)",
			               files[i]);
		}
		free(buf);
	}
	*out = cs;
	return SG_OK;
}

void sg_crl_set_free(sg_crl_set *cs)
{
	if(!cs)
		return;
	sk_X509_CRL_pop_free(cs->crls, X509_CRL_free);
	for(size_t i = 0; i < cs->ntried; i++)
		free(cs->tried[i].url);
	free(cs);
}

/* ---------------------------------------------------------------- fetching */

/* GETs url once per verification; what it gives joins cs->crls.  Returns
 * the error text of this URL's attempt ("" if it gave CRLs). */
static const char *crl_fetch(sg_crl_set *cs, const char *url)
{
	static const sg_proxy env_proxy = { 0 };
	sg_http_req q = {
		.url = url, .protocols = "http,https", .redirects = 3, .connect_timeout = 10,
		.timeout = 30, .max_answer = CRL_FILE_MAX,
	};
	sg_http_reply rep;
	struct crl_tried *t;
	char *password = NULL;

	for(size_t i = 0; i < cs->ntried; i++)
		if(!strcmp(cs->tried[i].url, url))
			return cs->tried[i].err;
	if(cs->ntried >= CRL_MAX_FETCHES)
		return "too many CRL downloads for one verification";
	t = &cs->tried[cs->ntried];
	if(!(t->url = strdup(url)))
		return "out of memory";
	cs->ntried++;
	if(sg_http_proxy_opts(cs->proxy ? cs->proxy : &env_proxy, &q, &password) ||
	   sg_http_exchange(&q, &rep)) {
		snprintf(t->err, sizeof(t->err), "%.80s: %.110s", url, sg_last_error());
		sg_clear_error();
		sg_secret_free(password);
		return t->err;
	}
	sg_secret_free(password);
	if(rep.body.too_big || rep.cc == CURLE_FILESIZE_EXCEEDED)
		snprintf(t->err, sizeof(t->err), "%s: more than %u bytes", url, CRL_FILE_MAX);
	else if(rep.cc != CURLE_OK)
		snprintf(t->err, sizeof(t->err), "%.80s: %.110s", url,
		         rep.errbuf[0] ? rep.errbuf : curl_easy_strerror(rep.cc));
	else if(rep.http != 200)
		snprintf(t->err, sizeof(t->err), "%s: HTTP %ld", url, rep.http);
	else if(crl_parse(cs, rep.body.p, rep.body.len) < 0)
		snprintf(t->err, sizeof(t->err), "%s: the answer is not a CRL", url);
	free(rep.body.p);
	return t->err;
}

/* Fetches the CRLs of x's http(s) distribution points (full names only,
 * RFC 5280 4.2.1.13).  why gets the failure if none gave a CRL. */
static int crl_fetch_for(sg_crl_set *cs, X509 *x, char *why, size_t len)
{
	STACK_OF(DIST_POINT) *dps = X509_get_ext_d2i(x, NID_crl_distribution_points, NULL, NULL);
	int urls = 0, got = 0;

	for(int i = 0; i < sk_DIST_POINT_num(dps) && urls < CRL_URLS_PER_CERT; i++) {
		DIST_POINT *dp = sk_DIST_POINT_value(dps, i);
		if(!dp->distpoint || dp->distpoint->type != 0)
			continue;
		for(int j = 0; j < sk_GENERAL_NAME_num(dp->distpoint->name.fullname) &&
		               urls < CRL_URLS_PER_CERT; j++) {
			GENERAL_NAME *gn = sk_GENERAL_NAME_value(dp->distpoint->name.fullname, j);
			char url[1024];
			const char *err;
			int ulen;
			if(gn->type != GEN_URI)
				continue;
			ulen = ASN1_STRING_length(gn->d.uniformResourceIdentifier);
			if(ulen <= 0 || (size_t)ulen >= sizeof(url))
				continue;
			memcpy(url, ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier), (size_t)ulen);
			url[ulen] = '\0';
			if(strlen(url) != (size_t)ulen ||
			   (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8)))
				continue;
			urls++;
			err = crl_fetch(cs, url);
			if(!err[0])
				got = 1;
			else if(!got)
				snprintf(why, len, "fetching its CRL failed: %.180s", err);
		}
	}
	sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
	if(!urls)
		snprintf(why, len, "it names no http CRL distribution point");
	return got;
}

/* ---------------------------------------------------------------- checking */

static const char *crl_reason_name(long r)
{
	static const char *const names[] = {
		"unspecified", "keyCompromise", "cACompromise", "affiliationChanged",
		"superseded", "cessationOfOperation", "certificateHold", "7",
		"removeFromCRL", "privilegeWithdrawn", "aACompromise",
	};
	return r >= 0 && r < (long)(sizeof(names) / sizeof(names[0])) ? names[r] : "?";
}

/* A certificate's name for messages: its common name, else the whole
 * subject. */
static void crl_name(X509 *x, char *buf, int len)
{
	if(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, len) <= 0)
		X509_NAME_oneline(X509_get_subject_name(x), buf, len);
}

/* Looks x up in the current CRLs of its issuer iss.  why says what was
 * found (a revocation, a revocation after rev_time, or why unknown). */
static sg_revocation crl_check_cert(sg_crl_set *cs, X509 *x, X509 *iss, int64_t rev_time,
                                    int timestamped, int64_t now, char *why, size_t len)
{
	char sub[160], isub[160], d1[32], d2[32], stale[200] = "", fetched[220] = "";
	int current = 0;

	why[0] = '\0';
	crl_name(x, sub, sizeof(sub));
	crl_name(iss, isub, sizeof(isub));
	for(int pass = 0; pass < 2; pass++) {
		for(int i = 0; i < sk_X509_CRL_num(cs->crls); i++) {
			X509_CRL *crl = sk_X509_CRL_value(cs->crls, i);
			const ASN1_TIME *nu;
			X509_REVOKED *rev = NULL;
			int64_t tu, nt, rd;

			if(X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_issuer_name(x)))
				continue;
			/* RFC 5280 6.3.3 (f), (g): signed by the certificate's issuer. */
			if(X509_CRL_verify(crl, X509_get0_pubkey(iss)) != 1) {
				ERR_clear_error();
				snprintf(stale, sizeof(stale), "a CRL named for '%.100s' has a bad signature", isub);
				continue;
			}
			if(X509_CRL_get_ext_by_NID(crl, NID_delta_crl, -1) >= 0)
				continue;
			/* RFC 5280 6.3.3 (a): current at the time of checking. */
			if(!sg_vfy_time(X509_CRL_get0_lastUpdate(crl), &tu) || tu > now) {
				snprintf(stale, sizeof(stale), "the CRL of '%.100s' is not yet valid (thisUpdate %s)",
				         isub, sg_vfy_iso(tu, d1, sizeof(d1)));
				continue;
			}
			nu = X509_CRL_get0_nextUpdate(crl);
			if(nu && (!sg_vfy_time(nu, &nt) || nt < now)) {
				snprintf(stale, sizeof(stale), "the CRL of '%.100s' is out of date (nextUpdate %s)",
				         isub, sg_vfy_iso(nt, d1, sizeof(d1)));
				continue;
			}
			current = 1;
			if(X509_CRL_get0_by_cert(crl, &rev, x) != 1)
				continue; /* not listed, or removeFromCRL (2) */
			{
				ASN1_ENUMERATED *re = X509_REVOKED_get_ext_d2i(rev, NID_crl_reason, NULL, NULL);
				long reason = re ? ASN1_ENUMERATED_get(re) : 0;
				ASN1_ENUMERATED_free(re);
				sg_vfy_time(X509_REVOKED_get0_revocationDate(rev), &rd);
				if(rd <= rev_time || !timestamped) {
					snprintf(why, len, "'%.100s' revoked on %s (%s), CRL of '%.80s'", sub,
					         sg_vfy_iso(rd, d1, sizeof(d1)), crl_reason_name(reason), isub);
					return SG_REV_REVOKED;
				}
				snprintf(why, len, "'%.100s' revoked on %s (%s), after the timestamp (%s): "
				         "the signature stays valid", sub, sg_vfy_iso(rd, d1, sizeof(d1)),
				         crl_reason_name(reason), sg_vfy_iso(rev_time, d2, sizeof(d2)));
			}
		}
		if(current)
			return SG_REV_GOOD;
		if(pass || !cs->fetch)
			break;
		if(!crl_fetch_for(cs, x, fetched, sizeof(fetched)))
			break;
	}
	snprintf(why, len, "no current CRL for '%.80s' (issuer '%.60s')%s%.150s%s%.150s", sub, isub,
	         stale[0] ? ": " : "", stale, fetched[0] ? "; " : "", fetched);
	return SG_REV_UNKNOWN;
}

sg_revocation sg_crl_check_chain(sg_crl_set *cs, STACK_OF(X509) *chain,
                                 int64_t rev_time, int timestamped, int64_t now,
                                 char *detail, size_t len)
{
	sg_revocation res = SG_REV_GOOD;
	char why[512], unknown[512] = "", note[512] = "";
	int n = sk_X509_num(chain);

	detail[0] = '\0';
	/* The anchor (last) is not checked: Windows excludes the root. */
	for(int i = 0; i + 1 < n; i++) {
		sg_revocation r = crl_check_cert(cs, sk_X509_value(chain, i),
		                                 sk_X509_value(chain, i + 1), rev_time,
		                                 timestamped, now, why, sizeof(why));
		if(r == SG_REV_REVOKED) {
			snprintf(detail, len, "%s", why);
			return SG_REV_REVOKED;
		}
		if(r == SG_REV_UNKNOWN && res == SG_REV_GOOD) {
			res = SG_REV_UNKNOWN;
			snprintf(unknown, sizeof(unknown), "%s", why);
		}
		if(r == SG_REV_GOOD && why[0] && !note[0])
			snprintf(note, sizeof(note), "%s", why);
	}
	if(res == SG_REV_UNKNOWN)
		snprintf(detail, len, "%s", unknown);
	else if(note[0])
		snprintf(detail, len, "%s", note);
	else
		snprintf(detail, len, "%d certificate%s checked against %s issuer's CRL, "
		         "none revoked", n - 1, n == 2 ? "" : "s", n == 2 ? "its" : "their");
	return res;
}
