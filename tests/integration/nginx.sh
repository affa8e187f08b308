#!/usr/bin/env bash
# nginx, master + 2 workers (fork; both workers accept on the inherited
# listening socket), as a server in a NIC-less guest; wrk -d 3s from P must
# see zero socket errors and zero non-2xx responses, keep-alive and
# Connection: close; a 1 MiB file fetched by curl must match by sha256.
# timeout: 120
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_cmd nginx wrk curl
topo_up
start_nkd

d=$NK_TMP/nginx
mkdir -p "$d/www"
printf 'hello from a netkernel guest\n' >"$d/www/index.html"
make_file "$d/www/blob" 1
nginx_conf "$d" 8080 "$d/www" 2 1024 "access_log $d/access.log;" "sendfile on;" \
	"keepalive_requests 1000000;"
nginx_guest nginx "$d" 8080
sleep 0.5
nworkers=$(pgrep -P "$(pgrep -o -f "nginx -c $d/nginx.conf")" 2>/dev/null | wc -l || true)
log "nginx up, $nworkers worker(s)"
[ "$nworkers" -ge 2 ] || fail "expected 2 nginx workers, found $nworkers"

got=$(run_peer curl -sS -f --max-time 20 "http://$H4:8080/blob" | sha256sum | cut -d' ' -f1)
[ "$got" = "$(sha_of "$d/www/blob")" ] || fail "1 MiB file from nginx differs"

for mode in keepalive close; do
	hdr=()
	[ "$mode" = close ] && hdr=(-H "Connection: close")
	run_peer wrk -t2 -c16 -d3s "${hdr[@]}" "http://$H4:8080/index.html" >"$NK_TMP/wrk_$mode.txt" 2>&1 ||
		{ cat "$NK_TMP/wrk_$mode.txt" >&2; fail "wrk ($mode) failed"; }
	cat "$NK_TMP/wrk_$mode.txt" >&2
	! grep -q 'Socket errors' "$NK_TMP/wrk_$mode.txt" || fail "wrk ($mode) saw socket errors"
	! grep -q 'Non-2xx' "$NK_TMP/wrk_$mode.txt" || fail "wrk ($mode) saw non-2xx responses"
	reqs=$(awk '/requests in/{print $1}' "$NK_TMP/wrk_$mode.txt")
	[ "${reqs:-0}" -gt 0 ] || fail "wrk ($mode) completed no requests"
	log "$mode: $reqs requests, $(awk '/Requests\/sec/{print $2}' "$NK_TMP/wrk_$mode.txt") req/s"
done
# Both workers served: each writes its pid into nothing, but the access log
# lines do not say which worker; count the workers still alive instead.
alive=$(pgrep -P "$(pgrep -o -f "nginx -c $d/nginx.conf")" | wc -l || true)
[ "$alive" -ge 2 ] || fail "nginx workers died during the load ($alive left)"
log "ok"
