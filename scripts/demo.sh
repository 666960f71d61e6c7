#!/usr/bin/env bash
# make demo: the main job end to end, on loopback.
#   1. a demo PKI under demo/pki: root and intermediate CA, a code-signing
#      certificate whose RSA key is generated inside a SoftHSM2 token, and a
#      TLS certificate for the signing service;
#   2. sample applications in demo/apps (mingw-w64 builds);
#   3. the signing service (HTTPS, 127.0.0.1:8443), a second signgate service
#      as the RFC 3161 timestamp authority (HTTPS, 127.0.0.1:8444, its key in
#      the same token), and the download server (HTTP, 127.0.0.1:7615), in
#      the foreground;
#   4. one download, verified by signgate and by osslsigncode;
#   5. a `ready` line, then serving until Ctrl-C.
# Run twice, it reuses what it made.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SG=$ROOT/build/signgate
D=$ROOT/demo
SVC_PORT=${SVC_PORT:-8443}
DL_PORT=${DL_PORT:-7615}
TSA_PORT=${TSA_PORT:-8444}
mkdir -p "$D"/{apps,cache,logs,secrets,downloads}
chmod 700 "$D/secrets"

say() { printf 'demo: %s\n' "$*"; }

say "PKI and SoftHSM2 token in demo/pki"
bash tests/setup/make-pki.sh "$D/pki"
export SOFTHSM2_CONF=$D/pki/softhsm2.conf

if [[ ! -s $D/apps/hello.exe || ! -s $D/apps/bigapp.exe ]]; then
	say "building sample applications with mingw-w64"
	tmp=$(mktemp -d)
	cat > "$tmp/hello.c" <<'C'
#include <stdio.h>
int main(void) { puts("Hello from a signgate-signed program"); return 0; }
C
	# A larger application: 24 MB of initialised data, so hashing shows.
	python3 - "$tmp/big.c" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("#include <stdio.h>\n#define N (24u << 20)\n")
    f.write("static const unsigned char blob[N] = {")
    f.write(",".join(str((i * 37) & 255) for i in range(4096)))
    f.write("};\nint main(void) { unsigned s = 0; for(unsigned i = 0; i < N; i += 4096) s += blob[i];"
            " printf(\"big app %u\\n\", s); return 0; }\n")
PY
	x86_64-w64-mingw32-gcc -O2 -s -o "$D/apps/hello.exe" "$tmp/hello.c"
	x86_64-w64-mingw32-gcc -O2 -s -o "$D/apps/bigapp.exe" "$tmp/big.c"
	i686-w64-mingw32-gcc -O2 -s -shared -o "$D/apps/hello32.dll" "$tmp/hello.c"
	printf 'release notes: not a PE file, served as is\n' > "$D/apps/README.txt"
	rm -rf "$tmp"
fi

if [[ ! -s $D/secrets/client.token ]]; then
	openssl rand -hex 32 | tr -d '\n' > "$D/secrets/client.token"
	chmod 600 "$D/secrets/client.token"
fi
if [[ ! -s $D/secrets/admin.password ]]; then
	openssl rand -base64 15 | tr -d '\n' > "$D/secrets/admin.password"
	chmod 600 "$D/secrets/admin.password"
fi

cat > "$D/signgate.ini.new" <<INI
; demo configuration, written by scripts/demo.sh (see docs/CONFIG.md)
[service]
listen = 127.0.0.1:$SVC_PORT
tls_cert = $D/pki/tls.pem
tls_key = $D/pki/tls.key
audit_log = $D/logs/audit.jsonl

[key codesign]
uri = pkcs11:token=signgate;object=codesign-rsa?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:$D/pki/pin.txt
cert = $D/pki/codesign-rsa.pem

[client download-server]
token = file:$D/secrets/client.token
keys = codesign
INI
mv "$D/signgate.ini.new" "$D/signgate.ini"

# The download server's own file: its admin page (http://127.0.0.1:$DL_PORT/conf)
# writes to it, so a change made there is kept when the demo runs again
# (unless the ports changed: then it is written afresh).
cat > "$D/serve.ini.new" <<INI
; demo download server, written by scripts/demo.sh (see docs/CONFIG.md);
; the admin page rewrites the [serve] lines it changes
[serve]
listen = 127.0.0.1:$DL_PORT
root = $D/apps
cache_dir = $D/cache
sign_method = service
service_url = https://127.0.0.1:$SVC_PORT
service_ca = $D/pki/root-ca.pem
service_token = file:$D/secrets/client.token
service_key = codesign
program_name = signgate demo
program_url = https://localhost/
; the download server has its copies timestamped, whichever signing method
; the admin page chooses
timestamp_urls = https://127.0.0.1:$TSA_PORT/tsa
timestamp_ca = $D/pki/root-ca.pem
admin_password = file:$D/secrets/admin.password
INI
KEPT=0
if [[ ! -f $D/serve.ini ]] || cmp -s "$D/serve.ini" "$D/serve.ini.generated" ||
	! grep -qx "listen = 127.0.0.1:$DL_PORT" "$D/serve.ini" ||
	! grep -qx "timestamp_urls = https://127.0.0.1:$TSA_PORT/tsa" "$D/serve.ini"; then
	if [[ -f $D/serve.ini ]] && ! cmp -s "$D/serve.ini" "$D/serve.ini.generated"; then
		cp "$D/serve.ini" "$D/serve.ini.old"
		say "other ports than last time: demo/serve.ini written afresh; the admin page's changes are in demo/serve.ini.old"
	fi
	# Signed copies made under other settings are not what this
	# configuration would make: start the cache afresh.
	cmp -s "$D/serve.ini.new" "$D/serve.ini" || { rm -rf "$D/cache" && mkdir -p "$D/cache"; }
	cp "$D/serve.ini.new" "$D/serve.ini.generated"
	mv "$D/serve.ini.new" "$D/serve.ini"
else
	KEPT=1
	say "keeping demo/serve.ini as the admin page left it (delete it to start afresh)"
	rm -f "$D/serve.ini.new"
fi

# The timestamp authority: another signgate service, with the token's
# timestamping key (a separate process, so that signing requests waiting for
# a timestamp never wait on themselves).
cat > "$D/tsa.ini" <<INI
; demo TSA, written by scripts/demo.sh (see docs/CONFIG.md, tsa_key)
[service]
listen = 127.0.0.1:$TSA_PORT
tls_cert = $D/pki/tls.pem
tls_key = $D/pki/tls.key
tsa_key = tsa

[key tsa]
uri = pkcs11:token=signgate;object=tsa?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:$D/pki/pin.txt
cert = $D/pki/tsa.pem
INI

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'echo; say "stopping"; exit 0' INT TERM

# start NAME LOGFILE CMD...: runs CMD in the background; waits for "listening".
start() {
	local name=$1 out=$2 n0; shift 2
	# The log goes on from earlier runs: show only this run's lines.
	n0=$(wc -l < "$out" 2>/dev/null || echo 0)
	"$@" > "$out.out" 2>> "$out" &
	pids+=($!)
	for _ in $(seq 100); do
		grep -q '^listening on' "$out.out" 2>/dev/null && return 0
		if ! kill -0 "${pids[-1]}" 2>/dev/null; then
			say "$name failed to start:"; tail -n +"$((n0 + 1))" "$out" | tail -5 >&2
			if [[ $name == "download server" && $KEPT == 1 ]]; then
				say "the settings the admin page left in demo/serve.ini cannot be used now:"
				say "put them right there, or delete demo/serve.ini to start afresh"
			fi
			exit 1
		fi
		sleep 0.1
	done
	say "$name did not start in 10 s:"; tail -n +"$((n0 + 1))" "$out" | tail -5 >&2; exit 1
}

say "starting the timestamp authority on https://127.0.0.1:$TSA_PORT/tsa"
start "timestamp authority" "$D/logs/tsa.log" "$SG" service --config "$D/tsa.ini"
say "starting the signing service on https://127.0.0.1:$SVC_PORT"
start "signing service" "$D/logs/service.log" "$SG" service --config "$D/signgate.ini"
say "starting the download server on http://127.0.0.1:$DL_PORT"
SERVE_N0=$(wc -l < "$D/logs/serve.log" 2>/dev/null || echo 0)
start "download server" "$D/logs/serve.log" "$SG" serve --config "$D/serve.ini"

# demo_failed WHAT: with the demo's own settings, the end-to-end check must
# pass (exit 1); with settings the admin page left, the servers stay up so
# the page can put them right.
demo_failed() {
	say "$1"
	if [[ $KEPT == 0 ]]; then exit 1; fi
	say "the settings are the ones the admin page left in demo/serve.ini: fix them at"
	say "http://127.0.0.1:$DL_PORT/conf (the servers keep running), or stop and delete demo/serve.ini"
}

say "downloading hello.exe through the download server"
rm -f "$D/downloads/hello.exe"
if ! curl -fsS -o "$D/downloads/hello.exe" "http://127.0.0.1:$DL_PORT/download/hello.exe"; then
	# The error line says why; the access line after it only that it failed.
	why=$(tail -n +"$((SERVE_N0 + 1))" "$D/logs/serve.log" | grep -E ' error ' | tail -n 1 | cut -c 26-)
	[[ -n $why ]] || why=$(tail -n +"$((SERVE_N0 + 1))" "$D/logs/serve.log" | grep -E ' warn ' | tail -n 1 | cut -c 26-)
	demo_failed "the download server could not deliver hello.exe signed: $why"
else
	say "verifying with signgate"
	"$SG" verify --ca "$D/pki/root-ca.pem" "$D/downloads/hello.exe" | sed 's/^/  /'
	say "verifying with osslsigncode"
	if osslsigncode verify -CAfile "$D/pki/root-ca.pem" -TSA-CAfile "$D/pki/root-ca.pem" -in "$D/downloads/hello.exe" > "$D/logs/osslsigncode.txt" 2>&1; then
		grep -E '^(Signature verification|Timestamp Server Signature verification|Succeeded)' "$D/logs/osslsigncode.txt" | sed 's/^/  /'
	else
		cat "$D/logs/osslsigncode.txt"
		demo_failed "osslsigncode rejected the download"
	fi
fi

echo
say "sign your own file with the demo's HSM key:"
echo "  SOFTHSM2_CONF=demo/pki/softhsm2.conf build/signgate sign \\"
echo "    --key 'pkcs11:token=signgate;object=codesign-rsa?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:demo/pki/pin.txt' \\"
echo "    --cert demo/pki/codesign-rsa.pem YOUR.exe -o YOUR-signed.exe"
echo
echo "ready: http://127.0.0.1:$DL_PORT/download/hello.exe http://127.0.0.1:$DL_PORT/download/bigapp.exe" \
     "http://127.0.0.1:$DL_PORT/download/hello32.dll (trust root CA: demo/pki/root-ca.pem;" \
     "logs: demo/logs; Ctrl-C stops)"
echo "admin page: http://127.0.0.1:$DL_PORT/conf (password in demo/secrets/admin.password)"
wait
