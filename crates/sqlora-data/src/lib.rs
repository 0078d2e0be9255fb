//! sqlora-data
