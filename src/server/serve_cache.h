/*
 * serve_cache.h - the download server's cache of signed copies, with
 * single flight: the first request for a key produces the copy while the
 * others for the same key wait for it.  Keys are 32 opaque bytes (a
 * SHA-256 the caller computes); each copy is a file named by the key in
 * hex in the cache directory.  Bounded: at most max entries, least
 * recently used evicted (the file is removed with its entry).
 */
#ifndef SG_SERVE_CACHE_H
#define SG_SERVE_CACHE_H

#include <stddef.h>

#include "signgate/signgate.h"

#define SERVE_KEY_LEN 32

typedef struct serve_cache serve_cache;
/* The right and duty to produce one key's copy (see serve_cache_get). */
typedef struct serve_claim serve_claim;

/*
 * Opens dir (created 0700 if missing), removes temporary files a previous
 * run left behind, and takes the copies already there into the map,
 * newest first, removing those beyond max.  Checks that a file can be
 * created there.
 */
sg_status serve_cache_open(const char *dir, size_t max, serve_cache **out);
void serve_cache_free(serve_cache *c);

/*
 * Looks key up; name (the request path) is kept for the log and to drop
 * the copy of an older version of the same name when a new one is made.
 *  - a copy exists: SG_OK, *fd = a descriptor of it (the caller closes it);
 *  - nobody has it: SG_OK, *claim set: the caller writes the copy to
 *    serve_claim_fd() and ends with serve_cache_commit() or
 *    serve_cache_fail(); requests for the same key wait meanwhile;
 *  - it was being made and that failed: the producer's status, with its
 *    detail message in this thread's sg_last_error();
 *  - it was being made and the producer gave up because the source
 *    changed: SG_OK with *again set: look at the source again.
 */
sg_status serve_cache_get(serve_cache *c, const unsigned char key[SERVE_KEY_LEN],
                          const char *name, int *fd, serve_claim **claim, int *again);

/* The empty temporary file (read-write, at offset 0) to fill. */
int serve_claim_fd(const serve_claim *cl);

/* fsync, rename into place, wake the waiters.  On success *fd is a
 * descriptor of the copy (the caller closes it).  Frees cl in any case;
 * on failure the waiters get the failure. */
sg_status serve_cache_commit(serve_cache *c, serve_claim *cl, int *fd);

/* Gives up: removes the temporary file, wakes the waiters with st and
 * this thread's sg_last_error(), or with "again" if again is set.  Frees
 * cl. */
void serve_cache_fail(serve_cache *c, serve_claim *cl, sg_status st, int again);

/* Number of copies in the map (for the log). */
size_t serve_cache_count(serve_cache *c);

#endif
