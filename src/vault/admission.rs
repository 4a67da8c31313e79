//! Who may validate now: at most `running` validations talk to Twilio at once, at most `queued`
//! more wait for a turn, and the rest are refused at once. A burst of Validate calls cannot pile
//! up without bound, and (see `validate.rs`) none of the waiting ones holds a decrypted secret.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct Admission {
    /// Permits for running plus waiting validations: the queue's bound.
    admitted: Arc<Semaphore>,
    running: Arc<Semaphore>,
    limits: QueueFull,
}

/// A turn to talk to Twilio, held until dropped.
pub struct Turn {
    _admitted: OwnedSemaphorePermit,
    _running: OwnedSemaphorePermit,
}

/// Refused: `running` validations are running and `queued` more are waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull {
    pub running: usize,
    pub queued: usize,
}

impl Admission {
    pub fn new(running: usize, queued: usize) -> Self {
        let running = running.max(1);
        Self {
            admitted: Arc::new(Semaphore::new(running + queued)),
            running: Arc::new(Semaphore::new(running)),
            limits: QueueFull { running, queued },
        }
    }

    /// Joins the queue (or fails at once when it is full), then waits for a turn.
    pub async fn enter(&self) -> Result<Turn, QueueFull> {
        let admitted = (self.admitted.clone().try_acquire_owned()).map_err(|_| self.limits)?;
        // Never closed, so this only waits.
        let running = (self.running.clone().acquire_owned().await).map_err(|_| self.limits)?;
        Ok(Turn {
            _admitted: admitted,
            _running: running,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let a = Arc::new(Admission::new(1, 2));
        let running = a.enter().await.unwrap();
        let waiting: Vec<_> = (0..2)
            .map(|_| {
                let a = a.clone();
                tokio::spawn(async move { a.enter().await.map(drop) })
            })
            .collect();
        while a.admitted.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            a.enter().await.err(),
            Some(QueueFull {
                running: 1,
                queued: 2
            })
        );
        drop(running);
        for w in waiting {
            w.await.unwrap().unwrap();
        }
        drop(a.enter().await.unwrap());
    }
}
