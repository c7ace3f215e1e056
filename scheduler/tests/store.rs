//! The state store's file (`src/store/journal.rs`) against crashes of real processes,
//! torn last records and corruption.
//!
//! The store is private to the library, so this test compiles its file layer, the very
//! source file, into itself. Child processes are this test binary run again with
//! [`ROLE`] set (see [`child`]); they report what they did on stderr, one line at a
//! time, and the parent acts on those reports: no sleeps.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../src/store/journal.rs"]
mod journal;

use std::io::{BufRead, BufReader, Lines, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};

use journal::{Claimed, Durability, Journal, StoreError};
use serde::{Deserialize, Serialize};

/// The child's role; unset in the parent.
const ROLE: &str = "BRINE_STORE_TEST_ROLE";
/// The state file the child works on.
const FILE: &str = "BRINE_STORE_TEST_FILE";
/// What starts the child's report lines.
const SAYS: &str = "brine-store-child:";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Rec {
    n: u64,
    /// Lines of many lengths, with escapes and multi-byte characters to cut through.
    pad: String,
}

fn rec(n: u64) -> Rec {
    Rec {
        n,
        pad: "\u{e9}\"\\\u{2713} ".repeat((n % 23) as usize),
    }
}

/// The records `Claimed::open` read, without their positions.
fn values(records: Vec<(journal::Position, Rec)>) -> Vec<Rec> {
    records.into_iter().map(|(_, r)| r).collect()
}

/// Opens the state file as a scheduler does: reads it and rewrites it compacted.
fn reopen(path: &Path) -> (Journal, Vec<Rec>) {
    let (claimed, records) = Claimed::open::<Rec>(path).unwrap();
    let records = values(records);
    (claimed.compact(&records).unwrap(), records)
}

fn write(path: &Path, records: &[Rec]) {
    let (claimed, _) = Claimed::open::<Rec>(path).unwrap();
    drop(claimed.compact(records).unwrap());
}

// The child processes.

/// Not a test of its own: what a child process does, as [`ROLE`] says. Without it (a
/// normal test run), nothing.
#[test]
fn child() {
    let (Ok(role), Ok(file)) = (std::env::var(ROLE), std::env::var(FILE)) else {
        return;
    };
    let path = PathBuf::from(file);
    match role.as_str() {
        "append" => append_until_killed(&path),
        "hold" => hold_until_killed(&path),
        "tear" => tear_and_wait(&path),
        other => panic!("unknown child role {other}"),
    }
}

/// Reports to the parent; stops the child when the parent is gone.
fn say(what: &str) {
    let line = format!("{SAYS} {what}\n");
    if std::io::stderr().lock().write_all(line.as_bytes()).is_err() {
        std::process::exit(1);
    }
}

/// Blocks until the parent closes our stdin (or kills us first).
fn wait_for_parent() {
    let _ = std::io::stdin().read(&mut [0]);
}

/// Carries on from the records there, as a scheduling loop would: turns of three
/// records and a flush, saying after each how many records are in the file.
fn append_until_killed(path: &Path) {
    let (mut journal, records) = reopen(path);
    let mut n = records.len() as u64;
    say(&format!("opened {n}"));
    loop {
        for _ in 0..3 {
            // Now and then one that is synced at once, as an executor's record is.
            let durability = if n.is_multiple_of(16) {
                Durability::Now
            } else {
                Durability::Soon
            };
            journal.append(&rec(n), durability);
            n += 1;
        }
        journal.flush();
        say(&format!("appended {n}"));
    }
}

fn hold_until_killed(path: &Path) {
    let (journal, records) = reopen(path);
    say(&format!("holding {}", records.len()));
    wait_for_parent();
    drop(journal);
}

/// Appends five records, then half of a sixth as a crash in the middle of an append
/// would leave it, and waits to be killed.
fn tear_and_wait(path: &Path) {
    let (mut journal, _) = reopen(path);
    for n in 0..5 {
        journal.append(&rec(n), Durability::Soon);
    }
    let line = serde_json::to_vec(&rec(5)).unwrap();
    let mut raw = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    raw.write_all(&line[..line.len() / 2]).unwrap();
    say("torn");
    wait_for_parent();
    drop(journal);
}

/// A child process, killed (SIGKILL) when dropped if it is still alive.
struct Kid {
    child: Child,
    says: Lines<BufReader<ChildStderr>>,
}

impl Kid {
    fn spawn(role: &str, path: &Path) -> Kid {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child", "--nocapture", "--test-threads=1"])
            .env(ROLE, role)
            .env(FILE, path)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let says = BufReader::new(child.stderr.take().unwrap()).lines();
        Kid { child, says }
    }

    /// What the child says next after `what` (a report of its own; its other output,
    /// a panic's say, is shown if it ends first).
    fn next(&mut self, what: &str) -> String {
        let mut other = Vec::new();
        for line in self.says.by_ref() {
            let line = line.unwrap();
            match line.strip_prefix(SAYS).map(str::trim) {
                Some(said) => {
                    let rest = said.strip_prefix(what);
                    return rest
                        .unwrap_or_else(|| panic!("the child said {said:?}, not {what:?}"))
                        .trim()
                        .to_owned();
                }
                None => other.push(line),
            }
        }
        panic!(
            "the child ended before saying {what:?}: {}",
            other.join("\n")
        );
    }

    fn next_number(&mut self, what: &str) -> u64 {
        self.next(what).parse().unwrap()
    }

    /// SIGKILL, and wait until it is gone (and its lock with it).
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        self.kill();
    }
}

// The tests.

#[test]
fn a_killed_writer_loses_nothing_it_appended() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let mut kept = 0;
    // Each round: a child carries on from the file the last one left, and is killed
    // after so many turns, wherever it then is (it does not wait for us).
    for turns in [0, 1, 2, 5, 30, 300, 1000] {
        let mut kid = Kid::spawn("append", &path);
        assert_eq!(kid.next_number("opened"), kept, "the child read it all");
        let mut appended = kept;
        for _ in 0..turns {
            appended = kid.next_number("appended");
        }
        kid.kill();
        let (_, records) =
            Claimed::open::<Rec>(&path).unwrap_or_else(|e| panic!("after {turns} turns: {e}"));
        let records = values(records);
        let expected: Vec<Rec> = (0..records.len() as u64).map(rec).collect();
        assert_eq!(records, expected, "every record, in order, once");
        assert!(
            records.len() as u64 >= appended,
            "{appended} records appended, {} in the file",
            records.len()
        );
        kept = records.len() as u64;
    }
}

#[test]
fn a_record_torn_by_a_crash_is_dropped_and_the_file_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let mut kid = Kid::spawn("tear", &path);
    kid.next("torn");
    kid.kill();
    let torn = std::fs::read(&path).unwrap();
    assert_ne!(torn.last(), Some(&b'\n'), "the child left half a record");
    let (mut journal, records) = reopen(&path);
    assert_eq!(records, (0..5).map(rec).collect::<Vec<_>>());
    journal.append(&rec(5), Durability::Soon);
    drop(journal);
    let (_, records) = Claimed::open::<Rec>(&path).unwrap();
    assert_eq!(values(records), (0..6).map(rec).collect::<Vec<_>>());
}

#[test]
fn a_second_scheduler_is_refused_while_the_first_lives() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    write(&path, &[rec(0), rec(1)]);
    let mut kid = Kid::spawn("hold", &path);
    assert_eq!(kid.next_number("holding"), 2);
    let err = Claimed::open::<Rec>(&path).unwrap_err();
    match &err {
        StoreError::Locked { path: locked } => assert_eq!(locked, &path),
        other => panic!("not refused as locked: {other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()) && message.contains("another scheduler"),
        "{message}"
    );
    // Killed, it unlocks nothing itself: its lock goes with its process.
    kid.kill();
    let (_, records) = Claimed::open::<Rec>(&path).unwrap();
    assert_eq!(values(records), [rec(0), rec(1)]);
}

#[test]
fn a_second_open_in_the_same_process_is_refused_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let (journal, _) = reopen(&path);
    assert!(matches!(
        Claimed::open::<Rec>(&path),
        Err(StoreError::Locked { .. })
    ));
    drop(journal);
    let (claimed, _) = Claimed::open::<Rec>(&path).unwrap();
    assert!(matches!(
        Claimed::open::<Rec>(&path),
        Err(StoreError::Locked { .. })
    ));
    drop(claimed);
}

#[test]
fn a_cut_anywhere_in_the_last_record_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let records: Vec<Rec> = (18..=22).map(rec).collect();
    write(&path, &records);
    let full = std::fs::read(&path).unwrap();
    let last = full[..full.len() - 1]
        .iter()
        .rposition(|&b| b == b'\n')
        .unwrap()
        + 1;
    for cut in last..full.len() {
        // A machine crash may leave zeros where the rest of the record was to be.
        for zeros in [0, 1, 4096] {
            let mut bytes = full[..cut].to_vec();
            bytes.resize(cut + zeros, 0);
            std::fs::write(&path, &bytes).unwrap();
            // Only the `\n` missing: the record is whole, and kept.
            let kept = if cut == full.len() - 1 { 5 } else { 4 };
            let (claimed, read) = Claimed::open::<Rec>(&path)
                .unwrap_or_else(|e| panic!("cut at {cut}, {zeros} zeros: {e}"));
            assert_eq!(values(read), records[..kept], "cut at {cut}, {zeros} zeros");
            // What comes next follows the records kept, not the torn bytes.
            let mut journal = claimed.compact(&records[..kept]).unwrap();
            journal.append(&rec(99), Durability::Soon);
            drop(journal);
            let (_, again) = Claimed::open::<Rec>(&path).unwrap();
            assert_eq!(values(again), [&records[..kept], &[rec(99)]].concat());
        }
    }
}

/// Something done to a file's bytes.
type Damage = Box<dyn Fn(&mut Vec<u8>)>;

#[test]
fn damage_in_the_middle_is_refused_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let records: Vec<Rec> = (0..6).map(rec).collect();
    write(&path, &records);
    let full = std::fs::read(&path).unwrap();
    let starts: Vec<usize> = std::iter::once(0)
        .chain(
            full.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .take(records.len())
        .collect();
    // Every line but the last (whose damage is a torn last record, or garbage).
    for (index, &start) in starts[..starts.len() - 1].iter().enumerate() {
        let end = starts[index + 1] - 1; // its `\n`
        let damages: [(&str, Damage); 4] = [
            ("a byte changed", Box::new(move |b| b[start] = b'#')),
            (
                "cut short, then later records appended",
                Box::new(move |b| {
                    b.drain(start + (end - start) / 2..end);
                }),
            ),
            ("a block of zeros", Box::new(move |b| b[start..end].fill(0))),
            (
                "zeros over its end too",
                Box::new(move |b| b[start..=end].fill(0)),
            ),
        ];
        for (what, damage) in damages {
            let mut bytes = full.clone();
            damage(&mut bytes);
            std::fs::write(&path, &bytes).unwrap();
            let err = Claimed::open::<Rec>(&path).unwrap_err();
            let StoreError::Corrupt { offset, line, .. } = &err else {
                panic!("line {}, {what}: {err}", index + 1);
            };
            assert_eq!((*offset, *line), (start as u64, index + 1), "{what}: {err}");
            let message = err.to_string();
            assert!(
                message.contains(&path.display().to_string())
                    && message.contains(&format!("corrupt at byte {start} (line {})", index + 1)),
                "{message}"
            );
            assert_eq!(
                std::fs::read(&path).unwrap(),
                bytes,
                "a refused file is left as it is"
            );
        }
    }
}
