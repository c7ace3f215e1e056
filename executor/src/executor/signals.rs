//! SIGTERM and SIGINT, turned into inputs of the event loop (each starts a shutdown) by a
//! task of their own.

use tokio::sync::mpsc::UnboundedSender;

use super::Input;

pub(super) fn spawn_signal_listener(tx: UnboundedSender<Input>) {
    use tokio::signal::unix::{SignalKind, signal};
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::warn!("cannot listen for SIGTERM/SIGINT");
            return;
        };
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            if tx.send(Input::Terminate(name)).is_err() {
                return;
            }
        }
    });
}
