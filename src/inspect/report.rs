//! The static HTML report of an export (`simclr inspect DIR`).
//!
//! ```text
//! REPORT/index.html        the programs, their totals, and the search box
//! REPORT/<program>.html    memory by category; FLOPs and bytes by layer and
//!                          by opcode (sortable tables); the parameters; per
//!                          layer its instructions before and after XLA's
//!                          optimization, fusions with their members
//! REPORT/report.css, report.js, search_index.js
//! ```
//!
//! Every page loads its data from `<script>` files next to it, never with
//! `fetch`, so the report works from `file://`. The search box queries the
//! `elasticlunr` index of [`super::search`] with a small script of our own
//! ([`SEARCH_JS`]) that walks the serialized inverted index.
//!
//! Not here: the analyses (`cost`, `memory`, `params`), which the report
//! recomputes from the exported protos with the same code as the export.

use super::charts::{bar_chart, roofline, Bar, Point};
use super::cost::{self, InstrCost, LayerCost, ModuleCost};
use super::export::{read_index, ExportIndex, ProgramEntry};
use super::fit::DeviceSpec;
use super::params::ParamRow;
use super::search::{Doc, SearchIndex};
use super::Error;
use crate::ir::from_proto_bytes;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What [`build`] wrote.
#[derive(Clone, Debug)]
pub struct ReportSummary {
    /// `REPORT/index.html`.
    pub index_page: PathBuf,
    /// Number of program pages.
    pub programs: usize,
    /// Number of documents in the search index.
    pub search_entries: usize,
}

/// The stylesheet, written as `report.css`.
pub const CSS: &str = include_str!("report.css");

/// The pages' script (sortable tables, opening the target of a link, the
/// search box), written as `report.js`.
pub const SEARCH_JS: &str = include_str!("report.js");

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write(path: &Path, s: &str) -> Result<(), Error> {
    std::fs::write(path, s).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, Error> {
    let b = read(path)?;
    serde_json::from_slice(&b).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// HTML-escapes text for element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A layer path as an id fragment (letters, digits, `_`, `-`).
fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// `1.23 G`-style counts.
fn si(v: f64) -> String {
    let (d, u) = if v >= 1e12 {
        (1e12, "T")
    } else if v >= 1e9 {
        (1e9, "G")
    } else if v >= 1e6 {
        (1e6, "M")
    } else if v >= 1e3 {
        (1e3, "k")
    } else {
        return format!("{v:.0}");
    };
    format!("{:.2} {u}", v / d)
}

fn bytes(v: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = v;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < units.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} B")
    } else {
        format!("{x:.2} {}", units[u])
    }
}

/// A numeric table cell that sorts by its value.
fn num(v: f64, shown: String) -> String {
    format!("<td class=\"n\" data-v=\"{v}\">{}</td>", esc(&shown))
}

fn page(title: &str, programs: &[ProgramEntry], body: &str) -> String {
    let mut nav = String::from("<a href=\"index.html\">index</a>");
    for p in programs {
        let _ = write!(
            nav,
            " · <a href=\"{}.html\">{}</a>",
            esc(&p.name),
            esc(&p.name)
        );
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>{t}</title>\n<link rel=\"icon\" href=\"data:,\">\n<link rel=\"stylesheet\" href=\"report.css\">\n\
</head>\n<body>\n<header><nav>{nav}</nav>\n\
<div class=\"search\"><input id=\"search\" type=\"search\" placeholder=\"Search instructions, opcodes, layers, parameters\" autocomplete=\"off\" aria-label=\"search\">\n\
<div id=\"search-status\"></div><ol id=\"results\"></ol></div></header>\n<main>\n<h1>{t}</h1>\n{body}\n</main>\n\
<script src=\"search_index.js\"></script>\n<script src=\"report.js\"></script>\n</body>\n</html>\n",
        t = esc(title)
    )
}

struct Program {
    entry: ProgramEntry,
    before: ModuleCost,
    after: Option<ModuleCost>,
    params: Vec<ParamRow>,
    memory: serde_json::Value,
    cost_json: serde_json::Value,
}

fn load(dir: &Path, entry: &ProgramEntry) -> Result<Program, Error> {
    let pdir = dir.join(&entry.name);
    let before = cost::analyze(&from_proto_bytes(&read(&pdir.join("module.pb"))?)?);
    let opt_path = pdir.join("optimized.pb");
    let after = if opt_path.exists() {
        Some(cost::analyze(&from_proto_bytes(&read(&opt_path)?)?))
    } else {
        None
    };
    Ok(Program {
        entry: entry.clone(),
        before,
        after,
        params: read_json(&pdir.join("params.json"))?,
        memory: read_json(&pdir.join("memory.json"))?,
        cost_json: read_json(&pdir.join("cost.json"))?,
    })
}

fn index_page(index: &ExportIndex, programs: &[Program]) -> String {
    let mut b = String::new();
    let _ = writeln!(
        b,
        "<p>Exported by simclr {} for {} replica(s){}; dataset {}.</p>",
        esc(&index.simclr_version),
        index.replicas,
        index
            .platform
            .as_deref()
            .map(|p| format!(", compiled for <b>{}</b>", esc(p)))
            .unwrap_or_else(|| ", not compiled".into()),
        esc(&index.dataset.to_string())
    );
    b.push_str(
        "<table class=\"sortable\"><thead><tr><th>program</th><th>module</th><th>status</th>\
<th>instructions</th><th>GFLOP / replica</th><th>memory / replica</th><th>memory figure</th><th>compile s</th></tr></thead><tbody>\n",
    );
    for p in programs {
        let e = &p.entry;
        let _ = writeln!(
            b,
            "<tr><td><a href=\"{n}.html\">{n}</a></td><td>{m}</td><td>{s}</td>{i}{f}{mem}<td>{src}</td>{c}</tr>",
            n = esc(&e.name),
            m = esc(&e.module),
            s = esc(&e.status),
            i = num(e.instructions as f64, e.instructions.to_string()),
            f = num(e.flops, format!("{:.3}", e.flops / 1e9)),
            mem = num(e.memory_bytes as f64, bytes(e.memory_bytes as f64)),
            src = esc(&e.memory_source),
            c = num(
                e.compile_seconds.unwrap_or(0.0),
                e.compile_seconds
                    .map(|s| format!("{s:.1}"))
                    .unwrap_or_else(|| "–".into())
            ),
        );
    }
    b.push_str("</tbody></table>\n");
    for p in programs {
        if let Some(f) = &p.entry.fit {
            let _ = writeln!(
                b,
                "<p class=\"fit\"><b>{}</b> on {}: {}</p>",
                esc(&p.entry.name),
                esc(&f.device.name),
                esc(&f.message)
            );
        }
        if let Some(m) = &p.entry.message {
            let _ = writeln!(
                b,
                "<p class=\"note\"><b>{}</b>: {}</p>",
                esc(&p.entry.name),
                esc(m)
            );
        }
    }
    let _ = writeln!(
        b,
        "<details><summary>flags</summary><pre>{}</pre></details>",
        esc(&serde_json::to_string_pretty(&index.flags).unwrap_or_default())
    );
    b
}

fn memory_section(mem: &serde_json::Value) -> String {
    let mut b = String::from("<h2 id=\"memory\">Memory per replica</h2>\n");
    let status = mem["status"].as_str().unwrap_or("?");
    let _ = writeln!(b, "<p>Status: <b>{}</b>.", esc(status));
    if mem["out_of_memory"].as_bool() == Some(true) {
        b.push_str(" The compiler ran out of memory.");
    }
    if let Some(m) = mem["message"].as_str() {
        let _ = write!(b, " {}", esc(m));
    }
    let head = mem["per_replica_bytes"].as_f64().unwrap_or(0.0);
    let _ = write!(
        b,
        "</p>\n<p class=\"headline\" id=\"memory-headline\">Needed per replica: <b>{}</b> ({} bytes) — {}.</p>\n",
        bytes(head),
        head,
        esc(mem["per_replica_source"].as_str().unwrap_or("?"))
    );
    if let Some(m) = mem["fit"]["message"].as_str() {
        let _ = writeln!(b, "<p class=\"fit\" id=\"fit\">Fit check: {}</p>", esc(m));
    }
    b.push_str("<table class=\"sortable\"><thead><tr><th>category</th><th>source</th><th>bytes</th></tr></thead><tbody>\n");
    if mem["compiled"].is_object() {
        let need = &mem["compiled_need"];
        for (label, key) in [
            ("arguments (device + host)", "argument_bytes"),
            ("temporaries (device + host)", "temporary_bytes"),
            ("outputs (device + host)", "output_bytes"),
            ("− aliased outputs (device + host)", "alias_bytes"),
            ("= needed per replica", "total_bytes"),
            ("generated code (not counted)", "generated_code_bytes"),
            ("the plugin's peak_memory_in_bytes (not the headline: on the CPU plugin it leaves temporaries out)", "plugin_peak_bytes"),
        ] {
            let v = need[key].as_f64().unwrap_or(0.0);
            let _ = writeln!(
                b,
                "<tr><td>{}</td><td>XLA</td>{}</tr>",
                esc(label),
                num(v, bytes(v))
            );
        }
    }
    for (label, key) in [
        ("data inputs", "input_bytes"),
        ("model variables", "parameter_bytes"),
        ("optimizer state", "optimizer_state_bytes"),
        ("arguments", "argument_bytes"),
        ("outputs", "output_bytes"),
        ("aliased outputs", "alias_bytes"),
        ("activations (peak)", "activation_peak_bytes"),
        ("total (arguments + activation peak)", "total_bytes"),
    ] {
        let v = mem["estimate"][key].as_f64().unwrap_or(0.0);
        let _ = writeln!(
            b,
            "<tr><td>{label}</td><td>estimate</td>{}</tr>",
            num(v, bytes(v))
        );
    }
    b.push_str("</tbody></table>\n");
    b
}

fn layers_section(c: &ModuleCost, leaves: &BTreeMap<String, (usize, usize)>) -> String {
    let mut b = String::from(
        "<h2 id=\"layers\">FLOPs and bytes by layer</h2>\n<p>Every scope prefix; gradient ops \
count towards their forward layer; instructions XLA made without metadata are under (unscoped). \
dtype: the float element types of the layer's results by share of their bytes; saved vs f32: the result bytes \
that bf16 results save against f32 (0 in a float32 program). Click a header to sort.</p>\n\
<table class=\"sortable\"><thead><tr><th>layer</th><th>depth</th><th>forward FLOPs</th><th>backward FLOPs</th>\
<th>FLOPs</th><th>transcendentals</th><th>bytes accessed</th><th>instructions</th><th>dtype</th>\
<th>saved vs f32</th></tr></thead><tbody>\n",
    );
    for l in &c.layers {
        let LayerCost {
            layer,
            depth,
            total,
            forward_flops,
            backward_flops,
            unattributed_flops: _,
            instructions,
            float_result_bytes: _,
            bytes_saved,
        } = l;
        let name = if leaves.contains_key(layer) {
            format!("<a href=\"#l-{}\">{}</a>", slug(layer), esc(layer))
        } else {
            esc(layer)
        };
        let _ = writeln!(
            b,
            "<tr id=\"t-{}\"><td class=\"d{}\">{name}</td>{}{}{}{}{}{}{}<td>{}</td>{}</tr>",
            slug(layer),
            (*depth).min(8),
            num(*depth as f64, depth.to_string()),
            num(*forward_flops, si(*forward_flops)),
            num(*backward_flops, si(*backward_flops)),
            num(total.flops, si(total.flops)),
            num(total.transcendentals, si(total.transcendentals)),
            num(total.bytes_accessed, bytes(total.bytes_accessed)),
            num(*instructions as f64, instructions.to_string()),
            esc(&l.dtype_summary()),
            num(*bytes_saved, bytes(*bytes_saved)),
        );
    }
    b.push_str("</tbody></table>\n");
    b.push_str("<h2 id=\"opcodes\">FLOPs by opcode</h2>\n<table class=\"sortable\"><thead><tr><th>opcode</th><th>pass</th><th>count</th><th>FLOPs</th><th>transcendentals</th></tr></thead><tbody>\n");
    for o in &c.by_opcode {
        let _ = writeln!(
            b,
            "<tr><td>{}</td><td>{}</td>{}{}{}</tr>",
            esc(&o.opcode),
            o.pass.name(),
            num(o.count as f64, o.count.to_string()),
            num(o.flops, si(o.flops)),
            num(o.transcendentals, si(o.transcendentals)),
        );
    }
    b.push_str("</tbody></table>\n");
    b
}

fn params_section(rows: &[ParamRow]) -> String {
    let mut b = String::from(
        "<h2 id=\"params\">Parameters</h2>\n<table class=\"sortable\"><thead><tr><th>name</th><th>shape</th>\
<th>bytes</th><th>trainable</th><th>optimized</th><th>optimizer rule</th><th>slot bytes</th></tr></thead><tbody>\n",
    );
    for (i, r) in rows.iter().enumerate() {
        let _ = writeln!(
            b,
            "<tr id=\"p-{i}\"><td>{}</td><td>{}</td>{}<td>{}</td><td>{}</td><td>{}</td>{}</tr>",
            esc(&r.name),
            esc(&r.shape),
            num(r.bytes as f64, bytes(r.bytes as f64)),
            r.trainable,
            r.optimized,
            esc(&r.rule),
            num(r.slot_bytes as f64, bytes(r.slot_bytes as f64)),
        );
    }
    b.push_str("</tbody></table>\n");
    b
}

fn instr_row(b: &mut String, prefix: &str, i: &InstrCost) {
    let _ = writeln!(
        b,
        "<tr id=\"{prefix}-{}\"><td>{}</td><td>{}</td><td>{}</td>{}<td class=\"opname\">{}</td></tr>",
        i.id,
        esc(&i.name),
        esc(&i.opcode),
        esc(&i.shape),
        num(i.cost.flops, si(i.cost.flops)),
        esc(&i.op_name)
    );
}

fn optimized_item(b: &mut String, i: &InstrCost) {
    if i.members.is_empty() {
        let _ = writeln!(
            b,
            "<li id=\"o-{}\"><code>{}</code> {} <span class=\"shape\">{}</span> <span class=\"cost\">{} FLOP</span></li>",
            i.id,
            esc(&i.name),
            esc(&i.opcode),
            esc(&i.shape),
            si(i.cost.flops)
        );
        return;
    }
    let _ = writeln!(
        b,
        "<li id=\"o-{}\"><details><summary><code>{}</code> {} <span class=\"shape\">{}</span> \
<span class=\"cost\">{} FLOP, {}</span> — {} members</summary><ul>",
        i.id,
        esc(&i.name),
        esc(&i.opcode),
        esc(&i.shape),
        si(i.cost.flops),
        bytes(i.cost.bytes_accessed),
        i.members.len()
    );
    for m in &i.members {
        if m.opcode == "parameter" {
            continue;
        }
        optimized_item(b, m);
    }
    b.push_str("</ul></details></li>\n");
}

fn instructions_section(p: &Program, leaves: &BTreeMap<String, (usize, usize)>) -> String {
    let mut before: BTreeMap<&str, Vec<&InstrCost>> = BTreeMap::new();
    for i in &p.before.instructions {
        before.entry(i.layer.as_str()).or_default().push(i);
    }
    let mut after: BTreeMap<&str, Vec<&InstrCost>> = BTreeMap::new();
    if let Some(a) = &p.after {
        for i in &a.instructions {
            after.entry(i.layer.as_str()).or_default().push(i);
        }
    }
    let mut b = String::from(
        "<h2 id=\"instructions\">Instructions by layer, before and after optimization</h2>\n",
    );
    if p.after.is_none() {
        b.push_str("<p class=\"note\">No optimized module in this export (not compiled, or compilation failed).</p>\n");
    }
    for (layer, (nb, na)) in leaves {
        let _ = writeln!(
            b,
            "<details class=\"layer\" id=\"l-{}\"><summary><b>{}</b> — {nb} before, {na} after</summary><div class=\"cols\">",
            slug(layer),
            esc(layer)
        );
        b.push_str("<div><h4>before</h4><table><thead><tr><th>name</th><th>opcode</th><th>shape</th><th>FLOPs</th><th>op_name</th></tr></thead><tbody>\n");
        for i in before.get(layer.as_str()).into_iter().flatten() {
            instr_row(&mut b, "u", i);
        }
        b.push_str("</tbody></table></div><div><h4>after</h4><ul>\n");
        for i in after.get(layer.as_str()).into_iter().flatten() {
            optimized_item(&mut b, i);
        }
        b.push_str("</ul></div></div></details>\n");
    }
    b
}

/// Whether `layer` is a residual block (`…/block_group<g>/block<j>`).
fn is_block(layer: &str) -> bool {
    let mut parts = layer.rsplit('/');
    let num = |s: &str, prefix: &str| {
        s.strip_prefix(prefix)
            .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
    };
    matches!((parts.next(), parts.next()), (Some(b), Some(g)) if num(b, "block") && num(g, "block_group"))
}

/// Layers no other layer is nested in.
fn leaf_layers(c: &ModuleCost) -> Vec<&LayerCost> {
    c.layers
        .iter()
        .filter(|l| {
            let prefix = format!("{}/", l.layer);
            !c.layers.iter().any(|o| o.layer.starts_with(&prefix))
        })
        .collect()
}

const TOP_LAYERS: usize = 40;

fn short_layer(l: &str) -> String {
    l.strip_prefix("base_model/").unwrap_or(l).to_string()
}

fn charts_section(c: &ModuleCost, mem: &serde_json::Value, device: Option<&DeviceSpec>) -> String {
    let mut b = String::from("<h2 id=\"charts\">Pictures</h2>\n");
    let need = &mem["compiled_need"];
    let memory_bars: Vec<Bar> = if need.is_object() {
        [
            ("arguments", "argument_bytes", ""),
            ("temporaries", "temporary_bytes", ""),
            ("outputs", "output_bytes", ""),
            (
                "aliased outputs (subtracted)",
                "alias_bytes",
                "counted once, with the arguments",
            ),
            (
                "needed per replica",
                "total_bytes",
                "arguments + temporaries + outputs − aliased",
            ),
        ]
        .iter()
        .map(|(l, k, n)| Bar {
            label: (*l).into(),
            value: need[*k].as_f64().unwrap_or(0.0),
            note: (*n).into(),
        })
        .collect()
    } else {
        [
            ("data inputs", "input_bytes"),
            ("model variables", "parameter_bytes"),
            ("optimizer state", "optimizer_state_bytes"),
            ("activations (peak)", "activation_peak_bytes"),
            ("needed per replica (estimate)", "total_bytes"),
        ]
        .iter()
        .map(|(l, k)| Bar {
            label: (*l).into(),
            value: mem["estimate"][*k].as_f64().unwrap_or(0.0),
            note: String::new(),
        })
        .collect()
    };
    let mut memory_bars = memory_bars;
    if let Some(d) = device {
        memory_bars.push(Bar {
            label: format!("device: {}", d.name),
            value: d.memory_bytes as f64,
            note: d.source.clone(),
        });
    }
    b.push_str(&bar_chart(
        "chart-memory",
        "Memory per replica",
        &memory_bars,
        &bytes,
    ));
    let blocks: Vec<&LayerCost> = c.layers.iter().filter(|l| is_block(&l.layer)).collect();
    if !blocks.is_empty() {
        let bars = |f: &dyn Fn(&LayerCost) -> f64| -> Vec<Bar> {
            blocks
                .iter()
                .map(|l| Bar {
                    label: short_layer(&l.layer),
                    value: f(l),
                    note: String::new(),
                })
                .collect()
        };
        b.push_str("<div class=\"charts\">");
        b.push_str(&bar_chart(
            "chart-block-flops",
            "FLOPs per residual block (forward + backward)",
            &bars(&|l| l.total.flops),
            &si,
        ));
        b.push_str(&bar_chart(
            "chart-block-bytes",
            "Bytes accessed per residual block",
            &bars(&|l| l.total.bytes_accessed),
            &bytes,
        ));
        b.push_str("</div>\n");
    }
    let leaves = leaf_layers(c);
    let mut top: Vec<&LayerCost> = leaves.clone();
    top.sort_by(|a, b| b.total.flops.total_cmp(&a.total.flops));
    top.truncate(TOP_LAYERS);
    let bars = |f: &dyn Fn(&LayerCost) -> f64| -> Vec<Bar> {
        top.iter()
            .map(|l| Bar {
                label: short_layer(&l.layer),
                value: f(l),
                note: String::new(),
            })
            .collect()
    };
    let what = if leaves.len() > top.len() {
        format!("the {} largest of {} layers", top.len(), leaves.len())
    } else {
        format!("all {} layers", leaves.len())
    };
    b.push_str("<div class=\"charts\">");
    b.push_str(&bar_chart(
        "chart-layer-flops",
        &format!("FLOPs per layer ({what}, by FLOPs)"),
        &bars(&|l| l.total.flops),
        &si,
    ));
    b.push_str(&bar_chart(
        "chart-layer-bytes",
        "Bytes accessed per layer (same layers)",
        &bars(&|l| l.total.bytes_accessed),
        &bytes,
    ));
    b.push_str("</div>\n");
    match device {
        Some(d) => match (d.peak_flops, d.bandwidth) {
            (Some(peak), Some(bw)) => {
                let points: Vec<Point> = leaves
                    .iter()
                    .map(|l| Point {
                        label: short_layer(&l.layer),
                        flops: l.total.flops,
                        bytes: l.total.bytes_accessed,
                    })
                    .collect();
                let _ = writeln!(
                    b,
                    "<p>Roofline of {}: peak {}FLOP/s, {}/s; each layer's arithmetic intensity (its FLOPs over the bytes it accesses, per XLA's cost model of the module) against the ridge {:.0} FLOP/B. Left of the ridge a layer is bound by memory bandwidth.</p>",
                    esc(&d.name),
                    si(peak),
                    bytes(bw),
                    peak / bw
                );
                b.push_str(&roofline(
                    "roofline",
                    &format!("Roofline: {} layers on {}", leaves.len(), d.name),
                    &points,
                    peak,
                    bw,
                ));
            }
            _ => {
                let _ = writeln!(
                    b,
                    "<p class=\"note\">No roofline: the peak FLOP/s and bandwidth of {} are not known (name an accelerator with <code>--device_memory</code>).</p>",
                    esc(&d.name)
                );
            }
        },
        None => b.push_str(
            "<p class=\"note\">No roofline: no device was given (<code>simclr export_hlo --device_memory=h100</code> or another accelerator).</p>\n",
        ),
    }
    b
}

fn program_page(
    p: &Program,
    device: Option<&DeviceSpec>,
) -> (String, BTreeMap<String, (usize, usize)>) {
    let mut leaves: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for i in &p.before.instructions {
        leaves.entry(i.layer.clone()).or_default().0 += 1;
    }
    if let Some(a) = &p.after {
        for i in &a.instructions {
            leaves.entry(i.layer.clone()).or_default().1 += 1;
        }
    }
    let main = p.after.as_ref().unwrap_or(&p.before);
    let mut b = String::new();
    let _ = writeln!(
        b,
        "<p>Module <code>{}</code>, {} instructions before optimization{}. Status: <b>{}</b>.</p>",
        esc(&p.entry.module),
        p.before.instructions.len(),
        p.after
            .as_ref()
            .map(|a| format!(", {} top-level after", a.instructions.len()))
            .unwrap_or_default(),
        esc(&p.entry.status)
    );
    b.push_str("<table><thead><tr><th>module</th><th>FLOPs</th><th>transcendentals</th><th>bytes accessed</th></tr></thead><tbody>\n");
    for (label, c) in [
        ("before optimization", Some(&p.before)),
        ("after optimization", p.after.as_ref()),
    ] {
        if let Some(c) = c {
            let t = c.totals;
            let _ = writeln!(
                b,
                "<tr><td>{label}</td>{}{}{}</tr>",
                num(t.flops, si(t.flops)),
                num(t.transcendentals, si(t.transcendentals)),
                num(t.bytes_accessed, bytes(t.bytes_accessed))
            );
        }
    }
    if let Some(x) = p.cost_json["xla"].as_object() {
        let f = |k: &str| x.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
        let _ = writeln!(
            b,
            "<tr><td>XLA's cost analysis</td>{}{}{}</tr>",
            num(f("flops"), si(f("flops"))),
            num(f("transcendentals"), si(f("transcendentals"))),
            num(f("bytes accessed"), bytes(f("bytes accessed")))
        );
    }
    b.push_str("</tbody></table>\n");
    let name = &p.entry.name;
    let _ = writeln!(
        b,
        "<p>Files: <a href=\"../{n}/module.hlo.txt\">module.hlo.txt</a>{} · <a href=\"../{n}/cost.json\">cost.json</a> · \
<a href=\"../{n}/memory.json\">memory.json</a> · <a href=\"../{n}/params.tsv\">params.tsv</a> \
(links work when the report sits in the export folder).</p>",
        if p.after.is_some() {
            format!(" · <a href=\"../{0}/optimized.hlo.txt\">optimized.hlo.txt</a>", esc(name))
        } else {
            String::new()
        },
        n = esc(name)
    );
    b.push_str(&memory_section(&p.memory));
    b.push_str(&charts_section(main, &p.memory, device));
    b.push_str(&layers_section(main, &leaves));
    b.push_str(&params_section(&p.params));
    b.push_str(&instructions_section(p, &leaves));
    (b, leaves)
}

fn index_program(s: &mut SearchIndex, p: &Program, leaves: &BTreeMap<String, (usize, usize)>) {
    let prog = &p.entry.name;
    let url = |frag: String| format!("{prog}.html#{frag}");
    for i in &p.before.instructions {
        s.add(
            Doc {
                kind: "instruction".into(),
                program: prog.clone(),
                title: i.name.clone(),
                detail: format!("{} {} · {}", i.opcode, i.shape, i.op_name),
                url: url(format!("u-{}", i.id)),
            },
            &i.name,
            &i.opcode,
            &i.op_name,
        );
    }
    fn walk(s: &mut SearchIndex, prog: &str, i: &InstrCost) {
        if i.opcode == "parameter" {
            return;
        }
        s.add(
            Doc {
                kind: "optimized".into(),
                program: prog.to_string(),
                title: i.name.clone(),
                detail: format!("{} {} · {}", i.opcode, i.shape, i.op_name),
                url: format!("{prog}.html#o-{}", i.id),
            },
            &i.name,
            &i.opcode,
            &i.op_name,
        );
        for m in &i.members {
            walk(s, prog, m);
        }
    }
    if let Some(a) = &p.after {
        for i in &a.instructions {
            walk(s, prog, i);
        }
    }
    let main = p.after.as_ref().unwrap_or(&p.before);
    for l in &main.layers {
        let frag = if leaves.contains_key(&l.layer) {
            format!("l-{}", slug(&l.layer))
        } else {
            format!("t-{}", slug(&l.layer))
        };
        s.add(
            Doc {
                kind: "layer".into(),
                program: prog.clone(),
                title: l.layer.clone(),
                detail: format!(
                    "{} FLOP, {} accessed",
                    si(l.total.flops),
                    bytes(l.total.bytes_accessed)
                ),
                url: url(frag),
            },
            &l.layer,
            "",
            &l.layer,
        );
    }
    for (k, r) in p.params.iter().enumerate() {
        let scope = r.name.rsplit_once('/').map(|(a, _)| a).unwrap_or("");
        s.add(
            Doc {
                kind: "parameter".into(),
                program: prog.clone(),
                title: r.name.clone(),
                detail: format!("{} · {} · {}", r.shape, bytes(r.bytes as f64), r.rule),
                url: url(format!("p-{k}")),
            },
            &r.name,
            "",
            scope,
        );
    }
}

/// Builds the report of the export in `export_dir` into `out_dir`.
///
/// # Errors
/// [`Error::Io`] / [`Error::Json`] for missing or unreadable export files
/// (`index.json`, `module.pb`, `params.json`, `memory.json`, `cost.json`),
/// [`Error::Ir`] for a proto that does not decode.
pub fn build(export_dir: &Path, out_dir: &Path) -> Result<ReportSummary, Error> {
    let index = read_index(export_dir)?;
    let programs = index
        .programs
        .iter()
        .map(|e| load(export_dir, e))
        .collect::<Result<Vec<_>, _>>()?;
    std::fs::create_dir_all(out_dir).map_err(|source| Error::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let mut search = SearchIndex::new();
    for p in &programs {
        let (body, leaves) = program_page(p, index.device.as_ref());
        write(
            &out_dir.join(format!("{}.html", p.entry.name)),
            &page(&format!("{} step", p.entry.name), &index.programs, &body),
        )?;
        index_program(&mut search, p, &leaves);
    }
    write(
        &out_dir.join("index.html"),
        &page(
            "simclr export",
            &index.programs,
            &index_page(&index, &programs),
        ),
    )?;
    write(&out_dir.join("report.css"), CSS)?;
    write(&out_dir.join("report.js"), SEARCH_JS)?;
    let script = search.to_script().map_err(|e| Error::Json {
        path: out_dir.join("search_index.js"),
        message: e.to_string(),
    })?;
    write(&out_dir.join("search_index.js"), &script)?;
    Ok(ReportSummary {
        index_page: out_dir.join("index.html"),
        programs: programs.len(),
        search_entries: search.len(),
    })
}
