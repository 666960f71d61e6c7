/*
 * authenticode.c - builds Authenticode signatures: a PKCS#7 SignedData
 * (RFC 2315) whose content is SpcIndirectDataContent, signed attributes
 * contentType, messageDigest, SpcSpOpusInfo and SpcStatementType, the whole
 * certificate chain, and the signature made by an sg_signer over the DER of
 * the signed attributes.  The content's digest covers the value of
 * SpcIndirectDataContent without its SEQUENCE tag and length, as the
 * Authenticode specification requires.  No signingTime attribute is added
 * (as with signtool), so a fixed RSA key, digest and certificate give
 * byte-identical output.  Nothing here sees the file: only its digest.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>

#include "authenticode_int.h"
#include "internal.h"
#include "signer_int.h"
#include "spc.h"

/* SpcPeImageData as signtool writes it: no flags, and the file link
 * "<<<Obsolete>>>" in Unicode. */
static sg_status ac_pe_image_data(ASN1_TYPE **out)
{
	static const unsigned char obsolete[] = {
		0, '<', 0, '<', 0, '<', 0, 'O', 0, 'b', 0, 's', 0, 'o', 0, 'l',
		0, 'e', 0, 't', 0, 'e', 0, '>', 0, '>', 0, '>'
	};
	SpcPeImageData *pid = SpcPeImageData_new();
	unsigned char *der = NULL;
	ASN1_STRING *seq = NULL;
	int len;
	sg_status rc = SG_OK;

	*out = NULL;
	if(!pid || !(pid->file = SpcLink_new()) ||
	   !(pid->file->value.file = SpcString_new()) ||
	   !(pid->file->value.file->value.unicode = ASN1_BMPSTRING_new()) ||
	   !ASN1_STRING_set(pid->file->value.file->value.unicode, obsolete,
	                    sizeof(obsolete))) {
		rc = sg_fail_ossl(SG_ERR_NOMEM, "cannot build SpcPeImageData");
		goto out;
	}
	pid->file->type = 2;
	pid->file->value.file->type = 0;
	len = i2d_SpcPeImageData(pid, &der);
	if(len <= 0 || !(seq = ASN1_STRING_new()) || !(*out = ASN1_TYPE_new())) {
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "cannot encode SpcPeImageData");
		goto out;
	}
	ASN1_STRING_set0(seq, der, len);
	der = NULL;
	ASN1_TYPE_set(*out, V_ASN1_SEQUENCE, seq);
	seq = NULL;
out:
	OPENSSL_free(der);
	ASN1_STRING_free(seq);
	SpcPeImageData_free(pid);
	return rc;
}

/* The "data" part of SpcIndirectDataContent for each format. */
static const struct {
	const char *fmt;
	const char *oid;
	sg_status (*value)(ASN1_TYPE **out);
} ac_formats[] = {
	{ "pe", SPC_PE_IMAGE_DATA_OBJID, ac_pe_image_data },
};

sg_status sg_ac_build_idc(const char *fmt, sg_md md, const unsigned char *digest,
                          size_t dlen, unsigned char **der, int *derlen)
{
	SpcIndirectDataContent *idc = NULL;
	size_t i;
	sg_status rc = SG_OK;

	*der = NULL;
	*derlen = 0;
	for(i = 0; i < sizeof(ac_formats) / sizeof(ac_formats[0]); i++)
		if(!strcmp(fmt, ac_formats[i].fmt))
			break;
	if(i == sizeof(ac_formats) / sizeof(ac_formats[0]))
		return sg_fail(SG_ERR_UNSUPPORTED, "unknown file format '%s' (known: pe)", fmt);
	if(dlen != sg_md_size(md))
		return sg_fail(SG_ERR_USAGE, "digest is %zu bytes; %s needs %zu",
		               dlen, sg_md_name(md), sg_md_size(md));
	idc = SpcIndirectDataContent_new();
	if(!idc) {
		rc = sg_fail(SG_ERR_NOMEM, "out of memory");
		goto out;
	}
	ASN1_OBJECT_free(idc->data->type);
	idc->data->type = OBJ_txt2obj(ac_formats[i].oid, 1);
	rc = ac_formats[i].value(&idc->data->value);
	if(rc)
		goto out;
	if(!idc->data->type ||
	   !X509_ALGOR_set0(idc->messageDigest->digestAlgorithm,
	                    OBJ_nid2obj(sg_md_nid(md)), V_ASN1_NULL, NULL) ||
	   !ASN1_OCTET_STRING_set(idc->messageDigest->digest, digest, (int)dlen)) {
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "cannot build SpcIndirectDataContent");
		goto out;
	}
	*derlen = i2d_SpcIndirectDataContent(idc, der);
	if(*derlen <= 0) {
		*der = NULL;
		*derlen = 0;
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "cannot encode SpcIndirectDataContent");
	}
out:
	SpcIndirectDataContent_free(idc);
	return rc;
}

sg_status sg_ac_content_octets(const unsigned char *der, long len,
                               const unsigned char **val, long *vallen)
{
	const unsigned char *p = der;
	long olen;
	int tag, xclass, inf;

	inf = ASN1_get_object(&p, &olen, &tag, &xclass, len);
	if((inf & 0x80) || tag != V_ASN1_SEQUENCE || (inf & V_ASN1_CONSTRUCTED) == 0 ||
	   olen > len - (p - der)) {
		ERR_clear_error();
		return sg_fail(SG_ERR_MALFORMED, "SpcIndirectDataContent is not a DER SEQUENCE");
	}
	*val = p;
	*vallen = olen;
	return SG_OK;
}

static sg_status ac_add_attr_der(PKCS7_SIGNER_INFO *si, int nid,
                                 unsigned char *der, int len)
{
	ASN1_STRING *s = ASN1_STRING_new();

	if(!s)
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	ASN1_STRING_set0(s, der, len);
	if(!PKCS7_add_signed_attribute(si, nid, V_ASN1_SEQUENCE, s)) {
		ASN1_STRING_free(s);
		return sg_fail_ossl(SG_ERR_CRYPTO, "cannot add signed attribute");
	}
	return SG_OK;
}

static sg_status ac_opus_info(PKCS7_SIGNER_INFO *si, const sg_sign_opts *opts)
{
	SpcSpOpusInfo *opus = SpcSpOpusInfo_new();
	unsigned char *der = NULL;
	int len;
	sg_status rc = SG_OK;

	if(!opus)
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	if(opts && opts->program_name && *opts->program_name) {
		/* Stored as a UTF-16 BMPString, as signtool does. */
		opus->programName = SpcString_new();
		/* Choose the CHOICE arm first, so that freeing frees its value. */
		if(opus->programName)
			opus->programName->type = 0;
		if(!opus->programName ||
		   !(opus->programName->value.unicode = ASN1_BMPSTRING_new()) ||
		   ASN1_mbstring_copy(&opus->programName->value.unicode,
		                      (const unsigned char *)opts->program_name, -1,
		                      MBSTRING_UTF8, B_ASN1_BMPSTRING) < 0) {
			ERR_clear_error();
			rc = sg_fail(SG_ERR_USAGE, "field 'program_name' (the program name) must be "
			             "UTF-8 text in the Basic Multilingual Plane (Windows stores it "
			             "as UCS-2; no emoji)");
			goto out;
		}
		opus->programName->type = 0;
	}
	if(opts && opts->url && *opts->url) {
		opus->moreInfo = SpcLink_new();
		if(opus->moreInfo)
			opus->moreInfo->type = 0;
		if(!opus->moreInfo || !(opus->moreInfo->value.url = ASN1_IA5STRING_new()) ||
		   !ASN1_STRING_set(opus->moreInfo->value.url, opts->url, -1)) {
			rc = sg_fail_ossl(SG_ERR_NOMEM, "cannot build SpcSpOpusInfo");
			goto out;
		}
		for(const char *c = opts->url; *c; c++)
			if((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e) {
				rc = sg_fail(SG_ERR_USAGE, "field 'program_url' (the program URL) must be printable ASCII");
				goto out;
			}
		opus->moreInfo->type = 0;
	}
	len = i2d_SpcSpOpusInfo(opus, &der);
	if(len <= 0) {
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "cannot encode SpcSpOpusInfo");
		goto out;
	}
	rc = ac_add_attr_der(si, sg_nid_spc_sp_opus_info, der, len);
	if(rc)
		OPENSSL_free(der);
out:
	SpcSpOpusInfo_free(opus);
	return rc;
}

static sg_status ac_statement_type(PKCS7_SIGNER_INFO *si)
{
	SpcStatementType *st = sk_ASN1_OBJECT_new_null();
	ASN1_OBJECT *o = OBJ_txt2obj(SPC_INDIVIDUAL_SP_KEY_PURPOSE_OBJID, 1);
	unsigned char *der = NULL;
	int len;
	sg_status rc;

	if(!st || !o || !sk_ASN1_OBJECT_push(st, o)) {
		ASN1_OBJECT_free(o);
		sk_ASN1_OBJECT_free(st);
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	}
	len = ASN1_item_i2d((ASN1_VALUE *)st, &der, ASN1_ITEM_rptr(SpcStatementType));
	sk_ASN1_OBJECT_pop_free(st, ASN1_OBJECT_free);
	if(len <= 0)
		return sg_fail_ossl(SG_ERR_CRYPTO, "cannot encode SpcStatementType");
	rc = ac_add_attr_der(si, sg_nid_spc_statement_type, der, len);
	if(rc)
		OPENSSL_free(der);
	return rc;
}

/* The signature algorithm OpenSSL itself writes for this key and digest:
 * rsaEncryption for RSA, ecdsa-with-SHAxxx for EC. */
static int ac_sig_alg(X509_ALGOR *alg, sg_key_type type, sg_md md)
{
	int signid = NID_undef;

	if(type == SG_KEY_RSA)
		return X509_ALGOR_set0(alg, OBJ_nid2obj(NID_rsaEncryption), V_ASN1_NULL, NULL);
	if(!OBJ_find_sigid_by_algs(&signid, sg_md_nid(md), NID_X9_62_id_ecPublicKey))
		return 0;
	return X509_ALGOR_set0(alg, OBJ_nid2obj(signid), V_ASN1_UNDEF, NULL);
}

/* DER of p7 in malloc'd memory (callers free it with sg_free()). */
static sg_status ac_encode(PKCS7 *p7, unsigned char **der, size_t *derlen)
{
	unsigned char *out = NULL;
	int len = i2d_PKCS7(p7, &out);

	if(len <= 0)
		return sg_fail_ossl(SG_ERR_CRYPTO, "cannot encode SignedData");
	*der = malloc((size_t)len);
	if(!*der) {
		OPENSSL_free(out);
		return sg_fail(SG_ERR_NOMEM, "out of memory");
	}
	memcpy(*der, out, (size_t)len);
	*derlen = (size_t)len;
	OPENSSL_free(out);
	return SG_OK;
}

sg_status sg_p7_sign(sg_signer *s, sg_md md, int ctype_nid, ASN1_TYPE *content,
                     const unsigned char *covered, size_t covlen,
                     sg_attr_fn add_attrs, void *arg, PKCS7 **out)
{
	X509 *leaf = sg_signer_leaf(s);
	STACK_OF(X509) *certs = sg_signer_certs(s);
	unsigned char *attrs = NULL, *sig = NULL;
	unsigned char cdigest[SG_MAX_MD], adigest[SG_MAX_MD];
	int attrlen;
	size_t siglen = 0;
	PKCS7 *p7 = NULL, *inner = NULL;
	PKCS7_SIGNER_INFO *si = NULL;
	sg_status rc = SG_OK;

	*out = NULL;
	sg_spc_init();
	if(!EVP_Digest(covered, covlen, cdigest, NULL, sg_md_evp(md), NULL)) {
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "digest failed");
		goto out;
	}

	/* SignerInfo: version 1, issuerAndSerialNumber, algorithms. */
	si = PKCS7_SIGNER_INFO_new();
	if(!si || !ASN1_INTEGER_set(si->version, 1) ||
	   !X509_NAME_set(&si->issuer_and_serial->issuer, X509_get_issuer_name(leaf))) {
		rc = sg_fail_ossl(SG_ERR_NOMEM, "cannot build SignerInfo");
		goto out;
	}
	ASN1_INTEGER_free(si->issuer_and_serial->serial);
	si->issuer_and_serial->serial = ASN1_INTEGER_dup(X509_get0_serialNumber(leaf));
	if(!si->issuer_and_serial->serial ||
	   !X509_ALGOR_set0(si->digest_alg, OBJ_nid2obj(sg_md_nid(md)), V_ASN1_NULL, NULL) ||
	   !ac_sig_alg(si->digest_enc_alg, sg_signer_key_type(s), md)) {
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "cannot build SignerInfo");
		goto out;
	}
	if(!PKCS7_add_signed_attribute(si, NID_pkcs9_contentType, V_ASN1_OBJECT,
	                               OBJ_nid2obj(ctype_nid))) {
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "cannot add contentType");
		goto out;
	}
	if(add_attrs && (rc = add_attrs(si, arg)) != SG_OK)
		goto out;
	if(!PKCS7_add1_attrib_digest(si, cdigest, (int)sg_md_size(md))) {
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "cannot add messageDigest");
		goto out;
	}

	/* Sign the DER of the signed attributes (a SET OF, sorted). */
	attrlen = ASN1_item_i2d((ASN1_VALUE *)si->auth_attr, &attrs,
	                        ASN1_ITEM_rptr(PKCS7_ATTR_SIGN));
	if(attrlen <= 0 || !EVP_Digest(attrs, (size_t)attrlen, adigest, NULL,
	                               sg_md_evp(md), NULL)) {
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "cannot encode signed attributes");
		goto out;
	}
	rc = sg_signer_sign_digest(s, md, adigest, sg_md_size(md), &sig, &siglen);
	if(rc)
		goto out;
	ASN1_STRING_set0(si->enc_digest, sig, (int)siglen);
	sig = NULL;

	/* SignedData around the content. */
	p7 = PKCS7_new();
	inner = PKCS7_new();
	if(!p7 || !inner || !PKCS7_set_type(p7, NID_pkcs7_signed)) {
		rc = sg_fail_ossl(SG_ERR_NOMEM, "cannot build SignedData");
		goto out;
	}
	inner->type = OBJ_nid2obj(ctype_nid);
	inner->d.other = content;
	content = NULL;
	if(!PKCS7_set_content(p7, inner)) {
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "cannot set content");
		goto out;
	}
	inner = NULL;
	if(!PKCS7_add_signer(p7, si)) {
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "cannot add signer");
		goto out;
	}
	si = NULL;
	for(int i = 0; i < sk_X509_num(certs); i++)
		if(!PKCS7_add_certificate(p7, sk_X509_value(certs, i))) {
			rc = sg_fail_ossl(SG_ERR_CRYPTO, "cannot add certificate");
			goto out;
		}
	*out = p7;
	p7 = NULL;
out:
	OPENSSL_free(attrs);
	free(sig);
	ASN1_TYPE_free(content);
	PKCS7_free(inner);
	PKCS7_SIGNER_INFO_free(si);
	PKCS7_free(p7);
	return rc;
}

/* Authenticode's own signed attributes: SpcSpOpusInfo, SpcStatementType. */
static sg_status ac_attrs(PKCS7_SIGNER_INFO *si, void *arg)
{
	sg_status rc = ac_opus_info(si, arg);

	return rc ? rc : ac_statement_type(si);
}

sg_status sg_authenticode_sign(sg_signer *s, const char *fmt, sg_md md,
                               const unsigned char *digest, size_t dlen,
                               const sg_sign_opts *opts,
                               unsigned char **der, size_t *derlen)
{
	unsigned char *idc = NULL;
	const unsigned char *val = NULL;
	long vallen = 0;
	int idclen = 0;
	ASN1_STRING *seq = NULL;
	ASN1_TYPE *content = NULL;
	PKCS7 *p7 = NULL;
	sg_status rc;

	*der = NULL;
	*derlen = 0;
	sg_spc_init();
	rc = sg_ac_build_idc(fmt, md, digest, dlen, &idc, &idclen);
	if(rc)
		return rc;
	/* messageDigest covers SpcIndirectDataContent without its tag and
	 * length; the content carries the whole SEQUENCE. */
	rc = sg_ac_content_octets(idc, idclen, &val, &vallen);
	if(rc)
		goto out;
	seq = ASN1_STRING_new();
	content = ASN1_TYPE_new();
	if(!seq || !content) {
		rc = sg_fail(SG_ERR_NOMEM, "out of memory");
		goto out;
	}
	ASN1_STRING_set0(seq, idc, idclen);
	ASN1_TYPE_set(content, V_ASN1_SEQUENCE, seq);
	idc = NULL;
	seq = NULL;
	rc = sg_p7_sign(s, md, sg_nid_spc_indirect_data, content, val, (size_t)vallen,
	                ac_attrs, (void *)opts, &p7);
	content = NULL;
	if(!rc)
		rc = ac_encode(p7, der, derlen);
out:
	PKCS7_free(p7);
	ASN1_TYPE_free(content);
	ASN1_STRING_free(seq);
	OPENSSL_free(idc);
	return rc;
}

sg_status sg_ac_read_content(PKCS7 *p7, sg_md *md, unsigned char *digest,
                             const unsigned char **content, long *content_len)
{
	PKCS7 *c = p7->d.sign->contents;
	SpcIndirectDataContent *idc = NULL;
	const unsigned char *p;
	ASN1_STRING *seq;
	sg_status rc;

	sg_spc_init();
	if(!c || OBJ_obj2nid(c->type) != sg_nid_spc_indirect_data || !c->d.other ||
	   c->d.other->type != V_ASN1_SEQUENCE)
		return sg_fail(SG_ERR_MALFORMED,
		               "signed content is not SpcIndirectDataContent (1.3.6.1.4.1.311.2.1.4)");
	seq = c->d.other->value.sequence;
	p = seq->data;
	idc = d2i_SpcIndirectDataContent(NULL, &p, seq->length);
	if(!idc)
		return sg_fail_ossl(SG_ERR_MALFORMED, "SpcIndirectDataContent cannot be decoded");
	rc = sg_md_from_nid(OBJ_obj2nid(idc->messageDigest->digestAlgorithm->algorithm), md);
	if(!rc && (size_t)idc->messageDigest->digest->length != sg_md_size(*md))
		rc = sg_fail(SG_ERR_MALFORMED,
		             "SpcIndirectDataContent digest is %d bytes, %s needs %zu",
		             idc->messageDigest->digest->length, sg_md_name(*md),
		             sg_md_size(*md));
	if(!rc) {
		memcpy(digest, idc->messageDigest->digest->data, sg_md_size(*md));
		rc = sg_ac_content_octets(seq->data, seq->length, content, content_len);
	}
	SpcIndirectDataContent_free(idc);
	return rc;
}

/* ---------------------------------------------------------------- nesting */

static PKCS7_SIGNER_INFO *ac_first_signer(PKCS7 *p7)
{
	STACK_OF(PKCS7_SIGNER_INFO) *sis;

	if(!p7 || !PKCS7_type_is_signed(p7))
		return NULL;
	sis = PKCS7_get_signer_info(p7);
	return sk_PKCS7_SIGNER_INFO_num(sis) > 0 ? sk_PKCS7_SIGNER_INFO_value(sis, 0) : NULL;
}

sg_status sg_ac_parse(const unsigned char *der, size_t len, PKCS7 **out)
{
	const unsigned char *p = der;
	PKCS7 *p7;

	*out = NULL;
	sg_spc_init();
	if(len > LONG_MAX)
		return sg_fail(SG_ERR_TOO_LARGE, "signature too large");
	p7 = d2i_PKCS7(NULL, &p, (long)len);
	if(!p7)
		return sg_fail_ossl(SG_ERR_MALFORMED, "signature is not a DER PKCS#7 structure");
	if(!ac_first_signer(p7)) {
		PKCS7_free(p7);
		return sg_fail(SG_ERR_MALFORMED, "signature is not a PKCS#7 SignedData with a signer");
	}
	/* Windows wants exactly one SignerInfo. */
	if(sk_PKCS7_SIGNER_INFO_num(PKCS7_get_signer_info(p7)) != 1) {
		int n = sk_PKCS7_SIGNER_INFO_num(PKCS7_get_signer_info(p7));
		PKCS7_free(p7);
		return sg_fail(SG_ERR_MALFORMED,
		               "signature has %d SignerInfos; Authenticode allows exactly one", n);
	}
	/* After the DER only the zero padding to 8 bytes may follow: anything
	 * else would ride along unsigned inside a "signed" file (the pattern
	 * of CVE-2013-3900, which Windows' EnableCertPaddingCheck refuses). */
	for(size_t rest = len - (size_t)(p - der), i = 0; i < rest; i++) {
		if(rest > 7 || p[i]) {
			PKCS7_free(p7);
			return sg_fail(SG_ERR_MALFORMED,
			               "%zu bytes follow the signature's DER (only up to 7 zero "
			               "bytes of padding are allowed)", rest);
		}
	}
	*out = p7;
	return SG_OK;
}

/* Appends a DER ContentInfo as one more value of the nested-signature
 * attribute of si (created if absent). */
static sg_status ac_add_nested(PKCS7_SIGNER_INFO *si, const unsigned char *der,
                               int len)
{
	ASN1_OBJECT *obj = OBJ_nid2obj(sg_nid_spc_nested_signature);
	X509_ATTRIBUTE *attr;
	int idx;

	idx = X509at_get_attr_by_OBJ(si->unauth_attr, obj, -1);
	if(idx < 0) {
		if(!X509at_add1_attr_by_OBJ(&si->unauth_attr, obj, V_ASN1_SEQUENCE, der, len))
			return sg_fail_ossl(SG_ERR_CRYPTO, "cannot add nested signature");
		return SG_OK;
	}
	attr = X509at_get_attr(si->unauth_attr, idx);
	if(!X509_ATTRIBUTE_set1_data(attr, V_ASN1_SEQUENCE, der, len))
		return sg_fail_ossl(SG_ERR_CRYPTO, "cannot add nested signature");
	return SG_OK;
}

sg_status sg_authenticode_nest(const unsigned char *outer, size_t outerlen,
                               const unsigned char *inner, size_t innerlen,
                               unsigned char **der, size_t *derlen)
{
	PKCS7 *po = NULL, *pi = NULL;
	PKCS7_SIGNER_INFO *sio, *sii;
	X509_ATTRIBUTE *moved = NULL;
	unsigned char *buf = NULL;
	int len, idx;
	sg_status rc;

	*der = NULL;
	*derlen = 0;
	sg_spc_init();
	rc = sg_ac_parse(outer, outerlen, &po);
	if(!rc)
		rc = sg_ac_parse(inner, innerlen, &pi);
	if(rc)
		goto out;
	{
		/* Keep only a primary signature that is Authenticode itself. */
		const unsigned char *c;
		long clen;
		unsigned char d[SG_MAX_MD];
		sg_md omd;
		rc = sg_ac_read_content(po, &omd, d, &c, &clen);
		if(rc) {
			rc = sg_fail_prefix(rc, "cannot nest into the existing signature");
			goto out;
		}
	}
	sio = ac_first_signer(po);
	sii = ac_first_signer(pi);
	/* Take inner's own nested signatures out, to keep them at our level. */
	idx = X509at_get_attr_by_OBJ(sii->unauth_attr,
	                             OBJ_nid2obj(sg_nid_spc_nested_signature), -1);
	if(idx >= 0)
		moved = X509at_delete_attr(sii->unauth_attr, idx);
	len = i2d_PKCS7(pi, &buf);
	if(len <= 0) {
		rc = sg_fail_ossl(SG_ERR_CRYPTO, "cannot encode nested signature");
		goto out;
	}
	rc = ac_add_nested(sio, buf, len);
	for(int i = 0; !rc && moved && i < X509_ATTRIBUTE_count(moved); i++) {
		ASN1_TYPE *t = X509_ATTRIBUTE_get0_type(moved, i);
		if(t && t->type == V_ASN1_SEQUENCE)
			rc = ac_add_nested(sio, t->value.sequence->data,
			                   t->value.sequence->length);
	}
	if(rc)
		goto out;
	rc = ac_encode(po, der, derlen);
out:
	X509_ATTRIBUTE_free(moved);
	OPENSSL_free(buf);
	PKCS7_free(po);
	PKCS7_free(pi);
	return rc;
}
