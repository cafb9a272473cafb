//! Model files: safetensors with one named f32 tensor per parameter (readable
//! by numpy, PyTorch and any safetensors reader) and the metadata needed to use
//! the model again: input names and encodings, standardisation, task specs,
//! architecture, training configuration and the taskgrad version.
//!
//! Tensor names: `trunk.<i>.weight` (fan_in × fan_out), `trunk.<i>.bias`,
//! `head.<task>.tower.<j>.weight|bias`, `head.<task>.out.weight|bias`, and a
//! weighting's own parameters (e.g. `weighting.uncertainty.log_var`).
//! Metadata keys (strings): `taskgrad_version`, `format` ("taskgrad-2"),
//! `model` (JSON: schema, net, config), `model_checksum` (FNV-1a 64 of the
//! `model` text, hex) and `checksums` (JSON: tensor name -> FNV-1a 64 of its
//! bytes). Loading checks both (required in `taskgrad-2`; `taskgrad-1`
//! files, some written before checksums existed, load without), refuses
//! non-finite values, and treats the metadata as untrusted input: every
//! count, width and spread is checked, and the network it describes is
//! built as a layout (no weight drawn) and compared, tensor by tensor, with
//! the file's tensors before anything is sized by it (`validate`).
//!
//! Files are written atomically ([`write_atomically`]): to `.partial-<name>`
//! beside the target, then renamed, so a crash or a full disk never leaves a
//! partial model under the real name.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::encode::Schema;
use crate::error::{Error, Result};
use crate::nn::NetSpec;

/// The JSON kept in the `model` metadata entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelMeta {
    pub schema: Schema,
    pub net: NetSpec,
    /// The training settings, as given (for the record and for --resume).
    pub config: serde_json::Value,
    /// Epochs trained so far, over all runs that resumed this model.
    pub epochs_trained: usize,
    /// How the last run split its rows (absent in older files).
    #[serde(default)]
    pub split: Option<SplitRecord>,
    /// The model this one started from (`train --init`, `finetune`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentRecord>,
}

/// Where a warm-started model came from: enough to tell which file it was
/// (its name, without its folder, and a checksum of its bytes) and what
/// that model had learned (its tasks and epochs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParentRecord {
    pub file: String,
    /// FNV-1a 64 of the parent file's bytes, hex.
    pub checksum: String,
    pub tasks: Vec<String>,
    pub epochs_trained: usize,
}

impl ParentRecord {
    /// The record of the model `ck`, read from `path`.
    pub fn of(path: &Path, ck: &Checkpoint) -> Result<ParentRecord> {
        let bytes = std::fs::read(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        Ok(ParentRecord {
            file: path
                .file_name()
                .map_or(String::new(), |f| f.to_string_lossy().into_owned()),
            checksum: checksum(&bytes),
            tasks: ck
                .meta
                .schema
                .tasks
                .iter()
                .map(|t| t.name.clone())
                .collect(),
            epochs_trained: ck.meta.epochs_trained,
        })
    }
}

/// How a run split the rows of its file, so that `eval` can find the
/// held-out test rows again: the split is rebuilt from the seed and fractions
/// over the file's usable rows, which must be the very rows trained on (the
/// count and either a fingerprint of their input and task cells, when one
/// was recorded, or the file's name say so).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitRecord {
    pub seed: u64,
    pub val_fraction: f64,
    pub test_fraction: f64,
    /// Usable rows (after the missing-input rule) of the training file.
    pub rows: usize,
    /// [`crate::data::Table::fingerprint`] of those rows, in hexadecimal:
    /// kept only when asked for (`--record-data-fingerprint`; models before
    /// that flag always kept it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The training file's name, without its folder (absent in older models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

impl SplitRecord {
    /// The fingerprint a split records of `rows` of `table`: their cells of
    /// the schema's input columns (in its order), then its task columns, in
    /// hexadecimal; None when the table lacks one of those columns. Training
    /// records it, `eval` compares it: one function, so both hash alike.
    pub fn fingerprint_of(
        table: &crate::data::Table,
        rows: &[usize],
        schema: &crate::data::encode::Schema,
    ) -> Option<String> {
        let names = schema
            .input_names()
            .into_iter()
            .chain(schema.tasks.iter().map(|t| t.name.clone()));
        let cols: Option<Vec<usize>> = names.map(|n| table.column(&n).ok()).collect();
        Some(format!("{:016x}", table.fingerprint(rows, &cols?)))
    }
}

/// A loaded checkpoint.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub meta: ModelMeta,
    pub version: String,
    /// (name, shape, values), in file order (sorted by name).
    pub tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
}

/// The format this taskgrad writes: `taskgrad-2` files always carry their
/// checksums, and one without them is refused as damaged.
pub const FORMAT: &str = "taskgrad-2";

/// The first format: files written before checksums existed (they load
/// without), and after, with them.
pub const FORMAT_1: &str = "taskgrad-1";

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Write `tensors` and `meta` to `path` atomically.
pub fn save(
    path: &Path,
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    meta: &ModelMeta,
) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let mut views = Vec::new();
    for ((name, shape, _), data) in tensors.iter().zip(&bytes) {
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                .map_err(|e| bad(path, format!("tensor {name}: {e}")))?;
        views.push((name.clone(), view));
    }
    let mut info = HashMap::new();
    info.insert("format".to_string(), FORMAT.to_string());
    let sums: std::collections::BTreeMap<&str, String> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, _, _), data)| (name.as_str(), checksum(data)))
        .collect();
    info.insert(
        "checksums".to_string(),
        serde_json::to_string(&sums).map_err(|e| bad(path, e.to_string()))?,
    );
    info.insert(
        "taskgrad_version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    let model = serde_json::to_string(meta).map_err(|e| bad(path, e.to_string()))?;
    info.insert("model_checksum".to_string(), checksum(model.as_bytes()));
    info.insert("model".to_string(), model);
    let out = safetensors::serialize(views, Some(info)).map_err(|e| bad(path, e.to_string()))?;
    write_atomically(path, |tmp| {
        std::fs::write(tmp, &out).map_err(|e| Error::Io {
            path: tmp.to_path_buf(),
            source: e,
        })
    })
}

/// Write `path` through `write` on a temporary file beside it, then rename:
/// a crash or a full disk leaves the old file or none, never a partial one,
/// and the temporary file is removed on every error. Every file taskgrad
/// writes (models, metrics, plots, predictions) goes through here.
pub fn write_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The extension stays last: the plotting backends choose the format by it.
    let tmp = path.with_file_name(format!(".partial-{name}"));
    let written = write(&tmp).and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// FNV-1a (64 bits) of `bytes`, in hex: enough to notice a changed or
/// damaged byte (not a defence against deliberate forgery).
fn checksum(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The file says it is a taskgrad model of the format this version reads;
/// a later format is refused by name.
fn check_format(path: &Path, info: &std::collections::HashMap<String, String>) -> Result<()> {
    match info.get("format").map(|s| s.as_str()) {
        Some(FORMAT) => {
            // Checksums are part of this format: removing them turns nothing off.
            match ["model_checksum", "checksums"]
                .iter()
                .find(|k| !info.contains_key(**k))
            {
                Some(k) => Err(bad(
                    path,
                    format!(
                        "a {FORMAT} model without its {k} entry: the file was changed or damaged"
                    ),
                )),
                None => Ok(()),
            }
        }
        Some(FORMAT_1) => Ok(()),
        Some(other) if other.starts_with("taskgrad-") => {
            let by = info.get("taskgrad_version").map_or("?", |s| s.as_str());
            Err(bad(
                path,
                format!(
                    "a taskgrad model in format {other}, written by taskgrad {by}; this taskgrad \
                     ({}) reads {FORMAT_1} and {FORMAT}",
                    env!("CARGO_PKG_VERSION")
                ),
            ))
        }
        _ => Err(bad(
            path,
            "a safetensors file, but not a taskgrad model (no format=taskgrad-N metadata)",
        )),
    }
}

/// Read a checkpoint, checking that it is a taskgrad safetensors file.
pub fn load(path: &Path) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
        bad(
            path,
            format!(
                "not a readable safetensors file ({e}); is it truncated, or another kind of file?"
            ),
        )
    })?;
    let (_, header) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(path, e.to_string()))?;
    let info = header.metadata().clone().unwrap_or_default();
    check_format(path, &info)?;
    let model_text = info.get("model").map(|s| s.as_str()).unwrap_or("");
    // Files written before checksums existed have none, and load as before.
    if let Some(sum) = info.get("model_checksum") {
        if *sum != checksum(model_text.as_bytes()) {
            return Err(bad(
                path,
                "the model metadata does not match its checksum: the file was changed or damaged",
            ));
        }
    }
    let sums: std::collections::BTreeMap<String, String> = match info.get("checksums") {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| bad(path, format!("the tensor checksums are not valid: {e}")))?,
        None => Default::default(),
    };
    let meta: ModelMeta = serde_json::from_str(model_text)
        .map_err(|e| bad(path, format!("model metadata is not valid: {e}")))?;
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    let mut tensors = Vec::new();
    for name in names {
        let view = st.tensor(&name).map_err(|e| bad(path, e.to_string()))?;
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(bad(
                path,
                format!("tensor {name} is {:?}, expected F32", view.dtype()),
            ));
        }
        if sums
            .get(&name)
            .is_some_and(|sum| *sum != checksum(view.data()))
        {
            return Err(bad(
                path,
                format!(
                    "tensor {name} does not match its checksum: the file was changed or damaged"
                ),
            ));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if values.iter().any(|v| !v.is_finite()) {
            return Err(bad(
                path,
                format!("tensor {name} holds a value that is not finite"),
            ));
        }
        tensors.push((name, view.shape().to_vec(), values));
    }
    validate(path, &meta, &tensors)?;
    Ok(Checkpoint {
        meta,
        version: info.get("taskgrad_version").cloned().unwrap_or_default(),
        tensors,
    })
}

/// The metadata checked as untrusted input (a file whose checksums were
/// recomputed after an edit passes them): the schema's spreads, names and
/// fractions, and the network it describes, built as a layout of names and
/// shapes without drawing a weight, against the file's tensors — so that a
/// width of 2e9 in the metadata is refused here, not met by an allocation.
fn validate(
    path: &Path,
    meta: &ModelMeta,
    tensors: &[(String, Vec<usize>, Vec<f32>)],
) -> Result<()> {
    let refuse = |reason: String| Err(bad(path, reason));
    meta.check_consistent(path)?;
    let tasks: Vec<&str> = meta.schema.tasks.iter().map(|t| t.name()).collect();
    if meta
        .net
        .head_names
        .iter()
        .map(String::as_str)
        .ne(tasks.iter().copied())
    {
        return refuse(format!(
            "the network's heads {:?} are not the schema's tasks {tasks:?}",
            meta.net.head_names
        ));
    }
    if let Some(reason) = meta.schema.untrusted_problem() {
        return refuse(reason);
    }
    if let Some(s) = &meta.split {
        let fraction = |f: f64| f.is_finite() && (0.0..1.0).contains(&f);
        if !(fraction(s.val_fraction) && fraction(s.test_fraction))
            || s.val_fraction + s.test_fraction >= 1.0
            || s.rows == 0
        {
            return refuse(format!(
                "the recorded split is impossible ({} rows, validation {}, test {})",
                s.rows, s.val_fraction, s.test_fraction
            ));
        }
    }
    let mut layout = crate::nn::ParamBuilder::scratch();
    crate::nn::MultiTaskNet::new(&mut layout, meta.net.clone(), 0)
        .map_err(|e| bad(path, format!("the saved network cannot be built: {e}")))?;
    let mut want: Vec<(&str, &[usize])> = layout
        .layout()
        .entries()
        .iter()
        .map(|(n, _, shape)| (n.as_str(), shape.as_slice()))
        .collect();
    want.sort();
    let have: Vec<(&str, &[usize])> = tensors
        .iter()
        .filter(|(n, _, _)| !n.starts_with(crate::nn::METHOD_PARAM_PREFIX))
        .map(|(n, shape, _)| (n.as_str(), shape.as_slice()))
        .collect();
    if want != have {
        let differ = want
            .iter()
            .zip(&have)
            .find(|(w, h)| w != h)
            .map(|(w, h)| format!("{} {:?} where the file has {} {:?}", w.0, w.1, h.0, h.1))
            .unwrap_or_else(|| format!("{} tensors where the file has {}", want.len(), have.len()));
        return refuse(format!(
            "the saved network does not match the file's tensors: it makes {differ}"
        ));
    }
    Ok(())
}
