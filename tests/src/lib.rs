//! The end-to-end tests' helpers live in `fromgit-testkit` (`tests/kit`);
//! this re-exports them for the test files that still name this crate.

pub use fromgit_testkit::*;
