#!/usr/bin/env bash
# Short connections on the afxdp NSM: the guest's server closes first, so
# lwIP holds each connection in TIME_WAIT (120 s); a client reusing its
# port soon must still get in (RFC 1122 4.2.2.13, as Linux does): before,
# lwIP answered the new SYN with an ACK of the old connection, the peer
# reset it, and the SYN retransmitted until the TIME_WAIT was over (seconds
# of stall per reused port: nginx close ran 4-5x slower than the kernel
# NSM). Then 300 connections from ephemeral ports, each with the right
# bytes (TIME_WAIT capped at tw_max, lingering flows in a hash).
# timeout: 120
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_root
need_cmd curl nsenter bpftool jq
need_nk "$NK_LOADER"
afxdp_up
cat >"$NK_TMP/nkd.conf" <<CONF
nsm xdp0 type=afxdp dev=$NK_XDEV addr=$X4/24 netns=/run/netns/$NS_H
guest $GUEST nsm=xdp0
CONF
start_nkd_afxdp "$NK_TMP/nkd.conf"

mkdir -p "$NK_TMP/www"
make_file "$NK_TMP/www/blob" 1
want=$(sha_of "$NK_TMP/www/blob")
# http.server speaks HTTP/1.0: it closes first, after every response.
bg_guest web_g "$PY" -m http.server --bind 0.0.0.0 --directory "$NK_TMP/www" 8081
wait_for 20 run_peer curl -s -o /dev/null --max-time 2 "http://$X4:8081/" ||
	fail "guest server not reachable at $X4:8081"

log "the same client port 5 times in a row"
for i in 1 2 3 4 5; do
	rm -f "$NK_TMP/got"
	# curl: bind failures (port still closing on P) are retried here,
	# a stalled connect is the failure we look for (--max-time 3).
	ok=0
	for _ in 1 2 3 4 5; do
		rc=0
		run_peer curl -sS --local-port 45123 --max-time 3 -o "$NK_TMP/got" \
			"http://$X4:8081/blob" 2>"$NK_TMP/curl.err" || rc=$?
		[ "$rc" = 45 ] || break # 45: could not bind the local port
		sleep 0.2
	done
	[ "$rc" = 0 ] || fail "connection $i from port 45123 failed (curl $rc: $(cat "$NK_TMP/curl.err")): a SYN for a 4-tuple in lwIP's TIME_WAIT"
	[ "$(sha_of "$NK_TMP/got")" = "$want" ] || fail "connection $i: wrong bytes"
	ok=1
	sleep 0.3
done
[ "$ok" = 1 ]

log "300 short connections"
urls=()
for _ in $(seq 100); do urls+=("http://$X4:8081/blob"); done
for round in 1 2 3; do
	rm -rf "$NK_TMP/many"
	mkdir -p "$NK_TMP/many"
	(cd "$NK_TMP/many" && run_peer curl -sS --max-time 60 --remote-name-all "${urls[@]}") ||
		fail "round $round of 100 connections failed"
	[ "$(sha_of "$NK_TMP/many/blob")" = "$want" ] || fail "round $round: wrong bytes"
done
nkd_alive || fail "nkd died"
log "ok"
