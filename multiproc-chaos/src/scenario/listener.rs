//! A Listener with clients coming and going: one server process accepts authenticated
//! connections one at a time and acknowledges every message; 3 clients connect, send a
//! few messages, leave and come back. Any of them (the server included) is SIGKILLed at a
//! random instant: mid-handshake, mid-message, between messages. A replacement server
//! binds the same path (the dead one's socket file is stale). Every acknowledged message
//! must have reached the server exactly once, intact.

use std::time::{Duration, Instant};

use multiproc::connection::{Client, Listener};
use multiproc::{Connection, Error, Process};

use crate::crew::{Crew, Member, Run, PATIENCE};
use crate::ledger::{Ledger, Msg, Phase, IDS, SEQS};

const CLIENTS: usize = 3;

type Ack = (u32, u32, u64);

pub(crate) fn run(run: &mut Run) -> multiproc::Result<()> {
    let ledger = Ledger::create(&run.name("ledger"))?;
    ledger.unlink()?;
    let path = std::env::temp_dir().join(format!("{}.sock", run.name("listener")));
    let outcome = with_path(run, &ledger, &format!("unix:{}", path.display()));
    let _ = std::fs::remove_file(&path);
    outcome
}

fn with_path(run: &mut Run, ledger: &Ledger, address: &str) -> multiproc::Result<()> {
    let key: Vec<u8> = (0..32).map(|_| run.rng.u8(..)).collect();
    let mut ids = 0u32;
    let mut start = |run: &mut Run, slot: usize| -> multiproc::Result<Member> {
        let (ledger, address, key) = (ledger.clone(), address.to_string(), key.clone());
        let child = if slot == 0 {
            Process::new(move || serve(&address, &key, &ledger))
                .daemon(true)
                .start()?
        } else {
            if ids as usize >= IDS {
                return Err(Error::InvalidState("out of client ids".into()));
            }
            ids += 1;
            let (id, seed) = (ids - 1, run.rng.u64(..));
            Process::new(move || client(&address, &key, &ledger, id, seed))
                .daemon(true)
                .start()?
        };
        Ok(Member::Forked(child))
    };
    let mut crew = Crew::default();
    for slot in 0..=CLIENTS {
        crew.push(start(run, slot)?);
    }
    let length = run.millis(300..1500);
    crew.chaos(run, length, 5..60, &mut start);
    // Clients first: the server serves until they are gone.
    ledger.set_phase(Phase::StopProducers);
    crew.finish(run, 1..=CLIENTS);
    ledger.set_phase(Phase::StopAll);
    crew.finish(run, 0..1);
    let audit = ledger.audit(ids, 0);
    run.tally.checked += audit.checked;
    for f in audit.failures {
        run.fail(f);
    }
    Ok(())
}

fn serve(address: &str, key: &[u8], ledger: &Ledger) {
    let listener =
        Listener::bind(address, Some(key)).unwrap_or_else(|e| panic!("server: bind: {e}"));
    let mut failed_accepts = 0u32;
    while ledger.phase() != Phase::StopAll {
        match listener.accept_timeout(Duration::from_millis(50)) {
            Ok(conn) => {
                failed_accepts = 0;
                serve_one(conn, ledger);
            }
            Err(Error::Timeout) => {}
            // A client killed in its handshake.
            Err(_) => {
                failed_accepts += 1;
                assert!(failed_accepts < 1000, "server: accept keeps failing");
            }
        }
    }
}

/// Acknowledges the client's messages until it leaves (or dies).
fn serve_one(mut conn: Connection, ledger: &Ledger) {
    loop {
        match conn.poll(Some(PATIENCE)) {
            Ok(true) => {}
            Ok(false) => panic!("server: a connected client stayed silent for {PATIENCE:?}"),
            Err(_) => return,
        }
        let msg: Msg = match conn.recv() {
            Ok(m) => m,
            Err(_) => return,
        };
        msg.verify().unwrap_or_else(|e| panic!("server: {e}"));
        let before = ledger.delivered(msg.id, msg.seq);
        assert!(
            before == 0,
            "server: message ({}, {}) received again",
            msg.id,
            msg.seq
        );
        if conn.send(&(msg.id, msg.seq, msg.check)).is_err() {
            return;
        }
    }
}

fn client(address: &str, key: &[u8], ledger: &Ledger, id: u32, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut seq = 0u32;
    while ledger.phase() == Phase::Chaos && (seq as usize) < SEQS - 64 {
        let mut conn = connect(address, key);
        for _ in 0..rng.u32(1..20) {
            let msg = Msg::new(id, seq, Msg::len_for(&mut rng));
            let want: Ack = (id, seq, msg.check);
            ledger.sending(id, seq);
            seq += 1;
            if conn.send(&msg).is_err() {
                break;
            }
            match conn.recv_timeout::<Ack>(PATIENCE) {
                Ok(ack) if ack == want => ledger.sent(id, want.1),
                Ok(ack) => panic!("client {id}: acknowledgement {ack:?} for {want:?}"),
                Err(Error::Timeout) => panic!("client {id}: no acknowledgement in {PATIENCE:?}"),
                // The server died.
                Err(_) => break,
            }
        }
        // The client leaves; it comes back at the next turn of the loop.
    }
}

/// Connects, retrying while the server is down (killed, its replacement not bound yet).
fn connect(address: &str, key: &[u8]) -> Connection {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match Client::connect_timeout(address, Some(key), PATIENCE) {
            Ok(c) => return c,
            Err(Error::Timeout) => panic!("client: connect hung for {PATIENCE:?}"),
            Err(e) if Instant::now() >= deadline => panic!("client: cannot connect: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}
