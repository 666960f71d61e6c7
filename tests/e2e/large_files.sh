#!/usr/bin/env bash
# Files past 2 GiB are signed (up to the 4 GiB limit of the PE format's
# 32-bit certificate table offset); past 4 GiB the refusal is immediate and
# clear.  Sparse files, so the test costs time, not disk.
# Env: SIGNGATE, PKI, CORPUS, WORK.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
W=$WORK/large
rm -rf "$W" && mkdir -p "$W"
f=$CORPUS/hello64.exe

cp "$f" "$W/2g.exe"; truncate -s $((2048 * 1024 * 1024 + 4099)) "$W/2g.exe"
expect "over 2 GiB: sign" "$SIGNGATE" sign --key "$PKI/soft.key" --cert "$PKI/codesign-soft.pem" "$W/2g.exe" -o "$W/2g-signed.exe"
expect "over 2 GiB: osslsigncode verify" osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$W/2g-signed.exe"
expect "over 2 GiB: signgate verify" "$SIGNGATE" verify --ca "$PKI/root-ca.pem" "$W/2g-signed.exe"
rm -f "$W/2g.exe" "$W/2g-signed.exe"

cp "$f" "$W/4g.exe"; truncate -s $((4096 * 1024 * 1024 - 512)) "$W/4g.exe"
expect_msg "just under 4 GiB: no room for a signature" 2 'would reach 4 GiB' \
	"$SIGNGATE" sign --key "$PKI/soft.key" --cert "$PKI/codesign-soft.pem" "$W/4g.exe" -o "$W/4g-signed.exe"
[[ ! -e $W/4g-signed.exe ]] && ok "no output left" || bad "output left"
rm -f "$W/4g.exe"

cp "$f" "$W/5g.exe"; truncate -s $((5 * 1024 * 1024 * 1024)) "$W/5g.exe"
expect_msg "5 GiB: refused" 2 'can be signed only below 4 GiB' "$SIGNGATE" hash "$W/5g.exe"
rm -f "$W"/*.exe*
summary
