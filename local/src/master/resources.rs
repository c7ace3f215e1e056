//! Resources as the local master counts them: the scalars `cpus`, `mem`, `disk` and
//! the `ports` ranges, with Mesos's fixed-point arithmetic (three decimals) and its
//! text form (`cpus(allocated: *):2; mem(allocated: *):32`).

use std::fmt;

use brine_proto::mesos::v1::{Resource, resource, value};

/// Scalar values are compared and summed at Mesos's precision.
fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// A bag of resources of one agent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub cpus: f64,
    pub mem: f64,
    pub disk: f64,
    /// Inclusive ranges, sorted and disjoint.
    pub ports: Vec<(u64, u64)>,
}

impl Resources {
    /// Reads the resources named in `resources` (other names are ignored).
    pub fn from_proto(resources: &[Resource]) -> Resources {
        let mut out = Resources::default();
        for r in resources {
            match (r.name.as_str(), &r.scalar, &r.ranges) {
                ("cpus", Some(s), _) => out.cpus = round(out.cpus + s.value),
                ("mem", Some(s), _) => out.mem = round(out.mem + s.value),
                ("disk", Some(s), _) => out.disk = round(out.disk + s.value),
                ("ports", _, Some(ranges)) => {
                    for range in &ranges.range {
                        out.ports = add_ranges(&out.ports, &[(range.begin, range.end)]);
                    }
                }
                _ => {}
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.cpus <= 0.0 && self.mem <= 0.0 && self.disk <= 0.0 && self.ports.is_empty()
    }

    /// Worth offering: Mesos's allocator offers an agent when at least 0.01 cpus or
    /// 32 MB of memory are free.
    pub fn allocatable(&self) -> bool {
        self.cpus >= 0.01 || self.mem >= 32.0
    }

    pub fn add(&self, other: &Resources) -> Resources {
        Resources {
            cpus: round(self.cpus + other.cpus),
            mem: round(self.mem + other.mem),
            disk: round(self.disk + other.disk),
            ports: add_ranges(&self.ports, &other.ports),
        }
    }

    /// `self - other`, never below zero.
    pub fn sub(&self, other: &Resources) -> Resources {
        Resources {
            cpus: round(self.cpus - other.cpus).max(0.0),
            mem: round(self.mem - other.mem).max(0.0),
            disk: round(self.disk - other.disk).max(0.0),
            ports: sub_ranges(&self.ports, &other.ports),
        }
    }

    /// Whether `other` fits in `self`.
    pub fn contains(&self, other: &Resources) -> bool {
        round(self.cpus - other.cpus) >= 0.0
            && round(self.mem - other.mem) >= 0.0
            && round(self.disk - other.disk) >= 0.0
            && other
                .ports
                .iter()
                .all(|(b, e)| self.ports.iter().any(|(sb, se)| sb <= b && e <= se))
    }

    /// As offered by Mesos 1.12 to a MULTI_ROLE framework: ports first, then cpus, mem,
    /// disk; each with the deprecated `role` and `allocation_info { role }`.
    #[allow(deprecated)]
    pub fn to_proto(&self, role: &str) -> Vec<Resource> {
        let allocation = Some(resource::AllocationInfo {
            role: Some(role.to_owned()),
        });
        let mut out = Vec::new();
        if !self.ports.is_empty() {
            out.push(Resource {
                name: "ports".to_owned(),
                r#type: value::Type::Ranges as i32,
                ranges: Some(value::Ranges {
                    range: self
                        .ports
                        .iter()
                        .map(|(begin, end)| value::Range {
                            begin: *begin,
                            end: *end,
                        })
                        .collect(),
                }),
                role: Some("*".to_owned()),
                allocation_info: allocation.clone(),
                ..Default::default()
            });
        }
        for (name, v) in [("cpus", self.cpus), ("mem", self.mem), ("disk", self.disk)] {
            if v > 0.0 {
                out.push(Resource {
                    role: Some("*".to_owned()),
                    allocation_info: allocation.clone(),
                    ..Resource::scalar(name, v)
                });
            }
        }
        out
    }
}

fn add_ranges(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut all: Vec<(u64, u64)> = a.iter().chain(b).copied().collect();
    all.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(all.len());
    for (begin, end) in all {
        match out.last_mut() {
            Some(last) if begin <= last.1.saturating_add(1) => last.1 = last.1.max(end),
            _ => out.push((begin, end)),
        }
    }
    out
}

fn sub_ranges(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = a.to_vec();
    for &(rb, re) in b {
        let mut next = Vec::with_capacity(out.len() + 1);
        for (b0, e0) in out {
            if re < b0 || rb > e0 {
                next.push((b0, e0));
                continue;
            }
            if rb > b0 {
                next.push((b0, rb - 1));
            }
            if re < e0 {
                next.push((re + 1, e0));
            }
        }
        out = next;
    }
    out
}

/// Mesos's `stringify(Resources)` for resources in the order given, merging equal
/// names as `Resources::operator+=` does.
pub fn describe(resources: &[Resource]) -> String {
    let mut merged: Vec<Resource> = Vec::new();
    for r in resources {
        match merged.iter_mut().find(|m| m.name == r.name) {
            Some(m) => {
                if let (Some(a), Some(b)) = (m.scalar.as_mut(), r.scalar.as_ref()) {
                    a.value = round(a.value + b.value);
                }
                if let (Some(a), Some(b)) = (m.ranges.as_mut(), r.ranges.as_ref()) {
                    let joined = add_ranges(
                        &a.range.iter().map(|x| (x.begin, x.end)).collect::<Vec<_>>(),
                        &b.range.iter().map(|x| (x.begin, x.end)).collect::<Vec<_>>(),
                    );
                    a.range = joined
                        .into_iter()
                        .map(|(begin, end)| value::Range { begin, end })
                        .collect();
                }
            }
            None => merged.push(r.clone()),
        }
    }
    merged
        .iter()
        .map(|r| DisplayResource(r).to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

struct DisplayResource<'a>(&'a Resource);

impl fmt::Display for DisplayResource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        write!(f, "{}", r.name)?;
        if let Some(allocation) = &r.allocation_info {
            write!(
                f,
                "(allocated: {})",
                allocation.role.as_deref().unwrap_or("")
            )?;
        }
        write!(f, ":")?;
        if let Some(s) = &r.scalar {
            write!(f, "{}", round(s.value))?;
        } else if let Some(ranges) = &r.ranges {
            let parts: Vec<String> = ranges
                .range
                .iter()
                .map(|x| format!("{}-{}", x.begin, x.end))
                .collect();
            write!(f, "[{}]", parts.join(", "))?;
        } else if let Some(set) = &r.set {
            write!(f, "{{{}}}", set.item.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_text() {
        let total = Resources {
            cpus: 2.0,
            mem: 2048.0,
            disk: 4096.0,
            ports: vec![(31000, 32000)],
        };
        let used = Resources {
            cpus: 0.2,
            mem: 32.0,
            ports: vec![(31005, 31005)],
            ..Default::default()
        };
        let left = total.sub(&used);
        assert_eq!(left.ports, vec![(31000, 31004), (31006, 32000)]);
        assert_eq!(left.cpus, 1.8);
        assert_eq!(left.add(&used), total);
        assert!(total.contains(&used));
        assert_eq!(
            describe(&total.to_proto("*")),
            "ports(allocated: *):[31000-32000]; cpus(allocated: *):2; mem(allocated: *):2048; disk(allocated: *):4096"
        );
    }
}
