#!/usr/bin/env bash
# make-pki.sh OUTDIR
#
# Creates signgate's demo/test PKI in OUTDIR with only the openssl CLI, softhsm2-util and
# pkcs11-tool: a root and an intermediate CA, a SoftHSM token "signgate" holding an RSA 3072
# and an EC P-256 key pair generated inside the token (never exported) with their
# code-signing certificates, an RSA 3072 time-stamping (TSA) key pair in the token with its
# RFC 3161 certificate, software keys for the legacy path (PEM, encrypted PEM,
# PKCS#12), a TLS server certificate for 127.0.0.1/localhost, an unrelated root and a
# certificate that matches no key (negative tests).  See tests/setup/README.md.
#
# Idempotent: whatever exists and is still consistent is reused; OUTDIR/.done is written
# last, holding PKI_VERSION, and makes a re-run of the same version exit 0 at once.  A PKI
# made by an older version of this script (older or no version in .done) is completed:
# what it lacks is added, the rest reused.  Quiet on success; on failure prints the failing
# command and its output and exits non-zero.  Safe to run concurrently on one OUTDIR.
set -Eeuo pipefail

PROG=make-pki.sh
MODULE=${SOFTHSM2_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
TOKEN_LABEL=signgate
USER_PIN=123456
SO_PIN=12345678
SOFT_PASS=softpass
PFX_PASS=pfxpass
O="signgate test"
# Raise when the script makes something new, so older PKIs are completed.  2: TSA key.
PKI_VERSION=2

die() { echo "$PROG: error: $*" >&2; exit 1; }
trap 'echo "$PROG: error: unexpected failure (status $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

(($# == 1)) || { echo "usage: $PROG OUTDIR" >&2; exit 2; }
[[ -n $1 ]] || die "OUTDIR is empty"
# done_ok DIR: DIR/.done was written by this version of the script.
done_ok() { [[ -f $1/.done && $(head -n1 "$1/.done" 2>/dev/null) == "version $PKI_VERSION "* ]]; }
if done_ok "$1"; then exit 0; fi

for t in openssl softhsm2-util pkcs11-tool flock; do
  command -v "$t" >/dev/null || die "'$t' not found (run scripts/deps.sh as root)"
done
[[ -r $MODULE ]] || die "PKCS#11 module $MODULE not found (install softhsm2)"

mkdir -p "$1" || die "cannot create $1"
OUT=$(cd "$1" && pwd)

# One run at a time per OUTDIR; whoever comes second finds .done and leaves.
exec 9>"$OUT/.lock"
flock 9
if done_ok "$OUT"; then exit 0; fi

umask 022
WORK=$(mktemp -d "${TMPDIR:-/tmp}/make-pki.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
LOG=$WORK/log

# run CMD...: runs quietly; on failure shows the command and its output, and exits.
run() {
  if ! "$@" >"$LOG" 2>&1; then
    echo "$PROG: error: command failed: $*" >&2
    sed 's/^/  | /' "$LOG" >&2
    exit 1
  fi
}

# put SRC DEST MODE: moves a finished file into place atomically.
put() { chmod "$3" "$1"; mv -f "$1" "$2"; }

# secret FILE VALUE: writes a 0600 file holding VALUE with no trailing newline.
secret() {
  if [[ ! -f $1 || $(cat "$1") != "$2" ]]; then
    (umask 077; printf '%s' "$2" >"$1.tmp")
    put "$1.tmp" "$1" 600
  fi
  chmod 600 "$1"
}

# ---------------------------------------------------------------------------------------
# Software keys and certificates
# ---------------------------------------------------------------------------------------

# genkey FILE SPEC: SPEC is rsa:BITS or ec:CURVE.  Reuses FILE if it holds a usable key.
genkey() {
  local f=$1 spec=$2
  if [[ -f $f ]] && openssl pkey -in "$f" -noout >/dev/null 2>&1; then
    chmod 600 "$f"
    return
  fi
  local args
  case $spec in
    rsa:*) args=(-algorithm RSA -pkeyopt "rsa_keygen_bits:${spec#rsa:}") ;;
    ec:*)  args=(-algorithm EC -pkeyopt "ec_paramgen_curve:${spec#ec:}" -pkeyopt ec_param_enc:named_curve) ;;
    *) die "internal: bad key spec $spec" ;;
  esac
  (umask 077; run openssl genpkey "${args[@]}" -out "$f.tmp")
  put "$f.tmp" "$f" 600
}

# pubkey_of KEYFILE OUT: the public key (PEM) of a private key file.
pubkey_of() { run openssl pkey -in "$1" -pubout -out "$2"; }

# same_pubkey CERT PUBPEM: true if the first certificate in CERT carries PUBPEM's key.
same_pubkey() {
  local a b
  a=$(openssl x509 -in "$1" -noout -pubkey 2>/dev/null | openssl pkey -pubin -outform DER 2>/dev/null | openssl dgst -sha256 -r) || return 1
  b=$(openssl pkey -pubin -in "$2" -outform DER 2>/dev/null | openssl dgst -sha256 -r) || return 1
  [[ -n $a && $a == "$b" ]]
}

# cert_ok CERT PUBPEM CAFILE [UNTRUSTED]: CERT exists, holds PUBPEM's key, chains to CAFILE.
cert_ok() {
  [[ -s $1 ]] || return 1
  same_pubkey "$1" "$2" || return 1
  local v=(openssl verify -CAfile "$3")
  if [[ -n ${4:-} ]]; then v+=(-untrusted "$4"); fi
  "${v[@]}" "$1" >/dev/null 2>&1
}

# extfile NAME: writes the X.509v3 extension section NAME to $WORK/NAME.ext.
extfile() {
  local f=$WORK/$1.ext
  case $1 in
    root) cat >"$f" <<'EOF'
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
EOF
    ;;
    int) cat >"$f" <<'EOF'
basicConstraints       = critical, CA:TRUE, pathlen:0
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
EOF
    ;;
    codesign) cat >"$f" <<'EOF'
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = codeSigning
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
EOF
    ;;
    tls) cat >"$f" <<'EOF'
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = serverAuth
subjectAltName         = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
EOF
    ;;
    tsa) cat >"$f" <<'EOF'
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = critical, timeStamping
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
EOF
    ;;
    *) die "internal: no extension section $1" ;;
  esac
  echo "$f"
}

# issue OUT SUBJ PUBPEM EXT DAYS CAKEY [CACERT]: writes a certificate for PUBPEM to OUT.
# Without CACERT it is self-signed with CAKEY (CAKEY must then hold PUBPEM's key).
# openssl 3.0's `x509 -new -force_pubkey` takes a bare public key, so the same command
# serves keys held in the token, whose private half never leaves it.
issue() {
  local out=$1 subj=$2 pub=$3 ext=$4 days=$5 cakey=$6 cacert=${7:-}
  local args=(x509 -new -subj "$subj" -force_pubkey "$pub" -days "$days" -sha256
              -set_serial "0x$(openssl rand -hex 16)"
              -extfile "$(extfile "$ext")" -out "$out.tmp")
  if [[ -n $cacert ]]; then
    args+=(-CA "$cacert" -CAkey "$cakey")
  else
    args+=(-key "$cakey")
  fi
  run openssl "${args[@]}"
  same_pubkey "$out.tmp" "$pub" || die "$out: issued certificate does not carry the requested public key"
  put "$out.tmp" "$out" 644
}

# leaf NAME SUBJ PUBPEM EXT [DAYS]: NAME.pem = leaf + intermediate, issued by the
# intermediate CA unless a valid one for PUBPEM already exists.
leaf() {
  local name=$1 subj=$2 pub=$3 ext=$4 days=${5:-1095}
  local chain=$OUT/$name.pem
  if cert_ok "$chain" "$pub" "$OUT/root-ca.pem" "$OUT/int-ca.pem"; then
    return
  fi
  issue "$WORK/$name.leaf.pem" "$subj" "$pub" "$ext" "$days" "$OUT/int-ca.key" "$OUT/int-ca.pem"
  cat "$WORK/$name.leaf.pem" "$OUT/int-ca.pem" >"$chain.tmp"
  put "$chain.tmp" "$chain" 644
}

# ---------------------------------------------------------------------------------------
# CAs
# ---------------------------------------------------------------------------------------
genkey "$OUT/root-ca.key" rsa:3072
pubkey_of "$OUT/root-ca.key" "$WORK/root-ca.pub"
if ! cert_ok "$OUT/root-ca.pem" "$WORK/root-ca.pub" "$OUT/root-ca.pem"; then
  issue "$OUT/root-ca.pem" "/O=$O/CN=signgate Test Root CA" "$WORK/root-ca.pub" root 7305 "$OUT/root-ca.key"
fi

genkey "$OUT/int-ca.key" rsa:3072
pubkey_of "$OUT/int-ca.key" "$WORK/int-ca.pub"
if ! cert_ok "$OUT/int-ca.pem" "$WORK/int-ca.pub" "$OUT/root-ca.pem"; then
  issue "$OUT/int-ca.pem" "/O=$O/CN=signgate Test Intermediate CA" "$WORK/int-ca.pub" int 3652 \
    "$OUT/root-ca.key" "$OUT/root-ca.pem"
fi

cp "$OUT/root-ca.pem" "$OUT/ca-bundle.pem.tmp"
put "$OUT/ca-bundle.pem.tmp" "$OUT/ca-bundle.pem" 644

# ---------------------------------------------------------------------------------------
# SoftHSM token with keys generated inside it
# ---------------------------------------------------------------------------------------
mkdir -p "$OUT/tokens"
chmod 700 "$OUT/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$OUT/tokens" \
  >"$WORK/softhsm2.conf"
if ! cmp -s "$WORK/softhsm2.conf" "$OUT/softhsm2.conf"; then
  cp "$WORK/softhsm2.conf" "$OUT/softhsm2.conf.tmp"
  put "$OUT/softhsm2.conf.tmp" "$OUT/softhsm2.conf" 644
fi
export SOFTHSM2_CONF=$OUT/softhsm2.conf

secret "$OUT/pin.txt" "$USER_PIN"
PIN=$(cat "$OUT/pin.txt")

p11() { pkcs11-tool --module "$MODULE" --token-label "$TOKEN_LABEL" "$@"; }

if ! pkcs11-tool --module "$MODULE" -L 2>/dev/null | grep -Eq "token label +: $TOKEN_LABEL\$"; then
  run softhsm2-util --init-token --free --label "$TOKEN_LABEL" --pin "$PIN" --so-pin "$SO_PIN"
fi
p11 --login --pin "$PIN" --list-objects >"$LOG" 2>&1 \
  || { sed 's/^/  | /' "$LOG" >&2; die "cannot log in to token $TOKEN_LABEL with the PIN in $OUT/pin.txt"; }

# objects: prints "TYPE ID LABEL" for every object in the token (pkcs11-tool -O ignores
# --id, so filtering is done here).
objects() {
  p11 --login --pin "$PIN" --list-objects 2>/dev/null | awk '
    /^[A-Za-z].* Object;/ { if (t != "") print t, id, lbl; t = $1; id = "-"; lbl = "-" }
    /^ +label:/ { sub(/^ +label: +/, ""); lbl = $0 }
    /^ +ID:/    { id = $2 }
    END         { if (t != "") print t, id, lbl }'
}
has_object() { local all; all=$(objects); grep -qx "$1 $2 $3" <<<"$all"; }

# token_key ID LABEL KEYTYPE: generates the key pair in the token unless it is there, then
# reads its public key out to OUT/LABEL.pub (PEM).
token_key() {
  local id=$1 label=$2 keytype=$3
  if ! has_object Private "$id" "$label"; then
    if has_object Public "$id" "$label"; then
      run p11 --login --pin "$PIN" --delete-object --type pubkey --id "$id"
    fi
    run p11 --login --pin "$PIN" --keypairgen --key-type "$keytype" --id "$id" --label "$label" --usage-sign
  fi
  run p11 --read-object --type pubkey --id "$id" -o "$WORK/$label.pub.der"
  run openssl pkey -pubin -inform DER -in "$WORK/$label.pub.der" -out "$OUT/$label.pub.tmp"
  put "$OUT/$label.pub.tmp" "$OUT/$label.pub" 644
}

# token_cert ID LABEL: stores the leaf of OUT/LABEL.pem in the token (replacing a stale one).
token_cert() {
  local id=$1 label=$2
  run openssl x509 -in "$OUT/$label.pem" -outform DER -out "$WORK/$label.crt.der"
  if has_object Certificate "$id" "$label"; then
    run p11 --read-object --type cert --id "$id" -o "$WORK/$label.tok.der"
    cmp -s "$WORK/$label.crt.der" "$WORK/$label.tok.der" && return
    run p11 --login --pin "$PIN" --delete-object --type cert --id "$id"
  fi
  run p11 --login --pin "$PIN" --write-object "$WORK/$label.crt.der" --type cert --id "$id" --label "$label"
}

token_key 01 codesign-rsa rsa:3072
token_key 02 codesign-ec EC:prime256v1
leaf codesign-rsa "/O=$O/CN=signgate codesign-rsa (token)" "$OUT/codesign-rsa.pub" codesign
leaf codesign-ec  "/O=$O/CN=signgate codesign-ec (token)"  "$OUT/codesign-ec.pub"  codesign
token_cert 01 codesign-rsa
token_cert 02 codesign-ec
# The signing service's own TSA (RFC 3161): critical EKU timeStamping and nothing else.
token_key 03 tsa rsa:3072
leaf tsa "/O=$O/CN=signgate TSA (token)" "$OUT/tsa.pub" tsa
token_cert 03 tsa

# ---------------------------------------------------------------------------------------
# Software keys (legacy path), TLS, negative-test material
# ---------------------------------------------------------------------------------------
secret "$OUT/soft-pass.txt" "$SOFT_PASS"
secret "$OUT/pfx-pass.txt" "$PFX_PASS"

genkey "$OUT/soft.key" rsa:2048
pubkey_of "$OUT/soft.key" "$WORK/soft.pub"
leaf codesign-soft "/O=$O/CN=signgate codesign-soft" "$WORK/soft.pub" codesign

# soft-enc.key: the same key, PKCS#8 encrypted with AES-256-CBC (PBES2).
if ! openssl pkey -in "$OUT/soft-enc.key" -passin "file:$OUT/soft-pass.txt" -pubout -out "$WORK/enc.pub" \
       >/dev/null 2>&1 || ! cmp -s "$WORK/enc.pub" "$WORK/soft.pub" \
     || ! grep -q 'BEGIN ENCRYPTED PRIVATE KEY' "$OUT/soft-enc.key"; then
  (umask 077; run openssl pkey -in "$OUT/soft.key" -aes-256-cbc -passout "file:$OUT/soft-pass.txt" \
                    -out "$OUT/soft-enc.key.tmp")
  put "$OUT/soft-enc.key.tmp" "$OUT/soft-enc.key" 600
fi

# codesign-soft.pfx: key + leaf + intermediate, PBES2/AES-256-CBC and a SHA-256 MAC, so
# OpenSSL 3 reads it without the legacy provider.
pfx_ok() {
  [[ -s $OUT/codesign-soft.pfx ]] || return 1
  openssl pkcs12 -in "$OUT/codesign-soft.pfx" -passin "file:$OUT/pfx-pass.txt" -nokeys -clcerts \
    -out "$WORK/pfx-leaf.pem" >/dev/null 2>&1 || return 1
  openssl x509 -in "$OUT/codesign-soft.pem" -out "$WORK/soft-leaf.pem" 2>/dev/null || return 1
  [[ $(openssl x509 -in "$WORK/pfx-leaf.pem" -noout -fingerprint -sha256 2>/dev/null) == \
     $(openssl x509 -in "$WORK/soft-leaf.pem" -noout -fingerprint -sha256 2>/dev/null) ]]
}
if ! pfx_ok; then
  run openssl x509 -in "$OUT/codesign-soft.pem" -out "$WORK/soft-leaf.pem"
  (umask 077; run openssl pkcs12 -export -inkey "$OUT/soft.key" -in "$WORK/soft-leaf.pem" \
                    -certfile "$OUT/int-ca.pem" -name codesign-soft \
                    -keypbe AES-256-CBC -certpbe AES-256-CBC -macalg SHA256 \
                    -passout "file:$OUT/pfx-pass.txt" -out "$OUT/codesign-soft.pfx.tmp")
  put "$OUT/codesign-soft.pfx.tmp" "$OUT/codesign-soft.pfx" 600
  pfx_ok || die "codesign-soft.pfx cannot be read back without the legacy provider"
fi

genkey "$OUT/soft-ec384.key" ec:P-384
pubkey_of "$OUT/soft-ec384.key" "$WORK/ec384.pub"
leaf codesign-ec384 "/O=$O/CN=signgate codesign-ec384" "$WORK/ec384.pub" codesign

genkey "$OUT/tls.key" rsa:2048
pubkey_of "$OUT/tls.key" "$WORK/tls.pub"
leaf tls "/O=$O/CN=localhost" "$WORK/tls.pub" tls 825

# An unrelated root (same shape as the real one, different key and name).
genkey "$OUT/other-root.key" rsa:3072
pubkey_of "$OUT/other-root.key" "$WORK/other-root.pub"
if ! cert_ok "$OUT/other-root.pem" "$WORK/other-root.pub" "$OUT/other-root.pem"; then
  issue "$OUT/other-root.pem" "/O=signgate other/CN=signgate Unrelated Root CA" "$WORK/other-root.pub" root 7305 \
    "$OUT/other-root.key"
fi

# A valid code-signing chain whose key is in no token and is no other software key.
genkey "$OUT/codesign-wrong.key" rsa:3072
pubkey_of "$OUT/codesign-wrong.key" "$WORK/wrong.pub"
leaf codesign-wrong "/O=$O/CN=signgate codesign-wrong (matches no token key)" "$WORK/wrong.pub" codesign

# ---------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------
for n in codesign-rsa codesign-ec codesign-soft codesign-ec384 codesign-wrong; do
  run openssl verify -x509_strict -CAfile "$OUT/root-ca.pem" -untrusted "$OUT/int-ca.pem" "$OUT/$n.pem"
  [[ $(openssl x509 -in "$OUT/$n.pem" -noout -ext extendedKeyUsage 2>/dev/null) == *"Code Signing"* ]] \
    || die "$n.pem has no codeSigning extended key usage"
done
run openssl verify -x509_strict -purpose sslserver -CAfile "$OUT/ca-bundle.pem" -untrusted "$OUT/int-ca.pem" "$OUT/tls.pem"
run openssl verify -x509_strict -purpose timestampsign -CAfile "$OUT/root-ca.pem" -untrusted "$OUT/int-ca.pem" "$OUT/tsa.pem"
[[ $(openssl x509 -in "$OUT/tsa.pem" -noout -ext extendedKeyUsage 2>/dev/null) == *"critical"*"Time Stamping" ]] \
  || die "tsa.pem has no critical timeStamping extended key usage"
if openssl verify -CAfile "$OUT/other-root.pem" -untrusted "$OUT/int-ca.pem" "$OUT/codesign-soft.pem" >/dev/null 2>&1; then
  die "other-root.pem unexpectedly validates the signgate chain"
fi

objs=$(objects)
for want in "Private 01 codesign-rsa" "Public 01 codesign-rsa" "Certificate 01 codesign-rsa" \
            "Private 02 codesign-ec" "Public 02 codesign-ec" "Certificate 02 codesign-ec" \
            "Private 03 tsa" "Public 03 tsa" "Certificate 03 tsa"; do
  grep -qx "$want" <<<"$objs" || die "token $TOKEN_LABEL lacks object '$want'; it holds: $(tr '\n' ';' <<<"$objs")"
done
run p11 --login --pin "$PIN" --list-objects --type privkey
grep -q 'never extractable' "$LOG" || die "token private keys are not marked never-extractable"

# Each token key really signs, and its certificate's public key verifies the signature.
# (SoftHSM offers only raw CKM_ECDSA for EC keys, so the EC case hashes outside.)
printf 'signgate make-pki self-test\n' >"$WORK/msg"
run openssl x509 -in "$OUT/codesign-rsa.pem" -noout -pubkey -out "$WORK/rsa-cert.pub"
run p11 --login --pin "$PIN" --sign --id 01 --mechanism SHA256-RSA-PKCS -i "$WORK/msg" -o "$WORK/rsa.sig"
run openssl dgst -sha256 -verify "$WORK/rsa-cert.pub" -signature "$WORK/rsa.sig" "$WORK/msg"
run openssl x509 -in "$OUT/codesign-ec.pem" -noout -pubkey -out "$WORK/ec-cert.pub"
run openssl dgst -sha256 -binary -out "$WORK/msg.sha256" "$WORK/msg"
run p11 --login --pin "$PIN" --sign --id 02 --mechanism ECDSA --signature-format openssl \
  -i "$WORK/msg.sha256" -o "$WORK/ec.sig"
run openssl pkeyutl -verify -pubin -inkey "$WORK/ec-cert.pub" -in "$WORK/msg.sha256" -sigfile "$WORK/ec.sig"

# codesign-wrong.pem must match neither token key nor any software key.
for k in "$OUT/codesign-rsa.pub" "$OUT/codesign-ec.pub" "$WORK/soft.pub" "$WORK/ec384.pub"; do
  if same_pubkey "$OUT/codesign-wrong.pem" "$k"; then die "codesign-wrong.pem matches $k"; fi
done

chmod 600 "$OUT"/*.key "$OUT"/*.pfx "$OUT"/*.txt
chmod 644 "$OUT"/*.pem "$OUT/softhsm2.conf"

echo "version $PKI_VERSION $(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$OUT/.done.tmp"
mv -f "$OUT/.done.tmp" "$OUT/.done"
