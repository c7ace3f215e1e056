//! The executor registry: the one resident executor this framework runs per agent,
//! what it holds, and when it last beat. IDs are `brine-<agent>-<generation>` and a
//! generation is never used twice on an agent.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use brine_proto::fetcher::basename;
use brine_proto::mesos::v1::{
    CommandInfo, ExecutorId, ExecutorInfo, FrameworkId, Resource, command_info,
};
use brine_proto::payload::{DatasetRef, ExecutorConfig, Heartbeat, ModuleHash, Payload};
use bytes::Bytes;

use crate::ClusterConfig;

/// Before its first heartbeat an executor may be fetching a large dataset or
/// starting slowly: it gets at least this long.
const FIRST_HEARTBEAT_GRACE: Duration = Duration::from_secs(60);

/// How every executor of this framework is described. Mesos requires the ExecutorInfo
/// of an executor to be identical on every task sent to it, so it is built from fixed
/// parts only.
pub(crate) struct Template {
    framework_id: FrameworkId,
    uris: Vec<command_info::Uri>,
    data: Bytes,
    cpus: f64,
    mem_mb: f64,
}

impl Template {
    /// `executor_uri`: where agents fetch the executor (`file://` + the binary's path
    /// unless [`ClusterConfig::executor_uri`] says otherwise).
    pub(crate) fn new(
        config: &ClusterConfig,
        framework_id: FrameworkId,
        executor_uri: String,
    ) -> Self {
        let mut uris = vec![command_info::Uri {
            value: executor_uri,
            executable: Some(true),
            // The command runs `./brine-executor`, whatever the URI calls it.
            output_file: Some("brine-executor".into()),
            ..Default::default()
        }];
        let mut executor_config: ExecutorConfig = config.executor_config.clone();
        let dataset_uri = config.dataset_uri.clone().or_else(|| {
            config
                .dataset
                .as_ref()
                .map(|path| format!("file://{}", path.display()))
        });
        if let Some(value) = dataset_uri {
            // The fetcher's own name for it, pinned in `output_file` so that the
            // executor looks for the file the agent wrote.
            let name = basename(&value).unwrap_or_else(|| "dataset".into());
            uris.push(command_info::Uri {
                value,
                extract: Some(false),
                output_file: Some(name.clone()),
                ..Default::default()
            });
            executor_config.dataset = Some(DatasetRef { path: name });
        }
        Self {
            framework_id,
            uris,
            data: Bytes::from(executor_config.encode()),
            cpus: config.executor_cpus,
            mem_mb: config.executor_mem_mb,
        }
    }

    pub(crate) fn executor_id(agent: &str, generation: u64) -> String {
        format!("brine-{agent}-{generation}")
    }

    pub(crate) fn info(&self, agent: &str, generation: u64) -> ExecutorInfo {
        ExecutorInfo {
            executor_id: ExecutorId {
                value: Self::executor_id(agent, generation),
            },
            framework_id: Some(self.framework_id.clone()),
            data: Some(self.data.clone()),
            resources: vec![
                Resource::scalar("cpus", self.cpus),
                Resource::scalar("mem", self.mem_mb),
            ],
            command: Some(CommandInfo {
                uris: self.uris.clone(),
                // The fetcher puts the binary in the sandbox, the command's working
                // directory; `exec` keeps the executor's pid the container's.
                value: Some("exec ./brine-executor".into()),
                shell: Some(true),
                ..Default::default()
            }),
            name: Some("brine-executor".into()),
            ..Default::default()
        }
    }
}

pub(crate) struct Executor {
    pub info: ExecutorInfo,
    pub agent: String,
    /// Modules it holds or has been sent.
    pub modules: HashSet<ModuleHash>,
    /// Its live tasks.
    pub tasks: HashSet<String>,
    /// When the first task was sent to it (or it was adopted after a restart).
    pub since: Instant,
    pub last_heartbeat: Option<Instant>,
    pub last_heartbeat_unix_ms: Option<u64>,
    /// What its last heartbeat said it holds.
    pub cpus: f64,
    pub mem_mb: f64,
    /// Its closure lane, while connected.
    pub lane: Option<super::closures::LaneLink>,
    /// What its last heartbeat said of its lane.
    pub lane_use: brine_proto::payload::LaneUse,
}

impl Executor {
    pub(crate) fn id(&self) -> &str {
        &self.info.executor_id.value
    }

    /// Whether it has been quiet longer than allowed.
    /// Silent past the timeout, counting from `subscribed_at` at the earliest.
    fn silent(&self, now: Instant, timeout: Duration, subscribed_at: Instant) -> bool {
        match self.last_heartbeat {
            Some(at) => now.duration_since(at.max(subscribed_at)) > timeout,
            None => {
                now.duration_since(self.since.max(subscribed_at))
                    > timeout.max(FIRST_HEARTBEAT_GRACE)
            }
        }
    }
}

#[derive(Default)]
pub(crate) struct Executors {
    pub by_agent: HashMap<String, Executor>,
    /// Highest generation used per agent.
    generations: HashMap<String, u64>,
}

impl Executors {
    /// The registry a state store remembers: the live executors are adopted (their
    /// ExecutorInfo is rebuilt from the same template).
    pub(crate) fn restore(
        template: &Template,
        live: &HashMap<String, (String, u64)>,
        generations: HashMap<String, u64>,
    ) -> Self {
        let mut executors = Executors {
            by_agent: HashMap::new(),
            generations,
        };
        for (agent, (_, generation)) in live {
            executors.insert(template, agent, *generation);
        }
        executors
    }

    /// Starts a new generation on `agent`; returns its generation.
    pub(crate) fn create(&mut self, template: &Template, agent: &str) -> u64 {
        let generation = self.generations.entry(agent.to_owned()).or_insert(0);
        *generation += 1;
        let generation = *generation;
        self.insert(template, agent, generation);
        generation
    }

    fn insert(&mut self, template: &Template, agent: &str, generation: u64) {
        self.by_agent.insert(
            agent.to_owned(),
            Executor {
                info: template.info(agent, generation),
                agent: agent.to_owned(),
                modules: HashSet::new(),
                tasks: HashSet::new(),
                since: Instant::now(),
                last_heartbeat: None,
                last_heartbeat_unix_ms: None,
                cpus: template.cpus,
                mem_mb: template.mem_mb,
                lane: None,
                lane_use: Default::default(),
            },
        );
    }

    /// The executor `executor_id` on `agent`, if it is the current one.
    pub(crate) fn get_mut(&mut self, agent: &str, executor_id: &str) -> Option<&mut Executor> {
        self.by_agent
            .get_mut(agent)
            .filter(|e| e.info.executor_id.value == executor_id)
    }

    /// Removes `agent`'s executor if it is `executor_id` (any, for `None`).
    pub(crate) fn remove(&mut self, agent: &str, executor_id: Option<&str>) -> Option<Executor> {
        let matches = self
            .by_agent
            .get(agent)
            .is_some_and(|e| executor_id.is_none_or(|id| id == e.id()));
        if matches {
            self.by_agent.remove(agent)
        } else {
            None
        }
    }

    /// Agents whose executor has been silent too long.
    /// The agents whose executor is silent (see [`Executor::silent`]).
    pub(crate) fn silent(
        &self,
        now: Instant,
        timeout: Duration,
        subscribed_at: Instant,
    ) -> Vec<String> {
        self.by_agent
            .values()
            .filter(|e| e.silent(now, timeout, subscribed_at))
            .map(|e| e.agent.clone())
            .collect()
    }

    /// Records a heartbeat from `executor_id` on `agent`; false if it is not current.
    pub(crate) fn heartbeat(&mut self, agent: &str, executor_id: &str, beat: &Heartbeat) -> bool {
        let Some(executor) = self.get_mut(agent, executor_id) else {
            return false;
        };
        executor.last_heartbeat = Some(Instant::now());
        executor.last_heartbeat_unix_ms = Some(beat.sent_at_unix_ms);
        executor.modules.extend(beat.cached_modules.iter().copied());
        executor.cpus = beat.allocation.cpus;
        executor.mem_mb = beat.allocation.mem_mb;
        executor.lane_use = beat.lane;
        true
    }
}
