/*
 * file.c - sg_file: opens a file, picks its format from the table by a
 * cheap probe, and forwards to the format's operations.  "Not this format"
 * (no probe claims it) and "corrupt" (the claiming format's open fails)
 * stay different answers.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "authenticode_int.h"
#include "format.h"
#include "internal.h"

static const struct sg_format *const formats[] = {
	&sg_format_pe,
};

struct sg_file {
	sg_reader r;
	const struct sg_format *fmt;
	void *ctx;
	int own_fd;
	char *name;
};

sg_status sg_file_open_fd(int fd, const char *name, sg_file **out)
{
	unsigned char head[SG_PROBE_BYTES];
	struct stat st;
	sg_file *f;
	size_t got;
	sg_status rc;

	*out = NULL;
	if(fstat(fd, &st))
		return sg_fail(SG_ERR_IO, "%s: %s", name, strerror(errno));
	if(!S_ISREG(st.st_mode))
		return sg_fail(SG_ERR_IO, "%s: not a regular file", name);
	f = calloc(1, sizeof(*f));
	if(!f || !(f->name = strdup(name))) {
		free(f);
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	}
	f->r.fd = fd;
	f->r.size = (uint64_t)st.st_size;
	f->r.name = f->name;
	rc = sg_reader_pread(&f->r, 0, head, sizeof(head), &got);
	if(rc)
		goto fail;
	for(size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		if(formats[i]->probe(head, got)) {
			f->fmt = formats[i];
			break;
		}
	}
	if(!f->fmt) {
		rc = sg_fail(SG_ERR_UNSUPPORTED,
		             "%s: not a file format signgate can sign (no PE 'MZ' header)", name);
		goto fail;
	}
	rc = f->fmt->open(&f->r, &f->ctx);
	if(rc)
		goto fail;
	*out = f;
	return SG_OK;
fail:
	free(f->name);
	free(f);
	return rc;
}

sg_status sg_file_open(const char *path, sg_file **out)
{
	sg_status rc;
	int fd;

	struct stat st;

	*out = NULL;
	fd = sg_open_regular(path, &st);
	if(fd < 0)
		return SG_ERR_IO;
	rc = sg_file_open_fd(fd, path, out);
	if(rc) {
		close(fd);
		return rc;
	}
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	(*out)->own_fd = 1;
	return SG_OK;
}

void sg_file_close(sg_file *f)
{
	if(!f)
		return;
	if(f->ctx)
		f->fmt->close(f->ctx);
	if(f->own_fd)
		close(f->r.fd);
	free(f->name);
	free(f);
}

const char *sg_file_format(const sg_file *f)
{
	return f->fmt->name;
}

uint64_t sg_file_size(const sg_file *f)
{
	return f->r.size;
}

sg_status sg_file_digest(sg_file *f, sg_md md, int tee_fd,
                         unsigned char out[SG_MAX_MD], size_t *outlen)
{
	unsigned char res[1][SG_MAX_MD];
	sg_status rc;

	*outlen = 0;
	if(!sg_md_evp(md))
		return sg_fail(SG_ERR_USAGE, "bad digest algorithm");
	rc = f->fmt->digest(f->ctx, &md, 1, tee_fd, res);
	if(rc)
		return rc;
	memcpy(out, res[0], sg_md_size(md));
	*outlen = sg_md_size(md);
	return SG_OK;
}

sg_status sg_file_digests(sg_file *f, const sg_md *mds, size_t n,
                          unsigned char (*out)[SG_MAX_MD])
{
	return f->fmt->digest(f->ctx, mds, n, -1, out);
}

sg_status sg_file_get_signature(sg_file *f, unsigned char **der, size_t *len)
{
	return f->fmt->get_signature(f->ctx, 0, der, len);
}

sg_status sg_file_get_signature_n(sg_file *f, unsigned idx, unsigned char **der,
                                  size_t *len)
{
	return f->fmt->get_signature(f->ctx, idx, der, len);
}

sg_status sg_file_write_fd(sg_file *f, const unsigned char *sig, size_t siglen,
                           int fd, int body_done)
{
	unsigned char d[SG_MAX_MD];
	size_t dlen;
	sg_status rc;

	if(!body_done) {
		rc = sg_file_digest(f, SG_MD_SHA256, fd, d, &dlen);
		if(rc)
			return rc;
	}
	return f->fmt->finish(f->ctx, fd, sig, siglen);
}

sg_status sg_file_write(sg_file *f, const unsigned char *sig, size_t siglen,
                        const char *outpath)
{
	sg_outfile o;
	sg_status rc;

	rc = sg_outfile_open(&o, outpath);
	if(rc)
		return rc;
	return sg_outfile_end(&o, sg_file_write_fd(f, sig, siglen, o.fd, 0));
}
