/*
 * httpd.h - a small multi-threaded HTTP(S) server on libevent's evhttp:
 * N threads, each with its own event loop, accepting on one shared
 * listening socket, so a handler that blocks (an HSM signature, a call to
 * the signing service) holds up only its own thread.  TLS, when asked
 * for, is OpenSSL through libevent's bufferevent_openssl.
 */
#ifndef SG_HTTPD_H
#define SG_HTTPD_H

#include <openssl/ssl.h>
#include <event2/http.h>

#include "signgate/signgate.h"

typedef struct sg_httpd sg_httpd;
typedef void (*sg_http_handler)(struct evhttp_request *req, void *arg);

typedef struct sg_httpd_opts {
	const char *listen;      /* host:port; port 0 picks a free one */
	SSL_CTX *tls;            /* NULL: plain HTTP.  Not owned. */
	int threads;
	size_t max_body;         /* requests with larger bodies get 413 */
	int timeout;             /* seconds of idle before a connection closes */
	sg_http_handler handler; /* every request */
	void *arg;
} sg_httpd_opts;

sg_status sg_httpd_start(const sg_httpd_opts *o, sg_httpd **out);
/* The port actually bound (useful with port 0). */
int sg_httpd_port(const sg_httpd *h);
/* Stops the loops, joins the threads, frees. */
void sg_httpd_stop(sg_httpd *h);

/* Blocks until SIGINT or SIGTERM (which must be blocked in every thread
 * before the server starts: see sg_httpd_block_signals); SIGHUP meanwhile
 * reopens the log file.  Returns the signal that stopped it. */
int sg_httpd_wait_signal(void);
void sg_httpd_block_signals(void);

/* A server TLS context from PEM cert chain and key, TLS 1.2+. */
sg_status sg_tls_server_ctx(const char *cert, const char *key, SSL_CTX **out);

/* Makes the server ask for a TLS client certificate, verified against the
 * PEM roots in cafile.  A missing or untrusted certificate does not fail
 * the handshake (token-only clients still connect): the handler decides,
 * with sg_http_peer_cert(). */
sg_status sg_tls_client_ca(SSL_CTX *ctx, const char *cafile);

/* The client certificate of req's TLS connection (not owned; valid for
 * the request), or NULL if none was sent.  *verified: 1 if it chains to
 * the client_ca roots, else 0 with *why saying why not. */
X509 *sg_http_peer_cert(struct evhttp_request *req, int *verified, const char **why);

/* Sends a reply with a JSON body {"error": msg} (msg is escaped). */
void sg_http_error(struct evhttp_request *req, int code, const char *msg);

#endif
