//! The parameter store: every variable of a model becomes an entry
//! parameter of the traced program, named as the original TF1 graph names
//! it (`base_model/conv2d_3/kernel`, `head_contrastive/nl_0/dense/kernel`)
//! and numbered in creation order, so a TF1 checkpoint maps by name.

use super::Precision;
use crate::ir::{Builder, ElementType, Shape, Tensor};
use std::collections::HashMap;

/// How a variable is initialised (SPEC §3.2, §4.1).
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    /// Truncated normal cut at ±2σ with σ = √(1/fan_in)/0.87962566103423978.
    TruncatedNormalFanIn {
        /// kh·kw·in for a conv kernel, `in` for a dense kernel.
        fan_in: i64,
    },
    /// Plain normal N(0, std²).
    Normal {
        /// Standard deviation.
        std: f64,
    },
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
}

/// One model variable.
#[derive(Clone, Debug)]
pub struct Variable {
    /// TF1 name, e.g. `base_model/batch_normalization_4/gamma`.
    pub name: String,
    /// Shape (conv kernels HWIO, dense kernels `[in, out]`).
    pub shape: Shape,
    /// Whether the optimizer updates it (BN moving statistics are not trainable).
    pub trainable: bool,
    /// Initial value rule.
    pub init: Init,
    /// The entry parameter that carries it into the program.
    pub tensor: Tensor,
    /// Where it sits in the network, for `fine_tune_after_block`: 0 for the
    /// stem, 1–4 for the stages, 5 for the projection head, 6 for the
    /// supervised head.
    pub block: i32,
}

/// Variables of a traced model plus the new values that training-mode
/// batch norm computes for its moving statistics.
#[derive(Debug)]
pub struct Store {
    builder: Builder,
    vars: Vec<Variable>,
    counters: HashMap<String, usize>,
    updates: Vec<(usize, Tensor)>,
    block: i32,
    param_prefix: String,
    precision: Precision,
}

impl Store {
    /// An empty store whose variables become parameters of `builder`'s entry.
    pub fn new(builder: &Builder) -> Store {
        Store {
            builder: builder.clone(),
            vars: vec![],
            counters: HashMap::new(),
            updates: vec![],
            block: 0,
            param_prefix: String::new(),
            precision: Precision::Float32,
        }
    }

    /// An empty store whose variables become entry parameters named
    /// `<prefix><TF1 name>` (a second network in the same program, such as
    /// a distillation teacher, under its own names); [`Variable::name`]
    /// stays the TF1 name so checkpoints map as usual.
    pub fn with_param_prefix(builder: &Builder, prefix: &str) -> Store {
        Store {
            param_prefix: prefix.to_string(),
            ..Store::new(builder)
        }
    }

    /// This store, tracing its layers with `precision` (see [`Precision`]).
    pub fn with_precision(mut self, precision: Precision) -> Store {
        self.precision = precision;
        self
    }

    /// The precision layers compute in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The element type of convolution/matmul operands and of the
    /// activations between layers: f32, or bf16 under mixed precision.
    pub fn compute_type(&self) -> ElementType {
        self.precision.compute_type()
    }

    /// The builder variables are created in.
    pub fn builder(&self) -> &Builder {
        &self.builder
    }

    /// A Keras-style unique layer name within `scope`: `conv2d`, then
    /// `conv2d_1`, `conv2d_2`, … (counters per scope and base name).
    pub fn unique(&mut self, scope: &str, base: &str) -> String {
        let c = self.counters.entry(format!("{scope}|{base}")).or_insert(0);
        let name = if *c == 0 {
            base.to_string()
        } else {
            format!("{base}_{c}")
        };
        *c += 1;
        name
    }

    /// Creates variable `name` (the next entry parameter) and returns it.
    pub fn variable(&mut self, name: &str, dims: &[i64], trainable: bool, init: Init) -> Tensor {
        let shape = Shape::new(ElementType::F32, dims);
        let tensor = self
            .builder
            .parameter(&format!("{}{name}", self.param_prefix), shape.clone());
        self.vars.push(Variable {
            name: name.to_string(),
            shape,
            trainable,
            init,
            tensor: tensor.clone(),
            block: self.block,
        });
        tensor
    }

    /// Tags variables created from now on with `block` (see [`Variable::block`]).
    pub fn set_block(&mut self, block: i32) {
        self.block = block;
    }

    /// Records `value` as the new value of the variable named `name`
    /// (moving statistics of training-mode batch norm).
    pub fn update(&mut self, name: &str, value: Tensor) {
        if let Some(i) = self.vars.iter().position(|v| v.name == name) {
            self.updates.push((i, value));
        }
    }

    /// The variables in creation order.
    pub fn variables(&self) -> &[Variable] {
        &self.vars
    }

    /// `(variable index, new value)` pairs recorded by [`Store::update`].
    pub fn updates(&self) -> &[(usize, Tensor)] {
        &self.updates
    }

    /// Number of scalars in trainable and in non-trainable variables.
    pub fn counts(&self) -> (usize, usize) {
        let mut t = 0;
        let mut n = 0;
        for v in &self.vars {
            if v.trainable {
                t += v.shape.numel();
            } else {
                n += v.shape.numel();
            }
        }
        (t, n)
    }
}
