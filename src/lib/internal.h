/*
 * internal.h - shared declarations inside libsigngate: error detail,
 * OpenSSL error translation, small helpers.  Not installed.
 */
#ifndef SG_INTERNAL_H
#define SG_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "signgate/signgate.h"

#if defined(__GNUC__)
#define SG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SG_PRINTF(a, b)
#endif

/* Records st with a detail message for sg_last_error(); returns st. */
sg_status sg_fail(sg_status st, const char *fmt, ...) SG_PRINTF(2, 3);
/* Same, appending the text of OpenSSL's error queue (and clearing it). */
sg_status sg_fail_ossl(sg_status st, const char *fmt, ...) SG_PRINTF(2, 3);
/* Prepends "prefix: " to the current detail message; returns st. */
sg_status sg_fail_prefix(sg_status st, const char *fmt, ...) SG_PRINTF(2, 3);
void sg_clear_error(void);

const EVP_MD *sg_md_evp(sg_md md);
int sg_md_nid(sg_md md);
sg_status sg_md_from_nid(int nid, sg_md *out);

/* Opens path read-only, refusing anything but a regular file (and not
 * blocking on a FIFO).  -1 with the error detail set on failure. */
struct stat;
int sg_open_regular(const char *path, struct stat *st);

/* Reads a whole (small) file into memory, at most max bytes. */
sg_status sg_read_file(const char *path, size_t max, unsigned char **buf,
                       size_t *len);

/*
 * Atomic output: a temporary file in the directory of path, opened for
 * writing; commit = fsync + rename (+ fsync of the directory); abort
 * removes it.  Never leaves a half-written file at path.
 */
typedef struct sg_outfile {
	int fd;
	char *path;
	char *tmp;
} sg_outfile;
sg_status sg_outfile_open(sg_outfile *o, const char *path);
sg_status sg_outfile_commit(sg_outfile *o);
void sg_outfile_abort(sg_outfile *o);
/* Ends the output as rc says: commit if SG_OK, else abort, the detail
 * prefixed with "nothing written to PATH".  Returns the final status. */
sg_status sg_outfile_end(sg_outfile *o, sg_status rc);

/*
 * sg_sign_file with a hook that may replace the new signature before it is
 * nested and written (timestamp.c adds a timestamp there).  The hook sets
 * *out (malloc'd) or leaves it NULL to keep sig.
 */
typedef sg_status (*sg_sig_hook)(void *arg, const unsigned char *sig, size_t siglen,
                                 unsigned char **out, size_t *outlen);
sg_status sg_sign_file_ex(const char *in, const char *out, sg_md md, int nest,
                          sg_signer *s, const sg_sign_opts *opts,
                          sg_sig_hook hook, void *arg);

/* A body received by libcurl, at most max bytes (too_big set past that),
 * always followed by a NUL.  Free p. */
typedef struct sg_capbuf {
	unsigned char *p;
	size_t len, cap, max;
	int too_big;
} sg_capbuf;
/* CURLOPT_WRITEFUNCTION for an sg_capbuf (CURLOPT_WRITEDATA). */
size_t sg_capbuf_write(char *data, size_t size, size_t nmemb, void *arg);

/*
 * Writes f with sig (DER Authenticode) as its only signature to out
 * (atomically), provided the digest sig carries is f's: SG_ERR_VERIFY
 * otherwise, and nothing is written.  *md_out: the signature's digest
 * algorithm, for the caller's messages.
 */
sg_status sg_embed_checked(sg_file *f, const unsigned char *sig, size_t siglen,
                           const char *out, sg_md *md_out);

/* Writes all of buf at offset off; 0 or an errno-style failure status. */
sg_status sg_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
sg_status sg_write_all(int fd, const void *buf, size_t len);

/* Takes the module-path out of a PKCS#11 URI (RFC 7512, p11-kit's parser):
 * *rest the URI without it, *module the path or NULL; both from malloc. */
sg_status sg_pkcs11_uri_split_module(const char *uri, char **rest,
                                     char **module);

#endif
