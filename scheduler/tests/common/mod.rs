//! What several scheduler tests share.
#![allow(dead_code, clippy::expect_used)]

use brine_scheduler::{Cluster, Module};
use brine_tests::bounded;

/// Runs the `sum` example over `numbers` on `cluster`, within the bound, and returns
/// its total.
pub async fn sum(cluster: &Cluster, numbers: &str) -> i64 {
    let sum = Module::from_bytes(brine_tests::example("sum"));
    bounded(
        "sum",
        cluster.submit::<String, i64>(&sum, "sum", &numbers.to_owned()),
    )
    .await
    .expect("sum succeeds")
}
