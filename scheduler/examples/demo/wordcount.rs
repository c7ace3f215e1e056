//! `wordcount` over the shared dataset: the text is split into byte ranges, one task
//! per range; every task reads the same dataset file, which each executor fetched once.
//! The example counts words that *start* in a range, so the ranges add up exactly.

use std::time::Instant;

use anyhow::bail;
use brine_scheduler::{Cluster, Module};
use example_wordcount::{WordcountArgs, WordcountResult};

use crate::agents::Agents;

/// Ranges the dataset is split into.
const RANGES: u64 = 16;

pub async fn run(
    cluster: &Cluster,
    module: &Module,
    text: &[u8],
    agents: &Agents,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let len = text.len() as u64;
    let range = len.div_ceil(RANGES);
    let handles: Vec<_> = (0..RANGES)
        .map(|i| {
            let args = WordcountArgs {
                offset: i * range,
                len: range,
            };
            cluster.submit::<_, WordcountResult>(module, "wordcount", &args)
        })
        .collect();
    let results = futures::future::join_all(handles.into_iter().map(|h| agents.track(h))).await;
    let mut words = 0;
    let mut bytes = 0;
    for result in results {
        let result = result?;
        words += result.words;
        bytes += result.bytes;
    }
    let elapsed = started.elapsed();
    let expected = text
        .split(u8::is_ascii_whitespace)
        .filter(|w| !w.is_empty())
        .count() as u64;
    println!(
        "{RANGES} tasks counted {words} words in {bytes} bytes in {elapsed:.1?} \
         (counted here, natively: {expected})"
    );
    if words != expected || bytes != len {
        bail!("wordcount is wrong: {words} words in {bytes} bytes, expected {expected} in {len}");
    }
    println!("The totals match.");
    Ok(())
}

/// Deterministic text of about `len` bytes: words of 1 to 9 letters, some lines.
pub fn generate(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut text = Vec::with_capacity(len + 16);
    while text.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let word_len = 1 + (state % 9) as usize;
        text.extend((0..word_len).map(|i| b'a' + ((state >> (i * 5)) % 26) as u8));
        text.push(if state.is_multiple_of(11) {
            b'\n'
        } else {
            b' '
        });
    }
    text
}
