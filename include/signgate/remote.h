/*
 * remote.h - the client of the signgate signing service (docs/API.md).
 *
 * The service holds the keys; the client sends a file's Authenticode
 * digest and gets back the complete Authenticode signature (DER PKCS#7
 * SignedData), ready for sg_file_write_fd().  HTTPS only, bearer token.
 * A handle is immutable after sg_remote_new(), so any number of threads
 * may call sg_remote_sign() on it at once.
 */
#ifndef SIGNGATE_REMOTE_H
#define SIGNGATE_REMOTE_H

#include <stddef.h>

#include "signgate/signgate.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sg_remote sg_remote;

typedef struct sg_remote_opts {
	const char *url;         /* base URL of the service: https://HOST:PORT */
	const char *ca_file;     /* PEM roots for the service's TLS certificate;
	                            NULL: the system store */
	const char *token;       /* secret spec of the bearer token: file:PATH,
	                            env:VAR or pass:TEXT (see sg_secret_read) */
	const char *key;         /* key name at the service */
	sg_proxy proxy;          /* url e.g. http://proxy:3128; NULL or "": no
	                            proxy (the http_proxy/https_proxy variables
	                            are ignored); the password is read once here */
	long connect_timeout;    /* seconds; 0: 10 */
	long timeout;            /* seconds for a whole request; 0: 60 */
	int retries;             /* extra attempts after a network error or an
	                            HTTP 502/503/504, waiting 200 ms, 400 ms, ... */
} sg_remote_opts;

/*
 * Checks the options and reads the token once (it is kept in memory, wiped
 * by sg_remote_free, and never appears in an error message).  No network
 * traffic happens here.  Owned by the caller: sg_remote_free().
 */
sg_status sg_remote_new(const sg_remote_opts *o, sg_remote **out);
/* Checks a service URL as sg_remote_new() does: https, a host and a port
 * libcurl accepts (1 to 65535), no user:password, query or fragment. */
sg_status sg_remote_check_url(const char *url);
void sg_remote_free(sg_remote *r);

/* Checks the connection once (GET /v1/keys): reachable, TLS trusted, the
 * token accepted, the key offered to this client.  For a start-up check:
 * a failure here may be passing (the service restarting). */
sg_status sg_remote_probe(sg_remote *r);
/* The same check, also giving the key's certificate subject and notAfter
 * ("2029-12-02T16:50:34Z") as the service tells them (either may be NULL). */
sg_status sg_remote_key_info(sg_remote *r, char *subject, size_t subjlen, char *not_after,
                             size_t nalen);

/* The base URL without any user:password part, for messages and logs. */
const char *sg_remote_url(const sg_remote *r);
/* The key name at the service. */
const char *sg_remote_key(const sg_remote *r);

/*
 * POST /v1/sign: asks the service to sign the Authenticode digest (under
 * md, dlen bytes) of a file of format fmt ("pe") called file_name (for the
 * service's log; shortened and cleaned of control characters as the API
 * requires).  opts may be NULL.  The returned signature is checked to
 * carry exactly this digest and algorithm.  *der is freed with sg_free().
 *
 * SG_ERR_NETWORK: the service could not be reached or did not answer in
 * time (after the retries).  SG_ERR_REMOTE: it answered with an error
 * (the detail names the HTTP status and the service's message) or with
 * something that is not a valid answer.
 */
sg_status sg_remote_sign(sg_remote *r, const char *fmt, sg_md md,
                         const unsigned char *digest, size_t dlen,
                         const char *file_name, const sg_sign_opts *opts,
                         unsigned char **der, size_t *derlen);

#ifdef __cplusplus
}
#endif
#endif /* SIGNGATE_REMOTE_H */
