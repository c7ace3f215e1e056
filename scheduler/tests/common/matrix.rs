//! The fault matrix's shared half: a batch with one fault in the middle, the checks
//! every case makes, and the table the rows make (see `faults.rs`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use brine_scheduler::{Cluster, TaskError};
use brine_tests::bounded;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};

use super::module;

/// Closures per batch, and how long each spins.
pub const JOBS: usize = 300;
pub const SPIN_MS: u64 = 20;
/// Results in before the fault strikes.
pub const BEFORE_FAULT: usize = JOBS / 5;

/// One row of the matrix.
#[derive(Debug, Serialize, Deserialize)]
pub struct Row {
    pub case: String,
    /// What the fault did and how Brine answered, as this run saw it.
    pub happened: String,
    /// From the fault to the last re-run job resolved (0 when none ran again).
    pub recovery_ms: u64,
    pub lost: usize,
    /// Jobs that needed more than one attempt.
    pub ran_again: usize,
    /// Answers for attempts already written off: work that ran to completion twice.
    pub completed_twice: u64,
}

/// How one batch went.
pub struct Outcome {
    results: HashMap<usize, Result<u64, TaskError>>,
    fault_at: Instant,
    /// Per re-run job: when it resolved.
    reruns: Vec<Instant>,
}

/// The cases take turns: each reports how long recovery took, which would measure
/// its neighbours if they ran side by side on two cores.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs a batch of `JOBS` spinning closures on `cluster`, calls `fault` once
/// `BEFORE_FAULT` results are in, and collects every result.
pub async fn batch_with_fault<F: Future<Output = ()>>(
    cluster: &Cluster,
    fault: impl FnOnce() -> F,
) -> Outcome {
    let failures = module("failures");
    let mut pending: FuturesUnordered<_> = (0..JOBS)
        .map(|index| {
            let handle = cluster.submit::<u64, u64>(&failures, "spin", &SPIN_MS);
            let watch = handle.watch().expect("a submitted handle has a status");
            async move {
                let result = handle.await;
                let attempts = watch.borrow().attempts;
                (index, result, attempts, Instant::now())
            }
        })
        .collect();
    let mut results = HashMap::new();
    let mut reruns = Vec::new();
    let mut record = |(index, result, attempts, at): (usize, _, u32, Instant),
                      results: &mut HashMap<_, _>| {
        assert!(
            results.insert(index, result).is_none(),
            "job {index} resolved twice"
        );
        if attempts > 1 {
            reruns.push(at);
        }
    };
    while results.len() < BEFORE_FAULT {
        let next = bounded("the results before the fault", pending.next()).await;
        record(next.expect("a result"), &mut results);
    }
    let fault_at = Instant::now();
    fault().await;
    while let Some(next) = bounded("the batch after the fault", pending.next()).await {
        record(next, &mut results);
    }
    Outcome {
        results,
        fault_at,
        reruns,
    }
}

/// The checks every case makes, and its row.
pub async fn settle(cluster: &Cluster, case: &str, happened: String, outcome: Outcome) -> Row {
    let Outcome {
        results,
        fault_at,
        reruns,
    } = outcome;
    assert_eq!(results.len(), JOBS, "{case}: every job resolved");
    // `spin`'s result is how many times it looped in its 20 ms: any count is right
    // (0 too, for a thread descheduled past the 20 ms), an error is not.
    let failed: Vec<_> = results.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(failed.is_empty(), "{case}: failed jobs {failed:?}");
    let status = cluster.status().await.expect("status");
    assert_eq!(status.jobs.succeeded as usize, JOBS, "{case}: {status:?}");
    assert_eq!(
        status.jobs.pending + status.jobs.staging + status.jobs.running,
        0,
        "{case}: nothing left on the books"
    );
    let recovery = reruns
        .iter()
        .map(|at| at.saturating_duration_since(fault_at))
        .max()
        .unwrap_or_default();
    let row = Row {
        case: case.into(),
        happened,
        recovery_ms: recovery.as_millis() as u64,
        lost: JOBS - results.len(),
        ran_again: reruns.len(),
        completed_twice: status.jobs.completed_twice,
    };
    publish(&row);
    row
}

fn matrix_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fault-matrix")
}

/// Writes `row` and renders the table from every row written so far.
pub fn publish(row: &Row) {
    let dir = matrix_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let json = serde_json::to_vec_pretty(row).unwrap();
    std::fs::write(dir.join(format!("{}.json", row.case)), json).unwrap();
    let mut rows: Vec<Row> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
        .collect();
    rows.sort_by(|a, b| a.case.cmp(&b.case));
    let mut table = String::from(
        "| case | what happened | recovery | jobs lost | jobs run again | run twice to completion |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    for r in &rows {
        table += &format!(
            "| {} | {} | {:.2} s | {} | {} | {} |\n",
            r.case,
            r.happened,
            r.recovery_ms as f64 / 1000.0,
            r.lost,
            r.ran_again,
            r.completed_twice
        );
    }
    let tmp = dir.join("FAULTS.md.tmp");
    std::fs::write(&tmp, table).unwrap();
    std::fs::rename(tmp, dir.join("FAULTS.md")).unwrap();
    eprintln!("{row:?}");
}
