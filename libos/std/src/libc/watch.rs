//! Readiness notifications: how an object tells the `epoll` instances
//! watching it that its state may have changed, so that `epoll_wait` looks
//! only at the registrations that were told (its ready list) instead of
//! asking every registered object on every call.
//!
//! An object that can change keeps a [`Watchers`] list per kind of change
//! (a pipe's read end one for "data came in or the writer went", its write
//! end one for "room freed or the reader went"). An `epoll` registration
//! is a [`Sub`]: [`File::watch`](super::fd::File::watch) adds it to the
//! lists of the object's changes that matter to it. [`Watchers::notify`]
//! queues each live registration on its instance's ready list, once
//! (Linux's `ep_poll_callback`), and tells the instance's own watchers (an
//! instance registered in another one). A change is told with the `poll`
//! bits it concerns (0: any), and a registration that asked for none of
//! them is not queued, as Linux's callback skips a wake-up whose key
//! misses the registration's events.
//!
//! The network's sockets change inside the stack, while it processes
//! frames: each watched socket has a [`NetWaker`], a `core::task::Waker`
//! registered with its smoltcp socket (which wakes it at data in, room
//! freed, a state change), that only puts the socket on a global list
//! ([`NetWaker::wake`]); [`drain`], which every `epoll_wait` calls first,
//! notifies their watchers. smoltcp's wakers fire once: the socket
//! registers its waker again each time `epoll` looks at it, and wherever
//! libos-std passes a waker to the stack.

use alloc::collections::BTreeMap;
use alloc::rc::{Rc, Weak};
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::Waker;

use super::fd::Events;
use super::start::Lock;

/// What a registration is queued on: the ready list of an `epoll`
/// instance, and what it tells when that list gains an entry.
pub trait Queue {
    /// Puts registration `key` on the ready list (it is not on it).
    fn enqueue(&self, key: u64);
    /// The instance's own watchers (an instance inside another).
    fn watchers(&self) -> &Watchers;
}

/// One registration's link to the objects it watches.
pub struct Sub {
    key: u64,
    /// The `poll` bits it reports (a change concerning none is ignored).
    interest: Cell<Events>,
    /// On its instance's ready list.
    queued: Cell<bool>,
    queue: Weak<dyn Queue>,
}

impl core::fmt::Debug for Sub {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sub").field("key", &self.key).field("queued", &self.queued).finish()
    }
}

impl Sub {
    /// Registration `key` of the instance `queue`, reporting `interest`.
    pub fn new(key: u64, interest: Events, queue: Weak<dyn Queue>) -> Rc<Self> {
        Rc::new(Self { key, interest: Cell::new(interest), queued: Cell::new(false), queue })
    }

    /// Its key in its instance.
    pub fn key(&self) -> u64 {
        self.key
    }

    /// Changes the bits it reports (`EPOLL_CTL_MOD`).
    pub fn set_interest(&self, interest: Events) {
        self.interest.set(interest);
    }

    /// Taken off the ready list (to be looked at).
    pub fn dequeued(&self) {
        self.queued.set(false);
    }

    /// Marks it as put back on the ready list by its instance (a
    /// level-triggered registration that reported).
    pub fn requeue(&self) {
        self.queued.set(true);
    }

    /// Whether it is on the ready list.
    pub fn is_queued(&self) -> bool {
        self.queued.get()
    }

    /// Queues it (if not queued already) and tells the instance's
    /// watchers, as a change of the object concerning `mask` (0: any).
    pub fn fire(&self, mask: Events) {
        if mask != 0 && mask & self.interest.get() == 0 {
            return;
        }
        let Some(q) = self.queue.upgrade() else { return };
        if !self.queued.replace(true) {
            q.enqueue(self.key);
        }
        // Linux wakes the instance's own waiters even when the entry was
        // queued already: an outer instance may have looked meanwhile.
        q.watchers().notify(::libc::POLLIN);
    }
}

/// The registrations watching one kind of change of an object.
#[derive(Default)]
pub struct Watchers(RefCell<Vec<Weak<Sub>>>);

impl core::fmt::Debug for Watchers {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("Watchers").field(&self.0.borrow().len()).finish()
    }
}

impl Watchers {
    /// Adds `sub` (once), dropping the registrations that are gone.
    pub fn add(&self, sub: &Rc<Sub>) {
        let mut v = self.0.borrow_mut();
        v.retain(|w| w.strong_count() > 0);
        let weak = Rc::downgrade(sub);
        if !v.iter().any(|w| Weak::ptr_eq(w, &weak)) {
            v.push(weak);
        }
    }

    /// Whether any registration watches.
    pub fn is_empty(&self) -> bool {
        self.0.borrow().iter().all(|w| w.strong_count() == 0)
    }

    /// Tells every registration that the object changed in a way that
    /// concerns the `poll` bits `mask` (0: any).
    pub fn notify(&self, mask: Events) {
        // No borrow is held while a registration fires: its instance may
        // be watched by another, and firing may add watchers.
        let mut i = 0;
        let mut dead = false;
        loop {
            let Some(w) = self.0.borrow().get(i).cloned() else { break };
            match w.upgrade() {
                Some(s) => s.fire(mask),
                None => dead = true,
            }
            i += 1;
        }
        if dead {
            self.0.borrow_mut().retain(|w| w.strong_count() > 0);
        }
    }
}

/// The watched network sockets whose smoltcp socket woke their
/// [`NetWaker`], by id, waiting for [`drain`].
static WOKEN: Lock<Vec<u64>> = Lock::new(Vec::new());

/// The watchers and the waker of each watched network socket, by the
/// waker's id.
type Watched = (Weak<Watchers>, alloc::sync::Weak<NetWaker>);
static SOCKETS: Lock<BTreeMap<u64, Watched>> = Lock::new(BTreeMap::new());

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The waker a watched network socket registers with the stack.
#[derive(Debug)]
pub struct NetWaker {
    id: u64,
    /// On [`WOKEN`] (cleared by [`drain`]).
    woken: AtomicBool,
}

impl Wake for NetWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, Ordering::Relaxed) {
            WOKEN.with(|w| w.push(self.id));
        }
    }
}

/// A watched network socket's watchers, its waker, and the waker as a
/// `Waker`.
type Watching = (Rc<Watchers>, Arc<NetWaker>, Waker);

/// A network socket's watchers and its waker (made when first watched).
#[derive(Debug, Default)]
pub struct NetWatch {
    inner: RefCell<Option<Watching>>,
}

impl NetWatch {
    /// Adds `sub` to the socket's watchers (making its waker the first
    /// time); the caller registers [`waker`](Self::waker) with the stack.
    pub fn add(&self, sub: &Rc<Sub>) {
        let mut inner = self.inner.borrow_mut();
        let (watchers, _, _) = inner.get_or_insert_with(|| {
            let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
            let net = Arc::new(NetWaker { id, woken: AtomicBool::new(false) });
            let watchers = Rc::new(Watchers::default());
            let entry = (Rc::downgrade(&watchers), Arc::downgrade(&net));
            SOCKETS.with(|s| s.insert(id, entry));
            (watchers, net.clone(), Waker::from(net))
        });
        watchers.add(sub);
    }

    /// The waker to register with the stack, if anything watches.
    pub fn waker(&self) -> Option<Waker> {
        self.inner.borrow().as_ref().map(|(_, _, w)| w.clone())
    }

    /// Tells the watchers of a change made outside the stack (a shutdown,
    /// a new state).
    pub fn notify(&self) {
        let w = self.inner.borrow().as_ref().map(|(w, _, _)| w.clone());
        if let Some(w) = w {
            w.notify(0);
        }
    }
}

impl Drop for NetWatch {
    fn drop(&mut self) {
        if let Some((_, net, _)) = self.inner.get_mut() {
            let id = net.id;
            SOCKETS.with(|s| s.remove(&id));
        }
    }
}

/// Tells the watchers of every network socket the stack woke since the
/// last call, and those of the timers that expired.
pub fn drain() {
    super::timerfd::expire_due();
    let woken = WOKEN.with(core::mem::take);
    for id in woken {
        let found = SOCKETS.with(|s| s.get(&id).map(|(w, n)| (w.upgrade(), n.upgrade())));
        let Some((watchers, net)) = found else { continue };
        // Cleared before notifying: a wake from now on lists it again.
        if let Some(n) = net {
            n.woken.store(false, Ordering::Relaxed);
        }
        if let Some(w) = watchers {
            w.notify(0);
        }
    }
}
