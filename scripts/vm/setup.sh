#!/usr/bin/env bash
# scripts/vm/setup.sh: makes sure the host can boot kernels under QEMU with
# virtme-ng (sourced by scripts/vm-test; also runnable on its own).
#
# Debian packages (installed with apt-get when missing and running as root):
#   qemu-system-x86  the emulator (TCG works without KVM)
#   busybox-static   virtme-ng builds the guest's initramfs from it
#   kmod             depmod/modprobe for the extracted kernel modules
#   udev             the guest runs the host's udevd to name its virtio-serial
#                    ports; without it virtme-ng loses the command's exit status
#   python3-venv     for virtme-ng, installed from PyPI into the cache
#   iproute2, file   used by the tests and by virtme-ng
# virtme-ng (pinned) goes into $RTAP_VM_CACHE/venv; nothing is installed system-wide
# from PyPI.
set -euo pipefail

VNG_VERSION=${VNG_VERSION:-1.42}
CACHE=${RTAP_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rtap-vm}

vm_log() { echo "vm-test: $*" >&2; }

# True if the tool that Debian package $1 provides is present.
vm_have() {
  case $1 in
    qemu-system-x86) command -v qemu-system-x86_64 ;;
    busybox-static) dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' ;;
    kmod) command -v depmod || test -x /sbin/depmod ;;
    udev) test -x /usr/lib/systemd/systemd-udevd || test -x /lib/systemd/systemd-udevd ;;
    python3-venv) python3 -c 'import ensurepip, venv' ;;
    iproute2) command -v ip ;;
    file) command -v file ;;
  esac >/dev/null 2>&1
}

# Prints the needed Debian packages that are missing.
vm_missing_packages() {
  local p
  for p in qemu-system-x86 busybox-static kmod udev python3-venv iproute2 file; do
    vm_have "$p" || echo "$p"
  done
}

vm_setup() {
  command -v apt-get >/dev/null && command -v dpkg >/dev/null || {
    vm_log "needs a Debian-like host (apt-get, dpkg): the kernels are Debian packages"
    return 2
  }
  local missing
  missing=$(vm_missing_packages | sort | tr '\n' ' ')
  if [ -n "${missing// /}" ]; then
    if [ "$(id -u)" != 0 ]; then
      vm_log "missing Debian packages: $missing(run as root, or: apt-get install --no-install-recommends $missing)"
      return 2
    fi
    vm_log "installing $missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >&2
  fi
  VNG="$CACHE/venv/bin/vng"
  if ! "$VNG" --version 2>/dev/null | grep -q "$VNG_VERSION"; then
    vm_log "installing virtme-ng $VNG_VERSION into $CACHE/venv"
    mkdir -p "$CACHE"
    python3 -m venv "$CACHE/venv" >&2
    "$CACHE/venv/bin/pip" install -q "virtme-ng==$VNG_VERSION" >&2
  fi
  export VNG
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  vm_setup
  vm_log "ready: $VNG ($("$VNG" --version 2>&1 | head -1)), $(qemu-system-x86_64 --version | head -1)"
fi
