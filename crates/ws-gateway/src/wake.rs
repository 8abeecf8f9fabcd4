//! A socket's outbound queue, with its wake-ups gathered per worker thread.
//!
//! Sockets are tasks on the server's worker threads, each a runtime of its own. A
//! fan-out runs elsewhere (the bus pump, the message writer) and queues one frame for
//! each socket of a room. Had each queued frame woken its socket's task directly, every
//! one would be a cross-thread wake-up: a syscall, and on a small machine a context
//! switch in which the worker writes one socket and sleeps again — fifty of them for a
//! message to a room of fifty. Inside [`batched`], frames are queued at once but the
//! wake-ups are kept, then handed to each worker's *ringer* task in one message: one
//! cross-thread wake-up per worker, after which the worker wakes its own sockets
//! locally (no syscall) and writes them one after another.
//!
//! Frames are queued immediately either way, so the order a socket sees is the order
//! they were queued; only the moment its task wakes moves, by the length of the batch.

use futures_util::task::AtomicWaker;
use std::{
    cell::RefCell,
    future::poll_fn,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::Poll,
};
use tokio::sync::mpsc::{
    self,
    error::{TryRecvError, TrySendError},
};

use crate::hub::Outbound;

/// Wakes one socket's writer; it knows the worker the socket lives on.
#[derive(Debug)]
pub struct Bell {
    waker: AtomicWaker,
    ringer: Option<Ringer>,
}

impl Bell {
    /// Wakes the socket now, or at the end of the enclosing [`batched`] call.
    fn ring(self: &Arc<Self>) {
        let deferred = PENDING.with(|p| match p.borrow_mut().as_mut() {
            Some(pending) => {
                pending.push(self.clone());
                true
            }
            None => false,
        });
        if !deferred {
            self.waker.wake();
        }
    }
}

/// A worker thread's ringer: a task there that wakes the sockets it is handed.
#[derive(Debug, Clone)]
struct Ringer {
    id: u64,
    tx: mpsc::UnboundedSender<Vec<Arc<Bell>>>,
}

static NEXT_RINGER: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's ringer, made with its first socket.
    static RINGER: RefCell<Option<Ringer>> = const { RefCell::new(None) };
    /// Wake-ups kept by an enclosing [`batched`] call on this thread.
    static PENDING: RefCell<Option<Vec<Arc<Bell>>>> = const { RefCell::new(None) };
}

/// The calling thread's ringer, started if it has none (or its runtime has ended);
/// `None` outside a runtime (the socket is then woken directly).
fn this_threads_ringer() -> Option<Ringer> {
    RINGER.with(|r| {
        let mut r = r.borrow_mut();
        if let Some(ringer) = r.as_ref().filter(|ringer| !ringer.tx.is_closed()) {
            return Some(ringer.clone());
        }
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Arc<Bell>>>();
        handle.spawn(async move {
            while let Some(bells) = rx.recv().await {
                for bell in bells {
                    bell.waker.wake();
                }
            }
        });
        let ringer = Ringer {
            id: NEXT_RINGER.fetch_add(1, Ordering::Relaxed),
            tx,
        };
        *r = Some(ringer.clone());
        Some(ringer)
    })
}

/// Runs `f`; the sockets it queues frames for are woken when it returns, through one
/// message to each worker's ringer (directly for sockets of the calling thread's own
/// worker). Nested calls join the outermost.
pub fn batched<R>(f: impl FnOnce() -> R) -> R {
    let outermost = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        if p.is_some() {
            return false;
        }
        *p = Some(Vec::new());
        true
    });
    // Rings even if `f` panics, so no socket sleeps on a frame it was given.
    struct Flush(bool);
    impl Drop for Flush {
        fn drop(&mut self) {
            if self.0 {
                let bells = PENDING.with(|p| p.borrow_mut().take()).unwrap_or_default();
                ring_all(bells);
            }
        }
    }
    let _flush = Flush(outermost);
    f()
}

fn ring_all(bells: Vec<Arc<Bell>>) {
    if bells.is_empty() {
        return;
    }
    let here = RINGER.with(|r| r.borrow().as_ref().map(|r| r.id));
    let mut groups: Vec<(Ringer, Vec<Arc<Bell>>)> = Vec::new();
    for bell in bells {
        match &bell.ringer {
            Some(ringer) if Some(ringer.id) != here => {
                match groups.iter_mut().find(|(r, _)| r.id == ringer.id) {
                    Some((_, group)) => group.push(bell),
                    None => groups.push((ringer.clone(), vec![bell])),
                }
            }
            // This thread's own sockets, or a socket with no ringer: a direct wake-up.
            _ => bell.waker.wake(),
        }
    }
    for (ringer, group) in groups {
        if let Err(mpsc::error::SendError(group)) = ringer.tx.send(group) {
            // The worker's runtime is gone; its sockets are ending anyway.
            for bell in group {
                bell.waker.wake();
            }
        }
    }
}

/// The sending side of a socket's queue (the hub's, and the socket's own for replies).
#[derive(Debug, Clone)]
pub struct Outlet {
    tx: mpsc::Sender<Outbound>,
    bell: Arc<Bell>,
}

impl Outlet {
    /// Queues a frame without waiting, and wakes the socket (see [`batched`]).
    pub fn try_send(&self, out: Outbound) -> Result<(), TrySendError<Outbound>> {
        self.tx.try_send(out)?;
        self.bell.ring();
        Ok(())
    }
}

impl Drop for Outlet {
    /// The queue may have lost its last sender: the reader must look (and see the end).
    fn drop(&mut self) {
        self.bell.waker.wake();
    }
}

/// The receiving side, read by the socket's task.
#[derive(Debug)]
pub struct Inlet {
    rx: mpsc::Receiver<Outbound>,
    bell: Arc<Bell>,
}

impl Inlet {
    /// The next frame; `None` once every [`Outlet`] is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<Outbound> {
        poll_fn(|cx| {
            match self.rx.try_recv() {
                Ok(out) => return Poll::Ready(Some(out)),
                Err(TryRecvError::Disconnected) => return Poll::Ready(None),
                Err(TryRecvError::Empty) => {}
            }
            // Registered before looking again: a frame queued in between rings it.
            self.bell.waker.register(cx.waker());
            match self.rx.try_recv() {
                Ok(out) => Poll::Ready(Some(out)),
                Err(TryRecvError::Disconnected) => Poll::Ready(None),
                Err(TryRecvError::Empty) => {
                    if self.rx.is_closed() && self.rx.is_empty() {
                        Poll::Ready(None)
                    } else {
                        Poll::Pending
                    }
                }
            }
        })
        .await
    }

    pub fn try_recv(&mut self) -> Result<Outbound, TryRecvError> {
        self.rx.try_recv()
    }
}

/// A socket's queue of `capacity` frames; call it on the socket's own thread, so its
/// wake-ups go through that worker's ringer.
pub fn queue(capacity: usize) -> (Outlet, Inlet) {
    let (tx, rx) = mpsc::channel(capacity);
    let bell = Arc::new(Bell {
        waker: AtomicWaker::new(),
        ringer: this_threads_ringer(),
    });
    (
        Outlet {
            tx,
            bell: bell.clone(),
        },
        Inlet { rx, bell },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn text(s: &str) -> Outbound {
        Outbound::Text(s.into())
    }

    /// Frames queued inside a batch from another thread wake their socket once the
    /// batch ends, in the order they were queued.
    #[test]
    fn a_batch_from_another_thread_wakes_each_socket_in_order() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            let (outlets, inlets): (Vec<_>, Vec<_>) = (0..3).map(|_| queue(8)).unzip();
            assert!(outlets.iter().all(|o| o.bell.ringer.is_some()));
            let readers: Vec<_> = inlets
                .into_iter()
                .map(|mut inlet| {
                    tokio::task::spawn_local(async move {
                        let mut got = Vec::new();
                        while let Some(Outbound::Text(t)) = inlet.recv().await {
                            got.push(t.to_string());
                            if got.len() == 2 {
                                break;
                            }
                        }
                        got
                    })
                })
                .collect();
            tokio::task::yield_now().await;
            let sender = std::thread::spawn(move || {
                batched(|| {
                    for o in &outlets {
                        o.try_send(text("one")).expect("room");
                    }
                    // Nothing is woken yet: the batch keeps the wake-ups.
                    assert_eq!(PENDING.with(|p| p.borrow().as_ref().map(Vec::len)), Some(3));
                    for o in &outlets {
                        o.try_send(text("two")).expect("room");
                    }
                });
                outlets
            });
            let _outlets = sender.join().expect("sender");
            for reader in readers {
                let got = tokio::time::timeout(Duration::from_secs(5), reader)
                    .await
                    .expect("woken")
                    .expect("reader");
                assert_eq!(got, ["one", "two"]);
            }
        });
    }

    /// Outside a batch a frame wakes its socket at once; a full queue refuses the frame
    /// and wakes nobody; the reader ends once every sender is gone.
    #[tokio::test]
    async fn direct_wake_full_queue_and_end() {
        let (outlet, mut inlet) = queue(1);
        let reader = tokio::spawn(async move {
            let first = inlet.recv().await;
            let end = inlet.recv().await;
            (first, end)
        });
        tokio::task::yield_now().await;
        outlet.try_send(text("a")).expect("room");
        // The reader has not run yet (one thread): "a" still fills the queue.
        assert!(matches!(
            outlet.try_send(text("b")),
            Err(TrySendError::Full(_))
        ));
        tokio::task::yield_now().await;
        drop(outlet);
        let (first, end) = tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("ends")
            .expect("reader");
        assert_eq!(first, Some(text("a")));
        assert_eq!(end, None, "the last sender's drop ends the reader");
    }

    /// A panic inside a batch still rings what was queued before it.
    #[test]
    fn a_panicking_batch_still_rings() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (outlet, mut inlet) = queue(4);
            let reader = tokio::spawn(async move { inlet.recv().await });
            tokio::task::yield_now().await;
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                batched(|| {
                    outlet.try_send(text("kept")).expect("room");
                    panic!("a fan-out failed");
                })
            }));
            assert!(caught.is_err());
            assert!(PENDING.with(|p| p.borrow().is_none()), "batch closed");
            let got = tokio::time::timeout(Duration::from_secs(5), reader)
                .await
                .expect("woken")
                .expect("reader");
            assert_eq!(got, Some(text("kept")));
        });
    }
}
