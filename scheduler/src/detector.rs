//! Finding the leading Mesos master through ZooKeeper (`zk://` master URLs), as Mesos's
//! own `ZooKeeperMasterDetector` does (`src/master/detector/zookeeper.cpp`,
//! `src/zookeeper/group.cpp`, `src/zookeeper/detector.cpp`,
//! `include/mesos/zookeeper/url.hpp`).
//!
//! What a Mesos master writes: under the URL's path, one ephemeral sequential znode per
//! contending master, named `<label>_<10-digit sequence>`. Mesos ≥ 0.24 uses the label
//! `json.info` and stores its `MasterInfo` as JSON (`JSON::protobuf`); older masters used
//! `info_` with the protobuf bytes, and before that unlabelled nodes holding the UPID
//! text (`master@ip:port`). All three are read here, like Mesos.
//!
//! Who leads: the member with the smallest sequence number among every child whose name
//! ends in a number (other children, such as the replicated log's `log_replicas`, are
//! skipped) — whatever its label; an unknown label is an error, as in Mesos.
//!
//! Which address: Mesos's HTTP scheduler library (`src/scheduler/scheduler.cpp`) builds
//! the master URL from `MasterInfo.pid`'s ip and port (`http`, or `https` when its
//! libprocess has SSL on), so [`master_url`] does too, and falls back to
//! `MasterInfo.address` (`ip`, else `hostname`, and `port`), then to the deprecated
//! packed `ip`/`port` fields, for writers that leave `pid` out.
//!
//! One detection is one ZooKeeper session: connect, read the children (watching them),
//! and if no master is there yet, wait for a change until the timeout. The scheduler
//! calls it again whenever it (re)subscribes, so a failover is followed then.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use brine_proto::codec::{self, ContentType};
use brine_proto::mesos::v1::MasterInfo;
use tokio::time::Instant;

/// What Mesos's detector waits for a ZooKeeper session (`MASTER_DETECTOR_ZK_SESSION_TIMEOUT`).
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// The node labels a Mesos master uses (`src/master/constants.hpp`).
const JSON_LABEL: &str = "json.info";
const PROTOBUF_LABEL: &str = "info";

/// Why no leading master could be read from ZooKeeper. Never shows the URL's
/// credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DetectError {
    /// The `zk://` URL cannot be used.
    #[error("invalid ZooKeeper URL {url:?}: {reason} (expected zk://host:port[,host:port…]/path)")]
    BadUrl {
        /// The URL, credentials masked.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No ZooKeeper server of the URL answered.
    #[error("cannot reach ZooKeeper at {servers}: {reason}")]
    Unreachable {
        /// The URL's servers (`host:port[,…]`).
        servers: String,
        /// The client's reason.
        reason: String,
    },
    /// ZooKeeper refused the URL's `user:password` (digest authentication).
    #[error("ZooKeeper at {servers} refused the digest credentials of the zk:// URL")]
    AuthFailed {
        /// The URL's servers.
        servers: String,
    },
    /// A ZooKeeper read failed.
    #[error("ZooKeeper at {servers} failed while reading {path}: {source}")]
    ZooKeeper {
        /// The URL's servers.
        servers: String,
        /// The znode being read.
        path: String,
        /// The ZooKeeper client's error.
        source: zookeeper_client::Error,
    },
    /// No master joined the group within the timeout.
    #[error("no leading Mesos master under {path} in ZooKeeper at {servers} within {timeout:?}")]
    NoLeader {
        /// The URL's servers.
        servers: String,
        /// The group's znode.
        path: String,
        /// How long detection waited.
        timeout: Duration,
    },
    /// The leader's znode holds something that is not a MasterInfo.
    #[error("cannot decode the leading master's MasterInfo in {node}: {reason}")]
    Undecodable {
        /// The leader's znode.
        node: String,
        /// Why it could not be read.
        reason: String,
    },
    /// The leader's MasterInfo has no address to reach it at.
    #[error("the leading master's MasterInfo in {node} has no usable address")]
    NoAddress {
        /// The leader's znode.
        node: String,
    },
}

/// A parsed `zk://[user:password@]host:port[,host:port…]/path`, split as Mesos's
/// `zookeeper::URL::parse` splits it: the path starts at the first `/` after the
/// scheme (default `/`), credentials end at the last `@` before it.
#[derive(Clone, PartialEq, Eq)]
pub struct ZkUrl {
    /// `host:port[,host:port…]`, ZooKeeper's connect string.
    pub servers: String,
    /// The group's znode, without a trailing `/` (except the root).
    pub path: String,
    /// `user:password` for the `digest` scheme.
    pub digest: Option<String>,
}

/// The credentials never reach a log.
impl std::fmt::Debug for ZkUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkUrl")
            .field("servers", &self.servers)
            .field("path", &self.path)
            .field("digest", &self.digest.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl ZkUrl {
    /// Splits `url` as Mesos does (see [`ZkUrl`]); [`DetectError::BadUrl`] otherwise.
    pub fn parse(url: &str) -> Result<ZkUrl, DetectError> {
        // Never echo the credentials back in an error.
        let shown = redact(url);
        let bad = |reason: &str| DetectError::BadUrl {
            url: shown.clone(),
            reason: reason.to_owned(),
        };
        let rest = url
            .trim()
            .strip_prefix("zk://")
            .ok_or_else(|| bad("expecting 'zk://' at the beginning of the URL"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (digest, servers) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        if servers.is_empty() || servers.split(',').any(|s| s.trim().is_empty()) {
            return Err(bad("no ZooKeeper server"));
        }
        if let Some(digest) = digest
            && !digest.contains(':')
        {
            return Err(bad("credentials must be user:password"));
        }
        let mut path = path.to_owned();
        while path.len() > 1 && path.ends_with('/') {
            path.pop();
        }
        if path.contains("//") {
            return Err(bad("empty path segment"));
        }
        Ok(ZkUrl {
            servers: servers.to_owned(),
            path,
            digest: digest.map(str::to_owned),
        })
    }

    /// `zk://servers/path`, without credentials: for messages.
    pub fn display(&self) -> String {
        format!("zk://{}{}", self.servers, self.path)
    }

    fn child(&self, name: &str) -> String {
        if self.path == "/" {
            format!("/{name}")
        } else {
            format!("{}/{name}", self.path)
        }
    }
}

/// `zk://user:pass@…` → `zk://***@…`.
fn redact(url: &str) -> String {
    let Some(rest) = url.trim().strip_prefix("zk://") else {
        return url.to_owned();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("zk://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// The leading master's scheduler base URL, `http://ip:port`, read from the ZooKeeper
/// group at `zk_url`; waits up to `timeout` (connecting included) for a master to
/// appear.
pub async fn leading_master(zk_url: &str, timeout: Duration) -> Result<String, DetectError> {
    let (node, info) = leading_master_info(zk_url, timeout).await?;
    let url = master_url(&info).ok_or(DetectError::NoAddress { node })?;
    tracing::info!(master = %url, id = %info.id, "leading master detected");
    Ok(url)
}

/// The leading master's znode path and `MasterInfo`.
pub async fn leading_master_info(
    zk_url: &str,
    timeout: Duration,
) -> Result<(String, MasterInfo), DetectError> {
    let url = ZkUrl::parse(zk_url)?;
    let deadline = Instant::now() + timeout;
    let client = connect(&url, deadline, timeout).await?;
    let failed = |source: zookeeper_client::Error| DetectError::ZooKeeper {
        servers: url.servers.clone(),
        path: url.path.clone(),
        source,
    };
    loop {
        let watcher = match client.get_and_watch_children(&url.path).await {
            Ok((children, _, watcher)) => {
                if let Some((name, label)) = leader(&children) {
                    let node = url.child(name);
                    match client.get_data(&node).await {
                        Ok((data, _)) => {
                            let info = decode(&node, label, &data)?;
                            return Ok((node, info));
                        }
                        // Gone between the listing and the read: look again.
                        Err(zookeeper_client::Error::NoNode) => continue,
                        Err(e) => return Err(failed(e)),
                    }
                }
                tracing::debug!(path = %url.path, "no master in the group yet");
                watcher
            }
            Err(zookeeper_client::Error::NoNode) => {
                // The group does not exist yet: wait for it to be created.
                let (stat, watcher) = client
                    .check_and_watch_stat(&url.path)
                    .await
                    .map_err(failed)?;
                if stat.is_some() {
                    continue;
                }
                tracing::debug!(path = %url.path, "the group's znode does not exist yet");
                watcher
            }
            Err(e) => return Err(failed(e)),
        };
        if tokio::time::timeout_at(deadline, watcher.changed())
            .await
            .is_err()
        {
            return Err(DetectError::NoLeader {
                servers: url.servers.clone(),
                path: url.path.clone(),
                timeout,
            });
        }
    }
}

/// A session with the ensemble, bounded by `deadline`. Every server is tried once
/// (`fail_eagerly`), so a wrong address fails at once rather than at the deadline.
async fn connect(
    url: &ZkUrl,
    deadline: Instant,
    timeout: Duration,
) -> Result<zookeeper_client::Client, DetectError> {
    let mut connector = zookeeper_client::Client::connector()
        .with_session_timeout(SESSION_TIMEOUT)
        .with_connection_timeout(timeout.min(SESSION_TIMEOUT))
        .with_fail_eagerly();
    if let Some(digest) = &url.digest {
        connector = connector.with_auth("digest", digest.as_bytes());
    }
    let unreachable = |reason: String| DetectError::Unreachable {
        servers: url.servers.clone(),
        reason,
    };
    match tokio::time::timeout_at(deadline, connector.connect(&url.servers)).await {
        Err(_) => Err(unreachable(format!("no session within {timeout:?}"))),
        Ok(Ok(client)) => Ok(client),
        Ok(Err(zookeeper_client::Error::AuthFailed)) => Err(DetectError::AuthFailed {
            servers: url.servers.clone(),
        }),
        Ok(Err(zookeeper_client::Error::NoHosts)) => {
            Err(unreachable("no server accepted a connection".to_owned()))
        }
        Ok(Err(e)) => Err(unreachable(e.to_string())),
    }
}

/// The leader among `children`: the smallest sequence number, as Mesos's `Group` reads
/// names (split on `_`, empty pieces dropped; the last piece must be a number, the
/// first is the label when there are several).
fn leader(children: &[String]) -> Option<(&str, Option<&str>)> {
    children
        .iter()
        .filter_map(|name| {
            let tokens: Vec<&str> = name.split('_').filter(|t| !t.is_empty()).collect();
            let sequence: i32 = tokens.last()?.parse().ok()?;
            let label = (tokens.len() > 1).then(|| tokens[0]);
            Some((sequence, name.as_str(), label))
        })
        .min_by_key(|(sequence, _, _)| *sequence)
        .map(|(_, name, label)| (name, label))
}

/// The `MasterInfo` in a member's data, by its label (as `fetched()` in Mesos's
/// detector).
fn decode(node: &str, label: Option<&str>, data: &[u8]) -> Result<MasterInfo, DetectError> {
    let undecodable = |reason: String| DetectError::Undecodable {
        node: node.to_owned(),
        reason,
    };
    match label {
        // Checked: like stout's `protobuf::parse` and `ParseFromString`, a MasterInfo
        // without its required fields (id, ip, port) is refused.
        Some(JSON_LABEL) => codec::decode_checked::<MasterInfo>(ContentType::Json, data)
            .map_err(|e| undecodable(format!("not a JSON MasterInfo: {e}"))),
        Some(PROTOBUF_LABEL) => {
            tracing::warn!(%node, "the leading master uses the old protobuf format (info_)");
            codec::decode_checked::<MasterInfo>(ContentType::Protobuf, data)
                .map_err(|e| undecodable(format!("not a protobuf MasterInfo: {e}")))
        }
        None => {
            tracing::warn!(%node, "the leading master uses the oldest format (a bare UPID)");
            let pid = std::str::from_utf8(data)
                .map_err(|_| undecodable("the UPID is not UTF-8".to_owned()))?
                .trim()
                .to_owned();
            if upid_address(&pid).is_none() {
                return Err(undecodable(format!("{pid:?} is not a UPID (id@ip:port)")));
            }
            Ok(MasterInfo {
                pid: Some(pid),
                ..Default::default()
            })
        }
        Some(other) => Err(undecodable(format!("unknown label '{other}'"))),
    }
}

/// `http://host:port` of the master's scheduler API: from `pid` (what Mesos's scheduler
/// library uses), else `address`, else the packed `ip`/`port`.
pub fn master_url(info: &MasterInfo) -> Option<String> {
    let (host, port) = info
        .pid
        .as_deref()
        .and_then(upid_address)
        .or_else(|| {
            let address = info.address.as_ref()?;
            let port = u16::try_from(address.port).ok().filter(|p| *p != 0)?;
            let host = address
                .ip
                .clone()
                .filter(|ip| !ip.is_empty())
                .or_else(|| address.hostname.clone().filter(|h| !h.is_empty()))?;
            Some((host, port))
        })
        .or_else(|| {
            let port = u16::try_from(info.port).ok().filter(|p| *p != 0)?;
            // Packed in network byte order: 127.0.0.1 is 0x0100007f.
            let ip = Ipv4Addr::from(info.ip.to_le_bytes());
            (!ip.is_unspecified()).then(|| (ip.to_string(), port))
        })?;
    let host = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
        _ => host,
    };
    Some(format!("http://{host}:{port}"))
}

/// `id@host:port` → (host, port); the host may be a bracketed IPv6 address.
fn upid_address(pid: &str) -> Option<(String, u16)> {
    let (id, address) = pid.split_once('@')?;
    if id.is_empty() {
        return None;
    }
    let (host, port) = address.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use brine_proto::mesos::v1::Address;

    #[test]
    fn parses_urls_as_mesos() {
        let u = ZkUrl::parse("zk://a:2181,b:2181/mesos").ok();
        assert_eq!(
            u,
            Some(ZkUrl {
                servers: "a:2181,b:2181".into(),
                path: "/mesos".into(),
                digest: None
            })
        );
        let u = ZkUrl::parse(" zk://u:p@z:1/a/b/ ").ok();
        assert_eq!(
            u.as_ref().map(|u| (u.servers.as_str(), u.path.as_str())),
            Some(("z:1", "/a/b"))
        );
        assert_eq!(u.and_then(|u| u.digest), Some("u:p".into()));
        assert_eq!(
            ZkUrl::parse("zk://z:1").ok().map(|u| u.path),
            Some("/".into())
        );
        for bad in [
            "http://z/mesos",
            "zk:///mesos",
            "zk://a,,b/m",
            "zk://user@z/m",
        ] {
            assert!(ZkUrl::parse(bad).is_err(), "{bad}");
        }
        let e = ZkUrl::parse("zk://u:hunter2@/m")
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| !e.contains("hunter2")),
            "{e:?}"
        );
    }

    #[test]
    fn the_smallest_sequence_leads_whatever_its_label() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let c = names(&[
            "json.info_0000000012",
            "log_replicas",
            "json.info_0000000010",
        ]);
        assert_eq!(
            leader(&c),
            Some(("json.info_0000000010", Some("json.info")))
        );
        let c = names(&["json.info_0000000012", "info_0000000003", "0000000007"]);
        assert_eq!(leader(&c), Some(("info_0000000003", Some("info"))));
        let c = names(&["0000000007", "json.info_0000000012"]);
        assert_eq!(leader(&c), Some(("0000000007", None)));
        assert_eq!(leader(&names(&["log_replicas"])), None);
        assert_eq!(leader(&[]), None);
    }

    #[test]
    fn urls_come_from_the_pid_then_the_address() {
        let mut info = MasterInfo {
            pid: Some("master@10.0.0.5:5050".into()),
            address: Some(Address {
                hostname: Some("m1".into()),
                ip: Some("10.0.0.6".into()),
                port: 5051,
            }),
            ip: u32::from_le_bytes([10, 0, 0, 7]),
            port: 5052,
            ..Default::default()
        };
        assert_eq!(master_url(&info).as_deref(), Some("http://10.0.0.5:5050"));
        info.pid = None;
        assert_eq!(master_url(&info).as_deref(), Some("http://10.0.0.6:5051"));
        info.address = None;
        assert_eq!(master_url(&info).as_deref(), Some("http://10.0.0.7:5052"));
        info.pid = Some("master@[::1]:5050".into());
        assert_eq!(master_url(&info).as_deref(), Some("http://[::1]:5050"));
        assert_eq!(master_url(&MasterInfo::default()), None);
    }

    #[test]
    fn decodes_each_format() {
        let json = br#"{"id":"x","ip":16777343,"port":5050,"pid":"master@127.0.0.1:5050",
            "address":{"hostname":"localhost","ip":"127.0.0.1","port":5050},"version":"1.12.0",
            "capabilities":[{"type":"AGENT_UPDATE"}]}"#;
        let info = decode("/m/json.info_1", Some("json.info"), json).ok();
        assert_eq!(
            info.and_then(|i| master_url(&i)).as_deref(),
            Some("http://127.0.0.1:5050")
        );
        let bytes = prost::Message::encode_to_vec(&MasterInfo {
            id: "x".into(),
            pid: Some("master@127.0.0.2:5050".into()),
            ..Default::default()
        });
        let info = decode("/m/info_1", Some("info"), &bytes).ok();
        assert_eq!(
            info.and_then(|i| master_url(&i)).as_deref(),
            Some("http://127.0.0.2:5050")
        );
        let info = decode("/m/0000000001", None, b"master@127.0.0.3:5050").ok();
        assert_eq!(
            info.and_then(|i| master_url(&i)).as_deref(),
            Some("http://127.0.0.3:5050")
        );
        assert!(decode("/m/json.info_1", Some("json.info"), b"{not json").is_err());
        let e = decode(
            "/m/json.info_1",
            Some("json.info"),
            br#"{"pid":"master@1.2.3.4:5"}"#,
        );
        assert!(e.is_err_and(|e| e.to_string().contains("id")));
        assert!(decode("/m/x_1", Some("x"), b"{}").is_err());
        assert!(decode("/m/1", None, b"garbage").is_err());
    }
}
