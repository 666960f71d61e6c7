/*
 * timestamp.c - RFC 3161 timestamps for Authenticode signatures, as a
 * client of a time-stamping authority (TSA) over HTTP(S) with libcurl.
 *
 * RFC 3161 section 2.4.1: a TimeStampReq (version 1, messageImprint, a
 * random 64-bit nonce, certReq TRUE) is POSTed as
 * application/timestamp-query (section 3.4); only an HTTP 200 answer of
 * type application/timestamp-reply is parsed, as a TimeStampResp (2.4.2)
 * whose status must be granted or grantedWithMods and whose TSTInfo must
 * carry our messageImprint and nonce.  What is stamped is Microsoft's
 * convention for RFC 3161 Authenticode timestamps: the imprint hashes the
 * SignerInfo's encryptedDigest (the signature value), and the token (the
 * TimeStampToken ContentInfo, as the TSA encoded it) becomes the
 * unauthenticated attribute 1.3.6.1.4.1.311.3.3.1 of that SignerInfo.
 *
 * Each request uses its own curl easy handle: any number of threads may
 * timestamp at once.  URLs are tried in order; a URL is tried again
 * (with backoff) only after a connection failure or HTTP 502/503/504, not
 * after a timeout, so a stalled TSA costs one timeout.
 *
 * Not here: checking the token's signature and the TSA's chain (that is
 * verification's job), legacy Authenticode countersignatures (pre-RFC 3161
 * "1.3.6.1.4.1.311.3.2.1" requests), timestamping nested signatures.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>
#include <openssl/ts.h>
#include <openssl/x509.h>

#include "authenticode_int.h"
#include "http.h"
#include "internal.h"
#include "signgate/timestamp.h"
#include "spc.h"

#define TS_MAX_ANSWER (1u << 20)      /* bytes of a TimeStampResp we accept */
#define TS_BACKOFF_MS 500
#define TS_BACKOFF_MAX_MS 5000
#define TS_REPLY_TYPE "application/timestamp-reply"

/* What one attempt gave. */
typedef sg_http_reply ts_reply;

/* One request, as sent; what the answer must match. */
struct ts_request {
	unsigned char *der;
	size_t len;
	int imprint_nid;
	unsigned char imprint[SG_MAX_MD];
	size_t imprint_len;
	ASN1_INTEGER *nonce;
};


/* ---------------------------------------------------------------- options */

static sg_status ts_check_url(const char *url)
{
	const char *host;

	if(!url || !*url)
		return sg_fail(SG_ERR_USAGE, "empty timestamp server URL");
	for(const char *p = url; *p; p++)
		if((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return sg_fail(SG_ERR_USAGE, "timestamp server URL '%.200s' contains a space, a "
			               "control or a non-ASCII character", url);
	if(!strncasecmp(url, "http://", 7))
		host = url + 7;
	else if(!strncasecmp(url, "https://", 8))
		host = url + 8;
	else
		return sg_fail(SG_ERR_USAGE, "timestamp server URL '%.200s' must start with http:// "
		               "or https://", url);
	if(!*host || *host == '/' || *host == '?' || *host == '#')
		return sg_fail(SG_ERR_USAGE, "timestamp server URL '%.200s' has no host", url);
	/* It appears in messages and logs: no place for a password. */
	if(memchr(host, '@', strcspn(host, "/?#")))
		return sg_fail(SG_ERR_USAGE, "timestamp server URL must not carry a user name or "
		               "password");
	return SG_OK;
}

sg_status sg_tsa_opts_check(const sg_tsa_opts *o)
{
	sg_status rc;

	if(!o || !o->urls || o->nurls == 0)
		return sg_fail(SG_ERR_USAGE, "no timestamp server URL given");
	if(o->nurls > SG_TSA_MAX_URLS)
		return sg_fail(SG_ERR_USAGE, "%zu timestamp server URLs given; at most %d",
		               o->nurls, SG_TSA_MAX_URLS);
	for(size_t i = 0; i < o->nurls; i++) {
		rc = ts_check_url(o->urls[i]);
		if(rc)
			return rc;
	}
	if(o->connect_timeout < 0 || o->connect_timeout > 3600 || o->timeout < 0 ||
	   o->timeout > 3600)
		return sg_fail(SG_ERR_USAGE, "timestamp server timeouts must be 0 to 3600 seconds");
	if(o->retries < 0 || o->retries > 10)
		return sg_fail(SG_ERR_USAGE, "timestamp server retries must be 0 to 10, not %d",
		               o->retries);
	return SG_OK;
}

/* ---------------------------------------------------------------- request */

static void ts_request_free(struct ts_request *r)
{
	OPENSSL_free(r->der);
	ASN1_INTEGER_free(r->nonce);
	memset(r, 0, sizeof(*r));
}

/*
 * The TimeStampReq for si: imprint over its encryptedDigest with SHA-1
 * for a SHA-1 signature and SHA-256 otherwise (what Windows and signtool
 * expect), a fresh nonce, certReq TRUE (the TSA's certificate must be in
 * the token for Windows to check it).
 */
static sg_status ts_build_request(PKCS7_SIGNER_INFO *si, struct ts_request *r)
{
	unsigned char rnd[8];
	TS_REQ *req = NULL;
	TS_MSG_IMPRINT *mi = NULL;
	X509_ALGOR *alg = NULL;
	BIGNUM *bn = NULL;
	const EVP_MD *evp;
	unsigned int hlen = 0;
	sg_md smd;
	int len;
	sg_status rc = SG_OK;

	memset(r, 0, sizeof(*r));
	if(!si->enc_digest || si->enc_digest->length <= 0)
		return sg_fail(SG_ERR_MALFORMED, "the signature has no signature value to timestamp");
	rc = sg_md_from_nid(OBJ_obj2nid(si->digest_alg->algorithm), &smd);
	if(rc)
		return sg_fail_prefix(rc, "cannot timestamp the signature");
	r->imprint_nid = smd == SG_MD_SHA1 ? NID_sha1 : NID_sha256;
	evp = smd == SG_MD_SHA1 ? EVP_sha1() : EVP_sha256();
	if(!EVP_Digest(si->enc_digest->data, (size_t)si->enc_digest->length, r->imprint,
	               &hlen, evp, NULL))
		return sg_fail_ossl(SG_ERR_CRYPTO, "cannot hash the signature value");
	r->imprint_len = hlen;
	if(RAND_bytes(rnd, sizeof(rnd)) != 1) {
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "no random bytes for the timestamp nonce");
		goto out;
	}
	req = TS_REQ_new();
	mi = TS_MSG_IMPRINT_new();
	alg = X509_ALGOR_new();
	bn = BN_bin2bn(rnd, sizeof(rnd), NULL);
	if(!req || !mi || !alg || !bn || !(r->nonce = BN_to_ASN1_INTEGER(bn, NULL)) ||
	   !X509_ALGOR_set0(alg, OBJ_nid2obj(r->imprint_nid), V_ASN1_NULL, NULL) ||
	   !TS_MSG_IMPRINT_set_algo(mi, alg) ||
	   !TS_MSG_IMPRINT_set_msg(mi, r->imprint, (int)r->imprint_len) ||
	   !TS_REQ_set_version(req, 1) || !TS_REQ_set_msg_imprint(req, mi) ||
	   !TS_REQ_set_nonce(req, r->nonce) || !TS_REQ_set_cert_req(req, 1)) {
		rc = sg_fail_ossl(SG_ERR_NOMEM, "cannot build the TimeStampReq");
		goto out;
	}
	len = i2d_TS_REQ(req, &r->der);
	if(len <= 0) {
		r->der = NULL;
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "cannot encode the TimeStampReq");
		goto out;
	}
	r->len = (size_t)len;
out:
	if(rc)
		ts_request_free(r);
	BN_free(bn);
	X509_ALGOR_free(alg);
	TS_MSG_IMPRINT_free(mi);
	TS_REQ_free(req);
	return rc;
}

/* ---------------------------------------------------------------- HTTP */

/* One POST of the request to url.  Fills rep (the caller frees
 * rep->body.p); non-zero only when the request could not be set up. */
static sg_status ts_post(const sg_tsa_opts *o, const char *url, const struct ts_request *r,
                         ts_reply *rep)
{
	static const char *const lines[] = { "Content-Type: application/timestamp-query",
	                                     ("Accept: " TS_REPLY_TYPE), "Expect:" };
	long timeout = o->timeout ? o->timeout : 30;
	long ctimeout = o->connect_timeout ? o->connect_timeout : 10;
	sg_http_req q = {
		.url = url, .headers = lines, .nheaders = sizeof(lines) / sizeof(lines[0]),
		.body = r->der, .bodylen = r->len, .protocols = "http,https",
		.connect_timeout = ctimeout < timeout ? ctimeout : timeout, .timeout = timeout,
		.ca_file = o->ca_file, .max_answer = TS_MAX_ANSWER,
	};
	char *password = NULL;
	sg_status rc;

	/* A NULL url leaves libcurl's default: the proxy environment variables. */
	rc = sg_http_proxy_opts(&o->proxy, &q, &password);
	if(!rc)
		rc = sg_http_exchange(&q, rep);
	sg_secret_free(password);
	return rc;
}

/* Worth another attempt at the same URL: it may be restarting or busy.
 * Not a timeout (the next URL is better), not TLS or URL errors. */
static int ts_retryable(const ts_reply *rep)
{
	if(rep->cc == CURLE_OK)
		return rep->http == 502 || rep->http == 503 || rep->http == 504;
	switch(rep->cc) {
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
		return 1;
	default:
		return 0;
	}
}

static int ts_is_reply_type(const char *ctype)
{
	size_t n = strlen(TS_REPLY_TYPE);

	return !strncasecmp(ctype, TS_REPLY_TYPE, n) &&
	       (ctype[n] == '\0' || ctype[n] == ';' || ctype[n] == ' ');
}

/* Copies up to outlen-1 bytes of text, printable ASCII only. */
static void ts_clean_text(const unsigned char *s, size_t len, char *out, size_t outlen)
{
	size_t o = 0;

	for(size_t i = 0; i < len && o + 1 < outlen; i++)
		out[o++] = (s[i] >= 0x20 && s[i] < 0x7f) ? (char)s[i] : ' ';
	while(o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
}

/* ---------------------------------------------------------------- answer */

/* RFC 3161 2.4.2 PKIStatus and PKIFailureInfo, for messages. */
static const char *ts_status_name(long st)
{
	static const char *const names[] = { "granted", "grantedWithMods", "rejection",
	                                     "waiting", "revocationWarning",
	                                     "revocationNotification" };

	return st >= 0 && st < 6 ? names[st] : "unknown";
}

static void ts_fail_info(const ASN1_BIT_STRING *fi, char *out, size_t outlen)
{
	static const struct { int bit; const char *name; } bits[] = {
		{ 0, "badAlg" }, { 2, "badRequest" }, { 5, "badDataFormat" },
		{ 14, "timeNotAvailable" }, { 15, "unacceptedPolicy" },
		{ 16, "unacceptedExtension" }, { 17, "addInfoNotAvailable" },
		{ 25, "systemFailure" },
	};
	size_t o = 0;

	out[0] = '\0';
	for(size_t i = 0; fi && i < sizeof(bits) / sizeof(bits[0]); i++) {
		if(!ASN1_BIT_STRING_get_bit(fi, bits[i].bit))
			continue;
		int n = snprintf(out + o, outlen - o, "%s%s", o ? ", " : "", bits[i].name);
		if(n < 0 || (size_t)n >= outlen - o)
			break;
		o += (size_t)n;
	}
}

/*
 * The bytes of the timeStampToken inside the DER TimeStampResp, as the TSA
 * encoded them: re-encoding could change a BER token and break its
 * signature.  TimeStampResp ::= SEQUENCE { status PKIStatusInfo,
 * timeStampToken TimeStampToken OPTIONAL }.
 */
static int ts_token_span(const unsigned char *der, long len, const unsigned char **tok,
                         long *toklen)
{
	const unsigned char *p = der, *end, *t;
	long l;
	int tag, xclass, ret;

	ret = ASN1_get_object(&p, &l, &tag, &xclass, len);
	if((ret & 0x80) || (ret & 1) || tag != V_ASN1_SEQUENCE)
		goto bad;
	end = p + l;
	ret = ASN1_get_object(&p, &l, &tag, &xclass, end - p);   /* status */
	if((ret & 0x80) || (ret & 1))
		goto bad;
	p += l;
	if(p >= end)
		goto bad;
	t = p;
	ret = ASN1_get_object(&p, &l, &tag, &xclass, end - p);   /* token */
	if((ret & 0x80) || (ret & 1) || tag != V_ASN1_SEQUENCE || p + l != end)
		goto bad;
	*tok = t;
	*toklen = (long)(end - t);
	return 1;
bad:
	ERR_clear_error();
	return 0;
}

/* Checks a 200 application/timestamp-reply body; the token in *tok
 * (malloc'd) on success.  The detail does not name the URL yet. */
static sg_status ts_parse_reply(const ts_reply *rep, const struct ts_request *r,
                                unsigned char **tok, size_t *toklen)
{
	const unsigned char *p = rep->body.p, *span;
	TS_RESP *resp = NULL;
	TS_STATUS_INFO *si;
	TS_TST_INFO *tst;
	TS_MSG_IMPRINT *mi;
	const ASN1_INTEGER *nonce;
	const ASN1_OCTET_STRING *msg;
	unsigned char *enc = NULL;
	long st, spanlen;
	int enclen;
	sg_status rc = SG_OK;

	*tok = NULL;
	*toklen = 0;
	if(rep->body.len == 0)
		return sg_fail(SG_ERR_REMOTE, "its answer is empty");
	resp = d2i_TS_RESP(NULL, &p, (long)rep->body.len);
	if(!resp) {
		rc = sg_fail_ossl(SG_ERR_REMOTE, "its answer is not a DER TimeStampResp (RFC 3161)");
		goto out;
	}
	if(p != rep->body.p + rep->body.len) {
		rc = sg_fail(SG_ERR_REMOTE, "%zu bytes follow its TimeStampResp",
		             rep->body.len - (size_t)(p - rep->body.p));
		goto out;
	}
	si = TS_RESP_get_status_info(resp);
	st = ASN1_INTEGER_get(TS_STATUS_INFO_get0_status(si));
	if(st != TS_STATUS_GRANTED && st != TS_STATUS_GRANTED_WITH_MODS) {
		const STACK_OF(ASN1_UTF8STRING) *text = TS_STATUS_INFO_get0_text(si);
		char why[160] = "", fi[160];
		if(sk_ASN1_UTF8STRING_num(text) > 0) {
			const ASN1_UTF8STRING *s = sk_ASN1_UTF8STRING_value(text, 0);
			ts_clean_text(s->data, (size_t)s->length, why, sizeof(why));
		}
		ts_fail_info(TS_STATUS_INFO_get0_failure_info(si), fi, sizeof(fi));
		rc = sg_fail(SG_ERR_REMOTE, "it refused the request: status %s (%ld)%s%s%s%s%s",
		             ts_status_name(st), st, fi[0] ? ", failInfo " : "", fi,
		             why[0] ? ": \"" : "", why, why[0] ? "\"" : "");
		goto out;
	}
	tst = TS_RESP_get_tst_info(resp);
	if(!TS_RESP_get_token(resp) || !tst) {
		rc = sg_fail(SG_ERR_REMOTE, "its answer says granted but holds no timestamp token");
		goto out;
	}
	/* RFC 3161 2.4.2: the messageImprint and nonce must be the request's. */
	mi = TS_TST_INFO_get_msg_imprint(tst);
	msg = TS_MSG_IMPRINT_get_msg(mi);
	if(OBJ_obj2nid(TS_MSG_IMPRINT_get_algo(mi)->algorithm) != r->imprint_nid ||
	   !msg || (size_t)msg->length != r->imprint_len ||
	   memcmp(msg->data, r->imprint, r->imprint_len)) {
		rc = sg_fail(SG_ERR_REMOTE, "its timestamp is for another request: the message "
		             "imprint is not the one sent");
		goto out;
	}
	nonce = TS_TST_INFO_get_nonce(tst);
	if(!nonce || ASN1_INTEGER_cmp(nonce, r->nonce)) {
		rc = sg_fail(SG_ERR_REMOTE, "its timestamp %s", nonce ? "carries another nonce than "
		             "the one sent (a replayed answer?)" : "carries no nonce, though one was sent");
		goto out;
	}
	/* We asked for the TSA's certificate (certReq): a token without it
	 * could not be checked by any verifier. */
	{
		PKCS7 *t = TS_RESP_get_token(resp);
		if(!PKCS7_type_is_signed(t) || sk_X509_num(t->d.sign->cert) == 0) {
			rc = sg_fail(SG_ERR_REMOTE, "its timestamp token carries no certificate, "
			             "though the request asked for the TSA's (certReq)");
			goto out;
		}
	}
	if(ts_token_span(rep->body.p, (long)rep->body.len, &span, &spanlen)) {
		*tok = malloc((size_t)spanlen);
		if(!*tok) {
			rc = sg_fail(SG_ERR_NOMEM, "out of memory");
			goto out;
		}
		memcpy(*tok, span, (size_t)spanlen);
		*toklen = (size_t)spanlen;
	} else {
		/* Indefinite lengths somewhere outside the token: encode it. */
		enclen = i2d_PKCS7(TS_RESP_get_token(resp), &enc);
		if(enclen <= 0 || !(*tok = malloc((size_t)enclen))) {
			rc = sg_fail_ossl(SG_ERR_NOMEM, "cannot encode the timestamp token");
			goto out;
		}
		memcpy(*tok, enc, (size_t)enclen);
		*toklen = (size_t)enclen;
	}
out:
	OPENSSL_free(enc);
	TS_RESP_free(resp);
	return rc;
}

sg_status sg_ts_parse_reply_der(const unsigned char *body, size_t len, int imprint_nid,
                               const unsigned char *imprint, size_t imprint_len,
                               const ASN1_INTEGER *nonce, unsigned char **tok, size_t *toklen)
{
	ts_reply rep;
	struct ts_request r;

	if(imprint_len > sizeof(r.imprint))
		return sg_fail(SG_ERR_USAGE, "message imprint of %zu bytes", imprint_len);
	memset(&rep, 0, sizeof(rep));
	memset(&r, 0, sizeof(r));
	rep.body.p = (unsigned char *)body;   /* only read */
	rep.body.len = len;
	r.imprint_nid = imprint_nid;
	memcpy(r.imprint, imprint, imprint_len);
	r.imprint_len = imprint_len;
	r.nonce = (ASN1_INTEGER *)nonce;      /* only read */
	return ts_parse_reply(&rep, &r, tok, toklen);
}

/* The verdict on one URL's final attempt; the token on success. */
static sg_status ts_judge(const sg_tsa_opts *o, const char *url, const ts_reply *rep,
                          int attempts, const struct ts_request *r, unsigned char **tok,
                          size_t *toklen)
{
	const char *ctype = rep->ctype[0] ? rep->ctype : "(none)";
	char text[120] = "";
	sg_status rc;

	if(rep->body.too_big || rep->cc == CURLE_FILESIZE_EXCEEDED)
		return sg_fail(SG_ERR_REMOTE, "timestamp server %s: its answer is larger than %u bytes",
		               url, TS_MAX_ANSWER);
	if(rep->cc == CURLE_OUT_OF_MEMORY)
		return sg_fail(SG_ERR_NOMEM, "out of memory talking to timestamp server %s", url);
	if(rep->cc != CURLE_OK)
		return sg_fail(SG_ERR_NETWORK, "timestamp server %s%s: %s%s%s (%d attempt%s)%s", url,
		               o->proxy.url && *o->proxy.url ? " (through the proxy)" : "",
		               curl_easy_strerror(rep->cc), rep->errbuf[0] ? ": " : "", rep->errbuf,
		               attempts, attempts == 1 ? "" : "s",
		               rep->cc == CURLE_PEER_FAILED_VERIFICATION && !o->ca_file
		                   ? "; its certificate was checked against the system's roots only: "
		                     "give its CA (--timestamp-ca, or timestamp_ca in a configuration)"
		                   : "");
	if(rep->http != 200) {
		/* A short plain-text reason helps; anything else is not shown. */
		if(!strncasecmp(rep->ctype, "text/plain", 10) && rep->body.len)
			ts_clean_text(rep->body.p, rep->body.len, text, 100);
		return sg_fail(SG_ERR_REMOTE, "timestamp server %s answered HTTP %ld with "
		               "Content-Type %s, not a timestamp%s%s%s%s", url, rep->http, ctype,
		               text[0] ? ": \"" : "", text, text[0] ? "\"" : "",
		               attempts > 1 ? " (after retries)" : "");
	}
	if(!ts_is_reply_type(rep->ctype))
		return sg_fail(SG_ERR_REMOTE, "timestamp server %s answered HTTP 200 with "
		               "Content-Type %s, not " TS_REPLY_TYPE " (is the URL right?)",
		               url, ctype);
	rc = ts_parse_reply(rep, r, tok, toklen);
	if(rc)
		rc = sg_fail_prefix(rc, "timestamp server %s (HTTP 200, %s)", url, ctype);
	return rc;
}

/* Asks each URL in turn until one gives a token; *used is its index. */
static sg_status ts_fetch(const sg_tsa_opts *o, const struct ts_request *r,
                          unsigned char **tok, size_t *toklen, int *used)
{
	ts_reply rep = { 0 };
	sg_status rc = SG_ERR_INTERNAL;

	*used = -1;
	rc = sg_http_init();
	if(rc)
		return rc;
	for(size_t i = 0; i < o->nurls; i++) {
		int attempts = 0;
		for(;;) {
			free(rep.body.p);
			rc = ts_post(o, o->urls[i], r, &rep);
			if(rc)
				goto out;
			attempts++;
			if(attempts <= o->retries && ts_retryable(&rep)) {
				long ms = (long)TS_BACKOFF_MS << (attempts - 1 < 4 ? attempts - 1 : 4);
				sg_http_sleep_ms(ms < TS_BACKOFF_MAX_MS ? ms : TS_BACKOFF_MAX_MS);
				continue;
			}
			break;
		}
		rc = ts_judge(o, o->urls[i], &rep, attempts, r, tok, toklen);
		if(rc == SG_OK) {
			*used = (int)i;
			break;
		}
		if(rc == SG_ERR_NOMEM)
			break;
	}
	if(rc && o->nurls > 1) {
		char last[1024];
		snprintf(last, sizeof(last), "%s", sg_last_error());
		rc = sg_fail(rc, "none of %zu timestamp servers gave a timestamp; the last: %s",
		             o->nurls, last);
	}
out:
	free(rep.body.p);
	return rc;
}

/* ---------------------------------------------------------------- signature */

/* Replaces si's RFC 3161 timestamps with the token tok. */
static sg_status ts_set_token(PKCS7_SIGNER_INFO *si, const unsigned char *tok, size_t len)
{
	ASN1_OBJECT *obj = OBJ_nid2obj(sg_nid_spc_rfc3161);
	int idx;

	if(len > INT_MAX)
		return sg_fail(SG_ERR_TOO_LARGE, "timestamp token too large");
	while((idx = X509at_get_attr_by_OBJ(si->unauth_attr, obj, -1)) >= 0)
		X509_ATTRIBUTE_free(X509at_delete_attr(si->unauth_attr, idx));
	if(!X509at_add1_attr_by_OBJ(&si->unauth_attr, obj, V_ASN1_SEQUENCE, tok, (int)len))
		return sg_fail_ossl(SG_ERR_CRYPTO, "cannot add the timestamp to the signature");
	return SG_OK;
}

/* DER of p7 in malloc'd memory. */
static sg_status ts_encode(PKCS7 *p7, unsigned char **der, size_t *derlen)
{
	unsigned char *enc = NULL;
	int len = i2d_PKCS7(p7, &enc);

	if(len <= 0)
		return sg_fail_ossl(SG_ERR_CRYPTO, "cannot encode the timestamped signature");
	*der = malloc((size_t)len);
	if(!*der) {
		OPENSSL_free(enc);
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	}
	memcpy(*der, enc, (size_t)len);
	*derlen = (size_t)len;
	OPENSSL_free(enc);
	return SG_OK;
}

/* sg_timestamp_add, also telling which URL answered. */
static sg_status ts_add(const unsigned char *sig, size_t siglen, const sg_tsa_opts *o,
                        unsigned char **out, size_t *outlen, int *used)
{
	struct ts_request r = { 0 };
	unsigned char *tok = NULL, d[SG_MAX_MD];
	const unsigned char *content;
	long content_len;
	size_t toklen = 0;
	PKCS7 *p7 = NULL;
	sg_md md;
	sg_status rc;

	*out = NULL;
	*outlen = 0;
	*used = -1;
	rc = sg_tsa_opts_check(o);
	if(rc)
		return rc;
	sg_spc_init();
	rc = sg_ac_parse(sig, siglen, &p7);
	if(!rc)
		rc = sg_ac_read_content(p7, &md, d, &content, &content_len);
	if(rc) {
		rc = sg_fail_prefix(rc, "cannot timestamp");
		goto out;
	}
	/* sg_ac_parse made sure there is exactly one SignerInfo. */
	rc = ts_build_request(sk_PKCS7_SIGNER_INFO_value(PKCS7_get_signer_info(p7), 0), &r);
	if(!rc)
		rc = ts_fetch(o, &r, &tok, &toklen, used);
	if(!rc)
		rc = ts_set_token(sk_PKCS7_SIGNER_INFO_value(PKCS7_get_signer_info(p7), 0), tok,
		                  toklen);
	if(!rc)
		rc = ts_encode(p7, out, outlen);
	if(rc)
		*used = -1;
out:
	free(tok);
	ts_request_free(&r);
	PKCS7_free(p7);
	return rc;
}

sg_status sg_timestamp_add(const unsigned char *sig, size_t siglen, const sg_tsa_opts *o,
                           unsigned char **out, size_t *outlen)
{
	int used;

	return ts_add(sig, siglen, o, out, outlen, &used);
}

/* ---------------------------------------------------------------- files */

sg_status sg_timestamp_file(const char *in, const char *out, const sg_tsa_opts *o)
{
	unsigned char *sig = NULL, *extra = NULL, *stamped = NULL;
	size_t siglen = 0, extralen = 0, stampedlen = 0;
	sg_file *f = NULL;
	sg_md md;
	int used;
	sg_status rc;

	rc = sg_tsa_opts_check(o);
	if(rc)
		return rc;
	rc = sg_file_open(in, &f);
	if(rc)
		return rc;
	rc = sg_file_get_signature(f, &sig, &siglen);
	if(rc == SG_ERR_NOT_SIGNED) {
		rc = sg_fail(rc, "%s is not signed: sign it first (signgate sign --timestamp URL "
		             "signs and timestamps at once)", in);
		goto out;
	}
	if(rc)
		goto out;
	/* sg_file_write_fd writes one signature: a second entry would be lost. */
	rc = sg_file_get_signature_n(f, 1, &extra, &extralen);
	if(rc == SG_OK) {
		rc = sg_fail(SG_ERR_UNSUPPORTED, "%s has more than one certificate-table entry; "
		             "timestamping it would drop all but the first", in);
		goto out;
	}
	if(rc != SG_ERR_NOT_FOUND)
		goto out;
	sg_clear_error();
	rc = ts_add(sig, siglen, o, &stamped, &stampedlen, &used);
	if(rc) {
		if(rc == SG_ERR_MALFORMED)
			rc = sg_fail_prefix(rc, "%s", in);
		goto out;
	}
	/* A stale signature gets no fresh timestamp. */
	rc = sg_embed_checked(f, stamped, stampedlen, out, &md);
	if(rc == SG_ERR_VERIFY)
		rc = sg_fail(rc, "the signature of %s does not match its contents (%s digest "
		             "differs): sign it again rather than timestamp it", in, sg_md_name(md));
out:
	free(stamped);
	free(extra);
	free(sig);
	sg_file_close(f);
	return rc;
}

struct ts_hook {
	const sg_tsa_opts *tsa;
	sg_timestamp_policy policy;
	sg_timestamp_result *res;
};

/* sg_sign_file_ex's hook: timestamp the new signature, by the policy. */
static sg_status ts_sign_hook(void *arg, const unsigned char *sig, size_t siglen,
                              unsigned char **out, size_t *outlen)
{
	struct ts_hook *h = arg;
	int used = -1;
	sg_status rc;

	rc = ts_add(sig, siglen, h->tsa, out, outlen, &used);
	if(!rc) {
		h->res->stamped = 1;
		h->res->url_index = used;
	} else if(h->policy == SG_TIMESTAMP_SKIP &&
	          (rc == SG_ERR_NETWORK || rc == SG_ERR_REMOTE)) {
		/* Only the TSA's failures are skipped, never our own. */
		h->res->status = rc;
		snprintf(h->res->reason, sizeof(h->res->reason), "%s", sg_last_error());
		sg_clear_error();
		*out = NULL;
		rc = SG_OK;
	}
	return rc;
}

sg_status sg_sign_file_timestamped(const char *in, const char *out, sg_md md, int nest,
                                   sg_signer *s, const sg_sign_opts *opts,
                                   const sg_tsa_opts *tsa, sg_timestamp_policy policy,
                                   sg_timestamp_result *res)
{
	sg_timestamp_result dummy;
	struct ts_hook h = { tsa, policy, res ? res : &dummy };
	sg_status rc;

	memset(h.res, 0, sizeof(*h.res));
	h.res->url_index = -1;
	if(policy != SG_TIMESTAMP_FAIL && policy != SG_TIMESTAMP_SKIP)
		return sg_fail(SG_ERR_USAGE, "unknown timestamp policy %d", (int)policy);
	rc = sg_tsa_opts_check(tsa);
	if(rc)
		return rc;
	rc = sg_sign_file_ex(in, out, md, nest, s, opts, ts_sign_hook, &h);
	if(rc) {
		h.res->stamped = 0;
		h.res->url_index = -1;
	}
	return rc;
}
