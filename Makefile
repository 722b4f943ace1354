# The two commands of the README, and the pieces they are made of.
.PHONY: deps build images test demo manifests bench bench-lifecycle bench-audit bench-mediator bench-egress bench-agent bench-egress-verify cluster-up cluster-down

deps:
	scripts/deps

build: deps
	cargo build --workspace --all-targets

# The components' container images (daemonless, reproducible) in target/images/oci, their digests in
# target/images/digests.json (embedded into kubectl-causely by its build); `scripts/images push` publishes them.
images: deps
	scripts/images

# Every test: unit, component and cluster. Cluster tests start the local control plane
# themselves (tests/cluster/up) and leave it running for the next run; `make cluster-down` stops it.
# Images first: the image tests use them, and the plugin is built with their digests.
test: images build
	cargo test --workspace --no-fail-fast

# The local demo: a real control plane with a real node, Causely installed from the local
# registry, and `kubectl causely` used through kubectl.
demo: images build
	scripts/demo

# The rendered releases kept in manifests/ (a test fails when they are stale), without image digests:
# those depend on the build (kubectl-causely/tests/manifests.rs strips them the same way).
manifests:
	cargo build -p kubectl-causely
	target/debug/kubectl-causely install --dry-run -o yaml > manifests/default.yaml
	target/debug/kubectl-causely install --dry-run -o yaml --executor > manifests/executor.yaml
	sed -E -i 's/@sha256:[0-9a-f]{64}//g' manifests/default.yaml manifests/executor.yaml

# Benchmarks (figures in docs/benchmarks.md); never part of the tests.
bench:
	cargo bench -p kubectl-causely --bench render
	cargo bench -p kubectl-causely --bench top
	cargo bench -p kubectl-causely --bench egress_verify
	cargo bench -p causely-mediator --bench index
	cargo bench -p causely-agent --bench ebpf
	cargo bench -p causely-agent --bench pipeline

# Install, upgrade and uninstall times on the local cluster.
bench-lifecycle: deps
	scripts/bench-lifecycle

# audit-permissions with 10,000 unrelated RBAC objects in the local cluster.
bench-audit: deps
	scripts/bench-audit

# The mediator against the local cluster: memory per pod through the real API server, egress bytes.
bench-mediator: deps
	scripts/bench-mediator

# Egress bytes against raw bytes stored in VictoriaMetrics for a small demo workload (root).
bench-egress: deps
	scripts/bench-egress

# The agent's RSS and CPU at idle and under 10k TCP connections/s, and its kernel ns per run (root).
bench-agent: deps
	scripts/bench-agent

# `egress verify` over a ledger of 10,000 batches, from a state directory and from a mediator.
bench-egress-verify: deps
	scripts/bench-egress-verify

cluster-up: deps
	tests/cluster/up

cluster-down:
	tests/cluster/down
