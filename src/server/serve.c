/*
 * serve.c - `signgate serve`: the download server.  GET /download/NAME
 * delivers NAME from the root directory; a file signgate can sign (PE) is
 * delivered as a signed copy, made once per file version and kept in the
 * cache directory (serve_cache.c), by the signing service (remote.c) or a
 * local key.  Plain HTTP: put a TLS proxy in front for the Internet.
 *
 * Paths.  NAME is percent-decoded strictly; "." and ".." segments, empty
 * segments, encoded slashes, NUL and control characters are refused, and
 * names starting with "." are not served.  The file is opened with
 * openat2(RESOLVE_BENEATH) relative to the root's descriptor, so the
 * kernel refuses any symbolic link that leads out of the root; where
 * openat2 is missing (kernels before 5.6, some seccomp filters) every
 * component is opened with O_NOFOLLOW and no symbolic link is followed.
 * Only regular files are delivered.
 *
 * Signing.  The cache key is a SHA-256 of the signing identity (method,
 * key, digest algorithm, program name and URL) and the file's identity
 * (st_dev, st_ino, st_size, st_mtim, st_ctim).  One pass hashes the file
 * and copies it into a temporary file (sg_file_digest with a tee), so the
 * copy matches the digest by construction; the signature is added and
 * the copy renamed into the cache.  If the source's identity changed
 * during the pass, the copy is thrown away and the request starts over
 * once.  A file changed less than a second before we look is waited for
 * until that second is over: a change within the same timestamp tick
 * would otherwise go unseen (git's "racy clean" problem).
 *
 * HEAD of a PE file signs it too: its Content-Length is the signed
 * copy's.  With sign_method = service the key's certificate is not part
 * of the cache key (the service does not tell it before signing): after
 * a certificate renewal at the service, empty cache_dir.  With a local key
 * the chain is part of it.
 *
 * Failures.  A file no format claims is delivered unchanged.  A PE file
 * that is corrupt (SG_ERR_MALFORMED) or cannot be signed (TOO_LARGE) is
 * refused with 500 and an error in the log: handing out a broken file as
 * if it had gone through signing would hide the problem, and serving it
 * unsigned is not what on_sign_failure is for (that is for an unreachable
 * or failing signer).  Other signing failures follow on_sign_failure:
 * 503, or the original bytes with a warning in the log.
 *
 * SIGNGATE_SERVE_NO_OPENAT2 in the environment forces the fallback (for
 * the tests).
 *
 * Not here: TLS, multiple ranges in one request, If-None-Match/304,
 * a limit on the cache's total bytes.
 */
#define _GNU_SOURCE 1   /* memfd_create */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#define SERVE_HAVE_OPENAT2 1
#endif
#endif

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "../lib/internal.h"
#include "../lib/spc.h"
#include "admin.h"
#include "config.h"
#include "httpd.h"
#include "log.h"
#include "serve_cache.h"
#include "serve_int.h"
#include "servers.h"
#include "signgate/remote.h"

#define SERVE_DEFAULT_LISTEN "127.0.0.1:7615"
#define SERVE_CACHE_MAX 4096          /* signed copies kept */
#define SERVE_RACY_NS 1000000000LL    /* see "racy clean" above */
#define SERVE_PATH_MAX 1024           /* decoded NAME, bytes */
#define SERVE_LIST_MAX 10000          /* entries in a directory listing */
#define SERVE_PE_TYPE "application/vnd.microsoft.portable-executable"
#define SERVE_LOOPS 4                 /* event loops at most */
#define SERVE_BREAKER_SECS 10         /* fail fast this long after a slow network failure */
#define SERVE_BREAKER_SLOW_MS 2000    /* a failure that took this long trips it */

/*
 * One request, for its reply and its log line.  A download is worked out
 * on a signing thread (serve_pool): the reply is made there into out, body
 * and fd, and sent by serve_send() on the request's own event loop, the
 * only thread that may touch req.  So a slow signing never holds up an
 * event loop, and /health, cached files and the admin page keep answering.
 */
struct serve_req {
	struct evhttp_request *req;  /* loop thread only; not after the reply */
	struct event_base *base;     /* the request's loop */
	struct serve *s;
	struct serve_req *next;      /* in the signing queue */
	const char *method;
	char *enc, *path;            /* what was asked, for the signing thread */
	char *range, *if_range;      /* its Range and If-Range headers, or NULL */
	int head;
	int on_pool;                 /* being worked out on a signing thread */
	int defer;                   /* needs one: a signable file */
	/* the reply */
	int status;
	struct evkeyvalq out;        /* headers */
	struct evbuffer *body;       /* NULL: none */
	int fd;                      /* >= 0: send [off, off + len) of this file */
	uint64_t off, len;
	int error500;                /* evhttp's own 500 */
	/* for the log line */
	uint64_t bytes;
	char what[200];
	char peer[80];   /* taken before the reply: libevent may free req with it */
	char uri[320];
	struct timespec t0;
};

/* ---------------------------------------------------------------- replies */

static void serve_what(struct serve_req *r, const char *fmt, ...) SG_PRINTF(2, 3);
static void serve_what(struct serve_req *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->what, sizeof(r->what), fmt, ap);
	va_end(ap);
}

static void serve_header_u64(struct evkeyvalq *h, const char *name, uint64_t v)
{
	char num[24];

	snprintf(num, sizeof(num), "%" PRIu64, v);
	evhttp_add_header(h, name, num);
}

/* A small in-memory body (not for HEAD: only its length). */
static void serve_reply_buf(struct serve_req *r, int code, const char *ctype,
                            struct evbuffer *b)
{
	size_t len = b ? evbuffer_get_length(b) : 0;

	evhttp_add_header(&r->out, "Content-Type", ctype);
	serve_header_u64(&r->out, "Content-Length", len);
	r->status = code;
	/* evhttp sends whatever is in the buffer even for HEAD. */
	if(r->head || !b)
		return;
	if(!(r->body = evbuffer_new()) || evbuffer_add_buffer(r->body, b)) {
		r->error500 = 1;
		return;
	}
	r->bytes = len;
}

static void serve_reply_json(struct serve_req *r, int code, json_t *j)
{
	struct evbuffer *b = evbuffer_new();
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	if(b && s) {
		evbuffer_add(b, s, strlen(s));
		evbuffer_add(b, "\n", 1);
		serve_reply_buf(r, code, "application/json", b);
	} else {
		r->status = 500;
		r->error500 = 1;
	}
	free(s);
	if(b)
		evbuffer_free(b);
}

/* {"error": msg} with code.  msg goes to the client: no internals. */
static void serve_reply_error(struct serve_req *r, int code, const char *msg)
{
	json_t *j = json_pack("{s:s}", "error", msg);

	evhttp_add_header(&r->out, "Cache-Control", "no-store");
	serve_reply_json(r, code, j);
	json_decref(j);
}

/* Parses a single byte range (RFC 9110 section 14.1.2) against size:
 * 1 and [*off, *off + *len) for a satisfiable one, -1 for an
 * unsatisfiable one, 0 to send the whole file (no or unusable header,
 * several ranges). */
static int serve_parse_range(const char *h, uint64_t size, uint64_t *off, uint64_t *len)
{
	uint64_t a = 0, b = 0;
	int have_a = 0, have_b = 0;
	const char *p;

	if(strncmp(h, "bytes=", 6) || strchr(h, ','))
		return 0;
	p = h + 6;
	for(; *p >= '0' && *p <= '9'; p++, have_a = 1) {
		if(a > (UINT64_MAX - 9) / 10)
			return 0;
		a = a * 10 + (uint64_t)(*p - '0');
	}
	if(*p++ != '-')
		return 0;
	for(; *p >= '0' && *p <= '9'; p++, have_b = 1) {
		if(b > (UINT64_MAX - 9) / 10)
			return 0;
		b = b * 10 + (uint64_t)(*p - '0');
	}
	if(*p || (!have_a && !have_b))
		return 0;
	if(!have_a) { /* suffix: the last b bytes */
		if(b == 0 || size == 0)
			return -1;
		*len = b < size ? b : size;
		*off = size - *len;
		return 1;
	}
	if(have_b && b < a)
		return 0; /* invalid: ignore it */
	if(a >= size)
		return -1;
	if(!have_b || b >= size)
		b = size - 1;
	*off = a;
	*len = b - a + 1;
	return 1;
}

/* Content-Disposition for the last segment of rel: an ASCII filename=
 * with quotes escaped, plus RFC 8187 filename*= when the name is not
 * ASCII. */
static void serve_disposition(const char *rel, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *base = strrchr(rel, '/');
	const unsigned char *p;
	size_t o = 0;
	int ascii = 1;

	base = base ? base + 1 : rel;
	o += (size_t)snprintf(out, outlen, "attachment; filename=\"");
	for(p = (const unsigned char *)base; *p && o + 4 < outlen; p++) {
		if(*p >= 0x80) {
			ascii = 0;
			out[o++] = '_';
			continue;
		}
		if(*p == '"' || *p == '\\')
			out[o++] = '\\';
		out[o++] = (char)*p;
	}
	out[o++] = '"';
	out[o] = '\0';
	if(ascii)
		return;
	o += (size_t)snprintf(out + o, outlen - o, "; filename*=UTF-8''");
	for(p = (const unsigned char *)base; *p && o + 4 < outlen; p++) {
		if((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		   strchr("!#$&+-.^_`|~", *p)) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
}

/*
 * Sends fd (a regular file) as the answer, or the range the request asks
 * for.  Takes fd.  The body is a file segment added straight to the
 * connection's output, so plain HTTP sends it with sendfile(): memory
 * stays flat whatever the file's size, and a source truncated meanwhile
 * ends the connection early instead of faulting on a mapping.
 */
static void serve_reply_fd(struct serve_req *r, int fd, const char *ctype,
                           const char *rel, const char *etag)
{
	struct evkeyvalq *out = &r->out;
	const char *range = r->range, *if_range = r->if_range;
	char disp[1400], cr[96];
	uint64_t size, off = 0, len;
	struct stat st;
	int code = 200;

	if(fstat(fd, &st)) {
		sg_log(SG_LOG_ERROR, "cannot stat %s: %s", rel, strerror(errno));
		close(fd);
		serve_reply_error(r, 500, "cannot read the file");
		return;
	}
	size = (uint64_t)st.st_size;
	len = size;
	if(range && (!if_range || !strcmp(if_range, etag))) {
		switch(serve_parse_range(range, size, &off, &len)) {
		case 1:
			code = 206;
			snprintf(cr, sizeof(cr), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, off,
			         off + len - 1, size);
			evhttp_add_header(out, "Content-Range", cr);
			break;
		case -1:
			close(fd);
			snprintf(cr, sizeof(cr), "bytes */%" PRIu64, size);
			evhttp_add_header(out, "Content-Range", cr);
			serve_reply_error(r, 416, "the requested range is not inside the file");
			return;
		default:
			break;
		}
	}
	serve_disposition(rel, disp, sizeof(disp));
	evhttp_add_header(out, "Content-Type", ctype);
	evhttp_add_header(out, "Content-Disposition", disp);
	evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(out, "Accept-Ranges", "bytes");
	evhttp_add_header(out, "ETag", etag);
	serve_header_u64(out, "Content-Length", len);
	r->status = code;
	if(r->head || len == 0) {
		close(fd);
		return;
	}
	r->fd = fd;
	r->off = off;
	r->len = len;
}

/* Sends the reply r holds and logs the request (on the request's loop). */
static void serve_send(struct serve_req *r)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);
	struct evhttp_connection *evcon = evhttp_request_get_connection(r->req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	struct evbuffer_file_segment *seg = NULL;
	struct timespec t;

	for(struct evkeyval *kv = r->out.tqh_first; kv; kv = kv->next.tqe_next)
		evhttp_add_header(out, kv->key, kv->value);
	if(r->error500) {
		r->status = 500;
		evhttp_send_error(r->req, 500, NULL);
	} else if(r->fd < 0) {
		evhttp_send_reply(r->req, r->status, NULL, r->body);
	} else if(!bev || !(seg = evbuffer_file_segment_new(r->fd, (ev_off_t)r->off,
	                                                     (ev_off_t)r->len,
	                                                     EVBUF_FS_CLOSE_ON_FREE))) {
		if(bev)
			sg_log(SG_LOG_ERROR, "cannot send %s: no file segment", r->uri);
		else
			snprintf(r->what, sizeof(r->what), "the client went away");
		close(r->fd);
		r->status = 500;
		evhttp_send_error(r->req, 500, NULL);
	} else {
		/* Headers first (no chunking: Content-Length is set), then the
		 * segment on the connection's own output buffer, which drains to
		 * the socket and so may use sendfile(). */
		evhttp_send_reply_start(r->req, r->status, NULL);
		if(evbuffer_add_file_segment(bufferevent_get_output(bev), seg, 0, (ev_off_t)r->len))
			sg_log(SG_LOG_ERROR, "cannot queue %s for sending", r->uri);
		else
			r->bytes = r->len;
		evbuffer_file_segment_free(seg);
		evhttp_send_reply_end(r->req);
	}
	r->fd = -1;
	clock_gettime(CLOCK_MONOTONIC, &t);
	sg_log(r->status >= 500 ? SG_LOG_WARN : SG_LOG_INFO,
	       "%s %s from %s: %d, %" PRIu64 " bytes%s%s, %.1f ms", r->method, r->uri, r->peer,
	       r->status, r->bytes, r->what[0] ? ", " : "", r->what,
	       (double)(t.tv_sec - r->t0.tv_sec) * 1e3 + (double)(t.tv_nsec - r->t0.tv_nsec) / 1e6);
}

/* ---------------------------------------------------------------- paths */

static int serve_hexval(char ch)
{
	if(ch >= '0' && ch <= '9')
		return ch - '0';
	if(ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if(ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/*
 * Decodes NAME (the part of the path after /download/) into rel, checking
 * each segment.  *dir is set when NAME is empty or ends with '/'.  Returns
 * 0, or the HTTP status to refuse with; *why says why, for the client.
 */
static int serve_decode_path(const char *enc, char *rel, size_t rellen, int *dir,
                             const char **why)
{
	size_t o = 0, seg = 0;

	*dir = 0;
	*why = "bad path";
	for(const char *p = enc; *p; p++) {
		int c = (unsigned char)*p;
		if(c == '%') {
			int hi = serve_hexval(p[1]), lo = hi >= 0 ? serve_hexval(p[2]) : -1;
			if(hi < 0 || lo < 0) {
				*why = "bad percent-encoding in the path";
				return 400;
			}
			c = hi << 4 | lo;
			p += 2;
			if(c == '/') {
				*why = "an encoded '/' is not allowed in the path";
				return 400;
			}
		}
		if(c == 0 || c < 0x20 || c == 0x7f) {
			*why = "control characters are not allowed in the path";
			return 400;
		}
		if(o + 1 >= rellen) {
			*why = "path too long";
			return 414;
		}
		rel[o++] = (char)c;
	}
	rel[o] = '\0';
	if(o == 0) {
		*dir = 1;
		return 0;
	}
	if(rel[o - 1] == '/') {
		*dir = 1;
		rel[--o] = '\0';
	}
	/* Every segment: not empty, not "." or "..", not hidden, <= NAME_MAX. */
	for(size_t i = 0; i <= o; i++) {
		if(i < o && rel[i] != '/')
			continue;
		size_t n = i - seg;
		const char *s = rel + seg;
		if(n == 0) {
			*why = "empty path segment";
			return 400;
		}
		if((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) {
			*why = "'.' and '..' are not allowed in the path";
			return 400;
		}
		if(s[0] == '.' || n > NAME_MAX) {
			*why = "not found";
			return 404;
		}
		seg = i + 1;
	}
	return 0;
}

/* Opens rel ("" for the root) beneath the root.  Returns a descriptor,
 * or -1 with errno. */
static int serve_open(const struct serve *s, const char *rel)
{
	const int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
	char buf[SERVE_PATH_MAX], *seg, *slash;
	int dfd, fd, err;

	if(!*rel)
		rel = ".";
#ifdef SERVE_HAVE_OPENAT2
	if(s->use_openat2) {
		struct open_how how = { .flags = (uint64_t)flags,
		                        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
		return (int)syscall(SYS_openat2, s->root_fd, rel, &how, sizeof(how));
	}
#endif
	/* Component by component, following no symbolic link at all.  rel
	 * has no ".", ".." or empty segment (serve_decode_path). */
	if(strlen(rel) >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(buf, rel);
	dfd = s->root_fd;
	for(seg = buf; (slash = strchr(seg, '/')) != NULL; seg = slash + 1) {
		*slash = '\0';
		fd = openat(dfd, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		err = errno;
		if(dfd != s->root_fd)
			close(dfd);
		if(fd < 0) {
			errno = err;
			return -1;
		}
		dfd = fd;
	}
	fd = openat(dfd, seg, flags | O_NOFOLLOW);
	err = errno;
	if(dfd != s->root_fd)
		close(dfd);
	errno = err;
	return fd;
}

/* ---------------------------------------------------------------- listing */

static void serve_listing(struct serve_req *r, int dirfd, const char *rel)
{
	json_t *files = json_array(), *dirs = json_array(), *j = NULL;
	struct dirent *de;
	size_t n = 0;
	int fd = dup(dirfd), truncated = 0;
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

	if(!d || !files || !dirs) {
		if(!d && fd >= 0)
			close(fd);
		sg_log(SG_LOG_ERROR, "cannot list /%s: %s", rel, strerror(errno));
		serve_reply_error(r, 500, "cannot list the directory");
		goto out;
	}
	while((de = readdir(d)) != NULL) {
		struct stat st;
		json_t *name;

		if(de->d_name[0] == '.')
			continue;
		if(fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW))
			continue;
		if(!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
			continue;
		if(n++ == SERVE_LIST_MAX) {
			truncated = 1;
			break;
		}
		name = json_string(de->d_name); /* NULL unless valid UTF-8: skipped */
		if(!name)
			continue;
		if(S_ISDIR(st.st_mode))
			json_array_append_new(dirs, name);
		else
			json_array_append_new(files, json_pack("{s:o, s:I}", "name", name, "size",
			                                       (json_int_t)st.st_size));
	}
	j = json_pack("{s:s, s:O, s:O, s:b}", "path", rel, "files", files, "dirs", dirs,
	              "truncated", truncated);
	serve_what(r, "listing");
	serve_reply_json(r, 200, j);
out:
	if(d)
		closedir(d);
	json_decref(files);
	json_decref(dirs);
	json_decref(j);
}

/* ---------------------------------------------------------------- signing */

static int serve_same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* SHA-256 of a domain tag, prefix (may be NULL) and the file's identity. */
static void serve_file_key(const char *tag, const unsigned char *prefix,
                           const struct stat *st, unsigned char key[SERVE_KEY_LEN])
{
	uint64_t v[7] = {
		(uint64_t)st->st_dev, (uint64_t)st->st_ino, (uint64_t)st->st_size,
		(uint64_t)st->st_mtim.tv_sec, (uint64_t)st->st_mtim.tv_nsec,
		(uint64_t)st->st_ctim.tv_sec, (uint64_t)st->st_ctim.tv_nsec,
	};
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int len = 0;

	if(!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
	   !EVP_DigestUpdate(ctx, tag, strlen(tag) + 1) ||
	   (prefix && !EVP_DigestUpdate(ctx, prefix, 32)) ||
	   !EVP_DigestUpdate(ctx, v, sizeof(v)) || !EVP_DigestFinal_ex(ctx, key, &len)) {
		/* Cannot happen with the default provider; never reuse a key. */
		memset(key, 0, SERVE_KEY_LEN);
		memcpy(key, &st->st_ino, sizeof(st->st_ino));
	}
	EVP_MD_CTX_free(ctx);
}

static void serve_etag(const unsigned char key[SERVE_KEY_LEN], char out[40])
{
	char hex[2 * SERVE_KEY_LEN + 1];

	sg_hex(key, SERVE_KEY_LEN, hex);
	snprintf(out, 40, "\"%.32s\"", hex);
}

/* Waits while st's last change is less than SERVE_RACY_NS old.  Returns
 * 1 if it waited (the caller must look at the file again). */
static int serve_wait_racy(const struct stat *st)
{
	struct timespec now, ts;
	long long age, wait;

	clock_gettime(CLOCK_REALTIME, &now);
	age = (long long)(now.tv_sec - st->st_ctim.tv_sec) * 1000000000LL +
	      (now.tv_nsec - st->st_ctim.tv_nsec);
	if(age >= SERVE_RACY_NS)
		return 0;
	wait = age < 0 ? SERVE_RACY_NS : SERVE_RACY_NS - age; /* clock skew: bounded */
	ts.tv_sec = (time_t)(wait / 1000000000LL);
	ts.tv_nsec = (long)(wait % 1000000000LL);
	while(nanosleep(&ts, &ts) && errno == EINTR)
		;
	return 1;
}

/* Adds a timestamp from the [serve] timestamp_urls TSAs to *sig.  With
 * timestamp_policy = skip a TSA failure leaves the signature as it is, and
 * the copy is cached so (docs/CONFIG.md). */
static sg_status serve_timestamp(struct serve_signing *g, const char *rel, unsigned char **sig,
                                 size_t *siglen)
{
	unsigned char *ts = NULL;
	size_t tslen = 0;
	sg_status rc;

	rc = sg_timestamp_add(*sig, *siglen, &g->ts_opts, &ts, &tslen);
	if(!rc) {
		sg_free(*sig);
		*sig = ts;
		*siglen = tslen;
		return SG_OK;
	}
	if(g->cfg->srv_ts.policy == SG_TIMESTAMP_SKIP &&
	   (rc == SG_ERR_NETWORK || rc == SG_ERR_REMOTE)) {
		sg_log(SG_LOG_WARN, "%s is signed WITHOUT a timestamp (timestamp_policy = skip): %s",
		       rel, sg_last_error());
		sg_clear_error();
		return SG_OK;
	}
	return rc;
}

/* Is the signing setup g failing for want of an answer?  Then fail at once
 * (SG_ERR_NETWORK) for SERVE_BREAKER_SECS after the failure: with a proxy
 * or service that accepts connections but never answers, every download
 * would otherwise hold a worker for the whole timeout (and retries), and a
 * burst of them would hold the server for minutes.  Only a slow failure
 * (SERVE_BREAKER_SLOW_MS or more) trips it: a refused connection fails fast
 * anyway, and the next download may find the service back.  The first
 * download after that time tries again; a change of settings starts
 * afresh. */
static sg_status serve_breaker(struct serve *s, const struct serve_signing *g)
{
	time_t now = time(NULL), until;
	char why[300];

	pthread_mutex_lock(&s->lock);
	until = s->breaker_g == g ? s->breaker_until : 0;
	snprintf(why, sizeof(why), "%s", s->breaker_why);
	pthread_mutex_unlock(&s->lock);
	if(now >= until)
		return SG_OK;
	return sg_fail(SG_ERR_NETWORK, "not trying again for %lld s: a signing failed "
	               "%lld s ago for want of an answer (%s)", (long long)(until - now),
	               (long long)(SERVE_BREAKER_SECS - (until - now)), why);
}

static void serve_breaker_note(struct serve *s, const struct serve_signing *g, sg_status rc,
                               double ms)
{
	pthread_mutex_lock(&s->lock);
	if(rc == SG_ERR_NETWORK && ms >= SERVE_BREAKER_SLOW_MS) {
		s->breaker_g = g;
		s->breaker_until = time(NULL) + SERVE_BREAKER_SECS;
		snprintf(s->breaker_why, sizeof(s->breaker_why), "%s", sg_last_error());
	} else if(!rc && s->breaker_g == g) {
		s->breaker_until = 0;
	}
	pthread_mutex_unlock(&s->lock);
}

/* The signing pass into tmp_fd: digest with a tee, signature, finish. */
static sg_status serve_make_copy(struct serve_signing *g, sg_file *f, int tmp_fd,
                                 const char *rel)
{
	unsigned char digest[SG_MAX_MD], *sig = NULL;
	size_t dlen = 0, siglen = 0;
	sg_md md = g->cfg->md;
	sg_status rc;

	rc = sg_file_digest(f, md, tmp_fd, digest, &dlen);
	if(rc)
		return rc;
	if(g->remote)
		rc = sg_remote_sign(g->remote, sg_file_format(f), md, digest, dlen, rel, &g->so,
		                    &sig, &siglen);
	else
		rc = sg_authenticode_sign(g->signer, sg_file_format(f), md, digest, dlen, &g->so,
		                          &sig, &siglen);
	if(!rc && g->ts_opts.nurls)
		rc = serve_timestamp(g, rel, &sig, &siglen);
	if(!rc)
		rc = sg_file_write_fd(f, sig, siglen, tmp_fd, 1);
	sg_free(sig);
	return rc;
}

/* The file cannot be delivered signed: refuse, or deliver the original. */
static void serve_sign_failed(struct serve *s, struct serve_signing *g, struct serve_req *r,
                              const char *rel, int fd, const struct stat *st, sg_status rc)
{
	unsigned char key[SERVE_KEY_LEN];
	char etag[40], msg[300];
	int dupfd;

	serve_note(s, rel, 0, 0, "%s", sg_last_error());

	if(rc == SG_ERR_MALFORMED || rc == SG_ERR_TOO_LARGE) {
		sg_log(SG_LOG_ERROR, "refused %s: it cannot be signed: %s", rel, sg_last_error());
		serve_what(r, "refused: cannot be signed (%s)", sg_strerror(rc));
		snprintf(msg, sizeof(msg), "%s cannot be signed (%s) and is not served", rel,
		         rc == SG_ERR_MALFORMED ? "it is a corrupt PE file" : "it is too large");
		serve_reply_error(r, 500, msg);
		return;
	}
	if(g->cfg->on_fail == SG_ON_FAIL_SERVE_UNSIGNED && (dupfd = dup(fd)) >= 0) {
		sg_log(SG_LOG_WARN, "serving %s UNSIGNED: signing failed: %s", rel, sg_last_error());
		serve_what(r, "UNSIGNED: signing failed (%s)", sg_strerror(rc));
		serve_file_key("original", NULL, st, key);
		serve_etag(key, etag);
		serve_reply_fd(r, dupfd, SERVE_PE_TYPE, rel, etag);
		return;
	}
	sg_log(SG_LOG_ERROR, "refused %s: signing failed: %s", rel, sg_last_error());
	serve_what(r, "refused: signing failed (%s)", sg_strerror(rc));
	evhttp_add_header(&r->out, "Retry-After", "30");
	snprintf(msg, sizeof(msg), "%s cannot be signed right now; try again later", rel);
	serve_reply_error(r, 503, msg);
}

/* A regular file: signed copy, original, or refusal. */
static void serve_file(struct serve *s, struct serve_req *r, const char *rel, int fd)
{
	unsigned char key[SERVE_KEY_LEN];
	struct timespec t1, t2;
	struct stat st, st2;
	serve_claim *claim;
	double ms;
	char etag[40];
	struct serve_signing *g = serve_signing_get(s);
	sg_file *f = NULL;
	sg_status rc;
	int cfd, again, dupfd;

	for(int attempt = 0; attempt < 2; attempt++) {
		sg_file_close(f);
		f = NULL;
		if(fstat(fd, &st)) {
			sg_log(SG_LOG_ERROR, "cannot stat %s: %s", rel, strerror(errno));
			serve_reply_error(r, 500, "cannot read the file");
			goto out;
		}
		rc = sg_file_open_fd(fd, rel, &f);
		if(rc == SG_ERR_UNSUPPORTED) {
			sg_clear_error();
			if((dupfd = dup(fd)) < 0) {
				sg_log(SG_LOG_ERROR, "cannot send %s: %s", rel, strerror(errno));
				serve_reply_error(r, 500, "cannot read the file");
				goto out;
			}
			serve_what(r, "as is: not a signable format");
			serve_file_key("original", NULL, &st, key);
			serve_etag(key, etag);
			serve_reply_fd(r, dupfd, "application/octet-stream", rel, etag);
			goto out;
		}
		if(rc == SG_ERR_MALFORMED || rc == SG_ERR_TOO_LARGE) {
			serve_sign_failed(s, g, r, rel, fd, &st, rc);
			goto out;
		}
		if(rc) {
			sg_log(SG_LOG_ERROR, "cannot open %s: %s", rel, sg_last_error());
			serve_reply_error(r, 500, "cannot read the file");
			goto out;
		}
		/* A signable file: the rest (waiting for another request's
		 * signing, or signing) may take long, so not on an event loop. */
		if(!r->on_pool) {
			r->defer = 1;
			goto out;
		}
		if(serve_wait_racy(&st)) {
			if(fstat(fd, &st2) || !serve_same_file(&st, &st2))
				continue;
		}
		serve_file_key("signed", g->signer_id, &st, key);
		serve_etag(key, etag);
		rc = serve_cache_get(s->cache, key, rel, &cfd, &claim, &again);
		if(again)
			continue; /* the producer saw the file change: look again */
		if(rc) {
			/* Another request's attempt failed just now: share its answer
			 * rather than hammer a failing signer. */
			serve_sign_failed(s, g, r, rel, fd, &st, rc);
			goto out;
		}
		if(cfd >= 0) {
			serve_what(r, "signed: cached");
			serve_reply_fd(r, cfd, SERVE_PE_TYPE, rel, etag);
			goto out;
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		rc = serve_breaker(s, g);
		if(!rc) {
			rc = serve_make_copy(g, f, serve_claim_fd(claim), rel);
			clock_gettime(CLOCK_MONOTONIC, &t2);
			serve_breaker_note(s, g, rc, (double)(t2.tv_sec - t1.tv_sec) * 1e3 +
			                   (double)(t2.tv_nsec - t1.tv_nsec) / 1e6);
		}
		if(fstat(fd, &st2) || !serve_same_file(&st, &st2)) {
			sg_fail(SG_ERR_IO, "%s changed while it was being signed", rel);
			sg_log(SG_LOG_INFO, "%s", sg_last_error());
			serve_cache_fail(s->cache, claim, SG_ERR_IO, 1);
			continue;
		}
		if(rc) {
			serve_cache_fail(s->cache, claim, rc, 0);
			serve_sign_failed(s, g, r, rel, fd, &st, rc);
			goto out;
		}
		rc = serve_cache_commit(s->cache, claim, &cfd);
		if(rc) {
			serve_sign_failed(s, g, r, rel, fd, &st, rc);
			goto out;
		}
		clock_gettime(CLOCK_MONOTONIC, &t2);
		ms = (double)(t2.tv_sec - t1.tv_sec) * 1e3 + (double)(t2.tv_nsec - t1.tv_nsec) / 1e6;
		sg_log(SG_LOG_INFO, "signed %s (%s, %" PRIu64 " bytes) in %.1f ms", rel,
		       sg_md_name(g->cfg->md), (uint64_t)st.st_size, ms);
		serve_note(s, rel, 1, ms, "signed (%s, %" PRIu64 " bytes)%s", sg_md_name(g->cfg->md),
		           (uint64_t)st.st_size, g->ts_opts.nurls ? ", timestamped" : "");
		serve_what(r, "signed: now");
		serve_reply_fd(r, cfd, SERVE_PE_TYPE, rel, etag);
		goto out;
	}
	/* Changed under our feet twice. */
	sg_log(SG_LOG_WARN, "refused %s: it keeps changing while being signed", rel);
	serve_what(r, "refused: file changing");
	evhttp_add_header(&r->out, "Retry-After", "5");
	serve_reply_error(r, 503, "the file is being changed; try again later");
out:
	sg_file_close(f);
	serve_signing_put(g);
}

/* ---------------------------------------------------------------- handler */

static void serve_download(struct serve *s, struct serve_req *r, const char *enc,
                           const char *path)
{
	char rel[SERVE_PATH_MAX];
	const char *why;
	struct stat st;
	int dir, code, fd;

	code = serve_decode_path(enc, rel, sizeof(rel), &dir, &why);
	if(code) {
		serve_what(r, "refused: %s", why);
		serve_reply_error(r, code, why);
		return;
	}
	fd = serve_open(s, rel);
	if(fd < 0) {
		int err = errno;
		switch(err) {
		case EXDEV: case ELOOP:
			sg_log(SG_LOG_WARN, "refused %s: a symbolic link leads out of the root "
			       "(or is not followed)", rel);
			/* fall through */
		case ENOENT: case ENOTDIR: case ENAMETOOLONG:
			serve_what(r, "not found");
			serve_reply_error(r, 404, "not found");
			return;
		case EACCES: case EPERM:
			serve_what(r, "refused: permission denied");
			serve_reply_error(r, 403, "forbidden");
			return;
		default:
			sg_log(SG_LOG_ERROR, "cannot open %s: %s", rel, strerror(err));
			serve_reply_error(r, 500, "cannot open the file");
			return;
		}
	}
	if(fstat(fd, &st)) {
		sg_log(SG_LOG_ERROR, "cannot stat %s: %s", rel, strerror(errno));
		serve_reply_error(r, 500, "cannot read the file");
	} else if(S_ISDIR(st.st_mode)) {
		if(dir) {
			serve_listing(r, fd, rel);
		} else {
			/* /download/sub -> /download/sub/ */
			char *loc = malloc(strlen(path) + 2);
			if(loc) {
				sprintf(loc, "%s/", path);
				evhttp_add_header(&r->out, "Location", loc);
				free(loc);
			}
			serve_what(r, "redirect to directory");
			serve_reply_error(r, 301, "this is a directory: add a '/'");
		}
	} else if(!S_ISREG(st.st_mode) || dir) {
		serve_what(r, "not found: not a regular file");
		serve_reply_error(r, 404, "not found");
	} else {
		serve_file(s, r, rel, fd);
	}
	close(fd);
}

/* What the log line and the signing thread need from the request, taken
 * on its loop before anything else. */
static struct serve_req *serve_req_new(struct serve *s, struct evhttp_request *req,
                                       const char *method)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	const char *range = evhttp_find_header(in, "Range");
	const char *if_range = evhttp_find_header(in, "If-Range");
	struct serve_req *r = calloc(1, sizeof(*r));
	char *addr = NULL;
	ev_uint16_t port = 0;

	if(!r)
		return NULL;
	r->range = range ? strdup(range) : NULL;
	r->if_range = if_range ? strdup(if_range) : NULL;
	if((range && !r->range) || (if_range && !r->if_range)) {
		free(r->range);
		free(r->if_range);
		free(r);
		return NULL;
	}
	r->req = req;
	r->s = s;
	r->method = method;
	r->fd = -1;
	TAILQ_INIT(&r->out);
	clock_gettime(CLOCK_MONOTONIC, &r->t0);
	r->head = evhttp_request_get_command(req) == EVHTTP_REQ_HEAD;
	if(evcon) {
		evhttp_connection_get_peer(evcon, &addr, &port);
		r->base = evhttp_connection_get_base(evcon);
	}
	snprintf(r->peer, sizeof(r->peer), "%s:%u", addr ? addr : "?", (unsigned)port);
	sg_log_quote(evhttp_request_get_uri(req), r->uri, sizeof(r->uri));
	return r;
}

static void serve_req_free(struct serve_req *r)
{
	if(!r)
		return;
	if(r->fd >= 0)
		close(r->fd);
	if(r->body)
		evbuffer_free(r->body);
	evhttp_clear_headers(&r->out);
	free(r->enc);
	free(r->path);
	free(r->range);
	free(r->if_range);
	free(r);
}

/* ---------------------------------------------------------------- signing threads */

/* On the request's loop: the signing thread is done with r. */
static void serve_finish_cb(evutil_socket_t fd, short what, void *arg)
{
	struct serve_req *r = arg;

	serve_send(r);
	serve_req_free(r);
}

static void *serve_pool_thread(void *arg)
{
	struct serve *s = arg;
	struct serve_req *r;

	for(;;) {
		pthread_mutex_lock(&s->qlock);
		while(!s->qhead && !s->stopping)
			pthread_cond_wait(&s->qcond, &s->qlock);
		if(s->stopping) {
			pthread_mutex_unlock(&s->qlock);
			return NULL;
		}
		r = s->qhead;
		s->qhead = r->next;
		if(!s->qhead)
			s->qtail = NULL;
		pthread_mutex_unlock(&s->qlock);
		r->on_pool = 1;
		serve_download(s, r, r->enc, r->path);
		/* event_base_once is safe from any thread (evthread_use_pthreads):
		 * the loop wakes and sends the reply. */
		if(event_base_once(r->base, -1, EV_TIMEOUT, serve_finish_cb, r, NULL)) {
			sg_log(SG_LOG_ERROR, "cannot hand %s back to its event loop", r->uri);
			r->req = NULL;
			serve_req_free(r);
		}
	}
}

static sg_status serve_pool_start(struct serve *s, int n)
{
	pthread_mutex_init(&s->qlock, NULL);
	pthread_cond_init(&s->qcond, NULL);
	s->pool_ready = 1;
	if(!(s->pool = calloc((size_t)n, sizeof(*s->pool))))
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	for(int i = 0; i < n; i++) {
		if(pthread_create(&s->pool[i], NULL, serve_pool_thread, s))
			return sg_fail(SG_ERR_IO, "cannot start signing thread %d", i);
		s->npool = i + 1;
	}
	return SG_OK;
}

/* Lets the signing threads finish what they are doing; what is still
 * queued is dropped (its connections go with the HTTP server). */
static void serve_pool_stop(struct serve *s)
{
	struct serve_req *r, *next;

	if(!s->pool_ready)
		return;
	pthread_mutex_lock(&s->qlock);
	s->stopping = 1;
	pthread_cond_broadcast(&s->qcond);
	pthread_mutex_unlock(&s->qlock);
	for(int i = 0; i < s->npool; i++)
		pthread_join(s->pool[i], NULL);
	for(r = s->qhead; r; r = next) {
		next = r->next;
		serve_req_free(r);
	}
	s->qhead = s->qtail = NULL;
	free(s->pool);
	s->pool = NULL;
	pthread_mutex_destroy(&s->qlock);
	pthread_cond_destroy(&s->qcond);
	s->pool_ready = 0;
}

/* Queues a download for a signing thread, with copies of what it needs. */
static int serve_pool_push(struct serve *s, struct serve_req *r, const char *enc,
                           const char *path)
{
	r->enc = strdup(enc);
	r->path = strdup(path);
	if(!r->base || !r->enc || !r->path)
		return -1;
	pthread_mutex_lock(&s->qlock);
	if(s->qtail)
		s->qtail->next = r;
	else
		s->qhead = r;
	s->qtail = r;
	pthread_cond_signal(&s->qcond);
	pthread_mutex_unlock(&s->qlock);
	return 0;
}

static void serve_handler(struct evhttp_request *req, void *arg)
{
	struct serve *s = arg;
	struct serve_req *r;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const char *method = cmd == EVHTTP_REQ_GET ? "GET" : cmd == EVHTTP_REQ_HEAD ? "HEAD" :
	                     cmd == EVHTTP_REQ_POST ? "POST" : "other";

	if(path && s->admin && sg_admin_path(path)) {
		sg_admin_handle(s->admin, req);
		return;
	}
	if(!(r = serve_req_new(s, req, method))) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	if(!path || path[0] != '/') {
		serve_reply_error(r, 400, "bad request path");
	} else if(cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(&r->out, "Allow", "GET, HEAD");
		serve_reply_error(r, 405, "only GET and HEAD are allowed");
	} else if(!strcmp(path, "/health")) {
		json_t *j = json_pack("{s:s}", "status", "ok");
		serve_reply_json(r, 200, j);
		json_decref(j);
	} else if(!strcmp(path, "/") || !strcmp(path, "/download") ||
	          !strncmp(path, "/download/", 10)) {
		int root = path[1] == '\0' || !strcmp(path, "/download");
		/* Here what is quick (paths, listings, files that are not signed);
		 * a signable file goes to a signing thread. */
		serve_download(s, r, root ? "" : path + 10, root ? "/download" : path);
		if(r->defer) {
			if(serve_pool_push(s, r, root ? "" : path + 10, root ? "/download" : path) == 0)
				return;   /* a signing thread answers */
			serve_reply_error(r, 500, "out of memory");
		}
	} else {
		serve_reply_error(r, 404, "not found: files are under /download/");
	}
	serve_send(r);
	serve_req_free(r);
}

/* The admin page on a listener of its own (admin_listen). */
static void serve_admin_handler(struct evhttp_request *req, void *arg)
{
	struct serve *s = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;

	if(path && sg_admin_path(path))
		sg_admin_handle(s->admin, req);
	else
		sg_http_error(req, 404, "not found: the admin page is at /conf");
}

/* ---------------------------------------------------------------- start */

static const char serve_help[] =
"Usage: signgate serve --config FILE [--listen HOST:PORT]\n"
"\n"
"Runs the download server: GET /download/NAME delivers NAME from the\n"
"[serve] root directory.  A PE file (.exe, .dll, .sys, .efi) is delivered\n"
"signed: the first download of each version signs it (through the signing\n"
"service, or with a local key) and keeps the signed copy in cache_dir;\n"
"later downloads get that copy.  Other files are delivered as they are.\n"
"GET /download/ lists the root (JSON); GET /health answers {\"status\":\"ok\"}.\n"
"Plain HTTP: put a TLS proxy in front of it for the Internet.\n"
"\n"
"  --config FILE       the INI configuration ([serve] and [log]; see\n"
"                      docs/CONFIG.md)\n"
"  --listen HOST:PORT  overrides [serve] listen (default " SERVE_DEFAULT_LISTEN ");\n"
"                      port 0 picks a free port\n"
"  --check             checks the configuration and exits: opens the signing\n"
"                      key (PIN, test signature) or asks the signing service\n"
"                      (GET /v1/keys), and says what it would sign with\n"
"  -h, --help          this help\n"
"\n"
"Prints \"listening on http://HOST:PORT\" once it accepts connections and runs\n"
"until SIGINT or SIGTERM.  Exit status: 0 after a signal, 1 if the local\n"
"signing key cannot be used (token, PIN, key), 2 for a bad configuration.\n";

static int serve_log_to_file; /* set once the [log] file is open */

/* Prints why the server cannot start (and logs it, if the log is a
 * file); returns exit status 2. */
static int serve_usage_error(const char *fmt, ...) SG_PRINTF(1, 2);
static int serve_usage_error(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "signgate serve: %s\n", msg);
	if(serve_log_to_file)
		sg_log(SG_LOG_ERROR, "cannot start: %s", msg);
	return 2;
}

/* ---------------------------------------------------------------- signing setups */

/* A digest of everything that makes a signature differ besides the file,
 * so a change of key or options never serves an old copy. */
static void serve_signer_id(struct serve_signing *g)
{
	const sg_config *c = g->cfg;
	const char *parts[] = {
		c->method == SG_METHOD_SERVICE ? "service" : "custom", sg_md_name(c->md),
		c->method == SG_METHOD_SERVICE ? c->svc_url : c->custom.uri,
		c->method == SG_METHOD_SERVICE ? c->svc_key : c->custom.cert,
		c->method == SG_METHOD_SERVICE ? "" : c->custom.pfx,
		c->prog_name, c->prog_url,
	};
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	char *pem = NULL;
	unsigned int len;

	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	for(size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		EVP_DigestUpdate(ctx, parts[i] ? parts[i] : "", parts[i] ? strlen(parts[i]) + 1 : 1);
	/* Timestamped copies are other copies. */
	for(size_t i = 0; i < c->srv_ts.nurls; i++)
		EVP_DigestUpdate(ctx, c->srv_ts.urls[i], strlen(c->srv_ts.urls[i]) + 1);
	/* A renewed certificate for the same key makes new copies too. */
	if(g->signer && sg_signer_chain_pem(g->signer, &pem) == SG_OK) {
		EVP_DigestUpdate(ctx, pem, strlen(pem));
		sg_free(pem);
	}
	EVP_DigestFinal_ex(ctx, g->signer_id, &len);
	EVP_MD_CTX_free(ctx);
}

static void serve_signing_free(struct serve_signing *g)
{
	if(!g)
		return;
	sg_remote_free(g->remote);
	sg_signer_free(g->signer);
	sg_config_free(g->cfg);
	free(g);
}

sg_status serve_signing_new(sg_config *c, struct serve_signing **out)
{
	struct serve_signing *g;
	const char *missing = NULL;
	sg_status rc;

	*out = NULL;
	if(c->method == SG_METHOD_SERVICE)
		missing = !c->svc_url ? "service_url (e.g. https://sign.example.com:8443)" :
		          !c->svc_token ? "service_token (file:PATH or env:VAR)" :
		          !c->svc_key ? "service_key (the key name at the service)" : NULL;
	if(missing) {
		rc = sg_fail(SG_ERR_USAGE, "%s: [serve] sign_method = service needs %s", c->path,
		             missing);
		sg_config_free(c);
		return rc;
	}
	if(c->method == SG_METHOD_CUSTOM && (!c->custom.uri == !c->custom.pfx)) {
		rc = sg_fail(SG_ERR_USAGE, c->custom.uri ? "%s: [serve] give custom_key or custom_pfx, "
		             "not both" : "%s: [serve] sign_method = custom needs custom_key (with "
		             "custom_cert) or custom_pfx", c->path);
		sg_config_free(c);
		return rc;
	}
	/* The TSA client reads the proxy password at each request: find a
	 * missing or unprotected file now, not at the first download. */
	if(c->proxy_user && c->proxy_password) {
		char *pw = NULL;
		rc = sg_secret_read(c->proxy_password, &pw);
		sg_secret_free(pw);
		if(rc) {
			rc = sg_fail_prefix(rc, "%s: [serve] proxy_password", c->path);
			sg_config_free(c);
			return rc;
		}
	}
	g = calloc(1, sizeof(*g));
	if(!g) {
		sg_config_free(c);
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	}
	atomic_init(&g->refs, 1);
	g->cfg = c;
	if(c->method == SG_METHOD_SERVICE) {
		sg_remote_opts ro = {
			.url = c->svc_url, .ca_file = c->svc_ca, .token = c->svc_token,
			.key = c->svc_key, .connect_timeout = c->connect_timeout,
			.timeout = c->timeout, .retries = c->retries,
		};
		sg_config_proxy(c, &ro.proxy);
		rc = sg_remote_new(&ro, &g->remote);
	} else if(c->custom.pfx) {
		rc = sg_signer_open_pfx(c->custom.pfx, c->custom.pass, &g->signer);
	} else {
		rc = sg_signer_open(c->custom.uri, c->custom.cert, c->custom.pass, &g->signer);
	}
	if(rc) {
		serve_signing_free(g);
		return rc;
	}
	if(c->srv_ts.nurls) {
		sg_config_timestamp_opts(&c->srv_ts, &g->ts_opts);
		sg_config_proxy(c, &g->ts_opts.proxy);
	}
	g->so.program_name = c->prog_name;
	g->so.url = c->prog_url;
	serve_signer_id(g);
	*out = g;
	return SG_OK;
}

sg_status serve_signing_probe(struct serve_signing *g)
{
	return g->remote ? sg_remote_probe(g->remote) : SG_OK;
}

struct serve_signing *serve_signing_get(struct serve *s)
{
	struct serve_signing *g;

	pthread_mutex_lock(&s->lock);
	g = s->cur;
	atomic_fetch_add(&g->refs, 1);
	pthread_mutex_unlock(&s->lock);
	return g;
}

void serve_signing_put(struct serve_signing *g)
{
	if(g && atomic_fetch_sub(&g->refs, 1) == 1)
		serve_signing_free(g);
}

void serve_signing_swap(struct serve *s, struct serve_signing *g)
{
	struct serve_signing *old;

	pthread_mutex_lock(&s->lock);
	old = s->cur;
	s->cur = g;
	s->breaker_g = NULL;
	s->breaker_until = 0;
	pthread_mutex_unlock(&s->lock);
	serve_signing_put(old);
}

void serve_note(struct serve *s, const char *file, int ok, double ms, const char *fmt, ...)
{
	struct serve_event *e;
	va_list ap;

	pthread_mutex_lock(&s->lock);
	e = &s->events[s->next_event];
	s->next_event = (s->next_event + 1) % SERVE_EVENTS;
	if(s->nevents < SERVE_EVENTS)
		s->nevents++;
	e->when = time(NULL);
	e->ok = ok;
	e->ms = ms;
	snprintf(e->file, sizeof(e->file), "%s", file);
	va_start(ap, fmt);
	vsnprintf(e->what, sizeof(e->what), fmt, ap);
	va_end(ap);
	if(!ok) {
		snprintf(s->last_error, sizeof(s->last_error), "%s: %s", file, e->what);
		s->last_error_at = e->when;
	}
	pthread_mutex_unlock(&s->lock);
}

/* ---------------------------------------------------------------- test signing */

static void serve_put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void serve_put32(unsigned char *p, uint32_t v)
{
	serve_put16(p, v & 0xffff);
	serve_put16(p + 2, v >> 16);
}

/* A 1 KiB PE32 console program (one section, its code a "ret"), enough to
 * go through the whole signing path. */
static void serve_test_pe(unsigned char pe[1024])
{
	unsigned char *o = pe + 0x58, *sec = pe + 0x138;

	memset(pe, 0, 1024);
	pe[0] = 'M';
	pe[1] = 'Z';
	serve_put32(pe + 0x3c, 0x40);
	memcpy(pe + 0x40, "PE\0\0", 4);
	serve_put16(pe + 0x44, 0x14c);          /* i386 */
	serve_put16(pe + 0x46, 1);              /* one section */
	serve_put16(pe + 0x54, 0xe0);           /* optional header size */
	serve_put16(pe + 0x56, 0x0102);         /* executable, 32-bit */
	serve_put16(o, 0x10b);                  /* PE32 */
	serve_put32(o + 4, 0x200);              /* SizeOfCode */
	serve_put32(o + 16, 0x1000);            /* entry point */
	serve_put32(o + 20, 0x1000);            /* BaseOfCode */
	serve_put32(o + 24, 0x1000);            /* BaseOfData */
	serve_put32(o + 28, 0x400000);          /* ImageBase */
	serve_put32(o + 32, 0x1000);            /* SectionAlignment */
	serve_put32(o + 36, 0x200);             /* FileAlignment */
	serve_put16(o + 40, 4);                 /* OS version */
	serve_put16(o + 48, 4);                 /* subsystem version */
	serve_put32(o + 56, 0x2000);            /* SizeOfImage */
	serve_put32(o + 60, 0x200);             /* SizeOfHeaders */
	serve_put16(o + 68, 3);                 /* console */
	serve_put32(o + 72, 0x100000);          /* stack reserve */
	serve_put32(o + 76, 0x1000);            /* stack commit */
	serve_put32(o + 80, 0x100000);          /* heap reserve */
	serve_put32(o + 84, 0x1000);            /* heap commit */
	serve_put32(o + 92, 16);                /* data directories */
	memcpy(sec, ".text", 5);
	serve_put32(sec + 8, 1);                /* VirtualSize */
	serve_put32(sec + 12, 0x1000);          /* VirtualAddress */
	serve_put32(sec + 16, 0x200);           /* SizeOfRawData */
	serve_put32(sec + 20, 0x200);           /* PointerToRawData */
	serve_put32(sec + 36, 0x60000020);      /* code, execute, read */
	pe[0x200] = 0xc3;                       /* ret */
}

sg_status serve_test_sign(struct serve *s, struct serve_signing *g, char *out, size_t outlen)
{
	static const char name[] = "signgate-test.exe";
	unsigned char pe[1024];
	struct timespec t0, t1;
	sg_sig_report rep;
	sg_file *f = NULL;
	int in = -1, dst = -1;
	size_t n = 0;
	sg_status rc;
	double ms;

	serve_test_pe(pe);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	in = memfd_create("signgate-test-in", MFD_CLOEXEC);
	dst = memfd_create("signgate-test-out", MFD_CLOEXEC);
	if(in < 0 || dst < 0 || sg_write_all(in, pe, sizeof(pe)) || lseek(in, 0, SEEK_SET)) {
		rc = sg_fail(SG_ERR_IO, "cannot make the test file: %s", strerror(errno));
		goto out;
	}
	rc = sg_file_open_fd(in, name, &f);
	if(!rc)
		rc = serve_make_copy(g, f, dst, name);
	sg_file_close(f);
	f = NULL;
	if(rc)
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	if(lseek(dst, 0, SEEK_SET) || (rc = sg_file_open_fd(dst, name, &f)))
		goto out;
	memset(&rep, 0, sizeof(rep));
	rc = sg_verify_file(f, NULL, &rep, 1, &n);
	if(n == 0) {
		rc = sg_fail(SG_ERR_VERIFY, "the signed test file carries no signature");
		goto out;
	}
	if(!rep.digest_ok || !rep.signature_ok) {
		rc = sg_fail(SG_ERR_VERIFY, "the signature does not verify: %s", rep.reason);
		goto out;
	}
	rc = SG_OK;
	sg_clear_error();
	snprintf(out, outlen, "signed a test file in %.0f ms by \"%s\" (issued by \"%s\"), %s; "
	         "digest and signature verified%s%s%s", ms, rep.signer, rep.issuer, rep.md,
	         rep.ts_kind == SG_TS_NONE ? "; no timestamp (the signatures stop being valid when "
	         "the certificate expires: set timestamp_urls)" : "; timestamped by \"",
	         rep.ts_kind == SG_TS_NONE ? "" : rep.ts_signer,
	         rep.ts_kind == SG_TS_NONE ? "" : "\"");
	serve_note(s, "(test signing)", 1, ms, "%s", out);
out:
	if(rc) {
		snprintf(out, outlen, "%s", sg_last_error());
		serve_note(s, "(test signing)", 0, 0, "%s", out);
	}
	sg_file_close(f);
	if(in >= 0)
		close(in);
	if(dst >= 0)
		close(dst);
	return rc;
}

/* ---------------------------------------------------------------- start */

/* Is path (a directory, which need not exist yet) inside dir, or dir
 * itself? */
static int serve_inside(const char *path, const char *dir)
{
	char *a = realpath(path, NULL), *b;
	int in = 0;

	if(!a && errno == ENOENT) {
		/* Not made yet: judge by its parent. */
		char *copy = strdup(path), *slash = copy ? strrchr(copy, '/') : NULL;
		if(copy && slash && slash != copy) {
			*slash = '\0';
			a = realpath(copy, NULL);
		} else if(copy && !slash) {
			a = realpath(".", NULL);
		}
		free(copy);
	}
	b = realpath(dir, NULL);
	if(a && b) {
		size_t n = strlen(b);
		in = !strncmp(a, b, n) && (a[n] == '/' || a[n] == '\0' || !strcmp(b, "/"));
	}
	free(a);
	free(b);
	return in;
}

/* What does not change while the server runs: root, cache, log. */
static int serve_boot(struct serve *s, const sg_config *c)
{
	sg_status rc;

	if(!c->srv_root)
		return serve_usage_error("%s: [serve] needs 'root', the directory of files to serve",
		                         c->path);
	if(!c->srv_cache)
		return serve_usage_error("%s: [serve] needs 'cache_dir', a directory for signed "
		                         "copies", c->path);
	s->root_fd = open(c->srv_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if(s->root_fd < 0)
		return serve_usage_error("cannot open root directory %s: %s", c->srv_root,
		                         strerror(errno));
	if(sg_log_open(c->log))
		return serve_usage_error("cannot open log file %s: %s", c->log, strerror(errno));
	serve_log_to_file = c->log && strcmp(c->log, "-");
	if(serve_inside(c->srv_cache, c->srv_root))
		return serve_usage_error("cache_dir %s must not be inside root %s (signed copies "
		                         "would be served as files)", c->srv_cache, c->srv_root);
	rc = serve_cache_open(c->srv_cache, SERVE_CACHE_MAX, &s->cache);
	if(rc)
		return serve_usage_error("%s", sg_last_error());
#ifdef SERVE_HAVE_OPENAT2
	{
		struct open_how how = { .flags = O_RDONLY | O_CLOEXEC | O_DIRECTORY,
		                        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
		int fd = (int)syscall(SYS_openat2, s->root_fd, ".", &how, sizeof(how));
		/* The variable lets the tests exercise the fallback. */
		s->use_openat2 = fd >= 0 && !getenv("SIGNGATE_SERVE_NO_OPENAT2");
		if(fd >= 0)
			close(fd);
	}
#endif
	return 0;
}

/* Logs what a new signing setup will do, and checks the service. */
void serve_signing_announce(const struct serve_signing *g, int probe)
{
	const sg_config *c = g->cfg;

	if(g->remote)
		sg_log(SG_LOG_INFO, "signing with the service %s%s%s, key %s (%s)",
		       sg_remote_url(g->remote), c->proxy_url ? " through the proxy " : "",
		       c->proxy_url ? c->proxy_url : "", sg_remote_key(g->remote), sg_md_name(c->md));
	else
		sg_log(SG_LOG_INFO, "signing with the local key of %s (%s)%s",
		       sg_signer_subject(g->signer), sg_md_name(c->md),
		       c->custom.pfx ? ", from a PKCS#12 file (legacy)" : "");
	if(c->proxy_old_name)
		sg_log(SG_LOG_WARN, "%s: service_proxy and timestamp_proxy are old names: write "
		       "'proxy', which serves every outgoing request", c->path);
	if(c->srv_ts.nurls)
		sg_log(SG_LOG_INFO, "signed copies are timestamped by %s%s; if no TSA answers: %s",
		       c->srv_ts.urls[0], c->srv_ts.nurls > 1 ? " (and fallbacks)" : "",
		       c->srv_ts.policy == SG_TIMESTAMP_SKIP ? "sign without (timestamp_policy = "
		       "skip)" : "on_sign_failure applies (timestamp_policy = fail)");
	if(g->signer && sg_signer_chain_incomplete(g->signer))
		sg_log(SG_LOG_WARN, "custom key: the chain has only the leaf certificate; "
		       "signatures will not verify against the root alone: give the "
		       "intermediates in custom_cert");
	if(g->signer && sg_signer_not_after(g->signer) - (int64_t)time(NULL) < 30 * 86400)
		sg_log(SG_LOG_WARN, "custom key: the certificate of %s expires within 30 days",
		       sg_signer_subject(g->signer));
	/* Find a wrong token, CA or key name now, not at the first download;
	 * the service may just be restarting, so this only warns. */
	if(probe && g->remote) {
		if(sg_remote_probe(g->remote))
			sg_log(SG_LOG_ERROR, "signing service check failed (downloads of PE "
			       "files will fail until this is fixed): %s", sg_last_error());
		else
			sg_log(SG_LOG_INFO, "signing service %s reachable, key %s offered",
			       sg_remote_url(g->remote), sg_remote_key(g->remote));
	}
}

/* --check: the signing setup of c, in this fresh process (the admin page
 * runs it on a new configuration: a PKCS#11 token that the server is
 * logged in to already would not check a new PIN in the server itself). */
static int serve_check(sg_config *c)
{
	struct serve_signing *g = NULL;
	sg_status rc;

	if(!c->srv_root || !c->srv_cache) {
		fprintf(stderr, "signgate serve: %s: [serve] needs 'root' and 'cache_dir'\n", c->path);
		sg_config_free(c);
		return 2;
	}
	rc = serve_signing_new(c, &g);
	if(!rc)
		rc = serve_signing_probe(g);
	if(rc) {
		fprintf(stderr, "signgate serve: %s\n", sg_last_error());
		serve_signing_put(g);
		return rc == SG_ERR_USAGE ? 2 : 1;
	}
	if(g->remote)
		printf("configuration OK: signing with the service %s, key %s\n",
		       sg_remote_url(g->remote), sg_remote_key(g->remote));
	else
		printf("configuration OK: signing with the local key of %s\n",
		       sg_signer_subject(g->signer));
	serve_signing_put(g);
	return 0;
}

int sg_serve_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "check", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct serve s = { .root_fd = -1 };
	int check = 0;
	struct serve_signing *g = NULL;
	const char *cfgpath = NULL, *listen = NULL;
	sg_httpd_opts ho = { 0 };
	sg_httpd *h = NULL, *ah = NULL;
	sg_config *c = NULL;
	char *host = NULL, *listen_copy = NULL, where[300];
	int opt, port, ret, sig, nsign;
	sg_status rc;

	/* Authenticode's OIDs are added to OpenSSL's table before any thread
	 * starts: OpenSSL 3.0 reads that table without a lock. */
	sg_spc_init();

	optind = 1;
	while((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch(opt) {
		case 'c': cfgpath = optarg; break;
		case 'l': listen = optarg; break;
		case 'C': check = 1; break;
		case 'h': fputs(serve_help, stdout); return 0;
		default:
			fprintf(stderr, "Try 'signgate serve --help'.\n");
			return 2;
		}
	}
	if(optind != argc)
		return serve_usage_error("unexpected argument '%s'", argv[optind]);
	if(!cfgpath)
		return serve_usage_error("give --config FILE (try 'signgate serve --help')");
	rc = sg_config_load(cfgpath, &c);
	if(rc)
		return serve_usage_error("%s", sg_last_error());
	if(check)
		return serve_check(c);
	pthread_mutex_init(&s.lock, NULL);
	if(!(s.cfgpath = strdup(cfgpath))) {
		ret = serve_usage_error("out of memory");
		goto out;
	}
	if(!listen)
		listen = c->srv_listen ? c->srv_listen : SERVE_DEFAULT_LISTEN;
	if(!(listen_copy = strdup(listen))) {
		ret = serve_usage_error("out of memory");
		goto out;
	}
	if(sg_parse_hostport(listen_copy, &host, &port)) {
		ret = serve_usage_error("listen: %s", sg_last_error());
		goto out;
	}
	ret = serve_boot(&s, c);
	if(ret)
		goto out;
	rc = sg_admin_new(&s, c, host, &s.admin);
	if(rc) {
		ret = serve_usage_error("%s", sg_last_error());
		goto out;
	}
	nsign = c->srv_threads;
	/* The event loops only move bytes (the signing threads wait on the
	 * service and the token): a few are plenty. */
	ho.threads = nsign < SERVE_LOOPS ? nsign : SERVE_LOOPS;
	/* The signing setup takes c over: from here on, settings that may
	 * change at run time are read from s.cur alone. */
	rc = serve_signing_new(c, &g);
	c = NULL;
	if(rc) {
		ret = serve_usage_error("%s", sg_last_error());
		goto out;
	}
	s.cur = g;
	serve_signing_announce(g, 1);

	sg_httpd_block_signals();
	rc = serve_pool_start(&s, nsign);
	if(rc) {
		ret = serve_usage_error("%s", sg_last_error());
		goto out;
	}
	ho.listen = listen_copy;
	ho.max_body = SG_ADMIN_MAX_BODY;   /* GET and HEAD carry none; the admin page's forms */
	ho.timeout = 60;
	ho.handler = serve_handler;
	ho.arg = &s;
	rc = sg_httpd_start(&ho, &h);
	if(rc) {
		ret = serve_usage_error("%s", sg_last_error());
		goto out;
	}
	port = sg_httpd_port(h);
	snprintf(where, sizeof(where), "http://%s%s%s:%d", strchr(host, ':') ? "[" : "",
	         *host ? host : "0.0.0.0", strchr(host, ':') ? "]" : "", port);
	if(s.admin && sg_admin_listen(s.admin)) {
		sg_httpd_opts ao = { .listen = sg_admin_listen(s.admin), .threads = 2,
		                     .max_body = SG_ADMIN_MAX_BODY, .timeout = 60,
		                     .handler = serve_admin_handler, .arg = &s };
		rc = sg_httpd_start(&ao, &ah);
		if(rc) {
			ret = serve_usage_error("admin_listen: %s", sg_last_error());
			goto out;
		}
	}
	sg_log(SG_LOG_INFO, "serving %s on %s with %d signing threads and %d event loops; cache "
	       "%s (%zu copies); on signing failure: %s; paths resolved with %s",
	       s.cur->cfg->srv_root, where, nsign, ho.threads, s.cur->cfg->srv_cache,
	       serve_cache_count(s.cache),
	       s.cur->cfg->on_fail == SG_ON_FAIL_REFUSE ? "refuse" : "serve unsigned",
	       s.use_openat2 ? "openat2(RESOLVE_BENEATH)" : "O_NOFOLLOW (no symbolic links)");
	if(s.admin)
		sg_admin_announce(s.admin, where, ah ? sg_httpd_port(ah) : 0);
	printf("listening on %s\n", where);
	fflush(stdout);
	sig = sg_httpd_wait_signal();
	sg_log(SG_LOG_INFO, "stopping on signal %d", sig);
	ret = 0;
out:
	/* The signing threads and the admin page's first: they hand replies to
	 * the event loops. */
	serve_pool_stop(&s);
	sg_admin_stop(s.admin);
	if(ah)
		sg_httpd_stop(ah);
	if(h)
		sg_httpd_stop(h);
	sg_admin_free(s.admin);
	serve_signing_put(s.cur);
	serve_cache_free(s.cache);
	if(s.root_fd >= 0)
		close(s.root_fd);
	free(host);
	free(listen_copy);
	free(s.cfgpath);
	sg_config_free(c);
	pthread_mutex_destroy(&s.lock);
	sg_log_close();
	return ret;
}
