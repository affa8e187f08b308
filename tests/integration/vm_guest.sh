#!/usr/bin/env bash
# A real QEMU VM as an nkd guest (issue 8, docs/vm.md): the VM has no
# network device at all (tests/vm/vm.sh: TCG here), only an ivshmem-plain
# device on the guest's vm_region= file and a virtio-serial port whose
# host end is nkd's vm_channel= socket (nkd listens, QEMU connects). Inside
# the VM, nk-vmagent owns the BAR and the port, and unmodified programs run
# under nkrun (the build tree, over the VM's read-only 9p root):
#  - curl fetches a file from http.server in P, checked by sha256, while a
#    namespace guest on the same NSM does its own checksummed transfer
#    (two guests, one stack);
#  - python3 -m http.server in the VM serves P (sha256);
#  - a ForkingTCPServer in the VM answers 100 requests from P (fork
#    hand-overs across the channel);
#  - nkctl guests / sockets on the host show the VM guest (kind vm, the
#    namespace guest local) and its sockets;
#  - nkd restarts: QEMU reconnects to its new socket, the agent says
#    HELLO again by itself, and curl in the VM works again.
# Prints the boot time, curl's throughput under TCG and nkd's CPU while
# the VM sits idle for 10 s (must stay under 1 % of a core: nkd has no
# timer or poll for an idle VM). Skips when QEMU or the VM image cannot
# be had. VM_MIB sets the size of curl's file (default 50).
# timeout: 240
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_netkernel
need_cmd curl sha256sum jq
# shellcheck source=tests/vm/vm.sh
. "$NK_ROOT/tests/vm/vm.sh"
command -v "$VM_QEMU" >/dev/null || skip "$VM_QEMU missing (apt-get install qemu-system-x86)"
MIB=${VM_MIB:-50}

topo_up
vm_nkd_up 64M

# The VM's /tmp is its own tmpfs: what it serves is in a --share.
SHARE=$NK_TMP/share
mkdir -p "$NK_TMP/www" "$SHARE/www"
make_file "$NK_TMP/www/blob" "$MIB"
make_file "$SHARE/www/small" 4
cp "$SHARE/www/small" "$NK_TMP/www/small"
want=$(sha_of "$NK_TMP/www/blob")
want_small=$(sha_of "$SHARE/www/small")
bg_peer http_p "$PY" -m http.server -d "$NK_TMP/www" -b "$P4" 8000
wait_port "$NS_P" 8000

# The VM: the file nkd made is its ivshmem BAR, nkd's socket its port.
vm_guest_up "$VM_REGION" 64M "$VM_CHAN" "$SHARE" "$AGENT"

# in_vm [--timeout S] CMD: a shell command in the VM with the env file.
in_vm() {
	local t=120
	[ "$1" = --timeout ] && { t=$2; shift 2; }
	vm_run --timeout "$t" ". /run/nk-vm.env; $*"
}

log "curl in the VM fetches $MIB MiB from P while a namespace guest fetches $MIB MiB too"
bg_guest nsguest curl -sS -f --max-time 200 -o "$NK_TMP/got_ns" "http://$P4:8000/blob"
NSG=$LASTPID
out=$(in_vm --timeout 200 "s=\$(date +%s.%N); $NKRUN -- curl -sS -f --max-time 180 -o /tmp/blob http://$P4:8000/blob &&
	e=\$(date +%s.%N) && sha256sum /tmp/blob | cut -d' ' -f1 && echo \$s \$e && rm -f /tmp/blob") ||
	fail "curl in the VM failed: $out $(in_vm 'tail -n 5 /tmp/agent.log' 2>&1)"
got=$(printf '%s\n' "$out" | sed -n 1p)
[ "$got" = "$want" ] || fail "the VM fetched wrong content ($got, want $want)"
# shellcheck disable=SC2046  # two numbers
CURL_S=$(awk -v a="$(printf '%s\n' "$out" | sed -n 2p)" 'BEGIN{split(a, t, " "); printf "%.2f", t[2] - t[1]}')
CURL_MBS=$(awk -v m="$MIB" -v s="$CURL_S" 'BEGIN{printf "%.1f", m / s}')
log "curl in the VM: $MIB MiB in $CURL_S s (VM clock) = $CURL_MBS MiB/s ($VM_ACCEL)"
wait "$NSG" || fail "the namespace guest's curl failed"
[ "$(sha_of "$NK_TMP/got_ns")" = "$want" ] || fail "the namespace guest fetched wrong content"
rm -f "$NK_TMP/got_ns"

log "python3 -m http.server in the VM serves P"
vm_bg "exec $NKRUN -- $PY -m http.server -d $SHARE/www -b 0.0.0.0 8001 >/tmp/httpd.log 2>&1" >/dev/null
wait_port "$NS_H" 8001 60
run_peer curl -sS -f --max-time 60 -o "$NK_TMP/got_p" "http://$H4:8001/small" ||
	fail "curl from P to the VM's http.server failed: $(in_vm "cat /tmp/httpd.log; ls -la $SHARE/www" 2>&1 | tail -n 8)"
[ "$(sha_of "$NK_TMP/got_p")" = "$want_small" ] || fail "P fetched wrong content from the VM"

log "a forking server in the VM answers 100 requests from P"
fork_srv_py "$SHARE/fork_srv.py" 8002
vm_bg "exec $NKRUN -- $PY $SHARE/fork_srv.py >/tmp/fork.log 2>&1" >/dev/null
wait_port "$NS_H" 8002 60
run_peer "$PY" - "$H4" <<'PYEOF' || fail "the forking server in the VM did not answer 100 requests"
import socket, sys
for i in range(100):
    s = socket.create_connection((sys.argv[1], 8002), timeout=30)
    s.sendall(b"req%d\n" % i)
    got = s.makefile().readline().strip()
    if got != "pong req%d" % i:
        sys.exit("request %d got %r" % (i, got))
    s.close()
PYEOF

log "nkctl on the host shows the VM guest as one, and its sockets"
vm_nkctl_check 8001 8002

# nkd's CPU (utime + stime, in clock ticks) while the VM idles with its
# agent and two servers attached: nkd has nothing to do for it.
ticks() { awk '{print $14 + $15}' "/proc/$NK_NKD_PID/stat"; }
hz=$(getconf CLK_TCK)
sleep 1
t0=$(ticks)
sleep 10
t1=$(ticks)
IDLE_PCT=$(awk -v d=$((t1 - t0)) -v hz="$hz" 'BEGIN{printf "%.2f", 100 * d / hz / 10}')
log "nkd while the VM idles: $((t1 - t0)) ticks in 10 s = $IDLE_PCT % of a core"
[ $((t1 - t0)) -lt $((hz / 10)) ] || fail "an idle VM costs nkd $IDLE_PCT % of a core (want < 1 %)"

log "nkd restarts: QEMU reconnects, the agent attaches again by itself"
nk_stop "$NK_NKD_PID"
start_nkd "$NK_TMP/nkd.conf"
wait_for 60 grep -q "VM guest vm1: agent attached" "$NK_TMP/nkd.log" ||
	fail "the agent did not attach to the new nkd: $(in_vm 'tail -n 3 /tmp/agent.log' 2>&1)"
out=$(in_vm --timeout 60 "$NKRUN -- curl -sS -f --max-time 40 -o /tmp/small http://$P4:8000/small && sha256sum /tmp/small") ||
	fail "curl in the VM after nkd's restart failed: $out"
[ "${out%% *}" = "$(sha_of "$SHARE/www/small")" ] || fail "wrong content after nkd's restart"

qpid=$VM_PID
vm_stop --timeout 20
kill -0 "$qpid" 2>/dev/null && fail "qemu $qpid still runs after vm_stop"
nkd_alive || fail "nkd died when the VM powered off"
log "PASS: boot ${VM_BOOT_S} s ($VM_ACCEL); curl $MIB MiB at $CURL_MBS MiB/s; nkd idle $IDLE_PCT %"
