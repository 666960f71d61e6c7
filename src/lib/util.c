/*
 * util.c - digest algorithm table, hex, secrets, whole-file reads and
 * atomic output files (temp file, fsync, rename).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/obj_mac.h>

#include "internal.h"

static const struct {
	const char *name;
	int nid;
	size_t size;
} md_table[] = {
	[SG_MD_SHA1] = { "sha1", NID_sha1, 20 },
	[SG_MD_SHA256] = { "sha256", NID_sha256, 32 },
	[SG_MD_SHA384] = { "sha384", NID_sha384, 48 },
	[SG_MD_SHA512] = { "sha512", NID_sha512, 64 },
};
#define MD_COUNT (sizeof(md_table) / sizeof(md_table[0]))

sg_status sg_md_from_name(const char *name, sg_md *out)
{
	for(size_t i = 0; name && i < MD_COUNT; i++) {
		if(!strcasecmp(name, md_table[i].name)) {
			*out = (sg_md)i;
			return SG_OK;
		}
	}
	return sg_fail(SG_ERR_USAGE,
	               "unknown digest algorithm '%s' (use sha1, sha256, sha384 or sha512)",
	               name ? name : "");
}

const char *sg_md_name(sg_md md)
{
	return (size_t)md < MD_COUNT ? md_table[md].name : "?";
}

size_t sg_md_size(sg_md md)
{
	return (size_t)md < MD_COUNT ? md_table[md].size : 0;
}

int sg_md_nid(sg_md md)
{
	return (size_t)md < MD_COUNT ? md_table[md].nid : NID_undef;
}

sg_status sg_md_from_nid(int nid, sg_md *out)
{
	for(size_t i = 0; i < MD_COUNT; i++) {
		if(md_table[i].nid == nid) {
			*out = (sg_md)i;
			return SG_OK;
		}
	}
	return sg_fail(SG_ERR_UNSUPPORTED, "unsupported digest algorithm %s",
	               OBJ_nid2sn(nid));
}

const EVP_MD *sg_md_evp(sg_md md)
{
	switch(md) {
	case SG_MD_SHA1: return EVP_sha1();
	case SG_MD_SHA256: return EVP_sha256();
	case SG_MD_SHA384: return EVP_sha384();
	case SG_MD_SHA512: return EVP_sha512();
	}
	return NULL;
}

void sg_hex(const unsigned char *buf, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for(size_t i = 0; i < len; i++) {
		out[2 * i] = digits[buf[i] >> 4];
		out[2 * i + 1] = digits[buf[i] & 15];
	}
	out[2 * len] = '\0';
}

void sg_free(void *p)
{
	free(p);
}

int sg_open_regular(const char *path, struct stat *st)
{
	/* O_NONBLOCK: opening a FIFO must not wait for a writer. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	if(fd < 0) {
		sg_fail(SG_ERR_IO, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if(fstat(fd, st) || !S_ISREG(st->st_mode)) {
		close(fd);
		sg_fail(SG_ERR_IO, "%s is not a regular file", path);
		return -1;
	}
	(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}

sg_status sg_read_file(const char *path, size_t max, unsigned char **buf,
                       size_t *len)
{
	struct stat st;
	unsigned char *p = NULL;
	size_t got = 0;
	ssize_t n;
	int fd;

	*buf = NULL;
	*len = 0;
	fd = sg_open_regular(path, &st);
	if(fd < 0)
		return SG_ERR_IO;
	if((uint64_t)st.st_size > max) {
		close(fd);
		return sg_fail(SG_ERR_TOO_LARGE, "%s is %lld bytes, more than the %zu allowed",
		               path, (long long)st.st_size, max);
	}
	p = malloc((size_t)st.st_size + 1);
	if(!p) {
		close(fd);
		return sg_fail(SG_ERR_NOMEM, "out of memory reading %s", path);
	}
	while(got < (size_t)st.st_size) {
		n = read(fd, p + got, (size_t)st.st_size - got);
		if(n < 0 && errno == EINTR)
			continue;
		if(n <= 0) {
			free(p);
			close(fd);
			return sg_fail(SG_ERR_IO, "cannot read %s: %s", path,
			               n ? strerror(errno) : "file shrank while reading");
		}
		got += (size_t)n;
	}
	close(fd);
	p[got] = '\0';
	*buf = p;
	*len = got;
	return SG_OK;
}

/* ---------------------------------------------------------------- secrets */

#define SECRET_MAX 4096

sg_status sg_secret_read(const char *spec, char **out)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	const char *v;
	sg_status rc;

	*out = NULL;
	if(!spec)
		return sg_fail(SG_ERR_USAGE, "no secret given");
	if(!strncmp(spec, "env:", 4)) {
		v = getenv(spec + 4);
		if(!v)
			return sg_fail(SG_ERR_USAGE, "environment variable %s is not set",
			               spec + 4);
		*out = strdup(v);
		return *out ? SG_OK : sg_fail(SG_ERR_NOMEM, "out of memory");
	}
	if(!strncmp(spec, "pass:", 5)) {
		*out = strdup(spec + 5);
		return *out ? SG_OK : sg_fail(SG_ERR_NOMEM, "out of memory");
	}
	int plain = strncmp(spec, "file:", 5) != 0;
	if(!plain) {
		spec += 5;
		if(!strncmp(spec, "//", 2))
			spec += 2; /* file:///path */
	}
	/* A secret file others can read is no secret: refused, as ssh does
	 * with a private key.  (Pipes and devices, such as <(...), pass.) */
	struct stat st;
	if(stat(spec, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077))
		return sg_fail(SG_ERR_USAGE, "secret file %s is open to group or others (mode %04o); "
		               "run: chmod 600 %s", spec, (unsigned)(st.st_mode & 07777), spec);
	rc = sg_read_file(spec, SECRET_MAX, &buf, &len);
	if(rc && plain)
		return sg_fail(rc, "cannot read the secret from a file named '%s': give "
		               "file:PATH, env:VAR or pass:TEXT", spec);
	if(rc)
		return sg_fail_prefix(rc, "cannot read secret");
	/* The first line is the secret; a trailing newline is not part of it. */
	for(size_t i = 0; i < len; i++) {
		if(buf[i] == '\n' || buf[i] == '\r') {
			OPENSSL_cleanse(buf + i, len - i);
			len = i;
			break;
		}
	}
	buf[len] = '\0';
	*out = (char *)buf;
	return SG_OK;
}

void sg_secret_free(char *s)
{
	if(!s)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

/* ---------------------------------------------------------------- output */

sg_status sg_write_all(int fd, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	while(len) {
		ssize_t n = write(fd, p, len);
		if(n < 0 && errno == EINTR)
			continue;
		if(n < 0)
			return sg_fail(SG_ERR_IO, "write failed: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
	return SG_OK;
}

sg_status sg_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const unsigned char *p = buf;

	while(len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if(n < 0 && errno == EINTR)
			continue;
		if(n < 0)
			return sg_fail(SG_ERR_IO, "write failed: %s", strerror(errno));
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return SG_OK;
}

sg_status sg_outfile_open(sg_outfile *o, const char *path)
{
	size_t n = strlen(path) + 16;
	mode_t mode;
	struct stat st;

	o->fd = -1;
	o->path = o->tmp = NULL;
	/* The rename would replace whatever is there: refuse anything but a
	 * regular file (a device node, a FIFO, a symlink, a directory). */
	if(lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
		return sg_fail(SG_ERR_IO, "%s exists and is not a regular file: "
		               "not replacing it", path);
	/* Keep the mode of a file we replace; a new one gets 0644 (umask()
	 * cannot be read without changing it, which threads would see). */
	mode = lstat(path, &st) == 0 ? (st.st_mode & 07777) : 0644;
	o->path = strdup(path);
	o->tmp = malloc(n);
	if(!o->path || !o->tmp) {
		free(o->path);
		free(o->tmp);
		o->path = o->tmp = NULL;
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	}
	snprintf(o->tmp, n, "%s.tmpXXXXXX", path);
	o->fd = mkstemp(o->tmp);
	if(o->fd < 0) {
		sg_status rc = errno == ENOENT
		    ? sg_fail(SG_ERR_IO, "cannot write %s: its directory does not exist", path)
		    : sg_fail(SG_ERR_IO, "cannot create a temporary file beside %s: %s",
		              path, strerror(errno));
		free(o->path);
		free(o->tmp);
		o->path = o->tmp = NULL;
		return rc;
	}
	(void)fchmod(o->fd, mode);
	return SG_OK;
}

void sg_outfile_abort(sg_outfile *o)
{
	if(o->fd >= 0)
		close(o->fd);
	if(o->tmp)
		unlink(o->tmp);
	free(o->tmp);
	free(o->path);
	o->fd = -1;
	o->tmp = o->path = NULL;
}

sg_status sg_outfile_commit(sg_outfile *o)
{
	sg_status rc = SG_OK;
	char *dir;
	int dfd;

	if(fsync(o->fd))
		rc = sg_fail(SG_ERR_IO, "cannot write %s: fsync: %s", o->path, strerror(errno));
	if(!rc && close(o->fd))
		rc = sg_fail(SG_ERR_IO, "cannot write %s: close: %s", o->path, strerror(errno));
	else if(rc)
		close(o->fd);
	o->fd = -1;
	if(!rc && rename(o->tmp, o->path))
		rc = sg_fail(SG_ERR_IO, "cannot rename %s to %s: %s", o->tmp, o->path,
		             strerror(errno));
	if(rc) {
		sg_outfile_abort(o);
		return rc;
	}
	/* Make the rename itself durable. */
	dir = strdup(o->path);
	if(dir) {
		dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if(dfd >= 0) {
			(void)fsync(dfd);
			close(dfd);
		}
		free(dir);
	}
	free(o->tmp);
	free(o->path);
	o->tmp = o->path = NULL;
	return SG_OK;
}

sg_status sg_outfile_end(sg_outfile *o, sg_status rc)
{
	if(!rc)
		return sg_outfile_commit(o);
	rc = sg_fail_prefix(rc, "nothing written to %s", o->path);
	sg_outfile_abort(o);
	return rc;
}

size_t sg_capbuf_write(char *data, size_t size, size_t nmemb, void *arg)
{
	sg_capbuf *b = arg;
	size_t n = size * nmemb;

	if(n > b->max - b->len) {
		b->too_big = 1;
		return 0; /* curl stops with CURLE_WRITE_ERROR */
	}
	if(b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		unsigned char *p;
		while(cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if(!p)
			return 0;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}
