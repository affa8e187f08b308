#!/usr/bin/env bash
# IPv6 both ways through nkd: curl -6 in G against http.server on [P6] in P;
# http.server in G on [::] fetched by curl from P at [H6]; UDP over IPv6 both
# ways (python). Content by sha256.
# timeout: 90
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_cmd curl
topo_up
start_nkd
mkdir -p "$NK_TMP/www"
make_file "$NK_TMP/www/blob" 2
want=$(sha_of "$NK_TMP/www/blob")

bg_peer http_p "$PY" -m http.server -d "$NK_TMP/www" -b "$P6" 8060
wait_port "$NS_P" 8060
run_guest curl -6 -g -sS -f --max-time 20 -o "$NK_TMP/got1" "http://[$P6]:8060/blob" ||
	fail "curl -6 in the guest failed"
[ "$(sha_of "$NK_TMP/got1")" = "$want" ] || fail "guest fetched wrong content over IPv6"

bg_guest http_g "$PY" -m http.server -d "$NK_TMP/www" -b :: 8061
wait_port "$NS_H" 8061 20
run_peer curl -6 -g -sS -f --max-time 20 -o "$NK_TMP/got2" "http://[$H6]:8061/blob" ||
	fail "curl -6 from the peer to the guest failed"
[ "$(sha_of "$NK_TMP/got2")" = "$want" ] || fail "peer fetched wrong content from the guest over IPv6"

bg_peer udp_p "$PY" "$HELPERS/nkpy.py" udp-echo-server "$P6" 7160 50
wait_port "$NS_P" 7160 10 udp
run_guest "$PY" "$HELPERS/nkpy.py" udp-client "$P6" 7160 50 4 >/dev/null || fail "guest UDP/IPv6 client failed"
bg_guest udp_g "$PY" "$HELPERS/nkpy.py" udp-echo-server :: 7161 50
wait_port "$NS_H" 7161 20 udp
run_peer "$PY" "$HELPERS/nkpy.py" udp-client "$H6" 7161 50 5 >/dev/null || fail "peer UDP/IPv6 client to the guest failed"
log "ok"
