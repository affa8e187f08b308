# shellcheck shell=sh
# Stage 2 of the netkernel test VM: PID 1 after switch_root into the host's
# read-only root (run by /run/nk/busybox sh, so it needs nothing from the
# host). Brings up lo, finds the ivshmem BAR and the virtio-serial ports,
# writes /run/nk-vm.env, then serves the harness's command port
# (org.netkernel.cmd) until told to power off. Protocol: docs/vm.md.
BB=/run/nk/busybox
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/tmp TERM=dumb LANG=C.UTF-8
ENV=/run/nk-vm.env

say() { echo "nk-vm: $*" >/dev/console; }
halt() {
	sync
	$BB poweroff -f
}

$BB ip link set lo up || say "lo would not come up"

# Device nodes come from devtmpfs; a port's name arrives from the host in
# a control message shortly after the port itself.
port_dev() { # NAME -> /dev/vportNpM
	for p in /sys/class/virtio-ports/*; do
		[ -r "$p/name" ] || continue
		[ "$($BB cat "$p/name" 2>/dev/null)" = "$1" ] && { echo "/dev/${p##*/}"; return 0; }
	done
	return 1
}
i=0
while ! CMD=$(port_dev org.netkernel.cmd) || [ ! -c "$CMD" ]; do
	i=$((i + 1))
	[ $i -gt 100 ] && { say "no org.netkernel.cmd port"; halt; }
	$BB usleep 50000
done

{
	echo "NK_VM_KERNEL=$($BB uname -r)"
	for d in /sys/bus/pci/devices/*; do
		[ "$($BB cat "$d/vendor")" = 0x1af4 ] || continue
		[ "$($BB cat "$d/device")" = 0x1110 ] || continue
		# No driver binds ivshmem-plain: enabling the device turns on
		# memory decoding so BAR2 can be mapped through sysfs.
		echo 1 >"$d/enable" 2>/dev/null
		echo "NK_VM_SHM=$d/resource2"
		echo "NK_VM_SHM_PCI=${d##*/}"
		echo "NK_VM_SHM_SIZE=$($BB stat -c %s "$d/resource2")"
		break
	done
	for p in /sys/class/virtio-ports/*; do
		[ -r "$p/name" ] || continue
		n=$($BB cat "$p/name")
		[ -n "$n" ] || continue
		echo "NK_VM_PORT_$(echo "$n" | $BB tr -c 'A-Za-z0-9\n' _)=/dev/${p##*/}"
		[ "$n" = org.netkernel.ctl ] && echo "NK_VM_CTL=/dev/${p##*/}"
	done
	echo "NK_VM_CMD=$CMD"
	echo "NK_VM_NET=$($BB ls /sys/class/net | $BB tr '\n' ' ' | $BB sed 's/ $//')"
} >"$ENV.new"
$BB mv "$ENV.new" "$ENV"
set -a
# shellcheck source=/dev/null
. "$ENV"
set +a

exec 3<>"$CMD"
echo "READY $($BB cut -d' ' -f1 /proc/uptime)" >&3
say "ready ($($BB cut -d' ' -f1 /proc/uptime) s)"

# One request per line: VERB ID [BASE64(script) [BASE64(cwd)]].
#   RUN      run the script with bash, reply BEGIN/STDERR/END ID RC
#   BG       start the script in the background (output on the console)
#   POWEROFF sync and power off (QEMU exits)
nbg=0
while :; do
	if ! IFS=' ' read -r verb id a b <&3; then
		# EOF only while the host end is closed: wait, bounded by the VM's life.
		$BB sleep 1
		continue
	fi
	script=$(echo "$a" | $BB base64 -d 2>/dev/null)
	cwd=$(echo "$b" | $BB base64 -d 2>/dev/null)
	case $verb in
	RUN)
		(cd "${cwd:-/}" 2>/dev/null || cd /; exec /bin/bash -c "$script") \
			</dev/null >/run/nk/out 2>/run/nk/err
		rc=$?
		{
			echo "BEGIN $id"
			$BB base64 /run/nk/out
			echo "STDERR $id"
			$BB base64 /run/nk/err
			echo "END $id $rc"
		} >&3
		;;
	BG)
		nbg=$((nbg + 1))
		(cd "${cwd:-/}" 2>/dev/null || cd /; exec /bin/bash -c "$script") \
			</dev/null >/dev/console 2>&1 &
		echo "END $id 0 $!" >&3
		;;
	POWEROFF)
		echo "END $id 0" >&3
		halt
		;;
	*) echo "END $id 127" >&3 ;;
	esac
done
