//! sqlora-eval
