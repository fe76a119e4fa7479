//! The platform layer: the only code that makes raw system calls.
//!
//! Every backend provides, with `io::Result` and no crate-level error types:
//! - `fd`: `socketpair`, `seqpacket_pair`, `shutdown`, `set_buffer_sizes`, `dup`,
//!   `replace` (dup3), `read`, `read_uninit`, `read_to_spare`, `send_all`,
//!   `write_all_vectored`, `poll_readable`, `send_records` / `recv_records_to_spare`
//!   (`sendmmsg` / `recvmmsg`); with feature `tokio`, `eventfd`, `eventfd_add`,
//!   `register_async` (a descriptor handed to tokio's reactor).
//! - `scm`: `send_with_fds`, `recv_with_fds`, `try_recv_with_fds`, `recv_record_to_spare`
//!   (descriptors beside the bytes on a unix socket, `SCM_RIGHTS`), `MAX_FDS`.
//! - `futex`: `wait(word, expected, timeout)` and `wake(word, n)` on a process-shared word.
//! - `mman`: `memfd`, `set_len`, `file_len`, `shm_open`, `shm_unlink`, `Mapping` (unmapped
//!   on drop); `shm`: `create_named`, `open_named`, `create_unnamed` + `publish` (an
//!   `O_TMPFILE` filled in, then linked under its name).
//! - `process`: `fork`, `fork_single_threaded`, `exit_now`, `pidfd_open`,
//!   `pidfd_send_signal`, `wait_exit`, `set_parent_death_signal`, `at_exit`, `at_fork_child`,
//!   `thread_count`, `getpid`, `getppid`, `cpu_count`, `current_cpu`, `move_off_cpu`,
//!   `is_gone`.
//! - `socket`: `listen_unix_path` (a listening unix socket whose file has chosen
//!   permissions), `lock_exclusive` (`flock`), `is_wrong_socket_type`, `is_seqpacket`.
//! - `exec`: `spawn_self` (exec of this program with a socket as stdin), `take_stdin`,
//!   `ignore_sigpipe`, `object_base` (dladdr), `function_at` (an address as a function).
//! - `identity`: who owns a lock (id and start time) and whether that owner is alive.
//! - `signal`: the signal numbers and names of the platform, `kill`, `ignore`.
//!
//! Linux is the one backend today. Elsewhere `unsupported.rs` stops the build with a clear
//! message rather than compiling into a library whose every call fails.

#[cfg(target_os = "linux")]
#[path = "unix/mod.rs"]
mod imp;

#[cfg(not(target_os = "linux"))]
#[path = "unsupported.rs"]
mod imp;

pub(crate) use imp::*;
