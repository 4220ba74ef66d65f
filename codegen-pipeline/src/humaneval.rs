//! HumanEval problems (work in progress)
