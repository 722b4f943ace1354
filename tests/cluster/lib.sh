# Shared settings and helpers of tests/cluster/up and tests/cluster/down (sourced, not run).

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

state=${CAUSELY_CLUSTER_DIR:-$repo/target/cluster}
cache=${CAUSELY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/causely}
k8s_bin=$cache/kubernetes-$K8S_VERSION
kwok_bin=$cache/kwok-$KWOK_VERSION
# etcd's release is the one tests/cluster/etcd/go.mod requires.
ETCD_VERSION=$(awk '$1 == "require" && $2 == "go.etcd.io/etcd/server/v3" {print $3}' "$here/etcd/go.mod")
etcd_bin=$cache/etcd-$ETCD_VERSION
pki=$state/pki
pids=$state/pids
logs=$state/logs

# Every listener binds 127.0.0.1 on a fixed port chosen away from the usual defaults, so the
# local cluster does not collide with a real etcd, API server or VictoriaMetrics on this host.
etcd_port=32379
etcd_peer_port=32380
apiserver_port=36443
kcm_port=30257
scheduler_port=30259
vm_port=38428
service_cidr=10.96.0.0/16
pod_cidr=10.244.0.0/16
nodes=(kwok-node-1 kwok-node-2 kwok-node-3)
pv_pool=(local-pv-{01..20})

die() { echo "cluster: $*" >&2; exit 2; }
say() { echo "cluster: $*" >&2; }

# alive NAME: the process recorded for NAME is running and is the binary we started.
alive() {
  local file=$pids/$1.pid pid
  [[ -f $file ]] || return 1
  pid=$(<"$file")
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2"
}
