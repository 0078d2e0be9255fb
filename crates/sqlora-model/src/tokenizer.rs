//! tokenizer (to be written)
