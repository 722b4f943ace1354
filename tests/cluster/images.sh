# shellcheck shell=bash
# The images the local cluster's real node runs (sourced by tests/cluster/up after lib.sh): the pod
# sandbox ("pause", tests/cluster/pause.c), CoreDNS, and VictoriaMetrics from Debian's binary under
# the name the release's default uses (so an install with --registry pulls it from here), built
# daemonless into an OCI layout in the cache, and pushed with ours (target/images, `make images`)
# to the local registry.

source "$repo/scripts/lib/oci.sh"

# The VictoriaMetrics tag the installer renders (kubectl-causely/src/render/settings.rs).
vm_image=$(sed -n 's/^pub const VICTORIA_METRICS_IMAGE: &str = "\(.*\)";$/\1/p' "$repo/kubectl-causely/src/render/settings.rs")
infra_layout=$cache/images-pause-$PAUSE_VERSION-coredns-$COREDNS_VERSION-vm-${vm_image##*:}

# The infra images are reproducible too: one fixed epoch, since they change only with their inputs.
infra_epoch=0

build_infra_images() {
  [[ -f $infra_layout/done ]] && return 0
  [[ -n $vm_image ]] || die "cannot read VICTORIA_METRICS_IMAGE from kubectl-causely/src/render/settings.rs"
  say "building the pause, CoreDNS and VictoriaMetrics images (once; cached in $infra_layout)"
  local tmp=$infra_layout.tmp root
  rm -rf "$tmp" && mkdir -p "$tmp/roots"

  root=$tmp/roots/pause
  mkdir -p "$root"
  gcc -static -O2 -o "$tmp/pause" "$here/pause.c" || die "building tests/cluster/pause.c failed"
  oci_add_binary "$root" "$tmp/pause" /pause
  oci_build "$tmp/oci" "pause:$PAUSE_VERSION" --layer "$root" --entrypoint /pause --user 65535:65535 \
    --epoch "$infra_epoch" >/dev/null

  root=$tmp/roots/coredns
  oci_add_binary "$root" "$coredns_bin/coredns" /usr/local/bin/coredns
  oci_build "$tmp/oci" "coredns:$COREDNS_VERSION" --layer "$root" --entrypoint /usr/local/bin/coredns \
    --user 65532:65532 --epoch "$infra_epoch" >/dev/null

  # Debian's binary is dynamically linked: its libraries go in with it.
  root=$tmp/roots/victoria-metrics
  oci_add_binary "$root" /usr/bin/victoria-metrics /usr/local/bin/victoria-metrics
  oci_build "$tmp/oci" "victoria-metrics:${vm_image##*:}" --layer "$root" \
    --entrypoint /usr/local/bin/victoria-metrics --user 65532:65532 --epoch "$infra_epoch" >/dev/null

  rm -rf "$tmp/roots" "$tmp/pause" && touch "$tmp/done"
  rm -rf "$infra_layout" && mv "$tmp" "$infra_layout"
}

push_images() {
  build_infra_images
  # What is in the registry already, named by the infra layout and our digests: a second `up`
  # pushes nothing (each push reads every manifest back: seconds per image).
  local ours=$repo/target/images/digests.json pushed
  pushed="$infra_layout $(cat "$ours" 2>/dev/null)"
  [[ -f $state/registry.pushed && $(<"$state/registry.pushed") == "$pushed" ]] && return 0
  # skopeo reads every *.crt of a --cert-dir as a CA (and wants a .cert for every .key): the CA alone.
  mkdir -p "$state/registry-certs"
  cp "$pki/ca.crt" "$state/registry-certs/ca.crt"
  local certs=(--cert-dir "$state/registry-certs")
  (
    OCI_PROG=cluster
    oci_push "$infra_layout/oci" "pause:$PAUSE_VERSION" "$registry/pause:$PAUSE_VERSION" "${certs[@]}"
    oci_push "$infra_layout/oci" "coredns:$COREDNS_VERSION" "$registry/coredns:$COREDNS_VERSION" "${certs[@]}"
    oci_push "$infra_layout/oci" "victoria-metrics:${vm_image##*:}" "$registry/$vm_image" "${certs[@]}"
  )
  if [[ -f $ours ]]; then
    "$repo/scripts/images" push "$registry" "${certs[@]}" >/dev/null ||
      die "pushing our images (target/images) to the local registry failed"
  else
    say "our images are not built (no target/images): run 'make images' before installing into this cluster"
  fi
  echo "$pushed" >"$state/registry.pushed"
}

coredns_up() {
  local manifest
  manifest=$(sed -e "s|IMAGE|$registry/coredns:$COREDNS_VERSION|" -e "s|CLUSTER_DNS|$cluster_dns|" "$here/coredns.yaml")
  # Applied once per change of the manifest (an apply costs half a second, and up runs per test binary).
  if [[ ! -f $state/coredns.applied || $(<"$state/coredns.applied") != "$manifest" ]]; then
    "${kubectl[@]}" apply --server-side --field-manager causely-local -f - <<<"$manifest" >/dev/null
    echo "$manifest" >"$state/coredns.applied"
  fi
  wait_for coredns 120 "${kubectl[@]}" -n kube-system rollout status deployment/coredns --timeout=1s
}
