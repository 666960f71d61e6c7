/*
 * sign_request.c - see sign_request.h.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "log.h"
#include "sign_request.h"

static const char *const known_fields[] = {
	"key", "digest_algorithm", "digest", "file_name", "format", "program_name",
	"program_url",
};

/* A string field: NULL if absent; sets *bad if present but not a string. */
static const char *rq_str(json_t *o, const char *name, int *bad)
{
	json_t *v = json_object_get(o, name);

	if(!v)
		return NULL;
	if(!json_is_string(v)) {
		*bad = 1;
		return NULL;
	}
	return json_string_value(v);
}

/* 1 to max bytes, no control characters. */
static int rq_printable(const char *s, size_t max)
{
	size_t n = strlen(s);

	if(n == 0 || n > max)
		return 0;
	for(; *s; s++)
		if((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

int sg_sign_request_parse(const char *text, size_t len, sg_sign_request *rq,
                          char *msg, size_t msglen)
{
	json_error_t jerr;
	const char *name, *hex, *missing;
	json_t *v, *body;
	int bad = 0;

	memset(rq, 0, sizeof(*rq));
	body = rq->body = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if(!body || !json_is_object(body)) {
		snprintf(msg, msglen, "body is not a JSON object: %s", body ? "wrong type" : jerr.text);
		return 400;
	}
	rq->raw_key = json_string_value(json_object_get(body, "key"));
	rq->raw_file = json_string_value(json_object_get(body, "file_name"));
	rq->raw_alg = json_string_value(json_object_get(body, "digest_algorithm"));
	rq->raw_digest = json_string_value(json_object_get(body, "digest"));
	/* Unknown fields are refused: a typo must not pass silently. */
	json_object_foreach(body, name, v) {
		size_t i, n = sizeof(known_fields) / sizeof(known_fields[0]);
		for(i = 0; i < n && strcmp(name, known_fields[i]); i++)
			;
		if(i == n) {
			char qname[120];
			snprintf(msg, msglen, "unknown field %s", sg_log_quote(name, qname, sizeof(qname)));
			return 400;
		}
	}
	rq->key = rq_str(body, "key", &bad);
	rq->file = rq_str(body, "file_name", &bad);
	rq->fmt = rq_str(body, "format", &bad);
	rq->pname = rq_str(body, "program_name", &bad);
	rq->purl = rq_str(body, "program_url", &bad);
	const char *alg = rq_str(body, "digest_algorithm", &bad);
	hex = rq_str(body, "digest", &bad);
	missing = !rq->key ? "key" : !alg ? "digest_algorithm" : !hex ? "digest"
	        : !rq->file ? "file_name" : !rq->fmt ? "format" : NULL;
	if(bad || missing) {
		snprintf(msg, msglen, bad ? "a field has the wrong type (all are strings)"
		                          : "field '%s' is missing", missing);
		return 400;
	}
	if(sg_md_from_name(alg, &rq->md)) {
		snprintf(msg, msglen, "field 'digest_algorithm' must be sha1, sha256, sha384 or sha512");
		return 400;
	}
	if(strlen(hex) != 2 * sg_md_size(rq->md) ||
	   OPENSSL_hexstr2buf_ex(rq->digest, sizeof(rq->digest), &rq->dlen, hex, '\0') != 1 ||
	   rq->dlen != sg_md_size(rq->md)) {
		snprintf(msg, msglen, "field 'digest' must be %zu hex digits for %s",
		         2 * sg_md_size(rq->md), sg_md_name(rq->md));
		return 400;
	}
	if(!rq_printable(rq->file, 255)) {
		snprintf(msg, msglen, "field 'file_name' must be 1 to 255 bytes without control characters");
		return 400;
	}
	if(strcmp(rq->fmt, "pe")) {
		snprintf(msg, msglen, "field 'format' must be 'pe'");
		return 400;
	}
	if((rq->pname && !rq_printable(rq->pname, 1024)) ||
	   (rq->purl && !rq_printable(rq->purl, 1024))) {
		snprintf(msg, msglen, "fields 'program_name' and 'program_url' must be 1 to 1024 "
		         "bytes without control characters");
		return 400;
	}
	return 0;
}

void sg_sign_request_free(sg_sign_request *rq)
{
	json_decref(rq->body);
	rq->body = NULL;
}
