//! End-to-end tests of the `sqlora` binary.
