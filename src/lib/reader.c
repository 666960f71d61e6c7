/*
 * reader.c - bounded reads of untrusted files (see reader.h).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "reader.h"

sg_status sg_reader_pread(const sg_reader *r, uint64_t off, void *buf,
                          size_t len, size_t *got)
{
	unsigned char *p = buf;
	size_t done = 0;

	*got = 0;
	if(off >= r->size)
		return SG_OK;
	if(len > r->size - off)
		len = (size_t)(r->size - off);
	while(done < len) {
		ssize_t n = pread(r->fd, p + done, len - done, (off_t)(off + done));
		if(n < 0 && errno == EINTR)
			continue;
		if(n < 0)
			return sg_fail(SG_ERR_IO, "%s: read at offset 0x%llx failed: %s",
			               r->name, (unsigned long long)(off + done),
			               strerror(errno));
		if(n == 0)
			return sg_fail(SG_ERR_IO, "%s: file shrank while reading (at 0x%llx)",
			               r->name, (unsigned long long)(off + done));
		done += (size_t)n;
	}
	*got = done;
	return SG_OK;
}

sg_status sg_reader_read(const sg_reader *r, uint64_t off, void *buf,
                         size_t len, const char *what)
{
	size_t got;
	sg_status rc;

	if(!sg_in_bounds(off, len, r->size))
		return sg_fail(SG_ERR_MALFORMED,
		               "%s: %s runs past end of file (offset 0x%llx + 0x%zx > 0x%llx)",
		               r->name, what, (unsigned long long)off, len,
		               (unsigned long long)r->size);
	rc = sg_reader_pread(r, off, buf, len, &got);
	if(rc)
		return rc;
	if(got != len)
		return sg_fail(SG_ERR_IO, "%s: short read of %s", r->name, what);
	return SG_OK;
}
