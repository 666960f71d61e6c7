#!/usr/bin/env bash
# The signing service on loopback with real TLS and the SoftHSM2 token:
# signatures it returns verify; bad requests get the right status and the
# service keeps serving; concurrent requests are all correct; a bad config
# is refused with its line; no token or PIN reaches the log.
# Env: SIGNGATE, PKI, CORPUS, WORK.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
export SOFTHSM2_CONF=$PKI/softhsm2.conf
W=$WORK/service
rm -rf "$W" && mkdir -p "$W"
MOD=/usr/lib/softhsm/libsofthsm2.so
TOKEN=$(openssl rand -hex 24); printf %s "$TOKEN" > "$W/token"; chmod 600 "$W/token"
TOKEN2=$(openssl rand -hex 24); printf %s "$TOKEN2" > "$W/token2"; chmod 600 "$W/token2"
PORT=$(free_port)
cat > "$W/svc.ini" <<INI
[log]
file = $W/service.log
[service]
listen = 127.0.0.1:$PORT
tls_cert = $PKI/tls.pem
tls_key = $PKI/tls.key
audit_log = $W/signatures.jsonl
max_body = 65536
threads = 4
[key rsa]
uri = pkcs11:token=signgate;object=codesign-rsa?module-path=$MOD&pin-source=file:$PKI/pin.txt
cert = $PKI/codesign-rsa.pem
[key ec]
uri = pkcs11:token=signgate;object=codesign-ec?module-path=$MOD
cert = $PKI/codesign-ec.pem
pass = file:$PKI/pin.txt
[client builder]
token = file:$W/token
keys = rsa, ec
[client limited]
token = file:$W/token2
keys = ec
INI
"$SIGNGATE" service --config "$W/svc.ini" > "$W/out" 2>"$W/err" &
SVC=$!
trap 'kill $SVC 2>/dev/null; wait 2>/dev/null' EXIT
for _ in $(seq 100); do grep -q '^listening' "$W/out" && break; sleep 0.1; done
grep -q '^listening' "$W/out" && ok "service starts" || { bad "service did not start: $(cat "$W/err" "$W/service.log")"; summary; exit 1; }
URL=https://127.0.0.1:$PORT

# req TOKEN METHOD PATH [BODY-FILE]: prints the HTTP status; body in $W/body.
req() {
	local tok=$1 method=$2 path=$3 data=${4:-}
	local args=(-s -o "$W/body" -w '%{http_code}' --cacert "$PKI/root-ca.pem" -X "$method")
	[[ -n $tok ]] && args+=(-H "Authorization: Bearer $tok")
	[[ -n $data ]] && args+=(-H 'Content-Type: application/json' --data-binary "@$data")
	curl "${args[@]}" "$URL$path"
}
json() { printf '%s' "$1" > "$W/req.json"; echo "$W/req.json"; }

F=$CORPUS/hello64.exe
D=$("$SIGNGATE" hash "$F" | cut -d' ' -f1)
for key in rsa ec; do
	code=$(req "$TOKEN" POST /v1/sign "$(json "{\"key\":\"$key\",\"digest_algorithm\":\"sha256\",\"digest\":\"$D\",\"file_name\":\"hello64.exe\",\"format\":\"pe\",\"program_name\":\"Test\"}")")
	[[ $code == 200 ]] && ok "sign with $key: 200" || bad "sign with $key: $code $(cat "$W/body")"
	python3 -c 'import json,base64,sys; open(sys.argv[2],"wb").write(base64.b64decode(json.load(open(sys.argv[1]))["signature"]))' "$W/body" "$W/$key.der"
	expect "$key: attach" "$SIGNGATE" attach-signature "$F" --signature "$W/$key.der" -o "$W/$key.exe"
	expect "$key: osslsigncode verify" osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$W/$key.exe"
	expect "$key: sbverify" sbverify --cert "$PKI/codesign-$key.pem" "$W/$key.exe"
done
D384=$("$SIGNGATE" hash --digest sha384 "$F" | cut -d' ' -f1)
code=$(req "$TOKEN" POST /v1/sign "$(json "{\"key\":\"rsa\",\"digest_algorithm\":\"sha384\",\"digest\":\"$D384\",\"file_name\":\"x.exe\",\"format\":\"pe\"}")")
[[ $code == 200 ]] && ok "sha384: 200" || bad "sha384: $code"

# Bad requests: status and message naming the problem.
check() { # NAME WANT-CODE PATTERN CODE
	if [[ $4 == "$2" ]] && grep -qE -- "$3" "$W/body"; then ok "$1"; else bad "$1: got $4 $(head -c 200 "$W/body")"; fi
}
check "no token" 401 'bearer token' "$(req "" GET /v1/keys)"
check "bad token" 401 'bearer token' "$(req "not-a-valid-token-at-all" GET /v1/keys)"
check "wrong digest length" 400 "field 'digest' must be 64 hex digits" "$(req "$TOKEN" POST /v1/sign "$(json "{\"key\":\"rsa\",\"digest_algorithm\":\"sha256\",\"digest\":\"abcd\",\"file_name\":\"x\",\"format\":\"pe\"}")")"
check "non-hex digest" 400 "field 'digest'" "$(req "$TOKEN" POST /v1/sign "$(json "{\"key\":\"rsa\",\"digest_algorithm\":\"sha256\",\"digest\":\"$(printf 'zz%.0s' $(seq 32))\",\"file_name\":\"x\",\"format\":\"pe\"}")")"
check "unknown algorithm" 400 "digest_algorithm" "$(req "$TOKEN" POST /v1/sign "$(json "{\"key\":\"rsa\",\"digest_algorithm\":\"md5\",\"digest\":\"$D\",\"file_name\":\"x\",\"format\":\"pe\"}")")"
check "unknown key" 404 "no key named" "$(req "$TOKEN" POST /v1/sign "$(json "{\"key\":\"nope\",\"digest_algorithm\":\"sha256\",\"digest\":\"$D\",\"file_name\":\"x\",\"format\":\"pe\"}")")"
check "forbidden key" 403 "may not use key 'rsa'" "$(req "$TOKEN2" POST /v1/sign "$(json "{\"key\":\"rsa\",\"digest_algorithm\":\"sha256\",\"digest\":\"$D\",\"file_name\":\"x\",\"format\":\"pe\"}")")"
check "broken JSON" 400 "not a JSON object" "$(req "$TOKEN" POST /v1/sign "$(json '{"key": "rsa", ')")"
check "JSON array" 400 "not a JSON object" "$(req "$TOKEN" POST /v1/sign "$(json '[1,2,3]')")"
check "missing field" 400 "field 'file_name' is missing" "$(req "$TOKEN" POST /v1/sign "$(json "{\"key\":\"rsa\",\"digest_algorithm\":\"sha256\",\"digest\":\"$D\",\"format\":\"pe\"}")")"
check "wrong type" 400 "wrong type" "$(req "$TOKEN" POST /v1/sign "$(json "{\"key\":1,\"digest_algorithm\":\"sha256\",\"digest\":\"$D\",\"file_name\":\"x\",\"format\":\"pe\"}")")"
check "bad format" 400 "field 'format'" "$(req "$TOKEN" POST /v1/sign "$(json "{\"key\":\"rsa\",\"digest_algorithm\":\"sha256\",\"digest\":\"$D\",\"file_name\":\"x\",\"format\":\"msi\"}")")"
check "control chars in file name" 400 "file_name" "$(req "$TOKEN" POST /v1/sign "$(json "{\"key\":\"rsa\",\"digest_algorithm\":\"sha256\",\"digest\":\"$D\",\"file_name\":\"a\\nb\",\"format\":\"pe\"}")")"
check "unknown field" 400 "unknown field .*colour" "$(req "$TOKEN" POST /v1/sign "$(json "{\"key\":\"rsa\",\"digest_algorithm\":\"sha256\",\"digest\":\"$D\",\"file_name\":\"x\",\"format\":\"pe\",\"colour\":\"red\"}")")"
check "bad program_url names the field" 400 "program_url" "$(req "$TOKEN" POST /v1/sign "$(json "{\"key\":\"rsa\",\"digest_algorithm\":\"sha256\",\"digest\":\"$D\",\"file_name\":\"x\",\"format\":\"pe\",\"program_url\":\"h\u00e9\"}")")"
check "duplicate keys in JSON" 400 "not a JSON object" "$(req "$TOKEN" POST /v1/sign "$(json "{\"key\":\"rsa\",\"key\":\"ec\"}")")"
head -c $((10 * 1024 * 1024)) /dev/zero | tr '\0' 'a' > "$W/big.json"
code=$(req "$TOKEN" POST /v1/sign "$W/big.json"); [[ $code == 413 ]] && ok "10 MB body: 413" || bad "10 MB body: $code"
check "GET on sign" 405 "use POST" "$(req "$TOKEN" GET /v1/sign)"
check "unknown path" 404 "no such path" "$(req "$TOKEN" GET /v2/x)"
check "health" 200 '"ok"' "$(req "" GET /health)"
check "keys for builder" 200 '"name":"rsa".*"name":"ec"' "$(req "$TOKEN" GET /v1/keys)"
code=$(req "$TOKEN2" GET /v1/keys); grep -q '"rsa"' "$W/body" && bad "limited client sees key rsa" || ok "keys: only the client's"
grep -q 'BEGIN CERTIFICATE' "$W/body" && grep -q 'not_after' "$W/body" && ok "keys: chain and expiry" || bad "keys: no chain/expiry"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health" || true)
[[ $code != 200 ]] && ok "plain HTTP refused" || bad "plain HTTP answered"
code=$(curl -s -o /dev/null -w '%{http_code}' --tls-max 1.1 --cacert "$PKI/root-ca.pem" "$URL/health" || true)
[[ $code != 200 ]] && ok "TLS 1.1 refused" || bad "TLS 1.1 accepted"
# Two different Content-Length headers (request smuggling): refused.
printf '{"key":"rsa"}' > "$W/cl.json"
code=$(curl -s -o "$W/body" -w '%{http_code}' --cacert "$PKI/root-ca.pem" -H "Authorization: Bearer $TOKEN" \
	-H 'Content-Length: 13' -H 'Content-Length: 5' --data-binary "@$W/cl.json" "$URL/v1/sign")
check "conflicting Content-Length" 400 "conflicting Content-Length" "$code"
# Fields from outside cannot forge log lines.
code=$(req "$TOKEN" POST /v1/sign "$(json "{\"key\":\"rsa\",\"digest_algorithm\":\"sha256\",\"digest\":\"$D\",\"file_name\":\"x.exe\\\" client=admin key=evil\",\"format\":\"pe\"}")")
grep -q 'file="x.exe\\x22 client=admin key=evil"' "$W/service.log" && ok "quotes in file_name escaped in the log" || bad "file_name not escaped: $(grep evil "$W/service.log")"
check "still serving after bad requests" 200 '"ok"' "$(req "" GET /health)"

# Concurrency: 40 requests at once, alternating keys; every signature valid.
for i in $(seq 40); do
	key=$([[ $((i % 2)) == 0 ]] && echo rsa || echo ec)
	printf '{"key":"%s","digest_algorithm":"sha256","digest":"%s","file_name":"c%d.exe","format":"pe"}' "$key" "$D" "$i" > "$W/c$i.json"
	curl -s -o "$W/c$i.out" --cacert "$PKI/root-ca.pem" -H "Authorization: Bearer $TOKEN" --data-binary "@$W/c$i.json" "$URL/v1/sign" &
done
wait $(jobs -p | grep -v "^$SVC$") 2>/dev/null
good=0
for i in $(seq 40); do
	python3 -c 'import json,base64,sys; open(sys.argv[2],"wb").write(base64.b64decode(json.load(open(sys.argv[1]))["signature"]))' "$W/c$i.out" "$W/c$i.der" 2>/dev/null \
	&& "$SIGNGATE" attach-signature "$F" --signature "$W/c$i.der" -o "$W/c$i.exe" 2>/dev/null \
	&& osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$W/c$i.exe" >/dev/null 2>&1 && good=$((good + 1))
done
[[ $good == 40 ]] && ok "40 concurrent signatures valid" || bad "concurrent: $good of 40 valid"

# The audit log: one JSON line per signature (refusals too), with digest and client.
n=$(grep -c '"result":"granted"' "$W/signatures.jsonl")
[[ $n == 44 ]] && ok "audit log has 44 signatures" || bad "audit log has $n signatures, wanted 44"
expect "audit log verifies" "$SIGNGATE" audit verify "$W/signatures.jsonl"
grep -q "\"digest\":\"$D\"" "$W/signatures.jsonl" && grep -q '"client":"builder"' "$W/signatures.jsonl" && ok "log names client and digest" || bad "log content"
# Secrets never logged.
for secret in "$TOKEN" "$TOKEN2" "$(cat "$PKI/pin.txt")"; do
	if grep -qF -- "$secret" "$W/service.log" "$W/signatures.jsonl" "$W/out" "$W/err"; then bad "a secret appears in the log"; else ok "secret not in logs"; fi
done

# Bad configs are refused with the line and reason.
printf '[service]\nlisten = 127.0.0.1:1\nbogus = 1\n' > "$W/bad1.ini"
expect_msg "unknown setting" 2 'bad1.ini:3: unknown setting .bogus. in \[service\]' "$SIGNGATE" service --config "$W/bad1.ini"
printf '[service]\nthreads = many\n' > "$W/bad2.ini"
expect_msg "bad number" 2 "bad2.ini:2: 'threads' must be a whole number" "$SIGNGATE" service --config "$W/bad2.ini"
printf '[client x]\ntoken = file:/x\nkeys = nokey\n' > "$W/bad3.ini"
expect_msg "client names unknown key" 2 "names key 'nokey'" "$SIGNGATE" service --config "$W/bad3.ini"
printf '[nonsense]\na = b\n' > "$W/bad4.ini"
expect_msg "unknown section" 2 'bad4.ini:2: unknown section \[nonsense\]' "$SIGNGATE" service --config "$W/bad4.ini"
python3 -c "print('[service]\nlisten = 127.0.0.1:1\ntls_cert = ' + 'x' * 250)" > "$W/bad6.ini"
expect_msg "line too long" 2 'bad6.ini:3: line longer than 198 characters' "$SIGNGATE" service --config "$W/bad6.ini"
printf 'garbage line\n' > "$W/bad5.ini"
expect_msg "syntax error" 2 'bad5.ini:1:' "$SIGNGATE" service --config "$W/bad5.ini"
sed "s|pin-source=file:$PKI/pin.txt|pin-value=000000|" "$W/svc.ini" | sed "s|^listen = .*|listen = 127.0.0.1:0|; s|^file = .*|file = -|" > "$W/badpin.ini"
expect_msg "wrong PIN refused at start" 2 'wrong PIN' "$SIGNGATE" service --config "$W/badpin.ini"
# logrotate: move the log away, SIGHUP, and the service writes a new one.
mv "$W/service.log" "$W/service.log.1"
kill -HUP $SVC; sleep 0.3
check "alive after SIGHUP" 200 '"ok"' "$(req "" GET /health)"
code=$(req "nope-nope-nope-nope" GET /v1/keys)
grep -q 'log file reopened' "$W/service.log" 2>/dev/null && grep -q '401' "$W/service.log" \
	&& ok "SIGHUP reopens the log" || bad "no new log after SIGHUP"
kill $SVC; wait $SVC 2>/dev/null; rc=$?
[[ $rc == 0 ]] && ok "clean stop on SIGTERM" || bad "exit $rc on SIGTERM"
summary
