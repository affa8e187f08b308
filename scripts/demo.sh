#!/usr/bin/env bash
# netkernel end-to-end demo (make demo; root). Builds nothing itself.
#
# Three network namespaces: H runs nkd (its kernel NSM uses H's network),
# P is an ordinary peer host on a veth with H, and G is the guest: it has
# only `lo`, no NIC and no route. Unmodified programs in G reach P through
# nkd, as a client (curl) and as a server (python3 http.server), while
# nkctl shows what nkd sees. Then (step 6, root with bpffs and nk-loader;
# NK_DEMO_AFXDP=0 skips it) the same guest programs are served by the afxdp
# NSM: a userspace TCP/IP stack on AF_XDP, fed by nk_steer on H's veth,
# while H's kernel keeps serving its own address on that veth (the hybrid).
# Step 7 boots a QEMU VM with no network device where curl reaches P
# through nkd (skipped where QEMU cannot run; NK_DEMO_VM=0 skips it).
# Everything is removed at the end, XDP attachment and pins included.
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../tests/lib.sh"
TNAME=demo
[ "$(id -u)" = 0 ] || { echo "demo: run as root (it creates network namespaces)" >&2; exit 1; }
need_nk
command -v curl >/dev/null || { echo "demo: curl is missing (make deps)" >&2; exit 1; }

heading() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { # show CMD...: print a command and run it
	printf '$ %s\n' "$*"
	"$@" 2>&1 | sed 's/^/  /'
}
nkctl_show() {
	printf '$ nkctl %s\n' "$*"
	nkctl "$@" 2>&1 | sed 's/^/  /' || true
}

heading "1. Topology"
topo_up
cat <<EOF
  $NS_G  guest: lo only, no NIC, no route    (programs run under nkrun)
  $NS_H  host:  nkd + kernel NSM, veth nkh $H4 / $H6
  $NS_P  peer:  ordinary host,    veth nkp $P4 / $P6
EOF
show ip -n "$NS_G" -br addr
show ip -n "$NS_G" route show

heading "2. Start nkd in $NS_H"
start_nkd
echo "  nkd pid $NK_NKD_PID, control socket $NK_SOCK"
nkctl_show status

mkdir -p "$NK_TMP/www"
echo "hello from the peer ($P4)" >"$NK_TMP/www/index.html"
make_file "$NK_TMP/www/blob" 4
bg_peer http_p "$PY" -m http.server -d "$NK_TMP/www" -b "$P4" 8000
wait_port "$NS_P" 8000

heading "3. Client in the guest: curl -> http.server on the peer"
echo "  Without nkd the guest cannot reach anything:"
printf '$ ip netns exec %s curl http://%s:8000/\n' "$NS_G" "$P4"
ip netns exec "$NS_G" curl -sS --max-time 3 "http://$P4:8000/" 2>&1 | sed 's/^/  /' || true
echo "  Through nkd (curl unmodified, run by nkrun):"
printf '$ ip netns exec %s nkrun --guest %s -- curl http://%s:8000/\n' "$NS_G" "$GUEST" "$P4"
run_guest curl -sS --max-time 10 "http://$P4:8000/" | sed 's/^/  /'
run_guest curl -sS --max-time 20 -o "$NK_TMP/got" "http://$P4:8000/blob"
echo "  4 MiB file: sha256 at the peer $(sha_of "$NK_TMP/www/blob" | cut -c1-16)..., in the guest $(sha_of "$NK_TMP/got" | cut -c1-16)..."

heading "4. Server in the guest: python3 http.server <- curl on the peer"
echo "hello from the NIC-less guest" >"$NK_TMP/www/guest.html"
bg_guest http_g "$PY" -m http.server -d "$NK_TMP/www" -b 0.0.0.0 8080
http_g_pid=$LASTPID
wait_port "$NS_H" 8080 20
echo "  The guest's listening socket lives in $NS_H, in nkd's kernel NSM:"
show ip netns exec "$NS_H" ss -Hltnp "sport = :8080"
printf '$ ip netns exec %s curl http://%s:8080/guest.html\n' "$NS_P" "$H4"
run_peer curl -sS --max-time 10 "http://$H4:8080/guest.html" | sed 's/^/  /'

heading "5. What nkd sees while a connection is open"
echo "  A python client in the guest holds a TCP connection to an echo server on"
echo "  the peer (the guest's http.server from step 4 is still listening):"
bg_peer echo_p "$PY" "$HELPERS/nkpy.py" echo-server "$P4" 7000
wait_port "$NS_P" 7000
bg_guest hold "$PY" "$HELPERS/nkpy.py" hold "$P4" 7000 20
hold_pid=$LASTPID
wait_for 10 grep -q connected=1 "$NK_TMP/hold.log" || echo "  (the client did not connect)"
nkctl_show status
nkctl_show guests
nkctl_show sockets
nkctl_show nsms
nk_stop "$hold_pid"

# afxdp_demo: step 6; returns non-zero (after saying why) when it cannot run.
afxdp_demo() {
	[ -x "$NK_LOADER" ] || { echo "  skipped: $NK_LOADER not built"; return 0; }
	# No bpffs at /sys/fs/bpf (a fresh machine): nk-loader mounts one.
	command -v nsenter >/dev/null || { echo "  skipped: nsenter missing"; return 0; }
	echo "  The kernel-NSM nkd stops; nk_steer goes on H's veth (renamed to a"
	echo "  per-run name, since pins are per device name), then an nkd with an"
	echo "  afxdp NSM on it serves guest $GUEST at $X4, next to H's own $H4."
	nk_stop "$NK_NKD_PID"
	rm -f "$NK_SOCK"
	if ! afxdp_attach; then
		echo "  skipped: nk-loader attach failed: $(cat "$NK_TMP/loader.log")"
		return 0
	fi
	printf '$ nk-loader attach %s --mode native\n' "$NK_XDEV"
	sed 's/^/  /' "$NK_TMP/loader.log"
	printf '$ nk-loader status %s\n' "$NK_XDEV"
	nsenter --net="/run/netns/$NS_H" "$NK_LOADER" status "$NK_XDEV" 2>&1 | sed 's/^/  /'
	cat >"$NK_TMP/nkd-afxdp.conf" <<CONF
nsm kernel0 type=kernel netns=/run/netns/$NS_H
nsm xdp0 type=afxdp dev=$NK_XDEV addr=$X4/24 queues=$(afxdp_rxqueues) netns=/run/netns/$NS_H
guest $GUEST nsm=xdp0
CONF
	echo "  nkd.conf:"
	sed 's/^/    /' "$NK_TMP/nkd-afxdp.conf"
	start_nkd_afxdp "$NK_TMP/nkd-afxdp.conf"
	nkctl_show nsms

	echo "  Client in the guest, the same curl as in step 3:"
	printf '$ ip netns exec %s nkrun --guest %s -- curl http://%s:8000/\n' "$NS_G" "$GUEST" "$P4"
	run_guest curl -sS --max-time 10 "http://$P4:8000/" | sed 's/^/  /'
	run_guest curl -sS --max-time 20 -o "$NK_TMP/got_x" "http://$P4:8000/blob"
	echo "  4 MiB file: sha256 at the peer $(sha_of "$NK_TMP/www/blob" | cut -c1-16)..., in the guest $(sha_of "$NK_TMP/got_x" | cut -c1-16)..."

	echo "  Server in the guest, the same http.server as in step 4, now at $X4:"
	nk_stop "$http_g_pid"
	bg_guest http_gx "$PY" -m http.server -d "$NK_TMP/www" -b 0.0.0.0 8080
	wait_for 20 nk_guest_listening 8080 || echo "  (the guest server did not start)"
	printf '$ ip netns exec %s curl http://%s:8080/guest.html\n' "$NS_P" "$X4"
	run_peer curl -sS --max-time 10 "http://$X4:8080/guest.html" | sed 's/^/  /'

	echo "  The hybrid: a kernel server in $NS_H on $H4, same veth, same port:"
	echo "hello from $NS_H's kernel ($H4)" >"$NK_TMP/www/host.html"
	bg http_h ip netns exec "$NS_H" "$PY" -m http.server -d "$NK_TMP/www" -b "$H4" 8080
	wait_port "$NS_H" 8080
	printf '$ ip netns exec %s curl http://%s:8080/host.html\n' "$NS_P" "$H4"
	run_peer curl -sS --max-time 10 "http://$H4:8080/host.html" | sed 's/^/  /'

	echo "  Per-guest XDP counters (nk_steer's maps) next to the socket counters:"
	nkctl_show guests
	nkctl_show sockets
}

if [ "${NK_DEMO_AFXDP:-1}" != 0 ]; then
	heading "6. The same guest on the afxdp NSM (userspace TCP/IP over AF_XDP)"
	afxdp_demo
fi

# vm_demo: step 7, a QEMU VM with no NIC as an nkd guest (tests/vm/vm.sh,
# docs/vm.md): curl in the VM reaches the peer through nkd. NK_DEMO_VM=0
# skips it.
vm_demo() {
	local rc=0 sock=$NK_TMP/nkd-vm.sock chan=$NK_TMP/vm-ctl.sock i
	# shellcheck source=tests/vm/vm.sh
	. "$NK_ROOT/tests/vm/vm.sh"
	command -v "$VM_QEMU" >/dev/null || {
		echo "  skipped: $VM_QEMU missing (apt-get install qemu-system-x86)"
		return 0
	}
	# VM guests are declared when nkd starts: a second nkd in H for it.
	cat >"$NK_TMP/nkd-vm.conf" <<CONF
nsm kernel0 type=kernel
guest vm1 nsm=kernel0 bufs=32 vm_region=$NK_TMP/vm.shm vm_size=16M vm_channel=$chan
CONF
	echo "  VM guests are declared when nkd starts; a second nkd in $NS_H serves this one:"
	sed 's/^/  /' "$NK_TMP/nkd-vm.conf"
	bg nkd_vm ip netns exec "$NS_H" "$NKD" --socket "$sock" --config "$NK_TMP/nkd-vm.conf"
	wait_for 10 test -S "$chan" || {
		echo "  skipped: nkd made no VM channel ($(tail -n1 "$NK_TMP/nkd_vm.log"))"
		return 0
	}
	vm_start --dir "$NK_TMP/vm" --shm "$NK_TMP/vm.shm" --shm-size 16M \
		--serial-sock "$chan" --serial-server off 2>"$NK_TMP/vm.err" || rc=$?
	if [ "$rc" = 77 ]; then
		echo "  skipped: $(sed -n 's/.*SKIP: //p' "$NK_TMP/vm.err" | head -n1)"
		return 0
	elif [ "$rc" != 0 ]; then
		echo "  skipped: the VM did not boot: $(tail -n1 "$NK_TMP/vm.err")"
		return 0
	fi
	echo "  Booted in $VM_BOOT_S s ($VM_ACCEL): Debian's kernel, a busybox initramfs, the host's"
	echo "  root read-only over virtio-9p, an ivshmem-plain device on $NK_TMP/vm.shm (nkd's"
	echo "  region file) and a virtio-serial port org.netkernel.ctl connected to nkd's"
	echo "  $chan; no NIC."
	printf '$ vm_run %s\n' "'ls /sys/class/net; cat /run/nk-vm.env'"
	vm_run 'ls /sys/class/net; cat /run/nk-vm.env' 2>&1 | sed 's/^/  /'
	echo "  In the VM, nk-vmagent owns the BAR and the port and answers the shim as nkd would:"
	# shellcheck disable=SC2016  # expanded in the VM
	printf '$ vm_bg %s\n' "'nk-vmagent --channel \$NK_VM_CTL --region \$NK_VM_SHM'"
	# shellcheck disable=SC2016  # expanded in the VM
	vm_bg 'mkdir -p /run/netkernel; . /run/nk-vm.env; exec '"$BUILD/nk-vmagent"' --channel "$NK_VM_CTL" --region "$NK_VM_SHM" >/tmp/agent.log 2>&1' >/dev/null
	for i in $(seq 60); do
		vm_run 'test -S /run/netkernel/nkd.sock' && break
		sleep 0.5
	done
	vm_run 'cat /tmp/agent.log' 2>&1 | sed 's/^/  /'
	printf '$ vm_run %s\n' "'nkrun -- curl http://$P4:8000/'"
	vm_run --timeout 60 "$NKRUN -- curl -sS --max-time 30 http://$P4:8000/" 2>&1 | sed 's/^/  /'
	printf '$ vm_run %s\n' "'nkrun -- curl -o /tmp/blob http://$P4:8000/blob; sha256sum /tmp/blob'"
	vm_run --timeout 60 "$NKRUN -- curl -sS --max-time 30 -o /tmp/blob http://$P4:8000/blob && sha256sum /tmp/blob" 2>&1 |
		sed 's/^/  /'
	echo "  sha256 at the peer: $(sha_of "$NK_TMP/www/blob")"
	printf '$ nkctl --socket %s guests\n' "$sock"
	timeout 10 "$NKCTL" --socket "$sock" guests 2>&1 | sed 's/^/  /' || true
	vm_stop
}

if [ "${NK_DEMO_VM:-1}" != 0 ]; then
	heading "7. A virtual machine with no NIC (QEMU) as a guest of nkd"
	vm_demo
fi

heading "8. Clean up"
echo "  stopping nkd and the programs, deleting $NS_G $NS_H $NS_P"
