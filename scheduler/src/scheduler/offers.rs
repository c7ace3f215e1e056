//! Packing pending jobs into offers: first fit, preferring agents whose executor
//! already holds the job's module, many tasks per ACCEPT, the rest declined.

use std::time::Instant;

use brine_proto::mesos::v1::{Offer, OfferId, Resource, TaskId, TaskInfo};
use brine_proto::payload::{ModuleRef, Payload, TaskSpec};
use bytes::Bytes;

use super::Scheduler;
use super::jobs::Attempt;
use crate::JobState;
use crate::job::JobId;
use crate::store::Record;

/// Tolerance of the resource arithmetic (offers are decimals).
const EPSILON: f64 = 1e-9;

/// What is left of one offer while jobs are packed into it.
struct Room {
    offer: Offer,
    agent: String,
    cpus: f64,
    mem: f64,
    /// No executor of ours runs there yet: the first task starts one.
    new_executor: bool,
    jobs: Vec<JobId>,
}

impl Scheduler {
    pub(super) fn on_offers(&mut self, offers: Vec<Offer>) {
        let now = Instant::now();
        let (task_cpus, task_mem) = (self.config.task_cpus, self.config.task_mem_mb);
        let mut rooms = Vec::new();
        let mut declined: Vec<OfferId> = Vec::new();
        for offer in offers {
            let agent = offer.agent_id.value.clone();
            self.health.known.insert(agent.clone());
            if self.health.excludes(&agent, now) {
                declined.push(offer.id);
                continue;
            }
            let new_executor = !self.executors.by_agent.contains_key(&agent);
            let mut cpus = scalar(&offer.resources, "cpus");
            let mut mem = scalar(&offer.resources, "mem");
            if new_executor {
                cpus -= self.config.executor_cpus;
                mem -= self.config.executor_mem_mb;
            }
            rooms.push(Room {
                offer,
                agent,
                cpus,
                mem,
                new_executor,
                jobs: Vec::new(),
            });
        }
        let fits = |r: &Room| r.cpus + EPSILON >= task_cpus && r.mem + EPSILON >= task_mem;
        let mut skipped = Vec::new();
        while rooms.iter().any(fits) {
            let Some(id) = self.jobs.pop_pending() else {
                break;
            };
            let Some(job) = self.jobs.jobs.get(&id) else {
                continue;
            };
            let usable = |r: &Room| fits(r) && !self.health.should_avoid(&job.avoid, &r.agent);
            let holds = |r: &Room| {
                self.executors
                    .by_agent
                    .get(&r.agent)
                    .is_some_and(|e| e.modules.contains(&job.module.hash))
            };
            let chosen = rooms
                .iter()
                .position(|r| usable(r) && holds(r))
                .or_else(|| rooms.iter().position(usable));
            match chosen {
                Some(i) => {
                    let room = &mut rooms[i];
                    room.cpus -= task_cpus;
                    room.mem -= task_mem;
                    room.jobs.push(id);
                }
                None => skipped.push(id),
            }
        }
        // Jobs that fit nowhere this time keep their place at the front.
        for id in skipped.into_iter().rev() {
            self.jobs.pending.push_front(id);
        }
        for room in rooms {
            if room.jobs.is_empty() {
                declined.push(room.offer.id);
            } else {
                self.accept(room);
            }
        }
        self.decline(declined);
        if !self.jobs.has_pending() {
            self.suppress();
        }
    }

    /// One ACCEPT with a LAUNCH of every job packed into `room`.
    fn accept(&mut self, room: Room) {
        let agent = room.agent;
        if room.new_executor {
            let generation = self.executors.create(&self.template, &agent);
            let id = super::Template::executor_id(&agent, generation);
            self.record(Record::Executor {
                agent: agent.clone(),
                id,
                generation,
            });
        }
        let resources: Vec<Resource> = vec![
            Resource::scalar("cpus", self.config.task_cpus),
            Resource::scalar("mem", self.config.task_mem_mb),
        ];
        let mut task_infos = Vec::with_capacity(room.jobs.len());
        let mut records = Vec::with_capacity(room.jobs.len());
        for id in room.jobs {
            let (Some(job), Some(executor)) = (
                self.jobs.jobs.get_mut(&id),
                self.executors.by_agent.get_mut(&agent),
            ) else {
                continue;
            };
            job.attempts += 1;
            let task_id = format!("brine-{}-{}", job.key, job.attempts);
            let hash = job.module.hash;
            let module = if executor.modules.insert(hash) || job.force_inline {
                ModuleRef::inline(job.module.bytes.to_vec())
            } else {
                ModuleRef::by_hash(hash)
            };
            job.force_inline = false;
            let spec = TaskSpec {
                module,
                export: job.entry.clone(),
                args: job.args.clone(),
                encoding: job.encoding,
                deadline: self.config.task_deadline,
            };
            task_infos.push(TaskInfo {
                name: task_id.clone(),
                task_id: TaskId {
                    value: task_id.clone(),
                },
                agent_id: room.offer.agent_id.clone(),
                resources: resources.clone(),
                executor: Some(executor.info.clone()),
                data: Some(Bytes::from(spec.encode())),
                ..Default::default()
            });
            executor.tasks.insert(task_id.clone());
            job.attempt = Some(Attempt {
                task_id: task_id.clone(),
                agent: agent.clone(),
                executor: executor.id().to_owned(),
                closure: None,
            });
            job.set_state(JobState::Staging);
            records.push(Record::Launched {
                job: job.key,
                task: task_id.clone(),
                agent: agent.clone(),
                attempt: job.attempts,
            });
            self.jobs.by_task.insert(task_id, id);
        }
        for record in records {
            self.record(record);
        }
        tracing::debug!(agent = %agent, tasks = task_infos.len(), "ACCEPT");
        self.launch(room.offer.id, task_infos);
    }
}

pub(super) fn scalar(resources: &[Resource], name: &str) -> f64 {
    resources
        .iter()
        .filter(|r| r.name == name)
        .filter_map(|r| r.scalar.as_ref().map(|s| s.value))
        .sum()
}
