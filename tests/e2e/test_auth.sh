#!/usr/bin/env bash
# Who may sign: TLS client certificates ([service] client_ca, [client]
# cert_subject / cert_fingerprint) next to bearer tokens, both required when
# a client has both; per-client digests (403) and rate (429 + Retry-After);
# refusals in the audit log; secret files open to others are refused with
# the chmod hint; no PIN or token in any log, audit record or response.
# Env: SIGNGATE, PKI, CORPUS, WORK.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
export SOFTHSM2_CONF=$PKI/softhsm2.conf
W=$WORK/auth
rm -rf "$W" && mkdir -p "$W"
MOD=/usr/lib/softhsm/libsofthsm2.so
TOKEN=$(openssl rand -hex 24); (umask 077; printf %s "$TOKEN" > "$W/token")
TOKEN2=$(openssl rand -hex 24); (umask 077; printf %s "$TOKEN2" > "$W/token2")
PIN=$(cat "$PKI/pin.txt")

# Client certificates: NAME SUBJECT CA-CERT CA-KEY [EKU] -> $W/NAME.{key,pem}
# ($W/NAME.pem holds the leaf and, for the test PKI, the intermediate).
cat > "$W/client.ext" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
EOF
client_cert() {
	local name=$1 subj=$2 ca=$3 cakey=$4
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$W/$name.key" 2>/dev/null
	openssl req -new -key "$W/$name.key" -subj "$subj" -out "$W/$name.csr" 2>/dev/null
	openssl x509 -req -in "$W/$name.csr" -CA "$ca" -CAkey "$cakey" -CAcreateserial -days 30 \
		-extfile "$W/client.ext" -out "$W/$name.leaf" 2>/dev/null
	cat "$W/$name.leaf" "$ca" > "$W/$name.pem"
}
client_cert builder "/O=signgate test/CN=builder-ci" "$PKI/int-ca.pem" "$PKI/int-ca.key"
client_cert both "/O=signgate test/CN=both-ci" "$PKI/int-ca.pem" "$PKI/int-ca.key"
client_cert fp "/O=signgate test/CN=fp-ci" "$PKI/int-ca.pem" "$PKI/int-ca.key"
client_cert nobody "/O=signgate test/CN=nobody-ci" "$PKI/int-ca.pem" "$PKI/int-ca.key"
client_cert foreign "/O=signgate test/CN=builder-ci" "$PKI/other-root.pem" "$PKI/other-root.key"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
	-subj "/O=signgate test/CN=builder-ci" -keyout "$W/self.key" -out "$W/self.pem" 2>/dev/null
[[ -s $W/builder.pem && -s $W/foreign.pem && -s $W/self.pem ]] && ok "client certificates issued" \
	|| { bad "cannot issue client certificates"; summary; exit 1; }
# The fingerprint as openssl prints it: upper case with colons (accepted).
FP=$(openssl x509 -in "$W/fp.leaf" -noout -fingerprint -sha256 | cut -d= -f2)

PORT=$(free_port)
cat > "$W/svc.ini" <<INI
[log]
file = $W/service.log
[service]
listen = 127.0.0.1:$PORT
tls_cert = $PKI/tls.pem
tls_key = $PKI/tls.key
client_ca = $PKI/root-ca.pem
audit_log = $W/audit.jsonl
threads = 2
[key rsa]
uri = pkcs11:token=signgate;object=codesign-rsa?module-path=$MOD
cert = $PKI/codesign-rsa.pem
pass = file:$PKI/pin.txt
[client certonly]
cert_subject = builder-ci
keys = rsa
digests = sha256
[client fponly]
cert_fingerprint = $FP
keys = rsa
[client both]
token = file:$W/token
cert_subject = /O=signgate test/CN=both-ci
keys = rsa
[client tok]
token = file:$W/token2
keys = rsa
rate = 1/s
burst = 2
INI
"$SIGNGATE" service --config "$W/svc.ini" > "$W/out" 2>"$W/err" &
SVC=$!
trap 'kill $SVC 2>/dev/null; wait 2>/dev/null' EXIT
for _ in $(seq 100); do grep -q '^listening' "$W/out" && break; sleep 0.1; done
grep -q '^listening' "$W/out" && ok "service starts" || { bad "service did not start: $(cat "$W/err" "$W/service.log")"; summary; exit 1; }
URL=https://127.0.0.1:$PORT

# req CERT TOKEN METHOD PATH [BODY-FILE]: prints the HTTP status; body in
# $W/body (each kept as $W/resp.N for the secret check), headers in $W/hdr.
N=0
req() {
	local cert=$1 tok=$2 method=$3 path=$4 data=${5:-}
	local args=(-s -o "$W/body" -D "$W/hdr" -w '%{http_code}' --cacert "$PKI/root-ca.pem" -X "$method")
	[[ -n $cert ]] && args+=(--cert "$W/$cert.pem" --key "$W/$cert.key")
	[[ -n $tok ]] && args+=(-H "Authorization: Bearer $tok")
	[[ -n $data ]] && args+=(-H 'Content-Type: application/json' --data-binary "@$data")
	curl "${args[@]}" "$URL$path"
	N=$((N + 1)); cp "$W/body" "$W/resp.$N" 2>/dev/null; cat "$W/hdr" >> "$W/resp.$N" 2>/dev/null
}
check() { # NAME WANT-CODE PATTERN CODE
	if [[ $4 == "$2" ]] && grep -qE -- "$3" "$W/body"; then ok "$1"; else bad "$1: got $4 $(head -c 200 "$W/body")"; fi
}
F=$CORPUS/hello64.exe
D=$("$SIGNGATE" hash "$F" | cut -d' ' -f1)
D384=$("$SIGNGATE" hash --digest sha384 "$F" | cut -d' ' -f1)
printf '{"key":"rsa","digest_algorithm":"sha256","digest":"%s","file_name":"a.exe","format":"pe"}' "$D" > "$W/s256.json"
printf '{"key":"rsa","digest_algorithm":"sha384","digest":"%s","file_name":"b.exe","format":"pe"}' "$D384" > "$W/s384.json"

# A certificate alone (subject CN, or fingerprint).
check "cert (CN): keys" 200 '"name":"rsa"' "$(req builder "" GET /v1/keys)"
check "cert (CN): sign" 200 '"signature"' "$(req builder "" POST /v1/sign "$W/s256.json")"
python3 -c 'import json,base64,sys; open(sys.argv[2],"wb").write(base64.b64decode(json.load(open(sys.argv[1]))["signature"]))' "$W/body" "$W/sig.der"
expect "cert: signature attaches" "$SIGNGATE" attach-signature "$F" --signature "$W/sig.der" -o "$W/signed.exe"
expect "cert: signature verifies" osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$W/signed.exe"
grep '"result":"granted"' "$W/audit.jsonl" | grep -q '"client":"certonly"' && ok "audit names the certificate's client" || bad "audit: no granted record for certonly"
check "cert (fingerprint): sign" 200 '"signature"' "$(req fp "" POST /v1/sign "$W/s256.json")"

# Certificates that are not good enough.
check "self-signed cert: 401" 401 'not trusted' "$(req self "" GET /v1/keys)"
check "cert from another root: 401" 401 'not trusted' "$(req foreign "" POST /v1/sign "$W/s256.json")"
cp "$PKI/codesign-soft.pem" "$W/codesign.pem"; cp "$PKI/soft.key" "$W/codesign.key"
check "codeSigning-only cert (no clientAuth): 401" 401 'not trusted' "$(req codesign "" GET /v1/keys)"
check "trusted cert of no client, no token: 401" 401 'unknown client certificate' "$(req nobody "" GET /v1/keys)"
grep -q '^WWW-Authenticate: Bearer' "$W/hdr" && ok "401 has WWW-Authenticate" || bad "401 without WWW-Authenticate"
check "no cert, no token: 401" 401 'bearer token' "$(req "" "" GET /v1/keys)"
grep '"status":401' "$W/audit.jsonl" | grep -q 'not trusted' && ok "untrusted cert refusal audited" || bad "untrusted cert refusal not in the audit log"

# A client with a token and a certificate needs both.
check "both: token alone: 401" 401 "must show its client certificate" "$(req "" "$TOKEN" POST /v1/sign "$W/s256.json")"
check "both: cert alone: 401" 401 "must send its bearer token" "$(req both "" POST /v1/sign "$W/s256.json")"
check "both: cert + token: 200" 200 '"signature"' "$(req both "$TOKEN" POST /v1/sign "$W/s256.json")"
check "cert and token of different clients: 401" 401 'not the same client' "$(req builder "$TOKEN2" GET /v1/keys)"
check "trusted unknown cert + a token-only client's token: 200" 200 '"name":"rsa"' "$(req nobody "$TOKEN2" GET /v1/keys)"

# Digests per client.
check "digest not allowed: 403" 403 "may not use digest algorithm sha384" "$(req builder "" POST /v1/sign "$W/s384.json")"
grep '"status":403' "$W/audit.jsonl" | grep -q '"client":"certonly".*sha384' && ok "digest refusal audited" || bad "digest refusal not audited"
check "other client may use sha384" 200 '"signature"' "$(req both "$TOKEN" POST /v1/sign "$W/s384.json")"

# Rate: 1/s with a burst of 2.
sleep 2.2
c1=$(req "" "$TOKEN2" POST /v1/sign "$W/s256.json"); c2=$(req "" "$TOKEN2" POST /v1/sign "$W/s256.json")
c3=$(req "" "$TOKEN2" POST /v1/sign "$W/s256.json")
[[ $c1 == 200 && $c2 == 200 ]] && ok "rate: burst of 2 granted" || bad "rate: burst got $c1 $c2"
check "rate: third request 429" 429 'over its rate limit' "$c3"
RA=$(awk -F': ' 'tolower($1) == "retry-after" {print $2}' "$W/hdr" | tr -d '\r')
[[ $RA =~ ^[0-9]+$ && $RA -ge 1 && $RA -le 2 ]] && ok "rate: Retry-After $RA" || bad "rate: Retry-After '$RA'"
grep '"status":429' "$W/audit.jsonl" | grep -q '"client":"tok"' && ok "rate refusal audited" || bad "rate refusal not audited"
sleep "${RA:-1}.1"
check "rate: granted after Retry-After" 200 '"signature"' "$(req "" "$TOKEN2" POST /v1/sign "$W/s256.json")"
check "rate of one client does not limit another" 200 '"signature"' "$(req fp "" POST /v1/sign "$W/s256.json")"
expect "audit log verifies" "$SIGNGATE" audit verify "$W/audit.jsonl"

# Secret files must be 0600 (or stricter): PIN and token.
cp "$PKI/pin.txt" "$W/pin644"; chmod 644 "$W/pin644"
sed "s|^pass = file:.*|pass = file:$W/pin644|; s|^listen = .*|listen = 127.0.0.1:0|; s|^file = .*|file = -|" "$W/svc.ini" > "$W/pin644.ini"
expect_msg "PIN file 0644: service refuses to start" 2 "pin644 is open to group or others \(mode 0644\).*chmod 600 $W/pin644" \
	"$SIGNGATE" service --config "$W/pin644.ini"
expect_msg "PIN file 0644: sign refuses" 2 "chmod 600 $W/pin644" \
	"$SIGNGATE" sign --key "pkcs11:token=signgate;object=codesign-rsa?module-path=$MOD" --pass "file:$W/pin644" \
	--cert "$PKI/codesign-rsa.pem" "$F" -o "$W/o644.exe"
cp "$W/token" "$W/token640"; chmod 640 "$W/token640"
sed "s|^token = file:$W/token\$|token = file:$W/token640|; s|^listen = .*|listen = 127.0.0.1:0|; s|^file = .*|file = -|" "$W/svc.ini" > "$W/tok640.ini"
expect_msg "token file 0640: service refuses to start" 2 "token640 is open to group or others.*chmod 600" \
	"$SIGNGATE" service --config "$W/tok640.ini"
chmod 400 "$W/pin644"
sed -i "s|^listen = .*|listen = 127.0.0.1:$(free_port)|" "$W/pin644.ini"
"$SIGNGATE" service --config "$W/pin644.ini" > "$W/out400" 2>"$W/err400" &
P400=$!
for _ in $(seq 100); do grep -q '^listening' "$W/out400" && break; sleep 0.1; done
grep -q '^listening' "$W/out400" && ok "PIN file 0400 accepted" || bad "PIN file 0400 refused: $(cat "$W/err400")"
kill $P400 2>/dev/null; wait $P400 2>/dev/null
PINVAL=$PIN expect "env: secret unchanged" "$SIGNGATE" sign --key "pkcs11:token=signgate;object=codesign-rsa?module-path=$MOD" \
	--pass env:PINVAL --cert "$PKI/codesign-rsa.pem" "$F" -o "$W/oenv.exe"

# Bad configurations.
cfg() { printf '[service]\ntls_cert = %s\ntls_key = %s\n%s\n[key rsa]\nuri = %s\ncert = %s\n[client c]\nkeys = rsa\n%s\n' \
	"$PKI/tls.pem" "$PKI/tls.key" "$1" "$PKI/soft.key" "$PKI/codesign-soft.pem" "$2" > "$W/bad.ini"; }
cfg "" "cert_subject = x"
expect_msg "cert without client_ca" 2 "no client_ca" "$SIGNGATE" service --config "$W/bad.ini"
cfg "client_ca = $PKI/root-ca.pem" "cert_fingerprint = abcd"
expect_msg "short fingerprint" 2 "cert_fingerprint must be" "$SIGNGATE" service --config "$W/bad.ini"
cfg "" "token = file:$W/token
rate = 5/fortnight"
expect_msg "bad rate" 2 "bad.ini:11: rate must be N/s" "$SIGNGATE" service --config "$W/bad.ini"
cfg "" "token = file:$W/token
digests = sha256, md5"
expect_msg "bad digest name" 2 "bad.ini:11: digests: unknown digest algorithm 'md5'" "$SIGNGATE" service --config "$W/bad.ini"
cfg "" ""
expect_msg "client with no credential" 2 "needs 'token', 'cert_subject' or 'cert_fingerprint'" "$SIGNGATE" service --config "$W/bad.ini"
cfg "client_ca = /nonexistent.pem" "token = file:$W/token"
sed -i "1a listen = 127.0.0.1:0" "$W/bad.ini"
expect_msg "unreadable client_ca" 2 "client CA certificates /nonexistent.pem" "$SIGNGATE" service --config "$W/bad.ini"

# No secret anywhere: logs, audit log, responses.
kill $SVC; wait $SVC 2>/dev/null
leaks=0
for secret in "$TOKEN" "$TOKEN2" "$PIN"; do
	grep -qrF -- "$secret" "$W/service.log" "$W/audit.jsonl" "$W/out" "$W/err" "$W"/resp.* && leaks=$((leaks + 1))
done
[[ $leaks == 0 && -s $W/service.log && -s $W/audit.jsonl ]] && ok "no PIN or token in logs, audit log or responses" || bad "$leaks secrets leaked"
summary
