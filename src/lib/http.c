/*
 * http.c - see http.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

/* The proxy said no: to our credentials (407, or 401 as tinyproxy says
 * it) or to the tunnel (a CONNECT answered 403 or the like, as by a proxy
 * that allows some targets only); or it could not reach the target (5xx).
 * Says so in rep->errbuf, naming the proxy but never the password.  Only
 * a refusal becomes CURLE_PROXY, which is not retried: a proxy that cannot
 * reach a restarting service now may well reach it in a moment. */
static void http_proxy_refused(const sg_http_req *q, sg_http_reply *rep, long code)
{
	const char *proxy = q->proxy && *q->proxy ? q->proxy : "(from the environment)";
	int env = !(q->proxy && *q->proxy);
	char target[160] = "the target";
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL;

	if(u && !curl_url_set(u, CURLUPART_URL, q->url, 0) &&
	   !curl_url_get(u, CURLUPART_HOST, &host, 0) &&
	   !curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT))
		snprintf(target, sizeof(target), "%s:%s", host, port);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	if(code >= 500) {
		snprintf(rep->errbuf, sizeof(rep->errbuf), "the proxy %s could not reach %s "
		         "(HTTP %ld to CONNECT)", proxy, target, code);
		if(rep->cc == CURLE_OK)
			rep->cc = CURLE_RECV_ERROR;
		return;
	}
	if((code == 407 || code == 401) && env)
		snprintf(rep->errbuf, sizeof(rep->errbuf), "the proxy %s refused the request for "
		         "want of valid credentials (HTTP %ld): give them in the variable as "
		         "http://USER:PASSWORD@HOST:PORT", proxy, code);
	else if((code == 407 || code == 401) && !q->proxy_user)
		snprintf(rep->errbuf, sizeof(rep->errbuf), "the proxy %s demands authentication "
		         "(HTTP %ld): set the proxy user and password", proxy, code);
	else if(code == 407 || code == 401)
		snprintf(rep->errbuf, sizeof(rep->errbuf), "the proxy %s refused user '%.40s' and "
		         "its password (HTTP %ld)", proxy, q->proxy_user, code);
	else
		snprintf(rep->errbuf, sizeof(rep->errbuf), "the proxy %s refused to connect to %s "
		         "(HTTP %ld to CONNECT)", proxy, target, code);
	rep->cc = CURLE_PROXY;
}

sg_status sg_http_proxy_opts(const sg_proxy *p, sg_http_req *q, char **password)
{
	sg_status rc;

	*password = NULL;
	q->proxy = p->url;
	q->no_proxy = p->no_proxy && *p->no_proxy ? p->no_proxy : NULL;
	q->proxy_user = NULL;
	q->proxy_password = NULL;
	if(!p->url || !*p->url || !p->user || !*p->user)
		return SG_OK;
	q->proxy_user = p->user;
	if(p->password) {
		rc = sg_secret_read(p->password, password);
		if(rc)
			return sg_fail_prefix(rc, "proxy password");
		q->proxy_password = *password;
	}
	return SG_OK;
}

sg_status sg_http_exchange(const sg_http_req *q, sg_http_reply *rep)
{
	struct curl_slist *hdrs = NULL, *h;
	long connect_code = 0;
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
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, q->redirects > 0 ? 1L : 0L);
	if(q->redirects > 0) {
		curl_easy_setopt(c, CURLOPT_MAXREDIRS, q->redirects);
#if LIBCURL_VERSION_NUM >= 0x075500
		curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, q->protocols);
#endif
	}
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)q->max_answer);
	if(q->proxy)
		curl_easy_setopt(c, CURLOPT_PROXY, q->proxy);
	if(q->proxy_user) {
		curl_easy_setopt(c, CURLOPT_PROXYUSERNAME, q->proxy_user);
		curl_easy_setopt(c, CURLOPT_PROXYPASSWORD, q->proxy_password ? q->proxy_password : "");
		curl_easy_setopt(c, CURLOPT_PROXYAUTH, (long)CURLAUTH_BASIC);
	}
	/* A proxy of our own: the no_proxy variable must not undo it. */
	if(q->no_proxy || (q->proxy && *q->proxy))
		curl_easy_setopt(c, CURLOPT_NOPROXY, q->no_proxy ? q->no_proxy : "");
	if(q->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, q->ca_file);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sg_capbuf_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &rep->body);
	rep->cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &rep->http);
	curl_easy_getinfo(c, CURLINFO_HTTP_CONNECTCODE, &connect_code);
	if(connect_code >= 300 || (rep->http == 407 && rep->cc == CURLE_OK))
		http_proxy_refused(q, rep, connect_code >= 300 ? connect_code : rep->http);
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

sg_status sg_proxy_parse(const char *value, char **url)
{
	const char *s = value, *colon, *sep;
	size_t hl, n;
	char *end;
	long port;

	*url = NULL;
	if(!strncasecmp(s, "http://", 7))
		s += 7;
	else if((sep = strstr(s, "://")))
		return sg_fail(SG_ERR_USAGE, "proxy '%.80s': only http:// proxies are supported "
		               "(HTTPS still goes through them, tunnelled by CONNECT)", value);
	if(strchr(s, '@'))
		return sg_fail(SG_ERR_USAGE, "proxy: give the user and password in their own "
		               "settings, not in the address");
	if(*s == '[') {
		const char *rb = strchr(s, ']');
		if(!rb || rb == s + 1 || rb[1] != ':' ||
		   strspn(s + 1, "0123456789abcdefABCDEF:.") != (size_t)(rb - s - 1))
			return sg_fail(SG_ERR_USAGE, "proxy '%.80s' is not [IPv6-ADDRESS]:PORT", value);
		colon = rb + 1;
	} else {
		colon = strchr(s, ':');
		hl = colon ? (size_t)(colon - s) : strlen(s);
		if(!hl || strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")
		   != hl)
			return sg_fail(SG_ERR_USAGE, "proxy '%.80s': the host must be an IP address "
			               "or a DNS name, followed by :PORT", value);
		if(!colon)
			return sg_fail(SG_ERR_USAGE, "proxy '%.80s' has no port (HOST:PORT, e.g. "
			               "proxy.example.com:3128)", value);
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if(end == colon + 1 || errno || port < 1 || port > 65535 || (*end && strcmp(end, "/")))
		return sg_fail(SG_ERR_USAGE, "proxy '%.80s': the port must be a number from 1 to "
		               "65535", value);
	n = (size_t)(end - s) + sizeof("http://");
	if(!(*url = malloc(n)))
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	snprintf(*url, n, "http://%.*s", (int)(end - s), s);
	return SG_OK;
}
