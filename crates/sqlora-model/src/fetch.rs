//! fetch (to be written)
