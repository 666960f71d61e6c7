/*
 * log.h - the servers' log: one line per event, with a UTC timestamp and a
 * level, to stderr or a file, safe from many threads.  Never pass a
 * secret (PIN, token, password, key) to it.
 */
#ifndef SG_LOG_H
#define SG_LOG_H

#include <stddef.h>

typedef enum { SG_LOG_DEBUG, SG_LOG_INFO, SG_LOG_WARN, SG_LOG_ERROR } sg_log_level;

/* path NULL or "-": stderr.  Returns 0, or -1 if the file cannot be opened. */
int sg_log_open(const char *path);
void sg_log(sg_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void sg_log_close(void);
/* Reopens the log file (after logrotate moved it); 0 or -1. */
int sg_log_reopen(void);
/* A field from outside (file name, URI, key name) made safe for one log
 * line: in double quotes, with '"', '\\' and control bytes escaped (\xNN),
 * cut to fit buf.  Returns buf. */
const char *sg_log_quote(const char *in, char *buf, size_t len);

#endif
