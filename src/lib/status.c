/*
 * status.c - status codes, the thread-local detail message, and the
 * translation of OpenSSL's error queue into it.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "internal.h"

static _Thread_local char last_error[1024];

static const char *const messages[SG_ERR__COUNT] = {
	[SG_OK] = "success",
	[SG_ERR_USAGE] = "invalid argument",
	[SG_ERR_IO] = "input/output error",
	[SG_ERR_NOMEM] = "out of memory",
	[SG_ERR_MALFORMED] = "malformed input",
	[SG_ERR_UNSUPPORTED] = "unsupported",
	[SG_ERR_TOO_LARGE] = "too large",
	[SG_ERR_CRYPTO] = "cryptographic operation failed",
	[SG_ERR_HSM] = "PKCS#11 module or token failed",
	[SG_ERR_PIN] = "wrong PIN or password",
	[SG_ERR_KEY] = "key problem",
	[SG_ERR_NETWORK] = "network error",
	[SG_ERR_REMOTE] = "remote service error",
	[SG_ERR_NOT_SIGNED] = "not signed",
	[SG_ERR_VERIFY] = "verification failed",
	[SG_ERR_NOT_FOUND] = "not found",
	[SG_ERR_INTERNAL] = "internal error",
};

const char *sg_strerror(sg_status st)
{
	if((unsigned)st >= SG_ERR__COUNT || !messages[st])
		return "unknown status";
	return messages[st];
}

const char *sg_last_error(void)
{
	return last_error;
}

void sg_clear_error(void)
{
	last_error[0] = '\0';
}

sg_status sg_fail(sg_status st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return st;
}

sg_status sg_fail_prefix(sg_status st, const char *fmt, ...)
{
	char prefix[512], old[sizeof(last_error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, last_error, sizeof(old));
	/* Cut the old message to what fits after the prefix. */
	int n = snprintf(last_error, sizeof(last_error), "%.500s: ", prefix);
	if(n > 0 && (size_t)n < sizeof(last_error))
		snprintf(last_error + n, sizeof(last_error) - (size_t)n, "%.*s",
		         (int)(sizeof(last_error) - (size_t)n - 1), old);
	return st;
}

sg_status sg_fail_ossl(sg_status st, const char *fmt, ...)
{
	char ossl[512] = "";
	size_t used = 0;
	unsigned long e;
	va_list ap;
	int n;

	/* Newest errors are the most specific for us; keep them all, briefly. */
	while((e = ERR_get_error()) != 0 && used + 2 < sizeof(ossl)) {
		char one[256];
		ERR_error_string_n(e, one, sizeof(one));
		n = snprintf(ossl + used, sizeof(ossl) - used, "%s%s",
		             used ? "; " : "", one);
		if(n < 0)
			break;
		used += (size_t)n;
	}
	ERR_clear_error();
	va_start(ap, fmt);
	n = vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	if(ossl[0] && n >= 0 && (size_t)n < sizeof(last_error))
		snprintf(last_error + n, sizeof(last_error) - (size_t)n,
		         " (OpenSSL: %s)", ossl);
	return st;
}
