#!/usr/bin/env bash
# Installs the Debian 12 packages signgate needs to build, test and run the demo.
# As root: installs what is missing. Otherwise: prints the exact apt-get line and fails
# if anything is missing.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config
  libssl-dev openssl libcurl4-openssl-dev libjansson-dev libinih-dev libevent-dev
  libp11-kit-dev softhsm2 opensc libengine-pkcs11-openssl
  osslsigncode sbsigntool mono-devel
  gcc-mingw-w64-x86-64 gcc-mingw-w64-i686
  tinyproxy curl ca-certificates hyperfine time wrk python3
  chromium chromium-driver python3-selenium
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

if [[ $(id -u) -eq 0 ]]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "deps: missing packages; run as root:" >&2
  echo "  apt-get install -y ${missing[*]}" >&2
  exit 1
fi
