//! The framework registry: who is subscribed, on which stream, with which filters, and
//! the tasks each framework has.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::time::Instant;

use brine_proto::codec::{self, ContentType};
use brine_proto::mesos::v1::scheduler::{Event, event};
use brine_proto::mesos::v1::{AgentId, FrameworkId, FrameworkInfo, TaskId, framework_info};
use brine_proto::recordio;
use bytes::Bytes;
use tokio::sync::mpsc;

use super::resources::Resources;
use super::tasks::Task;
use super::validation;

/// One SUBSCRIBE connection: its stream id and where its events go.
#[derive(Debug)]
pub struct Subscription {
    pub stream_id: String,
    pub content_type: ContentType,
    pub tx: mpsc::UnboundedSender<Result<Bytes, io::Error>>,
}

impl Subscription {
    /// Encodes `event` as one RecordIO record; false when the connection is gone.
    pub fn send(&self, event: &Event) -> bool {
        match codec::encode(self.content_type, event) {
            Ok(payload) => self.tx.send(Ok(recordio::encode(&payload))).is_ok(),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a scheduler event");
                false
            }
        }
    }
}

/// A refused-offer filter (DECLINE, or the unused part of an ACCEPT): while it lasts,
/// this agent's available resources are not offered to the framework if they fit in
/// `resources` (`RefusedOfferFilter::filter`: `refused.contains(available)`). It ends
/// at `until`; only the next batch allocation then offers what it hid.
#[derive(Debug, Clone)]
pub struct Filter {
    pub resources: Resources,
    pub until: Instant,
}

#[derive(Debug)]
pub struct Framework {
    pub id: FrameworkId,
    pub info: FrameworkInfo,
    pub subscription: Option<Subscription>,
    /// Bumped at every (re)subscription and disconnection, so a stale failover timer
    /// can tell it is stale.
    pub generation: u64,
    pub suppressed: bool,
    /// Refused-offer filters per agent id; each lasts on its own, as Mesos keeps a set
    /// of them per agent.
    pub filters: HashMap<String, Vec<Filter>>,
    /// Tasks the master knows (non-terminal, or terminal and not yet acknowledged).
    pub tasks: BTreeMap<String, Task>,
    pub registered_time: f64,
    pub events_sent: u64,
    pub offers_sent: u64,
    pub offers_declined: u64,
    pub offers_accepted: u64,
}

impl Framework {
    pub fn new(id: FrameworkId, info: FrameworkInfo, now: f64) -> Framework {
        Framework {
            id,
            info,
            subscription: None,
            generation: 0,
            suppressed: false,
            filters: HashMap::new(),
            tasks: BTreeMap::new(),
            registered_time: now,
            events_sent: 0,
            offers_sent: 0,
            offers_declined: 0,
            offers_accepted: 0,
        }
    }

    pub fn partition_aware(&self) -> bool {
        self.info
            .capabilities
            .iter()
            .any(|c| c.r#type() == framework_info::capability::Type::PartitionAware)
    }

    pub fn multi_role(&self) -> bool {
        validation::multi_role(&self.info)
    }

    /// The role offers are allocated to: the first of `roles` for a MULTI_ROLE
    /// framework (none when it has no roles: such a framework gets no offers, as in
    /// Mesos), else `role` (`*` when not set).
    pub fn role(&self) -> Option<String> {
        if self.multi_role() {
            self.info.roles.first().cloned()
        } else {
            Some(self.info.role().to_owned())
        }
    }

    pub fn connected(&self) -> bool {
        self.subscription.is_some()
    }

    /// Sends an event if subscribed; a send to a closed stream is logged and dropped.
    pub fn send(&mut self, event: &Event) {
        if let Some(subscription) = &self.subscription {
            if subscription.send(event) {
                self.events_sent += 1;
            } else {
                tracing::debug!(framework = %self.id.value, "event for a closed stream dropped");
            }
        } else {
            tracing::debug!(framework = %self.id.value, "event for a disconnected framework dropped");
        }
    }

    /// Whether an offer of `resources` on `agent` is filtered now.
    pub fn filtered(&self, agent: &AgentId, resources: &Resources, now: Instant) -> bool {
        self.filters.get(&agent.value).is_some_and(|filters| {
            filters
                .iter()
                .any(|f| now < f.until && f.resources.contains(resources))
        })
    }

    /// Forgets the filters that ended before `now` (Mesos's `expire`: no allocation).
    pub fn expire_filters(&mut self, now: Instant) {
        self.filters.retain(|_, filters| {
            filters.retain(|f| now < f.until);
            !filters.is_empty()
        });
    }

    pub fn task(&self, task_id: &TaskId) -> Option<&Task> {
        self.tasks.get(&task_id.value)
    }
}

/// A scheduler `Event` of type `t`.
pub fn event(t: event::Type) -> Event {
    Event {
        r#type: Some(t as i32),
        ..Default::default()
    }
}
