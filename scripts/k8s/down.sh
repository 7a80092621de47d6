#!/usr/bin/env bash
# down.sh DIR: stop the test cluster that up.sh started in DIR, then delete DIR.
# Only the processes up.sh recorded in DIR/pids are signalled, and only while
# their command line still names DIR (a recycled pid is left alone): SIGTERM,
# then SIGKILL to whatever is left after 10 seconds.
set -euo pipefail

[[ $# -eq 1 ]] || { echo "usage: $0 DIR" >&2; exit 2; }
[[ -d $1 ]] || exit 0
DIR=$(cd "$1" && pwd)
if [[ ! -d $DIR/pids ]]; then
  echo "down.sh: $DIR has no pids/ folder, so up.sh did not make it; not touching it" >&2
  exit 1
fi

mine() { [[ -r /proc/$1/cmdline ]] && [[ $(tr '\0' ' ' < "/proc/$1/cmdline") == *"$DIR/"* ]]; }

signalled=()
for prog in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do # clients before etcd
  [[ -f $DIR/pids/$prog.pid ]] || continue
  pid=$(< "$DIR/pids/$prog.pid")
  if mine "$pid" && kill "$pid" 2>/dev/null; then signalled+=("$pid"); fi
done
for _ in $(seq 100); do
  left=()
  for pid in ${signalled[@]+"${signalled[@]}"}; do mine "$pid" && left+=("$pid"); done
  ((${#left[@]} == 0)) && break
  sleep 0.1
done
for pid in ${left[@]+"${left[@]}"}; do mine "$pid" && kill -9 "$pid" 2>/dev/null || true; done
rm -rf "$DIR"
