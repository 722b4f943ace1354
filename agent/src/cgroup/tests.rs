//! Attribution tests over a table of cgroup paths in the shapes kubelets, runtimes and hosts write.

use std::fs;
use std::os::unix::fs::MetadataExt;

use super::*;

const UID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
const UID_US: &str = "0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0";
const STATIC_UID: &str = "3a1f5b2e9c8d7e6f5a4b3c2d1e0f9a8b";
/// The systemd driver's pod slice prefixes, so that the table stays readable.
const SD_BURSTABLE: &str = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod";
const SD_BESTEFFORT: &str = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod";
const KIND_BESTEFFORT: &str =
    "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod";
const ID: &str = "4c2ac3e1b0a1f7d84e6b1f4e2e9b3f7a0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a";

fn pod(qos: Qos, container: Option<&str>) -> Option<PodContainer> {
    Some(PodContainer { pod_uid: UID.into(), container_id: container.map(str::to_owned), qos })
}

#[test]
fn every_kubelet_layout_attributes_to_the_right_pod_container_and_qos() {
    use Qos::*;
    let table: Vec<(String, Option<PodContainer>)> = vec![
        // cgroupfs driver, cgroup v2 (paths relative to the mount, as /proc/<pid>/cgroup shows them)
        (format!("/kubepods/burstable/pod{UID}/{ID}"), pod(Burstable, Some(ID))),
        (format!("/kubepods/besteffort/pod{UID}/{ID}"), pod(BestEffort, Some(ID))),
        (format!("/kubepods/pod{UID}/{ID}"), pod(Guaranteed, Some(ID))),
        (format!("/kubepods/burstable/pod{UID}"), pod(Burstable, None)),
        (format!("/kubepods/pod{UID}/"), pod(Guaranteed, None)),
        // cgroupfs driver with CRI-O naming its container cgroups
        (format!("/kubepods/burstable/pod{UID}/crio-{ID}"), pod(Burstable, Some(ID))),
        // cgroupfs driver, cgroup v1, absolute under a controller mount
        (format!("/sys/fs/cgroup/memory/kubepods/burstable/pod{UID}/{ID}"), pod(Burstable, Some(ID))),
        (format!("/sys/fs/cgroup/cpu,cpuacct/kubepods/pod{UID}/{ID}"), pod(Guaranteed, Some(ID))),
        (format!("/host/sys/fs/cgroup/memory/kubepods/besteffort/pod{UID}"), pod(BestEffort, None)),
        // systemd driver, containerd
        (format!("{SD_BURSTABLE}{UID_US}.slice/cri-containerd-{ID}.scope"), pod(Burstable, Some(ID))),
        (format!("{SD_BESTEFFORT}{UID_US}.slice/cri-containerd-{ID}.scope"), pod(BestEffort, Some(ID))),
        (format!("/kubepods.slice/kubepods-pod{UID_US}.slice/cri-containerd-{ID}.scope"), pod(Guaranteed, Some(ID))),
        (format!("/kubepods.slice/kubepods-pod{UID_US}.slice"), pod(Guaranteed, None)),
        (format!("{SD_BURSTABLE}{UID_US}.slice"), pod(Burstable, None)),
        // systemd driver, CRI-O and docker (cri-dockerd)
        (format!("{SD_BURSTABLE}{UID_US}.slice/crio-{ID}.scope"), pod(Burstable, Some(ID))),
        (format!("/kubepods.slice/kubepods-pod{UID_US}.slice/docker-{ID}.scope"), pod(Guaranteed, Some(ID))),
        // systemd driver, cgroup v2 under the mount, and v1 under a controller
        (
            format!("/sys/fs/cgroup/kubepods.slice/kubepods-pod{UID_US}.slice/cri-containerd-{ID}.scope"),
            pod(Guaranteed, Some(ID)),
        ),
        (format!("/sys/fs/cgroup/memory{SD_BESTEFFORT}{UID_US}.slice/crio-{ID}.scope"), pod(BestEffort, Some(ID))),
        // kind (nested kubelet), cgroupfs and systemd
        (format!("/kubelet/kubepods/burstable/pod{UID}/{ID}"), pod(Burstable, Some(ID))),
        (format!("{KIND_BESTEFFORT}{UID_US}.slice/cri-containerd-{ID}.scope"), pod(BestEffort, Some(ID))),
        (format!("/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod{UID_US}.slice"), pod(Guaranteed, None)),
        // k3s in docker (k3d): the node itself is a container
        (format!("/docker/{ID}/kubepods/besteffort/pod{UID}/{ID}"), pod(BestEffort, Some(ID))),
        // a container's own sub-cgroup is still that container
        (
            format!("/kubepods.slice/kubepods-pod{UID_US}.slice/cri-containerd-{ID}.scope/init.scope"),
            pod(Guaranteed, Some(ID)),
        ),
        // uppercase UID normalised
        (format!("/kubepods/pod{}/{ID}", UID.to_uppercase()), pod(Guaranteed, Some(ID))),
        // static pods use a 32-hex hash as their UID
        (
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{STATIC_UID}.slice"),
            Some(PodContainer { pod_uid: STATIC_UID.into(), container_id: None, qos: Burstable }),
        ),
        // not pods
        ("/".into(), None),
        ("".into(), None),
        ("/system.slice/containerd.service".into(), None),
        (format!("/system.slice/docker-{ID}.scope"), None),
        ("/system.slice/kubelet.service".into(), None),
        ("/user.slice/user-0.slice/session-1.scope".into(), None),
        ("/kubepods".into(), None),
        ("/kubepods/burstable".into(), None),
        ("/kubepods/besteffort/".into(), None),
        ("/kubepods.slice".into(), None),
        ("/kubepods.slice/kubepods-burstable.slice".into(), None),
        ("/sys/fs/cgroup/memory".into(), None),
        ("/process_api/0f025c96fed1d014b53b90844d0c1514".into(), None),
        ("/kubepods/burstable/podnot-a-uid".into(), None),
        (format!("/kubepods/burstable/pod{}", &UID[..35]), None),
        (format!("/kubepods/burstable/pod{UID}/{}", &ID[..63]), None),
        (format!("/kubepods/burstable/pod{UID}/not-a-container"), None),
        (format!("/notkubepods/burstable/pod{UID}/{ID}"), None),
        // CRI-O's conmon monitor is not the container (documented decision: None)
        (format!("{SD_BURSTABLE}{UID_US}.slice/crio-conmon-{ID}.scope"), None),
        // QoS in the pod slice name disagreeing with its parent slice
        (format!("/kubepods.slice/kubepods-burstable.slice/kubepods-besteffort-pod{UID_US}.slice"), None),
        // a systemd pod slice with dashes is a different unit, not a kubelet pod
        (format!("/kubepods.slice/kubepods-pod{UID}.slice"), None),
        // a unit that merely ends in "-pod..."
        (format!("/kubepods.slice/something-pod{UID_US}.slice"), None),
    ];
    let mut failures = Vec::new();
    for (path, expected) in &table {
        let got = parse_cgroup_path(path);
        if &got != expected {
            failures.push(format!("{path}\n  expected {expected:?}\n  got      {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} paths misattributed:\n{}", failures.len(), table.len(), failures.join("\n"));
}

#[test]
fn qos_classes_print_as_the_kubelet_names_them() {
    assert_eq!(Qos::BestEffort.to_string(), "besteffort");
    assert_eq!(Qos::Burstable.as_str(), "burstable");
    assert_eq!(Qos::Guaranteed.as_str(), "guaranteed");
}

#[test]
fn a_cgroup_dir_is_joined_under_its_mount_and_dot_dot_is_refused() {
    let mount = Path::new("/host/sys/fs/cgroup");
    assert_eq!(
        cgroup_dir_for(mount, "/kubepods/pod1/./c").unwrap(),
        PathBuf::from("/host/sys/fs/cgroup/kubepods/pod1/c")
    );
    assert_eq!(cgroup_dir_for(mount, "/").unwrap(), PathBuf::from("/host/sys/fs/cgroup"));
    assert!(matches!(cgroup_dir_for(mount, "/kubepods/../../../etc"), Err(CgroupPathError::Escapes(_))));
}

#[test]
fn a_process_is_attributed_through_cgroup2_first_and_v1_memory_on_hybrid_hosts() {
    let v2 = format!("0::/kubepods.slice/kubepods-pod{UID_US}.slice/cri-containerd-{ID}.scope\n");
    assert_eq!(path_from_proc_cgroup(&v2), Some(&v2[3..v2.len() - 1]));
    let hybrid = format!("9:name=systemd:/\n4:memory:/kubepods/pod{UID}/{ID}\n1:cpu:/\n0::/\n");
    assert_eq!(path_from_proc_cgroup(&hybrid), Some(format!("/kubepods/pod{UID}/{ID}").as_str()));
    assert_eq!(
        path_from_proc_cgroup("4:memory:/user.slice\n0::/system.slice/x.service\n"),
        Some("/system.slice/x.service")
    );
    assert_eq!(path_from_proc_cgroup("garbage"), None);
}

#[test]
fn a_cgroup_id_resolves_to_its_path_by_walking_the_mount() {
    let dir = tempfile::tempdir().unwrap();
    let container = dir.path().join(format!("kubepods/burstable/pod{UID}/{ID}"));
    fs::create_dir_all(&container).unwrap();
    let id = fs::metadata(&container).unwrap().ino();
    let mut resolver = CgroupIdResolver::new(dir.path());
    let path = resolver.resolve(id, 0).unwrap().to_owned();
    assert_eq!(path, format!("/kubepods/burstable/pod{UID}/{ID}"));
    assert_eq!(parse_cgroup_path(&path), pod(Qos::Burstable, Some(ID)));
    let root = fs::metadata(dir.path()).unwrap().ino();
    assert_eq!(resolver.resolve(root, 0), Some("/"));
    assert_eq!(resolver.stats().scans, 1, "a hit must not rescan");
}

#[test]
fn an_unknown_id_rescans_at_most_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let mut resolver = CgroupIdResolver::with_bounds(dir.path(), 100, 8, 1_000);
    assert_eq!(resolver.resolve(u64::MAX, 0), None);
    assert_eq!(resolver.resolve(u64::MAX, 500), None);
    assert_eq!(resolver.stats().scans, 1);
    // A cgroup created after the scan is found once the interval has passed.
    let late = dir.path().join("late");
    fs::create_dir(&late).unwrap();
    let id = fs::metadata(&late).unwrap().ino();
    assert_eq!(resolver.resolve(id, 900), None);
    assert_eq!(resolver.resolve(id, 1_000), Some("/late"));
    assert_eq!(resolver.stats().scans, 2);
    assert_eq!(resolver.stats().misses, 3);
}

#[test]
fn the_resolver_stays_within_its_entry_and_depth_bounds() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..10 {
        fs::create_dir_all(dir.path().join(format!("d{i}/a/b/c"))).unwrap();
        // Cgroup directories are full of files; only the directories are cgroups.
        fs::write(dir.path().join(format!("d{i}/cgroup.procs")), "").unwrap();
    }
    fs::write(dir.path().join("cgroup.procs"), "").unwrap();
    let mut bounded = CgroupIdResolver::with_bounds(dir.path(), 5, 8, 0);
    bounded.rescan(0);
    assert_eq!(bounded.len(), 5);
    assert_eq!(bounded.stats().truncated_scans, 1);
    let mut shallow = CgroupIdResolver::with_bounds(dir.path(), 1_000, 1, 0);
    shallow.rescan(0);
    assert_eq!(shallow.len(), 11, "the root and its ten children only");
    let deep = fs::metadata(dir.path().join("d0/a")).unwrap().ino();
    assert_eq!(shallow.resolve(deep, 0), None);
}

#[test]
fn the_resolver_finds_this_hosts_own_cgroup2_root() {
    let mount = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .map(Path::new)
        .find(|m| m.join("cgroup.procs").exists() && m.join("cgroup.controllers").exists());
    let Some(mount) = mount else {
        eprintln!("no cgroup2 mount on this host; nothing to resolve");
        return;
    };
    let id = fs::metadata(mount).unwrap().ino();
    let mut resolver = CgroupIdResolver::new(mount);
    assert_eq!(resolver.resolve(id, 0), Some("/"));
}
