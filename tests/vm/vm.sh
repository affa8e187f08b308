#!/usr/bin/env bash
# shellcheck disable=SC2034,SC2054  # VM_* are for sourcers; QEMU options have commas
# The netkernel test VM: QEMU with NO network device, the host's root
# read-only over virtio-9p (so the build tree and /usr/bin/python3 are at
# the same paths inside), optionally an ivshmem-plain device backed by a
# host file and a virtio-serial port org.netkernel.ctl whose host side is a
# unix socket. A second port, org.netkernel.cmd, carries the harness's own
# commands to a shell loop in the VM's init. docs/vm.md has the details.
#
# As a library (after tests/lib.sh or alone; bash, works under set -eu):
#
#   . tests/vm/vm.sh
#   vm_start --shm FILE --shm-size 16M --serial-sock PATH [--serial-server off]
#            [--share DIR] [--mem MB] [--cmd 'script'] [--boot-timeout S]
#   vm_run [--timeout S] 'shell command'   # output and exit status of it
#   vm_bg 'shell command'                   # in the background, prints its pid
#   vm_stop [--timeout S]                   # power off; TERM/KILL on timeout
#
# vm_start returns 77 with "SKIP: reason" on stderr when no VM can run here
# (no qemu, no kernel package). After it: VM_DIR (state, console.log),
# VM_PID (qemu), VM_ACCEL (kvm|tcg), VM_BOOT_S (host seconds from starting
# qemu to the first command), VM_GUEST_UPTIME_S, VM_CTL_SOCK.
# Inside the VM, /run/nk-vm.env names the devices (NK_VM_SHM, NK_VM_CTL...).
#
# As a command (state kept in --dir, so several processes can share a VM):
#
#   tests/vm/vm.sh start --dir D [vm_start options]   # prints VM_* lines
#   tests/vm/vm.sh run --dir D [--timeout S] 'cmd'
#   tests/vm/vm.sh bg --dir D 'cmd'
#   tests/vm/vm.sh stop --dir D
#   tests/vm/vm.sh oneshot [vm_start options] 'cmd'   # boot, run, power off
#   tests/vm/vm.sh probe                              # kvm / vsock findings
#
# Environment: NK_VM_CACHE (kernel and initramfs, default build/vm),
# NK_VM_ACCEL=kvm|tcg (skip the probe), QEMU (default qemu-system-x86_64).

VM_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VM_ROOT=$(cd "$VM_HERE/../.." && pwd)
VM_BUILD=${BUILD:-$VM_ROOT/build}
case $VM_BUILD in /*) ;; *) VM_BUILD=$VM_ROOT/$VM_BUILD ;; esac
VM_CACHE=${NK_VM_CACHE:-$VM_BUILD/vm}
VM_QEMU=${QEMU:-qemu-system-x86_64}
VM_KVM_DEV=${NK_VM_KVM_DEV:-/dev/kvm} # another path only to test the fallback
VM_DIR=${VM_DIR:-}
VM_PID=${VM_PID:-}
VM_CTL_SOCK=${VM_CTL_SOCK:-}
VM_CTL_SERVER=${VM_CTL_SERVER:-on}

vm__say() { printf '[vm] %s\n' "$*" >&2; }
vm__skip() {
	printf '[vm] SKIP: %s\n' "$*" >&2
	return 77
}
vm__esc() { printf '%s' "${1//,/,,}"; } # a QEMU option value
vm__alive() { [ -n "$VM_PID" ] && kill -0 "$VM_PID" 2>/dev/null; }

# vm_image: kernel and initramfs in $VM_CACHE (77 when they cannot be had).
# VM_IMAGE_WHY says why when it returns 77.
vm_image() {
	local rc=0 err
	err=$(NK_VM_CACHE=$VM_CACHE BUILD=$VM_BUILD "$VM_HERE/mkimage.sh" 2>&1 >/dev/null) || rc=$?
	[ -z "$err" ] || printf '%s\n' "$err" >&2
	VM_IMAGE_WHY=$(printf '%s\n' "$err" | tail -n1 | sed 's/^vm-image: //')
	[ "$rc" = 0 ] || [ "$rc" = 77 ] || vm__say "building the VM image failed ($rc)"
	return "$rc"
}

# vm_probe: one line per finding, for the logs and docs/vm.md.
vm_probe() {
	local kvm=no vsock=no
	[ -r "$VM_KVM_DEV" ] && [ -w "$VM_KVM_DEV" ] && kvm=present
	grep -qwE 'vmx|svm' /proc/cpuinfo || kvm="$kvm (no vmx/svm cpu flag)"
	[ -f "$VM_CACHE/accel" ] && kvm="$kvm, cached choice: $(cat "$VM_CACHE/accel")"
	[ -c /dev/vhost-vsock ] && vsock=present
	echo "kvm: $VM_KVM_DEV $kvm"
	echo "vsock: /dev/vhost-vsock $vsock (QEMU's vhost-vsock-pci needs it; Debian 12 has no vhost-user vsock daemon)"
	command -v "$VM_QEMU" >/dev/null && echo "qemu: $("$VM_QEMU" --version | head -n1)" || echo "qemu: missing"
}

vm__bytes() { # 16M / 1G / 4096 -> bytes (power of two, as a PCI BAR must be)
	local n
	n=$(numfmt --from=iec "$1" 2>/dev/null) || return 1
	[ "$n" -ge 4096 ] && [ $((n & (n - 1))) = 0 ] || return 1
	echo "$n"
}

# vm__launch ACCEL: start qemu in the background; args in VM_QARGS.
vm__launch() {
	local accel=$1 cpu=max
	[ "$accel" = kvm ] && cpu=host
	: >"$VM_DIR/console.log"
	set -- "$VM_QEMU" -nodefaults -no-user-config -display none -monitor none \
		-machine "pc,accel=$accel" -cpu "$cpu" -smp 1 -m "$VM_MEM" \
		-no-reboot -nic none \
		-kernel "$VM_CACHE/vmlinuz" -initrd "$VM_CACHE/initramfs.cpio.gz" \
		-append "console=ttyS0 quiet panic=-1 mitigations=off cryptomgr.notests $VM_APPEND" \
		-serial "file:$VM_DIR/console.log" \
		-fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap \
		-device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
		-device virtio-serial-pci,id=vser \
		-chardev "pipe,id=nkcmd,path=$(vm__esc "$VM_DIR/cmd")" \
		-device virtserialport,bus=vser.0,chardev=nkcmd,name=org.netkernel.cmd \
		"${VM_QARGS[@]}"
	printf '%q ' "$@" >"$VM_DIR/qemu.cmdline"
	"$@" >"$VM_DIR/qemu.log" 2>&1 </dev/null &
	VM_PID=$!
	echo "$VM_PID" >"$VM_DIR/qemu.pid"
	# tests/lib.sh's EXIT trap kills what is in NK_PIDS.
	if declare -p NK_PIDS >/dev/null 2>&1; then NK_PIDS+=("$VM_PID"); fi
}

# vm__wait_ready SECONDS: read READY from the command port.
vm__wait_ready() {
	local t=$1 fd line end
	exec {fd}<>"$VM_DIR/cmd.out"
	end=$((SECONDS + t))
	while [ "$SECONDS" -lt "$end" ]; do
		vm__alive || break
		if IFS= read -r -t 1 -u "$fd" line; then
			case $line in READY\ *)
				VM_GUEST_UPTIME_S=${line#READY }
				exec {fd}>&-
				return 0
				;;
			esac
		fi
	done
	exec {fd}>&-
	return 1
}

vm__kill() {
	local i
	vm__alive || return 0
	kill -TERM "$VM_PID" 2>/dev/null || true
	for i in $(seq 30); do
		vm__alive || break
		sleep 0.1
	done
	kill -KILL "$VM_PID" 2>/dev/null || true
	wait "$VM_PID" 2>/dev/null || true
}

vm_start() {
	local shm="" shm_size="" sock="" server=on share="" cmd="" boot_t=""
	local accel t0 rc
	# One VM per shell: a new vm_start forgets the last one (vm_stop it
	# first; use subshells or the command line with --dir for several).
	VM_DIR=""
	VM_PID=""
	VM_MEM=512
	VM_APPEND=""
	VM_QARGS=()
	VM_CTL_SOCK=""
	VM_CTL_SERVER=on
	while [ $# -gt 0 ]; do
		case $1 in
		--dir) VM_DIR=$2; shift ;;
		--shm) shm=$2; shift ;;
		--shm-size) shm_size=$2; shift ;;
		--serial-sock) sock=$2; shift ;;
		--serial-server) server=$2; shift ;;
		--share) share=$2; shift ;;
		--mem) VM_MEM=$2; shift ;;
		--cmd) cmd=$2; shift ;;
		--boot-timeout) boot_t=$2; shift ;;
		--9p-root) ;; # always: the VM runs the host's programs
		*) vm__say "vm_start: unknown option $1"; return 2 ;;
		esac
		shift
	done
	command -v "$VM_QEMU" >/dev/null || { vm__skip "$VM_QEMU missing (apt-get install qemu-system-x86)"; return 77; }
	rc=0
	vm_image || rc=$?
	[ "$rc" = 0 ] || { [ "$rc" = 77 ] && vm__skip "no VM image: $VM_IMAGE_WHY"; return "$rc"; }
	if [ -z "$VM_DIR" ]; then
		VM_DIR=$(mktemp -d "${NK_TMP:-/tmp}/nk-vm.XXXXXX")
		echo 1 >"$VM_DIR/owned"
	fi
	mkdir -p "$VM_DIR"
	VM_DIR=$(cd "$VM_DIR" && pwd)
	rm -f "$VM_DIR/cmd.in" "$VM_DIR/cmd.out"
	mkfifo "$VM_DIR/cmd.in" "$VM_DIR/cmd.out"
	if [ -n "$shm" ]; then
		[ -n "$shm_size" ] || shm_size=$(stat -c %s "$shm" 2>/dev/null || echo 0)
		shm_size=$(vm__bytes "$shm_size") || { vm__say "--shm-size must be a power of two >= 4096"; return 2; }
		if [ ! -e "$shm" ]; then
			truncate -s "$shm_size" "$shm"
			echo "$shm" >>"$VM_DIR/created"
		fi
		VM_QARGS+=(-object "memory-backend-file,id=nkshm,share=on,mem-path=$(vm__esc "$shm"),size=$shm_size"
			-device ivshmem-plain,memdev=nkshm)
	fi
	if [ -n "$sock" ]; then
		VM_CTL_SOCK=$sock
		VM_CTL_SERVER=$server
		if [ "$server" = on ]; then
			rm -f "$sock"
			VM_QARGS+=(-chardev "socket,id=nkctl,path=$(vm__esc "$sock"),server=on,wait=off")
		else
			# nkd listens; qemu retries every second while it is away.
			VM_QARGS+=(-chardev "socket,id=nkctl,path=$(vm__esc "$sock"),server=off,reconnect=1")
		fi
		VM_QARGS+=(-device virtserialport,bus=vser.0,chardev=nkctl,name=org.netkernel.ctl)
	fi
	if [ -n "$share" ]; then
		share=$(cd "$share" && pwd)
		VM_QARGS+=(-fsdev "local,id=nkshare,path=$(vm__esc "$share"),security_model=none"
			-device virtio-9p-pci,fsdev=nkshare,mount_tag=nkshare)
		VM_APPEND="nk.share=nkshare:$share"
	fi
	# The VM mounts its own tmpfs on /tmp, /run, /var/tmp and /dev/shm: a
	# checkout under one of them (a CI clone in /tmp) would vanish from
	# the VM, so it is exported again, read-only, at the same path.
	case $VM_ROOT/ in
	/tmp/* | /run/* | /var/tmp/* | /dev/shm/*)
		VM_QARGS+=(-fsdev "local,id=nkrepo,path=$(vm__esc "$VM_ROOT"),security_model=none,readonly=on"
			-device virtio-9p-pci,fsdev=nkrepo,mount_tag=nkrepo)
		# first, so that a share inside the checkout is mounted over it
		VM_APPEND="nk.rshare=nkrepo:$VM_ROOT${VM_APPEND:+ $VM_APPEND}"
		;;
	esac

	# KVM when it works: /dev/kvm can exist while a KVM guest hangs, so
	# the first KVM boot is bounded (20 s) and its outcome cached in
	# $VM_CACHE/accel; a KVM boot that fails later falls back to TCG too.
	# NK_VM_ACCEL=kvm|tcg forces one.
	accel=${NK_VM_ACCEL:-}
	if [ -z "$accel" ]; then
		accel=tcg
		if [ -f "$VM_CACHE/accel" ]; then
			accel=$(cat "$VM_CACHE/accel")
		elif [ -r "$VM_KVM_DEV" ] && [ -w "$VM_KVM_DEV" ]; then
			accel=kvm
			[ -n "$boot_t" ] || boot_t=20
		fi
	fi
	while :; do
		[ -n "$boot_t" ] || { boot_t=90; [ "$accel" = kvm ] && boot_t=30; }
		t0=$(date +%s.%N)
		vm__launch "$accel"
		vm__wait_ready "$boot_t" && break
		if vm__alive; then
			vm__say "VM not ready in ${boot_t} s ($accel)"
		else
			vm__say "qemu exited before the VM was ready ($accel)"
		fi
		vm__say "qemu: $(tail -n 3 "$VM_DIR/qemu.log" | tr '\n' ' ')"
		vm__say "console: $(tail -n 5 "$VM_DIR/console.log" | tr '\n' ' ')"
		vm__kill
		if [ "$accel" = kvm ] && [ -z "${NK_VM_ACCEL:-}" ]; then
			vm__say "KVM does not work here: TCG from now on ($VM_CACHE/accel)"
			echo tcg >"$VM_CACHE/accel" 2>/dev/null || true
			accel=tcg
			boot_t=""
			continue
		fi
		return 1
	done
	VM_BOOT_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')
	VM_ACCEL=$accel
	[ "$accel" = tcg ] || [ -f "$VM_CACHE/accel" ] || echo kvm >"$VM_CACHE/accel" 2>/dev/null || true
	{
		echo "VM_DIR=$VM_DIR"
		echo "VM_PID=$VM_PID"
		echo "VM_ACCEL=$VM_ACCEL"
		echo "VM_BOOT_S=$VM_BOOT_S"
		echo "VM_GUEST_UPTIME_S=$VM_GUEST_UPTIME_S"
		echo "VM_CTL_SOCK=$VM_CTL_SOCK"
		echo "VM_CTL_SERVER=$VM_CTL_SERVER"
	} >"$VM_DIR/state"
	[ -z "$cmd" ] || vm_bg "$cmd" >/dev/null
	return 0
}

# vm__load: state from $VM_DIR/state (command-line use across processes).
vm__load() {
	[ -n "$VM_DIR" ] || { vm__say "no VM (VM_DIR unset)"; return 1; }
	local k v
	if [ -z "$VM_PID" ] && [ -f "$VM_DIR/state" ]; then
		while IFS='=' read -r k v; do
			case $k in
			VM_PID | VM_ACCEL | VM_BOOT_S | VM_GUEST_UPTIME_S | VM_CTL_SOCK | VM_CTL_SERVER)
				printf -v "$k" '%s' "$v"
				;;
			esac
		done <"$VM_DIR/state"
	fi
	return 0
}

# vm__req VERB SCRIPT TIMEOUT: send one request, print stdout/stderr of the
# reply, return its status (124 on timeout, 125 when the VM is gone).
vm__req() {
	local verb=$1 script=$2 t=$3 id lk fd w line state=wait rc=124 out="" err="" end
	vm__load || return 125
	vm__alive || { vm__say "the VM is not running"; return 125; }
	id=$$.$RANDOM.$RANDOM
	# One request at a time: replies are matched by id, but the VM runs
	# requests in order, so a lock keeps callers from reading each other's.
	exec {lk}>"$VM_DIR/cmd.lock"
	flock -w "$t" "$lk" || { exec {lk}>&-; return 124; }
	exec {fd}<>"$VM_DIR/cmd.out"
	# Opened read-write, a FIFO never blocks the open, even if qemu just died.
	exec {w}<>"$VM_DIR/cmd.in"
	printf '%s %s %s %s\n' "$verb" "$id" "$(printf '%s' "$script" | base64 -w0)" \
		"$(printf '%s' "$PWD" | base64 -w0)" >&"$w"
	exec {w}>&-
	end=$((SECONDS + t))
	while [ "$SECONDS" -lt "$end" ]; do
		if ! IFS= read -r -t 1 -u "$fd" line; then
			vm__alive || { rc=125; break; }
			continue
		fi
		case $state:$line in
		*:"BEGIN $id") state=out ;;
		*:"STDERR $id") state=err ;;
		*:"END $id "*)
			rc=${line#END "$id" }
			VM_BG_PID=${rc#* }
			rc=${rc%% *}
			state=ok
			break
			;;
		out:*) out+=$line$'\n' ;;
		err:*) err+=$line$'\n' ;;
		esac
	done
	exec {fd}>&- {lk}>&-
	[ -z "$out" ] || printf '%s' "$out" | base64 -d
	[ -z "$err" ] || printf '%s' "$err" | base64 -d >&2
	[ "$state" = ok ] || vm__say "no reply to $verb in ${t} s"
	return "$rc"
}

vm_run() {
	local t=120
	[ "${1:-}" = --timeout ] && { t=$2; shift 2; }
	vm__req RUN "$*" "$t"
}

vm_bg() {
	vm__req BG "$*" 20 || return
	echo "$VM_BG_PID"
}

# vm_nkd_up [--afxdp] SIZE: for tests, after tests/lib.sh and its topology
# (topo_up; afxdp_up with --afxdp). Starts nkd with guest vm1, a VM guest
# whose region is the file VM_REGION of SIZE and whose channel is the
# socket VM_CHAN ($NK_TMP/vm1.shm, vm1.chan), and waits for nkd to make the
# channel. vm1 is on kernel0, the kernel NSM, next to the namespace guest
# $GUEST (unknown guests denied), or with --afxdp on xdp0, the afxdp NSM on
# $NK_XDEV at $X4 (nkd in the root namespace). The configuration is
# $NK_TMP/nkd.conf, for a restart. bufs=32: 2.3 MiB windows, so that 28
# processes of the VM fit in 64 MiB (a forking server's children take one
# each). AGENT is the nk-vmagent to run (NK_VM_AGENT: another one, to
# compare); fails when there is none.
vm_nkd_up() {
	local afxdp=""
	[ "$1" = --afxdp ] && { afxdp=1; shift; }
	AGENT=${NK_VM_AGENT:-$BUILD/nk-vmagent}
	[ -x "$AGENT" ] || fail "$AGENT missing: this netkernel has no VM transport"
	VM_REGION=$NK_TMP/vm1.shm
	VM_CHAN=$NK_TMP/vm1.chan
	if [ -n "$afxdp" ]; then
		cat >"$NK_TMP/nkd.conf" <<CONF
nsm kernel0 type=kernel netns=/run/netns/$NS_H
nsm xdp0 type=afxdp dev=$NK_XDEV addr=$X4/24 netns=/run/netns/$NS_H
guest vm1 nsm=xdp0 bufs=32 vm_region=$VM_REGION vm_size=$1 vm_channel=$VM_CHAN
CONF
		start_nkd_afxdp "$NK_TMP/nkd.conf"
	else
		cat >"$NK_TMP/nkd.conf" <<CONF
nsm kernel0 type=kernel
guest $GUEST nsm=kernel0 uid=0
guest vm1 nsm=kernel0 bufs=32 vm_region=$VM_REGION vm_size=$1 vm_channel=$VM_CHAN
unknown_guests deny
CONF
		start_nkd "$NK_TMP/nkd.conf"
	fi
	wait_for 10 test -S "$VM_CHAN" || fail "nkd made no VM channel at $VM_CHAN"
}

# vm_nkctl_check [PORT...]: for tests, after vm_nkd_up and the VM's
# programs: nkctl guests lists vm1 as a VM guest ("kind":"vm" in --json,
# KIND vm in the table) and the others as local ones, and nkctl sockets
# lists a socket of vm1 (one on each PORT given). Needs jq.
vm_nkctl_check() {
	local out p
	out=$(nkctl guests --json) || fail "nkctl guests --json failed"
	printf '%s\n' "$out" | jq -e '[.guests[] | select(.name == "vm1")] | length == 1' >/dev/null ||
		fail "nkctl guests does not list vm1: $out"
	printf '%s\n' "$out" | jq -e 'all(.guests[]; .kind == (if .name == "vm1" then "vm" else "local" end))' >/dev/null ||
		fail "nkctl guests --json: vm1 is not kind vm or another guest not local: $(printf '%s\n' "$out" | jq -c '[.guests[] | {name, kind}]')"
	out=$(nkctl guests) || fail "nkctl guests failed"
	[ "$(printf '%s\n' "$out" | awk 'NR == 1 { for (i = 1; i <= NF; i++) k[$i] = i; next }
		$1 == "vm1" { print $k["KIND"] }')" = vm ] || fail "nkctl guests' table does not say vm1 is a VM: $out"
	out=$(nkctl sockets) || fail "nkctl sockets failed"
	printf '%s\n' "$out" | grep -q '^vm1 ' || fail "nkctl sockets lists no socket of vm1: $out"
	for p in "$@"; do
		printf '%s\n' "$out" | grep '^vm1 ' | grep -q ":$p " ||
			fail "nkctl sockets shows no socket of vm1 on $p: $out"
	done
}

# vm_guest_up SHM SIZE CHAN SHARE AGENT: for tests, after tests/lib.sh
# (its skip, fail, log, wait_for, $NK_TMP). Boots the VM of an nkd VM
# guest (its ivshmem BAR the file SHM of SIZE, its port the socket CHAN
# nkd made, DIR SHARE shared; state in $NK_TMP/vm), then runs nk-vmagent
# (the binary AGENT) in it (log /tmp/agent.log in the VM) and waits up to
# 30 s for it to attach. Skips when no VM can run here; fails when the
# VM does not boot or the agent does not attach.
vm_guest_up() {
	local rc=0
	vm_start --dir "$NK_TMP/vm" --shm "$1" --shm-size "$2" \
		--serial-sock "$3" --serial-server off --share "$4" 2>"$NK_TMP/vm_start.err" || rc=$?
	cat "$NK_TMP/vm_start.err" >&2
	[ "$rc" = 77 ] && skip "$(sed -n 's/.*SKIP: //p' "$NK_TMP/vm_start.err" | head -n1)"
	[ "$rc" = 0 ] || fail "the VM did not boot (vm_start $rc); console: $(tail -n 5 "$NK_TMP/vm/console.log" 2>/dev/null)"
	log "booted: ${VM_BOOT_S} s to the first command ($VM_ACCEL), guest uptime ${VM_GUEST_UPTIME_S} s"
	# shellcheck disable=SC2016  # expanded in the VM
	vm_bg 'mkdir -p /run/netkernel; . /run/nk-vm.env; exec '"$5"' --channel "$NK_VM_CTL" --region "$NK_VM_SHM" >/tmp/agent.log 2>&1' >/dev/null ||
		fail "could not start nk-vmagent in the VM"
	wait_for 30 vm_run 'test -S /run/netkernel/nkd.sock' ||
		fail "nk-vmagent did not attach in the VM: $(vm_run 'cat /tmp/agent.log' 2>&1 | tail -n 5)"
	log "nk-vmagent attached: $(vm_run 'cat /tmp/agent.log' | head -n 1)"
}

vm_stop() {
	local t=20 i
	[ "${1:-}" = --timeout ] && { t=$2; shift 2; }
	[ -n "$VM_DIR" ] || return 0
	vm__load || return 0
	if vm__alive; then
		# Best effort: a VM that does not answer is killed below.
		local w
		exec {w}<>"$VM_DIR/cmd.in"
		printf 'POWEROFF stop\n' >&"$w" || true
		exec {w}>&-
		for ((i = 0; i < t * 10; i++)); do
			vm__alive || break
			sleep 0.1
		done
		vm__alive && vm__say "VM did not power off in ${t} s: killing qemu"
		vm__kill
	fi
	wait "$VM_PID" 2>/dev/null || true
	# QEMU's listening socket; a socket nkd listens on is nkd's.
	if [ -n "$VM_CTL_SOCK" ] && [ "$VM_CTL_SERVER" = on ]; then rm -f "$VM_CTL_SOCK"; fi
	if [ -f "$VM_DIR/created" ]; then
		while IFS= read -r f; do rm -f "$f"; done <"$VM_DIR/created"
	fi
	rm -f "$VM_DIR/cmd.in" "$VM_DIR/cmd.out" "$VM_DIR/cmd.lock" "$VM_DIR/created"
	[ -f "$VM_DIR/owned" ] && rm -rf "$VM_DIR"
	VM_PID=""
	return 0
}

# ------------------------------------------------------------ command line
vm__main() {
	local sub=${1:-} rc=0
	[ $# -gt 0 ] && shift
	case $sub in
	start | run | bg | stop)
		if [ "${1:-}" = --dir ]; then
			VM_DIR=$2
			shift 2
		fi
		[ "$sub" = start ] || [ -n "$VM_DIR" ] || { vm__say "$sub needs --dir DIR"; return 2; }
		case $sub in
		start)
			[ -n "$VM_DIR" ] || { vm__say "start needs --dir DIR"; return 2; }
			vm_start "$@" || return
			cat "$VM_DIR/state"
			;;
		run) vm_run "$@" ;;
		bg) vm_bg "$@" ;;
		stop) vm_stop "$@" ;;
		esac
		;;
	oneshot)
		local args=()
		while [ $# -gt 1 ]; do
			args+=("$1")
			shift
		done
		trap 'vm_stop' EXIT
		vm_start "${args[@]}" || return
		vm__say "booted in ${VM_BOOT_S} s ($VM_ACCEL)"
		vm_run "$1" || rc=$?
		vm_stop
		trap - EXIT
		return "$rc"
		;;
	probe) vm_probe ;;
	*)
		sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
		return 2
		;;
	esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -eu
	vm__main "$@"
	exit $?
fi
