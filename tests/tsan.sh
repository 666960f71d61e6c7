#!/usr/bin/env bash
# tsan.sh BUILD-DIR [JOBS]: runs the tests where threads meet, on a build
# made with -DSG_TSAN=ON, and fails on any ThreadSanitizer report.  The
# servers run in the background of the test scripts, so a report would not
# fail the script itself: every instrumented process writes its reports to
# BUILD-DIR/tsan/, and this script fails if that directory is not empty.
set -uo pipefail
B=$1
JOBS=${2:-$(nproc)}
TESTS='^(pkcs11|test_(faults|serve|service|admin|proxy|load|auth))$'
# Races in other people's code, each with its reason.
SUPP=$(cd "$(dirname "$0")" && pwd)/tsan.supp
rm -rf "$B/tsan" && mkdir -p "$B/tsan"
cd "$B" || exit 2
TSAN_OPTIONS="log_path=$PWD/tsan/report report_signal_unsafe=0 second_deadlock_stack=1 suppressions=$SUPP" \
	ctest -R "$TESTS" --output-on-failure -j "$JOBS"
rc=$?
reports=(tsan/report.*)
if [[ -e ${reports[0]} ]]; then
	echo "ThreadSanitizer: ${#reports[@]} report file(s) in $B/tsan:"
	for r in "${reports[@]}"; do
		echo "== $r"
		head -n 60 "$r"
	done
	exit 1
fi
echo "ThreadSanitizer: no report"
exit "$rc"
