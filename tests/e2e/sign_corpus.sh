#!/usr/bin/env bash
# Signs every unsigned file of the corpus with each kind of key (RSA and EC
# in SoftHSM2, PEM, encrypted PEM, PKCS#12) and checks the result with the
# independent verifiers: osslsigncode verify (digest, signature, chain to
# -CAfile, EKU), sbverify (digest and signature), and signgate verify.
# `signgate hash` must equal osslsigncode's digest on every file.
# Env: SIGNGATE, PKI, CORPUS, WORK.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
export SOFTHSM2_CONF=$PKI/softhsm2.conf
W=$WORK/sign_corpus
rm -rf "$W" && mkdir -p "$W"
MOD=/usr/lib/softhsm/libsofthsm2.so
RSA_URI="pkcs11:token=signgate;object=codesign-rsa?module-path=$MOD&pin-source=file:$PKI/pin.txt"
EC_URI="pkcs11:token=signgate;object=codesign-ec?module-path=$MOD&pin-source=file:$PKI/pin.txt"

# name | signgate sign args | leaf chain for sbverify
KEYS=(
	"hsm-rsa|--key $RSA_URI --cert $PKI/codesign-rsa.pem|codesign-rsa.pem"
	"hsm-ec|--key $EC_URI --cert $PKI/codesign-ec.pem|codesign-ec.pem"
	"pem|--key $PKI/soft.key --cert $PKI/codesign-soft.pem|codesign-soft.pem"
)

while IFS=$'\t' read -r name kind; do
	[[ -z $name || $name == \#* ]] && continue
	f=$CORPUS/$name
	# signgate hash == osslsigncode's digest of the same file signed by osslsigncode
	osslsigncode sign -certs "$PKI/codesign-soft.pem" -key "$PKI/soft.key" -in "$f" -out "$W/$name.ossl" >/dev/null 2>&1 \
		|| { bad "$name: osslsigncode could not sign it"; continue; }
	want=$(ossl_digest "$W/$name.ossl")
	got=$("$SIGNGATE" hash "$f" | cut -d' ' -f1)
	[[ -n $want && $got == "$want" ]] && ok "$name: hash equals osslsigncode's" || bad "$name: hash $got != osslsigncode $want"
	got=$("$SIGNGATE" hash "$W/$name.ossl" | cut -d' ' -f1)
	[[ $got == "$want" ]] && ok "$name: hash of osslsigncode-signed copy" || bad "$name: hash of signed copy $got != $want"

	for k in "${KEYS[@]}"; do
		IFS='|' read -r kname args leaf <<<"$k"
		out=$W/$name.$kname
		# shellcheck disable=SC2086
		if ! "$SIGNGATE" sign $args --name "signgate test" --url "https://example.com" "$f" -o "$out" >"$W/err" 2>&1; then
			bad "$name/$kname: sign failed: $(cat "$W/err")"; continue
		fi
		expect "$name/$kname: osslsigncode verify" osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$out"
		expect "$name/$kname: sbverify" sbverify --cert "$PKI/$leaf" "$out"
		expect "$name/$kname: signgate verify" "$SIGNGATE" verify --ca "$PKI/root-ca.pem" "$out"
		# The checksum osslsigncode computes must equal the one we wrote.
		if osslsigncode verify -in "$out" 2>/dev/null | grep -q 'Calculated PE checksum'; then
			bad "$name/$kname: PE checksum mismatch"
		else ok "$name/$kname: PE checksum"; fi
	done
done < <(grep -vE $'\t(signed-foreign|signed-ossl)$' "$CORPUS/MANIFEST")

# PKCS#12 and encrypted PEM on one file.
f=$CORPUS/hello64.exe
expect "pfx sign" "$SIGNGATE" sign --pfx "$PKI/codesign-soft.pfx" --pass "file:$PKI/pfx-pass.txt" "$f" -o "$W/pfx.exe"
expect "pfx verify" osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$W/pfx.exe"
expect "enc pem sign" "$SIGNGATE" sign --key "$PKI/soft-enc.key" --pass "file:$PKI/soft-pass.txt" --cert "$PKI/codesign-soft.pem" "$f" -o "$W/enc.exe"
expect "enc pem verify" osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$W/enc.exe"
expect "ec384 sign" "$SIGNGATE" sign --key "$PKI/soft-ec384.key" --cert "$PKI/codesign-ec384.pem" --digest sha384 "$f" -o "$W/ec384.exe"
expect "ec384 verify" osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$W/ec384.exe"
# Certificate from the token itself (no --cert): the chain then is the leaf only,
# so osslsigncode needs the intermediate as an extra CA.
expect "token cert sign" "$SIGNGATE" sign --key "$RSA_URI" "$f" -o "$W/tokcert.exe"
cat "$PKI/root-ca.pem" "$PKI/int-ca.pem" > "$W/root+int.pem"
expect "token cert verify" osslsigncode verify -CAfile "$W/root+int.pem" -in "$W/tokcert.exe"

# Every digest algorithm.
for md in sha1 sha256 sha384 sha512; do
	expect "$md sign" "$SIGNGATE" sign --key "$RSA_URI" --cert "$PKI/codesign-rsa.pem" --digest $md "$f" -o "$W/$md.exe"
	expect "$md osslsigncode" osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$W/$md.exe"
	# sbsigntool knows SHA-256 only (its IDC parser rejects other digests).
	[[ $md == sha256 ]] && expect "$md sbverify" sbverify --cert "$PKI/codesign-rsa.pem" "$W/$md.exe"
	want=$(ossl_digest "$W/$md.exe"); got=$("$SIGNGATE" hash --digest $md "$f" | cut -d' ' -f1)
	[[ $got == "$want" ]] && ok "$md hash" || bad "$md hash $got != $want"
done

# Re-signing replaces; --nest keeps.
expect "resign" "$SIGNGATE" sign --key "$EC_URI" --cert "$PKI/codesign-ec.pem" "$W/sha1.exe" -o "$W/resigned.exe"
n=$(osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$W/resigned.exe" 2>&1 | grep -c '^Signature Index')
[[ $n == 1 ]] && ok "resign replaces" || bad "resign: $n signatures"
expect "nest" "$SIGNGATE" sign --nest --key "$RSA_URI" --cert "$PKI/codesign-rsa.pem" "$W/sha1.exe" -o "$W/nested.exe"
expect "nest twice" "$SIGNGATE" sign --nest --key "$EC_URI" --cert "$PKI/codesign-ec.pem" --digest sha512 "$W/nested.exe" -o "$W/nested3.exe"
n=$(osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$W/nested3.exe" 2>&1 | grep -c '^Signature Index')
[[ $n == 3 ]] && ok "three signatures kept" || bad "nested: osslsigncode sees $n signatures"
expect "nested osslsigncode verify" osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$W/nested3.exe"
expect_msg "nested signgate verify" 0 'valid \(3 signatures\)' "$SIGNGATE" verify --ca "$PKI/root-ca.pem" "$W/nested3.exe"

# extract / attach / remove round trip.
expect "extract" "$SIGNGATE" extract-signature "$W/sha256.exe" -o "$W/sig.der"
expect "sig is DER PKCS7" openssl pkcs7 -inform DER -in "$W/sig.der" -noout
expect "remove" "$SIGNGATE" remove-signature "$W/sha256.exe" -o "$W/removed.exe"
pad=$(( ($(stat -c %s "$f") + 7) / 8 * 8 ))
head -c "$pad" /dev/zero > "$W/zero"; cp "$f" "$W/padded"; truncate -s "$pad" "$W/padded"
got=$("$SIGNGATE" hash "$W/removed.exe" | cut -d' ' -f1); want=$("$SIGNGATE" hash "$f" | cut -d' ' -f1)
[[ $got == "$want" ]] && ok "removed has original digest" || bad "removed digest differs"
expect_msg "remove unsigned" 1 'no Authenticode signature' "$SIGNGATE" remove-signature "$f" -o "$W/x.exe"
expect "attach" "$SIGNGATE" attach-signature "$W/removed.exe" --signature "$W/sig.der" -o "$W/attached.exe"
expect "attached verifies" osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$W/attached.exe"
cmp -s "$W/attached.exe" "$W/sha256.exe" && ok "attach gives identical file" || bad "attach differs from signed"
expect_msg "attach to wrong file" 1 'made for another file' "$SIGNGATE" attach-signature "$CORPUS/hello32.exe" --signature "$W/sig.der" -o "$W/wrong.exe"
[[ ! -e $W/wrong.exe ]] && ok "no output on failed attach" || bad "output written on failed attach"

# Third-party signatures: Debian's grub (signed by Debian) and shim (two
# entries, both Microsoft's).  Cryptographically valid; trusted only with the
# issuer's root.
A=$CORPUS/anchors
expect_msg "grub: valid with Debian's Secure Boot CA" 0 'valid \(1 signature\)' "$SIGNGATE" verify --ca "$A/debian-secure-boot-ca.pem" "$CORPUS/grubx64-signed.efi"
expect_msg "grub: untrusted with another root" 1 'certificate chain' "$SIGNGATE" verify --ca "$PKI/root-ca.pem" "$CORPUS/grubx64-signed.efi"
out=$("$SIGNGATE" verify "$CORPUS/shimx64-signed.efi" 2>&1)
n=$(grep -c 'digest ok, signature ok' <<<"$out")
[[ $n == 2 ]] && ok "shim: both Microsoft signatures cryptographically valid" || bad "shim: $n of 2 signatures valid: $out"

summary
