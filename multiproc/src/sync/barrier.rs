//! [`Barrier`]: a process-shared barrier that breaks, rather than hangs, when a waiting
//! party dies.
#![forbid(unsafe_code)]

use std::fmt;
use std::mem::size_of;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::loom::Ordering;
use crate::mem::named::Layout;
use crate::mem::segment::{Kind, Segment};
use crate::raw::park::{self, Parked};
use crate::raw::{Acquired, RawBarrier, LIVENESS_PERIOD};
use crate::sys::identity::{self, Token};

pub(super) const KIND: Kind = Kind(*b"BARR");

/// The action a barrier runs when a round is complete.
type Action = Arc<dyn Fn() + Send + Sync>;

/// A barrier for a fixed number of processes (or threads): Python's
/// `multiprocessing.Barrier`.
///
/// Each party calls [`wait`](Barrier::wait); nobody leaves until all `parties` have arrived,
/// then all leave together and the barrier is ready for the next round. Each gets its
/// arrival index (`0` for the first). A wait that times out, an [`abort`](Barrier::abort),
/// a [`reset`](Barrier::reset) during a round, or a waiting party that dies, *breaks* the
/// barrier, as in Python: the party whose time ran out gets [`Error::Timeout`], every
/// other waiter [`Error::BrokenBarrier`], as does every later wait until `reset`. Waiters
/// check every 0.1 s that the others still run.
///
/// # Examples
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// let barrier = multiproc::Barrier::new(1)?;
/// assert_eq!(barrier.wait()?, 0);
/// assert_eq!(barrier.parties(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Barrier {
    seg: Segment,
    parties: u32,
    action: Option<Action>,
    pub(super) timeout: Option<Duration>,
}

/// Where a party stands after [`Barrier::arrive`].
pub(super) enum Arrival {
    /// It was the last party: the round passed, and this is its index.
    Last(u32),
    /// It waits for round `generation` to end, as party `index`.
    Waiting { generation: u32, index: u32 },
}

/// Refuses a barrier of no parties.
pub(super) fn check_parties(parties: u32) -> Result<()> {
    if parties == 0 {
        return Err(Error::InvalidArgument(
            "a barrier needs at least one party".into(),
        ));
    }
    Ok(())
}

/// The payload offset of the waiting parties' tokens.
const SLOTS: usize = size_of::<RawBarrier>().next_multiple_of(8);

impl Barrier {
    /// Creates a barrier for `parties` parties.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `parties` is 0; [`Error::Io`] when the system
    /// refuses the memory.
    pub fn new(parties: u32) -> Result<Barrier> {
        check_parties(parties)?;
        let layout = Barrier::layout(parties);
        let seg = Segment::create(KIND, layout.size, layout.align)?;
        Ok(Barrier::init_in(seg, parties))
    }

    /// The segment of a barrier of `parties` parties: its state, then one slot per party.
    pub(super) fn layout(parties: u32) -> Layout {
        Layout {
            what: "barrier",
            kind: KIND,
            size: SLOTS + parties as usize * size_of::<AtomicU64>(),
            align: 8,
        }
    }

    /// The number of parties of a barrier segment whose payload is `size` bytes, if one
    /// can be.
    pub(super) fn parties_for(size: usize) -> Option<u32> {
        let slots = size.checked_sub(SLOTS)?;
        let parties = u32::try_from(slots / size_of::<AtomicU64>()).ok()?;
        (parties > 0 && Barrier::layout(parties).size == size).then_some(parties)
    }

    /// The barrier in `seg` (of [`Barrier::layout`]), as its creator left it.
    pub(super) fn in_segment(seg: Segment) -> Barrier {
        Barrier {
            parties: Barrier::parties_for(seg.payload_size()).unwrap_or(0),
            seg,
            action: None,
            timeout: None,
        }
    }

    /// A new barrier of `parties` in the fresh, zeroed `seg`, which no other process sees
    /// yet.
    pub(super) fn init_in(seg: Segment, parties: u32) -> Barrier {
        let b = Barrier::in_segment(seg);
        b.raw().parties.store(parties, Ordering::Relaxed);
        b
    }

    /// Creates a barrier whose last arriving party runs `action` before anyone is released.
    /// If `action` panics, the barrier breaks and the panic goes on in that party.
    ///
    /// The action runs in the process that completes the round, whichever it is, on that
    /// process's own copy of what the closure captured: create the barrier (and so the
    /// action) before starting the children, so every process has it. State the action
    /// changes in one process is not seen by the others unless it lives in shared memory
    /// (a [`Value`](crate::Value), say).
    ///
    /// # Errors
    ///
    /// As [`Barrier::new`].
    pub fn with_action(parties: u32, action: impl Fn() + Send + Sync + 'static) -> Result<Barrier> {
        let mut b = Barrier::new(parties)?;
        b.action = Some(Arc::new(action));
        Ok(b)
    }

    /// Sets the timeout [`Barrier::wait`] uses (Python's `Barrier(timeout=...)`);
    /// without it, `wait` waits as long as it takes. It belongs to this handle and its
    /// clones made afterwards.
    pub fn default_timeout(mut self, timeout: Duration) -> Barrier {
        self.timeout = Some(timeout);
        self
    }

    fn raw(&self) -> &RawBarrier {
        self.seg.get(0)
    }

    fn slots(&self) -> &[AtomicU64] {
        self.seg.get_slice(SLOTS, self.parties as usize)
    }

    /// Waits for every party (at most the [`default_timeout`](Barrier::default_timeout), if
    /// set); returns this party's arrival index in `0..parties`.
    ///
    /// # Errors
    ///
    /// [`Error::BrokenBarrier`] when the barrier is or becomes broken; [`Error::Timeout`]
    /// when the default timeout runs out (which breaks the barrier for the others).
    pub fn wait(&self) -> Result<u32> {
        self.wait_until(self.timeout.map_or(Deadline::NEVER, Deadline::after))
    }

    /// Like [`Barrier::wait`], for at most `timeout`; running out of time breaks the
    /// barrier, as in Python.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] for this party when the time runs out (every other waiter then
    /// gets [`Error::BrokenBarrier`]); [`Error::BrokenBarrier`] when the barrier is or
    /// becomes broken otherwise.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u32> {
        self.wait_until(Deadline::after(timeout))
    }

    /// Like [`Barrier::wait_timeout`], until `deadline` at the latest.
    ///
    /// # Errors
    ///
    /// As [`Barrier::wait_timeout`].
    pub fn wait_deadline(&self, deadline: Instant) -> Result<u32> {
        self.wait_until(Deadline::at(deadline))
    }

    /// Counts this party in: the last one runs the action and lets the round pass, the
    /// others are told which round to wait for (the first half of every wait, sync or
    /// async).
    ///
    /// # Errors
    /// [`Error::BrokenBarrier`] when the barrier is broken, or breaks now because a waiting
    /// party died.
    pub(super) fn arrive(&self) -> Result<Arrival> {
        let raw = self.raw();
        let state = self.locked();
        if raw.broken.load(Ordering::Relaxed) != 0 {
            return Err(Error::BrokenBarrier);
        }
        let generation = raw.generation.load(Ordering::Relaxed);
        let index = raw.waiting.load(Ordering::Relaxed);
        if index + 1 == self.parties {
            // A party killed while waiting still counts in `waiting`: passing would pretend
            // it arrived, so the round breaks instead.
            if self.a_waiter_died() {
                self.break_locked();
                return Err(Error::BrokenBarrier);
            }
            if let Some(action) = &self.action {
                if let Err(panic) =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| action()))
                {
                    self.break_locked();
                    drop(state);
                    std::panic::resume_unwind(panic);
                }
            }
            raw.waiting.store(0, Ordering::Relaxed);
            raw.generation
                .store(generation.wrapping_add(1), Ordering::Relaxed);
            self.wake_all();
            return Ok(Arrival::Last(index));
        }
        self.slots()[index as usize].store(identity::process().0, Ordering::Relaxed);
        raw.waiting.store(index + 1, Ordering::Relaxed);
        Ok(Arrival::Waiting { generation, index })
    }

    /// After a waiting party's liveness period passed without the round ending, under the
    /// state lock: the round's outcome if it ended meanwhile, else breaks the barrier when
    /// `timed_out` (this party's [`Error::Timeout`]) or a waiting party died.
    pub(super) fn check_waiting(&self, generation: u32, timed_out: bool) -> Option<Result<()>> {
        let _state = self.locked();
        if let Some(outcome) = self.outcome(generation) {
            return Some(outcome);
        }
        if timed_out {
            self.break_locked();
            return Some(Err(Error::Timeout));
        }
        if self.a_waiter_died() {
            self.break_locked();
            return Some(Err(Error::BrokenBarrier));
        }
        None
    }

    fn wait_until(&self, deadline: Deadline) -> Result<u32> {
        let (generation, index) = match self.arrive()? {
            Arrival::Last(index) => return Ok(index),
            Arrival::Waiting { generation, index } => (generation, index),
        };
        let raw = self.raw();
        loop {
            let seq = raw.seq.load(Ordering::Acquire);
            if let Some(outcome) = self.outcome(generation) {
                return outcome.map(|()| index);
            }
            let check_at = Deadline::after(LIVENESS_PERIOD).min(deadline);
            if park::wait(&raw.seq, seq, check_at) == Parked::Woken {
                continue;
            }
            if let Some(outcome) = self.check_waiting(generation, deadline.has_passed()) {
                return outcome.map(|()| index);
            }
        }
    }

    /// How the round `generation` ended for its waiters, `None` while it goes on.
    pub(super) fn outcome(&self, generation: u32) -> Option<Result<()>> {
        let raw = self.raw();
        if raw.generation.load(Ordering::Acquire) != generation {
            if raw.cancelled.load(Ordering::Acquire) == generation.wrapping_add(1) {
                return Some(Err(Error::BrokenBarrier));
            }
            return Some(Ok(()));
        }
        if raw.broken.load(Ordering::Acquire) != 0 {
            return Some(Err(Error::BrokenBarrier));
        }
        None
    }

    fn a_waiter_died(&self) -> bool {
        let waiting = self.raw().waiting.load(Ordering::Relaxed) as usize;
        self.slots()[..waiting.min(self.parties as usize)]
            .iter()
            .any(|slot| !identity::is_alive(Token(slot.load(Ordering::Relaxed))))
    }

    /// Takes the barrier's internal lock. A party that died holding it may have left the
    /// state half-updated: the barrier is broken then.
    fn locked(&self) -> StateGuard<'_> {
        let raw = self.raw();
        let acquired = raw
            .lock
            .lock(identity::thread(), Deadline::NEVER, identity::is_alive)
            .unwrap_or(Acquired::Clean);
        let guard = StateGuard { barrier: self };
        if acquired == Acquired::OwnerDied {
            self.break_locked();
        }
        guard
    }

    /// Breaks the barrier; the caller holds the internal lock.
    fn break_locked(&self) {
        let raw = self.raw();
        raw.broken.store(1, Ordering::Release);
        raw.waiting.store(0, Ordering::Relaxed);
        self.wake_all();
    }

    fn wake_all(&self) {
        let raw = self.raw();
        // SeqCst: async waiters' announcement is read after this (see `mem::wake`).
        raw.seq.fetch_add(1, Ordering::SeqCst);
        park::wake(&raw.seq, u32::MAX);
        self.seg.wake_async_waiters();
    }

    /// The segment, whose eventfd async waiters await.
    #[cfg(feature = "tokio")]
    pub(super) fn segment(&self) -> &Segment {
        &self.seg
    }

    /// Breaks the barrier: every current and later waiter gets [`Error::BrokenBarrier`]
    /// until [`Barrier::reset`].
    pub fn abort(&self) {
        let _state = self.locked();
        self.break_locked();
    }

    /// Returns the barrier to its empty, unbroken state; parties waiting now get
    /// [`Error::BrokenBarrier`].
    pub fn reset(&self) {
        let raw = self.raw();
        let _state = self.locked();
        if raw.waiting.load(Ordering::Relaxed) > 0 {
            let generation = raw.generation.load(Ordering::Relaxed).wrapping_add(1);
            raw.cancelled.store(generation, Ordering::Relaxed);
            raw.generation.store(generation, Ordering::Release);
            raw.waiting.store(0, Ordering::Relaxed);
        }
        raw.broken.store(0, Ordering::Release);
        self.wake_all();
    }

    /// Whether the barrier is broken.
    pub fn is_broken(&self) -> bool {
        self.raw().broken.load(Ordering::Acquire) != 0
    }

    /// The number of parties.
    pub fn parties(&self) -> u32 {
        self.parties
    }

    /// How many parties wait now (a snapshot).
    pub fn n_waiting(&self) -> u32 {
        self.raw().waiting.load(Ordering::Relaxed)
    }
}

/// Holds the barrier's internal lock.
struct StateGuard<'a> {
    barrier: &'a Barrier,
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        self.barrier.raw().lock.unlock();
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties)
            .field("n_waiting", &self.n_waiting())
            .field("broken", &self.is_broken())
            .finish()
    }
}

/// Sent through a [`Connection`](crate::Connection) (or as a process argument), it arrives as
/// another handle on the same barrier, with its default timeout. A barrier made
/// [`with_action`](Barrier::with_action) does not travel: its action is a function of this
/// process.
impl serde::Serialize for Barrier {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.action.is_some() {
            return Err(crate::handle::failure(
                "a barrier with an action cannot travel: the action is a function of this \
                 process"
                    .into(),
                <S::Error as serde::ser::Error>::custom,
            ));
        }
        serde::Serialize::serialize(&(&self.seg, self.timeout), serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Barrier {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Raw(Segment);
        impl<'de> serde::Deserialize<'de> for Raw {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Segment::deserialize_as(d, KIND, |size| {
                    let layout = Barrier::layout(Barrier::parties_for(size)?);
                    Some((layout.size, layout.align))
                })
                .map(Raw)
            }
        }
        let (Raw(seg), timeout) = serde::Deserialize::deserialize(deserializer)?;
        Ok(Barrier {
            timeout,
            ..Barrier::in_segment(seg)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn broken<T: fmt::Debug>(r: Result<T>) -> bool {
        matches!(r, Err(Error::BrokenBarrier))
    }

    fn run_parties(b: &Barrier, n: u32, f: fn(&Barrier) -> u32) -> Vec<u32> {
        let threads: Vec<_> = (0..n)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || f(&b))
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    }

    #[test]
    fn br_01_br_02_br_11_parties_pass_together_and_one_gets_zero() {
        let b = Barrier::new(5).unwrap();
        for _ in 0..10 {
            let mut idx = run_parties(&b, 5, |b| b.wait().unwrap());
            idx.sort_unstable();
            assert_eq!(idx, vec![0, 1, 2, 3, 4]);
        }
        assert_eq!(b.n_waiting(), 0);
        assert!(!b.is_broken());
        assert_eq!(b.parties(), 5);
    }

    #[test]
    fn br_03_action_runs_once_per_round_and_may_capture_state() {
        let actions = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&actions);
        let b = Barrier::with_action(3, move || {
            counted.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        run_parties(&b, 3, |b| b.wait().unwrap());
        run_parties(&b, 3, |b| b.wait().unwrap());
        assert_eq!(actions.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn br_04_br_06_abort_breaks_and_reset_repairs() {
        let b = Barrier::new(2).unwrap();
        let b2 = b.clone();
        let t = std::thread::spawn(move || b2.wait());
        while b.n_waiting() < 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
        b.abort();
        assert!(broken(t.join().unwrap()));
        assert!(b.is_broken());
        assert!(broken(b.wait()));
        b.reset();
        assert!(!b.is_broken());
        run_parties(&b, 2, |b| b.wait().unwrap());
    }

    #[test]
    fn br_05_reset_breaks_the_waiters_and_the_barrier_is_reusable() {
        let b = Barrier::new(3).unwrap();
        let waiting: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || b.wait())
            })
            .collect();
        while b.n_waiting() < 2 {
            std::thread::sleep(Duration::from_millis(1));
        }
        b.reset();
        for t in waiting {
            assert!(broken(t.join().unwrap()));
        }
        assert!(!b.is_broken());
        run_parties(&b, 3, |b| b.wait().unwrap());
    }

    #[test]
    fn br_07_br_08_a_timeout_breaks_it_for_everyone() {
        let b = Barrier::new(2).unwrap();
        let t = Instant::now();
        assert!(matches!(
            b.wait_timeout(Duration::from_millis(50)),
            Err(Error::Timeout)
        ));
        assert!(t.elapsed() >= Duration::from_millis(50));
        assert!(b.is_broken());
        assert!(broken(b.wait()));
    }

    #[test]
    fn br_08_the_default_timeout_applies_to_wait() {
        let b = Barrier::new(2)
            .unwrap()
            .default_timeout(Duration::from_millis(30));
        let t = Instant::now();
        assert!(matches!(b.wait(), Err(Error::Timeout)));
        assert!(t.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn br_09_a_barrier_of_one_never_waits() {
        let b = Barrier::new(1).unwrap();
        for _ in 0..3 {
            assert_eq!(b.wait().unwrap(), 0);
        }
    }

    #[test]
    fn zero_parties_is_refused() {
        assert!(matches!(Barrier::new(0), Err(Error::InvalidArgument(_))));
    }
}
