//! The scheduling loop without I/O. Events are fed to it by hand; what it does is
//! read from its call queue and from the lane writers it was handed. Lease sizing,
//! offer packing, dispatch, retry classification and re-dispatch are checked here
//! without processes, sockets or timers (the clock is passed in where it matters).
//! The process-level tests (`scheduler/tests/lanes.rs`, `jobs.rs`) check the same
//! paths against real executors.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use brine_proto::lane::{LEASE_LABEL, ToExecutor, ToScheduler};
use brine_proto::mesos::v1::scheduler::{Call, Event, call, event};
use brine_proto::mesos::v1::task_status::Reason;
use brine_proto::mesos::v1::{
    AgentId, ExecutorId, FrameworkId, FrameworkInfo, Offer, OfferId, Resource, TaskId, TaskInfo,
    TaskState, TaskStatus,
};
use brine_proto::payload::{
    Encoding, ErrorKind, LaneEndpoint, LeaseSpec, Payload, PayloadError, Secret, TaskFailure,
    TaskOutcome,
};
use tokio::sync::{mpsc, oneshot, watch};

use super::updates::{Ending, History, Verdict};
use super::*;
use crate::lane::{ConnId, TestLane};
use crate::{JobStatus, Module};

type Outcome = oneshot::Receiver<Result<Vec<u8>, TaskError>>;

/// A scheduler with a master and executors played by the test.
struct Harness {
    s: Scheduler,
    calls: mpsc::UnboundedReceiver<Call>,
    next_job: u64,
    next_offer: u64,
    next_conn: ConnId,
    /// The lane connection of each agent's executor, while up.
    lanes: HashMap<String, (ConnId, TestLane)>,
}

/// Two closures per lease, at most four leases: small enough to count by hand.
fn config() -> ClusterConfig {
    ClusterConfig {
        lane_depth: 2,
        max_leases: 4,
        status_addr: None,
        ..Default::default()
    }
}

fn harness(config: ClusterConfig) -> Harness {
    let framework_id = FrameworkId { value: "fw".into() };
    let template = Template::new(
        &config,
        framework_id.clone(),
        "file:///opt/brine-executor".into(),
    );
    let (queue, calls) = mpsc::unbounded_channel();
    let (reconnect_tx, reconnect_rx) = mpsc::unbounded_channel();
    let (_, lane_events) = mpsc::unbounded_channel();
    let health = AgentHealth::new(
        config.agent_failure_limit,
        config.agent_failure_window,
        config.agent_cooldown,
    );
    let s = Scheduler {
        config,
        master: MasterAddr::Http("http://master.invalid:5050".into()),
        framework: FrameworkInfo {
            id: Some(framework_id),
            ..Default::default()
        },
        template,
        link: Link::Up {
            subscription: None,
            calls: Calls {
                queue,
                sender: None,
            },
        },
        reconnect_tx,
        reconnect_rx,
        jobs: Jobs::default(),
        executors: Executors::default(),
        lost_executors: Vec::new(),
        health,
        store: None,
        suppressed: false,
        last_reconcile: Instant::now(),
        subscribed_at: Instant::now(),
        leases: Leases::new("t".into()),
        lane: LaneEndpoint {
            addr: "10.0.0.1:4000".into(),
            secret: Secret([7; 32]),
        },
        lane_events,
        next_closure: 0,
    };
    Harness {
        s,
        calls,
        next_job: 0,
        next_offer: 0,
        next_conn: 0,
        lanes: HashMap::new(),
    }
}

impl Harness {
    /// Submits a closure with `args`; its outcome and status.
    fn submit(&mut self, args: &str) -> (Outcome, watch::Receiver<JobStatus>) {
        self.next_job += 1;
        let (reply, outcome) = oneshot::channel();
        let (status_tx, status) = watch::channel(JobStatus::pending());
        self.s.submit(Job::new(
            JobId(self.next_job),
            Module::from_bytes(b"\0asm\x01\0\0\0".to_vec()),
            "sum".into(),
            args.as_bytes().to_vec(),
            Encoding::Json,
            reply,
            status_tx,
        ));
        (outcome, status)
    }

    fn submit_n(&mut self, n: usize) -> Vec<Outcome> {
        (0..n).map(|i| self.submit(&i.to_string()).0).collect()
    }

    /// The calls made since the last look.
    fn calls(&mut self) -> Vec<Call> {
        std::iter::from_fn(|| self.calls.try_recv().ok()).collect()
    }

    fn offer(&mut self, agent: &str, cpus: f64, mem: f64) -> Offer {
        self.next_offer += 1;
        Offer {
            id: OfferId {
                value: format!("o{}", self.next_offer),
            },
            agent_id: AgentId {
                value: agent.into(),
            },
            hostname: agent.into(),
            resources: vec![Resource::scalar("cpus", cpus), Resource::scalar("mem", mem)],
            ..Default::default()
        }
    }

    /// An OFFERS event of one 2-cpu, 4 GB offer per agent; the calls it made.
    fn offers(&mut self, agents: &[&str]) -> Vec<Call> {
        let offers = agents.iter().map(|a| self.offer(a, 2.0, 4096.0)).collect();
        self.s.on_event(Event {
            r#type: Some(event::Type::Offers as i32),
            offers: Some(event::Offers { offers }),
            ..Default::default()
        });
        self.calls()
    }

    /// The leases' TASK_RUNNING, and their executors' lanes up.
    fn serve(&mut self, launched: &[(String, Vec<TaskInfo>)]) {
        for (agent, tasks) in launched {
            for task in tasks {
                let running = status(&task.task_id.value, agent, TaskState::TaskRunning);
                self.s.on_update(running);
            }
            if !self.lanes.contains_key(agent) {
                self.hello(agent);
            }
        }
    }

    /// `agent`'s current executor connects to the lane.
    fn hello(&mut self, agent: &str) {
        let executor = self.s.executors.by_agent[agent].id().to_owned();
        self.next_conn += 1;
        let (writer, lane) = TestLane::pair();
        self.s.on_lane_event(LaneEvent::Hello {
            conn: self.next_conn,
            executor_id: executor,
            agent_id: agent.into(),
            writer,
        });
        self.lanes.insert(agent.into(), (self.next_conn, lane));
    }

    /// The frames sent down `agent`'s lane since the last look.
    fn frames(&mut self, agent: &str) -> Vec<ToExecutor> {
        self.lanes.get_mut(agent).unwrap().1.take().0
    }

    /// The closures sent down `agent`'s lane since the last look: (closure, lease).
    fn runs(&mut self, agent: &str) -> Vec<(u64, String)> {
        self.frames(agent)
            .into_iter()
            .filter_map(|f| match f {
                ToExecutor::Run { closure, lease, .. } => Some((closure, lease)),
                _ => None,
            })
            .collect()
    }

    fn answer_on(&mut self, conn: ConnId, closure: u64, outcome: TaskOutcome) {
        self.s.on_lane_event(LaneEvent::Frames {
            conn,
            frames: vec![ToScheduler::Done { closure, outcome }],
        });
    }

    fn answer(&mut self, agent: &str, closure: u64, outcome: TaskOutcome) {
        let conn = self.lanes[agent].0;
        self.answer_on(conn, closure, outcome);
    }

    /// `agent`'s lane connection drops; its id, for late frames.
    fn cut(&mut self, agent: &str) -> ConnId {
        let (conn, _) = self.lanes.remove(agent).unwrap();
        self.s.on_lane_event(LaneEvent::Closed {
            conn,
            why: "cut by the test".into(),
        });
        conn
    }

    /// The jobs waiting to be sent.
    fn pending(&self) -> Vec<&Job> {
        self.s
            .jobs
            .jobs
            .values()
            .filter(|j| j.state() == JobState::Pending)
            .collect()
    }
}

fn status(task: &str, agent: &str, state: TaskState) -> TaskStatus {
    let mut status = TaskStatus {
        task_id: TaskId { value: task.into() },
        agent_id: Some(AgentId {
            value: agent.into(),
        }),
        ..Default::default()
    };
    status.set_state(state);
    status
}

/// The leases each ACCEPT among `calls` launched, by agent.
fn launched(calls: &[Call]) -> Vec<(String, Vec<TaskInfo>)> {
    calls
        .iter()
        .filter_map(|c| c.accept.as_ref())
        .map(|accept| {
            let tasks: Vec<TaskInfo> = accept
                .operations
                .iter()
                .filter_map(|o| o.launch.as_ref())
                .flat_map(|l| l.task_infos.clone())
                .collect();
            (tasks[0].agent_id.value.clone(), tasks)
        })
        .collect()
}

fn types(calls: &[Call]) -> Vec<call::Type> {
    calls.iter().map(|c| c.r#type()).collect()
}

fn ok(result: &str) -> TaskOutcome {
    TaskOutcome::Success {
        result: result.as_bytes().to_vec(),
    }
}

fn failure(kind: ErrorKind) -> TaskOutcome {
    TaskOutcome::Failure(TaskFailure::new(kind, kind.as_str()))
}

fn scalar_of(task: &TaskInfo, name: &str) -> f64 {
    offers::scalar(&task.resources, name)
}

#[test]
fn leases_follow_the_queue_and_spread_over_offers() {
    let mut h = harness(config());
    let _outcomes = h.submit_n(5);
    // Five closures at two per lease: three leases, round-robin over the offers.
    let calls = h.offers(&["a1", "a2"]);
    let leases = launched(&calls);
    let per_agent: HashMap<&str, usize> = leases
        .iter()
        .map(|(agent, tasks)| (agent.as_str(), tasks.len()))
        .collect();
    assert_eq!(per_agent, HashMap::from([("a1", 2), ("a2", 1)]));
    for task in leases.iter().flat_map(|(_, t)| t) {
        assert_eq!(scalar_of(task, "cpus"), 0.1);
        assert_eq!(scalar_of(task, "mem"), 64.0);
        let label = &task.labels.as_ref().unwrap().labels[0];
        assert_eq!(
            (label.key.as_str(), label.value.as_deref()),
            (LEASE_LABEL.0, Some(LEASE_LABEL.1))
        );
        let spec = LeaseSpec::decode(task.data.as_deref().unwrap()).unwrap();
        assert_eq!(spec.lane.addr, "10.0.0.1:4000");
        assert!(task.executor.is_some(), "a lease runs in our executor");
    }
    // No closure goes anywhere before a lease runs and its lane is up.
    assert_eq!(h.pending().len(), 5);
    // Covered: no more offers wanted.
    assert_eq!(
        types(&calls),
        [call::Type::Accept, call::Type::Accept, call::Type::Suppress]
    );

    // Four more want two more leases, but the cap (4) leaves room for one.
    let _more = h.submit_n(4);
    assert_eq!(types(&h.calls()), [call::Type::Revive]);
    // An offer too small for a new executor and a slot (0.1 + 0.1 cpus) is declined;
    // an agent that already runs our executor needs room for the slot only.
    let small = h.offer("a3", 0.15, 4096.0);
    let tight = h.offer("a1", 0.1, 64.0);
    h.s.take_leases(vec![small, tight]);
    let calls = h.calls();
    assert_eq!(
        types(&calls),
        [
            call::Type::Accept,
            call::Type::Decline,
            call::Type::Suppress
        ]
    );
    assert_eq!(launched(&calls)[0].0, "a1");
    assert_eq!(calls[1].decline.as_ref().unwrap().offer_ids[0].value, "o3");
    assert_eq!(h.s.leases.len(), 4);
}

#[test]
fn closures_go_down_the_lane_and_resolve_once() {
    let mut h = harness(config());
    let (first, status) = h.submit("1 2");
    let _rest = h.submit_n(2);
    let calls = h.offers(&["a1"]);
    let launched = launched(&calls);
    assert_eq!(launched[0].1.len(), 2, "three closures at two per lease");
    h.serve(&launched);
    let runs = h.runs("a1");
    // In submission order, spread over the leases, at most two in each.
    assert_eq!(
        runs.iter().map(|r| r.0).collect::<Vec<_>>(),
        [1, 2, 3],
        "{runs:?}"
    );
    let mut per_lease: HashMap<&str, usize> = HashMap::new();
    for (_, lease) in &runs {
        *per_lease.entry(lease).or_default() += 1;
    }
    assert_eq!(per_lease.len(), 2);
    assert_eq!(status.borrow().state, JobState::Staging);
    assert_eq!(status.borrow().attempts, 1);

    h.answer("a1", runs[0].0, ok("3"));
    let mut first = first;
    assert_eq!(first.try_recv().unwrap(), Ok(b"3".to_vec()));
    assert_eq!(status.borrow().state, JobState::Succeeded);
    // A second answer for the same closure is dropped.
    h.answer("a1", runs[0].0, ok("999"));
    assert_eq!(h.s.jobs.ended.succeeded, 1);
    assert_eq!(h.s.jobs.jobs.len(), 2);
}

#[test]
fn a_cut_lane_sends_its_closures_elsewhere_without_blaming_the_agent() {
    let mut h = harness(config());
    let mut outcomes = h.submit_n(4);
    let calls = h.offers(&["a1", "a2"]);
    h.serve(&launched(&calls));
    let on_a1 = h.runs("a1");
    let on_a2 = h.runs("a2");
    assert_eq!((on_a1.len(), on_a2.len()), (2, 2));

    let old_conn = h.cut("a1");
    // Back in the queue (a2's lease is full), the attempt counted, a1 not blamed.
    let pending = h.pending();
    assert_eq!(pending.len(), 2);
    for job in pending {
        assert_eq!(job.attempts, 1);
        assert!(job.avoid.is_empty(), "a lost lane is not the agent's fault");
    }
    // a1's lease, whose executor will reconnect, covers them: no REVIVE (on Mesos a
    // REVIVE costs an allocation), and none flapped while the lanes came up.
    assert_eq!(types(&h.calls()), []);

    // a2 answers its two and takes the two re-queued ones, under new closure ids.
    for (closure, _) in &on_a2 {
        h.answer("a2", *closure, ok("a2"));
    }
    let again = h.runs("a2");
    assert_eq!(again.len(), 2);
    assert!(
        again
            .iter()
            .all(|(c, _)| on_a1.iter().all(|(old, _)| old != c))
    );
    // The old lane's late answers are dropped: each job resolves once.
    for (closure, _) in &on_a1 {
        h.answer_on(old_conn, *closure, ok("stale"));
    }
    for (closure, _) in &again {
        h.answer("a2", *closure, ok("again"));
    }
    let mut results: Vec<_> = outcomes
        .iter_mut()
        .map(|o| String::from_utf8(o.try_recv().unwrap().unwrap()).unwrap())
        .collect();
    results.sort();
    assert_eq!(results, ["a2", "a2", "again", "again"]);
    assert_eq!(h.s.jobs.ended.succeeded, 4);
    assert!(h.s.jobs.jobs.is_empty());
}

#[test]
fn a_lost_executor_sends_its_closures_elsewhere_and_they_avoid_its_agent() {
    let mut h = harness(config());
    let mut outcomes = h.submit_n(4);
    let calls = h.offers(&["a1", "a2"]);
    h.serve(&launched(&calls));
    let on_a1 = h.runs("a1");
    let on_a2 = h.runs("a2");
    let executor = h.s.executors.by_agent["a1"].id().to_owned();
    h.s.on_event(Event {
        r#type: Some(event::Type::Failure as i32),
        failure: Some(event::Failure {
            agent_id: Some(AgentId { value: "a1".into() }),
            executor_id: Some(ExecutorId {
                value: executor.clone(),
            }),
            status: Some(9),
        }),
        ..Default::default()
    });
    assert!(!h.s.executors.by_agent.contains_key("a1"));
    assert!(
        h.lanes.get_mut("a1").unwrap().1.take().1,
        "its lane is closed"
    );
    h.lanes.remove("a1");
    for job in h.pending() {
        assert_eq!(job.avoid, ["a1".to_owned()].into(), "blamed on its agent");
    }

    // A new executor on a1 (the next generation) gets a lease, but the two jobs wait
    // for a2 rather than go back to a1.
    let calls = h.offers(&["a1"]);
    let launched = launched(&calls);
    assert_eq!(launched.len(), 1);
    h.serve(&launched);
    assert_ne!(h.s.executors.by_agent["a1"].id(), executor);
    assert!(h.runs("a1").is_empty());
    for (closure, _) in &on_a2 {
        h.answer("a2", *closure, ok("first"));
    }
    let again = h.runs("a2");
    assert_eq!(again.len(), 2);
    for (closure, _) in again {
        h.answer("a2", closure, ok("again"));
    }
    // The dead executor's answers, had they come, would be for closures off the books.
    assert!(
        on_a1
            .iter()
            .all(|(c, _)| !h.s.jobs.by_closure.contains_key(c))
    );
    let results: Vec<_> = outcomes
        .iter_mut()
        .map(|o| o.try_recv().unwrap().is_ok())
        .collect();
    assert_eq!(results, [true; 4]);
}

#[test]
fn a_lease_mesos_ends_takes_its_closures_to_another_attempt() {
    let mut h = harness(config());
    let _outcomes = h.submit_n(2);
    let calls = h.offers(&["a1", "a2"]);
    let launched = launched(&calls);
    assert_eq!(launched.len(), 1, "two closures, one lease");
    h.serve(&launched);
    let lease = &launched[0].1[0].task_id.value;
    let agent = launched[0].0.clone();
    assert_eq!(h.runs(&agent).len(), 2);
    let mut lost = status(lease, &agent, TaskState::TaskLost);
    lost.set_reason(Reason::ExecutorTerminated);
    h.s.on_update(lost);
    assert!(!h.s.leases.is_lease(lease));
    let pending = h.pending();
    assert_eq!(pending.len(), 2);
    assert!(pending.iter().all(|j| j.avoid.contains(&agent)));
}

/// A master restarted without a registry answers reconciliation with TASK_LOST for
/// every task on an agent that has not re-registered yet. A lease whose executor still
/// answers on its lane is released over it (else its resources would stay held by a
/// lease no one uses once the agent re-registers), its closures stay where they are
/// (the executor finishes the running ones and refuses the queued ones),
/// and the agent is not blamed.
#[test]
fn a_lease_the_master_forgot_is_released_over_its_live_lane() {
    let mut h = harness(config());
    let mut outcomes = h.submit_n(2);
    let calls = h.offers(&["a1"]);
    let launched = launched(&calls);
    h.serve(&launched);
    let lease = launched[0].1[0].task_id.value.clone();
    let runs = h.runs("a1");
    assert_eq!(runs.len(), 2);
    h.calls();

    let mut lost = status(&lease, "a1", TaskState::TaskLost);
    lost.set_reason(Reason::Reconciliation);
    h.s.on_update(lost);
    assert_eq!(h.s.leases.held(), 0, "it takes no more work");
    assert!(
        h.frames("a1")
            .iter()
            .any(|f| matches!(f, ToExecutor::Release { lease: l } if *l == lease))
    );
    assert!(h.pending().is_empty(), "its closures are not run again");
    assert!(h.s.health.set_aside_agents().is_empty());

    // The agent re-registers and an implicit reconciliation reports the lease live:
    // it is not killed (that would kill the closures finishing in it).
    h.s.on_update(status(&lease, "a1", TaskState::TaskRunning));
    assert!(!types(&h.calls()).contains(&call::Type::Kill));
    for (closure, _) in &runs {
        h.answer("a1", *closure, ok("kept"));
    }
    for outcome in &mut outcomes {
        assert_eq!(outcome.try_recv().unwrap(), Ok(b"kept".to_vec()));
    }
    // Its own end, once released, closes the books on it.
    h.s.on_update(status(&lease, "a1", TaskState::TaskFinished));
    assert!(!h.s.leases.is_lease(&lease));
    // Reported live after that, it is someone's stray task: killed.
    h.s.on_update(status(&lease, "a1", TaskState::TaskRunning));
    assert_eq!(types(&h.calls()), [call::Type::Kill]);
}

/// The same answer for a lease with no lane up: nothing to release it through. The
/// periodic reconciliation is also implicit in lease mode, so once the agent is back
/// the lease is reported live, as a task no one uses, and killed.
#[test]
fn a_lease_the_master_forgot_without_a_lane_is_killed_once_seen_live() {
    let mut h = harness(config());
    let _outcomes = h.submit_n(2);
    let calls = h.offers(&["a1"]);
    let launched = launched(&calls);
    h.serve(&launched);
    let lease = launched[0].1[0].task_id.value.clone();
    assert_eq!(h.runs("a1").len(), 2);
    h.cut("a1");
    let mut lost = status(&lease, "a1", TaskState::TaskLost);
    lost.set_reason(Reason::Reconciliation);
    h.s.on_update(lost);
    assert!(!h.s.leases.is_lease(&lease));
    h.calls();

    h.s.last_reconcile = Instant::now() - h.s.config.reconcile_interval;
    h.s.on_tick();
    let implicit = h
        .calls()
        .into_iter()
        .filter_map(|c| c.reconcile)
        .filter(|r| r.tasks.is_empty())
        .count();
    assert_eq!(implicit, 1, "the periodic reconciliation is implicit too");
    h.s.on_update(status(&lease, "a1", TaskState::TaskRunning));
    let calls = h.calls();
    assert_eq!(types(&calls), [call::Type::Kill]);
    assert_eq!(calls[0].kill.as_ref().unwrap().task_id.value, lease);
}

#[test]
fn idle_leases_go_back_over_the_lane_or_by_kill() {
    let mut h = harness(config());
    let _outcomes = h.submit_n(4);
    let calls = h.offers(&["a1", "a2"]);
    h.serve(&launched(&calls));
    let idle = h.s.config.lease_idle_timeout;
    for agent in ["a1", "a2"] {
        for (closure, _) in h.runs(agent) {
            h.answer(agent, closure, ok("done"));
        }
    }
    // Not idle long enough: kept.
    h.s.lane_tick(Instant::now() + idle / 2);
    assert_eq!(h.s.leases.held(), 2);
    h.cut("a2");
    h.calls();
    // Idle past the timeout: a1's lease is released over its lane, a2's (no lane) by
    // KILL.
    h.s.lane_tick(Instant::now() + idle + Duration::from_millis(1));
    assert_eq!(h.s.leases.held(), 0);
    let released: Vec<String> = h
        .frames("a1")
        .into_iter()
        .filter_map(|f| match f {
            ToExecutor::Release { lease } => Some(lease),
            _ => None,
        })
        .collect();
    assert_eq!(released.len(), 1);
    let calls = h.calls();
    assert_eq!(types(&calls), [call::Type::Kill]);
    let killed = calls[0].kill.as_ref().unwrap().task_id.value.clone();
    assert_ne!(killed, released[0]);
    // Their terminal updates remove them.
    h.s.on_update(status(&released[0], "a1", TaskState::TaskFinished));
    h.s.on_update(status(&killed, "a2", TaskState::TaskKilled));
    assert_eq!(h.s.leases.len(), 0);
    assert!(h.pending().is_empty());
}

#[test]
fn module_missing_resends_the_bytes_once_without_counting() {
    let mut h = harness(config());
    let (mut outcome, status) = h.submit("1");
    let calls = h.offers(&["a1"]);
    h.serve(&launched(&calls));
    let first = h.frames("a1");
    let inline = |frames: &[ToExecutor]| match frames.iter().rev().find_map(|f| match f {
        ToExecutor::Run { spec, .. } => Some(spec.module.bytes.is_some()),
        _ => None,
    }) {
        Some(inline) => inline,
        None => panic!("no Run in {frames:?}"),
    };
    assert!(inline(&first), "first use on this executor: bytes inline");
    let closure = h.s.next_closure;
    h.answer("a1", closure, ok("1"));
    assert!(outcome.try_recv().is_ok());

    // The executor dropped the module from its cache: the next closure names it by
    // hash, is answered module_missing, and goes again with the bytes.
    let (mut outcome, status2) = h.submit("2");
    assert!(!inline(&h.frames("a1")), "known to the executor: by hash");
    h.answer("a1", h.s.next_closure, failure(ErrorKind::ModuleMissing));
    assert!(inline(&h.frames("a1")), "resent with the bytes");
    assert_eq!(status2.borrow().attempts, 1, "the resend is free");
    h.answer("a1", h.s.next_closure, ok("2"));
    assert_eq!(outcome.try_recv().unwrap(), Ok(b"2".to_vec()));
    assert_eq!(status.borrow().state, JobState::Succeeded);
}

#[test]
fn cancel_kills_the_closure_and_drops_its_answer() {
    let mut h = harness(config());
    let (mut outcome, _) = h.submit("1");
    let calls = h.offers(&["a1"]);
    h.serve(&launched(&calls));
    let (closure, _) = h.runs("a1")[0];
    h.s.cancel(JobId(1));
    assert_eq!(outcome.try_recv().unwrap(), Err(TaskError::Cancelled));
    assert_eq!(h.frames("a1"), [ToExecutor::Kill { closure }]);
    h.answer("a1", closure, ok("late"));
    assert_eq!(h.s.jobs.ended.succeeded, 0);
    assert_eq!(
        h.s.leases
            .get(&launched(&calls)[0].1[0].task_id.value)
            .unwrap()
            .in_flight,
        0
    );
}

/// Retry classification, as a table: how an attempt ended × what the job went
/// through → what happens next.
#[test]
fn verdicts() {
    let fresh = History {
        attempts: 1,
        max_retries: 3,
        force_inline: false,
        executor_replaced: false,
    };
    let spent = History {
        attempts: 4,
        ..fresh
    };
    let ending = |state: TaskState, outcome: Option<TaskOutcome>, reason: Reason| Ending {
        state,
        outcome: outcome.map(Ok),
        reason,
        message: "m".into(),
    };
    let lane = |outcome: TaskOutcome| Ending::of_lane(outcome);
    let lost = |state: TaskState, reason: Reason, attempts| {
        Some(TaskError::Lost {
            state: state.as_str_name().into(),
            reason: reason.as_str_name().into(),
            message: "m".into(),
            attempts,
        })
    };
    let guest = |kind: ErrorKind| {
        Verdict::Done(Err(TaskError::Guest {
            kind,
            message: kind.as_str().into(),
            stderr_tail: String::new(),
        }))
    };
    let retry = |infra| Verdict::Retry {
        counted: true,
        infra,
    };

    let cases: Vec<(&str, Ending, History, Verdict)> = vec![
        (
            "result",
            lane(ok("7")),
            fresh,
            Verdict::Done(Ok(b"7".to_vec())),
        ),
        (
            "guest error: no retry",
            lane(failure(ErrorKind::GuestError)),
            fresh,
            guest(ErrorKind::GuestError),
        ),
        (
            "trap: no retry",
            lane(failure(ErrorKind::Trap)),
            fresh,
            guest(ErrorKind::Trap),
        ),
        (
            "memory limit: no retry",
            lane(failure(ErrorKind::MemoryLimit)),
            fresh,
            guest(ErrorKind::MemoryLimit),
        ),
        (
            "deadline",
            lane(failure(ErrorKind::DeadlineExceeded)),
            fresh,
            Verdict::Done(Err(TaskError::Timeout {
                message: "deadline_exceeded".into(),
            })),
        ),
        (
            "internal: retried",
            lane(failure(ErrorKind::Internal)),
            fresh,
            retry(None),
        ),
        (
            "internal, retries spent",
            lane(failure(ErrorKind::Internal)),
            spent,
            guest(ErrorKind::Internal),
        ),
        (
            "module missing: free resend",
            lane(failure(ErrorKind::ModuleMissing)),
            fresh,
            Verdict::Resend { counted: false },
        ),
        (
            "module missing after a resend: counted",
            lane(failure(ErrorKind::ModuleMissing)),
            History {
                force_inline: true,
                ..fresh
            },
            Verdict::Resend { counted: true },
        ),
        (
            "killed",
            ending(TaskState::TaskKilled, None, Reason::default()),
            fresh,
            Verdict::Done(Err(TaskError::Killed {
                message: "m".into(),
            })),
        ),
        (
            "lost by Mesos: retried, blamed on the agent",
            ending(TaskState::TaskLost, None, Reason::ExecutorTerminated),
            fresh,
            retry(lost(TaskState::TaskLost, Reason::ExecutorTerminated, 1)),
        ),
        (
            "failed by Mesos (container limit)",
            ending(
                TaskState::TaskFailed,
                None,
                Reason::ContainerLimitationMemory,
            ),
            fresh,
            retry(lost(
                TaskState::TaskFailed,
                Reason::ContainerLimitationMemory,
                1,
            )),
        ),
        (
            "invalid launch: would be again",
            ending(TaskState::TaskError, None, Reason::TaskInvalid),
            fresh,
            Verdict::Done(Err(
                lost(TaskState::TaskError, Reason::TaskInvalid, 1).unwrap()
            )),
        ),
        (
            "launched on an executor that had just ended",
            ending(TaskState::TaskError, None, Reason::TaskInvalid),
            History {
                executor_replaced: true,
                ..fresh
            },
            retry(None),
        ),
        (
            "finished without a result",
            ending(TaskState::TaskFinished, None, Reason::default()),
            fresh,
            Verdict::Done(Err(TaskError::Protocol(
                "TASK_FINISHED without a success outcome: None".into(),
            ))),
        ),
    ];
    for (name, ending, history, expected) in cases {
        assert_eq!(ending.verdict(history), expected, "{name}");
    }

    // An outcome that does not decode is no Brine outcome: Mesos's word counts.
    let garbled = Ending {
        state: TaskState::TaskFailed,
        outcome: Some(Err(PayloadError::Empty {
            what: "TaskOutcome",
        })),
        reason: Reason::ExecutorTerminated,
        message: "m".into(),
    };
    assert!(garbled.executor_ended());
    assert!(matches!(
        garbled.verdict(fresh),
        Verdict::Retry {
            counted: true,
            infra: Some(TaskError::Lost { .. })
        }
    ));
    assert!(!lane(failure(ErrorKind::Internal)).executor_ended());
}
