//! Leases: the Mesos tasks that reserve closure slots on our executors. Pure state
//! and rules (no I/O, no clock of its own), so that sizing, packing, slot choice and
//! idle release are unit-tested without processes or timers.
//!
//! A lease is `Launching` from its ACCEPT until its `TASK_RUNNING` (only then does the
//! executor know it, so only then are closures sent into it), `Active` while it serves,
//! and `Releasing` once the scheduler asked for it back (its terminal update removes
//! it). Each lease holds at most `depth` closures at once: one running, the rest
//! queued at the executor so that a slot never waits for a round trip.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Where a lease is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaseState {
    Launching,
    Active,
    Releasing,
}

#[derive(Debug, Clone)]
pub(crate) struct Lease {
    pub agent: String,
    pub executor: String,
    pub state: LeaseState,
    /// Closures sent into it and not answered yet.
    pub in_flight: usize,
    /// When `in_flight` last became zero (or the lease started).
    pub idle_since: Instant,
}

/// Every lease of this scheduler, by lease task id.
#[derive(Debug, Default)]
pub(crate) struct Leases {
    by_id: HashMap<String, Lease>,
    /// Lease task ids are `brine-lease-<prefix>-<n>`: the prefix is random per
    /// scheduler process, so a restarted scheduler never reuses an id.
    prefix: String,
    next: u64,
    /// Leases the master reported lost in a reconciliation answer while their
    /// executor's lane was up (lease id → executor): ended here, released over the
    /// lane, and awaited. Their task ids stay ours, so that a report of them live
    /// does not have them killed (which would kill the closures finishing in them).
    released_unconfirmed: HashMap<String, String>,
}

impl Leases {
    pub(crate) fn new(prefix: String) -> Self {
        Self {
            by_id: HashMap::new(),
            prefix,
            next: 0,
            released_unconfirmed: HashMap::new(),
        }
    }

    /// Records a lease about to be launched on `executor` at `agent`; returns its id.
    pub(crate) fn launch(&mut self, agent: &str, executor: &str, now: Instant) -> String {
        self.next += 1;
        let id = format!("brine-lease-{}-{}", self.prefix, self.next);
        self.by_id.insert(
            id.clone(),
            Lease {
                agent: agent.to_owned(),
                executor: executor.to_owned(),
                state: LeaseState::Launching,
                in_flight: 0,
                idle_since: now,
            },
        );
        id
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Lease> {
        self.by_id.get(id)
    }

    pub(crate) fn is_lease(&self, id: &str) -> bool {
        self.by_id.contains_key(id) || self.released_unconfirmed.contains_key(id)
    }

    /// Lease `id` of `executor` ended on the master's word but was released over
    /// its lane; its own terminal update (or its executor's end) is still to come.
    pub(crate) fn await_release(&mut self, id: &str, executor: &str) {
        self.released_unconfirmed
            .insert(id.to_owned(), executor.to_owned());
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Leases that serve or will: not being released.
    pub(crate) fn held(&self) -> usize {
        self.by_id
            .values()
            .filter(|l| l.state != LeaseState::Releasing)
            .count()
    }

    /// `TASK_RUNNING` arrived: the lease serves. False if it was not launching.
    pub(crate) fn running(&mut self, id: &str, now: Instant) -> bool {
        match self.by_id.get_mut(id) {
            Some(lease) if lease.state == LeaseState::Launching => {
                lease.state = LeaseState::Active;
                lease.idle_since = now;
                true
            }
            _ => false,
        }
    }

    /// A terminal update: the lease is gone.
    pub(crate) fn ended(&mut self, id: &str) -> Option<Lease> {
        self.released_unconfirmed.remove(id);
        self.by_id.remove(id)
    }

    /// Every lease of `executor`, removed (the executor is gone).
    pub(crate) fn remove_executor(&mut self, executor: &str) -> Vec<(String, Lease)> {
        self.released_unconfirmed.retain(|_, e| e != executor);
        let ids: Vec<String> = self
            .by_id
            .iter()
            .filter(|(_, l)| l.executor == executor)
            .map(|(id, _)| id.clone())
            .collect();
        ids.into_iter()
            .filter_map(|id| self.by_id.remove(&id).map(|l| (id, l)))
            .collect()
    }

    /// How many more leases would help `pending` closures: one per `depth` of them
    /// not covered yet, within `max` leases in all.
    ///
    /// Covered are the free slots of leases that cannot have taken work yet: those
    /// launching, and active ones whose executor's lane is not up (`on_lane` says
    /// which are up; a lane comes up just after an executor's first lease runs, and
    /// comes back after a cut). Leases on a lane took what dispatch could give them,
    /// so what still waits is theirs to leave. Without this, every lease that starts
    /// before its lane would flap REVIVE/SUPPRESS, and on Mesos each REVIVE makes an
    /// allocation.
    pub(crate) fn wanted(
        &self,
        pending: usize,
        depth: usize,
        max: usize,
        on_lane: impl Fn(&Lease) -> bool,
    ) -> usize {
        let depth = depth.max(1);
        let room = max.saturating_sub(self.held());
        let covered: usize = self
            .by_id
            .values()
            .filter(|l| match l.state {
                LeaseState::Launching => true,
                LeaseState::Active => !on_lane(l),
                LeaseState::Releasing => false,
            })
            .map(|l| depth.saturating_sub(l.in_flight))
            .sum();
        pending.saturating_sub(covered).div_ceil(depth).min(room)
    }

    /// The active lease of one of `executors` (executor ids whose lane is up) with
    /// the fewest closures in flight, below `depth`; `prefer` first if any has room.
    pub(crate) fn pick(
        &self,
        usable: impl Fn(&Lease) -> bool,
        prefer: impl Fn(&Lease) -> bool,
        depth: usize,
    ) -> Option<String> {
        let mut best: Option<(&String, &Lease)> = None;
        for (id, lease) in &self.by_id {
            if lease.state != LeaseState::Active || lease.in_flight >= depth || !usable(lease) {
                continue;
            }
            let better = match best {
                None => true,
                Some((_, b)) => {
                    (prefer(lease), std::cmp::Reverse(lease.in_flight))
                        > (prefer(b), std::cmp::Reverse(b.in_flight))
                }
            };
            if better {
                best = Some((id, lease));
            }
        }
        best.map(|(id, _)| id.clone())
    }

    /// A closure was sent into `id`.
    pub(crate) fn add_closure(&mut self, id: &str) {
        if let Some(lease) = self.by_id.get_mut(id) {
            lease.in_flight += 1;
        }
    }

    /// A closure of `id` was answered (or given up).
    pub(crate) fn closure_done(&mut self, id: &str, now: Instant) {
        if let Some(lease) = self.by_id.get_mut(id) {
            lease.in_flight = lease.in_flight.saturating_sub(1);
            if lease.in_flight == 0 {
                lease.idle_since = now;
            }
        }
    }

    /// Active leases idle for `idle` or longer, now marked releasing.
    pub(crate) fn release_idle(&mut self, now: Instant, idle: Duration) -> Vec<(String, Lease)> {
        let mut released = Vec::new();
        for (id, lease) in &mut self.by_id {
            if lease.state == LeaseState::Active
                && lease.in_flight == 0
                && now.saturating_duration_since(lease.idle_since) >= idle
            {
                lease.state = LeaseState::Releasing;
                released.push((id.clone(), lease.clone()));
            }
        }
        released
    }

    /// Every lease id with its agent, for reconciliation.
    pub(crate) fn all(&self) -> impl Iterator<Item = (&String, &Lease)> {
        self.by_id.iter()
    }

    /// Leases on `executor` (for status).
    pub(crate) fn count_on(&self, executor: &str) -> usize {
        self.by_id
            .values()
            .filter(|l| l.executor == executor)
            .count()
    }
}

/// One offer's room while leases are packed into it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LeaseRoom {
    pub cpus: f64,
    pub mem: f64,
    /// No executor of ours runs on that agent: the first lease also carries the
    /// executor's own resources.
    pub new_executor: bool,
    /// Leases packed into it.
    pub leases: usize,
}

/// Tolerance of the resource arithmetic (offers are decimals).
const EPSILON: f64 = 1e-9;

/// Packs up to `wanted` leases of `slot` (cpus, mem) into `rooms`, one per room in
/// turn, so that leases (and so closures) spread over agents; `executor` is what a new
/// executor costs on top. Returns how many were packed.
pub(crate) fn pack(
    rooms: &mut [LeaseRoom],
    wanted: usize,
    slot: (f64, f64),
    executor: (f64, f64),
) -> usize {
    let mut packed = 0;
    loop {
        let mut progressed = false;
        for room in rooms.iter_mut() {
            if packed == wanted {
                return packed;
            }
            let (mut cpus, mut mem) = slot;
            if room.new_executor && room.leases == 0 {
                cpus += executor.0;
                mem += executor.1;
            }
            if room.cpus + EPSILON >= cpus && room.mem + EPSILON >= mem {
                room.cpus -= cpus;
                room.mem -= mem;
                room.leases += 1;
                packed += 1;
                progressed = true;
            }
        }
        if !progressed {
            return packed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(cpus: f64, mem: f64, new_executor: bool) -> LeaseRoom {
        LeaseRoom {
            cpus,
            mem,
            new_executor,
            leases: 0,
        }
    }

    #[test]
    fn leases_spread_over_offers_and_pay_for_a_new_executor_once() {
        let mut rooms = vec![room(1.0, 1024.0, true), room(0.35, 1024.0, false)];
        let packed = pack(&mut rooms, 100, (0.1, 64.0), (0.1, 32.0));
        // Room 0: 0.1 executor + 9 leases of 0.1; room 1: 3 leases.
        assert_eq!(packed, 12);
        assert_eq!(rooms[0].leases, 9);
        assert_eq!(rooms[1].leases, 3);
        assert!(rooms[0].cpus.abs() < 1e-6);

        let mut rooms = vec![room(1.0, 1024.0, false), room(1.0, 1024.0, false)];
        assert_eq!(pack(&mut rooms, 3, (0.1, 64.0), (0.1, 32.0)), 3);
        assert_eq!((rooms[0].leases, rooms[1].leases), (2, 1));

        // Memory bounds it too; too small for the executor: nothing.
        let mut rooms = vec![room(4.0, 100.0, false), room(4.0, 90.0, true)];
        assert_eq!(pack(&mut rooms, 10, (0.1, 64.0), (0.1, 32.0)), 1);
        assert_eq!(rooms[1].leases, 0);
    }

    #[test]
    fn leases_are_wanted_for_uncovered_work_within_the_cap() {
        let now = Instant::now();
        let mut leases = Leases::new("p".into());
        let lane_up = |_: &Lease| true;
        assert_eq!(leases.wanted(0, 8, 64, lane_up), 0);
        assert_eq!(leases.wanted(1, 8, 64, lane_up), 1);
        assert_eq!(leases.wanted(17, 8, 64, lane_up), 3);
        assert_eq!(leases.wanted(10_000, 8, 64, lane_up), 64);
        let a = leases.launch("agent", "exec", now);
        // A launching lease covers `depth` pending closures.
        assert_eq!(leases.wanted(8, 8, 64, lane_up), 0);
        assert_eq!(leases.wanted(9, 8, 64, lane_up), 1);
        assert_eq!(leases.wanted(10_000, 8, 64, lane_up), 63);
        assert!(leases.running(&a, now));
        assert!(!leases.running(&a, now), "only a launching lease starts");
        // Running before its lane is up: still covers its free slots.
        leases.add_closure(&a);
        assert_eq!(leases.wanted(7, 8, 64, |_| false), 0);
        assert_eq!(leases.wanted(8, 8, 64, |_| false), 1);
        // On its lane: what still waits is uncovered.
        assert_eq!(leases.wanted(8, 8, 64, lane_up), 1);
        assert_eq!(leases.wanted(8, 8, 1, lane_up), 0);
    }

    #[test]
    fn closures_go_to_the_least_loaded_active_lease_below_depth() {
        let now = Instant::now();
        let mut leases = Leases::new("p".into());
        let a = leases.launch("agent-a", "exec-a", now);
        let b = leases.launch("agent-b", "exec-b", now);
        let all = |_: &Lease| true;
        let none = |_: &Lease| false;
        assert_eq!(
            leases.pick(all, none, 2),
            None,
            "launching leases take nothing"
        );
        leases.running(&a, now);
        leases.running(&b, now);
        leases.add_closure(&a);
        assert_eq!(leases.pick(all, none, 2), Some(b.clone()));
        leases.add_closure(&b);
        leases.add_closure(&b);
        assert_eq!(leases.pick(all, none, 2), Some(a.clone()));
        // Preferred (e.g. holds the module) wins while it has room.
        let on_b = |l: &Lease| l.executor == "exec-b";
        leases.closure_done(&b, now);
        assert_eq!(leases.pick(all, on_b, 2), Some(b.clone()));
        // Unusable (lane down) is never picked.
        let not_a = |l: &Lease| l.executor != "exec-a";
        leases.add_closure(&b);
        assert_eq!(leases.pick(not_a, none, 2), None);
    }

    #[test]
    fn only_idle_active_leases_are_released_and_executors_take_theirs_along() {
        let t0 = Instant::now();
        let idle = Duration::from_secs(2);
        let mut leases = Leases::new("p".into());
        let a = leases.launch("agent", "exec", t0);
        let b = leases.launch("agent", "exec", t0);
        let c = leases.launch("agent-2", "exec-2", t0);
        for id in [&a, &b, &c] {
            leases.running(id, t0);
        }
        leases.add_closure(&a);
        let t1 = t0 + Duration::from_secs(1);
        leases.closure_done(&a, t1);
        let released = leases.release_idle(t0 + idle, idle);
        let mut ids: Vec<&str> = released.iter().map(|(id, _)| id.as_str()).collect();
        ids.sort();
        let mut expected = vec![b.as_str(), c.as_str()];
        expected.sort();
        assert_eq!(
            ids, expected,
            "a worked at t1, so it is idle only from then"
        );
        assert_eq!(leases.held(), 1);
        assert_eq!(leases.release_idle(t1 + idle, idle).len(), 1);
        assert!(leases.release_idle(t1 + idle * 2, idle).is_empty());
        assert_eq!(leases.remove_executor("exec").len(), 2);
        assert_eq!(leases.len(), 1);
        assert!(leases.ended(&c).is_some());
        assert_eq!(leases.len(), 0);
    }
}
