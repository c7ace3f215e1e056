//! The store's pure parts (lines, torn tails, records), and the store on files in
//! this process. Crashes of real processes are in `tests/store.rs`.

use super::journal::{self, Claimed, Lines, Position, Tail};
use super::*;
use brine_proto::payload::ErrorKind;
use serde_json::{Value, json};

fn key(n: u8) -> JobKey {
    JobKey([n; 16])
}

#[test]
fn state_survives_reopening_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.jsonl");
    {
        let (mut store, state) = Store::open(&path).unwrap();
        assert_eq!(state, State::default());
        store.append(&Record::Framework { id: "fw-1".into() });
        store.append(&Record::Executor {
            agent: "a1".into(),
            id: "brine-a1-1".into(),
            generation: 1,
        });
        store.append(&Record::ExecutorGone {
            agent: "a1".into(),
            id: "brine-a1-1".into(),
        });
        store.append(&Record::Executor {
            agent: "a1".into(),
            id: "brine-a1-2".into(),
            generation: 2,
        });
        store.append(&Record::Launched {
            job: key(1),
            task: "t1".into(),
            agent: "a1".into(),
            attempt: 1,
        });
        store.append(&Record::Launched {
            job: key(2),
            task: "t2".into(),
            agent: "a1".into(),
            attempt: 2,
        });
        store.append(&Record::finished(key(1), &Ok(vec![1, 2, 3])));
        let failure = TaskError::Guest {
            kind: ErrorKind::Trap,
            message: "unreachable".into(),
            stderr_tail: String::new(),
        };
        store.append(&Record::finished(key(2), &Err(failure)));
        store.flush();
    }
    let (_, first) = Store::open(&path).unwrap();
    assert_eq!(first.framework_id.as_deref(), Some("fw-1"));
    assert_eq!(
        first.executors.get("a1"),
        Some(&("brine-a1-2".to_string(), 2))
    );
    assert_eq!(first.generations.get("a1"), Some(&2));
    assert_eq!(first.jobs[&key(1)].outcome, Some(Ok(vec![1, 2, 3])));
    assert!(matches!(
        first.jobs[&key(2)].outcome,
        Some(Err(TaskError::Guest {
            kind: ErrorKind::Trap,
            ..
        }))
    ));
    assert_eq!(
        first.jobs[&key(2)].task,
        Some(("t2".to_string(), "a1".to_string(), 2))
    );
    // Opening compacted the file; the state read back is the same.
    let (_, second) = Store::open(&path).unwrap();
    assert_eq!(first, second);
}

#[test]
fn a_cut_off_last_line_is_ignored_but_garbage_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.jsonl");
    std::fs::write(
        &path,
        "{\"record\":\"framework\",\"id\":\"fw\"}\n{\"record\":\"laun",
    )
    .unwrap();
    let (_, state) = Store::open(&path).unwrap();
    assert_eq!(state.framework_id.as_deref(), Some("fw"));

    std::fs::write(
        &path,
        "nonsense\n{\"record\":\"framework\",\"id\":\"fw\"}\n",
    )
    .unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt {
                offset: 0,
                line: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("byte 0 (line 1)"), "{err}");
    // Refused, not rewritten.
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "nonsense\n{\"record\":\"framework\",\"id\":\"fw\"}\n"
    );
}

fn at(offset: u64, line: usize) -> Position {
    Position { offset, line }
}

#[test]
fn a_file_splits_into_whole_lines_and_a_tail() {
    assert_eq!(
        journal::split(b""),
        Lines {
            whole: vec![],
            tail: None
        }
    );
    assert_eq!(
        journal::split(b"ab\n\ncd\nef"),
        Lines {
            whole: vec![
                (at(0, 1), &b"ab"[..]),
                (at(3, 2), &b""[..]),
                (at(4, 3), &b"cd"[..])
            ],
            tail: Some((at(7, 4), &b"ef"[..])),
        }
    );
    assert_eq!(journal::split(b"ab\n").tail, None);
}

fn sample_records() -> Vec<Record> {
    vec![
        Record::Framework {
            id: "fw-\u{e9}\"1\"".into(),
        },
        Record::Executor {
            agent: "a1".into(),
            id: "brine-a1-12".into(),
            generation: 12,
        },
        Record::Launched {
            job: key(7),
            task: "t-7".into(),
            agent: "a1".into(),
            attempt: 3,
        },
        Record::finished(key(7), &Ok(vec![0, 1, 2, 255])),
        Record::finished(
            key(8),
            &Err(TaskError::Guest {
                kind: ErrorKind::Trap,
                message: "unreachable \u{2713}\n".into(),
                stderr_tail: "tail".into(),
            }),
        ),
        Record::ExecutorGone {
            agent: "a1".into(),
            id: "brine-a1-12".into(),
        },
    ]
}

#[test]
fn every_cut_of_every_record_is_torn_and_the_whole_record_is_not() {
    for record in sample_records() {
        let line = serde_json::to_vec(&record).unwrap();
        for cut in 1..line.len() {
            let torn = &line[..cut];
            assert_eq!(
                journal::tail::<Record>(torn),
                Tail::Torn,
                "{}",
                String::from_utf8_lossy(torn)
            );
            // A machine crash can leave zeros after the part that made it.
            let mut zeroed = torn.to_vec();
            zeroed.extend([0; 100]);
            assert_eq!(journal::tail::<Record>(&zeroed), Tail::Torn);
        }
        assert_eq!(journal::tail::<Record>(&line), Tail::Whole(record.clone()));
    }
}

#[test]
fn a_tail_that_no_crash_leaves_is_garbage() {
    assert_eq!(journal::tail::<Record>(b""), Tail::Blank);
    assert_eq!(journal::tail::<Record>(b"  \t"), Tail::Blank);
    assert_eq!(journal::tail::<Record>(&[0; 4096]), Tail::Torn);
    for garbage in [
        &b"nonsense"[..],
        b"{\"record\":\"framework\"}",
        b"{\"record\":\"framework\",\"id\":\"fw\"}}",
        b"{\"record\":\"launched\",\"job\":\"not hex\",\"task\":\"t\",\"agent\":\"a\",\"attempt\":1}",
        b"\0\0\0{\"record\":\"framework\",\"id\":\"fw\"}",
    ] {
        assert!(
            matches!(journal::tail::<Record>(garbage), Tail::Garbage(_)),
            "{}",
            String::from_utf8_lossy(garbage)
        );
    }
}

#[test]
fn damage_before_the_last_line_is_refused_where_it_starts() {
    let path = Path::new("/state/file");
    let good = b"{\"a\":1}\n";
    let cases: [(&[u8], u64, &str); 4] = [
        // A torn write that later appends followed.
        (b"{\"a\":1}\n{\"a\":\n{\"a\":3}\n", 8, "EOF while parsing"),
        // A block lost in the middle.
        (b"{\"a\":1}\n\0\0\0\0{\"a\":3}\n", 8, "NUL bytes"),
        (b"{\"a\":1}\n{\"a\":1}\n#oops\n", 16, "expected value"),
        // Garbage after the last newline is not a torn write either.
        (
            b"{\"a\":1}\n{\"a\":1}\n#oops",
            16,
            "neither a record nor one cut short",
        ),
    ];
    for (contents, offset, why) in cases {
        let err = journal::parse::<Value>(path, contents).unwrap_err();
        let StoreError::Corrupt {
            offset: at,
            line,
            ref reason,
            ..
        } = err
        else {
            panic!("{err}");
        };
        assert_eq!((at, line), (offset, offset as usize / good.len() + 1));
        assert!(reason.contains(why), "{reason}");
        let message = err.to_string();
        assert!(
            message.contains("/state/file") && message.contains(&format!("byte {offset} ")),
            "{message}"
        );
    }
    // Blank lines are nothing; a torn last line is dropped.
    let records = journal::parse::<Value>(path, b"{\"a\":1}\n\n  \n{\"a\":2}\n{\"a\"").unwrap();
    assert_eq!(
        records,
        vec![(at(0, 1), json!({"a": 1})), (at(12, 4), json!({"a": 2}))]
    );
}

#[test]
fn a_record_that_makes_no_sense_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let key = key(9);
    for (bad, why) in [
        (
            format!("{{\"record\":\"finished\",\"job\":\"{key}\",\"result\":\"!!\"}}"),
            "not base64",
        ),
        (
            format!("{{\"record\":\"finished\",\"job\":\"{key}\"}}"),
            "neither result nor error",
        ),
    ] {
        let first = "{\"record\":\"framework\",\"id\":\"fw\"}\n";
        let contents = format!("{first}{bad}\n");
        std::fs::write(&path, &contents).unwrap();
        let err = Store::open(&path).unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt { offset, line: 2, ref reason, .. }
                if offset == first.len() as u64 && reason.contains(why)),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), contents);
    }
}

#[test]
fn a_second_open_of_an_open_store_is_refused_until_it_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let (mut store, _) = Store::open(&path).unwrap();
    store.append(&Record::Framework { id: "fw".into() });
    let err = Store::open(&path).unwrap_err();
    match &err {
        StoreError::Locked { path: locked } => assert_eq!(locked, &path),
        other => panic!("{other}"),
    }
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    drop(store);
    let (_, state) = Store::open(&path).unwrap();
    assert_eq!(state.framework_id.as_deref(), Some("fw"));
}

#[test]
fn a_removed_store_is_gone_and_unlocked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let (mut store, _) = Store::open(&path).unwrap();
    store.append(&Record::Framework { id: "fw".into() });
    store.remove();
    assert!(!path.exists());
    let (_, state) = Store::open(&path).unwrap();
    assert_eq!(state, State::default());
}

#[test]
fn compaction_leaves_only_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("state.jsonl");
    let (mut store, _) = Store::open(&path).unwrap();
    store.append(&Record::Framework { id: "fw".into() });
    drop(store);
    let _ = Store::open(&path).unwrap();
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("state.jsonl")]);
}

#[test]
fn only_identity_records_are_synced_at_once() {
    let durable: Vec<bool> = sample_records()
        .iter()
        .map(|r| r.durability() == Durability::Now)
        .collect();
    assert_eq!(durable, [true, true, false, false, false, false]);
}

#[test]
fn records_reach_the_disk_now_or_after_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let (claimed, _) = Claimed::open::<Value>(&path).unwrap();
    let mut journal = claimed.compact::<Value>(&[]).unwrap();
    journal.append(&json!({"n": 1}), Durability::Now);
    let first = std::fs::metadata(&path).unwrap().len();
    assert_eq!(journal.synced_len(), first);
    journal.append(&json!({"n": 2}), Durability::Soon);
    let second = std::fs::metadata(&path).unwrap().len();
    assert!(second > first);
    journal.flush();
    journal.wait_synced();
    assert_eq!(journal.synced_len(), second);
    drop(journal);
    let (_, records) = Claimed::open::<Value>(&path).unwrap();
    let values: Vec<Value> = records.into_iter().map(|(_, r)| r).collect();
    assert_eq!(values, [json!({"n": 1}), json!({"n": 2})]);
}
