#!/usr/bin/env bash
# One name resolution (issue 9 part 4). nkd runs in its own namespace (not
# under `ip netns exec`) with an NSM in netns=/run/netns/H; H's resolver is
# /etc/netns/H/resolv.conf (the `ip netns exec` convention), pointing at a
# dnsmasq in P that answers www.nk.test with P's address. nkd's own
# /etc/resolv.conf knows nothing of nk.test, and the guest's (G's) points at
# 127.0.0.1, where nothing answers. In the guest, every kind of resolver
# must find P4: curl (getaddrinfo through nkd) fetches a file by name
# (sha256 checked), `getent ahosts` (glibc passes AI_IDN; an ASCII and a
# UTF-8 name),
# /usr/bin/python3 socket.getaddrinfo, node's dns.lookup (getaddrinfo) and
# dns.resolve4 (c-ares, its own UDP to G's nameserver, redirected by the
# shim), and a resolver of its own (tests/tools/nk_dnsq.py, as dig does:
# G's /etc/resolv.conf, UDP and TCP, the answer's source checked) and
# dig over UDP and TCP (libuv: syscall(__NR_sendmmsg), rawsys.c). Then
# resolv= in nkd.conf overrides the default: a second dnsmasq answers
# another address.
# timeout: 120
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_netkernel
need_nk
need_cmd dnsmasq curl getent node dig
topo_up
set_resolv "$NS_H" "$P4"
set_resolv "$NS_G" 127.0.0.1
ALT4=10.$NK_N.0.3
ip -n "$NS_P" addr add "$ALT4/24" dev nkp
dns_up() { # NAME LISTEN ANSWER
	bg_peer "$1" dnsmasq --keep-in-foreground --no-resolv --no-hosts \
		--listen-address="$2" --bind-interfaces --port=53 \
		--pid-file="$NK_TMP/$1.pid" --address=/nk.test/"$3" \
		--log-facility=- --user=root --group=
}
dns_up dns1 "$P4" "$P4"
dns_up dns2 "$ALT4" "$ALT4"
wait_port "$NS_P" 53 10 udp

mkdir -p "$NK_TMP/www"
head -c 300000 /dev/urandom >"$NK_TMP/www/blob"
want=$(sha256sum <"$NK_TMP/www/blob" | cut -d' ' -f1)
bg_peer http_p "$PY" -m http.server -d "$NK_TMP/www" -b 0.0.0.0 8053
wait_port "$NS_P" 8053

nkd_up() { # CONFIG
	[ -n "${NK_NKD_PID:-}" ] && kill "$NK_NKD_PID" 2>/dev/null && wait "$NK_NKD_PID" 2>/dev/null
	rm -f "$NK_SOCK"
	# Not under ip netns exec: nkd's own /etc/resolv.conf is the machine's.
	bg nkd "$NKD" --socket "$NK_SOCK" --config "$1"
	NK_NKD_PID=$LASTPID
	wait_for 10 test -S "$NK_SOCK" || fail "nkd did not start: $(tail -5 "$NK_TMP/nkd.log")"
}

# check ADDR: every resolver in the guest says www.nk.test is ADDR.
check() {
	local a=$1 r got
	got=$(run_guest curl -sS -f --max-time 20 "http://www.nk.test:8053/blob" | sha256sum | cut -d' ' -f1)
	[ "$got" = "$want" ] || fail "curl http://www.nk.test:8053/blob in the guest: sha256 $got, want $want"
	log "curl by name: sha256 ok"
	r=$(run_guest getent ahosts www.nk.test 2>&1) || fail "getent ahosts in the guest failed (rc $?): $r"
	[ "$(head -1 <<<"$r" | awk '{print $1}')" = "$a" ] || fail "getent ahosts: $r"
	log "getent ahosts: $(head -1 <<<"$r")"
	# A UTF-8 name: AI_IDN makes it xn--bcher-kva.nk.test (libidn2 in nkd).
	r=$(run_guest getent ahosts bücher.nk.test 2>&1) || fail "getent ahosts bücher.nk.test in the guest failed (rc $?): $r"
	[ "$(head -1 <<<"$r" | awk '{print $1}')" = "$a" ] || fail "getent ahosts bücher.nk.test: $r"
	log "getent ahosts bücher.nk.test: $(head -1 <<<"$r")"
	r=$(run_guest "$PY" -c 'import socket; print(socket.getaddrinfo("www.nk.test", 80, socket.AF_INET)[0][4][0])' 2>&1) ||
		fail "python getaddrinfo in the guest: $r"
	[ "$r" = "$a" ] || fail "python getaddrinfo: $r"
	log "python getaddrinfo: $r"
	r=$(run_guest node -e '
const dns = require("dns");
dns.lookup("www.nk.test", { family: 4 }, (e, a) => {
  if (e) { console.log("lookup " + e.code); process.exit(1); }
  dns.resolve4("www.nk.test", (e2, l) => {
    if (e2) { console.log("resolve4 " + e2.code); process.exit(1); }
    console.log(a + " " + l.join(","));
  });
});' 2>&1) || fail "node in the guest: $r"
	[ "$r" = "$a $a" ] || fail "node dns.lookup / dns.resolve4: $r"
	log "node dns.lookup, dns.resolve4: $r"
	r=$(run_guest "$PY" "$HELPERS/nk_dnsq.py" udp www.nk.test 2>&1) || fail "own resolver (UDP) in the guest: $r"
	[ "$r" = "$a" ] || fail "own resolver (UDP): $r"
	r=$(run_guest "$PY" "$HELPERS/nk_dnsq.py" tcp www.nk.test 2>&1) || fail "own resolver (TCP) in the guest: $r"
	[ "$r" = "$a" ] || fail "own resolver (TCP): $r"
	log "own resolver reading /etc/resolv.conf, UDP and TCP: $r"
	r=$(run_guest dig +short +tries=1 +time=5 www.nk.test A 2>&1) || fail "dig in the guest: $r"
	[ "$r" = "$a" ] || fail "dig (UDP): $r"
	r=$(run_guest dig +tcp +short +tries=1 +time=5 www.nk.test A 2>&1) || fail "dig +tcp in the guest: $r"
	[ "$r" = "$a" ] || fail "dig +tcp: $r"
	log "dig, dig +tcp: $r"
}

# 1. netns= alone: /etc/netns/H/resolv.conf by default.
cat >"$NK_TMP/nkd.conf" <<CONF
nsm kernel0 type=kernel netns=/run/netns/$NS_H
unknown_guests allow
CONF
nkd_up "$NK_TMP/nkd.conf"
check "$P4"
grep -q "names resolve with /etc/netns/$NS_H/resolv.conf" "$NK_TMP/nkd.log" ||
	fail "nkd does not say it uses /etc/netns/$NS_H/resolv.conf"

# 2. resolv= wins.
printf 'nameserver %s\noptions timeout:2 attempts:2\n' "$ALT4" >"$NK_TMP/alt-resolv.conf"
cat >"$NK_TMP/nkd2.conf" <<CONF
nsm kernel0 type=kernel netns=/run/netns/$NS_H resolv=$NK_TMP/alt-resolv.conf
unknown_guests allow
CONF
nkd_up "$NK_TMP/nkd2.conf"
check "$ALT4"
log "ok"
