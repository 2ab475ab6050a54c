#!/usr/bin/env bash
# scripts/vm/fetch-kernel.sh VERSION: downloads a Debian kernel and extracts it
# (dpkg -x: nothing is installed) into $RTAP_VM_CACHE/<kernel release>/, then
# prints the path of its vmlinuz.
#
# VERSION is X.Y: 6.1 comes from the host's own suites (Debian 12), 6.12 from
# trixie (Debian 13), 7.2 from sid, 7.3 from experimental; any X.Y one of those
# carries works. trixie, sid and experimental are read through apt lists kept in
# the cache: the host's apt state is untouched.
# Recent Debian kernels are split into linux-image (a meta package), -binary,
# -modules and -base packages; all are extracted, then depmod runs once.
#
# Env: RTAP_VM_CACHE (default ~/.cache/rtap-vm), DEBIAN_MIRROR (default: the
# first Debian mirror in the host's apt sources), FLAVOUR (default amd64).
set -euo pipefail
VER=${1:?usage: fetch-kernel.sh X.Y   e.g. 6.1, 7.2, 7.3}
FLAVOUR=${FLAVOUR:-amd64}
CACHE=${RTAP_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rtap-vm}
log() { echo "fetch-kernel: $*" >&2; }

vmlinuz_in() { { ls "$1"/boot/vmlinuz-* "$1"/usr/lib/modules/*/vmlinuz 2>/dev/null || true; } | head -1; }

# Already extracted?
for d in $(ls -d "$CACHE/$VER".* "$CACHE/$VER"-* "$CACHE/$VER"+* 2>/dev/null | sort -V -r); do
  if [ -e "$d/.complete" ] && [ -n "$(vmlinuz_in "$d")" ]; then
    vmlinuz_in "$d"
    exit 0
  fi
done

mirror() {
  [ -n "${DEBIAN_MIRROR:-}" ] && { echo "$DEBIAN_MIRROR"; return; }
  { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } |
    grep -E '^(deb |URIs:)' | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -1 | tr -d ' ' || true
}

# The newest linux-image-X.Y[...]-FLAVOUR package name in an apt configuration.
re="^linux-image-${VER//./\\.}([.+][^-]*)?(-[0-9]+)?-${FLAVOUR}\$"
newest() { apt-cache "$@" search --names-only "$re" 2>/dev/null | awk '{print $1}' | sort -V | tail -1; }

OPTS=(-o APT::Sandbox::User=root)
PKG=$(newest "${OPTS[@]}")
if [ -z "$PKG" ]; then
  M=$(mirror)
  [ -n "$M" ] || { log "no Debian mirror in the apt sources: set DEBIAN_MIRROR"; exit 2; }
  LISTS="$CACHE/apt"
  mkdir -p "$LISTS/lists/partial" "$LISTS/cache/archives/partial"
  printf 'deb %s trixie main\ndeb %s sid main\ndeb %s experimental main\n' "$M" "$M" "$M" >"$LISTS/sources.list"
  OPTS=(-o Dir::Etc::sourcelist="$LISTS/sources.list" -o Dir::Etc::sourceparts=/dev/null
        -o Dir::State::Lists="$LISTS/lists" -o Dir::Cache="$LISTS/cache" -o APT::Sandbox::User=root)
  if [ -z "$(find "$LISTS/lists" -name '*_sid_*Packages*' -mmin -1440 2>/dev/null)" ] ||
     [ -z "$(find "$LISTS/lists" -name '*_trixie_*Packages*' 2>/dev/null)" ]; then
    log "apt-get update (trixie + sid + experimental lists, kept in $LISTS)"
    apt-get -qq "${OPTS[@]}" update >&2
  fi
  PKG=$(newest "${OPTS[@]}")
fi
[ -n "$PKG" ] || { log "no package matches $re (host suites, sid, experimental)"; exit 1; }

KREL=${PKG#linux-image-}
DEST="$CACHE/$KREL"
if [ ! -e "$DEST/.complete" ]; then
  PARTS=$(apt-cache "${OPTS[@]}" depends "$PKG" 2>/dev/null |
    awk '/Depends: linux-(binary|modules|base)-/ {print $2}' | sort -u)
  mkdir -p "$CACHE/debs"
  log "downloading $PKG $PARTS"
  # shellcheck disable=SC2086
  (cd "$CACHE/debs" && apt-get -qq "${OPTS[@]}" download "$PKG" $PARTS >&2)
  rm -rf "$DEST"
  mkdir -p "$DEST"
  for p in $PKG $PARTS; do
    deb=$(ls -t "$CACHE/debs/${p}_"*.deb | head -1)
    log "extracting $(basename "$deb")"
    dpkg -x "$deb" "$DEST"
  done
  for base in "$DEST" "$DEST/usr"; do
    if [ -d "$base/lib/modules/$KREL" ]; then /sbin/depmod -b "$base" "$KREL"; fi
  done
  touch "$DEST/.complete"
fi
vmlinuz_in "$DEST"
