//! Compiling and running hand-built modules on the CPU plugin: exact
//! results, flattened tuple outputs, donation, and the optional queries
//! (optimized HLO, cost analysis, memory statistics, output shapes).

use crate::pjrt_common as common;

use common::{client, shape, tuple_shape, ModuleBuilder};
use simclr::pjrt::{
    ArrayShape, Client, ClientOptions, CompileOptions, ElementType, Error, ErrorCode, HostArray,
    Plugin, PluginKind,
};
use simclr::proto::{
    hlo_input_output_alias_proto::AliasEntryProto, DotDimensionNumbers, HloInputOutputAliasProto,
    HloInstructionProto, HloModuleProto, Kind, PrimitiveType::F32,
};

/// `(x + y, (x + y) * x)` over f32[2,3].
fn add_mul_module() -> HloModuleProto {
    let mut b = ModuleBuilder::new();
    let mut e = b.comp("main");
    let x = b.param(&mut e, 0, shape(F32, &[2, 3]));
    let y = b.param(&mut e, 1, shape(F32, &[2, 3]));
    let s = b.op(&mut e, "add", shape(F32, &[2, 3]), &[x, y]);
    let m = b.op(&mut e, "multiply", shape(F32, &[2, 3]), &[s, x]);
    let t = b.op(
        &mut e,
        "tuple",
        tuple_shape(vec![shape(F32, &[2, 3]), shape(F32, &[2, 3])]),
        &[s, m],
    );
    b.module("add_mul", e, t)
}

#[test]
fn hand_built_module_gives_exact_results_and_flattens_the_root_tuple() {
    let c = client();
    let exe = c
        .compile(&add_mul_module(), &CompileOptions::new(1))
        .expect("compile");
    assert_eq!(exe.num_replicas(), 1);
    assert_eq!(exe.num_outputs(), 2);
    assert_eq!(exe.devices()[0].id, 0);
    assert_eq!(
        exe.parameters(),
        vec![ArrayShape::new(ElementType::F32, vec![2, 3]); 2].as_slice()
    );
    let x = HostArray::from_f32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 0.5]).unwrap();
    let y = HostArray::from_f32(&[2, 3], &[10.0, 20.0, 30.0, 40.0, 50.0, 0.25]).unwrap();
    let out = exe.execute_host(&[vec![x, y]]).expect("execute");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].len(), 2);
    assert_eq!(out[0][0].dims, vec![2, 3]);
    assert_eq!(
        out[0][0].to_f32().unwrap(),
        vec![11.0, 22.0, 33.0, 44.0, 55.0, 0.75]
    );
    assert_eq!(
        out[0][1].to_f32().unwrap(),
        vec![11.0, 44.0, 99.0, 176.0, 275.0, 0.375]
    );
}

#[test]
fn device_buffers_can_be_reused_across_executions() {
    let c = client();
    let exe = c
        .compile(&add_mul_module(), &CompileOptions::new(1))
        .unwrap();
    let d0 = &exe.devices()[0];
    let x = c
        .buffer_from_host(&HostArray::from_f32(&[2, 3], &[1.0; 6]).unwrap(), d0)
        .unwrap();
    let y = c
        .buffer_from_host(&HostArray::from_f32(&[2, 3], &[2.0; 6]).unwrap(), d0)
        .unwrap();
    for _ in 0..3 {
        let out = exe.execute(&[vec![&x, &y]]).unwrap();
        assert_eq!(
            out[0][1].shape(),
            &ArrayShape::new(ElementType::F32, vec![2, 3])
        );
        assert_eq!(out[0][1].to_host().unwrap().to_f32().unwrap(), vec![3.0; 6]);
    }
    // Outputs feed the next execution.
    let out = exe.execute(&[vec![&x, &y]]).unwrap();
    let again = exe.execute(&[vec![&out[0][0], &out[0][1]]]).unwrap();
    assert_eq!(
        again[0][0].to_host().unwrap().to_f32().unwrap(),
        vec![6.0; 6]
    );
}

/// `p0 + p1` over f32[4] with parameter 0 aliased to the output.
fn donating_module() -> HloModuleProto {
    let mut b = ModuleBuilder::new();
    let mut e = b.comp("main");
    let x = b.param(&mut e, 0, shape(F32, &[4]));
    let y = b.param(&mut e, 1, shape(F32, &[4]));
    let s = b.op(&mut e, "add", shape(F32, &[4]), &[x, y]);
    let t = b.op(&mut e, "tuple", tuple_shape(vec![shape(F32, &[4])]), &[s]);
    let mut m = b.module("donate", e, t);
    m.input_output_alias = Some(HloInputOutputAliasProto {
        entries: vec![AliasEntryProto {
            output_shape_index: vec![0],
            parameter_number: 0,
            parameter_shape_index: vec![],
            kind: Kind::MayAlias as i32,
        }],
    });
    m
}

#[test]
fn donated_parameter_is_consumed_and_reading_it_is_a_clean_error() {
    let c = client();
    let exe = c
        .compile(&donating_module(), &CompileOptions::new(1))
        .unwrap();
    assert_eq!(exe.donated_parameters(), &[true, false]);
    let d0 = &exe.devices()[0];
    let x = c
        .buffer_from_host(
            &HostArray::from_f32(&[4], &[1.0, 2.0, 3.0, 4.0]).unwrap(),
            d0,
        )
        .unwrap();
    let y = c
        .buffer_from_host(&HostArray::from_f32(&[4], &[0.5; 4]).unwrap(), d0)
        .unwrap();
    let out = exe.execute(&[vec![&x, &y]]).unwrap();
    assert_eq!(
        out[0][0].to_host().unwrap().to_f32().unwrap(),
        vec![1.5, 2.5, 3.5, 4.5]
    );
    assert!(x.is_deleted().unwrap(), "the donated input must be deleted");
    assert!(!y.is_deleted().unwrap());
    match x.to_host() {
        Err(Error::Pjrt {
            code: ErrorCode::InvalidArgument,
            message,
            ..
        }) => {
            assert!(
                message.contains("donated") || message.contains("deleted"),
                "{message}"
            )
        }
        other => panic!("reading a donated buffer gave {other:?}"),
    }
    // Passing it again is caught before the plugin sees it.
    let err = exe.execute(&[vec![&x, &y]]).unwrap_err().to_string();
    assert!(
        err.contains("replica 0, argument 0") && err.contains("donated"),
        "{err}"
    );
    let stats = exe.memory_stats().unwrap();
    assert_eq!(stats.alias_size_in_bytes, 16, "{stats:?}");
    // `x` is dropped here: destroyed exactly once although donated.
}

#[test]
fn execute_keeping_inputs_suppresses_donation() {
    let c = client();
    let exe = c
        .compile(&donating_module(), &CompileOptions::new(1))
        .unwrap();
    let d0 = &exe.devices()[0];
    let x = c
        .buffer_from_host(&HostArray::from_f32(&[4], &[1.0; 4]).unwrap(), d0)
        .unwrap();
    let y = c
        .buffer_from_host(&HostArray::from_f32(&[4], &[2.0; 4]).unwrap(), d0)
        .unwrap();
    let out = exe.execute_keeping_inputs(&[vec![&x, &y]]).unwrap();
    assert!(!x.is_deleted().unwrap());
    assert_eq!(x.to_host().unwrap().to_f32().unwrap(), vec![1.0; 4]);
    assert_eq!(out[0][0].to_host().unwrap().to_f32().unwrap(), vec![3.0; 4]);
}

#[test]
fn client_reports_platform_plugin_and_honours_cpu_device_count() {
    let c = client();
    assert_eq!(c.platform_name(), "cpu");
    assert_eq!(c.devices().len(), 4, "the CPU plugin defaults to 4 devices");
    for (i, d) in c.devices().iter().enumerate() {
        assert_eq!(
            (d.id, d.process_index, d.kind.as_str()),
            (i as i32, 0, "cpu")
        );
        assert_eq!(d.description, format!("CpuDevice(id={i})"));
    }
    let plugin = c.plugin().clone();
    assert_eq!(plugin.kind(), PluginKind::Cpu);
    assert_eq!(plugin.api_version().0, 0);
    assert!(plugin.api_version().1 >= 81);
    assert!(
        plugin.attribute("xla_version").is_some(),
        "{:?}",
        plugin.attributes()
    );
    // Loading the same path again returns the same plugin.
    assert!(std::sync::Arc::ptr_eq(
        &plugin,
        &Plugin::load(plugin.path()).unwrap()
    ));
    let two = Client::new(
        plugin,
        &ClientOptions {
            cpu_device_count: Some(2),
            ..Default::default()
        },
    )
    .expect("client with 2 devices");
    assert_eq!(two.devices().len(), 2);
}

/// `tanh(dot(a f32[64,128], b f32[128,32]))`.
fn dot_tanh_module() -> HloModuleProto {
    let mut b = ModuleBuilder::new();
    let mut e = b.comp("main");
    let a = b.param(&mut e, 0, shape(F32, &[64, 128]));
    let w = b.param(&mut e, 1, shape(F32, &[128, 32]));
    let d = b.push(
        &mut e,
        HloInstructionProto {
            opcode: "dot".into(),
            shape: Some(shape(F32, &[64, 32])),
            operand_ids: vec![a, w],
            dot_dimension_numbers: Some(DotDimensionNumbers {
                lhs_contracting_dimensions: vec![1],
                rhs_contracting_dimensions: vec![0],
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    let t = b.op(&mut e, "tanh", shape(F32, &[64, 32]), &[d]);
    b.module("dot_tanh", e, t)
}

#[test]
fn optimized_hlo_cost_analysis_and_memory_stats_are_read() {
    let c = client();
    let exe = c
        .compile(&dot_tanh_module(), &CompileOptions::new(1))
        .unwrap();
    assert_eq!(exe.num_outputs(), 1, "a non-tuple root is one output");

    let optimized = exe.optimized_program().expect("optimized program");
    let module = optimized.hlo_module.expect("hlo_module");
    assert!(!module.computations.is_empty());
    assert!(module
        .computations
        .iter()
        .flat_map(|c| &c.instructions)
        .any(|i| i.opcode == "dot" || i.opcode == "fusion"));

    let cost = exe.cost_analysis().expect("cost analysis");
    let get = |n: &str| cost.iter().find(|v| v.name == n).and_then(|v| v.as_f64());
    assert_eq!(get("flops"), Some(524288.0), "{cost:?}");
    assert_eq!(get("transcendentals"), Some(2048.0), "{cost:?}");

    let stats = exe.memory_stats().expect("memory stats");
    assert_eq!(stats.argument_size_in_bytes, (64 * 128 + 128 * 32) * 4);
    assert_eq!(stats.output_size_in_bytes, 64 * 32 * 4);

    assert_eq!(
        exe.output_shapes().unwrap(),
        vec![ArrayShape::new(ElementType::F32, vec![64, 32])]
    );
    assert!(!exe.fingerprint().unwrap().is_empty());
    assert_eq!(exe.name(), "dot_tanh");
}

#[test]
fn compiler_options_reach_the_compiler() {
    let c = client();
    let opts = CompileOptions::new(1)
        .with_override("xla_cpu_enable_fast_math", false)
        .with_override("xla_backend_optimization_level", 3i64)
        .with_override(
            "xla_cpu_experimental_ynn_fusion_type",
            "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE",
        );
    let exe = c
        .compile(&add_mul_module(), &opts)
        .expect("compile with overrides");
    assert_eq!(exe.num_outputs(), 2);
    let err = c
        .compile(
            &add_mul_module(),
            &CompileOptions::new(1).with_override("xla_no_such_option", true),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("No such compile option"), "{err}");
}

#[test]
fn pred_s32_and_bf16_outputs_come_back_with_their_types() {
    use simclr::proto::PrimitiveType::{Bf16, Pred, S32};
    let mut b = ModuleBuilder::new();
    let mut e = b.comp("main");
    let x = b.param(&mut e, 0, shape(F32, &[4]));
    let y = b.param(&mut e, 1, shape(F32, &[4]));
    let lt = b.push(
        &mut e,
        HloInstructionProto {
            opcode: "compare".into(),
            shape: Some(shape(Pred, &[4])),
            operand_ids: vec![x, y],
            comparison_direction: "LT".into(),
            ..Default::default()
        },
    );
    let xi = b.op(&mut e, "convert", shape(S32, &[4]), &[x]);
    let xb = b.op(&mut e, "convert", shape(Bf16, &[4]), &[x]);
    let t = b.op(
        &mut e,
        "tuple",
        tuple_shape(vec![shape(Pred, &[4]), shape(S32, &[4]), shape(Bf16, &[4])]),
        &[lt, xi, xb],
    );
    let m = b.module("typed_outputs", e, t);
    let exe = client().compile(&m, &CompileOptions::new(1)).unwrap();
    assert_eq!(
        exe.output_shapes().unwrap(),
        vec![
            ArrayShape::new(ElementType::Pred, vec![4]),
            ArrayShape::new(ElementType::S32, vec![4]),
            ArrayShape::new(ElementType::Bf16, vec![4]),
        ]
    );
    let xs = HostArray::from_f32(&[4], &[-2.7, 0.5, 3.9, -2.5]).unwrap();
    let ys = HostArray::from_f32(&[4], &[0.0, 0.0, 4.0, -3.0]).unwrap();
    let out = exe.execute_host(&[vec![xs, ys]]).unwrap();
    assert_eq!(out[0][0].to_pred().unwrap(), vec![true, false, true, false]);
    // f32 -> s32 truncates toward zero.
    assert_eq!(out[0][1].to_s32().unwrap(), vec![-2, 0, 3, -2]);
    // f32 -> bf16 rounds to nearest even; these values are exact in bf16
    // except -2.7 and 3.9, which round.
    let bf = HostArray::from_f32_as_bf16(&[4], &[-2.7, 0.5, 3.9, -2.5]).unwrap();
    assert_eq!(
        out[0][2].to_bf16_bits().unwrap(),
        bf.to_bf16_bits().unwrap()
    );
}
