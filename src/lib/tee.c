/*
 * tee.c - see tee.h.  A bounded queue of buffers between the hashing
 * thread and one writer thread.
 */
#define _GNU_SOURCE /* sync_file_range */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tee.h"

#define TEE_SYNC_EVERY (8u << 20)

struct sg_tee {
	int fd;
	sg_tee_fn fn;
	void *arg;
	pthread_t thread;
	int threaded;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned char *bufs[SG_TEE_BUFS];
	/* Queue of filled buffers (indices), and the free list. */
	int queue[SG_TEE_BUFS], qhead, qlen;
	size_t qsize[SG_TEE_BUFS];
	uint64_t qoff[SG_TEE_BUFS];
	int freelist[SG_TEE_BUFS], nfree;
	int closing;
	uint64_t synced;  /* writeback started up to here */
	sg_status rc;
	char err[512];
};

static int tee_index(sg_tee *t, unsigned char *buf)
{
	for(int i = 0; i < SG_TEE_BUFS; i++)
		if(t->bufs[i] == buf)
			return i;
	return -1;
}

static void *tee_writer(void *arg)
{
	sg_tee *t = arg;

	pthread_mutex_lock(&t->lock);
	for(;;) {
		int idx, failed;
		size_t len;
		uint64_t off;
		sg_status rc = SG_OK;

		while(!t->qlen && !t->closing)
			pthread_cond_wait(&t->cond, &t->lock);
		if(!t->qlen)
			break;
		idx = t->queue[t->qhead];
		len = t->qsize[t->qhead];
		off = t->qoff[t->qhead];
		failed = t->rc != SG_OK;
		pthread_mutex_unlock(&t->lock);

		/* t->rc and t->err change under the lock only: sg_tee_push
		 * reads them from the reading thread. */
		if(!failed) {
			rc = sg_write_all(t->fd, t->bufs[idx], len);
			if(!rc) {
				if(t->fn)
					t->fn(t->arg, off, t->bufs[idx], len);
				/* Start writeback now, so the final fsync has little
				 * left to wait for (Linux; a hint, errors ignored). */
				if(off + len - t->synced >= TEE_SYNC_EVERY) {
					(void)sync_file_range(t->fd, (off_t)t->synced,
					                      (off_t)(off + len - t->synced),
					                      SYNC_FILE_RANGE_WRITE);
					t->synced = off + len;
				}
			}
		}

		pthread_mutex_lock(&t->lock);
		if(rc) {
			snprintf(t->err, sizeof(t->err), "%s", sg_last_error());
			t->rc = rc;
		}
		t->qhead = (t->qhead + 1) % SG_TEE_BUFS;
		t->qlen--;
		t->freelist[t->nfree++] = idx;
		pthread_cond_broadcast(&t->cond);
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

sg_status sg_tee_new(int fd, sg_tee_fn fn, void *arg, sg_tee **out)
{
	sg_tee *t = calloc(1, sizeof(*t));
	int n = fd >= 0 ? SG_TEE_BUFS : 1;

	*out = NULL;
	if(!t)
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	t->fd = fd;
	t->fn = fn;
	t->arg = arg;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	for(int i = 0; i < n; i++) {
		if(!(t->bufs[i] = malloc(SG_TEE_CHUNK))) {
			sg_tee_finish(t);
			return sg_fail(SG_ERR_NOMEM, "out of memory");
		}
		t->freelist[t->nfree++] = i;
	}
	if(fd >= 0) {
		if(pthread_create(&t->thread, NULL, tee_writer, t)) {
			sg_tee_finish(t);
			return sg_fail(SG_ERR_INTERNAL, "cannot start the writer thread");
		}
		t->threaded = 1;
	}
	*out = t;
	return SG_OK;
}

unsigned char *sg_tee_buffer(sg_tee *t)
{
	int idx;

	pthread_mutex_lock(&t->lock);
	while(!t->nfree)
		pthread_cond_wait(&t->cond, &t->lock);
	idx = t->freelist[--t->nfree];
	pthread_mutex_unlock(&t->lock);
	return t->bufs[idx];
}

sg_status sg_tee_push(sg_tee *t, unsigned char *buf, size_t len, uint64_t off)
{
	int idx = tee_index(t, buf);
	sg_status rc;

	if(idx < 0)
		return sg_fail(SG_ERR_INTERNAL, "sg_tee_push: foreign buffer");
	if(!t->threaded) {
		if(t->fn)
			t->fn(t->arg, off, buf, len);
		t->freelist[t->nfree++] = idx;
		return SG_OK;
	}
	pthread_mutex_lock(&t->lock);
	t->queue[(t->qhead + t->qlen) % SG_TEE_BUFS] = idx;
	t->qsize[(t->qhead + t->qlen) % SG_TEE_BUFS] = len;
	t->qoff[(t->qhead + t->qlen) % SG_TEE_BUFS] = off;
	t->qlen++;
	rc = t->rc;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	return rc ? sg_fail(rc, "%s", t->err) : SG_OK;
}

sg_status sg_tee_finish(sg_tee *t)
{
	sg_status rc;

	if(!t)
		return SG_OK;
	if(t->threaded) {
		pthread_mutex_lock(&t->lock);
		t->closing = 1;
		pthread_cond_broadcast(&t->cond);
		pthread_mutex_unlock(&t->lock);
		pthread_join(t->thread, NULL);
	}
	rc = t->rc ? sg_fail(t->rc, "%s", t->err) : SG_OK;
	for(int i = 0; i < SG_TEE_BUFS; i++)
		free(t->bufs[i]);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->cond);
	free(t);
	return rc;
}
