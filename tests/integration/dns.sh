#!/usr/bin/env bash
# Name resolution for a guest that has no network: dnsmasq in P answers
# nk-test.example with P's address; H's resolv.conf points at it; curl in G
# fetches http://nk-test.example:PORT/ through nkd (the shim resolves
# through nkd, which resolves in its NSM's namespace, H).
# timeout: 60
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_cmd dnsmasq curl
topo_up
set_resolv "$NS_H" "$P4"
# G must not be able to resolve on its own: point it at nothing.
set_resolv "$NS_G" 127.0.0.1
bg_peer dnsmasq dnsmasq --keep-in-foreground --no-resolv --no-hosts \
	--listen-address="$P4" --bind-interfaces --port=53 --pid-file="$NK_TMP/dnsmasq.pid" \
	--address=/nk-test.example/"$P4" --log-facility=- --user=root --group=
wait_port "$NS_P" 53 10 udp
start_nkd
mkdir -p "$NK_TMP/www"
echo "resolved through nkd" >"$NK_TMP/www/index.html"
bg_peer http_p "$PY" -m http.server -d "$NK_TMP/www" -b "$P4" 8053
wait_port "$NS_P" 8053
# The resolver works from H (sanity of the setup, not of netkernel).
run_host getent hosts nk-test.example | grep -q "$P4" || fail "H cannot resolve nk-test.example (setup)"
out=$(run_guest curl -sS -f --max-time 20 "http://nk-test.example:8053/") ||
	fail "curl http://nk-test.example:8053/ in the guest failed"
[ "$out" = "resolved through nkd" ] || fail "unexpected body: $out"
r=$(run_guest "$PY" -c 'import socket; print(socket.getaddrinfo("nk-test.example", 80, socket.AF_INET)[0][4][0])') ||
	fail "getaddrinfo in the guest failed"
[ "$r" = "$P4" ] || fail "getaddrinfo in the guest gave $r"
log "ok"
