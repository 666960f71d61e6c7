/*
 * p11speed.c - raw signing rate of a key through signgate's signer (PKCS#11
 * or key file): the yardstick for the signing service's requests per
 * second.  usage: p11speed KEY CERT SECONDS THREADS
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "signgate/signgate.h"

static sg_signer *signer;
static double seconds;
static int whole; /* 1: time sg_authenticode_sign, the service's work */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *worker(void *arg)
{
	unsigned char digest[32] = { 1, 2, 3 }, *sig;
	size_t siglen;
	long *count = arg;
	double end = now() + seconds;

	while(now() < end) {
		sg_status rc = whole ? sg_authenticode_sign(signer, "pe", SG_MD_SHA256, digest,
		                                            sizeof(digest), NULL, &sig, &siglen)
		                     : sg_signer_sign_digest(signer, SG_MD_SHA256, digest,
		                                             sizeof(digest), &sig, &siglen);
		if(rc) {
			fprintf(stderr, "sign: %s\n", sg_last_error());
			exit(1);
		}
		sg_free(sig);
		(*count)++;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t[64];
	long counts[64] = { 0 }, total = 0;
	int n;

	if(argc != 5 || (n = atoi(argv[4])) < 1 || n > 64) {
		fprintf(stderr, "usage: p11speed KEY CERT SECONDS THREADS\n");
		return 2;
	}
	seconds = atof(argv[3]);
	whole = getenv("P11SPEED_AUTHENTICODE") != NULL;
	if(sg_signer_open(argv[1], argv[2], NULL, &signer)) {
		fprintf(stderr, "%s\n", sg_last_error());
		return 1;
	}
	for(int i = 0; i < n; i++)
		pthread_create(&t[i], NULL, worker, &counts[i]);
	for(int i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		total += counts[i];
	}
	printf("%.1f\n", (double)total / seconds);
	sg_signer_free(signer);
	return 0;
}
