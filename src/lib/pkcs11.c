/*
 * pkcs11.c - the PKCS#11 signer backend: a private key in a token, named by
 * an RFC 7512 URI, signs digests.
 *
 * The module is loaded with dlopen() and driven directly through the
 * function list of C_GetFunctionList (PKCS#11 v2.40 base specification);
 * p11-kit supplies only the header and the URI parser, not its module
 * loading or proxy.  A process-wide, reference-counted table lets several
 * signers share one module: it is initialized once (CKF_OS_LOCKING_OK) and
 * finalized with its last user.
 *
 * RSA keys sign with CKM_RSA_PKCS over a DER DigestInfo (RFC 8017 section
 * 9.2).  EC keys sign with CKM_ECDSA over the digest the caller computed
 * (SoftHSM2 2.6 has no ECDSA-with-SHA-2 mechanisms); the token's raw r || s
 * (PKCS#11 v2.40 Current Mechanisms section 2.3.6) is re-encoded as an X9.62
 * ECDSA-Sig-Value.
 *
 * A token that went away and is not back in C_GetSlotList when a signer
 * reconnects gets the module finalized and initialized again (at most once
 * a second, and only while none of our sessions is open in any module):
 * SoftHSM2, for one, finds its tokens only in C_Initialize.
 *
 * Not handled: RSA-PSS, PIN pads beyond "log in with no PIN on a protected
 * authentication path", and use across fork() (a child process must open
 * its own signer, and only if the parent never loaded the module).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>

#include "internal.h"
#include "signer_int.h"

#define P11_DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"

/* Ceilings on what a token reports. */
#define P11_MAX_SLOTS   1024
#define P11_MAX_ID      256             /* CKA_ID of the key */
#define P11_MAX_LABEL   1024            /* CKA_LABEL of the key */
#define P11_MAX_CERT    (1024 * 1024)   /* CKA_VALUE of a certificate */
#define P11_MAX_RSA_SIG 2048            /* a 16384-bit modulus */
#define P11_MAX_EC_SIG  (2 * 66)        /* r || s on P-521 */

/* ---------------------------------------------------------------- CK_RV */

#define P11_RV(rv) { rv, #rv }
static const struct {
	CK_RV rv;
	const char *name;
} p11_rv_names[] = {
	P11_RV(CKR_OK),
	P11_RV(CKR_CANCEL),
	P11_RV(CKR_HOST_MEMORY),
	P11_RV(CKR_SLOT_ID_INVALID),
	P11_RV(CKR_GENERAL_ERROR),
	P11_RV(CKR_FUNCTION_FAILED),
	P11_RV(CKR_ARGUMENTS_BAD),
	P11_RV(CKR_NEED_TO_CREATE_THREADS),
	P11_RV(CKR_CANT_LOCK),
	P11_RV(CKR_ATTRIBUTE_SENSITIVE),
	P11_RV(CKR_ATTRIBUTE_TYPE_INVALID),
	P11_RV(CKR_ATTRIBUTE_VALUE_INVALID),
	P11_RV(CKR_ACTION_PROHIBITED),
	P11_RV(CKR_DATA_INVALID),
	P11_RV(CKR_DATA_LEN_RANGE),
	P11_RV(CKR_DEVICE_ERROR),
	P11_RV(CKR_DEVICE_MEMORY),
	P11_RV(CKR_DEVICE_REMOVED),
	P11_RV(CKR_FUNCTION_CANCELED),
	P11_RV(CKR_FUNCTION_NOT_SUPPORTED),
	P11_RV(CKR_KEY_HANDLE_INVALID),
	P11_RV(CKR_KEY_SIZE_RANGE),
	P11_RV(CKR_KEY_TYPE_INCONSISTENT),
	P11_RV(CKR_KEY_FUNCTION_NOT_PERMITTED),
	P11_RV(CKR_MECHANISM_INVALID),
	P11_RV(CKR_MECHANISM_PARAM_INVALID),
	P11_RV(CKR_OBJECT_HANDLE_INVALID),
	P11_RV(CKR_OPERATION_ACTIVE),
	P11_RV(CKR_OPERATION_NOT_INITIALIZED),
	P11_RV(CKR_PIN_INCORRECT),
	P11_RV(CKR_PIN_INVALID),
	P11_RV(CKR_PIN_LEN_RANGE),
	P11_RV(CKR_PIN_EXPIRED),
	P11_RV(CKR_PIN_LOCKED),
	P11_RV(CKR_SESSION_CLOSED),
	P11_RV(CKR_SESSION_COUNT),
	P11_RV(CKR_SESSION_HANDLE_INVALID),
	P11_RV(CKR_SESSION_PARALLEL_NOT_SUPPORTED),
	P11_RV(CKR_TEMPLATE_INCOMPLETE),
	P11_RV(CKR_TEMPLATE_INCONSISTENT),
	P11_RV(CKR_TOKEN_NOT_PRESENT),
	P11_RV(CKR_TOKEN_NOT_RECOGNIZED),
	P11_RV(CKR_USER_ALREADY_LOGGED_IN),
	P11_RV(CKR_USER_NOT_LOGGED_IN),
	P11_RV(CKR_USER_PIN_NOT_INITIALIZED),
	P11_RV(CKR_USER_TYPE_INVALID),
	P11_RV(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
	P11_RV(CKR_USER_TOO_MANY_TYPES),
	P11_RV(CKR_BUFFER_TOO_SMALL),
	P11_RV(CKR_CRYPTOKI_NOT_INITIALIZED),
	P11_RV(CKR_CRYPTOKI_ALREADY_INITIALIZED),
	P11_RV(CKR_FUNCTION_REJECTED),
};
#undef P11_RV

/* The CKR_ name of rv, or its number in buf. */
static const char *p11_rv_name(CK_RV rv, char *buf, size_t size)
{
	size_t i;

	for(i = 0; i < sizeof p11_rv_names / sizeof p11_rv_names[0]; i++)
		if(p11_rv_names[i].rv == rv)
			return p11_rv_names[i].name;
	snprintf(buf, size, "CK_RV 0x%lx", (unsigned long)rv);
	return buf;
}

/*
 * Records a failed call as our status, naming the CK_RV.  what and name say
 * where: ("token", "signgate") or ("module", "/usr/lib/...").
 */
static sg_status p11_fail_rv(CK_RV rv, const char *call, const char *what,
                             const char *name)
{
	char buf[32];
	const char *rvn = p11_rv_name(rv, buf, sizeof buf);

	switch(rv) {
	case CKR_PIN_INCORRECT:
	case CKR_PIN_INVALID:
	case CKR_PIN_LEN_RANGE:
		return sg_fail(SG_ERR_PIN, "wrong PIN for %s '%s' (%s: %s)",
		               what, name, call, rvn);
	case CKR_PIN_LOCKED:
		return sg_fail(SG_ERR_PIN, "%s '%s' is locked (%s: %s)",
		               what, name, call, rvn);
	case CKR_PIN_EXPIRED:
		return sg_fail(SG_ERR_PIN, "the PIN of %s '%s' has expired "
		               "(%s: %s)", what, name, call, rvn);
	case CKR_USER_PIN_NOT_INITIALIZED:
		return sg_fail(SG_ERR_PIN, "%s '%s' has no user PIN (%s: %s)",
		               what, name, call, rvn);
	case CKR_HOST_MEMORY:
		return sg_fail(SG_ERR_NOMEM, "%s failed on %s '%s': %s",
		               call, what, name, rvn);
	case CKR_KEY_FUNCTION_NOT_PERMITTED:
		return sg_fail(SG_ERR_KEY, "the key on %s '%s' may not sign "
		               "(%s: %s)", what, name, call, rvn);
	default:
		return sg_fail(SG_ERR_HSM, "%s failed on %s '%s': %s",
		               call, what, name, rvn);
	}
}

/*
 * The failures after which a session is gone but a new one may work: the
 * session was closed or lost its login, or the token went away and may be
 * back (PKCS#11 v2.40 section 5.1.5 and 5.6).  A key handle that is no
 * longer valid means the same: the token reloaded its objects (SoftHSM2
 * after its token directory went away and came back), so the key must be
 * found again.
 */
static int p11_session_lost(CK_RV rv)
{
	switch(rv) {
	case CKR_KEY_HANDLE_INVALID:
	case CKR_OBJECT_HANDLE_INVALID:
	case CKR_SESSION_HANDLE_INVALID:
	case CKR_SESSION_CLOSED:
	case CKR_USER_NOT_LOGGED_IN:
	case CKR_DEVICE_REMOVED:
	case CKR_TOKEN_NOT_PRESENT:
	case CKR_DEVICE_ERROR:
		return 1;
	default:
		return 0;
	}
}

/*
 * Copies a blank-padded PKCS#11 text field (not NUL-terminated) into dst
 * for messages: trailing blanks dropped, control characters shown as '?'.
 */
static void p11_text(const unsigned char *src, size_t srclen, char *dst,
                     size_t size)
{
	size_t n = 0, i;

	while(n < srclen && src[n] != '\0')
		n++;
	while(n > 0 && src[n - 1] == ' ')
		n--;
	if(n >= size)
		n = size - 1;
	for(i = 0; i < n; i++)
		dst[i] = (src[i] < 0x20 || src[i] == 0x7f) ? '?' : (char)src[i];
	dst[n] = '\0';
}

/* ---------------------------------------------------------------- modules */

/* How many of our sessions are open on one slot of a module. */
struct p11_slot_use {
	CK_SLOT_ID id;
	unsigned sessions;
};

struct p11_module {
	struct p11_module *next;
	void *dl;                    /* dlopen handle: the table's key */
	char *path;                  /* as first given, for messages */
	CK_FUNCTION_LIST_PTR f;
	unsigned refs;
	int owned;                   /* our C_Initialize: we C_Finalize */
	struct p11_slot_use *slots;
	size_t nslots;
	/* Held shared by every signer while it calls into the module, and
	 * exclusively while p11_module_reinit() finalizes and initializes it
	 * again; gen counts those, so a session opened before one is known
	 * to be gone (its handle may name someone else's session now). */
	pthread_rwlock_t use;
	unsigned long gen;
	struct timespec reinit_at;   /* CLOCK_MONOTONIC of the last attempt */
	int uninit;                  /* the last C_Initialize failed: */
	CK_RV init_rv;               /* with this */
};

/*
 * Guards the table, each module's refs and slots[], and the C_Login /
 * C_Logout calls that slots[] accounts for.  Keyed by the dlopen handle,
 * not the path, so two spellings of one file share an entry.
 */
static pthread_mutex_t p11_lock = PTHREAD_MUTEX_INITIALIZER;
static struct p11_module *p11_modules;

/* Loads path, or takes another reference to it; *out is released with
 * p11_module_put(). */
static sg_status p11_module_get(const char *path, struct p11_module **out)
{
	struct p11_module *m = NULL;
	CK_C_GetFunctionList get_list;
	CK_C_INITIALIZE_ARGS args;
	CK_FUNCTION_LIST_PTR f = NULL;
	const char *err;
	void *dl, *sym;
	sg_status rc = SG_OK;
	CK_RV rv;

	*out = NULL;
	pthread_mutex_lock(&p11_lock);
	dlerror();
	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if(!dl) {
		err = dlerror();
		rc = sg_fail(SG_ERR_HSM, "cannot load PKCS#11 module '%s': %s",
		             path, err ? err : "dlopen failed");
		goto out;
	}
	for(m = p11_modules; m; m = m->next) {
		if(m->dl == dl) {
			dlclose(dl);    /* drop the reference we just took */
			m->refs++;
			*out = m;
			goto out;
		}
	}
	sym = dlsym(dl, "C_GetFunctionList");
	if(!sym) {
		rc = sg_fail(SG_ERR_HSM, "'%s' is not a PKCS#11 module: "
		             "no C_GetFunctionList", path);
		goto fail;
	}
	get_list = (CK_C_GetFunctionList)sym;
	rv = get_list(&f);
	if(rv != CKR_OK) {
		rc = p11_fail_rv(rv, "C_GetFunctionList", "module", path);
		goto fail;
	}
	if(!f || f->version.major < 2) {
		rc = sg_fail(SG_ERR_HSM, "module '%s' returned no PKCS#11 v2 "
		             "function list", path);
		goto fail;
	}
	memset(&args, 0, sizeof args);
	args.flags = CKF_OS_LOCKING_OK;
	rv = f->C_Initialize(&args);
	/* ALREADY_INITIALIZED: someone else in this process (not through this
	 * table) uses the module; it stays theirs to finalize. */
	if(rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		rc = p11_fail_rv(rv, "C_Initialize", "module", path);
		goto fail;
	}
	m = calloc(1, sizeof *m);
	if(m)
		m->path = strdup(path);
	if(!m || !m->path) {
		if(rv == CKR_OK)
			f->C_Finalize(NULL);
		rc = sg_fail(SG_ERR_NOMEM, "out of memory loading '%s'", path);
		goto fail;
	}
	if(pthread_rwlock_init(&m->use, NULL) != 0) {
		if(rv == CKR_OK)
			f->C_Finalize(NULL);
		rc = sg_fail(SG_ERR_INTERNAL, "pthread_rwlock_init failed");
		goto fail;
	}
	m->dl = dl;
	m->f = f;
	m->refs = 1;
	m->owned = rv == CKR_OK;
	m->next = p11_modules;
	p11_modules = m;
	*out = m;
	goto out;
fail:
	if(m)
		free(m->path);
	free(m);
	dlclose(dl);
out:
	pthread_mutex_unlock(&p11_lock);
	return rc;
}

/*
 * Drops a reference.  A module we initialized stays loaded and initialized
 * for the life of the process even when no signer uses it any more: a
 * module may be in use under another name (p11-kit-proxy.so loads the very
 * softhsm2 library we loaded, and shares its initialization), so C_Finalize
 * here could pull a token from under a signer of another module; and a
 * server whose admin page switches keys back and forth reuses it.  A module
 * someone else initialized is theirs to finalize: we only let go of it.
 */
static void p11_module_put(struct p11_module *m)
{
	struct p11_module **pp;

	if(!m)
		return;
	pthread_mutex_lock(&p11_lock);
	if(--m->refs == 0 && !m->owned) {
		for(pp = &p11_modules; *pp; pp = &(*pp)->next) {
			if(*pp == m) {
				*pp = m->next;
				break;
			}
		}
		dlclose(m->dl);
		pthread_rwlock_destroy(&m->use);
		free(m->slots);
		free(m->path);
		free(m);
	}
	pthread_mutex_unlock(&p11_lock);
}

/*
 * Finalizes the module and initializes it again, so that it looks for its
 * tokens anew: for a token that went away and came back, which SoftHSM2
 * (and other modules that find tokens only in C_Initialize) would
 * otherwise never list again.  Does nothing, and returns 0, unless the
 * module is ours to finalize, no other signer is inside the module, none of
 * our sessions is open in another module (p11-kit-proxy may share this one
 * under another name), and the last attempt was a second ago or more.
 * Every session opened before in this module is gone afterwards, the other
 * signers' too: they see gen changed and open a new one (p11_sign).
 * Returns 1 if the module was initialized again.  Called with no lock held
 * but the signer's own.
 */
static int p11_module_reinit(struct p11_module *m)
{
	CK_C_INITIALIZE_ARGS args;
	struct p11_module *o;
	struct timespec now;
	int done = 0;
	CK_RV rv;

	if(!m->owned || pthread_rwlock_trywrlock(&m->use) != 0)
		return 0;
	pthread_mutex_lock(&p11_lock);
	for(o = p11_modules; o; o = o->next) {
		if(o != m && o->nslots > 0)
			goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	if((m->reinit_at.tv_sec || m->reinit_at.tv_nsec) &&
	   (now.tv_sec - m->reinit_at.tv_sec) * 1000000000L +
	   (now.tv_nsec - m->reinit_at.tv_nsec) < 1000000000L)
		goto out;
	m->reinit_at = now;
	if(!m->uninit)
		m->f->C_Finalize(NULL);
	memset(&args, 0, sizeof args);
	args.flags = CKF_OS_LOCKING_OK;
	rv = m->f->C_Initialize(&args);
	m->uninit = rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED;
	m->init_rv = rv;
	m->gen++;
	m->nslots = 0;
	done = !m->uninit;
out:
	pthread_mutex_unlock(&p11_lock);
	pthread_rwlock_unlock(&m->use);
	return done;
}

/*
 * Fails if the module's last C_Initialize (p11_module_reinit) failed: every
 * call would say CKR_CRYPTOKI_NOT_INITIALIZED, which hides why.  Called
 * with the module's use lock shared.
 */
static sg_status p11_module_check_init(struct p11_module *m)
{
	char buf[32];

	if(!m->uninit)
		return SG_OK;
	return sg_fail(SG_ERR_HSM, "module '%s' could not be initialized "
	               "again (C_Initialize: %s); trying again at most once "
	               "a second%s", m->path,
	               p11_rv_name(m->init_rv, buf, sizeof buf),
	               strstr(m->path, "softhsm")
	                   ? " (SoftHSM2: can it read its configuration, "
	                     "$SOFTHSM2_CONF or /etc/softhsm/softhsm2.conf, "
	                     "and the tokendir named there?)"
	                   : "");
}

/* Counts one more session of ours on slot id.  Called with p11_lock held. */
static sg_status p11_slot_ref(struct p11_module *m, CK_SLOT_ID id)
{
	struct p11_slot_use *n;
	size_t i;

	for(i = 0; i < m->nslots; i++) {
		if(m->slots[i].id == id) {
			m->slots[i].sessions++;
			return SG_OK;
		}
	}
	n = realloc(m->slots, (m->nslots + 1) * sizeof *n);
	if(!n)
		return sg_fail(SG_ERR_NOMEM, "out of memory opening a session");
	m->slots = n;
	m->slots[m->nslots].id = id;
	m->slots[m->nslots].sessions = 1;
	m->nslots++;
	return SG_OK;
}

/* Counts one session less; 1 if it was our last on the slot.  Called with
 * p11_lock held. */
static int p11_slot_unref(struct p11_module *m, CK_SLOT_ID id)
{
	size_t i;

	for(i = 0; i < m->nslots; i++) {
		if(m->slots[i].id == id) {
			if(--m->slots[i].sessions > 0)
				return 0;
			m->slots[i] = m->slots[--m->nslots];
			return 1;
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- signer */

struct p11_signer {
	struct p11_module *mod;
	/* What to find again on reconnect: token and object; pin-value
	 * removed.  Never quoted in messages whole. */
	P11KitUri *uri;
	CK_SLOT_ID slot;
	CK_FLAGS token_flags;
	char token[33];              /* the token's label, for messages */
	/* The serial number of the token the key was first found on; a
	 * reconnect takes no other (a token swapped for another with the same
	 * label holds another key).  have_serial: it was not blank. */
	unsigned char serial[16];
	int have_serial;
	int opened;                  /* the key was found once */
	char object[192];            /* "labelled 'x' with id 01", ditto */
	CK_SESSION_HANDLE session;
	unsigned long gen;           /* mod->gen when the session was opened */
	int have_session;
	int login;                   /* the session is logged in by us */
	int session_bad;             /* a sign operation may be left active */
	/* The token refused the PIN on a reconnect: logging in again with it
	 * would only count down the token's tries until it locks, so no more
	 * are made; the signer must be opened anew (restart, or the admin
	 * page's Save). */
	int pin_refused;
	CK_OBJECT_HANDLE key;
	CK_KEY_TYPE key_type;
	/* The PIN, kept only to log in again on reconnect; from
	 * OPENSSL_secure_malloc (locked if the caller set up the secure heap),
	 * wiped on free.  NULL: no PIN. */
	unsigned char *pin;
	size_t pinlen;
	pthread_mutex_t lock;        /* serializes sign() on the one session */
	int lock_init;
};

/* Wipes and drops the pin-value p11-kit keeps from the URI.  Its copy is a
 * heap string of p11-kit's: writable, though handed out as const. */
static void p11_uri_forget_pin(P11KitUri *uri)
{
	const char *v = p11_kit_uri_get_pin_value(uri);

	if(v) {
		OPENSSL_cleanse((char *)v, strlen(v));
		p11_kit_uri_set_pin_value(uri, NULL);
	}
}

/* "labelled 'x' with id 01" for the object part of the URI; "" if none. */
static void p11_describe_object(P11KitUri *uri, char *buf, size_t size)
{
	CK_ATTRIBUTE *label = p11_kit_uri_get_attribute(uri, CKA_LABEL);
	CK_ATTRIBUTE *id = p11_kit_uri_get_attribute(uri, CKA_ID);
	char text[64], hex[2 * 32 + 4];
	size_t n = 0;

	buf[0] = '\0';
	if(label && label->pValue) {
		p11_text(label->pValue, label->ulValueLen, text, sizeof text);
		n = (size_t)snprintf(buf, size, "labelled '%s'", text);
	}
	if(id && id->pValue && n < size) {
		if(id->ulValueLen <= 32) {
			sg_hex(id->pValue, id->ulValueLen, hex);
		} else {
			sg_hex(id->pValue, 32, hex);
			strcat(hex, "...");
		}
		snprintf(buf + n, size - n, "%swith id %s", n ? " " : "", hex);
	}
}

/* "token 'x' serial 'y' slot 3": what the URI asks for. */
static void p11_describe_token(P11KitUri *uri, char *buf, size_t size)
{
	CK_TOKEN_INFO *ti = p11_kit_uri_get_token_info(uri);
	CK_SLOT_ID slot = p11_kit_uri_get_slot_id(uri);
	char text[65];
	size_t n = 0;

	buf[0] = '\0';
	p11_text(ti->label, sizeof ti->label, text, sizeof text);
	if(text[0])
		n += (size_t)snprintf(buf + n, size - n, "token '%s'", text);
	p11_text(ti->serialNumber, sizeof ti->serialNumber, text, sizeof text);
	if(text[0] && n < size)
		n += (size_t)snprintf(buf + n, size - n, "%sserial '%s'",
		                      n ? " " : "", text);
	if(slot != (CK_SLOT_ID)-1 && n < size)
		n += (size_t)snprintf(buf + n, size - n, "%sslot %lu",
		                      n ? " " : "", (unsigned long)slot);
	if(n == 0)
		snprintf(buf, size, "any token");
}

/*
 * Turns an RFC 7512 pin-source into a secret spec: "file:/p", "file:///p",
 * "file://localhost/p" (RFC 8089) and a plain path are files.  *spec from
 * malloc.
 */
static sg_status p11_pin_source_spec(const char *src, char **spec)
{
	const char *path = src;
	size_t n;

	*spec = NULL;
	if(strncmp(src, "file://", 7) == 0) {
		path = src + 7;
		if(strncmp(path, "localhost/", 10) == 0)
			path += 9;
		if(path[0] != '/')
			return sg_fail(SG_ERR_UNSUPPORTED, "pin-source: a file "
			               "URI on another host is not supported");
	} else if(strncmp(src, "file:", 5) == 0) {
		path = src + 5;
	} else if(strcspn(src, ":/") < strlen(src) &&
	          src[strcspn(src, ":/")] == ':') {
		return sg_fail(SG_ERR_UNSUPPORTED, "pin-source: only file: "
		               "URIs and paths are supported");
	}
	/* "//x" is "/x" here, and sg_secret_read() would take "file://x"
	 * for the relative "x". */
	while(path[0] == '/' && path[1] == '/')
		path++;
	if(path[0] == '\0')
		return sg_fail(SG_ERR_USAGE, "pin-source names no file");
	n = strlen(path);
	*spec = malloc(n + 6);
	if(!*spec)
		return sg_fail(SG_ERR_NOMEM, "out of memory reading the PIN");
	memcpy(*spec, "file:", 5);
	memcpy(*spec + 5, path, n + 1);
	return SG_OK;
}

/* Keeps a copy of the PIN in ps->pin. */
static sg_status p11_pin_keep(struct p11_signer *ps, const char *pin)
{
	size_t n = strlen(pin);

	ps->pin = OPENSSL_secure_malloc(n + 1);
	if(!ps->pin)
		return sg_fail(SG_ERR_NOMEM, "out of memory keeping the PIN");
	memcpy(ps->pin, pin, n + 1);
	ps->pinlen = n;
	return SG_OK;
}

/*
 * Reads the PIN: spec (a secret spec) if given, else the URI's pin-value,
 * else its pin-source.  The transient copies are wiped before this
 * returns; only ps->pin remains.
 */
static sg_status p11_pin_read(struct p11_signer *ps, const char *spec)
{
	const char *value = p11_kit_uri_get_pin_value(ps->uri);
	const char *source = p11_kit_uri_get_pin_source(ps->uri);
	char *secret = NULL, *fspec = NULL;
	sg_status rc = SG_OK;

	if(spec) {
		rc = sg_secret_read(spec, &secret);
		if(rc)
			rc = sg_fail_prefix(rc, "reading the PIN");
	} else if(value) {
		rc = p11_pin_keep(ps, value);
	} else if(source) {
		rc = p11_pin_source_spec(source, &fspec);
		if(!rc) {
			rc = sg_secret_read(fspec, &secret);
			if(rc)
				rc = sg_fail_prefix(rc, "reading the PIN "
				                    "(pin-source)");
		}
	}
	if(!rc && secret)
		rc = p11_pin_keep(ps, secret);
	sg_secret_free(secret);
	free(fspec);
	p11_uri_forget_pin(ps->uri);
	return rc;
}

/* Fails unless the module's C_GetInfo matches the URI's library-*. */
static sg_status p11_check_module(struct p11_signer *ps)
{
	CK_FUNCTION_LIST_PTR f = ps->mod->f;
	CK_INFO info;
	char manuf[33], desc[33];
	CK_RV rv;

	rv = f->C_GetInfo(&info);
	if(rv != CKR_OK)
		return p11_fail_rv(rv, "C_GetInfo", "module", ps->mod->path);
	if(!p11_kit_uri_match_module_info(ps->uri, &info)) {
		p11_text(info.manufacturerID, sizeof info.manufacturerID,
		         manuf, sizeof manuf);
		p11_text(info.libraryDescription,
		         sizeof info.libraryDescription, desc, sizeof desc);
		return sg_fail(SG_ERR_NOT_FOUND, "module '%s' (%s, %s) does "
		               "not match the URI's library attributes",
		               ps->mod->path, manuf, desc);
	}
	return SG_OK;
}

/* The slots with a token, *slots from malloc. */
static sg_status p11_slot_list(struct p11_signer *ps, CK_SLOT_ID **slots,
                               CK_ULONG *n)
{
	CK_FUNCTION_LIST_PTR f = ps->mod->f;
	CK_SLOT_ID *list = NULL;
	CK_ULONG want, got;
	int tries;
	CK_RV rv;

	*slots = NULL;
	*n = 0;
	/* The count may grow between the calls (a token plugged in). */
	for(tries = 0; tries < 4; tries++) {
		rv = f->C_GetSlotList(CK_TRUE, NULL, &want);
		if(rv != CKR_OK)
			return p11_fail_rv(rv, "C_GetSlotList", "module",
			                   ps->mod->path);
		if(want > P11_MAX_SLOTS)
			return sg_fail(SG_ERR_HSM, "module '%s' reports %lu "
			               "slots (limit %d)", ps->mod->path,
			               (unsigned long)want, P11_MAX_SLOTS);
		if(want == 0)
			return SG_OK;
		free(list);
		list = calloc(want, sizeof *list);
		if(!list)
			return sg_fail(SG_ERR_NOMEM, "out of memory listing "
			               "slots");
		got = want;
		rv = f->C_GetSlotList(CK_TRUE, list, &got);
		if(rv == CKR_BUFFER_TOO_SMALL)
			continue;
		if(rv != CKR_OK) {
			free(list);
			return p11_fail_rv(rv, "C_GetSlotList", "module",
			                   ps->mod->path);
		}
		if(got > want) {
			free(list);
			return sg_fail(SG_ERR_HSM, "module '%s' returned more "
			               "slots than it announced", ps->mod->path);
		}
		*slots = list;
		*n = got;
		return SG_OK;
	}
	free(list);
	return sg_fail(SG_ERR_HSM, "module '%s': the slot list keeps "
	               "changing", ps->mod->path);
}

/*
 * Finds the one initialized token that matches the URI (label, serial,
 * manufacturer, model; slot-id and slot-* if given) and, once the key was
 * opened, has the serial number it had then: sets ps->slot, ps->token,
 * ps->token_flags and ps->serial.
 */
static sg_status p11_find_slot(struct p11_signer *ps)
{
	CK_FUNCTION_LIST_PTR f = ps->mod->f;
	CK_SLOT_ID *slots = NULL, want = p11_kit_uri_get_slot_id(ps->uri);
	CK_ULONG n = 0, i, nmatch = 0;
	CK_SLOT_INFO si;
	CK_TOKEN_INFO ti;
	char seen[512] = "", label[33], desc[160], other[17], was[17];
	CK_ULONG nother = 0;
	size_t len = 0;
	sg_status rc;

	rc = p11_slot_list(ps, &slots, &n);
	if(rc)
		return rc;
	for(i = 0; i < n; i++) {
		if(f->C_GetTokenInfo(slots[i], &ti) != CKR_OK ||
		   !(ti.flags & CKF_TOKEN_INITIALIZED))
			continue;
		p11_text(ti.label, sizeof ti.label, label, sizeof label);
		if(len < sizeof seen)
			len += (size_t)snprintf(seen + len, sizeof seen - len,
			                        "%s'%s'", len ? ", " : "",
			                        label);
		if(want != (CK_SLOT_ID)-1 && slots[i] != want)
			continue;
		if(f->C_GetSlotInfo(slots[i], &si) != CKR_OK ||
		   !p11_kit_uri_match_slot_info(ps->uri, &si) ||
		   !p11_kit_uri_match_token_info(ps->uri, &ti))
			continue;
		if(ps->have_serial && memcmp(ti.serialNumber, ps->serial,
		                             sizeof ps->serial) != 0) {
			if(nother++ == 0)
				p11_text(ti.serialNumber,
				         sizeof ti.serialNumber, other,
				         sizeof other);
			continue;
		}
		if(nmatch++ == 0) {
			ps->slot = slots[i];
			ps->token_flags = ti.flags;
			memcpy(ps->token, label, sizeof ps->token);
			memcpy(ps->serial, ti.serialNumber, sizeof ps->serial);
		}
	}
	free(slots);
	if(nmatch == 0 && nother > 0) {
		p11_text(ps->serial, sizeof ps->serial, was, sizeof was);
		return sg_fail(SG_ERR_KEY, "token '%s' now has serial number "
		               "'%s', not '%s' as when its key was opened: "
		               "another token with the same label; not signing "
		               "with it (put the token back, or restart to take "
		               "the new one)", ps->token, other, was);
	}
	p11_describe_token(ps->uri, desc, sizeof desc);
	if(nmatch == 0)
		return sg_fail(SG_ERR_NOT_FOUND, "no PKCS#11 %s in module "
		               "'%s'; tokens present: %s%s", desc, ps->mod->path,
		               len ? seen : "none",
		               strstr(ps->mod->path, "softhsm") && !len
		                   ? " (SoftHSM2 reads its tokens from the directory in "
		                     "$SOFTHSM2_CONF, default /etc/softhsm/softhsm2.conf: is it set?)"
		                   : "");
	/* Once the key was opened, the URI was good: a second token now is
	 * the device's doing, not the caller's, and a reconnect may get past
	 * it later. */
	if(nmatch > 1)
		return sg_fail(ps->opened ? SG_ERR_HSM : SG_ERR_USAGE,
		               "%lu tokens match %s in module '%s' (%s): %s",
		               (unsigned long)nmatch, desc, ps->mod->path, seen,
		               ps->opened ? "not signing until only one does"
		                          : "add token= or serial= to the URI");
	return SG_OK;
}

/*
 * Opens a session on ps->slot and logs in as the user, before any private
 * object is looked up.  The C_Login and our session count change together
 * under p11_lock, so p11_session_close() never logs out a token another of
 * our signers has just logged in to.
 */
static sg_status p11_session_open(struct p11_signer *ps)
{
	CK_FUNCTION_LIST_PTR f = ps->mod->f;
	CK_SESSION_HANDLE h;
	sg_status rc;
	int login;
	CK_RV rv;

	if(!ps->pin && (ps->token_flags & CKF_LOGIN_REQUIRED) &&
	   !(ps->token_flags & CKF_PROTECTED_AUTHENTICATION_PATH))
		return sg_fail(SG_ERR_PIN, "token '%s' needs a PIN: give "
		               "pin-source or pin-value in the URI, or the PIN "
		               "(--pass on the command line; pass, or "
		               "custom_pass, in a configuration)", ps->token);
	login = ps->pin || (ps->token_flags & CKF_LOGIN_REQUIRED);
	rv = f->C_OpenSession(ps->slot, CKF_SERIAL_SESSION, NULL, NULL, &h);
	if(rv != CKR_OK)
		return p11_fail_rv(rv, "C_OpenSession", "token", ps->token);
	pthread_mutex_lock(&p11_lock);
	rc = p11_slot_ref(ps->mod, ps->slot);
	if(!rc && login) {
		/* NULL PIN: the token asks on its own PIN pad. */
		rv = f->C_Login(h, CKU_USER, ps->pin, ps->pin ? ps->pinlen : 0);
		if(rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
			p11_slot_unref(ps->mod, ps->slot);
			rc = p11_fail_rv(rv, "C_Login", "token", ps->token);
			ps->pin_refused = rc == SG_ERR_PIN;
		}
	}
	pthread_mutex_unlock(&p11_lock);
	if(rc) {
		f->C_CloseSession(h);
		return rc;
	}
	ps->session = h;
	ps->gen = ps->mod->gen;
	ps->have_session = 1;
	ps->login = login;
	ps->session_bad = 0;
	return SG_OK;
}

/*
 * Logs out and closes the session.  Login state belongs to the application,
 * not the session (PKCS#11 v2.40 section 5.6), so C_Logout only when this
 * is the last of our sessions on the token, and never for a module someone
 * else initialized: they may be logged in too.
 */
static void p11_session_close(struct p11_signer *ps)
{
	CK_FUNCTION_LIST_PTR f = ps->mod->f;
	int last;

	if(!ps->have_session)
		return;
	if(ps->gen != ps->mod->gen) {
		/* The module was initialized again since: the session and
		 * its login went with it, and the handle is not ours now. */
		ps->have_session = 0;
		ps->login = 0;
		return;
	}
	pthread_mutex_lock(&p11_lock);
	last = p11_slot_unref(ps->mod, ps->slot);
	if(last && ps->login && ps->mod->owned)
		f->C_Logout(ps->session);
	pthread_mutex_unlock(&p11_lock);
	f->C_CloseSession(ps->session);
	ps->have_session = 0;
	ps->login = 0;
}

/* Up to max objects matching tmpl; *n how many. */
static sg_status p11_find_objects(struct p11_signer *ps, CK_ATTRIBUTE *tmpl,
                                  CK_ULONG ntmpl, CK_OBJECT_HANDLE *found,
                                  CK_ULONG max, CK_ULONG *n)
{
	CK_FUNCTION_LIST_PTR f = ps->mod->f;
	CK_RV rv;

	*n = 0;
	rv = f->C_FindObjectsInit(ps->session, tmpl, ntmpl);
	if(rv != CKR_OK)
		return p11_fail_rv(rv, "C_FindObjectsInit", "token", ps->token);
	rv = f->C_FindObjects(ps->session, found, max, n);
	f->C_FindObjectsFinal(ps->session);
	if(rv != CKR_OK) {
		*n = 0;
		return p11_fail_rv(rv, "C_FindObjects", "token", ps->token);
	}
	if(*n > max) {
		*n = 0;
		return sg_fail(SG_ERR_HSM, "C_FindObjects on token '%s' "
		               "returned more objects than asked for",
		               ps->token);
	}
	return SG_OK;
}

/*
 * Reads attribute type of obj into *val (malloc, at most max bytes).  An
 * attribute the object lacks, or will not show, gives *val NULL and *len 0.
 */
static sg_status p11_get_attr(struct p11_signer *ps, CK_OBJECT_HANDLE obj,
                              CK_ATTRIBUTE_TYPE type, const char *name,
                              CK_ULONG max, unsigned char **val,
                              CK_ULONG *len)
{
	CK_FUNCTION_LIST_PTR f = ps->mod->f;
	CK_ATTRIBUTE a = { type, NULL, 0 };
	CK_ULONG cap;
	CK_RV rv;

	*val = NULL;
	*len = 0;
	rv = f->C_GetAttributeValue(ps->session, obj, &a, 1);
	if(rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_SENSITIVE ||
	   (rv == CKR_OK && a.ulValueLen == CK_UNAVAILABLE_INFORMATION))
		return SG_OK;
	if(rv != CKR_OK)
		return p11_fail_rv(rv, "C_GetAttributeValue", "token",
		                   ps->token);
	if(a.ulValueLen > max)
		return sg_fail(SG_ERR_TOO_LARGE, "%s on token '%s' is %lu "
		               "bytes (limit %lu)", name, ps->token,
		               (unsigned long)a.ulValueLen, (unsigned long)max);
	if(a.ulValueLen == 0)
		return SG_OK;
	cap = a.ulValueLen;
	a.pValue = malloc(cap);
	if(!a.pValue)
		return sg_fail(SG_ERR_NOMEM, "out of memory reading %s", name);
	rv = f->C_GetAttributeValue(ps->session, obj, &a, 1);
	if(rv != CKR_OK) {
		free(a.pValue);
		return p11_fail_rv(rv, "C_GetAttributeValue", "token",
		                   ps->token);
	}
	if(a.ulValueLen > cap) {
		free(a.pValue);
		return sg_fail(SG_ERR_HSM, "token '%s' returned %s of %lu "
		               "bytes into a buffer of %lu", ps->token, name,
		               (unsigned long)a.ulValueLen, (unsigned long)cap);
	}
	*val = a.pValue;
	*len = a.ulValueLen;
	return SG_OK;
}

/* Finds the one private key the URI names (CKA_LABEL and/or CKA_ID) and
 * its CKK_ type. */
static sg_status p11_find_key(struct p11_signer *ps, CK_OBJECT_HANDLE *key,
                              CK_KEY_TYPE *key_type)
{
	CK_FUNCTION_LIST_PTR f = ps->mod->f;
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[3] = { { CKA_CLASS, &cls, sizeof cls } };
	CK_ATTRIBUTE *a, kt = { CKA_KEY_TYPE, NULL, 0 };
	CK_OBJECT_HANDLE found[2];
	CK_KEY_TYPE type = 0;
	CK_ULONG nt = 1, n;
	sg_status rc;
	CK_RV rv;

	/* type= in the URI is not a filter here: we always want the private
	 * key, and the certificate with its id. */
	a = p11_kit_uri_get_attribute(ps->uri, CKA_LABEL);
	if(a)
		tmpl[nt++] = *a;
	a = p11_kit_uri_get_attribute(ps->uri, CKA_ID);
	if(a)
		tmpl[nt++] = *a;
	rc = p11_find_objects(ps, tmpl, nt, found, 2, &n);
	if(rc)
		return rc;
	if(n == 0)
		return sg_fail(SG_ERR_KEY, "no private key%s%s on token '%s'",
		               ps->object[0] ? " " : "", ps->object, ps->token);
	if(n > 1)
		return sg_fail(SG_ERR_KEY, "several private keys%s%s on token "
		               "'%s': add id= to the URI to pick one",
		               ps->object[0] ? " " : "", ps->object, ps->token);
	kt.pValue = &type;
	kt.ulValueLen = sizeof type;
	rv = f->C_GetAttributeValue(ps->session, found[0], &kt, 1);
	if(rv != CKR_OK)
		return p11_fail_rv(rv, "C_GetAttributeValue(CKA_KEY_TYPE)",
		                   "token", ps->token);
	if(kt.ulValueLen != sizeof type)
		return sg_fail(SG_ERR_HSM, "token '%s' returned a CKA_KEY_TYPE "
		               "of %lu bytes", ps->token,
		               (unsigned long)kt.ulValueLen);
	*key = found[0];
	*key_type = type;
	return SG_OK;
}

/*
 * The X.509 certificate with the key's CKA_ID, or else its label; *out NULL
 * if the token holds none.  Several: the first the token lists.
 */
static sg_status p11_find_cert(struct p11_signer *ps, X509 **out)
{
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_CERTIFICATE_TYPE ctype = CKC_X_509;
	CK_ATTRIBUTE tmpl[3] = {
		{ CKA_CLASS, &cls, sizeof cls },
		{ CKA_CERTIFICATE_TYPE, &ctype, sizeof ctype },
	};
	CK_OBJECT_HANDLE cert;
	unsigned char *id = NULL, *label = NULL, *der = NULL;
	const unsigned char *p;
	CK_ULONG idlen, labellen, derlen, n;
	sg_status rc;
	X509 *x;

	*out = NULL;
	rc = p11_get_attr(ps, ps->key, CKA_ID, "the key's CKA_ID", P11_MAX_ID,
	                  &id, &idlen);
	if(rc)
		goto out;
	if(idlen > 0) {
		tmpl[2].type = CKA_ID;
		tmpl[2].pValue = id;
		tmpl[2].ulValueLen = idlen;
	} else {
		rc = p11_get_attr(ps, ps->key, CKA_LABEL, "the key's CKA_LABEL",
		                  P11_MAX_LABEL, &label, &labellen);
		if(rc || labellen == 0)
			goto out;
		tmpl[2].type = CKA_LABEL;
		tmpl[2].pValue = label;
		tmpl[2].ulValueLen = labellen;
	}
	rc = p11_find_objects(ps, tmpl, 3, &cert, 1, &n);
	if(rc || n == 0)
		goto out;
	rc = p11_get_attr(ps, cert, CKA_VALUE, "the certificate's CKA_VALUE",
	                  P11_MAX_CERT, &der, &derlen);
	if(rc)
		goto out;
	p = der;
	x = derlen ? d2i_X509(NULL, &p, (long)derlen) : NULL;
	if(!x || p != der + derlen) {
		X509_free(x);
		rc = sg_fail_ossl(SG_ERR_MALFORMED, "the certificate of the "
		                  "key%s%s on token '%s' is not one DER X.509 "
		                  "certificate", ps->object[0] ? " " : "",
		                  ps->object, ps->token);
		goto out;
	}
	*out = x;
out:
	free(id);
	free(label);
	free(der);
	return rc;
}

static void p11_signer_free(void *ctx)
{
	struct p11_signer *ps = ctx;

	if(!ps)
		return;
	if(ps->mod) {
		pthread_rwlock_rdlock(&ps->mod->use);
		p11_session_close(ps);
		pthread_rwlock_unlock(&ps->mod->use);
		p11_module_put(ps->mod);
	}
	if(ps->pin)
		OPENSSL_secure_clear_free(ps->pin, ps->pinlen + 1);
	if(ps->uri) {
		p11_uri_forget_pin(ps->uri);
		p11_kit_uri_free(ps->uri);
	}
	if(ps->lock_init)
		pthread_mutex_destroy(&ps->lock);
	free(ps);
}

/*
 * Replaces a session that died under us: the module closed it, someone
 * logged the application out (login state is shared by all our sessions on
 * the token), or the token was removed and may be back, perhaps in another
 * slot.  Finds the token again, opens a session, logs in with the kept PIN
 * and finds the key again.  Called with ps->lock held.
 */
static sg_status p11_reconnect(struct p11_signer *ps)
{
	CK_OBJECT_HANDLE key = 0;
	CK_KEY_TYPE type = 0;
	sg_status rc;

	p11_session_close(ps);
	rc = p11_find_slot(ps);
	if(!rc)
		rc = p11_session_open(ps);
	if(!rc)
		rc = p11_find_key(ps, &key, &type);
	if(!rc && type == ps->key_type)
		ps->key = key;
	else if(!rc)
		rc = sg_fail(SG_ERR_KEY, "the private key%s%s on token '%s' "
		             "changed type", ps->object[0] ? " " : "",
		             ps->object, ps->token);
	if(rc)
		p11_session_close(ps);
	return rc;
}

/*
 * One C_SignInit + C_Sign, sizing the signature with a first C_Sign (PKCS#11
 * v2.40 section 5.2).  *out from malloc.  *rv_out: the token's failure, or
 * CKR_OK if the failure was ours.  Called with ps->lock held.
 */
static sg_status p11_sign_once(struct p11_signer *ps, CK_MECHANISM_TYPE mech,
                               const unsigned char *in, size_t inlen,
                               CK_ULONG maxsig, unsigned char **out,
                               CK_ULONG *outlen, CK_RV *rv_out)
{
	CK_FUNCTION_LIST_PTR f = ps->mod->f;
	CK_MECHANISM m = { mech, NULL, 0 };
	CK_ULONG len = 0, cap;
	unsigned char *buf;
	CK_RV rv;

	*out = NULL;
	*outlen = 0;
	*rv_out = CKR_OK;
	rv = f->C_SignInit(ps->session, &m, ps->key);
	if(rv != CKR_OK) {
		*rv_out = rv;
		return p11_fail_rv(rv, "C_SignInit", "token", ps->token);
	}
	rv = f->C_Sign(ps->session, (CK_BYTE_PTR)in, inlen, NULL, &len);
	if(rv != CKR_OK) {
		*rv_out = rv;
		return p11_fail_rv(rv, "C_Sign", "token", ps->token);
	}
	/* The operation stays active until a C_Sign that is not a size query
	 * or BUFFER_TOO_SMALL; bailing out before that leaves the session
	 * unusable, so mark it for replacement. */
	if(len == 0 || len > maxsig) {
		ps->session_bad = 1;
		return sg_fail(SG_ERR_HSM, "token '%s' announces a signature of "
		               "%lu bytes (limit %lu)", ps->token,
		               (unsigned long)len, (unsigned long)maxsig);
	}
	cap = len;
	buf = malloc(cap);
	if(!buf) {
		ps->session_bad = 1;
		return sg_fail(SG_ERR_NOMEM, "out of memory signing");
	}
	rv = f->C_Sign(ps->session, (CK_BYTE_PTR)in, inlen, buf, &len);
	if(rv != CKR_OK) {
		free(buf);
		if(rv == CKR_BUFFER_TOO_SMALL)
			ps->session_bad = 1;
		*rv_out = rv;
		return p11_fail_rv(rv, "C_Sign", "token", ps->token);
	}
	if(len == 0 || len > cap) {
		free(buf);
		return sg_fail(SG_ERR_HSM, "token '%s' returned a signature of "
		               "%lu bytes into a buffer of %lu", ps->token,
		               (unsigned long)len, (unsigned long)cap);
	}
	*out = buf;
	*outlen = len;
	return SG_OK;
}

/* The DER DigestInfo of RFC 8017 section 9.2 step 2.  *out: OPENSSL_free. */
static sg_status p11_digest_info(sg_md md, const unsigned char *digest,
                                 size_t dlen, unsigned char **out,
                                 size_t *outlen)
{
	X509_SIG *xs;
	X509_ALGOR *alg;
	ASN1_OCTET_STRING *oct;
	ASN1_OBJECT *obj;
	unsigned char *der = NULL;
	sg_status rc = SG_OK;
	int n;

	*out = NULL;
	*outlen = 0;
	xs = X509_SIG_new();
	if(!xs)
		return sg_fail_ossl(SG_ERR_NOMEM, "building a DigestInfo");
	X509_SIG_getm(xs, &alg, &oct);
	obj = OBJ_nid2obj(sg_md_nid(md));
	/* Note 1 to section 9.2: the parameters are an explicit NULL. */
	if(!obj || !X509_ALGOR_set0(alg, obj, V_ASN1_NULL, NULL) ||
	   !ASN1_OCTET_STRING_set(oct, digest, (int)dlen)) {
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "building a DigestInfo for %s",
		                  sg_md_name(md));
		goto out;
	}
	n = i2d_X509_SIG(xs, &der);
	if(n <= 0) {
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "encoding a DigestInfo");
		goto out;
	}
	*out = der;
	*outlen = (size_t)n;
out:
	X509_SIG_free(xs);
	return rc;
}

/*
 * CKM_ECDSA's r || s, each half of the signature (PKCS#11 v2.40 Current
 * Mechanisms section 2.3.1), as a DER ECDSA-Sig-Value (RFC 3279 section
 * 2.2.3).  *der from malloc.
 */
static sg_status p11_ecdsa_der(const unsigned char *raw, size_t len,
                               unsigned char **der, size_t *derlen)
{
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *s = NULL;
	unsigned char *buf = NULL, *p;
	sg_status rc = SG_OK;
	int n;

	*der = NULL;
	*derlen = 0;
	if(len == 0 || len % 2 != 0 || len > P11_MAX_EC_SIG)
		return sg_fail(SG_ERR_HSM, "the token's ECDSA signature of %zu "
		               "bytes is not r || s", len);
	r = BN_bin2bn(raw, (int)(len / 2), NULL);
	s = BN_bin2bn(raw + len / 2, (int)(len / 2), NULL);
	es = ECDSA_SIG_new();
	if(!r || !s || !es) {
		rc = sg_fail_ossl(SG_ERR_NOMEM, "decoding an ECDSA signature");
		goto out;
	}
	if(BN_is_zero(r) || BN_is_zero(s)) {
		rc = sg_fail(SG_ERR_HSM, "the token's ECDSA signature has a "
		             "zero r or s");
		goto out;
	}
	if(!ECDSA_SIG_set0(es, r, s)) {
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "ECDSA_SIG_set0");
		goto out;
	}
	r = s = NULL;   /* es owns them now */
	n = i2d_ECDSA_SIG(es, NULL);
	if(n <= 0) {
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "encoding an ECDSA signature");
		goto out;
	}
	buf = malloc((size_t)n);
	if(!buf) {
		rc = sg_fail(SG_ERR_NOMEM, "out of memory signing");
		goto out;
	}
	p = buf;
	if(i2d_ECDSA_SIG(es, &p) != n) {
		free(buf);
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "encoding an ECDSA signature");
		goto out;
	}
	*der = buf;
	*derlen = (size_t)n;
out:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	return rc;
}

/*
 * One signature on the signer's session, opening a new one first if it is
 * gone or stale; if the token says the session was lost on the way
 * (p11_session_lost), the session is replaced and the signature tried once
 * more.  *lost: a new session could not be had (the token may be away).
 * Called with ps->lock held and the module's use lock shared.
 */
static sg_status p11_sign_session(struct p11_signer *ps,
                                  CK_MECHANISM_TYPE mech,
                                  const unsigned char *in, size_t inlen,
                                  CK_ULONG maxsig, unsigned char **raw,
                                  CK_ULONG *rawlen, int *lost)
{
	char buf[32];
	sg_status rc = SG_OK;
	CK_RV rv = CKR_OK;

	*lost = 0;
	if(ps->pin_refused)
		return sg_fail(SG_ERR_PIN, "token '%s' refused the PIN "
		               "when signgate logged in to it again; it makes "
		               "no more tries, which would lock the token: "
		               "set the right PIN, then restart the service "
		               "(the download server: Save its signing "
		               "settings)", ps->token);
	if(!ps->have_session || ps->session_bad || ps->gen != ps->mod->gen) {
		rc = p11_module_check_init(ps->mod);
		if(rc) {
			*lost = 1;
			return rc;
		}
		rc = p11_reconnect(ps);
		*lost = rc != SG_OK && !ps->pin_refused;
		if(rc)
			return rc;
	}
	rc = p11_sign_once(ps, mech, in, inlen, maxsig, raw, rawlen, &rv);
	if(!rc || !p11_session_lost(rv))
		return rc;
	rc = p11_reconnect(ps);
	if(rc) {
		*lost = !ps->pin_refused;
		return sg_fail_prefix(rc, "session lost (%s); reconnecting",
		                      p11_rv_name(rv, buf, sizeof buf));
	}
	return p11_sign_once(ps, mech, in, inlen, maxsig, raw, rawlen, &rv);
}

/*
 * Signs, one caller of the signer at a time.  When no session can be had,
 * the module is initialized again (p11_module_reinit: a token that came
 * back is listed only then, by some modules) and the signature tried once
 * more; the failure is returned if that does not help.
 */
static sg_status p11_sign(void *ctx, sg_md md, const unsigned char *digest,
                          size_t dlen, unsigned char **sig, size_t *siglen)
{
	struct p11_signer *ps = ctx;
	unsigned char *di = NULL, *raw = NULL;
	const unsigned char *in;
	size_t inlen;
	CK_MECHANISM_TYPE mech;
	CK_ULONG rawlen = 0, maxsig;
	sg_status rc;
	int lost;

	if(sig)
		*sig = NULL;
	if(siglen)
		*siglen = 0;
	if(!ps || !digest || !sig || !siglen)
		return sg_fail(SG_ERR_USAGE, "pkcs11 sign: missing argument");
	if((int)md < (int)SG_MD_SHA1 || (int)md > (int)SG_MD_SHA512)
		return sg_fail(SG_ERR_USAGE, "unknown digest algorithm %d",
		               (int)md);
	if(dlen != sg_md_size(md))
		return sg_fail(SG_ERR_USAGE, "a %s digest is %zu bytes, not %zu",
		               sg_md_name(md), sg_md_size(md), dlen);
	if(ps->key_type == CKK_RSA) {
		rc = p11_digest_info(md, digest, dlen, &di, &inlen);
		if(rc)
			return rc;
		in = di;
		mech = CKM_RSA_PKCS;
		maxsig = P11_MAX_RSA_SIG;
	} else {
		in = digest;
		inlen = dlen;
		mech = CKM_ECDSA;
		maxsig = P11_MAX_EC_SIG;
	}

	pthread_mutex_lock(&ps->lock);
	pthread_rwlock_rdlock(&ps->mod->use);
	rc = p11_sign_session(ps, mech, in, inlen, maxsig, &raw, &rawlen,
	                      &lost);
	pthread_rwlock_unlock(&ps->mod->use);
	if(rc && lost && p11_module_reinit(ps->mod)) {
		pthread_rwlock_rdlock(&ps->mod->use);
		rc = p11_sign_session(ps, mech, in, inlen, maxsig, &raw,
		                      &rawlen, &lost);
		pthread_rwlock_unlock(&ps->mod->use);
		if(rc)
			rc = sg_fail_prefix(rc, "module initialized again");
	}
	pthread_mutex_unlock(&ps->lock);
	if(rc)
		goto out;

	if(ps->key_type == CKK_RSA) {
		*sig = raw;
		*siglen = rawlen;
		raw = NULL;
	} else {
		rc = p11_ecdsa_der(raw, rawlen, sig, siglen);
	}
out:
	OPENSSL_free(di);
	free(raw);
	return rc;
}

static const struct sg_signer_ops p11_ops = {
	.name = "pkcs11",
	.sign = p11_sign,
	.free = p11_signer_free,
};

/* p11-kit's parse of uri into *out (NULL on failure; p11_kit_uri_free). */
static sg_status p11_uri_parse(const char *uri, P11KitUri **out)
{
	int prc;

	*out = p11_kit_uri_new();
	if(!*out)
		return sg_fail(SG_ERR_NOMEM, "out of memory parsing a URI");
	prc = p11_kit_uri_parse(uri, P11_KIT_URI_FOR_ANY, *out);
	if(prc != P11_KIT_URI_OK) {
		p11_uri_forget_pin(*out);
		p11_kit_uri_free(*out);
		*out = NULL;
		return sg_fail(SG_ERR_USAGE, "bad PKCS#11 URI: %s",
		               p11_kit_uri_message(prc));
	}
	return SG_OK;
}

/*
 * Parses uri into ps->uri and says which module it names.  Messages quote
 * parts of the URI, never all of it: it may hold a pin-value.
 */
static sg_status p11_parse_uri(struct p11_signer *ps, const char *uri,
                               const char **path)
{
	sg_status rc;

	*path = NULL;
	rc = p11_uri_parse(uri, &ps->uri);
	if(rc)
		return rc;
	/* p11-kit's match functions fail on any attribute they did not
	 * recognize; say so rather than "token not found". */
	if(p11_kit_uri_any_unrecognized(ps->uri))
		return sg_fail(SG_ERR_USAGE, "PKCS#11 URI has a path attribute "
		               "that is not in RFC 7512");
	*path = p11_kit_uri_get_module_path(ps->uri);
	if(!*path && p11_kit_uri_get_module_name(ps->uri))
		return sg_fail(SG_ERR_UNSUPPORTED, "PKCS#11 URI: module-name is "
		               "not supported, give module-path");
	if(!*path)
		*path = P11_DEFAULT_MODULE;
	p11_describe_object(ps->uri, ps->object, sizeof ps->object);
	return SG_OK;
}

/*
 * Checks the module, finds the token, logs in and finds the key (and, if
 * cert_out, its certificate).  Called with the module's use lock shared.
 */
static sg_status p11_open_key(struct p11_signer *ps, X509 **cert_out)
{
	sg_status rc;
	size_t i;

	rc = p11_module_check_init(ps->mod);
	if(!rc)
		rc = p11_check_module(ps);
	if(!rc)
		rc = p11_find_slot(ps);
	if(!rc)
		rc = p11_session_open(ps);
	if(!rc)
		rc = p11_find_key(ps, &ps->key, &ps->key_type);
	if(rc)
		return rc;
	if(ps->key_type != CKK_RSA && ps->key_type != CKK_EC)
		return sg_fail(SG_ERR_UNSUPPORTED, "the private key%s%s on "
		               "token '%s' has key type 0x%lx; signgate signs "
		               "with RSA and EC keys", ps->object[0] ? " " : "",
		               ps->object, ps->token,
		               (unsigned long)ps->key_type);
	/* Blank or zero: the module gives no serial numbers to tell tokens
	 * apart by; sg_signer_sign_digest() still checks every signature. */
	for(i = 0; i < sizeof ps->serial; i++)
		if(ps->serial[i] != ' ' && ps->serial[i] != '\0')
			ps->have_serial = 1;
	ps->opened = 1;
	return cert_out ? p11_find_cert(ps, cert_out) : SG_OK;
}

sg_status sg_pkcs11_uri_split_module(const char *uri, char **rest,
                                     char **module)
{
	P11KitUri *u;
	const char *path;
	char *text = NULL;
	sg_status rc;
	int prc;

	*rest = NULL;
	*module = NULL;
	rc = p11_uri_parse(uri, &u);
	if(rc)
		return rc;
	path = p11_kit_uri_get_module_path(u);
	if(path && !(*module = strdup(path))) {
		rc = sg_fail(SG_ERR_NOMEM, "out of memory parsing a URI");
		goto out;
	}
	p11_kit_uri_set_module_path(u, NULL);
	prc = p11_kit_uri_format(u, P11_KIT_URI_FOR_ANY, &text);
	if(prc != P11_KIT_URI_OK) {
		rc = sg_fail(SG_ERR_USAGE, "bad PKCS#11 URI: %s",
		             p11_kit_uri_message(prc));
		goto out;
	}
	*rest = text;
	text = NULL;
out:
	if(rc) {
		free(*module);
		*module = NULL;
	}
	free(text);
	p11_uri_forget_pin(u);
	p11_kit_uri_free(u);
	return rc;
}

sg_status sg_pkcs11_open(const char *uri, const char *pin,
                         const struct sg_signer_ops **ops, void **ctx,
                         sg_key_type *type_out, X509 **cert_out)
{
	struct p11_signer *ps = NULL;
	const char *path;
	sg_status rc;
	int uninit;

	if(ops)
		*ops = NULL;
	if(ctx)
		*ctx = NULL;
	if(type_out)
		*type_out = 0;
	if(cert_out)
		*cert_out = NULL;
	if(!uri || !ops || !ctx || !type_out)
		return sg_fail(SG_ERR_USAGE, "sg_pkcs11_open: missing argument");

	ps = calloc(1, sizeof *ps);
	if(!ps)
		return sg_fail(SG_ERR_NOMEM, "out of memory opening a token");
	if(pthread_mutex_init(&ps->lock, NULL) != 0) {
		free(ps);
		return sg_fail(SG_ERR_INTERNAL, "pthread_mutex_init failed");
	}
	ps->lock_init = 1;
	rc = p11_parse_uri(ps, uri, &path);
	if(rc)
		goto out;
	/* The PIN first: a missing PIN file fails before the token is
	 * touched. */
	rc = p11_pin_read(ps, pin);
	if(rc)
		goto out;
	rc = p11_module_get(path, &ps->mod);
	if(rc)
		goto out;
	/* A module whose last re-initialization failed (its signers' token
	 * went away) gets another try before it is used. */
	pthread_rwlock_rdlock(&ps->mod->use);
	uninit = ps->mod->uninit;
	pthread_rwlock_unlock(&ps->mod->use);
	if(uninit)
		p11_module_reinit(ps->mod);
	pthread_rwlock_rdlock(&ps->mod->use);
	rc = p11_open_key(ps, cert_out);
	pthread_rwlock_unlock(&ps->mod->use);
	if(rc)
		goto out;
	*ops = &p11_ops;
	*ctx = ps;
	*type_out = ps->key_type == CKK_RSA ? SG_KEY_RSA : SG_KEY_EC;
	ps = NULL;
out:
	p11_signer_free(ps);
	return rc;
}
