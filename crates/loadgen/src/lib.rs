//! Confab's load generator and benchmark (issue 8): scenarios over real WebSockets
//! against Confab or the bare upper bound, measured from both sides, reported as JSON
//! lines, a table, and a Markdown report with Confab / bound ratios.

pub mod bare;
pub mod client;
pub mod persist;
pub mod prep;
pub mod report;
pub mod run;
pub mod sys;
