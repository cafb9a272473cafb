//! A run folder replaced as a whole: a run writes its outputs into
//! `<out>/.staging/` and, only when every one of them was written, moves
//! them into place and removes the previous run's outputs that this run did
//! not make again. A failure before that (a full disk, a plot that cannot be
//! drawn) removes the staging folder and leaves exactly the old folder: the
//! old model with its own metrics and plots, never a new model beside old
//! plots. The moves are renames within one folder (no new space needed).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where a run writes before its outputs replace the folder's.
pub(crate) struct Staging {
    out: PathBuf,
    dir: PathBuf,
    /// The run's outputs that live in the folder itself (not in a subfolder).
    files: &'static [&'static str],
    /// Its subfolders, replaced whole (`plots`).
    folders: &'static [&'static str],
    /// Committed: nothing to clean up.
    done: bool,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Staging {
    /// A fresh staging folder in `out` (one a killed run left is removed
    /// first); `files` and `folders` are every output a run of this kind can
    /// make, so that the previous run's are replaced or removed.
    pub(crate) fn new(
        out: &Path,
        files: &'static [&'static str],
        folders: &'static [&'static str],
    ) -> Result<Staging> {
        let dir = out.join(".staging");
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(Staging {
            out: out.to_path_buf(),
            dir,
            files,
            folders,
            done: false,
        })
    }

    /// Where the output `name` (`model.safetensors`, `plots`) is written now.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        debug_assert!(self.files.contains(&name) || self.folders.contains(&name));
        self.dir.join(name)
    }

    /// Every staged output moves into place; the previous run's outputs that
    /// this run did not make are removed. Returns `written` (staged paths)
    /// as they are named now.
    pub(crate) fn commit(mut self, written: Vec<PathBuf>) -> Result<Vec<PathBuf>> {
        for name in self.folders {
            let (new, now) = (self.dir.join(name), self.out.join(name));
            if now.exists() {
                let old = self.out.join(format!(".old-{name}"));
                if old.exists() {
                    std::fs::remove_dir_all(&old).map_err(io(&old))?;
                }
                std::fs::rename(&now, &old).map_err(io(&now))?;
                if new.exists() {
                    std::fs::rename(&new, &now).map_err(io(&now))?;
                }
                std::fs::remove_dir_all(&old).map_err(io(&old))?;
            } else if new.exists() {
                std::fs::rename(&new, &now).map_err(io(&now))?;
            }
        }
        for name in self.files {
            let (new, now) = (self.dir.join(name), self.out.join(name));
            if new.exists() {
                std::fs::rename(&new, &now).map_err(io(&now))?;
            } else if now.exists() {
                std::fs::remove_file(&now).map_err(io(&now))?;
            }
        }
        std::fs::remove_dir_all(&self.dir).map_err(io(&self.dir))?;
        self.done = true;
        let moved = written
            .into_iter()
            .map(|p| match p.strip_prefix(&self.dir) {
                Ok(rel) => self.out.join(rel),
                Err(_) => p,
            })
            .collect();
        Ok(moved)
    }
}

impl Drop for Staging {
    /// A run that failed before its commit leaves the folder as it was.
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILES: &[&str] = &["model.safetensors", "metrics.csv", "steps.csv"];

    fn folder(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("taskgrad-staging-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("plots")).unwrap();
        for (f, text) in [
            ("model.safetensors", "old model"),
            ("metrics.csv", "old metrics"),
            ("steps.csv", "old steps"),
            ("plots/a.svg", "old a"),
            ("plots/gone.svg", "old gone"),
            ("notes.txt", "the user's"),
        ] {
            std::fs::write(dir.join(f), text).unwrap();
        }
        dir
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap()
    }

    #[test]
    fn a_run_that_fails_before_its_commit_leaves_exactly_the_old_folder() {
        let out = folder("fail");
        {
            let stage = Staging::new(&out, FILES, &["plots"]).unwrap();
            std::fs::write(stage.path("model.safetensors"), "new model").unwrap();
            std::fs::create_dir_all(stage.path("plots")).unwrap();
            std::fs::write(stage.path("plots").join("a.svg"), "new a").unwrap();
            // A plot fails here: the run returns its error, the stage drops.
        }
        assert_eq!(read(&out.join("model.safetensors")), "old model");
        assert_eq!(read(&out.join("metrics.csv")), "old metrics");
        assert_eq!(read(&out.join("plots/a.svg")), "old a");
        assert_eq!(read(&out.join("plots/gone.svg")), "old gone");
        assert!(!out.join(".staging").exists());
        let _ = std::fs::remove_dir_all(&out);
    }

    #[test]
    fn a_committed_run_replaces_every_output_and_only_outputs() {
        let out = folder("commit");
        // A staging folder a killed run left is cleared first.
        std::fs::create_dir_all(out.join(".staging/plots")).unwrap();
        std::fs::write(out.join(".staging/plots/stale.svg"), "stale").unwrap();
        let stage = Staging::new(&out, FILES, &["plots"]).unwrap();
        std::fs::write(stage.path("model.safetensors"), "new model").unwrap();
        std::fs::write(stage.path("metrics.csv"), "new metrics").unwrap();
        std::fs::create_dir_all(stage.path("plots")).unwrap();
        std::fs::write(stage.path("plots").join("a.svg"), "new a").unwrap();
        let written = vec![
            stage.path("model.safetensors"),
            stage.path("plots").join("a.svg"),
        ];
        let moved = stage.commit(written).unwrap();
        assert_eq!(
            moved,
            vec![out.join("model.safetensors"), out.join("plots/a.svg")]
        );
        assert_eq!(read(&out.join("model.safetensors")), "new model");
        assert_eq!(read(&out.join("metrics.csv")), "new metrics");
        assert_eq!(read(&out.join("plots/a.svg")), "new a");
        // The previous run's outputs this run did not make are gone; the user's file stays.
        assert!(!out.join("steps.csv").exists());
        assert!(!out.join("plots/gone.svg").exists());
        assert!(!out.join("plots/stale.svg").exists());
        assert_eq!(read(&out.join("notes.txt")), "the user's");
        assert!(!out.join(".staging").exists() && !out.join(".old-plots").exists());
        let _ = std::fs::remove_dir_all(&out);
    }
}
