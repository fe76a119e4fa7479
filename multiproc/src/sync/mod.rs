//! Process-shared synchronisation.

// The waiting primitive of every process-shared object; used as they land.
#[allow(dead_code)]
pub(crate) mod park;
