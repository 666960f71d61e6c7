/*
 * tee.h - a writer thread for streaming copies.  The reading thread hashes
 * each chunk and hands it over; the writer thread writes it to the output
 * and runs a per-chunk callback (the PE checksum), so hashing and writing
 * overlap on two cores.  Memory: SG_TEE_BUFS buffers of SG_TEE_CHUNK bytes.
 */
#ifndef SG_TEE_H
#define SG_TEE_H

#include <stddef.h>
#include <stdint.h>

#include "signgate/signgate.h"

/* 64 KiB: small enough that what read() copies in is still in the CPU
 * cache when the hash and the writer get to it (1 MiB chunks made reading
 * five times slower here). */
#define SG_TEE_CHUNK (64u << 10)
#define SG_TEE_BUFS 16

typedef struct sg_tee sg_tee;
/* Called on the writer thread for each chunk, in order. */
typedef void (*sg_tee_fn)(void *arg, uint64_t off, const unsigned char *p, size_t len);

/* fd < 0: no writer thread; chunks are passed to fn on the caller's thread. */
sg_status sg_tee_new(int fd, sg_tee_fn fn, void *arg, sg_tee **out);
/* A free buffer of SG_TEE_CHUNK bytes to fill (waits for one). */
unsigned char *sg_tee_buffer(sg_tee *t);
/* Hands the filled buffer over: len bytes at file offset off. */
sg_status sg_tee_push(sg_tee *t, unsigned char *buf, size_t len, uint64_t off);
/* Waits for the writer and frees; returns the first write error. */
sg_status sg_tee_finish(sg_tee *t);

#endif
