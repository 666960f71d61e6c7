/*
 * servers.h - entry points of the two servers, called by the signgate
 * command: `signgate service` (the signing service) and `signgate serve`
 * (the download server).  Each parses its own options and runs until
 * SIGINT/SIGTERM.
 */
#ifndef SG_SERVERS_H
#define SG_SERVERS_H

int sg_service_main(int argc, char **argv);
int sg_serve_main(int argc, char **argv);

#endif
