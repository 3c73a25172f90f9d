#!/bin/bash
# Run libFuzzer targets for a while each and print TAP.
#
#   scripts/run-fuzz.sh SECONDS [binaries...]
#
# Without binaries: every tests/fuzz/fuzz_*.c is built (make, BUILD from the
# environment, default "build") and every $BUILD/fuzz/fuzz_* is run.
# Each target starts from a copy of its seed corpus (tests/fuzz/corpus/NAME
# or tests/fuzz/corpus/fuzz_NAME) in a temporary directory, so the repo's
# corpus is never written, and uses tests/fuzz/dict/NAME.dict when present.
# Crash inputs are kept in $BUILD/fuzz-artifacts/. Exit status: non-zero
# when any target crashed, leaked, timed out or could not be built.
set -u
cd "$(dirname "$0")/.." || exit 2
BUILD=${BUILD:-build}
secs=${1:-}
case $secs in
'' | *[!0-9]*) echo "usage: $0 SECONDS [fuzz binaries...]" >&2; exit 2 ;;
esac
shift

bins=("$@")
build_failed=()
if [ ${#bins[@]} -eq 0 ]; then
	mkdir -p "$BUILD"
	targets=()
	for src in tests/fuzz/fuzz_*.c; do
		[ -e "$src" ] && targets+=("$BUILD/fuzz/$(basename "$src" .c)")
	done
	# One make for all: the instrumented objects are built once. -k: a
	# target that does not build is reported, the others still run.
	[ ${#targets[@]} -gt 0 ] &&
		make -k -s BUILD="$BUILD" "${targets[@]}" >"$BUILD/fuzz-build.log" 2>&1
	for t in "${targets[@]}"; do
		if [ -x "$t" ] && make -q BUILD="$BUILD" "$t" 2>/dev/null; then
			bins+=("$t")
		else
			build_failed+=("$(basename "$t")")
		fi
	done
fi

total=$((${#bins[@]} + ${#build_failed[@]}))
echo "TAP version 13"
echo "1..$total"
[ "$total" -eq 0 ] && echo "# no fuzz targets found in $BUILD/fuzz"

artifacts=$BUILD/fuzz-artifacts
n=0 failed=0
for t in "${build_failed[@]}"; do
	n=$((n + 1)) failed=$((failed + 1))
	echo "not ok $n $t (build failed)"
	grep -E "error|$t" "$BUILD/fuzz-build.log" | head -n 20 | sed 's/^/# /'
done

for b in "${bins[@]}"; do
	n=$((n + 1))
	name=$(basename "$b")
	short=${name#fuzz_}
	work=$(mktemp -d "${TMPDIR:-/tmp}/mk-fuzz.$name.XXXXXX")
	mkdir -p "$work/corpus" "$work/crash"
	for c in "tests/fuzz/corpus/$short" "tests/fuzz/corpus/$name"; do
		[ -d "$c" ] && cp -R "$c/." "$work/corpus/"
	done
	args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
	      -artifact_prefix="$work/crash/")
	for d in "tests/fuzz/dict/$short.dict" "tests/fuzz/dict/$name.dict"; do
		[ -f "$d" ] && { args+=(-dict="$d"); break; }
	done
	start=$(date +%s)
	# libFuzzer stops itself at max_total_time; the outer timeout only
	# catches a target that hangs outside the fuzzing loop.
	timeout -k 10 $((secs + 120)) "$b" "${args[@]}" "$work/corpus" >"$work/log" 2>&1
	rc=$?
	elapsed=$(($(date +%s) - start))
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n 1)
	if [ "$rc" -eq 0 ]; then
		echo "ok $n $name (runs=${runs:-?}, ${elapsed}s)"
	else
		failed=$((failed + 1))
		echo "not ok $n $name (exit $rc, runs=${runs:-?}, ${elapsed}s)"
		grep -E 'ERROR|SUMMARY|==[0-9]+==|runtime error|Test unit written' "$work/log" |
			head -n 20 | sed 's/^/# /'
		if compgen -G "$work/crash/*" >/dev/null; then
			mkdir -p "$artifacts"
			cp "$work"/crash/* "$artifacts/"
			echo "# reproducer(s) kept in $artifacts/: $b $artifacts/<file>"
		fi
	fi
	rm -rf "$work"
done
[ "$failed" -eq 0 ]
