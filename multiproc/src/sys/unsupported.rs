//! The backend for platforms not supported yet: it stops the build with a clear message.

compile_error!("multiproc supports Linux only for now; see DESIGN.md for the macOS plan");
