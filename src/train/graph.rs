//! The training step's graph as Graphviz DOT, each node with its value and
//! gradient as the last step left them, the way micrograd draws its graph:
//! what the tape recorded, drawn (`--dump-graph`; `dot -Tsvg graph.dot`).

use std::fmt::Write;

use crate::autodiff::{GraphNode, NodeKind};
use crate::error::Result;
use crate::gpu::{DType, Gpu, Tensor};
use crate::nn::{ParamId, ParamSet};

/// Graphviz DOT of `graph` (from [`crate::autodiff::Tape::graph`]): one box
/// per node with its kind (a parameter's name), shape, the mean and norm of
/// its value and the norm of its gradient, read back in one readback.
pub async fn graph_dot(gpu: &Gpu, graph: &[GraphNode], params: &ParamSet) -> Result<String> {
    // One readback of every f32 value and gradient (f16 ones are only named).
    let mut wanted: Vec<&Tensor> = Vec::new();
    let mut slots: Vec<(Option<usize>, Option<usize>)> = Vec::new();
    for n in graph {
        let mut pair = [None, None];
        for (i, t) in [Some(&n.value), n.grad.as_ref()].into_iter().enumerate() {
            if let Some(t) = t.filter(|t| t.dtype() == DType::F32) {
                wanted.push(t);
                pair[i] = Some(wanted.len() - 1);
            }
        }
        slots.push((pair[0], pair[1]));
    }
    let got = gpu.read_async(&wanted).await?;

    let mut out = String::from(
        "digraph taskgrad_step {\n  rankdir=LR;\n  node [shape=record, fontname=\"Helvetica\", fontsize=8, style=filled];\n  nodesep=0.15;\n  edge [color=\"#777777\"];\n",
    );
    for (i, (n, (v, g))) in graph.iter().zip(&slots).enumerate() {
        let name = match n.kind {
            NodeKind::Param => param_name(params, &n.value).unwrap_or_else(|| "param".into()),
            NodeKind::Input => "input".into(),
            k => k.to_string(),
        };
        let dims: Vec<String> = n.value.shape().iter().map(|d| d.to_string()).collect();
        let value = match v {
            Some(j) => {
                let x = &got[*j];
                let mean = x.iter().map(|&a| a as f64).sum::<f64>() / x.len().max(1) as f64;
                format!("mean {mean:.3} | ‖v‖ {:.3}", norm(x))
            }
            None => format!("{:?}", n.value.dtype()).to_lowercase(),
        };
        let grad = match g {
            Some(j) => format!(" | ‖∇‖ {:.2e}", norm(&got[*j])),
            None => String::new(),
        };
        let colour = match n.kind {
            NodeKind::Input => "#eeeeee",
            NodeKind::Param => "#fde0c5",
            NodeKind::Loss(_) => "#f8c9c9",
            NodeKind::StopGradient => "#e4d7f5",
            NodeKind::Op(_) => "#d6e6f5",
        };
        let _ = writeln!(
            out,
            "  n{i} [label=\"{} | {} | {value}{grad}\", fillcolor=\"{colour}\"];",
            escape(&name),
            dims.join("×")
        );
        for &j in &n.inputs {
            let _ = writeln!(out, "  n{j} -> n{i};");
        }
    }
    out.push_str("}\n");
    Ok(out)
}

fn norm(x: &[f32]) -> f64 {
    x.iter()
        .map(|&a| (a as f64) * (a as f64))
        .sum::<f64>()
        .sqrt()
}

/// The name of the parameter whose value `t` is a view of.
fn param_name(params: &ParamSet, t: &Tensor) -> Option<String> {
    (0..params.len())
        .find(|&i| {
            let p = params.value(ParamId(i));
            p.offset() == t.offset() && p.shape() == t.shape() && p.overlaps(t)
        })
        .map(|i| params.names[i].clone())
}

fn escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '{' | '}' | '|' | '<' | '>' | '"' => vec!['\\', c],
            c => vec![c],
        })
        .collect()
}
