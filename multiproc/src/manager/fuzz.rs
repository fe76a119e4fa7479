//! Entry point for the fuzz target and the corpus tests (feature `fuzzing`): the manager's
//! request decoder, and the server acting on whatever requests decode, as a client that
//! knows the key but sends garbage would make it.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::time::Duration;

use super::protocol::{self, Op, Request, Response, Wait};
use super::server::Server;

/// A server-side wait in a fuzzed request lasts at most this long.
const FUZZ_WAIT: Duration = Duration::from_millis(1);

/// Splits `bytes` into messages (each a length byte, then that many bytes), decodes each as
/// a request and as a response, and has one server handle every request that decodes.
pub(crate) fn requests(bytes: &[u8]) {
    let server = Server::new(HashMap::new());
    let mut rest = bytes;
    while let Some((&len, tail)) = rest.split_first() {
        let (message, after) = tail.split_at(usize::from(len).min(tail.len()));
        rest = after;
        let _ = protocol::decode::<Response>(message);
        let Ok(request) = protocol::decode::<Request>(message) else {
            continue;
        };
        // Re-encoding what decoded gives bytes that decode again (the codec is strict).
        let again = protocol::encode(&request).expect("a decoded request encodes");
        protocol::decode::<Request>(&again).expect("a re-encoded request decodes");
        let Some(request) = bounded(request) else {
            continue;
        };
        let _ = server.handle(request);
    }
}

/// The request with every wait cut to [`FUZZ_WAIT`] (a request that waits forever for an
/// object nobody else touches would wait forever here too: correct, and not a finding);
/// `None` for a shutdown, which only stops the serving loop.
fn bounded(request: Request) -> Option<Request> {
    let cut = |wait: Wait| match wait {
        Wait::Try => Wait::Try,
        Wait::Forever => Wait::For(FUZZ_WAIT),
        Wait::For(d) => Wait::For(d.min(FUZZ_WAIT)),
    };
    Some(match request {
        Request::Shutdown => return None,
        Request::Call(id, op) => Request::Call(
            id,
            match op {
                Op::Put(value, w) => Op::Put(value, cut(w)),
                Op::Take(w) => Op::Take(cut(w)),
                Op::Acquire(w) => Op::Acquire(cut(w)),
                Op::OwnedAcquire(owner, w) => Op::OwnedAcquire(owner, cut(w)),
                Op::CondWait(w) => Op::CondWait(cut(w)),
                Op::EventWait(w) => Op::EventWait(cut(w)),
                Op::BarrierWait(w) => Op::BarrierWait(cut(w)),
                other => other,
            },
        ),
        other => other,
    })
}
