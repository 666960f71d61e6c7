/*
 * remote.c - the client of the signing service: POST /v1/sign over HTTPS
 * with libcurl (docs/API.md), JSON with jansson, base64 with OpenSSL.
 *
 * Each call uses its own curl easy handle, so calls from many threads
 * share nothing but the immutable sg_remote.  There is no connection
 * reuse: a download server asks for one signature per file version, so a
 * TLS handshake per signature costs little and keeps this simple.
 * The returned signature is parsed and its SpcIndirectDataContent digest
 * compared with the one sent: a confused or hostile service cannot make
 * us embed a signature for another file.
 *
 * Not here: GET /v1/keys (nothing needs it yet), HTTP/2, client
 * certificates.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "authenticode_int.h"
#include "http.h"
#include "internal.h"
#include "signgate/remote.h"

#define REMOTE_MAX_ANSWER (4u << 20)   /* bytes of a response body we accept */
#define REMOTE_MAX_NAME 255            /* file_name limit of the API */
#define REMOTE_BACKOFF_MS 200
#define REMOTE_BACKOFF_MAX_MS 10000

struct sg_remote {
	char *base;        /* https://host:port[/prefix], no trailing slash */
	char *sign_url;    /* base + /v1/sign */
	char *ca_file;
	char *key;
	char *proxy;       /* NULL: none */
	char *proxy_user, *proxy_password, *no_proxy;   /* the password wiped at free */
	char *auth;        /* "Authorization: Bearer TOKEN"; wiped at free */
	long connect_timeout, timeout;
	int retries;
};

/* What one attempt gave. */
typedef sg_http_reply remote_reply;


static char *remote_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

sg_status sg_remote_check_url(const char *url)
{
	const char *auth, *end;
	char *port = NULL;
	CURLUcode uc;
	CURLU *u;
	long n;

	if(!url || !*url)
		return sg_fail(SG_ERR_USAGE, "no signing service URL given (service_url)");
	if(strncasecmp(url, "https://", 8))
		return sg_fail(SG_ERR_USAGE, "signing service URL '%.200s' must start with https:// "
		               "(the bearer token must not travel in clear)", url);
	for(const char *p = url; *p; p++)
		if((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return sg_fail(SG_ERR_USAGE, "signing service URL contains a space or a "
			               "non-ASCII character");
	auth = url + 8;
	end = auth + strcspn(auth, "/?#");
	if(memchr(auth, '@', (size_t)(end - auth)))
		return sg_fail(SG_ERR_USAGE, "signing service URL must not carry a user name or "
		               "password; the token is given separately");
	if(end == auth)
		return sg_fail(SG_ERR_USAGE, "signing service URL '%.200s' has no host", url);
	if(strpbrk(url, "?#"))
		return sg_fail(SG_ERR_USAGE, "signing service URL '%.200s' must not have a query or "
		               "fragment", url);
	/* libcurl's own parser, so that what is accepted here is what it will
	 * connect to: host name or address syntax, a port of 1 to 65535. */
	u = curl_url();
	if(!u)
		return sg_fail(SG_ERR_NOMEM, "out of memory checking a URL");
	uc = curl_url_set(u, CURLUPART_URL, url, 0);
	if(!uc)
		uc = curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
	n = port ? strtol(port, NULL, 10) : 0;
	curl_free(port);
	curl_url_cleanup(u);
	if(uc)
		return sg_fail(SG_ERR_USAGE, "signing service URL '%.200s': %s", url,
		               uc == CURLUE_BAD_PORT_NUMBER ? "the port must be a number from 1 to 65535"
		                                            : curl_url_strerror(uc));
	if(n < 1 || n > 65535)
		return sg_fail(SG_ERR_USAGE, "signing service URL '%.200s': the port must be a "
		               "number from 1 to 65535", url);
	return SG_OK;
}

sg_status sg_remote_new(const sg_remote_opts *o, sg_remote **out)
{
	static const char bearer[] = "Authorization: Bearer ";
	char *token = NULL;
	sg_remote *r = NULL;
	size_t n, tlen;
	sg_status rc;

	*out = NULL;
	rc = sg_remote_check_url(o->url);
	if(rc)
		return rc;
	if(!o->key || !*o->key)
		return sg_fail(SG_ERR_USAGE, "no key name given for the signing service (service_key)");
	if(o->connect_timeout < 0 || o->timeout < 0 || o->retries < 0 || o->retries > 100)
		return sg_fail(SG_ERR_USAGE, "bad timeout or retry count for the signing service");
	rc = sg_http_init();
	if(rc)
		return rc;
	rc = sg_secret_read(o->token, &token);
	if(rc)
		return sg_fail_prefix(rc, "signing service token");
	tlen = strlen(token);
	if(tlen == 0) {
		rc = sg_fail(SG_ERR_USAGE, "signing service token is empty");
		goto fail;
	}
	/* RFC 6750 b64token; anything else (a CR or LF above all) could inject
	 * headers.  The message must not show the token. */
	for(size_t i = 0; i < tlen; i++) {
		unsigned char c = (unsigned char)token[i];
		if(c <= 0x20 || c >= 0x7f) {
			rc = sg_fail(SG_ERR_USAGE, "signing service token contains a space, a control "
			             "or a non-ASCII character (at byte %zu)", i + 1);
			goto fail;
		}
	}
	r = calloc(1, sizeof(*r));
	if(!r)
		goto nomem;
	r->base = strdup(o->url);
	if(!r->base)
		goto nomem;
	n = strlen(r->base);
	while(n > 8 && r->base[n - 1] == '/')
		r->base[--n] = '\0';
	r->sign_url = malloc(n + sizeof("/v1/sign"));
	if(!r->sign_url)
		goto nomem;
	memcpy(r->sign_url, r->base, n);
	memcpy(r->sign_url + n, "/v1/sign", sizeof("/v1/sign"));
	r->key = strdup(o->key);
	r->ca_file = remote_strdup(o->ca_file);
	r->auth = malloc(sizeof(bearer) + tlen);
	if(!r->key || (o->ca_file && !r->ca_file) || !r->auth)
		goto nomem;
	memcpy(r->auth, bearer, sizeof(bearer) - 1);
	memcpy(r->auth + sizeof(bearer) - 1, token, tlen + 1);
	if(o->proxy.url && *o->proxy.url) {
		r->proxy = strdup(o->proxy.url);
		r->proxy_user = remote_strdup(o->proxy.user && *o->proxy.user ? o->proxy.user : NULL);
		r->no_proxy = remote_strdup(o->proxy.no_proxy && *o->proxy.no_proxy ?
		                            o->proxy.no_proxy : NULL);
		if(!r->proxy || (o->proxy.user && *o->proxy.user && !r->proxy_user) ||
		   (o->proxy.no_proxy && *o->proxy.no_proxy && !r->no_proxy))
			goto nomem;
		if(r->proxy_user && o->proxy.password) {
			rc = sg_secret_read(o->proxy.password, &r->proxy_password);
			if(rc) {
				rc = sg_fail_prefix(rc, "proxy password");
				goto fail;
			}
		}
	}
	r->connect_timeout = o->connect_timeout ? o->connect_timeout : 10;
	r->timeout = o->timeout ? o->timeout : 60;
	r->retries = o->retries;
	sg_secret_free(token);
	*out = r;
	return SG_OK;
nomem:
	rc = sg_fail(SG_ERR_NOMEM, "out of memory");
fail:
	sg_secret_free(token);
	sg_remote_free(r);
	return rc;
}

void sg_remote_free(sg_remote *r)
{
	if(!r)
		return;
	if(r->auth) {
		OPENSSL_cleanse(r->auth, strlen(r->auth));
		free(r->auth);
	}
	free(r->base);
	free(r->sign_url);
	free(r->ca_file);
	free(r->key);
	free(r->proxy);
	free(r->proxy_user);
	free(r->no_proxy);
	sg_secret_free(r->proxy_password);
	free(r);
}

const char *sg_remote_url(const sg_remote *r)
{
	return r->base;
}

const char *sg_remote_key(const sg_remote *r)
{
	return r->key;
}

/* ---------------------------------------------------------------- request */

/* Length of the well-formed UTF-8 sequence at p (at most n bytes), or 0. */
static size_t remote_utf8_len(const unsigned char *p, size_t n)
{
	size_t len;
	uint32_t cp;

	if(p[0] < 0x80)
		return 1;
	if(p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, cp = p[0] & 0x1f;
	else if(p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, cp = p[0] & 0x0f;
	else if(p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	if(len > n)
		return 0;
	for(size_t i = 1; i < len; i++) {
		if((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	/* No overlong forms, no surrogates, nothing past U+10FFFF. */
	if((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	   (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

/* The file name as the API accepts it (docs/API.md: 1-255 bytes, no
 * control characters): control and invalid bytes become '_', and it is
 * cut at a character boundary.  Malloc'd. */
static char *remote_clean_name(const char *name)
{
	const unsigned char *p = (const unsigned char *)(name ? name : "");
	size_t n = strlen((const char *)p), o = 0;
	char *out = malloc(REMOTE_MAX_NAME + 1);

	if(!out)
		return NULL;
	for(size_t i = 0; i < n;) {
		size_t l = remote_utf8_len(p + i, n - i);
		if(l == 0 || (l == 1 && (p[i] < 0x20 || p[i] == 0x7f))) {
			if(o + 1 > REMOTE_MAX_NAME)
				break;
			out[o++] = '_';
			i++;
			continue;
		}
		if(o + l > REMOTE_MAX_NAME)
			break;
		memcpy(out + o, p + i, l);
		o += l;
		i += l;
	}
	if(o == 0)
		memcpy(out, "unnamed", (o = 7));
	out[o] = '\0';
	return out;
}

static sg_status remote_build_body(const sg_remote *r, const char *fmt, sg_md md,
                                   const unsigned char *digest, size_t dlen,
                                   const char *file_name, const sg_sign_opts *opts,
                                   char **body)
{
	char hex[2 * SG_MAX_MD + 1], *name = NULL;
	json_t *j = NULL;
	sg_status rc = SG_OK;

	*body = NULL;
	sg_hex(digest, dlen, hex);
	name = remote_clean_name(file_name);
	if(!name)
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	j = json_pack("{s:s, s:s, s:s, s:s, s:s}", "key", r->key,
	              "digest_algorithm", sg_md_name(md), "digest", hex,
	              "file_name", name, "format", fmt);
	if(!j) {
		rc = sg_fail(SG_ERR_USAGE, "cannot build the signing request (is the key name "
		             "valid UTF-8?)");
		goto out;
	}
	if(opts && opts->program_name && *opts->program_name) {
		json_t *s = json_string(opts->program_name);
		if(!s || json_object_set_new(j, "program_name", s)) {
			rc = sg_fail(SG_ERR_USAGE, "program name is not valid UTF-8");
			goto out;
		}
	}
	if(opts && opts->url && *opts->url) {
		for(const char *p = opts->url; *p; p++) {
			if((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) {
				rc = sg_fail(SG_ERR_USAGE, "program URL must be printable ASCII");
				goto out;
			}
		}
		if(json_object_set_new(j, "program_url", json_string(opts->url))) {
			rc = sg_fail(SG_ERR_NOMEM, "out of memory");
			goto out;
		}
	}
	*body = json_dumps(j, JSON_COMPACT);
	if(!*body)
		rc = sg_fail(SG_ERR_NOMEM, "out of memory");
out:
	json_decref(j);
	free(name);
	return rc;
}

/* One POST of body to url (a GET when body is NULL).  Fills rep; the
 * caller frees rep->body.p.  Returns non-zero only when the request could
 * not even be set up. */
static sg_status remote_post(const sg_remote *r, const char *url, const char *body,
                             remote_reply *rep)
{
	const char *const lines[] = { "Content-Type: application/json",
	                              "Accept: application/json", "Expect:", r->auth };
	sg_http_req q = {
		.url = url, .headers = lines, .nheaders = sizeof(lines) / sizeof(lines[0]),
		.body = body, .bodylen = body ? strlen(body) : 0, .protocols = "https",
		.connect_timeout = r->connect_timeout, .timeout = r->timeout,
		/* "" disables the proxy environment variables: the configuration
		 * alone decides whether a proxy is used. */
		.proxy = r->proxy ? r->proxy : "", .proxy_user = r->proxy_user,
		.proxy_password = r->proxy_password, .no_proxy = r->no_proxy, .ca_file = r->ca_file,
		.max_answer = REMOTE_MAX_ANSWER,
	};

	return sg_http_exchange(&q, rep);
}

/* Network failures worth another attempt: the service may be restarting
 * or briefly overloaded.  TLS verification and URL errors are not. */
static int remote_retryable_cc(CURLcode cc)
{
	switch(cc) {
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
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

static int remote_retryable_http(long code)
{
	return code == 502 || code == 503 || code == 504;
}

static int remote_is_json(const char *ctype)
{
	size_t n = strlen("application/json");

	return !strncasecmp(ctype, "application/json", n) &&
	       (ctype[n] == '\0' || ctype[n] == ';' || ctype[n] == ' ');
}

/* Copies msg into out, printable ASCII only, for an error detail. */
static void remote_clean_text(const char *msg, size_t len, char *out, size_t outlen)
{
	size_t o = 0;

	for(size_t i = 0; i < len && o + 1 < outlen; i++) {
		unsigned char c = (unsigned char)msg[i];
		out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	out[o] = '\0';
}

/* The service's {"error": "..."} message, if the answer has one. */
static void remote_error_text(const remote_reply *rep, char *out, size_t outlen)
{
	json_t *j, *e;

	snprintf(out, outlen, "no error message");
	if(!rep->body.len || !remote_is_json(rep->ctype))
		return;
	j = json_loadb((const char *)rep->body.p, rep->body.len, 0, NULL);
	e = j ? json_object_get(j, "error") : NULL;
	if(json_is_string(e))
		remote_clean_text(json_string_value(e), json_string_length(e), out,
		                  outlen < 300 ? outlen : 300);
	json_decref(j);
}

/* Strict base64 (RFC 4648 section 4, with padding, no line breaks). */
static sg_status remote_base64(const char *s, size_t n, unsigned char **out,
                               size_t *outlen)
{
	unsigned char *p;
	size_t pad = 0;
	int got;

	*out = NULL;
	*outlen = 0;
	if(n == 0 || n % 4 || n > INT_MAX)
		goto bad;
	for(size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if(c == '=') {
			if(i < n - 2)
				goto bad;
			pad++;
		} else if(pad || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		                   (c >= '0' && c <= '9') || c == '+' || c == '/')) {
			goto bad;
		}
	}
	p = malloc(n / 4 * 3 + 1);
	if(!p)
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	/* EVP_DecodeBlock counts the padding as data bytes: take it off. */
	got = EVP_DecodeBlock(p, (const unsigned char *)s, (int)n);
	if(got < 0 || (size_t)got != n / 4 * 3) {
		free(p);
		goto bad;
	}
	*out = p;
	*outlen = (size_t)got - pad;
	return SG_OK;
bad:
	return sg_fail(SG_ERR_REMOTE, "its \"signature\" is not valid base64");
}

/* The signature must be for exactly the digest we asked about. */
static sg_status remote_check_signature(const unsigned char *der, size_t len, sg_md md,
                                        const unsigned char *digest, size_t dlen)
{
	unsigned char got[SG_MAX_MD];
	const unsigned char *content;
	long content_len;
	PKCS7 *p7 = NULL;
	sg_md got_md;
	sg_status rc;

	rc = sg_ac_parse(der, len, &p7);
	if(!rc)
		rc = sg_ac_read_content(p7, &got_md, got, &content, &content_len);
	if(rc) {
		rc = sg_fail_prefix(SG_ERR_REMOTE, "its signature is not an Authenticode SignedData");
		goto out;
	}
	if(got_md != md)
		rc = sg_fail(SG_ERR_REMOTE, "it returned a signature over a %s digest, not the %s "
		             "digest sent", sg_md_name(got_md), sg_md_name(md));
	else if(CRYPTO_memcmp(got, digest, dlen))
		rc = sg_fail(SG_ERR_REMOTE, "it returned a signature for another file: the %s digest "
		             "in it is not the one sent", sg_md_name(md));
out:
	PKCS7_free(p7);
	return rc;
}

static sg_status remote_parse_answer(const remote_reply *rep, sg_md md,
                                     const unsigned char *digest, size_t dlen,
                                     unsigned char **der, size_t *derlen)
{
	json_error_t jerr;
	json_t *j, *sig;
	sg_status rc;

	if(!remote_is_json(rep->ctype))
		return sg_fail(SG_ERR_REMOTE, "it answered with Content-Type '%s', not "
		               "application/json", rep->ctype[0] ? rep->ctype : "(none)");
	j = json_loadb(rep->body.len ? (const char *)rep->body.p : "", rep->body.len,
	               JSON_REJECT_DUPLICATES, &jerr);
	if(!j)
		return sg_fail(SG_ERR_REMOTE, "its answer is not valid JSON (line %d: %.200s)",
		               jerr.line, jerr.text);
	sig = json_object_get(j, "signature");
	if(!json_is_string(sig)) {
		rc = sg_fail(SG_ERR_REMOTE, "its answer has no \"signature\" string");
		goto out;
	}
	rc = remote_base64(json_string_value(sig), json_string_length(sig), der, derlen);
	if(rc)
		goto out;
	rc = remote_check_signature(*der, *derlen, md, digest, dlen);
	if(rc) {
		free(*der);
		*der = NULL;
		*derlen = 0;
	}
out:
	json_decref(j);
	return rc;
}

sg_status sg_remote_sign(sg_remote *r, const char *fmt, sg_md md,
                         const unsigned char *digest, size_t dlen,
                         const char *file_name, const sg_sign_opts *opts,
                         unsigned char **der, size_t *derlen)
{
	remote_reply rep = { 0 };
	char *body = NULL, msg[320];
	int attempts = 0;
	sg_status rc;

	*der = NULL;
	*derlen = 0;
	if(!r || !fmt || !digest || dlen != sg_md_size(md) || dlen == 0)
		return sg_fail(SG_ERR_USAGE, "sg_remote_sign: a %s digest must be %zu bytes, not %zu",
		               sg_md_name(md), sg_md_size(md), dlen);
	rc = remote_build_body(r, fmt, md, digest, dlen, file_name, opts, &body);
	if(rc)
		return rc;
	for(;;) {
		free(rep.body.p);
		rc = remote_post(r, r->sign_url, body, &rep);
		if(rc)
			goto out;
		attempts++;
		if(attempts <= r->retries &&
		   ((rep.cc != CURLE_OK && remote_retryable_cc(rep.cc)) ||
		    (rep.cc == CURLE_OK && remote_retryable_http(rep.http)))) {
			long ms = REMOTE_BACKOFF_MS << (attempts - 1 < 6 ? attempts - 1 : 6);
			sg_http_sleep_ms(ms < REMOTE_BACKOFF_MAX_MS ? ms : REMOTE_BACKOFF_MAX_MS);
			continue;
		}
		break;
	}
	if(rep.body.too_big || rep.cc == CURLE_FILESIZE_EXCEEDED) {
		rc = sg_fail(SG_ERR_REMOTE, "signing service %s: its answer is larger than %u bytes",
		             r->base, REMOTE_MAX_ANSWER);
	} else if(rep.cc == CURLE_OUT_OF_MEMORY) {
		rc = sg_fail(SG_ERR_NOMEM, "out of memory talking to the signing service");
	} else if(rep.cc != CURLE_OK) {
		rc = sg_fail(SG_ERR_NETWORK, "signing service %s%s: %s%s%s (%d attempt%s)",
		             r->base, r->proxy ? " (through the proxy)" : "",
		             curl_easy_strerror(rep.cc), rep.errbuf[0] ? ": " : "", rep.errbuf,
		             attempts, attempts == 1 ? "" : "s");
	} else if(rep.http != 200) {
		remote_error_text(&rep, msg, sizeof(msg));
		rc = sg_fail(SG_ERR_REMOTE, "signing service %s answered HTTP %ld: %s%s", r->base,
		             rep.http, msg,
		             rep.http == 401 ? " (check the token)" :
		             remote_retryable_http(rep.http) && attempts > 1 ? " (after retries)" : "");
	} else {
		rc = remote_parse_answer(&rep, md, digest, dlen, der, derlen);
		if(rc)
			rc = sg_fail_prefix(rc, "signing service %s", r->base);
	}
out:
	free(rep.body.p);
	free(body);
	return rc;
}

sg_status sg_remote_probe(sg_remote *r)
{
	return sg_remote_key_info(r, NULL, 0, NULL, 0);
}

sg_status sg_remote_key_info(sg_remote *r, char *subject, size_t subjlen, char *not_after,
                             size_t nalen)
{
	remote_reply rep = { 0 };
	char *url, msg[320];
	json_t *j = NULL, *keys;
	size_t i, n = strlen(r->base) + sizeof("/v1/keys");
	sg_status rc;

	url = malloc(n);
	if(!url)
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	snprintf(url, n, "%s/v1/keys", r->base);
	rc = remote_post(r, url, NULL, &rep);
	free(url);
	if(rc)
		return rc;
	if(rep.cc != CURLE_OK) {
		/* A proxy that refuses our credentials or the tunnel answered:
		 * that is a setting to fix, not a network that may come back. */
		rc = sg_fail(rep.cc == CURLE_PROXY ? SG_ERR_REMOTE : SG_ERR_NETWORK,
		             "signing service %s%s: %s%s%s", r->base,
		             r->proxy ? " (through the proxy)" : "", curl_easy_strerror(rep.cc),
		             rep.errbuf[0] ? ": " : "", rep.errbuf);
	} else if(rep.http != 200) {
		remote_error_text(&rep, msg, sizeof(msg));
		rc = sg_fail(SG_ERR_REMOTE, "signing service %s answered HTTP %ld to GET /v1/keys: %s%s",
		             r->base, rep.http, msg, rep.http == 401 ? " (check the token)" : "");
	} else if(!remote_is_json(rep.ctype) ||
	          !(j = json_loadb(rep.body.p ? (const char *)rep.body.p : "", rep.body.len, 0, NULL)) ||
	          !json_is_array(keys = json_object_get(j, "keys"))) {
		rc = sg_fail(SG_ERR_REMOTE, "signing service %s: GET /v1/keys did not answer "
		             "the expected JSON", r->base);
	} else {
		for(i = 0; i < json_array_size(keys); i++) {
			const char *name = json_string_value(json_object_get(json_array_get(keys, i), "name"));
			if(name && !strcmp(name, r->key))
				break;
		}
		if(i == json_array_size(keys)) {
			rc = sg_fail(SG_ERR_REMOTE, "signing service %s: key '%s' is not among the "
			             "keys this client may use", r->base, r->key);
		} else {
			json_t *k = json_array_get(keys, i);
			const char *sj = json_string_value(json_object_get(k, "subject"));
			const char *na = json_string_value(json_object_get(k, "not_after"));
			if(subject && subjlen)
				remote_clean_text(sj ? sj : "", sj ? strlen(sj) : 0, subject, subjlen);
			if(not_after && nalen)
				remote_clean_text(na ? na : "", na ? strlen(na) : 0, not_after, nalen);
		}
	}
	json_decref(j);
	free(rep.body.p);
	return rc;
}
