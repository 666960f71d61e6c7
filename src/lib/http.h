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
	const char *ca_file;         /* NULL: the system store */
	size_t max_answer;
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
 * be set up; network and HTTP outcomes are in rep.  Header lines holding
 * "Authorization:" are wiped from curl's copy afterwards. */
sg_status sg_http_exchange(const sg_http_req *q, sg_http_reply *rep);
/* Sleeps ms milliseconds (backoff between attempts). */
void sg_http_sleep_ms(long ms);

#endif
