//! Test helpers shared across gantry crates: a scriptable `FakeBackend` and fixtures.
