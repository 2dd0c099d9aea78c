# heads.sh - two heads of one nfs4d cluster on the caller's etcd, for the
# kernel-client scenarios that move a client from head to head
# (failover.sh, migrate.sh). Sourced after server.sh.
#
# The sourcing script has set:
#   bin, work   as for server.sh; the heads share $work/export
#   etcd        the etcd client URLs, comma-separated
#   me          the word its messages and the cluster's name start with
# and may set:
#   lease       NFS lease and grace time in seconds (default 10)
#   head_lease  the heads' etcd lease in seconds (default 3): how soon a
#               survivor learns a head is dead
#   head_log    the heads' RUST_LOG (default info)
#
#   start_head NAME PORT [LOCATION]   head NAME on 127.0.0.1:PORT (the
#                                     address clients are told to use for
#                                     it: LOCATION); its configuration,
#                                     state and logs (nfs4d.out, nfs4d.log)
#                                     under $work/NAME. Waits until it
#                                     listens and sets $pid; exits 2 when it
#                                     does not start.
#
# $pid_a and $pid_b are the sourcing script's to set; on exit those heads
# get SIGKILL before server.sh's cleanup (which waits for every child).

pid_a= pid_b=
trap '[ -n "$pid_a" ] && kill -KILL "$pid_a" 2>/dev/null; [ -n "$pid_b" ] && kill -KILL "$pid_b" 2>/dev/null; cleanup' EXIT

cluster=$me-$RANDOM$RANDOM
endpoints=$(printf '"%s", ' ${etcd//,/ })

start_head() {
    local name=$1 p=$2 loc=${3:-} dir=$work/$1
    mkdir -p "$dir"
    {
        printf 'listen = "127.0.0.1:%s"\nstate_dir = "%s"\n' "$p" "$dir/state"
        printf 'lease_time = %s\ngrace_time = %s\n\n' "${lease:-10}" "${lease:-10}"
        printf '[[export]]\npath = "/"\ndir = "%s"\n\n' "$work/export"
        printf '[cluster]\netcd = [%s]\nname = "%s"\nhead = "%s"\n' "${endpoints%, }" "$cluster" "$name"
        printf 'lease_secs = %s\nrequest_timeout_ms = 1000\n' "${head_lease:-3}"
        [ -n "$loc" ] && printf 'location = "%s"\n' "$loc"
    } >"$dir/nfs4d.toml"
    RUST_LOG=${head_log:-info} "$bin" serve --config "$dir/nfs4d.toml" \
        >"$dir/nfs4d.out" 2>"$dir/nfs4d.log" &
    pid=$!
    for _ in $(seq 400); do
        grep -q '^nfs4d listening on' "$dir/nfs4d.out" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "$me: head $name did not start; log:" >&2
    tail -n 20 "$dir/nfs4d.log" >&2
    exit 2
}
