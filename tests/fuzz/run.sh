#!/usr/bin/env bash
# make fuzz: builds the harnesses with clang's libFuzzer, ASan and UBSan in
# build-fuzz/ and runs each for FUZZ_SECONDS (default 60), starting from the
# committed corpus.  New inputs go to build-fuzz/corpus-NAME; crashes to
# build-fuzz/crash-*.  Copy interesting finds into tests/fuzz/corpus/NAME.
set -euo pipefail
# FUZZ_ONLY="pkcs7 timestamp" runs those harnesses only.
cd "$(dirname "$0")/../.."
SECS=${FUZZ_SECONDS:-60}
B=build-fuzz
mkdir -p "$B"
# The libraries are instrumented too (SG_FUZZ): without it libFuzzer sees
# only the harness's own edges and mutates blind.
CC=clang cmake -S . -B "$B/lib" -DSG_SANITIZE=ON -DSG_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$B/lib" -j "$(nproc)" --target signgate signgate_server >/dev/null
FLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc/lib -Isrc/server
  -DOPENSSL_API_COMPAT=30000 -DOPENSSL_NO_DEPRECATED -D_DEFAULT_SOURCE"
LIBS="$B/lib/libsigngate_server.a $B/lib/libsigngate.a $(pkg-config --libs p11-kit-1 jansson inih libevent_openssl libevent_pthreads libcurl) -lssl -lcrypto -ldl -lpthread"
fails=0
for h in ${FUZZ_ONLY:-pe pkcs7 timestamp config request}; do
	# shellcheck disable=SC2086
	clang $FLAGS -DSG_FUZZ_CA="\"$PWD/tests/kat/cert.pem\"" -DSG_FUZZ_KEY="\"$PWD/tests/kat/key.pem\"" \
		-DSG_FUZZ_PE="\"$PWD/tests/fuzz/corpus/pe/tiny.exe\"" tests/fuzz/fuzz_$h.c $LIBS -o "$B/fuzz_$h"
	mkdir -p "$B/corpus-$h"
	echo "fuzz_$h: $SECS s"
	if "$B/fuzz_$h" -print_final_stats=1 -max_total_time="$SECS" -max_len=65536 -artifact_prefix="$B/" \
		"$B/corpus-$h" "tests/fuzz/corpus/$h" > "$B/fuzz_$h.log" 2>&1; then
		grep -E '^Done|stat::number_of_executed_units' "$B/fuzz_$h.log" | tail -1
	else
		fails=$((fails + 1))
		echo "fuzz_$h found a problem: see $B/fuzz_$h.log and $B/crash-*, $B/leak-*"
		grep -E 'ERROR|SUMMARY' "$B/fuzz_$h.log" | head -3
	fi
done
exit $((fails > 0))
