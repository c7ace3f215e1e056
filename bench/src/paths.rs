//! Where the binaries and example modules the benchmark runs are, checked up front so a
//! missing build is one clear error instead of a panic deep inside a part.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// What the parts run.
#[derive(Debug, Clone)]
pub struct Artifacts {
    /// `brine-executor` (resident executor).
    pub executor: PathBuf,
    /// `brine-native-task` (process-per-task baseline).
    pub native_task: PathBuf,
    /// Directory of the `example_*.wasm` modules.
    pub examples: PathBuf,
}

impl Artifacts {
    /// `$BRINE_EXECUTOR`, else `brine-executor` beside this binary; `$BRINE_EXAMPLES_DIR`,
    /// else `<target>/wasm32-wasip1/release` for a binary in `<target>/<profile>/`.
    /// Then exports both variables when they were unset, so the shared test helpers
    /// (`brine_tests::executor_binary`, `example`) and `brine_scheduler::Cluster`
    /// find the same files.
    ///
    /// # Safety
    ///
    /// Sets process environment variables: call before any other thread starts.
    pub unsafe fn locate() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find this binary's path")?;
        let dir = exe
            .parent()
            .context("this binary has no parent directory")?
            .to_path_buf();
        let executor = std::env::var_os("BRINE_EXECUTOR")
            .map_or_else(|| dir.join("brine-executor"), PathBuf::from);
        let native_task = dir.join("brine-native-task");
        let examples = std::env::var_os("BRINE_EXAMPLES_DIR").map_or_else(
            || {
                dir.parent()
                    .unwrap_or(&dir)
                    .join("wasm32-wasip1")
                    .join("release")
            },
            PathBuf::from,
        );
        require(&executor, "cargo build --release -p brine-executor")?;
        require(&native_task, "cargo build --release -p brine-bench")?;
        for name in ["sum", "wordcount", "hello"] {
            require(
                &examples.join(format!("example_{name}.wasm")),
                "make examples (or set BRINE_EXAMPLES_DIR)",
            )?;
        }
        // SAFETY: the caller guarantees no other thread runs yet.
        unsafe {
            std::env::set_var("BRINE_EXECUTOR", &executor);
            std::env::set_var("BRINE_EXAMPLES_DIR", &examples);
        }
        Ok(Self {
            executor,
            native_task,
            examples,
        })
    }

    /// The bytes of `example_<name>.wasm`.
    pub fn example(&self, name: &str) -> anyhow::Result<Vec<u8>> {
        let path = self.examples.join(format!("example_{name}.wasm"));
        std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
    }
}

fn require(path: &Path, build: &str) -> anyhow::Result<()> {
    if !path.is_file() {
        bail!("{} not found: build it first ({build})", path.display());
    }
    Ok(())
}

/// `bytes` with a custom section appended whose payload is `salt`: the same code, a
/// different content hash, so every executor cache misses it (a true cold start).
pub fn salted_module(bytes: &[u8], salt: &str) -> Vec<u8> {
    let name = b"brine-bench-salt";
    let mut payload = Vec::new();
    leb128(&mut payload, name.len() as u64);
    payload.extend_from_slice(name);
    payload.extend_from_slice(salt.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    leb128(&mut out, payload.len() as u64);
    out.extend_from_slice(&payload);
    out
}

fn leb128(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_encodes() {
        let mut out = Vec::new();
        leb128(&mut out, 624_485);
        assert_eq!(out, [0xe5, 0x8e, 0x26]);
    }

    #[test]
    fn salted_modules_stay_valid_with_new_hashes() {
        let empty = b"\0asm\x01\0\0\0";
        let a = salted_module(empty, "a");
        let b = salted_module(empty, "b");
        assert_ne!(a, b);
        assert!(wasmparser_ok(&a));
    }

    /// A module whose only section is a well-formed custom section: the header, then
    /// id 0 and a length covering exactly the rest.
    fn wasmparser_ok(bytes: &[u8]) -> bool {
        bytes.len() > 10 && bytes[8] == 0 && usize::from(bytes[9]) == bytes.len() - 10
    }
}
