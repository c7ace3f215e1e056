//! One executor container's life, run in the background after `launch` registered the
//! executor: sandbox, fetch, cgroup, environment, spawn, wait, and the clean-up after
//! the process exits (then `termination` takes over). Launch failures end the
//! executor with Mesos's `REASON_CONTAINER_LAUNCH_FAILED`.

use std::collections::BTreeMap;
use std::sync::Arc;

use brine_proto::duration;
use brine_proto::mesos::v1::{ExecutorInfo, TaskState, task_status};

use super::checkpoint::RunKey;
use super::inner::Inner;
use super::state::{Executor, ExecutorState, Termination};
use super::{fetcher, launcher, sandbox};

impl Inner {
    /// Sandbox, fetch, cgroup, spawn, wait: the life of one executor process.
    pub(super) async fn run_executor(self: Arc<Self>, fid: String, eid: String, cid: String) {
        let Some((info, sandbox_dir)) =
            self.with_executor(&fid, &eid, &cid, |e| (e.info.clone(), e.sandbox.clone()))
        else {
            return;
        };
        let created = {
            let _no_gc = self.gc.hold().await;
            sandbox::create(&sandbox_dir)
        };
        if let Err(e) = created {
            return self
                .fail_launch(
                    &fid,
                    &eid,
                    &cid,
                    format!("Failed to create sandbox '{}': {e}", sandbox_dir.display()),
                )
                .await;
        }
        let command = info.command.clone().unwrap_or_default();
        match fetcher::fetch_all(&command.uris, &sandbox_dir, &self.config.fetcher_cache_dir).await
        {
            Ok(_) => self.lock().metrics.fetches_succeeded += 1,
            Err(e) => {
                self.lock().metrics.fetches_failed += 1;
                return self.fail_launch(&fid, &eid, &cid, e.to_string()).await;
            }
        }
        let checkpoint = self
            .lock()
            .frameworks
            .get(&fid)
            .map(|f| f.info.checkpoint())
            .unwrap_or(false);
        if self.with_executor(&fid, &eid, &cid, |e| e.state == ExecutorState::Terminating)
            != Some(false)
        {
            // Shut down or timed out while fetching.
            return self.on_exit(&fid, &eid, &cid, None).await;
        }
        let cgroup = match self.cgroups.create(&cid) {
            Ok(cgroup) => cgroup,
            Err(e) => {
                tracing::warn!(container = %cid, error = %e, "cannot create the executor's cgroup; running it unenforced");
                None
            }
        };
        let procs = cgroup.as_ref().map(|c| c.procs_files()).unwrap_or_default();
        if let Some(paths) = &cgroup {
            self.with_executor(&fid, &eid, &cid, |e| {
                let a = e.allocation();
                self.cgroups.update(paths, a.cpus, a.mem_mb);
            });
        }
        let environment = self.environment(&info, &sandbox_dir, checkpoint);
        let spawned = launcher::build_command(&command, &sandbox_dir, &environment, &procs)
            .and_then(|mut cmd| cmd.spawn());
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                if let Some(paths) = &cgroup {
                    self.cgroups.destroy(paths).await;
                }
                return self
                    .fail_launch(
                        &fid,
                        &eid,
                        &cid,
                        format!("Failed to spawn the executor: {e}"),
                    )
                    .await;
            }
        };
        let pid = child.id();
        if checkpoint && let Some(pid) = pid {
            let run = RunKey {
                framework: fid.clone(),
                executor: eid.clone(),
                container: cid.clone(),
            };
            self.checkpointed("forked.pid", self.meta.checkpoint_pid(&run, pid));
        }
        tracing::info!(executor = %eid, container = %cid, pid, sandbox = %sandbox_dir.display(), "executor process started");
        let still_wanted = self.with_executor(&fid, &eid, &cid, |e| {
            e.pid = pid;
            e.cgroup = cgroup.clone();
            e.state != ExecutorState::Terminating
        });
        if still_wanted != Some(true)
            && let Some(pid) = pid
        {
            launcher::kill_group(pid);
        }
        let status = match child.wait().await {
            Ok(status) => {
                use std::os::unix::process::ExitStatusExt;
                tracing::info!(executor = %eid, container = %cid, %status, "executor exited");
                Some(status.into_raw())
            }
            Err(e) => {
                tracing::error!(executor = %eid, error = %e, "cannot wait for the executor");
                None
            }
        };
        // Like Mesos's launcher destroy: nothing of the container outlives it.
        if let Some(pid) = pid {
            launcher::kill_group(pid);
        }
        if let Some(paths) = &cgroup {
            self.cgroups.destroy(paths).await;
        }
        self.on_exit(&fid, &eid, &cid, status).await;
    }

    pub(super) fn with_executor<R>(
        &self,
        fid: &str,
        eid: &str,
        cid: &str,
        f: impl FnOnce(&mut Executor) -> R,
    ) -> Option<R> {
        let mut st = self.lock();
        st.frameworks
            .get_mut(fid)
            .and_then(|fw| fw.executors.get_mut(eid))
            .filter(|e| e.container_id == cid)
            .map(f)
    }

    async fn fail_launch(self: &Arc<Self>, fid: &str, eid: &str, cid: &str, reason: String) {
        tracing::error!(executor = %eid, container = %cid, "container failed to start: {reason}");
        self.lock().metrics.container_launch_errors += 1;
        self.with_executor(fid, eid, cid, |e| {
            e.pending_termination = Some(Termination {
                state: TaskState::TaskFailed,
                reason: task_status::Reason::ContainerLaunchFailed,
                message: format!("Failed to launch container: {reason}"),
            });
        });
        self.on_exit(fid, eid, cid, None).await;
    }

    /// The executor's environment, as `executorEnvironment()` and the containerizer
    /// build it: from scratch, never the agent's own.
    fn environment(
        &self,
        info: &ExecutorInfo,
        sandbox: &std::path::Path,
        checkpoint: bool,
    ) -> BTreeMap<String, String> {
        let ip = self.config.listen.ip().to_string();
        let endpoint = format!("{ip}:{}", self.info.port.unwrap_or(0));
        let dir = sandbox.display().to_string();
        let mut env = BTreeMap::new();
        env.insert("LIBPROCESS_IP".to_owned(), ip.clone());
        env.extend(self.config.executor_environment.clone());
        env.insert("LIBPROCESS_PORT".to_owned(), "0".to_owned());
        env.insert(
            "MESOS_FRAMEWORK_ID".to_owned(),
            info.framework_id
                .as_ref()
                .map(|f| f.value.clone())
                .unwrap_or_default(),
        );
        env.insert(
            "MESOS_EXECUTOR_ID".to_owned(),
            info.executor_id.value.clone(),
        );
        env.insert("MESOS_DIRECTORY".to_owned(), dir.clone());
        env.insert("MESOS_SANDBOX".to_owned(), dir);
        env.insert("MESOS_SLAVE_ID".to_owned(), self.agent_id.value.clone());
        env.insert("MESOS_SLAVE_PID".to_owned(), format!("slave(1)@{endpoint}"));
        env.insert("MESOS_AGENT_ENDPOINT".to_owned(), endpoint);
        env.insert(
            "MESOS_CHECKPOINT".to_owned(),
            if checkpoint { "1" } else { "0" }.to_owned(),
        );
        env.insert("MESOS_HTTP_COMMAND_EXECUTOR".to_owned(), "0".to_owned());
        env.insert(
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD".to_owned(),
            duration::format(self.grace_period(info)),
        );
        if checkpoint {
            env.insert(
                "MESOS_RECOVERY_TIMEOUT".to_owned(),
                duration::format(self.config.recovery_timeout),
            );
            env.insert(
                "MESOS_SUBSCRIPTION_BACKOFF_MAX".to_owned(),
                duration::format(self.config.executor_reregistration_timeout),
            );
        }
        if let Some(environment) = info.command.as_ref().and_then(|c| c.environment.as_ref()) {
            for variable in &environment.variables {
                env.insert(
                    variable.name.clone(),
                    variable.value.clone().unwrap_or_default(),
                );
            }
        }
        env.entry("PATH".to_owned())
            .or_insert_with(|| launcher::CONTAINERIZER_DEFAULT_PATH.to_owned());
        env
    }
}
