//! 1,000 executions of one executable with fresh input buffers keep the
//! resident memory flat: every buffer and event is destroyed exactly once.

use crate::pjrt_common as common;

use common::{client, rss_bytes, shape, tuple_shape, ModuleBuilder};
use simclr::pjrt::{CompileOptions, HostArray};
use simclr::proto::PrimitiveType::F32;

const ROWS: i64 = 64;
const COLS: i64 = 1024; // 256 KiB per f32 buffer

fn run_once(exe: &simclr::pjrt::LoadedExecutable, x: &HostArray, y: &HostArray) {
    let c = client();
    let d = &exe.devices()[0];
    let bx = c.buffer_from_host(x, d).unwrap();
    let by = c.buffer_from_host(y, d).unwrap();
    let out = exe.execute(&[vec![&bx, &by]]).unwrap();
    let host = out[0][1].to_host().unwrap();
    assert_eq!(host.bytes.len(), (ROWS * COLS * 4) as usize);
}

#[test]
fn thousand_executions_with_fresh_buffers_keep_resident_memory_flat() {
    let mut b = ModuleBuilder::new();
    let mut e = b.comp("main");
    let s = shape(F32, &[ROWS, COLS]);
    let x = b.param(&mut e, 0, s.clone());
    let y = b.param(&mut e, 1, s.clone());
    let sum = b.op(&mut e, "add", s.clone(), &[x, y]);
    let prod = b.op(&mut e, "multiply", s.clone(), &[x, y]);
    let t = b.op(
        &mut e,
        "tuple",
        tuple_shape(vec![s.clone(), s]),
        &[sum, prod],
    );
    let module = b.module("flat_memory", e, t);
    let exe = client().compile(&module, &CompileOptions::new(1)).unwrap();
    let n = (ROWS * COLS) as usize;
    let xs = HostArray::from_f32(&[ROWS, COLS], &vec![1.5; n]).unwrap();
    let ys = HostArray::from_f32(&[ROWS, COLS], &vec![2.0; n]).unwrap();

    for _ in 0..100 {
        run_once(&exe, &xs, &ys);
    }
    let before = rss_bytes();
    for _ in 0..1000 {
        run_once(&exe, &xs, &ys);
    }
    let after = rss_bytes();
    let growth = after.saturating_sub(before);
    // A leak of one 256 KiB buffer per execution would be 250 MiB.
    assert!(
        growth < 20 << 20,
        "resident memory grew by {:.1} MiB over 1000 executions ({before} -> {after} bytes)",
        growth as f64 / (1 << 20) as f64
    );
}
