//! Reference evaluator of `ir` programs on `ndarray`.
