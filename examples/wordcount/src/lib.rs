//! `wordcount`: counts the words that *start* in a byte range of the shared dataset.
//!
//! A word starts at byte `i` when byte `i` is not ASCII whitespace and `i == 0` or byte
//! `i - 1` is. Counting starts rather than words makes the counts of the ranges of any
//! partition of the dataset add up exactly to the whole's: a word that straddles a
//! boundary belongs to the range it starts in.

use serde::{Deserialize, Serialize};

/// How many bytes are read from the dataset at a time.
pub const CHUNK: usize = 64 * 1024;

/// Arguments of `wordcount`: the byte range `offset..offset + len` of the dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WordcountArgs {
    /// First byte of the range.
    pub offset: u64,
    /// Length of the range in bytes (clipped to the dataset's end).
    pub len: u64,
}

/// Result of `wordcount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WordcountResult {
    /// Words starting in the range.
    pub words: u64,
    /// Bytes of the range that exist in the dataset (`len`, clipped to its end).
    pub bytes: u64,
}

/// Task `wordcount`: [`WordcountArgs`] → [`WordcountResult`].
#[brine_guest::task]
pub fn wordcount(args: WordcountArgs) -> WordcountResult {
    let end = args.offset.saturating_add(args.len);
    // Whether a word can start at `offset` depends on the byte before it.
    let mut previous_is_space = match args.offset.checked_sub(1) {
        None => true,
        Some(before) => {
            let mut byte = [0u8];
            // Past the end there is nothing to count anyway.
            brine_guest::dataset::read_at(before, &mut byte) == 0 || is_space(byte[0])
        }
    };
    let mut result = WordcountResult::default();
    let reader = brine_guest::dataset::reader(args.offset..end);
    let total = reader.remaining().max(1) as f64;
    reader.for_each_chunk(CHUNK, |_, chunk| {
        let (words, last_is_space) = count_word_starts(previous_is_space, chunk);
        result.words += words;
        result.bytes += chunk.len() as u64;
        previous_is_space = last_is_space;
        // One host call per 64 KiB chunk costs next to nothing.
        brine_guest::progress(result.bytes as f64 / total);
    });
    result
}

/// Counts word starts in `bytes`, given whether the byte before them was whitespace;
/// returns the count and whether the last byte is whitespace (for the next chunk).
pub fn count_word_starts(mut previous_is_space: bool, bytes: &[u8]) -> (u64, bool) {
    let mut words = 0;
    for &byte in bytes {
        let space = is_space(byte);
        words += u64::from(previous_is_space && !space);
        previous_is_space = space;
    }
    (words, previous_is_space)
}

/// ASCII whitespace, as [`u8::is_ascii_whitespace`] defines it.
pub fn is_space(byte: u8) -> bool {
    byte.is_ascii_whitespace()
}

// Host tests: they use the host stand-in for the `brine` imports.
#[cfg(all(test, not(target_arch = "wasm32")))]
#[allow(clippy::unwrap_used)]
mod tests {
    use brine_guest::{Encoding, testing};

    use super::*;

    const TEXT: &[u8] = b"  the quick\tbrown fox\n\njumps over  the lazy dog ";

    fn count(offset: u64, len: u64) -> WordcountResult {
        wordcount(WordcountArgs { offset, len })
    }

    #[test]
    fn whole_text() {
        testing::set_dataset(TEXT);
        assert_eq!(
            count(0, TEXT.len() as u64),
            WordcountResult {
                words: 9,
                bytes: TEXT.len() as u64
            }
        );
        assert_eq!(count(0, u64::MAX).words, 9);
    }

    #[test]
    fn words_belong_to_the_range_they_start_in() {
        testing::set_dataset(&b"hello world"[..]);
        assert_eq!(count(0, 3), WordcountResult { words: 1, bytes: 3 });
        assert_eq!(count(3, 5), WordcountResult { words: 1, bytes: 5 });
        assert_eq!(count(1, 5), WordcountResult { words: 0, bytes: 5 });
        assert_eq!(count(5, 1), WordcountResult { words: 0, bytes: 1 });
        assert_eq!(count(6, 1), WordcountResult { words: 1, bytes: 1 });
        assert_eq!(count(8, 100), WordcountResult { words: 0, bytes: 3 });
        assert_eq!(count(11, 5), WordcountResult { words: 0, bytes: 0 });
        assert_eq!(count(1000, 5), WordcountResult { words: 0, bytes: 0 });
    }

    #[test]
    fn every_partition_adds_up() {
        testing::set_dataset(TEXT);
        let len = TEXT.len() as u64;
        let whole = count(0, len).words;
        // All two- and three-way splits.
        for a in 0..=len {
            assert_eq!(
                count(0, a).words + count(a, len - a).words,
                whole,
                "split at {a}"
            );
            for b in a..=len {
                let parts = count(0, a).words + count(a, b - a).words + count(b, len - b).words;
                assert_eq!(parts, whole, "split at {a} and {b}");
            }
        }
    }

    #[test]
    fn large_input_spans_chunks() {
        // Words of varying length so boundaries fall mid-word and mid-gap.
        let mut text = Vec::new();
        let mut expected = 0;
        for i in 0..60_000u32 {
            text.extend(std::iter::repeat_n(b'x', (i % 7 + 1) as usize));
            text.extend(std::iter::repeat_n(b' ', (i % 3 + 1) as usize));
            expected += 1;
        }
        testing::set_dataset(text.clone());
        let len = text.len() as u64;
        assert!(len > 4 * CHUNK as u64);
        assert_eq!(count(0, len).words, expected);
        let parts: u64 = (0..len)
            .step_by(99_991)
            .map(|at| count(at, 99_991).words)
            .sum();
        assert_eq!(parts, expected);
        assert!(!testing::take_progress().is_empty());
    }

    #[test]
    fn through_the_entry() {
        testing::set_dataset(TEXT);
        let args = WordcountArgs { offset: 0, len: 11 };
        let result: WordcountResult =
            testing::run(__brine_task_wordcount, &args, Encoding::Postcard).unwrap();
        assert_eq!(
            result,
            WordcountResult {
                words: 2,
                bytes: 11
            }
        );
        assert_eq!(
            testing::call(
                __brine_task_wordcount,
                br#"{"offset":2,"len":9}"#,
                Encoding::Json
            ),
            testing::Outcome::Ok(br#"{"words":2,"bytes":9}"#.to_vec())
        );
    }

    #[test]
    fn no_dataset_counts_nothing() {
        testing::clear_dataset();
        assert_eq!(count(0, 100), WordcountResult::default());
    }
}
