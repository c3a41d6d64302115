//! The SK shortcut's average pool against TensorFlow: `avg_pool` with TF
//! 'SAME' padding (stride 1, and stride 2) gives `tf.nn.avg_pool2d`'s
//! values on fixed random inputs (`tools/tf_ckpt/run avg_pool.py`, a pinned
//! TensorFlow), and its divisor is a trace-time constant: the module has one
//! reduce-window (the sums), none over a constant for XLA to fold. A
//! failing tools script fails the test.

use simclr::interp::{evaluate, Value};
use simclr::ir::{Builder, ElementType, Shape};
use simclr::nn::layers::avg_pool;
use std::path::PathBuf;
use std::process::Command;

#[test]
fn same_average_pool_matches_tensorflow_with_a_trace_time_divisor() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("nn_pool_tf");
    let _ = std::fs::remove_dir_all(&dir);
    let tool = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/tf_ckpt/run");
    let o = Command::new(&tool)
        .arg("avg_pool.py")
        .arg(&dir)
        .output()
        .expect("tools/tf_ckpt/run starts");
    assert!(
        o.status.success(),
        "tools/tf_ckpt/run avg_pool.py failed ({}):\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    for (case, stride) in [("s1_7x6", 1), ("s2_7x6", 2), ("s1_56", 1)] {
        let x = simclr::npy::read(dir.join(format!("{case}_x.npy"))).expect("x");
        let want = simclr::npy::read(dir.join(format!("{case}_y.npy"))).expect("y");
        let dims: Vec<i64> = x.shape.iter().map(|&d| d as i64).collect();
        let b = Builder::new("avg_pool", 1);
        let t = b.parameter("x", Shape::new(ElementType::F32, dims.clone()));
        let y = avg_pool(&t, 2, stride, true);
        let m = b.build(&[&y]).expect("build");
        let text = simclr::ir::golden::golden_text(&m).expect("text");
        assert_eq!(
            text.matches(" reduce-window(").count(),
            1,
            "{case}: one reduce-window (the sums), the divisor is a constant:\n{text}"
        );
        let out = evaluate(
            &m,
            &[vec![Value::from_f32(
                &dims,
                x.as_f32().expect("f32").to_vec(),
            )
            .expect("x")]],
        )
        .expect("evaluate");
        let got = out[0][0].to_f32_vec().expect("f32");
        let want_v = want.as_f32().expect("f32");
        assert_eq!(got.len(), want_v.len(), "{case}: sizes");
        let worst = got
            .iter()
            .zip(want_v)
            .map(|(g, w)| (g - w).abs() - 1e-6 * w.abs())
            .fold(0.0_f32, f32::max);
        assert!(
            worst <= 1e-6,
            "{case}: |ours − TF| exceeds 1e-6 + 1e-6·|TF| by {worst}"
        );
    }
}
