/*
 * sign_request.h - the body of POST /v1/sign (docs/API.md), parsed and
 * checked before anything is signed: JSON object, known fields only, all
 * strings, the digest's length matching its algorithm, no control
 * characters.  Pure (no HTTP, no keys), so a fuzz harness can feed it.
 */
#ifndef SG_SIGN_REQUEST_H
#define SG_SIGN_REQUEST_H

#include <stddef.h>

#include <jansson.h>

#include "signgate/signgate.h"

typedef struct sg_sign_request {
	json_t *body;          /* owns every string below */
	/* As sent, for the audit record, valid or not (NULL if absent or not
	 * a string). */
	const char *raw_key, *raw_file, *raw_alg, *raw_digest;
	/* Checked values (set when parsing succeeds). */
	const char *key, *file, *fmt, *pname, *purl;
	sg_md md;
	unsigned char digest[SG_MAX_MD];
	size_t dlen;
} sg_sign_request;

/* Parses body.  0 if the request is well-formed; otherwise the HTTP status
 * to answer (400) with msg saying which field is wrong.  Free rq with
 * sg_sign_request_free() either way. */
int sg_sign_request_parse(const char *body, size_t len, sg_sign_request *rq,
                          char *msg, size_t msglen);
void sg_sign_request_free(sg_sign_request *rq);

#endif
