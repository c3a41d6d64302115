//! The `Tensor` API: one method per HLO op plus the few conveniences model
//! code needs (numpy-style broadcasting for elementwise ops, scalar
//! operands, `sum`/`mean` over dimensions). Everything lowers to plain HLO:
//! a broadcast here is an explicit `broadcast` instruction.

use super::attrs::{
    ComparisonDirection, ConvDims, DotDims, PadDim, ReplicaGroups, RngAlgorithm, Window,
};
use super::builder::Tensor;
use super::op::{BinaryOp, CompId, Op, UnaryOp};
use super::types::{ElementType, Shape};
use std::ops;

impl Tensor {
    /// Elementwise unary op.
    #[track_caller]
    pub fn unary(&self, u: UnaryOp) -> Tensor {
        self.op(Op::Unary(u), &[])
    }

    /// Elementwise binary op on tensors of identical shape (raw HLO).
    #[track_caller]
    pub fn binary(&self, b: BinaryOp, other: &Tensor) -> Tensor {
        self.op(Op::Binary(b), &[other])
    }

    /// Broadcasts two tensors to a common shape, numpy style (trailing
    /// dimensions aligned; size-1 dimensions stretch).
    #[track_caller]
    pub fn broadcast_pair(&self, other: &Tensor) -> (Tensor, Tensor) {
        let (a, b) = (self.dims(), other.dims());
        if a == b {
            return (self.clone(), other.clone());
        }
        let r = a.len().max(b.len());
        let pad = |d: &[i64]| -> Vec<i64> {
            let mut v = vec![1; r - d.len()];
            v.extend_from_slice(d);
            v
        };
        let (pa, pb) = (pad(&a), pad(&b));
        let mut out = Vec::with_capacity(r);
        for (x, y) in pa.iter().zip(&pb) {
            out.push(if x == y || *y == 1 {
                *x
            } else if *x == 1 {
                *y
            } else {
                // Incompatible: let the raw op report both shapes.
                return (self.clone(), other.clone());
            });
        }
        (self.broadcast_to(&out), other.broadcast_to(&out))
    }

    /// Broadcasts to `dims` with numpy rules (trailing alignment, size-1 stretch).
    #[track_caller]
    pub fn broadcast_to(&self, dims: &[i64]) -> Tensor {
        let own = self.dims();
        if own == dims {
            return self.clone();
        }
        if own.len() > dims.len() {
            return self.broadcast_in_dim(dims, &[]);
        }
        let offset = dims.len() - own.len();
        // Drop size-1 dims that stretch, keep the rest mapped in place.
        let keep: Vec<usize> = (0..own.len())
            .filter(|&i| !(own[i] == 1 && dims[offset + i] != 1))
            .collect();
        let squeezed = if keep.len() == own.len() {
            self.clone()
        } else {
            self.reshape(&keep.iter().map(|&i| own[i]).collect::<Vec<_>>())
        };
        let map: Vec<i64> = keep.iter().map(|&i| (offset + i) as i64).collect();
        squeezed.broadcast_in_dim(dims, &map)
    }

    #[track_caller]
    fn bin_bcast(&self, b: BinaryOp, other: &Tensor) -> Tensor {
        let (x, y) = self.broadcast_pair(other);
        x.binary(b, &y)
    }

    /// `self + other` with broadcasting.
    #[track_caller]
    pub fn add(&self, other: &Tensor) -> Tensor {
        self.bin_bcast(BinaryOp::Add, other)
    }

    /// `self − other` with broadcasting.
    #[track_caller]
    pub fn sub(&self, other: &Tensor) -> Tensor {
        self.bin_bcast(BinaryOp::Subtract, other)
    }

    /// `self · other` with broadcasting.
    #[track_caller]
    pub fn mul(&self, other: &Tensor) -> Tensor {
        self.bin_bcast(BinaryOp::Multiply, other)
    }

    /// `self / other` with broadcasting.
    #[track_caller]
    pub fn div(&self, other: &Tensor) -> Tensor {
        self.bin_bcast(BinaryOp::Divide, other)
    }

    /// Elementwise maximum with broadcasting.
    #[track_caller]
    pub fn max(&self, other: &Tensor) -> Tensor {
        self.bin_bcast(BinaryOp::Maximum, other)
    }

    /// Elementwise minimum with broadcasting.
    #[track_caller]
    pub fn min(&self, other: &Tensor) -> Tensor {
        self.bin_bcast(BinaryOp::Minimum, other)
    }

    /// `self^other` with broadcasting.
    #[track_caller]
    pub fn pow(&self, other: &Tensor) -> Tensor {
        self.bin_bcast(BinaryOp::Power, other)
    }

    /// `self + c`.
    #[track_caller]
    pub fn add_scalar(&self, c: f64) -> Tensor {
        self.add(&self.scalar_like(c))
    }

    /// `self · c`.
    #[track_caller]
    pub fn mul_scalar(&self, c: f64) -> Tensor {
        self.mul(&self.scalar_like(c))
    }

    /// `−self`
    #[track_caller]
    pub fn neg(&self) -> Tensor {
        self.unary(UnaryOp::Negate)
    }

    /// `e^self`
    #[track_caller]
    pub fn exp(&self) -> Tensor {
        self.unary(UnaryOp::Exp)
    }

    /// `ln self`
    #[track_caller]
    pub fn log(&self) -> Tensor {
        self.unary(UnaryOp::Log)
    }

    /// `√self`
    #[track_caller]
    pub fn sqrt(&self) -> Tensor {
        self.unary(UnaryOp::Sqrt)
    }

    /// `1/√self`
    #[track_caller]
    pub fn rsqrt(&self) -> Tensor {
        self.unary(UnaryOp::Rsqrt)
    }

    /// `tanh self`
    #[track_caller]
    pub fn tanh(&self) -> Tensor {
        self.unary(UnaryOp::Tanh)
    }

    /// `|self|`
    #[track_caller]
    pub fn abs(&self) -> Tensor {
        self.unary(UnaryOp::Abs)
    }

    /// `max(self, 0)`
    #[track_caller]
    pub fn relu(&self) -> Tensor {
        self.max(&self.scalar_like(0.0))
    }

    /// Elementwise comparison with broadcasting; result `pred`.
    #[track_caller]
    pub fn compare(&self, dir: ComparisonDirection, other: &Tensor) -> Tensor {
        let (x, y) = self.broadcast_pair(other);
        x.op(Op::Compare(dir), &[&y])
    }

    /// `select(self, on_true, on_false)`; `self` is a pred of the branches'
    /// shape or a scalar.
    #[track_caller]
    pub fn select(&self, on_true: &Tensor, on_false: &Tensor) -> Tensor {
        self.op(Op::Select, &[on_true, on_false])
    }

    /// `clamp(lo, self, hi)`, bounds broadcast to `self`'s shape.
    #[track_caller]
    pub fn clamp(&self, lo: &Tensor, hi: &Tensor) -> Tensor {
        let d = self.dims();
        let lo = lo.broadcast_to(&d);
        let hi = hi.broadcast_to(&d);
        lo.op(Op::Clamp, &[self, &hi])
    }

    /// Converts to another element type.
    #[track_caller]
    pub fn convert(&self, ty: ElementType) -> Tensor {
        if self.element_type() == ty {
            return self.clone();
        }
        self.op(Op::Convert(ty), &[])
    }

    /// Reinterprets the bits as `ty` (same width).
    #[track_caller]
    pub fn bitcast_convert(&self, ty: ElementType) -> Tensor {
        self.op(Op::BitcastConvert(ty), &[])
    }

    /// `broadcast`: operand dimension i becomes output dimension `map[i]`.
    #[track_caller]
    pub fn broadcast_in_dim(&self, out_dims: &[i64], map: &[i64]) -> Tensor {
        self.op(
            Op::Broadcast {
                out_dims: out_dims.to_vec(),
                dims: map.to_vec(),
            },
            &[],
        )
    }

    /// Row-major reshape.
    #[track_caller]
    pub fn reshape(&self, dims: &[i64]) -> Tensor {
        if self.dims() == dims {
            return self.clone();
        }
        self.op(
            Op::Reshape {
                dims: dims.to_vec(),
            },
            &[],
        )
    }

    /// Transpose: output dimension i is input dimension `perm[i]`.
    #[track_caller]
    pub fn transpose(&self, perm: &[i64]) -> Tensor {
        self.op(
            Op::Transpose {
                perm: perm.to_vec(),
            },
            &[],
        )
    }

    /// Reverses the listed dimensions.
    #[track_caller]
    pub fn reverse(&self, dims: &[i64]) -> Tensor {
        self.op(
            Op::Reverse {
                dims: dims.to_vec(),
            },
            &[],
        )
    }

    /// Static strided slice.
    #[track_caller]
    pub fn slice(&self, start: &[i64], limit: &[i64], stride: &[i64]) -> Tensor {
        self.op(
            Op::Slice {
                start: start.to_vec(),
                limit: limit.to_vec(),
                stride: stride.to_vec(),
            },
            &[],
        )
    }

    /// `[start, limit)` of dimension `dim`, all of the others.
    #[track_caller]
    pub fn slice_dim(&self, dim: usize, start: i64, limit: i64) -> Tensor {
        let d = self.dims();
        let mut s = vec![0; d.len()];
        let mut l = d.clone();
        if dim < d.len() {
            s[dim] = start;
            l[dim] = limit;
        }
        self.slice(&s, &l, &vec![1; d.len()])
    }

    /// Slice of `sizes` at run-time `starts` (scalar integers).
    #[track_caller]
    pub fn dynamic_slice(&self, starts: &[&Tensor], sizes: &[i64]) -> Tensor {
        self.op(
            Op::DynamicSlice {
                sizes: sizes.to_vec(),
            },
            starts,
        )
    }

    /// Writes `update` at run-time `starts`.
    #[track_caller]
    pub fn dynamic_update_slice(&self, update: &Tensor, starts: &[&Tensor]) -> Tensor {
        let mut ops = vec![update];
        ops.extend_from_slice(starts);
        self.op(Op::DynamicUpdateSlice, &ops)
    }

    /// Concatenates `self` and `others` along `dim`.
    #[track_caller]
    pub fn concat(&self, others: &[&Tensor], dim: i64) -> Tensor {
        self.op(Op::Concatenate { dim }, others)
    }

    /// Pads with the scalar `value`.
    #[track_caller]
    pub fn pad(&self, value: &Tensor, dims: &[PadDim]) -> Tensor {
        self.op(
            Op::Pad {
                dims: dims.to_vec(),
            },
            &[value],
        )
    }

    /// General dot product.
    #[track_caller]
    pub fn dot_general(&self, other: &Tensor, dims: DotDims) -> Tensor {
        self.op(Op::Dot(dims), &[other])
    }

    /// Matrix product of `[m,k]` and `[k,n]`.
    #[track_caller]
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        self.dot_general(other, DotDims::matmul())
    }

    /// General convolution with `kernel`.
    #[track_caller]
    pub fn conv_general(
        &self,
        kernel: &Tensor,
        window: Window,
        dnums: ConvDims,
        feature_group_count: i64,
        batch_group_count: i64,
    ) -> Tensor {
        self.op(
            Op::Convolution {
                window,
                dnums,
                feature_group_count,
                batch_group_count,
            },
            &[kernel],
        )
    }

    /// Reduction over `dims` with init value `init` and reducer `reducer`.
    #[track_caller]
    pub fn reduce(&self, init: &Tensor, dims: &[i64], reducer: CompId) -> Tensor {
        self.op(
            Op::Reduce {
                dims: dims.to_vec(),
                reducer,
            },
            &[init],
        )
    }

    /// Sum over `dims`.
    #[track_caller]
    pub fn sum(&self, dims: &[i64]) -> Tensor {
        let r = self.builder().reducer(BinaryOp::Add, self.element_type());
        self.reduce(&self.scalar_like(0.0), dims, r)
    }

    /// Maximum over `dims`.
    #[track_caller]
    pub fn reduce_max(&self, dims: &[i64]) -> Tensor {
        let r = self
            .builder()
            .reducer(BinaryOp::Maximum, self.element_type());
        self.reduce(&self.scalar_like(f64::NEG_INFINITY), dims, r)
    }

    /// Mean over `dims`.
    #[track_caller]
    pub fn mean(&self, dims: &[i64]) -> Tensor {
        let d = self.dims();
        let n: i64 = dims.iter().filter_map(|&k| d.get(k as usize)).product();
        self.sum(dims).mul_scalar(1.0 / n.max(1) as f64)
    }

    /// Sum over all dimensions (a scalar).
    #[track_caller]
    pub fn sum_all(&self) -> Tensor {
        let all: Vec<i64> = (0..self.rank() as i64).collect();
        self.sum(&all)
    }

    /// Windowed reduction (pooling).
    #[track_caller]
    pub fn reduce_window(&self, init: &Tensor, window: Window, reducer: CompId) -> Tensor {
        self.op(Op::ReduceWindow { window, reducer }, &[init])
    }

    /// Scatters `source` into the positions `select` picks per window.
    #[track_caller]
    pub fn select_and_scatter(
        &self,
        source: &Tensor,
        init: &Tensor,
        window: Window,
        select: CompId,
        scatter: CompId,
    ) -> Tensor {
        self.op(
            Op::SelectAndScatter {
                window,
                select,
                scatter,
            },
            &[source, init],
        )
    }

    /// Cross-replica concatenation along `dim`.
    #[track_caller]
    pub fn all_gather(&self, dim: i64, groups: ReplicaGroups) -> Tensor {
        self.op(Op::AllGather { dim, groups }, &[])
    }

    /// Cross-replica sum, split along `dim` (replica r keeps block r).
    #[track_caller]
    pub fn reduce_scatter_sum(&self, dim: i64, groups: ReplicaGroups) -> Tensor {
        let reducer = self.builder().reducer(BinaryOp::Add, self.element_type());
        self.op(
            Op::ReduceScatter {
                dim,
                groups,
                reducer,
            },
            &[],
        )
    }

    /// `rng-bit-generator` on this `u64[2]` state: `(new_state, bits)` tuple.
    #[track_caller]
    pub fn rng_bit_generator(&self, algorithm: RngAlgorithm, shape: Shape) -> Tensor {
        self.op(Op::RngBitGenerator { algorithm, shape }, &[])
    }

    /// Element `index` of a tuple.
    #[track_caller]
    pub fn get_tuple_element(&self, index: usize) -> Tensor {
        self.op(Op::GetTupleElement { index }, &[])
    }
}

macro_rules! binary_operator {
    ($trait:ident, $method:ident, $call:ident) => {
        impl ops::$trait<&Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                Tensor::$call(self, rhs)
            }
        }
        impl ops::$trait<Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                Tensor::$call(&self, &rhs)
            }
        }
        impl ops::$trait<&Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                Tensor::$call(&self, rhs)
            }
        }
        impl ops::$trait<Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                Tensor::$call(self, &rhs)
            }
        }
        impl ops::$trait<f64> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: f64) -> Tensor {
                Tensor::$call(self, &self.scalar_like(rhs))
            }
        }
        impl ops::$trait<f64> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: f64) -> Tensor {
                Tensor::$call(&self, &self.scalar_like(rhs))
            }
        }
    };
}

binary_operator!(Add, add, add);
binary_operator!(Sub, sub, sub);
binary_operator!(Mul, mul, mul);
binary_operator!(Div, div, div);

impl ops::Neg for &Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        Tensor::neg(self)
    }
}

impl ops::Neg for Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        Tensor::neg(&self)
    }
}
