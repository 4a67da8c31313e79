//! A lock the instances sharing one store take turns at (`Store::try_lock`): background work
//! that one instance at a time should do (re-validation) runs while it is held.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::watch;

type Release = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Held while it lives and the store keeps confirming it; released when dropped (or, awaited,
/// by [`Lock::release`]).
pub struct Lock {
    held: watch::Receiver<bool>,
    release: Option<Release>,
}

impl Lock {
    /// A lock nobody else can contend for: the store is one process's (sled).
    pub fn exclusive() -> Self {
        Self {
            held: watch::channel(true).1,
            release: None,
        }
    }

    /// A lock the store keeps alive, reporting on `held` (false: it can no longer say that
    /// no other instance holds it); `release` gives it up.
    pub(super) fn kept(
        held: watch::Receiver<bool>,
        release: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        Self {
            held,
            release: Some(Box::pin(release)),
        }
    }

    pub fn is_held(&self) -> bool {
        *self.held.borrow()
    }

    /// Waits until the lock is lost (never, for an exclusive one).
    pub async fn lost(&mut self) {
        if self.held.wait_for(|held| !held).await.is_err() {
            // The keeper ended without losing it (an exclusive lock has none): held for good.
            if self.is_held() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Gives the lock up now, so another instance may take it without waiting for it to expire.
    pub async fn release(mut self) {
        if let Some(release) = self.release.take() {
            release.await;
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let (Some(release), Ok(runtime)) =
            (self.release.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn an_exclusive_lock_is_never_lost() {
        let mut lock = Lock::exclusive();
        assert!(lock.is_held());
        let lost = tokio::time::timeout(Duration::from_millis(50), lock.lost()).await;
        assert!(lost.is_err(), "an exclusive lock reported lost");
    }

    #[tokio::test]
    async fn a_kept_lock_reports_its_loss_and_releases_once() {
        let (keeper, held) = watch::channel(true);
        let (released, mut was_released) = tokio::sync::mpsc::unbounded_channel();
        let mut lock = Lock::kept(held, async move {
            released.send(()).unwrap();
        });
        assert!(lock.is_held());
        keeper.send(false).unwrap();
        lock.lost().await;
        assert!(!lock.is_held());
        lock.release().await;
        assert!(was_released.recv().await.is_some());
        assert!(was_released.recv().await.is_none(), "released twice");
    }
}
