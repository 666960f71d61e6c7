/*
 * config.c - loads the INI configuration (see config.h, docs/CONFIG.md)
 * with inih, by a table of known keys per section.  Unknown sections and
 * keys are errors, so a typo is caught at start rather than ignored.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>
#include <openssl/err.h>
#include <openssl/objects.h>

#include "config.h"
#include "../lib/internal.h"

typedef struct cfg_parse {
	sg_config *c;
	char err[512];
	sg_cfg_key *key;       /* current [key NAME] */
	sg_cfg_client *client; /* current [client NAME] */
} cfg_parse;

enum cfg_type { T_STR, T_INT, T_SIZE, T_ONFAIL, T_METHOD, T_MD, T_LIST, T_BOOL, T_DIGESTS,
                T_RATE };

struct cfg_item {
	const char *section; /* "service", "serve", "log", "key", "client" */
	const char *name;
	enum cfg_type type;
	size_t off;          /* in sg_config, or in sg_cfg_key/sg_cfg_client */
	long min, max;
};

#define C(f) offsetof(sg_config, f)
#define K(f) offsetof(sg_cfg_key, f)
static const struct cfg_item items[] = {
	{ "log", "file", T_STR, C(log), 0, 0 },
	{ "service", "listen", T_STR, C(svc_listen), 0, 0 },
	{ "service", "tls_cert", T_STR, C(svc_tls_cert), 0, 0 },
	{ "service", "tls_key", T_STR, C(svc_tls_key), 0, 0 },
	{ "service", "client_ca", T_STR, C(svc_client_ca), 0, 0 },
	{ "service", "audit_log", T_STR, C(svc_audit_log), 0, 0 },
	{ "service", "sign_log", T_STR, C(svc_audit_log), 0, 0 },   /* old name of audit_log */
	{ "service", "max_body", T_SIZE, C(svc_max_body), 256, 1 << 24 },
	{ "service", "threads", T_INT, C(svc_threads), 1, 256 },
	{ "service", "timestamp_urls", T_STR, C(svc_ts.urls_text), 0, 0 },
	{ "service", "timestamp_policy", T_STR, C(svc_ts.policy_text), 0, 0 },
	{ "service", "timestamp_ca", T_STR, C(svc_ts.ca), 0, 0 },
	{ "service", "timestamp_proxy", T_STR, C(svc_ts.proxy), 0, 0 },
	{ "service", "timestamp_timeout", T_INT, C(svc_ts.timeout), 1, 600 },
	{ "service", "timestamp_retries", T_INT, C(svc_ts.retries), 0, 10 },
	{ "service", "tsa_key", T_STR, C(svc_tsa_key), 0, 0 },
	{ "service", "tsa_policy", T_STR, C(svc_tsa_policy), 0, 0 },
	{ "service", "tsa_require_token", T_BOOL, C(svc_tsa_require_token), 0, 0 },
	{ "serve", "listen", T_STR, C(srv_listen), 0, 0 },
	{ "serve", "root", T_STR, C(srv_root), 0, 0 },
	{ "serve", "cache_dir", T_STR, C(srv_cache), 0, 0 },
	{ "serve", "threads", T_INT, C(srv_threads), 1, 1024 },
	{ "serve", "on_sign_failure", T_ONFAIL, C(on_fail), 0, 0 },
	{ "serve", "sign_method", T_METHOD, C(method), 0, 0 },
	{ "serve", "digest", T_MD, C(md), 0, 0 },
	{ "serve", "program_name", T_STR, C(prog_name), 0, 0 },
	{ "serve", "program_url", T_STR, C(prog_url), 0, 0 },
	{ "serve", "service_url", T_STR, C(svc_url), 0, 0 },
	{ "serve", "service_ca", T_STR, C(svc_ca), 0, 0 },
	{ "serve", "service_token", T_STR, C(svc_token), 0, 0 },
	{ "serve", "service_key", T_STR, C(svc_key), 0, 0 },
	{ "serve", "proxy", T_STR, C(proxy_url), 0, 0 },
	{ "serve", "proxy_user", T_STR, C(proxy_user), 0, 0 },
	{ "serve", "proxy_password", T_STR, C(proxy_password), 0, 0 },
	{ "serve", "no_proxy", T_STR, C(no_proxy), 0, 0 },
	{ "serve", "service_proxy", T_STR, C(proxy_url), 0, 0 },     /* old name of proxy */
	{ "serve", "connect_timeout", T_INT, C(connect_timeout), 1, 600 },
	{ "serve", "timeout", T_INT, C(timeout), 1, 3600 },
	{ "serve", "retries", T_INT, C(retries), 0, 10 },
	{ "serve", "custom_key", T_STR, C(custom.uri), 0, 0 },
	{ "serve", "custom_cert", T_STR, C(custom.cert), 0, 0 },
	{ "serve", "custom_pass", T_STR, C(custom.pass), 0, 0 },
	{ "serve", "custom_pfx", T_STR, C(custom.pfx), 0, 0 },
	{ "serve", "admin", T_BOOL, C(admin), 0, 0 },
	{ "serve", "admin_listen", T_STR, C(admin_listen), 0, 0 },
	{ "serve", "admin_password", T_STR, C(admin_password), 0, 0 },
	{ "serve", "admin_password_hash", T_STR, C(admin_password_hash), 0, 0 },
	{ "serve", "admin_dir", T_STR, C(admin_dir), 0, 0 },
	{ "serve", "timestamp_urls", T_STR, C(srv_ts.urls_text), 0, 0 },
	{ "serve", "timestamp_policy", T_STR, C(srv_ts.policy_text), 0, 0 },
	{ "serve", "timestamp_ca", T_STR, C(srv_ts.ca), 0, 0 },
	{ "serve", "timestamp_proxy", T_STR, C(proxy_url), 0, 0 },   /* old name of proxy */
	{ "serve", "timestamp_timeout", T_INT, C(srv_ts.timeout), 1, 600 },
	{ "serve", "timestamp_retries", T_INT, C(srv_ts.retries), 0, 10 },
	{ "key", "uri", T_STR, K(uri), 0, 0 },
	{ "key", "cert", T_STR, K(cert), 0, 0 },
	{ "key", "pass", T_STR, K(pass), 0, 0 },
	{ "key", "pfx", T_STR, K(pfx), 0, 0 },
	{ "client", "token", T_STR, offsetof(sg_cfg_client, token), 0, 0 },
	{ "client", "keys", T_LIST, 0, 0, 0 },
	{ "client", "cert_subject", T_STR, offsetof(sg_cfg_client, cert_subject), 0, 0 },
	{ "client", "cert_fingerprint", T_STR, offsetof(sg_cfg_client, cert_fingerprint), 0, 0 },
	{ "client", "digests", T_DIGESTS, 0, 0, 0 },
	{ "client", "rate", T_RATE, 0, 0, 0 },
	{ "client", "burst", T_INT, offsetof(sg_cfg_client, burst), 1, 1000000 },
};

static int cfg_err(cfg_parse *p, const char *fmt, ...) SG_PRINTF(2, 3);
static int cfg_err(cfg_parse *p, const char *fmt, ...)
{
	va_list ap;

	if(!p->err[0]) {
		va_start(ap, fmt);
		vsnprintf(p->err, sizeof(p->err), fmt, ap);
		va_end(ap);
	}
	return 0;
}

/* Splits "key NAME" into its kind and name. */
static int cfg_section(const char *section, char *kind, size_t kindlen,
                       const char **name)
{
	const char *sp = strchr(section, ' ');
	size_t n = sp ? (size_t)(sp - section) : strlen(section);

	if(n >= kindlen)
		return 0;
	memcpy(kind, section, n);
	kind[n] = '\0';
	*name = sp ? sp + 1 : NULL;
	while(*name && **name == ' ')
		(*name)++;
	return 1;
}

static int cfg_set(cfg_parse *p, const struct cfg_item *it, void *base,
                   const char *name, const char *value)
{
	char *end;
	long v;

	switch(it->type) {
	case T_STR: {
		char **dst = (char **)((char *)base + it->off);
		/* A URL list may go on over several lines (lines are short). */
		if(*dst && !strcmp(name, "timestamp_urls")) {
			size_t n = strlen(*dst) + strlen(value) + 2;
			char *more = malloc(n);
			if(!more)
				return cfg_err(p, "out of memory");
			snprintf(more, n, "%s %s", *dst, value);
			free(*dst);
			*dst = more;
			return 1;
		}
		if(*dst && it->off == C(proxy_url))
			return cfg_err(p, "'%s': the proxy is given twice (service_proxy and "
			               "timestamp_proxy are old names of proxy, which serves both)", name);
		if(*dst)
			return cfg_err(p, it->off == C(svc_audit_log) ? "'%s' given twice (sign_log is "
			               "the old name of audit_log)" : "'%s' given twice", name);
		if(!(*dst = strdup(value)))
			return cfg_err(p, "out of memory");
		return 1;
	}
	case T_INT: case T_SIZE:
		errno = 0;
		v = strtol(value, &end, 10);
		if(errno || end == value || *end || v < it->min || v > it->max)
			return cfg_err(p, "'%s' must be a whole number from %ld to %ld, not '%s'",
			               name, it->min, it->max, value);
		if(it->type == T_SIZE)
			*(size_t *)((char *)base + it->off) = (size_t)v;
		else if(it->off == C(connect_timeout) || it->off == C(timeout))
			*(long *)((char *)base + it->off) = v;
		else
			*(int *)((char *)base + it->off) = (int)v;
		return 1;
	case T_ONFAIL:
		if(!strcmp(value, "refuse"))
			p->c->on_fail = SG_ON_FAIL_REFUSE;
		else if(!strcmp(value, "serve-unsigned"))
			p->c->on_fail = SG_ON_FAIL_SERVE_UNSIGNED;
		else
			return cfg_err(p, "on_sign_failure must be 'refuse' or 'serve-unsigned', not '%s'",
			               value);
		return 1;
	case T_METHOD:
		if(!strcmp(value, "service"))
			p->c->method = SG_METHOD_SERVICE;
		else if(!strcmp(value, "custom"))
			p->c->method = SG_METHOD_CUSTOM;
		else
			return cfg_err(p, "sign_method must be 'service' or 'custom', not '%s'", value);
		return 1;
	case T_BOOL:
		if(!strcmp(value, "yes"))
			*(int *)((char *)base + it->off) = 1;
		else if(!strcmp(value, "no"))
			*(int *)((char *)base + it->off) = 0;
		else
			return cfg_err(p, "'%s' must be 'yes' or 'no', not '%s'", name, value);
		return 1;
	case T_MD:
		if(sg_md_from_name(value, &p->c->md))
			return cfg_err(p, "%s", sg_last_error());
		return 1;
	case T_DIGESTS: {
		sg_cfg_client *cl = base;
		char *copy = strdup(value), *save = NULL, *tok;
		sg_md md;
		if(!copy)
			return cfg_err(p, "out of memory");
		for(tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
			if(sg_md_from_name(tok, &md)) {
				cfg_err(p, "digests: %s", sg_last_error());
				free(copy);
				return 0;
			}
			cl->digests |= 1u << md;
		}
		free(copy);
		if(!cl->digests)
			return cfg_err(p, "digests: name at least one algorithm");
		return 1;
	}
	case T_RATE: {
		/* N/s, N/min or N/h: a token bucket of N (or burst) refilled at
		 * that rate. */
		static const struct { const char *unit; double secs; } units[] = {
			{ "s", 1 }, { "sec", 1 }, { "second", 1 }, { "min", 60 }, { "minute", 60 },
			{ "h", 3600 }, { "hour", 3600 },
		};
		sg_cfg_client *cl = base;
		size_t i;
		errno = 0;
		v = strtol(value, &end, 10);
		while(*end == ' ')
			end++;
		if(errno || end == value || v < 1 || v > 1000000 || *end++ != '/')
			return cfg_err(p, "rate must be N/s, N/min or N/h (N from 1 to 1000000), not '%s'",
			               value);
		while(*end == ' ')
			end++;
		for(i = 0; i < sizeof(units) / sizeof(units[0]) && strcmp(end, units[i].unit); i++)
			;
		if(i == sizeof(units) / sizeof(units[0]))
			return cfg_err(p, "rate must be N/s, N/min or N/h (N from 1 to 1000000), not '%s'",
			               value);
		cl->rate = (double)v / units[i].secs;
		if(!cl->burst)
			cl->burst = (int)v;
		return 1;
	}
	case T_LIST: {
		sg_cfg_client *cl = base;
		char *copy = strdup(value), *save = NULL, *tok;
		if(!copy)
			return cfg_err(p, "out of memory");
		for(tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
			if(cl->nkeys == SG_CFG_MAX_CLIENT_KEYS) {
				free(copy);
				return cfg_err(p, "more than %d keys for one client", SG_CFG_MAX_CLIENT_KEYS);
			}
			if(!(cl->keys[cl->nkeys++] = strdup(tok))) {
				free(copy);
				return cfg_err(p, "out of memory");
			}
		}
		free(copy);
		return 1;
	}
	}
	return cfg_err(p, "internal error");
}

static int cfg_handler(void *user, const char *section, const char *name,
                       const char *value)
{
	cfg_parse *p = user;
	sg_config *c = p->c;
	char kind[32];
	const char *sname = NULL;
	void *base = c;

	if(p->err[0])
		return 0;
	if(!cfg_section(section, kind, sizeof(kind), &sname))
		return cfg_err(p, "unknown section [%s]", section);
	if(!strcmp(kind, "key") || !strcmp(kind, "client")) {
		if(!sname || !*sname)
			return cfg_err(p, "[%s] needs a name: [%s NAME]", kind, kind);
		if(!strcmp(kind, "key")) {
			if(!p->key || strcmp(p->key->name, sname)) {
				if(sg_config_key(c, sname))
					return cfg_err(p, "key '%s' defined twice", sname);
				if(c->nkeys == SG_CFG_MAX_KEYS)
					return cfg_err(p, "more than %d keys", SG_CFG_MAX_KEYS);
				p->key = &c->keys[c->nkeys++];
				if(!(p->key->name = strdup(sname)))
					return cfg_err(p, "out of memory");
			}
			base = p->key;
		} else {
			if(!p->client || strcmp(p->client->name, sname)) {
				for(size_t i = 0; i < c->nclients; i++)
					if(!strcmp(c->clients[i].name, sname))
						return cfg_err(p, "client '%s' defined twice", sname);
				if(c->nclients == SG_CFG_MAX_CLIENTS)
					return cfg_err(p, "more than %d clients", SG_CFG_MAX_CLIENTS);
				p->client = &c->clients[c->nclients++];
				if(!(p->client->name = strdup(sname)))
					return cfg_err(p, "out of memory");
			}
			base = p->client;
		}
	} else if(sname) {
		return cfg_err(p, "unknown section [%s]", section);
	}
	if(!name) /* a section header with no keys yet (inih >= 51 may call this) */
		return 1;
	if(!strcmp(kind, "service") && !strcmp(name, "sign_log"))
		c->svc_audit_log_old_name = 1;
	if(!strcmp(kind, "serve") && (!strcmp(name, "service_proxy") ||
	                              !strcmp(name, "timestamp_proxy")))
		c->proxy_old_name = 1;
	for(size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++)
		if(!strcmp(items[i].section, kind) && !strcmp(items[i].name, name))
			return cfg_set(p, &items[i], base, name, value);
	if(strcmp(kind, "log") && strcmp(kind, "service") && strcmp(kind, "serve") &&
	   strcmp(kind, "key") && strcmp(kind, "client"))
		return cfg_err(p, "unknown section [%s]", section);
	return cfg_err(p, "unknown setting '%s' in [%s]", name, section);
}

/* Splits timestamp_urls and checks the timestamp_* settings of one
 * section (nothing is checked over the network). */
static sg_status cfg_check_timestamp(const sg_config *c, sg_cfg_timestamp *t,
                                     const char *section)
{
	char *copy, *save = NULL, *tok;
	sg_tsa_opts o;
	sg_status rc;

	if(t->policy_text && !strcmp(t->policy_text, "fail"))
		t->policy = SG_TIMESTAMP_FAIL;
	else if(t->policy_text && !strcmp(t->policy_text, "skip"))
		t->policy = SG_TIMESTAMP_SKIP;
	else if(t->policy_text)
		return sg_fail(SG_ERR_USAGE, "%s: [%s] timestamp_policy must be 'fail' or 'skip', "
		               "not '%s'", c->path, section, t->policy_text);
	if(!t->urls_text) {
		if(t->policy_text || t->ca || t->proxy)
			return sg_fail(SG_ERR_USAGE, "%s: [%s] has timestamp_* settings but no "
			               "timestamp_urls", c->path, section);
		return SG_OK;
	}
	if(!(copy = strdup(t->urls_text)))
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	for(tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if(t->nurls == SG_TSA_MAX_URLS) {
			free(copy);
			return sg_fail(SG_ERR_USAGE, "%s: [%s] timestamp_urls: more than %d URLs",
			               c->path, section, SG_TSA_MAX_URLS);
		}
		if(!(t->urls[t->nurls++] = strdup(tok))) {
			free(copy);
			return sg_fail(SG_ERR_NOMEM, "out of memory");
		}
	}
	free(copy);
	sg_config_timestamp_opts(t, &o);
	rc = sg_tsa_opts_check(&o);
	if(rc)
		return sg_fail_prefix(rc, "%s: [%s] timestamp_urls", c->path, section);
	return SG_OK;
}

/* Whole-file checks, after parsing. */
static sg_status cfg_check(sg_config *c)
{
	sg_status ts_rc = cfg_check_timestamp(c, &c->svc_ts, "service");

	if(!ts_rc)
		ts_rc = cfg_check_timestamp(c, &c->srv_ts, "serve");
	if(ts_rc)
		return ts_rc;
	if(c->proxy_url) {
		char *url = NULL;
		if(sg_proxy_parse(c->proxy_url, &url))
			return sg_fail_prefix(SG_ERR_USAGE, "%s: [serve]", c->path);
		free(c->proxy_url);
		c->proxy_url = url;
	}
	if(c->svc_ts.proxy) {
		char *url = NULL;
		if(sg_proxy_parse(c->svc_ts.proxy, &url))
			return sg_fail_prefix(SG_ERR_USAGE, "%s: [service] timestamp_proxy", c->path);
		free(c->svc_ts.proxy);
		c->svc_ts.proxy = url;
	}
	if((c->proxy_user || c->proxy_password || c->no_proxy) && !c->proxy_url)
		return sg_fail(SG_ERR_USAGE, "%s: [serve] has proxy_user, proxy_password or "
		               "no_proxy but no proxy", c->path);
	if(c->proxy_password && !c->proxy_user)
		return sg_fail(SG_ERR_USAGE, "%s: [serve] has proxy_password but no proxy_user",
		               c->path);
	for(size_t i = 0; i < c->nkeys; i++) {
		sg_cfg_key *k = &c->keys[i];
		if(!k->uri && !k->pfx)
			return sg_fail(SG_ERR_USAGE, "%s: [key %s] needs 'uri' (a pkcs11: URI or key file) or 'pfx'",
			               c->path, k->name);
		if(k->uri && k->pfx)
			return sg_fail(SG_ERR_USAGE, "%s: [key %s] has both 'uri' and 'pfx'", c->path, k->name);
	}
	for(size_t i = 0; i < c->nclients; i++) {
		sg_cfg_client *cl = &c->clients[i];
		if(!cl->token && !cl->cert_subject && !cl->cert_fingerprint)
			return sg_fail(SG_ERR_USAGE, "%s: [client %s] needs 'token', 'cert_subject' or "
			               "'cert_fingerprint'", c->path, cl->name);
		if(cl->burst && !cl->rate)
			return sg_fail(SG_ERR_USAGE, "%s: [client %s] has 'burst' but no 'rate'", c->path,
			               cl->name);
		if((cl->cert_subject || cl->cert_fingerprint) && !c->svc_client_ca)
			return sg_fail(SG_ERR_USAGE, "%s: [client %s] names a certificate, but [service] "
			               "has no client_ca to verify it with", c->path, cl->name);
		if(cl->cert_fingerprint) {
			/* Normalised in place: lower-case hex, no colons. */
			char *w = cl->cert_fingerprint;
			for(const char *q = cl->cert_fingerprint; *q; q++)
				if(*q != ':')
					*w++ = (char)(*q >= 'A' && *q <= 'F' ? *q - 'A' + 'a' : *q);
			*w = '\0';
			if(strlen(cl->cert_fingerprint) != 64 ||
			   strspn(cl->cert_fingerprint, "0123456789abcdef") != 64)
				return sg_fail(SG_ERR_USAGE, "%s: [client %s] cert_fingerprint must be the "
				               "certificate's SHA-256 in hex (64 digits, colons allowed)",
				               c->path, cl->name);
		}
		for(size_t k = 0; k < cl->nkeys; k++) {
			if(!sg_config_key(c, cl->keys[k]))
				return sg_fail(SG_ERR_USAGE, "%s: [client %s] names key '%s', which no [key] section defines",
				               c->path, cl->name, cl->keys[k]);
			/* The TSA key signs timestamps only: RFC 3161 2.3 gives its
			 * certificate no other purpose. */
			if(c->svc_tsa_key && !strcmp(cl->keys[k], c->svc_tsa_key))
				return sg_fail(SG_ERR_USAGE, "%s: [client %s] names key '%s', which is the "
				               "[service] tsa_key and signs timestamps only", c->path, cl->name,
				               cl->keys[k]);
		}
	}
	if(c->svc_tsa_key && !sg_config_key(c, c->svc_tsa_key))
		return sg_fail(SG_ERR_USAGE, "%s: [service] tsa_key names key '%s', which no [key] section defines",
		               c->path, c->svc_tsa_key);
	if(c->svc_tsa_policy) {
		/* A dotted OID of at least two arcs, nothing else (no names). */
		size_t n = strspn(c->svc_tsa_policy, "0123456789.");
		ASN1_OBJECT *o = NULL;
		if(n != strlen(c->svc_tsa_policy) || !strchr(c->svc_tsa_policy, '.') ||
		   !(o = OBJ_txt2obj(c->svc_tsa_policy, 1))) {
			ERR_clear_error();
			return sg_fail(SG_ERR_USAGE, "%s: [service] tsa_policy '%s' is not a dotted OID "
			               "such as 1.3.6.1.4.1.32473.1", c->path, c->svc_tsa_policy);
		}
		ASN1_OBJECT_free(o);
	}
	return SG_OK;
}

sg_status sg_config_load(const char *path, sg_config **out)
{
	cfg_parse p = { 0 };
	sg_config *c;
	sg_status rc;
	int line;
	FILE *fp;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if(!c || !(c->path = strdup(path))) {
		free(c);
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	}
	c->svc_max_body = 65536;
	c->svc_threads = 4;
	c->srv_threads = 16;
	c->md = SG_MD_SHA256;
	c->connect_timeout = 5;
	c->timeout = 30;
	c->retries = 2;
	c->admin = 1;
	c->svc_ts.timeout = c->srv_ts.timeout = 30;
	c->svc_ts.retries = c->srv_ts.retries = 1;
	p.c = c;
	fp = fopen(path, "r");
	if(!fp) {
		rc = sg_fail(SG_ERR_IO, "cannot open config %s: %s", path, strerror(errno));
		goto fail;
	}
	/* inih reads a line in a buffer of INI_MAX_LINE bytes and takes what
	 * is left of a longer line for the next one: refuse long lines here,
	 * with the right line number. */
	{
		int ch, n = 1, col = 0;
		while((ch = getc(fp)) != EOF) {
			if(ch == '\n') {
				n++;
				col = 0;
			} else if(++col >= INI_MAX_LINE - 1) {
				fclose(fp);
				rc = sg_fail(SG_ERR_USAGE, "%s:%d: line longer than %d characters "
				             "(timestamp_urls may be given on several lines)",
				             path, n, INI_MAX_LINE - 2);
				goto fail;
			}
		}
		rewind(fp);
	}
	line = ini_parse_file(fp, cfg_handler, &p);
	fclose(fp);
	if(line) {
		rc = sg_fail(SG_ERR_USAGE, "%s:%d: %s", path, line,
		             p.err[0] ? p.err : "syntax error (expected [section] or name = value)");
		goto fail;
	}
	rc = cfg_check(c);
	if(rc)
		goto fail;
	*out = c;
	return SG_OK;
fail:
	sg_config_free(c);
	return rc;
}

static void cfg_free_key(sg_cfg_key *k)
{
	free(k->name);
	free(k->uri);
	free(k->cert);
	free(k->pass);
	free(k->pfx);
}

static void cfg_free_timestamp(sg_cfg_timestamp *t)
{
	for(size_t i = 0; i < t->nurls; i++)
		free(t->urls[i]);
	free(t->urls_text);
	free(t->policy_text);
	free(t->ca);
	free(t->proxy);
}

void sg_config_free(sg_config *c)
{
	if(!c)
		return;
	for(size_t i = 0; i < c->nkeys; i++)
		cfg_free_key(&c->keys[i]);
	for(size_t i = 0; i < c->nclients; i++) {
		free(c->clients[i].name);
		free(c->clients[i].token);
		free(c->clients[i].cert_subject);
		free(c->clients[i].cert_fingerprint);
		for(size_t k = 0; k < c->clients[i].nkeys; k++)
			free(c->clients[i].keys[k]);
	}
	cfg_free_key(&c->custom);
	cfg_free_timestamp(&c->svc_ts);
	cfg_free_timestamp(&c->srv_ts);
	char **strs[] = { &c->path, &c->log, &c->svc_listen, &c->svc_tls_cert, &c->svc_tls_key,
	                  &c->svc_client_ca,
	                  &c->svc_audit_log, &c->srv_listen, &c->srv_root, &c->srv_cache,
	                  &c->prog_name, &c->prog_url, &c->svc_url, &c->svc_ca,
	                  &c->svc_token, &c->svc_key, &c->proxy_url, &c->proxy_user,
	                  &c->proxy_password, &c->no_proxy, &c->admin_listen, &c->admin_password,
	                  &c->admin_password_hash, &c->admin_dir,
	                  &c->svc_tsa_key, &c->svc_tsa_policy };
	for(size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		free(*strs[i]);
	free(c);
}

void sg_config_timestamp_opts(const sg_cfg_timestamp *t, sg_tsa_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->urls = (const char *const *)t->urls;
	o->nurls = t->nurls;
	o->ca_file = t->ca;
	/* "" keeps libcurl from reading the proxy variables: the configuration
	 * alone decides, as for service_proxy. */
	o->proxy.url = t->proxy ? t->proxy : "";
	o->timeout = t->timeout;
	o->retries = t->retries;
}

void sg_config_proxy(const sg_config *c, sg_proxy *p)
{
	p->url = c->proxy_url ? c->proxy_url : "";
	p->user = c->proxy_user;
	p->password = c->proxy_password;
	p->no_proxy = c->no_proxy;
}

const sg_cfg_key *sg_config_key(const sg_config *c, const char *name)
{
	for(size_t i = 0; i < c->nkeys; i++)
		if(!strcmp(c->keys[i].name, name))
			return &c->keys[i];
	return NULL;
}

sg_status sg_parse_hostport(const char *s, char **host, int *port)
{
	const char *colon;
	char *end;
	long v;
	size_t hl;

	*host = NULL;
	*port = 0;
	if(s[0] == '[') {
		const char *rb = strchr(s, ']');
		if(!rb || rb[1] != ':')
			return sg_fail(SG_ERR_USAGE, "'%s' is not [ADDRESS]:PORT", s);
		colon = rb + 1;
		s++;
		hl = (size_t)(rb - s);
	} else {
		colon = strrchr(s, ':');
		if(!colon)
			return sg_fail(SG_ERR_USAGE, "'%s' is not HOST:PORT", s);
		hl = (size_t)(colon - s);
	}
	errno = 0;
	v = strtol(colon + 1, &end, 10);
	if(errno || *end || v < 0 || v > 65535 || end == colon + 1)
		return sg_fail(SG_ERR_USAGE, "bad port in '%s'", s);
	*host = strndup(s, hl);
	if(!*host)
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	*port = (int)v;
	return SG_OK;
}

/* The name of a "name = value" line (inih also takes ':'), trimmed, or 0
 * if line is no such line. */
static size_t cfg_line_name(const char *line, size_t len, const char **name)
{
	size_t i = 0, end;

	while(i < len && line[i] != '\n' && isspace((unsigned char)line[i]))
		i++;
	if(i == len || line[i] == ';' || line[i] == '#' || line[i] == '[')
		return 0;
	*name = line + i;
	end = i;
	while(end < len && line[end] != '=' && line[end] != ':' && line[end] != '\n')
		end++;
	if(end == len || line[end] == '\n')
		return 0;
	while(end > i && isspace((unsigned char)line[end - 1]))
		end--;
	return end - i;
}

/* Is there something at line[k] (not a blank line, not a comment)? */
static int cfg_content(const char *line, size_t ll, size_t k)
{
	return k < ll && line[k] != '\n' && line[k] != ';' && line[k] != '#';
}

sg_status sg_config_rewrite(const char *text, size_t len, const char *section,
                            const sg_cfg_change *ch, size_t n, char **out)
{
	size_t cap = len + strlen(section) + 64, olen = 0, ins = (size_t)-1, pos = 0, sl;
	int in_target = 0, dropping = 0, prev_key = 0;
	unsigned char *done;
	char *o;

	*out = NULL;
	if(memchr(text, '\0', len))
		return sg_fail(SG_ERR_USAGE, "the configuration file holds a NUL byte (at offset %zu): "
		               "it is not changed automatically; correct it by hand",
		               (size_t)((const char *)memchr(text, '\0', len) - text));
	for(size_t i = 0; i < n; i++)
		cap += strlen(ch[i].name) + (ch[i].value ? strlen(ch[i].value) : 0) + 8;
	done = calloc(n ? n : 1, 1);
	o = malloc(cap);
	if(!done || !o) {
		free(done);
		free(o);
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	}
	sl = strlen(section);
	while(pos < len) {
		const char *line = text + pos, *nl = memchr(line, '\n', len - pos), *name;
		size_t ll = nl ? (size_t)(nl - line) + 1 : len - pos, nlen, k = 0, bom = 0;
		int replaced = 0, cont;

		/* inih skips a UTF-8 byte order mark at the start of the file. */
		if(pos == 0 && ll >= 3 && !memcmp(line, "\xEF\xBB\xBF", 3))
			k = bom = 3;
		pos += ll;
		/* inih skips what isspace() skips, \r \v \f too. */
		while(k < ll && line[k] != '\n' && isspace((unsigned char)line[k]))
			k++;
		/* inih reads an indented line after a setting as more of its value
		 * (even one that starts with '['): it goes with its setting. */
		cont = prev_key && k > bom && cfg_content(line, ll, k);
		if(dropping && cont)
			continue;
		dropping = 0;
		if(cont) {
			/* more of a value we keep */
		} else if(k < ll && line[k] == '[') {
			const char *rb = memchr(line + k, ']', ll - k);
			in_target = rb && (size_t)(rb - line - k - 1) == sl &&
			            !strncmp(line + k + 1, section, sl);
			prev_key = 0;
		} else if(cfg_content(line, ll, k)) {
			prev_key = 1;
			if(in_target && (nlen = cfg_line_name(line + bom, ll - bom, &name))) {
				for(size_t i = 0; i < n && !replaced; i++) {
					if(strlen(ch[i].name) != nlen || strncmp(ch[i].name, name, nlen))
						continue;
					replaced = dropping = 1;
					if(ch[i].value && !done[i])
						olen += (size_t)sprintf(o + olen, "%s = %s\n", ch[i].name,
						                        ch[i].value);
					done[i] = 1;
				}
			}
		}
		if(!replaced) {
			memcpy(o + olen, line, ll);
			olen += ll;
			if(!nl)
				o[olen++] = '\n';
		}
		/* New settings go after the section's last setting (or header). */
		if(in_target && cfg_content(line, ll, k))
			ins = olen;
	}
	/* inih reads an indented line after a setting as more of its value: if
	 * one follows (past blank lines and comments) where the new settings would go, they
	 * go at the end, in a [section] of their own. */
	if(ins != (size_t)-1) {
		size_t p = ins;
		while(p < olen) {
			size_t k = p;
			while(k < olen && o[k] != '\n' && isspace((unsigned char)o[k]))
				k++;
			if(k < olen && (o[k] == '\n' || o[k] == ';' || o[k] == '#')) {
				/* blank lines and comments do not end a value */
				const char *e = memchr(o + k, '\n', olen - k);
				p = e ? (size_t)(e - o) + 1 : olen;
				continue;
			}
			if(k > p && k < olen)
				ins = (size_t)-1;
			break;
		}
	}
	if(ins == (size_t)-1) {
		for(size_t i = 0; i < n; i++)
			if(ch[i].value) {
				olen += (size_t)sprintf(o + olen, "%s[%s]\n", olen ? "\n" : "", section);
				break;
			}
		ins = olen;
	}
	for(size_t i = 0; i < n; i++) {
		char line[1024];
		size_t m;
		if(done[i] || !ch[i].value)
			continue;
		m = (size_t)snprintf(line, sizeof(line), "%s = %s\n", ch[i].name, ch[i].value);
		if(m >= sizeof(line)) {
			free(done);
			free(o);
			return sg_fail(SG_ERR_USAGE, "%s: the value is too long", ch[i].name);
		}
		memmove(o + ins + m, o + ins, olen - ins);
		memcpy(o + ins, line, m);
		olen += m;
		ins += m;
	}
	o[olen] = '\0';
	free(done);
	*out = o;
	return SG_OK;
}
