#!/usr/bin/env bash
# The core path without root: nkd runs in one user+network namespace
# (unshare -Urn) next to a python http.server on its 127.0.0.1; the guest
# runs curl in a different unshare -Urn namespace, where 127.0.0.1 has
# nothing listening, so the fetch can only succeed through nkd. As root the
# test drops to user nobody first, to prove no privilege is needed.
# timeout: 60
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netkernel
need_nk
need_cmd unshare curl
AS=()
if [ "$(id -u)" = 0 ]; then
	command -v setpriv >/dev/null || skip "setpriv missing"
	AS=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	# nobody must reach the build tree and our directory.
	chmod 755 "$NK_TMP"
fi
"${AS[@]}" unshare -Urn true 2>/dev/null || skip "unprivileged user namespaces are not available"
D=$NK_TMP/rl
mkdir -p "$D/www"
make_file "$D/www/blob" 2
want=$(sha_of "$D/www/blob")
[ "$(id -u)" = 0 ] && chown -R 65534:65534 "$D"

# The server is a service of nkd's own namespace: the guest may reach it
# only with host_access=allow (docs/config.md).
printf 'nsm kernel0 type=kernel\nguest rl host_access=allow\n' >"$D/nkd.conf"
[ "$(id -u)" = 0 ] && chown 65534:65534 "$D/nkd.conf"
bg_group host "${AS[@]}" unshare -Urn sh -c "
	ip link set lo up || exit 1
	'$PY' -m http.server -d '$D/www' -b 127.0.0.1 8000 &
	exec '$NKD' --socket '$D/nkd.sock' --config '$D/nkd.conf'"
wait_for 10 test -S "$D/nkd.sock" || fail "nkd in the user namespace did not start"
sleep 1  # the http.server in the same namespace
"${AS[@]}" unshare -Urn sh -c "ip link set lo up; timeout 30 '$NKRUN' --guest rl --socket '$D/nkd.sock' -- \
	curl -sS -f --max-time 20 -o '$D/got' http://127.0.0.1:8000/blob" ||
	fail "curl through nkd in user namespaces failed"
[ "$(sha_of "$D/got")" = "$want" ] || fail "wrong content"
# Without nkd the guest's own loopback has nothing: the fetch must fail.
if "${AS[@]}" unshare -Urn sh -c "ip link set lo up; curl -s --max-time 5 -o /dev/null http://127.0.0.1:8000/blob"; then
	fail "guest namespace serves 127.0.0.1:8000 by itself: the test proves nothing"
fi
log "ok"
