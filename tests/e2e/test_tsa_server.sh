#!/usr/bin/env bash
# The signing service as an RFC 3161 time-stamping authority (POST /tsa)
# with its key in the SoftHSM2 token: tokens from `openssl ts -query`
# verify with `openssl ts -verify` (certReq set or not, nonce or not, every
# hash); requests it refuses get a rejection response with the right
# failInfo; bad bodies, content types and methods get 400/415/405; /tsa is
# 404 without tsa_key and 401 without a token when tsa_require_token is
# set; osslsigncode timestamps over HTTPS through it and accepts the
# result; bad TSA configs are refused at start.
# Env: SIGNGATE, PKI, CORPUS, WORK.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
export SOFTHSM2_CONF=$PKI/softhsm2.conf
W=$WORK/tsa_server
rm -rf "$W" && mkdir -p "$W"
MOD=/usr/lib/softhsm/libsofthsm2.so
POLICY=1.3.6.1.4.1.32473.1            # the default (SG_TSA_DEFAULT_POLICY)
TOKEN=$(openssl rand -hex 24); printf %s "$TOKEN" > "$W/token"; chmod 600 "$W/token"

# conf NAME PORT EXTRA-SERVICE-LINES: writes $W/NAME.ini (keys tsa and rsa, one client).
conf() {
	cat > "$W/$1.ini" <<INI
[log]
file = $W/$1.log
[service]
listen = 127.0.0.1:$2
tls_cert = $PKI/tls.pem
tls_key = $PKI/tls.key
audit_log = $W/$1.jsonl
$3
[key tsa]
uri = pkcs11:token=signgate;object=tsa?module-path=$MOD&pin-source=file:$PKI/pin.txt
cert = $PKI/tsa.pem
[key rsa]
uri = pkcs11:token=signgate;object=codesign-rsa?module-path=$MOD&pin-source=file:$PKI/pin.txt
cert = $PKI/codesign-rsa.pem
[client builder]
token = file:$W/token
keys = rsa
INI
}

PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null' EXIT
# start NAME: runs the service on $W/NAME.ini; returns non-zero if it does not come up.
start() {
	"$SIGNGATE" service --config "$W/$1.ini" > "$W/$1.out" 2> "$W/$1.err" &
	PIDS+=($!)
	for _ in $(seq 100); do grep -q '^listening' "$W/$1.out" && return 0; sleep 0.1; done
	return 1
}

PORT=$(free_port); conf main "$PORT" "tsa_key = tsa"
start main && ok "service with tsa_key starts" \
	|| { bad "service did not start: $(cat "$W/main.err" "$W/main.log")"; summary; exit 1; }
URL=https://127.0.0.1:$PORT
grep -q "time-stamping authority at POST /tsa: key tsa, policy $POLICY, open to anyone" "$W/main.log" \
	&& ok "start-up log names the TSA" || bad "no TSA line in the log: $(cat "$W/main.log")"

# post FILE [CONTENT-TYPE] [URL] [TOKEN]: POSTs FILE; prints the HTTP status and content
# type; the body lands in $W/body.
post() {
	local ct=${2-application/timestamp-query} url=${3:-$URL} tok=${4:-}
	local args=(-s -o "$W/body" -w '%{http_code} %{content_type}' --cacert "$PKI/root-ca.pem"
	            --data-binary "@$1")
	args+=(-H "Content-Type: $ct")    # empty: curl sends none
	[[ -n $tok ]] && args+=(-H "Authorization: Bearer $tok")
	curl "${args[@]}" "$url/tsa"
}
printf 'signgate TSA test data\n' > "$W/data"

# stamp NAME QUERY-ARGS...: makes $W/NAME.tsq with `openssl ts -query`, gets $W/NAME.tsr.
stamp() {
	local n=$1; shift
	openssl ts -query -data "$W/data" "$@" -out "$W/$n.tsq" 2>/dev/null || { echo "query failed"; return 1; }
	local code; code=$(post "$W/$n.tsq")
	cp "$W/body" "$W/$n.tsr"
	echo "$code"
}
# verify NAME [EXTRA-ARGS]: openssl ts -verify of $W/NAME.tsr against $W/NAME.tsq.
verify() {
	local n=$1; shift
	openssl ts -verify -in "$W/$n.tsr" -queryfile "$W/$n.tsq" -CAfile "$PKI/root-ca.pem" "$@" 2>&1 \
		| grep -q '^Verification: OK'
}
ntoken_certs() {
	openssl ts -reply -in "$W/$1.tsr" -token_out -out "$W/$1.tok" 2>/dev/null
	openssl pkcs7 -inform DER -in "$W/$1.tok" -print_certs 2>/dev/null | grep -c '^subject=' || true
}
status_of() { openssl ts -reply -in "$W/$1.tsr" -text 2>/dev/null | sed -n 's/^Status: //p'; }

# --- granted ---------------------------------------------------------------------------
code=$(stamp s256 -sha256 -cert)
[[ $code == "200 application/timestamp-reply" ]] && ok "sha256 + certReq: 200 timestamp-reply" || bad "sha256: got '$code'"
verify s256 -untrusted "$PKI/tsa.pem" && ok "sha256 + certReq: openssl ts -verify OK" || bad "sha256: verify failed"
verify s256 && ok "certReq: the token carries the TSA chain (verifies with the root alone)" || bad "certReq: token lacks the chain"
[[ $(ntoken_certs s256) == 2 ]] && ok "certReq: leaf and intermediate in the token" || bad "certReq: $(ntoken_certs s256) certificates in the token"
openssl ts -reply -in "$W/s256.tsr" -text > "$W/s256.txt" 2>/dev/null
grep -q "^Policy OID: $POLICY\$" "$W/s256.txt" && ok "TSTInfo policy is the default" || bad "policy: $(grep Policy "$W/s256.txt")"
grep -q '^Accuracy: 0x01 seconds' "$W/s256.txt" && ok "accuracy 1 s" || bad "accuracy: $(grep Accuracy "$W/s256.txt")"
grep -q '^TSA: DirName:/O=signgate test/CN=signgate TSA (token)' "$W/s256.txt" && ok "TSTInfo names the TSA" || bad "tsa name: $(grep ^TSA "$W/s256.txt")"
gen=$(sed -n 's/^Time stamp: //p' "$W/s256.txt")
d=$(( $(date -u +%s) - $(date -u -d "$gen" +%s 2>/dev/null || echo 0) ))
((d >= -2 && d <= 10)) && ok "genTime is now ($gen)" || bad "genTime '$gen' is ${d}s off"
grep -q '^Nonce: 0x' "$W/s256.txt" && ok "nonce copied" || bad "no nonce in TSTInfo"
openssl ts -reply -in "$W/s256.tsr" -token_out -out "$W/s256.tok" 2>/dev/null
openssl asn1parse -inform DER -in "$W/s256.tok" > "$W/s256.asn" 2>/dev/null
grep -q 'id-smime-aa-signingCertificateV2' "$W/s256.asn" && ok "signingCertificateV2 signed attribute" || bad "no signingCertificateV2"
awk 'NR==5' "$W/s256.asn" | grep -q 'INTEGER *:03' && ok "SignedData version 3" || bad "SignedData version: $(awk 'NR==5' "$W/s256.asn")"

code=$(stamp nocert -sha256 -no_nonce)
[[ $code == 200* ]] && ok "no certReq, no nonce: 200" || bad "no certReq: $code"
[[ $(ntoken_certs nocert) == 0 ]] && ok "no certReq: no certificates in the token" || bad "no certReq: $(ntoken_certs nocert) certificates"
verify nocert -untrusted "$PKI/tsa.pem" && ok "no certReq: verifies with -untrusted tsa.pem" || bad "no certReq: verify failed"
verify nocert && bad "no certReq: verified without the TSA certificate" || ok "no certReq: needs the TSA certificate to verify"
grep -q '^Nonce: unspecified' <(openssl ts -reply -in "$W/nocert.tsr" -text 2>/dev/null) && ok "no nonce asked, none given" || bad "nonce appeared"

for h in sha1 sha384 sha512; do
	code=$(stamp "$h" "-$h" -cert)
	[[ $code == 200* ]] && verify "$h" && ok "$h imprint: verified" || bad "$h imprint: $code, verify failed"
done
code=$(stamp ourpol -sha256 -cert -tspolicy "$POLICY")
[[ $code == 200* ]] && verify ourpol && ok "request naming our policy: granted" || bad "our policy: $code $(status_of ourpol)"

# --- rejected: status rejection with the failInfo, HTTP 200 ---------------------------
# rejected NAME FAILINFO-TEXT
rejected() {
	local txt; txt=$(openssl ts -reply -in "$W/$1.tsr" -text 2>/dev/null)
	if grep -q '^Status: Rejected' <<<"$txt" && grep -q "^Failure info: $2" <<<"$txt" \
	   && grep -q '^Not included' <<<"$txt"; then
		ok "$1: rejected ($2)"
	else
		bad "$1: $(head -4 <<<"$txt" | tr '\n' ' ')"
	fi
}
code=$(stamp otherpol -sha256 -cert -tspolicy 1.2.3.4)
[[ $code == 200* ]] && ok "unknown policy: HTTP 200" || bad "unknown policy: $code"
rejected otherpol 'the requested TSA policy is not supported'
grep -q 'policy 1.2.3.4 not accepted' <(openssl ts -reply -in "$W/otherpol.tsr" -text 2>/dev/null) \
	&& ok "rejection text names the policy" || bad "rejection text"
stamp sha224 -sha224 >/dev/null; rejected sha224 'unrecognized or unsupported algorithm'
stamp md5 -md5 >/dev/null; rejected md5 'unrecognized or unsupported algorithm'

# Requests openssl will not make, built by hand (DER).
python3 - "$W" <<'PY'
import hashlib, sys
w = sys.argv[1]
def tlv(tag, body):
    n = len(body)
    ln = bytes([n]) if n < 128 else bytes([0x81, n]) if n < 256 else bytes([0x82, n >> 8, n & 255])
    return bytes([tag]) + ln + body
seq = lambda *xs: tlv(0x30, b''.join(xs))
SHA256 = bytes.fromhex('0609608648016503040201')
SHA384 = bytes.fromhex('0609608648016503040202')
NULL = b'\x05\x00'
h = hashlib.sha256(open(w + '/data', 'rb').read()).digest()
def req(version=1, alg=SHA256, params=NULL, digest=h, tail=b''):
    return seq(tlv(2, bytes([version])), seq(seq(alg, params), tlv(4, digest)), tail)
ext = lambda crit: seq(tlv(6, bytes.fromhex('2a030405')), *( [b'\x01\x01\xff'] if crit else [] ), tlv(4, b'\x05\x00'))
out = {
    'v2': req(version=2),
    'badlen': req(alg=SHA384),                          # a SHA-256 digest labelled SHA-384
    'params': req(params=tlv(4, b'x')),                 # hash parameters that are not NULL
    'extcrit': req(tail=b'\x01\x01\xff' + tlv(0xa0, ext(True))),
    'extnoncrit': req(tail=tlv(0xa0, ext(False))),
    'noparams': req(params=b''),                        # absent parameters are fine
    'trailing': req() + b'\x00\x00',
    'garbage': b'this is not a TimeStampReq\n',
    'empty': b'',
}
for k, v in out.items():
    open(f'{w}/{k}.tsq', 'wb').write(v)
PY
for n in v2 badlen params extcrit extnoncrit noparams; do post "$W/$n.tsq" > "$W/$n.code"; cp "$W/body" "$W/$n.tsr"; done
rejected v2 'the data submitted has the wrong format'
rejected badlen 'the data submitted has the wrong format'
rejected params 'unrecognized or unsupported algorithm'
rejected extcrit 'the requested extension is not supported'
rejected extnoncrit 'the requested extension is not supported'
[[ $(status_of noparams) == Granted.* ]] && ok "absent hash parameters: granted" || bad "absent parameters: $(status_of noparams)"

# --- HTTP-level errors ---------------------------------------------------------------
check() { # NAME WANT-CODE PATTERN GOT
	if [[ ${4%% *} == "$2" ]] && grep -qE -- "$3" "$W/body"; then ok "$1"; else bad "$1: got $4 $(head -c 200 "$W/body")"; fi
}
check "garbage body: 400" 400 'not a DER TimeStampReq' "$(post "$W/garbage.tsq")"
check "empty body: 400" 400 'not a DER TimeStampReq' "$(post "$W/empty.tsq")"
check "trailing bytes: 400" 400 'follow the TimeStampReq' "$(post "$W/trailing.tsq")"
check "wrong content type: 415" 415 'application/timestamp-query' "$(post "$W/s256.tsq" application/octet-stream)"
check "no content type: 415" 415 'application/timestamp-query' "$(post "$W/s256.tsq" '')"
code=$(post "$W/s256.tsq" 'Application/Timestamp-Query; charset=binary'); [[ $code == 200* ]] && ok "content type case and parameters ignored" || bad "content type with parameters: $code"
head -c 5000 /dev/urandom > "$W/big.tsq"
check "5000-byte body: 413" 413 'larger than' "$(post "$W/big.tsq")"
code=$(curl -s -o "$W/body" -w '%{http_code}' --cacert "$PKI/root-ca.pem" "$URL/tsa")
check "GET /tsa: 405" 405 'use POST' "$code"
check "still serving" 200 '"ok"' "$(curl -s -o "$W/body" -w '%{http_code}' --cacert "$PKI/root-ca.pem" "$URL/health")"

# --- concurrency: 30 requests at once, all valid, serials distinct --------------------
for i in $(seq 30); do
	openssl ts -query -data "$W/data" -sha256 -cert -out "$W/c$i.tsq" 2>/dev/null
	curl -s -o "$W/c$i.tsr" --cacert "$PKI/root-ca.pem" -H 'Content-Type: application/timestamp-query' \
		--data-binary "@$W/c$i.tsq" "$URL/tsa" &
done
wait $(jobs -p | grep -vxF -f <(printf '%s\n' "${PIDS[@]}")) 2>/dev/null
good=0
for i in $(seq 30); do verify "c$i" && good=$((good + 1)); done
[[ $good == 30 ]] && ok "30 concurrent timestamps valid" || bad "concurrent: $good of 30 valid"
serials=$(for i in $(seq 30); do openssl ts -reply -in "$W/c$i.tsr" -text 2>/dev/null | sed -n 's/^Serial number: //p'; done | sort -u | wc -l)
[[ $serials == 30 ]] && ok "30 distinct serial numbers" || bad "only $serials distinct serials"

# --- log --------------------------------------------------------------------------------
serial=$(sed -n 's/^Serial number: 0x//p' "$W/s256.txt")
grep -q "timestamp serial=$serial .* peer=127.0.0.1:[0-9]* client=- key=tsa sha256=[0-9a-f]\{64\} cert_req=yes nonce=yes" "$W/main.log" \
	&& ok "log line per timestamp (serial, peer, imprint)" || bad "no log line for serial $serial"
grep -q 'timestamp rejected .*failinfo=15: "policy 1.2.3.4 not accepted' "$W/main.log" && ok "rejections logged with the reason" || bad "rejection not logged"
grep -i "\"serial\":\"$serial\"" "$W/main.jsonl" | grep -q '"kind":"timestamp".*"result":"granted"' && ok "timestamp in the audit log" || bad "timestamp not in the audit log"

# --- osslsigncode through the TSA, over HTTPS with our private CA -----------------------
F=$CORPUS/hello64.exe
expect "osslsigncode sign -ts (HTTPS TSA)" osslsigncode sign -certs "$PKI/codesign-soft.pem" -key "$PKI/soft.key" \
	-h sha256 -ts "$URL/tsa" -HTTPS-CAfile "$PKI/root-ca.pem" -in "$F" -out "$W/ossl-ts.exe"
osslsigncode verify -CAfile "$PKI/root-ca.pem" -TSA-CAfile "$PKI/root-ca.pem" -in "$W/ossl-ts.exe" > "$W/ossl-verify.txt" 2>&1
grep -q 'Timestamp Server Signature verification: ok' "$W/ossl-verify.txt" && grep -q '^Succeeded' "$W/ossl-verify.txt" \
	&& ok "osslsigncode verify accepts our timestamp" || bad "osslsigncode verify: $(tail -5 "$W/ossl-verify.txt")"
KEY="pkcs11:token=signgate;object=codesign-rsa?module-path=$MOD&pin-source=file:$PKI/pin.txt"
expect "signgate sign with the token key" "$SIGNGATE" sign --key "$KEY" --cert "$PKI/codesign-rsa.pem" "$F" -o "$W/sg.exe"
# Without --timestamp-ca the TSA's TLS certificate meets the system's roots
# only: the error says which option gives its CA, and no output is left.
expect_msg "signgate timestamp without --timestamp-ca: names the option" 1 'system.s roots only: give its CA \(--timestamp-ca' \
	"$SIGNGATE" timestamp --timestamp "$URL/tsa" "$W/sg.exe" -o "$W/sg-nots.exe"
[[ ! -e $W/sg-nots.exe ]] && ok "no output file after the refused timestamp" || bad "a refused timestamp left $W/sg-nots.exe"
expect "osslsigncode add -ts to a signgate signature" osslsigncode add -ts "$URL/tsa" -HTTPS-CAfile "$PKI/root-ca.pem" \
	-in "$W/sg.exe" -out "$W/sg-ts.exe"
osslsigncode verify -CAfile "$PKI/root-ca.pem" -TSA-CAfile "$PKI/root-ca.pem" -in "$W/sg-ts.exe" > "$W/sg-verify.txt" 2>&1
grep -q 'Timestamp Server Signature verification: ok' "$W/sg-verify.txt" && grep -q '^Succeeded' "$W/sg-verify.txt" \
	&& ok "osslsigncode verify: signgate signature + our timestamp" || bad "verify sg-ts: $(tail -5 "$W/sg-verify.txt")"

# --- tsa_require_token and tsa_policy; a service without tsa_key ------------------------
P2=$(free_port); conf tok "$P2" "tsa_key = tsa
tsa_require_token = yes
tsa_policy = 1.3.6.1.4.1.32473.7"
P3=$(free_port); conf none "$P3" ""
if start tok && start none; then
	check "tsa_require_token: no token, 401" 401 'bearer token' "$(post "$W/s256.tsq" application/timestamp-query "https://127.0.0.1:$P2")"
	code=$(post "$W/s256.tsq" application/timestamp-query "https://127.0.0.1:$P2" "$TOKEN")
	cp "$W/body" "$W/tok.tsr"; cp "$W/s256.tsq" "$W/tok.tsq"
	[[ $code == 200* ]] && verify tok && ok "tsa_require_token: with a token, verified" || bad "with token: $code"
	grep -q '^Policy OID: 1.3.6.1.4.1.32473.7$' <(openssl ts -reply -in "$W/tok.tsr" -text 2>/dev/null) \
		&& ok "tsa_policy used in TSTInfo" || bad "tsa_policy not used"
	grep -q 'client=builder' "$W/tok.log" && ok "log names the client when a token is required" || bad "client not logged"
	check "no tsa_key: 404" 404 'tsa_key is not set' "$(post "$W/s256.tsq" application/timestamp-query "https://127.0.0.1:$P3")"
else
	bad "second/third service did not start: $(cat "$W/tok.err" "$W/none.err")"
fi

# --- bad TSA configurations are refused at start ----------------------------------------
conf cs 0 "tsa_key = rsa"; sed -i 's/^keys = rsa$/keys = tsa/' "$W/cs.ini"
expect_msg "code-signing key as tsa_key refused" 2 'tsa_key rsa cannot be a time-stamping authority.*extendedKeyUsage' \
	"$SIGNGATE" service --config "$W/cs.ini"
conf nokey 0 "tsa_key = nope"
expect_msg "tsa_key naming no key" 2 "tsa_key names key 'nope'" "$SIGNGATE" service --config "$W/nokey.ini"
conf cl 0 "tsa_key = tsa"; sed -i 's/^keys = rsa$/keys = rsa, tsa/' "$W/cl.ini"
expect_msg "client may not use the TSA key" 2 "signs timestamps only" "$SIGNGATE" service --config "$W/cl.ini"
conf pol 0 "tsa_key = tsa
tsa_policy = not-an-oid"
expect_msg "bad tsa_policy" 2 "tsa_policy 'not-an-oid' is not a dotted OID" "$SIGNGATE" service --config "$W/pol.ini"
conf yn 0 "tsa_require_token = maybe"
expect_msg "bad yes/no" 2 "'tsa_require_token' must be 'yes' or 'no'" "$SIGNGATE" service --config "$W/yn.ini"
# A TSA-only service, open to all, needs no [client].
P4=$(free_port)
printf '[log]\nfile = %s\n[service]\nlisten = 127.0.0.1:%s\ntls_cert = %s\ntls_key = %s\ntsa_key = tsa\n[key tsa]\nuri = pkcs11:token=signgate;object=tsa?module-path=%s&pin-source=file:%s\n' \
	"$W/only.log" "$P4" "$PKI/tls.pem" "$PKI/tls.key" "$MOD" "$PKI/pin.txt" > "$W/only.ini"
if start only; then
	code=$(post "$W/nocert.tsq" application/timestamp-query "https://127.0.0.1:$P4"); cp "$W/body" "$W/only.tsr"; cp "$W/nocert.tsq" "$W/only.tsq"
	[[ $code == 200* ]] && verify only -untrusted "$PKI/tsa.pem" && ok "TSA-only service (no client, certificate from the token)" || bad "TSA-only: $code"
else
	bad "TSA-only service did not start: $(cat "$W/only.err" "$W/only.log")"
fi

for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
rc=0; wait "${PIDS[0]}" 2>/dev/null || rc=$?
[[ $rc == 0 ]] && ok "clean stop on SIGTERM" || bad "exit $rc on SIGTERM"
summary
