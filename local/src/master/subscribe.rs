//! Frameworks coming and going, as `Master::subscribe` / `_subscribe`,
//! `Master::exited` and `Master::removeFramework` have them: SUBSCRIBE (refused with
//! an ERROR on the stream, or added, re-activated or failed over), the HEARTBEATs, a
//! closed stream and its failover timeout, and removal (TEARDOWN or timeout).

use std::io;
use std::time::Duration;

use brine_proto::codec::ContentType;
use brine_proto::mesos::v1::scheduler::{Call, event};
use brine_proto::mesos::v1::{ExecutorId, FrameworkId};
use bytes::Bytes;
use tokio::sync::mpsc;

use super::command::{Command, StreamGuard, Subscribed};
use super::frameworks::{Framework, Subscription, event};
use super::offers::AgentOp;
use super::state::State;
use super::tasks::now_secs;
use super::validation;

impl State {
    /// `Master::subscribe` / `_subscribe`: a FrameworkInfo the master refuses gets an
    /// ERROR event on the `200` stream, which then ends (Mesos's `refuseSubscription`);
    /// otherwise the framework is added, re-activated or failed over.
    pub(super) fn subscribe(&mut self, call: Call, content_type: ContentType) -> Subscribed {
        let (mut info, suppressed_roles) = call
            .subscribe
            .map(|s| (s.framework_info, s.suppressed_roles))
            .unwrap_or_default();
        if info.id.as_ref().is_some_and(|id| id.value.is_empty()) {
            info.id = None;
        }
        let stream_id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = mpsc::unbounded_channel();
        let subscription = Subscription {
            stream_id: stream_id.clone(),
            content_type,
            tx,
        };
        self.count(if info.id.is_some() {
            "master/messages_reregister_framework"
        } else {
            "master/messages_register_framework"
        });
        if let Err(message) = self.validate_subscription(&info, &suppressed_roles) {
            tracing::info!(framework = %info.name, error = %message, "refusing subscription");
            let mut e = event(event::Type::Error);
            e.error = Some(event::Error { message });
            subscription.send(&e);
            // Dropping the only sender ends the stream (terminating chunk).
            drop(subscription);
            return self.answer(stream_id, content_type, rx, String::new());
        }
        let now = now_secs();
        let framework_id = match info.id.clone() {
            // A known id, or an unknown one taken as is (Mesos recovers the framework,
            // as after a master failover).
            Some(id) => id,
            None => {
                let id = FrameworkId {
                    value: format!("{}-{:04}", self.master_info.id, self.next_framework),
                };
                self.next_framework += 1;
                id
            }
        };
        let key = framework_id.value.clone();
        info.id = Some(framework_id.clone());
        let suppress = self.framework_role_suppressed(&info, &suppressed_roles);
        let existing = self.frameworks.contains_key(&key);
        let framework = self
            .frameworks
            .entry(key.clone())
            .or_insert_with(|| Framework::new(framework_id.clone(), info.clone(), now));
        // Added (new or recovered) or re-activated: `addFramework` / `activateFramework`
        // allocate at once. Failing over a connected framework does neither; the offers
        // it had go back to the pool for the next batch allocation.
        self.allocate_now = !existing || !framework.connected();
        if let Some(old) = framework.subscription.take() {
            // Mesos tells the old connection before closing it.
            let mut e = event(event::Type::Error);
            e.error = Some(event::Error {
                message: "Framework failed over".to_owned(),
            });
            old.send(&e);
            tracing::info!(framework = %key, "framework failed over to a new connection");
        }
        if existing {
            // `preserveImmutableFields`.
            info.user = framework.info.user.clone();
            info.checkpoint = framework.info.checkpoint;
        }
        framework.info = info;
        framework.generation += 1;
        if framework.suppressed && !suppress {
            // `reviveRoles`: un-suppressing a role clears its filters.
            framework.filters.clear();
        }
        framework.suppressed = suppress;
        framework.subscription = Some(subscription);
        let mut subscribed = event(event::Type::Subscribed);
        subscribed.subscribed = Some(event::Subscribed {
            framework_id: framework_id.clone(),
            heartbeat_interval_seconds: Some(self.config.heartbeat_interval.as_secs_f64()),
            master_info: Some(self.master_info.clone()),
        });
        framework.send(&subscribed);
        let heartbeat = event(event::Type::Heartbeat);
        framework.send(&heartbeat);
        if let Some(sub) = &framework.subscription {
            spawn_heartbeats(sub, self.config.heartbeat_interval);
        }
        // Offers made on the previous connection are withdrawn (Mesos discards them).
        self.recover_offers_of(&key);
        tracing::info!(framework = %key, stream = %stream_id, "framework subscribed");
        self.answer(stream_id, content_type, rx, key)
    }

    fn answer(
        &self,
        stream_id: String,
        content_type: ContentType,
        rx: mpsc::UnboundedReceiver<Result<Bytes, io::Error>>,
        framework_id: String,
    ) -> Subscribed {
        Subscribed {
            stream_id: stream_id.clone(),
            content_type,
            rx,
            guard: StreamGuard {
                tx: self.tx.clone(),
                framework_id,
                stream_id,
            },
        }
    }

    /// The checks of `Master::subscribe` and `_subscribe` that can refuse a
    /// subscription, in Mesos's order: `validateFramework` (FrameworkInfo, then a
    /// removed framework's id), the suppressed roles, then for a known framework
    /// `validateUpdate` (after `preserveImmutableFields`, only the principal can differ).
    fn validate_subscription(
        &self,
        info: &brine_proto::mesos::v1::FrameworkInfo,
        suppressed_roles: &[String],
    ) -> Result<(), String> {
        validation::validate_framework(info)?;
        if let Some(id) = &info.id
            && self.completed.iter().any(|f| f.id == *id)
        {
            return Err("Framework has been removed".to_owned());
        }
        validation::validate_suppressed_roles(info, suppressed_roles)?;
        if let Some(id) = &info.id
            && let Some(framework) = self.frameworks.get(&id.value)
            && framework.info.principal != info.principal
        {
            return Err("Changing framework's principal is not allowed.".to_owned());
        }
        Ok(())
    }

    /// Whether the role the framework is offered in is one of `suppressed_roles`.
    fn framework_role_suppressed(
        &self,
        info: &brine_proto::mesos::v1::FrameworkInfo,
        suppressed_roles: &[String],
    ) -> bool {
        let role = if validation::multi_role(info) {
            info.roles.first().map(String::as_str)
        } else {
            Some(info.role())
        };
        role.is_some_and(|r| suppressed_roles.iter().any(|s| s == r))
    }

    pub(super) fn stream_closed(&mut self, framework_id: &str, stream_id: &str) {
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        if framework
            .subscription
            .as_ref()
            .is_none_or(|s| s.stream_id != stream_id)
        {
            return;
        }
        framework.subscription = None;
        framework.generation += 1;
        // `deactivateFramework` forgets the framework's filters.
        framework.filters.clear();
        let generation = framework.generation;
        let timeout = framework.info.failover_timeout.unwrap_or(0.0);
        tracing::info!(framework = %framework_id, failover_timeout = timeout, "framework disconnected");
        self.recover_offers_of(framework_id);
        if timeout > 0.0 && timeout.is_finite() {
            let tx = self.tx.clone();
            let framework_id = framework_id.to_owned();
            let delay = Duration::from_secs_f64(timeout.min(1e9));
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = tx.send(Command::FailoverExpired {
                    framework_id,
                    generation,
                });
            });
        } else {
            self.remove_framework(framework_id);
        }
    }

    /// Teardown or failover timeout: the stream ends, its executors are shut down, its
    /// offers go back to the pool, and it is listed as completed.
    pub(super) fn remove_framework(&mut self, framework_id: &str) {
        let Some(mut framework) = self.frameworks.remove(framework_id) else {
            return;
        };
        framework.subscription = None;
        self.recover_offers_of(framework_id);
        for slot in &self.agents {
            for (fid, eid) in slot.executors.keys() {
                if fid == framework_id {
                    slot.send(AgentOp::Shutdown {
                        framework_id: framework.id.clone(),
                        executor_id: ExecutorId { value: eid.clone() },
                    });
                }
            }
        }
        for task in framework.tasks.values() {
            if !task.state.is_terminal()
                && task.executor_id.is_none()
                && let Some(i) = self.agent_index(&task.agent_id.value)
            {
                self.agents[i].send(AgentOp::Kill {
                    framework_id: framework.id.clone(),
                    task_id: task.info.task_id.clone(),
                });
            }
        }
        tracing::info!(framework = %framework_id, "framework removed");
        self.completed.push(framework);
        if self.completed.len() > 50 {
            self.completed.remove(0);
        }
    }
}

/// HEARTBEAT every `interval` while the subscription's stream is open (the one right
/// after SUBSCRIBED is sent by `subscribe`).
fn spawn_heartbeats(subscription: &Subscription, interval: Duration) {
    let weak = subscription.tx.downgrade();
    let Ok(payload) =
        brine_proto::codec::encode(subscription.content_type, &event(event::Type::Heartbeat))
    else {
        return;
    };
    let record = brine_proto::recordio::encode(&payload);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            ticks.tick().await;
            let Some(tx) = weak.upgrade() else { break };
            if tx.send(Ok(record.clone())).is_err() {
                break;
            }
        }
    });
}
