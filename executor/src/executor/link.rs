//! The link to the agent: SUBSCRIBE (and again after a disconnection, with every update
//! still unacknowledged), the reader task that turns the event stream into inputs, and
//! the two sender tasks that carry calls. Status updates are recorded and sent from here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use brine_proto::mesos::v1::executor::{Call, call};
use brine_proto::mesos::v1::{ExecutorId, FrameworkId, TaskState};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::{Executor, ExecutorError, Input};
use crate::agent::{AgentLink, LinkError};
use crate::backoff::Reconnect;
use crate::runtime::monotonic_ns;
use crate::tasks::bench_timestamps;
use crate::updates::StatusSpec;

/// How long to wait before re-sending SUBSCRIBE when the agent answered the first one
/// with an error status (the reference default executor retries every second).
pub const SUBSCRIBE_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LinkState {
    Subscribing,
    Subscribed,
    /// Waiting to try again.
    Waiting,
    /// No more attempts will be made.
    Lost,
}

impl Executor {
    pub(super) fn start_subscription(&mut self) {
        self.sub += 1;
        self.link_state = LinkState::Subscribing;
        self.retry_at = None;
        let call = Call {
            executor_id: ExecutorId {
                value: self.env.executor_id.clone(),
            },
            framework_id: FrameworkId {
                value: self.env.framework_id.clone(),
            },
            r#type: Some(call::Type::Subscribe as i32),
            subscribe: Some(call::Subscribe {
                unacknowledged_tasks: self.tasks.unacknowledged(),
                unacknowledged_updates: self.updates.all(),
            }),
            ..Default::default()
        };
        self.subscribe_seq = self.updates.last_seq();
        let subscribe = &call.subscribe;
        tracing::debug!(
            attempt = self.reconnect.as_ref().map_or(1, |r| r.attempts() + 1),
            unacknowledged_tasks = subscribe
                .as_ref()
                .map_or(0, |s| s.unacknowledged_tasks.len()),
            unacknowledged_updates = subscribe
                .as_ref()
                .map_or(0, |s| s.unacknowledged_updates.len()),
            "subscribing"
        );
        tokio::spawn(read_subscription(
            self.link.clone(),
            call,
            self.sub,
            self.tx.clone(),
        ));
    }

    pub(super) fn on_connected(&mut self) {
        self.link_state = LinkState::Subscribed;
        self.generation.store(self.sub, Ordering::SeqCst);
        if self.connected_once {
            tracing::info!(
                unacknowledged_updates = self.updates.len(),
                unacknowledged_tasks = self.tasks.unacknowledged().len(),
                "re-subscribed to the agent"
            );
        }
        self.connected_once = true;
        self.reconnect = None;
        // Updates recorded while SUBSCRIBE was on its way were not in it.
        for update in self.updates.after(self.subscribe_seq) {
            self.enqueue_update(update);
        }
    }

    pub(super) fn on_disconnected(
        &mut self,
        reason: String,
        answered: bool,
    ) -> Result<(), ExecutorError> {
        let was_subscribed = self.link_state == LinkState::Subscribed;
        self.generation.store(u64::MAX, Ordering::SeqCst);
        self.link_state = LinkState::Waiting;
        let now = Instant::now();
        if !self.connected_once {
            if answered {
                tracing::warn!("SUBSCRIBE refused: {reason}; retrying in {SUBSCRIBE_RETRY:?}");
                self.retry_at = Some(now + SUBSCRIBE_RETRY);
                return Ok(());
            }
            return Err(ExecutorError::AgentUnreachable(reason));
        }
        let Some(recovery) = self.env.checkpoint else {
            tracing::warn!(
                "disconnected from the agent: {reason}; shutting down (the framework does not checkpoint)"
            );
            self.link_state = LinkState::Lost;
            self.begin_shutdown(format!("disconnected from the agent: {reason}"));
            return Ok(());
        };
        if was_subscribed {
            tracing::warn!(
                recovery_timeout = ?recovery.recovery_timeout,
                backoff_max = ?recovery.backoff_max,
                "disconnected from the agent: {reason}; re-subscribing"
            );
            self.reconnect = Some(Reconnect::new(
                now,
                recovery.recovery_timeout,
                recovery.backoff_max,
            ));
            self.start_subscription();
            return Ok(());
        }
        let reconnect = self.reconnect.get_or_insert_with(|| {
            Reconnect::new(now, recovery.recovery_timeout, recovery.backoff_max)
        });
        match reconnect.next_delay(now) {
            Some(delay) => {
                tracing::info!("re-subscription failed: {reason}; next attempt in {delay:?}");
                self.retry_at = Some(now + delay);
            }
            None => self.recovery_timed_out(&reason),
        }
        Ok(())
    }

    pub(super) fn recovery_timed_out(&mut self, reason: &str) {
        self.link_state = LinkState::Lost;
        self.retry_at = None;
        let timeout = self.env.checkpoint.map(|r| r.recovery_timeout);
        tracing::warn!(
            ?timeout,
            "recovery timeout exceeded ({reason}); shutting down"
        );
        self.begin_shutdown(format!("recovery timeout exceeded: {reason}"));
    }

    fn enqueue_update(&mut self, update: call::Update) {
        let call = self.call(call::Type::Update, |c| c.update = Some(update));
        let _ = self.updates_out.send((self.sub, call));
    }

    pub(super) fn call(&self, kind: call::Type, fill: impl FnOnce(&mut Call)) -> Call {
        let mut call = Call {
            executor_id: ExecutorId {
                value: self.env.executor_id.clone(),
            },
            framework_id: FrameworkId {
                value: self.env.framework_id.clone(),
            },
            r#type: Some(kind as i32),
            ..Default::default()
        };
        fill(&mut call);
        call
    }

    pub(super) fn send_status(&mut self, spec: StatusSpec) {
        let (task_id, state) = (spec.task_id.clone(), spec.state);
        let message = spec.message.clone().unwrap_or_default();
        let update = self
            .updates
            .record(spec, &self.env.executor_id, self.agent_id.as_deref());
        if self.link_state == LinkState::Subscribed {
            self.enqueue_update(update);
        }
        // Logged once the update is on its way. A task that simply ran and finished is
        // a debug line: at thousands of tasks a second, two log writes per task were a
        // measurable share of the warm start (bench/README.md); anything else is info.
        match state {
            TaskState::TaskRunning | TaskState::TaskFinished => {
                tracing::debug!(%task_id, state = state.as_str_name(), "status update");
            }
            _ => tracing::info!(%task_id, state = state.as_str_name(), %message, "status update"),
        }
    }
}

/// Reads one subscription: SUBSCRIBE, then every event, then why it ended.
async fn read_subscription(link: AgentLink, call: Call, sub: u64, tx: UnboundedSender<Input>) {
    let mut stream = match link.subscribe(&call).await {
        Ok(stream) => stream,
        Err(e) => {
            let _ = tx.send(Input::Disconnected {
                sub,
                answered: e.is_status(),
                reason: e.to_string(),
            });
            return;
        }
    };
    if tx.send(Input::Connected { sub }).is_err() {
        return;
    }
    loop {
        let reason = match stream.next().await {
            Ok(Some(event)) => {
                let decoded_ns = bench_timestamps().then(monotonic_ns);
                if tx
                    .send(Input::Event {
                        sub,
                        event: Box::new(event),
                        decoded_ns,
                    })
                    .is_err()
                {
                    return;
                }
                continue;
            }
            // One undecodable record: the framing is intact, carry on (as the
            // reference library does).
            Err(LinkError::Decode(e)) => {
                tracing::error!("cannot decode an event; skipped: {e}");
                continue;
            }
            Ok(None) => "the agent closed the event stream".to_owned(),
            Err(e) => e.to_string(),
        };
        let _ = tx.send(Input::Disconnected {
            sub,
            reason,
            answered: false,
        });
        return;
    }
}

/// Sends queued calls of the current subscription one after another; with
/// `latest_only`, a backlog is collapsed to its newest call (heartbeats supersede).
pub(super) async fn send_calls(
    link: AgentLink,
    mut rx: UnboundedReceiver<(u64, Call)>,
    generation: Arc<AtomicU64>,
    latest_only: bool,
) {
    let mut sender = link.sender();
    while let Some(mut next) = rx.recv().await {
        if latest_only {
            while let Ok(newer) = rx.try_recv() {
                next = newer;
            }
        }
        let (sub, call) = next;
        if sub != generation.load(Ordering::SeqCst) {
            tracing::debug!("dropping a call of a previous subscription");
            continue;
        }
        if let Err(e) = sender.send(&call).await {
            tracing::warn!("{} call failed: {e}", crate::agent::call_name(&call));
        }
    }
}
