#!/usr/bin/env bash
# test_verify.sh - `signgate verify` reaches the verdict Windows reaches:
# timestamps (RFC 3161 tokens and legacy countersignatures, made by
# osslsigncode against a local TSA), validity at the timestamp's time (a
# signer certificate valid for one day, checked two days later), revocation
# by CRL files and by CRLs fetched over HTTP, real third-party signatures
# (Debian's grub, Microsoft's shim), --json, and the same verdict as
# osslsigncode on every unsigned corpus file signed by signgate and by
# osslsigncode, with and without timestamps, and tampered.
#
# Certificates are issued here with `openssl ca` by the fixture PKI's
# intermediate (a CA database in WORK), so they can be short-lived, carry a
# CRL distribution point, or be revoked.  verify_servers.py is the TSA (both
# protocols) and the CRL distribution point, on one loopback port.
# Env: SIGNGATE, PKI, CORPUS, WORK.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
W=$WORK/verify
rm -rf "$W" && mkdir -p "$W/ca/newcerts" "$W/rootca/newcerts" "$W/www"
# libcurl and osslsigncode must reach 127.0.0.1 directly.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

die() { echo "test_verify: $*" >&2; summary; exit 1; }
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
# Each check below states the exit code and the words that must appear.
sgv() { "$SIGNGATE" verify "$@"; }
NOW=$(date +%s)

# ------------------------------------------------------------------ PKI

PORT=$(free_port)
CDP=http://127.0.0.1:$PORT/crl/int.crl
for ca in ca rootca; do
	: > "$W/$ca/index.txt"; echo 1000 > "$W/$ca/serial"; echo 1000 > "$W/$ca/crlnumber"
done
cat > "$W/ca.cnf" <<EOF
[ ca ]
default_ca = int
[ int ]
dir = $W/ca
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
serial = \$dir/serial
crlnumber = \$dir/crlnumber
certificate = $PKI/int-ca.pem
private_key = $PKI/int-ca.key
default_md = sha256
default_days = 30
default_crl_days = 7
policy = any
unique_subject = no
email_in_dn = no
copy_extensions = none
[ root ]
dir = $W/rootca
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
serial = \$dir/serial
crlnumber = \$dir/crlnumber
certificate = $PKI/root-ca.pem
private_key = $PKI/root-ca.key
default_md = sha256
default_crl_days = 7
policy = any
[ any ]
commonName = supplied
organizationName = optional
[ codesign ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = codeSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ codesign_lifetime ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = codeSigning, 1.3.6.1.4.1.311.10.3.13
[ codesign_cdp ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = codeSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
crlDistributionPoints = URI:$CDP
[ ext_tsa ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ ext_tsa_noncrit ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = timeStamping
[ ext_tsa_noeku ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
# openssl ts -reply
[ tsa ]
default_tsa = t
[ t ]
dir = $W
serial = \$dir/tsaserial
crypto_device = builtin
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha1, sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
EOF
echo 01 > "$W/tsaserial"

# issue NAME EXT START END: key NAME.key, leaf NAME.pem, chain NAME-chain.pem.
# START/END are `date -d` expressions.
issue() {
	local name=$1 ext=$2 start end
	start=$(date -u -d "$3" +%Y%m%d%H%M%SZ); end=$(date -u -d "$4" +%Y%m%d%H%M%SZ)
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$W/$name.key" 2>/dev/null &&
	openssl req -new -key "$W/$name.key" -subj "/O=signgate test/CN=verify $name" -out "$W/$name.csr" &&
	openssl ca -batch -config "$W/ca.cnf" -name int -extensions "$ext" -startdate "$start" \
		-enddate "$end" -in "$W/$name.csr" -out "$W/$name.pem" -notext >/dev/null 2>&1 &&
	cat "$W/$name.pem" "$PKI/int-ca.pem" > "$W/$name-chain.pem" ||
		die "cannot issue $name"
}
issue short codesign "-1 hour" "+1 day"
issue good codesign "-1 hour" "+30 days"
issue revoked codesign "-1 hour" "+30 days"
issue late codesign "-1 hour" "+30 days"
issue future codesign "+1 hour" "+1 day"
issue lifetime codesign_lifetime "-1 hour" "+1 day"
issue cdpgood codesign_cdp "-1 hour" "+30 days"
issue cdprevoked codesign_cdp "-1 hour" "+30 days"
issue tsa-good ext_tsa "-1 day" "+1 year"
issue tsa-noncrit ext_tsa_noncrit "-1 day" "+1 year"
issue tsa-noeku ext_tsa_noeku "-1 day" "+1 year"
issue tsa-wrongeku codesign "-1 day" "+1 year"
issue tsa-future ext_tsa "+1 day" "+1 year"
# A TSA under an unrelated root.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$W/tsa-foreign.key" 2>/dev/null
openssl req -new -x509 -key "$W/tsa-foreign.key" -subj "/CN=foreign TSA" -days 30 \
	-CA "$PKI/other-root.pem" -CAkey "$PKI/other-root.key" \
	-addext "extendedKeyUsage=critical,timeStamping" -addext "basicConstraints=critical,CA:FALSE" \
	-out "$W/tsa-foreign.pem" 2>/dev/null || die "cannot issue the foreign TSA"

# ------------------------------------------------------------------ servers

PIDS=()
cleanup() { local p; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; }
trap cleanup EXIT
start_servers() {
	python3 "$HERE/verify_servers.py" --dir "$W" --chain "$PKI/int-ca.pem" \
		--ts-config "$W/ca.cnf" --port "$PORT" > "$W/servers.out" 2> "$W/servers.err" &
	SRV_PID=$!; PIDS+=("$SRV_PID")
	for _ in $(seq 100); do grep -q '^listening on' "$W/servers.out" 2>/dev/null && return 0; sleep 0.1; done
	die "verify_servers.py did not start: $(cat "$W/servers.err")"
}
start_servers
URL=http://127.0.0.1:$PORT
TSA=$URL/ts/good

# ------------------------------------------------------------------ signing helpers

F=$CORPUS/hello64.exe
# ossl_sign NAME IN OUT [osslsigncode args...]: sign with key/chain NAME.
ossl_sign() {
	local name=$1 in=$2 out=$3; shift 3
	osslsigncode sign -certs "$W/$name-chain.pem" -key "$W/$name.key" "$@" -in "$in" -out "$out" >"$W/ossl.log" 2>&1 ||
		{ bad "osslsigncode sign $name $*: $(tail -3 "$W/ossl.log")"; return 1; }
}
ossl_verify() { osslsigncode verify -CAfile "$PKI/root-ca.pem" -TSA-CAfile "$PKI/root-ca.pem" "$@"; }
# json_get FILE EXPR: a python expression on the parsed JSON document j.
json_get() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

# ------------------------------------------------------------------ timestamps

ossl_sign good "$F" "$W/ts.exe" -ts "$TSA"
ossl_sign good "$F" "$W/legacy.exe" -t "$URL/legacy/good"
ossl_sign good "$F" "$W/nots.exe"
expect_msg "RFC 3161 timestamp: valid" 0 'Timestamp: +RFC 3161, .*TSA .*verify tsa-good.*: ok$' sgv --ca "$PKI/root-ca.pem" "$W/ts.exe"
expect_msg "RFC 3161: checked at the timestamp's time" 0 "checked at .*\(the timestamp's time\)" sgv --ca "$PKI/root-ca.pem" "$W/ts.exe"
expect_msg "countersignature: valid" 0 'Timestamp: +countersignature, .*verify tsa-good.*: ok$' sgv --ca "$PKI/root-ca.pem" "$W/legacy.exe"
expect_msg "no timestamp: none" 0 'Timestamp: +none' sgv --ca "$PKI/root-ca.pem" "$W/nots.exe"
expect "osslsigncode agrees: RFC 3161" ossl_verify -in "$W/ts.exe"
expect "osslsigncode agrees: countersignature" ossl_verify -in "$W/legacy.exe"
# Timestamped by signgate itself (sign --timestamp).
if "$SIGNGATE" sign --help 2>&1 | grep -q -- '--timestamp'; then
	expect "signgate sign --timestamp" "$SIGNGATE" sign --key "$W/good.key" --cert "$W/good-chain.pem" --timestamp "$TSA" "$F" -o "$W/sg-ts.exe"
	expect_msg "signgate's timestamp: valid" 0 'Timestamp: +RFC 3161, .*verify tsa-good.*: ok$' sgv --ca "$PKI/root-ca.pem" "$W/sg-ts.exe"
	expect "signgate's timestamp: osslsigncode agrees" ossl_verify -in "$W/sg-ts.exe"
fi
# A separate root for timestamps: --tsa-ca.
expect_msg "--tsa-ca other root: TSA chain untrusted" 1 'timestamp \(RFC 3161\): TSA certificate chain at the timestamp.s time .*unable to get local issuer' \
	sgv --ca "$PKI/root-ca.pem" --tsa-ca "$PKI/other-root.pem" "$W/ts.exe"
expect_msg "--tsa-ca: valid" 0 'Result: valid' sgv --ca "$PKI/root-ca.pem" --tsa-ca "$PKI/root-ca.pem" "$W/ts.exe"
expect_msg "--tsa-ca does not trust the signer" 1 'certificate chain: unable to get local issuer' sgv --ca "$PKI/other-root.pem" --tsa-ca "$PKI/root-ca.pem" "$W/ts.exe"
# TSAs that must not be trusted.
ossl_sign good "$F" "$W/ts-foreign.exe" -ts "$URL/ts/foreign"
expect_msg "TSA under an unknown root" 1 'timestamp \(RFC 3161\): TSA certificate chain' sgv --ca "$PKI/root-ca.pem" "$W/ts-foreign.exe"
ossl_sign good "$F" "$W/ts-future.exe" -ts "$URL/ts/future" &&
expect_msg "TSA certificate not yet valid at its timestamp" 1 'TSA certificate chain at the timestamp.s time .*not yet valid' sgv --ca "$PKI/root-ca.pem" "$W/ts-future.exe"
ossl_sign good "$F" "$W/ts-wrong.exe" -ts "$URL/ts-wrong/good"
expect_msg "RFC 3161 token made for another signature" 1 'made for another signature: its message imprint' sgv --ca "$PKI/root-ca.pem" "$W/ts-wrong.exe"
# osslsigncode 2.9 sees a bad timestamp too, but then checks the signature
# as if it had none (at the current time) and passes it; Windows fails it
# (TRUST_E_TIME_STAMP), and so does signgate.
ossl_ts_failed() {
	ossl_verify -in "$1" > "$W/ossl.out" 2>&1
	grep -q 'Timestamp Server Signature verification: failed' "$W/ossl.out"
}
expect "TSA under an unknown root: osslsigncode sees it" ossl_ts_failed "$W/ts-foreign.exe"
expect "token for another signature: osslsigncode sees it" ossl_ts_failed "$W/ts-wrong.exe"
ossl_sign good "$F" "$W/legacy-wrong.exe" -t "$URL/legacy-wrong/good"
expect_msg "countersignature made for another signature" 1 'countersignature\): the countersignature was made for another signature' sgv --ca "$PKI/root-ca.pem" "$W/legacy-wrong.exe"
# A certificate without an EKU extension is good for any purpose (Windows);
# one with an EKU extension must list timeStamping.
ossl_sign good "$F" "$W/legacy-noeku.exe" -t "$URL/legacy/noeku"
expect_msg "countersigner without any EKU extension: valid" 0 'countersignature, .*: ok$' sgv --ca "$PKI/root-ca.pem" "$W/legacy-noeku.exe"
expect_exit "countersigner without any EKU extension: osslsigncode agrees" 0 ossl_verify -in "$W/legacy-noeku.exe"
ossl_sign good "$F" "$W/legacy-wrongeku.exe" -t "$URL/legacy/wrongeku"
expect_msg "countersigner whose EKU lacks timeStamping" 1 'lacks the timeStamping extended key usage' sgv --ca "$PKI/root-ca.pem" "$W/legacy-wrongeku.exe"
expect "countersigner whose EKU lacks timeStamping: osslsigncode sees it" ossl_ts_failed "$W/legacy-wrongeku.exe"
ossl_sign good "$F" "$W/legacy-noncrit.exe" -t "$URL/legacy/noncrit"
expect_msg "countersigner with a non-critical timeStamping EKU is fine" 0 'countersignature, .*: ok' sgv --ca "$PKI/root-ca.pem" "$W/legacy-noncrit.exe"

# flip FILE OFF: flips the byte OFF bytes before the end of FILE's signature DER.
flip() {
	"$SIGNGATE" extract-signature "$1" -o "$W/flip.der" || return 1
	python3 - "$1" "$W/flip.der" "$2" <<'PY'
import sys
exe, sig, off = sys.argv[1], open(sys.argv[2], 'rb').read(), int(sys.argv[3])
data = bytearray(open(exe, 'rb').read())
start = data.rfind(sig)
data[start + len(sig) - off] ^= 0x01
open(exe, 'wb').write(data)
PY
}
# The timestamp is the last unauthenticated attribute, and the TSA's
# signature value ends it: the last bytes of the signature's DER.
cp "$W/ts.exe" "$W/ts-corrupt.exe"; flip "$W/ts-corrupt.exe" 10
expect_msg "corrupted RFC 3161 token: invalid" 1 "timestamp \(RFC 3161\): the token's signature is invalid" sgv --ca "$PKI/root-ca.pem" "$W/ts-corrupt.exe"
expect "corrupted RFC 3161 token: osslsigncode sees it" ossl_ts_failed "$W/ts-corrupt.exe"
cp "$W/legacy.exe" "$W/legacy-corrupt.exe"; flip "$W/legacy-corrupt.exe" 10
expect_msg "corrupted countersignature: invalid" 1 "countersignature\): the countersignature's signature is invalid" sgv --ca "$PKI/root-ca.pem" "$W/legacy-corrupt.exe"
expect "corrupted countersignature: osslsigncode sees it" ossl_ts_failed "$W/legacy-corrupt.exe"

# ------------------------------------------------------------------ validity

# A signer certificate valid for one day, checked two days later.
LATER=$(iso $((NOW + 2 * 86400)))
ossl_sign short "$F" "$W/short-ts.exe" -ts "$TSA"
ossl_sign short "$F" "$W/short-legacy.exe" -t "$URL/legacy/good"
ossl_sign short "$F" "$W/short-nots.exe"
expect_msg "short-lived signer, now: valid" 0 'Result: valid' sgv --ca "$PKI/root-ca.pem" "$W/short-nots.exe"
expect_msg "expired signer with RFC 3161 timestamp: valid" 0 "checked at .*the timestamp's time" sgv --ca "$PKI/root-ca.pem" --time "$LATER" "$W/short-ts.exe"
expect_msg "expired signer with countersignature: valid" 0 'Result: valid' sgv --ca "$PKI/root-ca.pem" --time "$LATER" "$W/short-legacy.exe"
expect_msg "expired signer without timestamp: expired" 1 'signer certificate expired on .* and the signature has no timestamp' sgv --ca "$PKI/root-ca.pem" --time "$LATER" "$W/short-nots.exe"
expect_msg "--time as Unix seconds" 1 'has no timestamp' sgv --ca "$PKI/root-ca.pem" --time $((NOW + 2 * 86400)) "$W/short-nots.exe"
expect_exit "expired without timestamp: osslsigncode agrees" 1 ossl_verify -time $((NOW + 2 * 86400)) -in "$W/short-nots.exe"
expect_exit "expired with timestamp: osslsigncode agrees" 0 ossl_verify -time $((NOW + 2 * 86400)) -in "$W/short-ts.exe"
cp "$W/short-ts.exe" "$W/short-ts-corrupt.exe"; flip "$W/short-ts-corrupt.exe" 10
expect_msg "expired signer, corrupted timestamp: invalid" 1 "timestamp \(RFC 3161\): the token's signature is invalid" sgv --ca "$PKI/root-ca.pem" --time "$LATER" "$W/short-ts-corrupt.exe"
expect_exit "expired signer, corrupted timestamp: osslsigncode agrees" 1 ossl_verify -time $((NOW + 2 * 86400)) -in "$W/short-ts-corrupt.exe"
# Microsoft's lifetime-signing EKU: the signature dies with the certificate.
ossl_sign lifetime "$F" "$W/lifetime-ts.exe" -ts "$TSA"
expect_msg "lifetime signing, now: valid" 0 'Result: valid' sgv --ca "$PKI/root-ca.pem" "$W/lifetime-ts.exe"
expect_msg "lifetime signing, expired: the timestamp does not help" 1 'signer certificate expired on .*lifetime-signing usage, so its timestamp does not count' sgv --ca "$PKI/root-ca.pem" --time "$LATER" "$W/lifetime-ts.exe"
ossl_sign future "$F" "$W/future.exe"
expect_msg "signer certificate not yet valid" 1 'signer certificate was not yet valid \(from ' sgv --ca "$PKI/root-ca.pem" "$W/future.exe"
expect_msg "bad --time" 2 'ISO 8601 UTC' sgv --time 2040-02-30T00:00:00Z "$W/short-nots.exe"
expect_msg "bad --time (no Z)" 2 'ISO 8601 UTC' sgv --time 2040-01-01T00:00:00 "$W/short-nots.exe"

# ------------------------------------------------------------------ revocation

ossl_sign revoked "$F" "$W/revoked.exe"
ossl_sign good "$F" "$W/good.exe"
ossl_sign late "$F" "$W/late-ts.exe" -ts "$TSA"
sleep 2  # the revocations below must come after late-ts.exe's timestamp
openssl ca -config "$W/ca.cnf" -name int -revoke "$W/revoked.pem" -crl_reason keyCompromise >/dev/null 2>&1 &&
openssl ca -config "$W/ca.cnf" -name int -revoke "$W/late.pem" -crl_reason superseded >/dev/null 2>&1 &&
openssl ca -config "$W/ca.cnf" -name int -revoke "$W/cdprevoked.pem" >/dev/null 2>&1 &&
openssl ca -config "$W/ca.cnf" -name int -gencrl -out "$W/int.crl" >/dev/null 2>&1 &&
openssl ca -config "$W/ca.cnf" -name root -gencrl -out "$W/root.crl" >/dev/null 2>&1 || die "cannot make CRLs"
openssl crl -in "$W/int.crl" -outform DER -out "$W/www/int.crl"
# A CRL of the intermediate listing nothing (before any revocation).
cp "$W/ca/index.txt" "$W/ca/index.saved"; : > "$W/ca/index.txt"
openssl ca -config "$W/ca.cnf" -name int -gencrl -out "$W/int-empty.crl" >/dev/null 2>&1
cp "$W/ca/index.saved" "$W/ca/index.txt"
CRLS=(--crl "$W/int.crl" --crl "$W/root.crl")
expect_msg "revoked with --crl" 1 "certificate revoked: 'verify revoked' revoked on .*keyCompromise" sgv --ca "$PKI/root-ca.pem" "${CRLS[@]}" "$W/revoked.exe"
cat "$W/int.crl" "$W/root.crl" > "$W/both.crl"
expect_exit "revoked: osslsigncode agrees" 1 ossl_verify -CRLfile "$W/both.crl" -in "$W/revoked.exe"
expect_exit "not revoked: osslsigncode agrees" 0 ossl_verify -CRLfile "$W/both.crl" -in "$W/good.exe"
expect_msg "not revoked with --crl" 0 'Revocation: +not revoked' sgv --ca "$PKI/root-ca.pem" "${CRLS[@]}" "$W/good.exe"
expect_msg "CRL that does not list it" 0 'Revocation: +not revoked' sgv --ca "$PKI/root-ca.pem" --crl "$W/int-empty.crl" --crl "$W/root.crl" "$W/revoked.exe"
expect_msg "no CRL: unknown, still valid" 0 "Revocation: +unknown: no current CRL for 'verify revoked'" sgv --ca "$PKI/root-ca.pem" "$W/revoked.exe"
expect_msg "intermediate's CRL missing: unknown" 0 "Revocation: +unknown: no current CRL for 'signgate Test Intermediate" sgv --ca "$PKI/root-ca.pem" --crl "$W/int-empty.crl" "$W/good.exe"
expect_msg "CRL out of date at --time: unknown" 0 'out of date' sgv --ca "$PKI/root-ca.pem" "${CRLS[@]}" --time "$(iso $((NOW + 10 * 86400)))" "$W/good.exe"
expect_msg "revoked after its timestamp: not revoked" 0 "not revoked: 'verify late' revoked on .*after the timestamp" sgv --ca "$PKI/root-ca.pem" "${CRLS[@]}" "$W/late-ts.exe"
expect_msg "DER CRL file" 1 'certificate revoked' sgv --ca "$PKI/root-ca.pem" --crl "$W/www/int.crl" --crl "$W/root.crl" "$W/revoked.exe"
echo "not a CRL" > "$W/junk.crl"
expect_msg "--crl with no CRL in it" 2 'holds no CRL' sgv --ca "$PKI/root-ca.pem" --crl "$W/junk.crl" "$W/good.exe"
expect_msg "--crl missing" 2 'CRL file' sgv --ca "$PKI/root-ca.pem" --crl "$W/nonexistent.crl" "$W/good.exe"
# A CRL named for the intermediate but signed by another key does not count.
cp "$W/int-empty.crl" "$W/forged.crl"
openssl crl -in "$W/int.crl" -outform DER | python3 -c '
import sys; d=bytearray(sys.stdin.buffer.read()); d[-5]^=1; sys.stdout.buffer.write(d)' > "$W/forged.crl"
expect_msg "CRL with a bad signature is ignored" 0 'unknown: .*bad signature' sgv --ca "$PKI/root-ca.pem" --crl "$W/forged.crl" --crl "$W/root.crl" "$W/revoked.exe"

# Fetched from the CRL distribution point over HTTP.
ossl_sign cdpgood "$F" "$W/cdpgood.exe"
ossl_sign cdprevoked "$F" "$W/cdprevoked.exe"
: > "$W/requests.log"
expect_msg "--fetch-crl: not revoked" 0 'Revocation: +not revoked' sgv --ca "$PKI/root-ca.pem" --fetch-crl --crl "$W/root.crl" "$W/cdpgood.exe"
grep -q 'GET /crl/int.crl' "$W/requests.log" && ok "--fetch-crl fetched from the CDP" || bad "--fetch-crl: no request for /crl/int.crl"
expect_msg "--fetch-crl: revoked" 1 "certificate revoked: 'verify cdprevoked'" sgv --ca "$PKI/root-ca.pem" --fetch-crl --crl "$W/root.crl" "$W/cdprevoked.exe"
expect_msg "--fetch-crl, intermediate without CDP: unknown" 0 "unknown: no current CRL for 'signgate Test Intermediate" sgv --ca "$PKI/root-ca.pem" --fetch-crl "$W/cdpgood.exe"
expect_msg "without --fetch-crl nothing is fetched: unknown" 0 "unknown: no current CRL for 'verify cdpgood'" sgv --ca "$PKI/root-ca.pem" --crl "$W/root.crl" "$W/cdpgood.exe"
mv "$W/www/int.crl" "$W/www/int.crl.off"
expect_msg "--fetch-crl, HTTP 404: unknown" 0 'unknown: .*fetching its CRL failed: .*HTTP 404' sgv --ca "$PKI/root-ca.pem" --fetch-crl --crl "$W/root.crl" "$W/cdprevoked.exe"
mv "$W/www/int.crl.off" "$W/www/int.crl"
DEAD=$(free_port)
expect_msg "--fetch-crl honours http_proxy" 0 'unknown: .*fetching its CRL failed' env http_proxy=http://127.0.0.1:$DEAD "$SIGNGATE" verify --ca "$PKI/root-ca.pem" --fetch-crl --crl "$W/root.crl" "$W/cdprevoked.exe"
expect_msg "--fetch-crl, no_proxy bypasses it" 1 'certificate revoked' env http_proxy=http://127.0.0.1:$DEAD no_proxy=127.0.0.1 "$SIGNGATE" verify --ca "$PKI/root-ca.pem" --fetch-crl --crl "$W/root.crl" "$W/cdprevoked.exe"

# ------------------------------------------------------------------ JSON

sgv --ca "$PKI/root-ca.pem" "${CRLS[@]}" --json "$W/revoked.exe" > "$W/revoked.json"; rc=$?
[[ $rc == 1 ]] && ok "--json: exit 1 when invalid" || bad "--json: exit $rc"
expect "--json parses" python3 -m json.tool "$W/revoked.json"
[[ $(json_get "$W/revoked.json" 'j["result"], j["valid"], j["signatures"][0]["status"], j["signatures"][0]["revocation"]["status"]') == "('invalid', False, 'invalid', 'revoked')" ]] &&
	ok "--json: revoked verdict" || bad "--json revoked: $(head -c 400 "$W/revoked.json")"
sgv --ca "$PKI/root-ca.pem" --json --time "$LATER" "$W/short-ts.exe" > "$W/ts.json"; rc=$?
got=$(json_get "$W/ts.json" 'j["result"], j["signatures"][0]["timestamp"]["kind"], j["signatures"][0]["timestamp"]["ok"], j["signatures"][0]["checked_at"] == j["signatures"][0]["timestamp"]["time"], j["signatures"][0]["revocation"]["status"]')
[[ $rc == 0 && $got == "('valid', 'rfc3161', True, True, 'unknown')" ]] && ok "--json: timestamped verdict" || bad "--json timestamped: rc $rc, $got"
sgv --ca "$PKI/root-ca.pem" --json --time "$LATER" "$W/short-nots.exe" > "$W/nots.json"
got=$(json_get "$W/nots.json" 'j["valid"], j["signatures"][0]["timestamp"]["kind"], j["signatures"][0]["chain_ok"], "no timestamp" in j["signatures"][0]["reason"]')
[[ $got == "(False, 'none', False, True)" ]] && ok "--json: expired verdict" || bad "--json expired: $got"
sgv --ca "$PKI/root-ca.pem" --json "$W/legacy.exe" > "$W/legacy.json"
got=$(json_get "$W/legacy.json" 'sorted(j["signatures"][0].keys()), j["signatures"][0]["timestamp"]["kind"], sorted(j["signatures"][0]["digests"])')
want="(['chain_ok', 'checked_at', 'digest_ok', 'digests', 'eku_ok', 'entry', 'index', 'issuer', 'md', 'nested', 'program_name', 'reason', 'revocation', 'signature_ok', 'signer', 'status', 'timestamp'], 'countersignature', ['file', 'signed'])"
[[ $got == "$want" ]] && ok "--json: fields" || bad "--json fields: $got"
sgv --json "$F" > "$W/unsigned.json" 2>/dev/null; rc=$?
[[ $rc == 1 && $(json_get "$W/unsigned.json" 'j["result"]') == "not signed" ]] && ok "--json: not signed" || bad "--json unsigned: rc $rc"

# ------------------------------------------------------------------ third-party signatures

A=$CORPUS/anchors
expect_msg "grub: valid with Debian's CA" 0 'valid \(1 signature\)' sgv --ca "$A/debian-secure-boot-ca.pem" "$CORPUS/grubx64-signed.efi"
expect_msg "grub: digest and signature ok without it" 1 'digest ok, signature ok, chain FAILED' sgv --ca "$PKI/root-ca.pem" "$CORPUS/grubx64-signed.efi"
expect_msg "grub: untrusted in the system store" 1 'certificate chain: unable to get local issuer' sgv "$CORPUS/grubx64-signed.efi"
expect_msg "no --ca: the hint names --ca" 1 '^Hint: no --ca given, .*--ca ROOTS.pem' sgv "$CORPUS/grubx64-signed.efi"
# shim: two entries, Microsoft UEFI CA 2011 and 2023, each with an RFC 3161
# timestamp by the Microsoft Time-Stamp Service.  The anchor for those is
# the Time-Stamp PCA 2010 taken from the token itself (its root is in no
# Debian store), as the UEFI CAs were taken from the signatures.
"$SIGNGATE" extract-signature "$CORPUS/shimx64-signed.efi" -o "$W/shim.der"
python3 - "$W/shim.der" "$W/shim-tok.der" <<'PY'
import sys
d = open(sys.argv[1], 'rb').read()
oid = bytes.fromhex('060a2b0601040182370303 01'.replace(' ', ''))  # 1.3.6.1.4.1.311.3.3.1
i = d.index(oid) + len(oid)
assert d[i] == 0x31                     # SET
n = d[i + 1]; i += 2 + (n & 0x7f if n & 0x80 else 0)
ln = d[i + 1]
if ln & 0x80:
    k = ln & 0x7f; ln = int.from_bytes(d[i + 2:i + 2 + k], 'big'); hl = 2 + k
else:
    hl = 2
open(sys.argv[2], 'wb').write(d[i:i + hl + ln])
PY
openssl cms -verify -noverify -inform DER -in "$W/shim-tok.der" -certsout "$W/shim-tokcerts.pem" -out /dev/null 2>/dev/null
openssl x509 -in "$W/shim-tokcerts.pem" -noout -subject 2>/dev/null | grep -q . || die "cannot read shim's timestamp token"
awk '/BEGIN/ {n++} n >= 1' "$W/shim-tokcerts.pem" | openssl crl2pkcs7 -nocrl -certfile /dev/stdin | \
	openssl pkcs7 -print_certs | awk '/subject=.*Time-Stamp PCA/ {p=1} p' > "$W/ms-tsa-pca.pem"
grep -q 'BEGIN CERTIFICATE' "$W/ms-tsa-pca.pem" || die "no Time-Stamp PCA in shim's token"
cat "$A/microsoft-uefi-ca-2011.pem" "$A/microsoft-uefi-ca-2023.pem" > "$W/ms-uefi.pem"
MS=(--ca "$W/ms-uefi.pem" --tsa-ca "$W/ms-tsa-pca.pem")
expect_msg "shim: both signatures valid with Microsoft's CAs" 0 'valid \(2 signatures\)' sgv "${MS[@]}" "$CORPUS/shimx64-signed.efi"
n=$(sgv "${MS[@]}" "$CORPUS/shimx64-signed.efi" 2>&1 | grep -c "checked at 2026-05-.*the timestamp's time")
[[ $n == 2 ]] && ok "shim: both checked at their timestamps" || bad "shim: $n of 2 checked at their timestamps"
expect_msg "shim: valid on 2025-01-01 too" 0 'valid \(2 signatures\)' sgv "${MS[@]}" --time 2025-01-01T00:00:00Z "$CORPUS/shimx64-signed.efi"
expect_msg "shim: only the 2011 CA trusted: entry 1 untrusted" 1 'certificate chain: unable to get local issuer' sgv --ca "$A/microsoft-uefi-ca-2011.pem" --tsa-ca "$W/ms-tsa-pca.pem" "$CORPUS/shimx64-signed.efi"
expect_msg "shim: timestamps untrusted without the TSA's anchor" 1 'timestamp \(RFC 3161\): TSA certificate chain' sgv --ca "$W/ms-uefi.pem" --time 2025-01-01T00:00:00Z "$CORPUS/shimx64-signed.efi"
n=$(sgv --ca "$PKI/root-ca.pem" "$CORPUS/shimx64-signed.efi" 2>&1 | grep -c 'digest ok, signature ok')
[[ $n == 2 ]] && ok "shim: both signatures cryptographically valid" || bad "shim: $n of 2 cryptographically valid"
# Without timestamps, the 2011 chain has expired by now (2026-06-27).
python3 - "$CORPUS/shimx64-signed.efi" "$W/shim-nots.efi" <<'PY'
import sys
# Rename the timestamp attribute's OID (last arc 1 -> 9): the token stays in
# place (unauthenticated, so the signature holds) but is no timestamp.
d = bytearray(open(sys.argv[1], 'rb').read())
oid = bytes.fromhex('060a2b060104018237030301')
i = 0
while True:
    i = d.find(oid, i)
    if i < 0: break
    d[i + len(oid) - 1] = 9; i += len(oid)
open(sys.argv[2], 'wb').write(d)
PY
if [[ $(date +%s) -gt $(date -d 2026-06-27T21:32:45Z +%s) ]]; then
	expect_msg "shim without timestamps: 2011 CA expired now" 1 'CA certificate .*UEFI CA 2011 expired on 2026-06-27.*the signature has no timestamp' sgv --ca "$W/ms-uefi.pem" "$W/shim-nots.efi"
fi
# Its signer certificates date from 2025-07 and 2026-03, its signatures from
# 2026-05-13: checked then, both are valid.
expect_msg "shim without timestamps: valid on 2026-05-13" 0 'valid \(2 signatures\)' sgv --ca "$W/ms-uefi.pem" --time 2026-05-13T12:00:00Z "$W/shim-nots.efi"
expect_msg "shim without timestamps: not yet valid on 2025-01-01" 1 'signer certificate was not yet valid \(from 2026-03-12' sgv --ca "$W/ms-uefi.pem" --time 2025-01-01T00:00:00Z "$W/shim-nots.efi"

# ------------------------------------------------------------------ agreement with osslsigncode

# Every unsigned corpus file signed four ways; both verifiers must agree.
K=(--key "$PKI/soft.key" --cert "$PKI/codesign-soft.pem")
agree() {
	local name=$1 f=$2 want=$3 s=0 o=0
	sgv --ca "$PKI/root-ca.pem" -q "$f" >/dev/null 2>&1 || s=$?
	ossl_verify -in "$f" >/dev/null 2>&1 || o=$?
	if [[ $s == "$o" && ( -z $want || $s == "$want" ) ]]; then ok "agree $name ($s)"
	else bad "agree $name: signgate $s, osslsigncode $o${want:+, wanted $want}"; fi
}
while IFS=$'\t' read -r name kind; do
	[[ -z $name || $name == \#* || $kind == signed-* ]] && continue
	f=$CORPUS/$name
	"$SIGNGATE" sign "${K[@]}" "$f" -o "$W/a-$name.sg" >/dev/null 2>&1 || { bad "$name: signgate sign"; continue; }
	osslsigncode add -ts "$TSA" -in "$W/a-$name.sg" -out "$W/a-$name.sgts" >/dev/null 2>&1 || bad "$name: osslsigncode add -ts"
	osslsigncode sign -certs "$PKI/codesign-soft.pem" -key "$PKI/soft.key" -in "$f" -out "$W/a-$name.os" >/dev/null 2>&1 || bad "$name: osslsigncode sign"
	osslsigncode sign -certs "$PKI/codesign-soft.pem" -key "$PKI/soft.key" -ts "$TSA" -in "$f" -out "$W/a-$name.osts" >/dev/null 2>&1 || bad "$name: osslsigncode sign -ts"
	for v in sg sgts os osts; do agree "$name.$v" "$W/a-$name.$v" 0; done
done < "$CORPUS/MANIFEST"
osslsigncode sign -certs "$PKI/codesign-soft.pem" -key "$PKI/soft.key" -t "$URL/legacy/good" -in "$F" -out "$W/a-legacy.exe" >/dev/null 2>&1
agree "countersigned" "$W/a-legacy.exe" 0
# Tampered: a byte of the body, of the timestamp, of the signature; a wrong root.
for v in sg sgts os osts; do
	cp "$W/a-hello64.exe.$v" "$W/t-body.$v"
	printf '\xcc' | dd of="$W/t-body.$v" bs=1 seek=2000 conv=notrunc status=none
	agree "tampered body $v" "$W/t-body.$v" 1
done
# A tampered timestamp: both fail it when the signer has expired (osslsigncode
# checks at -time then); with a current signer osslsigncode reports the bad
# timestamp but passes the file (see above).
ossl_sign short "$F" "$W/t-ts.os" -ts "$TSA"
"$SIGNGATE" sign --key "$W/short.key" --cert "$W/short-chain.pem" "$F" -o "$W/t-ts.sg0" >/dev/null 2>&1
osslsigncode add -ts "$TSA" -in "$W/t-ts.sg0" -out "$W/t-ts.sg" >/dev/null 2>&1
for v in sg os; do
	expect_exit "expired signer, timestamp ok: signgate ($v)" 0 sgv --ca "$PKI/root-ca.pem" --time "$LATER" "$W/t-ts.$v"
	expect_exit "expired signer, timestamp ok: osslsigncode ($v)" 0 ossl_verify -time $((NOW + 2 * 86400)) -in "$W/t-ts.$v"
	flip "$W/t-ts.$v" 10
	expect_exit "expired signer, tampered timestamp: signgate ($v)" 1 sgv --ca "$PKI/root-ca.pem" --time "$LATER" "$W/t-ts.$v"
	expect_exit "expired signer, tampered timestamp: osslsigncode ($v)" 1 ossl_verify -time $((NOW + 2 * 86400)) -in "$W/t-ts.$v"
done
cp "$W/a-hello64.exe.sg" "$W/t-sig.sg"; flip "$W/t-sig.sg" 100
agree "tampered signature" "$W/t-sig.sg" 1
s=0; sgv --ca "$PKI/other-root.pem" -q "$W/a-hello64.exe.osts" || s=$?
o=0; osslsigncode verify -CAfile "$PKI/other-root.pem" -TSA-CAfile "$PKI/root-ca.pem" -in "$W/a-hello64.exe.osts" >/dev/null 2>&1 || o=$?
[[ $s == 1 && $o == 1 ]] && ok "agree wrong root" || bad "wrong root: signgate $s, osslsigncode $o"

# ------------------------------------------------------------------ expiry at the service
# A signing key whose certificate expires within 30 days: the service says so
# in its log at start and in GET /v1/keys.
SVCPORT=$(free_port)
openssl rand -hex 24 | tr -d '\n' > "$W/svc-token"; chmod 600 "$W/svc-token"
cat > "$W/expiry.ini" <<INI
[log]
file = $W/expiry.log
[service]
listen = 127.0.0.1:$SVCPORT
tls_cert = $PKI/tls.pem
tls_key = $PKI/tls.key
[key short]
uri = $W/short.key
cert = $W/short-chain.pem
[key long]
uri = $PKI/soft.key
cert = $PKI/codesign-soft.pem
[client c]
token = file:$W/svc-token
keys = short, long
INI
"$SIGNGATE" service --config "$W/expiry.ini" > "$W/expiry.out" 2>&1 &
SVCPID=$!
for _ in $(seq 100); do grep -q '^listening' "$W/expiry.out" && break; sleep 0.1; done
grep -q 'key short: certificate expires in 0 days' "$W/expiry.log" \
	&& ok "service logs a certificate expiring within 30 days" || bad "no expiry warning: $(cat "$W/expiry.log")"
grep -q 'key long: certificate expires' "$W/expiry.log" && bad "warned about a key with years left" || ok "no warning for a key with years left"
keys=$(curl -s --cacert "$PKI/root-ca.pem" -H "Authorization: Bearer $(cat "$W/svc-token")" "https://127.0.0.1:$SVCPORT/v1/keys")
python3 -c 'import json,sys; k={x["name"]:x["expires_soon"] for x in json.loads(sys.argv[1])["keys"]}; sys.exit(0 if k=={"short":True,"long":False} else 1)' "$keys" \
	&& ok "/v1/keys: expires_soon true for the short-lived key only" || bad "/v1/keys: $keys"
kill $SVCPID; wait $SVCPID 2>/dev/null

summary
