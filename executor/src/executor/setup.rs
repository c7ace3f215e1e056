//! What the executor sets up once, at its first SUBSCRIBED: the `ExecutorConfig` read
//! from `ExecutorInfo.data` and checked, the wasm runtime built from it, and the shared
//! dataset (opened once; retried while it is missing).

use std::path::PathBuf;
use std::sync::Arc;

use brine_proto::mesos::v1::ExecutorInfo;
use brine_proto::payload::{ExecutorConfig, Payload};

use super::ExecutorError;
use crate::env::MesosEnv;
use crate::runtime::{Dataset, Runtime, RuntimeConfig};

/// The shared dataset, opened once; retried while it is missing.
pub(super) enum DatasetSlot {
    None,
    Ready(Arc<Dataset>),
    Missing(PathBuf),
}

impl DatasetSlot {
    fn open(path: Option<PathBuf>) -> Self {
        let Some(path) = path else {
            return Self::None;
        };
        let mut slot = Self::Missing(path);
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
            Self::Missing(path) => match Dataset::open(&*path) {
                Ok(d) => {
                    tracing::info!(path = %path.display(), bytes = d.len(), "dataset opened");
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
        let dataset = DatasetSlot::open(config.dataset.as_ref().map(|d| env.sandbox.join(&d.path)));
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
