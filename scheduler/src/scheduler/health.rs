//! Agent health: agents that fail many jobs in a short window are set aside for a
//! while (their offers declined), so a sick machine does not eat the retries.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

pub(crate) struct AgentHealth {
    limit: usize,
    window: Duration,
    cooldown: Duration,
    failures: HashMap<String, VecDeque<Instant>>,
    set_aside: HashMap<String, Instant>,
    /// Every agent seen in an offer.
    pub known: HashSet<String>,
}

impl AgentHealth {
    pub(crate) fn new(limit: usize, window: Duration, cooldown: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window,
            cooldown,
            failures: HashMap::new(),
            set_aside: HashMap::new(),
            known: HashSet::new(),
        }
    }

    /// A job failed on `agent` for infrastructure reasons.
    pub(crate) fn failure(&mut self, agent: &str, now: Instant) {
        let failures = self.failures.entry(agent.to_owned()).or_default();
        failures.push_back(now);
        while failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            failures.pop_front();
        }
        if failures.len() >= self.limit {
            tracing::warn!(
                agent,
                failures = failures.len(),
                window = ?self.window,
                cooldown = ?self.cooldown,
                "agent failed too many jobs: setting it aside"
            );
            failures.clear();
            self.set_aside.insert(agent.to_owned(), now + self.cooldown);
        }
    }

    pub(crate) fn is_set_aside(&mut self, agent: &str, now: Instant) -> bool {
        match self.set_aside.get(agent) {
            Some(until) if *until > now => true,
            Some(_) => {
                tracing::info!(agent, "agent back from being set aside");
                self.set_aside.remove(agent);
                false
            }
            None => false,
        }
    }

    /// Whether offers from `agent` are declined: it is set aside, and some other known
    /// agent is not. With every agent set aside (one event, such as a master that
    /// restarted without its agents' registry, can blame them all at once) declining
    /// them all would stop every job; they serve instead.
    pub(crate) fn excludes(&mut self, agent: &str, now: Instant) -> bool {
        self.is_set_aside(agent, now)
            && self
                .known
                .iter()
                .any(|a| a != agent && self.set_aside.get(a).is_none_or(|until| *until <= now))
    }

    /// Whether a job that failed on the agents in `avoid` should skip `agent`: only
    /// while some other usable agent is known, so a job is never starved.
    pub(crate) fn should_avoid(&self, avoid: &HashSet<String>, agent: &str) -> bool {
        avoid.contains(agent)
            && self
                .known
                .iter()
                .any(|a| !avoid.contains(a) && !self.set_aside.contains_key(a))
    }

    pub(crate) fn set_aside_agents(&self) -> Vec<String> {
        self.set_aside.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_aside_after_the_limit_within_the_window_only() {
        let mut health = AgentHealth::new(3, Duration::from_secs(10), Duration::from_secs(60));
        let t0 = Instant::now();
        health.failure("a", t0);
        health.failure("a", t0 + Duration::from_secs(1));
        // The first failure has left the window by now.
        health.failure("a", t0 + Duration::from_secs(12));
        assert!(!health.is_set_aside("a", t0 + Duration::from_secs(12)));
        health.failure("a", t0 + Duration::from_secs(13));
        assert!(!health.is_set_aside("a", t0 + Duration::from_secs(13)));
        health.failure("a", t0 + Duration::from_secs(14));
        assert!(health.is_set_aside("a", t0 + Duration::from_secs(14)));
        assert!(!health.is_set_aside("b", t0 + Duration::from_secs(14)));
        // Back after the cooldown.
        assert!(!health.is_set_aside("a", t0 + Duration::from_secs(75)));
    }

    #[test]
    fn offers_are_declined_only_while_another_agent_serves() {
        let mut health = AgentHealth::new(1, Duration::from_secs(10), Duration::from_secs(60));
        let now = Instant::now();
        health.known.extend(["a".to_string(), "b".to_string()]);
        health.failure("a", now);
        assert!(health.excludes("a", now), "b serves");
        assert!(!health.excludes("b", now));
        health.failure("b", now);
        assert!(
            !health.excludes("a", now),
            "every agent set aside: they serve"
        );
        assert!(!health.excludes("b", now));
    }

    #[test]
    fn avoids_an_agent_only_while_another_is_usable() {
        let mut health = AgentHealth::new(5, Duration::from_secs(10), Duration::from_secs(60));
        health.known.insert("a".into());
        let avoid: HashSet<String> = ["a".to_string()].into();
        assert!(!health.should_avoid(&avoid, "a"), "a is the only agent");
        health.known.insert("b".into());
        assert!(health.should_avoid(&avoid, "a"));
        assert!(!health.should_avoid(&avoid, "b"));
    }
}
