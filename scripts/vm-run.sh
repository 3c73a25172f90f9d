#!/bin/bash
# mailktls VM test bed: run the kernel-side tests (kTLS, mailktls.ko) in a
# QEMU VM booting one of Debian's kernels (VM_KERNEL: 6.1, Debian 12's, the
# default; 6.12, Debian 13's; 7.3, trixie-backports', the first that can
# rekey kTLS), because the host kernel has no kTLS and cannot load modules.
# The Debian 13 kernels are fetched and the module built for them by
# scripts/vm/kernel.sh (cached under build/kernels/). Prints the tests' TAP on stdout; exits 0 only if
# the VM booted, every test ran and none failed.
#
# What runs: every $BUILD/tests/vm/*_test binary (kselftest harness, built
# by `make vm-tests`, which this script runs first) and every
# tests/vm/*_test.sh (run with busybox sh). Helper binaries built from
# tests/vm/*.c without the _test suffix, the agent binaries, kmod/mailktls.ko
# (loaded at boot when it was built; `make module` runs first when Kbuild
# exists), the openssl CLI and the files tests/vm/extra-files lists are in
# the VM too. Inside, the source tree
# layout is mirrored under /mk (cwd of every test): /mk/agent/mailktlsd,
# /mk/kmod/mailktls.ko, /mk/build/tests/vm/<bin>, /mk/tests/vm/<script>,
# /mk/etc; PATH has /mk/agent and /mk/build/tests/vm. Only loopback exists
# (lo is up, 127.0.0.1 and ::1). More host binaries: list them in
# tests/vm/extra-binaries (one per line); their libraries come along.
#
#   scripts/vm-run.sh                          all VM tests
#   VM_ONLY=ktls_basic_test scripts/vm-run.sh  some tests (space separated)
#   VM_ONLY=foo_test VM_TEST_ARGS="-x" scripts/vm-run.sh
#                                              arguments for the selected tests (the
#                                              6.1 kselftest harness takes no filters)
#   VM_SHELL=1 scripts/vm-run.sh               busybox shell on the console
#                                              instead of tests (Ctrl-D powers off;
#                                              Ctrl-A X kills qemu)
#
#   VM_SCRIPT=scripts/bench/vm/bench.sh VM_EXTRA_FILES="/usr/bin/stunnel4 x/y" \
#     scripts/vm-run.sh                        run this busybox sh script (a file of the
#                                              tree) instead of the tests, reported like one
#                                              test; VM_EXTRA_FILES: more files for the VM,
#                                              absolute paths kept, tree paths under /mk,
#                                              shared libraries of ELF files included
#
# Other knobs: BUILD (default build), VM_KERNEL (6.1, 6.12 or 7.3; default
# 6.1: the newest /boot/vmlinuz-6.1*), VM_TIMEOUT (whole run, s, default 900),
# VM_TEST_TIMEOUT (per test, s, default 300), VM_MEM (default 1G),
# VM_NO_BUILD=1 (do not run make). The full console log is kept in
# $BUILD/vm/console.log ($BUILD/vm-6.12/, $BUILD/vm-7.3/ for those kernels). KVM hangs on these machines, so QEMU uses TCG.
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
VM_TIMEOUT=${VM_TIMEOUT:-900}
VM_TEST_TIMEOUT=${VM_TEST_TIMEOUT:-300}
VM_MEM=${VM_MEM:-1G}
VM_SHELL=${VM_SHELL:-0}
VM_KERNEL=${VM_KERNEL:-6.1}
vmdir=$BUILD/vm	# 6.1; the others in vm-6.12, vm-7.3 (three runs side by side)
[ "$VM_KERNEL" = 6.1 ] || vmdir=$BUILD/vm-$VM_KERNEL
mkdir -p "$vmdir"

bail() {	# message: one failing TAP line, exit 1
	echo "not ok 1 - vm: $*"
	exit 1
}

command -v qemu-system-x86_64 >/dev/null || bail "qemu-system-x86_64 missing (qemu-system-x86)"

if [ "${VM_NO_BUILD:-0}" != 1 ]; then
	# the agent binaries too, so a run by hand does not test stale ones
	targets=(vm-tests)
	[ -f agent/core/main.c ] && targets+=(agent/mailktlsd)
	compgen -G 'agent/ctl/*.c' >/dev/null && targets+=(agent/mailktlsctl)
	compgen -G 'agent/milter/*.c' >/dev/null && targets+=(agent/mailktls-milter)
	make -s BUILD="$BUILD" "${targets[@]}" >"$vmdir/make.log" 2>&1 ||
		{ sed 's/^/# /' "$vmdir/make.log"; bail "make ${targets[*]} failed"; }
fi
# the kernel, its modules and mailktls.ko built for it (vm_kver, vm_vmlinuz,
# vm_modroot, vm_ko), and the root of the C library and OpenSSL the VM runs
# with when they are not this host's (vm_userland)
kernel_vars=$(scripts/vm/kernel.sh "$VM_KERNEL" $([ "${VM_NO_BUILD:-0}" = 1 ] && echo nobuild) \
	2>"$vmdir/kernel.log") ||
	{ sed 's/^/# /' "$vmdir/kernel.log"; bail "no $VM_KERNEL kernel (scripts/vm/kernel.sh $VM_KERNEL)"; }
eval "$kernel_vars"
kernel=$vm_vmlinuz
kver=$vm_kver

shq() {	# name, value: a line busybox sh can source
	printf "%s='%s'\n" "$1" "$(printf '%s' "$2" | sed "s/'/'\\\\''/g")"
}
conf=$vmdir/mk-vm.conf
{
	shq VM_SHELL "$VM_SHELL"
	shq VM_ONLY "${VM_ONLY:-}"
	shq VM_TEST_ARGS "${VM_TEST_ARGS:-}"
	shq VM_TEST_TIMEOUT "$VM_TEST_TIMEOUT"
	shq VM_SCRIPT "${VM_SCRIPT:+/mk/$VM_SCRIPT}"
} >"$conf"
initrd=$vmdir/initramfs.cpio.gz
VM_MODROOT=$vm_modroot VM_KO=$vm_ko VM_USERLAND=$vm_userland VM_EXTRA_FILES="${VM_EXTRA_FILES:-} ${VM_SCRIPT:-}" \
	scripts/vm/mkinitramfs.sh "$initrd" "$kver" "$BUILD" "$conf" >"$vmdir/initramfs.log" 2>&1 ||
	{ sed 's/^/# /' "$vmdir/initramfs.log"; bail "building the initramfs failed"; }

# no_timer_check: under TCG on a loaded host the IO-APIC timer check can
# take too long and panic the boot ("IO-APIC + timer doesn't work!")
qemu=(qemu-system-x86_64 -accel tcg -cpu max -m "$VM_MEM" -smp 2 -nographic -no-reboot -nic none
	-kernel "$kernel" -initrd "$initrd"
	-append "console=ttyS0 quiet panic=-1 oops=panic no_timer_check")
if [ "$VM_SHELL" = 1 ]; then
	exec "${qemu[@]}"
fi

log=$vmdir/console.log
start=$(date +%s)
timeout -k 10 "$VM_TIMEOUT" "${qemu[@]}" </dev/null >"$log" 2>&1
qrc=$?
took=$(($(date +%s) - start))

# Turn the console markers (see scripts/vm/init) into TAP. The tests' own
# TAP lines pass through; every infrastructure failure becomes a numbered
# "not ok" line so scripts/run-tests.sh counts it.
tr -d '\r' <"$log" |
	awk -v qrc="$qrc" -v ttimeout="$VM_TEST_TIMEOUT" -v took="$took" -v logf="$log" '
function fail(msg) { nfail++; printf "not ok %d - vm: %s\n", nfail, msg }
{ sub(/^.*@@MK /, "@@MK ") }	# the firmware leaves escape codes before the first marker
/^@@MK KERNEL / { print "# vm: kernel " $3; next }
/^@@MK OPENSSL / { sub(/^@@MK OPENSSL /, ""); print "# vm: " $0; next }
/^@@MK MODULE / {
	rc = substr($4, 4)
	if (rc != 0) fail("insmod " $3 " exited " rc)
	next
}
/^@@MK BEGIN / { name = $3; intest = 1; tnotok = 0; ntests++; print "# vm: begin " name; next }
/^@@MK END / {
	rc = substr($4, 4)
	intest = 0
	print "# vm: end " name " exit " rc " after " substr($5, 3) " s"
	if (rc == 124 || rc == 143) fail(name " timed out after " ttimeout " s (VM_TEST_TIMEOUT)")
	else if (rc != 0 && !tnotok) fail(name " exited " rc " without a failing test line")
	if (rc != 0) bad = 1
	next
}
/^@@MK KERNEL-ISSUE / { sub(/^@@MK KERNEL-ISSUE /, ""); print "# kernel: " $0; kissue = 1; next }
/^@@MK DONE/ { done = 1; next }
intest {
	if ($0 ~ /^ *not ok [0-9]+/) { tnotok = 1; bad = 1 }
	print
}
/Kernel panic/ { print "# " $0; panic = 1 }
END {
	if (panic) fail("kernel panic (see " logf ")")
	if (kissue) fail("the kernel logged a warning or bug during the tests")
	if (!done) fail("the VM did not finish (qemu exit " qrc ", see " logf ")")
	else if (ntests == 0) fail("no VM test ran")
	printf "# vm: %d test programs, %d s under TCG\n", ntests, took
	exit (bad || nfail) ? 1 : 0
}'
rc=$?
if [ "$rc" -ne 0 ] && ! grep -q '^@@MK DONE' "$log"; then
	echo "# vm: last console lines:"
	tr -d '\r' <"$log" | tail -n 25 | sed 's/^/#   /'
fi
exit "$rc"
