//! sqlora-model
