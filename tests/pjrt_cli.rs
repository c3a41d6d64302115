//! `simclr devices` on the CPU plugin: text and `--json` list its 4 devices.

use std::process::Command;

fn simclr(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_simclr"))
        .args(args)
        .output()
        .expect("run simclr")
}

#[test]
fn devices_json_lists_four_cpu_devices() {
    let out = simclr(&["devices", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "simclr devices --json failed: {stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["platform_name"], "cpu", "{v}");
    assert!(
        v["plugin"].as_str().is_some_and(|p| p.ends_with(".so")),
        "{v}"
    );
    assert!(
        v["pjrt_api_version"]
            .as_str()
            .is_some_and(|p| p.starts_with("0.")),
        "{v}"
    );
    let devices = v["devices"].as_array().expect("devices array");
    assert_eq!(devices.len(), 4, "{v}");
    for (i, d) in devices.iter().enumerate() {
        assert_eq!(d["id"], i as i64, "{d}");
        assert_eq!(d["kind"], "cpu", "{d}");
        assert_eq!(d["process_index"], 0, "{d}");
    }
}

#[test]
fn devices_text_has_one_line_per_device() {
    let out = simclr(&["devices"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("platform:") && text.contains("PJRT C API:"),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.contains("CpuDevice(id=")).count(),
        4,
        "{text}"
    );
}

#[test]
fn devices_with_a_missing_plugin_fails_with_the_discovery_error() {
    let out = simclr(&["devices", "--pjrt_plugin", "/nonexistent/plugin.so"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/plugin.so") && stderr.contains("run tools/setup"),
        "{stderr}"
    );
}
