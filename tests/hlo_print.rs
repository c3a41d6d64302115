//! The HLO text printer against text XLA itself printed.
//!
//! `tests/xla_text/*.txt` are modules XLA printed (`xla_dump_to`, before
//! optimization; `*.after.txt` after) for the checks of the HLO spec. Each
//! test builds the same module (with the `Tensor` API, or as a proto by hand
//! for what the IR cannot express) and compares our text with XLA's.
//!
//! Normalization, where a test says "modulo names": XLA's examples were
//! built by another tracer whose instruction, computation and module names
//! differ (`%p0.2` vs `%parameter.2`, `%max` vs `%maximum_f32`, `ENTRY
//! %main` vs `ENTRY %<module>`). [`canon_module`] renames every defined
//! name to `n<k>` in order of first appearance, so structure, order,
//! shapes and attributes must still match exactly. Where the IR cannot
//! build all of an example (no `cbrt`, no comparison `type=`, no
//! `operand_precision`…), [`assert_lines_in`] checks that each of our
//! instruction lines occurs in XLA's text with operand names replaced by
//! `%_`. Metadata is not printed in those comparisons (XLA's examples have
//! none), and tested on its own.
//!
//! With `SIMCLR_HLO_DUMP=<dir>` set, every module built here is also
//! written to `<dir>` as `.hlo` and `.pb`, so that `tools/hlo_check/run
//! <dir>` has XLA parse and print them all.

use simclr::ir::{
    from_proto_bytes, golden, to_text, BinaryOp, Builder, ComparisonDirection, ConvDims, DotDims,
    ElementType, Literal, LiteralData, Module, Op, PadDim, PrintOptions, ReplicaGroups,
    RngAlgorithm, Shape, Type, UnaryOp, Window, WindowDim,
};
use simclr::proto;
use std::collections::{HashMap, HashSet};

fn example(name: &str) -> String {
    let path = format!("{}/tests/xla_text/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn f32s(dims: &[i64]) -> Shape {
    Shape::new(ElementType::F32, dims)
}

fn scalar(ty: ElementType) -> Type {
    Type::Array(Shape::scalar(ty))
}

/// Our text without metadata (XLA's examples carry none); also dumped for
/// the XLA check when `SIMCLR_HLO_DUMP` is set.
fn plain(name: &str, m: &Module) -> String {
    if let Ok(dir) = std::env::var("SIMCLR_HLO_DUMP") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("create dump dir");
        let text = golden::golden_text(m).expect("printable");
        let bytes = prost::Message::encode_to_vec(&golden::golden_proto(m));
        std::fs::write(dir.join(format!("{name}.hlo")), text).expect("write dump");
        std::fs::write(dir.join(format!("{name}.pb")), bytes).expect("write dump");
    }
    m.to_text_with(&PrintOptions {
        metadata: false,
        ..PrintOptions::default()
    })
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-'
}

/// Renames module, computation and instruction names to `n<k>` in order of
/// first appearance (see the module doc).
fn canon_module(text: &str) -> String {
    let mut names = HashSet::new();
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("HloModule ") {
            let end = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
            lines.push(format!("HloModule M{}", &rest[end..]));
            continue;
        }
        let body = line
            .trim_start()
            .trim_start_matches("ROOT ")
            .trim_start_matches("ENTRY ");
        if let Some(rest) = body.strip_prefix('%') {
            let end = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
            names.insert(rest[..end].to_string());
        }
        lines.push(line.to_string());
    }
    let mut map: HashMap<String, String> = HashMap::new();
    let mut out = String::new();
    for line in lines {
        let mut token = String::new();
        // A name is a token after `%`, or a parameter name before `:` in a
        // signature; other tokens (opcodes like `add`) stay.
        let flush = |token: &mut String,
                     next: char,
                     out: &mut String,
                     map: &mut HashMap<String, String>| {
            if names.contains(token.as_str()) && (out.ends_with('%') || next == ':') {
                let n = map.len();
                out.push_str(map.entry(token.clone()).or_insert_with(|| format!("n{n}")));
            } else {
                out.push_str(token);
            }
            token.clear();
        };
        for c in line.chars() {
            if is_name_char(c) {
                token.push(c);
            } else {
                flush(&mut token, c, &mut out, &mut map);
                out.push(c);
            }
        }
        flush(&mut token, '\n', &mut out, &mut map);
        out.push('\n');
    }
    out.trim_end().to_string()
}

/// An instruction line with its own and its operands' names replaced by `%_`.
fn canon_line(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.trim().chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            out.push('_');
            while chars.peek().is_some_and(|&c| is_name_char(c)) {
                chars.next();
            }
        }
    }
    out.trim_start_matches("ROOT ").to_string()
}

/// Every instruction line of `ours` (except `parameter`, `tuple` and those
/// in `skip`) occurs in `xla`, modulo names.
fn assert_lines_in(ours: &str, xla: &str, skip: &[&str]) {
    let theirs: HashSet<String> = xla
        .lines()
        .filter(|l| l.starts_with("  "))
        .map(canon_line)
        .collect();
    let mut missing = Vec::new();
    for line in ours.lines().filter(|l| l.starts_with("  ")) {
        let c = canon_line(line);
        if c.contains(" parameter(") || c.contains(" tuple(") || skip.iter().any(|s| c.contains(s))
        {
            continue;
        }
        if !theirs.contains(&c) {
            let opcode = c.split(' ').nth(3).unwrap_or("");
            let similar: Vec<&String> = theirs.iter().filter(|t| t.contains(opcode)).collect();
            missing.push(format!("  ours: {c}\n  XLA has: {similar:#?}"));
        }
    }
    assert!(
        missing.is_empty(),
        "lines XLA does not print the same way:\n{}\n--- our text:\n{ours}",
        missing.join("\n")
    );
}

fn assert_same_modulo_names(ours: &str, xla: &str) {
    let (a, b) = (canon_module(ours), canon_module(xla));
    if a != b {
        let diff: Vec<String> = a
            .lines()
            .zip(b.lines())
            .enumerate()
            .filter(|(_, (x, y))| x != y)
            .map(|(k, (x, y))| format!("line {}:\n  ours: {x}\n  XLA:  {y}", k + 1))
            .collect();
        panic!(
            "text differs from XLA's modulo names ({} vs {} lines):\n{}\n--- ours:\n{ours}\n--- XLA:\n{xla}",
            a.lines().count(),
            b.lines().count(),
            diff.join("\n")
        );
    }
}

#[test]
fn maxpool_and_grad_prints_as_xla_modulo_names() {
    let m = golden::maxpool_and_grad().expect("builds");
    assert_same_modulo_names(&plain("maxpool_and_grad", &m), &example("maxpool_and_grad"));
}

#[test]
fn shape_ops_print_as_xla_modulo_names() {
    let b = Builder::new("shape_ops", 1);
    let p0 = b.parameter("p0", f32s(&[2, 3, 4]));
    let p1 = b.parameter("p1", f32s(&[3]));
    let p2 = b.parameter("p2", Shape::scalar(ElementType::S32));
    let bc = p1.broadcast_in_dim(&[2, 3, 4], &[1]);
    let rs = p0.reshape(&[6, 4]);
    let tr = p0.transpose(&[2, 0, 1]);
    let sl = p0.slice(&[0, 1, 0], &[2, 3, 4], &[1, 1, 2]);
    let zero = b.scalar(ElementType::S32, 0.0);
    let ds = p0.dynamic_slice(&[&p2, &zero, &p2], &[1, 3, 2]);
    let upd = b.constant_f32(&[1, 1, 2], &[100.0, 100.0]);
    let dus = p0.dynamic_update_slice(&upd, &[&p2, &p2, &zero]);
    let cat = p0.concat(&[&p0], 2);
    let pad_value = b.scalar(ElementType::F32, -9.0);
    let pad = p0.pad(
        &pad_value,
        &[
            PadDim {
                lo: 1,
                hi: 0,
                interior: 0,
            },
            PadDim {
                lo: 0,
                hi: 2,
                interior: 1,
            },
            PadDim {
                lo: -1,
                hi: 1,
                interior: 0,
            },
        ],
    );
    let iota = b.iota(Shape::new(ElementType::S32, [3, 4]), 1);
    let rev = p0.reverse(&[0, 2]);
    let m = b
        .build(&[&bc, &rs, &tr, &sl, &ds, &dus, &cat, &pad, &iota, &rev])
        .expect("builds");
    assert_same_modulo_names(&plain("shape_ops", &m), &example("shape_ops"));
}

#[test]
fn conv_and_its_gradients_print_as_xla_modulo_names() {
    // NHWC, 3×3 stride 2 pad 1: forward, input gradient with a reverse op,
    // weight gradient (HLO.md §8.1).
    let b = Builder::new("conv_NHWC_s2_p11_revop", 1);
    let x = b.parameter("x", f32s(&[2, 7, 7, 3]));
    let w = b.parameter("w", f32s(&[3, 3, 3, 4]));
    let dy = b.parameter("dy", f32s(&[2, 4, 4, 4]));
    let labels = |s: &str| ConvDims::from_labels(s).expect("labels");
    let fwd = Window::new(vec![WindowDim::new(3).stride(2).pad(1, 1); 2]);
    let y = x.conv_general(&w, fwd, ConvDims::nhwc(), 1, 1);
    let rev = w.reverse(&[0, 1]);
    let dx_win = Window::new(vec![WindowDim::new(3).pad(1, 1).base_dilation(2); 2]);
    let dx = dy.conv_general(&rev, dx_win, labels("b01f_01oi->b01f"), 1, 1);
    let dw_win = Window::new(vec![WindowDim::new(4).pad(1, 1).window_dilation(2); 2]);
    let dw = x.conv_general(&dy, dw_win, labels("f01b_i01o->01bf"), 1, 1);
    let m = b.build(&[&y, &dx, &dw]).expect("builds");
    assert_same_modulo_names(&plain("conv_nhwc", &m), &example("conv_NHWC_s2_p11_revop"));
}

#[test]
fn conv_with_window_reversal_prints_as_xla_modulo_names() {
    let b = Builder::new("conv_NCHW_s2_p11_revwindow_reversal", 1);
    let x = b.parameter("x", f32s(&[2, 3, 7, 7]));
    let w = b.parameter("w", f32s(&[4, 3, 3, 3]));
    let dy = b.parameter("dy", f32s(&[2, 4, 4, 4]));
    let labels = |s: &str| ConvDims::from_labels(s).expect("labels");
    let fwd = Window::new(vec![WindowDim::new(3).stride(2).pad(1, 1); 2]);
    let y = x.conv_general(&w, fwd, labels("bf01_oi01->bf01"), 1, 1);
    let mut d = WindowDim::new(3).pad(1, 1).base_dilation(2);
    d.reversal = true;
    let dx = dy.conv_general(&w, Window::new(vec![d; 2]), labels("bf01_io01->bf01"), 1, 1);
    let dw_win = Window::new(vec![WindowDim::new(4).pad(1, 1).window_dilation(2); 2]);
    let dw = x.conv_general(&dy, dw_win, labels("fb01_io01->fb01"), 1, 1);
    let m = b.build(&[&y, &dx, &dw]).expect("builds");
    assert_same_modulo_names(
        &plain("conv_reversal", &m),
        &example("conv_NCHW_s2_p11_revwindow_reversal"),
    );
}

#[test]
fn formatting_of_pads_groups_and_literals_matches_xla() {
    let b = Builder::new("formatting", 1);
    let x = b.parameter("x", f32s(&[2, 4, 6, 6]));
    let w = b.parameter("w", f32s(&[4, 1, 3, 3]));
    let zero = b.scalar(ElementType::F32, 0.0);
    let pad = x.pad(
        &zero,
        &[
            PadDim::edge(0, 0),
            PadDim::edge(0, 0),
            PadDim::edge(1, 2),
            PadDim::edge(1, 0),
        ],
    );
    let win = Window::new(vec![WindowDim::new(3).pad(1, 1); 2]);
    let depthwise = x.conv_general(
        &w,
        win,
        ConvDims::from_labels("bf01_oi01->bf01").expect("labels"),
        4,
        1,
    );
    let floats = b.constant_f32(&[6], &[1e-5, 0.1, 1.0 / 3.0, 3e38, -0.0, 123456.79]);
    let big = b.constant_f32(&[10, 10], &[0.5; 100]);
    let longs =
        b.constant(Literal::new([2], LiteralData::S64(vec![1 << 40, -5])).expect("literal"));
    let special = b.constant_f32(&[2], &[f32::NAN, f32::INFINITY]);
    let m = b
        .build(&[&pad, &depthwise, &floats, &big, &longs, &special])
        .expect("builds");
    assert_same_modulo_names(&plain("formatting", &m), &example("formatting"));
}

#[test]
fn reduce_and_variadic_argmax_print_as_xla_modulo_names() {
    let b = Builder::new("reduce_sum_and_argmax", 1);
    let add = b.reducer(BinaryOp::Add, ElementType::F32);
    let (f, s) = (scalar(ElementType::F32), scalar(ElementType::S32));
    let argmax = b.computation("argmax", &[f.clone(), s.clone(), f, s], |p| {
        let gt = p[0].compare(ComparisonDirection::Gt, &p[2]);
        let eq = p[0].compare(ComparisonDirection::Eq, &p[2]);
        let lt = p[1].compare(ComparisonDirection::Lt, &p[3]);
        let keep = gt.binary(BinaryOp::Or, &eq.binary(BinaryOp::And, &lt));
        let v = keep.select(&p[0], &p[2]);
        let i = keep.select(&p[1], &p[3]);
        v.op(Op::Tuple, &[&i])
    });
    let x = b.parameter("x", f32s(&[4, 3, 5]));
    let sum = x.reduce(&x.scalar_like(0.0), &[0, 2], add);
    let y = b.parameter("y", f32s(&[4, 6]));
    let iota = b.iota(Shape::new(ElementType::S32, [4, 6]), 1);
    let init_v = b.scalar(ElementType::F32, f64::NEG_INFINITY);
    let init_i = b.scalar(ElementType::S32, -1.0);
    let r = y.op(
        Op::Reduce {
            dims: vec![1],
            reducer: argmax,
        },
        &[&iota, &init_v, &init_i],
    );
    let m = b
        .build(&[&sum, &r.get_tuple_element(0), &r.get_tuple_element(1)])
        .expect("builds");
    assert_same_modulo_names(&plain("argmax", &m), &example("reduce_sum_and_argmax"));
}

#[test]
fn elementwise_ops_print_as_xla() {
    let b = Builder::new("elementwise", 1);
    let x = b.parameter("x", f32s(&[2, 5]));
    let y = b.parameter("y", f32s(&[2, 5]));
    let mut outs = Vec::new();
    for u in UnaryOp::ALL {
        if u != UnaryOp::Not {
            outs.push(x.unary(u));
        }
    }
    for op in BinaryOp::ALL {
        if op.opcode().contains("shift")
            || matches!(op, BinaryOp::And | BinaryOp::Or | BinaryOp::Xor)
        {
            continue;
        }
        outs.push(x.binary(op, &y));
    }
    let refs: Vec<&_> = outs.iter().collect();
    let m = b.build(&refs).expect("builds");
    let text = plain("elementwise", &m);
    assert_lines_in(&text, &example("elementwise"), &[]);
    // The tuple of 32 outputs carries `/*index=N*/` every 5 elements, in
    // the shape and in the operand list alike.
    let root = text.lines().find(|l| l.contains("ROOT")).expect("root");
    assert_eq!(root.matches("/*index=").count(), 10, "{root}");
    assert!(
        root.contains("f32[2,5]{1,0}, /*index=5*/f32[2,5]{1,0}"),
        "{root}"
    );
}

#[test]
fn logical_and_shift_ops_print_their_opcodes() {
    let b = Builder::new("bits", 1);
    let x = b.parameter("x", Shape::new(ElementType::U32, [4]));
    let y = b.parameter("y", Shape::new(ElementType::U32, [4]));
    let mut outs = vec![x.unary(UnaryOp::Not)];
    for op in [
        BinaryOp::And,
        BinaryOp::Or,
        BinaryOp::Xor,
        BinaryOp::ShiftLeft,
        BinaryOp::ShiftRightLogical,
        BinaryOp::ShiftRightArithmetic,
    ] {
        outs.push(x.binary(op, &y));
    }
    let refs: Vec<&_> = outs.iter().collect();
    let text = plain("bits", &b.build(&refs).expect("builds"));
    for (opcode, id) in [
        ("not", 4),
        ("and", 5),
        ("or", 6),
        ("xor", 7),
        ("shift-left", 8),
        ("shift-right-logical", 9),
        ("shift-right-arithmetic", 10),
    ] {
        let operands = if opcode == "not" {
            "%parameter.2".to_string()
        } else {
            "%parameter.2, %parameter.3".to_string()
        };
        let want = format!(
            "  %{}.{id} = u32[4]{{0}} {opcode}({operands})",
            opcode.replace('-', "_")
        );
        assert!(
            text.lines().any(|l| l == want),
            "missing {want:?} in\n{text}"
        );
    }
}

#[test]
fn compare_select_convert_clamp_print_as_xla() {
    let b = Builder::new("compare_select_convert", 1);
    let x = b.parameter("x", f32s(&[6]));
    let y = b.parameter("y", f32s(&[6]));
    let mut outs = Vec::new();
    for d in [
        ComparisonDirection::Eq,
        ComparisonDirection::Ne,
        ComparisonDirection::Lt,
        ComparisonDirection::Le,
        ComparisonDirection::Gt,
        ComparisonDirection::Ge,
    ] {
        outs.push(x.compare(d, &y));
    }
    let gt = x.compare(ComparisonDirection::Gt, &y);
    outs.push(gt.select(&x, &y));
    outs.push(x.convert(ElementType::S32));
    outs.push(x.convert(ElementType::Bf16).convert(ElementType::F32));
    outs.push(
        x.compare(ComparisonDirection::Lt, &y)
            .convert(ElementType::F32),
    );
    outs.push(x.clamp(
        &b.scalar(ElementType::F32, -1.0),
        &b.scalar(ElementType::F32, 1.0),
    ));
    let refs: Vec<&_> = outs.iter().collect();
    let m = b.build(&refs).expect("builds");
    assert_lines_in(
        &plain("compare", &m),
        &example("compare_select_convert"),
        &[],
    );
}

#[test]
fn constants_of_every_type_print_as_xla() {
    let b = Builder::new("constants", 1);
    let lit = |dims: &[i64], data| b.constant(Literal::new(dims.to_vec(), data).expect("literal"));
    let outs = [
        b.constant_f32(&[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]),
        lit(&[2, 3], LiteralData::S32(vec![1, -2, 3, 4, 5, -6])),
        lit(&[3], LiteralData::Pred(vec![true, false, true])),
        lit(
            &[3],
            LiteralData::F16([0.5f32, -1.25, 3.0].map(simclr::ir::f32_to_f16).to_vec()),
        )
        .convert(ElementType::F32),
        lit(
            &[3],
            LiteralData::Bf16(
                [1.0f32, -2.5, 0.15625]
                    .map(simclr::ir::f32_to_bf16)
                    .to_vec(),
            ),
        )
        .convert(ElementType::F32),
        b.scalar(ElementType::F32, 2.5),
    ];
    let refs: Vec<&_> = outs.iter().collect();
    let m = b.build(&refs).expect("builds");
    assert_lines_in(&plain("constants", &m), &example("constants"), &[]);
    let text = m.to_text();
    assert!(text.contains("pred[] constant(true)") || !text.contains("pred[] constant("));
}

#[test]
fn dot_general_prints_as_xla() {
    let b = Builder::new("dot_general", 1);
    let x = b.parameter("x", f32s(&[2, 3, 4]));
    let y = b.parameter("y", f32s(&[2, 4, 5]));
    let z = b.parameter("z", f32s(&[6, 4]));
    let batched = x.dot_general(
        &y,
        DotDims {
            lhs_batch: vec![0],
            rhs_batch: vec![0],
            lhs_contracting: vec![2],
            rhs_contracting: vec![1],
        },
    );
    let gram = z.dot_general(
        &z,
        DotDims {
            lhs_contracting: vec![1],
            rhs_contracting: vec![1],
            ..DotDims::default()
        },
    );
    let m = b.build(&[&batched, &gram]).expect("builds");
    assert_lines_in(&plain("dot", &m), &example("dot_general"), &[]);
}

#[test]
fn collectives_print_as_xla_with_replica_count() {
    let b = Builder::new("collectives", 4);
    let x = b.parameter("x", f32s(&[4, 3]));
    let outs = [
        x.all_reduce_sum(ReplicaGroups::All),
        x.all_gather(0, ReplicaGroups::All),
        x.reduce_scatter_sum(0, ReplicaGroups::All),
        b.replica_id(),
    ];
    let refs: Vec<&_> = outs.iter().collect();
    let m = b.build(&refs).expect("builds");
    let text = plain("collectives", &m);
    assert_lines_in(&text, &example("collectives"), &[]);
    let header = text.lines().next().expect("header");
    assert!(header.ends_with("}, replica_count=4"), "{header}");
}

#[test]
fn rng_bit_generator_and_uniform_floats_print_as_xla() {
    let b = Builder::new("rng_bit_generator", 1);
    let state = b.parameter("state", Shape::new(ElementType::U64, [2]));
    let bits_shape = Shape::new(ElementType::U32, [4, 8]);
    let three_fry = state.rng_bit_generator(RngAlgorithm::ThreeFry, bits_shape.clone());
    let philox = state.rng_bit_generator(RngAlgorithm::Philox, bits_shape);
    let bits = three_fry.get_tuple_element(1);
    let nine = b
        .scalar(ElementType::U32, 9.0)
        .broadcast_in_dim(&[4, 8], &[]);
    let one_bits = b
        .scalar(ElementType::U32, 1065353216.0)
        .broadcast_in_dim(&[4, 8], &[]);
    let one = b
        .scalar(ElementType::F32, 1.0)
        .broadcast_in_dim(&[4, 8], &[]);
    let uniform = bits
        .binary(BinaryOp::ShiftRightLogical, &nine)
        .binary(BinaryOp::Or, &one_bits)
        .bitcast_convert(ElementType::F32)
        .binary(BinaryOp::Subtract, &one);
    let m = b
        .build(&[
            &three_fry.get_tuple_element(0),
            &philox.get_tuple_element(1),
            &uniform,
        ])
        .expect("builds");
    assert_lines_in(&plain("rng", &m), &example("rng_bit_generator"), &[]);
}

#[test]
fn metadata_prints_last_with_scope_and_source_position() {
    let b = Builder::new("metadata", 1);
    let x = b.parameter("x", f32s(&[4]));
    let line = line!() + 4;
    let y = {
        let _e = b.scope("encoder");
        let _b = b.scope("block1");
        x.relu()
    };
    let text = b.build(&[&y]).expect("builds").to_text();
    let root = text.lines().find(|l| l.contains("ROOT")).expect("root");
    let want = format!(
        "maximum(%parameter.2, %broadcast.4), metadata={{op_type=\"maximum\" op_name=\"encoder/block1/maximum\" source_file=\"tests/hlo_print.rs\" source_line={line}}}"
    );
    assert!(root.ends_with(&want), "{root}\nwant suffix: {want}");
    // Without source positions (as in the goldens).
    let m = b.build(&[&y]).expect("builds");
    let text = m.to_text_with(&PrintOptions {
        source_positions: false,
        ..PrintOptions::default()
    });
    assert!(text.contains("metadata={op_type=\"maximum\" op_name=\"encoder/block1/maximum\"}"));
}

// ---------------------------------------------------------------------------
// Protos built by hand, for what XLA hands back or the IR does not produce.

fn shape(ty: proto::PrimitiveType, dims: &[i64]) -> proto::ShapeProto {
    proto::ShapeProto {
        element_type: ty as i32,
        dimensions: dims.to_vec(),
        layout: Some(proto::LayoutProto {
            minor_to_major: (0..dims.len() as i64).rev().collect(),
        }),
        ..Default::default()
    }
}

fn f32p(dims: &[i64]) -> proto::ShapeProto {
    shape(proto::PrimitiveType::F32, dims)
}

fn tuple(shapes: Vec<proto::ShapeProto>) -> proto::ShapeProto {
    proto::ShapeProto {
        element_type: proto::PrimitiveType::Tuple as i32,
        tuple_shapes: shapes,
        ..Default::default()
    }
}

fn inst(
    id: i64,
    name: &str,
    opcode: &str,
    shape: proto::ShapeProto,
    operands: &[i64],
) -> proto::HloInstructionProto {
    proto::HloInstructionProto {
        id,
        name: name.into(),
        opcode: opcode.into(),
        shape: Some(shape),
        operand_ids: operands.to_vec(),
        ..Default::default()
    }
}

fn param(id: i64, name: &str, number: i64, shape: proto::ShapeProto) -> proto::HloInstructionProto {
    proto::HloInstructionProto {
        parameter_number: number,
        ..inst(id, name, "parameter", shape, &[])
    }
}

fn comp(
    id: i64,
    name: &str,
    root: i64,
    instructions: Vec<proto::HloInstructionProto>,
) -> proto::HloComputationProto {
    proto::HloComputationProto {
        id,
        name: name.into(),
        root_id: root,
        instructions,
        ..Default::default()
    }
}

fn module(
    name: &str,
    computations: Vec<proto::HloComputationProto>,
    params: Vec<proto::ShapeProto>,
    result: proto::ShapeProto,
) -> proto::HloModuleProto {
    let entry = computations.last().expect("entry");
    proto::HloModuleProto {
        name: name.into(),
        entry_computation_name: entry.name.clone(),
        entry_computation_id: entry.id,
        id: entry.id,
        host_program_shape: Some(proto::ProgramShapeProto {
            parameter_names: (0..params.len()).map(|k| format!("p{k}")).collect(),
            parameters: params,
            result: Some(result),
        }),
        computations,
        ..Default::default()
    }
}

fn attrs(kv: &[(&str, &str)]) -> Option<proto::FrontendAttributes> {
    Some(proto::FrontendAttributes {
        map: kv
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
}

fn aliasing_entry(
    names: [&str; 3],
    ops: [(&str, &str, [i64; 2]); 2],
    ids: [i64; 3],
) -> proto::HloComputationProto {
    let v = || f32p(&[4]);
    let mut i = vec![
        param(2, names[0], 0, v()),
        param(3, names[1], 1, v()),
        param(4, names[2], 2, v()),
    ];
    i.push(inst(ids[0], ops[0].0, ops[0].1, v(), &ops[0].2));
    i.push(inst(ids[1], ops[1].0, ops[1].1, v(), &ops[1].2));
    i.push(inst(
        ids[2],
        "tuple",
        "tuple",
        tuple(vec![v(), v()]),
        &[ids[0], ids[1]],
    ));
    comp(1, "main", ids[2], i)
}

#[test]
fn module_header_prints_aliasing_donors_and_frontend_attributes_as_xla() {
    let mut entry = aliasing_entry(
        ["p0.2", "p1.3", "p2.4"],
        [("subtract.5", "subtract", [2, 3]), ("add.6", "add", [4, 3])],
        [5, 6, 7],
    );
    entry.instructions[5].name = "tuple.7".into();
    let mut m = module(
        "aliasing",
        vec![entry],
        vec![f32p(&[4]), f32p(&[4]), f32p(&[4])],
        tuple(vec![f32p(&[4]), f32p(&[4])]),
    );
    m.input_output_alias = Some(proto::HloInputOutputAliasProto {
        entries: vec![proto::hlo_input_output_alias_proto::AliasEntryProto {
            output_shape_index: vec![0],
            parameter_number: 0,
            parameter_shape_index: vec![],
            kind: proto::Kind::MayAlias as i32,
        }],
    });
    m.buffer_donor = Some(proto::HloBufferDonorProto {
        entries: vec![proto::hlo_buffer_donor_proto::BufferDonorEntryProto {
            parameter_number: 2,
            parameter_shape_index: vec![],
        }],
    });
    m.frontend_attributes = attrs(&[("step", "train")]);
    let text = to_text(&m).expect("prints");
    assert_eq!(text.trim_end(), example("aliasing").trim_end());
}

#[test]
fn optimized_module_with_fusions_prints_as_xla() {
    // aliasing.after.txt: what XLA hands back after optimization, with
    // kLoop fusions calling fused computations and a schedule.
    let fused = |id: i64, name: &str, opcode: &str, suffix: &str| {
        let (a, b) = (format!("param_0{suffix}"), format!("param_1{suffix}"));
        comp(
            id,
            name,
            id + 3,
            vec![
                param(id + 1, &a, 0, f32p(&[4])),
                param(id + 2, &b, 1, f32p(&[4])),
                inst(
                    id + 3,
                    &format!("{opcode}.0"),
                    opcode,
                    f32p(&[4]),
                    &[id + 1, id + 2],
                ),
            ],
        )
    };
    let mut entry = aliasing_entry(
        ["p0.2", "p1.3", "p2.4"],
        [
            ("wrapped_subtract", "fusion", [2, 3]),
            ("wrapped_add", "fusion", [4, 3]),
        ],
        [5, 6, 7],
    );
    entry.id = 100;
    for (k, callee) in [(3, 10), (4, 20)] {
        entry.instructions[k].fusion_kind = "kLoop".into();
        entry.instructions[k].called_computation_ids = vec![callee];
    }
    let mut m = module(
        "aliasing",
        vec![
            fused(10, "wrapped_subtract_computation", "subtract", ""),
            fused(20, "wrapped_add_computation", "add", ".1"),
            entry,
        ],
        vec![f32p(&[4]), f32p(&[4]), f32p(&[4])],
        tuple(vec![f32p(&[4]), f32p(&[4])]),
    );
    m.input_output_alias = Some(proto::HloInputOutputAliasProto {
        entries: [(1, 2), (0, 0)]
            .iter()
            .map(
                |&(o, p)| proto::hlo_input_output_alias_proto::AliasEntryProto {
                    output_shape_index: vec![o],
                    parameter_number: p,
                    parameter_shape_index: vec![],
                    kind: proto::Kind::MayAlias as i32,
                },
            )
            .collect(),
    });
    m.frontend_attributes = attrs(&[("step", "train")]);
    // Unscheduled, XLA's post order puts `%p2.4` after the first fusion;
    // with the schedule XLA handed back, the order is the schedule's.
    let unscheduled = to_text(&m).expect("prints");
    assert!(unscheduled.contains(
        "%wrapped_subtract = f32[4]{0} fusion(%p0.2, %p1.3), kind=kLoop, calls=%wrapped_subtract_computation\n  %p2.4"
    ), "{unscheduled}");
    let seq = |ids: &[i64]| proto::hlo_schedule_proto::InstructionSequence {
        instruction_ids: ids.to_vec(),
    };
    m.schedule = Some(proto::HloScheduleProto {
        sequences: [
            (10, seq(&[11, 12, 13])),
            (20, seq(&[21, 22, 23])),
            (100, seq(&[2, 3, 4, 5, 6, 7])),
        ]
        .into_iter()
        .collect(),
    });
    let text = to_text(&m).expect("prints");
    assert_eq!(
        text,
        example("aliasing.after").trim_end().to_string() + "\n\n"
    );

    // Round trip through bytes prints the same.
    let again = to_text(&from_proto_bytes(&prost::Message::encode_to_vec(&m)).expect("decodes"))
        .expect("prints");
    assert_eq!(text, again);
}

#[test]
fn while_backend_config_and_frontend_attributes_print_as_xla() {
    // Lines of while_call_sort.after.txt.
    let st = || tuple(vec![shape(proto::PrimitiveType::S32, &[]), f32p(&[3])]);
    let cond = comp(
        1,
        "cond",
        3,
        vec![
            param(2, "p0.2", 0, st()),
            inst(
                3,
                "c",
                "constant",
                shape(proto::PrimitiveType::Pred, &[]),
                &[],
            ),
        ],
    );
    let body = comp(4, "body", 5, vec![param(5, "p0.7", 0, st())]);
    let while_comp = comp(
        6,
        "while.25_computation",
        8,
        vec![
            param(7, "tuple.3", 0, st()),
            proto::HloInstructionProto {
                called_computation_ids: vec![4, 1],
                backend_config: br#"{"known_trip_count":{"n":"5"},"known_init_step":{"init":"0","step":"1"},"known_induction_variable":{"tuple_index":"0"}}"#.to_vec(),
                ..inst(8, "while.0", "while", st(), &[7])
            },
        ],
    );
    let entry = comp(
        9,
        "main",
        11,
        vec![
            param(10, "tuple", 0, st()),
            proto::HloInstructionProto {
                called_computation_ids: vec![6],
                frontend_attributes: attrs(&[("xla_cpu_small_call", "true")]),
                ..inst(11, "call", "call", st(), &[10])
            },
        ],
    );
    let m = module("w", vec![cond, body, while_comp, entry], vec![st()], st());
    let text = to_text(&m).expect("prints");
    let xla = example("while_call_sort.after");
    for want in [
        "  ROOT %while.0 = (s32[], f32[3]{0}) while(%tuple.3), condition=%cond, body=%body, backend_config={\"known_trip_count\":{\"n\":\"5\"},\"known_init_step\":{\"init\":\"0\",\"step\":\"1\"},\"known_induction_variable\":{\"tuple_index\":\"0\"}}",
        "%while.25_computation (tuple.3: (s32[], f32[3])) -> (s32[], f32[3]) {",
    ] {
        assert!(xla.contains(want), "test expectation not in XLA's text: {want}");
        assert!(text.contains(want), "missing {want}\nin:\n{text}");
    }
    assert!(text.contains(
        "ROOT %call = (s32[], f32[3]{0}) call(%tuple), to_apply=%while.25_computation, frontend_attributes={xla_cpu_small_call=\"true\"}"
    ), "{text}");
    // Callees first: cond and body before the while computation, entry last.
    let order: Vec<&str> = text
        .lines()
        .filter(|l| l.ends_with('{') && !l.starts_with("HloModule"))
        .map(|l| l.split(' ').find(|w| w.starts_with('%')).unwrap_or(""))
        .collect();
    assert_eq!(order, ["%body", "%cond", "%while.25_computation", "%main"]);
}

#[test]
fn names_are_sanitized_as_xla_does() {
    let s = || shape(proto::PrimitiveType::F32, &[]);
    let m23 = || f32p(&[2, 3]);
    let add = comp(
        1,
        "add_f32",
        4,
        vec![
            param(2, "enc/block 1/op-2", 0, s()),
            param(3, "enc/block 1/op-3", 1, s()),
            inst(4, "enc/block 1/op-4", "add", s(), &[2, 3]),
        ],
    );
    let entry = comp(
        5,
        "main",
        10,
        vec![
            param(6, "enc/block 1/op-6", 0, m23()),
            param(7, "enc/block 1/op-7", 1, m23()),
            inst(8, "enc/block 1/op-8", "add", m23(), &[6, 7]),
            proto::HloInstructionProto {
                literal: Some(proto::LiteralProto {
                    shape: Some(s()),
                    f32s: vec![0.0],
                    ..Default::default()
                }),
                ..inst(9, "enc/block 1/op-9", "constant", s(), &[])
            },
            proto::HloInstructionProto {
                dimensions: vec![1],
                called_computation_ids: vec![1],
                ..inst(10, "enc/block 1/op-10", "reduce", f32p(&[2]), &[8, 9])
            },
        ],
    );
    let m = module(
        "odd names/module",
        vec![add, entry],
        vec![m23(), m23()],
        f32p(&[2]),
    );
    assert_eq!(
        to_text(&m).expect("prints").trim_end(),
        example("odd_names").trim_end()
    );
}

#[test]
fn attributes_of_ops_the_ir_lacks_print_as_xla() {
    let p = || f32p(&[8, 4]);
    let entry = comp(
        1,
        "main",
        4,
        vec![
            param(2, "p0.2", 0, p()),
            proto::HloInstructionProto {
                exponent_bits: 8,
                mantissa_bits: 7,
                ..inst(3, "reduce_precision.4", "reduce-precision", p(), &[2])
            },
            proto::HloInstructionProto {
                comparison_direction: "LT".into(),
                comparison_type: "TOTALORDER".into(),
                ..inst(
                    4,
                    "compare.10",
                    "compare",
                    shape(proto::PrimitiveType::Pred, &[8, 4]),
                    &[3, 2],
                )
            },
        ],
    );
    let text = to_text(&module("misc", vec![entry], vec![p()], p())).expect("prints");
    assert!(
        text.contains("reduce-precision(%p0.2), exponent_bits=8, mantissa_bits=7"),
        "{text}"
    );
    assert!(
        text.contains("compare(%reduce_precision.4, %p0.2), direction=LT, type=TOTALORDER"),
        "{text}"
    );
}

#[test]
fn unknown_opcodes_and_odd_fields_do_not_panic() {
    let s = || f32p(&[3]);
    let mut weird = inst(3, "thing", "some-future-op", s(), &[2]);
    weird.dimensions = vec![0];
    weird.channel_id = 7;
    weird.backend_config = b"not json \"quoted\"".to_vec();
    weird.control_predecessor_ids = vec![2];
    let mut no_layout = f32p(&[3]);
    no_layout.layout = None;
    no_layout.element_type = 29; // f8e3m4, not in the proto subset's enum
    let entry = comp(
        1,
        "main",
        4,
        vec![
            param(2, "x", 0, s()),
            weird,
            inst(4, "bits", "bitcast", no_layout, &[3]),
            inst(5, "big", "constant", f32p(&[100]), &[]),
            inst(6, "custom", "custom-call", s(), &[2]),
        ],
    );
    let text = to_text(&module("weird", vec![entry], vec![s()], s())).expect("prints");
    assert!(text.contains("some-future-op(%x), channel_id=7, dimensions={0}, control-predecessors={%x}, backend_config=\"not json \\\"quoted\\\"\""), "{text}");
    assert!(
        text.contains("ROOT %bits = f8e3m4[3] bitcast(%thing)"),
        "{text}"
    );
    assert!(
        text.contains("%big = f32[100]{0} constant({...})"),
        "{text}"
    );
    assert!(
        text.contains("custom-call(%x), custom_call_target=\"\""),
        "{text}"
    );
}

#[test]
fn broken_protos_are_errors_not_panics() {
    let s = || f32p(&[3]);
    let dangling = comp(
        1,
        "main",
        3,
        vec![param(2, "x", 0, s()), inst(3, "y", "negate", s(), &[99])],
    );
    assert!(to_text(&module("m", vec![dangling], vec![s()], s())).is_err());
    let no_root = comp(1, "main", 42, vec![param(2, "x", 0, s())]);
    assert!(to_text(&module("m", vec![no_root], vec![s()], s())).is_err());
    let mut bad_call = inst(3, "y", "call", s(), &[2]);
    bad_call.called_computation_ids = vec![77];
    let c = comp(1, "main", 3, vec![param(2, "x", 0, s()), bad_call]);
    assert!(to_text(&module("m", vec![c], vec![s()], s())).is_err());
    assert!(from_proto_bytes(&[0xff, 0xff, 0xff]).is_err());
    let empty = proto::HloModuleProto::default();
    assert!(to_text(&empty).is_err());
}

/// `tests/xla_text/optimized/`: the modules of these tests and the goldens,
/// compiled for CPU by jaxlib's XLA; `<name>.pb` is the optimized
/// HloModuleProto it handed back and `<name>.txt` XLA's own text of it
/// (fusions, `kind=kLoop`, `calls=`, schedules, XLA's names). Regenerate with
/// `rm -rf /tmp/d && SIMCLR_HLO_DUMP=/tmp/d cargo test --test hlo hlo_print:: &&
/// cp hlo/*.pb /tmp/d && tools/hlo_check/run --optimize /tmp/d tests/xla_text/optimized`.
#[test]
fn optimized_modules_from_xla_print_exactly_as_xla() {
    let dir = format!("{}/tests/xla_text/optimized", env!("CARGO_MANIFEST_DIR"));
    let mut pbs: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pb"))
        .collect();
    pbs.sort();
    assert!(pbs.len() >= 10, "expected the optimized fixtures in {dir}");
    for pb in pbs {
        let bytes = std::fs::read(&pb).expect("read");
        let module = from_proto_bytes(&bytes).expect("decodes");
        let ours = to_text(&module).expect("prints");
        let xla = std::fs::read_to_string(pb.with_extension("txt")).expect("XLA's text");
        if ours != xla {
            let first = ours
                .lines()
                .zip(xla.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(ours.lines().count().min(xla.lines().count()));
            panic!(
                "{}: first difference at line {}:\n  ours: {}\n  XLA:  {}",
                pb.display(),
                first + 1,
                ours.lines().nth(first).unwrap_or("<end>"),
                xla.lines().nth(first).unwrap_or("<end>")
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Whole XLA examples rebuilt as protos with XLA's names and ids: the text
// must be identical, byte for byte. Ids are the names' numeric suffixes.

/// A shape from its text without layout (`f32[4,3]`, `pred[]`,
/// `(f32[4], s32[])`); arrays get row-major layouts.
fn sh(s: &str) -> proto::ShapeProto {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        let mut parts = Vec::new();
        let (mut depth, mut start) = (0, 0);
        for (k, c) in inner.char_indices() {
            match c {
                '(' | '[' => depth += 1,
                ')' | ']' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(sh(&inner[start..k]));
                    start = k + 1;
                }
                _ => {}
            }
        }
        if !inner.trim().is_empty() {
            parts.push(sh(&inner[start..]));
        }
        return tuple(parts);
    }
    let (ty, dims) = s.split_once('[').expect("shape");
    let dims: Vec<i64> = dims
        .trim_end_matches(']')
        .split(',')
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().expect("dim"))
        .collect();
    let ty = match ty {
        "pred" => proto::PrimitiveType::Pred,
        "s32" => proto::PrimitiveType::S32,
        "u32" => proto::PrimitiveType::U32,
        "u64" => proto::PrimitiveType::U64,
        "f32" => proto::PrimitiveType::F32,
        other => panic!("type {other}"),
    };
    shape(ty, &dims)
}

fn id_of(name: &str) -> i64 {
    name.rsplit('.')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("numbered name")
}

fn ins(name: &str, opcode: &str, shape: &str, operands: &[&str]) -> proto::HloInstructionProto {
    let ids: Vec<i64> = operands.iter().map(|o| id_of(o)).collect();
    inst(id_of(name), name, opcode, sh(shape), &ids)
}

fn par(name: &str, number: i64, shape: &str) -> proto::HloInstructionProto {
    param(id_of(name), name, number, sh(shape))
}

fn cst(name: &str, shape: &str, f32s: Vec<f32>, s32s: Vec<i32>) -> proto::HloInstructionProto {
    let mut i = ins(name, "constant", shape, &[]);
    i.literal = Some(proto::LiteralProto {
        shape: i.shape.clone(),
        f32s,
        s32s,
        ..Default::default()
    });
    i
}

fn called(mut i: proto::HloInstructionProto, comps: &[i64]) -> proto::HloInstructionProto {
    i.called_computation_ids = comps.to_vec();
    i
}

/// A module whose last computation is the entry; the host program shape is
/// taken from the entry's parameters and root.
fn module_of(name: &str, computations: Vec<proto::HloComputationProto>) -> proto::HloModuleProto {
    let entry = computations.last().expect("entry");
    let mut params: Vec<&proto::HloInstructionProto> = entry
        .instructions
        .iter()
        .filter(|i| i.opcode == "parameter")
        .collect();
    params.sort_by_key(|p| p.parameter_number);
    let root = entry
        .instructions
        .iter()
        .find(|i| i.id == entry.root_id)
        .expect("root");
    module(
        name,
        computations.clone(),
        params.iter().filter_map(|p| p.shape.clone()).collect(),
        root.shape.clone().expect("shape"),
    )
}

fn scalar_add(id: i64, name: &str, ids: [i64; 3], ty: &str) -> proto::HloComputationProto {
    let [a, b, c] = ids.map(|k| k.to_string());
    comp(
        id,
        name,
        ids[2],
        vec![
            par(&format!("p0.{a}"), 0, ty),
            par(&format!("p1.{b}"), 1, ty),
            ins(
                &format!("add.{c}"),
                "add",
                ty,
                &[&format!("p0.{a}"), &format!("p1.{b}")],
            ),
        ],
    )
}

/// Writes a hand-built module and our text of it for `tools/hlo_check/run`
/// when `SIMCLR_HLO_DUMP` is set.
fn dump_proto(name: &str, m: &proto::HloModuleProto, text: &str) {
    if let Ok(dir) = std::env::var("SIMCLR_HLO_DUMP") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("create dump dir");
        std::fs::write(dir.join(format!("proto_{name}.hlo")), text).expect("write");
        std::fs::write(
            dir.join(format!("proto_{name}.pb")),
            prost::Message::encode_to_vec(m),
        )
        .expect("write");
    }
}

/// Prints `m` and checks it against the XLA example `name` byte for byte;
/// dumps it for `tools/hlo_check/run` when `SIMCLR_HLO_DUMP` is set.
fn assert_prints_example(name: &str, m: &proto::HloModuleProto, replica_count: usize) {
    let opts = PrintOptions {
        replica_count,
        ..PrintOptions::default()
    };
    let text = simclr::ir::to_text_with(m, &opts).expect("prints");
    dump_proto(name, m, &text);
    let xla = example(name);
    if text.trim_end() != xla.trim_end() {
        let first = text
            .lines()
            .zip(xla.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "{name}: first difference at line {}:\n  ours: {}\n  XLA:  {}\n--- ours:\n{text}",
            first + 1,
            text.lines().nth(first).unwrap_or("<end>"),
            xla.lines().nth(first).unwrap_or("<end>")
        );
    }
}

#[test]
fn collectives_with_channels_global_ids_and_iota_groups_print_as_xla() {
    let groups = || {
        vec![proto::ReplicaGroup {
            replica_ids: vec![0, 1, 2, 3],
        }]
    };
    let mut ar7 = called(
        ins("all_reduce.7", "all-reduce", "f32[4,3]", &["p0.6"]),
        &[1],
    );
    ar7.replica_groups = groups();
    let mut ar8 = called(
        ins("all_reduce.8", "all-reduce", "f32[4,3]", &["p0.6"]),
        &[1],
    );
    ar8.replica_groups = groups();
    ar8.channel_id = 1;
    ar8.use_global_device_ids = true;
    let mut ar9 = called(
        ins("all_reduce.9", "all-reduce", "f32[4,3]", &["p0.6"]),
        &[1],
    );
    ar9.collective_device_list = Some(proto::CollectiveDeviceListProto {
        replica_groups: vec![],
        iota_replica_group_list: Some(proto::IotaReplicaGroupListProto {
            num_replica_groups: 2,
            num_devices_per_group: 2,
            iota_reshape_dims: vec![4],
            iota_transpose_perm: vec![0],
        }),
    });
    let mut ag = ins("all_gather.10", "all-gather", "f32[16,3]", &["p0.6"]);
    ag.replica_groups = groups();
    ag.dimensions = vec![0];
    let mut rs = called(
        ins("reduce_scatter.11", "reduce-scatter", "f32[1,3]", &["p0.6"]),
        &[1],
    );
    rs.replica_groups = groups();
    rs.dimensions = vec![0];
    let entry = comp(
        5,
        "main",
        13,
        vec![
            par("p0.6", 0, "f32[4,3]"),
            ar7,
            ar8,
            ar9,
            ag,
            rs,
            ins("replica_id.12", "replica-id", "u32[]", &[]),
            ins(
                "tuple.13",
                "tuple",
                "(f32[4,3], f32[4,3], f32[4,3], f32[16,3], f32[1,3], u32[])",
                &[
                    "all_reduce.7",
                    "all_reduce.8",
                    "all_reduce.9",
                    "all_gather.10",
                    "reduce_scatter.11",
                    "replica_id.12",
                ],
            ),
        ],
    );
    let m = module_of(
        "collectives",
        vec![scalar_add(1, "add_f32", [2, 3, 4], "f32[]"), entry],
    );
    assert_prints_example("collectives", &m, 4);
}

#[test]
fn gather_and_scatter_print_as_xla() {
    let mut g11 = ins("gather.11", "gather", "f32[4,3]", &["p0.6", "p1.7"]);
    g11.gather_dimension_numbers = Some(proto::GatherDimensionNumbers {
        offset_dims: vec![1],
        collapsed_slice_dims: vec![0],
        start_index_map: vec![0],
        index_vector_dim: 1,
        ..Default::default()
    });
    g11.gather_slice_sizes = vec![1, 3];
    let mut g12 = ins("gather.12", "gather", "f32[4]", &["p2.8", "p3.9"]);
    g12.gather_dimension_numbers = Some(proto::GatherDimensionNumbers {
        collapsed_slice_dims: vec![0, 1],
        start_index_map: vec![0, 1],
        index_vector_dim: 1,
        ..Default::default()
    });
    g12.gather_slice_sizes = vec![1, 1];
    let bc = ins("broadcast.14", "broadcast", "f32[5,3]", &["constant.13"]);
    let mut sc = called(
        ins(
            "scatter.15",
            "scatter",
            "f32[5,3]",
            &["broadcast.14", "p1.7", "p4.10"],
        ),
        &[1],
    );
    sc.scatter_dimension_numbers = Some(proto::ScatterDimensionNumbers {
        update_window_dims: vec![1],
        inserted_window_dims: vec![0],
        scatter_dims_to_operand_dims: vec![0],
        index_vector_dim: 1,
        ..Default::default()
    });
    let entry = comp(
        5,
        "main",
        16,
        vec![
            par("p0.6", 0, "f32[5,3]"),
            par("p1.7", 1, "s32[4]"),
            par("p2.8", 2, "f32[4,6]"),
            par("p3.9", 3, "s32[4,2]"),
            par("p4.10", 4, "f32[4,3]"),
            g11,
            g12,
            cst("constant.13", "f32[]", vec![0.0], vec![]),
            bc,
            sc,
            ins(
                "tuple.16",
                "tuple",
                "(f32[4,3], f32[4], f32[5,3])",
                &["gather.11", "gather.12", "scatter.15"],
            ),
        ],
    );
    let m = module_of(
        "gather_scatter",
        vec![scalar_add(1, "add", [2, 3, 4], "f32[]"), entry],
    );
    assert_prints_example("gather_scatter", &m, 1);
}

#[test]
fn batch_norm_ops_print_as_xla() {
    let x = "f32[4,3,5,5]";
    let triple = "(f32[4,3,5,5], f32[3], f32[3])";
    let bn = |name: &str, opcode: &str, shape: &str, ops: &[&str]| {
        let mut i = ins(name, opcode, shape, ops);
        i.epsilon = 0.001;
        i.feature_index = 1;
        i
    };
    let gte = |name: &str, shape: &str, of: &str, k: i64| {
        let mut i = ins(name, "get-tuple-element", shape, &[of]);
        i.tuple_index = k;
        i
    };
    let entry = comp(
        1,
        "main",
        15,
        vec![
            par("p0.2", 0, x),
            par("p1.3", 1, "f32[3]"),
            par("p2.4", 2, "f32[3]"),
            par("p3.5", 3, x),
            bn(
                "batch_norm_training.6",
                "batch-norm-training",
                triple,
                &["p0.2", "p1.3", "p2.4"],
            ),
            gte("get_tuple_element.7", x, "batch_norm_training.6", 0),
            gte("get_tuple_element.8", "f32[3]", "batch_norm_training.6", 1),
            gte("get_tuple_element.9", "f32[3]", "batch_norm_training.6", 2),
            bn(
                "batch_norm_inference.10",
                "batch-norm-inference",
                x,
                &[
                    "p0.2",
                    "p1.3",
                    "p2.4",
                    "get_tuple_element.8",
                    "get_tuple_element.9",
                ],
            ),
            bn(
                "batch_norm_grad.11",
                "batch-norm-grad",
                triple,
                &[
                    "p0.2",
                    "p1.3",
                    "get_tuple_element.8",
                    "get_tuple_element.9",
                    "p3.5",
                ],
            ),
            gte("get_tuple_element.12", x, "batch_norm_grad.11", 0),
            gte("get_tuple_element.13", "f32[3]", "batch_norm_grad.11", 1),
            gte("get_tuple_element.14", "f32[3]", "batch_norm_grad.11", 2),
            ins(
                "tuple.15",
                "tuple",
                "(f32[4,3,5,5], f32[3], f32[3], f32[4,3,5,5], f32[4,3,5,5], f32[3], f32[3])",
                &[
                    "get_tuple_element.7",
                    "get_tuple_element.8",
                    "get_tuple_element.9",
                    "batch_norm_inference.10",
                    "get_tuple_element.12",
                    "get_tuple_element.13",
                    "get_tuple_element.14",
                ],
            ),
        ],
    );
    assert_prints_example(
        "batch_norm_ops",
        &module_of("batch_norm_ops", vec![entry]),
        1,
    );
}

#[test]
fn while_call_and_sort_print_as_xla() {
    let st = "(s32[], f32[3])";
    let gte = |name: &str, shape: &str, of: &str, k: i64| {
        let mut i = ins(name, "get-tuple-element", shape, &[of]);
        i.tuple_index = k;
        i
    };
    let cmp = |name: &str, a: &str, b: &str| {
        let mut i = ins(name, "compare", "pred[]", &[a, b]);
        i.comparison_direction = "LT".into();
        i
    };
    let cond = comp(
        1,
        "cond",
        5,
        vec![
            par("p0.2", 0, st),
            gte("get_tuple_element.3", "s32[]", "p0.2", 0),
            cst("constant.4", "s32[]", vec![], vec![5]),
            cmp("compare.5", "get_tuple_element.3", "constant.4"),
        ],
    );
    let body = comp(
        6,
        "body",
        13,
        vec![
            par("p0.7", 0, st),
            gte("get_tuple_element.8", "s32[]", "p0.7", 0),
            gte("get_tuple_element.9", "f32[3]", "p0.7", 1),
            cst("constant.10", "s32[]", vec![], vec![1]),
            ins(
                "add.11",
                "add",
                "s32[]",
                &["get_tuple_element.8", "constant.10"],
            ),
            ins(
                "add.12",
                "add",
                "f32[3]",
                &["get_tuple_element.9", "get_tuple_element.9"],
            ),
            ins("tuple.13", "tuple", st, &["add.11", "add.12"]),
        ],
    );
    let square = comp(
        14,
        "square",
        16,
        vec![
            par("p0.15", 0, "f32[3]"),
            ins("multiply.16", "multiply", "f32[3]", &["p0.15", "p0.15"]),
        ],
    );
    let lt = comp(
        17,
        "lt",
        20,
        vec![
            par("p0.18", 0, "f32[]"),
            par("p1.19", 1, "f32[]"),
            cmp("compare.20", "p0.18", "p1.19"),
        ],
    );
    let mut sort = called(ins("sort.28", "sort", "f32[3]", &["p0.22"]), &[17]);
    sort.dimensions = vec![0];
    sort.is_stable = true;
    let entry = comp(
        21,
        "main",
        29,
        vec![
            par("p0.22", 0, "f32[3]"),
            cst("constant.23", "s32[]", vec![], vec![0]),
            ins("tuple.24", "tuple", st, &["constant.23", "p0.22"]),
            called(ins("while.25", "while", st, &["tuple.24"]), &[6, 1]),
            gte("get_tuple_element.26", "f32[3]", "while.25", 1),
            called(ins("call.27", "call", "f32[3]", &["p0.22"]), &[14]),
            sort,
            ins(
                "tuple.29",
                "tuple",
                "(f32[3], f32[3], f32[3])",
                &["get_tuple_element.26", "call.27", "sort.28"],
            ),
        ],
    );
    let m = module_of("while_call_sort", vec![cond, body, square, lt, entry]);
    assert_prints_example("while_call_sort", &m, 1);
}

#[test]
fn dot_precision_and_rng_distribution_print_as_xla() {
    let dot = |name: &str, shape: &str, ops: &[&str], batch: bool, precision: bool| {
        let mut i = ins(name, "dot", shape, ops);
        i.dot_dimension_numbers = Some(if batch {
            proto::DotDimensionNumbers {
                lhs_contracting_dimensions: vec![2],
                rhs_contracting_dimensions: vec![1],
                lhs_batch_dimensions: vec![0],
                rhs_batch_dimensions: vec![0],
            }
        } else {
            proto::DotDimensionNumbers {
                lhs_contracting_dimensions: vec![1],
                rhs_contracting_dimensions: vec![1],
                ..Default::default()
            }
        });
        if precision {
            i.precision_config = Some(proto::PrecisionConfig {
                operand_precision: vec![2, 2],
            });
        }
        i
    };
    let entry = comp(
        1,
        "main",
        8,
        vec![
            par("p0.2", 0, "f32[2,3,4]"),
            par("p1.3", 1, "f32[2,4,5]"),
            par("p2.4", 2, "f32[6,4]"),
            dot("dot.5", "f32[2,3,5]", &["p0.2", "p1.3"], true, false),
            dot("dot.6", "f32[6,6]", &["p2.4", "p2.4"], false, false),
            dot("dot.7", "f32[6,6]", &["p2.4", "p2.4"], false, true),
            ins(
                "tuple.8",
                "tuple",
                "(f32[2,3,5], f32[6,6], f32[6,6])",
                &["dot.5", "dot.6", "dot.7"],
            ),
        ],
    );
    assert_prints_example("dot_general", &module_of("dot_general", vec![entry]), 1);

    let mut rng = ins("rng.4", "rng", "f32[3,2]", &["constant.2", "constant.3"]);
    rng.distribution = proto::RandomDistribution::RngUniform as i32;
    let entry = comp(
        1,
        "main",
        4,
        vec![
            cst("constant.2", "f32[]", vec![0.0], vec![]),
            cst("constant.3", "f32[]", vec![1.0], vec![]),
            rng,
        ],
    );
    assert_prints_example("rng_ops", &module_of("rng_ops", vec![entry]), 1);
}

#[test]
fn frontend_attributes_and_metadata_print_as_xla() {
    let mut relu = ins("relu.1", "maximum", "f32[4]", &["p0.2", "broadcast.4"]);
    relu.frontend_attributes = attrs(&[("layer", "block1")]);
    relu.metadata = Some(proto::OpMetadata {
        op_type: "relu".into(),
        op_name: "encoder/block1/relu".into(),
        source_file: "model.rs".into(),
        source_line: 42,
    });
    let entry = comp(
        100,
        "main",
        1,
        vec![
            par("p0.2", 0, "f32[4]"),
            cst("constant.3", "f32[]", vec![0.0], vec![]),
            ins("broadcast.4", "broadcast", "f32[4]", &["constant.3"]),
            relu,
        ],
    );
    assert_prints_example(
        "metadata_and_attrs",
        &module_of("metadata_and_attrs", vec![entry]),
        1,
    );
}

#[test]
fn literals_of_every_rank_and_type_print_as_xla() {
    // Expected strings are what XLA (jaxlib 0.6.2) printed for these
    // constants, checked with `SIMCLR_HLO_DUMP` + `tools/hlo_check/run`.
    let b = Builder::new("literals", 1);
    let lit = |dims: &[i64], data| b.constant(Literal::new(dims.to_vec(), data).expect("literal"));
    let cases: Vec<(simclr::ir::Tensor, &str)> = vec![
        (lit(&[2, 1], LiteralData::F32(vec![0.5, -2.0])), "f32[2,1]{1,0} constant({ {0.5}, {-2} })"),
        (
            lit(&[1, 2, 1, 2], LiteralData::S32(vec![1, 2, 3, 4])),
            "s32[1,2,1,2]{3,2,1,0} constant({ { /*i0=0*/ { /*i1=0*/ { 1, 2 } }, { /*i1=1*/ { 3, 4 } } } })",
        ),
        (
            lit(&[2, 2, 2], LiteralData::U8(vec![0, 1, 2, 3, 4, 5, 6, 255])),
            "u8[2,2,2]{2,1,0} constant({ { { 0, 1 }, { 2, 3 } }, { { 4, 5 }, { 6, 255 } } })",
        ),
        (
            lit(&[3], LiteralData::F64(vec![0.1, 1.0 / 3.0, 1e100])),
            "f64[3]{0} constant({0.1, 0.33333333333333331, 1e+100})",
        ),
        (
            lit(&[2], LiteralData::F16([0.1f32, 65504.0].map(simclr::ir::f32_to_f16).to_vec())),
            "f16[2]{0} constant({0.099976, 65504})",
        ),
        (
            lit(&[2], LiteralData::Bf16([0.1f32, 3.0e38].map(simclr::ir::f32_to_bf16).to_vec())),
            "bf16[2]{0} constant({0.1001, 3.004e+38})",
        ),
        (lit(&[], LiteralData::Pred(vec![true])), "pred[] constant(true)"),
        (lit(&[], LiteralData::U64(vec![u64::MAX])), "u64[] constant(18446744073709551615)"),
        (lit(&[0], LiteralData::F32(vec![])), "f32[0]{0} constant({})"),
        (lit(&[], LiteralData::F32(vec![1.234_567_8])), "f32[] constant(1.23456776)"),
    ];
    let outs: Vec<&simclr::ir::Tensor> = cases.iter().map(|(t, _)| t).collect();
    let m = b.build(&outs).expect("builds");
    let text = plain("literals", &m);
    for (_, want) in &cases {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
}

#[test]
fn donated_parameters_print_as_input_output_alias() {
    let b = Builder::new("donation", 1);
    let w = b.parameter("w", f32s(&[4]));
    let g = b.parameter("g", f32s(&[4]));
    let step = b.parameter("step", Shape::scalar(ElementType::S32));
    let new_w = &w - &(&g * 0.1);
    let new_step = &step + &b.scalar(ElementType::S32, 1.0);
    b.alias(0, 0);
    b.alias(1, 2);
    let m = b.build(&[&new_w, &new_step]).expect("builds");
    let text = plain("donation", &m);
    let header = text.lines().next().expect("header");
    assert_eq!(
        header,
        "HloModule donation, input_output_alias={ {0}: (0, {}, may-alias), {1}: (2, {}, may-alias) }, entry_computation_layout={(f32[4]{0}, f32[4]{0}, s32[])->(f32[4]{0}, s32[])}"
    );
    assert!(text.contains("%constant.5 = f32[] constant(0.1)"), "{text}");
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    fn golden_bytes() -> Vec<Vec<u8>> {
        golden::programs()
            .into_iter()
            .map(|(_, build)| {
                prost::Message::encode_to_vec(&golden::golden_proto(&build().expect("builds")))
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Corrupted proto bytes either fail to decode, print, or are
        /// reported as malformed; the printer never panics.
        #[test]
        fn on_corrupted_protos(which in 0usize..4, flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
            let mut bytes = golden_bytes()[which].clone();
            for (at, value) in flips {
                let k = at.index(bytes.len());
                bytes[k] = value;
            }
            if let Ok(m) = from_proto_bytes(&bytes) {
                let _ = to_text(&m);
            }
        }
    }
}

#[test]
fn shardings_and_reduce_precision_print_as_xla() {
    let mut negate = ins("negate.3", "negate", "f32[8,4]", &["p0.2"]);
    negate.sharding = Some(proto::OpSharding::default());
    let mut rp = ins(
        "reduce_precision.4",
        "reduce-precision",
        "f32[8,4]",
        &["negate.3"],
    );
    rp.exponent_bits = 8;
    rp.mantissa_bits = 7;
    let entry = comp(
        1,
        "main",
        5,
        vec![
            par("p0.2", 0, "f32[8,4]"),
            negate,
            rp,
            ins(
                "tuple.5",
                "tuple",
                "(f32[8,4], f32[8,4])",
                &["negate.3", "reduce_precision.4"],
            ),
        ],
    );
    assert_prints_example("misc_attrs", &module_of("misc_attrs", vec![entry]), 1);
}

#[test]
fn tiled_maximal_and_tuple_shardings_print_in_xla_syntax() {
    let tiled = proto::OpSharding {
        r#type: proto::op_sharding::Type::Other as i32,
        tile_assignment_dimensions: vec![2, 1],
        tile_assignment_devices: vec![1, 0],
        ..Default::default()
    };
    let iota = proto::OpSharding {
        r#type: proto::op_sharding::Type::Other as i32,
        tile_assignment_dimensions: vec![2, 1, 2],
        iota_reshape_dims: vec![2, 2],
        iota_transpose_perm: vec![1, 0],
        replicate_on_last_tile_dim: true,
        ..Default::default()
    };
    let maximal = proto::OpSharding {
        r#type: proto::op_sharding::Type::Maximal as i32,
        tile_assignment_devices: vec![3],
        ..Default::default()
    };
    let mut a = ins("a.2", "negate", "f32[4,2]", &["p.1"]);
    a.sharding = Some(tiled);
    let mut b = ins("b.3", "negate", "f32[4,2]", &["p.1"]);
    b.sharding = Some(iota);
    let mut t = ins("t.4", "tuple", "(f32[4,2], f32[4,2])", &["a.2", "b.3"]);
    t.sharding = Some(proto::OpSharding {
        r#type: proto::op_sharding::Type::Tuple as i32,
        tuple_shardings: vec![maximal, proto::OpSharding::default()],
        ..Default::default()
    });
    let entry = comp(10, "main", 4, vec![par("p.1", 0, "f32[4,2]"), a, b, t]);
    let m = module_of("shardings", vec![entry]);
    let text = to_text(&m).expect("prints");
    dump_proto("shardings", &m, &text);
    for want in [
        "negate(%p.1), sharding={devices=[2,1]1,0}",
        "negate(%p.1), sharding={devices=[2,1,2]<=[2,2]T(1,0) last_tile_dim_replicate}",
        "tuple(%a.2, %b.3), sharding={{maximal device=3}, {replicated}}",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
}
