//! `simclr export_hlo` on the CPU plugin: the CIFAR ResNet-18 pretraining
//! step exports every file, its forward-convolution FLOPs equal the
//! analytic count 2·N·Ho·Wo·Cout·kh·kw·Cin taken from the convolutions'
//! shapes, and XLA's parser accepts the optimized HLO text we print; an
//! R152-3×+SK configuration far too large for memory still exports without
//! XLA and reports the memory it would need.

use simclr::cli::export_hlo::{export, human_bytes, ExportCommand};
use simclr::inspect::ExportIndex;
use simclr::ir::from_proto_bytes;
use simclr::proto::HloInstructionProto;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

fn export_with(out: &Path, data: &Path, flags: &[&str]) -> ExportIndex {
    export_logged(out, data, flags).0
}

fn export_logged(out: &Path, data: &Path, flags: &[&str]) -> (ExportIndex, String) {
    let mut args = vec![
        "--out".to_string(),
        out.display().to_string(),
        format!("--data_dir={}", data.display()),
    ];
    args.extend(flags.iter().map(|s| s.to_string()));
    let cmd = ExportCommand::parse(&args).unwrap_or_else(|e| panic!("flags {args:?}: {e}"));
    let mut log = Vec::new();
    let index = export(&cmd, &mut log).unwrap_or_else(|e| panic!("export {args:?} failed: {e:#}"));
    let log = String::from_utf8_lossy(&log).into_owned();
    eprintln!("{log}");
    (index, log)
}

/// arguments + temporaries + outputs − aliased, device and host, from the
/// `compiled` statistics of a `memory.json`.
fn xla_need(mem: &serde_json::Value) -> u64 {
    let c = &mem["compiled"];
    let f = |k: &str| {
        c[k].as_i64()
            .unwrap_or_else(|| panic!("compiled.{k} in {mem}"))
    };
    let total = f("argument_size_in_bytes")
        + f("host_argument_size_in_bytes")
        + f("temp_size_in_bytes")
        + f("host_temp_size_in_bytes")
        + f("output_size_in_bytes")
        + f("host_output_size_in_bytes")
        - f("alias_size_in_bytes")
        - f("host_alias_size_in_bytes");
    u64::try_from(total).expect("positive")
}

fn json(path: &Path) -> serde_json::Value {
    let s = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// 2·N·Ho·Wo·Cout·kh·kw·(Cin/groups) of each convolution of the entry
/// computation that is not under `gradients/`, from its shapes, by the
/// convolution's layer (its `op_name` without the last component).
fn analytic_forward_conv_flops(module_pb: &Path) -> BTreeMap<String, f64> {
    let bytes = std::fs::read(module_pb).expect("module.pb");
    let m = from_proto_bytes(&bytes).expect("decodes");
    let entry = m
        .computations
        .iter()
        .find(|c| c.id == m.entry_computation_id)
        .expect("entry");
    let by_id: HashMap<i64, &HloInstructionProto> =
        entry.instructions.iter().map(|i| (i.id, i)).collect();
    let mut flops = BTreeMap::new();
    for i in &entry.instructions {
        let op_name = i
            .metadata
            .as_ref()
            .map(|m| m.op_name.as_str())
            .unwrap_or("");
        if i.opcode != "convolution" || op_name.starts_with("gradients/") {
            continue;
        }
        let d = i.convolution_dimension_numbers.as_ref().expect("conv dims");
        let out = &i.shape.as_ref().expect("shape").dimensions;
        let lhs = &by_id[&i.operand_ids[0]]
            .shape
            .as_ref()
            .expect("lhs")
            .dimensions;
        let rhs = &by_id[&i.operand_ids[1]]
            .shape
            .as_ref()
            .expect("rhs")
            .dimensions;
        let n = out[d.output_batch_dimension as usize] as f64;
        let cout = out[d.output_feature_dimension as usize] as f64;
        let ho_wo: f64 = d
            .output_spatial_dimensions
            .iter()
            .map(|&k| out[k as usize] as f64)
            .product();
        let kh_kw: f64 = d
            .kernel_spatial_dimensions
            .iter()
            .map(|&k| rhs[k as usize] as f64)
            .product();
        let groups = i.feature_group_count.max(1) as f64;
        let cin = lhs[d.input_feature_dimension as usize] as f64 / groups;
        let layer = op_name.rsplit_once('/').map(|(l, _)| l).unwrap_or("");
        *flops.entry(layer.to_string()).or_insert(0.0) += 2.0 * n * ho_wo * cout * kh_kw * cin;
    }
    flops
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn resnet18_pretrain_export_writes_every_file_with_exact_conv_flops_and_parsable_optimized_hlo() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("export");
    let data = tmp.path().join("no-data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let (index, log) = export_logged(
        &out,
        &data,
        &[
            "--train_batch_size=8",
            "--eval_batch_size=8",
            "--image_size=32",
            "--resnet_depth=18",
            "--dataset=cifar10",
            "--num_replicas=2",
            "--proj_out_dim=32",
        ],
    );
    let names: Vec<&str> = index.programs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["pretrain", "eval"], "programs in index.json");
    assert_eq!(index.replicas, 2);
    assert_eq!(index.dataset["examples"], 50_000, "cifar10's standard size");
    let listed = json(&out.join("index.json"));
    assert_eq!(listed["programs"].as_array().map(Vec::len), Some(2));

    for p in &names {
        let dir = out.join(p);
        for f in [
            "module.hlo.txt",
            "module.pb",
            "optimized.hlo.txt",
            "optimized.pb",
            "cost.json",
            "memory.json",
            "params.tsv",
            "params.json",
        ] {
            let path = dir.join(f);
            let len = std::fs::metadata(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .len();
            assert!(len > 0, "{} is empty", path.display());
        }
        let mem = json(&dir.join("memory.json"));
        assert_eq!(mem["status"], "compiled", "{p}: {mem}");
        assert_eq!(mem["replicas"], 2);
        for k in ["argument_size_in_bytes", "peak_memory_in_bytes"] {
            assert!(
                mem["compiled"][k].as_i64().unwrap_or(0) > 0,
                "{p}: memory.json compiled.{k}: {mem}"
            );
        }
        assert!(mem["estimate"]["total_bytes"].as_u64().unwrap_or(0) > 0);
        // The headline is XLA's buffers, in memory.json, index.json and
        // the summary line alike; temporaries are part of it.
        let need = xla_need(&mem);
        assert!(
            mem["compiled"]["temp_size_in_bytes"].as_i64().unwrap_or(0) > 0,
            "{mem}"
        );
        assert_eq!(mem["per_replica_bytes"].as_u64(), Some(need), "{p}: {mem}");
        assert_eq!(mem["compiled_need"]["total_bytes"].as_u64(), Some(need));
        let entry = index.programs.iter().find(|e| e.name == *p).expect("entry");
        assert_eq!(entry.memory_bytes, need, "{p}: index.json memory_bytes");
        assert!(
            entry.memory_source.starts_with("compiled buffers"),
            "{entry:?}"
        );
        let line = log
            .lines()
            .find(|l| l.starts_with(&format!("{p} (float32): ")))
            .unwrap_or_else(|| panic!("no summary line for {p}:\n{log}"));
        let shown = format!("{} per replica (XLA buffers", human_bytes(need));
        assert!(
            line.contains(&shown),
            "{p}: summary line {line:?} lacks {shown:?}"
        );
        let text = std::fs::read_to_string(dir.join("module.hlo.txt")).expect("text");
        assert!(text.starts_with("HloModule "), "{p}: module.hlo.txt");
        assert!(text.contains("replica_count=2"), "{p}: replica count");
    }

    // Parameters: names, shapes, bytes and the optimizer rule.
    let tsv = std::fs::read_to_string(out.join("pretrain/params.tsv")).expect("tsv");
    let header = tsv.lines().next().expect("header");
    assert_eq!(
        header,
        "name\tshape\telements\tbytes\ttrainable\toptimized\trule\tslot_bytes"
    );
    let stem = tsv
        .lines()
        .find(|l| l.starts_with("base_model/conv2d/kernel\t"))
        .unwrap_or_else(|| panic!("no stem kernel in params.tsv:\n{tsv}"));
    assert!(
        stem.contains("f32[3,3,3,64]\t1728\t6912\ttrue\ttrue\tLARS + decay\t6912"),
        "{stem}"
    );
    let params = json(&out.join("pretrain/params.json"));
    assert!(params
        .as_array()
        .is_some_and(|a| a.iter().any(|r| r["rule"] == "momentum (LARS-excluded)")));

    // Forward-convolution FLOPs of the optimized module = analytic count,
    // conv layer by conv layer (XLA may rewrite a 1×1 convolution as a
    // dot; the FLOPs stay in the convolution's layer).
    for p in &names {
        let want = analytic_forward_conv_flops(&out.join(p).join("module.pb"));
        assert!(
            want.len() >= 20,
            "{p}: only {} forward convolutions",
            want.len()
        );
        let cost = json(&out.join(p).join("cost.json"));
        assert_eq!(cost["source"], "optimized", "{p}: cost.json source");
        let layers = cost["layers"].as_array().expect("layers");
        for (layer, w) in &want {
            let got = layers
                .iter()
                .find(|l| l["layer"] == layer.as_str())
                .map(|l| l["forward_flops"].as_f64().unwrap_or(0.0))
                .unwrap_or(0.0);
            assert!(
                (got - w).abs() <= 1e-9 * w,
                "{p}: {layer}: forward FLOPs {got} in cost.json, analytic 2·N·Ho·Wo·Cout·kh·kw·Cin = {w}"
            );
        }
        let want_total: f64 = want.values().sum();
        let convs: f64 = cost["by_opcode"]
            .as_array()
            .expect("by_opcode")
            .iter()
            .filter(|o| o["opcode"] == "convolution" && o["pass"] == "forward")
            .map(|o| o["flops"].as_f64().unwrap_or(0.0))
            .sum();
        assert!(
            convs <= want_total * (1.0 + 1e-9) && convs >= 0.9 * want_total,
            "{p}: forward convolution instructions have {convs} FLOPs, the forward convolutions {want_total}"
        );
        let want = want_total;
        let total = cost["totals"]["flops"].as_f64().unwrap_or(0.0);
        assert!(
            total > want,
            "{p}: total FLOPs {total} ≤ forward convs {want}"
        );
        let layers = cost["layers"].as_array().expect("layers");
        let bg2 = layers
            .iter()
            .find(|l| l["layer"] == "base_model/block_group2")
            .unwrap_or_else(|| panic!("{p}: no base_model/block_group2 layer in cost.json"));
        assert!(bg2["total"]["flops"].as_f64().unwrap_or(0.0) > 0.0);
        if *p == "pretrain" {
            assert!(bg2["backward_flops"].as_f64().unwrap_or(0.0) > 0.0, "{bg2}");
        }
    }

    // XLA's parser accepts the optimized text our printer wrote.
    let files: Vec<PathBuf> = names
        .iter()
        .map(|p| out.join(p).join("optimized.hlo.txt"))
        .collect();
    let o = Command::new(repo().join("tools/hlo_check/run"))
        .arg("--parse-only")
        .args(&files)
        .output()
        .expect("tools/hlo_check/run starts");
    assert!(
        o.status.success(),
        "XLA's parser rejects the optimized HLO:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_configuration_too_large_for_memory_exports_without_xla_and_reports_what_it_needs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("export");
    let data = tmp.path().join("no-data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let index = export_with(
        &out,
        &data,
        &[
            "--no_compile",
            "--resnet_depth=152",
            "--width_multiplier=3",
            "--sk_ratio=0.0625",
            "--image_size=224",
            "--train_batch_size=4096",
            "--dataset=imagenet2012",
            "--device_memory=tpu_v4",
        ],
    );
    assert_eq!(index.platform, None);
    assert_eq!(index.dataset["examples"], 1_281_167);
    let dir = out.join("pretrain");
    for f in [
        "module.hlo.txt",
        "module.pb",
        "cost.json",
        "memory.json",
        "params.tsv",
        "params.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    assert!(!dir.join("optimized.hlo.txt").exists());
    let mem = json(&dir.join("memory.json"));
    assert_eq!(mem["status"], "not_compiled", "{mem}");
    assert!(mem["compiled"].is_null());
    let e = &mem["estimate"];
    let gib = |k: &str| e[k].as_f64().unwrap_or(0.0) / (1u64 << 30) as f64;
    // R152-3×+SK: 795 M parameters (SimCLRv2 Table 1), f32.
    let params: f64 = json(&dir.join("params.json"))
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["trainable"] == true && !r["name"].as_str().unwrap_or("").starts_with("head"))
        .map(|r| r["elements"].as_f64().unwrap_or(0.0))
        .sum();
    assert!(
        (params / 1e6 - 795.0).abs() < 5.0,
        "backbone parameters {params}"
    );
    assert!(gib("parameter_bytes") > 2.9, "{e}");
    assert!(gib("optimizer_state_bytes") > 2.9, "{e}");
    // 2 views × 4096 images of 224² × 3 floats.
    assert_eq!(
        e["input_bytes"].as_u64(),
        Some(2 * 4096 * 224 * 224 * 3 * 4 + 4096 * 4)
    );
    assert!(gib("activation_peak_bytes") > 1000.0, "{e}");
    assert!(gib("total_bytes") > gib("activation_peak_bytes"), "{e}");
    let entry = &index.programs[0];
    assert_eq!(entry.status, "not_compiled");
    assert_eq!(mem["per_replica_bytes"], e["total_bytes"], "{mem}");
    assert_eq!(Some(entry.memory_bytes), e["total_bytes"].as_u64());
    assert!(entry.memory_source.starts_with("analytic estimate"));
    assert!(entry.memory_bytes as f64 > 1000.0 * (1u64 << 30) as f64);
    let cost = json(&dir.join("cost.json"));
    assert_eq!(cost["source"], "unoptimized");
    assert!(cost["totals"]["flops"].as_f64().unwrap_or(0.0) > 1e15);

    // A TPU v4 chip (32 GiB) cannot hold it; the analytic model says what
    // would (no compiler: nothing confirmed).
    let fit = entry.fit.as_ref().expect("fit check with --device_memory");
    assert!(!fit.fits);
    assert_eq!(fit.device.memory_bytes, 32 << 30);
    assert!(fit.confirmed.is_none());
    let b = fit.max_per_replica_batch.expect("a batch that fits");
    assert!((1..4096).contains(&b), "{fit:?}");
    assert!(fit.model.at(b) <= 32 << 30 && fit.model.at(b + 1) > 32 << 30);
    let k = fit.min_replicas.expect("replicas that fit");
    assert_eq!(4096 % k, 0);
    assert!(fit.model.at(4096 / k as i64) <= 32 << 30, "{fit:?}");
    assert!(
        fit.message
            .contains(&format!("use ≥ {k} replicas or a per-replica batch ≤ {b}")),
        "{}",
        fit.message
    );
    assert_eq!(mem["fit"]["message"].as_str(), Some(fit.message.as_str()));
}

#[test]
fn the_fit_check_says_fits_or_suggests_a_batch_that_compiles_and_fits() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("no-data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let flags = |batch: &str, device: &str| -> Vec<String> {
        vec![
            format!("--train_batch_size={batch}"),
            "--eval_batch_size=4".into(),
            "--image_size=16".into(),
            "--resnet_depth=18".into(),
            "--dataset=cifar10".into(),
            "--num_replicas=1".into(),
            "--proj_out_dim=16".into(),
            format!("--device_memory={device}"),
        ]
    };
    let run = |name: &str, f: Vec<String>| {
        let f: Vec<&str> = f.iter().map(String::as_str).collect();
        export_logged(&tmp.path().join(name), &data, &f)
    };
    let (big, log) = run("h200", flags("32", "h200"));
    let p = &big.programs[0];
    let fit = p.fit.as_ref().expect("fit");
    assert!(fit.fits, "{fit:?}");
    assert!(log.contains("pretrain: fits: needs "), "{log}");
    assert!(
        log.contains("the device h200 (--device_memory (NVIDIA H200"),
        "{log}"
    );
    assert_eq!(
        big.device.as_ref().map(|d| d.memory_bytes),
        Some(141_000_000_000)
    );

    // A device a tenth too small.
    let device = p.memory_bytes / 10 * 9;
    let (small, log) = run("small", flags("32", &device.to_string()));
    let fit = small.programs[0].fit.as_ref().expect("fit");
    assert!(!fit.fits, "{fit:?}");
    let b = fit.max_per_replica_batch.expect("suggested batch");
    assert!((1..32).contains(&b), "{fit:?}");
    let c = fit
        .confirmed
        .as_ref()
        .expect("compiled at the suggested batch");
    assert_eq!(c.per_replica_batch, b);
    assert!(c.fits && c.need_bytes <= device, "{fit:?}");
    assert!(
        log.contains(&format!("a per-replica batch ≤ {b} (compiled: ")),
        "{log}"
    );
    assert_eq!(fit.min_replicas.map(|k| 32 % k), Some(0));
}

#[test]
fn a_program_the_plugin_refuses_still_exports_with_the_estimate_and_the_reason() {
    use simclr::cli::flags::RunFlags;
    use simclr::cli::run::step_config;
    use simclr::inspect::{export_program, Target};
    use simclr::pjrt::{Client, ClientOptions, CompileOptions};
    use simclr::simclr::{eval_program, OptimizerKind};

    let args: Vec<String> = ["--resnet_depth=18", "--image_size=8", "--proj_out_dim=16"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let flags = RunFlags::parse(&args).expect("flags");
    let step = step_config(&flags, 1, 100, 10).expect("step config");
    let program = eval_program(&step, 2).expect("eval program");
    let client = Client::discover(None, false, &ClientOptions::default())
        .unwrap_or_else(|e| panic!("the CPU plugin is needed: {e}"));
    // An option XLA does not know: the plugin refuses to compile.
    let target = Target {
        client: &client,
        options: CompileOptions::new(1).with_override("xla_no_such_option", "1"),
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let entry = export_program(
        tmp.path(),
        "eval",
        &program,
        OptimizerKind::Lars,
        Some(&target),
    )
    .expect("export succeeds although compilation fails");
    assert_eq!(entry.status, "compile_failed");
    assert!(!entry.optimized);
    let dir = tmp.path().join("eval");
    assert!(dir.join("module.hlo.txt").is_file() && dir.join("params.tsv").is_file());
    assert!(!dir.join("optimized.hlo.txt").exists());
    let mem = json(&dir.join("memory.json"));
    assert_eq!(mem["status"], "compile_failed", "{mem}");
    let msg = mem["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("xla_no_such_option"),
        "the plugin's reason is kept: {msg}"
    );
    assert!(
        mem["estimate"]["total_bytes"].as_u64().unwrap_or(0) > 0,
        "{mem}"
    );
    let cost = json(&dir.join("cost.json"));
    assert_eq!(cost["source"], "unoptimized");
    assert!(entry.memory_bytes > 0);
}

/// `simclr export_hlo` of an SK model as a user runs it: stderr carries
/// none of the plugin's log lines (absl start-up, `cpu_device_count set via
/// create_options`, slow-operation alarms) unless `--verbose` asks.
#[test]
fn a_default_export_of_an_sk_model_prints_nothing_from_xla_and_verbose_does() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = |out: &str, verbose: bool| -> (String, String) {
        let mut c = Command::new(env!("CARGO_BIN_EXE_simclr"));
        c.env_remove("TF_CPP_MIN_LOG_LEVEL")
            .env_remove("SIMCLR_XLA_LOGS")
            .arg("export_hlo")
            .arg("--out")
            .arg(tmp.path().join(out))
            .args([
                "--resnet_depth=18",
                "--sk_ratio=0.0625",
                "--image_size=16",
                "--dataset=cifar10",
                "--train_batch_size=2",
                "--eval_batch_size=2",
                "--cpu_device_count=2",
                "--num_replicas=1",
                "--proj_out_dim=8",
                "--train_mode=finetune",
            ])
            .arg(format!(
                "--data_dir={}",
                tmp.path().join("no-data").display()
            ));
        if verbose {
            c.arg("--verbose");
        }
        let o = c.output().expect("simclr starts");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        );
        assert!(o.status.success(), "export_hlo failed:\n{stdout}\n{stderr}");
        (stdout, stderr)
    };
    let (stdout, stderr) = run("quiet", false);
    assert!(
        stdout.contains("finetune (float32): ") && stdout.contains("compiled"),
        "{stdout}"
    );
    for noise in [
        "slow_operation_alarm",
        "cpu_device_count set via create_options",
        "absl::InitializeLog",
        "E0000",
        "I0000",
        "W0000",
    ] {
        assert!(!stderr.contains(noise), "stderr has {noise:?}:\n{stderr}");
    }
    assert!(stderr.trim().is_empty(), "stderr is not empty:\n{stderr}");
    let (_, stderr) = run("verbose", true);
    assert!(
        stderr.contains("cpu_device_count set via create_options"),
        "--verbose lets the plugin's lines through:\n{stderr}"
    );
}

/// The `teacher/<name>` parameters of an exported module.
fn teacher_parameters(module_txt: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(module_txt).expect("module.hlo.txt");
    let mut names: Vec<String> = text
        .lines()
        .filter(|l| l.contains(" parameter("))
        .filter_map(|l| {
            let i = l.find("op_name=\"teacher/")?;
            let rest = &l[i + "op_name=\"".len()..];
            Some(rest[..rest.find('"')?].to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn the_distillation_step_exports_with_its_teacher_from_the_flags() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("no-data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let common = [
        "--no_compile",
        "--train_mode=distill",
        "--dataset=cifar10",
        "--image_size=32",
        "--resnet_depth=18",
        "--train_batch_size=16",
        "--eval_batch_size=16",
    ];
    // Self-distillation: the teacher is the student's network.
    let out = tmp.path().join("self");
    let index = export_with(&out, &data, &common);
    let names: Vec<&str> = index.programs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["distill", "eval"]);
    let same = teacher_parameters(&out.join("distill/module.hlo.txt"));
    assert!(!same.is_empty(), "no teacher/ parameters");
    assert!(
        same.iter().any(|n| n.contains("head_supervised")),
        "the teacher needs its supervised head: {same:?}"
    );
    // Big-to-small: a ResNet-34 teacher has more variables.
    let out = tmp.path().join("r34");
    let mut flags = common.to_vec();
    flags.push("--teacher_resnet_depth=34");
    export_with(&out, &data, &flags);
    let big = teacher_parameters(&out.join("distill/module.hlo.txt"));
    assert!(big.len() > same.len(), "{} vs {}", big.len(), same.len());
    // A wrong override says which flag.
    let args: Vec<String> = [
        "--out",
        &out.display().to_string(),
        "--teacher_resnet_depth=19",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(common.iter().map(|s| s.to_string()))
    .collect();
    let cmd = ExportCommand::parse(&args).expect("parses");
    let e = export(&cmd, &mut Vec::new()).expect_err("depth 19 does not exist");
    assert!(format!("{e:#}").contains("--teacher_"), "{e:#}");
}

/// The shapes (`f32[32,11]`, ...) of an exported module's parameters.
fn parameter_shapes(module_txt: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(module_txt).expect("module.hlo.txt");
    text.lines()
        .filter(|l| l.contains(" parameter("))
        .filter_map(|l| {
            let rhs = l.split(" = ").nth(1)?;
            Some(rhs.split('{').next()?.split(' ').next()?.to_string())
        })
        .collect()
}

#[test]
fn augment_on_device_exports_the_step_that_augments() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("no-data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let common = [
        "--no_compile",
        "--dataset=cifar10",
        "--image_size=32",
        "--resnet_depth=18",
        "--train_batch_size=16",
        "--eval_batch_size=16",
    ];
    let host_out = tmp.path().join("host");
    let host = export_with(&host_out, &data, &common);
    let host_params = parameter_shapes(&host_out.join("pretrain/module.hlo.txt"));
    assert!(
        host_params.iter().any(|s| s == "f32[32,32,32,3]"),
        "{host_params:?}"
    );
    assert!(
        !host_params.iter().any(|s| s.ends_with(",11]")),
        "{host_params:?}"
    );
    for (mode, transfer, n) in [
        ("pretrain", "uint8", 32),
        ("pretrain", "f32", 32),
        ("finetune", "uint8", 16),
    ] {
        let out = tmp.path().join(format!("{mode}_{transfer}"));
        let mut flags = common.to_vec();
        let mode_flag = format!("--train_mode={mode}");
        let transfer_flag = format!("--augment_transfer={transfer}");
        flags.extend([
            mode_flag.as_str(),
            "--augment_on_device",
            transfer_flag.as_str(),
        ]);
        let index = export_with(&out, &data, &flags);
        let params = parameter_shapes(&out.join(format!("{mode}/module.hlo.txt")));
        let images = format!(
            "{}[{n},32,32,3]",
            if transfer == "uint8" { "u8" } else { "f32" }
        );
        assert!(params.contains(&images), "{mode} {transfer}: {params:?}");
        assert!(
            params.contains(&format!("f32[{n},11]")),
            "{mode} {transfer}: the drawn parameters are an input: {params:?}"
        );
        // Pretraining blurs: one filter per view.
        assert_eq!(
            params.iter().any(|s| s.starts_with("f32[2,")),
            mode == "pretrain",
            "{mode} {transfer}: {params:?}"
        );
        if mode == "pretrain" {
            assert!(
                index.programs[0].instructions > host.programs[0].instructions + 50,
                "the augmentation is traced into the step: {} vs {}",
                index.programs[0].instructions,
                host.programs[0].instructions
            );
        }
    }
}
