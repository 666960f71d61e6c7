#!/usr/bin/env bash
# Signing benchmark: signgate sign vs osslsigncode sign vs one SHA-256 pass
# (openssl dgst -sha256, which uses the CPU's SHA instructions: the floor for
# this job), on the same 100 MB and 1 GB PE files with the same key, in one
# run.  Reports the best of N wall times, the ratios, and peak memory.
# Two more yardsticks: `signgate hash` (the same pass without output) and
# `cp + sync` (writing the file durably: signgate fsyncs its output, so on a
# slow disk this, not SHA-256, is the floor for signing).
# Usage: bench/run.sh [SIZES_MB...]   (default: 100 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
SG=$PWD/build/signgate
B=${BENCH_DIR:-$PWD/build/bench}
N=${BENCH_RUNS:-3}
mkdir -p "$B"
bash tests/setup/make-pki.sh "$B/pki"
P=$B/pki

if [[ ! -s $B/stub.exe ]]; then
	printf '#include <stdio.h>\nint main(void){puts("bench");return 0;}\n' > "$B/stub.c"
	x86_64-w64-mingw32-gcc -O2 -s -o "$B/stub.exe" "$B/stub.c"
fi

# best_of CMD...: prints "seconds peak_kb" of the fastest of N runs.
best_of() {
	local best="" mem=0 t m
	for _ in $(seq "$N"); do
		rm -f "$B"/out-*.exe; sync
		local t0=$EPOCHREALTIME
		/usr/bin/time -f '%M' -o "$B/time" "$@" >"$B/last.log" 2>&1 \
			|| { echo "failed: $* ($(tail -2 "$B/last.log"))" >&2; exit 1; }
		t=$(awk "BEGIN{printf \"%.3f\", $EPOCHREALTIME - $t0}")
		read -r m < "$B/time"
		if [[ -z $best ]] || awk "BEGIN{exit !($t < $best)}"; then best=$t; fi
		(( m > mem )) && mem=$m
	done
	echo "$best $mem"
}

printf '%-8s %-22s %9s %10s %9s\n' size tool seconds peak_MB ratio
for mb in "${@:-100 1024}"; do
	for mb1 in $mb; do
		f=$B/app-${mb1}M.exe
		if [[ ! -s $f ]]; then
			# A real PE stub followed by an overlay (as installers are):
			# everything is hashed all the same.
			cp "$B/stub.exe" "$f"
			head -c $((mb1 * 1024 * 1024)) /dev/urandom >> "$f"
		fi
		read -r t_sha m_sha < <(best_of openssl dgst -sha256 "$f")
		read -r t_h m_h < <(best_of "$SG" hash "$f")
		read -r t_cp m_cp < <(best_of sh -c 'cp "$1" "$2" && sync -f "$2"' cp "$f" "$B/out-cp.exe")
		read -r t_sg m_sg < <(best_of "$SG" sign --key "$P/soft.key" --cert "$P/codesign-soft.pem" "$f" -o "$B/out-sg.exe")
		read -r t_os m_os < <(best_of osslsigncode sign -certs "$P/codesign-soft.pem" -key "$P/soft.key" -in "$f" -out "$B/out-os.exe")
		"$SG" sign --key "$P/soft.key" --cert "$P/codesign-soft.pem" "$f" -o "$B/out-sg.exe"
		osslsigncode verify -CAfile "$P/root-ca.pem" -in "$B/out-sg.exe" >/dev/null || { echo "signgate output does not verify" >&2; exit 1; }
		r() { awk "BEGIN{printf \"%.2f\", $1 / $t_sha}"; }
		printf '%-8s %-22s %9s %10.1f %9s\n' "${mb1}M" "openssl dgst -sha256" "$t_sha" "$(awk "BEGIN{print $m_sha/1024}")" 1.00
		printf '%-8s %-22s %9s %10.1f %9s\n' "${mb1}M" "signgate hash" "$t_h" "$(awk "BEGIN{print $m_h/1024}")" "$(r "$t_h")"
		printf '%-8s %-22s %9s %10.1f %9s\n' "${mb1}M" "cp + sync (disk floor)" "$t_cp" "$(awk "BEGIN{print $m_cp/1024}")" "$(r "$t_cp")"
		printf '%-8s %-22s %9s %10.1f %9s\n' "${mb1}M" "signgate sign" "$t_sg" "$(awk "BEGIN{print $m_sg/1024}")" "$(r "$t_sg")"
		printf '%-8s %-22s %9s %10.1f %9s\n' "${mb1}M" "osslsigncode sign" "$t_os" "$(awk "BEGIN{print $m_os/1024}")" "$(r "$t_os")"
		rm -f "$B/out-sg.exe"
	done
done
