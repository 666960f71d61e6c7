# tests/lib.sh - helpers for the shell tests.  Source it; call ok/bad/expect
# for each check and `summary` at the end ("N passed, M failed").
PASSED=0
FAILED=0
FAILED_NAMES=()

ok() { PASSED=$((PASSED + 1)); [[ -n ${VERBOSE:-} ]] && echo "ok   $*"; return 0; }
bad() { FAILED=$((FAILED + 1)); FAILED_NAMES+=("$*"); echo "FAIL $*"; return 0; }

# expect NAME CMD...: CMD must exit 0.
expect() {
	local name=$1; shift
	local out
	if out=$("$@" 2>&1); then ok "$name"; else bad "$name: $* -> exit $?"; echo "$out" | tail -5 | sed 's/^/     /'; fi
}

# expect_exit NAME CODE CMD...: CMD must exit with CODE.
expect_exit() {
	local name=$1 want=$2; shift 2
	local out rc=0
	out=$("$@" 2>&1) || rc=$?
	if [[ $rc -eq $want ]]; then ok "$name"; else bad "$name: $* -> exit $rc, wanted $want"; echo "$out" | tail -5 | sed 's/^/     /'; fi
}

# expect_msg NAME CODE PATTERN CMD...: exit CODE and output matching PATTERN (grep -E).
expect_msg() {
	local name=$1 want=$2 pat=$3; shift 3
	local out rc=0
	out=$("$@" 2>&1) || rc=$?
	if [[ $rc -eq $want ]] && grep -qE -- "$pat" <<<"$out"; then ok "$name"
	else bad "$name: exit $rc (wanted $want), output: $(head -c 300 <<<"$out")"; fi
}

summary() {
	echo "$PASSED passed, $FAILED failed"
	[[ $FAILED -eq 0 ]]
}

# free_port: a free TCP port on 127.0.0.1.
free_port() {
	python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

# osslsigncode's calculated digest of a signed file (lower-case hex).
ossl_digest() {
	osslsigncode verify -in "$1" 2>/dev/null | awk -F': ' '/^Calculated message digest/ {print tolower($2); exit}' | tr -d ' '
}

# ---- servers started in the background ($W: the test's work directory)

PIDS=()

# kill_started: ends every process in PIDS (call it from the EXIT trap).
kill_started() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	return 0
}

# start NAME CMD...: runs CMD in the background until it prints "listening
# on URL" (at most 15 s); sets URL and PID, adds PID to PIDS.  Output in
# $W/NAME.out and $W/NAME.err.  If it does not come up: a failed check
# with the last lines of its errors, and non-zero.
start() {
	local name=$1 i; shift
	: >"$W/$name.out"
	"$@" >>"$W/$name.out" 2>>"$W/$name.err" &
	PID=$!
	PIDS+=("$PID")
	URL=
	for ((i = 0; i < 150; i++)); do
		URL=$(sed -n 's/^listening on //p' "$W/$name.out" | tail -n 1) || true
		[[ -n $URL ]] && return 0
		kill -0 "$PID" 2>/dev/null || break
		sleep 0.1
	done
	bad "$name did not start: $(tail -n 3 "$W/$name.err" 2>/dev/null | tr '\n' ' ')"
	return 1
}

# stop PID: SIGTERM and wait (a clean exit lets LeakSanitizer report).
stop() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# get URL OUT: prints the HTTP status (000: no answer); the body goes to OUT.
get() { curl -s --path-as-is -o "$2" -w '%{http_code}' "$1" || echo 000; }

# service_ini NAME [LINE...]: $W/NAME.ini, a signing service for the tests
# on 127.0.0.1 (port 0) with the token's RSA key as "codesign" and one
# client, "downloads", whose token is in $W/token; log $W/NAME.log, audit
# log $W/NAME.jsonl (none with SERVICE_AUDIT=0).  Each LINE goes into
# [service].
service_ini() {
	local name=$1 l; shift
	{
		printf '[log]\nfile = %s\n[service]\nlisten = 127.0.0.1:0\n' "$W/$name.log"
		printf 'tls_cert = %s\ntls_key = %s\n' "$PKI/tls.pem" "$PKI/tls.key"
		[[ ${SERVICE_AUDIT:-1} == 1 ]] && printf 'audit_log = %s\n' "$W/$name.jsonl"
		for l in "$@"; do printf '%s\n' "$l"; done
		printf '[key codesign]\nuri = pkcs11:token=signgate;object=codesign-rsa?module-path=%s' \
			/usr/lib/softhsm/libsofthsm2.so
		printf '&pin-source=file:%s\ncert = %s\n' "$PKI/pin.txt" "$PKI/codesign-rsa.pem"
		printf '[client downloads]\ntoken = file:%s\nkeys = codesign\n' "$W/token"
	} >"$W/$name.ini"
}
