#!/bin/sh
# Installs every Debian 12 package netkernel needs to build, test, demo and
# benchmark, then the VM tests' kernel image (tests/vm/mkimage.sh: Debian's
# generic kernel fetched with apt-get download, cached in build/vm) so that
# the tests themselves need no network. Idempotent.
set -eu
PKGS="build-essential pkg-config clang llvm gcc make
liburing-dev libsystemd-dev libbpf-dev libxdp-dev bpftool libcmocka-dev libelf-dev zlib1g-dev
iproute2 iputils-ping ethtool procps psmisc util-linux coreutils
curl python3 iperf3 nginx-light redis-server redis-tools sockperf wrk
slirp4netns passt dnsmasq-base jq liblwip-dev libpython3.11-testsuite
debhelper dpkg-dev fakeroot lintian libjson-c-dev nodejs bind9-dnsutils
qemu-system-x86 busybox-static cpio strace valgrind"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
vm_image() {
	# A VM image that cannot be had here is not fatal: the VM tests skip
	# with the reason.
	"$(dirname "$0")/../tests/vm/mkimage.sh" >/dev/null ||
		echo "install-deps: no VM image (VM tests will skip)" >&2
	return 0
}
[ -z "$missing" ] && { vm_image; exit 0; }
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages:$missing (run as root to install)" >&2
	exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# nginx and redis must not start as system services: tests run their own.
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d.nk && chmod +x /usr/sbin/policy-rc.d.nk
[ -e /usr/sbin/policy-rc.d ] || { cp /usr/sbin/policy-rc.d.nk /usr/sbin/policy-rc.d; rm_policy=1; }
apt-get install -y -qq --no-install-recommends $missing
[ "${rm_policy:-0}" = 1 ] && rm -f /usr/sbin/policy-rc.d
rm -f /usr/sbin/policy-rc.d.nk
vm_image
