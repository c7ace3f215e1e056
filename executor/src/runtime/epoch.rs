//! The epoch ticker: one background thread advancing the engine's epoch every tick while
//! at least one task runs (and for [`LINGER`] after), so each store's epoch callback can
//! check its kill switch and deadline. It sleeps (no wake-ups at all) while the runtime
//! is idle.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::Engine;

/// How long the ticker keeps ticking after the last task ended. Tasks often come back
/// to back: waking a sleeping thread for each of them put a futex call and a context
/// switch on every task's path; ticking through short gaps costs a few idle wake-ups.
const LINGER: Duration = Duration::from_millis(50);

#[derive(Default)]
struct State {
    active: usize,
    /// The ticker is waiting on the condvar (it must be notified to tick again).
    sleeping: bool,
    shutdown: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is two counters that stay consistent even if a holder panicked.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Owns the ticker thread; stops and joins it on drop.
pub(crate) struct Ticker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    pub(crate) fn start(engine: Engine, tick: Duration) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("brine-epoch".into())
            .spawn(move || run(&thread_shared, &engine, tick))?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Keeps the ticker running until the returned guard drops.
    pub(crate) fn activate(&self) -> Active {
        let mut state = self.shared.lock();
        state.active += 1;
        // Only a sleeping ticker needs waking: a wake-up per task is a futex call on
        // the task's path for nothing while the ticker is ticking.
        if state.sleeping {
            self.shared.wake.notify_one();
        }
        drop(state);
        Active(Arc::clone(&self.shared))
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the epoch ticker thread panicked");
        }
    }
}

/// A running task's hold on the ticker.
pub(crate) struct Active(Arc<Shared>);

impl Drop for Active {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.active = state.active.saturating_sub(1);
    }
}

fn run(shared: &Shared, engine: &Engine, tick: Duration) {
    let mut last_active = Instant::now();
    loop {
        {
            let mut state = shared.lock();
            loop {
                if state.shutdown {
                    return;
                }
                if state.active > 0 {
                    last_active = Instant::now();
                    break;
                }
                if last_active.elapsed() < LINGER {
                    break;
                }
                state.sleeping = true;
                state = shared
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                state.sleeping = false;
                last_active = Instant::now();
            }
        }
        std::thread::sleep(tick);
        engine.increment_epoch();
    }
}
