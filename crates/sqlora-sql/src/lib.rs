//! sqlora-sql
