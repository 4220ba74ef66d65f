//! generator (work in progress)
