//! Golden HLO text of the canonical programs in `simclr::ir::golden`,
//! compared with `hlo/<name>.hlo`; the proto bytes are kept beside them as
//! `hlo/<name>.pb` for `tools/hlo_check/run`.
//!
//! Regenerate both after an intended change with
//! `SIMCLR_BLESS=1 cargo test --test hlo hlo_golden::`.

use simclr::ir::{from_proto_bytes, golden, to_text_with, PrintOptions};
use std::path::PathBuf;

fn hlo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("hlo")
}

fn bless() -> bool {
    std::env::var("SIMCLR_BLESS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A line diff (longest common subsequence) in unified style, `-` for the
/// golden file and `+` for the printer's output.
fn diff(want: &str, got: &str) -> String {
    let a: Vec<&str> = want.lines().collect();
    let b: Vec<&str> = got.lines().collect();
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+{:>4}: {}\n", j + 1, b[j]));
            j += 1;
        } else {
            out.push_str(&format!("-{:>4}: {}\n", i + 1, a[i]));
            i += 1;
        }
    }
    out
}

#[test]
fn golden_programs_print_as_in_hlo_dir() {
    let dir = hlo_dir();
    let mut failures = Vec::new();
    for (name, build) in golden::programs() {
        let module =
            build().unwrap_or_else(|e| panic!("golden program {name} does not build: {e}"));
        // The same function writes `module.hlo.txt`/`module.pb` in
        // `simclr export_hlo`, with source positions kept.
        let golden::Artifacts { text, bytes, .. } =
            golden::artifacts(&module, false).expect("printable");
        let hlo_path = dir.join(format!("{name}.hlo"));
        let pb_path = dir.join(format!("{name}.pb"));
        if bless() {
            std::fs::create_dir_all(&dir).expect("create hlo/");
            std::fs::write(&hlo_path, &text).expect("write golden text");
            std::fs::write(&pb_path, &bytes).expect("write golden proto");
            continue;
        }
        match std::fs::read_to_string(&hlo_path) {
            Ok(want) if want == text => {}
            Ok(want) => failures.push(format!(
                "{} differs from the printer's output (- golden, + printed):\n{}",
                hlo_path.display(),
                diff(&want, &text)
            )),
            Err(e) => failures.push(format!("{}: {e}", hlo_path.display())),
        }
        match std::fs::read(&pb_path) {
            Ok(want) if want == bytes => {}
            Ok(_) => failures.push(format!(
                "{} differs from the lowered module's proto bytes",
                pb_path.display()
            )),
            Err(e) => failures.push(format!("{}: {e}", pb_path.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nIf the change is intended, regenerate with: SIMCLR_BLESS=1 cargo test --test hlo hlo_golden::",
        failures.join("\n")
    );
}

#[test]
fn golden_protos_print_the_same_after_a_byte_round_trip() {
    for (name, build) in golden::programs() {
        let module = build().expect("builds");
        let proto = golden::golden_proto(&module);
        let opts = PrintOptions {
            replica_count: module.num_replicas,
            ..PrintOptions::default()
        };
        let first = to_text_with(&proto, &opts).expect("printable");
        let decoded = from_proto_bytes(&prost::Message::encode_to_vec(&proto)).expect("decodes");
        assert_eq!(decoded, proto, "{name}: proto changed in a byte round trip");
        let second = to_text_with(&decoded, &opts).expect("printable");
        assert_eq!(first, second, "{name}: text changed in a byte round trip");
    }
}
