//! Ctrl-C (or SIGTERM, as a service manager or `timeout` sends): the first stops sending
//! (in-flight requests finish, the result so far is written, exit 130); a second leaves at
//! once (the journal keeps what was done).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::graph::Graph;

/// Set once the run was asked to stop.
#[derive(Clone, Default)]
pub(crate) struct Interrupted(Arc<AtomicBool>);

impl Interrupted {
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Waits for the next Ctrl-C or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Watches for Ctrl-C / SIGTERM for the rest of the run.
pub(crate) fn watch(graph: Graph) -> Interrupted {
    let flag = Interrupted::default();
    let f = flag.clone();
    tokio::spawn(async move {
        stop_signal().await;
        f.set();
        graph.stop_sending();
        eprintln!(
            "\ninterrupted: finishing the requests in flight and writing the result so far \
             (press Ctrl-C again to leave at once; rerun the same command to continue)"
        );
        stop_signal().await;
        eprintln!("left at once: the journal keeps what was done; rerun the same command");
        std::process::exit(crate::exit::ExitCode::Interrupted.code());
    });
    flag
}
