//! End-to-end: the production topology, for real.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic: that is how they fail

mod admin;
mod browser;
pub mod deploy;
mod faults;
mod support;
