//! The agent's events, each to its handler: SUBSCRIBED (the setup, once), LAUNCH and
//! LAUNCH_GROUP, KILL, ACKNOWLEDGED, the scheduler's control MESSAGEs, SHUTDOWN.

use std::sync::Arc;
use std::time::Instant;

use brine_proto::mesos::v1::executor::{Event, event};
use brine_proto::payload::{Payload, SchedulerMessage};

use super::setup::Setup;
use super::{Executor, ExecutorError};
use crate::tasks::Resources;

impl Executor {
    pub(super) fn on_event(
        &mut self,
        event: Event,
        decoded_ns: Option<u64>,
    ) -> Result<(), ExecutorError> {
        use event::Type;
        let kind = event.r#type();
        tracing::debug!(event = kind.as_str_name(), "event");
        match kind {
            Type::Subscribed => match event.subscribed {
                Some(subscribed) => self.on_subscribed(subscribed)?,
                None => tracing::warn!("SUBSCRIBED event without its body"),
            },
            Type::Launch => match event.launch {
                Some(launch) => self.launch(launch.task, decoded_ns),
                None => tracing::warn!("LAUNCH event without its body"),
            },
            Type::LaunchGroup => match event.launch_group {
                // Each task of the group runs on its own (see the README).
                Some(group) => {
                    for task in group.task_group.tasks {
                        self.launch(task, decoded_ns);
                    }
                }
                None => tracing::warn!("LAUNCH_GROUP event without its body"),
            },
            Type::Kill => match event.kill {
                Some(kill) => self.kill(&kill.task_id.value),
                None => tracing::warn!("KILL event without its body"),
            },
            Type::Acknowledged => match event.acknowledged {
                Some(ack) => self.acknowledged(&ack.task_id.value, &ack.uuid),
                None => tracing::warn!("ACKNOWLEDGED event without its body"),
            },
            Type::Message => match event.message {
                Some(message) => self.on_message(&message.data),
                None => tracing::warn!("MESSAGE event without its body"),
            },
            Type::Shutdown => self.begin_shutdown("SHUTDOWN from the agent".into()),
            Type::Error => tracing::error!(
                message = event.error.as_ref().map_or("", |e| e.message.as_str()),
                "ERROR event from the agent"
            ),
            Type::Heartbeat => {}
            Type::Unknown => tracing::warn!("ignoring an event of unknown type"),
        }
        Ok(())
    }

    fn on_subscribed(&mut self, subscribed: event::Subscribed) -> Result<(), ExecutorError> {
        self.agent_id = subscribed.agent_info.id.map(|id| id.value);
        self.lane
            .set_agent_id(self.agent_id.as_deref().unwrap_or_default());
        if self.setup.is_some() {
            tracing::info!("SUBSCRIBED again");
            return Ok(());
        }
        let info = subscribed.executor_info;
        let setup = Setup::new(&self.env, &info)?;
        let own = Resources::from_mesos(&info.resources);
        self.tasks.set_own(own);
        tracing::info!(
            agent_id = self.agent_id.as_deref().unwrap_or(""),
            hostname = %subscribed.agent_info.hostname,
            container_id = subscribed.container_id.as_ref().map_or("", |c| c.value.as_str()),
            own_cpus = own.cpus,
            own_mem_mb = own.mem_mb,
            heartbeat_interval = ?setup.config.heartbeat_interval,
            idle_timeout = ?setup.config.idle_timeout,
            dataset = ?setup.config.dataset,
            "subscribed"
        );
        self.setup = Some(setup);
        let now = Instant::now();
        self.next_heartbeat = Some(now);
        if self.tasks.active_count() == 0 {
            self.idle_since = Some(now);
        }
        Ok(())
    }

    fn acknowledged(&mut self, task_id: &str, uuid: &[u8]) {
        match self.updates.acknowledge(uuid) {
            Some(task) => {
                if task != task_id {
                    tracing::warn!(task_id, update_task = %task, "ACKNOWLEDGED names another task than its update");
                }
                let outstanding = self.updates.has_task(&task);
                self.tasks.acknowledge(&task, outstanding);
            }
            None => tracing::warn!(task_id, "ACKNOWLEDGED for an unknown update; ignored"),
        }
    }

    fn on_message(&mut self, data: &[u8]) {
        let message = match SchedulerMessage::decode(data) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("ignoring a framework message that is not a SchedulerMessage: {e}");
                return;
            }
        };
        let Some(setup) = &self.setup else {
            tracing::warn!("ignoring a control message received before configuration");
            return;
        };
        match message {
            SchedulerMessage::Prefetch { module } => {
                let runtime = Arc::clone(&setup.runtime);
                tokio::task::spawn_blocking(move || match runtime.load(&module) {
                    Ok(_) => tracing::info!(hash = %module.hash, "prefetched module"),
                    Err(e) => tracing::warn!(hash = %module.hash, "prefetch failed: {e}"),
                });
            }
            SchedulerMessage::Evict { hash } => {
                let was = setup.runtime.evict(&hash);
                tracing::info!(%hash, in_memory = was, "evicted module");
            }
            SchedulerMessage::Drain => {
                tracing::info!("draining: no new tasks; shutting down once the running ones end");
                self.draining = true;
                if self.tasks.active_count() == 0 {
                    self.begin_shutdown("drained".into());
                }
            }
            SchedulerMessage::Lane(endpoint) => {
                if self.lane.set_endpoint(endpoint) {
                    self.lane_lost();
                }
            }
        }
    }
}
