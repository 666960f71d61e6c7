#!/usr/bin/env bash
# test_faults.sh - the servers under faults (issue 6):
#  1. the HSM's token goes away while the signing service runs (SoftHSM2's
#     token directory moved away, then put back), on a copy of the PKI, with
#     requests for two keys on the token running all the while: 503 while
#     it is away, signing again without a restart once it is back; swapped
#     for another token with the same label (new keys): 503, never a
#     signature that does not verify; its PIN changed: one failed login
#     per key, then 503 without more tries; SoftHSM2's configuration gone
#     too: C_Initialize's failure logged, recovery once it is back;
#  2. the signing service is killed (SIGKILL) and restarted while downloads
#     run through the download server: every download is a complete, valid
#     signed file or a 503 (refuse), or the original bytes (serve-unsigned);
#     never a short or half-signed body;
#  3. the download server's cache on a full disk (a 256 KiB tmpfs): a file
#     too big for it gets 503, no partial file stays, the server goes on.
# Env: SIGNGATE, PKI, CORPUS, WORK.  Part 3 needs mount(2) (root); it is
# skipped, and says so, where tmpfs cannot be mounted.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy='*'
W=$WORK/faults
MNT=$W/tmpfs-cache
umount "$MNT" 2>/dev/null || true
rm -rf "$W" && mkdir -p "$W"
T0=$SECONDS
MOD=/usr/lib/softhsm/libsofthsm2.so

PIDS=()
cleanup() {
	local p
	[[ -d $W ]] && touch "$W/stop-hammer"
	kill_started
	mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
	# The token directory must never stay moved away.
	[[ -d $W/pki/tokens.away && ! -e $W/pki/tokens ]] && mv -T "$W/pki/tokens.away" "$W/pki/tokens"
	[[ -e $W/pki/softhsm2.conf.away ]] && mv -T "$W/pki/softhsm2.conf.away" "$W/pki/softhsm2.conf"
	if [[ -d $W/pki/tokens.real ]]; then
		[[ -e $W/pki/tokens ]] && mv -T "$W/pki/tokens" "$W/pki/tokens.gone"
		mv -T "$W/pki/tokens.real" "$W/pki/tokens"
	fi
	return 0
}
trap cleanup EXIT

TOKEN=$(openssl rand -hex 24); printf %s "$TOKEN" >"$W/token"; chmod 600 "$W/token"
F=$CORPUS/hello64.exe
D=$("$SIGNGATE" hash "$F" | cut -d' ' -f1)
printf '{"key":"codesign","digest_algorithm":"sha256","digest":"%s","file_name":"hello64.exe","format":"pe"}' "$D" >"$W/req.json"
printf '{"key":"codesign-ec","digest_algorithm":"sha256","digest":"%s","file_name":"hello64.exe","format":"pe"}' "$D" >"$W/req-ec.json"

# service_ini NAME PKI-DIR PORT: a signing service with the RSA key of PKI-DIR
# (codesign) and its EC key (codesign-ec), both on the one token.
service_ini() {
	cat >"$W/$1.ini" <<INI
[log]
file = $W/$1.log
[service]
listen = 127.0.0.1:$3
tls_cert = $2/tls.pem
tls_key = $2/tls.key
threads = 4
[key codesign]
uri = pkcs11:token=signgate;object=codesign-rsa?module-path=$MOD&pin-source=file:$2/pin.txt
cert = $2/codesign-rsa.pem
[key codesign-ec]
uri = pkcs11:token=signgate;object=codesign-ec?module-path=$MOD&pin-source=file:$2/pin.txt
cert = $2/codesign-ec.pem
[client downloads]
token = file:$W/token
keys = codesign codesign-ec
INI
}
# sign_req URL [REQ [BODY]]: one signing request (default $W/req.json, the RSA
# key); prints the HTTP status, body in BODY (default $W/body).
sign_req() {
	curl -s -m 20 -o "${3:-$W/body}" -w '%{http_code}' --cacert "$PKI/root-ca.pem" -H "Authorization: Bearer $TOKEN" \
		-H 'Content-Type: application/json' --data-binary "@${2:-$W/req.json}" "$1/v1/sign" || echo 000
}
health() { curl -s -m 5 -o /dev/null -w '%{http_code}' --cacert "$PKI/root-ca.pem" "$1/health" || echo 000; }
# sig_valid BODY: the signature in BODY attaches to hello64.exe and verifies
# with osslsigncode (quietly; BODY.der and BODY.exe are left beside it).
sig_valid() {
	python3 -c 'import json,base64,sys; open(sys.argv[2],"wb").write(base64.b64decode(json.load(open(sys.argv[1]))["signature"]))' \
		"$1" "$1.der" 2>/dev/null \
		&& "$SIGNGATE" attach-signature "$F" --signature "$1.der" -o "$1.exe" >/dev/null 2>&1 \
		&& osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$1.exe" >/dev/null 2>&1
}
# sig_ok NAME: the signature in $W/body attaches to hello64.exe and verifies.
sig_ok() { sig_valid "$W/body" && ok "$1" || bad "$1: the signature does not verify"; }
# signs_again URL: asks for a signature every 0.2 s until one is granted
# (0) or 50 were not (1); the last status in $code, its body in $W/body.
signs_again() {
	local _
	for _ in $(seq 1 50); do
		code=$(sign_req "$1")
		[[ $code == 200 ]] && return 0
		sleep 0.2
	done
	return 1
}
# log_since N: the service's log after its first N lines.
log_since() { tail -n +"$(($1 + 1))" "$W/hsm.log"; }

# ------------------------------------------------------------------ 1. the token goes away

# A copy of the PKI, so the fixture's token is never touched.
cp -a "$PKI" "$W/pki"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$W/pki/tokens" >"$W/pki/softhsm2.conf"
PORT=$(free_port)
service_ini hsm "$W/pki" "$PORT"
SOFTHSM2_CONF=$W/pki/softhsm2.conf start hsm "$SIGNGATE" service --config "$W/hsm.ini" || { bad "HSM: service did not start"; summary; exit 1; }
HSM=$URL HSM_PID=$PID
code=$(sign_req "$HSM")
[[ $code == 200 ]] && sig_ok "HSM present: signing works" || bad "HSM present: HTTP $code $(head -c 200 "$W/body")"
code=$(sign_req "$HSM" "$W/req-ec.json")
[[ $code == 200 ]] && sig_ok "HSM present: signing with the EC key works" || bad "HSM present, EC: HTTP $code $(head -c 200 "$W/body")"

# hammer: 4 clients, RSA and EC, one request after another until
# $W/stop-hammer exists; one status code per line in $W/hammer.codes.
hammer() {
	local i
	for i in 1 2 3 4; do
		(
			req=$W/req.json; ((i % 2)) && req=$W/req-ec.json
			until [[ -e $W/stop-hammer ]]; do
				echo "$(sign_req "$HSM" "$req" "$W/hammer.$i.body")" >>"$W/hammer.codes"
				sleep 0.05
			done
		) &
	done
	wait
}
rm -f "$W/stop-hammer" "$W/hammer.codes"
hammer &
HAMMER=$!
sleep 1
mv -T "$W/pki/tokens" "$W/pki/tokens.away"
# SoftHSM2 re-reads the token's object files before each operation; with
# the directory gone it no longer finds the token (or its key).
sleep 3
codes=
for _ in 1 2 3; do codes+="$(sign_req "$HSM") "; done
log_away=$(tail -n 5 "$W/hsm.log")
if [[ $codes == "503 503 503 " ]]; then ok "token gone: signing answers 503 ($codes)"
elif [[ $codes == "200 200 200 " ]]; then
	echo "note: SoftHSM2 kept signing from memory with its token directory gone"
	ok "token gone: SoftHSM2 serves from memory (not observable as a fault)"
else bad "token gone: signing answered $codes: $(head -c 200 "$W/body")"; fi
[[ $(health "$HSM") == 200 ]] && ok "token gone: /health still answers" || bad "token gone: /health"
kill -0 "$HSM_PID" 2>/dev/null && ok "token gone: the service is still running" || bad "token gone: the service died"

mv -T "$W/pki/tokens.away" "$W/pki/tokens"
# SoftHSM2 finds its tokens only in C_Initialize, so a token whose
# directory vanished stays gone until the module is initialized again:
# the backend does that itself (p11_module_reinit, at most once a second)
# when it cannot find the token, and both signers open new sessions.
signs_again "$HSM" && sig_ok "token back: signing works again without a restart" \
	|| bad "token back: still HTTP $code after 10 s: $(head -c 200 "$W/body")"
code=$(sign_req "$HSM" "$W/req-ec.json")
[[ $code == 200 ]] && sig_ok "token back: the EC key on the token signs again too" \
	|| bad "token back, EC: HTTP $code $(head -c 200 "$W/body")"
sleep 1
touch "$W/stop-hammer"
wait "$HAMMER"
n_all=$(wc -l <"$W/hammer.codes")
n_odd=$(grep -cvE '^(200|503)$' "$W/hammer.codes")
[[ $n_all -gt 20 && $n_odd == 0 ]] \
	&& ok "token away and back under load: $n_all requests, each 200 or 503 ($(grep -c '^503$' "$W/hammer.codes") refused)" \
	|| bad "token away and back under load: $n_odd of $n_all answers not 200 or 503: $(sort "$W/hammer.codes" | uniq -c | tr '\n' ' ')"
[[ $(tail -n 4 "$W/hammer.codes" | sort -u) == 200 ]] && ok "under load: the last answers are 200" \
	|| bad "under load: the last answers: $(tail -n 4 "$W/hammer.codes" | tr '\n' ' ')"
[[ $(health "$HSM") == 200 ]] && ok "token back: /health answers" || bad "token back: /health"
echo "     service log while the token was away: $(grep -m1 -iE 'error' <<<"$log_away" | cut -c1-200)"
stop "$HSM_PID"
SOFTHSM2_CONF=$W/pki/softhsm2.conf start hsm2 "$SIGNGATE" service --config "$W/hsm.ini" && HSM=$URL HSM_PID=$PID
code=$(sign_req "$HSM")
[[ $code == 200 ]] && sig_ok "token back, service restarted: signing works (the token is intact)" || bad "after restart: HTTP $code $(head -c 200 "$W/body")"

# ------------------------------------------------------------------ 1b. another token, same label

# A reconnect finds the token by its label: a token swapped for another
# with the same label and PIN must not sign.  "fresh": a new token (another
# serial number); "copy": a copy of the token with its two signing keys
# replaced by new ones of the same labels and ids (same serial number too).
PIN=$(cat "$W/pki/pin.txt")
p11imp() { SOFTHSM2_CONF=$W/$1/softhsm2.conf pkcs11-tool --module "$MOD" --token-label signgate --login --pin "$PIN" "${@:2}" >/dev/null 2>&1; }
newkeys() { p11imp "$1" --keypairgen --key-type rsa:3072 --label codesign-rsa --id 01 && p11imp "$1" --keypairgen --key-type EC:prime256v1 --label codesign-ec --id 02; }
for imp in fresh copy; do
	mkdir -p "$W/$imp"
	printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$W/$imp/tokens" >"$W/$imp/softhsm2.conf"
done
mkdir "$W/fresh/tokens"
SOFTHSM2_CONF=$W/fresh/softhsm2.conf softhsm2-util --init-token --free --label signgate --pin "$PIN" --so-pin 87654321 >/dev/null
cp -a "$W/pki/tokens" "$W/copy/tokens"
for k in codesign-rsa codesign-ec; do
	for t in privkey pubkey; do p11imp copy --delete-object --type $t --label $k; done
done
newkeys fresh && newkeys copy || bad "could not make the impostor tokens"

declare -A IMP_SAYS=([fresh]='now has serial number' [copy]='does not verify with the certificate')
for imp in fresh copy; do
	n0=$(wc -l <"$W/hsm.log")
	mv -T "$W/pki/tokens" "$W/pki/tokens.real"
	cp -a "$W/$imp/tokens" "$W/pki/tokens"
	codes= badsig=0
	for i in $(seq 1 12); do
		req=$W/req.json; ((i % 2)) && req=$W/req-ec.json
		code=$(sign_req "$HSM" "$req" "$W/imp.body")
		codes+="$code "
		[[ $code == 200 ]] && ! sig_valid "$W/imp.body" && badsig=$((badsig + 1))
		sleep 0.25
	done
	says=$(log_since "$n0" | grep -m1 -F "${IMP_SAYS[$imp]}")
	[[ $badsig == 0 ]] && ok "token swapped ($imp): no signature that does not verify" \
		|| bad "token swapped ($imp): $badsig answers 200 with a signature that does not verify ($codes)"
	[[ $codes == *"503 503 503 503 " && -n $says ]] \
		&& ok "token swapped ($imp): refused with 503, and the log says why" \
		|| bad "token swapped ($imp): answers $codes; log: ${says:-nothing about '${IMP_SAYS[$imp]}'}"
	echo "     $imp: ${says:0:240}"
	# Renames only (mv -T never moves into a directory): SoftHSM2 may be
	# writing into the impostor's directory at this moment.
	mv -T "$W/pki/tokens" "$W/pki/tokens.$imp-out"
	mv -T "$W/pki/tokens.real" "$W/pki/tokens"
	signs_again "$HSM" && sig_ok "token swapped ($imp) and put back: signing works again" \
		|| bad "token swapped ($imp) and put back: still HTTP $code: $(head -c 200 "$W/body")"
done

# ------------------------------------------------------------------ 1c. the token's PIN changed

# The token's PIN changes while the service runs (its login still holds);
# then the token goes away and comes back, so the service must log in
# again.  A wrong PIN counts down the token's tries: the service logs in
# once per key, then refuses without trying again until it is restarted.
n0=$(wc -l <"$W/hsm.log")
p11pin() { SOFTHSM2_CONF=$W/pki/softhsm2.conf pkcs11-tool --module "$MOD" --token-label signgate --login --pin "$1" --change-pin --new-pin "$2" >/dev/null 2>&1; }
p11pin "$PIN" 11223344 || bad "could not change the token's PIN"
mv -T "$W/pki/tokens" "$W/pki/tokens.away"
for _ in 1 2 3; do sign_req "$HSM" >/dev/null; sign_req "$HSM" "$W/req-ec.json" >/dev/null; sleep 0.4; done
mv -T "$W/pki/tokens.away" "$W/pki/tokens"
codes=
for i in $(seq 1 20); do
	req=$W/req.json; ((i % 2)) && req=$W/req-ec.json
	codes+="$(sign_req "$HSM" "$req") "
	sleep 0.15
done
logins=$(log_since "$n0" | grep -c 'C_Login')
refused=$(log_since "$n0" | grep -m1 'refused the PIN')
[[ $codes != *200* && $logins -ge 1 && $logins -le 2 && -n $refused ]] \
	&& ok "PIN changed: refused with 503; $logins failed login(s), one per key, no more" \
	|| bad "PIN changed: answers $codes; $logins failed logins logged; ${refused:-no 'refused the PIN' in the log}"
echo "     ${refused:0:240}"
p11pin 11223344 "$PIN" || bad "could not change the token's PIN back"
stop "$HSM_PID"
SOFTHSM2_CONF=$W/pki/softhsm2.conf start hsm3 "$SIGNGATE" service --config "$W/hsm.ini" && HSM=$URL HSM_PID=$PID
code=$(sign_req "$HSM")
[[ $code == 200 ]] && sig_ok "PIN set back, service restarted: signing works" || bad "PIN set back, after restart: HTTP $code $(head -c 200 "$W/body")"

# ------------------------------------------------------------------ 1d. the module cannot start again

# The token goes away with SoftHSM2's configuration file: re-initializing
# the module fails (C_Initialize), which the log names; with both back,
# signing works again without a restart.
n0=$(wc -l <"$W/hsm.log")
mv -T "$W/pki/tokens" "$W/pki/tokens.away"
mv -T "$W/pki/softhsm2.conf" "$W/pki/softhsm2.conf.away"
for _ in $(seq 1 8); do sign_req "$HSM" >/dev/null; sleep 0.3; done
said=$(log_since "$n0" | grep -m1 'could not be initialized again (C_Initialize: CKR_')
mv -T "$W/pki/softhsm2.conf.away" "$W/pki/softhsm2.conf"
mv -T "$W/pki/tokens.away" "$W/pki/tokens"
[[ -n $said ]] && ok "module cannot be initialized: the log names C_Initialize's error" \
	|| bad "module cannot be initialized: no 'could not be initialized again' in the log"
echo "     ${said:0:240}"
signs_again "$HSM" && sig_ok "module initialized again once its configuration is back: signing works" \
	|| bad "configuration back: still HTTP $code: $(head -c 200 "$W/body")"
stop "$HSM_PID"

# ------------------------------------------------------------------ 2. the service killed mid-request

SVC_PORT=$(free_port)
service_ini svc "$PKI" "$SVC_PORT"
SVC_URL=https://127.0.0.1:$SVC_PORT
export SOFTHSM2_CONF=$PKI/softhsm2.conf
start svc "$SIGNGATE" service --config "$W/svc.ini" || { bad "service did not start"; summary; exit 1; }
SVC_PID=$PID

ROOT=$W/root
mkdir -p "$ROOT"
N=60
# Distinct files (each a new signing request): a PE with a different overlay.
for ((i = 0; i < N; i++)); do
	src=$CORPUS/hello64.exe; ((i % 3 == 1)) && src=$CORPUS/zlib1-64.dll; ((i % 3 == 2)) && src=$CORPUS/hello32.exe
	{ cat "$src"; printf 'overlay %d' "$i"; } >"$ROOT/f$i.exe"
done
touch -d '-1 minute' "$ROOT"/*

# serve_ini NAME FAILURE [CACHE]: a download server using the service.
serve_ini() {
	cat >"$W/$1.ini" <<INI
[log]
file = $W/$1.log
[serve]
root = $ROOT
cache_dir = ${3:-$W/cache-$1}
threads = 8
service_url = $SVC_URL
service_ca = $PKI/root-ca.pem
service_token = file:$W/token
service_key = codesign
connect_timeout = 2
timeout = 10
retries = 1
on_sign_failure = $2
INI
}
serve_ini refuse refuse
start refuse "$SIGNGATE" serve --config "$W/refuse.ini" --listen 127.0.0.1:0 || { bad "serve did not start"; summary; exit 1; }
R=$URL R_PID=$PID
serve_ini unsigned serve-unsigned
start unsigned "$SIGNGATE" serve --config "$W/unsigned.ini" --listen 127.0.0.1:0 || { bad "serve did not start"; summary; exit 1; }
U=$URL U_PID=$PID

# killer: SIGKILLs the service every 0.2-0.6 s and starts it again, on the
# same port, until $W/stop-killer exists.
killer() {
	local n=0
	while [[ ! -e $W/stop-killer ]]; do
		sleep "0.$((RANDOM % 5 + 2))"
		kill -KILL "$SVC_PID" 2>/dev/null; wait "$SVC_PID" 2>/dev/null
		n=$((n + 1))
		sleep 0.$((RANDOM % 3))
		start svc "$SIGNGATE" service --config "$W/svc.ini" >/dev/null || true
		SVC_PID=$PID
	done
	kill -KILL "$SVC_PID" 2>/dev/null; wait "$SVC_PID" 2>/dev/null
	echo "$n" >"$W/kills"
}

# downloads BASE TAG: every file, 8 at a time; one line per download:
# "file code content-length bytes-received".
downloads() {
	mkdir -p "$W/dl-$2"
	export W
	seq 0 $((N - 1)) | xargs -P 8 -I{} sh -c \
		'd=$W/dl-'"$2"'; code=$(curl -s -m 30 -D "$d/f{}.hdr" -o "$d/f{}.exe" -w "%{http_code}" "'"$1"'/download/f{}.exe"); \
		 clen=$(tr -d "\r" <"$d/f{}.hdr" | sed -n "s/^[Cc]ontent-[Ll]ength: *//p" | tail -n 1); \
		 echo "f{} ${code:-000} ${clen:--} $(stat -c %s "$d/f{}.exe" 2>/dev/null || echo 0)" >"$d/f{}.res"'
	cat "$W/dl-$2"/*.res >"$W/dl-$2.codes"
}

rm -f "$W/stop-killer"
killer &
KILLER=$!
downloads "$R" refuse
downloads "$U" unsigned
touch "$W/stop-killer"
wait "$KILLER"
echo "     service killed $(cat "$W/kills" 2>/dev/null) times during $((2 * N)) downloads"

# check_downloads TAG MODE: MODE refuse (200 signed or 503) or unsigned
# (200 signed or the original bytes).
check_downloads() {
	local tag=$1 mode=$2 f code clen got n200=0 n503=0 norig=0 wrong=0
	while read -r f code clen got; do
		local out=$W/dl-$tag/$f.exe orig=$ROOT/$f.exe
		if [[ $code == 503 && $mode == refuse ]]; then n503=$((n503 + 1)); continue; fi
		if [[ $code != 200 ]]; then bad "$tag $f: HTTP $code"; wrong=$((wrong + 1)); continue; fi
		if [[ $clen != "$got" ]]; then bad "$tag $f: Content-Length '$clen', received $got bytes"; wrong=$((wrong + 1)); continue; fi
		if [[ $mode == unsigned ]] && cmp -s "$out" "$orig"; then norig=$((norig + 1)); continue; fi
		if osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$out" >/dev/null 2>&1 \
			&& [[ $("$SIGNGATE" hash "$out" | cut -d' ' -f1) == $("$SIGNGATE" hash "$orig" | cut -d' ' -f1) ]]; then
			n200=$((n200 + 1))
		else bad "$tag $f: 200 but not a valid signed copy of the file ($got bytes)"; wrong=$((wrong + 1)); fi
	done <"$W/dl-$tag.codes"
	n=$(wc -l <"$W/dl-$tag.codes")
	[[ $n -eq $N ]] && ok "$tag: $N downloads answered" || bad "$tag: $n answers for $N downloads"
	[[ $wrong -eq 0 ]] && ok "$tag: no wrong answer ($n200 signed and valid, $n503 refused with 503, $norig original bytes)" \
		|| bad "$tag: $wrong wrong answers"
	echo "     $tag: $n200 signed and valid, $n503 x 503, $norig original bytes"
}
check_downloads refuse refuse
check_downloads unsigned unsigned
for tag in refuse unsigned; do
	n=$(find "$W/cache-$tag" -name '.tmp-*' | wc -l)
	[[ $n -eq 0 ]] && ok "$tag: no temporary file left in the cache" || bad "$tag: $n temporary files left in the cache"
done
# With the service back, everything refused before is signed now.
start svc "$SIGNGATE" service --config "$W/svc.ini" && SVC_PID=$PID
fails=0
for ((i = 0; i < N; i++)); do
	code=$(curl -s -m 30 -o "$W/after.exe" -w '%{http_code}' "$R/download/f$i.exe") || code=000
	if [[ $code != 200 ]] || ! osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$W/after.exe" >/dev/null 2>&1; then fails=$((fails + 1)); fi
done
[[ $fails -eq 0 ]] && ok "service back: all $N files download signed and valid" || bad "service back: $fails of $N downloads not signed"
stop "$U_PID"

# ------------------------------------------------------------------ 3. a full disk under the cache

mkdir -p "$MNT"
if mount -t tmpfs -o size=256k tmpfs "$MNT" 2>"$W/mount.err"; then
	{ cat "$CORPUS/hello64.exe"; head -c 400000 /dev/urandom; } >"$ROOT/huge.exe"
	touch -d '-1 minute' "$ROOT/huge.exe"
	serve_ini full refuse "$MNT"
	start full "$SIGNGATE" serve --config "$W/full.ini" --listen 127.0.0.1:0 && FULL=$URL FULL_PID=$PID
	for round in 1 2; do
		code=$(curl -s -m 30 -o "$W/huge.out" -w '%{http_code}' "$FULL/download/huge.exe") || code=000
		[[ $code == 503 ]] && ok "disk full ($round): a file larger than the cache gets 503" \
			|| bad "disk full ($round): HTTP $code, $(stat -c %s "$W/huge.out") bytes"
		n=$(find "$MNT" -name '.tmp-*' | wc -l)
		[[ $n -eq 0 ]] && ok "disk full ($round): no partial file left in the cache" || bad "disk full ($round): $n partial files left"
	done
	grep -qiE 'huge.exe.*(space|cache)' "$W/full.log" && ok "disk full: logged" || bad "disk full: nothing in the log: $(tail -n 3 "$W/full.log")"
	code=$(curl -s -m 30 -o "$W/small.exe" -w '%{http_code}' "$FULL/download/f0.exe") || code=000
	[[ $code == 200 ]] && osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$W/small.exe" >/dev/null 2>&1 \
		&& ok "disk full: a file that fits is still signed and served" || bad "disk full: small file HTTP $code"
	[[ $(curl -s -o /dev/null -w '%{http_code}' "$FULL/health") == 200 ]] && ok "disk full: /health" || bad "disk full: /health"
	# Fill the disk from outside: the next new file does not fit either.
	head -c 300000 /dev/zero >"$MNT/filler" 2>/dev/null
	code=$(curl -s -m 30 -o "$W/f1.out" -w '%{http_code}' "$FULL/download/f1.exe") || code=000
	[[ $code == 503 ]] && ok "disk filled up: a new file gets 503" || bad "disk filled up: HTTP $code"
	n=$(find "$MNT" -name '.tmp-*' | wc -l)
	[[ $n -eq 0 ]] && ok "disk filled up: no partial file left" || bad "disk filled up: $n partial files left"
	rm -f "$MNT/filler"
	code=$(curl -s -m 30 -o "$W/f1.out" -w '%{http_code}' "$FULL/download/f1.exe") || code=000
	[[ $code == 200 ]] && osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$W/f1.out" >/dev/null 2>&1 \
		&& ok "space freed: signed again" || bad "space freed: HTTP $code"
	stop "$FULL_PID"
	umount "$MNT"
else
	echo "skip disk-full test: cannot mount a tmpfs: $(cat "$W/mount.err")"
fi
stop "$R_PID"
stop "$SVC_PID"

if grep -lE 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$W"/*.err >/dev/null 2>&1; then
	bad "sanitizer reports in: $(grep -lE 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$W"/*.err | tr '\n' ' ')"
fi
echo "test_faults: $((SECONDS - T0)) s"
summary
