//! Every file-writing path, against fake cgroup trees (plain directories
//! with the interface files a kernel would create): the v2 writers, since
//! this machine's controllers are bound to v1, and the v1 files this kernel
//! does not have (net_cls, net_prio, hugetlb, CFQ weights, real-time).

use std::fs;
use std::path::{Path, PathBuf};

use quai_runtime::cgroups::{Cgroup, Layout, V1Hierarchy};
use quai_testutil::TempRoot;

use crate::fixtures::{read, resources};

fn touch(dir: &Path, files: &[(&str, &str)]) {
    fs::create_dir_all(dir).unwrap();
    for (name, content) in files {
        fs::write(dir.join(name), content).unwrap();
    }
}

const V2_FILES: &[(&str, &str)] = &[
    ("cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc"),
    ("cgroup.subtree_control", ""),
    ("cgroup.procs", ""),
    ("cgroup.freeze", "0"),
    ("cgroup.events", "populated 0\nfrozen 0\n"),
    ("memory.max", "max"),
    ("memory.low", "0"),
    ("memory.high", "max"),
    ("memory.swap.max", "max"),
    ("memory.current", "1048576"),
    ("memory.events", "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n"),
    ("memory.stat", "anon 4096\nfile 8192\n"),
    ("cpu.weight", "100"),
    ("cpu.max", "max 100000"),
    ("cpu.max.burst", "0"),
    ("cpu.idle", "0"),
    ("cpu.stat", "usage_usec 5\nuser_usec 3\nsystem_usec 2\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n"),
    ("cpuset.cpus", ""),
    ("cpuset.mems", ""),
    ("pids.max", "max"),
    ("pids.current", "3"),
    ("io.weight", "default 100"),
    ("io.max", ""),
    ("io.stat", "8:0 rbytes=512 wbytes=1024 rios=1 wios=2 dbytes=0 dios=0\n"),
    ("hugetlb.2MB.max", "max"),
    ("hugetlb.2MB.rsvd.max", "max"),
    ("rdma.max", ""),
];

/// A fake unified host with the container's directory `/machine/ctr`
/// already populated.
fn fake_v2() -> (TempRoot, Cgroup, PathBuf) {
    let root = TempRoot::new("cgfake2");
    let mount = root.path().to_path_buf();
    touch(
        &mount,
        &[
            (
                "cgroup.controllers",
                "cpuset cpu io memory hugetlb pids rdma misc",
            ),
            ("cgroup.subtree_control", ""),
        ],
    );
    touch(
        &mount.join("machine"),
        &[
            (
                "cgroup.controllers",
                "cpuset cpu io memory hugetlb pids rdma misc",
            ),
            ("cgroup.subtree_control", ""),
        ],
    );
    let leaf = mount.join("machine/ctr");
    touch(&leaf, V2_FILES);
    let layout = Layout::unified_at(&mount, "/");
    let cg = Cgroup::new(&layout, Some("/machine/ctr"), "ctr").unwrap();
    (root, cg, leaf)
}

#[test]
fn v2_files_get_the_converted_values() {
    let (root, cg, leaf) = fake_v2();
    let r = resources(
        r#"{"memory":{"limit":67108864,"reservation":33554432,"swap":100663296,"swappiness":30},
            "cpu":{"shares":2048,"quota":30000,"period":50000,"burst":1000,"idle":0,"cpus":"0-1","mems":"0"},
            "pids":{"limit":64},
            "blockIO":{"weight":500,"throttleWriteBpsDevice":[{"major":8,"minor":0,"rate":2097152}]},
            "hugepageLimits":[{"pageSize":"2MB","limit":8388608}],
            "rdma":{"mlx5_0":{"hcaHandles":3,"hcaObjects":1000}},
            "unified":{"memory.high":"50331648"}}"#,
    );
    cg.check(&r).unwrap();
    cg.create().unwrap();
    // Controllers are enabled from the root down to the parent.
    assert!(read(root.path(), "cgroup.subtree_control").contains("+memory"));
    assert!(read(&root.path().join("machine"), "cgroup.subtree_control").contains("+pids"));
    cg.apply(&r).unwrap();
    assert_eq!(read(&leaf, "memory.max"), "67108864");
    assert_eq!(read(&leaf, "memory.low"), "33554432");
    assert_eq!(read(&leaf, "memory.swap.max"), "33554432");
    assert_eq!(read(&leaf, "memory.high"), "50331648");
    assert_eq!(read(&leaf, "cpu.weight"), "174");
    assert_eq!(read(&leaf, "cpu.max"), "30000 50000");
    assert_eq!(read(&leaf, "cpu.max.burst"), "1000");
    assert_eq!(read(&leaf, "cpu.idle"), "0");
    assert_eq!(read(&leaf, "cpuset.cpus"), "0-1");
    assert_eq!(read(&leaf, "cpuset.mems"), "0");
    assert_eq!(read(&leaf, "pids.max"), "64");
    assert_eq!(read(&leaf, "io.weight"), "4950");
    assert_eq!(read(&leaf, "io.max"), "8:0 wbps=2097152");
    assert_eq!(read(&leaf, "hugetlb.2MB.max"), "8388608");
    assert_eq!(read(&leaf, "hugetlb.2MB.rsvd.max"), "8388608");
    assert_eq!(
        read(&leaf, "rdma.max"),
        "mlx5_0 hca_handle=3 hca_object=1000"
    );

    // Partial update: quota only keeps the period; -1 means max.
    cg.apply(&resources(r#"{"cpu":{"quota":-1},"memory":{"limit":-1}}"#))
        .unwrap();
    assert_eq!(read(&leaf, "cpu.max"), "max 50000");
    assert_eq!(read(&leaf, "memory.max"), "max");
    assert_eq!(read(&leaf, "memory.swap.max"), "max");

    let stats = cg.stats().unwrap();
    assert_eq!(stats.pids.current, 3);
    assert_eq!(stats.pids.limit, 64);
    assert_eq!(stats.memory.usage.usage, 1048576);
    assert_eq!(stats.memory.cache, 8192);
    assert_eq!(stats.cpu.usage.total, 5000);
    assert_eq!(stats.blkio.io_service_bytes_recursive.len(), 2);
    assert_eq!(cg.oom_kill_count().unwrap(), 1);
}

#[test]
fn v2_bfq_takes_weights_when_present() {
    let (_root, cg, leaf) = fake_v2();
    touch(&leaf, &[("io.bfq.weight", "default 100\n")]);
    cg.apply(&resources(
        r#"{"blockIO":{"weight":300,"weightDevice":[{"major":8,"minor":16,"weight":200}]}}"#,
    ))
    .unwrap();
    // The file holds the last write: the device weight.
    assert_eq!(read(&leaf, "io.bfq.weight"), "8:16 200");
}

#[test]
fn v2_refuses_what_only_v1_can_do() {
    let (_root, cg, _leaf) = fake_v2();
    for (json, needle) in [
        (
            r#"{"cpu":{"realtimeRuntime":950000,"realtimePeriod":1000000}}"#,
            "realtime",
        ),
        (r#"{"network":{"classID":1048577}}"#, "net_cls"),
        (
            r#"{"memory":{"disableOOMKiller":true}}"#,
            "disableOOMKiller",
        ),
        (r#"{"memory":{"useHierarchy":false}}"#, "hierarchical"),
    ] {
        let err = cg.check(&resources(json)).unwrap_err().to_string();
        assert!(err.contains(needle), "{json}: {err}");
        let err = cg.apply(&resources(json)).unwrap_err().to_string();
        assert!(err.contains(needle), "{json}: {err}");
    }
}

#[test]
fn v2_controller_not_enabled_for_the_cgroup_is_named() {
    let (_root, cg, leaf) = fake_v2();
    fs::write(leaf.join("cgroup.controllers"), "cpu pids").unwrap();
    let err = cg
        .apply(&resources(r#"{"memory":{"limit":1048576}}"#))
        .unwrap_err()
        .to_string();
    assert!(err.contains("memory controller is not enabled"), "{err}");
}

#[test]
fn v2_unknown_unified_key_is_named() {
    let (_root, cg, _leaf) = fake_v2();
    let err = cg
        .apply(&resources(r#"{"unified":{"memory.nonexistent":"1"}}"#))
        .unwrap_err()
        .to_string();
    assert!(err.contains("memory.nonexistent"), "{err}");
}

fn hierarchy(mount: &Path, controllers: &[&str]) -> V1Hierarchy {
    V1Hierarchy {
        controllers: controllers.iter().map(|c| c.to_string()).collect(),
        mount_point: mount.join(controllers.join(",")),
        own_cgroup: PathBuf::from("/"),
    }
}

/// A fake v1 host with the controllers this machine lacks, the container's
/// directories already populated.
fn fake_v1() -> (TempRoot, Cgroup) {
    let root = TempRoot::new("cgfake1");
    let m = root.path();
    let hierarchies = vec![
        hierarchy(m, &["cpu", "cpuacct"]),
        hierarchy(m, &["memory"]),
        hierarchy(m, &["blkio"]),
        hierarchy(m, &["hugetlb"]),
        hierarchy(m, &["net_cls", "net_prio"]),
    ];
    let layout = Layout::V1 { hierarchies };
    let cg = Cgroup::new(&layout, Some("/ctr"), "ctr").unwrap();
    let dir = |c: &str| cg.controller_dir(c).unwrap().to_path_buf();
    touch(
        &dir("cpu"),
        &[
            ("cgroup.procs", ""),
            ("cpu.shares", "1024"),
            ("cpu.cfs_quota_us", "-1"),
            ("cpu.cfs_period_us", "100000"),
            ("cpu.rt_runtime_us", "0"),
            ("cpu.rt_period_us", "1000000"),
            ("cpuacct.usage", "123"),
            ("cpuacct.usage_percpu", "100 23"),
            ("cpuacct.stat", "user 2\nsystem 1\n"),
            ("cpuacct.usage_all", "cpu user system\n0 60 40\n1 20 3\n"),
        ],
    );
    touch(
        &dir("memory"),
        &[
            ("cgroup.procs", ""),
            ("memory.limit_in_bytes", "9223372036854771712"),
            ("memory.memsw.limit_in_bytes", "9223372036854771712"),
            ("memory.soft_limit_in_bytes", "9223372036854771712"),
            ("memory.kmem.limit_in_bytes", "9223372036854771712"),
            ("memory.kmem.tcp.limit_in_bytes", "9223372036854771712"),
            ("memory.swappiness", "60"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n",
            ),
            ("memory.use_hierarchy", "1"),
            ("memory.usage_in_bytes", "4096"),
            ("memory.max_usage_in_bytes", "8192"),
            ("memory.failcnt", "0"),
            ("memory.stat", "cache 100\nrss 200\n"),
        ],
    );
    touch(
        &dir("blkio"),
        &[
            ("cgroup.procs", ""),
            ("blkio.weight", "500"),
            ("blkio.weight_device", ""),
            ("blkio.leaf_weight", "500"),
            ("blkio.leaf_weight_device", ""),
            ("blkio.throttle.read_iops_device", ""),
            (
                "blkio.io_service_bytes_recursive",
                "8:0 Read 10\n8:0 Write 20\nTotal 30\n",
            ),
            (
                "blkio.io_serviced_recursive",
                "8:0 Read 1\n8:0 Write 2\nTotal 3\n",
            ),
        ],
    );
    touch(
        &dir("hugetlb"),
        &[("cgroup.procs", ""), ("hugetlb.1GB.limit_in_bytes", "max")],
    );
    touch(
        &dir("net_cls"),
        &[
            ("cgroup.procs", ""),
            ("net_cls.classid", "0"),
            ("net_prio.ifpriomap", ""),
        ],
    );
    (root, cg)
}

#[test]
fn v1_files_this_kernel_lacks_are_written_correctly() {
    let (_root, cg) = fake_v1();
    let r = resources(
        r#"{"memory":{"limit":67108864,"swap":134217728,"reservation":1048576,"kernel":16777216,"kernelTCP":8388608,
                      "swappiness":10,"disableOOMKiller":true,"useHierarchy":true},
            "cpu":{"shares":256,"quota":20000,"period":40000,"realtimeRuntime":5000,"realtimePeriod":10000},
            "blockIO":{"weight":700,"leafWeight":300,
                       "weightDevice":[{"major":8,"minor":0,"weight":600,"leafWeight":100}],
                       "throttleReadIOPSDevice":[{"major":8,"minor":0,"rate":50}]},
            "hugepageLimits":[{"pageSize":"1GB","limit":1073741824}],
            "network":{"classID":1048577,"priorities":[{"name":"eth0","priority":5}]}}"#,
    );
    cg.check(&r).unwrap();
    cg.create().unwrap();
    cg.apply(&r).unwrap();
    let d = |c: &str| cg.controller_dir(c).unwrap().to_path_buf();
    assert_eq!(read(&d("memory"), "memory.limit_in_bytes"), "67108864");
    assert_eq!(
        read(&d("memory"), "memory.memsw.limit_in_bytes"),
        "134217728"
    );
    assert_eq!(read(&d("memory"), "memory.soft_limit_in_bytes"), "1048576");
    assert_eq!(read(&d("memory"), "memory.kmem.limit_in_bytes"), "16777216");
    assert_eq!(
        read(&d("memory"), "memory.kmem.tcp.limit_in_bytes"),
        "8388608"
    );
    assert_eq!(read(&d("memory"), "memory.swappiness"), "10");
    assert_eq!(read(&d("memory"), "memory.oom_control"), "1");
    assert_eq!(read(&d("cpu"), "cpu.shares"), "256");
    assert_eq!(read(&d("cpu"), "cpu.cfs_quota_us"), "20000");
    assert_eq!(read(&d("cpu"), "cpu.cfs_period_us"), "40000");
    assert_eq!(read(&d("cpu"), "cpu.rt_runtime_us"), "5000");
    assert_eq!(read(&d("cpu"), "cpu.rt_period_us"), "10000");
    assert_eq!(read(&d("blkio"), "blkio.weight"), "700");
    assert_eq!(read(&d("blkio"), "blkio.leaf_weight"), "300");
    assert_eq!(read(&d("blkio"), "blkio.weight_device"), "8:0 600");
    assert_eq!(read(&d("blkio"), "blkio.leaf_weight_device"), "8:0 100");
    assert_eq!(
        read(&d("blkio"), "blkio.throttle.read_iops_device"),
        "8:0 50"
    );
    assert_eq!(
        read(&d("hugetlb"), "hugetlb.1GB.limit_in_bytes"),
        "1073741824"
    );
    assert_eq!(read(&d("net_cls"), "net_cls.classid"), "1048577");
    assert_eq!(read(&d("net_prio"), "net_prio.ifpriomap"), "eth0 5");

    // The fake file now holds what was written; give it the kernel's format.
    fs::write(
        d("memory").join("memory.oom_control"),
        "oom_kill_disable 1\nunder_oom 0\noom_kill 4\n",
    )
    .unwrap();
    let stats = cg.stats().unwrap();
    assert_eq!(stats.cpu.usage.total, 123);
    assert_eq!(stats.cpu.usage.percpu, vec![100, 23]);
    assert_eq!(stats.cpu.usage.user, 20_000_000);
    assert_eq!(stats.cpu.usage.kernel, 10_000_000);
    assert_eq!(stats.cpu.usage.percpu_user, vec![60, 20]);
    assert_eq!(stats.memory.cache, 100);
    assert_eq!(stats.memory.usage.max, 8192);
    assert_eq!(stats.blkio.io_service_bytes_recursive.len(), 2);
    assert_eq!(cg.oom_kill_count().unwrap(), 4);
}

#[test]
fn v1_unified_keys_are_refused_without_a_cgroup2_tree() {
    let (_root, cg) = fake_v1();
    let err = cg
        .check(&resources(r#"{"unified":{"memory.high":"1"}}"#))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("linux.resources.unified") && err.contains("v1 only"),
        "{err}"
    );
}

#[test]
fn v1_missing_files_are_named() {
    let (_root, cg) = fake_v1();
    // No 2MB files in the fake hugetlb hierarchy, no swap accounting once
    // memsw is gone, no burst file.
    let err = cg
        .apply(&resources(
            r#"{"hugepageLimits":[{"pageSize":"2MB","limit":0}]}"#,
        ))
        .unwrap_err()
        .to_string();
    assert!(err.contains("hugetlb.2MB.limit_in_bytes"), "{err}");
    fs::remove_file(
        cg.controller_dir("memory")
            .unwrap()
            .join("memory.memsw.limit_in_bytes"),
    )
    .unwrap();
    let err = cg
        .apply(&resources(r#"{"memory":{"limit":1048576,"swap":2097152}}"#))
        .unwrap_err()
        .to_string();
    assert!(err.contains("swapaccount"), "{err}");
    let err = cg
        .apply(&resources(r#"{"cpu":{"burst":1000}}"#))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cpu.cfs_burst_us"), "{err}");
}

#[test]
fn failed_create_removes_what_it_created() {
    let root = TempRoot::new("cgfail");
    let m = root.path();
    let good = hierarchy(m, &["memory"]);
    let bad = hierarchy(m, &["pids"]);
    fs::create_dir_all(&good.mount_point).unwrap();
    // The pids "mount point" is a file: creating below it fails.
    fs::write(&bad.mount_point, "").unwrap();
    let layout = Layout::V1 {
        hierarchies: vec![good.clone(), bad],
    };
    let cg = Cgroup::new(&layout, Some("/a/b/ctr"), "ctr").unwrap();
    let err = cg.create().unwrap_err().to_string();
    assert!(err.contains("cannot create cgroup directory"), "{err}");
    assert!(
        !good.mount_point.join("a").exists(),
        "rollback left /a behind"
    );
}
