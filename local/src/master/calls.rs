//! The scheduler calls other than SUBSCRIBE and ACCEPT, after the checks of
//! `Master::Http::scheduler` (`src/master/http.cpp`) that need the framework: TEARDOWN,
//! DECLINE, REVIVE, SUPPRESS, KILL, SHUTDOWN, ACKNOWLEDGE, RECONCILE, MESSAGE; the
//! calls this master does not implement are refused with `501 Not Implemented`.

use brine_proto::mesos::v1::scheduler::{Call, call};
use brine_proto::mesos::v1::{FrameworkId, OfferId};
use http::StatusCode;

use super::command::CallResult;
use super::offers::AgentOp;
use super::reconcile;
use super::state::{State, status_event};

/// A call this master does not implement, answered as Mesos answers a call type it has
/// no handler for: `Master::Http::scheduler` (`src/master/http.cpp`) returns
/// `NotImplemented()` for `UNKNOWN` (and after its switch), after the same framework and
/// stream checks; libprocess's `NotImplemented()`
/// (`3rdparty/libprocess/include/process/http.hpp`) is `501` with the body
/// `501 Not Implemented.`. Mesos itself implements every other type; the local master
/// has no inverse offers, operation feedback, resource requests or framework updates,
/// so a scheduler that relies on them hears so instead of a `202` that did nothing.
fn not_implemented(kind: call::Type) -> CallResult {
    tracing::warn!(
        call = kind.as_str_name(),
        "call not implemented by the local master: 501"
    );
    Err((
        StatusCode::NOT_IMPLEMENTED,
        "501 Not Implemented.".to_owned(),
    ))
}

impl State {
    /// The checks of `Master::Http::scheduler` that need the framework, then the call.
    pub(super) fn call(&mut self, call: Call, stream_id: Option<String>) -> CallResult {
        let bad = |m: String| Err((StatusCode::BAD_REQUEST, m));
        let framework_id = call.framework_id.clone().unwrap_or_default().value;
        let Some(framework) = self.frameworks.get(&framework_id) else {
            return bad("Framework cannot be found".to_owned());
        };
        let Some(subscription) = &framework.subscription else {
            return Err((
                StatusCode::FORBIDDEN,
                "Framework is not subscribed".to_owned(),
            ));
        };
        let Some(stream_id) = stream_id else {
            return bad(
                "All non-subscribe calls should include the 'Mesos-Stream-Id' header".to_owned(),
            );
        };
        if stream_id != subscription.stream_id {
            return bad(format!(
                "The stream ID '{stream_id}' included in this request didn't match the stream ID \
                 currently associated with framework ID {framework_id}"
            ));
        }
        let kind = call.r#type();
        self.count(&format!(
            "master/messages_{}",
            kind.as_str_name().to_ascii_lowercase()
        ));
        match kind {
            call::Type::Teardown => {
                tracing::info!(framework = %framework_id, "TEARDOWN");
                self.remove_framework(&framework_id);
            }
            call::Type::Accept => {
                if let Some(accept) = call.accept {
                    self.accept(&framework_id, accept);
                }
            }
            call::Type::Decline => {
                if let Some(decline) = call.decline {
                    self.decline(&framework_id, &decline.offer_ids, decline.filters.as_ref());
                }
            }
            call::Type::Revive => {
                // `reviveOffers`: filters cleared, then a batch allocation at once (for
                // every framework and agent, as Mesos's `generateOffers()`).
                if let Some(f) = self.frameworks.get_mut(&framework_id) {
                    f.suppressed = false;
                    f.filters.clear();
                }
                self.allocate_now = true;
            }
            call::Type::Suppress => {
                if let Some(f) = self.frameworks.get_mut(&framework_id) {
                    f.suppressed = true;
                }
            }
            call::Type::Kill => {
                if let Some(kill) = call.kill {
                    self.kill(&framework_id, kill);
                }
            }
            call::Type::Shutdown => {
                if let Some(shutdown) = call.shutdown
                    && let Some(i) = self.agent_index(&shutdown.agent_id.value)
                {
                    self.agents[i].send(AgentOp::Shutdown {
                        framework_id: FrameworkId {
                            value: framework_id.clone(),
                        },
                        executor_id: shutdown.executor_id,
                    });
                }
            }
            call::Type::Acknowledge => {
                if let Some(ack) = call.acknowledge {
                    self.acknowledge(&framework_id, ack);
                }
            }
            call::Type::Reconcile => {
                if let Some(reconcile) = call.reconcile
                    && let Some(framework) = self.frameworks.get(&framework_id)
                {
                    let answers = reconcile::answers(framework, &reconcile, |id| {
                        self.agents.iter().any(|a| a.active && a.id.value == id)
                    });
                    if let Some(framework) = self.frameworks.get_mut(&framework_id) {
                        for status in answers {
                            framework.send(&status_event(status));
                        }
                    }
                }
            }
            call::Type::Message => {
                if let Some(message) = call.message
                    && let Some(i) = self.agent_index(&message.agent_id.value)
                {
                    self.count("master/valid_framework_to_executor_messages");
                    self.agents[i].send(AgentOp::Message {
                        framework_id: FrameworkId {
                            value: framework_id.clone(),
                        },
                        executor_id: message.executor_id,
                        data: message.data,
                    });
                }
            }
            // SUBSCRIBE never comes here (`http` sends it as `Command::Subscribe`).
            call::Type::Subscribe
            | call::Type::AcceptInverseOffers
            | call::Type::DeclineInverseOffers
            | call::Type::AcknowledgeOperationStatus
            | call::Type::ReconcileOperations
            | call::Type::Request
            | call::Type::UpdateFramework
            | call::Type::Unknown => return not_implemented(kind),
        }
        Ok(())
    }

    fn decline(
        &mut self,
        framework_id: &str,
        offer_ids: &[OfferId],
        filters: Option<&brine_proto::mesos::v1::Filters>,
    ) {
        let refuse = filters.map(|f| f.refuse_seconds()).unwrap_or(5.0);
        for id in offer_ids {
            let belongs = self
                .offers
                .get(&id.value)
                .is_some_and(|o| o.offer.framework_id.value == framework_id);
            if belongs && let Some(o) = self.offers.remove(&id.value) {
                self.agents[o.agent].offered = self.agents[o.agent].offered.sub(&o.resources);
                if let Some(f) = self.frameworks.get_mut(framework_id) {
                    f.offers_declined += 1;
                }
                self.add_filter(framework_id, o.agent, o.resources, refuse);
            }
        }
    }

    fn kill(&mut self, framework_id: &str, kill: call::Kill) {
        let task = self
            .frameworks
            .get(framework_id)
            .and_then(|f| f.task(&kill.task_id))
            .map(|t| t.agent_id.clone());
        match task {
            None => {
                // Mesos answers a KILL of an unknown task with a reconciliation.
                let reconcile = call::Reconcile {
                    tasks: vec![call::reconcile::Task {
                        task_id: kill.task_id,
                        agent_id: kill.agent_id,
                    }],
                };
                if let Some(framework) = self.frameworks.get(framework_id) {
                    let answers = reconcile::answers(framework, &reconcile, |id| {
                        self.agents.iter().any(|a| a.active && a.id.value == id)
                    });
                    for status in answers {
                        self.send_to(framework_id, status);
                    }
                }
            }
            Some(agent_id) => {
                if kill.agent_id.as_ref().is_some_and(|a| *a != agent_id) {
                    return;
                }
                if let Some(i) = self.agent_index(&agent_id.value) {
                    self.agents[i].send(AgentOp::Kill {
                        framework_id: FrameworkId {
                            value: framework_id.to_owned(),
                        },
                        task_id: kill.task_id,
                    });
                }
            }
        }
    }

    fn acknowledge(&mut self, framework_id: &str, ack: call::Acknowledge) {
        if let Some(framework) = self.frameworks.get_mut(framework_id)
            && let Some(task) = framework.tasks.get(&ack.task_id.value)
            && task.state.is_terminal()
            && task
                .latest
                .as_ref()
                .and_then(|s| s.uuid.as_ref())
                .is_some_and(|u| *u == ack.uuid)
        {
            framework.tasks.remove(&ack.task_id.value);
        }
        if let Some(i) = self.agent_index(&ack.agent_id.value) {
            self.agents[i].send(AgentOp::Acknowledge {
                framework_id: FrameworkId {
                    value: framework_id.to_owned(),
                },
                task_id: ack.task_id,
                uuid: ack.uuid,
            });
        }
    }
}
