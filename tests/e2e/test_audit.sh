#!/usr/bin/env bash
# The audit log of the signing service: granted and refused requests to
# /v1/sign and /tsa each give one line with the right fields, in the
# canonical form, chained by SHA-256; `signgate audit verify` accepts the
# chain and names the first bad line when one is changed, removed, inserted
# or swapped, or the last is cut off; a restart continues the chain; a log
# whose last line is cut off stops the service at start (and the advice it
# gives works); tokens and PINs never reach the log; on a full filesystem
# signing gets 503 and no signature, and the chain stays whole.
# Env: SIGNGATE, PKI, CORPUS, WORK.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
export SOFTHSM2_CONF=$PKI/softhsm2.conf
W=$WORK/audit
FULL=$W/full
mountpoint -q "$FULL" 2>/dev/null && umount "$FULL"
rm -rf "$W" && mkdir -p "$W"
MOD=/usr/lib/softhsm/libsofthsm2.so
TOKEN=$(openssl rand -hex 24); printf %s "$TOKEN" > "$W/token"; chmod 600 "$W/token"
TOKEN2=$(openssl rand -hex 24); printf %s "$TOKEN2" > "$W/token2"; chmod 600 "$W/token2"
WRONG=$(openssl rand -hex 24)    # a token no client has: must not be logged either
A=$W/audit.jsonl

# conf NAME LOG-SETTING: $W/NAME.ini, listening on a free port (in $W/NAME.port).
conf() {
	local port; port=$(free_port); echo "$port" > "$W/$1.port"
	cat > "$W/$1.ini" <<INI
[log]
file = $W/$1.log
[service]
listen = 127.0.0.1:$port
tls_cert = $PKI/tls.pem
tls_key = $PKI/tls.key
$2
tsa_key = tsa
[key rsa]
uri = pkcs11:token=signgate;object=codesign-rsa?module-path=$MOD&pin-source=file:$PKI/pin.txt
cert = $PKI/codesign-rsa.pem
[key tsa]
uri = pkcs11:token=signgate;object=tsa?module-path=$MOD
cert = $PKI/tsa.pem
pass = file:$PKI/pin.txt
[client builder]
token = file:$W/token
keys = rsa
[client limited]
token = file:$W/token2
INI
}

SVC=
stop() { [[ -n $SVC ]] && kill "$SVC" 2>/dev/null && wait "$SVC" 2>/dev/null; SVC=; }
cleanup() { stop; mountpoint -q "$FULL" 2>/dev/null && umount "$FULL"; }
trap cleanup EXIT
# start NAME: runs the service on $W/NAME.ini; URL is set; non-zero if it does not come up.
start() {
	"$SIGNGATE" service --config "$W/$1.ini" > "$W/$1.out" 2> "$W/$1.err" &
	SVC=$!
	URL=https://127.0.0.1:$(cat "$W/$1.port")
	for _ in $(seq 100); do grep -q '^listening' "$W/$1.out" && return 0; sleep 0.1; done
	return 1
}

# req TOKEN METHOD PATH [BODY-FILE]: prints the HTTP status; body in $W/body.
req() {
	local tok=$1 method=$2 path=$3 data=${4:-}
	local args=(-s -o "$W/body" -w '%{http_code}' --cacert "$PKI/root-ca.pem" -X "$method")
	[[ -n $tok ]] && args+=(-H "Authorization: Bearer $tok")
	[[ -n $data ]] && args+=(-H 'Content-Type: application/json' --data-binary "@$data")
	curl "${args[@]}" "$URL$path"
}
json() { printf '%s' "$1" > "$W/req.json"; echo "$W/req.json"; }
# tsa QUERY-FILE [CONTENT-TYPE]: POSTs to /tsa; prints the HTTP status; body in $W/body.
tsa() {
	curl -s -o "$W/body" -w '%{http_code}' --cacert "$PKI/root-ca.pem" \
		-H "Content-Type: ${2:-application/timestamp-query}" --data-binary "@$1" "$URL/tsa"
}
lines() { wc -l < "${1:-$A}"; }

# rec NAME [N] EXPECT...: line N (default: the last) of the audit log has
# these fields: KEY=JSON (equal) or KEY~REGEX (a string matching).
rec() {
	local name=$1 n; shift
	if [[ ${1:-} =~ ^[0-9]+$ ]]; then n=$1; shift; else n=$(lines); fi
	local out
	if out=$(python3 - "$A" "$n" "$@" <<'PY'
import json, re, sys
line = open(sys.argv[1], 'rb').read().split(b'\n')[int(sys.argv[2]) - 1]
r = json.loads(line)
bad = []
for e in sys.argv[3:]:
    m = re.match(r'([a-z_]+)([=~])(.*)$', e, re.S)
    k, op, want = m.groups()
    v = r.get(k, 'MISSING')
    if op == '=' and v != json.loads(want):
        bad.append('%s is %r, wanted %s' % (k, v, want))
    if op == '~' and not (isinstance(v, str) and re.search(want, v)):
        bad.append('%s is %r, wanted ~ %s' % (k, v, want))
print('; '.join(bad))
sys.exit(1 if bad else 0)
PY
	); then ok "$name"; else bad "$name (line $n): $out"; fi
}

conf main "audit_log = $A"
start main && ok "service starts with audit_log" || { bad "service did not start: $(cat "$W/main.err" "$W/main.log")"; summary; exit 1; }
grep -q "audit log $A: empty, the chain starts at seq 1" "$W/main.log" && ok "start: new chain logged" || bad "start: no audit line in the log"

F=$CORPUS/hello64.exe
D=$("$SIGNGATE" hash "$F" | cut -d' ' -f1)
SIGN_RSA="{\"key\":\"rsa\",\"digest_algorithm\":\"sha256\",\"digest\":\"$D\",\"file_name\":\"hello64.exe\",\"format\":\"pe\"}"

# --- granted and refused requests, one line each -----------------------------------
code=$(req "$TOKEN" POST /v1/sign "$(json "$SIGN_RSA")")
[[ $code == 200 ]] && ok "sign: 200" || bad "sign: $code $(cat "$W/body")"
RID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["request_id"])' "$W/body" 2>/dev/null)
[[ $(lines) == 1 ]] && ok "one line per granted request" || bad "$(lines) lines after one request"
rec "granted: fields" seq=1 prev="\"$(printf '0%.0s' $(seq 64))\"" kind='"sign"' result='"granted"' \
	status=200 client='"builder"' key='"rsa"' file_name='"hello64.exe"' digest_algorithm='"sha256"' \
	digest="\"$D\"" reason=null request_id="\"$RID\"" 'peer~^127\.0\.0\.1:[0-9]+$' \
	'time~^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$'

code=$(req "" POST /v1/sign "$(json "$SIGN_RSA")")
[[ $code == 401 ]] && ok "no token: 401" || bad "no token: $code"
rec "no token: refused, client null, body not read" seq=2 kind='"sign"' result='"refused"' status=401 \
	client=null key=null file_name=null 'reason~bearer token'
code=$(req "$WRONG" POST /v1/sign "$(json "$SIGN_RSA")")
rec "unknown token: refused 401" seq=3 status=401 client=null result='"refused"'
code=$(req "$TOKEN" POST /v1/sign "$(json "{\"key\":\"nope\",\"digest_algorithm\":\"sha256\",\"digest\":\"$D\",\"file_name\":\"x.exe\",\"format\":\"pe\"}")")
rec "unknown key: refused 404 with the request's fields" seq=4 status=404 client='"builder"' key='"nope"' \
	file_name='"x.exe"' digest="\"$D\"" 'reason~no key named'
code=$(req "$TOKEN2" POST /v1/sign "$(json "$SIGN_RSA")")
rec "forbidden key: refused 403" seq=5 status=403 client='"limited"' key='"rsa"' 'reason~may not use key'
code=$(req "$TOKEN" POST /v1/sign "$(json "{\"key\":\"rsa\",\"digest_algorithm\":\"sha256\",\"digest\":\"abcd\",\"file_name\":\"y.exe\",\"format\":\"pe\"}")")
rec "bad digest: refused 400, digest as sent" seq=6 status=400 digest='"abcd"' "reason~field 'digest'"
code=$(req "$TOKEN" GET /v1/sign)
rec "GET on /v1/sign: refused 405" seq=7 status=405 client='"builder"' 'reason~use POST'
printf '{"key":"rsa"}' > "$W/cl.json"
curl -s -o /dev/null --cacert "$PKI/root-ca.pem" -H "Authorization: Bearer $TOKEN" \
	-H 'Content-Length: 13' -H 'Content-Length: 5' --data-binary "@$W/cl.json" "$URL/v1/sign"
rec "conflicting Content-Length: refused 400" seq=8 status=400 kind='"sign"' 'reason~conflicting'
NAME=$(printf 'caf\303\251 "x".exe')
code=$(req "$TOKEN" POST /v1/sign "$(json "{\"key\":\"rsa\",\"digest_algorithm\":\"sha256\",\"digest\":\"$D\",\"file_name\":\"caf\u00e9 \\\"x\\\".exe\",\"format\":\"pe\"}")")
[[ $code == 200 ]] && ok "sign (UTF-8 file name): 200" || bad "UTF-8 file name: $code"
rec "UTF-8 and quotes in file_name kept exactly" seq=9 result='"granted"' file_name="$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$NAME")"
n=$(lines)
req "$TOKEN" GET /v1/keys > /dev/null; req "" GET /health > /dev/null; req "$TOKEN" GET /v2/x > /dev/null
req "" GET /v1/keys > /dev/null
[[ $(lines) == "$n" ]] && ok "keys, health and unknown paths are not audited" || bad "$(( $(lines) - n )) lines for non-signing requests"

# Timestamps: granted, rejected (RFC 3161 rejection, HTTP 200), and a 415.
printf 'audit test data\n' > "$W/data"
openssl ts -query -data "$W/data" -sha256 -cert -out "$W/ok.tsq" 2>/dev/null
code=$(tsa "$W/ok.tsq")
SERIAL=$(openssl ts -reply -in "$W/body" -text 2>/dev/null | sed -n 's/^Serial number: 0x//p' | tr A-F a-f)
[[ $code == 200 && -n $SERIAL ]] && ok "timestamp: 200" || bad "timestamp: $code"
rec "timestamp granted: fields" seq=10 kind='"timestamp"' result='"granted"' status=200 client=null \
	key='"tsa"' digest_algorithm='"sha256"' digest="\"$(sha256sum "$W/data" | cut -d' ' -f1)\"" \
	"serial~(?i)^0*${SERIAL#"${SERIAL%%[!0]*}"}\$" reason=null file_name=null
openssl ts -query -data "$W/data" -sha256 -tspolicy 1.2.3.4 -out "$W/pol.tsq" 2>/dev/null
code=$(tsa "$W/pol.tsq")
rec "timestamp rejected: refused with failInfo" seq=11 kind='"timestamp"' result='"refused"' status=200 \
	'reason~failInfo.*policy 1.2.3.4' serial=null
code=$(tsa "$W/ok.tsq" text/plain)
rec "timestamp wrong content type: refused 415" seq=12 kind='"timestamp"' status=415 result='"refused"'

# Every line: exactly the documented fields, in the canonical form.
out=$(python3 - "$A" <<'PY'
import json, re, sys
want = {'seq', 'time', 'request_id', 'client', 'peer', 'kind', 'key', 'file_name',
        'digest_algorithm', 'digest', 'result', 'status', 'reason', 'prev'}
for i, line in enumerate(open(sys.argv[1], 'rb').read().split(b'\n')[:-1], 1):
    r = json.loads(line)
    keys = want | ({'serial'} if r['kind'] == 'timestamp' else set())
    if set(r) != keys:
        print('line %d: fields %s' % (i, sorted(set(r) ^ keys))); break
    canon = json.dumps(r, sort_keys=True, separators=(',', ':'), ensure_ascii=True).encode()
    if re.sub(rb'\\u[0-9A-F]{4}', lambda m: m.group(0).lower(), line) != canon:
        print('line %d: not canonical' % i); break
PY
)
[[ -z $out ]] && ok "every line has the documented fields, canonical form" || bad "$out"

# --- the chain verifies --------------------------------------------------------------
N=$(lines)
LAST=$(tail -n 1 "$A" | tr -d '\n' | sha256sum | cut -d' ' -f1)
expect_msg "audit verify: intact" 0 "^audit log intact: $N records, last seq $N, last hash $LAST\$" "$SIGNGATE" audit verify "$A"
out=$("$SIGNGATE" audit verify --json "$A")
python3 -c 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if j["intact"] and j["records"]==int(sys.argv[2]) and j["last_hash"]==sys.argv[3] else 1)' "$out" "$N" "$LAST" \
	&& ok "audit verify --json: intact" || bad "audit verify --json: $out"
: > "$W/empty.jsonl"
expect_msg "empty log: intact, 0 records" 0 'intact: 0 records, last seq 0, last hash 0{64}$' "$SIGNGATE" audit verify "$W/empty.jsonl"

# --- tampering, each named at the right line -------------------------------------------
# tamper MODE K: $W/t.jsonl is the log with line K changed in one byte, deleted, ...
tamper() {
	python3 - "$A" "$W/t.jsonl" "$1" "$2" <<'PY'
import sys
src, dst, mode, k = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
data = open(src, 'rb').read()
L = data.split(b'\n')[:-1]
if mode == 'byte':       # one hex digit of the request id, still valid JSON
    i = L[k - 1].index(b'"request_id":"') + 14
    b = L[k - 1]
    L[k - 1] = b[:i] + (b'1' if b[i:i + 1] != b'1' else b'2') + b[i + 1:]
elif mode == 'delete':
    del L[k - 1]
elif mode == 'insert':   # a copy of line 2 becomes line K
    L.insert(k - 1, L[1])
elif mode == 'swap':     # lines K and K+1
    L[k - 1], L[k] = L[k], L[k - 1]
elif mode == 'json':     # a byte that breaks the JSON
    L[k - 1] = L[k - 1][:-1]
out = b''.join(l + b'\n' for l in L)
if mode == 'truncate':   # the last line cut off mid-way (a crash while writing)
    out = data[:-20]
open(dst, 'wb').write(out)
PY
}
tamper byte 4
expect_msg "one byte changed in line 4: named at line 5" 1 '^audit log BROKEN: line 5: prev does not match line 4 \(line 4 was changed, or a line was removed or inserted before 5\)' "$SIGNGATE" audit verify "$W/t.jsonl"
tamper byte 1
expect_msg "one byte changed in line 1: named at line 2" 1 'line 2: prev does not match line 1' "$SIGNGATE" audit verify "$W/t.jsonl"
tamper delete 6
expect_msg "line 6 deleted: named at line 6" 1 'line 6: seq 7 follows seq 5: 1 record\(s\) missing before line 6' "$SIGNGATE" audit verify "$W/t.jsonl"
tamper delete 1
expect_msg "line 1 deleted: named at line 1" 1 'line 1: the log does not start at its first record' "$SIGNGATE" audit verify "$W/t.jsonl"
tamper insert 7
expect_msg "a line inserted as line 7: named at line 7" 1 'line 7: seq 2 follows seq 6: line 7 was inserted or moved here' "$SIGNGATE" audit verify "$W/t.jsonl"
tamper swap 3
expect_msg "lines 3 and 4 swapped: named at line 3" 1 'line 3: seq 4 follows seq 2' "$SIGNGATE" audit verify "$W/t.jsonl"
tamper truncate 0
expect_msg "last line cut off: named" 1 "line $N: incomplete: no newline" "$SIGNGATE" audit verify "$W/t.jsonl"
tamper json 5
expect_msg "line 5 no longer JSON: named" 1 'line 5: not valid JSON' "$SIGNGATE" audit verify "$W/t.jsonl"
"$SIGNGATE" audit verify "$W/t.jsonl" > "$W/v.out"
grep -q '^intact before line 5: 4 records, last seq 4' "$W/v.out" && ok "broken: the intact part is reported" || bad "broken output: $(cat "$W/v.out")"
# A changed line shows at the next one, whose prev no longer matches: either
# may be the changed one, so neither counts as intact.
tamper byte 4
"$SIGNGATE" audit verify "$W/t.jsonl" > "$W/v.out"
grep -q '^intact before line 4: 3 records, last seq 3' "$W/v.out" && ok "line 4 changed: intact before line 4" || bad "line 4 changed: $(cat "$W/v.out")"
tamper swap 3
out=$("$SIGNGATE" audit verify --json "$W/t.jsonl"); rc=$?
python3 -c 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if not j["intact"] and j["line"]==3 and j["records"]==2 else 1)' "$out" \
	&& [[ $rc == 1 ]] && ok "audit verify --json: broken at line 3" || bad "audit verify --json (broken): $rc $out"
expect_msg "verify: missing file is exit 2" 2 'cannot open' "$SIGNGATE" audit verify "$W/nonexistent.jsonl"
expect_msg "verify: no file is exit 2" 2 'give exactly one audit log' "$SIGNGATE" audit verify
expect_msg "audit: unknown subcommand is exit 2" 2 'unknown subcommand' "$SIGNGATE" audit check "$A"
expect_msg "audit verify --help" 0 '^Usage: signgate audit verify' "$SIGNGATE" audit verify --help
expect_msg "audit --help" 0 '^Usage: signgate audit verify' "$SIGNGATE" audit --help

# --- restart: the chain goes on ---------------------------------------------------------
stop
grep -q "audit log $A closed: last seq $N, hash $LAST" "$W/main.log" && ok "stop: last seq and hash logged" || bad "stop: no closing audit line"
start main || bad "restart failed: $(cat "$W/main.err")"
grep -q "the chain goes on after seq $N, hash $LAST" "$W/main.log" && ok "restart: continues after seq $N" || bad "restart: no continuation line"
code=$(req "$TOKEN" POST /v1/sign "$(json "$SIGN_RSA")")
[[ $code == 200 ]] && ok "sign after restart: 200" || bad "sign after restart: $code"
rec "first line after restart: next seq, prev = hash of the last" seq=$((N + 1)) prev="\"$LAST\"" result='"granted"'
code=$(req "" POST /v1/sign "$(json "$SIGN_RSA")")
expect_msg "audit verify across the restart" 0 "intact: $((N + 2)) records, last seq $((N + 2))" "$SIGNGATE" audit verify "$A"

# --- secrets ----------------------------------------------------------------------------
for secret in "$TOKEN" "$TOKEN2" "$WRONG" "$(cat "$PKI/pin.txt")"; do
	if grep -qF -- "$secret" "$A"; then bad "a token or the PIN appears in the audit log"; else ok "secret not in the audit log"; fi
done
grep -qiE 'authorization|bearer [0-9a-f]{16}' "$A" && bad "Authorization header in the audit log" || ok "no Authorization header in the audit log"
stop

# --- a log whose last line was cut off: no start, and the advice works ---------------------
head -c -20 "$A" > "$W/cut.jsonl"
conf cut "audit_log = $W/cut.jsonl"
expect_msg "cut-off last line: the service refuses to start" 2 "its last line \(at byte [0-9]+\) is incomplete.*truncate -s [0-9]+ $W/cut.jsonl" \
	"$SIGNGATE" service --config "$W/cut.ini"
at=$(grep -o 'truncate -s [0-9]*' "$W/cut.log" | head -1 | cut -d' ' -f3)
truncate -s "$at" "$W/cut.jsonl"
start cut && ok "after cutting the bad line off as advised, it starts" || bad "no start after truncate -s $at: $(tail -2 "$W/cut.log")"
code=$(req "$TOKEN" POST /v1/sign "$(json "$SIGN_RSA")")
A=$W/cut.jsonl
expect_msg "and the chain verifies" 0 "intact: $((N + 2)) records" "$SIGNGATE" audit verify "$A"
stop
printf '{"seq":1,"prev":"zz"}\n' > "$W/junk.jsonl"
conf junk "audit_log = $W/junk.jsonl"
expect_msg "last line no audit record: refuses to start" 2 "its last line \(at byte 0\) is no audit record: no 'prev'" \
	"$SIGNGATE" service --config "$W/junk.ini"
conf both "audit_log = $W/a.jsonl
sign_log = $W/b.jsonl"
expect_msg "audit_log and sign_log both: refused" 2 "given twice \(sign_log is the old name of audit_log\)" \
	"$SIGNGATE" service --config "$W/both.ini"

# --- a full filesystem: 503, no signature, chain whole ----------------------------------------
mkdir -p "$FULL"
if ! mount -t tmpfs -o size=64k tmpfs "$FULL" 2>/dev/null; then
	echo "note: cannot mount a tmpfs here (not root?); full-disk checks skipped"
else
	A=$FULL/audit.jsonl
	conf full "sign_log = $A"     # the old name still works
	start full && ok "service with sign_log (old name) starts" || bad "service on tmpfs: $(cat "$W/full.err")"
	grep -q 'sign_log is the old name of audit_log' "$W/full.log" && ok "sign_log: deprecation warning" || bad "no warning for sign_log"
	code=$(req "$TOKEN" POST /v1/sign "$(json "$SIGN_RSA")")
	[[ $code == 200 ]] && ok "tmpfs: sign before it is full: 200" || bad "tmpfs sign: $code"
	dd if=/dev/zero of="$FULL/fill" bs=1k count=1000 2>/dev/null
	# The log's last page may still hold a few lines: sign until refused.
	granted=1 refused=0 leaked=0
	for _ in $(seq 40); do
		code=$(req "$TOKEN" POST /v1/sign "$(json "$SIGN_RSA")")
		if [[ $code == 200 ]]; then granted=$((granted + 1)); continue; fi
		[[ $code == 503 ]] && refused=1
		grep -q '"signature"' "$W/body" && leaked=1
		break
	done
	[[ $refused == 1 ]] && ok "full disk: signing refused with 503" || bad "full disk: got $code after $granted signatures"
	[[ $leaked == 0 ]] && grep -q 'audit log cannot be written, so no signature' "$W/body" \
		&& ok "full disk: no signature returned, reason given" || bad "full disk answer: $(head -c 300 "$W/body")"
	[[ $(grep -c '"result":"granted"' "$A") == "$granted" ]] && ok "every signature returned has its line ($granted)" \
		|| bad "$(grep -c '"result":"granted"' "$A") granted lines for $granted signatures"
	grep -q 'audit record of request [0-9a-f]* (sign, granted) NOT written' "$W/full.log" && ok "full disk: logged as an error" || bad "full disk: no error in the log"
	expect_msg "full disk: the chain stays whole (no partial line)" 0 'audit log intact' "$SIGNGATE" audit verify "$A"
	rm -f "$FULL/fill"
	code=$(req "$TOKEN" POST /v1/sign "$(json "$SIGN_RSA")")
	[[ $code == 200 ]] && ok "space again: signing works" || bad "after freeing space: $code"
	expect_msg "space again: the chain verifies" 0 'audit log intact' "$SIGNGATE" audit verify "$A"
	stop
	umount "$FULL" && ok "tmpfs unmounted" || bad "umount $FULL failed"
fi
summary
