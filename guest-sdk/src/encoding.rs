//! The two argument/result encodings of ABI v1.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// How a task's argument bytes are encoded, and so how its result must be (the entry's
/// `encoding` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// `0`: postcard (serde, not self-describing); what the Rust scheduler library sends.
    Postcard,
    /// `1`: JSON (UTF-8); what the `brine` command line sends.
    Json,
}

impl Encoding {
    /// The encoding with this ABI code, if any.
    pub fn from_code(code: i32) -> Option<Self> {
        match code {
            0 => Some(Self::Postcard),
            1 => Some(Self::Json),
            _ => None,
        }
    }

    /// This encoding's ABI code.
    pub fn code(self) -> i32 {
        match self {
            Self::Postcard => 0,
            Self::Json => 1,
        }
    }

    /// Decodes a value, with the decoder's message on failure.
    ///
    /// Postcard input must be consumed exactly: trailing bytes mean the sender encoded a
    /// different type, which is better reported than silently ignored. Empty (or
    /// all-whitespace) JSON reads as `null`, so a command line can call a task that takes
    /// no arguments (or an `Option`) without typing `null`.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, String> {
        match self {
            Self::Postcard => {
                let (value, rest) =
                    postcard::take_from_bytes::<T>(bytes).map_err(|e| e.to_string())?;
                if rest.is_empty() {
                    Ok(value)
                } else {
                    Err(format!("{} unexpected trailing bytes", rest.len()))
                }
            }
            Self::Json => {
                let bytes = if bytes.trim_ascii().is_empty() {
                    b"null"
                } else {
                    bytes
                };
                serde_json::from_slice(bytes).map_err(|e| e.to_string())
            }
        }
    }

    /// Encodes a value, with the encoder's message on failure.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, String> {
        match self {
            Self::Postcard => postcard::to_allocvec(value).map_err(|e| e.to_string()),
            Self::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Postcard => "postcard",
            Self::Json => "JSON",
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for encoding in [Encoding::Postcard, Encoding::Json] {
            assert_eq!(Encoding::from_code(encoding.code()), Some(encoding));
        }
        assert_eq!(Encoding::from_code(2), None);
        assert_eq!(Encoding::from_code(-1), None);
    }

    #[test]
    fn postcard_rejects_trailing_bytes() {
        let mut bytes = postcard::to_allocvec(&7u32).unwrap();
        assert_eq!(Encoding::Postcard.decode::<u32>(&bytes).unwrap(), 7);
        bytes.push(0);
        let error = Encoding::Postcard.decode::<u32>(&bytes).unwrap_err();
        assert!(error.contains("trailing"), "{error}");
    }

    #[test]
    fn unit_decodes_from_nothing() {
        Encoding::Postcard.decode::<()>(&[]).unwrap();
        Encoding::Json.decode::<()>(b"").unwrap();
        Encoding::Json.decode::<()>(b" \n").unwrap();
        Encoding::Json.decode::<()>(b"null").unwrap();
        assert_eq!(Encoding::Json.decode::<Option<u8>>(b"").unwrap(), None);
        assert!(Encoding::Json.decode::<u8>(b"").is_err());
    }

    #[test]
    fn json_errors_carry_the_decoder_message() {
        let error = Encoding::Json.decode::<String>(b"5").unwrap_err();
        assert!(error.contains("expected a string"), "{error}");
    }
}
