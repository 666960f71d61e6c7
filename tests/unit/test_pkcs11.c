/*
 * test_pkcs11.c - the PKCS#11 signer backend (src/lib/pkcs11.c) against a
 * real token, normally SoftHSM2.
 *
 *   test_pkcs11 [-c SOFTHSM2_CONF] RSA_URI EC_URI
 *   test_pkcs11 -p PKI_DIR
 *
 * RSA_URI and EC_URI name an RSA and an EC private key on one token, with
 * module-path and pin-source (or pin-value) in the URI.  The token must hold
 * the matching public keys under the same CKA_ID (or label), and at least
 * two private keys in all.  -c sets SOFTHSM2_CONF before the module loads.
 * -p uses the token tests/setup/make-pki.sh made in PKI_DIR: its
 * softhsm2.conf, keys codesign-rsa and codesign-ec, PIN in pin.txt, module
 * $SOFTHSM2_MODULE or SoftHSM2's (no ';' to quote in a ctest command).
 * The public keys are read with pkcs11-tool ($SG_TEST_PKCS11_TOOL overrides)
 * so the signatures are checked by OpenSSL against keys that did not come
 * through the code under test.
 *
 * Prints one line per check and "N passed, M failed"; exits 0 only if all
 * passed, 2 on bad usage or if the fixture cannot be read.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>

#include "internal.h"
#include "signer_int.h"

#define NTHREADS 4
#define NSIGNS   50

static int passed, failed;

static void check(int ok, const char *fmt, ...) SG_PRINTF(2, 3);
static void check(int ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s ", ok ? "ok  " : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if(!ok && sg_last_error()[0])
		printf("\n     last error: %s", sg_last_error());
	printf("\n");
	fflush(stdout);
	if(ok)
		passed++;
	else
		failed++;
}

static void die(const char *fmt, ...) SG_PRINTF(1, 2);
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "test_pkcs11: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(2);
}

static const EVP_MD *md_evp(sg_md md)
{
	switch(md) {
	case SG_MD_SHA1: return EVP_sha1();
	case SG_MD_SHA256: return EVP_sha256();
	case SG_MD_SHA384: return EVP_sha384();
	case SG_MD_SHA512: return EVP_sha512();
	}
	return NULL;
}

/* ---------------------------------------------------------------- fixture */

/* What a URI names, for the helpers that need to reach the token directly. */
struct key_ref {
	const char *uri;
	char module[512];
	char token[33];
	char id_hex[2 * 64 + 1];     /* "" if the URI has no id= */
	char label[128];             /* "" if the URI has no object= */
	char pin_file[512];          /* "" if the URI has no pin-source file */
	EVP_PKEY *pub;
};

static void trim_copy(char *dst, size_t size, const unsigned char *src,
                      size_t len)
{
	while(len > 0 && (src[len - 1] == ' ' || src[len - 1] == '\0'))
		len--;
	if(len >= size)
		len = size - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

static void key_ref_parse(struct key_ref *k, const char *uri)
{
	P11KitUri *u = p11_kit_uri_new();
	CK_TOKEN_INFO *ti;
	CK_ATTRIBUTE *a;
	const char *s;

	memset(k, 0, sizeof *k);
	k->uri = uri;
	if(!u || p11_kit_uri_parse(uri, P11_KIT_URI_FOR_ANY, u) != 0)
		die("cannot parse URI %s", uri);
	s = p11_kit_uri_get_module_path(u);
	snprintf(k->module, sizeof k->module, "%s",
	         s ? s : "/usr/lib/softhsm/libsofthsm2.so");
	ti = p11_kit_uri_get_token_info(u);
	trim_copy(k->token, sizeof k->token, ti->label, sizeof ti->label);
	if(!k->token[0])
		die("URI %s has no token=", uri);
	a = p11_kit_uri_get_attribute(u, CKA_ID);
	if(a && a->ulValueLen > 0 && a->ulValueLen <= 64)
		sg_hex(a->pValue, a->ulValueLen, k->id_hex);
	a = p11_kit_uri_get_attribute(u, CKA_LABEL);
	if(a)
		trim_copy(k->label, sizeof k->label, a->pValue, a->ulValueLen);
	s = p11_kit_uri_get_pin_source(u);
	if(s) {
		if(!strncmp(s, "file://", 7))
			s += 7;
		else if(!strncmp(s, "file:", 5))
			s += 5;
		snprintf(k->pin_file, sizeof k->pin_file, "%s", s);
	}
	p11_kit_uri_free(u);
}

/* Runs argv, waits; 0 if it exited 0. */
static int run(char *const argv[])
{
	pid_t pid = fork();
	int status;

	if(pid < 0)
		return -1;
	if(pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		if(devnull >= 0)
			dup2(devnull, 1);
		execvp(argv[0], argv);
		_exit(127);
	}
	if(waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* The public key matching k, read out of the token by pkcs11-tool. */
static void key_ref_load_pub(struct key_ref *k, const char *dir,
                             const char *name)
{
	const char *tool = getenv("SG_TEST_PKCS11_TOOL");
	char out[600];
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t len;
	char *argv[16];
	int n = 0;

	snprintf(out, sizeof out, "%s/%s.der", dir, name);
	argv[n++] = (char *)(tool ? tool : "pkcs11-tool");
	argv[n++] = "--module";
	argv[n++] = k->module;
	argv[n++] = "--token-label";
	argv[n++] = k->token;
	argv[n++] = "--read-object";
	argv[n++] = "--type";
	argv[n++] = "pubkey";
	if(k->id_hex[0]) {
		argv[n++] = "--id";
		argv[n++] = k->id_hex;
	} else {
		argv[n++] = "--label";
		argv[n++] = k->label;
	}
	argv[n++] = "-o";
	argv[n++] = out;
	argv[n] = NULL;
	if(run(argv) != 0)
		die("%s could not read the public key for %s", argv[0], k->uri);
	if(sg_read_file(out, 1 << 20, &der, &len) != SG_OK)
		die("cannot read %s: %s", out, sg_last_error());
	p = der;
	k->pub = d2i_PUBKEY(NULL, &p, (long)len);
	if(!k->pub)
		die("%s: not a DER SubjectPublicKeyInfo", out);
	free(der);
	unlink(out);
}

/*
 * Closes every session the process has on k's token, behind the backend's
 * back (the module is already loaded and initialized by it): the next sign
 * must notice and reconnect.
 */
static int close_all_sessions(const struct key_ref *k)
{
	CK_C_GetFunctionList get;
	CK_FUNCTION_LIST_PTR f;
	CK_SLOT_ID slots[64];
	CK_ULONG n = 64, i;
	CK_TOKEN_INFO ti;
	char label[33];
	int closed = 0;
	void *dl;

	dl = dlopen(k->module, RTLD_NOW | RTLD_LOCAL);
	if(!dl)
		return 0;
	get = (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList");
	if(get && get(&f) == CKR_OK &&
	   f->C_GetSlotList(CK_TRUE, slots, &n) == CKR_OK) {
		for(i = 0; i < n; i++) {
			if(f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
				continue;
			trim_copy(label, sizeof label, ti.label,
			          sizeof ti.label);
			if(!strcmp(label, k->token) &&
			   f->C_CloseAllSessions(slots[i]) == CKR_OK)
				closed++;
		}
	}
	dlclose(dl);
	return closed;
}

/* uri with changes made by edit, as a new string (free()). */
static char *uri_edit(const char *uri,
                      void (*edit)(P11KitUri *u, const void *arg),
                      const void *arg)
{
	P11KitUri *u = p11_kit_uri_new();
	char *s = NULL;

	if(!u || p11_kit_uri_parse(uri, P11_KIT_URI_FOR_ANY, u) != 0)
		die("cannot parse %s", uri);
	edit(u, arg);
	if(p11_kit_uri_format(u, P11_KIT_URI_FOR_ANY, &s) != 0)
		die("cannot format an edited URI");
	p11_kit_uri_free(u);
	return s;
}

static void edit_object(P11KitUri *u, const void *arg)
{
	CK_ATTRIBUTE a = { CKA_LABEL, (void *)arg, strlen(arg) };

	p11_kit_uri_clear_attribute(u, CKA_ID);
	p11_kit_uri_set_attribute(u, &a);
}

static void edit_no_object(P11KitUri *u, const void *arg)
{
	(void)arg;
	p11_kit_uri_clear_attribute(u, CKA_ID);
	p11_kit_uri_clear_attribute(u, CKA_LABEL);
	p11_kit_uri_clear_attribute(u, CKA_CLASS);
}

static void edit_token(P11KitUri *u, const void *arg)
{
	CK_TOKEN_INFO *ti = p11_kit_uri_get_token_info(u);
	size_t n = strlen(arg);

	memset(ti->label, ' ', sizeof ti->label);
	memcpy(ti->label, arg, n < sizeof ti->label ? n : sizeof ti->label);
}

static void edit_module(P11KitUri *u, const void *arg)
{
	p11_kit_uri_set_module_path(u, arg);
}

/* arg: the new pin-source, or NULL for none. */
static void edit_pin_source(P11KitUri *u, const void *arg)
{
	p11_kit_uri_set_pin_value(u, NULL);
	p11_kit_uri_set_pin_source(u, arg);
}

static void edit_pin_value(P11KitUri *u, const void *arg)
{
	p11_kit_uri_set_pin_source(u, NULL);
	p11_kit_uri_set_pin_value(u, arg);
}

/* ---------------------------------------------------------------- signing */

struct signer {
	const struct sg_signer_ops *ops;
	void *ctx;
	sg_key_type type;
	X509 *cert;
};

static sg_status open_signer(const char *uri, const char *pin,
                             struct signer *s, int want_cert)
{
	memset(s, 0, sizeof *s);
	sg_clear_error();
	return sg_pkcs11_open(uri, pin, &s->ops, &s->ctx, &s->type,
	                      want_cert ? &s->cert : NULL);
}

static void close_signer(struct signer *s)
{
	if(s->ops)
		s->ops->free(s->ctx);
	X509_free(s->cert);
	memset(s, 0, sizeof *s);
}

static int verify(EVP_PKEY *pub, sg_md md, const unsigned char *dg,
                  size_t dlen, const unsigned char *sig, size_t siglen)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(pub, NULL);
	int ok;

	/* For RSA, set_signature_md makes OpenSSL check the DigestInfo too. */
	ok = c && EVP_PKEY_verify_init(c) == 1 &&
	     EVP_PKEY_CTX_set_signature_md(c, md_evp(md)) == 1 &&
	     EVP_PKEY_verify(c, sig, siglen, dg, dlen) == 1;
	EVP_PKEY_CTX_free(c);
	return ok;
}

/* Signs a random digest of md with s and verifies it with pub; 1 if good. */
static int sign_verify(struct signer *s, EVP_PKEY *pub, sg_md md)
{
	unsigned char dg[EVP_MAX_MD_SIZE], *sig = NULL;
	size_t dlen = sg_md_size(md), siglen = 0;
	int ok;

	if(RAND_bytes(dg, (int)dlen) != 1)
		return 0;
	if(s->ops->sign(s->ctx, md, dg, dlen, &sig, &siglen) != SG_OK)
		return 0;
	ok = siglen > 0 && verify(pub, md, dg, dlen, sig, siglen);
	free(sig);
	return ok;
}

struct thread_arg {
	struct signer *rsa, *ec;
	EVP_PKEY *rsa_pub, *ec_pub;
	int good;
	char err[256];
};

static void *thread_main(void *p)
{
	struct thread_arg *t = p;
	int i;

	for(i = 0; i < NSIGNS; i++) {
		int ok = i % 2 ? sign_verify(t->ec, t->ec_pub, SG_MD_SHA256)
		               : sign_verify(t->rsa, t->rsa_pub, SG_MD_SHA256);
		if(ok)
			t->good++;
		else if(!t->err[0])
			snprintf(t->err, sizeof t->err, "%s", sg_last_error());
	}
	return NULL;
}

/* ---------------------------------------------------------------- tests */

static void test_errors(struct key_ref *rsa)
{
	static const char wrong_pin[] = "pass:999999-not-the-pin";
	struct signer s;
	char *uri;
	sg_status st;

	/* First, while no signer is logged in: SoftHSM answers
	 * USER_ALREADY_LOGGED_IN without checking the PIN otherwise. */
	st = open_signer(rsa->uri, wrong_pin, &s, 0);
	check(st == SG_ERR_PIN && !s.ctx, "wrong PIN gives SG_ERR_PIN (%s)",
	      sg_strerror(st));
	check(strstr(sg_last_error(), "wrong PIN for token") &&
	      strstr(sg_last_error(), "CKR_PIN_INCORRECT") &&
	      !strstr(sg_last_error(), "999999"),
	      "wrong PIN message names token and CK_RV, not the PIN: %s",
	      sg_last_error());
	close_signer(&s);

	uri = uri_edit(rsa->uri, edit_object, "no-such-key");
	st = open_signer(uri, NULL, &s, 1);
	check(st == SG_ERR_KEY && !s.ctx && !s.cert,
	      "missing object gives SG_ERR_KEY (%s): %s", sg_strerror(st),
	      sg_last_error());
	close_signer(&s);
	free(uri);

	uri = uri_edit(rsa->uri, edit_no_object, NULL);
	st = open_signer(uri, NULL, &s, 0);
	check(st == SG_ERR_KEY && strstr(sg_last_error(), "id="),
	      "several matching keys give SG_ERR_KEY asking for id= (%s): %s",
	      sg_strerror(st), sg_last_error());
	close_signer(&s);
	free(uri);

	uri = uri_edit(rsa->uri, edit_token, "no-such-token");
	st = open_signer(uri, NULL, &s, 0);
	check(st == SG_ERR_NOT_FOUND && strstr(sg_last_error(), rsa->token),
	      "wrong token gives SG_ERR_NOT_FOUND listing the tokens (%s): %s",
	      sg_strerror(st), sg_last_error());
	close_signer(&s);
	free(uri);

	uri = uri_edit(rsa->uri, edit_module, "/nonexistent/libnot-a-module.so");
	st = open_signer(uri, NULL, &s, 0);
	check(st == SG_ERR_HSM && strstr(sg_last_error(), "No such file"),
	      "bad module path gives SG_ERR_HSM with dlerror (%s): %s",
	      sg_strerror(st), sg_last_error());
	close_signer(&s);
	free(uri);

	st = open_signer("pkcs11:token=x;no-such-attr=1", NULL, &s, 0);
	check(st == SG_ERR_USAGE, "unknown URI attribute gives SG_ERR_USAGE "
	      "(%s): %s", sg_strerror(st), sg_last_error());
	st = open_signer("/tmp/key.pem", NULL, &s, 0);
	check(st == SG_ERR_USAGE, "not a pkcs11: URI gives SG_ERR_USAGE "
	      "(%s): %s", sg_strerror(st), sg_last_error());
	st = open_signer(rsa->uri, "file:/nonexistent/pin.txt", &s, 0);
	check(st == SG_ERR_IO || st == SG_ERR_NOT_FOUND,
	      "unreadable PIN file fails before the token (%s): %s",
	      sg_strerror(st), sg_last_error());
}

static void test_pin_sources(struct key_ref *rsa)
{
	char src[600], spec[600];
	static const char *const forms[] = { "file:", "file://", "" };
	struct signer s;
	sg_status st;
	size_t i;

	if(!rsa->pin_file[0] || rsa->pin_file[0] != '/') {
		printf("skip pin-source forms: the RSA URI has no absolute "
		       "pin-source file\n");
		return;
	}
	for(i = 0; i < sizeof forms / sizeof forms[0]; i++) {
		char *uri;

		snprintf(src, sizeof src, "%s%s", forms[i], rsa->pin_file);
		uri = uri_edit(rsa->uri, edit_pin_source, src);
		st = open_signer(uri, NULL, &s, 0);
		check(st == SG_OK && sign_verify(&s, rsa->pub, SG_MD_SHA256),
		      "pin-source=%s opens and signs", src);
		close_signer(&s);
		free(uri);
	}
	/* The pin argument overrides the URI's (wrong) pin-source. */
	{
		char *uri = uri_edit(rsa->uri, edit_pin_source, "file:/nonexistent");

		snprintf(spec, sizeof spec, "file:%s", rsa->pin_file);
		st = open_signer(uri, spec, &s, 0);
		check(st == SG_OK && sign_verify(&s, rsa->pub, SG_MD_SHA256),
		      "a PIN spec overrides the URI's pin-source");
		close_signer(&s);
		free(uri);
	}
	/* pin-value works, and no message quotes it. */
	{
		char *pin = NULL, *uri, *bad;

		snprintf(spec, sizeof spec, "file:%s", rsa->pin_file);
		if(sg_secret_read(spec, &pin) != SG_OK)
			die("cannot read %s: %s", spec, sg_last_error());
		uri = uri_edit(rsa->uri, edit_pin_value, pin);
		st = open_signer(uri, NULL, &s, 0);
		check(st == SG_OK && sign_verify(&s, rsa->pub, SG_MD_SHA256),
		      "pin-value in the URI opens and signs");
		close_signer(&s);
		bad = uri_edit(uri, edit_object, "no-such-key");
		st = open_signer(bad, NULL, &s, 0);
		check(st == SG_ERR_KEY && !strstr(sg_last_error(), pin),
		      "a failure with a pin-value URI does not quote the PIN");
		OPENSSL_cleanse(bad, strlen(bad));
		OPENSSL_cleanse(uri, strlen(uri));
		free(bad);
		free(uri);
		sg_secret_free(pin);
	}
	/* No PIN anywhere. */
	{
		char *uri = uri_edit(rsa->uri, edit_pin_source, NULL);

		st = open_signer(uri, NULL, &s, 0);
		check(st == SG_ERR_PIN && strstr(sg_last_error(), "needs a PIN"),
		      "no PIN gives SG_ERR_PIN (%s): %s", sg_strerror(st),
		      sg_last_error());
		free(uri);
	}
}

static void test_cert(struct signer *s, struct key_ref *k, const char *name)
{
	if(!s->cert) {
		printf("note %s: no certificate on the token for this key\n",
		       name);
		return;
	}
	check(EVP_PKEY_eq(X509_get0_pubkey(s->cert), k->pub) == 1,
	      "%s: the token's certificate carries the key's public key",
	      name);
}

static void test_sign(struct key_ref *rsa, struct key_ref *ec)
{
	static const sg_md mds[] = {
		SG_MD_SHA1, SG_MD_SHA256, SG_MD_SHA384, SG_MD_SHA512,
	};
	struct signer r, e;
	struct thread_arg ta[NTHREADS];
	pthread_t th[NTHREADS];
	unsigned char dg[32] = { 0 }, *sig = NULL;
	size_t siglen = 0, i;
	sg_status st;
	int ok;

	st = open_signer(rsa->uri, NULL, &r, 1);
	check(st == SG_OK && r.type == SG_KEY_RSA && r.ops &&
	      !strcmp(r.ops->name, "pkcs11"), "open RSA key by URI (%s)",
	      sg_strerror(st));
	st = open_signer(ec->uri, NULL, &e, 1);
	check(st == SG_OK && e.type == SG_KEY_EC, "open EC key by URI (%s)",
	      sg_strerror(st));
	if(!r.ctx || !e.ctx) {
		close_signer(&r);
		close_signer(&e);
		return;
	}
	test_cert(&r, rsa, "RSA");
	test_cert(&e, ec, "EC");

	for(i = 0; i < sizeof mds / sizeof mds[0]; i++) {
		check(sign_verify(&r, rsa->pub, mds[i]),
		      "RSA %s signature verifies", sg_md_name(mds[i]));
		check(sign_verify(&e, ec->pub, mds[i]),
		      "EC %s signature verifies", sg_md_name(mds[i]));
	}

	st = r.ops->sign(r.ctx, SG_MD_SHA256, dg, 20, &sig, &siglen);
	check(st == SG_ERR_USAGE && !sig && !siglen,
	      "a digest of the wrong length gives SG_ERR_USAGE (%s)",
	      sg_strerror(st));

	/* Sessions closed behind our back: sign() reconnects and retries. */
	ok = close_all_sessions(rsa) > 0;
	check(ok && sign_verify(&r, rsa->pub, SG_MD_SHA256) &&
	      sign_verify(&e, ec->pub, SG_MD_SHA256),
	      "signing after C_CloseAllSessions reconnects");

	memset(ta, 0, sizeof ta);
	for(i = 0; i < NTHREADS; i++) {
		ta[i].rsa = &r;
		ta[i].ec = &e;
		ta[i].rsa_pub = rsa->pub;
		ta[i].ec_pub = ec->pub;
		if(pthread_create(&th[i], NULL, thread_main, &ta[i]) != 0)
			die("pthread_create failed");
	}
	for(i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		check(ta[i].good == NSIGNS, "thread %zu: %d of %d signatures "
		      "verify%s%s", i, ta[i].good, NSIGNS,
		      ta[i].err[0] ? "; first error: " : "", ta[i].err);
	}

	/* Freeing one signer must not log out the other's shared token. */
	close_signer(&e);
	check(sign_verify(&r, rsa->pub, SG_MD_SHA256),
	      "RSA still signs after the EC signer on the same token is freed");
	close_signer(&r);

	/* The module outlives its last user (it stays initialized); a new
	 * signer takes it up again. */
	st = open_signer(ec->uri, NULL, &e, 0);
	check(st == SG_OK && sign_verify(&e, ec->pub, SG_MD_SHA256),
	      "reopen after the module was released (%s)", sg_strerror(st));
	close_signer(&e);
}

/*
 * Someone else in the process initialized the module first: the backend must
 * accept CKR_CRYPTOKI_ALREADY_INITIALIZED and leave C_Finalize to them.
 */
static void test_foreign_init(struct key_ref *rsa)
{
	CK_C_GetFunctionList get;
	CK_FUNCTION_LIST_PTR f = NULL;
	CK_C_INITIALIZE_ARGS args;
	CK_INFO info;
	struct signer s;
	sg_status st;
	void *dl;

	dl = dlopen(rsa->module, RTLD_NOW | RTLD_LOCAL);
	if(!dl)
		die("dlopen %s: %s", rsa->module, dlerror());
	get = (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList");
	if(!get || get(&f) != CKR_OK || !f)
		die("%s: no function list", rsa->module);
	memset(&args, 0, sizeof args);
	args.flags = CKF_OS_LOCKING_OK;
	if(f->C_Initialize(&args) != CKR_OK)
		die("%s: C_Initialize failed", rsa->module);
	st = open_signer(rsa->uri, NULL, &s, 0);
	check(st == SG_OK && sign_verify(&s, rsa->pub, SG_MD_SHA256),
	      "opens and signs when someone else initialized the module (%s)",
	      sg_strerror(st));
	close_signer(&s);
	check(f->C_GetInfo(&info) == CKR_OK,
	      "...and leaves the module initialized when freed");
	f->C_Finalize(NULL);
	dlclose(dl);
}

#define USAGE "usage: test_pkcs11 [-c SOFTHSM2_CONF] RSA_URI EC_URI\n" \
              "       test_pkcs11 -p PKI_DIR"

int main(int argc, char **argv)
{
	struct key_ref rsa, ec;
	char dir[] = "/tmp/test_pkcs11.XXXXXX", conf[600];
	char rsa_uri[1400], ec_uri[1400];
	const char *pki = NULL, *module;
	int opt;

	while((opt = getopt(argc, argv, "c:p:")) != -1) {
		if(opt == 'c')
			setenv("SOFTHSM2_CONF", optarg, 1);
		else if(opt == 'p')
			pki = optarg;
		else
			die(USAGE);
	}
	if(pki && argc == optind) {
		module = getenv("SOFTHSM2_MODULE");
		if(!module)
			module = "/usr/lib/softhsm/libsofthsm2.so";
		snprintf(conf, sizeof conf, "%s/softhsm2.conf", pki);
		setenv("SOFTHSM2_CONF", conf, 1);
		snprintf(rsa_uri, sizeof rsa_uri, "pkcs11:token=signgate;"
		         "object=codesign-rsa?module-path=%s&pin-source=file:"
		         "%s/pin.txt", module, pki);
		snprintf(ec_uri, sizeof ec_uri, "pkcs11:token=signgate;"
		         "object=codesign-ec?module-path=%s&pin-source=file:"
		         "%s/pin.txt", module, pki);
	} else if(!pki && argc - optind == 2) {
		snprintf(rsa_uri, sizeof rsa_uri, "%s", argv[optind]);
		snprintf(ec_uri, sizeof ec_uri, "%s", argv[optind + 1]);
	} else {
		die(USAGE);
	}
	key_ref_parse(&rsa, rsa_uri);
	key_ref_parse(&ec, ec_uri);
	if(!mkdtemp(dir))
		die("mkdtemp failed");
	key_ref_load_pub(&rsa, dir, "rsa");
	key_ref_load_pub(&ec, dir, "ec");
	rmdir(dir);

	/* First: once we initialized the module ourselves, it stays so. */
	test_foreign_init(&rsa);
	test_errors(&rsa);
	test_pin_sources(&rsa);
	test_sign(&rsa, &ec);

	EVP_PKEY_free(rsa.pub);
	EVP_PKEY_free(ec.pub);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
