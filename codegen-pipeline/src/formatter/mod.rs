//! formatter (work in progress)
