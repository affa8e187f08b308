#!/usr/bin/env bash
# The VM harness itself (tests/vm/vm.sh, docs/vm.md): QEMU boots Debian's
# generic kernel with a busybox initramfs and NO network device, the host's
# root read-only over virtio-9p, an ivshmem-plain device backed by a file
# here and a virtio-serial port org.netkernel.ctl whose host end is a unix
# socket here. Inside the VM: only lo exists and the PCI bus has no network
# controller, python3 and the build tree's binaries run, a pattern written
# into the backing file by the host is read from BAR2 (mmap of resource2)
# and one written there by the VM is seen by the host, and a line goes over
# the virtio-serial port to the host socket and back. Prints the boot time
# (TCG here; KVM only where a probe boots). Skips when qemu or the kernel
# package cannot be had. No root needed.
# timeout: 120
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
# shellcheck source=tests/vm/vm.sh
. "$NK_ROOT/tests/vm/vm.sh"
[ -x "$PY" ] || skip "python3 missing"

SHM=$NK_TMP/vm.shm
SOCK=$NK_TMP/ctl.sock
host_pat=host-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
vm_pat=vm-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
truncate -s 16M "$SHM"
printf '%s' "$host_pat" | dd of="$SHM" bs=1 seek=4096 conv=notrunc status=none

rc=0
vm_start --dir "$NK_TMP/vm" --shm "$SHM" --shm-size 16M --serial-sock "$SOCK" \
	2>"$NK_TMP/vm_start.err" || rc=$?
cat "$NK_TMP/vm_start.err" >&2
[ "$rc" = 77 ] && skip "$(sed -n 's/.*SKIP: //p' "$NK_TMP/vm_start.err" | head -n1)"
[ "$rc" = 0 ] || fail "the VM did not boot (vm_start $rc); console: $(tail -n 5 "$NK_TMP/vm/console.log" 2>/dev/null)"
log "booted: ${VM_BOOT_S} s on the host clock to the first command ($VM_ACCEL), guest uptime ${VM_GUEST_UPTIME_S} s"

# 1. No network device but lo.
nets=$(vm_run 'ls /sys/class/net | tr "\n" " "') || fail "vm_run ls failed"
[ "$nets" = "lo " ] || fail "network devices in the VM: '$nets' (want only lo)"
vm_run 'ip -o link show lo | grep -q "[<,]UP[,>]"' || fail "lo is not up in the VM"
# The initramfs has no NIC drivers, so also look at the hardware: no PCI
# device of class 02 (network controller).
nics=$(vm_run 'grep -l "^0x02" /sys/bus/pci/devices/*/class || true') || fail "vm_run grep failed"
[ -z "$nics" ] || fail "network controllers on the VM's PCI bus: $nics"

# 2. The host's programs and the build tree, at the same paths.
t0=$(date +%s.%N)
out=$(vm_run "$PY -c 'import sys, hashlib; print(sys.version_info[0], hashlib.sha256(b\"nk\").hexdigest()[:8])'") ||
	fail "python3 did not run in the VM"
t1=$(date +%s.%N)
[ "$out" = "3 $(printf nk | sha256sum | cut -c1-8)" ] || fail "python3 in the VM said '$out'"
log "python3 in the VM: $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s for one run"
if [ -x "$NKCTL" ]; then
	out=$(vm_run "'$NKCTL' --version") || fail "$NKCTL did not run in the VM"
	case $out in nkctl\ *) ;; *) fail "nkctl --version in the VM said '$out'" ;; esac
fi
vm_run 'touch /usr/nk-vm-ro-probe 2>/dev/null' && fail "the host root is writable from the VM"
vm_run 'grep -q "^hostroot / 9p ro" /proc/mounts' || fail "/ is not the read-only 9p export"

# 3. ivshmem: BAR2 is the backing file, both ways.
# shellcheck disable=SC2016  # expanded in the VM
out=$(vm_run '. /run/nk-vm.env; echo "$NK_VM_SHM_SIZE"; '"$PY"' - <<EOF
import mmap, os
fd = os.open("$NK_VM_SHM", os.O_RDWR | os.O_SYNC)
m = mmap.mmap(fd, $(( 16 << 20 )))
print(m[4096:4096 + len("'"$host_pat"'")].decode())
m[65536:65536 + len("'"$vm_pat"'")] = b"'"$vm_pat"'"
m.close()
EOF') || fail "mmap of the ivshmem BAR2 failed in the VM: $out"
[ "$(printf '%s\n' "$out" | sed -n 1p)" = $((16 << 20)) ] || fail "BAR2 size in the VM: $out"
[ "$(printf '%s\n' "$out" | sed -n 2p)" = "$host_pat" ] || fail "the VM read '$out' from BAR2, the host wrote $host_pat"
got=$(dd if="$SHM" bs=1 skip=65536 count=${#vm_pat} status=none)
[ "$got" = "$vm_pat" ] || fail "the host read '$got' from the backing file, the VM wrote $vm_pat"
log "ivshmem: host->VM and VM->host patterns match (16 MiB BAR2)"

# 4. virtio-serial: VM -> host socket -> VM.
cat >"$NK_TMP/serial_host.py" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
for _ in range(100):
    try:
        s.connect(sys.argv[1])
        break
    except OSError:
        time.sleep(0.1)
s.settimeout(60)
buf = b""
while not buf.endswith(b"\n"):
    d = s.recv(4096)
    if not d:
        sys.exit("eof before a line")
    buf += d
print("host got", buf.decode().strip(), flush=True)
s.sendall(b"back:" + buf)
time.sleep(1)
EOF
bg serial_host "$PY" "$NK_TMP/serial_host.py" "$SOCK"
serial_pid=$LASTPID
# shellcheck disable=SC2016  # expanded in the VM
out=$(vm_run --timeout 60 '. /run/nk-vm.env; exec 3<>"$NK_VM_CTL"; echo "'"$vm_pat"'" >&3;
	read -r -t 30 line <&3 && echo "$line"') || fail "virtio-serial round trip failed in the VM: $out"
[ "$out" = "back:$vm_pat" ] || fail "the VM got '$out' back over org.netkernel.ctl"
wait_for 10 grep -q "host got $vm_pat" "$NK_TMP/serial_host.log" || fail "the host socket did not see the line"
nk_stop "$serial_pid"
log "virtio-serial org.netkernel.ctl: a line went VM -> $SOCK -> VM"

# 5. Power off, bounded, and nothing left behind.
qpid=$VM_PID
vm_stop --timeout 20
kill -0 "$qpid" 2>/dev/null && fail "qemu $qpid still runs after vm_stop"
if [ -e "$NK_TMP/vm/cmd.in" ] || [ -e "$SOCK" ]; then fail "vm_stop left files behind"; fi
log "PASS: boot ${VM_BOOT_S} s ($VM_ACCEL), no NIC, python3, ivshmem both ways, virtio-serial round trip"
