#!/usr/bin/env bash
# Another identity claiming a guest's name (issue 6, "identity the kernel
# vouches for"). nkd decides which guest a process is from what the kernel
# says about it (uid/gid, network namespace, cgroup, the socket it came
# through), never from the name alone.
#
# (a) No config: root guest `web` in G serves the peer. uid nobody in
#     another namespace A asks for `web` (nkrun, and the bare shim): refused
#     with a reason, never "cannot reach nkd"; root from A too. Without a
#     name, root in A gets its own guest u0-<netns>.
# (b) A config listing `web` without match keys: nobody is refused.
# (c) netns=: a root process of another namespace is refused guest gx,
#     one in X accepted; with no name nkd picks gx for nobody in X.
# (d) attach=: whoever connects to box's own socket is box without naming
#     it; another name through it is refused, and box through the main
#     socket is refused.
# (e) nkctl reload reordering the guests keeps box's socket box's; a
#     reload dropping box leaves its socket refusing everyone.
# The ASan+UBSan nkd runs it, and a bystander guest moves data meanwhile.
# timeout: 180
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_root
need_netkernel
command -v setpriv >/dev/null || skip "setpriv missing"
AS_NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
BYS_BYTES=$((32 << 20))
BYS_PINGS=200

topo_up
NS_A=nk-a-$NK_ID
NS_X=nk-x-$NK_ID
nk_netns_add "$NS_A"
nk_netns_add "$NS_X"
# nobody must reach the control socket: the directory is root's 0700.
chmod 755 "$NK_TMP"
nk_use_san_nkd

PROG="import socket, sys
s = socket.socket()
try:
    s.connect(('$P4', 9312))
    s.sendall(b'x'); print('CONNECTED', s.recv(1))
except OSError as e:
    print('ERR', e.errno); sys.exit(3)"

# attempt NAME OUTFILE NS [--nobody] [nkrun args...]: runs PROG through
# nkrun, exit status and stderr in OUTFILE.
attempt() {
	local name=$1 out=$2 ns=$3 as=()
	shift 3
	if [ "${1:-}" = --nobody ]; then
		as=("${AS_NOBODY[@]}")
		shift
	fi
	local rc=0
	timeout -k 5 30 ip netns exec "$ns" "${as[@]}" "$NKRUN" "$@" \
		-- "$PY" -c "$PROG" >"$out" 2>&1 || rc=$?
	echo "rc=$rc" >>"$out"
	log "$name: rc $rc: $(tr '\n' ' ' <"$out" | cut -c1-300)"
}

expect_refused() { # name outfile [what]
	grep -q "refused" "$2" || fail "$1: not refused: $(cat "$2")"
	grep -q "cannot reach" "$2" && fail "$1: says 'cannot reach': $(cat "$2")"
	grep -q "CONNECTED" "$2" && fail "$1: the program got through: $(cat "$2")"
	[ -z "${3:-}" ] || grep -q -- "$3" "$2" || fail "$1: reason lacks '$3': $(cat "$2")"
	grep -q '^rc=0$' "$2" && fail "$1: exited 0"
	return 0
}
expect_ok() { # name outfile
	grep -q "CONNECTED" "$2" || fail "$1: program did not connect: $(cat "$2")"
}

bg_peer echo_p "$PY" "$HELPERS/nkpy.py" echo-server "$P4" 9312
wait_port "$NS_P" 9312 || fail "peer echo server not listening"

# ------------------------------------------------------------ (a) no config
start_nkd
bystander_start 9400
# web: a root server in G, holding a connection from the peer.
GUEST=web bg_guest web_srv "$PY" "$HELPERS/nkpy.py" echo-server 0.0.0.0 9310
wait_port "$NS_H" 9310 20 || fail "web's server not listening"
bg_peer web_cli "$PY" "$HELPERS/nkpy.py" rtt-probe "$H4" 9310 400 25
web_cli=$LASTPID

attempt "a: nobody in A as web" "$NK_TMP/a1" "$NS_A" --nobody --guest web --socket "$NK_SOCK"
expect_refused "a: nobody in A as web" "$NK_TMP/a1" "belongs to another uid or network namespace"
# The bare shim (no nkrun probe): the program's sockets fail, and the shim
# says refused.
rc=0
timeout -k 5 30 ip netns exec "$NS_A" "${AS_NOBODY[@]}" env LD_PRELOAD="$NKSHIM" \
	NK_SOCKET="$NK_SOCK" NK_GUEST=web "$PY" -c "$PROG" >"$NK_TMP/a2" 2>&1 || rc=$?
echo "rc=$rc" >>"$NK_TMP/a2"
log "a: bare shim: $(tr '\n' ' ' <"$NK_TMP/a2")"
expect_refused "a: bare shim as web" "$NK_TMP/a2" "^netkernel: refused: guest 'web' belongs to another uid"
attempt "a: root in A as web" "$NK_TMP/a3" "$NS_A" --guest web --socket "$NK_SOCK"
expect_refused "a: root in A as web" "$NK_TMP/a3" "belongs to another uid or network namespace"
attempt "a: nobody in G as web" "$NK_TMP/a4" "$NS_G" --nobody --guest web --socket "$NK_SOCK"
expect_refused "a: nobody in G as web" "$NK_TMP/a4" "belongs to another uid"
# No name: each (uid, netns) is its own guest.
attempt "a: root in A, no name" "$NK_TMP/a5" "$NS_A" -v --socket "$NK_SOCK"
expect_ok "a: root in A, no name" "$NK_TMP/a5"
ino_a=$(stat -L -c %i "/run/netns/$NS_A")
grep -q "guest u0-$ino_a" "$NK_TMP/a5" || fail "a: root in A was not given guest u0-$ino_a: $(cat "$NK_TMP/a5")"
# Nobody may take another identity's default name first.
ino_g=$(stat -L -c %i "/run/netns/$NS_G")
attempt "a: nobody in A as u0-<G>" "$NK_TMP/a6" "$NS_A" --nobody --guest "u0-$ino_g" --socket "$NK_SOCK"
expect_refused "a: nobody in A as root's default name in G" "$NK_TMP/a6" "reserved for that uid"
grep -q "HELLO from pid [0-9]* uid 65534 .*netns [0-9]* .*refused" "$NK_TMP/nkd.log" || fail "a: nkd did not log the refusal with pid/uid/netns"

wait "$web_cli" || fail "web's peer connection broke: $(tail -n 3 "$NK_TMP/web_cli.log")"
log "web's connection with the peer: $(grep RESULT "$NK_TMP/web_cli.log")"
bystander_finish
nk_san_stop

# ------------------------------------------------------- (b)(c)(d) a config
BOX=$NK_TMP/box/attach.sock
cat >"$NK_TMP/nkd.conf" <<EOF
nsm kernel0 type=kernel
guest web
guest bystander uid=0 netns=/run/netns/$NS_G
guest gx netns=/run/netns/$NS_X
guest box attach=$BOX
EOF
start_nkd "$NK_TMP/nkd.conf"
bystander_start 9420
wait_for 5 test -S "$BOX" || fail "d: nkd did not create box's attach socket $BOX"
[ "$(stat -c %a "$BOX")" = 666 ] || fail "d: attach socket mode $(stat -c %a "$BOX"), want 666"

attempt "b: nobody in G as web" "$NK_TMP/b1" "$NS_G" --nobody --guest web --socket "$NK_SOCK"
expect_refused "b: nobody in G as web" "$NK_TMP/b1" "uid 65534 does not match guest 'web'"
attempt "b: root in G as web" "$NK_TMP/b2" "$NS_G" --guest web --socket "$NK_SOCK"
expect_ok "b: root in G as web (nkd's own uid)" "$NK_TMP/b2"
attempt "b: nobody in G as an unknown name" "$NK_TMP/b3" "$NS_G" --nobody --guest nosuch --socket "$NK_SOCK"
expect_refused "b: unknown name" "$NK_TMP/b3" "not in nkd's config"

attempt "c: root in G as gx" "$NK_TMP/c1" "$NS_G" --guest gx --socket "$NK_SOCK"
expect_refused "c: root in G as gx" "$NK_TMP/c1" "network namespace .* does not match guest 'gx'"
attempt "c: root in X as gx" "$NK_TMP/c2" "$NS_X" --guest gx --socket "$NK_SOCK"
# X has no route to the peer through nkd? It does: gx is served by nkd in H.
expect_ok "c: root in X as gx" "$NK_TMP/c2"
attempt "c: nobody in X, no name" "$NK_TMP/c3" "$NS_X" --nobody -v --socket "$NK_SOCK"
expect_ok "c: nobody in X, no name" "$NK_TMP/c3"
grep -q "guest gx" "$NK_TMP/c3" || fail "c: nkd did not pick gx: $(cat "$NK_TMP/c3")"
attempt "c: root in X, no name" "$NK_TMP/c4" "$NS_X" --socket "$NK_SOCK"
expect_refused "c: root in X, no name (web and gx match)" "$NK_TMP/c4" "several guests match (web, gx)"
attempt "c: nobody in A, no name" "$NK_TMP/c5" "$NS_A" --nobody --socket "$NK_SOCK"
expect_refused "c: nobody in A, no name" "$NK_TMP/c5" "no guest in nkd's config matches"

attempt "d: nobody in A through box's socket" "$NK_TMP/d1" "$NS_A" --nobody -v --socket "$BOX"
expect_ok "d: through box's socket" "$NK_TMP/d1"
grep -q "guest box" "$NK_TMP/d1" || fail "d: not attached as box: $(cat "$NK_TMP/d1")"
attempt "d: web through box's socket" "$NK_TMP/d2" "$NS_G" --guest web --socket "$BOX"
expect_refused "d: web through box's socket" "$NK_TMP/d2" "attach socket is guest 'box'"
attempt "d: box through the main socket" "$NK_TMP/d3" "$NS_G" --guest box --socket "$NK_SOCK"
expect_refused "d: box through the main socket" "$NK_TMP/d3" "only through its own socket"

# (e) A reload that reorders the guests still maps box's socket to box; one
# that drops box leaves its socket refusing everyone (it is matched by path,
# never by a config index that now names another guest or none).
cat >"$NK_TMP/nkd.conf" <<EOF
nsm kernel0 type=kernel
guest box attach=$BOX
guest bystander uid=0 netns=/run/netns/$NS_G
guest web
guest gx netns=/run/netns/$NS_X
EOF
nkctl reload >"$NK_TMP/e0" 2>&1 || fail "e: reload (reordered): $(cat "$NK_TMP/e0")"
attempt "e: nobody in A through box's socket after a reorder" "$NK_TMP/e1" "$NS_A" --nobody -v --socket "$BOX"
expect_ok "e: through box's socket after a reorder" "$NK_TMP/e1"
grep -q "guest box" "$NK_TMP/e1" || fail "e: not attached as box after a reorder: $(cat "$NK_TMP/e1")"
cat >"$NK_TMP/nkd.conf" <<EOF
nsm kernel0 type=kernel
guest bystander uid=0 netns=/run/netns/$NS_G
guest web
EOF
nkctl reload >"$NK_TMP/e2" 2>&1 || fail "e: reload (box dropped): $(cat "$NK_TMP/e2")"
attempt "e: root in G through box's old socket" "$NK_TMP/e3" "$NS_G" --guest web --socket "$BOX"
expect_refused "e: box's socket after box left the config" "$NK_TMP/e3" "belongs to no guest"

bystander_finish
nk_san_stop
[ ! -e "$BOX" ] || fail "d: nkd left its attach socket behind"
log "PASS"
