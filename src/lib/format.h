/*
 * format.h - the file format interface.  Each format (pe.c, later msi.c,
 * cab.c ...) is one const struct of these operations plus a line in the
 * table in file.c.
 */
#ifndef SG_FORMAT_H
#define SG_FORMAT_H

#include "reader.h"
#include "signgate/signgate.h"

#define SG_PROBE_BYTES 64

struct sg_format {
	const char *name;
	/* Cheap look at the first bytes (fewer than SG_PROBE_BYTES only if the
	 * file is shorter): 1 if the file claims to be of this format. */
	int (*probe)(const unsigned char *head, size_t len);
	/* Parses and checks the structure; *ctx on success. */
	sg_status (*open)(const sg_reader *r, void **ctx);
	/* Streams the Authenticode digest for each of n algorithms.  If
	 * tee_fd >= 0, writes the body of the signed file there as it goes. */
	sg_status (*digest)(void *ctx, const sg_md *mds, size_t n, int tee_fd,
	                    unsigned char (*out)[SG_MAX_MD]);
	/* Signature blob idx (DER), in file order; SG_ERR_NOT_SIGNED if the
	 * file has none, SG_ERR_NOT_FOUND past the last. */
	sg_status (*get_signature)(void *ctx, unsigned idx, unsigned char **der,
	                           size_t *len);
	/* After digest() teed the body into fd: writes the signature (or
	 * none when sig is NULL) and patches the headers. */
	sg_status (*finish)(void *ctx, int fd, const unsigned char *sig,
	                    size_t siglen);
	void (*close)(void *ctx);
};

extern const struct sg_format sg_format_pe;

#endif
