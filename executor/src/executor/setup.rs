//! What the executor sets up once, at its first SUBSCRIBED: the `ExecutorConfig` read
//! from `ExecutorInfo.data` and checked, the wasm runtime built from it, and the shared
//! dataset (opened once; retried while it is missing).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use brine_proto::mesos::v1::ExecutorInfo;
use brine_proto::payload::{ExecutorConfig, Payload};

use super::ExecutorError;
use crate::env::MesosEnv;
use crate::runtime::{Dataset, DatasetAccess, Runtime, RuntimeConfig};

/// The shared dataset, opened once; retried while it is missing.
pub(super) enum DatasetSlot {
    None,
    Ready(Arc<Dataset>),
    Missing {
        path: PathBuf,
        sandbox: PathBuf,
        access: DatasetAccess,
    },
}

impl DatasetSlot {
    /// The dataset at `path`, read as `$BRINE_DATASET_ACCESS` says (the default when it
    /// is unset or invalid; mapped only when the file is inside `sandbox`).
    fn open(path: Option<PathBuf>, sandbox: &Path) -> Self {
        let Some(path) = path else {
            return Self::None;
        };
        let access = DatasetAccess::from_env().unwrap_or_else(|e| {
            let access = DatasetAccess::default();
            tracing::error!("{e}; the dataset is read with {access}");
            access
        });
        let mut slot = Self::Missing {
            path,
            sandbox: sandbox.to_owned(),
            access,
        };
        match slot.get() {
            Ok(_) => {}
            Err(message) => tracing::error!("{message}; tasks fail until it appears"),
        }
        slot
    }

    pub(super) fn get(&mut self) -> Result<Option<Arc<Dataset>>, String> {
        match self {
            Self::None => Ok(None),
            Self::Ready(d) => Ok(Some(Arc::clone(d))),
            Self::Missing {
                path,
                sandbox,
                access,
            } => match Dataset::open_with(&*path, private_access(path, sandbox, *access)) {
                Ok(d) => {
                    let access = d.access().map(DatasetAccess::as_str);
                    tracing::info!(path = %path.display(), bytes = d.len(), access, "dataset opened");
                    *self = Self::Ready(Arc::clone(&d));
                    Ok(Some(d))
                }
                Err(e) => Err(format!(
                    "dataset {} is not available: {e} (it is fetched into the sandbox \
                     through the ExecutorInfo's CommandInfo URIs)",
                    path.display()
                )),
            },
        }
    }
}

/// `access`, unless it is a mapping of a file that is not the executor's own: one that
/// resolves (through `..` or symbolic links) to somewhere outside its sandbox, which
/// others may truncate under the mapping. Such a file is read with `pread`.
fn private_access(path: &Path, sandbox: &Path, access: DatasetAccess) -> DatasetAccess {
    if access != DatasetAccess::Mmap {
        return access;
    }
    match (path.canonicalize(), sandbox.canonicalize()) {
        (Ok(file), Ok(sandbox)) if file.starts_with(&sandbox) => access,
        (Ok(file), Ok(_)) => {
            tracing::info!(
                path = %path.display(),
                resolved = %file.display(),
                "the dataset is not inside the sandbox: read with pread, not mapped"
            );
            DatasetAccess::Pread
        }
        // Not there (yet): opening it fails too, and is retried.
        _ => DatasetAccess::Pread,
    }
}

/// What the executor knows once subscribed.
pub(super) struct Setup {
    pub(super) config: ExecutorConfig,
    pub(super) runtime: Arc<Runtime>,
    pub(super) dataset: DatasetSlot,
}

impl Setup {
    pub(super) fn new(env: &MesosEnv, info: &ExecutorInfo) -> Result<Self, ExecutorError> {
        let config = parse_config(info)?;
        let cache_dir = config
            .module_cache_dir
            .as_ref()
            .map_or_else(|| env.sandbox.join("module-cache"), PathBuf::from);
        let runtime = Runtime::new(RuntimeConfig::for_executor(&config, Some(cache_dir)))?;
        let dataset = DatasetSlot::open(
            config.dataset.as_ref().map(|d| env.sandbox.join(&d.path)),
            &env.sandbox,
        );
        Ok(Self {
            config,
            runtime: Arc::new(runtime),
            dataset,
        })
    }
}

/// Reads and checks the `ExecutorConfig` in `ExecutorInfo.data`.
pub fn parse_config(info: &ExecutorInfo) -> Result<ExecutorConfig, ExecutorError> {
    let data = info
        .data
        .as_ref()
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            ExecutorError::Config(
                "ExecutorInfo.data is empty; it must hold an ExecutorConfig \
             (brine_proto::payload::ExecutorConfig, postcard with a version byte)"
                    .into(),
            )
        })?;
    let config = ExecutorConfig::decode(data).map_err(|e| {
        ExecutorError::Config(format!("ExecutorInfo.data is not an ExecutorConfig: {e}"))
    })?;
    if config.heartbeat_interval.is_zero() {
        return Err(ExecutorError::Config(
            "ExecutorConfig.heartbeat_interval must be greater than zero".into(),
        ));
    }
    if let Some(dataset) = &config.dataset
        && dataset.path.is_empty()
    {
        return Err(ExecutorError::Config(
            "ExecutorConfig.dataset.path is empty".into(),
        ));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use brine_proto::payload::DatasetRef;
    use bytes::Bytes;

    use super::*;

    #[test]
    fn only_a_file_inside_the_sandbox_is_mapped() {
        let root = tempfile::tempdir().unwrap();
        let sandbox = root.path().join("sandbox");
        std::fs::create_dir(&sandbox).unwrap();
        std::fs::write(sandbox.join("data.txt"), b"mine").unwrap();
        std::fs::write(root.path().join("shared.txt"), b"everyone's").unwrap();
        std::os::unix::fs::symlink(root.path().join("shared.txt"), sandbox.join("link.txt"))
            .unwrap();
        let access = |name: &str, wanted| private_access(&sandbox.join(name), &sandbox, wanted);
        assert_eq!(access("data.txt", DatasetAccess::Mmap), DatasetAccess::Mmap);
        assert_eq!(
            access("./data.txt", DatasetAccess::Mmap),
            DatasetAccess::Mmap
        );
        assert_eq!(
            access("data.txt", DatasetAccess::Pread),
            DatasetAccess::Pread
        );
        assert_eq!(
            access("link.txt", DatasetAccess::Mmap),
            DatasetAccess::Pread
        );
        assert_eq!(
            access("../shared.txt", DatasetAccess::Mmap),
            DatasetAccess::Pread
        );
        let outside = root.path().join("shared.txt");
        assert_eq!(
            access(outside.to_str().unwrap(), DatasetAccess::Mmap),
            DatasetAccess::Pread,
            "an absolute path replaces the sandbox in `join`"
        );
        assert_eq!(
            access("missing.txt", DatasetAccess::Mmap),
            DatasetAccess::Pread
        );
    }

    #[test]
    fn config_must_be_present_and_valid() {
        let mut info = ExecutorInfo::default();
        let err = parse_config(&info).unwrap_err().to_string();
        assert!(err.contains("ExecutorInfo.data is empty"), "{err}");
        info.data = Some(Bytes::from_static(b"garbage"));
        let err = parse_config(&info).unwrap_err().to_string();
        assert!(err.contains("not an ExecutorConfig"), "{err}");
        let zero = ExecutorConfig {
            heartbeat_interval: Duration::ZERO,
            ..ExecutorConfig::default()
        };
        info.data = Some(zero.encode().into());
        assert!(parse_config(&info).is_err());
        let good = ExecutorConfig {
            dataset: Some(DatasetRef {
                path: "data.txt".into(),
            }),
            ..ExecutorConfig::default()
        };
        info.data = Some(good.encode().into());
        assert_eq!(parse_config(&info).unwrap(), good);
    }
}
