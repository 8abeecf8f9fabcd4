//! Confab's end-to-end tests live in `e2e/`: they start the real binaries, real nginx,
//! Redis and PostgreSQL. This library is empty on purpose; the crate exists for its test.
