/*
 * serve_int.h - what the download server (serve.c) shares with its admin
 * page (admin.c): the signing setup, swapped whole when the page saves a
 * change, and the record of recent signings.
 */
#ifndef SG_SERVE_INT_H
#define SG_SERVE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "config.h"
#include "serve_cache.h"
#include "signgate/remote.h"

#define SERVE_EVENTS 20    /* recent signings kept for the admin page */

/* Everything a signing needs, made from one configuration.  Requests hold
 * a reference while they use it; the admin page puts a new one in place,
 * and the old one goes when its last request is done. */
struct serve_signing {
	atomic_int refs;
	sg_config *cfg;        /* owned */
	sg_remote *remote;     /* method service */
	sg_signer *signer;     /* method custom */
	sg_sign_opts so;
	sg_tsa_opts ts_opts;   /* [serve] timestamp_*; nurls 0: none */
	unsigned char signer_id[32];
};

struct serve_event {
	time_t when;
	int ok;
	double ms;
	char file[128];
	char what[256];
};

struct sg_admin;
struct serve_req;

struct serve {
	char *cfgpath;
	int root_fd;
	int use_openat2;
	serve_cache *cache;
	pthread_mutex_t lock;          /* cur, events, last_error */
	struct serve_signing *cur;
	struct serve_event events[SERVE_EVENTS];
	size_t nevents, next_event;
	char last_error[400];
	time_t last_error_at;
	/* After a signing that failed for want of an answer (service, proxy or
	 * TSA unreachable or silent), others fail at once for a while rather
	 * than each wait out the timeouts: see serve_breaker(). */
	const struct serve_signing *breaker_g;   /* the setup that failed */
	time_t breaker_until;
	char breaker_why[300];
	struct sg_admin *admin;        /* NULL: no admin page */
	/* downloads are worked out by signing threads (serve.c) */
	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	struct serve_req *qhead, *qtail;
	pthread_t *pool;
	int npool, pool_ready, stopping;
};

/* Makes a signing setup from c (taken over, freed on failure too): opens
 * the key (PIN login, test signature) or makes the service client (no
 * network traffic). */
sg_status serve_signing_new(sg_config *c, struct serve_signing **out);
/* Asks the signing service whether it answers (method service only). */
sg_status serve_signing_probe(struct serve_signing *g);
/* Logs what g will do; probe: and checks the service once. */
void serve_signing_announce(const struct serve_signing *g, int probe);
struct serve_signing *serve_signing_get(struct serve *s);
void serve_signing_put(struct serve_signing *g);
/* Puts g in place (the server's reference is handed over). */
void serve_signing_swap(struct serve *s, struct serve_signing *g);
/* Signs a small PE file made on the spot with g, checks the result with
 * the verifier, and says what happened in out. */
sg_status serve_test_sign(struct serve *s, struct serve_signing *g, char *out, size_t outlen);
/* Records a signing (or a failed one) for the admin page. */
void serve_note(struct serve *s, const char *file, int ok, double ms, const char *fmt, ...)
	SG_PRINTF(5, 6);

#endif
