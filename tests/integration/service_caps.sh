#!/usr/bin/env bash
# nkd.service's CapabilityBoundingSet (packaging/nkd.service.in) is enough,
# and each capability in it is needed. nkd runs as root under
# `setpriv --bounding-set` with exactly the unit's set and no new
# privileges (what systemd gives the service; the mount and other
# restrictions of the unit are not reproduced here), with an NSM in
# network namespace H (setns: CAP_SYS_ADMIN) and a guest matched by uid
# 65534 and network namespace G (nobody's /proc/PID/ns/net:
# CAP_SYS_PTRACE) that listens on port 80 (CAP_NET_BIND_SERVICE); a peer
# reads its token. Then the same without each of those three: it must
# fail each time (nkd does not start, the guest is refused, the bind gets
# EACCES).
# timeout: 120
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_root
need_netkernel
need_nk
need_cmd setpriv
UNIT=$NK_ROOT/packaging/nkd.service.in
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$UNIT")
[ -n "$caps" ] || fail "no CapabilityBoundingSet= in $UNIT"
topo_up
chmod 755 "$NK_TMP" # nobody reaches the control socket
CONF=$NK_TMP/nkd.conf
cat >"$CONF" <<CONF
nsm k0 type=kernel netns=/run/netns/$NS_H
guest web uid=65534 netns=/run/netns/$NS_G bind=0.0.0.0/0:80
CONF
chmod 644 "$CONF"

# setpriv's form of a list of CAP_ names: -all,+sys_admin,...
bset() {
	local c out=-all
	for c in "$@"; do
		c=${c#CAP_}
		out+=",+${c,,}"
	done
	printf '%s' "$out"
}

# attempt NAME CAP...: nkd with bounding set CAP..., the guest's token
# through port 80. 0 when the peer read it.
attempt() {
	local name=$1 sock=$NK_TMP/$1.sock tok=tok-$1-$RANDOM got npid gpid
	shift
	bg "nkd-$name" setpriv --bounding-set "$(bset "$@")" --inh-caps -all \
		--no-new-privs -- "$NKD" --config "$CONF" --socket "$sock"
	npid=$LASTPID
	if ! wait_for 10 test -S "$sock"; then
		log "$name: nkd did not start: $(tail -n 2 "$NK_TMP/nkd-$name.log")"
		nk_stop "$npid"
		return 1
	fi
	bg "guest-$name" ip netns exec "$NS_G" setpriv --reuid=65534 \
		--regid=65534 --clear-groups "$NKRUN" --guest web --socket "$sock" \
		-- "$PY" -c '
import socket, sys
s = socket.socket()
s.bind(("0.0.0.0", 80))
s.listen()
c, _ = s.accept()
c.sendall(sys.argv[1].encode())
c.close()
' "$tok"
	gpid=$LASTPID
	got=$(timeout 15 ip netns exec "$NS_P" "$PY" -c '
import socket, sys, time
for i in range(50):
    try:
        s = socket.create_connection((sys.argv[1], 80), timeout=5)
        break
    except ConnectionRefusedError:
        time.sleep(0.2)
print(s.recv(100).decode())
' "$H4" 2>/dev/null) || got=
	nk_stop "$gpid"
	nk_stop "$npid"
	if [ "$got" != "$tok" ]; then
		log "$name: no token; guest: $(tail -n 2 "$NK_TMP/guest-$name.log" | tr '\n' ' ')"
		return 1
	fi
	log "$name: the peer read the guest's token on port 80"
}

# shellcheck disable=SC2086  # a list of names
attempt unit $caps || fail "nkd with the unit's capabilities ($caps) cannot serve the guest"
# Each one dropped: the failure must be the one that capability prevents.
declare -A why=(
	[CAP_SYS_ADMIN]='Operation not permitted|setns'
	[CAP_SYS_PTRACE]='network namespace 0 does not match'
	[CAP_NET_BIND_SERVICE]='Permission denied'
)
for drop in CAP_SYS_ADMIN CAP_SYS_PTRACE CAP_NET_BIND_SERVICE; do
	grep -qw "$drop" <<<"$caps" || fail "the unit lacks $drop"
	mapfile -t rest < <(tr ' ' '\n' <<<"$caps" | grep -vx "$drop")
	name=no-${drop#CAP_}
	if attempt "$name" "${rest[@]}"; then
		fail "nkd served the guest without $drop: the unit keeps it for nothing, or this test proves nothing"
	fi
	grep -Eq "${why[$drop]}" "$NK_TMP/guest-$name.log" "$NK_TMP/nkd-$name.log" 2>/dev/null ||
		fail "without $drop the guest failed, but not with '${why[$drop]}'"
done
log "ok"
