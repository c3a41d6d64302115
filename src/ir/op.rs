//! The op set: one variant per HLO instruction the SimCLR step needs, its
//! XLA opcode, and its shape rule. Adding an op touches this file (variant,
//! opcode, shape rule), `interp`, `ad` and the lowering; nothing else.

use super::attrs::{
    ComparisonDirection, ConvDims, DotDims, PadDim, ReplicaGroups, RngAlgorithm, Window,
};
use super::literal::Literal;
use super::types::{ElementType, Shape, Type};

/// Index of a computation within a module (entry or sub-computation).
pub type CompId = usize;

/// Elementwise functions of one operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-x`
    Negate,
    /// `e^x`
    Exp,
    /// `ln x`
    Log,
    /// `ln(1+x)`
    Log1p,
    /// `e^x − 1`
    Expm1,
    /// `√x`
    Sqrt,
    /// `1/√x`
    Rsqrt,
    /// `tanh x`
    Tanh,
    /// `1/(1+e^−x)`
    Logistic,
    /// `|x|`
    Abs,
    /// `sign(x)` ∈ {−1, 0, 1} (NaN stays NaN)
    Sign,
    /// `⌊x⌋`
    Floor,
    /// `⌈x⌉`
    Ceil,
    /// Round half to even.
    RoundNearestEven,
    /// `cos x`
    Cos,
    /// `sin x`
    Sin,
    /// Logical / bitwise not.
    Not,
    /// Identity copy.
    Copy,
}

impl UnaryOp {
    /// Every unary op.
    pub const ALL: [UnaryOp; 18] = [
        UnaryOp::Negate,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Log1p,
        UnaryOp::Expm1,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Tanh,
        UnaryOp::Logistic,
        UnaryOp::Abs,
        UnaryOp::Sign,
        UnaryOp::Floor,
        UnaryOp::Ceil,
        UnaryOp::RoundNearestEven,
        UnaryOp::Cos,
        UnaryOp::Sin,
        UnaryOp::Not,
        UnaryOp::Copy,
    ];

    /// XLA opcode.
    pub fn opcode(self) -> &'static str {
        match self {
            UnaryOp::Negate => "negate",
            UnaryOp::Exp => "exponential",
            UnaryOp::Log => "log",
            UnaryOp::Log1p => "log-plus-one",
            UnaryOp::Expm1 => "exponential-minus-one",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Logistic => "logistic",
            UnaryOp::Abs => "abs",
            UnaryOp::Sign => "sign",
            UnaryOp::Floor => "floor",
            UnaryOp::Ceil => "ceil",
            UnaryOp::RoundNearestEven => "round-nearest-even",
            UnaryOp::Cos => "cosine",
            UnaryOp::Sin => "sine",
            UnaryOp::Not => "not",
            UnaryOp::Copy => "copy",
        }
    }

    fn accepts(self, ty: ElementType) -> bool {
        match self {
            UnaryOp::Not => ty == ElementType::Pred || ty.is_integer(),
            UnaryOp::Copy => true,
            UnaryOp::Negate | UnaryOp::Abs | UnaryOp::Sign => ty != ElementType::Pred,
            _ => ty.is_float(),
        }
    }
}

/// Elementwise functions of two operands of identical shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `a + b`
    Add,
    /// `a − b`
    Subtract,
    /// `a · b`
    Multiply,
    /// `a / b` (integers truncate)
    Divide,
    /// `max(a, b)` (NaN propagates)
    Maximum,
    /// `min(a, b)` (NaN propagates)
    Minimum,
    /// `a^b`
    Power,
    /// `a mod b` with the sign of `a`
    Remainder,
    /// `atan2(a, b)`
    Atan2,
    /// Logical / bitwise and.
    And,
    /// Logical / bitwise or.
    Or,
    /// Logical / bitwise xor.
    Xor,
    /// `a << b`
    ShiftLeft,
    /// `a >> b`, zero-filling.
    ShiftRightLogical,
    /// `a >> b`, sign-filling.
    ShiftRightArithmetic,
}

impl BinaryOp {
    /// Every binary op.
    pub const ALL: [BinaryOp; 15] = [
        BinaryOp::Add,
        BinaryOp::Subtract,
        BinaryOp::Multiply,
        BinaryOp::Divide,
        BinaryOp::Maximum,
        BinaryOp::Minimum,
        BinaryOp::Power,
        BinaryOp::Remainder,
        BinaryOp::Atan2,
        BinaryOp::And,
        BinaryOp::Or,
        BinaryOp::Xor,
        BinaryOp::ShiftLeft,
        BinaryOp::ShiftRightLogical,
        BinaryOp::ShiftRightArithmetic,
    ];

    /// XLA opcode.
    pub fn opcode(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Subtract => "subtract",
            BinaryOp::Multiply => "multiply",
            BinaryOp::Divide => "divide",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
            BinaryOp::Power => "power",
            BinaryOp::Remainder => "remainder",
            BinaryOp::Atan2 => "atan2",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
            BinaryOp::Xor => "xor",
            BinaryOp::ShiftLeft => "shift-left",
            BinaryOp::ShiftRightLogical => "shift-right-logical",
            BinaryOp::ShiftRightArithmetic => "shift-right-arithmetic",
        }
    }

    fn accepts(self, ty: ElementType) -> bool {
        match self {
            BinaryOp::And | BinaryOp::Or | BinaryOp::Xor => {
                ty == ElementType::Pred || ty.is_integer()
            }
            BinaryOp::ShiftLeft | BinaryOp::ShiftRightLogical | BinaryOp::ShiftRightArithmetic => {
                ty.is_integer()
            }
            BinaryOp::Atan2 | BinaryOp::Power => ty.is_float(),
            _ => ty != ElementType::Pred,
        }
    }
}

/// One HLO instruction: the opcode and its typed attributes. Operands are
/// kept by the node that holds the op.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Entry or sub-computation parameter number `number`, of type `ty`.
    Parameter {
        /// Position in the computation's signature.
        number: usize,
        /// Name (a parameter's user-facing name, e.g. `base_model/conv2d/kernel`).
        name: String,
        /// The parameter's type.
        ty: Type,
    },
    /// A constant array.
    Constant(Literal),
    /// `iota`: values `0, 1, …` along `dim` of `shape`.
    Iota {
        /// Result shape.
        shape: Shape,
        /// The counting dimension.
        dim: i64,
    },
    /// Elementwise unary function.
    Unary(UnaryOp),
    /// Elementwise binary function (operands of identical shape).
    Binary(BinaryOp),
    /// Elementwise comparison, result `pred`.
    Compare(ComparisonDirection),
    /// `select(pred, on_true, on_false)`; the predicate may be a scalar.
    Select,
    /// `clamp(min, x, max)` with bounds of x's shape.
    Clamp,
    /// Elementwise conversion to another element type.
    Convert(ElementType),
    /// Reinterprets the bits as another element type of the same width.
    BitcastConvert(ElementType),
    /// `broadcast`: operand dimension i becomes output dimension `dims[i]`.
    Broadcast {
        /// The output dimensions.
        out_dims: Vec<i64>,
        /// Where each operand dimension goes.
        dims: Vec<i64>,
    },
    /// Row-major reshape to `dims`.
    Reshape {
        /// The new dimensions.
        dims: Vec<i64>,
    },
    /// Output dimension i is operand dimension `perm[i]`.
    Transpose {
        /// The permutation.
        perm: Vec<i64>,
    },
    /// Reverses the listed dimensions.
    Reverse {
        /// The dimensions reversed.
        dims: Vec<i64>,
    },
    /// Static strided slice `[start:limit:stride]` per dimension.
    Slice {
        /// Start index per dimension.
        start: Vec<i64>,
        /// Exclusive limit per dimension.
        limit: Vec<i64>,
        /// Stride per dimension (≥ 1).
        stride: Vec<i64>,
    },
    /// Slice of `sizes` at run-time start indices (one scalar operand per
    /// dimension, clamped into range).
    DynamicSlice {
        /// The slice sizes.
        sizes: Vec<i64>,
    },
    /// Writes `update` into `operand` at run-time start indices.
    DynamicUpdateSlice,
    /// Concatenation along `dim`.
    Concatenate {
        /// The concatenated dimension.
        dim: i64,
    },
    /// Edge and interior padding with a scalar value (the second operand).
    Pad {
        /// Padding per dimension.
        dims: Vec<PadDim>,
    },
    /// General dot product.
    Dot(DotDims),
    /// General convolution.
    Convolution {
        /// Spatial window (one entry per spatial dimension).
        window: Window,
        /// Which dimension is which.
        dnums: ConvDims,
        /// Input/output feature groups (1 = dense).
        feature_group_count: i64,
        /// Batch groups (1 = none).
        batch_group_count: i64,
    },
    /// Reduction of K inputs with K initial values over `dims`, combined by
    /// the sub-computation `reducer`.
    Reduce {
        /// The reduced dimensions.
        dims: Vec<i64>,
        /// The combining computation.
        reducer: CompId,
    },
    /// Windowed reduction (pooling), window over every operand dimension.
    ReduceWindow {
        /// One entry per operand dimension.
        window: Window,
        /// The combining computation.
        reducer: CompId,
    },
    /// Scatters `source` to the position each window's `select` picks
    /// (the gradient of max pooling).
    SelectAndScatter {
        /// One entry per operand dimension.
        window: Window,
        /// `(a, b) -> pred`: keep `a` over `b`.
        select: CompId,
        /// `(a, b) -> a + b` style combiner.
        scatter: CompId,
    },
    /// Cross-replica reduction.
    AllReduce {
        /// The participating groups.
        groups: ReplicaGroups,
        /// The combining computation.
        reducer: CompId,
    },
    /// Cross-replica concatenation along `dim`, in replica order.
    AllGather {
        /// The gathered dimension.
        dim: i64,
        /// The participating groups.
        groups: ReplicaGroups,
    },
    /// Cross-replica reduction whose result is split along `dim`, replica r
    /// keeping block r.
    ReduceScatter {
        /// The scattered dimension.
        dim: i64,
        /// The participating groups.
        groups: ReplicaGroups,
        /// The combining computation.
        reducer: CompId,
    },
    /// This replica's id as `u32[]`.
    ReplicaId,
    /// Counter-based random bits from a `u64[2]` state: `(new_state, bits)`.
    RngBitGenerator {
        /// Algorithm (named explicitly, so results agree across backends).
        algorithm: RngAlgorithm,
        /// Shape of the bits (`u32` or `u64`).
        shape: Shape,
    },
    /// A tuple of the operands.
    Tuple,
    /// Element `index` of a tuple.
    GetTupleElement {
        /// The element.
        index: usize,
    },
}

/// The signature of a sub-computation, for checking `to_apply` references.
#[derive(Clone, Debug, PartialEq)]
pub struct Signature {
    /// Parameter types.
    pub params: Vec<Type>,
    /// Result type.
    pub result: Type,
}

impl Op {
    /// XLA opcode spelling.
    pub fn opcode(&self) -> &'static str {
        match self {
            Op::Parameter { .. } => "parameter",
            Op::Constant(_) => "constant",
            Op::Iota { .. } => "iota",
            Op::Unary(u) => u.opcode(),
            Op::Binary(b) => b.opcode(),
            Op::Compare(_) => "compare",
            Op::Select => "select",
            Op::Clamp => "clamp",
            Op::Convert(_) => "convert",
            Op::BitcastConvert(_) => "bitcast-convert",
            Op::Broadcast { .. } => "broadcast",
            Op::Reshape { .. } => "reshape",
            Op::Transpose { .. } => "transpose",
            Op::Reverse { .. } => "reverse",
            Op::Slice { .. } => "slice",
            Op::DynamicSlice { .. } => "dynamic-slice",
            Op::DynamicUpdateSlice => "dynamic-update-slice",
            Op::Concatenate { .. } => "concatenate",
            Op::Pad { .. } => "pad",
            Op::Dot(_) => "dot",
            Op::Convolution { .. } => "convolution",
            Op::Reduce { .. } => "reduce",
            Op::ReduceWindow { .. } => "reduce-window",
            Op::SelectAndScatter { .. } => "select-and-scatter",
            Op::AllReduce { .. } => "all-reduce",
            Op::AllGather { .. } => "all-gather",
            Op::ReduceScatter { .. } => "reduce-scatter",
            Op::ReplicaId => "replica-id",
            Op::RngBitGenerator { .. } => "rng-bit-generator",
            Op::Tuple => "tuple",
            Op::GetTupleElement { .. } => "get-tuple-element",
        }
    }

    /// The sub-computations this op calls, in XLA's `called_computation_ids` order.
    pub fn called(&self) -> Vec<CompId> {
        match self {
            Op::Reduce { reducer, .. }
            | Op::ReduceWindow { reducer, .. }
            | Op::AllReduce { reducer, .. }
            | Op::ReduceScatter { reducer, .. } => vec![*reducer],
            Op::SelectAndScatter {
                select, scatter, ..
            } => vec![*select, *scatter],
            _ => vec![],
        }
    }

    /// True for the cross-replica ops.
    pub fn is_collective(&self) -> bool {
        matches!(
            self,
            Op::AllReduce { .. } | Op::AllGather { .. } | Op::ReduceScatter { .. }
        )
    }

    /// Infers the result type from the operand types, or explains why the op
    /// is invalid. `sig` gives the signature of a called computation.
    pub fn infer_type(
        &self,
        operands: &[&Type],
        sig: &dyn Fn(CompId) -> Option<Signature>,
        num_replicas: usize,
    ) -> Result<Type, String> {
        infer(self, operands, sig, num_replicas)
    }
}

fn arrays<'a>(operands: &[&'a Type]) -> Result<Vec<&'a Shape>, String> {
    operands
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.array()
                .ok_or_else(|| format!("operand {i} is a tuple {t}; an array is required"))
        })
        .collect()
}

fn expect_count(operands: &[&Type], n: usize) -> Result<(), String> {
    if operands.len() != n {
        return Err(format!("expects {n} operand(s), got {}", operands.len()));
    }
    Ok(())
}

fn check_dim(d: i64, rank: usize, what: &str) -> Result<usize, String> {
    usize::try_from(d)
        .ok()
        .filter(|&d| d < rank)
        .ok_or_else(|| format!("{what} {d} is out of range for rank {rank}"))
}

fn check_permutation(perm: &[i64], rank: usize, what: &str) -> Result<(), String> {
    let mut seen = vec![false; rank];
    if perm.len() != rank {
        return Err(format!(
            "{what} {perm:?} has {} entries, rank is {rank}",
            perm.len()
        ));
    }
    for &p in perm {
        let p = check_dim(p, rank, what)?;
        if seen[p] {
            return Err(format!("{what} {perm:?} repeats dimension {p}"));
        }
        seen[p] = true;
    }
    Ok(())
}

fn distinct_dims(dims: &[i64], rank: usize, what: &str) -> Result<Vec<usize>, String> {
    let mut seen = vec![false; rank];
    dims.iter()
        .map(|&d| {
            let d = check_dim(d, rank, what)?;
            if seen[d] {
                return Err(format!("{what} {dims:?} repeats dimension {d}"));
            }
            seen[d] = true;
            Ok(d)
        })
        .collect()
}

/// Checks a reducer's signature: 2K scalar parameters `(acc…, x…)` of the
/// given types, returning the K types (a scalar when K = 1, else a tuple).
fn check_reducer(
    sig: &dyn Fn(CompId) -> Option<Signature>,
    comp: CompId,
    types: &[ElementType],
) -> Result<(), String> {
    let s = sig(comp).ok_or_else(|| format!("reducer computation #{comp} does not exist"))?;
    let scalars: Vec<Type> = types
        .iter()
        .map(|&t| Type::Array(Shape::scalar(t)))
        .collect();
    let mut want_params = scalars.clone();
    want_params.extend(scalars.iter().cloned());
    let want_result = if types.len() == 1 {
        scalars[0].clone()
    } else {
        Type::Tuple(types.iter().map(|&t| Shape::scalar(t)).collect())
    };
    if s.params != want_params || s.result != want_result {
        let show = |v: &[Type]| {
            v.iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(format!(
            "wrong reducer signature ({}) -> {}; expected ({}) -> {}",
            show(&s.params),
            s.result,
            show(&want_params),
            want_result
        ));
    }
    Ok(())
}

fn window_output(window: &Window, input: &[i64], what: &str) -> Result<Vec<i64>, String> {
    if window.dims.len() != input.len() {
        return Err(format!(
            "{what} window has {} dimensions, expected {}",
            window.dims.len(),
            input.len()
        ));
    }
    window
        .dims
        .iter()
        .zip(input)
        .map(|(w, &n)| {
            if w.stride < 1 || w.window_dilation < 1 || w.base_dilation < 1 || w.size < 1 {
                return Err(format!(
                    "{what} window {} has a size, stride or dilation below 1",
                    window.to_text()
                ));
            }
            w.output_size(n).ok_or_else(|| {
                format!(
                    "{what} window {} does not fit an input extent of {n}",
                    window.to_text()
                )
            })
        })
        .collect()
}

fn infer(
    op: &Op,
    operands: &[&Type],
    sig: &dyn Fn(CompId) -> Option<Signature>,
    num_replicas: usize,
) -> Result<Type, String> {
    use ElementType as E;
    let arr = |s: Shape| Ok(Type::Array(s));
    match op {
        Op::Parameter { ty, .. } => {
            expect_count(operands, 0)?;
            for leaf in ty.leaves() {
                check_shape(&leaf, "parameter type")?;
            }
            Ok(ty.clone())
        }
        Op::Constant(lit) => {
            expect_count(operands, 0)?;
            arr(lit.shape())
        }
        Op::Iota { shape, dim } => {
            expect_count(operands, 0)?;
            check_shape(shape, "iota shape")?;
            check_dim(*dim, shape.rank(), "iota dimension")?;
            if shape.ty == E::Pred {
                return Err("iota of pred is not allowed".into());
            }
            arr(shape.clone())
        }
        Op::Unary(u) => {
            expect_count(operands, 1)?;
            let a = arrays(operands)?;
            if !u.accepts(a[0].ty) {
                return Err(format!(
                    "{} does not accept element type {}",
                    u.opcode(),
                    a[0].ty
                ));
            }
            arr(a[0].clone())
        }
        Op::Binary(b) => {
            expect_count(operands, 2)?;
            let a = arrays(operands)?;
            if a[0] != a[1] {
                return Err(format!(
                    "operands have different shapes {} and {} (HLO has no implicit broadcasting)",
                    a[0], a[1]
                ));
            }
            if !b.accepts(a[0].ty) {
                return Err(format!(
                    "{} does not accept element type {}",
                    b.opcode(),
                    a[0].ty
                ));
            }
            arr(a[0].clone())
        }
        Op::Compare(_) => {
            expect_count(operands, 2)?;
            let a = arrays(operands)?;
            if a[0] != a[1] {
                return Err(format!(
                    "operands have different shapes {} and {}",
                    a[0], a[1]
                ));
            }
            arr(a[0].with_type(E::Pred))
        }
        Op::Select => {
            expect_count(operands, 3)?;
            let a = arrays(operands)?;
            if a[0].ty != E::Pred {
                return Err(format!("the predicate must be pred, got {}", a[0]));
            }
            if a[1] != a[2] {
                return Err(format!(
                    "branches have different shapes {} and {}",
                    a[1], a[2]
                ));
            }
            if a[0].rank() != 0 && a[0].dims != a[1].dims {
                return Err(format!(
                    "predicate {} does not match branches {}",
                    a[0], a[1]
                ));
            }
            arr(a[1].clone())
        }
        Op::Clamp => {
            expect_count(operands, 3)?;
            let a = arrays(operands)?;
            if a[0] != a[1] || a[2] != a[1] {
                return Err(format!(
                    "clamp bounds {} and {} must have the operand's shape {} (broadcast them first)",
                    a[0], a[2], a[1]
                ));
            }
            arr(a[1].clone())
        }
        Op::Convert(ty) => {
            expect_count(operands, 1)?;
            let a = arrays(operands)?;
            arr(a[0].with_type(*ty))
        }
        Op::BitcastConvert(ty) => {
            expect_count(operands, 1)?;
            let a = arrays(operands)?;
            if a[0].ty.byte_size() != ty.byte_size() {
                return Err(format!(
                    "bitcast-convert from {} to {ty} changes the bit width",
                    a[0].ty
                ));
            }
            arr(a[0].with_type(*ty))
        }
        Op::Broadcast { out_dims, dims } => {
            expect_count(operands, 1)?;
            let a = arrays(operands)?;
            if dims.len() != a[0].rank() {
                return Err(format!(
                    "broadcast dimensions {dims:?} must have one entry per operand dimension of {}",
                    a[0]
                ));
            }
            let mapped = distinct_dims(dims, out_dims.len(), "broadcast dimension")?;
            for (i, &o) in mapped.iter().enumerate() {
                if a[0].dims[i] != out_dims[o] && a[0].dims[i] != 1 {
                    return Err(format!(
                        "operand {} dimension {i} (size {}) cannot become output dimension {o} of size {}",
                        a[0], a[0].dims[i], out_dims[o]
                    ));
                }
                if a[0].dims[i] == 1 && out_dims[o] != 1 {
                    return Err(format!(
                        "operand {} dimension {i} has size 1 but output dimension {o} has size {}; reshape away the 1 first",
                        a[0], out_dims[o]
                    ));
                }
            }
            if out_dims.iter().any(|&d| d < 0) {
                return Err(format!("negative output dimension in {out_dims:?}"));
            }
            arr(Shape::new(a[0].ty, out_dims.clone()))
        }
        Op::Reshape { dims } => {
            expect_count(operands, 1)?;
            let a = arrays(operands)?;
            let out = Shape::new(a[0].ty, dims.clone());
            if dims.iter().any(|&d| d < 0) || out.numel() != a[0].numel() {
                return Err(format!(
                    "cannot reshape {} ({} elements) to {:?}",
                    a[0],
                    a[0].numel(),
                    dims
                ));
            }
            arr(out)
        }
        Op::Transpose { perm } => {
            expect_count(operands, 1)?;
            let a = arrays(operands)?;
            check_permutation(perm, a[0].rank(), "transpose permutation")?;
            arr(Shape::new(
                a[0].ty,
                perm.iter()
                    .map(|&p| a[0].dims[p as usize])
                    .collect::<Vec<_>>(),
            ))
        }
        Op::Reverse { dims } => {
            expect_count(operands, 1)?;
            let a = arrays(operands)?;
            distinct_dims(dims, a[0].rank(), "reverse dimension")?;
            arr(a[0].clone())
        }
        Op::Slice {
            start,
            limit,
            stride,
        } => {
            expect_count(operands, 1)?;
            let a = arrays(operands)?;
            let r = a[0].rank();
            if start.len() != r || limit.len() != r || stride.len() != r {
                return Err(format!(
                    "slice needs start/limit/stride of rank {r} for {}",
                    a[0]
                ));
            }
            let mut out = Vec::with_capacity(r);
            for d in 0..r {
                if stride[d] < 1 || start[d] < 0 || limit[d] < start[d] || limit[d] > a[0].dims[d] {
                    return Err(format!(
                        "slice [{}:{}:{}] is invalid for dimension {d} of {}",
                        start[d], limit[d], stride[d], a[0]
                    ));
                }
                out.push((limit[d] - start[d] + stride[d] - 1) / stride[d]);
            }
            arr(Shape::new(a[0].ty, out))
        }
        Op::DynamicSlice { sizes } => {
            let a = arrays(operands)?;
            let Some(x) = a.first() else {
                return Err("dynamic-slice needs an operand".into());
            };
            if a.len() != 1 + x.rank() || sizes.len() != x.rank() {
                return Err(format!(
                    "dynamic-slice of {x} needs {} scalar start indices and {} sizes",
                    x.rank(),
                    x.rank()
                ));
            }
            check_scalar_indices(&a[1..])?;
            for (d, &s) in sizes.iter().enumerate() {
                if s < 0 || s > x.dims[d] {
                    return Err(format!(
                        "dynamic-slice size {s} exceeds dimension {d} of {x}"
                    ));
                }
            }
            arr(Shape::new(x.ty, sizes.clone()))
        }
        Op::DynamicUpdateSlice => {
            let a = arrays(operands)?;
            if a.len() < 2 || a.len() != 2 + a[0].rank() {
                return Err(
                    "dynamic-update-slice needs operand, update and one scalar index per dimension"
                        .into(),
                );
            }
            let (x, u) = (a[0], a[1]);
            if x.ty != u.ty
                || x.rank() != u.rank()
                || u.dims.iter().zip(&x.dims).any(|(u, x)| u > x)
            {
                return Err(format!("update {u} does not fit into {x}"));
            }
            check_scalar_indices(&a[2..])?;
            arr(x.clone())
        }
        Op::Concatenate { dim } => {
            let a = arrays(operands)?;
            let Some(first) = a.first() else {
                return Err("concatenate needs at least one operand".into());
            };
            let d = check_dim(*dim, first.rank(), "concatenate dimension")?;
            let mut out = (*first).clone();
            for s in &a[1..] {
                let same_rest = s.rank() == first.rank()
                    && s.ty == first.ty
                    && (0..s.rank()).all(|k| k == d || s.dims[k] == first.dims[k]);
                if !same_rest {
                    return Err(format!(
                        "cannot concatenate {s} with {first} along dimension {d}"
                    ));
                }
                out.dims[d] += s.dims[d];
            }
            arr(out)
        }
        Op::Pad { dims } => {
            expect_count(operands, 2)?;
            let a = arrays(operands)?;
            if a[1].rank() != 0 || a[1].ty != a[0].ty {
                return Err(format!(
                    "padding value must be a {} scalar, got {}",
                    a[0].ty, a[1]
                ));
            }
            if dims.len() != a[0].rank() {
                return Err(format!(
                    "pad needs {} padding entries for {}",
                    a[0].rank(),
                    a[0]
                ));
            }
            let mut out = Vec::new();
            for (d, p) in dims.iter().enumerate() {
                let n = a[0].dims[d];
                if p.interior < 0 {
                    return Err(format!("negative interior padding in dimension {d}"));
                }
                let size = n + p.lo + p.hi + (n - 1).max(0) * p.interior;
                if size < 0 {
                    return Err(format!(
                        "padding {p:?} leaves dimension {d} of {} negative",
                        a[0]
                    ));
                }
                out.push(size);
            }
            arr(Shape::new(a[0].ty, out))
        }
        Op::Dot(dn) => {
            expect_count(operands, 2)?;
            let a = arrays(operands)?;
            let (l, r) = (a[0], a[1]);
            if l.ty != r.ty {
                return Err(format!("dot operands have different types {l} and {r}"));
            }
            if dn.lhs_contracting.len() != dn.rhs_contracting.len()
                || dn.lhs_batch.len() != dn.rhs_batch.len()
            {
                return Err(format!("dot dimension numbers {dn:?} are unbalanced"));
            }
            let mut lhs_used: Vec<i64> = dn.lhs_batch.clone();
            lhs_used.extend(&dn.lhs_contracting);
            let mut rhs_used: Vec<i64> = dn.rhs_batch.clone();
            rhs_used.extend(&dn.rhs_contracting);
            distinct_dims(&lhs_used, l.rank(), "dot lhs dimension")?;
            distinct_dims(&rhs_used, r.rank(), "dot rhs dimension")?;
            for (x, y) in dn
                .lhs_batch
                .iter()
                .zip(&dn.rhs_batch)
                .chain(dn.lhs_contracting.iter().zip(&dn.rhs_contracting))
            {
                if l.dims[*x as usize] != r.dims[*y as usize] {
                    return Err(format!(
                        "dot of {l} and {r}: lhs dimension {x} (size {}) does not match rhs dimension {y} (size {})",
                        l.dims[*x as usize], r.dims[*y as usize]
                    ));
                }
            }
            let mut out: Vec<i64> = dn.lhs_batch.iter().map(|&d| l.dims[d as usize]).collect();
            out.extend(
                (0..l.rank() as i64)
                    .filter(|d| !lhs_used.contains(d))
                    .map(|d| l.dims[d as usize]),
            );
            out.extend(
                (0..r.rank() as i64)
                    .filter(|d| !rhs_used.contains(d))
                    .map(|d| r.dims[d as usize]),
            );
            arr(Shape::new(l.ty, out))
        }
        Op::Convolution {
            window,
            dnums,
            feature_group_count,
            batch_group_count,
        } => {
            expect_count(operands, 2)?;
            let a = arrays(operands)?;
            infer_convolution(
                a[0],
                a[1],
                window,
                dnums,
                *feature_group_count,
                *batch_group_count,
            )
            .map(Type::Array)
        }
        Op::Reduce { dims, reducer } => {
            let a = arrays(operands)?;
            if a.is_empty() || a.len() % 2 != 0 {
                return Err("reduce takes K inputs followed by K scalar initial values".into());
            }
            let k = a.len() / 2;
            let (inputs, inits) = a.split_at(k);
            for s in inputs {
                if s.dims != inputs[0].dims {
                    return Err(format!(
                        "reduce inputs {s} and {} differ in dimensions",
                        inputs[0]
                    ));
                }
            }
            for (x, i) in inputs.iter().zip(inits) {
                if i.rank() != 0 || i.ty != x.ty {
                    return Err(format!("reduce init value {i} must be a {} scalar", x.ty));
                }
            }
            let reduced = distinct_dims(dims, inputs[0].rank(), "reduce dimension")?;
            let types: Vec<ElementType> = inputs.iter().map(|s| s.ty).collect();
            check_reducer(sig, *reducer, &types)?;
            let kept: Vec<i64> = (0..inputs[0].rank())
                .filter(|d| !reduced.contains(d))
                .map(|d| inputs[0].dims[d])
                .collect();
            if k == 1 {
                arr(Shape::new(types[0], kept))
            } else {
                Ok(Type::Tuple(
                    types.iter().map(|&t| Shape::new(t, kept.clone())).collect(),
                ))
            }
        }
        Op::ReduceWindow { window, reducer } => {
            expect_count(operands, 2)?;
            let a = arrays(operands)?;
            if a[1].rank() != 0 || a[1].ty != a[0].ty {
                return Err(format!(
                    "reduce-window init value must be a {} scalar",
                    a[0].ty
                ));
            }
            let out = window_output(window, &a[0].dims, "reduce-window")?;
            check_reducer(sig, *reducer, &[a[0].ty])?;
            arr(Shape::new(a[0].ty, out))
        }
        Op::SelectAndScatter {
            window,
            select,
            scatter,
        } => {
            expect_count(operands, 3)?;
            let a = arrays(operands)?;
            let (x, src, init) = (a[0], a[1], a[2]);
            let out = window_output(window, &x.dims, "select-and-scatter")?;
            if src.dims != out || src.ty != x.ty {
                return Err(format!(
                    "select-and-scatter source {src} must have the windowed shape {}",
                    Shape::new(x.ty, out)
                ));
            }
            if init.rank() != 0 || init.ty != x.ty {
                return Err(format!(
                    "select-and-scatter init value must be a {} scalar",
                    x.ty
                ));
            }
            let s = sig(*select).ok_or("select computation does not exist")?;
            let scalar = Type::Array(Shape::scalar(x.ty));
            if s.params != vec![scalar.clone(), scalar.clone()]
                || s.result != Type::Array(Shape::scalar(E::Pred))
            {
                return Err(format!(
                    "select computation must be ({0}, {0}) -> pred[]",
                    Shape::scalar(x.ty)
                ));
            }
            check_reducer(sig, *scatter, &[x.ty])?;
            arr(x.clone())
        }
        Op::AllReduce { groups, reducer } => {
            expect_count(operands, 1)?;
            let a = arrays(operands)?;
            groups.validate(num_replicas)?;
            check_reducer(sig, *reducer, &[a[0].ty])?;
            arr(a[0].clone())
        }
        Op::AllGather { dim, groups } => {
            expect_count(operands, 1)?;
            let a = arrays(operands)?;
            groups.validate(num_replicas)?;
            let d = check_dim(*dim, a[0].rank(), "all-gather dimension")?;
            let mut out = a[0].clone();
            out.dims[d] *= groups.group_size(num_replicas) as i64;
            arr(out)
        }
        Op::ReduceScatter {
            dim,
            groups,
            reducer,
        } => {
            expect_count(operands, 1)?;
            let a = arrays(operands)?;
            groups.validate(num_replicas)?;
            let d = check_dim(*dim, a[0].rank(), "reduce-scatter dimension")?;
            let g = groups.group_size(num_replicas) as i64;
            if a[0].dims[d] % g != 0 {
                return Err(format!(
                    "reduce-scatter dimension {d} of {} is not divisible by the group size {g}",
                    a[0]
                ));
            }
            check_reducer(sig, *reducer, &[a[0].ty])?;
            let mut out = a[0].clone();
            out.dims[d] /= g;
            arr(out)
        }
        Op::ReplicaId => {
            expect_count(operands, 0)?;
            arr(Shape::scalar(E::U32))
        }
        Op::RngBitGenerator { shape, .. } => {
            expect_count(operands, 1)?;
            let a = arrays(operands)?;
            if *a[0] != Shape::new(E::U64, [2]) {
                return Err(format!(
                    "rng-bit-generator state must be u64[2], got {}",
                    a[0]
                ));
            }
            check_shape(shape, "rng-bit-generator shape")?;
            if !matches!(shape.ty, E::U32 | E::U64) {
                return Err(format!(
                    "rng-bit-generator produces u32 or u64 bits, not {}",
                    shape.ty
                ));
            }
            Ok(Type::Tuple(vec![a[0].clone(), shape.clone()]))
        }
        Op::Tuple => {
            let a = arrays(operands)?;
            Ok(Type::Tuple(a.into_iter().cloned().collect()))
        }
        Op::GetTupleElement { index } => {
            expect_count(operands, 1)?;
            match operands[0] {
                Type::Tuple(v) => v
                    .get(*index)
                    .cloned()
                    .map(Type::Array)
                    .ok_or_else(|| format!("tuple {} has no element {index}", operands[0])),
                t => Err(format!("get-tuple-element of a non-tuple {t}")),
            }
        }
    }
}

fn check_scalar_indices(idx: &[&Shape]) -> Result<(), String> {
    for s in idx {
        if s.rank() != 0 || !s.ty.is_integer() {
            return Err(format!("start indices must be integer scalars, got {s}"));
        }
        // XLA requires one index type for all start indices.
        if s.ty != idx[0].ty {
            return Err(format!(
                "start indices must all have the same type, got {} and {s}",
                idx[0]
            ));
        }
    }
    Ok(())
}

/// Rejects negative dimension sizes in a shape given as an attribute.
fn check_shape(shape: &Shape, what: &str) -> Result<(), String> {
    if shape.dims.iter().any(|&d| d < 0) {
        return Err(format!("{what} {shape} has a negative dimension size"));
    }
    Ok(())
}

fn infer_convolution(
    x: &Shape,
    w: &Shape,
    window: &Window,
    dn: &ConvDims,
    fgc: i64,
    bgc: i64,
) -> Result<Shape, String> {
    let r = x.rank();
    let ns = r
        .checked_sub(2)
        .ok_or_else(|| format!("convolution input {x} needs rank ≥ 2"))?;
    if w.rank() != r || x.ty != w.ty {
        return Err(format!(
            "convolution input {x} and kernel {w} differ in rank or type"
        ));
    }
    if dn.input_spatial.len() != ns
        || dn.kernel_spatial.len() != ns
        || dn.output_spatial.len() != ns
    {
        return Err(format!(
            "dimension numbers {} do not match rank {r}",
            dn.to_labels()
        ));
    }
    let mut lhs = vec![dn.input_batch, dn.input_feature];
    lhs.extend(&dn.input_spatial);
    let mut rhs = vec![dn.kernel_input_feature, dn.kernel_output_feature];
    rhs.extend(&dn.kernel_spatial);
    let mut out = vec![dn.output_batch, dn.output_feature];
    out.extend(&dn.output_spatial);
    check_permutation(&lhs, r, "convolution input dimension")?;
    check_permutation(&rhs, r, "convolution kernel dimension")?;
    check_permutation(&out, r, "convolution output dimension")?;
    if fgc < 1 || bgc < 1 {
        return Err("feature_group_count and batch_group_count must be ≥ 1".into());
    }
    if fgc > 1 && bgc > 1 {
        return Err(format!(
            "feature_group_count {fgc} and batch_group_count {bgc} cannot both be greater than 1"
        ));
    }
    let batch = x.dims[dn.input_batch as usize];
    let in_f = x.dims[dn.input_feature as usize];
    let k_in = w.dims[dn.kernel_input_feature as usize];
    let k_out = w.dims[dn.kernel_output_feature as usize];
    if in_f % fgc != 0 || in_f / fgc != k_in {
        return Err(format!(
            "input features {in_f} / feature_group_count {fgc} must equal the kernel's input features {k_in} ({x} * {w})"
        ));
    }
    if k_out % fgc != 0 || k_out % bgc != 0 || batch % bgc != 0 {
        return Err(format!(
            "kernel output features {k_out} must be divisible by the group counts ({fgc}, {bgc})"
        ));
    }
    if window.dims.len() != ns {
        return Err(format!(
            "convolution window has {} dimensions, expected {ns}",
            window.dims.len()
        ));
    }
    for (k, wd) in window.dims.iter().enumerate() {
        let ks = w.dims[dn.kernel_spatial[k] as usize];
        if wd.size != ks {
            return Err(format!(
                "window size {} in spatial dimension {k} does not match kernel extent {ks} of {w}",
                wd.size
            ));
        }
    }
    let spatial_in: Vec<i64> = dn
        .input_spatial
        .iter()
        .map(|&d| x.dims[d as usize])
        .collect();
    let spatial_out = window_output(window, &spatial_in, "convolution")?;
    let mut dims = vec![0i64; r];
    dims[dn.output_batch as usize] = batch / bgc;
    dims[dn.output_feature as usize] = k_out;
    for (k, &d) in dn.output_spatial.iter().enumerate() {
        dims[d as usize] = spatial_out[k];
    }
    Ok(Shape::new(x.ty, dims))
}
