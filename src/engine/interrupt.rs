//! Ctrl-C: the first stops sending (in-flight requests finish, the result so far is written,
//! exit 130); the second leaves at once (the journal keeps what was done).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::graph::Graph;

/// Set once the admin pressed Ctrl-C.
#[derive(Clone, Default)]
pub struct Interrupted(Arc<AtomicBool>);

impl Interrupted {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Watches for Ctrl-C for the rest of the run.
pub fn watch(graph: Graph) -> Interrupted {
    let flag = Interrupted::default();
    let f = flag.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        f.set();
        graph.stop_sending();
        eprintln!(
            "\ninterrupted: finishing the requests in flight and writing the result so far \
             (press Ctrl-C again to leave at once; rerun the same command to continue)"
        );
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("left at once: the journal keeps what was done; rerun the same command");
            std::process::exit(crate::exit::ExitCode::Interrupted.code());
        }
    });
    flag
}
