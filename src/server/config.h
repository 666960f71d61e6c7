/*
 * config.h - the configuration file shared by the signing service
 * (`signgate service`) and the download server (`signgate serve`): one INI
 * file, documented in docs/CONFIG.md.  Each server reads its own sections.
 * A bad file is refused with "PATH:LINE: reason".
 */
#ifndef SG_CONFIG_H
#define SG_CONFIG_H

#include <stddef.h>

#include "signgate/signgate.h"
#include "signgate/timestamp.h"

#define SG_CFG_MAX_KEYS 32
#define SG_CFG_MAX_CLIENTS 64
#define SG_CFG_MAX_CLIENT_KEYS 16

typedef struct sg_cfg_key {
	char *name;
	char *uri;     /* pkcs11: URI or PEM key path */
	char *cert;    /* PEM chain; optional for a token certificate */
	char *pass;    /* secret spec for PIN / key password, optional */
	char *pfx;     /* PKCS#12 instead of uri+cert */
} sg_cfg_key;

typedef struct sg_cfg_client {
	char *name;
	char *token;   /* secret spec: file:PATH or env:VAR (or pass:); NULL: none */
	char *keys[SG_CFG_MAX_CLIENT_KEYS];
	size_t nkeys;
	/* TLS client certificate ([service] client_ca); both NULL: none.
	 * When a client has a token and a certificate, both are required. */
	char *cert_subject;      /* "/O=../CN=.." (X509_NAME_oneline) or a CN */
	char *cert_fingerprint;  /* SHA-256 of the DER, hex (colons allowed) */
	unsigned digests;        /* bit (1 << sg_md) per allowed algorithm; 0: all */
	double rate;             /* requests per second; 0: no limit */
	int burst;               /* token bucket size; 0: the rate's N */
} sg_cfg_client;

/* timestamp_* settings of [service] and [serve]: the TSAs that stamp our
 * signatures (RFC 3161).  Not the service's own TSA (tsa_*). */
typedef struct sg_cfg_timestamp {
	char *urls_text;       /* timestamp_urls as given */
	char *policy_text;     /* timestamp_policy as given */
	char *urls[SG_TSA_MAX_URLS];
	size_t nurls;          /* 0: no timestamps */
	sg_timestamp_policy policy;
	char *ca;              /* PEM roots for https TSAs */
	char *proxy;           /* NULL: none (the environment is ignored) */
	int timeout;           /* seconds per attempt */
	int retries;
} sg_cfg_timestamp;

typedef enum { SG_ON_FAIL_REFUSE = 0, SG_ON_FAIL_SERVE_UNSIGNED } sg_on_fail;
typedef enum { SG_METHOD_SERVICE = 0, SG_METHOD_CUSTOM } sg_method;

typedef struct sg_config {
	char *path;
	char *log;             /* [log] file: path, or "-" for stderr */

	/* [service] */
	char *svc_listen;      /* host:port */
	char *svc_tls_cert, *svc_tls_key;
	char *svc_client_ca;   /* PEM roots for TLS client certificates; NULL: none asked */
	char *svc_audit_log;   /* the audit log (audit.h); NULL: none */
	int svc_audit_log_old_name;   /* it was given as sign_log (deprecated) */
	size_t svc_max_body;
	int svc_threads;
	sg_cfg_key keys[SG_CFG_MAX_KEYS];
	size_t nkeys;
	sg_cfg_client clients[SG_CFG_MAX_CLIENTS];
	size_t nclients;
	sg_cfg_timestamp svc_ts;   /* timestamps on /v1/sign signatures */
	/* [service] RFC 3161 TSA at POST /tsa */
	char *svc_tsa_key;     /* a [key NAME] with a timeStamping certificate; NULL: no TSA */
	char *svc_tsa_policy;  /* dotted OID; NULL: SG_TSA_DEFAULT_POLICY */
	int svc_tsa_require_token;

	/* [serve] */
	char *srv_listen;
	char *srv_root;        /* directory of files to serve */
	char *srv_cache;       /* directory for signed copies */
	int srv_threads;
	sg_on_fail on_fail;
	sg_method method;
	sg_md md;
	char *prog_name, *prog_url;
	/* [serve] signing through the service */
	char *svc_url, *svc_ca, *svc_token, *svc_key;
	/* [serve] proxy: every outgoing request (service, TSAs) */
	char *proxy_url;       /* http://HOST:PORT after checking; NULL: none */
	char *proxy_user, *proxy_password /* secret spec */, *no_proxy;
	int proxy_old_name;    /* given as service_proxy or timestamp_proxy */
	long connect_timeout, timeout;   /* seconds */
	int retries;
	/* [serve] custom method: a local key */
	sg_cfg_key custom;
	sg_cfg_timestamp srv_ts;   /* timestamps on signed copies */
	/* [serve] the admin page (admin.c) */
	int admin;             /* 0: off */
	char *admin_listen;    /* a listener of its own; NULL: the downloads' (if loopback) */
	char *admin_password;  /* secret spec */
	char *admin_password_hash;   /* pbkdf2-sha256:ITER:SALT:HASH, set by the page */
	char *admin_dir;       /* uploads and secrets the page saves; NULL: CONFIGDIR/admin */
} sg_config;

/* Loads and checks path.  On failure sg_last_error() says "PATH:LINE:
 * reason" (or what is missing). */
sg_status sg_config_load(const char *path, sg_config **out);
void sg_config_free(sg_config *c);
/* The named key, or NULL. */
const sg_cfg_key *sg_config_key(const sg_config *c, const char *name);
/* The library's TSA options for t (pointing into t). */
void sg_config_timestamp_opts(const sg_cfg_timestamp *t, sg_tsa_opts *o);
/* The [serve] proxy settings of c as the library takes them (pointing
 * into c); "" for the URL when none is set, so the environment is not read. */
void sg_config_proxy(const sg_config *c, sg_proxy *p);
/* One setting to change: value NULL removes it. */
typedef struct sg_cfg_change {
	const char *name;
	const char *value;
} sg_cfg_change;
/* The configuration text (len bytes) with the settings of [section]
 * changed: each named setting's line is replaced (or removed, with any
 * indented continuation lines), a new one goes after the section's last
 * setting, and the section is added at the end if it is missing.  Comments
 * and every other line stay as they are.  *out is NUL-terminated (free()).
 * Values must have been checked: one line, no comment characters. */
sg_status sg_config_rewrite(const char *text, size_t len, const char *section,
                            const sg_cfg_change *ch, size_t n, char **out);
/* Parses "host:port" (IPv4, [IPv6] or name).  host is malloc'd. */
sg_status sg_parse_hostport(const char *s, char **host, int *port);

#endif
