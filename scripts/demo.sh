#!/usr/bin/env bash
# netkernel end-to-end demo (make demo; root). Builds nothing itself.
#
# Three network namespaces: H runs nkd (its kernel NSM uses H's network),
# P is an ordinary peer host on a veth with H, and G is the guest: it has
# only `lo`, no NIC and no route. Unmodified programs in G reach P through
# nkd, as a client (curl) and as a server (python3 http.server), while
# nkctl shows what nkd sees. Everything is removed at the end.
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

heading "6. Clean up"
echo "  stopping nkd and the programs, deleting $NS_G $NS_H $NS_P"
