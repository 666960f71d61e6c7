#!/usr/bin/env bash
# Known-answer test: a fixed key, certificate and input give byte-identical
# output (RSA PKCS#1 v1.5 is deterministic and we add no signing time).
# A change here means the bytes we emit changed: check them with
# osslsigncode and update the expected values on purpose only.
# Env: SIGNGATE, WORK.
set -uo pipefail
D=$(dirname "$0")
. "$D/../lib.sh"
W=$WORK/kat
rm -rf "$W" && mkdir -p "$W"
python3 "$D/make_tiny_pe.py" > "$W/tiny.exe"

got=$("$SIGNGATE" hash "$W/tiny.exe" | cut -d' ' -f1)
[[ $got == 6a08f1c1db95198341028fc49ab5fe9aea6d8c1dbb1069ba448beb9e87e2165a ]] && ok "digest" || bad "digest $got"

expect "sign" "$SIGNGATE" sign --key "$D/key.pem" --cert "$D/cert.pem" "$W/tiny.exe" -o "$W/s1.exe"
got=$(sha256sum "$W/s1.exe" | cut -d' ' -f1)
[[ $got == 6ec15e88a5fe19df572b6b2edfdc4d5b5bb1f57ef91f161b3a955a56d16bc6ba ]] && ok "signed bytes" || bad "signed bytes $got"

expect "sign with name, url, sha384" "$SIGNGATE" sign --key "$D/key.pem" --cert "$D/cert.pem" \
	--name "Known Answer" --url "https://example.com/kat" --digest sha384 "$W/tiny.exe" -o "$W/s2.exe"
got=$(sha256sum "$W/s2.exe" | cut -d' ' -f1)
[[ $got == 9b0d138d0e16ff83f5b9b41fbc3c4e4d2d0e61b658c062b85ea41e0e67fd636b ]] && ok "signed bytes (name, url, sha384)" || bad "signed bytes (name, url, sha384) $got"
expect "osslsigncode accepts it" osslsigncode verify -CAfile "$D/cert.pem" -in "$W/s2.exe"
summary
