//! The program representation: HLO-level ops traced from Rust.
