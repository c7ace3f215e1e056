//! RecordIO decoding of arbitrary bytes cut into arbitrary chunks: never panics, gives
//! the same outcome however the input is chunked, and what it decodes re-encodes to a
//! stream that decodes to the same records.

#![no_main]

use brine_proto::recordio::{self, Decoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    // First byte: the record size limit (small ones exercise RecordTooLarge). Second:
    // the chunk length pattern. The rest: the stream.
    let Some((&limit, rest)) = input.split_first() else {
        return;
    };
    let Some((&pattern, stream)) = rest.split_first() else {
        return;
    };
    let max = if limit == 255 {
        recordio::DEFAULT_MAX_RECORD_SIZE
    } else {
        usize::from(limit)
    };

    let mut whole = Decoder::with_max_record_size(max);
    let at_once = whole.decode(stream);
    let end = whole.finish();

    let mut chunked = Decoder::with_max_record_size(max);
    let mut records = Vec::new();
    let mut outcome = Ok(());
    let mut chunk_len = usize::from(pattern % 17) + 1;
    for chunk in stream.chunks(chunk_len.max(1)) {
        chunked.push(chunk);
        loop {
            match chunked.next_record() {
                Ok(Some(record)) => records.push(record),
                Ok(None) => break,
                Err(error) => {
                    outcome = Err(error);
                    break;
                }
            }
        }
        chunk_len = chunk_len * 3 % 17 + 1;
    }
    match (&at_once, &outcome) {
        (Ok(all), Ok(())) => assert_eq!(all, &records),
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("chunking changed the outcome: {at_once:?} vs {outcome:?}"),
    }
    assert_eq!(end, chunked.finish());

    if let Ok(all) = at_once {
        let again: Vec<u8> = all.iter().flat_map(|r| recordio::encode(r)).collect();
        let mut decoder = Decoder::with_max_record_size(max);
        assert_eq!(decoder.decode(&again).as_ref(), Ok(&all));
        assert_eq!(decoder.finish(), Ok(()));
    }
});
