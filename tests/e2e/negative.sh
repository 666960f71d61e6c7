#!/usr/bin/env bash
# What must fail, fails, in every verifier: a changed byte, a wrong root;
# and key problems (wrong PIN, missing key, key/certificate mismatch, wrong
# password) give clear errors and leave no output file.  mono's chktrust
# checks RSA chains to a root in its own store (it cannot do ECDSA).
# Env: SIGNGATE, PKI, CORPUS, WORK.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
export SOFTHSM2_CONF=$PKI/softhsm2.conf
W=$WORK/negative
rm -rf "$W" && mkdir -p "$W"
MOD=/usr/lib/softhsm/libsofthsm2.so
RSA_URI="pkcs11:token=signgate;object=codesign-rsa?module-path=$MOD&pin-source=file:$PKI/pin.txt"
f=$CORPUS/hello64.exe

expect "sign" "$SIGNGATE" sign --key "$RSA_URI" --cert "$PKI/codesign-rsa.pem" "$f" -o "$W/good.exe"

# One byte changed inside the signed region (in .text, well past the headers).
cp "$W/good.exe" "$W/tampered.exe"
printf '\xcc' | dd of="$W/tampered.exe" bs=1 seek=2000 conv=notrunc status=none
expect_exit "tampered: osslsigncode" 1 osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$W/tampered.exe"
expect_exit "tampered: sbverify" 1 sbverify --cert "$PKI/codesign-rsa.pem" "$W/tampered.exe"
expect_msg "tampered: signgate" 1 'file digest mismatch' "$SIGNGATE" verify --ca "$PKI/root-ca.pem" "$W/tampered.exe"

# A byte of the signature itself changed (inside the RSA signature value: the last bytes).
cp "$W/good.exe" "$W/badsig.exe"
sz=$(stat -c %s "$W/badsig.exe")
# The table is padded to 8 bytes; find the real end of the DER via the entry length.
"$SIGNGATE" extract-signature "$W/good.exe" -o "$W/sig.der"
siglen=$(stat -c %s "$W/sig.der")
pos=$(( sz - ( (siglen + 8 + 7) / 8 * 8 ) + 8 + 100 ))
# Position 100 into the DER is inside the SignedData header; flip a byte in the
# middle of the encrypted digest instead: find it by searching from the end.
python3 - "$W/badsig.exe" "$W/sig.der" <<'PY'
import sys
exe, sig = sys.argv[1], open(sys.argv[2], 'rb').read()
data = bytearray(open(exe, 'rb').read())
start = data.rfind(sig)
# RSA-3072 signature: the last 384 bytes of SignerInfo are encryptedDigest.
data[start + len(sig) - 100] ^= 0x01
open(exe, 'wb').write(data)
PY
expect_exit "bad signature: osslsigncode" 1 osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$W/badsig.exe"
expect_exit "bad signature: sbverify" 1 sbverify --cert "$PKI/codesign-rsa.pem" "$W/badsig.exe"
expect_msg "bad signature: signgate" 1 'signature over the signed attributes is invalid' "$SIGNGATE" verify --ca "$PKI/root-ca.pem" "$W/badsig.exe"

# Wrong root.
expect_exit "wrong root: osslsigncode" 1 osslsigncode verify -CAfile "$PKI/other-root.pem" -in "$W/good.exe"
expect_msg "wrong root: signgate" 1 'certificate chain: unable to get local issuer' "$SIGNGATE" verify --ca "$PKI/other-root.pem" "$W/good.exe"
expect_msg "system store does not know our root" 1 'certificate chain' "$SIGNGATE" verify "$W/good.exe"
expect_msg "verify unsigned" 1 'no Authenticode signature' "$SIGNGATE" verify "$f"

# mono chktrust, with its own certificate store in a private HOME.
if command -v chktrust >/dev/null; then
	export HOME=$W/monohome; mkdir -p "$HOME"
	expect_exit "chktrust: untrusted root" 1 chktrust -q "$W/good.exe"
	openssl x509 -in "$PKI/root-ca.pem" -outform DER -out "$W/root.cer"
	certmgr -add -c Trust "$W/root.cer" >/dev/null 2>&1
	expect_msg "chktrust: trusted" 0 'SUCCESS' chktrust -v "$W/good.exe"
	"$SIGNGATE" sign --key "$PKI/soft.key" --cert "$PKI/codesign-soft.pem" --digest sha1 "$f" -o "$W/soft-sha1.exe"
	expect_msg "chktrust: sha1 pem key" 0 'SUCCESS' chktrust -v "$W/soft-sha1.exe"
	expect_exit "chktrust: tampered" 1 chktrust -q "$W/tampered.exe"
fi

# Key problems.
printf 000000 > "$W/wrong-pin"; chmod 600 "$W/wrong-pin"
expect_msg "wrong PIN" 1 "wrong PIN for token 'signgate'" "$SIGNGATE" sign --key "$RSA_URI" --pass "file:$W/wrong-pin" --cert "$PKI/codesign-rsa.pem" "$f" -o "$W/o1.exe"
[[ ! -e $W/o1.exe ]] && ok "wrong PIN: no output" || bad "wrong PIN: output left"
if grep -rqs 000000 "$W"/*.log 2>/dev/null; then bad "PIN echoed"; fi
out=$("$SIGNGATE" sign --key "$RSA_URI" --pass "file:$W/wrong-pin" --cert "$PKI/codesign-rsa.pem" "$f" -o "$W/o1.exe" 2>&1)
grep -q 000000 <<<"$out" && bad "wrong PIN: PIN appears in the message" || ok "wrong PIN: PIN not echoed"
expect_msg "missing key" 1 'no private key' "$SIGNGATE" sign --key "pkcs11:token=signgate;object=nosuchkey?module-path=$MOD&pin-source=file:$PKI/pin.txt" --cert "$PKI/codesign-rsa.pem" "$f" -o "$W/o2.exe"
expect_msg "missing token" 1 'signgate' "$SIGNGATE" sign --key "pkcs11:token=nosuchtoken;object=codesign-rsa?module-path=$MOD&pin-source=file:$PKI/pin.txt" --cert "$PKI/codesign-rsa.pem" "$f" -o "$W/o3.exe"
expect_msg "bad module" 1 'nosuch.so' "$SIGNGATE" sign --key "pkcs11:token=signgate;object=codesign-rsa?module-path=/nosuch.so&pin-source=file:$PKI/pin.txt" --cert "$PKI/codesign-rsa.pem" "$f" -o "$W/o4.exe"
expect_msg "token key, wrong cert (RSA/RSA)" 1 'does not match the certificate' "$SIGNGATE" sign --key "$RSA_URI" --cert "$PKI/codesign-wrong.pem" "$f" -o "$W/o5.exe"
expect_msg "token key, wrong cert (RSA/EC)" 1 'does not match the certificate' "$SIGNGATE" sign --key "$RSA_URI" --cert "$PKI/codesign-ec.pem" "$f" -o "$W/o6.exe"
expect_msg "pem key, wrong cert" 1 'does not match the certificate' "$SIGNGATE" sign --key "$PKI/soft.key" --cert "$PKI/codesign-rsa.pem" "$f" -o "$W/o7.exe"
printf nope > "$W/wrong-pass"; chmod 600 "$W/wrong-pass"
expect_msg "encrypted key, wrong password" 1 'wrong password for key file' "$SIGNGATE" sign --key "$PKI/soft-enc.key" --pass "file:$W/wrong-pass" --cert "$PKI/codesign-soft.pem" "$f" -o "$W/o8.exe"
expect_msg "encrypted key, no password" 1 'is encrypted' "$SIGNGATE" sign --key "$PKI/soft-enc.key" --cert "$PKI/codesign-soft.pem" "$f" -o "$W/o9.exe"
expect_msg "pfx, wrong password" 1 'wrong password for PKCS#12' "$SIGNGATE" sign --pfx "$PKI/codesign-soft.pfx" --pass "file:$W/wrong-pass" "$f" -o "$W/o10.exe"
ls "$W"/o*.exe* >/dev/null 2>&1 && bad "output or temp file left after a failed sign" || ok "no output after failed signs"

# Output: never half-written.
mkdir -p "$W/ro" && chmod 555 "$W/ro"
if [[ $(id -u) -ne 0 ]]; then
	expect_msg "read-only output dir" 2 'cannot create a temporary file' "$SIGNGATE" sign --key "$PKI/soft.key" --cert "$PKI/codesign-soft.pem" "$f" -o "$W/ro/out.exe"
fi
expect_msg "output dir missing" 2 'its directory does not exist' "$SIGNGATE" sign --key "$PKI/soft.key" --cert "$PKI/codesign-soft.pem" "$f" -o "$W/nodir/out.exe"
cp "$f" "$W/inplace.exe"
expect "sign in place (-o names the input)" "$SIGNGATE" sign --key "$PKI/soft.key" --cert "$PKI/codesign-soft.pem" "$W/inplace.exe" -o "$W/inplace.exe"
expect "in-place result verifies" osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$W/inplace.exe"
if [[ -w /dev/full ]]; then
	: # a full disk is exercised by the fault tests
fi

# Hostile paths: a FIFO as input must not hang; a device node or a symlink
# as output is not replaced; the mode of a replaced file is kept.
mkfifo "$W/fifo"
expect_msg "FIFO input refused, no hang" 2 'not a regular file' timeout 10 "$SIGNGATE" hash "$W/fifo"
expect_msg "FIFO as --cert refused" 2 'not a regular file' timeout 10 "$SIGNGATE" sign --key "$PKI/soft.key" --cert "$W/fifo" "$f" -o "$W/o11.exe"
if mknod "$W/dev" c 1 3 2>/dev/null; then
	expect_msg "device node output refused" 2 'not a regular file: not replacing it' "$SIGNGATE" sign --key "$PKI/soft.key" --cert "$PKI/codesign-soft.pem" "$f" -o "$W/dev"
	[[ -c $W/dev ]] && ok "device node still there" || bad "device node replaced"
fi
ln -s "$W/good.exe" "$W/link.exe"
expect_msg "symlink output refused" 2 'not a regular file' "$SIGNGATE" sign --key "$PKI/soft.key" --cert "$PKI/codesign-soft.pem" "$f" -o "$W/link.exe"
cp "$f" "$W/mode.exe"; chmod 600 "$W/mode.exe"
"$SIGNGATE" sign --key "$PKI/soft.key" --cert "$PKI/codesign-soft.pem" "$f" -o "$W/mode.exe"
[[ $(stat -c %a "$W/mode.exe") == 600 ]] && ok "mode of replaced file kept" || bad "mode became $(stat -c %a "$W/mode.exe")"
expect_msg "--time out of range" 2 'Unix seconds' "$SIGNGATE" verify --time 99999999999999999999 "$W/good.exe"
expect_msg "program name outside the BMP" 2 'Basic Multilingual Plane' "$SIGNGATE" sign --name $'\xf0\x9f\x98\x80' --key "$PKI/soft.key" --cert "$PKI/codesign-soft.pem" "$f" -o "$W/o12.exe"

# Usage errors and --help.
for c in sign verify hash extract-signature attach-signature remove-signature service serve; do
	expect_msg "$c --help" 0 'Usage: signgate' "$SIGNGATE" $c --help
done
expect_msg "no -o" 2 'no output file' "$SIGNGATE" sign --key "$PKI/soft.key" --cert "$PKI/codesign-soft.pem" "$f"
expect_msg "bad digest" 2 'unknown digest algorithm' "$SIGNGATE" sign --digest md5 --key "$PKI/soft.key" --cert "$PKI/codesign-soft.pem" "$f" -o "$W/x"
expect_msg "unknown command" 2 'unknown command' "$SIGNGATE" frobnicate
expect_msg "missing input" 2 'cannot open' "$SIGNGATE" hash "$W/does-not-exist"
summary
