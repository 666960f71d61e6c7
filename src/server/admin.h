/*
 * admin.h - the download server's admin page at /conf (admin.c): log in,
 * see the signing status, set the HTTP proxy and the signing method, run
 * a test signing.  Changes are written to the configuration file (temp
 * file, fsync, rename) and applied without a restart.
 */
#ifndef SG_ADMIN_H
#define SG_ADMIN_H

#include <event2/http.h>

#include "config.h"

#define SG_ADMIN_MAX_BODY (1u << 20)   /* a form with an uploaded PKCS#12 file */

struct serve;
typedef struct sg_admin sg_admin;

/* 1 if path is the admin page's ("/conf" or under it). */
int sg_admin_path(const char *path);
/* Sets the page up from c's admin_* settings.  listen_host: the download
 * listener's host; the page is served there only if it is a loopback
 * address (else on admin_listen, or not at all).  *out is NULL when the
 * page is off. */
sg_status sg_admin_new(struct serve *s, const sg_config *c, const char *listen_host,
                       sg_admin **out);
/* admin_listen, or NULL when the page shares the downloads' listener. */
const char *sg_admin_listen(const sg_admin *a);
/* Logs where the page is and how to log in. */
void sg_admin_announce(const sg_admin *a, const char *where, int admin_port);
/* Takes req over: the page's own thread works it out, and req's event loop
 * sends the reply (see admin.c), so the loop never waits on the page. */
void sg_admin_handle(sg_admin *a, struct evhttp_request *req);
/* Lets the page's thread finish its request and stop (before the event
 * loops stop: it hands replies to them).  sg_admin_free does it too. */
void sg_admin_stop(sg_admin *a);
void sg_admin_free(sg_admin *a);

#endif
