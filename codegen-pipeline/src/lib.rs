//! Code-generation pipeline: an LLM generator, a Ruff-based formatter and a sandboxed
//! HumanEval scorer, traced with weave.

pub mod formatter;
pub mod generator;
pub mod humaneval;
pub mod sandbox;
pub mod score_cli;
