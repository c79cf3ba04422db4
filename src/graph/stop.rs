//! Stopping a run: Ctrl-C ([`super::Graph::stop_sending`]) or a token Graph rejects. Once
//! stopped nothing new is sent, and every wait of the client (a semaphore permit, a pacing
//! slot, a closed gate, `Retry-After`, backoff, a token refresh) ends at once: each is
//! selected against [`Stop::wait`].

use std::future::Future;
use std::sync::Mutex;

use tokio::sync::watch;

use super::errors::local_error;
use super::{CallError, ErrorKind};

/// Code of the error items not sent because Graph rejected the sign-in token carry.
pub const TOKEN_REJECTED: &str = "TokenRejected";

/// Why the run stopped sending.
#[derive(Clone, Debug)]
pub(super) enum Reason {
    /// Ctrl-C / SIGTERM: [`super::Graph::stop_sending`].
    Interrupted,
    /// Graph answered 401 after the token was renewed (or it cannot be renewed), or no new
    /// token could be had: what Graph (or the sign-in endpoint) said.
    TokenRejected(CallError),
}

pub(super) struct Stop {
    tx: watch::Sender<bool>,
    reason: Mutex<Option<Reason>>,
}

impl Default for Stop {
    fn default() -> Stop {
        Stop {
            tx: watch::channel(false).0,
            reason: Mutex::new(None),
        }
    }
}

impl Stop {
    /// Stops sending; the first reason given is the one kept.
    pub(super) fn stop(&self, reason: Reason) {
        {
            let mut r = self.reason.lock().unwrap();
            if r.is_none() {
                *r = Some(reason);
            }
        }
        self.tx.send_replace(true);
    }

    pub(super) fn is_stopped(&self) -> bool {
        *self.tx.borrow()
    }

    pub(super) fn reason(&self) -> Option<Reason> {
        self.reason.lock().unwrap().clone()
    }

    /// The sign-in failure that stopped the run, if that is why it stopped.
    pub(super) fn token_rejected(&self) -> Option<CallError> {
        match self.reason() {
            Some(Reason::TokenRejected(e)) => Some(e),
            _ => None,
        }
    }

    /// Resolves once the run is stopped.
    pub(super) async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Runs `f` unless the run stops first (then None).
    pub(super) async fn or_stop<F: Future>(&self, f: F) -> Option<F::Output> {
        if self.is_stopped() {
            return None;
        }
        tokio::select! {
            biased;
            _ = self.wait() => None,
            v = f => Some(v),
        }
    }

    /// The error an item that was not sent comes back with.
    pub(super) fn not_sent(&self) -> CallError {
        match self.reason() {
            Some(Reason::TokenRejected(e)) => token_not_sent(&e),
            _ => cancelled(),
        }
    }
}

/// Not sent because the run is stopping (Ctrl-C).
pub(super) fn cancelled() -> CallError {
    local_error(
        ErrorKind::Cancelled,
        "Cancelled",
        "not sent: the run is stopping",
    )
}

/// Not sent because Graph rejected the sign-in token (`e`: what it said).
pub(super) fn token_not_sent(e: &CallError) -> CallError {
    CallError {
        kind: ErrorKind::Unauthorized,
        status: None,
        code: TOKEN_REJECTED.into(),
        message: format!(
            "not sent: Microsoft Graph rejected the sign-in token ({e}); sign in again (a new \
             token) and rerun the same command"
        ),
        request_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn waits_end_at_once_when_the_run_stops() {
        let s = std::sync::Arc::new(Stop::default());
        let s2 = s.clone();
        let h = tokio::spawn(async move {
            s2.or_stop(tokio::time::sleep(Duration::from_secs(3600)))
                .await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        s.stop(Reason::Interrupted);
        let r = tokio::time::timeout(Duration::from_secs(5), h)
            .await
            .expect("ended at once")
            .unwrap();
        assert!(r.is_none());
        assert!(
            s.or_stop(async { 1 }).await.is_none(),
            "nothing starts after"
        );
        assert_eq!(s.not_sent().kind, ErrorKind::Cancelled);
    }

    #[test]
    fn the_first_reason_is_kept_and_says_what_graph_said() {
        let s = Stop::default();
        let e = local_error(ErrorKind::Unauthorized, "InvalidAuthenticationToken", "bad");
        s.stop(Reason::TokenRejected(e));
        s.stop(Reason::Interrupted);
        let n = s.not_sent();
        assert_eq!(
            (n.kind, n.code.as_str()),
            (ErrorKind::Unauthorized, TOKEN_REJECTED)
        );
        assert!(n.message.contains("rejected the sign-in token"), "{n}");
        assert!(n.message.contains("bad"), "{n}");
        assert!(s.token_rejected().is_some());
    }
}
