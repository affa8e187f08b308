#!/usr/bin/env bash
# A real QEMU VM as an nkd guest on the afxdp NSM (issue 8 item 5): the
# VM (no NIC, tests/vm/vm.sh) is guest vm1 of NSM xdp0 (the userspace
# TCP/IP stack on AF_XDP behind nk_steer, on H's veth next to H's kernel):
# unmodified curl in the VM fetches a file from P by sha256, P fetches one
# from python's http.server in the VM at the NSM's address, nkctl shows
# vm1 as a VM guest with its listener, and nkctl's per-guest XDP counters
# (what nk_steer counted for vm1's flows) move for the VM guest. Root (BPF); skips when QEMU or the VM image cannot be had.
# timeout: 200
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_afxdp
need_cmd curl sha256sum
# shellcheck source=tests/vm/vm.sh
. "$NK_ROOT/tests/vm/vm.sh"
command -v "$VM_QEMU" >/dev/null || skip "$VM_QEMU missing (apt-get install qemu-system-x86)"

afxdp_up
vm_nkd_up --afxdp 16M

SHARE=$NK_TMP/share
mkdir -p "$NK_TMP/www" "$SHARE/www"
make_file "$NK_TMP/www/blob" 8
cp "$NK_TMP/www/blob" "$SHARE/www/blob"
want=$(sha_of "$NK_TMP/www/blob")
bg_peer http_p "$PY" -m http.server -d "$NK_TMP/www" -b "$P4" 8000
wait_port "$NS_P" 8000

vm_guest_up "$VM_REGION" 16M "$VM_CHAN" "$SHARE" "$AGENT"

# xdp_of COLUMN: vm1's value in nkctl guests.
xdp_of() {
	nkctl guests | awk -v c="$1" 'NR == 1 { for (i = 1; i <= NF; i++) k[$i] = i; next }
		$1 == "vm1" { print $k[c] }'
}
p0=$(xdp_of XDP_PACKETS)
b0=$(xdp_of XDP_BYTES)
[ -n "$p0" ] || fail "nkctl guests has no XDP_PACKETS for vm1: $(nkctl guests)"

log "curl in the VM -> http.server in P, over the afxdp NSM"
out=$(vm_run --timeout 120 "$NKRUN -- curl -sS -f --max-time 100 -o /tmp/blob http://$P4:8000/blob && sha256sum /tmp/blob") ||
	fail "curl in the VM failed: $out"
[ "${out%% *}" = "$want" ] || fail "the VM fetched wrong content"

log "python3 -m http.server in the VM <- curl in P at $X4"
vm_bg "exec $NKRUN -- $PY -m http.server -d $SHARE/www -b 0.0.0.0 8001 >/tmp/httpd.log 2>&1" >/dev/null
wait_for 60 run_peer curl -s -o /dev/null --max-time 2 "http://$X4:8001/" ||
	fail "the VM's http.server is not reachable at $X4:8001"
run_peer curl -sS -f --max-time 60 -o "$NK_TMP/got_p" "http://$X4:8001/blob" ||
	fail "curl from P to the VM's http.server failed"
[ "$(sha_of "$NK_TMP/got_p")" = "$want" ] || fail "P fetched wrong content from the VM"
vm_nkctl_check 8001

p1=$(xdp_of XDP_PACKETS)
b1=$(xdp_of XDP_BYTES)
log "nk_steer for vm1: XDP_PACKETS $p0 -> $p1, XDP_BYTES $b0 -> $b1"
# Two 8 MiB transfers: the VM's received bytes alone are > 8 MiB.
[ "$b1" -gt $((b0 + (8 << 20))) ] || fail "nk_steer's per-guest byte counter for vm1 did not move by 8 MiB ($b0 -> $b1)"
[ "$p1" -gt "$p0" ] || fail "nk_steer's per-guest packet counter for vm1 did not move"
vm_stop --timeout 20
log "PASS: vm1 on afxdp: curl both ways by sha256; XDP counters moved ($((p1 - p0)) packets)"
