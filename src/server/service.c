/*
 * service.c - the signing service, `signgate service --config FILE`.
 *
 * HTTPS only.  A client sends the Authenticode digest of a file; the
 * service builds SpcIndirectDataContent and the signed attributes itself,
 * signs with a key that stays in the HSM (or key file), and returns the
 * SignedData.  It never signs caller-chosen bytes and never sees the file.
 * API: docs/API.md.  Clients are named in [client NAME] sections with a
 * bearer token (kept only as a SHA-256 hash, compared in constant time)
 * and the keys they may use.  With [service] client_ca a client may
 * instead (or as well) show a TLS client certificate; per client, the
 * digest algorithms it may use and a rate limit (a token bucket).
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/ts.h>
#include <openssl/x509.h>

#include "../lib/internal.h"
#include "../lib/spc.h"
#include "../lib/tsa.h"
#include "audit.h"
#include "config.h"
#include "httpd.h"
#include "log.h"
#include "servers.h"
#include "sign_request.h"

#define TOKEN_HASH_LEN 32
#define EXPIRY_WARN_DAYS 30

typedef struct svc_key {
	const sg_cfg_key *cfg;
	sg_signer *signer;
	char *chain_pem;
} svc_key;

typedef struct svc_client {
	const sg_cfg_client *cfg;
	int has_token, has_cert;
	unsigned char token_hash[TOKEN_HASH_LEN];
} svc_client;

/* A client's rate limit: a token bucket of cfg->burst requests, refilled
 * at cfg->rate per second. */
typedef struct svc_bucket {
	pthread_mutex_t lock;
	double tokens;
	struct timespec last;    /* CLOCK_MONOTONIC */
} svc_bucket;

/* What the audit log says about one request to /v1/sign or /tsa, filled
 * in as the request is read.  kind NULL: another path, not audited. */
typedef struct svc_rec {
	const char *kind;            /* "sign", "timestamp" or NULL */
	const char *peer;
	const char *client;          /* NULL: not (yet) authenticated */
	const char *key, *file_name, *digest_algorithm, *digest;
	const char *serial;          /* a timestamp's serial number */
	char request_id[17];
} svc_rec;

typedef struct svc {
	sg_config *cfg;
	svc_key keys[SG_CFG_MAX_KEYS];
	size_t nkeys;
	svc_client clients[SG_CFG_MAX_CLIENTS];
	svc_bucket buckets[SG_CFG_MAX_CLIENTS];
	size_t nclients;
	sg_audit *audit;             /* [service] audit_log, or NULL */
	sg_tsa_opts ts_opts;         /* [service] timestamp_*; nurls 0: none */
	const svc_key *tsa;          /* [service] tsa_key, or NULL: no /tsa */
	sg_tsa_policy tsa_policy;
} svc;

static const char service_help[] =
"Usage: signgate service --config FILE [--listen HOST:PORT]\n"
"\n"
"Runs the signing service: HTTPS on [service] listen, keys from the\n"
"[key NAME] sections (PKCS#11 URIs or key files), clients and their bearer\n"
"tokens or TLS client certificates from the [client NAME] sections.  With [service] tsa_key it is also\n"
"an RFC 3161 time-stamping authority at POST /tsa.  See docs/CONFIG.md and\n"
"docs/API.md.\n"
"Prints 'listening on https://HOST:PORT' once ready; stops on SIGINT/SIGTERM.\n"
"\n"
"  --config FILE        the configuration file (required)\n"
"  --listen HOST:PORT   override [service] listen (port 0: any free port)\n"
"  -h, --help           this help\n"
"\n"
"Exit status: 0 after a clean stop, 2 bad configuration or start failure.\n";

static void svc_hash_token(const char *tok, size_t len, unsigned char out[TOKEN_HASH_LEN])
{
	EVP_Digest(tok, len, out, NULL, EVP_sha256(), NULL);
}

static const svc_key *svc_find_key(const svc *s, const char *name)
{
	for(size_t i = 0; i < s->nkeys; i++)
		if(!strcmp(s->keys[i].cfg->name, name))
			return &s->keys[i];
	return NULL;
}

static int svc_client_may(const svc_client *c, const char *key)
{
	for(size_t i = 0; i < c->cfg->nkeys; i++)
		if(!strcmp(c->cfg->keys[i], key))
			return 1;
	return 0;
}

/* The client whose token the request carries, or NULL.  Every client's
 * hash is compared, so the time taken does not tell which one matched. */
static const svc_client *svc_auth_token(const svc *s, struct evhttp_request *req)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req),
	                                   "Authorization");
	unsigned char hash[TOKEN_HASH_LEN];
	const svc_client *found = NULL;

	if(!h || strncasecmp(h, "Bearer ", 7))
		return NULL;
	h += 7;
	while(*h == ' ')
		h++;
	if(!*h)
		return NULL;
	svc_hash_token(h, strlen(h), hash);
	for(size_t i = 0; i < s->nclients; i++)
		if(!CRYPTO_memcmp(hash, s->clients[i].token_hash, TOKEN_HASH_LEN) &&
		   s->clients[i].has_token)
			found = &s->clients[i];
	return found;
}

/* Whether certificate x (fingerprint fp, lower-case hex) is client c's:
 * every criterion the client has must match. */
static int svc_cert_matches(const svc_client *c, X509 *x, const char *fp)
{
	const char *want = c->cfg->cert_subject;
	X509_NAME *nm = X509_get_subject_name(x);

	if(!c->has_cert)
		return 0;
	if(c->cfg->cert_fingerprint && strcmp(fp, c->cfg->cert_fingerprint))
		return 0;
	if(want && want[0] == '/') {
		char buf[1024];
		if(!X509_NAME_oneline(nm, buf, sizeof(buf)) || strcmp(buf, want))
			return 0;
	} else if(want) {
		char cn[256];
		int n = X509_NAME_get_text_by_NID(nm, NID_commonName, cn, sizeof(cn));
		/* n != strlen: a CN with a NUL inside, or cut short. */
		if(n < 0 || (size_t)n != strlen(cn) || strcmp(cn, want))
			return 0;
	}
	return 1;
}

/*
 * Who sent req: the client of its TLS client certificate and/or its bearer
 * token, or NULL with the reason in msg.  A certificate that does not
 * chain to [service] client_ca is refused even with a good token.  A
 * client configured with both a token and a certificate must show both.
 */
static const svc_client *svc_auth(const svc *s, struct evhttp_request *req,
                                  char *msg, size_t msglen)
{
	const svc_client *by_token = svc_auth_token(s, req), *by_cert = NULL, *c;
	X509 *x = NULL;
	int verified = 0;
	const char *why = NULL;

	if(s->cfg->svc_client_ca)
		x = sg_http_peer_cert(req, &verified, &why);
	if(x && !verified) {
		snprintf(msg, msglen, "client certificate not trusted: %s", why);
		return NULL;
	}
	if(x) {
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int n = 0;
		char fp[2 * EVP_MAX_MD_SIZE + 1] = "";
		if(X509_digest(x, EVP_sha256(), md, &n))
			sg_hex(md, n, fp);
		for(size_t i = 0; i < s->nclients && !by_cert; i++)
			if(svc_cert_matches(&s->clients[i], x, fp))
				by_cert = &s->clients[i];
	}
	if(by_cert && by_token && by_cert != by_token) {
		snprintf(msg, msglen, "the client certificate and the bearer token are not the same client's");
		return NULL;
	}
	c = by_cert ? by_cert : by_token;
	if(!c) {
		snprintf(msg, msglen, x ? "unknown client certificate and no valid bearer token"
		                        : "missing or unknown bearer token");
		return NULL;
	}
	if(c->has_token && c != by_token) {
		snprintf(msg, msglen, "client '%s' must send its bearer token as well as its "
		         "certificate", c->cfg->name);
		return NULL;
	}
	if(c->has_cert && c != by_cert) {
		snprintf(msg, msglen, "client '%s' must show its client certificate as well as its "
		         "token", c->cfg->name);
		return NULL;
	}
	return c;
}

/* Takes one request from c's bucket: 0, or the seconds to wait before
 * the next one will be let through (for Retry-After). */
static int svc_rate_take(svc *s, const svc_client *c)
{
	svc_bucket *b = &s->buckets[c - s->clients];
	double rate = c->cfg->rate, need;
	struct timespec now;
	int wait = 0;

	if(rate <= 0)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&b->lock);
	b->tokens += ((double)(now.tv_sec - b->last.tv_sec) +
	              (double)(now.tv_nsec - b->last.tv_nsec) / 1e9) * rate;
	if(b->tokens > c->cfg->burst)
		b->tokens = c->cfg->burst;
	b->last = now;
	if(b->tokens >= 1) {
		b->tokens -= 1;
	} else {
		need = (1 - b->tokens) / rate;
		wait = (int)need;
		if(wait < need || wait < 1)
			wait++;
	}
	pthread_mutex_unlock(&b->lock);
	return wait;
}

static void svc_reply_json(struct evhttp_request *req, int code, json_t *j)
{
	struct evbuffer *b = evbuffer_new();
	char *text = json_dumps(j, JSON_COMPACT);

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "application/json");
	evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
	if(b && text)
		evbuffer_add_printf(b, "%s\n", text);
	evhttp_send_reply(req, code, NULL, b);
	if(b)
		evbuffer_free(b);
	free(text);
}

static const char *svc_peer(struct evhttp_request *req, char *buf, size_t len)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	const char *addr = NULL;
	ev_uint16_t port = 0;

	if(conn)
		evhttp_connection_get_peer(conn, (char **)&addr, &port);
	snprintf(buf, len, "%s:%u", addr ? addr : "?", port);
	return buf;
}

static void svc_request_id(char out[17])
{
	unsigned char rnd[8] = { 0 };

	RAND_bytes(rnd, sizeof(rnd));
	sg_hex(rnd, sizeof(rnd), out);
}

/* Appends the audit record of r: result "granted" or "refused", the HTTP
 * status, and for a refusal its reason (never a secret).  0, or -1 if it
 * could not be written (logged); then nothing may be granted.  No
 * audit_log: 0. */
static int svc_audit(svc *s, const svc_rec *r, const char *result, int status,
                     const char *reason)
{
	json_t *j;
	int bad;
	sg_status rc;

	if(!s->audit)
		return 0;
	j = json_object();
	bad = !j;
	if(j) {
		bad |= json_object_set_new(j, "request_id", json_string(r->request_id));
		bad |= json_object_set_new(j, "kind", json_string(r->kind));
		bad |= json_object_set_new(j, "peer", sg_audit_str(r->peer));
		bad |= json_object_set_new(j, "client", sg_audit_str(r->client));
		bad |= json_object_set_new(j, "key", sg_audit_str(r->key));
		bad |= json_object_set_new(j, "file_name", sg_audit_str(r->file_name));
		bad |= json_object_set_new(j, "digest_algorithm", sg_audit_str(r->digest_algorithm));
		bad |= json_object_set_new(j, "digest", sg_audit_str(r->digest));
		bad |= json_object_set_new(j, "result", json_string(result));
		bad |= json_object_set_new(j, "status", json_integer(status));
		bad |= json_object_set_new(j, "reason", sg_audit_str(reason));
		if(!strcmp(r->kind, "timestamp"))
			bad |= json_object_set_new(j, "serial", sg_audit_str(r->serial));
	}
	rc = bad ? sg_fail(SG_ERR_NOMEM, "out of memory") : sg_audit_append(s->audit, j, NULL);
	json_decref(j);
	if(rc) {
		sg_log(SG_LOG_ERROR, "audit record of request %s (%s, %s) NOT written: %s",
		       r->request_id, r->kind, result, sg_last_error());
		return -1;
	}
	return 0;
}

/* Refuses the request: a log line, an audit record if it is a signing
 * or timestamp request (r->kind), then the JSON error. */
static void svc_refuse(svc *s, struct evhttp_request *req, const svc_rec *r, int code,
                       const char *msg)
{
	char quri[300], qmsg[600];
	sg_log(code >= 500 ? SG_LOG_ERROR : SG_LOG_WARN, "refused %s %s from %s (client %s): %d %s",
	       evhttp_request_get_command(req) == EVHTTP_REQ_POST ? "POST" : "GET",
	       sg_log_quote(evhttp_request_get_uri(req), quri, sizeof(quri)), r->peer,
	       r->client ? r->client : "-", code, sg_log_quote(msg, qmsg, sizeof(qmsg)));
	if(r->kind)
		svc_audit(s, r, "refused", code, msg);
	sg_http_error(req, code, msg);
}

static void svc_refuse_auth(svc *s, struct evhttp_request *req, const svc_rec *r,
                            const char *msg)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
	                  "Bearer realm=\"signgate\"");
	svc_refuse(s, req, r, 401, msg);
}

/* Refuses with 429 and Retry-After if cl is over its rate limit: 1 if
 * refused. */
static int svc_over_rate(svc *s, struct evhttp_request *req, const svc_rec *r,
                         const svc_client *cl)
{
	int wait = svc_rate_take(s, cl);
	char secs[16], msg[200];

	if(!wait)
		return 0;
	snprintf(secs, sizeof(secs), "%d", wait);
	snprintf(msg, sizeof(msg), "client '%s' is over its rate limit; retry in %d s",
	         cl->cfg->name, wait);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", secs);
	svc_refuse(s, req, r, 429, msg);
	return 1;
}

/* A signature is granted: its audit record on disk first, then a log
 * line.  0, or -1 if the record could not be written (no signature may
 * then be returned). */
static int svc_log_signature(svc *s, const svc_rec *r)
{
	char qfile[600], qkey[300];

	if(svc_audit(s, r, "granted", 200, NULL))
		return -1;
	sg_log(SG_LOG_INFO, "signed request=%s client=%s key=%s file=%s %s=%s",
	       r->request_id, r->client, sg_log_quote(r->key, qkey, sizeof(qkey)),
	       sg_log_quote(r->file_name, qfile, sizeof(qfile)), r->digest_algorithm, r->digest);
	return 0;
}

/* Adds a timestamp from the [service] timestamp_urls TSAs to *sig, if
 * any are set.  0: go on (*stamped says whether it has one); -1: the
 * request was refused (503, policy fail). */
static int svc_timestamp(svc *s, struct evhttp_request *req, const svc_rec *r,
                         const char *key, unsigned char **sig,
                         size_t *siglen, int *stamped)
{
	unsigned char *ts = NULL;
	size_t tslen = 0;
	char msg[600];
	sg_status rc;

	*stamped = 0;
	if(!s->ts_opts.nurls)
		return 0;
	rc = sg_timestamp_add(*sig, *siglen, &s->ts_opts, &ts, &tslen);
	if(!rc) {
		free(*sig);
		*sig = ts;
		*siglen = tslen;
		*stamped = 1;
		return 0;
	}
	if(s->cfg->svc_ts.policy == SG_TIMESTAMP_SKIP &&
	   (rc == SG_ERR_NETWORK || rc == SG_ERR_REMOTE)) {
		sg_log(SG_LOG_WARN, "key %s: signature returned WITHOUT a timestamp "
		       "(timestamp_policy = skip): %s", key, sg_last_error());
		return 0;
	}
	snprintf(msg, sizeof(msg), "timestamping failed, no signature returned: %s",
	         sg_last_error());
	svc_refuse(s, req, r, 503, msg);
	return -1;
}

static void svc_sign(svc *s, struct evhttp_request *req, const svc_client *cl,
                     svc_rec *r)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	unsigned char *sig = NULL, *b64 = NULL;
	char msg[300], dhex[2 * SG_MAX_MD + 1];
	const svc_key *k;
	sg_sign_request rq;
	json_t *ans;
	size_t siglen = 0;
	int stamped = 0, code;
	sg_status rc;

	memset(&rq, 0, sizeof(rq));
	if(len > s->cfg->svc_max_body) {
		svc_refuse(s, req, r, 413, "request body too large");
		return;
	}
	code = sg_sign_request_parse((const char *)evbuffer_pullup(in, -1), len, &rq,
	                             msg, sizeof(msg));
	/* The audit record names what was asked for, valid or not. */
	r->key = rq.raw_key;
	r->file_name = rq.raw_file;
	r->digest_algorithm = rq.raw_alg;
	r->digest = rq.raw_digest;
	if(code) {
		svc_refuse(s, req, r, code, msg);
		goto out;
	}
	const char *key = rq.key, *fmt = rq.fmt;
	sg_md md = rq.md;
	if(cl->cfg->digests && !(cl->cfg->digests & (1u << md))) {
		snprintf(msg, sizeof(msg), "client '%s' may not use digest algorithm %s",
		         cl->cfg->name, sg_md_name(md));
		svc_refuse(s, req, r, 403, msg);
		goto out;
	}
	k = svc_find_key(s, key);
	if(!k) {
		snprintf(msg, sizeof(msg), "no key named '%.100s'", key);
		svc_refuse(s, req, r, 404, msg);
		goto out;
	}
	if(!svc_client_may(cl, key)) {
		snprintf(msg, sizeof(msg), "client '%s' may not use key '%.100s'", cl->cfg->name, key);
		svc_refuse(s, req, r, 403, msg);
		goto out;
	}

	sg_sign_opts so = { .program_name = rq.pname, .url = rq.purl };
	rc = sg_authenticode_sign(k->signer, fmt, md, rq.digest, sg_md_size(md), &so, &sig,
	                          &siglen);
	if(rc) {
		code = rc == SG_ERR_USAGE ? 400 : 503;
		if(code == 503)
			sg_log(SG_LOG_ERROR, "signing with key %s failed: %s", key, sg_last_error());
		snprintf(msg, sizeof(msg), code == 400 ? "%.250s" : "signing failed: %.230s",
		         code == 400 ? sg_last_error() : sg_strerror(rc));
		svc_refuse(s, req, r, code, msg);
		goto out;
	}
	if(svc_timestamp(s, req, r, key, &sig, &siglen, &stamped))
		goto out;
	sg_hex(rq.digest, sg_md_size(md), dhex);
	b64 = malloc(4 * ((siglen + 2) / 3) + 1);
	if(!b64) {
		svc_refuse(s, req, r, 503, "out of memory");
		goto out;
	}
	EVP_EncodeBlock(b64, sig, (int)siglen);
	r->digest_algorithm = sg_md_name(md);
	r->digest = dhex;
	if(svc_log_signature(s, r)) {
		svc_refuse(s, req, r, 503, "the audit log cannot be written, so no signature is "
		           "returned; retry later");
		goto out;
	}
	ans = json_pack("{s:s,s:s,s:s,s:s,s:b}", "request_id", r->request_id, "key", key,
	                "digest_algorithm", sg_md_name(md), "signature", (char *)b64,
	                "timestamped", stamped);
	svc_reply_json(req, 200, ans);
	json_decref(ans);
out:
	free(b64);
	free(sig);
	sg_sign_request_free(&rq);
}

static void svc_keys(svc *s, struct evhttp_request *req, const svc_client *cl)
{
	json_t *arr = json_array(), *ans;

	for(size_t i = 0; i < s->nkeys; i++) {
		const svc_key *k = &s->keys[i];
		char ts[32];
		time_t na = (time_t)sg_signer_not_after(k->signer);
		struct tm tm;
		int days_left = (int)((na - time(NULL)) / 86400);

		if(!svc_client_may(cl, k->cfg->name))
			continue;
		gmtime_r(&na, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
		json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:b,s:s}",
		        "name", k->cfg->name,
		        "algorithm", sg_signer_key_type(k->signer) == SG_KEY_RSA ? "RSA" : "EC",
		        "subject", sg_signer_subject(k->signer), "not_after", ts,
		        "expires_soon", days_left < EXPIRY_WARN_DAYS, "chain_pem", k->chain_pem));
	}
	ans = json_pack("{s:o}", "keys", arr);
	svc_reply_json(req, 200, ans);
	json_decref(ans);
}

/* RFC 9112 6.3: several differing Content-Length values are an error
 * (libevent takes the first; a proxy in front might take another). */
static int svc_conflicting_length(struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const char *first = NULL;

	for(struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next) {
		if(strcasecmp(kv->key, "Content-Length"))
			continue;
		if(first && strcmp(first, kv->value))
			return 1;
		first = kv->value;
	}
	return 0;
}

/* ---------------------------------------------------------------- RFC 3161 TSA */

/* The request's Content-Type is application/timestamp-query (RFC 3161
 * 3.4), parameters aside. */
static int svc_is_tsq(struct evhttp_request *req)
{
	static const char want[] = "application/timestamp-query";
	const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req),
	                                    "Content-Type");

	if(!ct)
		return 0;
	while(*ct == ' ' || *ct == '\t')
		ct++;
	if(strncasecmp(ct, want, sizeof(want) - 1))
		return 0;
	ct += sizeof(want) - 1;
	while(*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/* One log line and one audit record per answer to a TimeStampReq:
 * every use of the key in the HSM is on record.  0, or -1 if the audit
 * record of a granted token could not be written (the token must then
 * not be returned). */
static int svc_log_timestamp(svc *s, svc_rec *r, const sg_tsa_info *ti)
{
	char ts[32], qreason[400], reason[200];
	time_t t = (time_t)ti->gen_time;
	struct tm tm;
	const char *peer = r->peer, *client = r->client;

	r->digest_algorithm = ti->imprint_alg[0] ? ti->imprint_alg : NULL;
	r->digest = ti->imprint[0] ? ti->imprint : NULL;
	if(!ti->granted) {
		sg_log(SG_LOG_WARN, "timestamp rejected peer=%s client=%s imprint=%s failinfo=%d: %s",
		       peer, client ? client : "-", ti->imprint_alg[0] ? ti->imprint_alg : "-",
		       ti->fail_info, sg_log_quote(ti->reason, qreason, sizeof(qreason)));
		snprintf(reason, sizeof(reason), "rejection, failInfo %d: %s", ti->fail_info, ti->reason);
		svc_audit(s, r, "refused", 200, reason);
		return 0;
	}
	r->serial = ti->serial;
	if(svc_audit(s, r, "granted", 200, NULL))
		return -1;
	gmtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	sg_log(SG_LOG_INFO, "timestamp serial=%s time=%s peer=%s client=%s key=%s %s=%s cert_req=%s nonce=%s",
	       ti->serial, ts, peer, client ? client : "-", s->tsa->cfg->name, ti->imprint_alg,
	       ti->imprint, ti->cert_req ? "yes" : "no", ti->has_nonce ? "yes" : "no");
	return 0;
}

/* POST /tsa: a DER TimeStampReq in, a DER TimeStampResp out (RFC 3161
 * 3.4).  Requests the TSA refuses get a rejection response with 200, as
 * the RFC wants; only a body that is no TimeStampReq at all gets 400. */
static void svc_tsa(svc *s, struct evhttp_request *req, svc_rec *r)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req), *out = NULL;
	const svc_client *cl = NULL;
	const char *client;
	unsigned char *resp = NULL;
	size_t len = evbuffer_get_length(in), resplen = 0;
	sg_tsa_info ti;
	char msg[300];
	sg_status rc;

	if(!s->tsa) {
		svc_refuse(s, req, r, 404, "no time-stamping authority here ([service] tsa_key is not set)");
		return;
	}
	if(s->cfg->svc_tsa_require_token && !(cl = svc_auth(s, req, msg, sizeof(msg)))) {
		svc_refuse_auth(s, req, r, msg);
		return;
	}
	client = cl ? cl->cfg->name : NULL;
	r->client = client;
	if(cl && svc_over_rate(s, req, r, cl))
		return;
	r->key = s->tsa->cfg->name;
	if(evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		svc_refuse(s, req, r, 405, "use POST for /tsa");
		return;
	}
	if(!svc_is_tsq(req)) {
		svc_refuse(s, req, r, 415,
		           "Content-Type must be application/timestamp-query (RFC 3161 3.4)");
		return;
	}
	if(len > SG_TSA_MAX_REQ) {
		snprintf(msg, sizeof(msg), "TimeStampReq larger than %d bytes", SG_TSA_MAX_REQ);
		svc_refuse(s, req, r, 413, msg);
		return;
	}
	rc = sg_tsa_respond(s->tsa->signer, evbuffer_pullup(in, -1), len, &s->tsa_policy,
	                    &resp, &resplen, &ti);
	if(rc == SG_ERR_MALFORMED) {
		snprintf(msg, sizeof(msg), "body is not a DER TimeStampReq: %.200s", sg_last_error());
		svc_refuse(s, req, r, 400, msg);
		return;
	}
	if(rc) {
		/* The HSM or OpenSSL failed: the RFC's answer is systemFailure. */
		sg_log(SG_LOG_ERROR, "timestamp with key %s failed: %s", s->tsa->cfg->name,
		       sg_last_error());
		rc = sg_tsa_reject(TS_INFO_SYSTEM_FAILURE, "the TSA cannot sign now; try again later",
		                   &resp, &resplen);
		if(rc) {
			svc_refuse(s, req, r, 503, "timestamping failed");
			return;
		}
		svc_audit(s, r, "refused", 200, "rejection, systemFailure: the TSA cannot sign now");
	} else if(svc_log_timestamp(s, r, &ti)) {
		sg_free(resp);
		svc_refuse(s, req, r, 503, "the audit log cannot be written, so no timestamp is "
		           "returned; retry later");
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "application/timestamp-reply");
	evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
	out = evbuffer_new();
	if(out && !evbuffer_add(out, resp, resplen))
		evhttp_send_reply(req, 200, NULL, out);
	else
		sg_http_error(req, 503, "out of memory");
	if(out)
		evbuffer_free(out);
	sg_free(resp);
}

static void svc_handle(struct evhttp_request *req, void *arg)
{
	svc *s = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const svc_client *cl;
	char peer[80], msg[300];
	svc_rec r = { .peer = peer };

	svc_peer(req, peer, sizeof(peer));
	/* Signing and timestamp requests are audited, refused ones too. */
	if(path && !strcmp(path, "/v1/sign"))
		r.kind = "sign";
	else if(path && !strcmp(path, "/tsa"))
		r.kind = "timestamp";
	svc_request_id(r.request_id);
	if(svc_conflicting_length(req)) {
		svc_refuse(s, req, &r, 400, "conflicting Content-Length headers");
		return;
	}
	if(!path) {
		svc_refuse(s, req, &r, 400, "bad request URI");
		return;
	}
	if(!strcmp(path, "/health")) {
		json_t *j = json_pack("{s:s}", "status", "ok");
		svc_reply_json(req, 200, j);
		json_decref(j);
		return;
	}
	if(!strcmp(path, "/tsa")) {
		svc_tsa(s, req, &r);
		return;
	}
	if(strcmp(path, "/v1/sign") && strcmp(path, "/v1/keys")) {
		svc_refuse(s, req, &r, 404, "no such path (try /v1/sign, /v1/keys, /health)");
		return;
	}
	cl = svc_auth(s, req, msg, sizeof(msg));
	if(!cl) {
		svc_refuse_auth(s, req, &r, msg);
		return;
	}
	r.client = cl->cfg->name;
	if(svc_over_rate(s, req, &r, cl))
		return;
	if(!strcmp(path, "/v1/sign")) {
		if(cmd != EVHTTP_REQ_POST) {
			svc_refuse(s, req, &r, 405, "use POST for /v1/sign");
			return;
		}
		svc_sign(s, req, cl, &r);
	} else {
		if(cmd != EVHTTP_REQ_GET) {
			svc_refuse(s, req, &r, 405, "use GET for /v1/keys");
			return;
		}
		svc_keys(s, req, cl);
	}
}

static sg_status svc_open_keys(svc *s)
{
	for(size_t i = 0; i < s->cfg->nkeys; i++) {
		const sg_cfg_key *ck = &s->cfg->keys[i];
		svc_key *k = &s->keys[s->nkeys];
		sg_status rc;
		int64_t days;

		rc = ck->pfx ? sg_signer_open_pfx(ck->pfx, ck->pass, &k->signer)
		             : sg_signer_open(ck->uri, ck->cert, ck->pass, &k->signer);
		if(rc)
			return sg_fail_prefix(rc, "[key %s]", ck->name);
		k->cfg = ck;
		s->nkeys++;
		rc = sg_signer_chain_pem(k->signer, &k->chain_pem);
		if(rc)
			return rc;
		days = (sg_signer_not_after(k->signer) - (int64_t)time(NULL)) / 86400;
		sg_log(SG_LOG_INFO, "key %s ready: %s key, certificate %s, expires in %lld days",
		       ck->name, sg_signer_key_type(k->signer) == SG_KEY_RSA ? "RSA" : "EC",
		       sg_signer_subject(k->signer), (long long)days);
		if(sg_signer_chain_incomplete(k->signer))
			sg_log(SG_LOG_WARN, "key %s: the chain has only the leaf certificate; "
			       "signatures will not verify against the root alone: give the "
			       "intermediates in 'cert'", ck->name);
		if(days < EXPIRY_WARN_DAYS)
			sg_log(SG_LOG_WARN, "key %s: certificate expires in %lld days", ck->name,
			       (long long)days);
	}
	return SG_OK;
}

/* [service] tsa_key: the key must carry a TSA certificate (RFC 3161 2.3). */
static sg_status svc_open_tsa(svc *s)
{
	const char *name = s->cfg->svc_tsa_key;
	sg_status rc;

	s->tsa = svc_find_key(s, name);
	if(!s->tsa)
		return sg_fail(SG_ERR_USAGE, "[service] tsa_key: no key named '%s'", name);
	rc = sg_tsa_check_signer(s->tsa->signer);
	if(rc) {
		s->tsa = NULL;
		return sg_fail_prefix(rc, "[service] tsa_key %s cannot be a time-stamping authority", name);
	}
	s->tsa_policy.policy = s->cfg->svc_tsa_policy ? s->cfg->svc_tsa_policy : SG_TSA_DEFAULT_POLICY;
	s->tsa_policy.md = SG_MD_SHA256;
	sg_log(SG_LOG_INFO, "time-stamping authority at POST /tsa: key %s, policy %s, %s",
	       name, s->tsa_policy.policy,
	       s->cfg->svc_tsa_require_token ? "bearer token required" : "open to anyone (RFC 3161 clients send no token)");
	return SG_OK;
}

static sg_status svc_load_clients(svc *s)
{
	for(size_t i = 0; i < s->cfg->nclients; i++) {
		const sg_cfg_client *cc = &s->cfg->clients[i];
		svc_bucket *b = &s->buckets[i];
		char *tok = NULL;
		sg_status rc;

		s->clients[i].cfg = cc;
		s->clients[i].has_cert = cc->cert_subject || cc->cert_fingerprint;
		pthread_mutex_init(&b->lock, NULL);
		b->tokens = cc->burst;
		clock_gettime(CLOCK_MONOTONIC, &b->last);
		s->nclients++;
		if(!cc->token)
			continue;
		rc = sg_secret_read(cc->token, &tok);
		if(rc)
			return sg_fail_prefix(rc, "[client %s] token", cc->name);
		if(strlen(tok) < 16) {
			sg_secret_free(tok);
			return sg_fail(SG_ERR_USAGE, "[client %s] token is shorter than 16 characters",
			               cc->name);
		}
		s->clients[i].has_token = 1;
		svc_hash_token(tok, strlen(tok), s->clients[i].token_hash);
		sg_secret_free(tok);
	}
	return SG_OK;
}

static void svc_free(svc *s)
{
	for(size_t i = 0; i < s->nkeys; i++) {
		sg_signer_free(s->keys[i].signer);
		free(s->keys[i].chain_pem);
	}
	if(s->audit) {
		uint64_t seq;
		char hash[SG_AUDIT_HASH_HEX + 1];
		sg_audit_last(s->audit, &seq, hash);
		sg_log(SG_LOG_INFO, "audit log %s closed: last seq %llu, hash %s", s->cfg->svc_audit_log,
		       (unsigned long long)seq, hash);
		sg_audit_free(s->audit);
	}
	for(size_t i = 0; i < s->nclients; i++)
		pthread_mutex_destroy(&s->buckets[i].lock);
	OPENSSL_cleanse(s->clients, sizeof(s->clients));
	sg_config_free(s->cfg);
}

int sg_service_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *cfgpath = NULL, *listen = NULL;
	svc s = { 0 };
	SSL_CTX *tls = NULL;
	sg_httpd *h = NULL;
	sg_status rc;
	int c, ret = 2;

	/* Authenticode's OIDs are added to OpenSSL's table before any thread
	 * starts: OpenSSL 3.0 reads that table without a lock. */
	sg_spc_init();

	optind = 1;
	while((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch(c) {
		case 'c': cfgpath = optarg; break;
		case 'l': listen = optarg; break;
		case 'h': fputs(service_help, stdout); return 0;
		default:
			fprintf(stderr, "signgate service: bad option\nTry 'signgate service --help'.\n");
			return 2;
		}
	}
	if(!cfgpath || optind != argc) {
		fprintf(stderr, "signgate service: give --config FILE\nTry 'signgate service --help'.\n");
		return 2;
	}
	sg_httpd_block_signals();
	rc = sg_config_load(cfgpath, &s.cfg);
	if(rc) {
		fprintf(stderr, "signgate service: %s\n", sg_last_error());
		return 2;
	}
	if(sg_log_open(s.cfg->log)) {
		fprintf(stderr, "signgate service: cannot open log file %s\n", s.cfg->log);
		goto out;
	}
	if(!listen)
		listen = s.cfg->svc_listen ? s.cfg->svc_listen : "127.0.0.1:8443";
	if(!s.cfg->svc_tls_cert || !s.cfg->svc_tls_key) {
		rc = sg_fail(SG_ERR_USAGE, "%s: [service] needs tls_cert and tls_key (the service speaks HTTPS only)",
		             cfgpath);
		goto fail;
	}
	/* A service that only stamps, open to all, needs no client. */
	if(!s.cfg->nkeys || (!s.cfg->nclients &&
	                     (!s.cfg->svc_tsa_key || s.cfg->svc_tsa_require_token))) {
		rc = sg_fail(SG_ERR_USAGE, "%s: define at least one [key NAME] and one [client NAME]",
		             cfgpath);
		goto fail;
	}
	if(s.cfg->svc_audit_log) {
		uint64_t seq;
		char hash[SG_AUDIT_HASH_HEX + 1];
		if(s.cfg->svc_audit_log_old_name)
			sg_log(SG_LOG_WARN, "[service] sign_log is the old name of audit_log; rename it");
		rc = sg_audit_open(s.cfg->svc_audit_log, &s.audit);
		if(rc)
			goto fail;
		sg_audit_last(s.audit, &seq, hash);
		if(seq)
			sg_log(SG_LOG_INFO, "audit log %s: the chain goes on after seq %llu, hash %s",
			       s.cfg->svc_audit_log, (unsigned long long)seq, hash);
		else
			sg_log(SG_LOG_INFO, "audit log %s: empty, the chain starts at seq 1",
			       s.cfg->svc_audit_log);
	} else {
		sg_log(SG_LOG_WARN, "no [service] audit_log: signing requests are not recorded");
	}
	rc = sg_tls_server_ctx(s.cfg->svc_tls_cert, s.cfg->svc_tls_key, &tls);
	if(!rc && s.cfg->svc_client_ca) {
		rc = sg_tls_client_ca(tls, s.cfg->svc_client_ca);
		if(!rc)
			sg_log(SG_LOG_INFO, "TLS client certificates are asked for and verified "
			       "against %s", s.cfg->svc_client_ca);
	}
	if(!rc)
		rc = svc_load_clients(&s);
	if(!rc)
		rc = svc_open_keys(&s);
	if(!rc && s.cfg->svc_tsa_key)
		rc = svc_open_tsa(&s);
	if(rc)
		goto fail;
	if(s.cfg->svc_ts.nurls) {
		sg_config_timestamp_opts(&s.cfg->svc_ts, &s.ts_opts);
		sg_log(SG_LOG_INFO, "signatures are timestamped by %s%s; if no TSA answers: %s",
		       s.cfg->svc_ts.urls[0], s.cfg->svc_ts.nurls > 1 ? " (and fallbacks)" : "",
		       s.cfg->svc_ts.policy == SG_TIMESTAMP_SKIP ? "return them without "
		       "(timestamp_policy = skip)" : "refuse with 503 (timestamp_policy = fail)");
	}
	sg_httpd_opts ho = {
		.listen = listen, .tls = tls, .threads = s.cfg->svc_threads,
		.max_body = s.cfg->svc_max_body, .timeout = 30,
		.handler = svc_handle, .arg = &s,
	};
	rc = sg_httpd_start(&ho, &h);
	if(rc)
		goto fail;
	sg_log(SG_LOG_INFO, "signing service listening on https://%s (port %d), %zu keys, %zu clients",
	       listen, sg_httpd_port(h), s.nkeys, s.nclients);
	{
		char *host = NULL;
		int port;
		if(!sg_parse_hostport(listen, &host, &port))
			printf("listening on https://%s:%d\n", *host ? host : "0.0.0.0",
			       sg_httpd_port(h));
		free(host);
	}
	fflush(stdout);
	c = sg_httpd_wait_signal();
	sg_log(SG_LOG_INFO, "signal %d: stopping", c);
	sg_httpd_stop(h);
	ret = 0;
	goto out;
fail:
	sg_log(SG_LOG_ERROR, "cannot start: %s", sg_last_error());
	if(s.cfg && s.cfg->log && strcmp(s.cfg->log, "-"))
		fprintf(stderr, "signgate service: %s\n", sg_last_error());
out:
	SSL_CTX_free(tls);
	svc_free(&s);
	sg_log_close();
	return ret;
}
