//! llama (to be written)
