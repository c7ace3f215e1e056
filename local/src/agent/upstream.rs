//! The calls the layer above (the local master, or a test) makes on the agent by id,
//! as Mesos's agent handles the master's messages: KillTask, FrameworkToExecutor
//! messages, StatusUpdateAcknowledgement, and a test hook that cuts a connection.

use std::io;
use std::sync::Arc;

use brine_proto::mesos::v1::executor::{Event, event};
use brine_proto::mesos::v1::{ExecutorId, FrameworkId, TaskId, TaskState, task_status};
use bytes::Bytes;

use super::AgentError;
use super::inner::{Inner, partition_aware};
use super::state::ExecutorState;
use super::status_updates::StreamKey;

impl Inner {
    pub fn kill_task(self: &Arc<Self>, fid: &FrameworkId, task_id: &TaskId) {
        let mut guard = self.lock();
        let st = &mut *guard;
        let Some(fw) = st.frameworks.get_mut(&fid.value) else {
            tracing::warn!(framework = %fid.value, task = %task_id.value, "ignoring kill of a task of an unknown framework");
            return;
        };
        let aware = partition_aware(&fw.info);
        let Some(exec) = fw
            .executors
            .values_mut()
            .find(|e| e.has_task(&task_id.value))
        else {
            let state = if aware {
                TaskState::TaskDropped
            } else {
                TaskState::TaskLost
            };
            let status = self.agent_status(
                task_id,
                state,
                task_status::Reason::ExecutorTerminated,
                "Cannot find executor",
                None,
            );
            self.process_update(st, &fid.value, status, false);
            return;
        };
        match exec.state {
            ExecutorState::Registering | ExecutorState::Running
                if exec.queued.iter().any(|t| t.task_id == *task_id) =>
            {
                let status = self.agent_status(
                    task_id,
                    TaskState::TaskKilled,
                    task_status::Reason::TaskKilledDuringLaunch,
                    "Killed before delivery to the executor",
                    Some(&exec.info.executor_id),
                );
                let eid = exec.info.executor_id.value.clone();
                self.process_update(st, &fid.value, status, false);
                if let Some(exec) = st
                    .frameworks
                    .get_mut(&fid.value)
                    .and_then(|f| f.executors.get_mut(&eid))
                    && !exec.ever_sent_task
                    && exec.queued.is_empty()
                {
                    self.shutdown_locked(exec, &fid.value);
                }
            }
            ExecutorState::Running => {
                let live = exec
                    .launched
                    .get(&task_id.value)
                    .is_some_and(|t| !t.state.is_terminal());
                if live {
                    exec.send(&Event {
                        r#type: Some(event::Type::Kill as i32),
                        kill: Some(event::Kill {
                            task_id: task_id.clone(),
                            kill_policy: None,
                        }),
                        ..Default::default()
                    });
                }
            }
            _ => {
                tracing::warn!(task = %task_id.value, state = ?exec.state, "ignoring kill: executor is terminating")
            }
        }
    }

    pub fn send_message(
        &self,
        fid: &FrameworkId,
        eid: &ExecutorId,
        data: Bytes,
    ) -> Result<(), AgentError> {
        let mut st = self.lock();
        let exec = st.executor_mut(fid, eid)?;
        if exec.state != ExecutorState::Running {
            tracing::warn!(executor = %eid.value, state = ?exec.state, "dropping framework message: executor is not running");
            return Ok(());
        }
        exec.send(&Event {
            r#type: Some(event::Type::Message as i32),
            message: Some(event::Message { data }),
            ..Default::default()
        });
        Ok(())
    }

    pub fn disconnect(&self, fid: &FrameworkId, eid: &ExecutorId) -> Result<(), AgentError> {
        let mut st = self.lock();
        let exec = st.executor_mut(fid, eid)?;
        let conn = exec
            .conn
            .take()
            .ok_or_else(|| AgentError::NotConnected(eid.value.clone()))?;
        // An error item makes the server abort the connection mid-body, as a network
        // failure would, instead of ending the chunked body cleanly.
        let _ = conn.tx.send(Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "disconnected by the agent",
        )));
        tracing::info!(executor = %eid.value, "dropped the executor's SUBSCRIBE connection");
        Ok(())
    }

    pub fn acknowledge(
        self: &Arc<Self>,
        fid: &FrameworkId,
        task_id: &TaskId,
        uuid: &[u8],
    ) -> Result<(), AgentError> {
        let mut st = self.lock();
        let key: StreamKey = (fid.value.clone(), task_id.value.clone());
        let next = st.updates.acknowledge(&key, uuid)?;
        if let Some(run) = st.runs.get(&key) {
            self.checkpointed(
                "task.updates",
                self.meta.checkpoint_ack(run, &task_id.value, uuid),
            );
            if !st.updates.has_stream(&key) {
                st.runs.remove(&key);
            }
        }
        if let Some(next) = next {
            self.forward_head(&mut st, &fid.value, next);
        }
        Ok(())
    }
}
