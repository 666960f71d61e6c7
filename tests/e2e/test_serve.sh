#!/usr/bin/env bash
# test_serve.sh - end-to-end tests of the download server (`signgate serve`)
# with the real signing service (`signgate service`, key in SoftHSM2):
# every PE of the corpus downloaded signed and checked by osslsigncode and
# sbverify; single flight (50 concurrent downloads of 3 new files make
# exactly 3 signing requests); sign once, serve many (also after a
# restart); service down (refuse -> 503, serve-unsigned -> original bytes);
# path traversal and symbolic links; non-PE files, HEAD, ranges; a file
# changed in place; a corrupt PE; a wrong token, a wrong CA, a proxy; the
# custom method (local key); bad configurations.
#
# Env: SIGNGATE (build/signgate), PKI (tests/setup/make-pki.sh), CORPUS
# (tests/setup/make-corpus.sh), WORK (scratch).  Servers listen on port 0
# of 127.0.0.1 and the tests read the port they print.  With a sanitizer
# build, anything ASan/UBSan/LSan reports on a server's stderr is a failure.
set -euo pipefail

: "${SIGNGATE:?set SIGNGATE to the signgate binary}" "${PKI:?set PKI}" "${CORPUS:?set CORPUS}" "${WORK:?set WORK}"
export SOFTHSM2_CONF=$PKI/softhsm2.conf
# curl must reach 127.0.0.1 directly whatever the environment says.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy='*'

W=$WORK/serve
rm -rf "$W" && mkdir -p "$W"
T0=$SECONDS
. "$(dirname "$0")/../lib.sh"
trap kill_started EXIT
# check NAME CMD...: CMD must succeed.
check() {
	local name=$1 out; shift
	if out=$("$@" 2>&1); then ok "$name"; else bad "$name: $*"; sed 's/^/     /' <<<"$out" | tail -n 5; fi
}

# signed_ok NAME FILE ORIG [nosb]: FILE is validly signed by our key and
# carries ORIG's Authenticode digest (so it is ORIG, signed).  sbverify
# knows SHA-256 only: "nosb" skips it.
signed_ok() {
	local name=$1 f=$2 orig=$3 nosb=${4:-} out
	if ! out=$(osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$f" 2>&1); then
		bad "$name: osslsigncode verify"; sed 's/^/     /' <<<"$out" | grep -iE 'fail|error|mismatch' | head -n 3
		return
	fi
	if [[ -z $nosb ]] && ! out=$(sbverify --cert "$PKI/codesign-rsa.pem" "$f" 2>&1); then
		bad "$name: sbverify: $out"; return
	fi
	if [[ $("$SIGNGATE" hash "$f" | cut -d' ' -f1) != $("$SIGNGATE" hash "$orig" | cut -d' ' -f1) ]]; then
		bad "$name: the signed copy's digest differs from the original's"; return
	fi
	ok "$name"
}

# sign_count NAME: signatures the service granted for file_name NAME.
sign_count() { grep -F "\"$1\"" "$W/service.jsonl" | grep -c '"result":"granted"' || true; }

# ------------------------------------------------------------------ fixtures

ROOT=$W/root
mkdir -p "$ROOT/corpus" "$ROOT/my app" "$W/dl"
PES=()
while IFS=$'\t' read -r name kind; do
	[[ -z $name || $name == \#* ]] && continue
	cp "$CORPUS/$name" "$ROOT/corpus/$name"
	PES+=("$name")
done <"$CORPUS/MANIFEST"
cp "$CORPUS/hello64.exe" "$ROOT/conc1.exe"
cp "$CORPUS/zlib1-64.dll" "$ROOT/conc2.exe"
cp "$CORPUS/hello64.efi" "$ROOT/conc3.exe"
cp "$CORPUS/hello64.exe" "$ROOT/fresh1.exe"
cp "$CORPUS/hello32.exe" "$ROOT/fresh2.exe"
cp "$CORPUS/hello64.exe" "$ROOT/mod.exe"
cp "$CORPUS/hello32.dll" "$ROOT/my app/hello \"world\".dll"
cp "$CORPUS/hello64.dll" "$ROOT/my app/caf$(printf '\303\251').dll"
printf 'just text\n' >"$ROOT/readme.txt"
head -c 300000 /dev/urandom >"$ROOT/data.bin"
{ printf 'MZ'; head -c 200 /dev/zero; } >"$ROOT/bad.exe"   # e_lfanew 0: corrupt PE
printf 'hidden\n' >"$ROOT/.secret"
ln -s /etc/passwd "$ROOT/passwd"
ln -s /etc "$ROOT/etc"
ln -s corpus/hello64.exe "$ROOT/inside.exe"
mkfifo "$ROOT/fifo.exe"

TOKEN=tok-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$TOKEN" >"$W/token"
printf 'wrong-token-0123456789abcdef\n' >"$W/badtoken"
chmod 600 "$W/token" "$W/badtoken"
MOD=/usr/lib/softhsm/libsofthsm2.so
RSA_URI="pkcs11:token=signgate;object=codesign-rsa?module-path=$MOD&pin-source=file:$PKI/pin.txt"

service_ini service
start service "$SIGNGATE" service --config "$W/service.ini"
SVC_URL=$URL SVC_PID=$PID

# serve_ini NAME [KEY=VALUE...]: a [serve] config using the service, with
# these settings changed or added.  Logs to $W/NAME.log.
serve_ini() {
	local name=$1 kv k; shift
	local -A v=([root]=$ROOT [cache_dir]=$W/cache-$name [threads]=8 [service_url]=$SVC_URL
		[service_ca]=$PKI/root-ca.pem [service_token]=file:$W/token [service_key]=codesign
		[program_name]="signgate test" [program_url]=https://example.com/
		[connect_timeout]=2 [timeout]=10 [retries]=1)
	for kv in "$@"; do v[${kv%%=*}]=${kv#*=}; done
	{
		printf '[log]\nfile = %s\n[serve]\n' "$W/$name.log"
		for k in "${!v[@]}"; do printf '%s = %s\n' "$k" "${v[$k]}"; done
	} >"$W/$name.ini"
}

serve_ini a
start a "$SIGNGATE" serve --config "$W/a.ini" --listen 127.0.0.1:0
A=$URL A_PID=$PID

# ------------------------------------------------------------------ corpus

for name in "${PES[@]}"; do
	code=$(get "$A/download/corpus/$name" "$W/dl/$name")
	if [[ $code != 200 ]]; then bad "corpus $name: HTTP $code: $(head -c 200 "$W/dl/$name")"; continue; fi
	signed_ok "corpus $name: signed and valid" "$W/dl/$name" "$CORPUS/$name"
done
n=$(grep -E '"file_name": *"corpus/' "$W/service.jsonl" | grep -c '"result":"granted"' || true)
[[ $n -eq ${#PES[@]} ]] && ok "one signing request per corpus file" || bad "corpus: $n signing requests for ${#PES[@]} files"

# Sign once, serve many: a second download is the cached copy, byte for byte.
code=$(get "$A/download/corpus/hello64.exe" "$W/dl/again.exe")
[[ $code == 200 ]] && cmp -s "$W/dl/again.exe" "$W/dl/hello64.exe" && [[ $(sign_count corpus/hello64.exe) -eq 1 ]] \
	&& ok "second download: same bytes, no new signature" || bad "second download: HTTP $code or not the cached copy"
grep -q 'GET "/download/corpus/hello64.exe" .*signed: cached' "$W/a.log" \
	&& ok "log: cached delivery" || bad "log: no 'signed: cached' line"

# ------------------------------------------------------------------ single flight

mkdir -p "$W/conc"
export A W
seq 1 50 | xargs -P 50 -I{} sh -c 'i={}; k=$((i % 3 + 1)); curl -s -o "$W/conc/c$k.$i" -w "%{http_code}\n" "$A/download/conc$k.exe"' \
	>"$W/conc/codes" || true
n200=$(grep -c '^200$' "$W/conc/codes" || true)
[[ $n200 -eq 50 ]] && ok "50 concurrent downloads: all 200" || bad "concurrent downloads: $n200 of 50 got 200"
for k in 1 2 3; do
	c=$(sign_count "conc$k.exe")
	[[ $c -eq 1 ]] && ok "conc$k.exe: exactly one signing request" || bad "conc$k.exe: $c signing requests (want 1)"
done
src=("" "$CORPUS/hello64.exe" "$CORPUS/zlib1-64.dll" "$CORPUS/hello64.efi")
same=1
for k in 1 2 3; do
	ref=
	for f in "$W/conc/c$k".*; do
		[[ -z $ref ]] && ref=$f
		cmp -s "$f" "$ref" || same=0
	done
	signed_ok "conc$k.exe: valid" "$ref" "${src[$k]}"
done
[[ $same -eq 1 ]] && ok "concurrent downloads of one file are identical" || bad "concurrent downloads differ"

# ------------------------------------------------------------------ plain files, HEAD, ranges, listing

code=$(get "$A/download/readme.txt" "$W/dl/readme.txt")
[[ $code == 200 ]] && cmp -s "$W/dl/readme.txt" "$ROOT/readme.txt" && ok "non-PE text served unchanged" || bad "readme.txt: HTTP $code or changed"
code=$(get "$A/download/data.bin" "$W/dl/data.bin")
[[ $code == 200 ]] && cmp -s "$W/dl/data.bin" "$ROOT/data.bin" && ok "non-PE binary served unchanged" || bad "data.bin: HTTP $code or changed"
len=$(curl -sI "$A/download/data.bin" | tr -d '\r' | sed -n 's/^Content-Length: //Ip') || true
[[ $len == 300000 ]] && ok "HEAD non-PE: Content-Length" || bad "HEAD data.bin: Content-Length '$len'"
len=$(curl -sI "$A/download/corpus/hello64.exe" | tr -d '\r' | sed -n 's/^Content-Length: //Ip') || true
[[ $len == $(stat -c %s "$W/dl/hello64.exe") ]] && ok "HEAD PE: Content-Length of the signed copy" || bad "HEAD hello64.exe: Content-Length '$len'"
# Two HEADs on one connection: a body after the first would garble the second.
n=$(curl -s -I "$A/download/readme.txt" -I "$A/download/corpus/hello64.exe" | grep -c '^HTTP/1.1 200') || true
[[ $n -eq 2 ]] && ok "HEAD sends no body (keep-alive intact)" || bad "two HEADs on one connection: $n answers"
hdr=$(curl -sI "$A/download/corpus/hello64.exe" | tr -d '\r') || true
grep -qi '^Content-Type: application/vnd.microsoft.portable-executable' <<<"$hdr" && grep -qi '^Content-Disposition: attachment; filename="hello64.exe"' <<<"$hdr" \
	&& ok "PE headers: Content-Type, Content-Disposition" || bad "PE headers: $hdr"
hdr=$(curl -sI "$A/download/my%20app/hello%20%22world%22.dll" | tr -d '\r') || true
grep -qF 'filename="hello \"world\".dll"' <<<"$hdr" && ok "Content-Disposition escapes quotes" || bad "disposition: $hdr"
hdr=$(curl -sI "$A/download/my%20app/caf%C3%A9.dll" | tr -d '\r') || true
grep -qF "filename*=UTF-8''caf%C3%A9.dll" <<<"$hdr" && ok "Content-Disposition: RFC 8187 name for UTF-8" || bad "UTF-8 disposition: $hdr"
code=$(curl -s -o "$W/dl/range" -w '%{http_code}' -r 100-199 "$A/download/corpus/hello64.exe")
[[ $code == 206 ]] && cmp -s "$W/dl/range" <(tail -c +101 "$W/dl/hello64.exe" | head -c 100) && ok "range 100-199: 206 and the right bytes" || bad "range: HTTP $code"
code=$(curl -s -o "$W/dl/range" -w '%{http_code}' -r -50 "$A/download/data.bin")
[[ $code == 206 ]] && cmp -s "$W/dl/range" <(tail -c 50 "$ROOT/data.bin") && ok "suffix range -50" || bad "suffix range: HTTP $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -r 999999999- "$A/download/data.bin")
[[ $code == 416 ]] && ok "unsatisfiable range: 416" || bad "unsatisfiable range: HTTP $code"
code=$(get "$A/download/" "$W/dl/list")
[[ $code == 200 ]] && grep -q '"readme.txt"' "$W/dl/list" && ! grep -q secret "$W/dl/list" && ok "listing (no hidden files)" || bad "listing: HTTP $code"
[[ $(get "$A/health" "$W/dl/health") == 200 ]] && grep -q '"ok"' "$W/dl/health" && ok "/health" || bad "/health"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$A/download/readme.txt")
[[ $code == 405 ]] && ok "POST: 405" || bad "POST: HTTP $code"
[[ $(get "$A/download/nothing.exe" /dev/null) == 404 ]] && ok "missing file: 404" || bad "missing file"
[[ $(get "$A/download/.secret" /dev/null) == 404 ]] && ok "hidden file: 404" || bad "hidden file served"
[[ $(get "$A/download/fifo.exe" /dev/null) == 404 ]] && ok "FIFO: 404 (and no hang)" || bad "FIFO"

# ------------------------------------------------------------------ path traversal

for p in '/download/../x' '/download/../../../../etc/passwd' '/download/%2e%2e/x' '/download/%2E%2E/%2E%2E/etc/passwd' \
	'/download/..%2fx' '/download/..%2f..%2f..%2fetc%2fpasswd' '/download/.%2e/x' '/download/%252e%252e/x' \
	'/download//etc/passwd' '/download/corpus/../../../../etc/passwd' '/download/passwd' '/download/etc/passwd' \
	'/download/corpus/..' '/download/%00' '/download/a%0ab' '/download/%2fetc%2fpasswd'; do
	code=$(get "$A$p" "$W/dl/trav")
	if [[ $code =~ ^(400|403|404)$ ]] && ! grep -q 'root:.*:0:0:' "$W/dl/trav"; then ok "refused $p ($code)"
	else bad "traversal $p: HTTP $code: $(head -c 100 "$W/dl/trav")"; fi
done
grep -q 'refused passwd: a symbolic link leads out of the root' "$W/a.log" && ok "log: symlink out of root" || bad "log: no line for the symlink"
if grep -q 'openat2(RESOLVE_BENEATH)' "$W/a.log"; then
	code=$(get "$A/download/inside.exe" "$W/dl/inside.exe")
	[[ $code == 200 ]] && cmp -s "$W/dl/inside.exe" "$W/dl/hello64.exe" && ok "symlink inside the root is followed" || bad "inside symlink: HTTP $code"
fi
serve_ini nofollow
SIGNGATE_SERVE_NO_OPENAT2=1 start nofollow "$SIGNGATE" serve --config "$W/nofollow.ini" --listen 127.0.0.1:0
NF=$URL NF_PID=$PID
grep -q 'O_NOFOLLOW' "$W/nofollow.log" && ok "fallback resolver in use" || bad "fallback resolver not reported"
for p in /download/passwd /download/etc/passwd /download/inside.exe; do
	code=$(get "$NF$p" "$W/dl/trav")
	[[ $code == 404 ]] && ! grep -q 'root:.*:0:0:' "$W/dl/trav" && ok "fallback: refused $p" || bad "fallback: $p HTTP $code"
done
code=$(get "$NF/download/corpus/hello32.dll" "$W/dl/nf.dll")
if [[ $code == 200 ]]; then signed_ok "fallback: regular file in a subdirectory" "$W/dl/nf.dll" "$CORPUS/hello32.dll"
else bad "fallback: HTTP $code"; fi
stop "$NF_PID"

# ------------------------------------------------------------------ corrupt PE, changed file

code=$(get "$A/download/bad.exe" "$W/dl/bad")
[[ $code == 500 ]] && grep -q 'corrupt' "$W/dl/bad" && grep -q 'refused bad.exe: it cannot be signed' "$W/a.log" \
	&& ok "corrupt PE: refused with 500 and logged" || bad "corrupt PE: HTTP $code: $(head -c 200 "$W/dl/bad")"
before=$(find "$W/cache-a" -type f | wc -l)
code=$(get "$A/download/mod.exe" "$W/dl/mod1.exe")
if [[ $code == 200 ]]; then signed_ok "mod.exe before change" "$W/dl/mod1.exe" "$CORPUS/hello64.exe"
else bad "mod.exe: HTTP $code"; fi
cat "$CORPUS/hello32.exe" >"$ROOT/mod.exe"   # in place: same inode
code=$(get "$A/download/mod.exe" "$W/dl/mod2.exe")
if [[ $code == 200 ]]; then signed_ok "mod.exe changed in place: new content signed" "$W/dl/mod2.exe" "$CORPUS/hello32.exe"
else bad "mod.exe after change: HTTP $code"; fi
[[ $(sign_count mod.exe) -eq 2 ]] && ok "changed file signed again" || bad "mod.exe: $(sign_count mod.exe) signing requests (want 2)"
after=$(find "$W/cache-a" -type f | wc -l)
[[ $after -eq $((before + 1)) ]] && ok "the old version's copy was dropped from the cache" \
	|| bad "cache went from $before to $after files (want +1)"

# ------------------------------------------------------------------ restart keeps the cache

stop "$A_PID"
start a2 "$SIGNGATE" serve --config "$W/a.ini" --listen 127.0.0.1:0
A=$URL A_PID=$PID
code=$(get "$A/download/corpus/hello64.exe" "$W/dl/restart.exe")
[[ $code == 200 ]] && cmp -s "$W/dl/restart.exe" "$W/dl/hello64.exe" && [[ $(sign_count corpus/hello64.exe) -eq 1 ]] \
	&& ok "after a restart the cached copy is served without signing" || bad "after restart: HTTP $code, $(sign_count corpus/hello64.exe) signatures"

# ------------------------------------------------------------------ remote errors

serve_ini badtoken "service_token=file:$W/badtoken"
start badtoken "$SIGNGATE" serve --config "$W/badtoken.ini" --listen 127.0.0.1:0
code=$(get "$URL/download/fresh2.exe" "$W/dl/bt")
[[ $code == 503 ]] && grep -q 'refused fresh2.exe: signing failed: .*HTTP 401' "$W/badtoken.log" \
	&& ok "wrong token: 503, log names HTTP 401" || bad "wrong token: HTTP $code; log: $(grep fresh2 "$W/badtoken.log" | head -n 2)"
grep -q 'signing service check failed .*HTTP 401.*check the token' "$W/badtoken.log" \
	&& ok "wrong token: found at start" || bad "wrong token: no start-up check in the log"
stop "$PID"
serve_ini badca "service_ca=$PKI/other-root.pem"
start badca "$SIGNGATE" serve --config "$W/badca.ini" --listen 127.0.0.1:0
code=$(get "$URL/download/fresh2.exe" "$W/dl/bc")
[[ $code == 503 ]] && grep -qi 'refused fresh2.exe: signing failed: .*certificate' "$W/badca.log" \
	&& ok "untrusted service certificate: 503, log says why" || bad "wrong CA: HTTP $code; log: $(grep fresh2 "$W/badca.log" | head -n 2)"
stop "$PID"
if command -v tinyproxy >/dev/null; then
	PP=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
	printf 'Port %s\nListen 127.0.0.1\nTimeout 30\nLogFile "%s"\nLogLevel Connect\nMaxClients 20\nAllow 127.0.0.1\n' \
		"$PP" "$W/tinyproxy.log" >"$W/tinyproxy.conf"
	tinyproxy -d -c "$W/tinyproxy.conf" >"$W/tinyproxy.out" 2>&1 &
	TP_PID=$!
	PIDS+=("$TP_PID")
	for ((i = 0; i < 50; i++)); do (exec 3<>"/dev/tcp/127.0.0.1/$PP") 2>/dev/null && break; sleep 0.1; done
	serve_ini proxy "service_proxy=http://127.0.0.1:$PP"
	start proxy "$SIGNGATE" serve --config "$W/proxy.ini" --listen 127.0.0.1:0
	code=$(get "$URL/download/fresh2.exe" "$W/dl/proxy.exe")
	if [[ $code == 200 ]]; then signed_ok "signed through an HTTP proxy" "$W/dl/proxy.exe" "$CORPUS/hello32.exe"
	else bad "through proxy: HTTP $code"; fi
	grep -q "CONNECT 127.0.0.1:${SVC_URL##*:}" "$W/tinyproxy.log" && ok "the proxy saw the CONNECT" || bad "no CONNECT in the proxy's log"
	stop "$PID"
	stop "$TP_PID"
else
	echo "skip proxy test: no tinyproxy"
fi

# ------------------------------------------------------------------ a misbehaving service

# A stand-in that answers badly in the way its key name asks, or forwards
# to the real service (with the key name put back) and counts requests.
cat >"$W/fake_service.py" <<'PY'
import json, ssl, sys, threading, time, urllib.request
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
cert, key, ca, upstream = sys.argv[1:5]
counts, lock = {}, threading.Lock()
up_ctx = ssl.create_default_context(cafile=ca)

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def reply(self, code, ctype, data):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        with lock:
            self.reply(200, "application/json", json.dumps(counts).encode())
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        mode = body["key"]
        with lock:
            counts[mode] = counts.get(mode, 0) + 1
            n = counts[mode]
        body["key"] = "codesign"
        if mode == "flaky" and n == 1:
            return self.reply(503, "application/json", b'{"error":"HSM busy"}')
        if mode == "html":
            return self.reply(200, "text/html", b"<html>hello</html>")
        if mode == "big":
            return self.reply(200, "application/json", b'{"signature":"' + b"A" * (5 << 20) + b'"}')
        if mode == "badb64":
            return self.reply(200, "application/json", b'{"signature":"not*base64"}')
        if mode == "refuse400":
            return self.reply(400, "application/json", b'{"error":"field \\"digest\\" is bad"}')
        if mode == "slow":
            time.sleep(4)
        if mode == "wrongdigest":
            body["digest"] = "00" * (len(body["digest"]) // 2)
        req = urllib.request.Request(upstream + "/v1/sign", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Authorization": self.headers["Authorization"]})
        with urllib.request.urlopen(req, context=up_ctx) as r:
            data = r.read()
        self.reply(200, "application/json", data)

srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.daemon_threads = True
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("listening on https://127.0.0.1:%d" % srv.server_address[1], flush=True)
srv.serve_forever()
PY
start fake python3 "$W/fake_service.py" "$PKI/tls.pem" "$PKI/tls.key" "$PKI/root-ca.pem" "$SVC_URL"
FAKE=$URL FAKE_PID=$PID
# fake MODE WANT-CODE LOG-PATTERN: one download of fresh2.exe through MODE.
fake() {
	local mode=$1 want=$2 pat=$3 code
	serve_ini "fake-$mode" "service_url=$FAKE" "service_key=$mode" "timeout=1"
	start "fake-$mode" "$SIGNGATE" serve --config "$W/fake-$mode.ini" --listen 127.0.0.1:0
	code=$(get "$URL/download/fresh2.exe" "$W/dl/fake-$mode")
	if [[ $code == "$want" ]] && grep -qE -- "$pat" "$W/fake-$mode.log"; then ok "service answers $mode: $code, logged"
	else bad "service answers $mode: HTTP $code (want $want); log: $(grep -E 'fresh2|error' "$W/fake-$mode.log" | head -n 2)"; fi
	stop "$PID"
}
fake flaky 200 'signed fresh2.exe'
[[ $(curl -s --cacert "$PKI/root-ca.pem" "$FAKE/counts") == *'"flaky": 2'* ]] && ok "503 retried once" || bad "503 not retried"
fake html 503 "Content-Type 'text/html', not application/json"
fake big 503 'larger than 4194304 bytes'
fake badb64 503 'not valid base64'
fake refuse400 503 'HTTP 400: field "digest" is bad'
fake wrongdigest 503 'signature for another file'
fake slow 503 'Timeout.*\(2 attempts\)'
stop "$FAKE_PID"

# ------------------------------------------------------------------ custom method (local key)

cat >"$W/custom.ini" <<EOF
[log]
file = $W/custom.log
[serve]
root = $ROOT
cache_dir = $W/cache-custom
sign_method = custom
custom_key = $RSA_URI
custom_cert = $PKI/codesign-rsa.pem
digest = sha384
EOF
start custom "$SIGNGATE" serve --config "$W/custom.ini" --listen 127.0.0.1:0
for name in hello64.exe zlib1-32.dll grubx64-signed.efi; do
	code=$(get "$URL/download/corpus/$name" "$W/dl/custom-$name")
	if [[ $code == 200 ]]; then signed_ok "custom key (sha384): $name" "$W/dl/custom-$name" "$CORPUS/$name" nosb
	else bad "custom $name: HTTP $code"; fi
done
"$SIGNGATE" verify --ca "$PKI/root-ca.pem" "$W/dl/custom-hello64.exe" | grep -q 'Digest: *sha384' && ok "custom: digest sha384" || bad "custom: not sha384"
stop "$PID"

# ------------------------------------------------------------------ service down

serve_ini unsigned "on_sign_failure=serve-unsigned"
start unsigned "$SIGNGATE" serve --config "$W/unsigned.ini" --listen 127.0.0.1:0
U=$URL U_PID=$PID
stop "$SVC_PID"
code=$(get "$A/download/fresh1.exe" "$W/dl/down")
[[ $code == 503 ]] && grep -q 'cannot be signed right now' "$W/dl/down" && ok "service down, refuse: 503" || bad "service down, refuse: HTTP $code"
grep -q 'error refused fresh1.exe: signing failed: signing service https://.*(2 attempts)' "$W/a.log" \
	&& ok "service down: error logged with the file, the URL and the attempts" || bad "service down: log: $(grep fresh1 "$W/a.log" | head -n 2)"
code=$(get "$A/download/corpus/hello64.exe" "$W/dl/down-cached.exe")
[[ $code == 200 ]] && cmp -s "$W/dl/down-cached.exe" "$W/dl/hello64.exe" && ok "service down: cached copies still served" || bad "service down, cached: HTTP $code"
code=$(get "$U/download/fresh1.exe" "$W/dl/unsigned.exe")
[[ $code == 200 ]] && cmp -s "$W/dl/unsigned.exe" "$ROOT/fresh1.exe" && ok "service down, serve-unsigned: original bytes" || bad "serve-unsigned: HTTP $code or not the original"
grep -q 'warn  serving fresh1.exe UNSIGNED' "$W/unsigned.log" && ok "serve-unsigned: warning logged" || bad "serve-unsigned: no warning"
stop "$U_PID"
stop "$A_PID"

# ------------------------------------------------------------------ a silent service

# A "service" that accepts connections and never answers (as behind a
# blackholed proxy): downloads of PE files wait out the timeouts, but on
# signing threads: /health and non-PE files keep answering at once, and
# after the first slow failure the others fail at once (10 s) instead of
# each waiting in turn.
BH=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
python3 - "$BH" <<'PY' &
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(200)
held = []
end = time.time() + 60
s.settimeout(1)
while time.time() < end:
    try:
        c, _ = s.accept(); held.append(c)
    except socket.timeout:
        pass
PY
BH_PID=$!
PIDS+=("$BH_PID")
for ((i = 0; i < 50; i++)); do (exec 3<>"/dev/tcp/127.0.0.1/$BH") 2>/dev/null && break; sleep 0.1; done
mkdir -p "$ROOT/silent"
for i in $(seq 1 12); do cp "$CORPUS/hello32.exe" "$ROOT/silent/s$i.exe"; done
printf 'not a PE\n' >"$ROOT/silent/notes.txt"
serve_ini silent "service_url=https://127.0.0.1:$BH" "connect_timeout=2" "timeout=3" "retries=0" "threads=4"
start silent "$SIGNGATE" serve --config "$W/silent.ini" --listen 127.0.0.1:0
t0=$(date +%s%N)
for i in $(seq 1 12); do curl -s -o /dev/null -w '%{http_code}\n' --max-time 60 "$URL/download/silent/s$i.exe" >"$W/silent-$i.code" & done
sleep 0.5
h0=$(date +%s%N)
hc=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$URL/health" || echo 000)
tc=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$URL/download/silent/notes.txt" || echo 000)
h1=$(date +%s%N)
[[ $hc == 200 && $tc == 200 && $(( (h1 - h0) / 1000000 )) -lt 1000 ]] \
	&& ok "while signings wait on a silent service, /health and a plain file answer at once ($(( (h1 - h0) / 1000000 )) ms)" \
	|| bad "silent service: /health $hc, plain file $tc, in $(( (h1 - h0) / 1000000 )) ms"
wait_codes() { local i; for i in $(seq 1 12); do while [[ ! -s $W/silent-$i.code ]]; do sleep 0.1; done; done; }
wait_codes
t1=$(date +%s%N)
n503=$(cat "$W"/silent-*.code | grep -c '^503$' || true)
ms=$(( (t1 - t0) / 1000000 ))
# 4 signing threads, 3 s each: without failing fast, 12 downloads would take 9 s or more.
[[ $n503 -eq 12 && $ms -lt 8000 ]] && ok "12 downloads against a silent service: all 503 in $ms ms (the first slow failure makes the others fail at once)" \
	|| bad "silent service: $n503 of 12 got 503, in $ms ms"
grep -q 'not trying again for' "$W/silent.log" && ok "the log says why the later downloads failed at once" \
	|| bad "no 'not trying again' in the log"
stop "$PID"
kill "$BH_PID" 2>/dev/null || true

# ------------------------------------------------------------------ configuration errors

cfgerr() {  # NAME PATTERN INI-TEXT
	printf '%s\n' "$3" >"$W/cfg.ini"
	local rc=0 out
	out=$(timeout 10 "$SIGNGATE" serve --config "$W/cfg.ini" --listen 127.0.0.1:0 2>&1) || rc=$?
	[[ $rc -eq 2 ]] && grep -qE -- "$2" <<<"$out" && ok "config: $1" || bad "config $1: exit $rc: $out"
}
cfgerr "no root" "needs 'root'" $'[serve]\ncache_dir = '"$W"$'/c\nservice_url = https://x\nservice_token = pass:x\nservice_key = k'
cfgerr "no cache_dir" "needs 'cache_dir'" $'[serve]\nroot = '"$ROOT"
cfgerr "no service_url" "needs service_url" $'[serve]\nroot = '"$ROOT"$'\ncache_dir = '"$W"'/c'
cfgerr "http service_url" "must start with https://" $'[serve]\nroot = '"$ROOT"$'\ncache_dir = '"$W"$'/c\nservice_url = http://127.0.0.1:1\nservice_token = pass:abcdefabcdefabcdef\nservice_key = k'
cfgerr "missing token file" "cannot read secret" $'[serve]\nroot = '"$ROOT"$'\ncache_dir = '"$W"$'/c\nservice_url = https://127.0.0.1:1\nservice_token = file:/nonexistent\nservice_key = k'
cfgerr "cache inside root" "must not be inside root" $'[serve]\nroot = '"$ROOT"$'\ncache_dir = '"$ROOT"$'/c\nservice_url = https://127.0.0.1:1\nservice_token = pass:abcdefabcdefabcdef\nservice_key = k'
rm -rf "$ROOT/c"
cfgerr "custom without key" "needs custom_key" $'[serve]\nroot = '"$ROOT"$'\ncache_dir = '"$W"$'/c\nsign_method = custom'
cfgerr "unknown setting" "unknown setting" $'[serve]\nroot = '"$ROOT"$'\nbogus = 1'
check "--help" "$SIGNGATE" serve --help

# ------------------------------------------------------------------ secrets and sanitizers

if grep -rqF "$TOKEN" "$W"/*.log "$W"/*.err "$W"/*.out; then bad "the token appears in a log"; else ok "the token is in no log"; fi
if grep -lE 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$W"/*.err >/dev/null 2>&1; then
	bad "sanitizer reports in: $(grep -lE 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$W"/*.err | tr '\n' ' ')"
else
	ok "no sanitizer report"
fi

echo "test_serve: $((SECONDS - T0)) s"
echo "$PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
