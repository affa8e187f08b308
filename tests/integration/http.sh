#!/usr/bin/env bash
# A NIC-less guest runs unmodified HTTP programs through nkd, both ways:
#  - client: curl in G fetches a file from python3 http.server in P;
#  - server: python3 http.server in G (its listening socket lives in H, in
#    nkd's kernel NSM) is fetched by curl from P.
# Content is checked by sha256 (8 MiB of pseudo-random bytes).
# timeout: 120
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_cmd curl sha256sum
topo_up
start_nkd

mkdir -p "$NK_TMP/www"
make_file "$NK_TMP/www/blob" 8
want=$(sha_of "$NK_TMP/www/blob")

log "client: curl in G -> http.server in P"
bg_peer http_p "$PY" -m http.server -d "$NK_TMP/www" -b "$P4" 8000
wait_port "$NS_P" 8000
run_guest curl -sS -f --max-time 30 -o "$NK_TMP/got1" "http://$P4:8000/blob" ||
	fail "curl in the guest failed (exit $?)"
[ "$(sha_of "$NK_TMP/got1")" = "$want" ] || fail "guest fetched wrong content"

log "server: http.server in G <- curl in P"
bg_guest http_g "$PY" -m http.server -d "$NK_TMP/www" -b 0.0.0.0 8001
wait_port "$NS_H" 8001 20
for i in 1 2 3; do
	run_peer curl -sS -f --max-time 30 -o "$NK_TMP/got2.$i" "http://$H4:8001/blob" ||
		fail "curl from the peer to the guest server failed (request $i)"
	[ "$(sha_of "$NK_TMP/got2.$i")" = "$want" ] || fail "peer fetched wrong content from the guest"
done
log "ok"
