//! Code-generation pipeline: an LLM generator, a Ruff-based formatter and a sandboxed
//! HumanEval scorer, traced with weave.

pub mod evalplus;
pub mod formatter;
pub mod generator;
pub mod hub;
pub mod humaneval;
pub mod pipeline;
pub mod sandbox;
pub mod score_cli;
