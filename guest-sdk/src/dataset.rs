//! The executor's shared, read-only dataset.
//!
//! The dataset lives outside the guest (memory-mapped once by the executor and shared by
//! every task), so reading it means copying bytes into guest memory. Everything here
//! copies only what you ask for: read the ranges you need, in chunks, rather than the
//! whole thing.
//!
//! ```no_run
//! use std::io::Read;
//!
//! // Count newlines in the first MiB, 64 KiB at a time.
//! let mut reader = brine_guest::dataset::reader(0..1 << 20);
//! let mut chunk = vec![0u8; 64 * 1024];
//! let mut lines = 0;
//! loop {
//!     let n = reader.read(&mut chunk)?;
//!     if n == 0 {
//!         break;
//!     }
//!     lines += chunk[..n].iter().filter(|&&b| b == b'\n').count();
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::ops::{Bound, RangeBounds};

use crate::sys;

/// The dataset's length in bytes; 0 when the executor has none.
pub fn len() -> u64 {
    u64::try_from(sys::dataset_len()).unwrap_or(0)
}

/// Whether the dataset is empty (or there is none).
pub fn is_empty() -> bool {
    len() == 0
}

/// Copies dataset bytes starting at `offset` into `buf`; returns how many were copied,
/// which is less than `buf.len()` only at the end of the dataset (0 at or past it).
pub fn read_at(offset: u64, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        let Some(at) = offset
            .checked_add(filled as u64)
            .and_then(|at| i64::try_from(at).ok())
        else {
            break;
        };
        // The ABI lets the host copy fewer bytes than asked; only 0 means the end.
        let copied = usize::try_from(sys::dataset_read(at, &mut buf[filled..])).unwrap_or(0);
        if copied == 0 {
            break;
        }
        filled += copied.min(buf.len() - filled);
    }
    filled
}

/// Fills `buf` from `offset`, or fails with [`io::ErrorKind::UnexpectedEof`] if the
/// dataset ends first.
pub fn read_exact_at(offset: u64, buf: &mut [u8]) -> io::Result<()> {
    if read_at(offset, buf) == buf.len() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "the dataset ({} bytes) ends before byte {}",
                len(),
                offset.saturating_add(buf.len() as u64)
            ),
        ))
    }
}

/// Copies a whole range into a new `Vec` (clipped to the dataset's end). Mind the size:
/// `to_vec(..)` copies the entire dataset into guest memory.
pub fn to_vec(range: impl RangeBounds<u64>) -> Vec<u8> {
    let (start, end) = resolve(range);
    let want = usize::try_from(end.saturating_sub(start)).unwrap_or(usize::MAX);
    let mut bytes = vec![0u8; want];
    let n = read_at(start, &mut bytes);
    bytes.truncate(n);
    bytes
}

/// A [`Reader`] over `range` (clipped to the dataset's end), e.g. `reader(..)` for all of
/// it or `reader(offset..offset + len)`.
pub fn reader(range: impl RangeBounds<u64>) -> Reader {
    let (start, end) = resolve(range);
    Reader {
        start,
        position: start,
        end,
    }
}

/// Turns range bounds into `start..end`, clipping the end to the dataset's length.
fn resolve(range: impl RangeBounds<u64>) -> (u64, u64) {
    let total = len();
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => total,
    }
    .min(total);
    (start, end.max(start))
}

/// Reads a range of the dataset through [`std::io::Read`], straight into the caller's
/// buffer (no buffering of its own; wrap it in a [`std::io::BufReader`] for `BufRead`).
#[derive(Debug, Clone)]
pub struct Reader {
    start: u64,
    position: u64,
    end: u64,
}

impl Reader {
    /// The dataset offset the next read starts at.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The range this reader covers, in dataset offsets.
    pub fn range(&self) -> std::ops::Range<u64> {
        self.start..self.end
    }

    /// Bytes left before the end of the range.
    pub fn remaining(&self) -> u64 {
        self.end - self.position
    }

    /// Calls `f(offset, chunk)` for consecutive chunks of at most `chunk_size` bytes until
    /// the range is exhausted, reusing one buffer (a `chunk_size` of 0 is taken as 64 KiB).
    pub fn for_each_chunk(mut self, chunk_size: usize, mut f: impl FnMut(u64, &[u8])) {
        let chunk_size = if chunk_size == 0 {
            64 * 1024
        } else {
            chunk_size
        };
        let capacity = usize::try_from(self.remaining()).map_or(chunk_size, |r| r.min(chunk_size));
        let mut buffer = vec![0u8; capacity];
        loop {
            let offset = self.position;
            let n = self.read_some(&mut buffer);
            if n == 0 {
                break;
            }
            f(offset, &buffer[..n]);
        }
    }

    fn read_some(&mut self, buf: &mut [u8]) -> usize {
        let want = usize::try_from(self.remaining()).map_or(buf.len(), |r| r.min(buf.len()));
        let n = read_at(self.position, &mut buf[..want]);
        self.position += n as u64;
        if n < want {
            // The dataset is shorter than it was when the range was resolved: stop here.
            self.end = self.position;
        }
        n
    }
}

impl io::Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.read_some(buf))
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::testing;

    #[test]
    fn reads_clip_to_the_end() {
        testing::set_dataset(b"hello world".to_vec());
        assert_eq!(len(), 11);
        let mut buf = [0u8; 8];
        assert_eq!(read_at(6, &mut buf), 5);
        assert_eq!(&buf[..5], b"world");
        assert_eq!(read_at(11, &mut buf), 0);
        assert_eq!(read_at(u64::MAX, &mut buf), 0);
        assert!(read_exact_at(6, &mut buf).is_err());
        read_exact_at(0, &mut buf).unwrap();
        assert_eq!(&buf, b"hello wo");
        assert_eq!(to_vec(3..=4), b"lo");
        assert_eq!(to_vec(8..100), b"rld");
        assert_eq!(to_vec(20..30), b"");
    }

    #[test]
    fn reader_reads_only_its_range() {
        testing::set_dataset((0..=255u8).collect::<Vec<_>>());
        let mut reader = reader(10..20);
        assert_eq!(reader.remaining(), 10);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(out, (10..20).collect::<Vec<u8>>());
        assert_eq!(reader.position(), 20);

        let mut chunks = Vec::new();
        super::reader(250..)
            .for_each_chunk(4, |offset, chunk| chunks.push((offset, chunk.to_vec())));
        assert_eq!(
            chunks,
            vec![(250, vec![250, 251, 252, 253]), (254, vec![254, 255])]
        );
    }

    #[test]
    fn no_dataset_is_empty() {
        testing::clear_dataset();
        assert!(is_empty());
        assert_eq!(to_vec(..), b"");
        let mut reader = reader(..);
        assert_eq!(reader.read(&mut [0u8; 4]).unwrap(), 0);
    }
}
