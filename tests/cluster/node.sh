# shellcheck shell=bash
# The local cluster's real node (sourced by tests/cluster/up and tests/cluster/down, after lib.sh):
# containerd and runc from Debian, a CNI bridge with host-local addresses, the kubelet and
# kube-proxy built from the same k8s.io/kubernetes module as the control plane. The kubelet
# registers as $node_name with a client certificate for system:node:$node_name (the API server
# runs the Node authorizer and NodeRestriction), serves a certificate signed by the cluster CA,
# and authenticates and authorizes its callers through the API server (webhook), as on a real
# cluster. Everything it changes on the host is recorded in $node_dir and undone by node_down.
# Measured facts this follows: ../shared/notes/real-node.md.

node_saved=$state/node-host-changes # outlives $node_dir so that `down` can undo what up changed
ctr=(ctr --address "$containerd_sock" --namespace k8s.io)

# The kubelet and kube-proxy rewrite these host settings; they are saved once and restored by down.
node_sysctls=(kernel.panic kernel.panic_on_oops vm.overcommit_memory net.ipv4.ip_forward
  net.bridge.bridge-nf-call-iptables)
# Pods reach outside the node (CoreDNS forwarding to the machine's resolver) through this one rule.
node_masquerade=(POSTROUTING -s "$node_pod_cidr" ! -d "$pod_cidr" -m comment --comment causely-local-node -j MASQUERADE)

# write_config FILE: stdin to FILE, only when it differs (kube-proxy exits when its file changes);
# a file that changed is named in changed_configs, so that its daemon is restarted.
changed_configs=()
write_config() {
  local file=$1
  cat >"$file.new"
  if cmp -s "$file.new" "$file"; then
    rm -f "$file.new"
  else
    mv "$file.new" "$file"
    changed_configs+=("$file")
  fi
}

# restart_if_changed NAME FILE: stops NAME when FILE changed in this run (start brings it back).
restart_if_changed() {
  local name=$1 file=$2 changed
  for changed in "${changed_configs[@]}"; do
    [[ $changed == "$file" ]] && alive "$name" "$name" && { say "$(basename "$file") changed: restarting $name"; stop_process "$name"; }
  done
  return 0
}

node_write_configs() {
  mkdir -p "$node_dir"/{cni/net.d,cni/ipam,kubelet,pod-logs,certs.d/"$registry"}
  write_config "$node_dir/containerd.toml" <<EOF
version = 2
root = "$node_dir/containerd/root"
state = "$node_dir/containerd/state"
[grpc]
  address = "$containerd_sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$node_dir/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$registry/pause:$PAUSE_VERSION"
  stream_server_address = "127.0.0.1"
  stream_server_port = "10010"
  netns_mounts_under_state_dir = true
  # Root here lacks CAP_SYS_RESOURCE: runc cannot lower a process's oom_score_adj.
  restrict_oom_score_adj = true
  disable_hugetlb_controller = true
  tolerate_missing_hugetlb_controller = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$node_dir/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$node_dir/runc"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$node_dir/certs.d"
EOF
  # The local registry serves HTTPS with a certificate of the cluster CA, as a real one would.
  # (containerd 1.6 treats a loopback registry's `server` as plain HTTP; the host entry is HTTPS.)
  write_config "$node_dir/certs.d/$registry/hosts.toml" <<EOF
server = "https://$registry"
[host."https://$registry"]
  capabilities = ["pull", "resolve"]
  ca = "$pki/ca.crt"
EOF
  write_config "$node_dir/cni/net.d/10-causely.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "causely", "plugins": [
  {"type": "bridge", "bridge": "$node_bridge", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$node_dir/cni/ipam",
            "ranges": [[{"subnet": "$node_pod_cidr"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
  write_config "$node_dir/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
# This machine mounts cgroup v1 controllers (with an empty cgroup2 beside them): 1.35 only warns.
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$containerd_sock
imageServiceEndpoint: unix://$containerd_sock
address: $node_ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $pki/$node_name-serving.crt
tlsPrivateKeyFile: $pki/$node_name-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true, cacheTTL: 30s}
  x509: {clientCAFile: $pki/ca.crt}
authorization:
  mode: Webhook
  webhook: {cacheAuthorizedTTL: 30s, cacheUnauthorizedTTL: 5s}
clusterDomain: cluster.local
clusterDNS: [$cluster_dns]
resolvConf: /etc/resolv.conf
podLogsDir: $node_dir/pod-logs
# -999 (the default) needs CAP_SYS_RESOURCE, which root lacks here.
oomScoreAdj: 0
serializeImagePulls: false
# This machine's disk is shared with builds that come and go: image garbage collection would
# remove the pause image between two tests. The images stay until down.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 2%, imagefs.available: 2%, nodefs.inodesFree: 2%}
EOF
  write_config "$node_dir/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $state/kube-proxy.kubeconfig}
hostnameOverride: $node_name
mode: iptables
clusterCIDR: $pod_cidr
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Leave the host's conntrack table settings alone (0 = do not change).
conntrack: {maxPerCore: 0, min: 0}
# No NodePorts on 127.0.0.1: that would need net.ipv4.conf.all.route_localnet=1.
iptables: {localhostNodePorts: false}
nodePortAddresses: [$node_ip/32]
EOF
}

# Records the host settings the node changes, once, before anything changes them.
node_save_host() {
  [[ -f $node_saved/sysctl ]] && return 0
  mkdir -p "$node_saved"
  local key
  for key in "${node_sysctls[@]}"; do
    [[ -e /proc/sys/${key//.//} ]] && echo "$key=$(sysctl -n "$key")"
  done >"$node_saved/sysctl.tmp"
  iptables-save 2>/dev/null | grep -o '^:[A-Z][A-Z0-9-]*' | sort -u >"$node_saved/iptables-chains" || true
  [[ -e /run/containerd ]] || touch "$node_saved/created-run-containerd"
  [[ -e /var/lib/cni ]] || touch "$node_saved/created-var-lib-cni"
  mv "$node_saved/sysctl.tmp" "$node_saved/sysctl"
}

node_host_network() {
  # Not `ip | grep -q`: grep's early exit makes ip fail with SIGPIPE under pipefail.
  [[ $(ip -o addr show dev lo) == *" $node_ip/32 "* ]] || ip addr add "$node_ip/32" dev lo
  # Pods on the bridge reach Services through the host's routing (kube-proxy's DNAT).
  sysctl -q -w net.ipv4.ip_forward=1
  [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] && sysctl -q -w net.bridge.bridge-nf-call-iptables=1
  iptables -t nat -C "${node_masquerade[@]}" 2>/dev/null || iptables -t nat -A "${node_masquerade[@]}"
}

# The Node object is created before the kubelet starts, with its pod CIDR (the CNI range above):
# nothing allocates node CIDRs in this cluster.
node_register() {
  "${kubectl[@]}" get node "$node_name" >/dev/null 2>&1 && return 0
  "${kubectl[@]}" create -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $node_name
  labels: {kubernetes.io/hostname: $node_name, kubernetes.io/os: linux, kubernetes.io/arch: amd64}
spec:
  podCIDR: $node_pod_cidr
  podCIDRs: [$node_pod_cidr]
EOF
}

node_up() {
  for tool in containerd runc ctr iptables iptables-save conntrack; do
    command -v "$tool" >/dev/null || die "missing $tool: run 'make deps' (installs Debian packages containerd runc iptables conntrack)"
  done
  [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local ]] ||
    die "missing the CNI plugins in /usr/lib/cni: run 'make deps' (installs containernetworking-plugins)"
  node_write_configs
  node_save_host
  node_host_network
  restart_if_changed containerd "$node_dir/containerd.toml"
  restart_if_changed kubelet "$node_dir/kubelet/config.yaml"
  start containerd /usr/bin/containerd --config "$node_dir/containerd.toml"
  wait_for containerd 30 "${ctr[@]}" version
  node_register
  start kubelet "$k8s_bin/kubelet" --config "$node_dir/kubelet/config.yaml" \
    --kubeconfig "$state/$node_name.kubeconfig" --hostname-override "$node_name" --node-ip "$node_ip" \
    --root-dir "$node_dir/kubelet/root" --cert-dir "$node_dir/kubelet/pki" \
    --containerd "$containerd_sock" --v 1
  start kube-proxy "$k8s_bin/kube-proxy" --config "$node_dir/kube-proxy.yaml" --v 1
  wait_for kubelet 60 curl -fsS http://127.0.0.1:10248/healthz
  wait_for kube-proxy 60 curl -fsS http://127.0.0.1:10256/livez
  wait_for kubelet 90 "${kubectl[@]}" wait --for=condition=Ready "node/$node_name" --timeout=1s
}

node_down() {
  # kube-proxy first, then its rules; the kubelet before the runtime it drives.
  stop_process kube-proxy
  [[ -x $k8s_bin/kube-proxy ]] && "$k8s_bin/kube-proxy" --cleanup >/dev/null 2>&1 || true
  stop_process kubelet
  if [[ -S $containerd_sock ]] && "${ctr[@]}" version >/dev/null 2>&1; then
    local task
    for task in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
      "${ctr[@]}" tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
    done
    sleep 0.5
    for task in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
      "${ctr[@]}" tasks delete -f "$task" >/dev/null 2>&1 || true
    done
  fi
  stop_process containerd
  # A shim outlives containerd; those of this node are the ones started with its socket.
  pkill -KILL -f "containerd-shim-runc-v2 .*-address $containerd_sock" 2>/dev/null || true
  # The kubelet bind-mounts its root dir; pods leave netns, shm and rootfs mounts.
  if [[ -d $node_dir ]]; then
    awk -v dir="$node_dir" 'index($2, dir) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
  fi
  local hierarchy
  for hierarchy in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
    if [[ -d ${hierarchy}kubepods ]]; then
      find "${hierarchy}kubepods" -depth -type d -exec rmdir {} + 2>/dev/null || true
    fi
  done
  ip link del "$node_bridge" 2>/dev/null || true
  ip addr del "$node_ip/32" dev lo 2>/dev/null || true
  while iptables -t nat -D "${node_masquerade[@]}" 2>/dev/null; do :; done
  [[ -d $node_saved ]] || return 0
  # The kubelet's own chains (KUBE-FIREWALL with its INPUT/OUTPUT jumps, canary and hint chains).
  local ipt table chain
  for ipt in iptables ip6tables; do
    while $ipt -D INPUT -j KUBE-FIREWALL 2>/dev/null; do :; done
    while $ipt -D OUTPUT -j KUBE-FIREWALL 2>/dev/null; do :; done
    for table in filter nat mangle; do
      for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT KUBE-PROXY-CANARY; do
        grep -qx ":$chain" "$node_saved/iptables-chains" 2>/dev/null && continue
        $ipt -t "$table" -F "$chain" 2>/dev/null && $ipt -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
  [[ -f $node_saved/sysctl ]] && sysctl -q -p "$node_saved/sysctl" >/dev/null 2>&1 || true
  if ! pgrep -x containerd >/dev/null; then
    [[ -f $node_saved/created-run-containerd ]] && rm -rf /run/containerd
    [[ -f $node_saved/created-var-lib-cni ]] && rm -rf /var/lib/cni
  fi
  rm -rf "$node_saved"
}
