//! Replays `allocation-timing.json` (12 scenarios × 3 samples, captured from a real
//! Mesos 1.12 master) against brine-local masters over HTTP, each with one agent of the
//! captured size (cpus 2, mem 4096, disk 10000, ports [31000-32000]), and checks when
//! every offer comes.
//!
//! **Time scale.** The capture ran with Mesos's default `allocation_interval` of 1 s;
//! these masters run with [`INTERVAL`] = 250 ms, and everything the capture's scheduler
//! chose in seconds (its pauses, how long tasks run) is scaled by the same factor
//! ([`SCALE`]). What the master does not scale is the default refuse filter of 5 s
//! (Mesos's `Filters.refuse_seconds` default), so the expectations are written as
//! rules, not as numbers, against the master's tick grid
//! (`Master::allocation_epoch() + k × INTERVAL`):
//! - "at once": after the call and before the next tick (so not a batch allocation's
//!   offer; measured: a few ms, captured 7–24 ms);
//! - "at the next tick": at most [`LATE`] (90 ms) after the first tick the master
//!   handled after the call (handled within [`HANDLED`], 50 ms, of sending it) or after
//!   the TASK_FINISHED that freed the resources (sent at most [`DELIVERED`], 25 ms,
//!   before it arrived); a tick counts from its instant but may be handled up to
//!   [`LATE`] after it on a loaded machine;
//! - "when the filter ends": the same, from `max(INTERVAL, refuse_seconds)` after the
//!   call.
//!
//! **Phase.** The capture paused a random 0–1 s before each SUBSCRIBE so that samples
//! fall at random points of the 1 s cycle. Here sample `i` starts at the fixed phase
//! [`PHASES`]`[i]` (40 %, 50 %, 60 % of the cycle), and every pause of a scenario's
//! script ends at that phase too. So every call that is not a reaction to a tick's
//! offer is sent at least 100 ms away from any tick (more than [`LATE`]), and the two
//! cannot be confused: an offer the master made at once instead of at the next tick
//! comes before that tick and fails the grid check; one held back to the next tick
//! fails "before the next tick". Calls that react to a tick's offer (the ACCEPTs of
//! `b` and `g`) come right after a tick, so their "next tick" is a whole interval
//! later. The waits are awaited events with a bound; the only sleeps are the
//! scenario's own pauses (those of the capture client).
//!
//! **Tasks.** The capture launched command tasks (`sleep N`); the local agent runs only
//! custom executors, so each sample's tasks run on one `tests/data/json_executor.py`
//! executor that declares no resources (Mesos accounts only a command task's own
//! resources, and so does this). A task runs as long as its scaled `sleep` (or, for the
//! `sleep 120` tasks of `g`/`h`, until the framework is torn down). The executor's own
//! timings (ACCEPT → TASK_STARTING / TASK_RUNNING / TASK_FINISHED) are not the
//! allocator's and are not compared; TASK_FINISHED is the reference for the offer of
//! the task's resources.
//!
//! Checked per scenario (each sample on its own master, the three samples at once):
//! - every sample: SUBSCRIBED, HEARTBEAT, OFFERS in this order, the first offer (the
//!   whole agent) at once after SUBSCRIBE;
//! - every offer has the resources of the captured sample's offer at the same position;
//! - `a`: nothing else; `b` (`refuse_seconds: 0`): the rest of the offer at the next
//!   tick after ACCEPT, the task's resources (cpus 0.1, mem 32) at the next tick after
//!   TASK_FINISHED; `b` without filters, long task: the rest when the 5 s filter ends,
//!   then the task's resources at the next tick after TASK_FINISHED; `b` without
//!   filters, short task: nothing until TASK_FINISHED, then the whole agent at the next
//!   tick (the filter hides only subsets of what it holds); no offer while both are
//!   held;
//! - `c`: after DECLINE `refuse_seconds: 0`, the next tick; without filters, when the
//!   5 s filter ends;
//! - `d`: after DECLINE `refuse_seconds: 3600`, nothing for 2.5 (scaled) s, then REVIVE
//!   → an offer at once; `e`: SUPPRESS with the offer outstanding → nothing (no
//!   RESCIND), DECLINE `refuse_seconds: 0` → nothing, REVIVE → an offer at once;
//!   `f`: nothing at all while the offer is held;
//! - `g`: each ACCEPT of the newest offer → the next offer at the next tick
//!   (`refuse_seconds: 0`: one task per tick) or when the 5 s filter ends (no filters);
//!   `h`: with a REVIVE after each ACCEPT, each offer at once after the REVIVE (within
//!   [`UNDER_LOAD`], 150 ms: these calls fall anywhere in the cycle, and the agent is
//!   busy starting tasks meanwhile) or, when a tick came between ACCEPT and REVIVE, at
//!   that tick; the launch rate is then at
//!   least two tasks per interval (one per tick without REVIVE), as the interval no
//!   longer bounds it.
//!
//! Run with `--nocapture` to see the figures next to the captured ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use common::fixtures;
use common::scheduler::{Framework, captured_cluster, executor_script, json_headers, scalar};

/// The masters' allocation interval (the capture's was 1 s).
const INTERVAL: Duration = Duration::from_millis(250);
/// Captured seconds of the scheduler's own choosing → seconds here.
const SCALE: f64 = 0.25;
/// Mesos's default `Filters.refuse_seconds` (not scaled: the master's constant).
const DEFAULT_REFUSE: Duration = Duration::from_secs(5);
/// A call reaches the master and is handled within this after it was sent.
const HANDLED: Duration = Duration::from_millis(50);
/// An event the master sends reaches the client within this.
const DELIVERED: Duration = Duration::from_millis(25);
/// A batch allocation's offer reaches the client at most this long after its tick
/// (the master's loop may handle the tick late on a loaded machine).
const LATE: Duration = Duration::from_millis(90);
/// `h`: REVIVE → offer, and a tick's offer, while the agent starts tasks and every
/// update is acknowledged (captured: ACCEPT/REVIVE answers slowed to 30–160 ms there).
const UNDER_LOAD: Duration = Duration::from_millis(150);
/// Where in the cycle each sample's SUBSCRIBE and pauses fall: at least 100 ms from
/// any tick, more than [`HANDLED`] and [`LATE`].
const PHASES: [f64; 3] = [0.4, 0.5, 0.6];

/// The master's batch-allocation grid.
#[derive(Clone, Copy)]
struct Grid {
    epoch: Instant,
    interval: Duration,
}

impl Grid {
    /// The first tick strictly after `t`.
    fn tick_after(&self, t: Instant) -> Instant {
        let since = t.saturating_duration_since(self.epoch);
        let k = since.as_nanos() / self.interval.as_nanos() + 1;
        self.epoch + self.interval * u32::try_from(k).unwrap()
    }

    /// Sleeps at least `at_least`, until the cycle is at `phase` (0..1). A wake-up more
    /// than 10 ms late (a loaded machine) waits for the same phase one cycle later, so
    /// that what follows is still far from any tick.
    async fn pause(&self, at_least: Duration, phase: f64) {
        let earliest = Instant::now() + at_least;
        let mut target = self.tick_after(earliest) - self.interval.mul_f64(1.0 - phase);
        if target < earliest {
            target += self.interval;
        }
        for _ in 0..10 {
            tokio::time::sleep_until(target.into()).await;
            if Instant::now() <= target + Duration::from_millis(10) {
                return;
            }
            target = self.tick_after(Instant::now()) - self.interval.mul_f64(1.0 - phase);
            if target < Instant::now() {
                target += self.interval;
            }
        }
    }

    /// An offer of the batch allocation that followed something the master handled
    /// between `from` and `to`: made by the first tick the master handled after that
    /// moment (a tick may be handled up to `late` after its instant), it arrives at
    /// most `late` after that tick.
    fn check_tick(&self, what: &str, from: Instant, to: Instant, offer: Instant, late: Duration) {
        let mut tick = self.tick_after(from - late);
        let mut allowed = Vec::new();
        loop {
            allowed.push(tick);
            if tick > to {
                break;
            }
            tick += self.interval;
        }
        let ok = allowed.iter().any(|t| *t <= offer && offer <= *t + late);
        let rel = |t: Instant| {
            (t.saturating_duration_since(from).as_secs_f64()
                - from.saturating_duration_since(t).as_secs_f64())
                * 1000.0
        };
        assert!(
            ok,
            "{what}: offer {:.1} ms after the reference, expected at a tick at {:?} ms \
             (+ up to {} ms)",
            rel(offer),
            allowed
                .iter()
                .map(|t| format!("{:.1}", rel(*t)))
                .collect::<Vec<_>>(),
            late.as_millis()
        );
    }

    /// "At once": after the call and before the next tick (at least 100 ms away at
    /// the samples' phases), so the offer cannot be a batch allocation's.
    fn check_at_once(&self, what: &str, sent: Instant, offer: Instant) {
        let tick = self.tick_after(sent);
        assert!(
            sent <= offer && offer < tick,
            "{what}: offer {:.1} ms after the call, expected at once (before the next tick, \
             {:.1} ms after the call)",
            secs(sent, offer) * 1000.0,
            secs(sent, tick) * 1000.0
        );
    }
}

fn secs(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64()
}

/// An offer's resources as the capture logs them: scalars by name, ranges as text.
fn resources(offer: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for r in offer["resources"].as_array().unwrap() {
        let name = r["name"].as_str().unwrap().to_owned();
        if let Some(ranges) = r["ranges"]["range"].as_array() {
            let text: Vec<String> = ranges
                .iter()
                .map(|x| format!("{}-{}", x["begin"], x["end"]))
                .collect();
            out.insert(name, json!(format!("[{}]", text.join(", "))));
        } else {
            out.insert(name, r["scalar"]["value"].clone());
        }
    }
    Value::Object(out)
}

/// One sample: a framework subscribed to its own master.
struct Sample {
    name: String,
    fw: Framework,
    grid: Grid,
    phase: f64,
    /// The captured sample's offers (resources), in order.
    captured: Vec<Value>,
    offers: usize,
    /// Named figures (`_s`: seconds).
    figures: Vec<(&'static str, f64)>,
}

impl Sample {
    /// The next OFFERS event (its first offer) and when it arrived; its resources
    /// must be those of the captured offer at the same position.
    async fn next_offer(&mut self) -> (Instant, Value) {
        let (at, offer) = self.fw.offer_timed().await;
        let want = self.captured.get(self.offers).unwrap_or_else(|| {
            panic!(
                "{}: offer #{} was not in the capture",
                self.name, self.offers
            )
        });
        assert_eq!(
            &resources(&offer),
            want,
            "{}: resources of offer #{}",
            self.name,
            self.offers
        );
        self.offers += 1;
        (at, offer)
    }

    /// Pauses (see [`Grid::pause`]) and expects no event at all meanwhile.
    async fn quiet(&mut self, captured_seconds: f64, what: &str) {
        let start = Instant::now();
        self.grid
            .pause(
                Duration::from_secs_f64(captured_seconds * SCALE),
                self.phase,
            )
            .await;
        let late = tokio::time::Instant::now() + Duration::from_millis(1);
        // Events skipped earlier (e.g. TASK_RUNNING) are not this pause's.
        let events: Vec<(Instant, Value)> = self
            .fw
            .events_until(late)
            .await
            .into_iter()
            .filter(|(at, _)| *at >= start)
            .collect();
        assert!(
            events.is_empty(),
            "{}: {what}: events during {:.3} s: {:?}",
            self.name,
            start.elapsed().as_secs_f64(),
            events
                .iter()
                .map(|(_, e)| e.to_string())
                .collect::<Vec<_>>()
        );
    }

    /// Sends `call` (framework id and stream id added), expects `202`; returns when it
    /// was sent.
    async fn call(&self, call: Value) -> Instant {
        let sent = Instant::now();
        let (status, text) = self.fw.call(call).await;
        assert_eq!(status, 202, "{}: {text}", self.name);
        sent
    }

    async fn accept(&self, offer: &Value, tasks: Vec<Value>, refuse: Option<f64>) -> Instant {
        let mut accept = json!({"offer_ids": [offer["id"]],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": tasks}}]});
        if let Some(r) = refuse {
            accept["filters"] = json!({"refuse_seconds": r});
        }
        self.call(json!({"type": "ACCEPT", "accept": accept})).await
    }

    async fn decline(&self, offer: &Value, refuse: Option<f64>) -> Instant {
        let mut decline = json!({"offer_ids": [offer["id"]]});
        if let Some(r) = refuse {
            decline["filters"] = json!({"refuse_seconds": r});
        }
        self.call(json!({"type": "DECLINE", "decline": decline}))
            .await
    }

    fn figure(&mut self, name: &'static str, seconds: f64) {
        self.figures.push((name, seconds));
    }
}

/// A task on the sample's executor (which declares no resources); `sleep`: how long
/// it runs (none: until killed).
fn task(id: &str, agent: &Value, cpus: f64, mem: f64, sleep: Option<f64>) -> Value {
    let mut task = json!({"name": id, "task_id": {"value": id}, "agent_id": agent,
        "resources": [scalar("cpus", cpus), scalar("mem", mem)],
        "executor": {"executor_id": {"value": "timing"}, "type": "CUSTOM",
            "command": {"shell": true, "value": format!("python3 {}", executor_script())}}});
    if let Some(s) = sleep {
        task["data"] = json!(
            base64::engine::general_purpose::STANDARD.encode(json!({"sleep": s}).to_string())
        );
    }
    task
}

fn capture() -> Value {
    serde_json::from_slice(&std::fs::read(fixtures().join("allocation-timing.json")).unwrap())
        .unwrap()
}

/// Runs the three samples of `scenario` at once (each on its own master) and prints
/// their figures next to the captured summary.
async fn run(scenario: &'static str) {
    let handles: Vec<_> = (0..3).map(|i| tokio::spawn(sample(scenario, i))).collect();
    let mut figures = Vec::new();
    for handle in handles {
        match handle.await {
            Ok(f) => figures.push(f),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("{scenario}: {e}"),
        }
    }
    let capture = capture();
    println!("== {scenario} (interval {} ms)", INTERVAL.as_millis());
    for (name, _) in &figures[0] {
        let ours: Vec<String> = figures
            .iter()
            .map(|f| {
                let v = f.iter().find(|(n, _)| n == name).unwrap().1;
                format!("{v:.3}")
            })
            .collect();
        println!("   {name}: [{}]", ours.join(", "));
    }
    println!(
        "   captured summary (interval 1 s): {}",
        capture["scenarios"][scenario]["summary"]
    );
}

async fn sample(scenario: &'static str, index: usize) -> Vec<(&'static str, f64)> {
    let capture = capture();
    let captured_sample = &capture["scenarios"][scenario]["samples"][index];
    let captured: Vec<Value> = captured_sample["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "event" && e["what"] == "OFFERS")
        .map(|e| e["offers"][0]["resources"].clone())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let cluster = captured_cluster(dir.path(), INTERVAL).await;
    let master = cluster.master().unwrap();
    assert_eq!(master.allocation_interval(), INTERVAL);
    let grid = Grid {
        epoch: master.allocation_epoch(),
        interval: INTERVAL,
    };
    let phase = PHASES[index];
    let name = format!("{scenario}#{}", index + 1);
    // The capture's random pause before SUBSCRIBE, as a fixed phase.
    grid.pause(Duration::ZERO, phase).await;
    let info = json!({"user": "root", "name": format!("timing-{scenario}"), "roles": ["*"],
        "capabilities": [{"type": "MULTI_ROLE"}], "failover_timeout": 0.0});
    let sent = Instant::now();
    let mut headers = json_headers(None);
    headers.push(("Accept".to_owned(), "application/json".to_owned()));
    let fw = Framework::subscribe(&cluster.master_url(), info, headers).await;
    let mut s = Sample {
        name,
        fw,
        grid,
        phase,
        captured,
        offers: 0,
        figures: Vec::new(),
    };
    let (_, second) = s.fw.wait_timed("the second event", |_| true).await;
    assert_eq!(second["type"], "HEARTBEAT", "{}", s.name);
    let third = s.fw.wait_timed("the third event", |_| true).await;
    assert_eq!(third.1["type"], "OFFERS", "{}", s.name);
    s.fw.seen.push_front(third);
    let (at, first) = s.next_offer().await;
    s.grid
        .check_at_once(&format!("{}: SUBSCRIBE → first offer", s.name), sent, at);
    s.figure("subscribe_to_first_offers_s", secs(sent, at));
    match scenario {
        "a_subscribe_to_first_offer" => s.quiet(0.3, "before TEARDOWN").await,
        "b_partial_accept_refuse0" => partial_accept(&mut s, first, Some(0.0), 2.0).await,
        "b_partial_accept_default_filters_long_task" => {
            partial_accept(&mut s, first, None, 8.0).await
        }
        "b_partial_accept_default_filters_short_task" => {
            partial_accept(&mut s, first, None, 2.0).await
        }
        "c_decline_refuse0" => decline(&mut s, first, Some(0.0)).await,
        "c_decline_default_filters" => decline(&mut s, first, None).await,
        "d_decline_3600_then_revive" => {
            s.decline(&first, Some(3600.0)).await;
            s.quiet(2.5, "after DECLINE refuse_seconds 3600").await;
            revive(&mut s).await;
        }
        "e_suppress_then_revive" => {
            s.call(json!({"type": "SUPPRESS"})).await;
            s.quiet(0.5, "after SUPPRESS").await;
            s.decline(&first, Some(0.0)).await;
            s.quiet(2.5, "after DECLINE while suppressed").await;
            revive(&mut s).await;
        }
        "f_hold_offer" => s.quiet(3.0, "holding the offer").await,
        "g_launch_rate_refuse0" => launch_rate(&mut s, first, Some(0.0), false, 20).await,
        "g_launch_rate_default_filters" => launch_rate(&mut s, first, None, false, 3).await,
        "h_launch_rate_refuse0_revive" => launch_rate(&mut s, first, Some(0.0), true, 20).await,
        other => panic!("no script for {other}"),
    }
    let figures = std::mem::take(&mut s.figures);
    s.fw.teardown().await;
    cluster.shutdown().await;
    figures
}

/// `b_*`: ACCEPT of the first offer launching one task (cpus 0.1, mem 32) that runs
/// `captured_sleep` (scaled; `sleep 8` means "past the end of the 5 s filter");
/// every later offer is held.
async fn partial_accept(s: &mut Sample, first: Value, refuse: Option<f64>, captured_sleep: f64) {
    let long = captured_sleep > 5.0;
    let sleep = if long {
        DEFAULT_REFUSE.as_secs_f64() + (captured_sleep - 5.0) * SCALE
    } else {
        captured_sleep * SCALE
    };
    let t = task("b-task-1", &first["agent_id"], 0.1, 32.0, Some(sleep));
    let accepted = s.accept(&first, vec![t], refuse).await;
    let what = format!("{}: ACCEPT → the rest of the offer", s.name);
    if refuse == Some(0.0) || long {
        // The rest: at the next tick, or when the filter on it ends.
        let (at, _) = s.next_offer().await;
        let lo = match refuse {
            Some(_) => accepted,
            None => accepted + DEFAULT_REFUSE,
        };
        s.grid.check_tick(&what, lo, lo + HANDLED, at, LATE);
        s.figure("accept_to_remaining_offer_s", secs(accepted, at));
    }
    let (finished, _) = s.fw.update_timed("b-task-1", "TASK_FINISHED").await;
    let (at, _) = s.next_offer().await;
    assert!(at >= finished, "{}: an offer before TASK_FINISHED", s.name);
    s.grid.check_tick(
        &format!("{}: TASK_FINISHED → offer", s.name),
        finished - DELIVERED,
        finished,
        at,
        LATE,
    );
    s.figure("task_finished_to_next_offer_s", secs(finished, at));
    s.figure("accept_to_next_offer_after_finish_s", secs(accepted, at));
    s.quiet(1.5, "holding both offers").await;
}

/// `c_*`: DECLINE of the first offer; the next offer.
async fn decline(s: &mut Sample, first: Value, refuse: Option<f64>) {
    let declined = s.decline(&first, refuse).await;
    let (at, _) = s.next_offer().await;
    let lo = match refuse {
        Some(_) => declined,
        None => declined + DEFAULT_REFUSE,
    };
    s.grid.check_tick(
        &format!("{}: DECLINE → next offer", s.name),
        lo,
        lo + HANDLED,
        at,
        LATE,
    );
    s.figure("decline_to_next_offer_s", secs(declined, at));
    s.quiet(0.3, "before TEARDOWN").await;
}

/// REVIVE → an offer at once.
async fn revive(s: &mut Sample) {
    let revived = s.call(json!({"type": "REVIVE"})).await;
    let (at, _) = s.next_offer().await;
    s.grid
        .check_at_once(&format!("{}: REVIVE → offer", s.name), revived, at);
    s.figure("revive_to_next_offer_s", secs(revived, at));
    s.quiet(0.3, "before TEARDOWN").await;
}

/// `g_*`, `h_*`: `tasks` ACCEPTs, each of the newest offer as soon as it arrives, one
/// long task (cpus 0.05, mem 32) each; with `revive`, a REVIVE after each ACCEPT's 202.
async fn launch_rate(
    s: &mut Sample,
    first: Value,
    refuse: Option<f64>,
    revive: bool,
    tasks: usize,
) {
    let mut offer = first;
    let mut accepts = Vec::new();
    let mut waits = Vec::new();
    let mut ids = Vec::new();
    for n in 0..tasks {
        let id = format!("g-{n:02}-long");
        let t = task(&id, &offer["agent_id"], 0.05, 32.0, None);
        ids.push(id);
        let accepted = s.accept(&offer, vec![t], refuse).await;
        accepts.push(accepted);
        if n + 1 == tasks {
            break;
        }
        let what = format!("{}: ACCEPT #{} → next offer", s.name, n + 1);
        if revive {
            let revived = s.call(json!({"type": "REVIVE"})).await;
            let (at, next) = s.next_offer().await;
            if at < revived {
                // A tick came between ACCEPT and REVIVE (the capture saw this once).
                s.grid.check_tick(&what, accepted, revived, at, UNDER_LOAD);
            } else {
                // Its phase is the ACCEPT/REVIVE cycle's, anywhere: bounded, not "before
                // the next tick".
                let delay = at.saturating_duration_since(revived);
                assert!(
                    delay <= UNDER_LOAD,
                    "{what}: offer {:.1} ms after REVIVE, expected at once (≤ {} ms)",
                    delay.as_secs_f64() * 1000.0,
                    UNDER_LOAD.as_millis()
                );
            }
            offer = next;
            waits.push(secs(accepted, at));
        } else {
            let (at, next) = s.next_offer().await;
            let lo = match refuse {
                Some(_) => accepted,
                None => accepted + DEFAULT_REFUSE,
            };
            s.grid.check_tick(&what, lo, lo + HANDLED, at, LATE);
            offer = next;
            waits.push(secs(accepted, at));
        }
    }
    // As the capture client: every task running before TEARDOWN.
    for id in &ids {
        s.fw.update(id, "TASK_RUNNING").await;
    }
    let span = secs(accepts[0], *accepts.last().unwrap());
    let per_interval = (tasks - 1) as f64 / span * INTERVAL.as_secs_f64();
    if revive {
        // The interval no longer bounds the rate (capture: 7.8–59.7 tasks per
        // interval); here, at least twice one task per tick.
        assert!(
            per_interval >= 2.0,
            "{}: {per_interval:.2} tasks per interval with REVIVE",
            s.name
        );
    } else if refuse == Some(0.0) {
        // One task per tick (capture: 1.000–1.041 per interval).
        assert!(
            (0.95..=1.1).contains(&per_interval),
            "{}: {per_interval:.3} tasks per interval",
            s.name
        );
    }
    waits.sort_by(f64::total_cmp);
    s.figure("tasks_per_interval", per_interval);
    s.figure("accept_to_next_offer_min_s", waits[0]);
    s.figure("accept_to_next_offer_median_s", waits[waits.len() / 2]);
    s.figure("accept_to_next_offer_max_s", *waits.last().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribe_to_first_offer() {
    run("a_subscribe_to_first_offer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_partial_accept_refuse0() {
    run("b_partial_accept_refuse0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_partial_accept_default_filters_long_task() {
    run("b_partial_accept_default_filters_long_task").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_partial_accept_default_filters_short_task() {
    run("b_partial_accept_default_filters_short_task").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_decline_refuse0() {
    run("c_decline_refuse0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_decline_default_filters() {
    run("c_decline_default_filters").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d_decline_3600_then_revive() {
    run("d_decline_3600_then_revive").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_suppress_then_revive() {
    run("e_suppress_then_revive").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f_hold_offer() {
    run("f_hold_offer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g_launch_rate_refuse0() {
    run("g_launch_rate_refuse0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g_launch_rate_default_filters() {
    run("g_launch_rate_default_filters").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_launch_rate_refuse0_revive() {
    run("h_launch_rate_refuse0_revive").await;
}

/// Every scenario of the capture has a test above.
#[test]
fn every_captured_scenario_is_replayed() {
    let capture = capture();
    let scenarios: Vec<&String> = capture["scenarios"].as_object().unwrap().keys().collect();
    let source = include_str!("allocation_timing.rs");
    for scenario in &scenarios {
        assert!(
            source.contains(&format!("async fn {scenario}()")),
            "no test for {scenario}"
        );
    }
    assert_eq!(scenarios.len(), 12);
}
