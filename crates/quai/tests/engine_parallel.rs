//! Concurrent quai processes on one state root: 20 parallel `run -d`, then
//! 20 parallel `rm -f`, with no corruption and nothing left.

mod engine_support;

use std::sync::Arc;

use engine_support::Quai;

#[test]
fn twenty_parallel_runs_and_removals() {
    let q = Arc::new(Quai::new("parallel"));
    let marker = q.tmp.path().display().to_string();
    let runs: Vec<_> = (0..20)
        .map(|i| {
            let q = Arc::clone(&q);
            let script = format!("sleep 1000; : {marker}");
            std::thread::spawn(move || {
                let name = format!("p{i}");
                let out = q.run(&["run", "-d", "--name", &name, "busybox", "sh", "-c", &script]);
                assert!(
                    out.status.success(),
                    "run {name}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            })
        })
        .collect();
    let mut ids: Vec<String> = runs.into_iter().map(|t| t.join().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20);
    let listed = q.ok(&["ps", "-q", "--no-trunc"]);
    let mut listed: Vec<String> = listed.lines().map(String::from).collect();
    listed.sort();
    assert_eq!(listed, ids);
    for id in &ids {
        assert_eq!(q.inspect(id, "{{.State.Status}}"), "running");
    }
    // Everyone races for the same name: exactly one wins.
    let racers: Vec<_> = (0..5)
        .map(|_| {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                q.run(&["create", "--name", "contested", "busybox", "true"])
                    .status
                    .success()
            })
        })
        .collect();
    let winners = racers
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|w| *w)
        .count();
    assert_eq!(winners, 1);
    let removals: Vec<_> = ids
        .iter()
        .cloned()
        .chain(std::iter::once("contested".to_string()))
        .map(|id| {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                let out = q.run(&["rm", "-f", &id]);
                assert!(
                    out.status.success(),
                    "rm -f {id}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            })
        })
        .collect();
    for t in removals {
        t.join().unwrap();
    }
    q.assert_clean();
    // The database is intact.
    let db = quai_db::Db::open(&q.root().join("quai.db")).unwrap();
    let check: String = db
        .conn()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}
