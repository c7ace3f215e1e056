//! RecordIO, the framing of Mesos's streaming responses (Mesos `docs/recordio.md`).
//!
//! A stream is a sequence of records, each `<length>\n<payload>`: the payload's byte
//! count in ASCII decimal, a line feed, then exactly that many bytes, with nothing
//! between one payload and the next length. HTTP chunk boundaries carry no meaning (a
//! proxy may move them), so the [`Decoder`] accepts input cut anywhere.
//!
//! ```
//! use brine_proto::recordio::{self, Decoder};
//!
//! let mut stream = recordio::encode(br#"{"type":"HEARTBEAT"}"#).to_vec();
//! stream.extend_from_slice(&recordio::encode(b"\x08\x08"));
//!
//! let mut decoder = Decoder::new();
//! let (first, rest) = stream.split_at(7);
//! assert!(decoder.decode(first)?.is_empty()); // a record split across chunks
//! let records = decoder.decode(rest)?;
//! assert_eq!(records, [&br#"{"type":"HEARTBEAT"}"#[..], b"\x08\x08"]);
//! decoder.finish()?; // the stream ended on a record boundary
//! # Ok::<(), recordio::RecordIoError>(())
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Default limit on one record's payload: 64 MiB.
///
/// Large enough for a LAUNCH whose task carries a WebAssembly module inline, small
/// enough that a corrupt or hostile length prefix cannot make us buffer without bound.
pub const DEFAULT_MAX_RECORD_SIZE: usize = 64 * 1024 * 1024;

/// `u64::MAX` has 20 decimal digits; a longer prefix cannot be a valid length.
const MAX_LENGTH_DIGITS: usize = 20;

/// Why a RecordIO stream could not be decoded.
///
/// Every error except the two truncation errors from [`Decoder::finish`] leaves the
/// stream without a known record boundary, so the decoder keeps returning the same error
/// from then on: reconnect and start a new stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordIoError {
    #[error(
        "invalid byte {byte:#04x} in a RecordIO length prefix at stream offset {offset} \
         (expected an ASCII digit or a line feed)"
    )]
    InvalidLengthByte { byte: u8, offset: u64 },
    #[error("empty RecordIO length prefix at stream offset {offset}")]
    EmptyLength { offset: u64 },
    #[error("RecordIO length prefix at stream offset {offset} does not fit in 64 bits")]
    LengthOverflow { offset: u64 },
    #[error(
        "RecordIO record at stream offset {offset} is {length} bytes long, \
         over the limit of {max} bytes"
    )]
    RecordTooLarge {
        length: u64,
        max: usize,
        offset: u64,
    },
    #[error(
        "RecordIO stream ended inside a length prefix at stream offset {offset} \
         ({buffered} bytes of it received)"
    )]
    TruncatedLength { offset: u64, buffered: usize },
    #[error(
        "RecordIO stream ended inside a record at stream offset {offset}: \
         {received} of {length} bytes received"
    )]
    TruncatedRecord {
        offset: u64,
        length: usize,
        received: usize,
    },
}

/// Where the decoder is within the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a length prefix: its value so far, and how many digits have been read.
    Length { value: u64, digits: usize },
    /// The prefix has been consumed; waiting for `length` payload bytes.
    Payload { length: usize },
}

const START: State = State::Length {
    value: 0,
    digits: 0,
};

/// An incremental RecordIO decoder: push bytes as they arrive, pull whole records.
///
/// Memory use is bounded by the largest accepted record plus whatever the caller pushes
/// without pulling. Records are returned as [`Bytes`] split off the internal buffer, so
/// a record is never copied after it has been received.
#[derive(Debug)]
pub struct Decoder {
    max_record_size: usize,
    /// Bytes received and not yet consumed. In the `Length` state it starts with the
    /// digits already counted in the state; in `Payload`, with the payload.
    buf: BytesMut,
    state: State,
    /// Stream offset of `buf[0]`.
    offset: u64,
    /// Sticky: once the stream is broken it stays broken.
    failed: Option<RecordIoError>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder that accepts records up to [`DEFAULT_MAX_RECORD_SIZE`] bytes.
    pub fn new() -> Self {
        Self::with_max_record_size(DEFAULT_MAX_RECORD_SIZE)
    }

    /// A decoder that refuses any record longer than `max_record_size` bytes, as soon as
    /// its length prefix has been read.
    pub fn with_max_record_size(max_record_size: usize) -> Self {
        Self {
            max_record_size,
            buf: BytesMut::new(),
            state: START,
            offset: 0,
            failed: None,
        }
    }

    /// The largest payload this decoder accepts.
    pub fn max_record_size(&self) -> usize {
        self.max_record_size
    }

    /// Bytes received but not yet returned as records.
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// Adds received bytes, cut anywhere. Take records out with [`Decoder::next_record`].
    pub fn push(&mut self, chunk: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// The next complete record, `Ok(None)` if more bytes are needed.
    pub fn next_record(&mut self) -> Result<Option<Bytes>, RecordIoError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        match self.step() {
            Ok(record) => Ok(record),
            Err(error) => {
                self.buf = BytesMut::new();
                self.failed = Some(error.clone());
                Err(error)
            }
        }
    }

    /// Pushes `chunk` and returns every record it completes (possibly none).
    pub fn decode(&mut self, chunk: &[u8]) -> Result<Vec<Bytes>, RecordIoError> {
        self.push(chunk);
        let mut records = Vec::new();
        while let Some(record) = self.next_record()? {
            records.push(record);
        }
        Ok(records)
    }

    /// Declares the end of the input. `Ok` means a clean end: the stream stopped on a
    /// record boundary. A stream cut inside a length prefix or inside a payload gives
    /// [`RecordIoError::TruncatedLength`] or [`RecordIoError::TruncatedRecord`].
    ///
    /// Call it once [`Decoder::next_record`] has returned `Ok(None)` (or after
    /// [`Decoder::decode`]): records still waiting in the buffer count as unconsumed
    /// input.
    pub fn finish(&self) -> Result<(), RecordIoError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        match self.state {
            State::Length { .. } if self.buf.is_empty() => Ok(()),
            State::Length { .. } => Err(RecordIoError::TruncatedLength {
                offset: self.offset,
                buffered: self.buf.len(),
            }),
            State::Payload { length } => Err(RecordIoError::TruncatedRecord {
                offset: self.offset,
                length,
                received: self.buf.len(),
            }),
        }
    }

    /// Advances over the buffered bytes as far as one record.
    fn step(&mut self) -> Result<Option<Bytes>, RecordIoError> {
        if let State::Length { mut value, digits } = self.state {
            let mut digits_now = digits;
            // Scan only the bytes not yet counted into `value`.
            let mut newline = false;
            for &byte in self.buf.iter().skip(digits) {
                if byte == b'\n' {
                    newline = true;
                    break;
                }
                if !byte.is_ascii_digit() {
                    return Err(RecordIoError::InvalidLengthByte {
                        byte,
                        offset: self.offset.saturating_add(digits_now as u64),
                    });
                }
                digits_now += 1;
                value = value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(byte - b'0')))
                    .filter(|_| digits_now <= MAX_LENGTH_DIGITS)
                    .ok_or(RecordIoError::LengthOverflow {
                        offset: self.offset,
                    })?;
            }
            if !newline {
                self.state = State::Length {
                    value,
                    digits: digits_now,
                };
                return Ok(None);
            }
            if digits_now == 0 {
                return Err(RecordIoError::EmptyLength {
                    offset: self.offset,
                });
            }
            let length = usize::try_from(value)
                .ok()
                .filter(|&length| length <= self.max_record_size)
                .ok_or(RecordIoError::RecordTooLarge {
                    length: value,
                    max: self.max_record_size,
                    offset: self.offset,
                })?;
            // Drop the digits and the line feed.
            let prefix = digits_now + 1;
            self.buf.advance(prefix);
            self.offset = self.offset.saturating_add(prefix as u64);
            self.state = State::Payload { length };
        }
        let State::Payload { length } = self.state else {
            return Ok(None);
        };
        if self.buf.len() < length {
            // Make room for the rest of the payload once, but never trust a length
            // prefix with more than a modest allocation ahead of the data itself.
            let want = (length - self.buf.len()).min(64 * 1024);
            self.buf.reserve(want);
            return Ok(None);
        }
        let record = self.buf.split_to(length).freeze();
        self.offset = self.offset.saturating_add(length as u64);
        self.state = START;
        Ok(Some(record))
    }
}

/// Frames one record: `<payload length>\n<payload>`.
pub fn encode(payload: &[u8]) -> Bytes {
    let mut dst = BytesMut::with_capacity(payload.len() + MAX_LENGTH_DIGITS + 1);
    encode_into(payload, &mut dst);
    dst.freeze()
}

/// Appends one framed record to `dst`.
pub fn encode_into(payload: &[u8], dst: &mut BytesMut) {
    let length = payload.len().to_string();
    dst.reserve(length.len() + 1 + payload.len());
    dst.put_slice(length.as_bytes());
    dst.put_u8(b'\n');
    dst.put_slice(payload);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn decodes_zero_length_records() {
        let mut decoder = Decoder::new();
        let records = decoder.decode(b"0\n0\n3\nabc").unwrap();
        assert_eq!(records, [&b""[..], b"", b"abc"]);
        decoder.finish().unwrap();
    }

    #[test]
    fn leading_zeros_are_a_valid_length() {
        let mut decoder = Decoder::new();
        assert_eq!(decoder.decode(b"0003\nabc").unwrap(), [&b"abc"[..]]);
    }

    #[test]
    fn header_split_byte_by_byte() {
        let mut decoder = Decoder::new();
        let mut records = Vec::new();
        for byte in b"12\nhello world!5\nhello" {
            records.extend(decoder.decode(&[*byte]).unwrap());
        }
        assert_eq!(records, [&b"hello world!"[..], b"hello"]);
        decoder.finish().unwrap();
    }

    #[test]
    fn too_large_is_refused_at_the_prefix() {
        let mut decoder = Decoder::with_max_record_size(10);
        let error = decoder.decode(b"11\n").unwrap_err();
        assert_eq!(
            error,
            RecordIoError::RecordTooLarge {
                length: 11,
                max: 10,
                offset: 0
            }
        );
        // Sticky.
        assert_eq!(decoder.decode(b"anything").unwrap_err(), error);
        assert_eq!(decoder.finish().unwrap_err(), error);
    }

    #[test]
    fn huge_lengths_do_not_overflow() {
        let mut decoder = Decoder::new();
        assert_eq!(
            decoder.decode(b"18446744073709551616\n").unwrap_err(),
            RecordIoError::LengthOverflow { offset: 0 }
        );
        let mut decoder = Decoder::new();
        assert!(matches!(
            decoder.decode(b"18446744073709551615\n").unwrap_err(),
            RecordIoError::RecordTooLarge { .. }
        ));
        let mut decoder = Decoder::new();
        assert_eq!(
            decoder.decode(&[b'0'; 21]).unwrap_err(),
            RecordIoError::LengthOverflow { offset: 0 }
        );
    }

    #[test]
    fn bad_prefixes() {
        let mut decoder = Decoder::new();
        assert_eq!(
            decoder.decode(b"3\nabc\n").unwrap_err(),
            RecordIoError::EmptyLength { offset: 5 }
        );
        let mut decoder = Decoder::new();
        assert_eq!(
            decoder.decode(b"3\nabc1x").unwrap_err(),
            RecordIoError::InvalidLengthByte {
                byte: b'x',
                offset: 6
            }
        );
        let mut decoder = Decoder::new();
        assert_eq!(
            decoder.decode(b"-1\n").unwrap_err(),
            RecordIoError::InvalidLengthByte {
                byte: b'-',
                offset: 0
            }
        );
    }

    #[test]
    fn clean_and_truncated_ends() {
        let mut decoder = Decoder::new();
        decoder.finish().unwrap();
        decoder.decode(b"3\nab").unwrap();
        assert_eq!(
            decoder.finish().unwrap_err(),
            RecordIoError::TruncatedRecord {
                offset: 2,
                length: 3,
                received: 2
            }
        );
        decoder.decode(b"c4").unwrap();
        assert_eq!(
            decoder.finish().unwrap_err(),
            RecordIoError::TruncatedLength {
                offset: 5,
                buffered: 1
            }
        );
        assert_eq!(decoder.decode(b"\nabcd").unwrap(), [&b"abcd"[..]]);
        decoder.finish().unwrap();
    }

    #[test]
    fn encode_frames() {
        assert_eq!(&encode(b"")[..], b"0\n");
        assert_eq!(
            &encode(br#"{"type":"HEARTBEAT"}"#)[..],
            br#"20
{"type":"HEARTBEAT"}"#
        );
        let mut dst = BytesMut::new();
        encode_into(b"\x08\x07", &mut dst);
        encode_into(b"x", &mut dst);
        assert_eq!(&dst[..], b"2\n\x08\x071\nx");
    }
}
