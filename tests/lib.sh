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
