//! chat (to be written)
