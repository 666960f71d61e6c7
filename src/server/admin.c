/*
 * admin.c - the download server's admin page (see admin.h, docs/ADMIN.md).
 *
 * Access.  The page is served on loopback only: on the downloads' listener
 * when that is a loopback address, else on admin_listen, else not at all.
 * It asks for the admin password (admin_password, a secret spec, or
 * admin_password_hash, which the page writes itself); with neither, the
 * first visitor must give the one-time setup code the server wrote to
 * ADMIN_DIR/setup-code (0600) and chooses the password.  Only a PBKDF2 hash
 * of the password is kept.  A session is a random 256-bit cookie (HttpOnly,
 * SameSite=Strict, Path=/conf), 30 minutes idle and 8 hours at most; every
 * form carries the session's CSRF token, and a POST whose Origin is not
 * this page is refused.  A wrong password costs a second.
 *
 * Changes.  A form's values are checked one by one (a wrong one is shown
 * beside its field); then the configuration file is rewritten (only the
 * [serve] lines concerned; comments stay) into a temporary file beside it,
 * which is loaded and used to open the new signing setup (the key with its
 * PIN, or the service client and a check of the service).  Only if all
 * that works is the file fsync'd and renamed over the old one and the new
 * setup put in place; requests already signing finish with the old one.
 * Uploaded files and secrets go to ADMIN_DIR (0700) as new 0600 files, and
 * the configuration names them (secrets as file:PATH); files they replace
 * there are removed.  Secrets are never shown: a field says "set".
 */
#define _GNU_SOURCE 1   /* strptime, timegm */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "../lib/internal.h"
#include "admin.h"
#include "httpd.h"
#include "log.h"
#include "serve_int.h"

#define ADMIN_SESSIONS 16
#define ADMIN_IDLE (30 * 60)
#define ADMIN_MAX_AGE (8 * 3600)
#define ADMIN_PBKDF2_ITER 100000
#define ADMIN_PW_MIN 10
#define ADMIN_VALUE_MAX 180           /* one config line holds at most 198 */
#define ADMIN_PEM_MAX (256u << 10)
#define ADMIN_COOKIE "sg_admin"
#define ADMIN_FIELDS 24
#define ADMIN_CHECK_SECS 60           /* for `signgate serve --check` */

extern char **environ;

struct admin_session {
	int used;
	unsigned char idh[32];        /* SHA-256 of the cookie value */
	char csrf[65];
	time_t created, last;
};

struct sg_admin {
	struct serve *s;
	char *cfgpath;
	char *dir;                    /* ADMIN_DIR */
	char *listen;                 /* admin_listen, or NULL */
	pthread_mutex_t lock;         /* sessions, password */
	pthread_mutex_t save_lock;    /* one change at a time */
	int pw_set;
	unsigned char salt[16], hash[32];
	unsigned iter;
	char setup_code[33];          /* while no password is set */
	int setup_busy;               /* a setup is being saved */
	struct timespec next_try;     /* no password or code checked before */
	char *setup_path;
	struct admin_session sessions[ADMIN_SESSIONS];
	/* the page's thread and its queue */
	pthread_t thread;
	int thread_started, stopping;
	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	struct admin_call *qhead, *qtail;
};

/*
 * One request to the page.  The event loop copies what it needs (headers,
 * body, peer) into an admin_call and queues it; the page's own thread
 * works it out (logins, rewriting the configuration, opening keys, asking
 * the signing service, test signings: all may take seconds) and makes the
 * reply in it; the loop sends that (admin_send_cb).  So the page never
 * holds up the downloads' event loops.  The functions below take it under
 * the name req.
 */
struct admin_call {
	struct evhttp_request *ev;    /* the loop thread's only */
	struct event_base *base;
	struct admin_call *next;
	enum evhttp_cmd_type cmd;
	char *path, *query;
	char peer[80];
	struct evkeyvalq in;          /* the request's headers */
	char *body;                   /* and body, NUL-terminated */
	size_t bodylen;
	int code;                     /* the reply */
	struct evkeyvalq out;
	struct evbuffer *reply;
	int delay;                    /* seconds before it is sent */
};

static void *admin_thread(void *arg);

/* One page: what to show besides the current state. */
struct admin_view {
	const char *message;          /* shown on top, class ok */
	const char *form_error;       /* shown on top, class error */
	const char *test_result;
	int test_ok;
	struct evkeyvalq *posted;     /* values to show again after an error */
	const char *errs[ADMIN_FIELDS][2];   /* field, message (in msgs) */
	char msgs[ADMIN_FIELDS][300];
	char errbuf[700], warnbuf[600];     /* what form_error, message point to */
	int message_warn;                   /* message is a "saved, but" warning */
	size_t nerrs;
};

/* ---------------------------------------------------------------- small helpers */

static void admin_hex(const unsigned char *b, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";

	for(size_t i = 0; i < n; i++) {
		out[2 * i] = hx[b[i] >> 4];
		out[2 * i + 1] = hx[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static int admin_unhex(const char *s, unsigned char *out, size_t n)
{
	for(size_t i = 0; i < n; i++) {
		unsigned v = 0;
		for(int k = 0; k < 2; k++) {
			char c = s[2 * i + k];
			v <<= 4;
			if(c >= '0' && c <= '9') v |= (unsigned)(c - '0');
			else if(c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
			else return -1;
		}
		out[i] = (unsigned char)v;
	}
	return s[2 * n] == '\0' ? 0 : -1;
}

static void admin_esc(struct evbuffer *b, const char *s)
{
	for(; s && *s; s++) {
		switch(*s) {
		case '<': evbuffer_add(b, "&lt;", 4); break;
		case '>': evbuffer_add(b, "&gt;", 4); break;
		case '&': evbuffer_add(b, "&amp;", 5); break;
		case '"': evbuffer_add(b, "&quot;", 6); break;
		case '\'': evbuffer_add(b, "&#39;", 5); break;
		default: evbuffer_add(b, s, 1);
		}
	}
}

static void admin_pbkdf2(const char *pw, const unsigned char salt[16], unsigned iter,
                         unsigned char out[32])
{
	PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), salt, 16, (int)iter, EVP_sha256(), 32, out);
}

/* Sets the password from its text; returns the config value in hashtext
 * (pbkdf2-sha256:ITER:SALT:HASH). */
static sg_status admin_set_password(sg_admin *a, const char *pw, char hashtext[160])
{
	unsigned char salt[16], hash[32];
	char sh[33], hh[65];

	if(RAND_bytes(salt, sizeof(salt)) != 1)
		return sg_fail(SG_ERR_CRYPTO, "no random numbers");
	admin_pbkdf2(pw, salt, ADMIN_PBKDF2_ITER, hash);
	pthread_mutex_lock(&a->lock);
	memcpy(a->salt, salt, 16);
	memcpy(a->hash, hash, 32);
	a->iter = ADMIN_PBKDF2_ITER;
	a->pw_set = 1;
	pthread_mutex_unlock(&a->lock);
	if(hashtext) {
		admin_hex(salt, 16, sh);
		admin_hex(hash, 32, hh);
		snprintf(hashtext, 160, "pbkdf2-sha256:%u:%s:%s", ADMIN_PBKDF2_ITER, sh, hh);
	}
	OPENSSL_cleanse(hash, sizeof(hash));
	return SG_OK;
}

static int admin_check_password(sg_admin *a, const char *pw)
{
	unsigned char salt[16], want[32], got[32];
	unsigned iter;
	int ok;

	pthread_mutex_lock(&a->lock);
	ok = a->pw_set;
	memcpy(salt, a->salt, 16);
	memcpy(want, a->hash, 32);
	iter = a->iter;
	pthread_mutex_unlock(&a->lock);
	if(!ok)
		return 0;
	admin_pbkdf2(pw, salt, iter, got);
	ok = CRYPTO_memcmp(got, want, 32) == 0;
	OPENSSL_cleanse(got, sizeof(got));
	return ok;
}

/* Is host (of a listen setting, or of a Host header without its port) a
 * loopback address?  An address, not a name such as 127.evil.example. */
static int admin_loopback(const char *host)
{
	unsigned char buf[16];

	if(!strcmp(host, "localhost"))
		return 1;
	if(inet_pton(AF_INET, host, buf) == 1)
		return buf[0] == 127;
	return inet_pton(AF_INET6, host, buf) == 1 && !memcmp(buf, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16);
}

/* Is the request's Host one of ours?  A page of a DNS name that has been
 * made to point at 127.0.0.1 (DNS rebinding) arrives with that name as
 * Host: refused, so other sites' scripts cannot reach the page through the
 * admin's browser. */
static int admin_host_ok(const sg_admin *a, struct admin_call *req)
{
	const char *h = evhttp_find_header((&req->in), "Host");
	char host[256];
	size_t n;

	if(!h || !*h || strlen(h) >= sizeof(host))
		return 0;
	if(*h == '[') {
		const char *rb = strchr(h, ']');
		if(!rb)
			return 0;
		n = (size_t)(rb - h - 1);
		memcpy(host, h + 1, n);
	} else {
		n = strcspn(h, ":");
		memcpy(host, h, n);
	}
	host[n] = '\0';
	if(admin_loopback(host))
		return 1;
	/* admin_listen on another address: that address as given. */
	if(a->listen) {
		size_t ln = strcspn(*a->listen == '[' ? a->listen + 1 : a->listen,
		                    *a->listen == '[' ? "]" : ":");
		return ln == n && !strncmp(*a->listen == '[' ? a->listen + 1 : a->listen, host, n);
	}
	return 0;
}

/* ---------------------------------------------------------------- set-up */

int sg_admin_path(const char *path)
{
	return !strcmp(path, "/conf") || !strncmp(path, "/conf/", 6);
}

const char *sg_admin_listen(const sg_admin *a)
{
	return a->listen;
}

sg_status sg_admin_new(struct serve *s, const sg_config *c, const char *listen_host,
                       sg_admin **out)
{
	sg_admin *a;
	sg_status rc = SG_OK;

	*out = NULL;
	if(!c->admin) {
		sg_log(SG_LOG_INFO, "admin page off (admin = no)");
		return SG_OK;
	}
	if(!c->admin_listen && !admin_loopback(listen_host)) {
		sg_log(SG_LOG_INFO, "admin page off: the downloads listen on %s, not a loopback "
		       "address; set admin_listen = 127.0.0.1:PORT for a page of its own",
		       *listen_host ? listen_host : "all addresses");
		return SG_OK;
	}
	if(c->admin_password && c->admin_password_hash)
		return sg_fail(SG_ERR_USAGE, "%s: [serve] give admin_password or "
		               "admin_password_hash, not both", c->path);
	a = calloc(1, sizeof(*a));
	if(!a)
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	a->s = s;
	pthread_mutex_init(&a->lock, NULL);
	pthread_mutex_init(&a->save_lock, NULL);
	pthread_mutex_init(&a->qlock, NULL);
	pthread_cond_init(&a->qcond, NULL);
	a->cfgpath = strdup(c->path);
	if(c->admin_dir) {
		a->dir = strdup(c->admin_dir);
	} else {
		char *copy = strdup(c->path);
		/* Absolute: the configuration names files in it. */
		char *d = copy ? realpath(dirname(copy), NULL) : NULL;
		size_t n = d ? strlen(d) + sizeof("/admin") : 0;
		if(d && (a->dir = malloc(n)))
			snprintf(a->dir, n, "%s/admin", d);
		free(d);
		free(copy);
	}
	if(c->admin_listen) {
		char *host = NULL;
		int port;
		a->listen = strdup(c->admin_listen);
		if(a->listen && sg_parse_hostport(a->listen, &host, &port) == SG_OK &&
		   !admin_loopback(host))
			sg_log(SG_LOG_WARN, "admin_listen %s is not a loopback address: the admin page "
			       "is reachable from the network (password only)", a->listen);
		free(host);
	}
	if(!a->cfgpath || !a->dir || (c->admin_listen && !a->listen)) {
		rc = sg_fail(SG_ERR_NOMEM, "out of memory");
		goto fail;
	}
	if(mkdir(a->dir, 0700) && errno != EEXIST) {
		rc = sg_fail(SG_ERR_IO, "admin_dir %s cannot be made: %s", a->dir, strerror(errno));
		goto fail;
	}
	{
		/* It holds secrets: no access for group or others. */
		struct stat st;
		if(stat(a->dir, &st) == 0 && (st.st_mode & 077) && chmod(a->dir, st.st_mode & 0700))
			sg_log(SG_LOG_WARN, "admin_dir %s is open to group or others (mode %04o) and "
			       "cannot be closed: %s", a->dir, (unsigned)(st.st_mode & 07777),
			       strerror(errno));
	}
	if(c->admin_password) {
		char *pw = NULL;
		rc = sg_secret_read(c->admin_password, &pw);
		if(rc) {
			sg_fail_prefix(rc, "%s: [serve] admin_password", c->path);
			goto fail;
		}
		if(strlen(pw) < ADMIN_PW_MIN)
			sg_log(SG_LOG_WARN, "the admin password is shorter than %d characters",
			       ADMIN_PW_MIN);
		rc = admin_set_password(a, pw, NULL);
		sg_secret_free(pw);
		if(rc)
			goto fail;
	} else if(c->admin_password_hash) {
		unsigned iter = 0;
		char sh[40] = "", hh[80] = "";
		if(sscanf(c->admin_password_hash, "pbkdf2-sha256:%u:%39[0-9a-f]:%79[0-9a-f]", &iter,
		          sh, hh) != 3 || iter < 1000 || iter > 10000000 ||
		   admin_unhex(sh, a->salt, 16) || admin_unhex(hh, a->hash, 32)) {
			rc = sg_fail(SG_ERR_USAGE, "%s: [serve] admin_password_hash is not "
			             "pbkdf2-sha256:ITERATIONS:SALT:HASH as the admin page writes it",
			             c->path);
			goto fail;
		}
		a->iter = iter;
		a->pw_set = 1;
	} else {
		unsigned char code[16];
		size_t n = strlen(a->dir) + sizeof("/setup-code");
		sg_outfile o;
		if(RAND_bytes(code, sizeof(code)) != 1 || !(a->setup_path = malloc(n))) {
			rc = sg_fail(SG_ERR_NOMEM, "cannot make a setup code");
			goto fail;
		}
		admin_hex(code, sizeof(code), a->setup_code);
		snprintf(a->setup_path, n, "%s/setup-code", a->dir);
		rc = sg_outfile_open(&o, a->setup_path);
		if(!rc) {
			(void)fchmod(o.fd, 0600);
			rc = sg_write_all(o.fd, a->setup_code, strlen(a->setup_code));
			if(!rc)
				rc = sg_write_all(o.fd, "\n", 1);
			rc = sg_outfile_end(&o, rc);
		}
		if(rc)
			goto fail;
	}
	if(pthread_create(&a->thread, NULL, admin_thread, a)) {
		rc = sg_fail(SG_ERR_IO, "cannot start the admin page's thread");
		goto fail;
	}
	a->thread_started = 1;
	*out = a;
	return SG_OK;
fail:
	sg_admin_free(a);
	return rc;
}

void sg_admin_announce(const sg_admin *a, const char *where, int admin_port)
{
	char url[320];

	if(a->listen)
		snprintf(url, sizeof(url), "http://%s/conf (admin_listen, port %d)", a->listen,
		         admin_port);
	else
		snprintf(url, sizeof(url), "%s/conf", where);
	if(a->pw_set)
		sg_log(SG_LOG_INFO, "admin page at %s", url);
	else
		sg_log(SG_LOG_WARN, "admin page at %s has no password yet: open it and enter the "
		       "setup code from %s to choose one (or set admin_password)", url,
		       a->setup_path);
}

void sg_admin_free(sg_admin *a)
{
	if(!a)
		return;
	sg_admin_stop(a);
	pthread_mutex_destroy(&a->qlock);
	pthread_cond_destroy(&a->qcond);
	OPENSSL_cleanse(a->setup_code, sizeof(a->setup_code));
	OPENSSL_cleanse(a->hash, sizeof(a->hash));
	pthread_mutex_destroy(&a->lock);
	pthread_mutex_destroy(&a->save_lock);
	free(a->cfgpath);
	free(a->dir);
	free(a->listen);
	free(a->setup_path);
	free(a);
}

/* ---------------------------------------------------------------- sessions */

/* The session of req's cookie, its CSRF token copied to csrf; -1: none. */
static int admin_session_find(sg_admin *a, const unsigned char idh[32], time_t now,
                              char csrf[65]);

static int admin_session(sg_admin *a, struct admin_call *req, char csrf[65])
{
	const char *cookie = evhttp_find_header((&req->in), "Cookie");
	unsigned char id[32], idh[32];
	time_t now = time(NULL);
	const char *p;
	int found = -1;

	if(!cookie)
		return -1;
	/* Cookie: a=b; sg_admin=HEX; c="x;y" (RFC 6265 5.4: pairs split at
	 * ";").  A value that is not exactly 64 hex digits is not ours; with
	 * several sg_admin cookies (one may be planted by another page on this
	 * host), the first that is a live session counts. */
	for(p = cookie; *p && found < 0;) {
		size_t len;
		while(*p == ' ' || *p == ';')
			p++;
		len = strcspn(p, ";");
		if(len == sizeof(ADMIN_COOKIE) + 64 && !strncmp(p, ADMIN_COOKIE "=", sizeof(ADMIN_COOKIE))) {
			char hex[65];
			memcpy(hex, p + sizeof(ADMIN_COOKIE), 64);
			hex[64] = '\0';
			if(!admin_unhex(hex, id, 32)) {
				SHA256(id, 32, idh);
				found = admin_session_find(a, idh, now, csrf);
			}
		}
		p += len;
	}
	return found;
}

/* The live session whose cookie hashes to idh (expired ones are dropped);
 * -1 if none. */
static int admin_session_find(sg_admin *a, const unsigned char idh[32], time_t now,
                              char csrf[65])
{
	int found = -1;

	pthread_mutex_lock(&a->lock);
	for(int i = 0; i < ADMIN_SESSIONS; i++) {
		struct admin_session *se = &a->sessions[i];
		if(!se->used)
			continue;
		if(now - se->last > ADMIN_IDLE || now - se->created > ADMIN_MAX_AGE) {
			memset(se, 0, sizeof(*se));
			continue;
		}
		if(!CRYPTO_memcmp(se->idh, idh, 32)) {
			se->last = now;
			memcpy(csrf, se->csrf, 65);
			found = i;
		}
	}
	pthread_mutex_unlock(&a->lock);
	return found;
}

/* A new session; its cookie goes on the reply. */
static sg_status admin_session_new(sg_admin *a, struct admin_call *req)
{
	unsigned char id[32], csrf[32];
	char hex[65], cookie[200];
	int slot = 0;
	time_t now = time(NULL), oldest = now + 1;

	if(RAND_bytes(id, 32) != 1 || RAND_bytes(csrf, 32) != 1)
		return sg_fail(SG_ERR_CRYPTO, "no random numbers");
	pthread_mutex_lock(&a->lock);
	for(int i = 0; i < ADMIN_SESSIONS; i++) {
		if(!a->sessions[i].used) {
			slot = i;
			break;
		}
		if(a->sessions[i].last < oldest) {
			oldest = a->sessions[i].last;
			slot = i;
		}
	}
	a->sessions[slot].used = 1;
	SHA256(id, 32, a->sessions[slot].idh);
	admin_hex(csrf, 32, a->sessions[slot].csrf);
	a->sessions[slot].created = a->sessions[slot].last = now;
	pthread_mutex_unlock(&a->lock);
	admin_hex(id, 32, hex);
	snprintf(cookie, sizeof(cookie), ADMIN_COOKIE "=%s; Path=/conf; HttpOnly; "
	         "SameSite=Strict", hex);
	evhttp_add_header((&req->out), "Set-Cookie", cookie);
	OPENSSL_cleanse(id, sizeof(id));
	OPENSSL_cleanse(hex, sizeof(hex));
	return SG_OK;
}

static void admin_session_end(sg_admin *a, int slot, struct admin_call *req)
{
	pthread_mutex_lock(&a->lock);
	if(slot >= 0)
		memset(&a->sessions[slot], 0, sizeof(a->sessions[slot]));
	pthread_mutex_unlock(&a->lock);
	evhttp_add_header((&req->out), "Set-Cookie",
	                  ADMIN_COOKIE "=; Path=/conf; HttpOnly; SameSite=Strict; Max-Age=0");
}

/* ---------------------------------------------------------------- replies */

static void admin_reply(struct admin_call *req, int code, const char *ctype,
                        struct evbuffer *body)
{
	struct evkeyvalq *h = (&req->out);

	evhttp_add_header(h, "Content-Type", ctype);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	/* Not no-referrer: under it browsers send "Origin: null" with our own
	 * forms, which admin_same_origin() must refuse. */
	evhttp_add_header(h, "Referrer-Policy", "same-origin");
	evhttp_add_header(h, "Content-Security-Policy", "default-src 'none'; script-src 'self'; "
	                  "style-src 'self'; img-src 'self'; form-action 'self'; "
	                  "frame-ancestors 'none'; base-uri 'none'");
	req->code = code;
	if(body && (req->reply || (req->reply = evbuffer_new())))
		evbuffer_add_buffer(req->reply, body);
}

/* A plain-text answer saying why (for refusals a script would otherwise
 * see as an empty 403). */
static void admin_reply_text(struct admin_call *req, int code, const char *text)
{
	struct evbuffer *b = evbuffer_new();

	if(b)
		evbuffer_add_printf(b, "%s\n", text);
	admin_reply(req, code, "text/plain; charset=utf-8", b);
	if(b)
		evbuffer_free(b);
}

static void admin_redirect(struct admin_call *req, const char *to)
{
	evhttp_add_header((&req->out), "Location", to);
	admin_reply(req, 303, "text/plain; charset=utf-8", NULL);
}

static void admin_head(struct evbuffer *b)
{
	evbuffer_add_printf(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	                    "<title>signgate admin</title>"
	                    "<link rel=\"stylesheet\" href=\"/conf/admin.css\">"
	                    "<script src=\"/conf/admin.js\" defer></script></head><body>\n"
	                    "<header><h1>signgate download server</h1>");
}

static const char admin_css[] =
"body{font-family:sans-serif;max-width:60em;margin:1em auto;padding:0 1em;color:#222}\n"
"header{display:flex;justify-content:space-between;align-items:center;"
"border-bottom:2px solid #345}\n"
"h1{font-size:1.4em}h2{border-bottom:1px solid #ccc;margin-top:1.5em}\n"
"label{display:block;margin-top:.6em;font-weight:bold}\n"
"input[type=text],input[type=password],input[type=url]{width:30em;max-width:100%}\n"
"textarea{width:100%;height:6em;font-family:monospace;font-size:.8em}\n"
"fieldset{margin:.8em 0;border:1px solid #bbb}\n"
".field-error{color:#b00;display:block}.ok{color:#060;background:#efe;padding:.4em}\n"
".error,.fail{color:#b00;background:#fee;padding:.4em}.warn{color:#840;background:#ffe;padding:.4em}\n"
".state{color:#555;font-style:italic;margin-left:.5em}.legacy{color:#840}\n"
"table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;"
"font-size:.9em;text-align:left}\n"
"[hidden]{display:none}\n";

static const char admin_js[] =
"'use strict';\n"
"document.addEventListener('DOMContentLoaded', function () {\n"
"  function checked(name) {\n"
"    var e = document.querySelector('input[name=' + name + ']:checked');\n"
"    return e ? e.value : '';\n"
"  }\n"
"  function sync() {\n"
"    var m = checked('sign_method'), k = checked('custom_kind');\n"
"    var s = document.getElementById('service-fields');\n"
"    if (!s) return;\n"
"    s.hidden = m !== 'service';\n"
"    document.getElementById('custom-fields').hidden = m !== 'custom';\n"
"    document.getElementById('pkcs11-fields').hidden = k !== 'pkcs11';\n"
"    document.getElementById('pkcs12-fields').hidden = k !== 'pkcs12';\n"
"  }\n"
"  document.querySelectorAll('input[type=radio]').forEach(function (r) {\n"
"    r.addEventListener('change', sync);\n"
"  });\n"
"  sync();\n"
"  function upload(fileId, targetId, binary) {\n"
"    var f = document.getElementById(fileId), t = document.getElementById(targetId);\n"
"    if (!f || !t) return;\n"
"    f.addEventListener('change', function () {\n"
"      if (!f.files.length) return;\n"
"      var rd = new FileReader();\n"
"      rd.onload = function () {\n"
"        t.value = binary ? String(rd.result).replace(/^data:[^,]*,/, '') : rd.result;\n"
"        t.dispatchEvent(new Event('change'));\n"
"      };\n"
"      if (binary) rd.readAsDataURL(f.files[0]); else rd.readAsText(f.files[0]);\n"
"    });\n"
"  }\n"
"  upload('service_ca_file', 'service_ca_pem', false);\n"
"  upload('chain_file', 'custom_chain_pem', false);\n"
"  upload('pfx_file', 'pfx_b64', true);\n"
"});\n";

static void admin_login_page(sg_admin *a, struct admin_call *req, int code,
                             const char *err);

/* A refused password or setup code is answered a second later (the loop
 * sends it from a timer; nothing waits meanwhile); and no other guess is
 * checked within that second at all (admin_may_try), so guesses run at one
 * a second whatever the clients. */
static void admin_refuse_later(sg_admin *a, struct admin_call *req, const char *msg)
{
	admin_login_page(a, req, 403, msg);
	req->delay = 1;
}

/* 1 if a password or code may be checked now, and then none other for a
 * second (taken under the lock, so concurrent guesses cannot slip in
 * together); else the caller answers 429. */
static int admin_may_try(sg_admin *a)
{
	struct timespec now;
	int ok;

	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&a->lock);
	ok = now.tv_sec > a->next_try.tv_sec ||
	     (now.tv_sec == a->next_try.tv_sec && now.tv_nsec >= a->next_try.tv_nsec);
	if(ok) {
		a->next_try = now;
		a->next_try.tv_sec += 1;
	}
	pthread_mutex_unlock(&a->lock);
	return ok;
}

/* A right password or code: the next check need not wait. */
static void admin_good_try(sg_admin *a)
{
	pthread_mutex_lock(&a->lock);
	a->next_try.tv_sec = 0;
	a->next_try.tv_nsec = 0;
	pthread_mutex_unlock(&a->lock);
}



static void admin_login_page(sg_admin *a, struct admin_call *req, int code,
                             const char *err)
{
	struct evbuffer *b = evbuffer_new();
	int setup;

	pthread_mutex_lock(&a->lock);
	setup = !a->pw_set;
	pthread_mutex_unlock(&a->lock);
	admin_head(b);
	evbuffer_add_printf(b, "</header>\n");
	if(err) {
		evbuffer_add_printf(b, "<p class=\"error\" id=\"login-error\">");
		admin_esc(b, err);
		evbuffer_add_printf(b, "</p>\n");
	}
	if(setup) {
		evbuffer_add_printf(b, "<h2>Choose the admin password</h2>\n<p>No admin password is "
		                    "set yet. Enter the setup code that the server wrote to <code>");
		admin_esc(b, a->setup_path);
		evbuffer_add_printf(b, "</code> (readable by its owner only), and a password of at "
		                    "least %d characters.</p>\n"
		                    "<form id=\"setup-form\" method=\"post\" action=\"/conf/setup\">"
		                    "<label for=\"setup_code\">Setup code</label>"
		                    "<input type=\"password\" id=\"setup_code\" name=\"setup_code\" "
		                    "autocomplete=\"off\">"
		                    "<label for=\"password\">New password</label>"
		                    "<input type=\"password\" id=\"password\" name=\"password\" "
		                    "autocomplete=\"new-password\">"
		                    "<label for=\"password2\">The same again</label>"
		                    "<input type=\"password\" id=\"password2\" name=\"password2\" "
		                    "autocomplete=\"new-password\">"
		                    "<p><button type=\"submit\" id=\"setup-submit\">Set password"
		                    "</button></p></form>\n", ADMIN_PW_MIN);
	} else {
		evbuffer_add_printf(b, "<h2>Log in</h2>\n"
		                    "<form id=\"login-form\" method=\"post\" action=\"/conf/login\">"
		                    "<label for=\"password\">Admin password</label>"
		                    "<input type=\"password\" id=\"password\" name=\"password\" "
		                    "autocomplete=\"current-password\" autofocus>"
		                    "<p><button type=\"submit\" id=\"login-submit\">Log in</button></p>"
		                    "</form>\n");
	}
	evbuffer_add_printf(b, "</body></html>\n");
	admin_reply(req, code, "text/html; charset=utf-8", b);
	evbuffer_free(b);
}

/* ---------------------------------------------------------------- the main page */

static const char *admin_err(const struct admin_view *v, const char *field)
{
	for(size_t i = 0; v && i < v->nerrs; i++)
		if(!strcmp(v->errs[i][0], field))
			return v->errs[i][1];
	return NULL;
}

static void admin_field_error(struct evbuffer *b, const struct admin_view *v,
                              const char *field)
{
	const char *e = admin_err(v, field);

	evbuffer_add_printf(b, "<span class=\"field-error\" id=\"err-%s\"%s>", field,
	                    e ? "" : " hidden");
	admin_esc(b, e);
	evbuffer_add_printf(b, "</span>");
}

/* A text input showing the posted value after an error, else cur. */
static void admin_input(struct evbuffer *b, const struct admin_view *v, const char *name,
                        const char *label, const char *cur, const char *hint)
{
	const char *posted = v && v->posted ? evhttp_find_header(v->posted, name) : NULL;

	evbuffer_add_printf(b, "<label for=\"%s\">", name);
	admin_esc(b, label);
	evbuffer_add_printf(b, "</label><input type=\"text\" id=\"%s\" name=\"%s\" value=\"", name,
	                    name);
	admin_esc(b, posted ? posted : cur ? cur : "");
	evbuffer_add_printf(b, "\" placeholder=\"");
	admin_esc(b, hint);
	evbuffer_add_printf(b, "\" spellcheck=\"false\">");
	admin_field_error(b, v, name);
}

/* A secret: never shown, only whether it is set. */
static void admin_secret(struct evbuffer *b, const struct admin_view *v, const char *name,
                         const char *label, int set)
{
	evbuffer_add_printf(b, "<label for=\"%s\">", name);
	admin_esc(b, label);
	evbuffer_add_printf(b, "</label><input type=\"password\" id=\"%s\" name=\"%s\" value=\"\" "
	                    "autocomplete=\"new-password\" placeholder=\"%s\">"
	                    "<span class=\"state\" id=\"%s-state\">%s</span>", name, name,
	                    set ? "(set: leave empty to keep it)" : "", name,
	                    set ? "set" : "not set");
	admin_field_error(b, v, name);
}

static void admin_pem_upload(struct evbuffer *b, const struct admin_view *v, const char *file_id,
                             const char *name, const char *label, const char *cur_path)
{
	const char *posted = v && v->posted ? evhttp_find_header(v->posted, name) : NULL;

	evbuffer_add_printf(b, "<label for=\"%s\">", file_id);
	admin_esc(b, label);
	evbuffer_add_printf(b, "</label><input type=\"file\" id=\"%s\" accept=\".pem,.crt,.cer\">"
	                    "<span class=\"state\" id=\"%s-state\">", file_id, name);
	if(cur_path) {
		evbuffer_add_printf(b, "now: ");
		admin_esc(b, cur_path);
	} else {
		evbuffer_add_printf(b, "none");
	}
	evbuffer_add_printf(b, "</span><textarea id=\"%s\" name=\"%s\" placeholder=\"or paste "
	                    "PEM here; empty keeps the current one\">", name, name);
	admin_esc(b, posted);
	evbuffer_add_printf(b, "</textarea>");
	admin_field_error(b, v, name);
}

/* The module-path attribute of a pkcs11: URI (decoded), and the URI without it. */
static void admin_split_uri(const char *uri, char *base, size_t blen, char *module, size_t mlen)
{
	const char *q = uri ? strchr(uri, '?') : NULL;
	size_t o = 0;

	*module = '\0';
	snprintf(base, blen, "%.*s", q ? (int)(q - uri) : (int)(uri ? strlen(uri) : 0),
	         uri ? uri : "");
	if(!q)
		return;
	for(const char *a = q + 1; *a;) {
		size_t n = strcspn(a, "&");
		if(!strncmp(a, "module-path=", 12)) {
			for(size_t i = 12; i < n && o + 1 < mlen; i++) {
				unsigned v;
				if(a[i] == '%' && i + 2 < n + 1 && sscanf(a + i + 1, "%2x", &v) == 1) {
					module[o++] = (char)v;
					i += 2;
				} else {
					module[o++] = a[i];
				}
			}
			module[o] = '\0';
		} else {
			size_t bl = strlen(base);
			snprintf(base + bl, blen - bl, "%c%.*s", strchr(base, '?') ? '&' : '?', (int)n, a);
		}
		a += n;
		if(*a == '&')
			a++;
	}
}

static void admin_main_page(sg_admin *a, struct admin_call *req, const char *csrf,
                            int code, const struct admin_view *v)
{
	struct serve_signing *g = serve_signing_get(a->s);
	const sg_config *c = g->cfg;
	struct evbuffer *b = evbuffer_new();
	const char *posted_method = v && v->posted ? evhttp_find_header(v->posted, "sign_method") : NULL;
	const char *posted_kind = v && v->posted ? evhttp_find_header(v->posted, "custom_kind") : NULL;
	int service = posted_method ? !strcmp(posted_method, "service") : c->method == SG_METHOD_SERVICE;
	int pkcs12 = posted_kind ? !strcmp(posted_kind, "pkcs12") : c->custom.pfx != NULL;
	char subject[256] = "", expiry[64] = "", status_err[400] = "", base[400], module[300];
	char proxy_shown[200] = "";
	int64_t not_after = 0;
	struct serve_event ev[SERVE_EVENTS];
	size_t nev, first;
	char last_error[400];
	time_t last_error_at;

	/* Status of the signing certificate. */
	if(g->signer) {
		snprintf(subject, sizeof(subject), "%s", sg_signer_subject(g->signer));
		not_after = sg_signer_not_after(g->signer);
	} else if(g->remote) {
		if(sg_remote_key_info(g->remote, subject, sizeof(subject), expiry, sizeof(expiry))) {
			snprintf(status_err, sizeof(status_err), "%s", sg_last_error());
			sg_clear_error();
		} else {
			struct tm tm = { 0 };
			if(strptime(expiry, "%Y-%m-%dT%H:%M:%SZ", &tm))
				not_after = (int64_t)timegm(&tm);
		}
	}
	if(not_after) {
		time_t t = (time_t)not_after;
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(expiry, sizeof(expiry), "%Y-%m-%d %H:%M:%S UTC", &tm);
	}
	pthread_mutex_lock(&a->s->lock);
	nev = a->s->nevents;
	first = (a->s->next_event + SERVE_EVENTS - nev) % SERVE_EVENTS;
	for(size_t i = 0; i < nev; i++)
		ev[i] = a->s->events[(first + i) % SERVE_EVENTS];
	snprintf(last_error, sizeof(last_error), "%s", a->s->last_error);
	last_error_at = a->s->last_error_at;
	pthread_mutex_unlock(&a->s->lock);

	admin_head(b);
	evbuffer_add_printf(b, "<form method=\"post\" action=\"/conf/logout\" id=\"logout-form\">"
	                    "<input type=\"hidden\" name=\"csrf\" value=\"%s\">"
	                    "<button type=\"submit\" id=\"logout\">Log out</button></form></header>\n"
	                    "<nav><a href=\"#status\">Status</a> · <a href=\"#security\">"
	                    "Configuration → Security</a> · <a href=\"#signing\">Signing method</a>"
	                    " · <a href=\"#test\">Test</a></nav>\n", csrf);
	if(v && v->message) {
		evbuffer_add_printf(b, "<p class=\"%s\" id=\"message\">",
		                    v->message_warn ? "warn" : "ok");
		admin_esc(b, v->message);
		evbuffer_add_printf(b, "</p>\n");
	}
	if(v && (v->form_error || v->nerrs)) {
		evbuffer_add_printf(b, "<p class=\"error\" id=\"form-error\">");
		admin_esc(b, v->form_error ? v->form_error :
		          "Nothing was saved: correct the fields marked below.");
		evbuffer_add_printf(b, "</p>\n");
	}

	/* Status */
	evbuffer_add_printf(b, "<section id=\"status\"><h2>Status</h2><dl>"
	                    "<dt>Signing method</dt><dd id=\"method-now\">");
	if(g->remote) {
		evbuffer_add_printf(b, "signing service ");
		admin_esc(b, sg_remote_url(g->remote));
		evbuffer_add_printf(b, ", key ");
		admin_esc(b, sg_remote_key(g->remote));
		if(c->proxy_url) {
			evbuffer_add_printf(b, ", through the proxy ");
			admin_esc(b, c->proxy_url);
		}
	} else {
		evbuffer_add_printf(b, "custom: this server's own key, %s",
		                    c->custom.pfx ? "from a PKCS#12 file (legacy)" :
		                    c->custom.uri && !strncmp(c->custom.uri, "pkcs11:", 7) ?
		                    "in a PKCS#11 token" : "from a key file (legacy)");
	}
	evbuffer_add_printf(b, " (%s)</dd><dt>Signing certificate</dt><dd id=\"cert-subject\">",
	                    sg_md_name(c->md));
	admin_esc(b, subject[0] ? subject : "unknown");
	evbuffer_add_printf(b, "</dd><dt>Expires</dt><dd id=\"cert-expiry\">");
	admin_esc(b, expiry[0] ? expiry : "unknown");
	evbuffer_add_printf(b, "</dd></dl>\n");
	if(not_after && not_after - (int64_t)time(NULL) < 30 * 86400)
		evbuffer_add_printf(b, "<p class=\"warn\" id=\"cert-warning\">The signing certificate "
		                    "%s: renew it before signatures stop being accepted.</p>\n",
		                    not_after < (int64_t)time(NULL) ? "has EXPIRED" :
		                    "expires within 30 days");
	if(status_err[0]) {
		evbuffer_add_printf(b, "<p class=\"error\" id=\"service-status\">");
		admin_esc(b, status_err);
		evbuffer_add_printf(b, "</p>\n");
	}
	evbuffer_add_printf(b, "<h3>Last error</h3><p id=\"last-error\">");
	if(last_error[0]) {
		char when[32];
		struct tm tm;
		gmtime_r(&last_error_at, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
		evbuffer_add_printf(b, "%s: ", when);
		admin_esc(b, last_error);
	} else {
		evbuffer_add_printf(b, "none");
	}
	evbuffer_add_printf(b, "</p>\n<h3>Last signings</h3><table id=\"last-signings\"><tr>"
	                    "<th>time (UTC)</th><th>file</th><th>result</th><th>ms</th></tr>");
	for(size_t i = nev; i-- > 0;) {
		char when[32];
		struct tm tm;
		gmtime_r(&ev[i].when, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
		evbuffer_add_printf(b, "<tr class=\"%s\"><td>%s</td><td>", ev[i].ok ? "ok" : "fail",
		                    when);
		admin_esc(b, ev[i].file);
		evbuffer_add_printf(b, "</td><td>");
		admin_esc(b, ev[i].what);
		evbuffer_add_printf(b, "</td><td>%.0f</td></tr>", ev[i].ms);
	}
	if(!nev)
		evbuffer_add_printf(b, "<tr><td colspan=\"4\">none since the server started</td></tr>");
	evbuffer_add_printf(b, "</table></section>\n");

	/* Configuration → Security → HTTP proxy for web client */
	if(c->proxy_url)
		snprintf(proxy_shown, sizeof(proxy_shown), "%s",
		         !strncmp(c->proxy_url, "http://", 7) ? c->proxy_url + 7 : c->proxy_url);
	evbuffer_add_printf(b, "<section id=\"configuration\"><h2>Configuration</h2>"
	                    "<h3 id=\"security\">Security</h3>\n"
	                    "<form id=\"proxy-form\" method=\"post\" action=\"/conf/proxy\">"
	                    "<fieldset><legend>HTTP proxy for web client</legend>"
	                    "<p>Every request this server makes (the signing service, timestamp "
	                    "servers) goes through this proxy; HTTPS by CONNECT. Empty: none.</p>");
	admin_input(b, v, "proxy", "Proxy address (IP or DNS name, and port)", proxy_shown,
	            "proxy.example.com:3128");
	admin_input(b, v, "proxy_user", "User (optional, Basic authentication)", c->proxy_user, "");
	admin_secret(b, v, "proxy_password", "Password", c->proxy_password != NULL);
	evbuffer_add_printf(b, "<label><input type=\"checkbox\" id=\"proxy_password_clear\" "
	                    "name=\"proxy_password_clear\" value=\"1\"> remove the password</label>");
	admin_input(b, v, "no_proxy", "No proxy for (comma-separated hosts, .domain)", c->no_proxy,
	            "");
	evbuffer_add_printf(b, "<input type=\"hidden\" name=\"csrf\" value=\"%s\">"
	                    "<p><button type=\"submit\" id=\"proxy-save\">Save</button></p>"
	                    "</fieldset></form>\n", csrf);

	/* Signing method */
	admin_split_uri(c->custom.pfx ? NULL : c->custom.uri, base, sizeof(base), module,
	                sizeof(module));
	evbuffer_add_printf(b, "<h3 id=\"signing\">Signing method</h3>\n"
	                    "<form id=\"method-form\" method=\"post\" action=\"/conf/method\">"
	                    "<label><input type=\"radio\" name=\"sign_method\" id=\"method-service\" "
	                    "value=\"service\"%s> the signing service (the key stays in its HSM)"
	                    "</label><label><input type=\"radio\" name=\"sign_method\" "
	                    "id=\"method-custom\" value=\"custom\"%s> custom: this server's own "
	                    "certificate and key (no network needed)</label>\n"
	                    "<fieldset id=\"service-fields\"><legend>Signing service</legend>",
	                    service ? " checked" : "", service ? "" : " checked");
	admin_input(b, v, "service_url", "Service URL", c->svc_url, "https://sign.example.com:8443");
	admin_input(b, v, "service_key", "Key name at the service", c->svc_key, "codesign");
	admin_secret(b, v, "service_token", "Client token", c->svc_token != NULL);
	admin_pem_upload(b, v, "service_ca_file", "service_ca_pem",
	                 "CA of the service's TLS certificate (PEM; none: the system's)", c->svc_ca);
	evbuffer_add_printf(b, "</fieldset>\n<fieldset id=\"custom-fields\"><legend>Custom method"
	                    "</legend><label><input type=\"radio\" name=\"custom_kind\" "
	                    "id=\"kind-pkcs11\" value=\"pkcs11\"%s> a key in an HSM or USB token "
	                    "(PKCS#11)</label><label><input type=\"radio\" name=\"custom_kind\" "
	                    "id=\"kind-pkcs12\" value=\"pkcs12\"%s> a PKCS#12 file "
	                    "<span class=\"legacy\">(legacy: the key is in a file)</span></label>"
	                    "<div id=\"pkcs11-fields\">", pkcs12 ? "" : " checked",
	                    pkcs12 ? " checked" : "");
	admin_input(b, v, "pkcs11_module", "PKCS#11 module", module,
	            "/usr/lib/softhsm/libsofthsm2.so");
	admin_input(b, v, "custom_key", "Key URI (RFC 7512)", base,
	            "pkcs11:token=signing;object=codesign");
	admin_secret(b, v, "custom_pin", "PIN", c->custom.pass != NULL && !c->custom.pfx);
	admin_pem_upload(b, v, "chain_file", "custom_chain_pem",
	                 "Certificate chain (PEM: the certificate and its intermediates; optional "
	                 "when the token holds the certificate)", c->custom.cert);
	evbuffer_add_printf(b, "</div><div id=\"pkcs12-fields\"><p class=\"legacy\">Legacy: a "
	                    "key in a file can be copied without trace; prefer a token.</p>"
	                    "<label for=\"pfx_file\">PKCS#12 file (.p12/.pfx with key and chain)"
	                    "</label><input type=\"file\" id=\"pfx_file\" accept=\".p12,.pfx\">"
	                    "<span class=\"state\" id=\"pfx-state\">");
	if(c->custom.pfx) {
		evbuffer_add_printf(b, "now: ");
		admin_esc(b, c->custom.pfx);
	} else {
		evbuffer_add_printf(b, "none");
	}
	evbuffer_add_printf(b, "</span><input type=\"hidden\" id=\"pfx_b64\" name=\"pfx_b64\" "
	                    "value=\"\">");
	admin_field_error(b, v, "pfx_b64");
	admin_secret(b, v, "pfx_password", "Its password", c->custom.pfx && c->custom.pass);
	evbuffer_add_printf(b, "</div></fieldset><input type=\"hidden\" name=\"csrf\" "
	                    "value=\"%s\"><p><button type=\"submit\" id=\"method-save\">Save"
	                    "</button></p></form>\n", csrf);

	/* Test */
	evbuffer_add_printf(b, "<h3 id=\"test\">Test</h3><form id=\"test-form\" method=\"post\" "
	                    "action=\"/conf/test\"><input type=\"hidden\" name=\"csrf\" "
	                    "value=\"%s\"><p>Signs a small program made on the spot with the "
	                    "current settings, as a download would be, and checks the "
	                    "signature.</p><button type=\"submit\" id=\"test-sign\">Sign a test "
	                    "file now</button></form>\n", csrf);
	if(v && v->test_result) {
		evbuffer_add_printf(b, "<p id=\"test-result\" class=\"%s\">%s",
		                    v->test_ok ? "ok" : "fail", v->test_ok ? "OK: " : "FAILED: ");
		admin_esc(b, v->test_result);
		evbuffer_add_printf(b, "</p>\n");
	}
	evbuffer_add_printf(b, "<p><small>Configuration file: ");
	admin_esc(b, a->cfgpath);
	evbuffer_add_printf(b, "</small></p></section></body></html>\n");
	serve_signing_put(g);
	admin_reply(req, code, "text/html; charset=utf-8", b);
	evbuffer_free(b);
}

/* ---------------------------------------------------------------- forms */

static void admin_bad(struct admin_view *v, const char *field, const char *msg)
{
	if(v->nerrs < ADMIN_FIELDS && !admin_err(v, field)) {
		snprintf(v->msgs[v->nerrs], sizeof(v->msgs[0]), "%s", msg);
		v->errs[v->nerrs][0] = field;
		v->errs[v->nerrs][1] = v->msgs[v->nerrs];
		v->nerrs++;
	}
}

/* A form value, trimmed in place; "" when absent. */
static const char *admin_value(struct evkeyvalq *form, const char *name)
{
	char *v = (char *)evhttp_find_header(form, name);
	size_t n;

	if(!v)
		return "";
	while(*v == ' ' || *v == '\t')
		v++;
	n = strlen(v);
	while(n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' || v[n - 1] == '\n'))
		v[--n] = '\0';
	return v;
}

/* Can v go on one configuration line?  NULL if so, else why not. */
static const char *admin_line_value(const char *v)
{
	if(strlen(v) > ADMIN_VALUE_MAX)
		return "too long (at most 180 characters)";
	for(const char *p = v; *p; p++) {
		if((unsigned char)*p < 0x20 || *p == 0x7f)
			return "must not hold control characters or line breaks";
		if((*p == ';' || *p == '#') && p > v && (p[-1] == ' ' || p[-1] == '\t'))
			return "must not hold ' ;' or ' #' (they start a comment in the file)";
	}
	if(*v == ';' || *v == '#')
		return "must not start with ';' or '#'";
	return NULL;
}

/* Writes data to a new 0600 file in the admin directory, named
 * PREFIX-TIME-RANDOM.EXT; *path is its name. */
static sg_status admin_write_file(sg_admin *a, const char *prefix, const char *ext,
                                  const void *data, size_t len, char **path)
{
	unsigned char rnd[4];
	char hex[9], stamp[20];
	time_t now = time(NULL);
	struct tm tm;
	size_t n;
	sg_outfile o;
	sg_status rc;

	*path = NULL;
	RAND_bytes(rnd, sizeof(rnd));
	admin_hex(rnd, sizeof(rnd), hex);
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
	n = strlen(a->dir) + strlen(prefix) + strlen(ext) + 40;
	if(!(*path = malloc(n)))
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	snprintf(*path, n, "%s/%s-%s-%s%s", a->dir, prefix, stamp, hex, ext);
	rc = sg_outfile_open(&o, *path);
	if(!rc) {
		(void)fchmod(o.fd, 0600);
		rc = sg_write_all(o.fd, data, len);
		rc = sg_outfile_end(&o, rc);
	}
	if(rc) {
		free(*path);
		*path = NULL;
	}
	return rc;
}

/* A secret typed into the form, saved as a file; *spec is "file:PATH". */
static sg_status admin_save_secret(sg_admin *a, const char *prefix, const char *value,
                                   char **path, char **spec)
{
	sg_status rc = admin_write_file(a, prefix, "", value, strlen(value), path);
	size_t n;

	*spec = NULL;
	if(rc)
		return rc;
	n = strlen(*path) + 6;
	if(!(*spec = malloc(n)))
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	snprintf(*spec, n, "file:%s", *path);
	return SG_OK;
}

/* Does text hold at least one PEM certificate (and nothing unreadable)? */
static int admin_pem_certs(const char *text)
{
	BIO *bio = BIO_new_mem_buf(text, -1);
	X509 *x;
	int n = 0;

	while(bio && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		X509_free(x);
		n++;
	}
	ERR_clear_error();
	BIO_free(bio);
	return n;
}

/* Is path one of the files the page itself wrote in the admin directory
 * (admin_write_file's PREFIX-YYYYmmddHHMMSS-XXXXXXXX[.EXT]), which may go
 * when no longer named?  Nothing else there is ever removed: an operator
 * may keep files of his own in the same directory. */
static int admin_own_file(const sg_admin *a, const char *spec)
{
	static const char *const prefixes[] = { "proxy-password-", "service-token-", "service-ca-",
	                                        "custom-pin-", "custom-chain-", "custom-",
	                                        "custom-p12-password-" };
	size_t n = strlen(a->dir);
	const char *base, *p;

	if(spec && !strncmp(spec, "file:", 5))
		spec += 5;
	if(!spec || strncmp(spec, a->dir, n) || spec[n] != '/' || strchr(spec + n + 1, '/'))
		return 0;
	base = spec + n + 1;
	for(size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		size_t pl = strlen(prefixes[i]);
		if(strncmp(base, prefixes[i], pl))
			continue;
		p = base + pl;
		if(strspn(p, "0123456789") != 14 || p[14] != '-' ||
		   strspn(p + 15, "0123456789abcdef") != 8)
			continue;
		p += 23;
		if(!*p || !strcmp(p, ".pem") || !strcmp(p, ".p12"))
			return 1;
	}
	return 0;
}

/* The files an applied change made, and those it replaced. */
struct admin_files {
	char *made[8];
	size_t nmade;
	const char *gone[8];          /* point into the old configuration */
	size_t ngone;
};

static void admin_files_free(struct admin_files *f, int remove_made)
{
	for(size_t i = 0; i < f->nmade; i++) {
		if(remove_made && f->made[i])
			unlink(f->made[i]);
		free(f->made[i]);
	}
	f->nmade = 0;
}

/* Removes the admin directory's files that the old configuration named and
 * the new one does not. */
static void admin_files_gone(sg_admin *a, const char *const *old, size_t n)
{
	struct serve_signing *g = serve_signing_get(a->s);
	const sg_config *c = g->cfg;
	const char *now[] = { c->proxy_password, c->svc_token, c->svc_ca, c->custom.cert,
	                      c->custom.pass, c->custom.pfx };

	for(size_t i = 0; i < n; i++) {
		int used = 0;
		if(!old[i] || !admin_own_file(a, old[i]))
			continue;
		for(size_t k = 0; k < sizeof(now) / sizeof(now[0]); k++)
			if(now[k] && !strcmp(now[k], old[i]))
				used = 1;
		if(!used)
			unlink(!strncmp(old[i], "file:", 5) ? old[i] + 5 : old[i]);
	}
	serve_signing_put(g);
}

/* Copies of the settings whose files may be replaced. */
static void admin_old_files(sg_admin *a, char *old[6])
{
	struct serve_signing *g = serve_signing_get(a->s);
	const sg_config *c = g->cfg;
	const char *cur[] = { c->proxy_password, c->svc_token, c->svc_ca, c->custom.cert,
	                      c->custom.pass, c->custom.pfx };

	for(size_t i = 0; i < 6; i++)
		old[i] = cur[i] ? strdup(cur[i]) : NULL;
	serve_signing_put(g);
}

/*
 * Runs `signgate serve --check --config path` in a new process and waits
 * for it (at most ADMIN_CHECK_SECS).  PKCS#11 login belongs to a process:
 * where this server is logged in to the token already, only a process of
 * its own proves that a new PIN is right.  On failure *err has what the
 * check said, the temporary file's name replaced by the real one's.
 */
static sg_status admin_check_process(sg_admin *a, const char *path, char *err, size_t errlen)
{
	char *argv[] = { "signgate", "serve", "--check", "--config", (char *)path, NULL };
	posix_spawn_file_actions_t fa;
	char out[1024], *nl;
	size_t n = 0, tl = strlen(path);
	int pfd[2], status = 0, waited = 0;
	pid_t pid;

	if(pipe2(pfd, O_CLOEXEC))
		return sg_fail(SG_ERR_IO, "cannot check the settings: pipe: %s", strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	if(posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ)) {
		posix_spawn_file_actions_destroy(&fa);
		close(pfd[0]);
		close(pfd[1]);
		return sg_fail(SG_ERR_IO, "cannot check the settings: cannot start signgate: %s",
		               strerror(errno));
	}
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	for(time_t end = time(NULL) + ADMIN_CHECK_SECS;;) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		ssize_t r;
		if(time(NULL) > end) {
			kill(pid, SIGKILL);
			snprintf(out, sizeof(out), "the check did not finish in %d s (a token that does "
			         "not answer?)", ADMIN_CHECK_SECS);
			n = strlen(out);
			break;
		}
		if(poll(&p, 1, 500) <= 0)
			continue;
		r = read(pfd[0], out + n, sizeof(out) - 1 - n);
		if(r <= 0 || (n += (size_t)r) == sizeof(out) - 1)
			break;
	}
	close(pfd[0]);
	out[n] = '\0';
	while(waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	waited = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	if(waited)
		return SG_OK;
	if((nl = strchr(out, '\n')))
		*nl = '\0';
	{
		const char *m = !strncmp(out, "signgate serve: ", 16) ? out + 16 : out;
		const char *t = strstr(m, path);
		if(t)
			snprintf(err, errlen, "nothing was saved: these settings cannot sign: %.*s%s%s", (int)(t - m), m,
			         a->cfgpath, t + tl);
		else
			snprintf(err, errlen, "nothing was saved: these settings cannot sign: %.600s", *m ? m : "the check failed");
	}
	return sg_fail(SG_ERR_USAGE, "%s", err);
}

/*
 * Rewrites the configuration with changes, checks it by loading it and
 * opening a signing setup with it, and only then puts the file and the
 * setup in place.  On failure, *err says why (nothing has changed).
 * *warning may say something worth knowing about a change that was made.
 */
static sg_status admin_apply(sg_admin *a, const sg_cfg_change *ch, size_t n, const char *what,
                             struct admin_view *v)
{
	char *err = v->errbuf, *warning = v->warnbuf;
	size_t errlen = sizeof(v->errbuf), wlen = sizeof(v->warnbuf);
	unsigned char *text = NULL;
	char *newtext = NULL;
	size_t len = 0;
	sg_config *nc = NULL;
	struct serve_signing *g = NULL;
	sg_outfile o = { .fd = -1 };
	char *old[6] = { 0 };
	sg_status rc;

	pthread_mutex_lock(&a->save_lock);
	admin_old_files(a, old);
	rc = sg_read_file(a->cfgpath, 1u << 20, &text, &len);
	if(!rc)
		rc = sg_config_rewrite((const char *)text, len, "serve", ch, n, &newtext);
	if(rc) {
		snprintf(err, errlen, "nothing was changed: %s", sg_last_error());
		goto out;
	}
	rc = sg_outfile_open(&o, a->cfgpath);
	if(!rc)
		rc = sg_write_all(o.fd, newtext, strlen(newtext));
	if(rc) {
		snprintf(err, errlen, "cannot save the configuration (nothing was changed): %s",
		         sg_last_error());
		goto out;
	}
	rc = sg_config_load(o.tmp, &nc);
	if(rc) {
		/* The message names the temporary file: name the real one. */
		const char *m = sg_last_error();
		size_t tl = strlen(o.tmp);
		if(!strncmp(m, o.tmp, tl))
			snprintf(err, errlen, "nothing was saved: the new configuration is refused: %s%s", a->cfgpath, m + tl);
		else
			snprintf(err, errlen, "nothing was saved: the new configuration is refused: %s", m);
		goto out;
	}
	if(nc->method == SG_METHOD_CUSTOM && (rc = admin_check_process(a, o.tmp, err, errlen)))
		goto out;
	free(nc->path);
	if(!(nc->path = strdup(a->cfgpath))) {
		rc = sg_fail(SG_ERR_NOMEM, "out of memory");
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	rc = serve_signing_new(nc, &g);
	nc = NULL;
	if(rc) {
		snprintf(err, errlen, "nothing was saved: these settings cannot sign: %s", sg_last_error());
		goto out;
	}
	if(g->remote && (rc = serve_signing_probe(g))) {
		if(rc == SG_ERR_REMOTE) {
			snprintf(err, errlen, "nothing was saved: the signing service refuses these settings: %s",
			         sg_last_error());
			goto out;
		}
		/* Unreachable now: it may be down for a moment; keep the change. */
		snprintf(warning, wlen, "saved, but the signing service cannot be reached now: %s",
		         sg_last_error());
		rc = SG_OK;
	}
	rc = sg_outfile_commit(&o);
	if(rc) {
		snprintf(err, errlen, "cannot save the configuration (nothing was changed): %s",
		         sg_last_error());
		goto out;
	}
	if(g->signer && sg_signer_chain_incomplete(g->signer) && !warning[0])
		snprintf(warning, wlen, "saved, but the certificate chain holds only the signing "
		         "certificate: verifiers that know only the root will refuse the signatures; "
		         "upload the chain with its intermediates");
	serve_signing_swap(a->s, g);
	sg_log(SG_LOG_INFO, "admin page: %s changed; saved to %s and applied", what, a->cfgpath);
	serve_signing_announce(g, 0);
	g = NULL;
	admin_files_gone(a, (const char *const *)old, 6);
out:
	if(rc) {
		sg_log(SG_LOG_WARN, "admin page: %s not changed: %s", what, err);
		if(o.tmp)
			sg_outfile_abort(&o);
		v->form_error = err;
	} else if(warning[0]) {
		sg_log(SG_LOG_WARN, "admin page: %s", warning);
		v->message = warning;
		v->message_warn = 1;
	}
	serve_signing_put(g);
	sg_config_free(nc);
	free(newtext);
	free(text);
	for(size_t i = 0; i < 6; i++)
		free(old[i]);
	sg_clear_error();
	pthread_mutex_unlock(&a->save_lock);
	return rc;
}

static void admin_done(sg_admin *a, struct admin_call *req, const char *csrf,
                       struct admin_view *v, sg_status rc, struct admin_files *f,
                       const char *saved)
{
	if(rc || v->nerrs) {
		admin_files_free(f, 1);
		admin_main_page(a, req, csrf, 400, v);
	} else {
		v->posted = NULL;   /* posted values are shown again only after an error */
		admin_files_free(f, 0);
		if(v->message) {
			admin_main_page(a, req, csrf, 200, v);
		} else {
			admin_redirect(req, saved);
		}
	}
}

static void admin_post_proxy(sg_admin *a, struct admin_call *req, const char *csrf,
                             struct evkeyvalq *form)
{
	struct admin_view v = { .posted = form };
	struct admin_files f = { 0 };
	const char *proxy = admin_value(form, "proxy"), *user = admin_value(form, "proxy_user");
	const char *pw = admin_value(form, "proxy_password"), *np = admin_value(form, "no_proxy");
	int clear = *admin_value(form, "proxy_password_clear");
	char *url = NULL, *spec = NULL;
	const char *why;
	sg_status rc = SG_OK;
	if((why = admin_line_value(proxy)))
		admin_bad(&v, "proxy", why);
	else if(*proxy && sg_proxy_parse(proxy, &url))
		admin_bad(&v, "proxy", sg_last_error());
	if((why = admin_line_value(user)))
		admin_bad(&v, "proxy_user", why);
	else if(strchr(user, ':'))
		admin_bad(&v, "proxy_user", "must not hold ':' (Basic authentication cannot carry it)");
	else if(*user && !*proxy)
		admin_bad(&v, "proxy_user", "a user needs a proxy address");
	if(strchr(pw, '\n') || strchr(pw, '\r') || strlen(pw) > 256)
		admin_bad(&v, "proxy_password", "must be one line of at most 256 characters");
	else if(*pw && !*user)
		admin_bad(&v, "proxy_password", "a password needs a user");
	if((why = admin_line_value(np)) ||
	   strspn(np, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-*:[], ") !=
	   strlen(np))
		admin_bad(&v, "no_proxy", why ? why : "only host names, addresses, '.domain' and "
		          "'*', separated by commas");
	else if(*np && !*proxy)
		admin_bad(&v, "no_proxy", "there is no proxy to bypass");
	sg_clear_error();
	if(!v.nerrs && *pw && *user && !clear) {
		rc = admin_save_secret(a, "proxy-password", pw, &f.made[f.nmade++], &spec);
		if(rc) {
			snprintf(v.errbuf, sizeof(v.errbuf), "cannot save the password (nothing was "
			         "changed): %s", sg_last_error());
			v.form_error = v.errbuf;
		}
	}
	if(!v.nerrs && !rc) {
		sg_cfg_change ch[6] = {
			{ "proxy", url }, { "service_proxy", NULL }, { "timestamp_proxy", NULL },
			{ "proxy_user", *user ? user : NULL }, { "no_proxy", *np ? np : NULL },
		};
		size_t n = 5;
		/* The password: a new one, none, or (neither typed nor removed)
		 * the one set, whose line stays as it is. */
		if(spec || !*user || clear)
			ch[n++] = (sg_cfg_change){ "proxy_password", spec };
		rc = admin_apply(a, ch, n, "the HTTP proxy", &v);
	}
	admin_done(a, req, csrf, &v, rc, &f, "/conf?saved=proxy#security");
	free(url);
	free(spec);
}

/* Decodes base64 (as a browser's FileReader gives it); NULL on bad input. */
static unsigned char *admin_unbase64(const char *s, size_t *len)
{
	size_t n = strlen(s), out = 0;
	unsigned char *buf;
	int r;

	if(!n || n % 4 || n > (ADMIN_PEM_MAX / 3) * 4 + 4)
		return NULL;
	if(!(buf = malloc(n / 4 * 3 + 1)))
		return NULL;
	r = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n);
	if(r < 0) {
		free(buf);
		return NULL;
	}
	out = (size_t)r;
	if(s[n - 1] == '=')
		out--;
	if(s[n - 2] == '=')
		out--;
	*len = out;
	return buf;
}

/* "%XX" for what a PKCS#11 URI's path attribute value cannot hold. */
static void admin_pct(const char *in, char *out, size_t outlen)
{
	size_t o = 0;

	for(; *in && o + 4 < outlen; in++) {
		if(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-", *in))
			out[o++] = *in;
		else
			o += (size_t)snprintf(out + o, outlen - o, "%%%02X", (unsigned char)*in);
	}
	out[o] = '\0';
}

/* Replaces the first what in buf (a string of at most size bytes) with
 * with, cutting the end if it does not fit. */
static void admin_subst(char *buf, size_t size, const char *what, const char *with)
{
	char *at = strstr(buf, what), tail[1024];

	if(!at)
		return;
	snprintf(tail, sizeof(tail), "%s", at + strlen(what));
	snprintf(at, size - (size_t)(at - buf), "%s%s", with, tail);
}

static void admin_post_method(sg_admin *a, struct admin_call *req, const char *csrf,
                              struct evkeyvalq *form)
{
	struct admin_view v = { .posted = form };
	struct admin_files f = { 0 };
	const char *method = admin_value(form, "sign_method"), *kind = admin_value(form, "custom_kind");
	const char *url = admin_value(form, "service_url"), *key = admin_value(form, "service_key");
	const char *token = admin_value(form, "service_token");
	const char *ca_pem = admin_value(form, "service_ca_pem");
	const char *module = admin_value(form, "pkcs11_module");
	const char *ckey = admin_value(form, "custom_key"), *pin = admin_value(form, "custom_pin");
	const char *chain = admin_value(form, "custom_chain_pem");
	const char *pfx_b64 = admin_value(form, "pfx_b64");
	const char *pfx_pw = admin_value(form, "pfx_password");
	char uri[600] = "", mod[400];
	char *token_spec = NULL, *ca_path = NULL, *chain_path = NULL, *pin_spec = NULL;
	char *pfx_path = NULL, *pfx_spec = NULL, *tmp = NULL;
	char *uri_rest = NULL, *uri_mod = NULL;
	int service = !strcmp(method, "service"), pkcs12 = !strcmp(kind, "pkcs12");
	struct serve_signing *g;
	const sg_config *c;
	const char *why;
	unsigned char *pfx = NULL;
	size_t pfxlen = 0;
	sg_status rc = SG_OK;
	int have_token, have_pfx, pfx_pass_set;

	g = serve_signing_get(a->s);
	c = g->cfg;
	have_token = c->svc_token != NULL;
	have_pfx = c->custom.pfx != NULL;
	pfx_pass_set = c->custom.pfx && c->custom.pass;
	serve_signing_put(g);
	if(!service && strcmp(method, "custom"))
		admin_bad(&v, "sign_method", "choose the signing service or the custom method");
	if(service) {
		if((why = admin_line_value(url)))
			admin_bad(&v, "service_url", why);
		else if(sg_remote_check_url(url))
			admin_bad(&v, "service_url", sg_last_error());
		if(!*key || strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		                        "0123456789._-") != strlen(key) || strlen(key) > 64)
			admin_bad(&v, "service_key", "the key's name at the service: letters, digits, "
			          "'.', '_' or '-'");
		if(!*token && !have_token)
			admin_bad(&v, "service_token", "the service needs this server's token");
		else if(strlen(token) > 1024 || strpbrk(token, " \t\r\n"))
			admin_bad(&v, "service_token", "a token is one word of at most 1024 characters");
		if(*ca_pem && (strlen(ca_pem) > ADMIN_PEM_MAX || !admin_pem_certs(ca_pem)))
			admin_bad(&v, "service_ca_pem", "not a PEM certificate (-----BEGIN CERTIFICATE-----)");
	} else if(!strcmp(method, "custom") && !pkcs12) {
		if(strcmp(kind, "pkcs11"))
			admin_bad(&v, "custom_kind", "choose a PKCS#11 key or a PKCS#12 file");
		/* The URI as the config file writes it, module-path and all:
		 * the module goes to its own field. */
		if(!strncmp(ckey, "pkcs11:", 7) && strstr(ckey, "module-path=")) {
			if(sg_pkcs11_uri_split_module(ckey, &uri_rest, &uri_mod))
				admin_bad(&v, "custom_key", sg_last_error());
			else if(*module && uri_mod && strcmp(module, uri_mod))
				admin_bad(&v, "custom_key", "its module-path is not the module given "
				          "above: give the module once");
			else {
				ckey = uri_rest;
				if(!*module && uri_mod)
					module = uri_mod;
			}
		}
		if(!*module || module[0] != '/')
			admin_bad(&v, "pkcs11_module", "the module's absolute path, e.g. "
			          "/usr/lib/softhsm/libsofthsm2.so");
		else if((why = admin_line_value(module)))
			admin_bad(&v, "pkcs11_module", why);
		else if(access(module, R_OK))
			admin_bad(&v, "pkcs11_module", "no such file here (or not readable)");
		if(strncmp(ckey, "pkcs11:", 7) || strlen(ckey) < 8)
			admin_bad(&v, "custom_key", "a PKCS#11 URI such as pkcs11:token=NAME;object=LABEL");
		else if((why = admin_line_value(ckey)) || strchr(ckey, ' '))
			admin_bad(&v, "custom_key", why ? why : "must not hold spaces (write %20)");
		else if(strstr(ckey, "pin-value=") || strstr(ckey, "pin-source="))
			admin_bad(&v, "custom_key", "give the PIN in its own field, not in the URI (it "
			          "would be kept and shown in clear)");
		if(strlen(pin) > 256 || strpbrk(pin, "\r\n"))
			admin_bad(&v, "custom_pin", "one line of at most 256 characters");
		if(*chain && (strlen(chain) > ADMIN_PEM_MAX || !admin_pem_certs(chain)))
			admin_bad(&v, "custom_chain_pem", "not a PEM certificate chain");
		if(!admin_err(&v, "pkcs11_module") && !admin_err(&v, "custom_key")) {
			admin_pct(module, mod, sizeof(mod));
			if((size_t)snprintf(uri, sizeof(uri), "%s%cmodule-path=%s", ckey,
			                    strchr(ckey, '?') ? '&' : '?', mod) > ADMIN_VALUE_MAX)
				admin_bad(&v, "custom_key", "URI and module path together are too long for "
				          "one configuration line (180 characters)");
		}
	} else if(!strcmp(method, "custom")) {
		if(*pfx_b64 && !(pfx = admin_unbase64(pfx_b64, &pfxlen)))
			admin_bad(&v, "pfx_b64", "the uploaded file could not be read");
		else if(!*pfx_b64 && !have_pfx)
			admin_bad(&v, "pfx_b64", "upload the PKCS#12 file");
		if(strlen(pfx_pw) > 256 || strpbrk(pfx_pw, "\r\n"))
			admin_bad(&v, "pfx_password", "one line of at most 256 characters");
	}
	/* Save the uploads and secrets as files of their own. */
#define ADMIN_SAVE(cond, expr) \
	if(!v.nerrs && !rc && (cond)) { \
		rc = (expr); \
		if(rc) { \
			snprintf(v.errbuf, sizeof(v.errbuf), "cannot save an uploaded file (nothing " \
			         "was changed): %s", sg_last_error()); \
			v.form_error = v.errbuf; \
		} \
	}
	ADMIN_SAVE(service && *token, admin_save_secret(a, "service-token", token, &tmp, &token_spec));
	if(tmp) { f.made[f.nmade++] = tmp; tmp = NULL; }
	ADMIN_SAVE(service && *ca_pem, admin_write_file(a, "service-ca", ".pem", ca_pem,
	                                                strlen(ca_pem), &ca_path));
	if(ca_path) f.made[f.nmade++] = strdup(ca_path);
	ADMIN_SAVE(!service && !pkcs12 && *pin, admin_save_secret(a, "custom-pin", pin, &tmp,
	                                                          &pin_spec));
	if(tmp) { f.made[f.nmade++] = tmp; tmp = NULL; }
	ADMIN_SAVE(!service && !pkcs12 && *chain, admin_write_file(a, "custom-chain", ".pem", chain,
	                                                           strlen(chain), &chain_path));
	if(chain_path) f.made[f.nmade++] = strdup(chain_path);
	ADMIN_SAVE(!service && pkcs12 && pfx, admin_write_file(a, "custom", ".p12", pfx, pfxlen,
	                                                       &pfx_path));
	if(pfx_path) f.made[f.nmade++] = strdup(pfx_path);
	ADMIN_SAVE(!service && pkcs12 && *pfx_pw, admin_save_secret(a, "custom-p12-password", pfx_pw,
	                                                            &tmp, &pfx_spec));
	if(tmp) { f.made[f.nmade++] = tmp; tmp = NULL; }
#undef ADMIN_SAVE
	if(!v.nerrs && !rc) {
		sg_cfg_change ch[10];
		size_t n = 0;
		ch[n++] = (sg_cfg_change){ "sign_method", service ? "service" : "custom" };
		if(service) {
			ch[n++] = (sg_cfg_change){ "service_url", url };
			ch[n++] = (sg_cfg_change){ "service_key", key };
			if(token_spec)
				ch[n++] = (sg_cfg_change){ "service_token", token_spec };
			if(ca_path)
				ch[n++] = (sg_cfg_change){ "service_ca", ca_path };
		} else if(!pkcs12) {
			ch[n++] = (sg_cfg_change){ "custom_key", uri };
			ch[n++] = (sg_cfg_change){ "custom_pfx", NULL };
			if(chain_path)
				ch[n++] = (sg_cfg_change){ "custom_cert", chain_path };
			if(pin_spec)
				ch[n++] = (sg_cfg_change){ "custom_pass", pin_spec };
			else if(have_pfx)
				ch[n++] = (sg_cfg_change){ "custom_pass", NULL };   /* the PKCS#12 password */
		} else {
			ch[n++] = (sg_cfg_change){ "custom_key", NULL };
			ch[n++] = (sg_cfg_change){ "custom_cert", NULL };
			if(pfx_path)
				ch[n++] = (sg_cfg_change){ "custom_pfx", pfx_path };
			if(pfx_spec)
				ch[n++] = (sg_cfg_change){ "custom_pass", pfx_spec };
			else if(!pfx_pass_set)
				ch[n++] = (sg_cfg_change){ "custom_pass", NULL };   /* a PIN */
		}
		rc = admin_apply(a, ch, n, "the signing method", &v);
		/* Files uploaded now are removed again: name them as the user
		 * knows them. */
		if(rc && chain_path)
			admin_subst(v.errbuf, sizeof(v.errbuf), chain_path, "the uploaded chain");
		if(rc && pfx_path)
			admin_subst(v.errbuf, sizeof(v.errbuf), pfx_path, "you uploaded");
		/* A refused PIN or password is shown beside its field too. */
		if(rc && strstr(v.errbuf, "wrong PIN for"))
			admin_bad(&v, "custom_pin", "the token refused this PIN (nothing was saved)");
		else if(rc && strstr(v.errbuf, "wrong password for PKCS#12"))
			admin_bad(&v, "pfx_password", "this password does not open the PKCS#12 file");
	}
	admin_done(a, req, csrf, &v, rc, &f, "/conf?saved=method#signing");
	free(token_spec);
	free(ca_path);
	free(chain_path);
	free(pin_spec);
	free(pfx_path);
	free(pfx_spec);
	free(uri_rest);
	free(uri_mod);
	if(pfx) {
		OPENSSL_cleanse(pfx, pfxlen);
		free(pfx);
	}
}

static void admin_post_test(sg_admin *a, struct admin_call *req, const char *csrf)
{
	struct serve_signing *g = serve_signing_get(a->s);
	struct admin_view v = { 0 };
	char out[1200];

	v.test_ok = serve_test_sign(a->s, g, out, sizeof(out)) == SG_OK;
	serve_signing_put(g);
	sg_clear_error();
	v.test_result = out;
	sg_log(v.test_ok ? SG_LOG_INFO : SG_LOG_WARN, "admin page: test signing %s: %s",
	       v.test_ok ? "passed" : "FAILED", out);
	admin_main_page(a, req, csrf, 200, &v);
}

static void admin_post_setup(sg_admin *a, struct admin_call *req, struct evkeyvalq *form,
                             const char *peer)
{
	const char *code = admin_value(form, "setup_code"), *pw = admin_value(form, "password");
	const char *pw2 = admin_value(form, "password2");
	struct admin_view v = { 0 };
	char hashtext[160];
	int pending;

	if(strlen(pw) < ADMIN_PW_MIN || strcmp(pw, pw2) || strlen(pw) > 256) {
		admin_login_page(a, req, 400, strcmp(pw, pw2) ? "The two passwords differ." :
		                 "The password must have 10 to 256 characters.");
		return;
	}
	if(!admin_may_try(a)) {
		admin_login_page(a, req, 429, "Too many attempts: wait a second.");
		return;
	}
	/* The code is good for one setup: checked and taken under one lock. */
	pthread_mutex_lock(&a->lock);
	pending = !a->pw_set && !a->setup_busy && a->setup_code[0] &&
	          strlen(code) == strlen(a->setup_code) &&
	          !CRYPTO_memcmp(code, a->setup_code, strlen(code));
	if(pending)
		a->setup_busy = 1;
	pthread_mutex_unlock(&a->lock);
	if(!pending) {
		sg_log(SG_LOG_WARN, "admin page: wrong (or already used) setup code from %s", peer);
		admin_refuse_later(a, req, "Wrong setup code.");
		return;
	}
	{
		unsigned char salt[16], hash[32];
		char sh[33], hh[65];
		RAND_bytes(salt, sizeof(salt));
		admin_pbkdf2(pw, salt, ADMIN_PBKDF2_ITER, hash);
		admin_hex(salt, 16, sh);
		admin_hex(hash, 32, hh);
		snprintf(hashtext, sizeof(hashtext), "pbkdf2-sha256:%u:%s:%s", ADMIN_PBKDF2_ITER, sh, hh);
	}
	{
		const sg_cfg_change ch[] = { { "admin_password_hash", hashtext },
		                             { "admin_password", NULL } };
		if(admin_apply(a, ch, 2, "the admin password", &v)) {
			pthread_mutex_lock(&a->lock);
			a->setup_busy = 0;
			pthread_mutex_unlock(&a->lock);
			admin_login_page(a, req, 500, v.errbuf);
			return;
		}
	}
	admin_set_password(a, pw, NULL);
	admin_good_try(a);
	pthread_mutex_lock(&a->lock);
	OPENSSL_cleanse(a->setup_code, sizeof(a->setup_code));
	a->setup_busy = 0;
	pthread_mutex_unlock(&a->lock);
	unlink(a->setup_path);
	sg_log(SG_LOG_INFO, "admin page: the admin password was set from %s", peer);
	admin_session_new(a, req);
	admin_redirect(req, "/conf");
}

/* ---------------------------------------------------------------- dispatch */

/* The request body as a form (application/x-www-form-urlencoded). */
static int admin_form(struct admin_call *req, struct evkeyvalq *form)
{
	const char *ct = evhttp_find_header(&req->in, "Content-Type");

	TAILQ_INIT(form);
	if(!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33) || !req->body)
		return -1;
	/* A NUL, raw or as %00, would cut a value short without a word. */
	if(strlen(req->body) != req->bodylen || strcasestr(req->body, "%00"))
		return -1;
	return evhttp_parse_query_str(req->body, form);
}

/* A POST from another site (its Origin not this page's) is refused. */
static int admin_same_origin(struct admin_call *req)
{
	struct evkeyvalq *h = (&req->in);
	const char *origin = evhttp_find_header(h, "Origin"), *host = evhttp_find_header(h, "Host");

	if(!origin)
		return 1;   /* old browsers and curl; SameSite and the CSRF token still hold */
	return host && !strncmp(origin, "http://", 7) && !strcmp(origin + 7, host);
}

static void admin_dispatch(sg_admin *a, struct admin_call *req)
{
	const char *path = req->path, *peer = req->peer;
	enum evhttp_cmd_type cmd = req->cmd;
	struct evkeyvalq form;
	char csrf[65] = "";
	int slot;

	TAILQ_INIT(&form);
	if(cmd == EVHTTP_REQ_GET && !strcmp(path, "/conf/admin.css")) {
		struct evbuffer *b = evbuffer_new();
		evbuffer_add(b, admin_css, sizeof(admin_css) - 1);
		admin_reply(req, 200, "text/css; charset=utf-8", b);
		evbuffer_free(b);
		return;
	}
	if(cmd == EVHTTP_REQ_GET && !strcmp(path, "/conf/admin.js")) {
		struct evbuffer *b = evbuffer_new();
		evbuffer_add(b, admin_js, sizeof(admin_js) - 1);
		admin_reply(req, 200, "text/javascript; charset=utf-8", b);
		evbuffer_free(b);
		return;
	}
	if(!admin_host_ok(a, req)) {
		sg_log(SG_LOG_WARN, "admin page: refused a request for %s from %s: Host is not this "
		       "machine's loopback address", path, peer);
		admin_reply(req, 421, "text/plain; charset=utf-8", NULL);
		return;
	}
	slot = admin_session(a, req, csrf);
	if(cmd == EVHTTP_REQ_GET && (!strcmp(path, "/conf") || !strcmp(path, "/conf/"))) {
		const char *q = req->query;
		struct admin_view v = { 0 };
		if(slot < 0) {
			admin_login_page(a, req, 200, NULL);
			return;
		}
		if(q && strstr(q, "saved=proxy"))
			v.message = "Saved: the HTTP proxy is in use for new requests.";
		else if(q && strstr(q, "saved=method"))
			v.message = "Saved: the signing method is in use for new downloads.";
		admin_main_page(a, req, csrf, 200, &v);
		return;
	}
	if(cmd != EVHTTP_REQ_POST) {
		if(!strncmp(path, "/conf/", 6) && strcmp(path, "/conf/")) {
			admin_reply(req, 404, "text/plain; charset=utf-8", NULL);
			return;
		}
		evhttp_add_header((&req->out), "Allow", "GET, POST");
		admin_reply(req, 405, "text/plain; charset=utf-8", NULL);
		return;
	}
	if(!admin_same_origin(req)) {
		sg_log(SG_LOG_WARN, "admin page: refused a POST %s from %s: its Origin is another "
		       "site", path, peer);
		admin_reply_text(req, 403, "refused: the form's Origin is another site (the admin "
		                 "page takes forms from its own pages only)");
		return;
	}
	if(admin_form(req, &form)) {
		evhttp_clear_headers(&form);
		admin_login_page(a, req, 400, "The form could not be read.");
		return;
	}
	if(!strcmp(path, "/conf/login")) {
		char *pw = (char *)admin_value(&form, "password");
		int ok = 0, may = admin_may_try(a);
		if(may)
			ok = admin_check_password(a, pw);
		OPENSSL_cleanse(pw, strlen(pw));
		if(!may) {
			admin_login_page(a, req, 429, "Too many attempts: wait a second.");
		} else if(!ok) {
			sg_log(SG_LOG_WARN, "admin page: wrong password from %s", peer);
				admin_refuse_later(a, req, "Wrong password.");
		} else {
			sg_log(SG_LOG_INFO, "admin page: logged in from %s", peer);
			admin_good_try(a);
			admin_session_new(a, req);
			admin_redirect(req, "/conf");
		}
	} else if(!strcmp(path, "/conf/setup")) {
		admin_post_setup(a, req, &form, peer);
	} else if(slot < 0) {
		admin_login_page(a, req, 403, "Your session has ended: log in again.");
	} else if(strlen(admin_value(&form, "csrf")) != 64 ||
	          CRYPTO_memcmp(admin_value(&form, "csrf"), csrf, 64)) {
		sg_log(SG_LOG_WARN, "admin page: refused a POST %s from %s: wrong CSRF token", path,
		       peer);
		admin_reply_text(req, 403, "refused: the form's CSRF token is missing or wrong "
		                 "(send the csrf field of the page you were given; reload it)");
	} else if(!strcmp(path, "/conf/logout")) {
		admin_session_end(a, slot, req);
		admin_redirect(req, "/conf");
	} else if(!strcmp(path, "/conf/proxy")) {
		admin_post_proxy(a, req, csrf, &form);
	} else if(!strcmp(path, "/conf/method")) {
		admin_post_method(a, req, csrf, &form);
	} else if(!strcmp(path, "/conf/test")) {
		admin_post_test(a, req, csrf);
	} else {
		admin_reply(req, 404, "text/plain; charset=utf-8", NULL);
	}
	/* Wipe what the form held (passwords, PINs, tokens). */
	for(struct evkeyval *kv = form.tqh_first; kv; kv = kv->next.tqe_next)
		OPENSSL_cleanse(kv->value, strlen(kv->value));
	evhttp_clear_headers(&form);
}

/* ---------------------------------------------------------------- the page's thread */

static void admin_call_free(struct admin_call *c)
{
	if(!c)
		return;
	evhttp_clear_headers(&c->in);
	evhttp_clear_headers(&c->out);
	if(c->reply)
		evbuffer_free(c->reply);
	if(c->body) {
		OPENSSL_cleanse(c->body, c->bodylen);
		free(c->body);
	}
	free(c->path);
	free(c->query);
	free(c);
}

/* On the request's loop: sends the reply the page's thread made. */
static void admin_send_cb(evutil_socket_t fd, short what, void *arg)
{
	struct admin_call *c = arg;
	struct evkeyvalq *out = evhttp_request_get_output_headers(c->ev);
	int code = c->code ? c->code : 500;

	for(struct evkeyval *kv = c->out.tqh_first; kv; kv = kv->next.tqe_next)
		evhttp_add_header(out, kv->key, kv->value);
	evhttp_send_reply(c->ev, code, code == 200 ? "OK" : code == 303 ? "See Other" :
	                  code == 400 ? "Bad Request" : code == 403 ? "Forbidden" :
	                  code == 421 ? "Misdirected Request" : code == 429 ? "Too Many Requests" :
	                  code == 404 ? "Not Found" : code == 405 ? "Method Not Allowed" : "Error",
	                  c->reply);
	admin_call_free(c);
}

static void *admin_thread(void *arg)
{
	sg_admin *a = arg;
	struct admin_call *c;

	for(;;) {
		struct timeval tv = { 0, 0 };
		pthread_mutex_lock(&a->qlock);
		while(!a->qhead && !a->stopping)
			pthread_cond_wait(&a->qcond, &a->qlock);
		if(a->stopping) {
			pthread_mutex_unlock(&a->qlock);
			return NULL;
		}
		c = a->qhead;
		a->qhead = c->next;
		if(!a->qhead)
			a->qtail = NULL;
		pthread_mutex_unlock(&a->qlock);
		admin_dispatch(a, c);
		tv.tv_sec = c->delay;
		if(event_base_once(c->base, -1, EV_TIMEOUT, admin_send_cb, c, &tv)) {
			sg_log(SG_LOG_ERROR, "admin page: cannot hand a reply back to its event loop");
			admin_call_free(c);
		}
	}
}

void sg_admin_handle(sg_admin *a, struct evhttp_request *ev)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
	struct evhttp_connection *evcon = evhttp_request_get_connection(ev);
	struct evbuffer *in = evhttp_request_get_input_buffer(ev);
	struct admin_call *c = calloc(1, sizeof(*c));
	const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
	char *addr = NULL;
	ev_uint16_t port = 0;
	int ok;

	if(!c || !evcon) {
		free(c);
		evhttp_send_error(ev, 500, NULL);
		return;
	}
	TAILQ_INIT(&c->in);
	TAILQ_INIT(&c->out);
	c->ev = ev;
	c->base = evhttp_connection_get_base(evcon);
	c->cmd = evhttp_request_get_command(ev);
	evhttp_connection_get_peer(evcon, &addr, &port);
	snprintf(c->peer, sizeof(c->peer), "%s:%u", addr ? addr : "?", (unsigned)port);
	c->path = strdup(uri && evhttp_uri_get_path(uri) ? evhttp_uri_get_path(uri) : "/conf");
	c->query = q ? strdup(q) : NULL;
	c->bodylen = evbuffer_get_length(in);
	ok = c->path && (!q || c->query) && (c->body = malloc(c->bodylen + 1));
	if(ok) {
		evbuffer_copyout(in, c->body, c->bodylen);
		c->body[c->bodylen] = '\0';
		for(struct evkeyval *kv = evhttp_request_get_input_headers(ev)->tqh_first; kv && ok;
		    kv = kv->next.tqe_next)
			ok = evhttp_add_header(&c->in, kv->key, kv->value) == 0;
	}
	if(!ok) {
		admin_call_free(c);
		evhttp_send_error(ev, 500, NULL);
		return;
	}
	pthread_mutex_lock(&a->qlock);
	if(a->qtail)
		a->qtail->next = c;
	else
		a->qhead = c;
	a->qtail = c;
	pthread_cond_signal(&a->qcond);
	pthread_mutex_unlock(&a->qlock);
}

void sg_admin_stop(sg_admin *a)
{
	struct admin_call *c, *next;

	if(!a || !a->thread_started)
		return;
	pthread_mutex_lock(&a->qlock);
	a->stopping = 1;
	pthread_cond_broadcast(&a->qcond);
	pthread_mutex_unlock(&a->qlock);
	pthread_join(a->thread, NULL);
	a->thread_started = 0;
	for(c = a->qhead; c; c = next) {
		next = c->next;
		admin_call_free(c);
	}
	a->qhead = a->qtail = NULL;
}
