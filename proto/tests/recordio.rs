//! RecordIO: property tests of the decoder, and the real HTTP chunk boundaries of the
//! Mesos 1.12 captures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use brine_proto::recordio::{self, Decoder, RecordIoError};
use bytes::Bytes;
use common::{STREAMS, dechunk, parse_http};
use proptest::prelude::*;

fn frame(records: &[Vec<u8>]) -> Vec<u8> {
    records.iter().flat_map(|r| recordio::encode(r)).collect()
}

/// Cuts `stream` at the given (sorted, deduplicated) fractions of its length.
fn cut(stream: &[u8], cuts: &[prop::sample::Index]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    let mut chunks = Vec::new();
    let mut start = 0;
    for point in points.into_iter().chain([stream.len()]) {
        chunks.push(stream[start..point].to_vec());
        start = point;
    }
    chunks
}

/// Feeds chunks one by one, pulling records after each, as a client reading a body would.
fn feed(decoder: &mut Decoder, chunks: &[Vec<u8>]) -> Result<Vec<Bytes>, RecordIoError> {
    let mut records = Vec::new();
    for chunk in chunks {
        decoder.push(chunk);
        while let Some(record) = decoder.next_record()? {
            records.push(record);
        }
    }
    Ok(records)
}

fn records_strategy() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..4),
            prop::collection::vec(any::<u8>(), 0..300),
            // Payloads that look like framing.
            prop::collection::vec(prop::sample::select(b"0123456789\n".to_vec()), 0..40),
        ],
        0..20,
    )
}

/// Bytes that are mostly framing characters, so that the length-prefix paths get hit.
fn framing_garbage() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(b"0123456789".to_vec()),
            2 => Just(b'\n'),
            1 => any::<u8>(),
        ],
        0..400,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip_under_any_chunking(
        records in records_strategy(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let stream = frame(&records);
        let mut decoder = Decoder::new();
        let decoded = feed(&mut decoder, &cut(&stream, &cuts)).unwrap();
        prop_assert_eq!(decoded, records);
        prop_assert!(decoder.finish().is_ok());
        prop_assert_eq!(decoder.buffered_len(), 0);
    }

    #[test]
    fn truncation_is_told_apart_from_a_clean_end(
        records in records_strategy(),
        at in any::<prop::sample::Index>(),
    ) {
        let stream = frame(&records);
        let end = at.index(stream.len() + 1);
        // Where each record ends in the stream.
        let mut boundaries = vec![0];
        for record in &records {
            let last = *boundaries.last().unwrap();
            boundaries.push(last + recordio::encode(record).len());
        }
        let mut decoder = Decoder::new();
        let decoded = decoder.decode(&stream[..end]).unwrap();
        let complete = boundaries.iter().filter(|&&b| b > 0 && b <= end).count();
        prop_assert_eq!(&decoded[..], &records[..complete]);
        let clean = boundaries.contains(&end);
        match decoder.finish() {
            Ok(()) => prop_assert!(clean),
            Err(RecordIoError::TruncatedLength { .. } | RecordIoError::TruncatedRecord { .. }) => {
                prop_assert!(!clean);
            }
            Err(other) => prop_assert!(false, "unexpected {other}"),
        }
    }

    #[test]
    fn oversized_records_are_refused_after_the_good_ones(
        records in records_strategy(),
        max in 0usize..200,
    ) {
        let stream = frame(&records);
        let mut decoder = Decoder::with_max_record_size(max);
        let result = decoder.decode(&stream);
        let fitting = records.iter().take_while(|r| r.len() <= max).count();
        if fitting == records.len() {
            prop_assert_eq!(result.unwrap(), records);
        } else {
            let is_too_large = matches!(
                result,
                Err(RecordIoError::RecordTooLarge { length, max: m, .. })
                    if length == records[fitting].len() as u64 && m == max
            );
            prop_assert!(is_too_large);
            // The error is sticky.
            prop_assert!(decoder.next_record().is_err());
            prop_assert!(decoder.finish().is_err());
        }
    }

    #[test]
    fn garbage_never_panics(
        bytes in prop_oneof![prop::collection::vec(any::<u8>(), 0..600), framing_garbage()],
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        max in prop_oneof![Just(recordio::DEFAULT_MAX_RECORD_SIZE), 0usize..64],
    ) {
        let chunks = cut(&bytes, &cuts);
        let mut decoder = Decoder::with_max_record_size(max);
        let chunked = feed(&mut decoder, &chunks);
        let _ = decoder.finish();
        // Chunking never changes the outcome.
        let mut whole = Decoder::with_max_record_size(max);
        let at_once = whole.decode(&bytes);
        prop_assert_eq!(chunked, at_once);
        prop_assert_eq!(decoder.finish(), whole.finish());
    }
}

#[test]
fn huge_decimal_lengths_are_errors_not_overflows() {
    for prefix in [
        &b"99999999999999999999999999999999\n"[..],
        b"18446744073709551616\n",
        b"18446744073709551615\n",
        b"000000000000000000000000000000001\n",
    ] {
        let mut decoder = Decoder::new();
        let error = decoder.decode(prefix).unwrap_err();
        assert!(
            matches!(
                error,
                RecordIoError::LengthOverflow { .. } | RecordIoError::RecordTooLarge { .. }
            ),
            "{error}"
        );
    }
}

/// The SUBSCRIBE responses as read from the socket: de-chunked and fed chunk by chunk,
/// they give the records of the `.bin` files.
#[test]
fn captured_http_chunks_reproduce_the_records() {
    for stream in &STREAMS {
        let at = stream.stem;
        let response = parse_http(&stream.raw());
        assert_eq!(response.start_line, "HTTP/1.1 200 OK", "{at}");
        assert_eq!(
            response.header("Transfer-Encoding"),
            Some("chunked"),
            "{at}"
        );
        assert_eq!(
            response.header("Content-Type"),
            Some(stream.content_type.as_str()),
            "{at}"
        );
        assert_eq!(response.header("Content-Length"), None, "{at}");

        let chunks = dechunk(&response.body);
        let index = stream.index();
        let mut sizes: Vec<u64> = index["chunk_sizes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_u64().unwrap())
            .collect();
        let terminated = sizes.last() == Some(&0);
        if terminated {
            sizes.pop();
        }
        assert_eq!(chunks.terminated, terminated, "{at}");
        let ours: Vec<u64> = chunks.data.iter().map(|c| c.len() as u64).collect();
        assert_eq!(ours, sizes, "{at}");
        assert_eq!(chunks.data.concat(), stream.bin(), "{at}");

        let mut decoder = Decoder::new();
        let records = feed(&mut decoder, &chunks.data).unwrap();
        assert_eq!(records, stream.records(), "{at}");
        // Mesos put each record in a chunk of its own.
        assert_eq!(records.len(), chunks.data.len(), "{at}");
        // Every capture stopped on a record boundary, with or without the final chunk.
        decoder.finish().unwrap();
    }
}
