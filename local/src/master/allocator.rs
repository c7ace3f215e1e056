//! The allocator: batch allocations (one offer per agent, round robin over the
//! frameworks that want one), the offers they make, refused-offer filters as
//! `HierarchicalAllocatorProcess::recoverResources` sets them, and offers going back
//! to the pool.

use std::time::{Duration, Instant};

use brine_proto::mesos::v1::scheduler::event;
use brine_proto::mesos::v1::{Address, ExecutorId, Offer, OfferId, Url, resource};

use super::frameworks::{Filter, event};
use super::offers::OutstandingOffer;
use super::resources::Resources;
use super::state::State;

impl State {
    /// `recoverResources` with filters: a refused-offer filter on `resources` for
    /// `max(allocation_interval, refuse_seconds)`; none for `refuse_seconds` 0 (or so
    /// small it is 0 ns). A negative value means the default 5 s, more than 365 days
    /// means 365 days. Nothing is allocated here: what is given back is offered at the
    /// next batch allocation, and the end of the filter does not allocate either.
    pub(super) fn add_filter(
        &mut self,
        framework_id: &str,
        agent: usize,
        resources: Resources,
        refuse: f64,
    ) {
        let Some(timeout) = filter_timeout(refuse, self.config.allocation_interval) else {
            return;
        };
        if resources.is_empty() {
            return;
        }
        let agent_id = self.agents[agent].id.value.clone();
        if let Some(f) = self.frameworks.get_mut(framework_id) {
            f.filters.entry(agent_id).or_default().push(Filter {
                resources,
                until: Instant::now() + timeout,
            });
        }
    }

    /// Returns the outstanding offers of `framework_id` to the pool (no RESCIND).
    pub(super) fn recover_offers_of(&mut self, framework_id: &str) {
        let ids: Vec<String> = self
            .offers
            .iter()
            .filter(|(_, o)| o.offer.framework_id.value == framework_id)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Some(o) = self.offers.remove(&id) {
                self.agents[o.agent].offered = self.agents[o.agent].offered.sub(&o.resources);
            }
        }
    }

    /// One batch allocation (Mesos's `generateOffers()` over every agent): each agent's
    /// free resources go, as one offer, to one framework that wants them (round robin
    /// over connected, unsuppressed frameworks with a role, skipping those whose filters
    /// hide these resources).
    ///
    /// It runs on the master's fixed `allocation_interval` grid (see [`super::Master`])
    /// and, at once, only where Mesos's allocator allocates at once: a framework added
    /// or re-activated (SUBSCRIBE) and REVIVE. Resources given back (unused part of an
    /// ACCEPT, DECLINE, terminal tasks, removed executors or frameworks) and the end of
    /// a filter wait for the next tick.
    pub fn allocate(&mut self) {
        let now = Instant::now();
        for framework in self.frameworks.values_mut() {
            framework.expire_filters(now);
        }
        let candidates: Vec<String> = self
            .frameworks
            .iter()
            .filter(|(_, f)| f.connected() && !f.suppressed && f.role().is_some())
            .map(|(id, _)| id.clone())
            .collect();
        if candidates.is_empty() {
            return;
        }
        for index in 0..self.agents.len() {
            if !self.agents[index].active || !self.agents[index].connected {
                continue;
            }
            let available = self.agents[index].available();
            if !available.allocatable() {
                continue;
            }
            let agent_id = self.agents[index].id.clone();
            let n = candidates.len();
            let chosen = (0..n)
                .map(|k| &candidates[(self.round_robin + k) % n])
                .find(|id| {
                    self.frameworks
                        .get(*id)
                        .is_some_and(|f| !f.filtered(&agent_id, &available, now))
                })
                .cloned();
            let Some(framework_id) = chosen else {
                continue;
            };
            self.round_robin = self.round_robin.wrapping_add(1);
            self.make_offer(index, &framework_id, available);
        }
    }

    fn make_offer(&mut self, index: usize, framework_id: &str, resources: Resources) {
        let Some(framework) = self.frameworks.get(framework_id) else {
            return;
        };
        let Some(role) = framework.role() else {
            return;
        };
        let multi_role = framework.multi_role();
        let slot = &self.agents[index];
        let id = format!("{}-O{}", self.master_info.id, self.next_offer);
        self.next_offer += 1;
        let ip = slot.endpoint.ip().to_string();
        let mut executor_ids: Vec<ExecutorId> = slot
            .executors
            .keys()
            .filter(|(fid, _)| fid == framework_id)
            .map(|(_, eid)| ExecutorId { value: eid.clone() })
            .collect();
        executor_ids.sort_by(|a, b| a.value.cmp(&b.value));
        let mut offer = Offer {
            id: OfferId { value: id.clone() },
            framework_id: framework.id.clone(),
            agent_id: slot.id.clone(),
            hostname: slot.info.hostname.clone(),
            url: Some(Url {
                scheme: "http".to_owned(),
                address: Address {
                    hostname: Some(slot.info.hostname.clone()),
                    ip: Some(ip),
                    port: i32::from(slot.endpoint.port()),
                },
                path: Some("/slave(1)".to_owned()),
                ..Default::default()
            }),
            resources: resources.to_proto(&role),
            executor_ids,
            allocation_info: Some(resource::AllocationInfo { role: Some(role) }),
            ..Default::default()
        };
        if !multi_role {
            // Mesos strips `allocation_info` (offer and resources) for frameworks
            // without MULTI_ROLE.
            offer.allocation_info = None;
            for r in &mut offer.resources {
                r.allocation_info = None;
            }
        }
        self.agents[index].offered = self.agents[index].offered.add(&resources);
        self.offers.insert(
            id,
            OutstandingOffer {
                offer: offer.clone(),
                agent: index,
                resources,
            },
        );
        self.count("master/offers_sent");
        if let Some(framework) = self.frameworks.get_mut(framework_id) {
            framework.offers_sent += 1;
            let mut e = event(event::Type::Offers);
            e.offers = Some(event::Offers {
                offers: vec![offer],
            });
            framework.send(&e);
        }
    }
}

/// How long a refused-offer filter lasts (`HierarchicalAllocatorProcess::
/// recoverResources`), or `None` for no filter.
fn filter_timeout(refuse_seconds: f64, allocation_interval: Duration) -> Option<Duration> {
    const DEFAULT: f64 = 5.0;
    const MAX: f64 = 365.0 * 86400.0;
    let seconds = if refuse_seconds > MAX {
        MAX
    } else if refuse_seconds < 0.0 {
        DEFAULT
    } else {
        refuse_seconds
    };
    if seconds.is_nan() {
        // stout turns NaN into a negative duration: the filter lasts one interval.
        return Some(allocation_interval);
    }
    // stout truncates to whole nanoseconds; a zero duration installs no filter.
    let nanos = (seconds * 1e9) as u64;
    if nanos == 0 {
        return None;
    }
    Some(Duration::from_nanos(nanos).max(allocation_interval))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_last_as_mesos_recover_resources_sets_them() {
        let second = Duration::from_secs(1);
        assert_eq!(filter_timeout(0.0, second), None);
        assert_eq!(filter_timeout(1e-12, second), None);
        assert_eq!(filter_timeout(0.5, second), Some(second));
        assert_eq!(filter_timeout(2.0, second), Some(Duration::from_secs(2)));
        assert_eq!(filter_timeout(-1.0, second), Some(Duration::from_secs(5)));
        assert_eq!(
            filter_timeout(1e300, second),
            Some(Duration::from_secs(365 * 86400))
        );
        assert_eq!(filter_timeout(f64::NAN, second), Some(second));
    }
}
