#!/usr/bin/env bash
# make-corpus.sh OUTDIR [CACHEDIR]
#
# Creates a corpus of real PE/COFF files for signgate's tests in OUTDIR, listed in
# OUTDIR/MANIFEST as "name<TAB>kind" lines.  Kinds:
#   pe32-exe pe32-dll pe64-exe pe64-dll  unsigned Windows executables / DLLs
#   efi             unsigned PE32+ EFI applications
#   overlay         unsigned PE32+ .exe with bytes appended after the last section
#   signed-foreign  already signed by someone else (Microsoft, Debian); keep as found
#   signed-ossl     signed by osslsigncode with PKI/soft.key (only when PKI=dir is set)
# Sources: mingw-w64 builds made here, PE DLLs from Debian's wine and zlib packages, and
# Debian's signed shim and GRUB EFI binaries (fetched with `apt-get download` into
# CACHEDIR, default OUTDIR/../cache, which is kept between runs).  OUTDIR/anchors/ holds
# the CA certificates that verify the signed-foreign files.  See tests/setup/README.md.
#
# Idempotent: existing valid files are reused; OUTDIR/.done is written last and makes a
# re-run exit 0 at once (unless PKI is now set and the signed-ossl files are missing).
# Quiet on success; on failure prints what failed and exits non-zero.
set -Eeuo pipefail

PROG=make-corpus.sh
die() { echo "$PROG: error: $*" >&2; exit 1; }
trap 'echo "$PROG: error: unexpected failure (status $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

(($# == 1 || $# == 2)) || { echo "usage: [PKI=pkidir] $PROG OUTDIR [CACHEDIR]" >&2; exit 2; }
[[ -n $1 ]] || die "OUTDIR is empty"
PKI=${PKI:-}

# done_already: .done exists and nothing asked for since is missing.
done_already() {
  [[ -f $1/.done ]] || return 1
  [[ -z $PKI ]] || grep -q $'\tsigned-ossl$' "$1/MANIFEST" 2>/dev/null
}
if done_already "$1"; then exit 0; fi

for t in x86_64-w64-mingw32-gcc i686-w64-mingw32-gcc x86_64-w64-mingw32-objcopy apt-get dpkg-deb tar \
         file od osslsigncode sbattach sbverify openssl flock; do
  command -v "$t" >/dev/null || die "'$t' not found (run scripts/deps.sh as root)"
done

mkdir -p "$1" || die "cannot create $1"
OUT=$(cd "$1" && pwd)
CACHE=${2:-$(dirname "$OUT")/cache}
mkdir -p "$CACHE" || die "cannot create cache dir $CACHE"
CACHE=$(cd "$CACHE" && pwd)
if [[ -n $PKI ]]; then
  [[ -d $PKI ]] || die "PKI=$PKI is not a directory"
  PKI=$(cd "$PKI" && pwd)
  for f in codesign-soft.pem soft.key root-ca.pem; do
    [[ -r $PKI/$f ]] || die "PKI=$PKI lacks $f (run tests/setup/make-pki.sh $PKI first)"
  done
fi

exec 9>"$OUT/.lock"
flock 9
if done_already "$OUT"; then exit 0; fi
rm -f "$OUT/.done"

umask 022
WORK=$(mktemp -d "${TMPDIR:-/tmp}/make-corpus.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
LOG=$WORK/log

run() {
  if ! "$@" >"$LOG" 2>&1; then
    echo "$PROG: error: command failed: $*" >&2
    sed 's/^/  | /' "$LOG" >&2
    exit 1
  fi
}
put() { chmod "${3:-644}" "$1"; mv -f "$1" "$2"; }

MANIFEST=()                 # "name<TAB>kind", in creation order
add() { MANIFEST+=("$1"$'\t'"$2"); }

# ---------------------------------------------------------------------------------------
# PE header helpers (little-endian fields read with od)
# ---------------------------------------------------------------------------------------
u16() { od -An -tu2 -j "$2" -N2 "$1" | tr -d ' '; }
u32() { od -An -tu4 -j "$2" -N4 "$1" | tr -d ' '; }

# secdir FILE: prints the size of the Authenticode certificate table (0 = unsigned).
secdir() {
  local f=$1 pe magic dd
  [[ $(od -An -c -N2 "$f" | tr -d ' ') == MZ ]] || { echo "notpe"; return; }
  pe=$(u32 "$f" 60)
  magic=$(u16 "$f" $((pe + 24)))
  case $magic in
    267) dd=$((pe + 24 + 96)) ;;    # 0x10b PE32
    523) dd=$((pe + 24 + 112)) ;;   # 0x20b PE32+
    *) echo "notpe"; return ;;
  esac
  u32 "$f" $((dd + 4 * 8 + 4))
}

# check_kind FILE KIND: `file` and the certificate table agree with KIND.
check_kind() {
  local f=$1 kind=$2 desc want sd
  desc=$(file -b "$f")
  case $kind in
    pe32-exe) want='^PE32 executable \((console|GUI)\)' ;;
    pe32-dll) want='^PE32 executable \(DLL\)' ;;
    pe64-exe|overlay) want='^PE32\+ executable \((console|GUI)\)' ;;
    pe64-dll) want='^PE32\+ executable \(DLL\)' ;;
    efi|signed-foreign) want='^PE32\+ executable \(EFI application\)' ;;
    signed-ossl) want='^PE32\+? executable' ;;
    *) die "internal: unknown kind $kind" ;;
  esac
  [[ $desc =~ $want ]] || { echo "$f: file(1) says '$desc', expected $kind" >&2; return 1; }
  sd=$(secdir "$f")
  case $kind in
    signed-*) [[ $sd =~ ^[0-9]+$ && $sd -gt 0 ]] || { echo "$f: $kind but has no certificate table" >&2; return 1; } ;;
    *)        [[ $sd == 0 ]] || { echo "$f: $kind but certificate table size is $sd" >&2; return 1; } ;;
  esac
}

have() { [[ -s $OUT/$1 ]] && check_kind "$OUT/$1" "$2" 2>/dev/null; }

# ---------------------------------------------------------------------------------------
# mingw-w64 builds (deterministic: no link timestamp)
# ---------------------------------------------------------------------------------------
cat >"$WORK/hello.c" <<'EOF'
#include <stdio.h>
int main(int argc, char **argv) {
    (void)argv;
    printf("hello from the signgate test corpus (%d)\n", argc);
    return 0;
}
EOF
cat >"$WORK/dll.c" <<'EOF'
#include <windows.h>
__declspec(dllexport) int sg_add(int a, int b) { return a + b; }
__declspec(dllexport) const char *sg_name(void) { return "signgate corpus dll"; }
BOOL WINAPI DllMain(HINSTANCE h, DWORD reason, LPVOID reserved) {
    (void)h; (void)reason; (void)reserved;
    return TRUE;
}
EOF
cat >"$WORK/efi.c" <<'EOF'
typedef unsigned long long EFI_STATUS;
typedef void *EFI_HANDLE;
EFI_STATUS efi_main(EFI_HANDLE image, void *system_table) {
    (void)image; (void)system_table;
    return 0;
}
EOF
# big64.exe: ~5 MB of initialised read-only data (a non-repeating 32-bit sequence, so it
# lands in .rdata and on disk, not in .bss).
cat >"$WORK/big.c" <<'EOF'
#include <stdio.h>
extern const unsigned char big_blob[];
extern const unsigned int big_blob_size;
int main(int argc, char **argv) {
    unsigned sum = 0;
    (void)argv;
    for (unsigned i = 0; i + 4096 < big_blob_size; i += 4096) sum += big_blob[i + (unsigned)argc];
    printf("big: %u bytes of data, checksum %u\n", big_blob_size, sum);
    return 0;
}
EOF
cat >"$WORK/blob.s" <<'EOF'
	.section .rdata,"dr"
	.globl big_blob
	.globl big_blob_size
	.p2align 4
big_blob:
	.set i, 0
	.rept 1310720
	.long ((i * 2654435761) ^ 0x5a5aa5a5) & 0xffffffff
	.set i, i + 1
	.endr
big_blob_end:
	.p2align 2
big_blob_size:
	.long big_blob_end - big_blob
EOF

# shellcheck disable=SC2054  # the comma belongs to -Wl
CFLAGS=(-O2 -Wl,--no-insert-timestamp)
build() {   # build NAME KIND CC ARGS...
  local name=$1 kind=$2 cc=$3
  shift 3
  if ! have "$name" "$kind"; then
    run "$cc" "${CFLAGS[@]}" -o "$WORK/$name" "$@"
    check_kind "$WORK/$name" "$kind" || die "mingw build of $name is not a $kind"
    put "$WORK/$name" "$OUT/$name"
  fi
  add "$name" "$kind"
}
W=$WORK
build hello32.exe            pe32-exe i686-w64-mingw32-gcc   -s "$W/hello.c"
build hello64.exe            pe64-exe x86_64-w64-mingw32-gcc -s "$W/hello.c"
build hello64-unstripped.exe pe64-exe x86_64-w64-mingw32-gcc "$W/hello.c"   # COFF symbols after sections
build hello32.dll            pe32-dll i686-w64-mingw32-gcc   -s -shared -Wl,--disable-auto-image-base "$W/dll.c"
build hello64.dll            pe64-dll x86_64-w64-mingw32-gcc -s -shared -Wl,--disable-auto-image-base "$W/dll.c"
build big64.exe              pe64-exe x86_64-w64-mingw32-gcc -s "$W/big.c" "$W/blob.s"
build hello64.efi            efi      x86_64-w64-mingw32-gcc -s -nostdlib -ffreestanding -fno-stack-protector \
  -mno-red-zone -Wl,--subsystem,10 -Wl,-e,efi_main "$W/efi.c"

# Overlay variants of hello64.exe (odd and non-8-aligned lengths on purpose).
for i in $(seq 0 99); do printf 'SGOVL%04d\n' "$i"; done >"$WORK/overlay.bin"   # 1000 bytes
base_size=$(stat -c %s "$OUT/hello64.exe")
for n in 1 3 7 8 1000; do
  name=hello64-overlay$n.exe
  if ! have "$name" overlay || [[ $(stat -c %s "$OUT/$name") -ne $((base_size + n)) ]] \
     || ! cmp -s -n "$base_size" "$OUT/$name" "$OUT/hello64.exe"; then
    { cat "$OUT/hello64.exe"; head -c "$n" "$WORK/overlay.bin"; } >"$WORK/$name"
    put "$WORK/$name" "$OUT/$name"
  fi
  add "$name" overlay
done

# ---------------------------------------------------------------------------------------
# Debian packages: download once into CACHE, extract single members without installing
# ---------------------------------------------------------------------------------------
APT_UPDATED=0
# deb PKG: sets DEB to the path of PKG's .deb in CACHE, downloading it if needed.
DEB=
deb() {
  local pkg=$1 f
  f=$(find "$CACHE" -maxdepth 1 -type f -name "${pkg}_*.deb" | sort -V | tail -n1)
  if [[ -n $f ]] && [[ $(dpkg-deb --field "$f" Package 2>/dev/null) == "$pkg" ]]; then
    DEB=$f
    return
  fi
  local dl
  dl=$(mktemp -d "$CACHE/.download.XXXXXX")
  chmod 755 "$dl"
  if ! (cd "$dl" && apt-get download -q "$pkg") >"$LOG" 2>&1; then
    if ((APT_UPDATED == 0)) && [[ $(id -u) -eq 0 ]]; then
      APT_UPDATED=1                     # stale or missing package lists: refresh once
      apt-get update -q >>"$LOG" 2>&1 || true
      (cd "$dl" && apt-get download -q "$pkg") >>"$LOG" 2>&1 || true
    fi
  fi
  f=$(find "$dl" -maxdepth 1 -type f -name "${pkg}_*.deb" | tail -n1)
  if [[ -z $f ]]; then
    rm -rf "$dl"
    {
      echo "$PROG: apt-get download $pkg said:"
      sed 's/^/  | /' "$LOG"
      echo "$PROG: error: could not download Debian package '$pkg' into $CACHE"
      echo "  (is the Debian mirror reachable, and are the apt lists current? try: apt-get update)"
    } >&2
    exit 1
  fi
  mv -f "$f" "$CACHE/"
  rm -rf "$dl"
  DEB=$CACHE/${f##*/}
}

# extract PKG DEST MEMBER...: unpacks the named members (paths as `dpkg -c` shows them)
# of PKG's .deb under DEST.  Only the wanted members are written: `dpkg -x libwine`
# would unpack ~670 MB.
extract() {
  local pkg=$1 dest=$2 debf m
  shift 2
  deb "$pkg"
  debf=$DEB
  mkdir -p "$dest"
  if ! dpkg-deb --fsys-tarfile "$debf" | tar -xf - -C "$dest" "$@" 2>"$LOG"; then
    {
      echo "$PROG: error: ${debf##*/} does not contain what was expected:"
      sed 's/^/  | /' "$LOG"
      echo "  (list its contents with: dpkg -c $debf)"
    } >&2
    exit 1
  fi
  for m in "$@"; do [[ -s $dest/$m ]] || die "${debf##*/}: $m missing after extraction"; done
}

# take SRC NAME KIND: copies an extracted file into the corpus and checks its kind.
take() {
  check_kind "$1" "$3" || die "$1 is not a $3 file as expected"
  cp "$1" "$WORK/$2.tmp"
  put "$WORK/$2.tmp" "$OUT/$2"
}

# Wine's PE DLLs (PE32+ in the amd64 package; the i386 ones are in libwine:i386, which
# needs a foreign architecture) of different sizes, and both zlib1.dll builds.
WINE_DIR=./usr/lib/x86_64-linux-gnu/wine/x86_64-windows
WINE_DLLS=(version imagehlp wintrust kernel32)   # ~150 KB, ~280 KB, ~900 KB, ~2.1 MB
need=0
for d in "${WINE_DLLS[@]}"; do have "wine64-$d.dll" pe64-dll || need=1; done
if ((need)); then
  members=()
  for d in "${WINE_DLLS[@]}"; do members+=("$WINE_DIR/$d.dll"); done
  extract libwine "$WORK/libwine" "${members[@]}"
  for d in "${WINE_DLLS[@]}"; do take "$WORK/libwine/$WINE_DIR/$d.dll" "wine64-$d.dll" pe64-dll; done
fi
for d in "${WINE_DLLS[@]}"; do add "wine64-$d.dll" pe64-dll; done

if ! have zlib1-32.dll pe32-dll || ! have zlib1-64.dll pe64-dll; then
  extract libz-mingw-w64 "$WORK/zlib" ./usr/i686-w64-mingw32/lib/zlib1.dll ./usr/x86_64-w64-mingw32/lib/zlib1.dll
  take "$WORK/zlib/usr/i686-w64-mingw32/lib/zlib1.dll" zlib1-32.dll pe32-dll
  take "$WORK/zlib/usr/x86_64-w64-mingw32/lib/zlib1.dll" zlib1-64.dll pe64-dll
fi
add zlib1-32.dll pe32-dll
add zlib1-64.dll pe64-dll

# Signed EFI binaries as Debian ships them.  shimx64 carries TWO WIN_CERTIFICATE entries
# (Microsoft UEFI CA 2011 and 2023 signatures side by side), which osslsigncode 2.9
# rejects as a "Corrupted attribute certificate table".
SHIM=./usr/lib/shim/shimx64.efi.signed
GRUB=./usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed
if ! have shimx64-signed.efi signed-foreign; then
  extract shim-signed "$WORK/shim" "$SHIM"
  take "$WORK/shim/$SHIM" shimx64-signed.efi signed-foreign
fi
if ! have grubx64-signed.efi signed-foreign; then
  extract grub-efi-amd64-signed "$WORK/grub" "$GRUB"
  take "$WORK/grub/$GRUB" grubx64-signed.efi signed-foreign
fi
add shimx64-signed.efi signed-foreign
add grubx64-signed.efi signed-foreign

# Unsigned copies: osslsigncode remove-signature where it can; sbattach --remove (which
# copes with several entries) otherwise.  Both truncate the table and zero the directory.
unsign() {   # unsign SRC NAME
  local src=$OUT/$1 dst=$WORK/$2 i
  if ! osslsigncode remove-signature -in "$src" -out "$dst" >"$LOG" 2>&1; then
    cp "$src" "$dst"
    for i in 1 2 3 4 5 6 7 8; do
      [[ $(sbverify --list "$dst" 2>&1 || true) == *"No signature table present"* ]] && break
      run sbattach --remove "$dst"
    done
  fi
  check_kind "$dst" efi || die "could not strip the signatures from $1"
  put "$dst" "$OUT/$2"
}
for n in shimx64 grubx64; do
  have "$n-unsigned.efi" efi || unsign "$n-signed.efi" "$n-unsigned.efi"
  add "$n-unsigned.efi" efi
done

# Trust anchors for the signed-foreign files (not PE files, so not in MANIFEST):
#  - Debian Secure Boot CA: the vendor certificate embedded in shim's .vendor_cert section
#    (a 16-byte table: authorized size, deauthorized size, authorized offset, ...).
#  - Microsoft UEFI CA 2011 / 2023: intermediates taken from shim's own two signatures
#    (sbverify --cert accepts them; the roots above them are not in any Debian package).
mkdir -p "$OUT/anchors"
if ! openssl x509 -in "$OUT/anchors/debian-secure-boot-ca.pem" -noout 2>/dev/null; then
  run x86_64-w64-mingw32-objcopy -O binary --only-section=.vendor_cert "$OUT/shimx64-unsigned.efi" "$WORK/vendor_cert.bin"
  vsize=$(u32 "$WORK/vendor_cert.bin" 0)
  voff=$(u32 "$WORK/vendor_cert.bin" 8)
  run dd if="$WORK/vendor_cert.bin" of="$WORK/vendor_cert.der" bs=1 skip="$voff" count="$vsize" status=none
  run openssl x509 -inform DER -in "$WORK/vendor_cert.der" -out "$WORK/debian-secure-boot-ca.pem"
  put "$WORK/debian-secure-boot-ca.pem" "$OUT/anchors/debian-secure-boot-ca.pem"
fi
for pair in "1 microsoft-uefi-ca-2011 Microsoft Corporation UEFI CA 2011" "2 microsoft-uefi-ca-2023 Microsoft UEFI CA 2023"; do
  read -r signum file cn <<<"$pair"
  openssl x509 -in "$OUT/anchors/$file.pem" -noout 2>/dev/null && continue
  run sbattach --detach "$WORK/sig$signum.p7" --signum "$signum" "$OUT/shimx64-signed.efi"
  run openssl pkcs7 -inform DER -in "$WORK/sig$signum.p7" -print_certs -out "$WORK/sig$signum.pem"
  rm -f "$WORK"/cert-*.pem
  awk -v dir="$WORK" '/BEGIN CERTIFICATE/ { n++ } n { print > (dir "/cert-" n ".pem") }' "$WORK/sig$signum.pem"
  found=
  for c in "$WORK"/cert-*.pem; do
    if [[ $(openssl x509 -in "$c" -noout -subject -nameopt multiline 2>/dev/null) =~ commonName\ *=\ "$cn"($'\n'|$) ]]; then
      found=$c
    fi
  done
  [[ -n $found ]] || die "shimx64-signed.efi signature $signum carries no '$cn' certificate"
  run openssl x509 -in "$found" -out "$WORK/$file.pem"
  put "$WORK/$file.pem" "$OUT/anchors/$file.pem"
done

# ---------------------------------------------------------------------------------------
# Signed by osslsigncode with the PKI's software key (needs PKI=dir)
# ---------------------------------------------------------------------------------------
if [[ -n $PKI ]]; then
  for src in hello64.exe hello32.exe; do
    name=${src%.exe}-signed-ossl.exe
    if ! have "$name" signed-ossl \
       || ! osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$OUT/$name" >/dev/null 2>&1; then
      run osslsigncode sign -certs "$PKI/codesign-soft.pem" -key "$PKI/soft.key" -h sha256 \
        -n "signgate corpus" -i "https://example.invalid/signgate" -in "$OUT/$src" -out "$WORK/$name"
      run osslsigncode verify -CAfile "$PKI/root-ca.pem" -in "$WORK/$name"
      check_kind "$WORK/$name" signed-ossl || die "$name is not signed after osslsigncode sign"
      put "$WORK/$name" "$OUT/$name"
    fi
    add "$name" signed-ossl
  done
fi

# ---------------------------------------------------------------------------------------
# Manifest, final checks, marker
# ---------------------------------------------------------------------------------------
printf '%s\n' "${MANIFEST[@]}" >"$WORK/MANIFEST"
while IFS=$'\t' read -r name kind; do
  check_kind "$OUT/$name" "$kind" || die "corpus check failed for $name"
done <"$WORK/MANIFEST"
run osslsigncode verify -CAfile "$OUT/anchors/debian-secure-boot-ca.pem" -in "$OUT/grubx64-signed.efi"
run sbverify --cert "$OUT/anchors/microsoft-uefi-ca-2011.pem" "$OUT/shimx64-signed.efi"
run sbverify --cert "$OUT/anchors/debian-secure-boot-ca.pem" "$OUT/grubx64-signed.efi"
put "$WORK/MANIFEST" "$OUT/MANIFEST"

date -u +%Y-%m-%dT%H:%M:%SZ >"$OUT/.done.tmp"
mv -f "$OUT/.done.tmp" "$OUT/.done"
