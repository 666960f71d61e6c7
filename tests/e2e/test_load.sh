#!/usr/bin/env bash
# test_load.sh - the servers under load on loopback (issue 6):
#  - 500 downloads of 4 PE files through the download server, all 500 at
#    once (LOAD_CONC): every answer 200 with the bytes of the signed copy (size and
#    SHA-256 of all 500; osslsigncode verify of 50 of them);
#  - 2,000 signing requests to the signing service, 100 connections at a
#    time (20 curl processes, 5 parallel transfers each, keep-alive): every
#    answer 200 with a signature; 20 of them attached and verified;
#  - the resident memory (VmRSS) of both servers after the run is within
#    10% of what it was after a warm-up, plus 2 MB of slack for the
#    allocator (glibc keeps freed arenas of its per-thread pools).
# Prints the figures (docs/RELIABILITY.md quotes them).  About 30 s.
# Env: SIGNGATE, PKI, CORPUS, WORK.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy='*'
export SOFTHSM2_CONF=$PKI/softhsm2.conf
W=$WORK/load
rm -rf "$W" && mkdir -p "$W"/{root,dl,sig}
T0=$SECONDS
MOD=/usr/lib/softhsm/libsofthsm2.so
NDL=${LOAD_DOWNLOADS:-500}
CONC=${LOAD_CONC:-500}
NSIGN=${LOAD_SIGNS:-2000}

PIDS=()
trap kill_started EXIT
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }   # kB

TOKEN=$(openssl rand -hex 24); printf %s "$TOKEN" >"$W/token"; chmod 600 "$W/token"
SERVICE_AUDIT=0 service_ini service "threads = 8"
start service "$SIGNGATE" service --config "$W/service.ini" || { bad "service did not start"; summary; exit 1; }
SVC=$URL SVC_PID=$PID

FILES=(hello64.exe zlib1-64.dll hello32.exe wine64-kernel32.dll)
for f in "${FILES[@]}"; do cp "$CORPUS/$f" "$W/root/$f"; done
touch -d '-1 minute' "$W/root"/*
cat >"$W/serve.ini" <<INI
[log]
file = $W/serve.log
[serve]
root = $W/root
cache_dir = $W/cache
threads = 16
service_url = $SVC
service_ca = $PKI/root-ca.pem
service_token = file:$W/token
service_key = codesign
INI
start serve "$SIGNGATE" serve --config "$W/serve.ini" --listen 127.0.0.1:0 || { bad "serve did not start"; summary; exit 1; }
DL=$URL DL_PID=$PID

# The expected signed copies: the first download of each, checked.
declare -A WANT
for f in "${FILES[@]}"; do
	code=$(curl -s -o "$W/ref-$f" -w '%{http_code}' "$DL/download/$f") || code=000
	if [[ $code == 200 ]] && osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$W/ref-$f" >/dev/null 2>&1; then
		WANT[$f]="$(sha256sum <"$W/ref-$f" | cut -d' ' -f1) $(stat -c %s "$W/ref-$f")"
	else bad "reference download of $f: HTTP $code or invalid"; fi
done

D=$("$SIGNGATE" hash "$CORPUS/hello64.exe" | cut -d' ' -f1)
printf '{"key":"codesign","digest_algorithm":"sha256","digest":"%s","file_name":"hello64.exe","format":"pe"}' "$D" >"$W/req.json"
# sign_batch N PREFIX: N signing requests over 20 curl processes, each with
# 5 transfers in parallel over kept-alive connections; one status a line
# in $W/PREFIX.codes, bodies in $W/sig/PREFIX-W-I.json.
sign_batch() {
	local n=$1 p=$2 per=$(( $1 / 20 )) w i
	for ((w = 0; w < 20; w++)); do
		for ((i = 0; i < per; i++)); do printf 'url = "%s/v1/sign"\noutput = "%s/sig/%s-%d-%d.json"\n' "$SVC" "$W" "$p" "$w" "$i"; done >"$W/$p-$w.cfg"
	done
	for ((w = 0; w < 20; w++)); do
		curl -s -Z --parallel-max 5 -m 60 --cacert "$PKI/root-ca.pem" -H "Authorization: Bearer $TOKEN" \
			-H 'Content-Type: application/json' --data-binary "@$W/req.json" -w '%{http_code}\n' -K "$W/$p-$w.cfg" 2>>"$W/curl.err" &
	done >"$W/$p.codes"
	wait_curls
}
# dl_batch N PREFIX [CONC]: N downloads, CONC (100) at a time, round robin
# over FILES.
dl_batch() {
	export DL W
	seq 0 $(($1 - 1)) | awk -v n=${#FILES[@]} -v f="${FILES[*]}" '{split(f, a, " "); print $1, a[$1 % n + 1]}' \
		| xargs -P "${3:-100}" -n 2 sh -c 'curl -s -m 60 -o "$W/dl/'"$2"'-$0" -w "$0 $1 %{http_code}\n" "$DL/download/$1"' >"$W/$2.codes"
}
wait_curls() { local j; for j in $(jobs -p); do [[ $j == "$SVC_PID" || $j == "$DL_PID" ]] || wait "$j"; done; }

# Warm-up: thread pools, TLS sessions, the allocator's arenas.
dl_batch 300 warm
sign_batch 1000 warm
rm -f "$W"/dl/warm-* "$W"/sig/warm-*
sleep 0.5
svc_rss0=$(rss "$SVC_PID") dl_rss0=$(rss "$DL_PID")

t=$EPOCHREALTIME
dl_batch "$NDL" dl "$CONC"
dl_s=$(awk "BEGIN {printf \"%.2f\", $EPOCHREALTIME - $t}")
t=$EPOCHREALTIME
sign_batch "$NSIGN" sign
sign_s=$(awk "BEGIN {printf \"%.2f\", $EPOCHREALTIME - $t}")
sleep 0.5
svc_rss1=$(rss "$SVC_PID") dl_rss1=$(rss "$DL_PID")

# Downloads: every one 200 with the exact bytes of the signed copy.
wrong=0 n=0
while read -r i f code; do
	n=$((n + 1))
	got="$(sha256sum <"$W/dl/dl-$i" | cut -d' ' -f1) $(stat -c %s "$W/dl/dl-$i")"
	if [[ $code != 200 || $got != "${WANT[$f]:-}" ]]; then
		wrong=$((wrong + 1)); [[ $wrong -le 5 ]] && bad "download $i ($f): HTTP $code, $got"
	fi
done <"$W/dl.codes"
[[ $n -eq $NDL && $wrong -eq 0 ]] && ok "$NDL downloads: all 200, each the signed copy byte for byte" \
	|| bad "downloads: $n answered, $wrong wrong"
vfail=0
for i in $(seq 0 $((NDL / 50)) $((NDL - 1)) | head -n 50); do
	osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$W/dl/dl-$i" >/dev/null 2>&1 || vfail=$((vfail + 1))
done
[[ $vfail -eq 0 ]] && ok "50 downloads verified by osslsigncode" || bad "$vfail of 50 sampled downloads do not verify"

# Signing: every answer 200 with a signature; a sample attached and verified.
n=$(wc -l <"$W/sign.codes")
n200=$(grep -c '^200$' "$W/sign.codes")
nsig=$(grep -l '"signature"' "$W"/sig/sign-*.json 2>/dev/null | wc -l)
[[ $n -eq $NSIGN && $n200 -eq $NSIGN && $nsig -eq $NSIGN ]] && ok "$NSIGN signing requests: all 200 with a signature" \
	|| bad "signing: $n answers, $n200 x 200, $nsig signatures (want $NSIGN): $(sort "$W/sign.codes" | uniq -c | tr '\n' ' ')"
vfail=0
for w in $(seq 0 19); do
	b=$W/sig/sign-$w-$((w * 3 % (NSIGN / 20))).json
	python3 -c 'import json,base64,sys; open(sys.argv[2],"wb").write(base64.b64decode(json.load(open(sys.argv[1]))["signature"]))' "$b" "$W/s.der" 2>/dev/null \
		&& "$SIGNGATE" attach-signature "$CORPUS/hello64.exe" --signature "$W/s.der" -o "$W/s.exe" >/dev/null 2>&1 \
		&& osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$W/s.exe" >/dev/null 2>&1 || vfail=$((vfail + 1))
	rm -f "$W/s.exe"
done
[[ $vfail -eq 0 ]] && ok "20 signatures attached and verified" || bad "$vfail of 20 sampled signatures do not verify"

# Memory: within 10% + 2 MB of the warmed-up figure.
# Under AddressSanitizer freed memory sits in its quarantine, so RSS says
# nothing about leaks there (ASan's own leak check does): report only.
asan=$(grep -c __asan_init <(nm -D "$SIGNGATE" 2>/dev/null) || true)
for s in "service $svc_rss0 $svc_rss1" "serve $dl_rss0 $dl_rss1"; do
	read -r name r0 r1 <<<"$s"
	lim=$((r0 + r0 / 10 + 2048))
	if [[ $asan -gt 0 ]]; then
		ok "$name RSS $r0 -> $r1 kB (not judged under ASan)"
	else
		[[ $r1 -le $lim ]] && ok "$name RSS $r0 -> $r1 kB (limit $lim)" || bad "$name RSS grew from $r0 to $r1 kB (limit $lim)"
	fi
done
kill -0 "$SVC_PID" && kill -0 "$DL_PID" && ok "both servers still running" || bad "a server died"
grep -lE 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$W"/*.err >/dev/null 2>&1 && bad "sanitizer reports"

echo "load: $NDL downloads ($CONC concurrent) in $dl_s s; $NSIGN signing requests (100 concurrent) in $sign_s s"
echo "load: RSS service $svc_rss0 -> $svc_rss1 kB, download server $dl_rss0 -> $dl_rss1 kB"
echo "test_load: $((SECONDS - T0)) s"
summary
