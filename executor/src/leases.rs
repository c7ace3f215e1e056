//! Leases and the closures that run in them: the executor's side of the closure lane,
//! without any I/O (the connection is [`crate::lane`]).
//!
//! A lease is a Mesos task (labelled `brine.kind=lease`) holding one slot: the cpus and
//! mem of one closure. Closures arrive over the lane naming a lease; they wait in one
//! FIFO queue and start while fewer lane closures run than there are leases held and
//! not being ended (and while the runtime has an instance slot free). A closure's
//! memory limit is its lease's mem.
//!
//! A lease ends when it is released (lane `Release`), killed (Mesos KILL) or the
//! executor shuts down; its terminal update goes out once no closure runs in it. Queued
//! closures naming it are refused at once; a KILL or a shutdown also kills the
//! closures running in it, a release lets them finish.
//!
//! Closures belong to the lane connection they came on. When that connection is lost
//! the scheduler dispatches them again, so the executor drops the queued ones and
//! kills the running ones (their results could not be delivered anyway).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Instant;

use brine_proto::lane::ClosureId;
use brine_proto::payload::{LaneUse, TaskSpec};

use crate::runtime::{KillSwitch, Progress};

/// How a lease ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `Release` over the lane: `TASK_FINISHED`.
    Released,
    /// Mesos KILL or SHUTDOWN: `TASK_KILLED`.
    Killed,
}

/// One lease held.
#[derive(Debug, Clone, PartialEq)]
struct Lease {
    /// The slot's memory (MB), every closure's limit.
    mem_mb: f64,
    /// Set once the lease is being ended.
    ending: Option<End>,
    /// Closures running in it.
    running: u32,
}

/// A closure waiting for a slot.
#[derive(Debug)]
pub struct QueuedClosure {
    /// The lane connection it came on.
    pub conn: u64,
    pub id: ClosureId,
    pub lease: String,
    pub spec: TaskSpec,
}

/// A closure on a worker.
#[derive(Debug)]
pub struct RunningClosure {
    pub conn: u64,
    pub id: ClosureId,
    pub lease: String,
    pub kill: KillSwitch,
    pub progress: Progress,
    pub started: Instant,
    /// The progress last sent to the scheduler.
    sent_progress: Option<f64>,
}

/// What to do with the closure at the head of the queue.
#[derive(Debug)]
pub enum Next {
    /// Run it now, with this memory limit (MB).
    Start(QueuedClosure, f64),
    /// Its lease is not held (or is ending): answer with an `internal` failure.
    Refuse(QueuedClosure),
}

/// What [`Leases::kill`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Killed {
    /// The closure was running: its kill switch is set; its end follows.
    Running,
    /// The closure was queued: it was taken out (answer it `killed`).
    Queued(ClosureId),
    /// No such closure of that connection.
    Unknown,
}

/// What ending a lease did.
#[derive(Debug, Default)]
pub struct Ending {
    /// Queued closures that named the lease: refuse them.
    pub refused: Vec<QueuedClosure>,
    /// `Some` when the lease ended at once (nothing ran in it): send its terminal update.
    pub ended: Option<End>,
}

/// The leases held, the closure queue and the running closures.
#[derive(Debug, Default)]
pub struct Leases {
    leases: BTreeMap<String, Lease>,
    queue: VecDeque<QueuedClosure>,
    /// Running closures by a local number (closure ids are only unique per connection).
    running: HashMap<u64, RunningClosure>,
    next_local: u64,
    /// (connection, closure id) of every queued and running closure.
    known: HashSet<(u64, ClosureId)>,
}

impl Leases {
    /// Adds a lease of `mem_mb` (a repeated id is the same lease).
    pub fn add(&mut self, id: &str, mem_mb: f64) {
        self.leases.entry(id.to_owned()).or_insert(Lease {
            mem_mb,
            ending: None,
            running: 0,
        });
    }

    /// Whether `id` is held and not being ended: closures may still start in it.
    pub fn usable(&self, id: &str) -> bool {
        self.leases.get(id).is_some_and(|l| l.ending.is_none())
    }

    /// Whether `id` is held (ending or not).
    pub fn holds(&self, id: &str) -> bool {
        self.leases.contains_key(id)
    }

    /// Leases held, ending ones included.
    pub fn count(&self) -> usize {
        self.leases.len()
    }

    /// Slots closures may use: leases held and not being ended.
    pub fn slots(&self) -> usize {
        self.leases.values().filter(|l| l.ending.is_none()).count()
    }

    pub fn running_count(&self) -> usize {
        self.running.len()
    }

    pub fn queued_count(&self) -> usize {
        self.queue.len()
    }

    /// Whether a closure `id` of connection `conn` is queued or running.
    pub fn knows(&self, conn: u64, id: ClosureId) -> bool {
        self.known.contains(&(conn, id))
    }

    /// Queues a closure (FIFO).
    pub fn push(&mut self, closure: QueuedClosure) {
        self.known.insert((closure.conn, closure.id));
        self.queue.push_back(closure);
    }

    /// Takes the closures matching `pred` out of the queue.
    fn take_queued(&mut self, pred: impl Fn(&QueuedClosure) -> bool) -> Vec<QueuedClosure> {
        let (taken, kept): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.queue).into_iter().partition(pred);
        self.queue = kept.into();
        for q in &taken {
            self.known.remove(&(q.conn, q.id));
        }
        taken
    }

    /// The next closure to start or refuse, if any: a closure whose lease is not usable
    /// is refused whatever the slots; otherwise it starts only while fewer lane
    /// closures run than [`slots`](Self::slots) and fewer than `instances` (the runtime
    /// instance slots not taken by Mesos tasks).
    pub fn next(&mut self, instances: usize) -> Option<Next> {
        let head = self.queue.front()?;
        let Some(lease) = self.leases.get(&head.lease).filter(|l| l.ending.is_none()) else {
            let refused = self.queue.pop_front()?;
            self.known.remove(&(refused.conn, refused.id));
            return Some(Next::Refuse(refused));
        };
        let mem_mb = lease.mem_mb;
        let running = self.running.len();
        if running >= self.slots() || running >= instances {
            return None;
        }
        self.queue.pop_front().map(|q| Next::Start(q, mem_mb))
    }

    /// Records a started closure; returns its local number (for [`finish`](Self::finish)).
    pub fn start(
        &mut self,
        closure: &QueuedClosure,
        kill: KillSwitch,
        progress: Progress,
        now: Instant,
    ) -> u64 {
        self.next_local += 1;
        let local = self.next_local;
        if let Some(lease) = self.leases.get_mut(&closure.lease) {
            lease.running += 1;
        }
        self.running.insert(
            local,
            RunningClosure {
                conn: closure.conn,
                id: closure.id,
                lease: closure.lease.clone(),
                kill,
                progress,
                started: now,
                sent_progress: None,
            },
        );
        local
    }

    /// Closure `local` was answered while the compilation it started goes on: it
    /// keeps its slot (the compilation uses a core and memory of its lease, and a
    /// lease being ended waits for it) until [`finish`](Self::finish). Returns it.
    pub fn answered(&mut self, local: u64) -> Option<&RunningClosure> {
        let closure = self.running.get(&local)?;
        self.known.remove(&(closure.conn, closure.id));
        Some(closure)
    }

    /// A closure ended. Returns it, and its lease's end if the lease was ending and this
    /// was the last closure running in it (the lease is then gone).
    pub fn finish(&mut self, local: u64) -> Option<(RunningClosure, Option<End>)> {
        let closure = self.running.remove(&local)?;
        self.known.remove(&(closure.conn, closure.id));
        let mut ended = None;
        if let Some(lease) = self.leases.get_mut(&closure.lease) {
            lease.running = lease.running.saturating_sub(1);
            if lease.running == 0
                && let Some(end) = lease.ending
            {
                ended = Some(end);
                self.leases.remove(&closure.lease);
            }
        }
        Some((closure, ended))
    }

    /// Ends lease `id` (a KILL after a release turns it into a kill). Queued closures
    /// naming it are taken out; with [`End::Killed`] its running closures are killed.
    /// The lease goes at once if nothing runs in it, else when its last closure ends.
    /// Unknown leases: nothing happens.
    pub fn end(&mut self, id: &str, end: End) -> Ending {
        let Some(lease) = self.leases.get_mut(id) else {
            return Ending::default();
        };
        if lease.ending != Some(End::Killed) {
            lease.ending = Some(end);
        }
        let (end, idle) = (lease.ending.unwrap_or(end), lease.running == 0);
        if end == End::Killed {
            for closure in self.running.values().filter(|r| r.lease == id) {
                closure.kill.kill();
            }
        }
        let refused = self.take_queued(|q| q.lease == id);
        let ended = idle.then(|| {
            self.leases.remove(id);
            end
        });
        Ending { refused, ended }
    }

    /// Ends every lease with [`End::Killed`] (shutdown). Returns the closures that
    /// were queued (answer them `killed`) and the leases that ended at once.
    pub fn end_all(&mut self) -> (Vec<QueuedClosure>, Vec<String>) {
        let queued = self.take_queued(|_| true);
        let ids: Vec<String> = self.leases.keys().cloned().collect();
        let ended = ids
            .into_iter()
            .filter(|id| self.end(id, End::Killed).ended.is_some())
            .collect();
        (queued, ended)
    }

    /// Kills closure `id` of connection `conn`.
    pub fn kill(&mut self, conn: u64, id: ClosureId) -> Killed {
        if !self.knows(conn, id) {
            return Killed::Unknown;
        }
        if !self
            .take_queued(|q| q.conn == conn && q.id == id)
            .is_empty()
        {
            return Killed::Queued(id);
        }
        match self.running.values().find(|r| r.conn == conn && r.id == id) {
            Some(closure) => {
                closure.kill.kill();
                Killed::Running
            }
            None => Killed::Unknown,
        }
    }

    /// The lane connection was lost: its closures will be dispatched again, so the
    /// queued ones are dropped and the running ones killed. Returns (dropped, killed).
    pub fn connection_lost(&mut self) -> (usize, usize) {
        let dropped = self.take_queued(|_| true).len();
        for closure in self.running.values() {
            closure.kill.kill();
        }
        (dropped, self.running.len())
    }

    /// Running closures of connection `conn` whose progress changed since it was last
    /// taken from here.
    pub fn progress_changes(&mut self, conn: u64) -> Vec<(ClosureId, f64)> {
        let mut out = Vec::new();
        for closure in self.running.values_mut().filter(|r| r.conn == conn) {
            let now = closure.progress.fraction();
            if let Some(p) = now
                && now != closure.sent_progress
            {
                closure.sent_progress = now;
                out.push((closure.id, p));
            }
        }
        out
    }

    /// The figures for heartbeats (`connected` is the link's to fill in).
    pub fn usage(&self) -> LaneUse {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        LaneUse {
            leases: count(self.leases.len()),
            running: count(self.running.len()),
            queued: count(self.queue.len()),
            connected: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use brine_proto::payload::{Encoding, ModuleRef};

    use super::*;

    fn closure(conn: u64, id: ClosureId, lease: &str) -> QueuedClosure {
        QueuedClosure {
            conn,
            id,
            lease: lease.into(),
            spec: TaskSpec {
                module: ModuleRef::inline(vec![]),
                export: "x".into(),
                args: vec![],
                encoding: Encoding::Json,
                deadline: None,
            },
        }
    }

    /// Starts the head closure; panics if it does not start.
    fn start_next(leases: &mut Leases, instances: usize) -> (u64, ClosureId, f64) {
        match leases.next(instances) {
            Some(Next::Start(q, mem)) => {
                let local = leases.start(&q, KillSwitch::new(), Progress::new(), Instant::now());
                (local, q.id, mem)
            }
            other => panic!("expected a start, got {other:?}"),
        }
    }

    #[test]
    fn closures_start_fifo_while_slots_are_free() {
        let mut l = Leases::default();
        l.add("a", 64.0);
        l.add("b", 128.0);
        for id in 1..=3 {
            l.push(closure(1, id, if id == 2 { "b" } else { "a" }));
        }
        let (first, id, mem) = start_next(&mut l, 64);
        assert_eq!((id, mem), (1, 64.0));
        let (_, id, mem) = start_next(&mut l, 64);
        assert_eq!((id, mem), (2, 128.0), "the named lease's mem is the limit");
        assert!(l.next(64).is_none(), "two leases, two running");
        assert_eq!(l.usage().queued, 1);
        l.finish(first);
        let (_, id, _) = start_next(&mut l, 64);
        assert_eq!(id, 3);
        assert_eq!(
            l.usage(),
            LaneUse {
                leases: 2,
                running: 2,
                queued: 0,
                connected: false
            }
        );
    }

    #[test]
    fn runtime_instances_bound_the_slots_too() {
        let mut l = Leases::default();
        l.add("a", 64.0);
        l.add("b", 64.0);
        l.push(closure(1, 1, "a"));
        l.push(closure(1, 2, "a"));
        start_next(&mut l, 1);
        assert!(l.next(1).is_none(), "no instance left");
        start_next(&mut l, 2);
    }

    #[test]
    fn closures_naming_a_lease_not_held_are_refused_without_a_slot() {
        let mut l = Leases::default();
        l.add("a", 64.0);
        l.push(closure(1, 1, "a"));
        l.push(closure(1, 2, "gone"));
        start_next(&mut l, 64);
        assert!(matches!(l.next(64), Some(Next::Refuse(q)) if q.id == 2));
        assert!(l.next(64).is_none());
    }

    #[test]
    fn a_released_lease_ends_when_its_last_closure_does() {
        let mut l = Leases::default();
        l.add("a", 64.0);
        l.add("b", 64.0);
        l.push(closure(1, 1, "a"));
        let (local, _, _) = start_next(&mut l, 64);
        l.push(closure(1, 2, "a"));
        l.push(closure(1, 3, "b"));
        let ending = l.end("a", End::Released);
        assert_eq!(ending.ended, None, "closure 1 still runs in it");
        let refused: Vec<ClosureId> = ending.refused.iter().map(|q| q.id).collect();
        assert_eq!(refused, [2], "queued closures naming it are refused");
        assert!(!l.usable("a") && l.holds("a"));
        assert_eq!(l.slots(), 1);
        // One running, one usable slot: b's closure waits for a's to end.
        assert!(l.next(64).is_none());
        let (done, end) = l.finish(local).unwrap();
        assert_eq!(done.id, 1);
        assert_eq!(end, Some(End::Released));
        assert!(!l.holds("a"));
        let (_, id, _) = start_next(&mut l, 64);
        assert_eq!(id, 3);
        // An idle lease ends at once; an unknown one is nothing.
        l.add("c", 64.0);
        assert_eq!(l.end("c", End::Released).ended, Some(End::Released));
        assert_eq!(l.end("nope", End::Released).ended, None);
    }

    #[test]
    fn an_answered_closure_whose_compilation_goes_on_keeps_its_slot() {
        let mut l = Leases::default();
        l.add("a", 64.0);
        l.push(closure(1, 1, "a"));
        let (local, _, _) = start_next(&mut l, 64);
        let answered = l.answered(local).map(|c| c.id);
        assert_eq!(answered, Some(1));
        assert!(!l.knows(1, 1), "its id is off the books");
        assert_eq!(l.kill(1, 1), Killed::Unknown);
        // The slot stays taken: the next closure waits, and a release waits too.
        l.push(closure(1, 2, "a"));
        assert!(l.next(64).is_none());
        assert_eq!(l.end("a", End::Released).ended, None);
        assert!(l.holds("a"));
        // The compilation ends: the slot, and with it the lease, go.
        assert_eq!(l.finish(local).unwrap().1, Some(End::Released));
        assert_eq!(l.count(), 0);
    }

    #[test]
    fn a_killed_lease_kills_its_closures_and_a_kill_overrides_a_release() {
        let mut l = Leases::default();
        l.add("a", 64.0);
        l.add("b", 64.0);
        l.push(closure(1, 1, "a"));
        l.push(closure(1, 2, "b"));
        let (in_a, _, _) = start_next(&mut l, 64);
        let (in_b, _, _) = start_next(&mut l, 64);
        assert_eq!(l.end("a", End::Released).ended, None);
        assert_eq!(l.end("a", End::Killed).ended, None);
        assert!(l.running[&in_a].kill.is_killed());
        assert!(!l.running[&in_b].kill.is_killed());
        assert_eq!(l.finish(in_a).unwrap().1, Some(End::Killed));
        assert_eq!(l.end("b", End::Killed).ended, None);
        assert!(l.running[&in_b].kill.is_killed());
        assert_eq!(l.finish(in_b).unwrap().1, Some(End::Killed));
        assert_eq!(l.count(), 0);
    }

    #[test]
    fn shutdown_ends_every_lease() {
        let mut l = Leases::default();
        l.add("busy", 64.0);
        l.add("idle", 64.0);
        l.push(closure(1, 1, "busy"));
        let (local, _, _) = start_next(&mut l, 1);
        l.push(closure(1, 2, "idle"));
        let (queued, ended) = l.end_all();
        assert_eq!(queued.len(), 1);
        assert_eq!(ended, ["idle"]);
        assert!(l.running[&local].kill.is_killed());
        assert_eq!(l.finish(local).unwrap().1, Some(End::Killed));
        assert_eq!(l.count(), 0);
    }

    #[test]
    fn kills_and_lost_connections() {
        let mut l = Leases::default();
        l.add("a", 64.0);
        l.push(closure(1, 1, "a"));
        l.push(closure(1, 2, "a"));
        let (local, _, _) = start_next(&mut l, 64);
        assert!(l.knows(1, 1) && l.knows(1, 2) && !l.knows(2, 1));
        assert_eq!(l.kill(1, 2), Killed::Queued(2));
        assert_eq!(l.kill(2, 1), Killed::Unknown, "ids are per connection");
        assert_eq!(l.kill(1, 1), Killed::Running);
        assert!(l.running[&local].kill.is_killed());
        l.push(closure(1, 3, "a"));
        assert_eq!(l.connection_lost(), (1, 1));
        assert_eq!(l.queued_count(), 0);
        assert_eq!(l.running_count(), 1, "running until its worker ends");
    }

    #[test]
    fn progress_is_reported_when_it_changes() {
        let mut l = Leases::default();
        l.add("a", 64.0);
        l.push(closure(7, 1, "a"));
        let Some(Next::Start(q, _)) = l.next(64) else {
            panic!("no start")
        };
        let progress = Progress::new();
        l.start(&q, KillSwitch::new(), progress.clone(), Instant::now());
        assert!(l.progress_changes(7).is_empty(), "no report yet");
        progress.set(0.25);
        assert_eq!(l.progress_changes(7), [(1, 0.25)]);
        assert!(l.progress_changes(7).is_empty(), "unchanged");
        progress.set(0.5);
        assert!(l.progress_changes(8).is_empty(), "another connection");
        assert_eq!(l.progress_changes(7), [(1, 0.5)]);
    }
}
