/*
 * httpd.c - see httpd.h.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <jansson.h>
#include <openssl/err.h>

#include "../lib/internal.h"
#include "config.h"
#include "httpd.h"
#include "log.h"

#define MAX_THREADS 1024

struct worker {
	pthread_t tid;
	struct event_base *base;
	struct evhttp *http;
	int fd;                      /* its own listening socket */
	int started;
};

struct sg_httpd {
	int port;
	SSL_CTX *tls;
	int nworkers;
	struct worker *w;
};

static struct bufferevent *httpd_tls_bev(struct event_base *base, void *arg)
{
	SSL *ssl = SSL_new(arg);

	if(!ssl)
		return NULL;
	return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                      BEV_OPT_CLOSE_ON_FREE | BEV_OPT_THREADSAFE);
}

static void *httpd_loop(void *arg)
{
	struct worker *w = arg;

	event_base_dispatch(w->base);
	return NULL;
}

/*
 * One listening socket per worker, all bound to the same address with
 * SO_REUSEPORT: the kernel spreads new connections over them.  With one
 * shared socket, the worker that wakes first accepts a whole burst (libevent
 * accepts until EAGAIN) and serves it alone, one blocking signing after
 * another, while the other workers idle.  A first bind without
 * SO_REUSEPORT makes sure no other server already listens there (it would
 * share the port otherwise); with port 0 it picks the port.
 */
static sg_status httpd_listen(const char *spec, int nfd, int *fds, int *port_out)
{
	struct addrinfo hints = { 0 }, *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char *host = NULL, portstr[8];
	int port, fd = -1, one = 1, e;
	sg_status rc;

	rc = sg_parse_hostport(spec, &host, &port);
	if(rc)
		return rc;
	snprintf(portstr, sizeof(portstr), "%d", port);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	e = getaddrinfo(*host ? host : NULL, portstr, &hints, &ai);
	if(e) {
		rc = sg_fail(SG_ERR_USAGE, "cannot resolve listen address %s: %s", spec, gai_strerror(e));
		goto out;
	}
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
	if(fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	   bind(fd, ai->ai_addr, ai->ai_addrlen)) {
		rc = sg_fail(SG_ERR_IO, "cannot listen on %s: %s", spec, strerror(errno));
		goto out;
	}
	if(getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
		                                      : ((struct sockaddr_in *)&ss)->sin_port);
	close(fd);
	fd = -1;
	if(ss.ss_family == AF_INET6)
		((struct sockaddr_in6 *)ai->ai_addr)->sin6_port = htons((uint16_t)port);
	else
		((struct sockaddr_in *)ai->ai_addr)->sin_port = htons((uint16_t)port);
	for(int i = 0; i < nfd; i++) {
		fds[i] = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
		/* TCP_NODELAY (inherited by accepted sockets on Linux): a reply
		 * goes out as several TLS records; Nagle plus the peer's delayed
		 * ACK would hold each request up 40 ms. */
		if(fds[i] < 0 || setsockopt(fds[i], SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
		   setsockopt(fds[i], SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
		   setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) ||
		   bind(fds[i], ai->ai_addr, ai->ai_addrlen) || listen(fds[i], 1024) ||
		   evutil_make_socket_nonblocking(fds[i])) {
			rc = sg_fail(SG_ERR_IO, "cannot listen on %s: %s", spec, strerror(errno));
			goto out;
		}
	}
	*port_out = port;
out:
	if(fd >= 0)
		close(fd);
	if(ai)
		freeaddrinfo(ai);
	free(host);
	return rc;
}

sg_status sg_httpd_start(const sg_httpd_opts *o, sg_httpd **out)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	sg_httpd *h;
	sg_status rc;

	*out = NULL;
	pthread_once(&once, (void (*)(void))evthread_use_pthreads);
	if(o->threads < 1 || o->threads > MAX_THREADS)
		return sg_fail(SG_ERR_USAGE, "threads must be 1 to %d", MAX_THREADS);
	h = calloc(1, sizeof(*h));
	if(!h || !(h->w = calloc((size_t)o->threads, sizeof(*h->w)))) {
		free(h);
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	}
	h->tls = o->tls;
	{
		int *fds = malloc(sizeof(int) * (size_t)o->threads);
		if(!fds) {
			rc = sg_fail(SG_ERR_NOMEM, "out of memory");
			goto fail;
		}
		for(int i = 0; i < o->threads; i++)
			fds[i] = -1;
		rc = httpd_listen(o->listen, o->threads, fds, &h->port);
		for(int i = 0; i < o->threads; i++)
			h->w[i].fd = fds[i];
		free(fds);
	}
	h->nworkers = 0;
	if(rc)
		goto fail;
	for(int i = 0; i < o->threads; i++) {
		struct worker *w = &h->w[i];
		w->base = event_base_new();
		w->http = w->base ? evhttp_new(w->base) : NULL;
		if(!w->http || evhttp_accept_socket(w->http, w->fd)) {
			rc = sg_fail(SG_ERR_IO, "cannot set up HTTP worker %d", i);
			goto fail;
		}
		w->fd = -1;   /* evhttp's listener closes it (LEV_OPT_CLOSE_ON_FREE) */
		if(o->tls)
			evhttp_set_bevcb(w->http, httpd_tls_bev, o->tls);
		evhttp_set_max_body_size(w->http, o->max_body ? (ev_ssize_t)o->max_body : 65536);
		evhttp_set_max_headers_size(w->http, 16384);
		evhttp_set_timeout(w->http, o->timeout > 0 ? o->timeout : 60);
		evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
		                                    EVHTTP_REQ_POST);
		evhttp_set_gencb(w->http, o->handler, o->arg);
		if(pthread_create(&w->tid, NULL, httpd_loop, w)) {
			rc = sg_fail(SG_ERR_IO, "cannot start HTTP worker thread");
			goto fail;
		}
		w->started = 1;
		h->nworkers = i + 1;
	}
	*out = h;
	return SG_OK;
fail:
	h->nworkers = o->threads;
	sg_httpd_stop(h);
	return rc;
}

int sg_httpd_port(const sg_httpd *h)
{
	return h->port;
}

void sg_httpd_stop(sg_httpd *h)
{
	if(!h)
		return;
	for(int i = 0; i < h->nworkers; i++)
		if(h->w[i].base)
			event_base_loopbreak(h->w[i].base);
	for(int i = 0; i < h->nworkers; i++) {
		if(h->w[i].started)
			pthread_join(h->w[i].tid, NULL);
		if(h->w[i].http)
			evhttp_free(h->w[i].http);
		if(h->w[i].base)
			event_base_free(h->w[i].base);
		if(h->w[i].fd >= 0)
			close(h->w[i].fd);
	}
	free(h->w);
	free(h);
}

void sg_httpd_block_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int sg_httpd_wait_signal(void)
{
	sigset_t set;
	int sig = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	/* SIGHUP reopens the log file (logrotate), and serving goes on. */
	while(sigwait(&set, &sig) == 0 && sig == SIGHUP) {
		if(sg_log_reopen())
			sg_log(SG_LOG_ERROR, "SIGHUP: cannot reopen the log file");
		else
			sg_log(SG_LOG_INFO, "SIGHUP: log file reopened");
	}
	return sig;
}

sg_status sg_tls_server_ctx(const char *cert, const char *key, SSL_CTX **out)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	*out = NULL;
	if(!ctx)
		return sg_fail_ossl(SG_ERR_CRYPTO, "cannot create TLS context");
	if(!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	   SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		SSL_CTX_free(ctx);
		return sg_fail_ossl(SG_ERR_USAGE, "cannot load TLS certificate chain %s", cert);
	}
	if(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	   SSL_CTX_check_private_key(ctx) != 1) {
		SSL_CTX_free(ctx);
		return sg_fail_ossl(SG_ERR_USAGE, "cannot load TLS key %s (or it does not match %s)",
		                    key, cert);
	}
	*out = ctx;
	return SG_OK;
}

/* Every certificate is let through the handshake; the verdict stays in
 * SSL_get_verify_result() for sg_http_peer_cert(). */
static int httpd_verify_cb(int preverify_ok, X509_STORE_CTX *x)
{
	(void)preverify_ok;
	(void)x;
	return 1;
}

sg_status sg_tls_client_ca(SSL_CTX *ctx, const char *cafile)
{
	STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cafile);

	if(!names || SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
		sk_X509_NAME_pop_free(names, X509_NAME_free);
		return sg_fail_ossl(SG_ERR_USAGE, "cannot load client CA certificates %s", cafile);
	}
	SSL_CTX_set_client_CA_list(ctx, names);
	/* SSL_VERIFY_PEER without FAIL_IF_NO_PEER_CERT: a certificate is asked
	 * for, not required. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, httpd_verify_cb);
	SSL_CTX_set_verify_depth(ctx, 8);
	return SG_OK;
}

X509 *sg_http_peer_cert(struct evhttp_request *req, int *verified, const char **why)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	X509 *x = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
	long v = ssl ? SSL_get_verify_result(ssl) : X509_V_ERR_UNSPECIFIED;

	*verified = x && v == X509_V_OK;
	*why = *verified ? NULL : X509_verify_cert_error_string(v);
	return x;
}

void sg_http_error(struct evhttp_request *req, int code, const char *msg)
{
	struct evbuffer *b = evbuffer_new();
	json_t *j = json_pack("{s:s}", "error", msg ? msg : "");
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "application/json");
	evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
	if(b && s) {
		evbuffer_add_printf(b, "%s\n", s);
	}
	evhttp_send_reply(req, code, NULL, b);
	free(s);
	json_decref(j);
	if(b)
		evbuffer_free(b);
}
