/*
 * sign.c - signing a whole file with a local signer: one streaming pass
 * that hashes the file while copying it into a temporary output, then the
 * signature, then the header patches, fsync and rename.
 */
#include <stdlib.h>

#include <openssl/crypto.h>

#include "authenticode_int.h"
#include "internal.h"

sg_status sg_sign_file_ex(const char *in, const char *out, sg_md md, int nest,
                          sg_signer *s, const sg_sign_opts *opts,
                          sg_sig_hook hook, void *arg)
{
	unsigned char digest[SG_MAX_MD], *sig = NULL, *old = NULL, *next = NULL;
	size_t dlen, siglen = 0, oldlen = 0, nextlen = 0;
	sg_file *f = NULL;
	sg_outfile o = { .fd = -1 };
	sg_status rc;

	rc = sg_file_open(in, &f);
	if(rc)
		return rc;
	if(nest) {
		rc = sg_file_get_signature(f, &old, &oldlen);
		if(rc == SG_ERR_NOT_SIGNED) {
			rc = SG_OK; /* nothing to nest in: a plain signature */
			sg_clear_error();
		}
		if(rc)
			goto out;
	}
	rc = sg_outfile_open(&o, out);
	if(rc)
		goto out;
	rc = sg_file_digest(f, md, o.fd, digest, &dlen);
	if(!rc)
		rc = sg_authenticode_sign(s, sg_file_format(f), md, digest, dlen, opts,
		                          &sig, &siglen);
	/* The hook (a timestamp) sees the new signature before it is nested. */
	if(!rc && hook) {
		rc = hook(arg, sig, siglen, &next, &nextlen);
		if(!rc && next) {
			free(sig);
			sig = next;
			siglen = nextlen;
		}
	}
	if(!rc && old) {
		rc = sg_authenticode_nest(old, oldlen, sig, siglen, &next, &nextlen);
		if(!rc) {
			free(sig);
			sig = next;
			siglen = nextlen;
		}
	}
	if(!rc)
		rc = sg_file_write_fd(f, sig, siglen, o.fd, 1);
	rc = sg_outfile_end(&o, rc);
out:
	free(sig);
	free(old);
	sg_file_close(f);
	return rc;
}

sg_status sg_sign_file(const char *in, const char *out, sg_md md, int nest,
                       sg_signer *s, const sg_sign_opts *opts)
{
	return sg_sign_file_ex(in, out, md, nest, s, opts, NULL, NULL);
}

sg_status sg_embed_checked(sg_file *f, const unsigned char *sig, size_t siglen,
                           const char *out, sg_md *md_out)
{
	unsigned char signed_digest[SG_MAX_MD], digest[SG_MAX_MD];
	const unsigned char *content;
	long content_len;
	size_t dlen = 0;
	sg_outfile o = { .fd = -1 };
	PKCS7 *p7 = NULL;
	sg_md md = SG_MD_SHA256;
	sg_status rc;

	rc = sg_ac_parse(sig, siglen, &p7);
	if(!rc)
		rc = sg_ac_read_content(p7, &md, signed_digest, &content, &content_len);
	if(!rc)
		rc = sg_outfile_open(&o, out);
	if(rc)
		goto out;
	/* The bytes written are the bytes hashed: they must be what the
	 * signature covers. */
	rc = sg_file_digest(f, md, o.fd, digest, &dlen);
	if(!rc && (dlen != sg_md_size(md) || CRYPTO_memcmp(digest, signed_digest, dlen)))
		rc = sg_fail(SG_ERR_VERIFY, "the signature's %s digest does not match the file",
		             sg_md_name(md));
	if(!rc)
		rc = sg_file_write_fd(f, sig, siglen, o.fd, 1);
	rc = sg_outfile_end(&o, rc);
out:
	if(md_out)
		*md_out = md;
	PKCS7_free(p7);
	return rc;
}

sg_status sg_attach_signature_file(const char *in, const char *sigpath,
                                   const char *out)
{
	unsigned char *sig = NULL;
	size_t siglen;
	sg_file *f = NULL;
	sg_md md;
	sg_status rc;

	rc = sg_read_file(sigpath, 64u << 20, &sig, &siglen);
	if(rc)
		return sg_fail_prefix(rc, "signature");
	rc = sg_file_open(in, &f);
	if(!rc)
		rc = sg_embed_checked(f, sig, siglen, out, &md);
	if(rc == SG_ERR_VERIFY)
		rc = sg_fail(rc, "%s was made for another file: its %s digest does not match %s; "
		             "nothing written to %s", sigpath, sg_md_name(md), in, out);
	else if(rc == SG_ERR_MALFORMED)
		rc = sg_fail_prefix(rc, "%s", sigpath);
	sg_file_close(f);
	free(sig);
	return rc;
}

sg_status sg_write_file_atomic(const char *path, const void *buf, size_t len)
{
	sg_outfile o;
	sg_status rc;

	rc = sg_outfile_open(&o, path);
	if(rc)
		return rc;
	return sg_outfile_end(&o, sg_write_all(o.fd, buf, len));
}
