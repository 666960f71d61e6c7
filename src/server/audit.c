/*
 * audit.c - the audit log (audit.h): a hash chain of JSON lines.
 *
 * Each line is one record written by jansson with JSON_COMPACT |
 * JSON_SORT_KEYS | JSON_ENSURE_ASCII (no spaces, keys in byte order, only
 * ASCII), then '\n'.  "prev" is the lower-case hex SHA-256 of the exact
 * bytes of the line before, without its newline; the first line's is 64
 * zeros.  "seq" is 1 on the first line and one more on each next.  The
 * checker hashes the bytes as they are in the file and never re-encodes,
 * so the canonical form matters only to someone who rebuilds a line.
 *
 * Not here: what goes into a record (service.c), rotation (a log is one
 * file; a new file starts a new chain).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "../lib/internal.h"
#include "audit.h"

#define AUDIT_DUMP_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)

struct sg_audit {
	pthread_mutex_t lock;
	int fd;
	char *path;
	uint64_t size;         /* bytes of whole records in the file */
	uint64_t seq;          /* of the last record; 0: none */
	char hash[SG_AUDIT_HASH_HEX + 1];
	int dirty;             /* a failed append could not be cut back yet */
};

static void audit_hash(const char *line, size_t len, char out[SG_AUDIT_HASH_HEX + 1])
{
	unsigned char md[32];

	EVP_Digest(line, len, md, NULL, EVP_sha256(), NULL);
	sg_hex(md, sizeof(md), out);
}

static int audit_is_hash(const char *s)
{
	size_t i;

	for(i = 0; s[i]; i++)
		if(!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return i == SG_AUDIT_HASH_HEX;
}

/* Parses one line as a record: an object with an integer seq >= 1 and a
 * prev of 64 hex digits.  0, or -1 with why set. */
static int audit_parse(const char *line, size_t len, int64_t *seq, char prev[SG_AUDIT_HASH_HEX + 1],
                       char *why, size_t whylen)
{
	json_error_t jerr;
	json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr), *v;
	int ret = -1;

	if(!j) {
		snprintf(why, whylen, "not valid JSON (%s, at byte %d)", jerr.text, jerr.position);
		return -1;
	}
	if(!json_is_object(j)) {
		snprintf(why, whylen, "not a JSON object");
		goto out;
	}
	v = json_object_get(j, "seq");
	if(!json_is_integer(v) || json_integer_value(v) < 1) {
		snprintf(why, whylen, "no 'seq' (a whole number from 1)");
		goto out;
	}
	*seq = json_integer_value(v);
	v = json_object_get(j, "prev");
	if(!json_is_string(v) || !audit_is_hash(json_string_value(v))) {
		snprintf(why, whylen, "no 'prev' (64 lower-case hex digits)");
		goto out;
	}
	memcpy(prev, json_string_value(v), SG_AUDIT_HASH_HEX + 1);
	ret = 0;
out:
	json_decref(j);
	return ret;
}

/* ---------------------------------------------------------------- writer */

/* Reads the last line of the open log (size bytes) from its end, at most
 * SG_AUDIT_MAX_LINE + 1 bytes, and sets a->seq and a->hash from it. */
static sg_status audit_read_tail(sg_audit *a, uint64_t size)
{
	size_t n = size > SG_AUDIT_MAX_LINE + 1 ? SG_AUDIT_MAX_LINE + 1 : (size_t)size;
	uint64_t at = size - n;
	char *buf = malloc(n), why[300], perr[200], prev[SG_AUDIT_HASH_HEX + 1];
	size_t end, i;
	int64_t seq;
	ssize_t got;
	sg_status rc = SG_OK;

	if(!buf)
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	got = pread(a->fd, buf, n, (off_t)at);
	if(got < 0 || (size_t)got != n) {
		rc = sg_fail(SG_ERR_IO, "audit log %s: cannot read its last line: %s", a->path,
		             got < 0 ? strerror(errno) : "short read");
		goto out;
	}
	/* The last line runs from after the newline before it to end. */
	end = buf[n - 1] == '\n' ? n - 1 : n;
	for(i = end; i > 0 && buf[i - 1] != '\n'; i--)
		;
	if(i == 0 && at > 0) {
		rc = sg_fail(SG_ERR_MALFORMED, "audit log %s: its last line is longer than %d bytes, "
		             "so no audit record; the service does not start. Check the log with "
		             "'signgate audit verify %s'", a->path, SG_AUDIT_MAX_LINE, a->path);
		goto out;
	}
	if(end == n) {
		snprintf(why, sizeof(why), "is incomplete (no newline at its end: cut off by a crash?)");
	} else if(audit_parse(buf + i, end - i, &seq, prev, perr, sizeof(perr))) {
		snprintf(why, sizeof(why), "is no audit record: %s", perr);
	} else {
		a->seq = (uint64_t)seq;
		audit_hash(buf + i, end - i, a->hash);
		goto out;
	}
	rc = sg_fail(SG_ERR_MALFORMED, "audit log %s: its last line (at byte %llu) %s; the chain "
	             "cannot be continued from it, so the service does not start. Check the log "
	             "with 'signgate audit verify %s'; if only its last line is bad, keep a copy "
	             "of the log, cut that line off with 'truncate -s %llu %s', and start again",
	             a->path, (unsigned long long)(at + i), why, a->path,
	             (unsigned long long)(at + i), a->path);
out:
	free(buf);
	return rc;
}

sg_status sg_audit_open(const char *path, sg_audit **out)
{
	sg_audit *a = calloc(1, sizeof(*a));
	struct stat st;
	sg_status rc;

	*out = NULL;
	if(!a || !(a->path = strdup(path))) {
		free(a);
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	}
	pthread_mutex_init(&a->lock, NULL);
	memcpy(a->hash, SG_AUDIT_GENESIS, sizeof(a->hash));
	a->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0640);
	if(a->fd < 0) {
		rc = sg_fail(SG_ERR_IO, "cannot open audit log %s: %s", path, strerror(errno));
		goto fail;
	}
	if(fstat(a->fd, &st) || !S_ISREG(st.st_mode)) {
		rc = sg_fail(SG_ERR_IO, "audit log %s is not a regular file", path);
		goto fail;
	}
	a->size = (uint64_t)st.st_size;
	if(a->size) {
		rc = audit_read_tail(a, a->size);
		if(rc)
			goto fail;
	}
	*out = a;
	return SG_OK;
fail:
	sg_audit_free(a);
	return rc;
}

void sg_audit_free(sg_audit *a)
{
	if(!a)
		return;
	if(a->fd >= 0)
		close(a->fd);
	pthread_mutex_destroy(&a->lock);
	free(a->path);
	free(a);
}

void sg_audit_last(sg_audit *a, uint64_t *seq, char hash[SG_AUDIT_HASH_HEX + 1])
{
	pthread_mutex_lock(&a->lock);
	*seq = a->seq;
	memcpy(hash, a->hash, SG_AUDIT_HASH_HEX + 1);
	pthread_mutex_unlock(&a->lock);
}

/* Cuts the file back to its last whole record after a failed append. */
static void audit_cut_back(sg_audit *a)
{
	a->dirty = ftruncate(a->fd, (off_t)a->size) != 0;
	if(!a->dirty)
		fsync(a->fd);
}

/* Called with a->lock held. */
static sg_status audit_write(sg_audit *a, json_t *rec, uint64_t *seq)
{
	char ts[32], *text = NULL, *line = NULL;
	time_t now = time(NULL);
	struct tm tm;
	size_t len;
	ssize_t n;
	sg_status rc;

	if(a->dirty) {
		audit_cut_back(a);
		if(a->dirty)
			return sg_fail(SG_ERR_IO, "audit log %s: cannot cut off a failed record: %s",
			               a->path, strerror(errno));
	}
	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if(json_object_set_new(rec, "seq", json_integer((json_int_t)(a->seq + 1))) ||
	   json_object_set_new(rec, "prev", json_string(a->hash)) ||
	   json_object_set_new(rec, "time", json_string(ts)) ||
	   !(text = json_dumps(rec, AUDIT_DUMP_FLAGS)))
		return sg_fail(SG_ERR_NOMEM, "audit log: out of memory");
	len = strlen(text);
	if(len > SG_AUDIT_MAX_LINE) {
		rc = sg_fail(SG_ERR_USAGE, "audit record of %zu bytes is longer than %d", len,
		             SG_AUDIT_MAX_LINE);
		goto out;
	}
	if(!(line = malloc(len + 1))) {
		rc = sg_fail(SG_ERR_NOMEM, "audit log: out of memory");
		goto out;
	}
	memcpy(line, text, len);
	line[len] = '\n';
	/* One write() of the whole line: O_APPEND puts it at the end in one
	 * piece; a short write (disk full) is a failure, never continued. */
	n = write(a->fd, line, len + 1);
	if(n < 0 || (size_t)n != len + 1) {
		rc = sg_fail(SG_ERR_IO, "cannot write audit log %s: %s", a->path,
		             n < 0 ? strerror(errno) : "short write (disk full?)");
		audit_cut_back(a);
		goto out;
	}
	if(fsync(a->fd)) {
		rc = sg_fail(SG_ERR_IO, "cannot sync audit log %s: %s", a->path, strerror(errno));
		audit_cut_back(a);
		goto out;
	}
	a->size += len + 1;
	a->seq++;
	audit_hash(text, len, a->hash);
	if(seq)
		*seq = a->seq;
	rc = SG_OK;
out:
	free(line);
	free(text);
	return rc;
}

sg_status sg_audit_append(sg_audit *a, json_t *rec, uint64_t *seq)
{
	sg_status rc;

	if(seq)
		*seq = 0;
	if(!json_is_object(rec))
		return sg_fail(SG_ERR_NOMEM, "audit log: out of memory");
	pthread_mutex_lock(&a->lock);
	rc = audit_write(a, rec, seq);
	pthread_mutex_unlock(&a->lock);
	return rc;
}

json_t *sg_audit_str(const char *s)
{
	char buf[SG_AUDIT_MAX_FIELD + 1];
	size_t len, i;
	json_t *j;

	if(!s)
		return json_null();
	len = strlen(s);
	if(len <= SG_AUDIT_MAX_FIELD) {
		memcpy(buf, s, len + 1);
	} else {
		len = SG_AUDIT_MAX_FIELD - 3;
		while(len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
			len--;
		memcpy(buf, s, len);
		memcpy(buf + len, "...", 4);
		len += 3;
	}
	j = json_stringn(buf, len);
	if(j)
		return j;
	for(i = 0; i < len; i++)   /* not UTF-8 (a name cut by %.100s): ASCII only */
		if((unsigned char)buf[i] >= 0x80)
			buf[i] = '?';
	return json_stringn(buf, len);
}

/* ---------------------------------------------------------------- checker */

/* Reads the next line into buf (cap SG_AUDIT_MAX_LINE + 1 bytes), without
 * its newline.  1: a line; 0: end of file; -1: read error.  *complete: it
 * ended with a newline; *too_long: it did not fit (the rest is skipped). */
static int audit_getline(FILE *fp, char *buf, size_t *len, int *complete, int *too_long)
{
	int c;

	*len = 0;
	*complete = *too_long = 0;
	while((c = getc_unlocked(fp)) != EOF) {
		if(c == '\n') {
			*complete = 1;
			return 1;
		}
		if(*len < SG_AUDIT_MAX_LINE + 1)
			buf[(*len)++] = (char)c;
		else
			*too_long = 1;
	}
	if(ferror(fp))
		return -1;
	return *len || *too_long ? 1 : 0;
}

static sg_status audit_bad(sg_audit_check *res, uint64_t line, const char *fmt, ...) SG_PRINTF(3, 4);
static sg_status audit_bad(sg_audit_check *res, uint64_t line, const char *fmt, ...)
{
	va_list ap;
	int n;

	res->bad_line = line;
	n = snprintf(res->problem, sizeof(res->problem), "line %llu: ", (unsigned long long)line);
	va_start(ap, fmt);
	vsnprintf(res->problem + n, sizeof(res->problem) - (size_t)n, fmt, ap);
	va_end(ap);
	return sg_fail(SG_ERR_VERIFY, "%s", res->problem);
}

/* Checks line number ln (len bytes) against the record before it: seq
 * and hash in res. */
static sg_status audit_check_line(sg_audit_check *res, uint64_t ln, const char *line, size_t len,
                                  int *unlinked)
{
	char why[200], prev[SG_AUDIT_HASH_HEX + 1];
	int64_t seq;
	uint64_t want = res->last_seq + 1;
	int linked;

	if(len == 0)
		return audit_bad(res, ln, "empty line (a line was changed, or lines were joined or split)");
	if(audit_parse(line, len, &seq, prev, why, sizeof(why)))
		return audit_bad(res, ln, "%s: the line was changed or damaged", why);
	linked = !strcmp(prev, res->last_hash);
	if(ln == 1) {
		if(seq != 1 || !linked)
			return audit_bad(res, 1, "the log does not start at its first record (seq %lld, "
			                 "prev %s the genesis value): lines were removed from the start, "
			                 "or line 1 was changed", (long long)seq, linked ? "is" : "is not");
		return SG_OK;
	}
	if((uint64_t)seq != want && linked)
		return audit_bad(res, ln, "seq is %lld, not %llu, though prev matches line %llu: "
		                 "line %llu was changed", (long long)seq, (unsigned long long)want,
		                 (unsigned long long)(ln - 1), (unsigned long long)ln);
	if((uint64_t)seq > want)
		return audit_bad(res, ln, "seq %lld follows seq %llu: %llu record(s) missing before "
		                 "line %llu (removed, or moved elsewhere)", (long long)seq,
		                 (unsigned long long)res->last_seq,
		                 (unsigned long long)((uint64_t)seq - want), (unsigned long long)ln);
	if((uint64_t)seq < want)
		return audit_bad(res, ln, "seq %lld follows seq %llu: line %llu was inserted or moved "
		                 "here (or lines were swapped)", (long long)seq,
		                 (unsigned long long)res->last_seq, (unsigned long long)ln);
	*unlinked = !linked;
	if(!linked)
		return audit_bad(res, ln, "prev does not match line %llu (line %llu was changed, or a "
		                 "line was removed or inserted before %llu)", (unsigned long long)(ln - 1),
		                 (unsigned long long)(ln - 1), (unsigned long long)ln);
	return SG_OK;
}

sg_status sg_audit_verify(const char *path, sg_audit_check *res)
{
	char *buf = malloc(SG_AUDIT_MAX_LINE + 1);
	size_t len;
	uint64_t ln = 0;
	int complete, too_long, r, unlinked = 0;
	char before[SG_AUDIT_HASH_HEX + 1];   /* last_hash one line earlier */
	sg_status rc = SG_OK;
	struct stat st;
	FILE *fp = NULL;
	int fd;

	memset(res, 0, sizeof(*res));
	memcpy(res->last_hash, SG_AUDIT_GENESIS, sizeof(res->last_hash));
	if(!buf)
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	fd = sg_open_regular(path, &st);
	if(fd < 0) {
		rc = sg_fail_prefix(SG_ERR_IO, "audit log");
		goto out;
	}
	if(!(fp = fdopen(fd, "r"))) {
		close(fd);
		rc = sg_fail(SG_ERR_IO, "cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	while((r = audit_getline(fp, buf, &len, &complete, &too_long)) == 1) {
		ln++;
		if(too_long) {
			rc = audit_bad(res, ln, "longer than %d bytes: not an audit record", SG_AUDIT_MAX_LINE);
			goto out;
		}
		if(!complete) {
			rc = audit_bad(res, ln, "incomplete: no newline at its end (cut off while it was "
			               "written, or the file was truncated)");
			goto out;
		}
		rc = audit_check_line(res, ln, buf, len, &unlinked);
		if(rc && unlinked && res->records > 0) {
			/* Line ln-1 may be the changed one: it is not vouched
			 * for either. */
			res->records--;
			res->last_seq--;
			memcpy(res->last_hash, before, sizeof(before));
		}
		if(rc)
			goto out;
		memcpy(before, res->last_hash, sizeof(before));
		res->records++;
		res->last_seq++;
		audit_hash(buf, len, res->last_hash);
	}
	if(r < 0)
		rc = sg_fail(SG_ERR_IO, "cannot read %s: %s", path, strerror(errno));
out:
	if(fp)
		fclose(fp);
	free(buf);
	return rc;
}
