#!/usr/bin/env bash
# Runs `signgate hash` and `signgate verify` on every malformed file made
# by make_malformed.py: each must give its exact exit code and a message
# naming the problem, never a crash or a hang (timeout 10 s each); `sign`
# must refuse without leaving an output file.  The valid tricky layouts
# (exit 0) are signed by both signgate and osslsigncode: same digest, the
# signature verifies, the PE checksum is right.
# Env: SIGNGATE, PKI, CORPUS, WORK.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
W=$WORK/malformed
rm -rf "$W" && mkdir -p "$W"
"$SIGNGATE" sign --key "$PKI/soft.key" --cert "$PKI/codesign-soft.pem" "$CORPUS/hello64.exe" -o "$W/signed.exe" \
	|| { echo "cannot make the signed sample"; exit 1; }
python3 "$(dirname "$0")/make_malformed.py" "$CORPUS/hello64.exe" "$W/signed.exe" "$W/cases"

while IFS=$'\t' read -r name code regex; do
	f=$W/cases/$name.bin
	cmd=hash
	[[ $name == garbage-signature || $name == payload-after-signature ]] && cmd=verify
	rc=0
	out=$(timeout 10 "$SIGNGATE" $cmd "$f" 2>&1) || rc=$?
	if [[ $rc -ne $code ]]; then
		bad "$name: $cmd exit $rc, wanted $code: $out"
	elif [[ -n $regex ]] && ! grep -qE -- "$regex" <<<"$out"; then
		bad "$name: message '$out' does not match /$regex/"
	else
		ok "$name"
	fi
	if [[ $name == garbage-signature || $name == payload-after-signature ]]; then
		# Replacing a broken signature is fine; nesting into it is not.
		expect "$name: sign replaces it" "$SIGNGATE" sign --key "$PKI/soft.key" --cert "$PKI/codesign-soft.pem" "$f" -o "$W/out-$name"
		expect_msg "$name: sign --nest refuses" 2 'not a DER PKCS#7|follow the signature' "$SIGNGATE" sign --nest --key "$PKI/soft.key" --cert "$PKI/codesign-soft.pem" "$f" -o "$W/nest-$name"
	elif [[ $code -eq 0 ]]; then
		# A tricky but valid layout: signgate's digest is osslsigncode's,
		# and what signgate signs verifies with a right PE checksum.
		if ! osslsigncode sign -certs "$PKI/codesign-soft.pem" -key "$PKI/soft.key" -in "$f" -out "$W/ossl-$name" >/dev/null 2>&1; then
			bad "$name: osslsigncode cannot sign it"
		else
			want=$(ossl_digest "$W/ossl-$name")
			got=$("$SIGNGATE" hash "$f" 2>/dev/null | cut -d' ' -f1)
			[[ -n $want && $got == "$want" ]] && ok "$name: digest equals osslsigncode's" || bad "$name: digest $got, osslsigncode $want"
		fi
		if ! timeout 10 "$SIGNGATE" sign --key "$PKI/soft.key" --cert "$PKI/codesign-soft.pem" "$f" -o "$W/out-$name" >"$W/err" 2>&1; then
			bad "$name: sign failed: $(cat "$W/err")"
		else
			expect "$name: osslsigncode verify" osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$W/out-$name"
			got=$(ossl_digest "$W/out-$name")
			[[ -n $got && $got == "${want:-}" ]] && ok "$name: signed copy's digest" || bad "$name: signed copy's digest $got, want ${want:-}"
			if osslsigncode verify -in "$W/out-$name" 2>/dev/null | grep -q 'Calculated PE checksum'; then bad "$name: osslsigncode: PE checksum mismatch"
			elif ! python3 "$(dirname "$0")/pe_checksum.py" "$W/out-$name"; then bad "$name: the signed copy's PE checksum is wrong"
			else ok "$name: PE checksum"; fi
		fi
	elif [[ $code -ne 0 ]]; then
		rc=0
		timeout 10 "$SIGNGATE" sign --key "$PKI/soft.key" --cert "$PKI/codesign-soft.pem" "$f" -o "$W/out-$name" >/dev/null 2>&1 || rc=$?
		[[ $rc -eq 2 && ! -e $W/out-$name ]] && ok "$name: sign refuses" || bad "$name: sign exit $rc or output left"
		leftovers=$(ls "$W" | grep -c "out-$name.tmp" || true)
		[[ $leftovers -eq 0 ]] || bad "$name: temporary file left behind"
	fi
done < "$W/cases/EXPECT"
summary
