//! SimCLR itself: the NT-Xent loss with gathered negatives, optimizers,
//! the learning-rate schedule, and the step programs that put model, loss,
//! gradients and update into one HLO module (SPEC §5–§8).

pub mod augment_device;
pub mod loss;
pub mod optim;
pub mod schedule;
pub mod step;

pub use optim::{OptimizerConfig, OptimizerKind};
pub use schedule::{LrScaling, Schedule};
pub use step::{
    distill_program, eval_program, train_program, train_program_augmented, DistillConfig, Output,
    StepConfig, StepProgram, TrainMode,
};
