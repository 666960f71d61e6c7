/*
 * spc.h - Microsoft's Authenticode ASN.1 types (SpcIndirectDataContent and
 * friends), as given in "Windows Authenticode Portable Executable
 * Signature Format", defined with OpenSSL's ASN.1 templates, and the
 * object identifiers we use.
 */
#ifndef SG_SPC_H
#define SG_SPC_H

#include <openssl/asn1.h>
#include <openssl/asn1t.h>
#include <openssl/x509.h>

#define SPC_INDIRECT_DATA_OBJID   "1.3.6.1.4.1.311.2.1.4"
#define SPC_STATEMENT_TYPE_OBJID  "1.3.6.1.4.1.311.2.1.11"
#define SPC_SP_OPUS_INFO_OBJID    "1.3.6.1.4.1.311.2.1.12"
#define SPC_PE_IMAGE_DATA_OBJID   "1.3.6.1.4.1.311.2.1.15"
#define SPC_INDIVIDUAL_SP_KEY_PURPOSE_OBJID "1.3.6.1.4.1.311.2.1.21"
#define SPC_NESTED_SIGNATURE_OBJID "1.3.6.1.4.1.311.2.4.1"
#define SPC_RFC3161_OBJID         "1.3.6.1.4.1.311.3.3.1"

/* NIDs for the OIDs above, registered once (sg_spc_init). */
extern int sg_nid_spc_indirect_data, sg_nid_spc_statement_type,
	sg_nid_spc_sp_opus_info, sg_nid_spc_pe_image_data,
	sg_nid_spc_nested_signature, sg_nid_spc_rfc3161;
void sg_spc_init(void);

typedef struct {
	ASN1_OBJECT *type;
	ASN1_TYPE *value;
} SpcAttributeTypeAndOptionalValue;
DECLARE_ASN1_FUNCTIONS(SpcAttributeTypeAndOptionalValue)

typedef struct {
	X509_ALGOR *digestAlgorithm;
	ASN1_OCTET_STRING *digest;
} SpcDigestInfo;
DECLARE_ASN1_FUNCTIONS(SpcDigestInfo)

typedef struct {
	SpcAttributeTypeAndOptionalValue *data;
	SpcDigestInfo *messageDigest;
} SpcIndirectDataContent;
DECLARE_ASN1_FUNCTIONS(SpcIndirectDataContent)

typedef struct {
	int type;
	union {
		ASN1_BMPSTRING *unicode;
		ASN1_IA5STRING *ascii;
	} value;
} SpcString;
DECLARE_ASN1_FUNCTIONS(SpcString)

typedef struct {
	ASN1_OCTET_STRING *classId;
	ASN1_OCTET_STRING *serializedData;
} SpcSerializedObject;
DECLARE_ASN1_FUNCTIONS(SpcSerializedObject)

typedef struct {
	int type;
	union {
		ASN1_IA5STRING *url;
		SpcSerializedObject *moniker;
		SpcString *file;
	} value;
} SpcLink;
DECLARE_ASN1_FUNCTIONS(SpcLink)

typedef struct {
	ASN1_BIT_STRING *flags;
	SpcLink *file;
} SpcPeImageData;
DECLARE_ASN1_FUNCTIONS(SpcPeImageData)

typedef struct {
	SpcString *programName;
	SpcLink *moreInfo;
} SpcSpOpusInfo;
DECLARE_ASN1_FUNCTIONS(SpcSpOpusInfo)

/* SpcStatementType ::= SEQUENCE OF OBJECT IDENTIFIER */
typedef STACK_OF(ASN1_OBJECT) SpcStatementType;
DECLARE_ASN1_ITEM(SpcStatementType)

#endif
