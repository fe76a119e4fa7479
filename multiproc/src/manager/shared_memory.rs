//! `SharedMemoryManager`: named shared-memory blocks whose lifetime a manager's server
//! keeps, so they are unlinked when the manager shuts down (Python's
//! `multiprocessing.managers.SharedMemoryManager`).
#![forbid(unsafe_code)]

use super::client::{unexpected, Handle};
use super::protocol::{Create, Op, Request, Response};
use super::Manager;
use crate::error::Result;
use crate::shm::SharedMemory;
use std::sync::Arc;

/// A manager whose server unlinks, at shutdown, every [`SharedMemory`] block made through
/// it. A block is created by the calling process under a fresh name and attachable by that
/// name ([`SharedMemory::open`]) by any process until the manager shuts down (or is
/// dropped by its owner).
///
/// Python raises `ValueError` when `SharedMemory()` is asked of a manager not started;
/// here a `SharedMemoryManager` exists only started.
#[derive(Debug)]
pub struct SharedMemoryManager {
    manager: Manager,
    tracker: Handle,
}

impl SharedMemoryManager {
    /// Starts the server.
    ///
    /// # Errors
    /// As [`Manager::start`].
    pub fn start() -> Result<SharedMemoryManager> {
        let manager = Manager::start()?;
        let id = match manager
            .client()
            .request(&Request::Create(Create::SharedMemoryTracker))?
        {
            Response::Id(id) => id,
            other => return Err(unexpected(other)),
        };
        let tracker = Handle {
            client: Arc::clone(manager.client()),
            id,
        };
        Ok(SharedMemoryManager { manager, tracker })
    }

    /// A new block of `size` bytes under a fresh name, unlinked when the manager shuts down.
    ///
    /// # Errors
    /// As [`SharedMemory::create_unique`]; [`Error::ManagerGone`](crate::Error::ManagerGone) after shutdown (the block
    /// is then not created).
    pub fn shared_memory(&self, size: usize) -> Result<SharedMemory> {
        let shm = SharedMemory::create_unique(size)?;
        match self.tracker.call(Op::Track(shm.name().to_string())) {
            Ok(_) => Ok(shm),
            Err(e) => {
                let _ = shm.unlink();
                Err(e)
            }
        }
    }

    /// Unlinks every block made through this manager, then stops its server.
    ///
    /// # Errors
    /// As [`Manager::shutdown`].
    pub fn shutdown(&self) -> Result<()> {
        self.manager.shutdown()
    }

    /// The manager underneath, for other shared objects.
    pub fn manager(&self) -> &Manager {
        &self.manager
    }
}
