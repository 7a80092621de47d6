#!/usr/bin/env bash
# build.sh: compile, once, the programs of flowctl's test cluster into
# $FLOWCTL_K8S_CACHE/bin (default ~/.cache/flowctl-k8s/bin):
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (Kubernetes
#   v1.35.4), etcd (the release that Kubernetes pins) and kwok v0.8.0.
# Only Go and its module proxy are needed. A cold build takes 10 to 20 minutes
# on two cores and about 4 GB under the cache folder; later runs return at
# once. Concurrent callers wait for one build (flock).
set -euo pipefail

KUBERNETES=v1.35.4
KWOK=v0.8.0
CACHE=${FLOWCTL_K8S_CACHE:-$HOME/.cache/flowctl-k8s}
BIN=$CACHE/bin
STAMP="kubernetes=$KUBERNETES kwok=$KWOK"
WANT=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)

export PATH=/usr/local/go/bin:$PATH
export GOCACHE=$CACHE/go-build GOFLAGS=-buildvcs=false

have_all() {
  [[ -f $BIN/.stamp ]] && [[ $(cat "$BIN/.stamp") == "$STAMP" ]] || return 1
  local prog
  for prog in "${WANT[@]}"; do [[ -x $BIN/$prog ]] || return 1; done
}

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
have_all && exit 0

began=$SECONDS
echo "build.sh: compiling Kubernetes $KUBERNETES, etcd and kwok $KWOK into $BIN (the first time takes 10-20 minutes)" >&2
mkdir -p "$BIN" "$CACHE/src/k8s"
cd "$CACHE/src/k8s"

# The k8s.io/kubernetes module points its staging modules (k8s.io/api,
# k8s.io/client-go, ...) at ./staging folders that are not in the module
# download; a scratch module requires and replaces each with its published
# v0.<minor>.<patch> release instead.
modfile=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
published=v0.${KUBERNETES#v1.}
mapfile -t staged < <(awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$modfile")
if (( ${#staged[@]} < 20 )); then
  echo "build.sh: expected the staging modules in $modfile, found ${#staged[@]}" >&2
  exit 1
fi
{
  printf 'module flowctl.local/k8s-build\n\ngo 1.25.0\n\ngodebug default=go1.25\n\nrequire k8s.io/kubernetes %s\n\n' "$KUBERNETES"
  printf 'require (\n'; printf '\t%s '"$published"'\n' "${staged[@]}"; printf ')\n\n'
  printf 'replace (\n'; for m in "${staged[@]}"; do printf '\t%s => %s %s\n' "$m" "$m" "$published"; done; printf ')\n'
} > go.mod

minor=${KUBERNETES#v1.}
minor=${minor%%.*}
version_flags="-X k8s.io/component-base/version.gitVersion=$KUBERNETES -X k8s.io/component-base/version.gitMajor=1"
version_flags+=" -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
go build -mod=mod -trimpath -ldflags "-s -w $version_flags" -o "$BIN/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
# etcd's server module is a main package; this module already pins the
# version Kubernetes was released with.
go build -mod=mod -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
GOBIN=$BIN go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK"

echo "$STAMP" > "$BIN/.stamp"
have_all
echo "build.sh: done in $((SECONDS - began)) s ($(du -sh "$CACHE" | cut -f1) in $CACHE)" >&2
