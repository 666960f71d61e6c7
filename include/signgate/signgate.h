/*
 * signgate.h - public API of libsigngate.
 *
 * Authenticode signing and verification of files (PE/COFF today) with keys
 * held in a PKCS#11 token, in a key file, or behind the signing service.
 * Every fallible function returns an sg_status; results go through
 * out-parameters, which are zeroed on failure.  The library never prints:
 * sg_last_error() gives the detail message of the last failure in the
 * calling thread.
 */
#ifndef SIGNGATE_SIGNGATE_H
#define SIGNGATE_SIGNGATE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SG_VERSION "0.1.0"

typedef enum sg_status {
	SG_OK = 0,
	SG_ERR_USAGE,       /* the caller passed a bad argument or option */
	SG_ERR_IO,          /* a read, write, open or rename failed */
	SG_ERR_NOMEM,       /* an allocation failed */
	SG_ERR_MALFORMED,   /* the input is corrupt: a field is out of range */
	SG_ERR_UNSUPPORTED, /* the input is valid but not something we handle */
	SG_ERR_TOO_LARGE,   /* the input exceeds a limit of the format or ours */
	SG_ERR_CRYPTO,      /* OpenSSL refused an operation */
	SG_ERR_HSM,         /* the PKCS#11 module or token failed */
	SG_ERR_PIN,         /* wrong PIN or password, or the token is locked */
	SG_ERR_KEY,         /* key not found, or key and certificate disagree */
	SG_ERR_NETWORK,     /* a remote service could not be reached */
	SG_ERR_REMOTE,      /* a remote service answered with an error */
	SG_ERR_NOT_SIGNED,  /* the file carries no signature */
	SG_ERR_VERIFY,      /* verification failed: the file is not valid */
	SG_ERR_NOT_FOUND,   /* a named thing does not exist */
	SG_ERR_INTERNAL,    /* a bug in signgate */
	SG_ERR__COUNT
} sg_status;

/* A short, static description of a status. */
const char *sg_strerror(sg_status st);

/* The detail message of the last failure in this thread ("" if none). */
const char *sg_last_error(void);

/* Digest algorithms for Authenticode. */
typedef enum sg_md {
	SG_MD_SHA1 = 0,
	SG_MD_SHA256,
	SG_MD_SHA384,
	SG_MD_SHA512,
} sg_md;

#define SG_MAX_MD 64

/* Parses "sha1", "sha256", "sha384", "sha512" (case-insensitive). */
sg_status sg_md_from_name(const char *name, sg_md *out);
const char *sg_md_name(sg_md md);
size_t sg_md_size(sg_md md);

/* Hex encoding of a digest into out (at least 2*len+1 bytes). */
void sg_hex(const unsigned char *buf, size_t len, char *out);

/* Frees memory the library handed to the caller (signatures, buffers). */
void sg_free(void *p);

/* ---------------------------------------------------------------- files */

/*
 * An opened file of a signable format.  The file is read through a bounded
 * reader; it is never modified.  Owned by the caller: sg_file_close().
 */
typedef struct sg_file sg_file;

/* Opens path and identifies its format.  SG_ERR_UNSUPPORTED: no format
 * claims it; SG_ERR_MALFORMED: the format claims it but it is corrupt. */
sg_status sg_file_open(const char *path, sg_file **out);
/* Same, on an open descriptor (not closed by sg_file_close). */
sg_status sg_file_open_fd(int fd, const char *name, sg_file **out);
void sg_file_close(sg_file *f);

/* "pe", ... */
const char *sg_file_format(const sg_file *f);
uint64_t sg_file_size(const sg_file *f);

/* The Authenticode digest of the file, streaming.  If tee_fd >= 0 the bytes
 * that will precede the signature in a signed file (including the 0-7 bytes
 * of alignment padding) are also written there, so the copy matches the
 * digest by construction. */
sg_status sg_file_digest(sg_file *f, sg_md md, int tee_fd,
                         unsigned char out[SG_MAX_MD], size_t *outlen);

/* The file's signature blob (DER PKCS#7 SignedData of the first
 * certificate-table entry).  *der is freed with sg_free(). */
sg_status sg_file_get_signature(sg_file *f, unsigned char **der, size_t *len);

/* Writes the file with sig (DER) as its only signature, or with no
 * signature when sig is NULL, to outpath: a temporary file beside it,
 * fsync, rename.  outpath may equal the input path. */
sg_status sg_file_write(sg_file *f, const unsigned char *sig, size_t siglen,
                        const char *outpath);

/* Writes the same to fd (positioned at 0, empty).  If body_done is set,
 * fd already holds the body written by sg_file_digest(..., tee_fd=fd). */
sg_status sg_file_write_fd(sg_file *f, const unsigned char *sig,
                           size_t siglen, int fd, int body_done);

/* Embeds the signature in file sigpath (DER) into in, writing out
 * atomically.  The signature's digest must match the file's:
 * SG_ERR_VERIFY otherwise, and nothing is written. */
sg_status sg_attach_signature_file(const char *in, const char *sigpath,
                                   const char *out);

/* Writes buf to path atomically (temp file, fsync, rename). */
sg_status sg_write_file_atomic(const char *path, const void *buf, size_t len);

/* ---------------------------------------------------------------- secrets */

/* Reads a secret named by spec: "file:PATH" (first line), "env:VAR", or
 * "pass:TEXT" (discouraged: visible in ps).  A regular file whose mode
 * gives group or others any access (mode & 077) is refused with
 * SG_ERR_USAGE.  *out is wiped and freed with sg_secret_free(). */
sg_status sg_secret_read(const char *spec, char **out);
void sg_secret_free(char *s);

/*
 * An HTTP proxy for outgoing requests (signing service, TSAs).  HTTPS goes
 * through it by CONNECT; plain HTTP as a proxied request.
 */
typedef struct sg_proxy {
	const char *url;        /* http://HOST:PORT (no user:password); NULL:
	                           the environment's (http_proxy, https_proxy,
	                           no_proxy, as curl reads them); "": none */
	const char *user;       /* Basic authentication to the proxy; NULL: none */
	const char *password;   /* secret spec of user's password (sg_secret_read) */
	const char *no_proxy;   /* comma-separated hosts (".example.com" for a
	                           domain, "*" for all) reached directly; NULL: none */
} sg_proxy;

/* Checks a proxy setting "HOST:PORT" or "http://HOST:PORT[/]" and writes
 * the URL form (http://HOST:PORT) to *url (free()).  SG_ERR_USAGE saying
 * what is wrong: another scheme, a user:password part (use the separate
 * user and password settings), a missing or bad port. */
sg_status sg_proxy_parse(const char *value, char **url);

/* ---------------------------------------------------------------- signers */

/*
 * A signer holds a private key (in a token, a file, or remote) and the
 * certificate chain that goes with it.  It signs digests; it never sees
 * the file.
 */
typedef struct sg_signer sg_signer;

typedef enum sg_key_type { SG_KEY_RSA = 1, SG_KEY_EC = 2 } sg_key_type;

/*
 * key: a path to a PEM key file, or a PKCS#11 URI (RFC 7512) such as
 *   pkcs11:token=signgate;object=codesign?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:pin.txt
 * cert: a PEM file with the leaf and its intermediates, leaf first or not;
 *   may be NULL for a PKCS#11 key whose certificate is on the token.
 * pass: a secret spec (see sg_secret_read) for an encrypted key file or a
 *   PIN; NULL to use the URI's pin-source/pin-value.
 * The key is checked against the certificate by a test signature.
 */
sg_status sg_signer_open(const char *key, const char *cert, const char *pass,
                         sg_signer **out);
/* PKCS#12 file with key, leaf and chain. */
sg_status sg_signer_open_pfx(const char *path, const char *pass,
                             sg_signer **out);
void sg_signer_free(sg_signer *s);

sg_key_type sg_signer_key_type(const sg_signer *s);
/* Subject of the leaf certificate, one line, for logs. */
const char *sg_signer_subject(const sg_signer *s);
/* The chain as PEM text, leaf first.  Freed with sg_free(). */
sg_status sg_signer_chain_pem(const sg_signer *s, char **pem);
/* 1 if the certificate that issued the leaf is not in the chain (and the
 * leaf is not self-issued): verifiers that only know the root will fail. */
int sg_signer_chain_incomplete(const sg_signer *s);
/* notAfter of the leaf, Unix seconds. */
int64_t sg_signer_not_after(const sg_signer *s);

/* Signs a digest: PKCS#1 v1.5 (RSA) or DER ECDSA-Sig-Value (EC).  Freed
 * with sg_free().  Thread-safe: backends serialize as needed. */
sg_status sg_signer_sign_digest(sg_signer *s, sg_md md,
                                const unsigned char *digest, size_t dlen,
                                unsigned char **sig, size_t *siglen);

/* ---------------------------------------------------------------- authenticode */

typedef struct sg_sign_opts {
	const char *program_name; /* SpcSpOpusInfo programName, or NULL */
	const char *url;          /* SpcSpOpusInfo moreInfo, or NULL */
} sg_sign_opts;

/*
 * Builds the Authenticode SignedData for a file of format fmt ("pe") whose
 * Authenticode digest under md is digest: SpcIndirectDataContent, signed
 * attributes, signature by s, the whole chain.  DER in *der (sg_free).
 */
sg_status sg_authenticode_sign(sg_signer *s, const char *fmt, sg_md md,
                               const unsigned char *digest, size_t dlen,
                               const sg_sign_opts *opts,
                               unsigned char **der, size_t *derlen);

/* Adds inner as a nested signature (unauthenticated attribute
 * 1.3.6.1.4.1.311.2.4.1 of outer's first signer).  Any nested signatures
 * inner carries itself are moved along, so all are kept. */
sg_status sg_authenticode_nest(const unsigned char *outer, size_t outerlen,
                               const unsigned char *inner, size_t innerlen,
                               unsigned char **der, size_t *derlen);

/*
 * Signs the file at in and writes the signed file to out (temp file, fsync,
 * rename; out may equal in).  An existing signature is replaced, or kept
 * with the new one nested in it when nest is set.  The bytes written are
 * the bytes hashed, so output and signature always agree.
 */
sg_status sg_sign_file(const char *in, const char *out, sg_md md, int nest,
                       sg_signer *s, const sg_sign_opts *opts);

/* The kind of timestamp a signature carries. */
typedef enum sg_ts_kind {
	SG_TS_NONE = 0,
	SG_TS_RFC3161,          /* RFC 3161 token, unauthenticated attribute
	                           1.3.6.1.4.1.311.3.3.1 */
	SG_TS_COUNTERSIGNATURE, /* legacy Authenticode countersignature,
	                           unauthenticated attribute 1.2.840.113549.1.9.6 */
} sg_ts_kind;

/* Revocation status of a signer's chain.  "Unknown" (no CRL, or one that
 * cannot be fetched or is out of date) does not make a signature invalid,
 * as Windows treats an offline revocation check by default. */
typedef enum sg_revocation {
	SG_REV_UNKNOWN = 0,
	SG_REV_GOOD,            /* every certificate checked, none revoked */
	SG_REV_REVOKED,
} sg_revocation;

/* "rfc3161", "countersignature", "none"; "not revoked", "revoked", "unknown". */
const char *sg_ts_kind_name(sg_ts_kind k);
const char *sg_revocation_name(sg_revocation r);

/* One signature's verdict. */
typedef struct sg_sig_report {
	int index;              /* 0, 1, ...: every signature, in file order */
	int entry;              /* the certificate-table entry it belongs to */
	int nested;             /* 1 if nested in that entry's primary signature */
	sg_status status;       /* SG_OK if every check passed */
	char reason[512];       /* what failed, where; "" when valid */
	char md[16];            /* digest algorithm named in the signature */
	char signer[256];       /* subject of the signer's certificate */
	char issuer[256];
	char signed_digest[2 * SG_MAX_MD + 1];  /* hex, from the signature */
	char file_digest[2 * SG_MAX_MD + 1];    /* hex, recomputed */
	int digest_ok, signature_ok, chain_ok, eku_ok;
	char program_name[128];
	/* The timestamp: the first RFC 3161 token or countersignature found. */
	sg_ts_kind ts_kind;
	int ts_ok;              /* token signature, imprint, TSA chain and EKU */
	int64_t ts_time;        /* its time (Unix seconds); 0 if none */
	char ts_signer[256];    /* subject of the TSA's certificate */
	/* Certificates were checked as valid at this time (Unix seconds): the
	 * timestamp's when it is valid, else now or the caller's at_time. */
	int64_t checked_at;
	sg_revocation revocation;
	char revocation_detail[512]; /* which certificate, which CRL, why */
} sg_sig_report;

typedef struct sg_verify_opts {
	const char *ca_file;    /* trusted roots (PEM), each one an anchor even if
	                           not self-signed; NULL: system store */
	int64_t at_time;        /* check validity at this Unix time; 0: now.  A
	                           valid timestamp's time comes first. */
	const char *tsa_ca_file; /* roots for timestamp chains; NULL: as ca_file */
	const char *const *crl_files; /* CRLs (PEM or DER), n_crl_files of them */
	size_t n_crl_files;
	int fetch_crl;          /* fetch missing CRLs from the certificates' CRL
	                           distribution points (http:// or https://, by
	                           libcurl) */
	sg_proxy proxy;         /* for those fetches; zeroed: the environment */
} sg_verify_opts;

/*
 * Verifies every signature of f (primary and nested), as Windows'
 * WinVerifyTrust decides: digest, signature, chain to a trusted root,
 * code-signing EKU, the timestamp (RFC 3161 or countersignature: its
 * signature, imprint, TSA chain and timeStamping EKU), certificate
 * validity at the timestamp's time when there is a valid one (else at
 * at_time or now), and revocation by CRL.  Fills up to max reports, sets
 * *n to the number of signatures found.  Returns SG_OK if all are valid,
 * SG_ERR_VERIFY if any is not, SG_ERR_NOT_SIGNED, or an error that stopped
 * verification (malformed file, I/O, an unreadable CRL file).
 */
sg_status sg_verify_file(sg_file *f, const sg_verify_opts *opts,
                         sg_sig_report *reps, size_t max, size_t *n);

#ifdef __cplusplus
}
#endif
#endif /* SIGNGATE_SIGNGATE_H */
