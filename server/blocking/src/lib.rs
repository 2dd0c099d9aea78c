//! Waits that may last, marked where they happen.
//!
//! The server runs COMPOUNDs on a few threads per connection
//! (`nfs4d::exec`): more threads than cores only add context switches
//! and lock hand-offs to requests that are all using the CPU. A thread
//! that waits for a disk flush, an fsync shared with other requests, or a
//! network call (an S3 store, etcd, a client's callback) uses no CPU,
//! though, and the requests queued behind it must not wait for it. So the
//! code that makes such a wait wraps it in [`region`], and the executor,
//! told through the [`Watcher`] it set on its thread, runs another thread
//! meanwhile.
//!
//! On a thread without a watcher (tests, start-up, background tasks)
//! [`region`] only runs its closure. Regions nest; only the outermost one
//! is reported, so a watcher sees one `enter` and one `leave` per wait.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

/// Told when its thread starts and ends a wait that may last.
pub trait Watcher: Send + Sync {
    /// The thread is about to wait.
    fn enter(&self);
    /// The wait is over (also on unwinding).
    fn leave(&self);
}

thread_local! {
    static WATCHER: RefCell<Option<Arc<dyn Watcher>>> = const { RefCell::new(None) };
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Removes this thread's watcher when dropped.
pub struct Watching(());

impl Drop for Watching {
    fn drop(&mut self) {
        WATCHER.with(|w| w.borrow_mut().take());
    }
}

/// Sets `w` as this thread's watcher until the returned guard is dropped.
pub fn watch(w: Arc<dyn Watcher>) -> Watching {
    WATCHER.with(|cur| *cur.borrow_mut() = Some(w));
    Watching(())
}

/// Ends a region: tells the watcher, on return and on unwinding alike.
struct Leave(Option<Arc<dyn Watcher>>);

impl Drop for Leave {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get() - 1));
        if let Some(w) = self.0.take() {
            w.leave();
        }
    }
}

/// Runs `f`, a wait that may last, telling this thread's watcher.
pub fn region<R>(f: impl FnOnce() -> R) -> R {
    let outermost = DEPTH.with(|d| {
        d.set(d.get() + 1);
        d.get() == 1
    });
    let w = if outermost {
        WATCHER.with(|w| w.borrow().clone())
    } else {
        None
    };
    if let Some(w) = &w {
        w.enter();
    }
    let _leave = Leave(w);
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

    #[derive(Default)]
    struct Count {
        inside: AtomicI64,
        entered: AtomicU64,
    }

    impl Watcher for Count {
        fn enter(&self) {
            self.inside.fetch_add(1, Ordering::SeqCst);
            self.entered.fetch_add(1, Ordering::SeqCst);
        }
        fn leave(&self) {
            self.inside.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn nested_regions_are_reported_once() {
        let c = Arc::new(Count::default());
        let _w = watch(c.clone());
        let got = region(|| {
            assert_eq!(c.inside.load(Ordering::SeqCst), 1);
            region(|| region(|| 7))
        });
        assert_eq!(got, 7);
        assert_eq!(c.inside.load(Ordering::SeqCst), 0);
        assert_eq!(c.entered.load(Ordering::SeqCst), 1);
        region(|| ());
        assert_eq!(c.entered.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_panicking_wait_still_leaves() {
        let c = Arc::new(Count::default());
        let _w = watch(c.clone());
        let r = std::panic::catch_unwind(|| region(|| panic!("the wait failed")));
        assert!(r.is_err());
        assert_eq!(c.inside.load(Ordering::SeqCst), 0);
        // The depth was restored too: the next region is reported.
        region(|| ());
        assert_eq!(c.entered.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn without_a_watcher_a_region_only_runs() {
        assert_eq!(region(|| 3), 3);
        let c = Arc::new(Count::default());
        drop(watch(c.clone()));
        region(|| ());
        assert_eq!(c.entered.load(Ordering::SeqCst), 0);
    }
}
