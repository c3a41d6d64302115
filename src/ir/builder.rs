//! Tracing: a [`Builder`] records ops into computations as [`Tensor`]
//! methods are called, checking each op's shape rule as it is built.
//!
//! Errors are recorded, not thrown: an invalid op yields a poisoned tensor
//! (any op on it is poisoned too) and the first error, naming the op, its
//! name scope, the call site and the operand shapes, is returned by
//! [`Builder::check`] and [`Builder::build`]. Model code therefore reads like
//! the math (`(x - mean) * inv`) while no invalid program reaches XLA.

use super::attrs::ReplicaGroups;
use super::error::Error;
use super::literal::{Literal, LiteralData};
use super::module::{Alias, Computation, Module, Node, NodeId};
use super::op::{BinaryOp, CompId, Op, Signature, UnaryOp};
use super::types::{ElementType, Shape, Type};
use std::collections::{HashMap, HashSet};
use std::panic::Location;
use std::sync::{Arc, Mutex, MutexGuard};

const POISON: NodeId = usize::MAX;

#[derive(Debug)]
struct CompData {
    name: String,
    nodes: Vec<Node>,
    params: Vec<NodeId>,
    root: Option<NodeId>,
}

#[derive(Debug)]
struct Data {
    name: String,
    num_replicas: usize,
    comps: Vec<CompData>,
    scopes: Vec<String>,
    error: Option<Error>,
    reducers: HashMap<(BinaryOp, ElementType), CompId>,
    aliases: Vec<Alias>,
    /// Nodes made by [`Tensor::stop_gradient`]: autodiff treats them as constants.
    stop_gradients: HashSet<(CompId, NodeId)>,
}

/// Records a program. Cheap to clone (a shared handle); every [`Tensor`]
/// keeps one. Computation 0 is the entry.
#[derive(Clone, Debug)]
pub struct Builder {
    data: Arc<Mutex<Data>>,
}

/// A traced value: a node of a computation being built.
#[derive(Clone, Debug)]
pub struct Tensor {
    builder: Builder,
    comp: CompId,
    id: NodeId,
}

/// Restores the previous name scope when dropped. See [`Builder::scope`].
#[must_use = "the scope ends when the guard is dropped"]
pub struct ScopeGuard {
    builder: Builder,
    depth: usize,
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        self.builder.lock().scopes.truncate(self.depth);
    }
}

impl Builder {
    /// A builder for module `name`, written for `num_replicas` replicas (≥ 1).
    pub fn new(name: &str, num_replicas: usize) -> Builder {
        let sanitized: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Builder {
            data: Arc::new(Mutex::new(Data {
                name: sanitized.clone(),
                num_replicas: num_replicas.max(1),
                comps: vec![CompData {
                    name: sanitized,
                    nodes: vec![],
                    params: vec![],
                    root: None,
                }],
                scopes: vec![],
                error: if num_replicas == 0 {
                    Some(Error::Build {
                        module: name.to_string(),
                        detail: "num_replicas must be at least 1".into(),
                    })
                } else {
                    None
                },
                reducers: HashMap::new(),
                aliases: vec![],
                stop_gradients: HashSet::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Data> {
        // A poisoned lock only means another thread panicked mid-trace; the
        // recorded graph is still consistent (nodes are pushed atomically).
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn same(&self, other: &Builder) -> bool {
        Arc::ptr_eq(&self.data, &other.data)
    }

    /// True when `other` is a handle to this same builder.
    pub fn ptr_eq(&self, other: &Builder) -> bool {
        self.same(other)
    }

    /// The number of replicas the program is written for.
    pub fn num_replicas(&self) -> usize {
        self.lock().num_replicas
    }

    /// Opens a name scope (`base_model`, then `block_group1`, …) recorded on
    /// every op built until the guard drops. Scopes nest with `/`.
    pub fn scope(&self, name: &str) -> ScopeGuard {
        let mut d = self.lock();
        let depth = d.scopes.len();
        d.scopes.push(name.to_string());
        ScopeGuard {
            builder: self.clone(),
            depth,
        }
    }

    /// Number of entry parameters created so far.
    pub fn param_count(&self) -> usize {
        self.lock().comps[0].params.len()
    }

    /// The current name scope path (`a/b/c`).
    pub fn current_scope(&self) -> String {
        self.lock().scopes.join("/")
    }

    /// The first error recorded so far, if any.
    pub fn check(&self) -> Result<(), Error> {
        match &self.lock().error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn record_error(&self, e: Error) {
        let mut d = self.lock();
        if d.error.is_none() {
            d.error = Some(e);
        }
    }

    /// Adds an entry parameter named `name` (the next parameter number).
    #[track_caller]
    pub fn parameter(&self, name: &str, shape: Shape) -> Tensor {
        self.parameter_in(0, name, Type::Array(shape))
    }

    #[track_caller]
    fn parameter_in(&self, comp: CompId, name: &str, ty: Type) -> Tensor {
        let number = self.lock().comps[comp].params.len();
        let t = self.push(
            comp,
            Op::Parameter {
                number,
                name: name.to_string(),
                ty,
            },
            &[],
        );
        if t.id != POISON {
            self.lock().comps[comp].params.push(t.id);
        }
        t
    }

    /// A constant in the entry computation.
    #[track_caller]
    pub fn constant(&self, literal: Literal) -> Tensor {
        self.push(0, Op::Constant(literal), &[])
    }

    /// An f32 constant of the given dims from row-major values.
    #[track_caller]
    pub fn constant_f32(&self, dims: &[i64], values: &[f32]) -> Tensor {
        match Literal::new(dims.to_vec(), LiteralData::F32(values.to_vec())) {
            Some(l) => self.constant(l),
            None => self.fail(
                0,
                "constant",
                format!("{} values do not fill dims {dims:?}", values.len()),
                &[],
            ),
        }
    }

    /// A scalar constant of type `ty` in the entry computation.
    #[track_caller]
    pub fn scalar(&self, ty: ElementType, value: f64) -> Tensor {
        self.constant(Literal::scalar(ty, value))
    }

    /// `iota` of `shape` counting along `dim`.
    #[track_caller]
    pub fn iota(&self, shape: Shape, dim: i64) -> Tensor {
        self.push(0, Op::Iota { shape, dim }, &[])
    }

    /// This replica's id (`u32[]`).
    #[track_caller]
    pub fn replica_id(&self) -> Tensor {
        self.push(0, Op::ReplicaId, &[])
    }

    /// A tuple of entry tensors.
    #[track_caller]
    pub fn tuple(&self, elements: &[&Tensor]) -> Tensor {
        self.push(0, Op::Tuple, elements)
    }

    /// A scalar reducer computation `(a, b) -> op(a, b)` for `ty`, built once
    /// per (op, type) and reused.
    pub fn reducer(&self, op: BinaryOp, ty: ElementType) -> CompId {
        if let Some(&c) = self.lock().reducers.get(&(op, ty)) {
            return c;
        }
        let name = format!("{}_{}", op.opcode().replace('-', "_"), ty);
        let scalar = Type::Array(Shape::scalar(ty));
        let comp = self.computation(&name, &[scalar.clone(), scalar], |p| p[0].binary(op, &p[1]));
        self.lock().reducers.insert((op, ty), comp);
        comp
    }

    /// Builds a sub-computation with the given parameter types; `body` gets
    /// the parameters and returns the result. Used for reducers, selectors
    /// and variadic reductions.
    pub fn computation(
        &self,
        name: &str,
        params: &[Type],
        body: impl FnOnce(&[Tensor]) -> Tensor,
    ) -> CompId {
        let comp = {
            let mut d = self.lock();
            let mut unique = name.to_string();
            let mut k = 1;
            while d.comps.iter().any(|c| c.name == unique) {
                k += 1;
                unique = format!("{name}_{k}");
            }
            d.comps.push(CompData {
                name: unique,
                nodes: vec![],
                params: vec![],
                root: None,
            });
            d.comps.len() - 1
        };
        let saved = std::mem::take(&mut self.lock().scopes);
        let ps: Vec<Tensor> = params
            .iter()
            .enumerate()
            .map(|(i, t)| self.parameter_in(comp, &format!("p{i}"), t.clone()))
            .collect();
        let root = body(&ps);
        self.lock().scopes = saved;
        if root.comp != comp || !self.same(&root.builder) {
            self.record_error(Error::Foreign(format!(
                "the body of computation '{name}' returned a tensor of another computation"
            )));
        } else if root.id != POISON {
            self.lock().comps[comp].root = Some(root.id);
        }
        comp
    }

    /// The signature of computation `comp`, once its body is built.
    pub fn signature(&self, comp: CompId) -> Option<Signature> {
        let d = self.lock();
        let c = d.comps.get(comp)?;
        let root = c.root?;
        Some(Signature {
            params: c.params.iter().map(|&p| c.nodes[p].ty.clone()).collect(),
            result: c.nodes[root].ty.clone(),
        })
    }

    /// Declares that output `output` (index in the flattened result) reuses
    /// the buffer of entry parameter `param` (donation). Checked at build.
    pub fn alias(&self, output: usize, param: usize) {
        self.lock().aliases.push(Alias { output, param });
    }

    #[track_caller]
    fn fail(&self, comp: CompId, opcode: &str, detail: String, operands: &[&Tensor]) -> Tensor {
        let loc = Location::caller();
        let ops: Vec<String> = operands.iter().map(|t| t.ty_string()).collect();
        self.record_error(Error::InvalidOp {
            opcode: opcode.to_string(),
            scope: self.current_scope(),
            location: format!("{}:{}", loc.file(), loc.line()),
            detail,
            operands: ops.join(", "),
        });
        Tensor {
            builder: self.clone(),
            comp,
            id: POISON,
        }
    }

    /// Adds `op` with `operands` to computation `comp`, checking its shape
    /// rule. The single place where nodes are created.
    #[track_caller]
    pub(crate) fn push(&self, comp: CompId, op: Op, operands: &[&Tensor]) -> Tensor {
        let poisoned = Tensor {
            builder: self.clone(),
            comp,
            id: POISON,
        };
        for t in operands {
            if !self.same(&t.builder) || t.comp != comp {
                return self.fail(
                    comp,
                    op.opcode(),
                    "an operand belongs to another builder or computation".into(),
                    &[],
                );
            }
            if t.id == POISON {
                return poisoned;
            }
        }
        let types: Vec<Type> = operands.iter().map(|t| t.ty()).collect();
        let refs: Vec<&Type> = types.iter().collect();
        let num_replicas = self.num_replicas();
        let sig = |c: CompId| self.signature(c);
        match op.infer_type(&refs, &sig, num_replicas) {
            Ok(ty) => {
                let loc = Location::caller();
                let mut d = self.lock();
                let scope = d.scopes.join("/");
                let c = &mut d.comps[comp];
                c.nodes.push(Node {
                    op,
                    operands: operands.iter().map(|t| t.id).collect(),
                    ty,
                    scope,
                    source: Some((loc.file().to_string(), loc.line())),
                });
                Tensor {
                    builder: self.clone(),
                    comp,
                    id: c.nodes.len() - 1,
                }
            }
            Err(detail) => self.fail(comp, op.opcode(), detail, operands),
        }
    }

    /// Reads node `id` of computation `comp` (for autodiff and inspection).
    pub fn node(&self, comp: CompId, id: NodeId) -> Option<Node> {
        self.lock().comps.get(comp)?.nodes.get(id).cloned()
    }

    /// The result node of computation `comp`, once its body is built.
    pub fn root(&self, comp: CompId) -> Option<NodeId> {
        self.lock().comps.get(comp)?.root
    }

    /// True when node `id` of computation `comp` was made by
    /// [`Tensor::stop_gradient`] (a gradient barrier: autodiff treats its
    /// value as a constant).
    pub fn is_stop_gradient(&self, comp: CompId, id: NodeId) -> bool {
        self.lock().stop_gradients.contains(&(comp, id))
    }

    /// A tensor handle for an existing node.
    pub fn tensor(&self, comp: CompId, id: NodeId) -> Tensor {
        Tensor {
            builder: self.clone(),
            comp,
            id,
        }
    }

    /// Finishes the program with `outputs` as the entry's results (one
    /// output is returned as is, several as a tuple). Unused nodes other
    /// than parameters are dropped. Fails with the first recorded error.
    pub fn build(&self, outputs: &[&Tensor]) -> Result<Module, Error> {
        self.check()?;
        let name = self.lock().name.clone();
        let build_err = |detail: String| Error::Build {
            module: name.clone(),
            detail,
        };
        if outputs.is_empty() {
            return Err(build_err("a module needs at least one output".into()));
        }
        for o in outputs {
            if !self.same(&o.builder) || o.comp != 0 {
                return Err(build_err(
                    "an output is not a tensor of this module's entry".into(),
                ));
            }
            if o.ty().array().is_none() {
                return Err(build_err(format!(
                    "output {} is a tuple; pass its elements",
                    o.ty()
                )));
            }
        }
        let tuple_result = outputs.len() > 1;
        let root = if tuple_result {
            let t = self.tuple(outputs);
            self.check()?;
            t.id
        } else {
            outputs[0].id
        };
        let d = self.lock();
        let mut comps = Vec::with_capacity(d.comps.len());
        // Sub-computations first (in creation order, so callees precede
        // callers), the entry last.
        let order: Vec<CompId> = (1..d.comps.len()).chain([0]).collect();
        let mut new_id = vec![0usize; d.comps.len()];
        for (i, &c) in order.iter().enumerate() {
            new_id[c] = i;
        }
        for &c in &order {
            let cd = &d.comps[c];
            let root = if c == 0 {
                root
            } else {
                cd.root
                    .ok_or_else(|| build_err(format!("computation '{}' has no result", cd.name)))?
            };
            comps.push(prune(cd, root, &new_id));
        }
        let entry = comps.len() - 1;
        let module = Module {
            name: d.name.clone(),
            computations: comps,
            entry,
            num_replicas: d.num_replicas,
            aliases: d.aliases.clone(),
            tuple_result,
        };
        drop(d);
        let outs = module.output_types();
        let params = module.param_types();
        let mut seen_out = vec![false; outs.len()];
        for a in &module.aliases {
            let (Some(o), Some(p)) = (outs.get(a.output), params.get(a.param)) else {
                return Err(build_err(format!(
                    "alias of output {} to parameter {} is out of range ({} outputs, {} parameters)",
                    a.output,
                    a.param,
                    outs.len(),
                    params.len()
                )));
            };
            if o != p {
                return Err(build_err(format!(
                    "output {} ({o}) cannot reuse parameter {} ({p}): the types differ",
                    a.output, a.param
                )));
            }
            if std::mem::replace(&mut seen_out[a.output], true) {
                return Err(build_err(format!("output {} is aliased twice", a.output)));
            }
        }
        Ok(module)
    }
}

/// Keeps the nodes `root` depends on plus every parameter, renumbered densely
/// in the original order; called computation ids are remapped.
fn prune(c: &CompData, root: NodeId, new_comp: &[usize]) -> Computation {
    let mut live = vec![false; c.nodes.len()];
    let mut stack = vec![root];
    stack.extend(&c.params);
    while let Some(n) = stack.pop() {
        if !std::mem::replace(&mut live[n], true) {
            stack.extend(&c.nodes[n].operands);
        }
    }
    let mut map = vec![usize::MAX; c.nodes.len()];
    let mut nodes = Vec::new();
    for (i, n) in c.nodes.iter().enumerate() {
        if live[i] {
            map[i] = nodes.len();
            let mut n = n.clone();
            n.operands = n.operands.iter().map(|&o| map[o]).collect();
            remap_called(&mut n.op, new_comp);
            nodes.push(n);
        }
    }
    Computation {
        name: c.name.clone(),
        params: c.params.iter().map(|&p| map[p]).collect(),
        root: map[root],
        nodes,
    }
}

fn remap_called(op: &mut Op, new_comp: &[usize]) {
    match op {
        Op::Reduce { reducer, .. }
        | Op::ReduceWindow { reducer, .. }
        | Op::AllReduce { reducer, .. }
        | Op::ReduceScatter { reducer, .. } => *reducer = new_comp[*reducer],
        Op::SelectAndScatter {
            select, scatter, ..
        } => {
            *select = new_comp[*select];
            *scatter = new_comp[*scatter];
        }
        _ => {}
    }
}

impl Tensor {
    /// The builder this tensor belongs to.
    pub fn builder(&self) -> &Builder {
        &self.builder
    }

    /// The computation this tensor belongs to.
    pub fn comp(&self) -> CompId {
        self.comp
    }

    /// The node id within its computation.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// True when this tensor stands for an op that failed its checks.
    pub fn is_poisoned(&self) -> bool {
        self.id == POISON
    }

    /// The result type (a poisoned tensor reports `f32[]`).
    pub fn ty(&self) -> Type {
        if self.id == POISON {
            return Type::Array(Shape::scalar(ElementType::F32));
        }
        self.builder.lock().comps[self.comp].nodes[self.id]
            .ty
            .clone()
    }

    fn ty_string(&self) -> String {
        if self.id == POISON {
            "<invalid>".into()
        } else {
            self.ty().to_string()
        }
    }

    /// The array shape (a tuple reports its first element, or `f32[]`).
    pub fn shape(&self) -> Shape {
        match self.ty() {
            Type::Array(s) => s,
            Type::Tuple(v) => v
                .into_iter()
                .next()
                .unwrap_or_else(|| Shape::scalar(ElementType::F32)),
        }
    }

    /// Dimension sizes.
    pub fn dims(&self) -> Vec<i64> {
        self.shape().dims
    }

    /// Rank.
    pub fn rank(&self) -> usize {
        self.shape().rank()
    }

    /// Element type.
    pub fn element_type(&self) -> ElementType {
        self.shape().ty
    }

    /// Adds `op` with `self` followed by `others` as operands, in this
    /// tensor's computation.
    #[track_caller]
    pub fn op(&self, op: Op, others: &[&Tensor]) -> Tensor {
        let mut all = vec![self];
        all.extend_from_slice(others);
        self.builder.push(self.comp, op, &all)
    }

    /// The same value through a `copy` that autodiff treats as a constant:
    /// no gradient flows back through it (`jax.lax.stop_gradient`,
    /// `tf.stop_gradient`). Lowers to a plain `copy`.
    #[track_caller]
    pub fn stop_gradient(&self) -> Tensor {
        let t = self.op(Op::Unary(UnaryOp::Copy), &[]);
        if t.id != POISON {
            self.builder.lock().stop_gradients.insert((t.comp, t.id));
        }
        t
    }

    /// A constant in this tensor's computation.
    #[track_caller]
    pub fn constant(&self, literal: Literal) -> Tensor {
        self.builder.push(self.comp, Op::Constant(literal), &[])
    }

    /// A scalar constant of this tensor's element type.
    #[track_caller]
    pub fn scalar_like(&self, value: f64) -> Tensor {
        self.constant(Literal::scalar(self.element_type(), value))
    }

    /// `value` broadcast to this tensor's shape and type.
    #[track_caller]
    pub fn full_like(&self, value: f64) -> Tensor {
        let s = self.scalar_like(value);
        s.broadcast_in_dim(&self.dims(), &[])
    }

    /// `iota` in this tensor's computation.
    #[track_caller]
    pub fn iota_like(&self, shape: Shape, dim: i64) -> Tensor {
        self.builder.push(self.comp, Op::Iota { shape, dim }, &[])
    }

    /// Cross-replica sum over `groups`.
    #[track_caller]
    pub fn all_reduce_sum(&self, groups: ReplicaGroups) -> Tensor {
        let reducer = self.builder.reducer(BinaryOp::Add, self.element_type());
        self.op(Op::AllReduce { groups, reducer }, &[])
    }
}
