//! `POST /api/v1/scheduler` of the local master (`brine_local::master`), up to where the
//! call needs the master's state: the `Content-Type`, the `Call` decoded as the endpoint
//! decodes it (protobuf, or JSON walked as stout walks it, with Mesos's error texts),
//! `scheduler::call::validate`, and for SUBSCRIBE the `FrameworkInfo` checks
//! (`brine_local::master::check_scheduler_call`). Never panics, only refuses; what it
//! accepts it accepts again, unchanged, re-sent as protobuf and as JSON. The resources of
//! an ACCEPT's LAUNCH and LAUNCH_GROUP tasks also go through the master's resource
//! arithmetic and Mesos's text form of them (`brine_local::master::resources`), as
//! `Master::accept` uses them.
//!
//! Input: byte 0 picks the `Content-Type` (see `common::request`), the rest is the body.

#![no_main]

mod common;

use brine_local::master::check_scheduler_call;
use brine_local::master::resources::{self, Resources};
use brine_proto::mesos::v1::scheduler::call;
use brine_proto::mesos::v1::{Resource, offer};
use libfuzzer_sys::fuzz_target;

/// What `Master::accept` does with a task's resources: read, measured against an
/// agent's offer, taken out of it, and written in Mesos's text form in errors.
fn resources(task: &[Resource]) {
    let offered = Resources {
        cpus: 2.0,
        mem: 2048.0,
        disk: 4096.0,
        ports: vec![(31000, 32000)],
    };
    let wanted = Resources::from_proto(task);
    let _ = resources::describe(task);
    let _ = resources::describe(&wanted.to_proto("*"));
    if offered.contains(&wanted) {
        let left = offered.sub(&wanted);
        let _ = left.add(&wanted);
        let _ = left.allocatable();
    }
    let _ = wanted.add(&offered).is_empty();
}

fuzz_target!(|input: &[u8]| {
    let Some((content_type, body)) = common::request(input) else {
        return;
    };
    let Ok(call) = check_scheduler_call(content_type, body) else {
        return;
    };
    common::round_trips(&call, check_scheduler_call);
    if call.r#type() == call::Type::Accept
        && let Some(accept) = &call.accept
    {
        for operation in &accept.operations {
            match operation.r#type() {
                offer::operation::Type::Launch => {
                    for task in operation.launch.iter().flat_map(|l| &l.task_infos) {
                        resources(&task.resources);
                    }
                }
                offer::operation::Type::LaunchGroup => {
                    if let Some(group) = &operation.launch_group {
                        let all: Vec<Resource> = group
                            .task_group
                            .tasks
                            .iter()
                            .flat_map(|t| t.resources.iter().cloned())
                            .chain(group.executor.resources.iter().cloned())
                            .collect();
                        resources(&all);
                    }
                }
                _ => {}
            }
        }
    }
});
