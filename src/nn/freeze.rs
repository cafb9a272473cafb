//! Which parameters a run holds fixed: fine-tuning a task's head over a
//! frozen trunk, or any named part of a network. A frozen parameter goes on
//! the tape as a constant ([`ParamSet::freeze`]): no backward dispatch
//! computes its gradient and the optimizer's spans leave it out, so its
//! bytes are the same after training as before.

use super::{MultiTaskNet, ParamId, ParamSet};
use crate::error::{Error, Result};

/// What to freeze.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Freeze {
    /// Train everything.
    #[default]
    None,
    /// The shared part ([`MultiTaskNet::shared_params`]): the embeddings
    /// and the trunk, or a mixture's experts (and its gate when one gate
    /// serves every task); a gate of one task's own trains with its head.
    Shared,
    /// The parameters whose name is one of these, or starts with one of them
    /// and a dot: `trunk.0` (the trunk's first layer), `embed`,
    /// `head.species.tower`.
    Named(Vec<String>),
}

impl Freeze {
    /// `none`, `trunk` (or `shared`), or comma-separated parameter names and prefixes.
    pub fn parse(text: &str) -> Result<Freeze> {
        let t = text.trim();
        match t.to_ascii_lowercase().as_str() {
            "" | "none" => Ok(Freeze::None),
            "trunk" | "shared" => Ok(Freeze::Shared),
            _ => {
                let names: Vec<String> = t
                    .split(',')
                    .map(|n| n.trim().to_string())
                    .filter(|n| !n.is_empty())
                    .collect();
                Ok(Freeze::Named(names))
            }
        }
    }

    /// As [`Freeze::parse`] reads it.
    pub fn name(&self) -> String {
        match self {
            Freeze::None => "none".into(),
            Freeze::Shared => "trunk".into(),
            Freeze::Named(n) => n.join(","),
        }
    }

    /// The parameters of `net` this freezes; a name that matches none is
    /// refused, with the parameter groups the network has.
    pub fn resolve(&self, net: &MultiTaskNet, params: &ParamSet) -> Result<Vec<ParamId>> {
        match self {
            Freeze::None => Ok(Vec::new()),
            Freeze::Shared => Ok(net.shared_params()),
            Freeze::Named(names) => {
                let mut ids = Vec::new();
                for want in names {
                    let matched: Vec<ParamId> = (0..params.len())
                        .filter(|&i| named(&params.names[i], want))
                        .map(ParamId)
                        .collect();
                    if matched.is_empty() {
                        return Err(Error::InvalidConfig(format!(
                            "freeze {want:?}: the network has no parameter of that name; its parts are {}",
                            groups(params).join(", ")
                        )));
                    }
                    ids.extend(matched);
                }
                ids.sort_by_key(|id| id.0);
                ids.dedup();
                Ok(ids)
            }
        }
    }
}

/// `name` is `want` or lies under it (`trunk.0.weight` under `trunk.0` and `trunk`).
fn named(name: &str, want: &str) -> bool {
    name == want
        || name
            .strip_prefix(want)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// The network's parameters by layer (each name without its last part:
/// `trunk.0`, `head.species.out`), in order, each once.
fn groups(params: &ParamSet) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, n) in params.names.iter().enumerate() {
        if params.is_method_param(ParamId(i)) {
            continue;
        }
        let g = n
            .rsplit_once('.')
            .map_or(n.as_str(), |(g, _)| g)
            .to_string();
        if !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reads_the_three_forms() -> Result<()> {
        assert_eq!(Freeze::parse("none")?, Freeze::None);
        assert_eq!(Freeze::parse(" Trunk ")?, Freeze::Shared);
        assert_eq!(Freeze::parse("shared")?, Freeze::Shared);
        assert_eq!(
            Freeze::parse("trunk.0, embed")?,
            Freeze::Named(vec!["trunk.0".into(), "embed".into()])
        );
        Ok(())
    }

    #[test]
    fn a_prefix_matches_whole_name_parts_only() {
        assert!(named("trunk.0.weight", "trunk"));
        assert!(named("trunk.0.weight", "trunk.0"));
        assert!(named("trunk.0.weight", "trunk.0.weight"));
        assert!(!named("trunk.10.weight", "trunk.1"));
        assert!(!named("trunkx.0", "trunk"));
    }
}
