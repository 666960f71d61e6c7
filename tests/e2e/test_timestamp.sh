#!/usr/bin/env bash
# test_timestamp.sh - RFC 3161 timestamps on every signing path, against a
# stand-in TSA on loopback (tsa_standin.py: `openssl ts -reply` with a TSA
# key and certificate made here, issued by the test PKI's intermediate CA).
#
# `sign --timestamp`: the result passes osslsigncode with -TSA-CAfile and the
# token passes `openssl ts -verify`; token keys (PKCS#11), SHA-1 signatures,
# nesting.  Bad TSAs (HTTP 400, text/html, a wrong Content-Type, garbage, a
# stall) give an error naming URL, status and type, and no output at all
# under policy fail; policy skip signs with a warning; a list falls back to
# the next URL; retries after 503; proxies from the environment.
# `signgate timestamp` on a signed file.  The signing service and the
# download server with timestamp_urls, and their bad configurations.
#
# Env: SIGNGATE, PKI, CORPUS, WORK.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
: "${SIGNGATE:?set SIGNGATE}" "${PKI:?set PKI}" "${CORPUS:?set CORPUS}" "${WORK:?set WORK}"
export SOFTHSM2_CONF=$PKI/softhsm2.conf
# Requests go straight to 127.0.0.1 unless a test sets a proxy itself.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
HERE=$(cd "$(dirname "$0")" && pwd)
W=$WORK/timestamp
rm -rf "$W" && mkdir -p "$W/out"
MOD=/usr/lib/softhsm/libsofthsm2.so
F=$CORPUS/hello64.exe

trap kill_started EXIT

# ------------------------------------------------------------------ the TSA

cat >"$W/tsa-ext.cnf" <<'EOF'
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = critical, timeStamping
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
EOF
cat >"$W/ts.cnf" <<EOF
[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
serial = $W/tsa-serial
crypto_device = builtin
signer_digest = sha256
default_policy = 1.3.6.1.4.1.32473.2
digests = sha1, sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = no
ess_cert_id_chain = no
EOF
echo 01 >"$W/tsa-serial"
if ! { openssl req -new -newkey rsa:2048 -nodes -keyout "$W/tsa.key" \
		-subj "/O=signgate test/CN=signgate test TSA (stand-in)" -out "$W/tsa.csr" &&
	openssl x509 -req -in "$W/tsa.csr" -CA "$PKI/int-ca.pem" -CAkey "$PKI/int-ca.key" \
		-set_serial "0x$(openssl rand -hex 8)" -days 30 -extfile "$W/tsa-ext.cnf" -out "$W/tsa.pem"
     } >"$W/tsa-make.log" 2>&1; then
	bad "cannot make the TSA certificate: $(cat "$W/tsa-make.log")"; summary; exit 1
fi
start tsa python3 "$HERE/tsa_standin.py" --key "$W/tsa.key" --cert "$W/tsa.pem" \
	--chain "$PKI/int-ca.pem" --config "$W/ts.cnf" --log "$W/tsa-requests.log" --stall 30 \
	|| { summary; exit 1; }
TSA=$URL
ok "stand-in TSA at $TSA"

SIGN=("$SIGNGATE" sign --key "$PKI/soft.key" --cert "$PKI/codesign-soft.pem")
RSA_URI="pkcs11:token=signgate;object=codesign-rsa?module-path=$MOD&pin-source=file:$PKI/pin.txt"
EC_URI="pkcs11:token=signgate;object=codesign-ec?module-path=$MOD&pin-source=file:$PKI/pin.txt"

# ossl_ts NAME FILE [NSIG]: osslsigncode accepts FILE with its timestamp.
ossl_ts() {
	local out n=${3:-1}
	out=$(osslsigncode verify -CAfile "$PKI/root-ca.pem" -TSA-CAfile "$PKI/root-ca.pem" -in "$2" 2>&1)
	if grep -q '^Succeeded' <<<"$out" && grep -q 'Timestamp time:' <<<"$out" &&
	   grep -q "Number of verified signatures: $n" <<<"$out"; then ok "$1"
	else bad "$1: osslsigncode: $(grep -E 'Timestamp|Failed|Error|error|verified' <<<"$out" | head -n 6 | tr '\n' ' ')"; fi
}
# no_ts FILE: osslsigncode accepts FILE, which has no timestamp.
no_ts() {
	local out
	out=$(osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$2" 2>&1)
	if grep -q '^Succeeded' <<<"$out" && ! grep -q 'Timestamp time:' <<<"$out"; then ok "$1"
	else bad "$1: $(tail -n 3 <<<"$out" | tr '\n' ' ')"; fi
}

# The RFC 3161 tokens of a DER signature's SignerInfo, and its signature
# value: tokens FILE.der PREFIX writes PREFIX.token<N>.der and PREFIX.sigval,
# prints the number of tokens.
tokens() {
	python3 - "$1" "$2" <<'PY'
import sys
der = open(sys.argv[1], "rb").read()
def tlv(b, i):
    tag = b[i]; i += 1; n = b[i]; i += 1
    if n & 0x80:
        k = n & 0x7f; n = int.from_bytes(b[i:i + k], "big"); i += k
    return tag, i, n          # tag, start of value, length
def children(b, i, n):
    end = i + n; out = []
    while i < end:
        tag, v, l = tlv(b, i); out.append((tag, i, v, l)); i = v + l
    return out
_, v, l = tlv(der, 0)                      # ContentInfo
ci = children(der, v, l)
_, v, l = tlv(der, ci[1][2])               # [0] EXPLICIT -> SignedData
sd = children(der, v, l)
sis = [c for c in sd if c[0] == 0x31][-1]  # signerInfos SET (the last SET)
si = children(der, sis[2], sis[3])[0]
parts = children(der, si[2], si[3])
sigval = [p for p in parts if p[0] == 0x04][0]
open(sys.argv[2] + ".sigval", "wb").write(der[sigval[2]:sigval[2] + sigval[3]])
oid = bytes.fromhex("060a2b0601040182370303 01".replace(" ", ""))
n = 0
for p in parts:
    if p[0] != 0xa1:
        continue
    for attr in children(der, p[2], p[3]):
        a = children(der, attr[2], attr[3])
        if der[a[0][1]:a[0][2] + a[0][3]] != oid:
            continue
        for val in children(der, a[1][2], a[1][3]):
            open("%s.token%d.der" % (sys.argv[2], n), "wb").write(der[val[1]:val[2] + val[3]])
            n += 1
print(n)
PY
}

# token_ok NAME FILE.exe [ALG]: exactly one token, which `openssl ts -verify`
# accepts for the signature value (and whose imprint uses ALG).
token_ok() {
	local name=$1 f=$2 alg=${3:-} p=$W/tok-$RANDOM n
	"$SIGNGATE" extract-signature "$f" -o "$p.sig" >/dev/null 2>&1 || { bad "$name: extract"; return; }
	n=$(tokens "$p.sig" "$p")
	[[ $n == 1 ]] || { bad "$name: $n RFC 3161 tokens, wanted 1"; return; }
	if openssl ts -verify -token_in -in "$p.token0.der" -data "$p.sigval" \
		-CAfile "$PKI/root-ca.pem" -untrusted "$PKI/int-ca.pem" >"$p.log" 2>&1; then ok "$name"
	else bad "$name: openssl ts -verify: $(tr '\n' ' ' <"$p.log")"; fi
	if [[ -n $alg ]]; then
		openssl ts -reply -token_in -in "$p.token0.der" -token_out -text 2>/dev/null |
			grep -q "Hash Algorithm: $alg" && ok "$name: imprint $alg" || bad "$name: imprint not $alg"
	fi
}

# fails_clean NAME PATTERN CMD...: exit 1, stderr matching PATTERN, and
# nothing at all in $W/out (no output, no temporary file).
fails_clean() {
	local name=$1 pat=$2 out rc=0; shift 2
	rm -rf "$W/out" && mkdir "$W/out"
	out=$("$@" 2>&1) || rc=$?
	if [[ $rc == 1 ]] && grep -qE -- "$pat" <<<"$out" && [[ -z $(ls -A "$W/out") ]]; then ok "$name"
	else bad "$name: exit $rc, files: $(ls -A "$W/out" | tr '\n' ' '), output: $(head -c 400 <<<"$out")"; fi
}

# ------------------------------------------------------------------ sign --timestamp

expect "sign --timestamp" "${SIGN[@]}" --timestamp "$TSA/tsa" "$F" -o "$W/ts.exe"
ossl_ts "osslsigncode verifies signature and timestamp" "$W/ts.exe"
token_ok "openssl ts -verify accepts the token" "$W/ts.exe" sha256
expect "signgate verify still accepts it" "$SIGNGATE" verify --ca "$PKI/root-ca.pem" "$W/ts.exe"

expect "sign with the RSA token key and a timestamp" "$SIGNGATE" sign --key "$RSA_URI" \
	--cert "$PKI/codesign-rsa.pem" --timestamp "$TSA/tsa" "$CORPUS/hello32.dll" -o "$W/rsa.dll"
ossl_ts "token key RSA: osslsigncode" "$W/rsa.dll"
expect "sign with the EC token key and a timestamp" "$SIGNGATE" sign --key "$EC_URI" \
	--cert "$PKI/codesign-ec.pem" --timestamp "$TSA/tsa" "$F" -o "$W/ec.exe"
ossl_ts "token key EC: osslsigncode" "$W/ec.exe"
token_ok "token key EC: openssl ts -verify" "$W/ec.exe"
expect "sha1 signature with a timestamp" "${SIGN[@]}" --digest sha1 --timestamp "$TSA/tsa" "$F" -o "$W/sha1.exe"
ossl_ts "sha1: osslsigncode" "$W/sha1.exe"
token_ok "sha1: token" "$W/sha1.exe" sha1
expect "sha512 signature with a timestamp" "${SIGN[@]}" --digest sha512 --timestamp "$TSA/tsa" "$F" -o "$W/sha512.exe"
token_ok "sha512: token with a SHA-256 imprint" "$W/sha512.exe" sha256

# Nesting: the new (nested) signature is the one timestamped.
expect "sign without timestamp" "${SIGN[@]}" "$F" -o "$W/plain.exe"
expect "sign --nest --timestamp" "$SIGNGATE" sign --key "$EC_URI" --cert "$PKI/codesign-ec.pem" \
	--digest sha384 --nest --timestamp "$TSA/tsa" "$W/plain.exe" -o "$W/nested.exe"
ossl_ts "nested: osslsigncode verifies both signatures and the timestamp" "$W/nested.exe" 2
"$SIGNGATE" extract-signature "$W/nested.exe" -o "$W/nested.sig" >/dev/null 2>&1
[[ $(tokens "$W/nested.sig" "$W/nested") == 0 ]] && ok "nested: the primary is left as it was" \
	|| bad "nested: the primary got a timestamp"

# ------------------------------------------------------------------ bad TSAs

fails_clean "HTTP 400: URL, status and type named; nothing written" \
	"$TSA/bad400 answered HTTP 400 with Content-Type text/plain" \
	"${SIGN[@]}" --timestamp "$TSA/bad400" "$F" -o "$W/out/x.exe"
fails_clean "text/html: named; nothing written" \
	"$TSA/html answered HTTP 200 with Content-Type text/html, not application/timestamp-reply" \
	"${SIGN[@]}" --timestamp "$TSA/html" "$F" -o "$W/out/x.exe"
fails_clean "wrong Content-Type on a valid reply: refused; nothing written" \
	"$TSA/wrongtype answered HTTP 200 with Content-Type application/octet-stream" \
	"${SIGN[@]}" --timestamp "$TSA/wrongtype" "$F" -o "$W/out/x.exe"
fails_clean "garbage reply: not a TimeStampResp; nothing written" \
	"$TSA/garbage .*not a DER TimeStampResp" \
	"${SIGN[@]}" --timestamp "$TSA/garbage" "$F" -o "$W/out/x.exe"
fails_clean "unreachable TSA: network error; nothing written" \
	"timestamp server http://127.0.0.1:1/x: Couldn't connect" \
	"${SIGN[@]}" --timestamp "http://127.0.0.1:1/x" "$F" -o "$W/out/x.exe"
t0=$SECONDS
fails_clean "stalled TSA: timeout; nothing written" "$TSA/stall: Timeout was reached" \
	"${SIGN[@]}" --timestamp "$TSA/stall" --timestamp-timeout 3 "$F" -o "$W/out/x.exe"
((SECONDS - t0 <= 6)) && ok "stalled TSA: gave up after the 3 s timeout ($((SECONDS - t0)) s)" \
	|| bad "stalled TSA: took $((SECONDS - t0)) s with a 3 s timeout"
fails_clean "every URL fails: the last error and the count" \
	"none of 2 timestamp servers gave a timestamp; the last: timestamp server $TSA/bad400 answered HTTP 400" \
	"${SIGN[@]}" --timestamp "$TSA/html" --timestamp "$TSA/bad400" "$F" -o "$W/out/x.exe"
cp "$W/plain.exe" "$W/keep.exe"
"${SIGN[@]}" --timestamp "$TSA/bad400" "$F" -o "$W/keep.exe" >/dev/null 2>&1
cmp -s "$W/plain.exe" "$W/keep.exe" && ok "an existing OUT is unchanged after a failure" \
	|| bad "OUT changed by a failed timestamped signing"

# policy skip: signed, no timestamp, a warning.
rm -rf "$W/out" && mkdir "$W/out"
expect_msg "policy skip: signs with a warning" 0 "warning: .*WITHOUT a timestamp.*$TSA/html" \
	"${SIGN[@]}" --timestamp "$TSA/html" --timestamp-policy skip "$F" -o "$W/out/skip.exe"
no_ts "policy skip: valid signature without timestamp" "$W/out/skip.exe"
expect_msg "policy skip: a bad URL is still a usage error" 2 "must start with http" \
	"${SIGN[@]}" --timestamp "ftp://x" --timestamp-policy skip "$F" -o "$W/out/skip2.exe"

# A list: the first URL fails, the second gives the timestamp.
: >"$W/tsa-requests.log"
expect "list: bad URL, then good URL" "${SIGN[@]}" --timestamp "$TSA/bad400" --timestamp "$TSA/second" \
	"$F" -o "$W/list.exe"
ossl_ts "list: timestamped" "$W/list.exe"
[[ $(tr '\n' ' ' <"$W/tsa-requests.log") == "/bad400 /second " ]] && ok "list: asked in order, the second gave it" \
	|| bad "list: requests were: $(tr '\n' ' ' <"$W/tsa-requests.log")"

# Retries: 503 then a good answer, from the same URL.
: >"$W/tsa-requests.log"
expect "503 is retried" "${SIGN[@]}" --timestamp "$TSA/flaky" "$F" -o "$W/flaky.exe"
[[ $(grep -c '^/flaky$' "$W/tsa-requests.log") == 2 ]] && ok "503: two attempts" \
	|| bad "503: $(grep -c flaky "$W/tsa-requests.log") attempts"
ossl_ts "503 then OK: timestamped" "$W/flaky.exe"

# Proxies from the environment (libcurl's rules): the stand-in also acts as
# a forward proxy, so an unresolvable TSA host works only through it.
: >"$W/tsa-requests.log"
expect "http_proxy from the environment is used" env http_proxy="$TSA" \
	"${SIGN[@]}" --timestamp "http://tsa.invalid/via-proxy" "$F" -o "$W/proxy.exe"
grep -q '^http://tsa.invalid/via-proxy$' "$W/tsa-requests.log" && ok "proxy: the request went through it" \
	|| bad "proxy: requests: $(tr '\n' ' ' <"$W/tsa-requests.log")"
fails_clean "no_proxy from the environment is honoured" "tsa.invalid" \
	env http_proxy="$TSA" no_proxy=tsa.invalid "${SIGN[@]}" --timestamp "http://tsa.invalid/x" \
	"$F" -o "$W/out/x.exe"

# Usage errors.
expect_msg "--timestamp-policy without --timestamp" 2 "need --timestamp URL" \
	"${SIGN[@]}" --timestamp-policy skip "$F" -o "$W/out/u.exe"
expect_msg "bad --timestamp-policy" 2 "must be 'fail' or 'skip'" \
	"${SIGN[@]}" --timestamp "$TSA/tsa" --timestamp-policy maybe "$F" -o "$W/out/u.exe"
expect_msg "bad --timestamp-timeout" 2 "1 to 600 seconds" \
	"${SIGN[@]}" --timestamp "$TSA/tsa" --timestamp-timeout 0 "$F" -o "$W/out/u.exe"
expect_msg "sign --help names --timestamp" 0 "--timestamp-policy fail\|skip" "$SIGNGATE" sign --help

# ------------------------------------------------------------------ signgate timestamp

expect "timestamp a file signed without one" "$SIGNGATE" timestamp --timestamp "$TSA/tsa" \
	"$W/plain.exe" -o "$W/later.exe"
ossl_ts "timestamp: osslsigncode" "$W/later.exe"
token_ok "timestamp: token" "$W/later.exe"
[[ $("$SIGNGATE" hash "$W/plain.exe" | cut -d' ' -f1) == $("$SIGNGATE" hash "$W/later.exe" | cut -d' ' -f1) ]] \
	&& ok "timestamp: file digest unchanged" || bad "timestamp: file digest changed"
cp "$W/later.exe" "$W/again.exe"
expect "timestamp in place (OUT = IN) replaces the timestamp" "$SIGNGATE" timestamp \
	--timestamp "$TSA/tsa" "$W/again.exe" -o "$W/again.exe"
token_ok "timestamp again: still one token" "$W/again.exe"
ossl_ts "timestamp again: osslsigncode" "$W/again.exe"
expect "timestamp a nested signature (primary only)" "$SIGNGATE" timestamp --timestamp "$TSA/tsa" \
	"$W/nested.exe" -o "$W/nested-ts.exe"
ossl_ts "nested + timestamp: osslsigncode" "$W/nested-ts.exe" 2
fails_clean "timestamp: unsigned file" "is not signed" \
	"$SIGNGATE" timestamp --timestamp "$TSA/tsa" "$F" -o "$W/out/x.exe"
fails_clean "timestamp: bad TSA, nothing written" "$TSA/html answered HTTP 200 with Content-Type text/html" \
	"$SIGNGATE" timestamp --timestamp "$TSA/html" "$W/plain.exe" -o "$W/out/x.exe"
# A signed file changed afterwards gets no fresh timestamp.
cp "$W/plain.exe" "$W/tampered.exe"
printf 'X' | dd of="$W/tampered.exe" bs=1 seek=1024 conv=notrunc status=none
fails_clean "timestamp: signature that does not match the file" "does not match its contents" \
	"$SIGNGATE" timestamp --timestamp "$TSA/tsa" "$W/tampered.exe" -o "$W/out/x.exe"
expect_msg "timestamp: no --timestamp" 2 "give --timestamp URL" "$SIGNGATE" timestamp "$W/plain.exe" -o "$W/out/x.exe"
expect_msg "timestamp: bad URL" 2 "must start with http:// or https://" \
	"$SIGNGATE" timestamp --timestamp "ftp://x/y" "$W/plain.exe" -o "$W/out/x.exe"
expect_msg "timestamp: no password in the URL" 2 "must not carry a user name or password" \
	"$SIGNGATE" timestamp --timestamp "http://user:secret@127.0.0.1/x" "$W/plain.exe" -o "$W/out/x.exe"
expect_msg "timestamp: --help" 0 "RFC 3161" "$SIGNGATE" timestamp --help
expect_msg "timestamp is listed" 0 "timestamp +add an RFC 3161" "$SIGNGATE" --help

# ------------------------------------------------------------------ signing service

TOKEN=$(openssl rand -hex 24); printf %s "$TOKEN" >"$W/token"; chmod 600 "$W/token"
# svc_ini NAME [EXTRA-LINES]: a service config with a software key.
svc_ini() {
	cat >"$W/$1.ini" <<EOF
[log]
file = $W/$1.log
[service]
listen = 127.0.0.1:0
tls_cert = $PKI/tls.pem
tls_key = $PKI/tls.key
${2:-}
[key soft]
uri = $PKI/soft.key
cert = $PKI/codesign-soft.pem
[client builder]
token = file:$W/token
keys = soft
EOF
}
D=$("$SIGNGATE" hash "$F" | cut -d' ' -f1)
printf '{"key":"soft","digest_algorithm":"sha256","digest":"%s","file_name":"hello64.exe","format":"pe"}' "$D" >"$W/req.json"
# sign_req BASE-URL OUT: POST /v1/sign; prints the HTTP status, body in OUT.
sign_req() {
	curl -s -o "$2" -w '%{http_code}' --cacert "$PKI/root-ca.pem" -H "Authorization: Bearer $TOKEN" \
		-H 'Content-Type: application/json' --data-binary "@$W/req.json" "$1/v1/sign"
}
# attach_sig ANSWER OUT.exe: the answer's signature, embedded in $F.
attach_sig() {
	python3 -c 'import json,base64,sys; open(sys.argv[2],"wb").write(base64.b64decode(json.load(open(sys.argv[1]))["signature"]))' "$1" "$1.der" &&
		"$SIGNGATE" attach-signature "$F" --signature "$1.der" -o "$2" >/dev/null 2>&1
}

svc_ini svc-ok "timestamp_urls = $TSA/bad400, $TSA/svc
timestamp_timeout = 3"
if start svc-ok "$SIGNGATE" service --config "$W/svc-ok.ini"; then
	SVC=$URL
	code=$(sign_req "$SVC" "$W/svc-ok.json")
	[[ $code == 200 ]] && grep -q '"timestamped":true' "$W/svc-ok.json" && ok "service: 200, timestamped: true" \
		|| bad "service: $code $(head -c 300 "$W/svc-ok.json")"
	attach_sig "$W/svc-ok.json" "$W/svc-ok.exe" && ossl_ts "service: the signature carries a verified timestamp" "$W/svc-ok.exe" \
		|| bad "service: cannot attach"
	grep -q 'timestamped by' "$W/svc-ok.log" && ok "service: timestamps announced at start" || bad "service: start log"

	# The download server signing through this service: timestamped downloads.
	mkdir -p "$W/root" && cp "$F" "$W/root/app.exe"
	cat >"$W/serve-svc.ini" <<EOF
[log]
file = $W/serve-svc.log
[serve]
root = $W/root
cache_dir = $W/cache-svc
service_url = $SVC
service_ca = $PKI/root-ca.pem
service_token = file:$W/token
service_key = soft
EOF
	if start serve-svc "$SIGNGATE" serve --config "$W/serve-svc.ini" --listen 127.0.0.1:0; then
		code=$(curl -s -o "$W/dl-svc.exe" -w '%{http_code}' "$URL/download/app.exe")
		[[ $code == 200 ]] && ossl_ts "download server via the service: timestamped download" "$W/dl-svc.exe" \
			|| bad "download via service: HTTP $code"
	fi
fi

svc_ini svc-fail "timestamp_urls = $TSA/html
timestamp_policy = fail"
if start svc-fail "$SIGNGATE" service --config "$W/svc-fail.ini"; then
	code=$(sign_req "$URL" "$W/svc-fail.json")
	[[ $code == 503 ]] && grep -q "timestamping failed.*$TSA/html.*text/html" "$W/svc-fail.json" \
		&& ok "service, policy fail: 503 naming the TSA problem" || bad "service fail: $code $(head -c 300 "$W/svc-fail.json")"
	grep -q '"signature"' "$W/svc-fail.json" && bad "service fail: a signature was returned" || ok "service fail: no signature returned"
fi

svc_ini svc-skip "timestamp_urls = $TSA/stall
timestamp_policy = skip
timestamp_timeout = 2"
if start svc-skip "$SIGNGATE" service --config "$W/svc-skip.ini"; then
	t0=$SECONDS
	code=$(sign_req "$URL" "$W/svc-skip.json")
	[[ $code == 200 ]] && grep -q '"timestamped":false' "$W/svc-skip.json" && ((SECONDS - t0 <= 5)) \
		&& ok "service, policy skip: 200 without timestamp after the 2 s timeout" \
		|| bad "service skip: $code in $((SECONDS - t0)) s: $(head -c 300 "$W/svc-skip.json")"
	attach_sig "$W/svc-skip.json" "$W/svc-skip.exe" && no_ts "service skip: valid signature without timestamp" "$W/svc-skip.exe"
	grep -q "WITHOUT a timestamp.*$TSA/stall" "$W/svc-skip.log" && ok "service skip: warning logged" \
		|| bad "service skip: no warning in the log"
fi

# Bad timestamp settings are refused at start, with the file and section.
svc_ini bad1 "timestamp_policy = maybe
timestamp_urls = $TSA/x"
expect_msg "config: bad timestamp_policy" 2 "bad1.ini: \[service\] timestamp_policy must be 'fail' or 'skip'" \
	"$SIGNGATE" service --config "$W/bad1.ini"
svc_ini bad2 "timestamp_urls = ftp://tsa.example.com"
expect_msg "config: bad timestamp URL" 2 "bad2.ini: \[service\] timestamp_urls: .*must start with http" \
	"$SIGNGATE" service --config "$W/bad2.ini"
svc_ini bad3 "timestamp_policy = skip"
expect_msg "config: timestamp settings without URLs" 2 "timestamp_\* settings but no timestamp_urls" \
	"$SIGNGATE" service --config "$W/bad3.ini"

# ------------------------------------------------------------------ download server, custom method

mkdir -p "$W/root" && cp "$F" "$W/root/app.exe" && cp "$CORPUS/hello32.dll" "$W/root/lib.dll"
# serve_ini NAME EXTRA-LINES
serve_ini() {
	cat >"$W/$1.ini" <<EOF
[log]
file = $W/$1.log
[serve]
root = $W/root
cache_dir = $W/cache-$1
sign_method = custom
custom_key = $PKI/soft.key
custom_cert = $PKI/codesign-soft.pem
$2
EOF
}
serve_ini serve-ts "timestamp_urls = $TSA/bad400 $TSA/serve"
if start serve-ts "$SIGNGATE" serve --config "$W/serve-ts.ini" --listen 127.0.0.1:0; then
	code=$(curl -s -o "$W/dl-ts.exe" -w '%{http_code}' "$URL/download/app.exe")
	[[ $code == 200 ]] && ossl_ts "download server (custom key): timestamped download" "$W/dl-ts.exe" \
		|| bad "serve custom: HTTP $code"
fi
serve_ini serve-fail "timestamp_urls = $TSA/wrongtype"
if start serve-fail "$SIGNGATE" serve --config "$W/serve-fail.ini" --listen 127.0.0.1:0; then
	code=$(curl -s -o "$W/dl-fail" -w '%{http_code}' "$URL/download/app.exe")
	[[ $code == 503 ]] && ok "download server, policy fail: 503 (on_sign_failure = refuse)" || bad "serve fail: HTTP $code"
	grep -q "refused app.exe: signing failed: timestamp server $TSA/wrongtype" "$W/serve-fail.log" \
		&& ok "download server, policy fail: the TSA problem is logged" || bad "serve fail log: $(grep app.exe "$W/serve-fail.log")"
fi
serve_ini serve-skip "timestamp_urls = $TSA/bad400
timestamp_policy = skip"
if start serve-skip "$SIGNGATE" serve --config "$W/serve-skip.ini" --listen 127.0.0.1:0; then
	code=$(curl -s -o "$W/dl-skip.exe" -w '%{http_code}' "$URL/download/lib.dll")
	[[ $code == 200 ]] && no_ts "download server, policy skip: signed without timestamp" "$W/dl-skip.exe" \
		|| bad "serve skip: HTTP $code"
	grep -q "lib.dll is signed WITHOUT a timestamp" "$W/serve-skip.log" && ok "download server skip: warning logged" \
		|| bad "serve skip: no warning"
fi
serve_ini serve-bad "timestamp_policy = later
timestamp_urls = $TSA/x"
expect_msg "serve config: bad timestamp_policy" 2 "\[serve\] timestamp_policy must be" \
	"$SIGNGATE" serve --config "$W/serve-bad.ini" --listen 127.0.0.1:0

# With a sanitizer build, the servers' stderr must hold no report.
kill_started
PIDS=()
if grep -lE 'AddressSanitizer|LeakSanitizer|runtime error:' "$W"/*.err >/dev/null 2>&1; then
	bad "sanitizer reports in: $(grep -lE 'AddressSanitizer|LeakSanitizer|runtime error:' "$W"/*.err | tr '\n' ' ')"
else
	ok "no sanitizer reports from the servers"
fi

summary
