/*
 * log.c - see log.h.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_fp;
static char *log_path;

int sg_log_open(const char *path)
{
	FILE *fp;

	if(!path || !strcmp(path, "-")) {
		log_fp = stderr;
		return 0;
	}
	fp = fopen(path, "a");
	if(!fp)
		return -1;
	setvbuf(fp, NULL, _IOLBF, 0);
	log_fp = fp;
	free(log_path);
	log_path = strdup(path);
	return 0;
}

int sg_log_reopen(void)
{
	FILE *fp;

	if(!log_path)
		return 0;
	fp = fopen(log_path, "a");
	if(!fp)
		return -1;
	setvbuf(fp, NULL, _IOLBF, 0);
	pthread_mutex_lock(&log_lock);
	if(log_fp && log_fp != stderr)
		fclose(log_fp);
	log_fp = fp;
	pthread_mutex_unlock(&log_lock);
	return 0;
}

void sg_log_close(void)
{
	if(log_fp && log_fp != stderr)
		fclose(log_fp);
	log_fp = NULL;
	free(log_path);
	log_path = NULL;
}

void sg_log(sg_log_level lvl, const char *fmt, ...)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	char ts[32], msg[2048];
	struct timespec now;
	struct tm tm;
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One event, one line: no embedded newlines from error texts. */
	for(char *p = msg; *p; p++)
		if(*p == '\n' || *p == '\r')
			*p = ' ';
	pthread_mutex_lock(&log_lock);
	fprintf(log_fp ? log_fp : stderr, "%s.%03ldZ %-5s %s\n", ts, now.tv_nsec / 1000000,
	        names[lvl], msg);
	fflush(log_fp ? log_fp : stderr);
	pthread_mutex_unlock(&log_lock);
}

const char *sg_log_quote(const char *in, char *buf, size_t len)
{
	size_t o = 0;

	if(len < 8) {
		if(len)
			buf[0] = '\0';
		return buf;
	}
	buf[o++] = '"';
	/* Invariant: o + 5 <= len, room for "...", the closing quote, the NUL. */
	for(const unsigned char *p = (const unsigned char *)(in ? in : ""); *p; p++) {
		int esc = *p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\';
		if(o + (esc ? 4 : 1) + 5 > len) {
			buf[o++] = '.'; buf[o++] = '.'; buf[o++] = '.';
			break;
		}
		if(esc)
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x", *p);
		else
			buf[o++] = (char)*p;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}
