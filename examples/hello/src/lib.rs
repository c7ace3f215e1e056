//! The smallest Brine task: `hello` takes no arguments, prints "hello world" to its
//! stdout and returns the same text.

/// What `hello` prints and returns.
pub const GREETING: &str = "hello world";

/// Task `hello`: no arguments (`()`), result `String`.
#[brine_guest::task]
pub fn hello() -> String {
    println!("{GREETING}");
    GREETING.to_owned()
}

// Host tests: they use the host stand-in for the `brine` imports.
#[cfg(all(test, not(target_arch = "wasm32")))]
#[allow(clippy::unwrap_used)]
mod tests {
    use brine_guest::{Encoding, testing};

    use super::*;

    #[test]
    fn returns_the_greeting() {
        assert_eq!(hello(), "hello world");
    }

    #[test]
    fn entry_takes_no_arguments() {
        let text: String = testing::run(__brine_task_hello, &(), Encoding::Postcard).unwrap();
        assert_eq!(text, GREETING);
        assert_eq!(
            testing::call(__brine_task_hello, b"", Encoding::Json),
            testing::Outcome::Ok(br#""hello world""#.to_vec())
        );
    }
}
