//! Finding what the demo runs: the `brine-executor` binary and the example modules.

use std::path::PathBuf;

use anyhow::{Context, bail};
use brine_scheduler::Module;

/// The example modules (`make examples` builds them).
pub struct Modules {
    pub hello: Module,
    pub sum: Module,
    pub wordcount: Module,
    pub pi: Module,
    pub evolve: Module,
}

impl Modules {
    pub fn load() -> anyhow::Result<Modules> {
        Ok(Modules {
            hello: load("hello")?,
            sum: load("sum")?,
            wordcount: load("wordcount")?,
            pi: load("pi")?,
            evolve: load("evolve")?,
        })
    }
}

fn load(name: &str) -> anyhow::Result<Module> {
    let path = brine_tests::examples_dir().join(format!("example_{name}.wasm"));
    Module::from_file(&path)
        .with_context(|| format!("cannot read {} (run `make examples`)", path.display()))
}

/// `$BRINE_EXECUTOR`, else `brine-executor` in the profile directory this example was
/// built into (`target/<profile>/examples/demo` → `target/<profile>/brine-executor`).
pub fn executor_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("BRINE_EXECUTOR") {
        return Ok(path.into());
    }
    let exe = std::env::current_exe().context("cannot find the demo's own path")?;
    let candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("brine-executor"))
        .collect();
    match candidates.iter().find(|p| p.is_file()) {
        Some(path) => Ok(path.clone()),
        None => bail!(
            "brine-executor not found beside {}: build it with `cargo build --release -p \
             brine-executor` (`make demo` does) or set BRINE_EXECUTOR",
            exe.display()
        ),
    }
}
