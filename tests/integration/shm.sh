#!/usr/bin/env bash
# The shm NSM (docs/shm-nsm.md): two guests of one nkd with shm=on talk
# through nkd, no TCP/IP. Guest srv listens, guest cli connects to
# 127.0.0.1 (srv's port, same NSM): nk_stream moves SHM_BYTES each way
# by sha256 and the python asyncio echo checks 8 concurrent connections;
# nkctl lists the connection with NSM "shm" and srv's counters move. A
# third guest nope (shm off) is refused as before (ECONNREFUSED: the port
# is srv's), and so is cli dialing guest stranger (shm=on, but not in
# cli's shm_peers=). Half-close and reset against the kernel as oracle: the same
# python scenarios natively in H and between the two guests print the
# same results. nginx in srv is served to curl in cli (sha256 of a
# body). IPv6 ([::] listener, ::1 and 127.0.0.1 dialled) and a port
# nobody listens on (refused through the kernel NSM). Guest capped (shm=on rate=80M) sends to srv over shm no faster
# than its cap; cli's counters count its bytes. A bystander guest moves
# data through the kernel NSM meanwhile. Memory: guest hog opens 400
# connections to guest sink, which never accepts or reads, and sends
# 128 KiB on each with a non-blocking send: nkd queues at most hog's
# shm_queue= (default 4 MiB), the rest gets EAGAIN (refusal shm_queue);
# nkd's RSS grows by far less than the 50 MiB hog offered; cli's 64 MiB
# to srv beside it arrives by sha256; nkctl nsms lists the shm NSM with
# its listeners, connections and queues.
# ASan nkd.
# timeout: 600
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_netkernel
need_nk
SHM_BYTES=${SHM_BYTES:-$((1 << 30))}
P1=9720
P2=9721
PE=9722
PS=9723
PN=9724
PR=9725
PX=9726
SPV6=9727
SPV4=9728
PNONE=9729
PH=9730
PI=9731
cat >"$NK_TMP/nkd.conf" <<CONF
nsm kernel0 type=kernel
guest srv shm=on
guest cli shm=on shm_peers=srv
guest nope
guest capped shm=on rate=80M burst=256k
guest stranger shm=on
guest bystander
guest hog shm=on
guest sink shm=on
unknown_guests allow
CONF
san_nkd_up "$NK_TMP/nkd.conf"
bystander_start 9400

# 1. Bulk both ways, by sha256.
GUEST=srv bg_guest s_recv "$TOOLS/nk_stream" recv listen 0.0.0.0 "$P1"
GUEST=srv bg_guest s_send "$TOOLS/nk_stream" send listen 0.0.0.0 "$P2" "$SHM_BYTES" 7
wait_port "$NS_H" "$P2" || fail "srv not listening"
wait_port "$NS_H" "$P1" || fail "srv not listening"
GUEST=cli bg_guest c_send "$TOOLS/nk_stream" send connect 127.0.0.1 "$P1" "$SHM_BYTES" 5
W1=$LASTPID
GUEST=cli bg_guest c_recv "$TOOLS/nk_stream" recv connect 127.0.0.1 "$P2"
W2=$LASTPID
wait "$W1" || fail "cli sender failed: $(tail -n 3 "$NK_TMP/c_send.log")"
wait "$W2" || fail "cli receiver failed: $(tail -n 3 "$NK_TMP/c_recv.log")"
wait_for 30 grep -q RESULT "$NK_TMP/s_recv.log" || fail "srv receiver: no result"
wait_for 30 grep -q RESULT "$NK_TMP/s_send.log" || fail "srv sender: no result"
transfer_ok c_send s_recv "$SHM_BYTES"
transfer_ok s_send c_recv "$SHM_BYTES"
log "ok: $SHM_BYTES bytes each way, sha256 equal: $(grep RESULT "$NK_TMP/c_send.log")"

# 2. The python asyncio echo, 8 connections at once.
GUEST=srv bg_guest echo_s "$PY" "$HELPERS/nkpy.py" echo-server 0.0.0.0 "$PE"
wait_port "$NS_H" "$PE" || fail "echo server not listening"
r=$(as_guest cli "$PY" "$HELPERS/nkpy.py" echo-client 127.0.0.1 "$PE" 8 $((2 << 20)) 3) ||
	fail "echo client failed: $r"
[ "$(field bytes "$r")" = $((8 * (2 << 20))) ] || fail "echo returned $(field bytes "$r") bytes"
log "ok: echo through shm: $r"

# nkctl lists shm sockets like others: the listener and both ends of a
# held connection show NSM shm.
GUEST=cli bg_guest hold "$PY" "$HELPERS/nkpy.py" hold 127.0.0.1 "$PE" 4
hp=$LASTPID
shm_rows() {
	nkctl sockets >"$NK_TMP/socks.txt" 2>&1 || return 1
	[ "$(grep -cE '^(srv|cli) .* shm .* ESTABLISHED' "$NK_TMP/socks.txt")" -ge 2 ] &&
		grep -qE '^srv .* shm .* LISTEN ' "$NK_TMP/socks.txt"
}
wait_for 20 shm_rows || fail "nkctl sockets: no shm listener and connection: $(cat "$NK_TMP/socks.txt")"
grep -E ' shm ' "$NK_TMP/socks.txt" >&2
wait "$hp" || fail "hold over shm failed: $(tail -n 2 "$NK_TMP/hold.log")"
log "ok: nkctl sockets lists the shm listener and connection"

# 3. Policy: nope (shm off) does not reach srv's listener: refused as
# without shm (the port is srv's, host_access=deny).
r=$(as_guest nope "$PY" "$HELPERS/nk_ports.py" banner 127.0.0.1 "$PE")
expect_field "guest nope (shm off) connects to srv's 127.0.0.1:$PE" connect ECONNREFUSED "$r"

# IPv6: srv listens on [::]; cli dials ::1, and 127.0.0.1 (a v4 socket
# reaching the dual-stack listener), 4 MiB each by sha256.
for dst in ::1 127.0.0.1; do
	port=$([ "$dst" = ::1 ] && echo "$SPV6" || echo "$SPV4")
	GUEST=srv bg_guest "v6_recv_$port" "$TOOLS/nk_stream" recv listen :: "$port"
	wait_port "$NS_H" "$port" || fail "srv [::]:$port not listening"
	r=$(as_guest cli "$TOOLS/nk_stream" send connect "$dst" "$port" $((4 << 20)) 3) ||
		fail "cli to $dst:$port ([::] listener) failed: $r"
	wait_for 20 grep -q RESULT "$NK_TMP/v6_recv_$port.log" || fail "srv [::]:$port: no result"
	[ "$(field sha256 "$r")" = "$(field sha256 "$(grep RESULT "$NK_TMP/v6_recv_$port.log")")" ] ||
		fail "$dst -> [::]:$port: sha256 mismatch"
	log "ok: cli -> $dst:$port (srv on [::]) over shm, sha256 equal"
done

# A port nobody listens on: the connect goes to the kernel NSM, refused
# there as it would be in the namespace.
r=$(as_guest cli "$PY" "$HELPERS/nk_ports.py" banner 127.0.0.1 "$PNONE")
expect_field "guest cli connects to 127.0.0.1:$PNONE (no listener)" connect ECONNREFUSED "$r"

# shm_peers=: cli pairs only with srv, so not with stranger (shm=on too).
GUEST=stranger bg_guest echo_x "$PY" "$HELPERS/nkpy.py" echo-server 0.0.0.0 "$PX"
wait_port "$NS_H" "$PX" || fail "stranger's echo server not listening"
r=$(as_guest cli "$PY" "$HELPERS/nk_ports.py" banner 127.0.0.1 "$PX")
expect_field "guest cli (shm_peers=srv) connects to stranger's 127.0.0.1:$PX" connect ECONNREFUSED "$r"

# 4. End states against the kernel: natively in H, then srv <-> cli.
for sc in halfclose reset linger0 peerclose backlog; do
	for how in native shm; do
		if [ "$how" = native ]; then
			bg sem_s_${how}_$sc ip netns exec "$NS_H" "$PY" "$HELPERS/shm_sem.py" server "$PS" "$sc"
		else
			GUEST=srv bg_guest sem_s_${how}_$sc "$PY" "$HELPERS/shm_sem.py" server "$PS" "$sc"
		fi
		sp=$LASTPID
		wait_for 20 grep -q READY "$NK_TMP/sem_s_${how}_$sc.log" || fail "$sc server ($how) not ready"
		if [ "$how" = native ]; then
			run_host "$PY" "$HELPERS/shm_sem.py" client 127.0.0.1 "$PS" "$sc" >"$NK_TMP/sem_c_$how.txt" ||
				fail "$sc client ($how) failed: $(cat "$NK_TMP/sem_c_$how.txt")"
		else
			as_guest cli "$PY" "$HELPERS/shm_sem.py" client 127.0.0.1 "$PS" "$sc" >"$NK_TMP/sem_c_$how.txt" ||
				fail "$sc client ($how) failed: $(cat "$NK_TMP/sem_c_$how.txt")"
		fi
		wait "$sp" || fail "$sc server ($how) failed"
		{ grep RESULT "$NK_TMP/sem_c_$how.txt"; grep RESULT "$NK_TMP/sem_s_${how}_$sc.log"; } >"$NK_TMP/sem_$how.txt"
	done
	diff "$NK_TMP/sem_native.txt" "$NK_TMP/sem_shm.txt" >&2 ||
		fail "$sc: shm differs from the kernel (native above)"
	log "ok: $sc as the kernel: $(tr '\n' ' ' <"$NK_TMP/sem_shm.txt")"
done

# 5. nginx (master + 2 workers sharing the listener) in srv, curl in cli.
d=$NK_TMP/nginx
mkdir -p "$d/www"
make_file "$d/www/blob" 4
nginx_conf "$d" "$PN" "$d/www" 2 1024 "access_log off;" "sendfile on;"
GUEST=srv nginx_guest nginx "$d" "$PN"
for i in 1 2 3; do
	got=$(as_guest cli curl -sS -f --max-time 30 "http://127.0.0.1:$PN/blob" | sha256sum | cut -d' ' -f1)
	[ "$got" = "$(sha_of "$d/www/blob")" ] || fail "4 MiB file from nginx (shm) differs (try $i)"
done
log "ok: nginx in srv -> curl in cli over shm: 3 x 4 MiB by sha256"
if command -v wrk >/dev/null; then
	as_guest cli wrk -t1 -c8 -d2s "http://127.0.0.1:$PN/blob" >"$NK_TMP/wrk.txt" 2>&1 ||
		{ cat "$NK_TMP/wrk.txt" >&2; fail "wrk over shm failed"; }
	! grep -q 'Socket errors\|Non-2xx' "$NK_TMP/wrk.txt" || { cat "$NK_TMP/wrk.txt" >&2; fail "wrk over shm saw errors"; }
	log "ok: wrk over shm: $(grep 'Requests/sec' "$NK_TMP/wrk.txt")"
fi

# 6. The rate caps hold shm sockets too: capped (rate=80M) sends 32 MiB
# to srv (possible only through shm: the port is srv's); the bytes cannot
# arrive faster than the cap (an upper bound: a slow machine passes).
GUEST=srv bg_guest r_recv "$TOOLS/nk_stream" recv listen 0.0.0.0 "$PR"
wait_port "$NS_H" "$PR" || fail "srv receiver not listening"
r=$(as_guest capped "$TOOLS/nk_stream" send connect 127.0.0.1 "$PR" $((32 << 20)) 9) ||
	fail "capped sender failed: $r"
wait_for 30 grep -q RESULT "$NK_TMP/r_recv.log" || fail "srv receiver (capped): no result"
rr=$(grep RESULT "$NK_TMP/r_recv.log")
[ "$(field sha256 "$r")" = "$(field sha256 "$rr")" ] || fail "capped transfer: sha256 mismatch"
mbps=$(awk -v b=$((32 << 20)) -v s="$(field secs "$rr")" 'BEGIN { printf "%.1f", b * 8 / s / 1e6 }')
awk -v m="$mbps" 'BEGIN { exit !(m <= 88) }' || fail "capped guest sent at $mbps Mbit/s over shm, cap 80M"
log "ok: rate=80M holds over shm: $mbps Mbit/s"

# 7. Counted per guest like any socket.
nkctl guests >"$NK_TMP/guests.txt" 2>&1 || true
b=$(nkctl guests --json 2>/dev/null | "$PY" -c '
import json, sys
for g in json.load(sys.stdin)["guests"]:
    if g["name"] == "cli":
        print(g.get("bytes_tx", 0))' 2>/dev/null || echo 0)
[ "${b:-0}" -ge "$SHM_BYTES" ] || fail "guest cli's bytes_tx ${b:-?} < $SHM_BYTES: $(cat "$NK_TMP/guests.txt")"
log "ok: guest cli counted $b bytes sent"

# 8. Non-blocking sends to a peer that never reads: nkd's queues for
# them are hog's to pay for (shm_queue=, default 4 MiB), not nkd's heap
# without bound.
GUEST=sink bg_guest sink "$PY" "$HELPERS/shm_hog.py" sink "$PH" 120
sinkp=$LASTPID
wait_for 20 grep -q READY "$NK_TMP/sink.log" || fail "sink not listening"
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$NK_NKD_PID/status"; }
rss0=$(rss)
GUEST=hog bg_guest hog "$PY" "$HELPERS/shm_hog.py" hog 127.0.0.1 "$PH" 400 120
hogp=$LASTPID
wait_for 120 grep -q RESULT "$NK_TMP/hog.log" || fail "hog: no result: $(tail -n 3 "$NK_TMP/hog.log")"
rss1=$(rss)
hr=$(grep RESULT "$NK_TMP/hog.log")
log "hog: $hr; nkd VmRSS $rss0 -> $rss1 KiB"
[ "$(field conns "$hr")" = 400 ] || fail "hog opened $(field conns "$hr") of 400 connections"
[ "$(field eagain "$hr")" -gt 0 ] || fail "hog's non-blocking sends never got EAGAIN: nkd queued all $(field sent "$hr") bytes"
[ $((rss1 - rss0)) -lt $((24 << 10)) ] ||
	fail "nkd's RSS grew by $(((rss1 - rss0) >> 10)) MiB for hog's unread non-blocking sends (cap 4 MiB)"
used=$(nkctl status --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["budget"]["shm_queue"]["used"])') ||
	fail "nkctl status: no budget.shm_queue"
{ [ "$used" -gt 0 ] && [ "$used" -le $((4 << 20)) ]; } || fail "budget.shm_queue.used=$used, want 1..4 MiB"
ref=$(nkctl guests --json | "$PY" -c '
import json, sys
for g in json.load(sys.stdin)["guests"]:
    if g["name"] == "hog":
        print(g.get("refusals", {}).get("shm_queue", 0))')
[ "${ref:-0}" -gt 0 ] || fail "guest hog: no shm_queue refusal counted"
# nkctl nsms lists the shm NSM with its counters (table and JSON).
nkctl nsms >"$NK_TMP/nsms.txt" 2>&1 || fail "nkctl nsms failed"
cat "$NK_TMP/nsms.txt" >&2
grep -qE '^shm +shm ' "$NK_TMP/nsms.txt" || fail "nkctl nsms: no shm row"
grep -qE 'rx_queue_bytes=[1-9]' "$NK_TMP/nsms.txt" || fail "nkctl nsms: no shm queue counters"
nkctl nsms --json | "$PY" -c '
import json, sys
n = {x["name"]: x for x in json.load(sys.stdin)["nsms"]}
s = n["shm"]
assert s["type"] == "shm" and s["guests"] >= 6 and s["sockets"] >= 400, s
assert s["shm"]["listeners"] >= 1 and s["shm"]["joined"] >= 400, s
assert 0 < s["shm"]["rx_queue_bytes"] <= 4 << 20 and s["shm"]["queue_refused"] > 0, s
assert n["kernel0"]["shm"] is None, n' || fail "nkctl nsms --json: shm row wrong: $(nkctl nsms --json)"
# An innocent guest's transfer beside it.
GUEST=srv bg_guest i_recv "$TOOLS/nk_stream" recv listen 0.0.0.0 "$PI"
wait_port "$NS_H" "$PI" || fail "srv receiver not listening"
r=$(as_guest cli "$TOOLS/nk_stream" send connect 127.0.0.1 "$PI" $((64 << 20)) 11) ||
	fail "cli's transfer beside hog failed: $r"
wait_for 30 grep -q RESULT "$NK_TMP/i_recv.log" || fail "srv receiver (beside hog): no result"
[ "$(field sha256 "$r")" = "$(field sha256 "$(grep RESULT "$NK_TMP/i_recv.log")")" ] ||
	fail "cli's transfer beside hog: sha256 mismatch"
kill "$hogp" "$sinkp" 2>/dev/null || true
wait "$hogp" 2>/dev/null || true
wait "$sinkp" 2>/dev/null || true
log "ok: hog's queues held at $used bytes (shm_queue refusals $ref), nkd RSS +$(((rss1 - rss0) >> 10)) MiB; cli's 64 MiB beside it by sha256"

bystander_finish
nk_san_stop
log "PASS"
