//! The report's search index: an `elasticlunr` index (crate
//! `elasticlunr-rs`) over instruction names, opcodes, layer scopes and
//! parameter names, serialized to JSON inside a script file
//! (`search_index.js`) that the pages load with a `<script>` tag, so the
//! report works from `file://` without a server.
//!
//! Identifiers are not English: the index uses its own tokenizer and an
//! empty pipeline (no stemming, no stop words). A text is lowercased and
//! split at every character that is not a letter, digit, `_` or `.`; each
//! token with `_` or `.` also yields its parts, and a text with `/` also
//! yields itself whole. `base_model/block_group3/conv2d/kernel` gives
//! `base_model`, `base`, `model`, `block_group3`, `block`, `group3`,
//! `conv2d`, `kernel` and the whole path. The page's script
//! (`report::SEARCH_JS`) tokenizes queries the same way ([`tokenize`] is
//! the reference) and walks the serialized inverted index.

use elasticlunr::{Index, IndexBuilder, Language, Pipeline};
use serde::Serialize;

/// Splits an identifier-laden text into search tokens (see the module docs).
pub fn tokenize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut out = Vec::new();
    for t in lower.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.')) {
        let t = t.trim_matches('.');
        if t.is_empty() {
            continue;
        }
        out.push(t.to_string());
        if t.contains(['_', '.']) {
            out.extend(
                t.split(['_', '.'])
                    .filter(|p| !p.is_empty())
                    .map(str::to_string),
            );
        }
    }
    let whole = lower.trim();
    if whole.contains('/') && !whole.contains(char::is_whitespace) {
        out.push(whole.to_string());
    }
    out
}

/// The tokenizer as an `elasticlunr` language.
struct Identifiers;

impl Language for Identifiers {
    fn name(&self) -> String {
        "Identifiers".into()
    }
    fn code(&self) -> String {
        "id".into()
    }
    fn tokenize(&self, text: &str) -> Vec<String> {
        tokenize(text)
    }
    fn make_pipeline(&self) -> Pipeline {
        Pipeline { queue: Vec::new() }
    }
}

/// What a search result shows and where it leads.
#[derive(Clone, Debug, Serialize)]
pub struct Doc {
    /// What it is: `instruction`, `optimized`, `layer` or `parameter`.
    pub kind: String,
    /// Program it belongs to.
    pub program: String,
    /// Its name (instruction name, scope path or variable name).
    pub title: String,
    /// One line of detail (opcode and shape, costs, shape and rule).
    pub detail: String,
    /// Link relative to the report's root.
    pub url: String,
}

/// The fields every document is indexed under.
pub const FIELDS: [&str; 3] = ["name", "opcode", "scope"];

/// An index under construction.
pub struct SearchIndex {
    index: Index,
    docs: Vec<Doc>,
}

impl Default for SearchIndex {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Serialize)]
struct Serialized<'a> {
    index: &'a Index,
    docs: &'a [Doc],
}

impl SearchIndex {
    /// An empty index with the fields [`FIELDS`].
    pub fn new() -> SearchIndex {
        let index = IndexBuilder::with_language(Box::new(Identifiers))
            .save_docs(false)
            .add_fields(FIELDS)
            .set_ref("id")
            .build();
        SearchIndex {
            index,
            docs: Vec::new(),
        }
    }

    /// Adds `doc`, searchable by its `name`, `opcode` and `scope` texts.
    pub fn add(&mut self, doc: Doc, name: &str, opcode: &str, scope: &str) {
        let id = self.docs.len().to_string();
        self.index.add_doc(&id, [name, opcode, scope]);
        self.docs.push(doc);
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// The index and documents as JSON: `{"index": <elasticlunr index>,
    /// "docs": [Doc, …]}`; document `i` has ref `"i"`.
    ///
    /// # Errors
    /// A serialization error (not expected for these types).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(&Serialized {
            index: &self.index,
            docs: &self.docs,
        })
    }

    /// A script that sets `window.SIMCLR_SEARCH` to [`Self::to_json`].
    ///
    /// # Errors
    /// As [`Self::to_json`].
    pub fn to_script(&self) -> Result<String, serde_json::Error> {
        // `</` cannot end the script early: JSON strings never need it raw.
        let json = self.to_json()?.replace("</", "<\\/");
        Ok(format!("window.SIMCLR_SEARCH = {json};\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_components_parts_and_the_whole() {
        let t = tokenize("base_model/block_group3/conv2d/kernel");
        for want in [
            "base_model",
            "base",
            "model",
            "block_group3",
            "group3",
            "conv2d",
            "kernel",
            "base_model/block_group3/conv2d/kernel",
        ] {
            assert!(t.iter().any(|x| x == want), "{want} missing from {t:?}");
        }
        assert_eq!(tokenize("fusion.12"), vec!["fusion.12", "fusion", "12"]);
    }

    #[test]
    fn the_index_serializes_with_its_inverted_index() {
        let mut s = SearchIndex::new();
        s.add(
            Doc {
                kind: "parameter".into(),
                program: "pretrain".into(),
                title: "base_model/conv2d/kernel".into(),
                detail: String::new(),
                url: "pretrain.html#p".into(),
            },
            "base_model/conv2d/kernel",
            "",
            "base_model/conv2d",
        );
        let j: serde_json::Value =
            serde_json::from_str(&s.to_json().expect("json")).expect("parse");
        let root = &j["index"]["index"]["name"]["root"];
        assert!(
            root["k"]["e"]["r"]["n"]["e"]["l"]["docs"]["0"].is_object(),
            "{root}"
        );
    }
}
