/*
 * spc_asn1.c - ASN.1 templates for Authenticode's Spc* types (see spc.h).
 */
#include <pthread.h>

#include <openssl/objects.h>

#include "spc.h"

ASN1_SEQUENCE(SpcAttributeTypeAndOptionalValue) = {
	ASN1_SIMPLE(SpcAttributeTypeAndOptionalValue, type, ASN1_OBJECT),
	ASN1_OPT(SpcAttributeTypeAndOptionalValue, value, ASN1_ANY)
} ASN1_SEQUENCE_END(SpcAttributeTypeAndOptionalValue)
IMPLEMENT_ASN1_FUNCTIONS(SpcAttributeTypeAndOptionalValue)

ASN1_SEQUENCE(SpcDigestInfo) = {
	ASN1_SIMPLE(SpcDigestInfo, digestAlgorithm, X509_ALGOR),
	ASN1_SIMPLE(SpcDigestInfo, digest, ASN1_OCTET_STRING)
} ASN1_SEQUENCE_END(SpcDigestInfo)
IMPLEMENT_ASN1_FUNCTIONS(SpcDigestInfo)

ASN1_SEQUENCE(SpcIndirectDataContent) = {
	ASN1_SIMPLE(SpcIndirectDataContent, data, SpcAttributeTypeAndOptionalValue),
	ASN1_SIMPLE(SpcIndirectDataContent, messageDigest, SpcDigestInfo)
} ASN1_SEQUENCE_END(SpcIndirectDataContent)
IMPLEMENT_ASN1_FUNCTIONS(SpcIndirectDataContent)

ASN1_CHOICE(SpcString) = {
	ASN1_IMP(SpcString, value.unicode, ASN1_BMPSTRING, 0),
	ASN1_IMP(SpcString, value.ascii, ASN1_IA5STRING, 1)
} ASN1_CHOICE_END(SpcString)
IMPLEMENT_ASN1_FUNCTIONS(SpcString)

ASN1_SEQUENCE(SpcSerializedObject) = {
	ASN1_SIMPLE(SpcSerializedObject, classId, ASN1_OCTET_STRING),
	ASN1_SIMPLE(SpcSerializedObject, serializedData, ASN1_OCTET_STRING)
} ASN1_SEQUENCE_END(SpcSerializedObject)
IMPLEMENT_ASN1_FUNCTIONS(SpcSerializedObject)

ASN1_CHOICE(SpcLink) = {
	ASN1_IMP(SpcLink, value.url, ASN1_IA5STRING, 0),
	ASN1_IMP(SpcLink, value.moniker, SpcSerializedObject, 1),
	ASN1_EXP(SpcLink, value.file, SpcString, 2)
} ASN1_CHOICE_END(SpcLink)
IMPLEMENT_ASN1_FUNCTIONS(SpcLink)

ASN1_SEQUENCE(SpcPeImageData) = {
	ASN1_SIMPLE(SpcPeImageData, flags, ASN1_BIT_STRING),
	ASN1_EXP_OPT(SpcPeImageData, file, SpcLink, 0)
} ASN1_SEQUENCE_END(SpcPeImageData)
IMPLEMENT_ASN1_FUNCTIONS(SpcPeImageData)

ASN1_SEQUENCE(SpcSpOpusInfo) = {
	ASN1_EXP_OPT(SpcSpOpusInfo, programName, SpcString, 0),
	ASN1_EXP_OPT(SpcSpOpusInfo, moreInfo, SpcLink, 1)
} ASN1_SEQUENCE_END(SpcSpOpusInfo)
IMPLEMENT_ASN1_FUNCTIONS(SpcSpOpusInfo)

ASN1_ITEM_TEMPLATE(SpcStatementType) =
	ASN1_EX_TEMPLATE_TYPE(ASN1_TFLG_SEQUENCE_OF, 0, SpcStatementType, ASN1_OBJECT)
ASN1_ITEM_TEMPLATE_END(SpcStatementType)

int sg_nid_spc_indirect_data, sg_nid_spc_statement_type,
	sg_nid_spc_sp_opus_info, sg_nid_spc_pe_image_data,
	sg_nid_spc_nested_signature, sg_nid_spc_rfc3161;

static int spc_nid(const char *oid, const char *sn)
{
	int nid = OBJ_txt2nid(oid);

	if(nid == NID_undef)
		nid = OBJ_create(oid, sn, sn);
	return nid;
}

static void spc_register(void)
{
	sg_nid_spc_indirect_data = spc_nid(SPC_INDIRECT_DATA_OBJID, "SPC_INDIRECT_DATA");
	sg_nid_spc_statement_type = spc_nid(SPC_STATEMENT_TYPE_OBJID, "SPC_STATEMENT_TYPE");
	sg_nid_spc_sp_opus_info = spc_nid(SPC_SP_OPUS_INFO_OBJID, "SPC_SP_OPUS_INFO");
	sg_nid_spc_pe_image_data = spc_nid(SPC_PE_IMAGE_DATA_OBJID, "SPC_PE_IMAGE_DATA");
	sg_nid_spc_nested_signature = spc_nid(SPC_NESTED_SIGNATURE_OBJID, "SPC_NESTED_SIGNATURE");
	sg_nid_spc_rfc3161 = spc_nid(SPC_RFC3161_OBJID, "SPC_RFC3161_TIMESTAMP");
}

void sg_spc_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, spc_register);
}
