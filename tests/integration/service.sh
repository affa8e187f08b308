#!/usr/bin/env bash
# nkd as a service (issue 9 item 2), rootless:
# (a) --version of nkd, nkrun and nk-loader: "NAME (netkernel) VERSION";
# (b) --check-config: a good file ('\' continuations, user and group names
#     in uid=/gid=) gives exit 0 and "FILE: ok: ..."; a bad one gives exit 1
#     and exactly one FILE:LINE: message per error, a duplicate citing the
#     first definition, a missing NSM namespace included;
# (c) readiness through a NOTIFY_SOCKET (tests/tools/notify_listen.py in
#     place of systemd): READY=1 arrives, and right after it the control
#     socket is there and a guest's curl through nkd gets the right bytes;
# (d) an NSM whose namespace nkd cannot enter (nkd in a user namespace of
#     its own: setns() gives EPERM) or that does not exist: no READY=1, a
#     non-zero exit, and a message naming the NSM and the cause;
# (e) SIGHUP reloads: RELOADING=1 then READY=1, a "reloaded" line, nkd
#     still running; SIGTERM: STOPPING=1, exit 0, the control socket gone;
#     SIGINT and a fatal error after bind (pidfile) leave no socket either;
# (f) with JOURNAL_STREAM naming stderr, log lines carry <6>/<4>/<3>
#     priorities and no timestamp; otherwise an ISO 8601 time with ms.
# NK_SERVICE_PARTS="c d" runs some parts only (e needs c before it), e.g.
# to show each fails with an old nkd (BUILD=/work/base/build).
# timeout: 120
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_netkernel
need_nk "$BUILD/nk-loader"
need_cmd curl
topo_up
NOTIFY=$HELPERS/notify_listen.py
VERSION=$(sed -n 's/^#define NK_VERSION_STRING "\(.*\)"$/\1/p' \
	"$NK_ROOT/include/netkernel/version.h")
[ -n "$VERSION" ] || fail "no NK_VERSION_STRING in include/netkernel/version.h"
# The config nkd runs with in (c) and (e): what every version parses.
C=$NK_TMP/c.conf
printf 'nsm kernel0 type=kernel\nguest g1 uid=0\n' >"$C"
# An NSM whose namespace does not exist: (d) and (f).
printf 'nsm lost type=kernel netns=/run/netns/nk-none-%s\n' "$NK_ID" >"$NK_TMP/gone.conf"

# notify_start NAME: a notify socket listening; its messages in $NK_TMP/NAME.msgs
notify_start() {
	rm -f "$NK_TMP/$1.msgs"
	bg "$1-notify" "$PY" "$NOTIFY" "$NK_TMP/$1.notify" "$NK_TMP/$1.msgs" 100
	wait_for 10 grep -qx LISTENING "$NK_TMP/$1.msgs" || fail "notify listener $1 did not start"
}
seen() { grep -qx "$2" "$NK_TMP/$1.msgs"; } # NAME LINE

# A web server in P for the guests' curl.
www_start() {
	[ -n "${WANT:-}" ] && return 0
	mkdir -p "$NK_TMP/www"
	make_file "$NK_TMP/www/blob" 1
	WANT=$(sha_of "$NK_TMP/www/blob")
	bg www ip netns exec "$NS_P" "$PY" -m http.server -d "$NK_TMP/www" -b "$P4" 8000
	wait_port "$NS_P" 8000
}

# nkd in H with $C, its notify messages in $NK_TMP/c.msgs.
nkd_notify_start() {
	notify_start c
	NOTIFY_SOCKET=$NK_TMP/c.notify bg nkd ip netns exec "$NS_H" "$NKD" \
		--socket "$NK_SOCK" --config "$C"
	NK_NKD_PID=$LASTPID
}

# expect_no_ready NAME CONFIG WHAT [PREFIX...]: nkd fails to start.
expect_no_ready() {
	local name=$1 conf=$2 what=$3 rc=0
	shift 3
	notify_start "$name"
	NOTIFY_SOCKET=$NK_TMP/$name.notify timeout 20 "$@" "$NKD" \
		--socket "$NK_TMP/$name.sock" --config "$conf" \
		>"$NK_TMP/$name.log" 2>&1 || rc=$?
	if [ "$rc" = 0 ] || [ "$rc" = 124 ]; then
		fail "$what: nkd exit status $rc (124: still running after 20 s)"
	fi
	! seen "$name" READY=1 || fail "$what: READY=1 although the NSM is unusable"
	[ ! -e "$NK_TMP/$name.sock" ] || fail "$what: control socket left behind"
}

# ---------------------------------------------------------------- (a)
part_a() {
	for p in nkd:"$NKD" nkrun:"$NKRUN" nk-loader:"$BUILD/nk-loader"; do
		got=$("${p#*:}" --version 2>&1) || fail "${p%%:*} --version: exit $?: $got"
		[ "$got" = "${p%%:*} (netkernel) $VERSION" ] ||
			fail "${p%%:*} --version printed '$got'"
	done
	log "(a) --version: nkd, nkrun, nk-loader print NAME (netkernel) $VERSION"
}

# ---------------------------------------------------------------- (b)
part_b() {
	G=$NK_TMP/good.conf
	cat >"$G" <<-'EOF'
	# the example of nkd(8), with continuations
	nsm kernel0 type=kernel
	guest g1 uid=root \
		gid=root \
		max_sockets=64   # a comment ends the statement
	guest web uid=0 uid=nobody bind=0.0.0.0/0:8000-8099
	unknown_guests deny
	EOF
	out=$("$NKD" --check-config "$G" 2>&1) || fail "--check-config of a good file: exit $?: $out"
	[ "$out" = "$G: ok: 1 nsm (kernel0 kernel), 2 guests, unknown guests denied" ] ||
		fail "--check-config good: '$out'"

	B=$NK_TMP/bad.conf
	cat >"$B" <<-EOF
	nsm kernel0 type=kernel
	guest a uid=nk-no-such-user
	guest b \\
		max_sockets=0
	guest c
	guest c weight=2
	nsm kernel0 type=kernel
	nsm gone type=kernel netns=/run/netns/nk-none-$NK_ID
	colour blue
	EOF
	rc=0
	"$NKD" --check-config "$B" >"$NK_TMP/bad.out" 2>&1 || rc=$?
	[ "$rc" = 1 ] || fail "--check-config of a bad file: exit $rc, want 1"
	cat >"$NK_TMP/bad.want" <<-EOF
	$B:2: guest a: bad uid 'nk-no-such-user' (a number or a user name)
	$B:3: guest b: max_sockets must be 1..1048574
	$B:6: guest 'c' already defined at $B:5
	$B:7: nsm 'kernel0' already defined at $B:1
	$B:9: unknown statement 'colour'
	$B:8: nsm gone: netns /run/netns/nk-none-$NK_ID: No such file or directory
	$B: 6 errors, nkd would not start
	EOF
	diff -u "$NK_TMP/bad.want" "$NK_TMP/bad.out" >&2 || fail "--check-config bad: wrong messages"
	rc=0
	"$NKD" --check-config "$NK_TMP/absent.conf" >"$NK_TMP/absent.out" 2>&1 || rc=$?
	[ "$rc" = 1 ] || fail "--check-config of a missing file: exit $rc"
	grep -qx "$NK_TMP/absent.conf: No such file or directory" "$NK_TMP/absent.out" ||
		fail "--check-config of a missing file: $(cat "$NK_TMP/absent.out")"
	log "(b) --check-config: good file ok, bad file: 6 FILE:LINE errors, exit 1"
}

# ---------------------------------------------------------------- (c)
part_c() {
	www_start
	nkd_notify_start
	wait_for 15 seen c READY=1 || fail "no READY=1 from nkd within 15 s: $(cat "$NK_TMP/c.msgs")"
	# Right after READY=1, not after some wait: nkd must serve already.
	[ -S "$NK_SOCK" ] || fail "READY=1 sent before the control socket exists"
	run_guest curl -sS -f --max-time 20 -o "$NK_TMP/got" "http://$P4:8000/blob" ||
		fail "a guest's curl right after READY=1 failed"
	[ "$(sha_of "$NK_TMP/got")" = "$WANT" ] || fail "guest curl after READY=1: wrong content"
	grep -q '^STATUS=running: 1 NSM' "$NK_TMP/c.msgs" || fail "no STATUS= with READY=1: $(cat "$NK_TMP/c.msgs")"
	log "(c) READY=1 arrives and a guest's curl right after it works"
}

# ---------------------------------------------------------------- (e)
part_e() {
	if ! nkd_alive; then # without part c (an old nkd sends no READY=1)
		www_start
		nkd_notify_start
		wait_for 10 test -S "$NK_SOCK" || fail "nkd did not start"
	fi
	echo "guest added-by-reload" >>"$C"
	kill -HUP "$NK_NKD_PID"
	wait_for 10 grep -q "reloaded $C: .* 1 added" "$NK_TMP/nkd.log" ||
		fail "no 'reloaded' line after SIGHUP"
	wait_for 5 seen c RELOADING=1 || fail "no RELOADING=1 after SIGHUP"
	wait_for 5 test "$(grep -cx READY=1 "$NK_TMP/c.msgs")" = 2 ||
		fail "no second READY=1 after the reload: $(cat "$NK_TMP/c.msgs")"
	# RELOADING=1 comes between the two READY=1, with the time of the reload.
	awk '/^READY=1$/ {r++} /^RELOADING=1$/ {if (r != 1) bad=1; l=1}
		/^MONOTONIC_USEC=[0-9]+$/ {m=1} END {exit !(l && m && !bad)}' "$NK_TMP/c.msgs" ||
		fail "RELOADING=1 / MONOTONIC_USEC not between the READY=1s: $(cat "$NK_TMP/c.msgs")"
	sleep 0.5
	alive "$NK_NKD_PID" || fail "nkd died on SIGHUP"
	run_guest curl -sS -f --max-time 20 -o "$NK_TMP/got2" "http://$P4:8000/blob" ||
		fail "guest curl after the reload failed"
	kill -TERM "$NK_NKD_PID"
	rc=0
	for _ in $(seq 50); do alive "$NK_NKD_PID" || break; sleep 0.1; done
	wait "$NK_NKD_PID" || rc=$?
	[ "$rc" = 0 ] || fail "nkd exit $rc on SIGTERM"
	[ ! -e "$NK_SOCK" ] || fail "control socket left behind after SIGTERM"
	wait_for 5 seen c STOPPING=1 || fail "no STOPPING=1 on SIGTERM"
	log "(e) SIGHUP: RELOADING=1, reloaded, READY=1, still serving; SIGTERM: STOPPING=1, exit 0, socket gone"

	# SIGINT, and a fatal error after the socket was bound (the pidfile).
	# This time the notify socket is abstract ("@NAME"), which is per
	# network namespace: the listener runs in H, next to nkd.
	rm -f "$NK_TMP/int.msgs"
	bg int-notify ip netns exec "$NS_H" "$PY" "$NOTIFY" "@nk-notify-$NK_ID" "$NK_TMP/int.msgs" 100
	wait_for 10 grep -qx LISTENING "$NK_TMP/int.msgs" || fail "abstract notify listener did not start"
	NOTIFY_SOCKET=@nk-notify-$NK_ID bg nkd-int ip netns exec "$NS_H" "$NKD" --socket "$NK_SOCK"
	p=$LASTPID
	wait_for 10 seen int READY=1 || fail "no READY=1 through an abstract NOTIFY_SOCKET"
	kill -INT "$p"
	rc=0
	wait "$p" || rc=$?
	[ "$rc" = 0 ] || fail "nkd exit $rc on SIGINT"
	[ ! -e "$NK_SOCK" ] || fail "control socket left behind after SIGINT"
	wait_for 5 seen int STOPPING=1 || fail "no STOPPING=1 on SIGINT"
	rc=0
	ip netns exec "$NS_H" "$NKD" --socket "$NK_SOCK" --pidfile "$NK_TMP/no/such/dir/pid" \
		>"$NK_TMP/pidfail.log" 2>&1 || rc=$?
	[ "$rc" = 1 ] || fail "nkd with an unwritable pidfile: exit $rc"
	grep -q "listening on $NK_SOCK" "$NK_TMP/pidfail.log" ||
		fail "the pidfile case did not get past bind: $(cat "$NK_TMP/pidfail.log")"
	[ ! -e "$NK_SOCK" ] || fail "control socket left behind after a fatal error"
	log "(e) abstract NOTIFY_SOCKET: READY=1, STOPPING=1; SIGINT and a fatal error after bind remove the control socket"
}

# ---------------------------------------------------------------- (d)
part_d() {
	printf 'nsm peerns type=kernel netns=/run/netns/%s\n' "$NS_P" >"$NK_TMP/eperm.conf"
	if unshare -Ur true 2>/dev/null; then
		# In a user namespace of its own, nkd has no CAP_SYS_ADMIN over P's.
		expect_no_ready eperm "$NK_TMP/eperm.conf" "netns nkd cannot enter" unshare -Ur
		grep -q "nsm peerns: .*Operation not permitted" "$NK_TMP/eperm.log" ||
			fail "no message naming NSM peerns and EPERM: $(cat "$NK_TMP/eperm.log")"
		grep -q "STATUS=startup failed" "$NK_TMP/eperm.msgs" ||
			fail "no STATUS=startup failed: $(cat "$NK_TMP/eperm.msgs")"
		log "(d) unusable NSM namespace (EPERM): no READY=1, exit non-zero: $(grep -m1 'nsm peerns' "$NK_TMP/eperm.log")"
	else
		log "(d) nested user namespaces unavailable: EPERM case not run"
	fi
	expect_no_ready gone "$NK_TMP/gone.conf" "missing netns" ip netns exec "$NS_H"
	grep -q "nsm lost: netns /run/netns/nk-none-$NK_ID: No such file" "$NK_TMP/gone.log" ||
		fail "no message naming NSM lost: $(cat "$NK_TMP/gone.log")"
	log "(d) missing NSM namespace: no READY=1, exit non-zero, NSM named"
}

# ---------------------------------------------------------------- (f)
part_f() {
	# nkd_stderr FILE JOURNAL_STREAM ARGS...: nkd in H, stderr to FILE, one
	# process from env to nkd (bg's pid is nkd's).
	# shellcheck disable=SC2016  # expanded by sh -c
	NKD_STDERR=(sh -c 'f=$1; shift; exec "$@" 2>>"$f"' _)
	nkd_stderr() {
		env JOURNAL_STREAM="$2" ip netns exec "$NS_H" "${NKD_STDERR[@]}" "$1" \
			"$NKD" --socket "$NK_SOCK" "${@:3}"
	}
	# stderr to a file whose dev:ino is in JOURNAL_STREAM, as systemd does.
	J=$NK_TMP/journal.log
	: >"$J"
	bg jnkd env JOURNAL_STREAM="$(stat -c '%d:%i' "$J")" ip netns exec "$NS_H" \
		"${NKD_STDERR[@]}" "$J" "$NKD" --socket "$NK_SOCK"
	p=$LASTPID
	wait_for 10 test -S "$NK_SOCK" || fail "nkd (journal run) did not start"
	kill -HUP "$p" # no --config: a warning
	wait_for 5 grep -q '^<4>warning: reload: ' "$J" || fail "no <4> warning line: $(cat "$J")"
	kill -TERM "$p"
	wait "$p" || true
	grep -q '^<6>info: nkd .* ready' "$J" || fail "no <6> info line: $(cat "$J")"
	: >"$NK_TMP/j3.log"
	nkd_stderr "$NK_TMP/j3.log" "$(stat -c '%d:%i' "$NK_TMP/j3.log")" \
		--config "$NK_TMP/gone.conf" || true
	grep -q '^<3>error: nsm lost: ' "$NK_TMP/j3.log" || fail "no <3> error line: $(cat "$NK_TMP/j3.log")"
	# Not the journal (JOURNAL_STREAM names another file): human timestamps.
	nkd_stderr "$NK_TMP/nojournal.log" "$(stat -c '%d:%i' "$NK_TMP/gone.conf")" \
		--config "$NK_TMP/gone.conf" || true
	grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}[+-][0-9]{4} nkd\[[0-9]+\] error: nsm lost: ' \
		"$NK_TMP/nojournal.log" || fail "no ISO 8601 timestamp without the journal: $(cat "$NK_TMP/nojournal.log")"
	! grep -q '^<' "$NK_TMP/nojournal.log" || fail "priority prefix on a non-journal stderr"
	log "(f) journal: <6>/<4>/<3> prefixes; elsewhere ISO 8601 ms timestamps"
}

for part in ${NK_SERVICE_PARTS:-a b c e d f}; do
	"part_$part"
done
log "ok"
