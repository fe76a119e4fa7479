//! The platform layer: the only code that makes raw system calls.
//!
//! Every backend provides, with `io::Result` and no crate-level error types:
//! - `fd`: `socketpair`, `poll_read`, `read`, `read_uninit`, `write_all_vectored`,
//!   `set_nonblocking`, `shutdown`, `dup`.
//! - `futex`: `wait(word, expected, timeout)` and `wake(word, n)` on a process-shared word.
//! - `mman`: `memfd`, `map_shared`, `Mapping` (unmapped on drop), `shm_open`, `shm_unlink`.
//! - `process`: `fork`, `exit_now`, `pidfd_open`, `pidfd_send_signal`, `wait_exit`,
//!   `set_parent_death_signal`, `thread_count`, `getpid`, `getppid`.
//! - `signal`: the signal numbers and names of the platform, `kill`.
//!
//! Linux is the one backend today; `unsupported` answers `io::ErrorKind::Unsupported`
//! everywhere else so the crate still type-checks there.

// The backend contract is wider than what one build of the crate calls.
#[cfg(target_os = "linux")]
#[path = "unix/mod.rs"]
#[allow(dead_code)]
mod imp;

#[cfg(not(target_os = "linux"))]
#[path = "unsupported.rs"]
mod imp;

pub(crate) use imp::*;
