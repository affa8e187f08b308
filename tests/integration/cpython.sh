#!/usr/bin/env bash
# Conformance with a suite we did not write: CPython's own standard-library
# tests (Debian's libpython3.11-testsuite), `/usr/bin/python3 -m test`, run
# natively in the NIC-less namespace G and then in G through nkrun/nkd. For
# every module the run/fail/error/skip counts (from --junit-xml) under
# nkrun must equal the native ones; the test fails naming each module that
# differs, with the test cases that fail only under nkrun.
#
# The entries (CPY_MODULES: MODULE or MODULE:PAT[,PAT...], each PAT a
# `python3 -m test -m` glob, or an `-i` glob after "!") are by default a
# fast subset of the issue 7 list that still catches each of its causes
# A-G; CPY_MODULES=full is the whole list (docs/testing.md "CPython's test
# suite"). The VSOCK tests are left out of both runs (they hang natively on
# a machine with /dev/vsock). Each entry is its own `python3 -m test`,
# bounded by its --timeout (faulthandler; per module in 3.11) and
# `timeout`. CPY_KEEP=DIR keeps the XML files and logs.
# timeout: 900
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
[ -f /usr/lib/python3.11/test/test_socket.py ] ||
	skip "libpython3.11-testsuite not installed (scripts/install-deps.sh)"
need_nk
JUNIT=$HELPERS/cpy_junit.py

# The fast subset, and the cause of issue 7 each entry catches besides
# plain conformance (A-G there). Slow cases (sleeps, 10 MiB bodies) are
# left out with "!".
CPY_FAST="
test_selectors:EpollSelectorTestCase,PollSelectorTestCase,!test_above_fd_setsize,!test_select_interrupt_noraise
test_poll:!test_poll2
test_epoll
test_httplib:!test_large_content_length
test_socketserver
test_wsgiref
test_smtplib
test_urllib2_localnet
test_ftplib:TestFTPClass,TestIPv6Environment
test_xmlrpc:!MultiPathServerTestCase,!test_gzip_decode_limit
test_ssl:BasicSocketTests,SimpleBackgroundTests
test_socket:GeneralModuleTests,BasicTCPTest,BasicUDPTest,NonBlockingTCPTests,SendmsgTCPTest,SendmsgUDPTest,SendmsgUDP6Test,RecvmsgTCPTest,RecvmsgUDP6Test,InterruptedSendTimeoutTest,InterruptedRecvTimeoutTest,NetworkConnectionNoServer,CreateServerFunctionalTest,testRecvHopLimit,testRecvTrafficClassAndHopLimit,!*UDPLITE*
test_socket:SendfileUsingSendTest
test_asyncio.test_sendfile:EPollEventLoopTests
test_asyncio.test_sock_lowlevel:EPollEventLoopTests
test_asyncio.test_events:EPollEventLoopTests
"
# A: test_ssl (every wrap_socket probes with a non-blocking recv(1)),
#    test_events' test_ssl_connect_accepted_socket (hangs in accept).
# B: test_socket's testRecvHopLimit/testRecvTrafficClassAndHopLimit.
# C: test_socket's SendmsgUDP*Test.testSendmsgNoDestAddr, test_sendfile's
#    *close_peer_in_the_middle_of_receiving.
# D: test_socket's SendfileUsingSendTest (testRegularFile/NonRegularFile
#    hang: recv waits for a shim buffer past its timeout).
# E: test_sock_lowlevel's test_sock_client_racing (shutdown(SHUT_WR)
#    blocks the event loop).
# F: InterruptedSendTimeoutTest, SendfileUsingSendTest.
#    testWithTimeoutTriggeredSend (send timeouts).
# G: test_epoll's test_control_and_wait (edge-triggered EPOLLIN late).
CPY_FULL="test_selectors test_poll test_epoll test_httplib
test_urllib2_localnet test_socketserver test_ftplib test_smtplib
test_wsgiref test_xmlrpc test_ssl test_socket"
# test_asyncio module by module: --timeout bounds one module.
for f in /usr/lib/python3.11/test/test_asyncio/test_*.py; do
	f=${f##*/}
	CPY_FULL="$CPY_FULL test_asyncio.${f%.py}"
done
CPY_MODULES=${CPY_MODULES:-$CPY_FAST}
[ "$CPY_MODULES" = full ] && CPY_MODULES=$CPY_FULL
# Seconds for one entry (python's own --timeout; `timeout` adds 30). The
# slowest fast entry takes ~10 s natively on 2 busy cores; a hang costs
# this much, so the `# timeout:` above allows a few.
CPY_MOD_TIMEOUT=${CPY_MOD_TIMEOUT:-90}

topo_up
# Host names resolve nowhere, fast and alike in both runs (tests that need
# the Internet skip themselves).
set_resolv "$NS_H" 127.0.0.1
set_resolv "$NS_G" 127.0.0.1
start_nkd

# cpy_run WHERE KEY SPEC: one entry, natively in G (WHERE=native) or
# through nkrun (guest); "run fail err skip" in $NK_TMP/WHERE-KEY.counts,
# or the reason there is none, and the failing cases in WHERE-KEY.bad.
cpy_run() {
	local where=$1 key=$2 spec=$3 mod p xml rc t0 t1 plist=()
	local args=(-m test --timeout "$CPY_MOD_TIMEOUT" -i '*VSOCK*' -i '*VSock*')
	mod=${spec%%:*}
	[ "$spec" != "$mod" ] && IFS=, read -ra plist <<<"${spec#*:}"
	for p in "${plist[@]}"; do
		case $p in
		!*) args+=(-i "${p#!}") ;;
		*) args+=(-m "$p") ;;
		esac
	done
	# test_socketserver's tests need the network resource.
	[ "$mod" = test_socketserver ] && args+=(-u network)
	xml=$NK_TMP/$where-$key.xml
	rm -f "$xml"
	mkdir -p "$NK_TMP/tmp-$where"
	local run=(ip netns exec "$NS_G" env TMPDIR="$NK_TMP/tmp-$where")
	if [ "$where" = guest ] && [ -n "${NK_NATIVE:-}" ]; then
		# The test's own check: the "guest" natively in H.
		run=(ip netns exec "$NS_H" env TMPDIR="$NK_TMP/tmp-$where")
	elif [ "$where" = guest ]; then
		run+=("$NKRUN" --guest "$GUEST" --socket "$NK_SOCK" --)
	fi
	t0=$(date +%s)
	set +e
	timeout -k 5 "$((CPY_MOD_TIMEOUT + 30))" "${run[@]}" \
		"$PY" "${args[@]}" --junit-xml "$xml" -v "$mod" \
		>"$NK_TMP/$where-$key.out" 2>&1
	rc=$?
	set -e
	t1=$(date +%s)
	if "$PY" "$JUNIT" counts "$xml" >"$NK_TMP/$where-$key.counts" 2>/dev/null &&
		[ -s "$NK_TMP/$where-$key.counts" ]; then
		"$PY" "$JUNIT" bad "$xml" | sort >"$NK_TMP/$where-$key.bad"
	else
		case $rc in
		124 | 137) echo "no result: killed by timeout" ;;
		*) echo "no result: exit $rc$(grep -m1 -o '^Timeout (.*' "$NK_TMP/$where-$key.out" | sed 's/^/, /')" ;;
		esac >"$NK_TMP/$where-$key.counts"
		: >"$NK_TMP/$where-$key.bad"
	fi
	log "$where $key: $(cat "$NK_TMP/$where-$key.counts") (run/fail/err/skip, exit $rc, $((t1 - t0)) s)"
}

bad=()
native_bad=()
read -r -d '' -a specs <<<"$CPY_MODULES" || true
i=0
for spec in "${specs[@]}"; do
	i=$((i + 1))
	key=$(printf '%02d-%s' "$i" "${spec%%:*}")
	log "$key = $spec"
	cpy_run native "$key" "$spec"
	if ! grep -q '^[0-9]' "$NK_TMP/native-$key.counts"; then
		# Then the test itself is wrong (or the module too slow here).
		tail -n 5 "$NK_TMP/native-$key.out" >&2
		native_bad+=("$key")
		continue
	fi
	cpy_run guest "$key" "$spec"
	[ -n "${NK_NATIVE:-}" ] || nkd_alive || fail "nkd died during $key"
	if ! cmp -s "$NK_TMP/native-$key.counts" "$NK_TMP/guest-$key.counts"; then
		bad+=("$key")
		log "$key differs: native $(cat "$NK_TMP/native-$key.counts"), nkrun $(cat "$NK_TMP/guest-$key.counts")"
		comm -13 "$NK_TMP/native-$key.bad" "$NK_TMP/guest-$key.bad" | head -n 40 |
			sed "s/^/  only under nkrun: /" >&2
		comm -23 "$NK_TMP/native-$key.bad" "$NK_TMP/guest-$key.bad" | grep -v '^skipped' |
			head -n 10 | sed "s/^/  only natively: /" >&2
		grep -B2 -A25 -m2 '^Timeout (\|^Thread 0x' "$NK_TMP/guest-$key.out" | head -n 60 >&2 || true
	fi
done
if [ -n "${CPY_KEEP:-}" ]; then
	mkdir -p "$CPY_KEEP"
	cp "$NK_TMP"/native-* "$NK_TMP"/guest-* "$CPY_KEEP"/
fi
[ ${#native_bad[@]} = 0 ] ||
	fail "no result natively (the test is wrong) for: ${native_bad[*]}"
[ ${#bad[@]} = 0 ] || fail "counts under nkrun differ from native in: ${bad[*]}"
log "ok: all ${#specs[@]} entries give the same counts under nkrun as natively"
