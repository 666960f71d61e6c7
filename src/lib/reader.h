/*
 * reader.h - the bounded reader: every read of an input file goes through
 * it, with 64-bit offsets checked against the size the file had when it
 * was opened, and checked little-endian getters for buffers.
 */
#ifndef SG_READER_H
#define SG_READER_H

#include <stddef.h>
#include <stdint.h>

#include "signgate/signgate.h"

typedef struct sg_reader {
	int fd;
	uint64_t size;
	const char *name; /* for messages */
} sg_reader;

/* Reads exactly len bytes at off.  If [off, off+len) is not inside the file
 * the result is SG_ERR_MALFORMED naming what (e.g. "PE section table"). */
sg_status sg_reader_read(const sg_reader *r, uint64_t off, void *buf,
                         size_t len, const char *what);

/* Reads up to len bytes at off; *got may be short only at end of file. */
sg_status sg_reader_pread(const sg_reader *r, uint64_t off, void *buf,
                          size_t len, size_t *got);

/* 1 if [off, off+len) lies inside [0, limit), with no overflow. */
static inline int sg_in_bounds(uint64_t off, uint64_t len, uint64_t limit)
{
	return off <= limit && len <= limit - off;
}

static inline uint16_t sg_le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t sg_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

static inline void sg_put_le32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static inline void sg_put_le16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

#endif
