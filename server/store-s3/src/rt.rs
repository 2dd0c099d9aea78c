//! The store's own tokio runtime. The store interface is blocking, OpenDAL
//! is asynchronous: each call drives its future to completion here.

use std::future::Future;

use nfs4d_store::{StoreError, StoreResult};

pub(crate) struct Rt {
    rt: Option<tokio::runtime::Runtime>,
}

impl Rt {
    pub fn new() -> StoreResult<Rt> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("nfs4d-s3")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Setup(format!("s3 store runtime: {e}")))?;
        Ok(Rt { rt: Some(rt) })
    }

    /// Runs `f` to completion and returns its output. Safe from any
    /// thread: a plain thread drives the future itself; a thread that is
    /// inside some runtime's context (a blocking-pool thread of the
    /// server's runtime, say) hands it to a scoped helper thread, because
    /// tokio refuses to nest `block_on` in a runtime context.
    pub fn block_on<F: Future + Send>(&self, f: F) -> F::Output
    where
        F::Output: Send,
    {
        // A network round trip at least (nfs4d_blocking).
        nfs4d_blocking::region(|| self.drive(f))
    }

    fn drive<F: Future + Send>(&self, f: F) -> F::Output
    where
        F::Output: Send,
    {
        let Some(rt) = self.rt.as_ref() else {
            unreachable!("the runtime lives until drop")
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return rt.block_on(f);
        }
        let handle = rt.handle();
        std::thread::scope(|s| {
            match s.spawn(move || handle.block_on(f)).join() {
                Ok(v) => v,
                // The future panicked: re-raise it on the caller.
                Err(p) => std::panic::resume_unwind(p),
            }
        })
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which tokio forbids inside another
        // runtime's context; the store may be dropped there.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
