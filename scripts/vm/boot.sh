#!/usr/bin/env bash
# scripts/vm/boot.sh [options] VMLINUZ -- CMD [ARGS...]: boots VMLINUZ under QEMU
# (virtme-ng) with the host's root filesystem, read-only, and throw-away tmpfs
# overlays on /etc /lib /home /opt /srv /usr /var /tmp, then runs CMD as root in
# the current directory. CMD's output comes through; the exit status is CMD's
# (255: the guest or QEMU died first, rerun with --verbose).
#
# Options: --cpus N (2), --mem SIZE (2G), --timeout SEC (3600), --verbose (kernel
# console on stderr), --rw DIR (a host directory the guest may write; repeatable).
# Env: VNG (path to vng; scripts/vm/setup.sh provides it).
#
# Measured traps this script handles:
# - KVM is used only if kvm_intel or kvm_amd is loaded: a nested /dev/kvm (kvm_pvm)
#   cannot run stock kernels, so the default is TCG, pure emulation.
# - QEMU reopens /proc/self/fd/1 and 2 with O_TRUNC: a redirected regular file
#   would be truncated, so it gets FIFOs.
# - tun and veth are modules in Debian kernels and /dev/net/tun appears only
#   after modprobe tun.
# - Probing QEMU's q35 devices costs about 8 s under TCG: their drivers are
#   blacklisted. Debian 12's virtiofsd fails slowly: 9p is forced.
set -euo pipefail
CPUS=2 MEM=2G TMO=3600 VERBOSE=() RW=()
while [ $# -gt 0 ]; do
  case $1 in
    --cpus) CPUS=$2; shift 2 ;;
    --mem) MEM=$2; shift 2 ;;
    --timeout) TMO=$2; shift 2 ;;
    --verbose) VERBOSE=(--verbose); shift ;;
    --rw) RW+=(--rwdir "$2"); shift 2 ;;
    --) shift; break ;;
    -*) echo "boot.sh: unknown option $1" >&2; exit 2 ;;
    *) KIMG=$1; shift ;;
  esac
done
[ -n "${KIMG:-}" ] && [ -f "$KIMG" ] && [ $# -gt 0 ] || { sed -n '2,6p' "$0" >&2; exit 2; }
VNG=${VNG:?set VNG (scripts/vm/setup.sh)}
export PATH="$(dirname "$VNG"):$PATH" # vng runs virtme-run from its own venv

ACCEL=(--disable-kvm)
if [ -w /dev/kvm ] && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then ACCEL=(); fi

BLACKLIST=ahci,libahci,libata,ata_generic,ata_piix,iTCO_wdt,iTCO_vendor_support,lpc_ich
BLACKLIST+=,i2c_i801,i2c_smbus,pcspkr,psmouse,serio_raw,evdev,joydev,mousedev,input_leds
BLACKLIST+=,kvm_amd,kvm_intel,kvm,ccp,powernow_k8,sr_mod,cdrom,sg,i6300esb,button,qemu_fw_cfg
BLACKLIST+=,bochs,drm,amd64_edac,edac_mce_amd,rapl,intel_rapl_msr,intel_rapl_common

GUEST_CMD="modprobe -qa tun veth 2>/dev/null; $(printf '%q ' "$@")"
FIFOS=$(mktemp -d)
trap 'rm -rf "$FIFOS"' EXIT
mkfifo "$FIFOS/out" "$FIFOS/err"
cat "$FIFOS/out" &
cat_out=$!
cat "$FIFOS/err" >&2 &
cat_err=$!
# timeout leads its own process group: killing it stops vng and QEMU too.
timeout -k 15 "$TMO" "$VNG" --run "$KIMG" --user root --cpus "$CPUS" --memory "$MEM" \
  --force-9p "${ACCEL[@]}" "${VERBOSE[@]}" "${RW[@]}" \
  --append "module_blacklist=$BLACKLIST" --exec "$GUEST_CMD" \
  </dev/null >"$FIFOS/out" 2>"$FIFOS/err" &
vm=$!
trap 'kill -TERM -- -$vm 2>/dev/null || true; rm -rf "$FIFOS"' EXIT
trap 'exit 130' INT TERM HUP
set +e
wait $vm
rc=$?
set -e
wait $cat_out $cat_err || true
case $rc in
  124) echo "boot.sh: timed out after ${TMO}s" >&2 ;;
  255) echo "boot.sh: the guest or QEMU died before the command's exit status came back; rerun with --verbose" >&2 ;;
esac
exit $rc
