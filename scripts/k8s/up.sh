#!/usr/bin/env bash
# up.sh DIR: start a throwaway Kubernetes control plane for flowctl's tests,
# all on 127.0.0.1 with free ports, everything under DIR:
#   etcd, kube-apiserver (RBAC on), kube-controller-manager, kube-scheduler,
#   and kwok, which plays the nodes: there is no kubelet and no container
#   runtime; pods go Running and Ready by kwok's Stages, nothing runs in them.
# Builds the programs first when needed (build.sh). Progress goes to stderr;
# the last line on stdout is KUBECONFIG=DIR/kubeconfig (an admin user).
# Every container's log is DIR/logs/pod.log (CRI format), unless a kwok Logs
# object names another file for a pod. Stop it with down.sh DIR.
#
# FLOWCTL_K8S_CACHE  where build.sh keeps its programs (~/.cache/flowctl-k8s)
# FLOWCTL_K8S_NODES  fake nodes (1)
# FLOWCTL_K8S_TIMEOUT seconds allowed for each step to get ready (180)
set -euo pipefail

[[ $# -eq 1 ]] || { echo "usage: $0 DIR" >&2; exit 2; }
SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${FLOWCTL_K8S_CACHE:-$HOME/.cache/flowctl-k8s}/bin
NODES=${FLOWCTL_K8S_NODES:-1}
TIMEOUT=${FLOWCTL_K8S_TIMEOUT:-180}
mkdir -p "$1"
DIR=$(cd "$1" && pwd)

say() { echo "up.sh: $*" >&2; }
mine() { [[ -r /proc/$1/cmdline ]] && [[ $(tr '\0' ' ' < "/proc/$1/cmdline") == *"$DIR/"* ]]; }

for f in "$DIR"/pids/*.pid; do
  if [[ -e $f ]] && mine "$(< "$f")"; then say "a cluster already runs in $DIR; run down.sh $DIR first"; exit 1; fi
done
rm -rf "${DIR:?}"/{pids,logs,pki,etcd,kwok,kubectl-cache,kubeconfig,kwok.yaml,ports}
mkdir -p "$DIR"/{pids,logs,pki}

command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }
bash "$SCRIPTS/build.sh"

# Ports below the ephemeral range, that nothing answers on.
declare -A used=()
pick_port() {
  local n
  while :; do
    n=$((20000 + RANDOM % 12000))
    [[ -n ${used[$n]:-} ]] && continue
    (exec 3<>"/dev/tcp/127.0.0.1/$n") 2>/dev/null && continue
    used[$n]=1
    echo "$n"
    return
  done
}
ETCD=$(pick_port); PEER=$(pick_port); API=$(pick_port); KWOK_PORT=$(pick_port)
printf 'etcd=%s\netcd-peer=%s\napiserver=%s\nkwok=%s\n' "$ETCD" "$PEER" "$API" "$KWOK_PORT" > "$DIR/ports"

# Certificates (EC P-256, quick): a CA, the apiserver's serving pair (kwok
# serves logs with it too), an admin client in system:masters, and the
# service-account signing key.
(
  cd "$DIR/pki"
  newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
  issue() { # issue NAME SUBJECT EXTENSIONS
    openssl req -new -key "$1.key" -subj "$2" 2>/dev/null |
      openssl x509 -req -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 8)" -days 3650 \
        -extfile <(printf '%s\n' "$3") -out "$1.crt" 2>/dev/null
  }
  newkey ca
  openssl req -x509 -new -key ca.key -subj /CN=flowctl-test-ca -days 3650 -out ca.crt 2>/dev/null
  newkey apiserver
  issue apiserver /CN=kube-apiserver "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc
extendedKeyUsage=serverAuth
keyUsage=critical,digitalSignature,keyEncipherment"
  newkey admin
  issue admin "/O=system:masters/CN=flowctl-admin" "extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature,keyEncipherment"
  newkey sa
  openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
)

b64() { base64 -w0 < "$1"; }
cat > "$DIR/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: flowctl-test
  cluster:
    server: https://127.0.0.1:$API
    certificate-authority-data: $(b64 "$DIR/pki/ca.crt")
users:
- name: flowctl-admin
  user:
    client-certificate-data: $(b64 "$DIR/pki/admin.crt")
    client-key-data: $(b64 "$DIR/pki/admin.key")
contexts:
- name: flowctl-test
  context: {cluster: flowctl-test, user: flowctl-admin}
current-context: flowctl-test
KUBECONFIG
chmod 600 "$DIR/kubeconfig"
export KUBECONFIG=$DIR/kubeconfig KUBECACHEDIR=$DIR/kubectl-cache
kc() { "$BIN/kubectl" --request-timeout=10s "$@"; }

# run NAME PROGRAM ARGS...: start detached from us (own session, no stdio of
# ours, so a test reading our stdout is not held open), pid in DIR/pids.
run() {
  local name=$1
  shift
  setsid "$@" < /dev/null > "$DIR/logs/$name.log" 2>&1 &
  echo $! > "$DIR/pids/$name.pid"
}
abort() { # abort NAME WHY: show NAME's log tail and give up
  say "$1 $2; the end of $DIR/logs/$1.log:"
  tail -n 40 "$DIR/logs/$1.log" >&2 || true
  exit 1
}
# until_ok NAME WHAT CMD...: retry CMD until it succeeds, while NAME lives.
until_ok() {
  local name=$1 what=$2 give_up=$((SECONDS + TIMEOUT))
  shift 2
  until "$@" > /dev/null 2>&1; do
    kill -0 "$(< "$DIR/pids/$name.pid")" 2>/dev/null || abort "$name" "died before $what"
    ((SECONDS < give_up)) || abort "$name" "not $what after ${TIMEOUT}s"
    sleep 0.3
  done
}
started=
cleanup() {
  [[ -n $started ]] && return
  local f
  for f in "$DIR"/pids/*.pid; do [[ -e $f ]] && kill "$(< "$f")" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 1' INT TERM

t0=$SECONDS
run etcd "$BIN/etcd" --name=etcd --data-dir="$DIR/etcd" --unsafe-no-fsync --log-level=warn \
  --listen-client-urls="http://127.0.0.1:$ETCD" --advertise-client-urls="http://127.0.0.1:$ETCD" \
  --listen-peer-urls="http://127.0.0.1:$PEER" --initial-advertise-peer-urls="http://127.0.0.1:$PEER" \
  --initial-cluster="etcd=http://127.0.0.1:$PEER"
until_ok etcd "listening on $ETCD" bash -c "exec 3<>/dev/tcp/127.0.0.1/$ETCD"

run kube-apiserver "$BIN/kube-apiserver" --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
  --secure-port="$API" --etcd-servers="http://127.0.0.1:$ETCD" --authorization-mode=RBAC \
  --cert-dir="$DIR/pki" --tls-cert-file="$DIR/pki/apiserver.crt" --tls-private-key-file="$DIR/pki/apiserver.key" \
  --client-ca-file="$DIR/pki/ca.crt" --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$DIR/pki/sa.pub" --service-account-signing-key-file="$DIR/pki/sa.key" \
  --service-cluster-ip-range=10.96.0.0/16 --allow-privileged=true \
  --kubelet-preferred-address-types=InternalIP --profiling=false
until_ok kube-apiserver "ready on 127.0.0.1:$API" kc get --raw /readyz

run kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig="$KUBECONFIG" --secure-port=0 \
  --leader-elect=false --root-ca-file="$DIR/pki/ca.crt" --service-account-private-key-file="$DIR/pki/sa.key" --profiling=false
run kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$KUBECONFIG" --secure-port=0 --leader-elect=false --profiling=false

# kwok: its own Stages, flowctl's test Stage, and a ClusterLogs object that
# serves DIR/logs/pod.log as every container's log.
kc apply -f "$SCRIPTS/kwok-logs-crd.yaml" > /dev/null
until_ok kube-apiserver "serving kwok's Logs CRD" kc wait --for=condition=Established crd/logs.kwok.x-k8s.io --timeout=5s
mkdir -p "$DIR/kwok"
printf '%s stdout F the test cluster serves this file as every pod log: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" "$DIR/logs/pod.log" > "$DIR/logs/pod.log"
{
  cat "$SCRIPTS/kwok-stages.yaml"
  echo "---"
  cat "$SCRIPTS/flowctl-stages.yaml"
  cat <<LOGS
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: all-pods
spec:
  logs:
  - logsFile: $DIR/logs/pod.log
    follow: true
LOGS
} > "$DIR/kwok.yaml"
# kwok answers the apiserver's log requests on KWOK_PORT, the port its nodes
# advertise as their kubelet's; KWOK_WORKDIR keeps it out of ~/.kwok.
run kwok env KWOK_WORKDIR="$DIR/kwok" "$BIN/kwok" --kubeconfig="$KUBECONFIG" --config="$DIR/kwok.yaml" \
  --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --node-ip=127.0.0.1 --node-port="$KWOK_PORT" --server-address="127.0.0.1:$KWOK_PORT" \
  --tls-cert-file="$DIR/pki/apiserver.crt" --tls-private-key-file="$DIR/pki/apiserver.key" \
  --node-lease-duration-seconds=40 --cidr=10.244.0.0/16 --enable-crds=Logs

for ((i = 0; i < NODES; i++)); do
  printf 'apiVersion: v1\nkind: Node\nmetadata:\n  name: kwok-node-%d\n  annotations: {kwok.x-k8s.io/node: fake}\n' "$i"
  printf '  labels: {type: kwok, kubernetes.io/hostname: kwok-node-%d, kubernetes.io/os: linux, kubernetes.io/arch: amd64}\n---\n' "$i"
done | kc apply -f - > /dev/null

node_ready() { [[ $(kc get nodes -o jsonpath='{.items[*].status.conditions[?(@.type=="Ready")].status}') == *True* ]]; }
until_ok kwok "making a node Ready" node_ready
until_ok kube-controller-manager "making the default ServiceAccount" kc -n default get serviceaccount default
for name in kube-scheduler kwok; do kill -0 "$(< "$DIR/pids/$name.pid")" 2>/dev/null || abort "$name" "exited"; done

started=1
say "cluster up in $((SECONDS - t0)) s: https://127.0.0.1:$API, logs in $DIR/logs"
echo "KUBECONFIG=$DIR/kubeconfig"
