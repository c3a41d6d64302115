//! Typed attributes of HLO instructions: windows, padding, dimension
//! numbers, replica groups, comparison directions. Each knows its XLA text
//! spelling and its proto form.

use crate::proto;

/// One spatial (or, for `reduce-window`, any) dimension of a window.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WindowDim {
    /// Window extent (kernel size).
    pub size: i64,
    /// Stride (≥ 1).
    pub stride: i64,
    /// Padding before the first element (may be negative).
    pub pad_lo: i64,
    /// Padding after the last element (may be negative).
    pub pad_hi: i64,
    /// Dilation of the window (`rhs_dilate`), ≥ 1.
    pub window_dilation: i64,
    /// Dilation of the base (`lhs_dilate`), ≥ 1.
    pub base_dilation: i64,
    /// Whether the window is reversed (`rhs_reversal`).
    pub reversal: bool,
}

impl WindowDim {
    /// A window dimension of `size` with stride 1, no padding, no dilation.
    pub fn new(size: i64) -> WindowDim {
        WindowDim {
            size,
            stride: 1,
            pad_lo: 0,
            pad_hi: 0,
            window_dilation: 1,
            base_dilation: 1,
            reversal: false,
        }
    }

    /// Sets the stride.
    pub fn stride(mut self, s: i64) -> WindowDim {
        self.stride = s;
        self
    }

    /// Sets the padding.
    pub fn pad(mut self, lo: i64, hi: i64) -> WindowDim {
        self.pad_lo = lo;
        self.pad_hi = hi;
        self
    }

    /// Sets the window (kernel) dilation.
    pub fn window_dilation(mut self, d: i64) -> WindowDim {
        self.window_dilation = d;
        self
    }

    /// Sets the base (input) dilation.
    pub fn base_dilation(mut self, d: i64) -> WindowDim {
        self.base_dilation = d;
        self
    }

    /// Output extent over an input of extent `n`, or `None` if the window does not fit.
    pub fn output_size(&self, n: i64) -> Option<i64> {
        if self.stride < 1 || self.window_dilation < 1 || self.base_dilation < 1 || self.size < 1 {
            return None;
        }
        let base = if n == 0 {
            0
        } else {
            (n - 1) * self.base_dilation + 1
        };
        let padded = base + self.pad_lo + self.pad_hi;
        let eff_window = (self.size - 1) * self.window_dilation + 1;
        if padded < eff_window {
            return if padded >= 0 { Some(0) } else { None };
        }
        Some((padded - eff_window) / self.stride + 1)
    }
}

/// A window: one [`WindowDim`] per windowed dimension.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Window {
    /// The dimensions, in order.
    pub dims: Vec<WindowDim>,
}

impl Window {
    /// A window from its dimensions.
    pub fn new(dims: Vec<WindowDim>) -> Window {
        Window { dims }
    }

    /// XLA's text: `size=3x3 stride=2x2 pad=1_1x1_1 lhs_dilate=… rhs_dilate=… rhs_reversal=…`,
    /// default-valued parts omitted.
    pub fn to_text(&self) -> String {
        let join = |f: &dyn Fn(&WindowDim) -> String| -> String {
            self.dims.iter().map(f).collect::<Vec<_>>().join("x")
        };
        let mut parts = vec![format!("size={}", join(&|d| d.size.to_string()))];
        if self.dims.iter().any(|d| d.stride != 1) {
            parts.push(format!("stride={}", join(&|d| d.stride.to_string())));
        }
        if self.dims.iter().any(|d| d.pad_lo != 0 || d.pad_hi != 0) {
            parts.push(format!(
                "pad={}",
                join(&|d| format!("{}_{}", d.pad_lo, d.pad_hi))
            ));
        }
        if self.dims.iter().any(|d| d.base_dilation != 1) {
            parts.push(format!(
                "lhs_dilate={}",
                join(&|d| d.base_dilation.to_string())
            ));
        }
        if self.dims.iter().any(|d| d.window_dilation != 1) {
            parts.push(format!(
                "rhs_dilate={}",
                join(&|d| d.window_dilation.to_string())
            ));
        }
        if self.dims.iter().any(|d| d.reversal) {
            parts.push(format!(
                "rhs_reversal={}",
                join(&|d| u8::from(d.reversal).to_string())
            ));
        }
        parts.join(" ")
    }

    /// The `Window` proto (strides and dilations always explicit).
    pub fn to_proto(&self) -> proto::Window {
        proto::Window {
            dimensions: self
                .dims
                .iter()
                .map(|d| proto::WindowDimension {
                    size: d.size,
                    stride: d.stride,
                    padding_low: d.pad_lo,
                    padding_high: d.pad_hi,
                    window_dilation: d.window_dilation,
                    base_dilation: d.base_dilation,
                    window_reversal: d.reversal,
                })
                .collect(),
        }
    }

    /// Decodes a `Window` proto (zero strides/dilations read as 1).
    pub fn from_proto(p: &proto::Window) -> Window {
        Window {
            dims: p
                .dimensions
                .iter()
                .map(|d| WindowDim {
                    size: d.size,
                    stride: d.stride.max(1),
                    pad_lo: d.padding_low,
                    pad_hi: d.padding_high,
                    window_dilation: d.window_dilation.max(1),
                    base_dilation: d.base_dilation.max(1),
                    reversal: d.window_reversal,
                })
                .collect(),
        }
    }
}

/// Convolution dimension numbers: which operand dimension plays which role.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConvDims {
    /// Batch dimension of the input.
    pub input_batch: i64,
    /// Feature dimension of the input.
    pub input_feature: i64,
    /// Spatial dimensions of the input, in spatial order.
    pub input_spatial: Vec<i64>,
    /// Input-feature dimension of the kernel.
    pub kernel_input_feature: i64,
    /// Output-feature dimension of the kernel.
    pub kernel_output_feature: i64,
    /// Spatial dimensions of the kernel.
    pub kernel_spatial: Vec<i64>,
    /// Batch dimension of the output.
    pub output_batch: i64,
    /// Feature dimension of the output.
    pub output_feature: i64,
    /// Spatial dimensions of the output.
    pub output_spatial: Vec<i64>,
}

impl ConvDims {
    /// NHWC activations, HWIO kernel: `b01f_01io->b01f` (TF's layout).
    pub fn nhwc() -> ConvDims {
        ConvDims::from_labels("b01f_01io->b01f").unwrap_or_else(|| unreachable!())
    }

    /// Parses XLA's `dim_labels` spelling, e.g. `bf01_oi01->bf01`.
    pub fn from_labels(labels: &str) -> Option<ConvDims> {
        let (lhs_rhs, out) = labels.split_once("->")?;
        let (lhs, rhs) = lhs_rhs.split_once('_')?;
        let n = lhs.len();
        if rhs.len() != n || out.len() != n || n < 2 {
            return None;
        }
        let find = |s: &str, c: char| s.find(c).map(|i| i as i64);
        let spatial = |s: &str| -> Option<Vec<i64>> {
            (0..n - 2)
                .map(|k| find(s, char::from_digit(k as u32, 10)?))
                .collect()
        };
        Some(ConvDims {
            input_batch: find(lhs, 'b')?,
            input_feature: find(lhs, 'f')?,
            input_spatial: spatial(lhs)?,
            kernel_input_feature: find(rhs, 'i')?,
            kernel_output_feature: find(rhs, 'o')?,
            kernel_spatial: spatial(rhs)?,
            output_batch: find(out, 'b')?,
            output_feature: find(out, 'f')?,
            output_spatial: spatial(out)?,
        })
    }

    /// XLA's `dim_labels` spelling.
    pub fn to_labels(&self) -> String {
        let n = self.input_spatial.len() + 2;
        let render = |a: (i64, char), b: (i64, char), sp: &[i64]| -> String {
            let mut v = vec!['?'; n];
            let mut put = |i: i64, c: char| {
                if let Some(slot) = usize::try_from(i).ok().and_then(|i| v.get_mut(i)) {
                    *slot = c;
                }
            };
            put(a.0, a.1);
            put(b.0, b.1);
            for (k, &d) in sp.iter().enumerate() {
                put(d, char::from_digit(k as u32, 10).unwrap_or('?'));
            }
            v.into_iter().collect()
        };
        format!(
            "{}_{}->{}",
            render(
                (self.input_batch, 'b'),
                (self.input_feature, 'f'),
                &self.input_spatial
            ),
            render(
                (self.kernel_output_feature, 'o'),
                (self.kernel_input_feature, 'i'),
                &self.kernel_spatial
            ),
            render(
                (self.output_batch, 'b'),
                (self.output_feature, 'f'),
                &self.output_spatial
            ),
        )
    }

    /// The proto form.
    pub fn to_proto(&self) -> proto::ConvolutionDimensionNumbers {
        proto::ConvolutionDimensionNumbers {
            kernel_input_feature_dimension: self.kernel_input_feature,
            kernel_output_feature_dimension: self.kernel_output_feature,
            kernel_spatial_dimensions: self.kernel_spatial.clone(),
            input_batch_dimension: self.input_batch,
            input_feature_dimension: self.input_feature,
            output_batch_dimension: self.output_batch,
            output_feature_dimension: self.output_feature,
            input_spatial_dimensions: self.input_spatial.clone(),
            output_spatial_dimensions: self.output_spatial.clone(),
        }
    }

    /// Decodes the proto form.
    pub fn from_proto(p: &proto::ConvolutionDimensionNumbers) -> ConvDims {
        ConvDims {
            input_batch: p.input_batch_dimension,
            input_feature: p.input_feature_dimension,
            input_spatial: p.input_spatial_dimensions.clone(),
            kernel_input_feature: p.kernel_input_feature_dimension,
            kernel_output_feature: p.kernel_output_feature_dimension,
            kernel_spatial: p.kernel_spatial_dimensions.clone(),
            output_batch: p.output_batch_dimension,
            output_feature: p.output_feature_dimension,
            output_spatial: p.output_spatial_dimensions.clone(),
        }
    }
}

/// Dot (general matrix product) dimension numbers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct DotDims {
    /// Contracting dimensions of the left operand.
    pub lhs_contracting: Vec<i64>,
    /// Contracting dimensions of the right operand.
    pub rhs_contracting: Vec<i64>,
    /// Batch dimensions of the left operand.
    pub lhs_batch: Vec<i64>,
    /// Batch dimensions of the right operand.
    pub rhs_batch: Vec<i64>,
}

impl DotDims {
    /// A plain matrix product `[m,k]·[k,n]`.
    pub fn matmul() -> DotDims {
        DotDims {
            lhs_contracting: vec![1],
            rhs_contracting: vec![0],
            ..Default::default()
        }
    }

    /// The proto form.
    pub fn to_proto(&self) -> proto::DotDimensionNumbers {
        proto::DotDimensionNumbers {
            lhs_contracting_dimensions: self.lhs_contracting.clone(),
            rhs_contracting_dimensions: self.rhs_contracting.clone(),
            lhs_batch_dimensions: self.lhs_batch.clone(),
            rhs_batch_dimensions: self.rhs_batch.clone(),
        }
    }
}

/// Padding of one dimension for `pad`: low and high edges (negative crops)
/// and interior padding between elements (≥ 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PadDim {
    /// Elements added before the first (negative removes).
    pub lo: i64,
    /// Elements added after the last (negative removes).
    pub hi: i64,
    /// Elements added between neighbours.
    pub interior: i64,
}

impl PadDim {
    /// Edge padding only.
    pub fn edge(lo: i64, hi: i64) -> PadDim {
        PadDim {
            lo,
            hi,
            interior: 0,
        }
    }
}

/// Which replicas take part in a collective, in groups.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReplicaGroups {
    /// One group of all replicas (printed as the explicit full group).
    All,
    /// Explicit groups of replica ids; together they must cover every replica exactly once.
    Groups(Vec<Vec<i64>>),
}

impl ReplicaGroups {
    /// The explicit groups for `num_replicas` replicas.
    pub fn groups(&self, num_replicas: usize) -> Vec<Vec<i64>> {
        match self {
            ReplicaGroups::All => vec![(0..num_replicas as i64).collect()],
            ReplicaGroups::Groups(g) => g.clone(),
        }
    }

    /// Size of each group (the first group's size).
    pub fn group_size(&self, num_replicas: usize) -> usize {
        self.groups(num_replicas).first().map_or(0, |g| g.len())
    }

    /// Checks that the groups partition `0..num_replicas` into groups of equal size.
    pub fn validate(&self, num_replicas: usize) -> Result<(), String> {
        let groups = self.groups(num_replicas);
        let mut seen = vec![false; num_replicas];
        let size = groups.first().map_or(0, |g| g.len());
        for g in &groups {
            if g.len() != size || g.is_empty() {
                return Err(format!(
                    "replica groups {groups:?} do not all have the same non-zero size"
                ));
            }
            for &r in g {
                let ok = usize::try_from(r).ok().filter(|&r| r < num_replicas);
                match ok {
                    Some(r) if !seen[r] => seen[r] = true,
                    Some(_) => return Err(format!("replica {r} appears twice in {groups:?}")),
                    None => {
                        return Err(format!(
                            "replica {r} in {groups:?} is outside 0..{num_replicas}"
                        ))
                    }
                }
            }
        }
        if let Some(missing) = seen.iter().position(|s| !s) {
            return Err(format!(
                "replica groups {groups:?} do not cover replica {missing} of {num_replicas}"
            ));
        }
        Ok(())
    }

    /// XLA's text: `{{0,1},{2,3}}`.
    pub fn to_text(&self, num_replicas: usize) -> String {
        let g: Vec<String> = self
            .groups(num_replicas)
            .iter()
            .map(|g| {
                let ids: Vec<String> = g.iter().map(|r| r.to_string()).collect();
                format!("{{{}}}", ids.join(","))
            })
            .collect();
        format!("{{{}}}", g.join(","))
    }

    /// The `replica_groups` proto list.
    pub fn to_proto(&self, num_replicas: usize) -> Vec<proto::ReplicaGroup> {
        self.groups(num_replicas)
            .into_iter()
            .map(|replica_ids| proto::ReplicaGroup { replica_ids })
            .collect()
    }
}

/// Direction of a `compare`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ComparisonDirection {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl ComparisonDirection {
    /// XLA's spelling (`EQ`, `LT`, …).
    pub fn name(self) -> &'static str {
        match self {
            ComparisonDirection::Eq => "EQ",
            ComparisonDirection::Ne => "NE",
            ComparisonDirection::Lt => "LT",
            ComparisonDirection::Le => "LE",
            ComparisonDirection::Gt => "GT",
            ComparisonDirection::Ge => "GE",
        }
    }

    /// Parses XLA's spelling.
    pub fn from_name(s: &str) -> Option<ComparisonDirection> {
        Some(match s {
            "EQ" => ComparisonDirection::Eq,
            "NE" => ComparisonDirection::Ne,
            "LT" => ComparisonDirection::Lt,
            "LE" => ComparisonDirection::Le,
            "GT" => ComparisonDirection::Gt,
            "GE" => ComparisonDirection::Ge,
            _ => return None,
        })
    }
}

/// Random-bit algorithm of `rng-bit-generator`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RngAlgorithm {
    /// Threefry-2x32 (`rng_three_fry`).
    ThreeFry,
    /// Philox-4x32 (`rng_philox`).
    Philox,
}

impl RngAlgorithm {
    /// XLA's text spelling.
    pub fn name(self) -> &'static str {
        match self {
            RngAlgorithm::ThreeFry => "rng_three_fry",
            RngAlgorithm::Philox => "rng_philox",
        }
    }

    /// The proto enum value.
    pub fn to_proto(self) -> proto::RandomAlgorithm {
        match self {
            RngAlgorithm::ThreeFry => proto::RandomAlgorithm::RngThreeFry,
            RngAlgorithm::Philox => proto::RandomAlgorithm::RngPhilox,
        }
    }
}
