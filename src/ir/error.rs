//! Errors raised while building, lowering or checking programs.

use thiserror::Error;

/// What went wrong with a program.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum Error {
    /// An op was given operands or attributes it cannot accept. Raised when
    /// the op is built; reported by [`super::Builder::check`] and
    /// [`super::Builder::build`].
    #[error("invalid {opcode} in scope '{scope}' at {location}: {detail} (operands: {operands})")]
    InvalidOp {
        /// The XLA opcode.
        opcode: String,
        /// The name scope the op was built in.
        scope: String,
        /// Source location of the call that built it.
        location: String,
        /// The offending shapes or attributes.
        detail: String,
        /// The operand types, for context.
        operands: String,
    },
    /// Tensors of different builders or computations were mixed.
    #[error("{0}")]
    Foreign(String),
    /// The program cannot be built as asked (no outputs, a bad alias, …).
    #[error("cannot build module '{module}': {detail}")]
    Build {
        /// The module's name.
        module: String,
        /// What is wrong.
        detail: String,
    },
    /// A proto module could not be read back.
    #[error("malformed HLO module proto: {0}")]
    Proto(String),
}
