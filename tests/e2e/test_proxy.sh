#!/usr/bin/env bash
# test_proxy.sh - the download server and the command line behind a real
# HTTP proxy (tinyproxy on loopback, logging at Info level).
#
# a. A proxy that demands Basic authentication: without proxy_user the
#    download gets 503 and the log names the proxy and the 407; with
#    proxy_user and proxy_password (file:, mode 0600) the download is signed
#    and timestamped (the signing service's own TSA) and verifies with
#    osslsigncode and signgate, and the proxy's log shows a CONNECT for each
#    request: the /v1/keys probe at start, the /v1/sign, the TSA request; a
#    wrong password (env:) is named as such; an open password file is
#    refused.  The password never appears in any output of signgate.
# b. A proxy that tunnels only to the signing service (ConnectPort, and a
#    Filter with FilterDefaultDeny): signing works; a TSA on another port is
#    refused and the log names the proxy and the target; the service by a
#    host name the filter does not allow is refused too; no_proxy = localhost
#    sends https://localhost TSA requests direct (nothing in the proxy's log)
#    while the service's still go through.
# c. Bad proxy settings stop `signgate serve` with exit 2 and the reason;
#    service_proxy, the old name, still works with a warning.
# d. The command line (`timestamp`, `sign --timestamp`) through https_proxy
#    with the credentials in its URL; without them, or with a wrong password,
#    it fails naming the proxy and the 407; no_proxy bypasses the proxy.
#
# Env: SIGNGATE, PKI, CORPUS, WORK.  Every server listens on loopback: the
# signgate servers on port 0 (the tests read the port they print), tinyproxy
# on a port free_port found.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
: "${SIGNGATE:?set SIGNGATE}" "${PKI:?set PKI}" "${CORPUS:?set CORPUS}" "${WORK:?set WORK}"
export SOFTHSM2_CONF=$PKI/softhsm2.conf
# No proxy but the ones a test sets itself.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
W=$WORK/proxy
rm -rf "$W" && mkdir -p "$W/dl"
T0=$SECONDS
MOD=/usr/lib/softhsm/libsofthsm2.so
F=$CORPUS/hello64.exe

if ! command -v tinyproxy >/dev/null; then
	bad "tinyproxy is not installed (scripts/deps.sh installs it)"; summary; exit 1
fi

trap kill_started EXIT

# get URL OUT: the HTTP status of a download (body in OUT), never proxied.
get() { curl -s --noproxy '*' -o "$2" -w '%{http_code}' "$1" || echo 000; }

# ------------------------------------------------------------------ proxies

# start_proxy NAME CONF-LINES: tinyproxy on 127.0.0.1 with these extra
# directives; log in $W/NAME.log.  Sets PX_PORT.  A port taken between
# free_port and tinyproxy's bind is retried with another.
start_proxy() {
	local name=$1 extra=$2 try i pid
	for ((try = 0; try < 3; try++)); do
		PX_PORT=$(free_port)
		cat >"$W/$name.conf" <<EOF
Port $PX_PORT
Listen 127.0.0.1
Timeout 30
LogFile "$W/$name.log"
LogLevel Info
MaxClients 20
Allow 127.0.0.1
$extra
EOF
		: >"$W/$name.log"
		tinyproxy -d -c "$W/$name.conf" >"$W/$name.out" 2>&1 &
		pid=$!
		for ((i = 0; i < 50; i++)); do
			if grep -q 'Accepting connections' "$W/$name.log"; then PIDS+=("$pid"); return 0; fi
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
	done
	bad "tinyproxy $name did not start: $(tail -n 3 "$W/$name.log" "$W/$name.out")"
	return 1
}
# mark NAME: remembers how long the proxy's log is; since NAME: what came after.
declare -A MARK
mark() { MARK[$1]=$(wc -l <"$W/$1.log"); }
since() { tail -n "+$((MARK[$1] + 1))" "$W/$1.log"; }
# connects NAME HOST:PORT: CONNECTs to HOST:PORT in NAME's log since the mark.
connects() { since "$1" | grep -c "Request (file descriptor [0-9]*): CONNECT $2 HTTP/" || true; }

PXUSER=signgate-dl
PXPASS=pxpw-$(openssl rand -hex 12)
printf '%s\n' "$PXPASS" >"$W/pxpass"
chmod 600 "$W/pxpass"
start_proxy pxauth "BasicAuth $PXUSER $PXPASS" || { summary; exit 1; }
PA=127.0.0.1:$PX_PORT

# ------------------------------------------------------------------ signing service, TSA

TOKEN=tok-$(openssl rand -hex 16)
printf '%s\n' "$TOKEN" >"$W/token"
chmod 600 "$W/token"
service_ini service
# The TSA: a second service, on another port, with the token's TSA key.
cat >"$W/tsa.ini" <<EOF
[log]
file = $W/tsa.log
[service]
listen = 127.0.0.1:0
tls_cert = $PKI/tls.pem
tls_key = $PKI/tls.key
audit_log = $W/tsa.jsonl
tsa_key = tsa
[key tsa]
uri = pkcs11:token=signgate;object=tsa?module-path=$MOD&pin-source=file:$PKI/pin.txt
cert = $PKI/tsa.pem
EOF
start service "$SIGNGATE" service --config "$W/service.ini" || { summary; exit 1; }
SVC=$URL SP=${URL##*:}
start tsa "$SIGNGATE" service --config "$W/tsa.ini" || { summary; exit 1; }
TSA=$URL TP=${URL##*:}
# Lines in the TSA's audit log: one per timestamp request it answered.
tsa_count() { wc -l <"$W/tsa.jsonl" 2>/dev/null || echo 0; }

# The restricted proxy: CONNECT to the signing service's port only, and to
# the host 127.0.0.1 only.
printf '# hosts this proxy may reach\n^127\\.0\\.0\\.1$\n' >"$W/pxsvc.filter"
start_proxy pxsvc "ConnectPort $SP
Filter \"$W/pxsvc.filter\"
FilterType ere
FilterDefaultDeny Yes" || { summary; exit 1; }
PB=127.0.0.1:$PX_PORT

# ------------------------------------------------------------------ the download server

ROOT=$W/root
mkdir -p "$ROOT"
cp "$F" "$ROOT/app.exe"
# serve_ini NAME [KEY=VALUE...]: a [serve] config signing through the
# service, with these settings changed or added ("KEY=" drops KEY); its log
# is $W/NAME.log, its cache its own.
serve_ini() {
	local name=$1 kv k; shift
	local -A v=([root]=$ROOT [cache_dir]=$W/cache-$name [threads]=2 [service_url]=$SVC
		[service_ca]=$PKI/root-ca.pem [service_token]=file:$W/token [service_key]=codesign
		[connect_timeout]=2 [timeout]=10 [retries]=0)
	for kv in "$@"; do
		if [[ -z ${kv#*=} ]]; then unset "v[${kv%%=*}]"; else v[${kv%%=*}]=${kv#*=}; fi
	done
	{
		printf '[log]\nfile = %s\n[serve]\n' "$W/$name.log"
		for k in "${!v[@]}"; do printf '%s = %s\n' "$k" "${v[$k]}"; done
	} >"$W/$name.ini"
}
# serve NAME [KEY=VALUE...]: writes the config and starts the server on it.
serve() {
	local name=$1; shift
	serve_ini "$name" "$@"
	start "$name" "$SIGNGATE" serve --config "$W/$name.ini" --listen 127.0.0.1:0
}
TSOPT=("timestamp_ca=$PKI/root-ca.pem" "timestamp_timeout=5" "timestamp_retries=0")

# signed_ts_ok NAME FILE: FILE is app.exe signed by our key, with a
# timestamp, as osslsigncode and signgate verify see it.
signed_ts_ok() {
	local out
	out=$(osslsigncode verify -CAfile "$PKI/root-ca.pem" -TSA-CAfile "$PKI/root-ca.pem" -in "$2" 2>&1)
	if grep -q '^Succeeded' <<<"$out" && grep -q 'Timestamp time:' <<<"$out"; then ok "$1: osslsigncode verify"
	else bad "$1: osslsigncode: $(grep -iE 'timestamp|fail|error' <<<"$out" | head -n 4 | tr '\n' ' ')"; fi
	if out=$("$SIGNGATE" verify --ca "$PKI/root-ca.pem" "$2" 2>&1) && grep -qi 'timestamp' <<<"$out"; then
		ok "$1: signgate verify"
	else bad "$1: signgate verify: $(head -n 8 <<<"$out" | tr '\n' ' ')"; fi
	[[ $("$SIGNGATE" hash "$2" | cut -d' ' -f1) == $("$SIGNGATE" hash "$F" | cut -d' ' -f1) ]] \
		&& ok "$1: the signed copy has the original's digest" || bad "$1: the digest differs from the original's"
}

# ------------------------------------------------------------------ a. Basic authentication

# Without credentials: the probe at start and the download fail on the 407.
mark pxauth
serve a-noauth "proxy=$PA" "timestamp_urls=$TSA/tsa" "${TSOPT[@]}"
grep -qF "signing service check failed (downloads of PE files will fail until this is fixed): signing service $SVC (through the proxy): " "$W/a-noauth.log" \
	&& grep -qF "the proxy http://$PA demands authentication (HTTP 407): set the proxy user and password" "$W/a-noauth.log" \
	&& ok "a: no credentials: the check at start names the proxy and the 407" \
	|| bad "a: no credentials: start-up log: $(grep -E 'error|check' "$W/a-noauth.log" | tr '\n' ' ')"
code=$(get "$URL/download/app.exe" "$W/dl/a-noauth")
[[ $code == 503 ]] && ok "a: no credentials: 503" || bad "a: no credentials: HTTP $code"
grep -E "refused app.exe: signing failed: .*the proxy http://$PA demands authentication \(HTTP 407\)" "$W/a-noauth.log" >/dev/null \
	&& ok "a: no credentials: the refusal names the proxy and the 407" \
	|| bad "a: no credentials: log: $(grep app.exe "$W/a-noauth.log" | tr '\n' ' ')"
[[ $(connects pxauth "127.0.0.1:$SP") -ge 2 ]] && ok "a: no credentials: the requests reached the proxy" \
	|| bad "a: no credentials: $(connects pxauth "127.0.0.1:$SP") CONNECTs in the proxy's log"
stop "$PID"

# With proxy_user and the password from a 0600 file: every request of the
# signed download is a CONNECT through the proxy.
mark pxauth
ts0=$(tsa_count)
serve a-auth "proxy=http://$PA" "proxy_user=$PXUSER" "proxy_password=file:$W/pxpass" \
	"timestamp_urls=$TSA/tsa" "${TSOPT[@]}"
A=$URL A_PID=$PID
grep -qF "signing service $SVC reachable, key codesign offered" "$W/a-auth.log" \
	&& ok "a: credentials: the check at start passes" || bad "a: credentials: start-up: $(grep -E 'error|warn' "$W/a-auth.log" | tr '\n' ' ')"
grep -qF "signing with the service $SVC through the proxy http://$PA" "$W/a-auth.log" \
	&& ok "a: the start-up line names the proxy" || bad "a: start-up line: $(grep 'signing with' "$W/a-auth.log")"
[[ $(connects pxauth "127.0.0.1:$SP") -eq 1 ]] && ok "a: the /v1/keys probe went through the proxy" \
	|| bad "a: $(connects pxauth "127.0.0.1:$SP") CONNECTs to the service at start (want 1)"
code=$(get "$A/download/app.exe" "$W/dl/a-auth.exe")
if [[ $code == 200 ]]; then signed_ts_ok "a: signed through the authenticating proxy" "$W/dl/a-auth.exe"
else bad "a: credentials: HTTP $code: $(grep app.exe "$W/a-auth.log" | tr '\n' ' ')"; fi
n_svc=$(connects pxauth "127.0.0.1:$SP") n_tsa=$(connects pxauth "127.0.0.1:$TP")
[[ $n_svc -eq 2 ]] && ok "a: /v1/sign went through the proxy" || bad "a: $n_svc CONNECTs to the service (want 2: probe, sign)"
[[ $n_tsa -eq 1 ]] && ok "a: the TSA request went through the proxy" || bad "a: $n_tsa CONNECTs to the TSA (want 1)"
[[ $(tsa_count) -eq $((ts0 + 1)) ]] && ok "a: the TSA answered one request" || bad "a: the TSA answered $(( $(tsa_count) - ts0 )) requests"
since pxauth | grep -q 'Request (file descriptor [0-9]*): ' && ! since pxauth | grep 'Request (file descriptor' | grep -vqE "CONNECT 127\.0\.0\.1:($SP|$TP) " \
	&& ok "a: nothing else went through the proxy" || bad "a: other requests: $(since pxauth | grep 'Request (' | tr '\n' ' ')"
stop "$A_PID"

# A wrong password (env: spec): named as such, 503.
export SG_TEST_PROXY_PW=not-the-password
serve a-wrong "proxy=$PA" "proxy_user=$PXUSER" "proxy_password=env:SG_TEST_PROXY_PW" \
	"timestamp_urls=$TSA/tsa" "${TSOPT[@]}"
code=$(get "$URL/download/app.exe" "$W/dl/a-wrong")
# tinyproxy 1.11 answers wrong credentials with 401 (squid with 407): the
# error names the proxy and its answer either way.
[[ $code == 503 ]] && grep -qE "the proxy http://$PA refused user '$PXUSER' and its password \(HTTP 40[17]\)" "$W/a-wrong.log" \
	&& ok "a: wrong password: 503, the log names the proxy and its answer" \
	|| bad "a: wrong password: HTTP $code: $(grep app.exe "$W/a-wrong.log" | tr '\n' ' ')"
stop "$PID"
unset SG_TEST_PROXY_PW

# A proxy that answers wrong credentials with 407, as squid does (a
# stand-in, since tinyproxy says 401): the error names the user.
cat >"$W/px407.py" <<'EOF'
import socketserver, sys
class H(socketserver.StreamRequestHandler):
    def handle(self):
        line = self.rfile.readline().decode("latin-1").strip()
        auth = "no"
        while True:
            h = self.rfile.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            if h.lower().startswith(b"proxy-authorization: basic "):
                auth = "basic"
        with open(sys.argv[1], "a") as f:
            f.write("%s auth=%s\n" % (line, auth))
        self.wfile.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                         b"Proxy-Authenticate: Basic realm=\"signgate test\"\r\n"
                         b"Content-Length: 0\r\nConnection: close\r\n\r\n")
socketserver.ThreadingTCPServer.daemon_threads = True
srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), H)
print("listening on 127.0.0.1:%d" % srv.server_address[1], flush=True)
srv.serve_forever()
EOF
start px407 python3 "$W/px407.py" "$W/px407.log"
P407=$URL
serve a-407 "proxy=$P407" "proxy_user=$PXUSER" "proxy_password=file:$W/pxpass"
code=$(get "$URL/download/app.exe" "$W/dl/a-407")
[[ $code == 503 ]] && grep -qF "the proxy http://$P407 refused user '$PXUSER' and its password (HTTP 407)" "$W/a-407.log" \
	&& ok "a: credentials refused with 407: the log names proxy and user" \
	|| bad "a: 407 to credentials: HTTP $code: $(grep app.exe "$W/a-407.log" | tr '\n' ' ')"
grep -q "^CONNECT 127.0.0.1:$SP HTTP/1.1 auth=basic" "$W/px407.log" && ok "a: the credentials are sent as Basic on the CONNECT" \
	|| bad "a: the stand-in saw: $(tr '\n' ' ' <"$W/px407.log")"
stop "$PID"

# A password file others can read is refused at start.
cp "$W/pxpass" "$W/pxpass-open"
chmod 644 "$W/pxpass-open"
serve_ini a-open "proxy=$PA" "proxy_user=$PXUSER" "proxy_password=file:$W/pxpass-open"
expect_msg "a: an open password file stops the server" 2 "proxy_password: .*open to group or others \(mode 0644\)" \
	timeout 20 "$SIGNGATE" serve --config "$W/a-open.ini" --listen 127.0.0.1:0

# ------------------------------------------------------------------ b. a proxy for the service only

# Signing through it works.
mark pxsvc
serve b-svc "proxy=$PB"
code=$(get "$URL/download/app.exe" "$W/dl/b-svc.exe")
if [[ $code == 200 ]] && osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$W/dl/b-svc.exe" >/dev/null 2>&1; then
	ok "b: signed through a proxy that allows the service only"
else bad "b: HTTP $code: $(grep -E 'app.exe|error' "$W/b-svc.log" | tr '\n' ' ')"; fi
[[ $(connects pxsvc "127.0.0.1:$SP") -eq 2 ]] && ok "b: probe and signing request went through it" \
	|| bad "b: $(connects pxsvc "127.0.0.1:$SP") CONNECTs to the service (want 2)"
stop "$PID"

# A TSA on another port: the proxy refuses the CONNECT (ConnectPort).
mark pxsvc
ts0=$(tsa_count)
serve b-tsa "proxy=$PB" "timestamp_urls=$TSA/tsa" "${TSOPT[@]}"
code=$(get "$URL/download/app.exe" "$W/dl/b-tsa")
[[ $code == 503 ]] && ok "b: TSA on another port: 503" || bad "b: TSA on another port: HTTP $code"
grep -qF "timestamp server $TSA/tsa (through the proxy): " "$W/b-tsa.log" \
	&& grep -qF "the proxy http://$PB refused to connect to 127.0.0.1:$TP (HTTP 403 to CONNECT)" "$W/b-tsa.log" \
	&& ok "b: the log names the TSA, the proxy and the refused target" \
	|| bad "b: TSA refused: log: $(grep -E 'app.exe|timestamp server' "$W/b-tsa.log" | tr '\n' ' ')"
since pxsvc | grep -q "Refused CONNECT method on port $TP" && ok "b: the proxy's log shows the refusal (ConnectPort)" \
	|| bad "b: proxy log: $(since pxsvc | grep -iE 'refus|CONNECT' | tr '\n' ' ')"
[[ $(tsa_count) -eq $ts0 ]] && ok "b: the TSA got nothing" || bad "b: the TSA got a request through a refusing proxy"
stop "$PID"

# The service by a name the filter does not allow: refused by the Filter.
mark pxsvc
serve b-name "proxy=$PB" "service_url=https://localhost:$SP"
code=$(get "$URL/download/app.exe" "$W/dl/b-name")
[[ $code == 503 ]] && grep -qF "the proxy http://$PB refused to connect to localhost:$SP (HTTP 403 to CONNECT)" "$W/b-name.log" \
	&& ok "b: a host outside the filter: 503, the log names proxy and target" \
	|| bad "b: filtered host: HTTP $code: $(grep -E 'app.exe|error' "$W/b-name.log" | tr '\n' ' ')"
since pxsvc | grep -qF 'Proxying refused on filtered domain "localhost"' && ok "b: the proxy's log shows the filter at work" \
	|| bad "b: filter: $(since pxsvc | grep -iE 'refus|filter' | tr '\n' ' ')"
stop "$PID"

# no_proxy = localhost: the TSA (https://localhost) is asked directly, the
# service (127.0.0.1) still through the proxy.
mark pxsvc
ts0=$(tsa_count)
serve b-noproxy "proxy=$PB" "no_proxy=localhost" "timestamp_urls=https://localhost:$TP/tsa" "${TSOPT[@]}"
code=$(get "$URL/download/app.exe" "$W/dl/b-noproxy.exe")
if [[ $code == 200 ]]; then signed_ts_ok "b: no_proxy: signed, timestamped directly" "$W/dl/b-noproxy.exe"
else bad "b: no_proxy: HTTP $code: $(grep -E 'app.exe|error' "$W/b-noproxy.log" | tr '\n' ' ')"; fi
[[ $(connects pxsvc "127.0.0.1:$SP") -eq 2 ]] && ok "b: no_proxy: the service's requests still went through the proxy" \
	|| bad "b: no_proxy: $(connects pxsvc "127.0.0.1:$SP") CONNECTs to the service (want 2)"
since pxsvc | grep -qE "localhost|:$TP( |$)" && bad "b: no_proxy: the proxy saw the TSA: $(since pxsvc | grep -E "localhost|:$TP" | head -n 2 | tr '\n' ' ')" \
	|| ok "b: no_proxy: the TSA request is not in the proxy's log"
[[ $(tsa_count) -eq $((ts0 + 1)) ]] && ok "b: no_proxy: the TSA answered it" || bad "b: no_proxy: the TSA answered $(( $(tsa_count) - ts0 )) requests"
stop "$PID"

# ------------------------------------------------------------------ c. configuration

# cfgerr NAME PATTERN KEY=VALUE...: `signgate serve` refuses the config: exit 2 and PATTERN.
cfgerr() {
	local name=$1 pat=$2; shift 2
	serve_ini cfg "$@"
	local rc=0 out
	out=$(timeout 20 "$SIGNGATE" serve --config "$W/cfg.ini" --listen 127.0.0.1:0 2>&1) || rc=$?
	printf '%s\n' "$out" >>"$W/cfg.out"
	if [[ $rc -eq 2 ]] && grep -qE -- "$pat" <<<"$out"; then ok "c: $name"
	else bad "c: $name: exit $rc: $(head -c 300 <<<"$out")"; fi
}
cfgerr "https:// proxy" "proxy 'https://x:1': only http:// proxies are supported" "proxy=https://x:1"
cfgerr "socks proxy" "only http:// proxies are supported" "proxy=socks5://127.0.0.1:1080"
cfgerr "credentials in the address" "proxy: give the user and password in their own settings" "proxy=user:pw-in-url-SECRET@host:3128"
cfgerr "credentials in an http:// address" "give the user and password in their own settings" "proxy=http://user:pw-in-url-SECRET@host:3128"
grep -q 'pw-in-url-SECRET' "$W/cfg.out" && bad "c: the password of a proxy address was echoed" || ok "c: a password in the address is not echoed"
cfgerr "no port" "proxy 'host' has no port" "proxy=host"
cfgerr "port 0" "the port must be a number from 1 to 65535" "proxy=host:0"
cfgerr "port 65536" "the port must be a number from 1 to 65535" "proxy=127.0.0.1:65536"
cfgerr "a path" "the port must be a number" "proxy=http://host:3128/x"
cfgerr "proxy_password without proxy_user" "has proxy_password but no proxy_user" "proxy=$PA" "proxy_password=file:$W/pxpass"
cfgerr "proxy_user without proxy" "has proxy_user, proxy_password or no_proxy but no proxy" "proxy_user=$PXUSER"
cfgerr "no_proxy without proxy" "but no proxy" "no_proxy=localhost"
cfgerr "proxy and service_proxy" "the proxy is given twice" "proxy=$PA" "service_proxy=$PA"
cfgerr "service_proxy and timestamp_proxy" "the proxy is given twice" "service_proxy=$PA" "timestamp_proxy=$PA"
cfgerr "missing password file" "proxy_password: .*$W/nonexistent" "proxy=$PA" "proxy_user=$PXUSER" "proxy_password=file:$W/nonexistent"
# The old name still works, with a warning.
mark pxsvc
serve c-old "service_proxy=$PB"
grep -q "service_proxy and timestamp_proxy are old names: write 'proxy'" "$W/c-old.log" \
	&& ok "c: service_proxy: warning at start" || bad "c: service_proxy: no warning: $(grep warn "$W/c-old.log")"
grep -qF "signing service $SVC reachable" "$W/c-old.log" && [[ $(connects pxsvc "127.0.0.1:$SP") -eq 1 ]] \
	&& ok "c: service_proxy: the probe went through the proxy" || bad "c: service_proxy: $(grep -E 'check|reachable' "$W/c-old.log")"
stop "$PID"

# ------------------------------------------------------------------ d. the command line

"$SIGNGATE" sign --key "$PKI/soft.key" --cert "$PKI/codesign-soft.pem" "$F" -o "$W/cli-in.exe" >/dev/null 2>&1 \
	|| bad "d: cannot sign the input file"
TSARGS=(--timestamp "$TSA/tsa" --timestamp-ca "$PKI/root-ca.pem" --timestamp-timeout 5)
# cli NAME CMD...: runs CMD, output in $W/cli-NAME.out; prints the exit status.
cli() {
	local name=$1 rc=0; shift
	"$@" >"$W/cli-$name.out" 2>&1 || rc=$?
	echo "$rc"
}

mark pxauth
rc=$(cli ts-auth env https_proxy="http://$PXUSER:$PXPASS@$PA" "$SIGNGATE" timestamp "${TSARGS[@]}" "$W/cli-in.exe" -o "$W/cli-ts.exe")
[[ $rc == 0 ]] && ok "d: timestamp through https_proxy with credentials" || bad "d: timestamp: exit $rc: $(tail -n 2 "$W/cli-ts-auth.out")"
[[ $(connects pxauth "127.0.0.1:$TP") -eq 1 ]] && ok "d: the proxy's log shows the CONNECT to the TSA" \
	|| bad "d: $(connects pxauth "127.0.0.1:$TP") CONNECTs to the TSA (want 1)"
out=$(osslsigncode verify -CAfile "$PKI/root-ca.pem" -TSA-CAfile "$PKI/root-ca.pem" -in "$W/cli-ts.exe" 2>&1)
grep -q 'Timestamp time:' <<<"$out" && grep -q '^Succeeded' <<<"$out" && ok "d: the timestamped file verifies" \
	|| bad "d: osslsigncode: $(grep -iE 'timestamp|fail|error' <<<"$out" | head -n 3 | tr '\n' ' ')"

mark pxauth
rc=$(cli sign-auth env HTTPS_PROXY="http://$PXUSER:$PXPASS@$PA" "$SIGNGATE" sign --key "$PKI/soft.key" \
	--cert "$PKI/codesign-soft.pem" "${TSARGS[@]}" "$F" -o "$W/cli-sign.exe")
[[ $rc == 0 && $(connects pxauth "127.0.0.1:$TP") -eq 1 ]] && ok "d: sign --timestamp through HTTPS_PROXY with credentials" \
	|| bad "d: sign --timestamp: exit $rc, $(connects pxauth "127.0.0.1:$TP") CONNECTs: $(tail -n 2 "$W/cli-sign-auth.out")"

rm -f "$W/cli-noauth.exe"
rc=$(cli ts-noauth env https_proxy="http://$PA" "$SIGNGATE" timestamp "${TSARGS[@]}" "$W/cli-in.exe" -o "$W/cli-noauth.exe")
[[ $rc == 1 ]] && grep -qE "the proxy \(from the environment\) refused the request for want of valid credentials \(HTTP 407\)" "$W/cli-ts-noauth.out" && [[ ! -e $W/cli-noauth.exe ]] \
	&& ok "d: without credentials: exit 1, the message names the proxy and the 407, no output" \
	|| bad "d: without credentials: exit $rc: $(tail -n 2 "$W/cli-ts-noauth.out")"

rc=$(cli sign-wrong env https_proxy="http://$PXUSER:wrong-$PXPASS@$PA" "$SIGNGATE" sign --key "$PKI/soft.key" \
	--cert "$PKI/codesign-soft.pem" "${TSARGS[@]}" "$F" -o "$W/cli-wrong.exe")
[[ $rc == 1 ]] && grep -qE "the proxy \(from the environment\) refused .*HTTP 40[17]" "$W/cli-sign-wrong.out" && [[ ! -e $W/cli-wrong.exe ]] \
	&& ok "d: a wrong password: exit 1, the proxy's answer named, no output" || bad "d: wrong password: exit $rc: $(tail -n 2 "$W/cli-sign-wrong.out")"
rc=$(cli ts-407 env https_proxy="http://$PXUSER:$PXPASS@$P407" "$SIGNGATE" timestamp "${TSARGS[@]}" "$W/cli-in.exe" -o "$W/cli-407.exe")
[[ $rc == 1 ]] && grep -qE "proxy .*HTTP 407" "$W/cli-ts-407.out" && grep -q "^CONNECT 127.0.0.1:$TP HTTP/1.1 auth=basic" "$W/px407.log" \
	&& ok "d: credentials from the URL sent as Basic; a 407 to them named" || bad "d: 407 to credentials: exit $rc: $(tail -n 2 "$W/cli-ts-407.out")"

mark pxauth
rc=$(cli ts-noproxy env https_proxy="http://$PA" no_proxy=127.0.0.1 "$SIGNGATE" timestamp "${TSARGS[@]}" "$W/cli-in.exe" -o "$W/cli-noproxy.exe")
[[ $rc == 0 && $(connects pxauth "127.0.0.1:$TP") -eq 0 ]] && ok "d: no_proxy: the TSA is asked directly" \
	|| bad "d: no_proxy: exit $rc, $(connects pxauth "127.0.0.1:$TP") CONNECTs: $(tail -n 2 "$W/cli-ts-noproxy.out")"

# ------------------------------------------------------------------ secrets, sanitizers

SGOUT=("$W"/service.* "$W"/tsa.log "$W"/tsa.out "$W"/tsa.err "$W"/a-* "$W"/b-* "$W"/c-* "$W"/cfg.out "$W"/cli-*.out)
if grep -lF -- "$PXPASS" "${SGOUT[@]}" 2>/dev/null | grep -v '\.ini$' >/dev/null; then
	bad "the proxy password appears in: $(grep -lF -- "$PXPASS" "${SGOUT[@]}" | grep -v '\.ini$' | tr '\n' ' ')"
else ok "the proxy password is in no log or output of signgate"; fi
# Nor as the Basic credentials (base64 of user:password) a debug dump would show.
B64=$(printf '%s:%s' "$PXUSER" "$PXPASS" | base64 -w0)
grep -lF -- "$B64" "${SGOUT[@]}" 2>/dev/null | grep -qv '\.ini$' && bad "the proxy credentials appear base64-encoded in a log" \
	|| ok "nor base64-encoded"
grep -qF -e "$PXPASS" -e "$B64" "$W/pxauth.log" && bad "the proxy password is in tinyproxy's log" || ok "nor in the proxy's log"
grep -lF -- "$TOKEN" "${SGOUT[@]}" 2>/dev/null | grep -qvE '\.(ini|jsonl)$' && bad "the service token appears in a log" || ok "the token is in no log"
if grep -lE 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$W"/*.err "$W"/cfg.out "$W"/cli-*.out >/dev/null 2>&1; then
	bad "sanitizer reports in: $(grep -lE 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$W"/*.err "$W"/cfg.out "$W"/cli-*.out | tr '\n' ' ')"
else ok "no sanitizer report"; fi

echo "test_proxy: $((SECONDS - T0)) s"
summary
