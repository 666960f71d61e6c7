/*
 * http.h - one outgoing HTTP exchange with libcurl, as the signing-service
 * client (remote.c) and the TSA client (timestamp.c) both need it: fixed
 * headers, an optional body, TLS 1.2+ with peer and host verification, no
 * redirects, timeouts, an explicit or environment proxy, and an answer
 * body with a ceiling.
 */
#ifndef SG_HTTP_H
#define SG_HTTP_H

#include <curl/curl.h>

#include "internal.h"

typedef struct sg_http_req {
	const char *url;
	const char *const *headers;  /* "Name: value" lines */
	size_t nheaders;
	const void *body;            /* NULL: a GET */
	size_t bodylen;
	const char *protocols;       /* e.g. "https" or "http,https" */
	long connect_timeout, timeout;
	const char *proxy;           /* NULL: libcurl's default (the environment);
	                                "": none */
	const char *proxy_user;      /* Basic authentication; NULL: none */
	const char *proxy_password;  /* the password itself (not a spec) */
	const char *no_proxy;        /* NULL: none (or the environment's) */
	const char *ca_file;         /* NULL: the system store */
	size_t max_answer;
	long redirects;              /* at most this many (same protocols); 0: none */
} sg_http_req;

typedef struct sg_http_reply {
	CURLcode cc;
	long http;
	char ctype[128];
	char errbuf[CURL_ERROR_SIZE];
	sg_capbuf body;              /* the caller frees body.p */
} sg_http_reply;

/* curl_global_init, once per process; SG_ERR_NETWORK if it failed. */
sg_status sg_http_init(void);
/* Performs q, filling rep.  Non-zero only when the request could not even
 * be set up; network and HTTP outcomes are in rep.  A proxy that refuses
 * (407 asking for credentials, or a CONNECT it will not tunnel) gives
 * rep->cc CURLE_PROXY with errbuf naming the proxy and what to do.  Header lines holding
 * "Authorization:" are wiped from curl's copy afterwards. */
sg_status sg_http_exchange(const sg_http_req *q, sg_http_reply *rep);
/* The request options for proxy p, its password already read into
 * *password (sg_secret_free() it after the exchange).  A NULL p->url
 * leaves the environment's proxy. */
sg_status sg_http_proxy_opts(const sg_proxy *p, sg_http_req *q, char **password);
/* Sleeps ms milliseconds (backoff between attempts). */
void sg_http_sleep_ms(long ms);

#endif
