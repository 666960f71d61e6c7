/*
 * http.c - see http.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "http.h"

static pthread_once_t http_once = PTHREAD_ONCE_INIT;
static CURLcode http_init_rc = CURLE_FAILED_INIT;

static void http_global_init(void)
{
	http_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

sg_status sg_http_init(void)
{
	pthread_once(&http_once, http_global_init);
	if(http_init_rc != CURLE_OK)
		return sg_fail(SG_ERR_NETWORK, "libcurl cannot be initialised: %s",
		               curl_easy_strerror(http_init_rc));
	return SG_OK;
}

sg_status sg_http_exchange(const sg_http_req *q, sg_http_reply *rep)
{
	struct curl_slist *hdrs = NULL, *h;
	char *ct = NULL;
	CURL *c;
	sg_status rc;

	memset(rep, 0, sizeof(*rep));
	rep->body.max = q->max_answer;
	rc = sg_http_init();
	if(rc)
		return rc;
	c = curl_easy_init();
	if(!c)
		return sg_fail(SG_ERR_NOMEM, "cannot create a curl handle");
	for(size_t i = 0; i < q->nheaders; i++) {
		h = curl_slist_append(hdrs, q->headers[i]);
		if(!h) {
			rc = sg_fail(SG_ERR_NOMEM, "out of memory");
			goto out;
		}
		hdrs = h;
	}
	curl_easy_setopt(c, CURLOPT_URL, q->url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, q->protocols);
#else
	curl_easy_setopt(c, CURLOPT_PROTOCOLS, strstr(q->protocols, "http,")
	                 ? (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS) : (long)CURLPROTO_HTTPS);
#endif
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, rep->errbuf);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	if(q->body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->bodylen);
	}
	curl_easy_setopt(c, CURLOPT_USERAGENT, "signgate/" SG_VERSION);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, q->connect_timeout);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, q->timeout);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)q->max_answer);
	if(q->proxy)
		curl_easy_setopt(c, CURLOPT_PROXY, q->proxy);
	if(q->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, q->ca_file);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sg_capbuf_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &rep->body);
	rep->cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &rep->http);
	if(curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
		snprintf(rep->ctype, sizeof(rep->ctype), "%s", ct);
out:
	/* The list may hold a copy of a bearer token. */
	for(h = hdrs; h; h = h->next)
		if(!strncmp(h->data, "Authorization:", 14))
			OPENSSL_cleanse(h->data, strlen(h->data));
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return rc;
}

void sg_http_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while(nanosleep(&ts, &ts) && errno == EINTR)
		;
}
