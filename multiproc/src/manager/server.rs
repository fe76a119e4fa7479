//! The manager's server: the process that owns the shared objects and serves every proxy.
//!
//! Each client connection is served by its own thread, so a proxy blocked in a queue `get`
//! or a lock `acquire` holds up only its own connection. Each object has its own mutex: two
//! operations on one object are atomic with respect to each other (this is what makes
//! `increment` and `compare_and_swap` race-free), operations on different objects run in
//! parallel.
#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use indexmap::IndexMap;

use super::custom::{Factory, Served};
use super::mailbox::{MailboxEnd, Side};
use super::protocol::{add, Bytes, Create, Failure, Kind, ObjectId, Op, Request, Response, Wait};
use crate::connection::{Connection, Listener};
use crate::shm::SharedMemory;

type Reply = Result<Response, Failure>;

/// Locks a mutex of the server; a panic in another connection's thread must not take every
/// object down with it, so poisoning is ignored (the operations leave no half-made state).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits on `cv` until `ready` holds, as `wait` allows.
fn wait_until<'a, S>(
    m: &'a Mutex<S>,
    cv: &Condvar,
    wait: Wait,
    mut ready: impl FnMut(&mut S) -> bool,
) -> Result<MutexGuard<'a, S>, Failure> {
    let mut g = lock(m);
    let deadline = match wait {
        Wait::For(d) => Instant::now().checked_add(d),
        _ => None,
    };
    loop {
        if ready(&mut g) {
            return Ok(g);
        }
        match (wait, deadline) {
            (Wait::Try, _) => return Err(Failure::WouldBlock),
            (Wait::Forever, _) | (Wait::For(_), None) => {
                g = cv.wait(g).unwrap_or_else(|p| p.into_inner());
            }
            (Wait::For(_), Some(t)) => {
                let now = Instant::now();
                if now >= t {
                    return Err(Failure::Timeout);
                }
                g = cv
                    .wait_timeout(g, t - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
    }
}

fn bad(msg: impl Into<String>) -> Failure {
    Failure::InvalidArgument(msg.into())
}

/// A shared object and the state its operations need.
enum Object {
    /// Dicts, namespaces and values (a map with one entry under the empty key).
    Map(Mutex<IndexMap<Bytes, Bytes>>),
    /// Lists; arrays are lists whose length never changes (`fixed`).
    List {
        items: Mutex<Vec<Bytes>>,
        fixed: bool,
    },
    Queue {
        state: Mutex<QueueState>,
        changed: Condvar,
    },
    /// Lock, RLock, Semaphore and Condition share one state shape.
    Sem {
        state: Mutex<SemState>,
        changed: Condvar,
    },
    Event {
        set: Mutex<bool>,
        changed: Condvar,
    },
    Barrier {
        state: Mutex<BarrierState>,
        changed: Condvar,
    },
    Custom(Mutex<Box<dyn Served>>),
    Tracker(Mutex<Vec<String>>),
}

struct QueueState {
    items: VecDeque<Bytes>,
    max: Option<usize>,
    /// Items put and not yet marked done (`task_done`): every managed queue is joinable,
    /// as Python's `queue.Queue` is.
    unfinished: u64,
}

/// A counting semaphore that also serves as a lock (`bound` 1), a reentrant lock (with an
/// `owner` and a `depth`) and a condition's lock with its waiters.
struct SemState {
    /// A lock (Lock, RLock, Condition), not a semaphore: over-release is a state error.
    is_lock: bool,
    value: u64,
    bound: Option<u64>,
    owner: Option<u64>,
    depth: u64,
    /// Condition waiters, by ticket, in arrival order; `notified` holds those woken.
    waiting: VecDeque<u64>,
    notified: HashSet<u64>,
    next_ticket: u64,
}

struct BarrierState {
    parties: usize,
    count: usize,
    generation: u64,
    broken: bool,
    /// Generations ended by `reset` while parties waited: those parties see a broken barrier.
    reset: HashSet<u64>,
}

impl Object {
    fn new(
        create: Create,
        factories: &HashMap<String, Factory>,
    ) -> Result<(Object, Kind), Failure> {
        let sem = |value, bound, kind| {
            let state = SemState {
                is_lock: kind != Kind::Semaphore,
                value,
                bound,
                owner: None,
                depth: 0,
                waiting: VecDeque::new(),
                notified: HashSet::new(),
                next_ticket: 0,
            };
            (
                Object::Sem {
                    state: Mutex::new(state),
                    changed: Condvar::new(),
                },
                kind,
            )
        };
        Ok(match create {
            Create::Dict(pairs) => (
                Object::Map(Mutex::new(pairs.into_iter().collect())),
                Kind::Dict,
            ),
            Create::Set(items) => (
                Object::Map(Mutex::new(
                    items.into_iter().map(|k| (k, Bytes::new())).collect(),
                )),
                Kind::Set,
            ),
            Create::Namespace => (Object::Map(Mutex::default()), Kind::Namespace),
            Create::Value(v) => (
                Object::Map(Mutex::new([(Vec::new(), v)].into_iter().collect())),
                Kind::Value,
            ),
            Create::List(items) => (
                Object::List {
                    items: Mutex::new(items),
                    fixed: false,
                },
                Kind::List,
            ),
            Create::Array(items) => (
                Object::List {
                    items: Mutex::new(items),
                    fixed: true,
                },
                Kind::Array,
            ),
            Create::Queue(max) => {
                if max == Some(0) {
                    return Err(bad("a bounded queue needs room for at least one item"));
                }
                let state = QueueState {
                    items: VecDeque::new(),
                    max,
                    unfinished: 0,
                };
                (
                    Object::Queue {
                        state: Mutex::new(state),
                        changed: Condvar::new(),
                    },
                    Kind::Queue,
                )
            }
            Create::Lock => sem(1, Some(1), Kind::Lock),
            Create::RLock => sem(1, Some(1), Kind::RLock),
            Create::Condition => sem(1, Some(1), Kind::Condition),
            Create::Semaphore { value, bound } => {
                if bound.is_some_and(|b| value > b) {
                    return Err(bad("the initial value is above the bound"));
                }
                sem(value, bound, Kind::Semaphore)
            }
            Create::Event => (
                Object::Event {
                    set: Mutex::new(false),
                    changed: Condvar::new(),
                },
                Kind::Event,
            ),
            Create::Barrier(parties) => {
                if parties == 0 {
                    return Err(bad("a barrier needs at least one party"));
                }
                let state = BarrierState {
                    parties,
                    count: 0,
                    generation: 0,
                    broken: false,
                    reset: HashSet::new(),
                };
                (
                    Object::Barrier {
                        state: Mutex::new(state),
                        changed: Condvar::new(),
                    },
                    Kind::Barrier,
                )
            }
            Create::Custom(name, init) => {
                let factory = factories.get(&name).ok_or_else(|| {
                    bad(format!(
                        "no shared type named {name:?} is registered with this manager"
                    ))
                })?;
                (Object::Custom(Mutex::new(factory(init)?)), Kind::Custom)
            }
            Create::SharedMemoryTracker => (Object::Tracker(Mutex::default()), Kind::SharedMemory),
        })
    }

    fn call(&self, op: Op) -> Reply {
        match self {
            Object::Map(m) => map_op(m, op),
            Object::List { items, fixed } => list_op(items, *fixed, op),
            Object::Queue { state, changed } => queue_op(state, changed, op),
            Object::Sem { state, changed } => sem_op(state, changed, op),
            Object::Event { set, changed } => event_op(set, changed, op),
            Object::Barrier { state, changed } => barrier_op(state, changed, op),
            Object::Custom(c) => match op {
                Op::Custom(req) => lock(c).call(&req).map(|r| Response::Value(Some(r))),
                other => Err(unfit(&other)),
            },
            Object::Tracker(names) => match op {
                Op::Track(name) => {
                    lock(names).push(name);
                    Ok(Response::Unit)
                }
                Op::Untrack(name) => {
                    lock(names).retain(|n| *n != name);
                    Ok(Response::Unit)
                }
                other => Err(unfit(&other)),
            },
        }
    }
}

fn unfit(op: &Op) -> Failure {
    Failure::NoSuchObject(format!(
        "the operation {op:?} does not apply to this object"
    ))
}

fn map_op(m: &Mutex<IndexMap<Bytes, Bytes>>, op: Op) -> Reply {
    let mut m = lock(m);
    Ok(match op {
        Op::Insert(k, v) => Response::Value(m.insert(k, v)),
        Op::Get(k) => Response::Value(m.get(&k).cloned()),
        // `shift_remove` keeps insertion order, as Python's dict does.
        Op::Remove(k) => Response::Value(m.shift_remove(&k)),
        Op::ContainsKey(k) => Response::Bool(m.contains_key(&k)),
        Op::Len => Response::Count(m.len() as u64),
        Op::Keys => Response::Values(m.keys().cloned().collect()),
        Op::Values => Response::Values(m.values().cloned().collect()),
        Op::Items => Response::Pairs(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        Op::Update(pairs) => {
            m.extend(pairs);
            Response::Unit
        }
        Op::Clear => {
            m.clear();
            Response::Unit
        }
        Op::PopLast => Response::Pairs(m.pop().into_iter().collect()),
        Op::Add(k, kind, delta, sub) => {
            let slot = m
                .get_mut(&k)
                .ok_or_else(|| bad("the key is not in the dict"))?;
            let new = add(slot, kind, &delta, sub)?;
            let old = std::mem::replace(slot, new.clone());
            Response::Added(old, new)
        }
        Op::CompareAndSwap(k, current, new) => {
            let found = m.get(&k).cloned();
            if found == current {
                m.insert(k, new);
                Response::Swapped(true, found)
            } else {
                Response::Swapped(false, found)
            }
        }
        Op::SetDefault(k, v) => Response::Value(Some(m.entry(k).or_insert(v).clone())),
        other => return Err(unfit(&other)),
    })
}

fn index(len: usize, i: u64) -> Result<usize, Failure> {
    usize::try_from(i)
        .ok()
        .filter(|&i| i < len)
        .ok_or_else(|| bad(format!("index {i} is out of range for length {len}")))
}

fn list_op(items: &Mutex<Vec<Bytes>>, fixed: bool, op: Op) -> Reply {
    let mut l = lock(items);
    let resizing = matches!(
        op,
        Op::Push(_) | Op::Pop | Op::InsertAt(..) | Op::RemoveAt(_) | Op::Extend(_) | Op::Clear
    );
    if fixed && resizing {
        return Err(unfit(&op));
    }
    Ok(match op {
        Op::Push(v) => {
            l.push(v);
            Response::Unit
        }
        Op::Pop => Response::Value(l.pop()),
        Op::At(i) => Response::Value(Some(l[index(l.len(), i)?].clone())),
        Op::SetAt(i, v) => {
            let i = index(l.len(), i)?;
            Response::Value(Some(std::mem::replace(&mut l[i], v)))
        }
        Op::InsertAt(i, v) => {
            if i > l.len() as u64 {
                return Err(bad(format!(
                    "index {i} is past the end of length {}",
                    l.len()
                )));
            }
            l.insert(i as usize, v);
            Response::Unit
        }
        Op::RemoveAt(i) => {
            let i = index(l.len(), i)?;
            Response::Value(Some(l.remove(i)))
        }
        Op::Len => Response::Count(l.len() as u64),
        Op::Extend(vs) => {
            l.extend(vs);
            Response::Unit
        }
        Op::Clear => {
            l.clear();
            Response::Unit
        }
        // Clipped to the length, as Python's `b[2:10]` is.
        Op::Slice(start, end) => {
            let end = (end.min(l.len() as u64)) as usize;
            let start = (start as usize).min(end);
            Response::Values(l[start..end].to_vec())
        }
        Op::AddAt(i, kind, delta, sub) => {
            let i = index(l.len(), i)?;
            let new = add(&l[i], kind, &delta, sub)?;
            let old = std::mem::replace(&mut l[i], new.clone());
            Response::Added(old, new)
        }
        other => return Err(unfit(&other)),
    })
}

fn queue_op(state: &Mutex<QueueState>, changed: &Condvar, op: Op) -> Reply {
    Ok(match op {
        Op::Put(v, wait) => {
            let mut q = wait_until(state, changed, wait, |q| {
                q.max.map_or(true, |m| q.items.len() < m)
            })?;
            q.items.push_back(v);
            q.unfinished += 1;
            changed.notify_all();
            Response::Unit
        }
        Op::Take(wait) => {
            let mut q = wait_until(state, changed, wait, |q| !q.items.is_empty())?;
            let v = q.items.pop_front();
            changed.notify_all();
            Response::Value(v)
        }
        Op::QSize => Response::Count(lock(state).items.len() as u64),
        Op::MaxSize => Response::Count(lock(state).max.map_or(0, |m| m as u64)),
        Op::TaskDone => {
            let mut q = lock(state);
            if q.unfinished == 0 {
                return Err(Failure::InvalidState(
                    "task_done called more times than items were put".into(),
                ));
            }
            q.unfinished -= 1;
            if q.unfinished == 0 {
                changed.notify_all();
            }
            Response::Unit
        }
        Op::JoinTasks(wait) => {
            drop(wait_until(state, changed, wait, |q| q.unfinished == 0)?);
            Response::Unit
        }
        other => return Err(unfit(&other)),
    })
}

fn sem_op(state: &Mutex<SemState>, changed: &Condvar, op: Op) -> Reply {
    Ok(match op {
        Op::Acquire(wait) => {
            let mut s = wait_until(state, changed, wait, |s| s.value > 0)?;
            s.value -= 1;
            Response::Unit
        }
        Op::Release => {
            let mut s = lock(state);
            if s.bound.is_some_and(|b| s.value >= b) {
                return Err(if s.is_lock {
                    Failure::InvalidState("release of an unlocked lock".into())
                } else {
                    bad("the semaphore was released too many times")
                });
            }
            s.value += 1;
            changed.notify_all();
            Response::Unit
        }
        Op::OwnedAcquire(me, wait) => {
            let mut s = wait_until(state, changed, wait, |s| s.value > 0 || s.owner == Some(me))?;
            if s.owner != Some(me) {
                s.value -= 1;
                s.owner = Some(me);
            }
            s.depth += 1;
            Response::Unit
        }
        Op::OwnedRelease(me) => {
            let mut s = lock(state);
            if s.owner != Some(me) {
                return Err(Failure::InvalidState(
                    "release of an rlock this thread does not hold".into(),
                ));
            }
            s.depth -= 1;
            if s.depth == 0 {
                s.owner = None;
                s.value += 1;
                changed.notify_all();
            }
            Response::Unit
        }
        Op::IsLocked => Response::Bool(lock(state).value == 0),
        Op::SemValue => Response::Count(lock(state).value),
        Op::CondWait(wait) => {
            let mut s = lock(state);
            if s.value != 0 {
                return Err(Failure::InvalidState(
                    "wait on a condition whose lock is not held".into(),
                ));
            }
            // Release the lock, queue up, wait for a notification, take the lock back.
            s.value = 1;
            let ticket = s.next_ticket;
            s.next_ticket += 1;
            s.waiting.push_back(ticket);
            changed.notify_all();
            drop(s);
            let outcome = wait_until(state, changed, wait, |s| s.notified.contains(&ticket));
            let notified = outcome.is_ok();
            let mut s = match outcome {
                Ok(mut s) => {
                    s.notified.remove(&ticket);
                    s
                }
                Err(_) => {
                    let mut s = lock(state);
                    s.waiting.retain(|&t| t != ticket);
                    // A notification may have come in the meantime: it is consumed either way.
                    s.notified.remove(&ticket);
                    s
                }
            };
            while s.value == 0 {
                s = changed.wait(s).unwrap_or_else(|p| p.into_inner());
            }
            s.value = 0;
            // A try form cannot wait for a notification: it times out at once.
            return if notified {
                Ok(Response::Unit)
            } else {
                Err(Failure::Timeout)
            };
        }
        Op::Notify(n) => {
            let mut s = lock(state);
            for _ in 0..n {
                match s.waiting.pop_front() {
                    Some(t) => {
                        s.notified.insert(t);
                    }
                    None => break,
                }
            }
            changed.notify_all();
            Response::Unit
        }
        Op::NotifyAll => {
            let mut s = lock(state);
            let all: Vec<u64> = s.waiting.drain(..).collect();
            s.notified.extend(all);
            changed.notify_all();
            Response::Unit
        }
        other => return Err(unfit(&other)),
    })
}

fn event_op(set: &Mutex<bool>, changed: &Condvar, op: Op) -> Reply {
    Ok(match op {
        Op::Set => {
            *lock(set) = true;
            changed.notify_all();
            Response::Unit
        }
        Op::Unset => {
            *lock(set) = false;
            Response::Unit
        }
        Op::IsSet => Response::Bool(*lock(set)),
        Op::EventWait(wait) => {
            drop(wait_until(set, changed, wait, |s| *s)?);
            Response::Unit
        }
        other => return Err(unfit(&other)),
    })
}

fn barrier_op(state: &Mutex<BarrierState>, changed: &Condvar, op: Op) -> Reply {
    Ok(match op {
        Op::BarrierWait(wait) => {
            let mut b = lock(state);
            if b.broken {
                return Err(Failure::BrokenBarrier);
            }
            let index = b.count;
            b.count += 1;
            if b.count == b.parties {
                b.count = 0;
                b.generation += 1;
                changed.notify_all();
                return Ok(Response::Count(index as u64));
            }
            let generation = b.generation;
            drop(b);
            let done = wait_until(state, changed, wait, |b| {
                b.generation != generation || b.broken
            });
            match done {
                Ok(b) if b.reset.contains(&generation) || b.generation == generation => {
                    return Err(Failure::BrokenBarrier)
                }
                Ok(_) => Response::Count(index as u64),
                Err(e) => {
                    // A party that gives up breaks the barrier for the others, as Python's does.
                    let mut b = lock(state);
                    if b.generation == generation {
                        b.broken = true;
                        changed.notify_all();
                    }
                    return Err(match e {
                        Failure::WouldBlock => Failure::Timeout,
                        e => e,
                    });
                }
            }
        }
        Op::Abort => {
            lock(state).broken = true;
            changed.notify_all();
            Response::Unit
        }
        Op::Reset => {
            let mut b = lock(state);
            if b.count > 0 {
                let g = b.generation;
                b.reset.insert(g);
                b.generation += 1;
            }
            b.count = 0;
            b.broken = false;
            changed.notify_all();
            Response::Unit
        }
        Op::Parties => Response::Count(lock(state).parties as u64),
        Op::NWaiting => Response::Count(lock(state).count as u64),
        Op::IsBroken => Response::Bool(lock(state).broken),
        other => return Err(unfit(&other)),
    })
}

/// Everything one server holds.
pub(crate) struct Server {
    objects: Mutex<HashMap<ObjectId, Arc<Object>>>,
    next_id: AtomicU64,
    names: Mutex<HashMap<String, (ObjectId, Kind)>>,
    factories: HashMap<String, Factory>,
}

impl Server {
    pub(crate) fn new(factories: HashMap<String, Factory>) -> Server {
        Server {
            objects: Mutex::default(),
            next_id: AtomicU64::new(1),
            names: Mutex::default(),
            factories,
        }
    }

    fn handle(&self, request: Request) -> Reply {
        match request {
            Request::Create(create) => {
                let (object, _) = Object::new(create, &self.factories)?;
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                lock(&self.objects).insert(id, Arc::new(object));
                Ok(Response::Id(id))
            }
            Request::Call(id, op) => {
                let object = lock(&self.objects).get(&id).cloned().ok_or_else(|| {
                    Failure::NoSuchObject(format!("the manager has no object with id {id}"))
                })?;
                object.call(op)
            }
            Request::Publish(name, id, kind) => {
                if !lock(&self.objects).contains_key(&id) {
                    return Err(Failure::NoSuchObject(format!("no object with id {id}")));
                }
                lock(&self.names).insert(name, (id, kind));
                Ok(Response::Unit)
            }
            Request::Lookup(name) => lock(&self.names)
                .get(&name)
                .map(|&(id, kind)| Response::Object(id, kind))
                .ok_or_else(|| bad(format!("no object is published as {name:?}"))),
            Request::Shutdown => Ok(Response::Unit),
            // Taken by the connection's loop; here only if sent inside a mailbox.
            Request::Attach(_) => Err(Failure::InvalidState("a mailbox is attached".into())),
        }
    }

    /// Unlinks the shared-memory segments the trackers hold (at shutdown).
    fn unlink_tracked(&self) {
        for object in lock(&self.objects).values() {
            if let Object::Tracker(names) = &**object {
                for name in lock(names).drain(..) {
                    if let Ok(shm) = SharedMemory::open(&name) {
                        let _ = shm.unlink();
                    }
                }
            }
        }
    }

    /// Serves `listener` until a client asks for shutdown (or the process is killed).
    pub(crate) fn serve(self, listener: Listener) {
        let server = Arc::new(self);
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        // The accept thread keeps the listener to the end, so the socket file is removed here.
        let socket_file = listener.local_addr().as_path().map(|p| p.to_path_buf());
        let acceptor = Arc::clone(&server);
        let accepting = std::thread::Builder::new()
            .name("manager-accept".into())
            .spawn(move || loop {
                match listener.accept() {
                    Ok(conn) => {
                        let server = Arc::clone(&acceptor);
                        let stop = stop_tx.clone();
                        let _ = std::thread::Builder::new()
                            .name("manager-conn".into())
                            .spawn(move || server.serve_connection(conn, stop));
                    }
                    // A client that fails the handshake (a wrong key, garbage) is dropped;
                    // the others go on being served.
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
                }
            });
        if accepting.is_err() {
            // No thread, no service: the owner's calls fail with `ManagerGone`.
            return;
        }
        let _ = stop_rx.recv();
        server.unlink_tracked();
        if let Some(path) = socket_file {
            let _ = std::fs::remove_file(path);
        }
    }

    fn serve_connection(&self, mut conn: Connection, stop: mpsc::Sender<()>) {
        let mut mailbox: Option<MailboxEnd> = None;
        loop {
            // Anything that is not a well-formed request ends this connection only.
            let request = match &mut mailbox {
                Some(mb) => mb.recv::<Request>(&mut conn),
                None => conn.recv::<Request>(),
            };
            let Ok(request) = request else {
                return;
            };
            if let Request::Attach(mb) = request {
                let response = if mailbox.is_none() {
                    // Taken before answering: the client may post its first request as
                    // soon as it has the answer, and this end must not count it as seen.
                    mailbox = Some(MailboxEnd::new(mb, Side::Server));
                    Response::Unit
                } else {
                    Response::Failed(Failure::InvalidState("a mailbox is attached".into()))
                };
                if conn.send(&response).is_err() {
                    return;
                }
                continue;
            }
            let shutdown = matches!(request, Request::Shutdown);
            let response = self.handle(request).unwrap_or_else(Response::Failed);
            let sent = match &mut mailbox {
                Some(mb) => mb.send(&mut conn, &response),
                None => conn.send(&response),
            };
            if sent.is_err() {
                return;
            }
            if shutdown {
                let _ = stop.send(());
                return;
            }
        }
    }
}
