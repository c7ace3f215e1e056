//! Finding the master and subscribing to it: the first time, and again after the
//! connection is lost (same FrameworkID, so the master hands the framework back).

use brine_proto::mesos::v1::scheduler::{Call, call, event};
use brine_proto::mesos::v1::{FrameworkId, FrameworkInfo};

use crate::client::{self, ClientConfig, ClientError, Endpoint, Subscription};
use crate::{ClusterError, SubscribeError};

/// How the user named the master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MasterAddr {
    /// `http(s)://host:port`: a master, or any master of a group (it redirects).
    Http(String),
    /// `zk://host:port[,host:port]/path`: the leader is read from ZooKeeper each time
    /// (feature `zk`; `connect` refuses it earlier without).
    Zk(String),
}

impl MasterAddr {
    /// The leading master's URL now.
    pub(crate) async fn resolve(&self, config: &ClientConfig) -> Result<String, ClusterError> {
        match self {
            MasterAddr::Http(url) => Ok(url.clone()),
            #[cfg(feature = "zk")]
            MasterAddr::Zk(url) => crate::detector::leading_master(url, config.request_timeout)
                .await
                .map_err(ClusterError::from),
            #[cfg(not(feature = "zk"))]
            MasterAddr::Zk(url) => {
                let _ = config;
                Err(ClusterError::FeatureDisabled {
                    master: url.clone(),
                    feature: crate::Feature::Zk,
                })
            }
        }
    }
}

/// A subscription whose SUBSCRIBED event has arrived.
pub(crate) struct Subscribed {
    pub subscription: Subscription,
    pub framework_id: FrameworkId,
    /// The master's URL (as resolved, before redirects).
    pub url: String,
}

/// SUBSCRIBEs `framework` (whose `id` is set when re-subscribing) and waits for
/// SUBSCRIBED.
pub(crate) async fn subscribe(
    master: &MasterAddr,
    framework: &FrameworkInfo,
    config: &ClientConfig,
) -> Result<Subscribed, ClusterError> {
    let url = master.resolve(config).await?;
    let endpoint = Endpoint::parse(&url)?;
    let call = Call {
        framework_id: framework.id.clone(),
        r#type: Some(call::Type::Subscribe as i32),
        subscribe: Some(call::Subscribe {
            framework_info: framework.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut subscription = client::subscribe(&endpoint, &call, config).await?;
    let timeout = config.request_timeout;
    let first = tokio::time::timeout(timeout, subscription.events.recv())
        .await
        .map_err(|_| ClientError::Timeout(timeout))?;
    let framework_id = match first {
        Some(Ok(e)) if e.r#type() == event::Type::Subscribed => e
            .subscribed
            .map(|s| s.framework_id)
            .ok_or(ClusterError::Subscribe(SubscribeError::NoBody))?,
        Some(Ok(e)) => {
            let message = e
                .error
                .as_ref()
                .map(|e| e.message.clone())
                .unwrap_or_default();
            return Err(ClusterError::Subscribe(SubscribeError::Refused {
                event: e.r#type().as_str_name().to_owned(),
                message,
            }));
        }
        Some(Err(e)) => return Err(e.into()),
        None => return Err(ClientError::StreamEnded.into()),
    };
    tracing::info!(framework_id = %framework_id.value, master = %endpoint.authority, "subscribed");
    Ok(Subscribed {
        subscription,
        framework_id,
        url,
    })
}
