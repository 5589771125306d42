# Sourced by the hook benchmarks: the pre-receive hook run exactly as git runs it, in the git dir
# with GIT_DIR set and one "<old> <new> <ref>" line on stdin. A rejected push stops the benchmark
# with the hook's messages: a figure for a push the hook refused would measure the wrong thing.
#
# run_hook GIT_DIR OLD NEW WORK   (needs STATEGATE; writes WORK/out and WORK/audit.log)
run_hook() {
    r_status=0
    (cd "$1" && echo "$2 $3 refs/heads/main" |
        GIT_DIR=. "$STATEGATE" hook pre-receive --timeout 60 --audit-log "$4/audit.log" 2>"$4/out") || r_status=$?
    if [ "$r_status" -ne 0 ]; then
        echo "hook rejected $2..$3 (exit $r_status):" >&2
        cat "$4/out" >&2
        exit 1
    fi
}
