# Shared settings and helpers of tests/cluster/up and tests/cluster/down (sourced, not run).

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

state=${CAUSELY_CLUSTER_DIR:-$repo/target/cluster}
cache=${CAUSELY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/causely}
k8s_bin=$cache/kubernetes-$K8S_VERSION
kwok_bin=$cache/kwok-$KWOK_VERSION
coredns_bin=$cache/coredns-$COREDNS_VERSION
registry_bin=$cache/registry-$REGISTRY_VERSION
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
registry_port=35000
# The real node: its address is held on the loopback device (the kubelet refuses a 127.0.0.0/8
# node IP), so it does not depend on the machine's own network; its pods get the bridge's /24.
node_name=real-node-1
node_ip=10.250.0.1
node_pod_cidr=10.244.200.0/24
node_bridge=causely-br0
cluster_dns=10.96.0.10
node_dir=$state/node
containerd_sock=$node_dir/containerd.sock
registry=127.0.0.1:$registry_port
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
  [[ $(tr '\0' ' ' <"/proc/$pid/cmdline") == *"$2"* ]]
}

# stop_process NAME: SIGTERM the process up started as NAME (its binary is named NAME too),
# SIGKILL it after 10 s.
stop_process() {
  local name=$1 pid
  [[ -f $pids/$name.pid ]] || return 0
  pid=$(<"$pids/$name.pid")
  if alive "$name" "$name"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      say "$name (pid $pid) ignored SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    say "stopped $name"
  fi
  rm -f "$pids/$name.pid"
}
