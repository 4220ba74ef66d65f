//! `score` subcommand (work in progress)
