/*
 * audit.h - the signing service's audit log: one JSON line per signing or
 * timestamp request, granted or refused, each line carrying the SHA-256 of
 * the line before it, so that a changed, removed or inserted line breaks
 * the chain.  The service appends (sg_audit_open/append); `signgate audit
 * verify` checks (sg_audit_verify).  The format is in docs/API.md, "Audit
 * log".  Needs only jansson and OpenSSL, none of the servers' HTTP code.
 */
#ifndef SG_AUDIT_H
#define SG_AUDIT_H

#include <stdint.h>

#include <jansson.h>

#include "signgate/signgate.h"

/* The "prev" of the first line of a log. */
#define SG_AUDIT_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"
#define SG_AUDIT_HASH_HEX 64
/* Longest line (without its newline); the writer never makes a longer one. */
#define SG_AUDIT_MAX_LINE 16384
/* Longest string field in bytes (sg_audit_str cuts longer ones), so that
 * a record with every field at its longest still fits in one line. */
#define SG_AUDIT_MAX_FIELD 256

typedef struct sg_audit sg_audit;

/*
 * Opens (creating, mode 0640) the audit log at path for appending and
 * reads its last line, bounded, to continue the chain: seq and prev go on
 * from it.  Refuses, with a message saying what to do, a file that is not
 * regular or whose last line is incomplete or no audit record (a crash
 * while writing it): the chain cannot be continued from it.  Only the last
 * line is read; sg_audit_verify checks the rest.  Free with sg_audit_free.
 */
sg_status sg_audit_open(const char *path, sg_audit **out);
void sg_audit_free(sg_audit *a);

/*
 * Appends the record rec (a JSON object, borrowed; its fields are the
 * caller's) with "seq", "time" and "prev" set here, as one line written
 * with one write() and fsync'd before it returns.  On any failure (disk
 * full, I/O error) the file is cut back to where it was, so the chain
 * stays whole, and the error says why: the caller must then not grant
 * the request.  Safe from many threads; records are serialised.  *seq
 * (may be NULL) gets the record's seq.
 */
sg_status sg_audit_append(sg_audit *a, json_t *rec, uint64_t *seq);

/* The seq and hash (hex) of the last record; 0 and the genesis value for
 * an empty log. */
void sg_audit_last(sg_audit *a, uint64_t *seq, char hash[SG_AUDIT_HASH_HEX + 1]);

/* A string field for a record: s cut to SG_AUDIT_MAX_FIELD bytes (at a
 * UTF-8 boundary, "..." marking the cut; bytes that are no UTF-8 become
 * '?'), or JSON null for NULL.  A new reference, never NULL but on
 * memory exhaustion. */
json_t *sg_audit_str(const char *s);

/* What sg_audit_verify found. */
typedef struct sg_audit_check {
	uint64_t records;            /* lines that check out, before the first bad one
	                              * (and before the line ahead of it when either
	                              * may be the changed one) */
	uint64_t last_seq;           /* of the last good line (0: none) */
	char last_hash[SG_AUDIT_HASH_HEX + 1];  /* SHA-256 of the last good line */
	uint64_t bad_line;           /* 1-based; 0: the whole log is intact */
	char problem[512];           /* "line 17: prev does not match line 16 (...)" */
} sg_audit_check;

/*
 * Checks the audit log at path: every line complete and an audit record,
 * the first with seq 1 and the genesis prev, each next seq one more, each
 * prev the SHA-256 of the line before.  SG_OK: intact.  SG_ERR_VERIFY: the
 * first bad line is in res->bad_line and res->problem (also the error
 * detail).  SG_ERR_IO: the file cannot be read.  A chain cannot show that
 * lines were cut off at the end: compare res->last_seq/last_hash with a
 * copy kept elsewhere (the service logs them at start and stop).
 */
sg_status sg_audit_verify(const char *path, sg_audit_check *res);

#endif
