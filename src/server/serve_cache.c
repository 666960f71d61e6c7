/*
 * serve_cache.c - see serve_cache.h.
 *
 * One mutex guards the map (a hash table of entries), the LRU list of
 * finished copies and every entry's state; one condition variable wakes
 * the threads waiting for a copy in the making.  The mutex is never held
 * across the slow part (hashing, signing): only across map updates, an
 * openat() and a few unlinkat()s.  An entry a thread still looks at (its
 * refs) outlives its removal from the map.
 *
 * Files are opened, renamed and removed relative to the directory's
 * descriptor, so a later rename of the directory does not redirect us.
 * Temporary files are named ".tmp-PID-N"; a copy is only renamed to its
 * final name after fsync, so a file with a final name is always whole.
 * Not here: a limit on total bytes (only on the number of copies), and
 * sharing one cache directory between several servers.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/internal.h"
#include "serve_cache.h"

#define CACHE_TMP_PREFIX ".tmp-"
#define CACHE_SCAN_MAX 1000000 /* directory entries looked at on open */

enum entry_state { E_PENDING, E_READY, E_FAILED, E_AGAIN };

struct entry {
	unsigned char key[SERVE_KEY_LEN];
	char file[2 * SERVE_KEY_LEN + 1];
	enum entry_state state;
	int refs;            /* producer and waiters still looking at it */
	int in_map, in_lru;
	sg_status st;        /* E_FAILED: the producer's status and message */
	char msg[512];
	char *name;          /* request path; NULL for copies found on disk */
	struct entry *hnext;
	struct entry *prev, *next; /* LRU list, finished copies only */
};

struct serve_claim {
	struct entry *e;
	int fd;
	char tmp[64];
};

struct serve_cache {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int dirfd;
	size_t max, count, nbuckets;
	struct entry **buckets;
	struct entry *head, *tail; /* most and least recently used */
	unsigned long seq;
};

/* ---------------------------------------------------------------- map and list */

static size_t cache_bucket(const serve_cache *c, const unsigned char *key)
{
	size_t h;

	memcpy(&h, key, sizeof(h)); /* keys are SHA-256 values: uniform */
	return h & (c->nbuckets - 1);
}

static struct entry *cache_find(serve_cache *c, const unsigned char *key)
{
	for(struct entry *e = c->buckets[cache_bucket(c, key)]; e; e = e->hnext)
		if(!memcmp(e->key, key, SERVE_KEY_LEN))
			return e;
	return NULL;
}

static void cache_lru_unlink(serve_cache *c, struct entry *e)
{
	if(!e->in_lru)
		return;
	if(e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if(e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
	e->in_lru = 0;
}

static void cache_lru_push(serve_cache *c, struct entry *e, int front)
{
	cache_lru_unlink(c, e);
	if(front) {
		e->next = c->head;
		if(c->head)
			c->head->prev = e;
		c->head = e;
		if(!c->tail)
			c->tail = e;
	} else {
		e->prev = c->tail;
		if(c->tail)
			c->tail->next = e;
		c->tail = e;
		if(!c->head)
			c->head = e;
	}
	e->in_lru = 1;
}

static void cache_map_add(serve_cache *c, struct entry *e)
{
	size_t b = cache_bucket(c, e->key);

	e->hnext = c->buckets[b];
	c->buckets[b] = e;
	e->in_map = 1;
	c->count++;
}

static void cache_map_del(serve_cache *c, struct entry *e)
{
	struct entry **pp = &c->buckets[cache_bucket(c, e->key)];

	if(!e->in_map)
		return;
	while(*pp && *pp != e)
		pp = &(*pp)->hnext;
	if(*pp)
		*pp = e->hnext;
	e->hnext = NULL;
	e->in_map = 0;
	c->count--;
	cache_lru_unlink(c, e);
}

static void cache_entry_free(struct entry *e)
{
	free(e->name);
	free(e);
}

/* Drops one reference; frees the entry once it is out of the map and no
 * thread looks at it. */
static void cache_release(struct entry *e)
{
	e->refs--;
	if(!e->in_map && e->refs == 0)
		cache_entry_free(e);
}

/* Removes a finished copy: entry and file. */
static void cache_evict(serve_cache *c, struct entry *e)
{
	cache_map_del(c, e);
	/* A failure is not fatal: the file stays until the next start's scan,
	 * which keeps at most max copies. */
	(void)unlinkat(c->dirfd, e->file, 0);
	if(e->refs == 0)
		cache_entry_free(e);
}

static void cache_make_room(serve_cache *c)
{
	while(c->count >= c->max && c->tail)
		cache_evict(c, c->tail);
}

static struct entry *cache_entry_new(const unsigned char *key, const char *name)
{
	struct entry *e = calloc(1, sizeof(*e));

	if(!e)
		return NULL;
	memcpy(e->key, key, SERVE_KEY_LEN);
	sg_hex(key, SERVE_KEY_LEN, e->file);
	if(name && !(e->name = strdup(name))) {
		free(e);
		return NULL;
	}
	return e;
}

/* ---------------------------------------------------------------- open */

static int cache_is_copy_name(const char *s)
{
	size_t n = 0;

	for(; s[n]; n++)
		if(!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return 0;
	return n == 2 * SERVE_KEY_LEN;
}

static int cache_hex_nibble(char ch)
{
	return ch <= '9' ? ch - '0' : ch - 'a' + 10;
}

struct found {
	char name[2 * SERVE_KEY_LEN + 1];
	struct timespec mtime;
};

static int cache_newer_first(const void *a, const void *b)
{
	const struct found *x = a, *y = b;

	if(x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? 1 : -1;
	if(x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? 1 : -1;
	return strcmp(x->name, y->name);
}

/* Removes leftovers, adopts existing copies (newest first, up to max). */
static sg_status cache_scan(serve_cache *c, const char *dir)
{
	struct found *v = NULL, *nv;
	size_t n = 0, cap = 0, seen = 0;
	struct dirent *de;
	struct stat st;
	sg_status rc = SG_OK;
	DIR *d;
	int fd;

	fd = dup(c->dirfd);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if(!d) {
		if(fd >= 0)
			close(fd);
		return sg_fail(SG_ERR_IO, "cannot read cache directory %s: %s", dir, strerror(errno));
	}
	while((de = readdir(d)) != NULL && seen++ < CACHE_SCAN_MAX) {
		if(!strncmp(de->d_name, CACHE_TMP_PREFIX, strlen(CACHE_TMP_PREFIX))) {
			unlinkat(c->dirfd, de->d_name, 0);
			continue;
		}
		if(!cache_is_copy_name(de->d_name) ||
		   fstatat(c->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode))
			continue;
		if(n == cap) {
			cap = cap ? 2 * cap : 256;
			nv = realloc(v, cap * sizeof(*v));
			if(!nv) {
				rc = sg_fail(SG_ERR_NOMEM, "out of memory");
				goto out;
			}
			v = nv;
		}
		memcpy(v[n].name, de->d_name, sizeof(v[n].name));
		v[n].mtime = st.st_mtim;
		n++;
	}
	if(n)
		qsort(v, n, sizeof(*v), cache_newer_first);
	for(size_t i = 0; i < n; i++) {
		unsigned char key[SERVE_KEY_LEN];
		struct entry *e;

		if(i >= c->max) {
			unlinkat(c->dirfd, v[i].name, 0);
			continue;
		}
		for(size_t k = 0; k < SERVE_KEY_LEN; k++)
			key[k] = (unsigned char)(cache_hex_nibble(v[i].name[2 * k]) << 4 |
			                         cache_hex_nibble(v[i].name[2 * k + 1]));
		e = cache_entry_new(key, NULL);
		if(!e) {
			rc = sg_fail(SG_ERR_NOMEM, "out of memory");
			goto out;
		}
		e->state = E_READY;
		cache_map_add(c, e);
		cache_lru_push(c, e, 0);
	}
out:
	closedir(d);
	free(v);
	return rc;
}

/* Opens a new temporary file in the directory.  Called with the lock held
 * (for seq). */
static int cache_tmp_open(serve_cache *c, char *name, size_t namelen)
{
	int fd = -1;

	for(int i = 0; i < 100; i++) {
		snprintf(name, namelen, CACHE_TMP_PREFIX "%ld-%lu", (long)getpid(), c->seq++);
		fd = openat(c->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if(fd >= 0 || errno != EEXIST)
			break;
	}
	return fd;
}

sg_status serve_cache_open(const char *dir, size_t max, serve_cache **out)
{
	serve_cache *c;
	char tmp[64];
	sg_status rc;
	int fd;

	*out = NULL;
	if(max < 1)
		return sg_fail(SG_ERR_USAGE, "cache size must be at least 1");
	if(mkdir(dir, 0700) && errno != EEXIST)
		return sg_fail(SG_ERR_IO, "cannot create cache directory %s: %s", dir, strerror(errno));
	c = calloc(1, sizeof(*c));
	if(!c)
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	c->max = max;
	c->nbuckets = 64;
	while(c->nbuckets < 2 * max)
		c->nbuckets *= 2;
	c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
	c->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if(!c->buckets || c->dirfd < 0) {
		rc = c->buckets ? sg_fail(SG_ERR_IO, "cannot open cache directory %s: %s", dir,
		                          strerror(errno))
		                : sg_fail(SG_ERR_NOMEM, "out of memory");
		goto fail;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	rc = cache_scan(c, dir);
	if(rc)
		goto fail;
	fd = cache_tmp_open(c, tmp, sizeof(tmp));
	if(fd < 0) {
		rc = sg_fail(SG_ERR_IO, "cannot create a file in cache directory %s: %s", dir,
		             strerror(errno));
		goto fail;
	}
	close(fd);
	unlinkat(c->dirfd, tmp, 0);
	*out = c;
	return SG_OK;
fail:
	serve_cache_free(c);
	return rc;
}

void serve_cache_free(serve_cache *c)
{
	if(!c)
		return;
	/* No thread uses the cache any more: free everything in the map. */
	for(size_t b = 0; c->buckets && b < c->nbuckets; b++) {
		struct entry *e = c->buckets[b], *next;
		for(; e; e = next) {
			next = e->hnext;
			cache_entry_free(e);
		}
	}
	if(c->buckets) {
		pthread_mutex_destroy(&c->lock);
		pthread_cond_destroy(&c->cond);
	}
	if(c->dirfd >= 0)
		close(c->dirfd);
	free(c->buckets);
	free(c);
}

size_t serve_cache_count(serve_cache *c)
{
	size_t n;

	pthread_mutex_lock(&c->lock);
	n = c->count;
	pthread_mutex_unlock(&c->lock);
	return n;
}

/* ---------------------------------------------------------------- get, commit, fail */

/* Ends the making of e: wakes the waiters with the outcome. Lock held. */
static void cache_end_failed(serve_cache *c, struct entry *e, sg_status st, int again,
                             const char *msg)
{
	e->state = again ? E_AGAIN : E_FAILED;
	e->st = st;
	snprintf(e->msg, sizeof(e->msg), "%s", msg);
	cache_map_del(c, e);
	pthread_cond_broadcast(&c->cond);
	cache_release(e);
}

sg_status serve_cache_get(serve_cache *c, const unsigned char key[SERVE_KEY_LEN],
                          const char *name, int *fd, serve_claim **claim, int *again)
{
	struct entry *e;
	serve_claim *cl;
	char msg[sizeof(e->msg)];
	int err;

	*fd = -1;
	*claim = NULL;
	*again = 0;
	pthread_mutex_lock(&c->lock);
	while((e = cache_find(c, key)) != NULL) {
		enum entry_state state;
		sg_status st;

		if(e->state == E_READY) {
			int f = openat(c->dirfd, e->file, O_RDONLY | O_CLOEXEC);
			if(f >= 0) {
				cache_lru_push(c, e, 1);
				pthread_mutex_unlock(&c->lock);
				*fd = f;
				return SG_OK;
			}
			err = errno;
			if(err != ENOENT) {
				pthread_mutex_unlock(&c->lock);
				return sg_fail(SG_ERR_IO, "cannot open the cached copy %s: %s", e->file,
				               strerror(err));
			}
			/* Removed behind our back: make it again. */
			cache_evict(c, e);
			break;
		}
		/* Being made (E_PENDING): wait for the outcome. */
		e->refs++;
		while(e->state == E_PENDING)
			pthread_cond_wait(&c->cond, &c->lock);
		state = e->state;
		st = e->st;
		memcpy(msg, e->msg, sizeof(msg));
		cache_release(e);
		if(state == E_READY)
			continue; /* look again: normally a hit */
		pthread_mutex_unlock(&c->lock);
		if(state == E_AGAIN) {
			*again = 1;
			return SG_OK;
		}
		return sg_fail(st, "%s", msg);
	}
	/* Nobody has it: we make it. */
	cache_make_room(c);
	e = cache_entry_new(key, name);
	cl = e ? calloc(1, sizeof(*cl)) : NULL;
	if(!cl) {
		free(e ? e->name : NULL);
		free(e);
		pthread_mutex_unlock(&c->lock);
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	}
	e->state = E_PENDING;
	e->refs = 1;
	cache_map_add(c, e);
	cl->e = e;
	cl->fd = cache_tmp_open(c, cl->tmp, sizeof(cl->tmp));
	if(cl->fd < 0) {
		sg_status st = sg_fail(SG_ERR_IO, "cannot create a temporary file in the cache "
		                       "directory: %s", strerror(errno));
		cache_end_failed(c, e, st, 0, sg_last_error());
		pthread_mutex_unlock(&c->lock);
		free(cl);
		return st;
	}
	pthread_mutex_unlock(&c->lock);
	*claim = cl;
	return SG_OK;
}

int serve_claim_fd(const serve_claim *cl)
{
	return cl->fd;
}

sg_status serve_cache_commit(serve_cache *c, serve_claim *cl, int *fd)
{
	struct entry *e = cl->e;
	sg_status rc;

	*fd = -1;
	if(fsync(cl->fd)) {
		rc = sg_fail(SG_ERR_IO, "cannot write the signed copy to the cache: %s",
		             strerror(errno));
		serve_cache_fail(c, cl, rc, 0);
		return rc;
	}
	if(renameat(c->dirfd, cl->tmp, c->dirfd, e->file)) {
		rc = sg_fail(SG_ERR_IO, "cannot rename the signed copy into the cache: %s",
		             strerror(errno));
		serve_cache_fail(c, cl, rc, 0);
		return rc;
	}
	pthread_mutex_lock(&c->lock);
	e->state = E_READY;
	cache_lru_push(c, e, 1);
	/* The copy of an older version of the same file is useless now. */
	if(e->name) {
		struct entry *x = c->head, *next;
		for(; x; x = next) {
			next = x->next;
			if(x != e && x->name && !strcmp(x->name, e->name))
				cache_evict(c, x);
		}
	}
	pthread_cond_broadcast(&c->cond);
	cache_release(e);
	pthread_mutex_unlock(&c->lock);
	*fd = cl->fd;
	free(cl);
	return SG_OK;
}

void serve_cache_fail(serve_cache *c, serve_claim *cl, sg_status st, int again)
{
	char msg[sizeof(cl->e->msg)];

	snprintf(msg, sizeof(msg), "%s", sg_last_error());
	if(cl->fd >= 0)
		close(cl->fd);
	unlinkat(c->dirfd, cl->tmp, 0);
	pthread_mutex_lock(&c->lock);
	cache_end_failed(c, cl->e, st, again, msg);
	pthread_mutex_unlock(&c->lock);
	free(cl);
}
