//! How an output folder appears: complete or not at all, and never at the cost of the old one.
//!
//! A file is written under a temp name and renamed into place ([`write_atomic`](super::write_atomic)).
//! A folder of files (a tokenizer, a dataset of shards) cannot be renamed over an existing one in
//! one step, so a [`StagedDir`] builds it beside its destination, `DIR/.NAME.tmp-PID`, and
//! [`StagedDir::commit`] swaps it in with two renames:
//!
//! 1. `NAME` → `.NAME.old-PID` (skipped when there is no old folder),
//! 2. `.NAME.tmp-PID` → `NAME`,
//!
//! and then removes the old folder. A crash can stop between any two steps; [`recover`], which
//! every writer and reader of such a folder calls first, finishes the swap (step 2 and the removal)
//! or, when the new folder is gone too, puts the old one back. A run that fails removes its own
//! temp folder; temps left by a process that no longer runs (a crash, a kill) are removed by the
//! next start. "No longer runs" is read from `/proc/PID`: where there is no `/proc`, nothing is
//! ever taken to be stale. One writer per destination at a time: two runs writing the same folder
//! at once each build their own copy, and the last to commit wins.

use super::atomic::{leftovers, parent_of, remove_path, rename_synced, sibling, swap_in};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// The kinds of temp names this crate gives to things beside an output `NAME`:
/// `.NAME.KIND-PID`.
pub const TEMP_KINDS: &[&str] = &["tmp", "old", "spool1", "spool2"];

/// `DIR/.NAME.KIND-PID` for the current process.
pub fn temp_sibling(path: &Path, kind: &str) -> PathBuf {
    sibling(path, kind)
}

/// The last component of `path`, lossily as text.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into())
}

/// Whether a temp made by process `pid` may still be in use. Our own PID counts as gone: a
/// temp named with it that exists before we made ours was left by an earlier process with the
/// same PID.
fn pid_running(pid: u32) -> bool {
    if pid == std::process::id() {
        return false;
    }
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

/// The temps of kind `kind` beside `path` whose process no longer runs, with their PIDs.
fn stale(path: &Path, kind: &str) -> Result<Vec<(PathBuf, u32)>> {
    let found = leftovers(&parent_of(path), &file_name(path), kind)?;
    Ok(found
        .into_iter()
        .filter(|&(pid, _)| !pid_running(pid))
        .map(|(pid, p)| (p, pid))
        .collect())
}

/// Remove every temp of the given kinds beside `path` left by a process that no longer runs.
pub fn remove_stale_temps(path: &Path, kinds: &[&str]) -> Result<()> {
    for kind in kinds {
        for (p, _) in stale(path, kind)? {
            remove_path(&p)?;
        }
    }
    Ok(())
}

/// Finish or roll back a swap into `dest` that a dead process left half done, then remove the
/// stale temps beside `dest`. See the module docs for the steps.
pub fn recover(dest: &Path) -> Result<()> {
    for (old, pid) in stale(dest, "old")? {
        let new = dest.with_file_name(format!(".{}.tmp-{pid}", file_name(dest)));
        if !dest.exists() {
            // Stopped between the two renames: the new folder is complete (the old one is only
            // moved aside once it is), so finish; without it, put the old one back.
            rename_synced(if new.is_dir() { &new } else { &old }, dest)?;
        }
        remove_path(&old)?;
    }
    remove_stale_temps(dest, &["tmp"])
}

/// The folders [`create_dirs`] made. Dropped without [`NewDirs::keep`], it removes those that
/// are still empty, so a run that fails leaves no empty folder behind.
pub struct NewDirs(Vec<PathBuf>);

impl NewDirs {
    /// The run succeeded: the folders stay.
    pub fn keep(&mut self) {
        self.0.clear();
    }
}

impl Drop for NewDirs {
    fn drop(&mut self) {
        for dir in &self.0 {
            let _ = std::fs::remove_dir(dir); // deepest first; fails (and stays) when not empty
        }
    }
}

/// Create folder `dir` and its missing ancestors, remembering which were made ([`NewDirs`]).
pub fn create_dirs(dir: &Path) -> Result<NewDirs> {
    let mut missing = Vec::new();
    let mut next = Some(dir);
    while let Some(d) = next.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        missing.push(d.to_path_buf());
        next = d.parent();
    }
    let made = NewDirs(missing);
    std::fs::create_dir_all(dir).with_context(|| format!("creating folder {}", dir.display()))?;
    Ok(made)
}

/// A folder built under a temp name beside its destination and swapped in by [`commit`]
/// (see the module docs). Dropped without a commit, it removes its temp folder.
///
/// [`commit`]: StagedDir::commit
pub struct StagedDir {
    dest: PathBuf,
    tmp: PathBuf,
    committed: bool,
    /// The folders made to hold it, removed again if it is never committed.
    parents: NewDirs,
}

impl StagedDir {
    /// Recover `dest` ([`recover`]), check that whatever is there now may be replaced (a folder
    /// holding only files for which `ours` is true, or nothing), and create the temp folder. Fails
    /// here, before any work, when the destination cannot be written.
    pub fn create(dest: &Path, ours: fn(&str) -> bool) -> Result<StagedDir> {
        if dest.file_name().is_none() {
            bail!("{}: name the output folder itself", dest.display());
        }
        recover(dest)?;
        check_replaceable(dest, ours)?;
        let parents = create_dirs(&parent_of(dest))?;
        let tmp = super::temp_path(dest);
        std::fs::create_dir(&tmp)
            .with_context(|| format!("creating temp folder {}", tmp.display()))?;
        Ok(StagedDir {
            dest: dest.to_path_buf(),
            tmp,
            committed: false,
            parents,
        })
    }

    /// Where to write the folder's files.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Swap the finished folder into place and remove the old one.
    pub fn commit(mut self) -> Result<()> {
        swap_in(&self.tmp, &self.dest)?;
        self.committed = true;
        self.parents.keep();
        Ok(())
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
        // Then `parents` drops, removing the folders made for it if it was not committed.
    }
}

/// Refuse to replace anything but a folder of our own files (or nothing).
fn check_replaceable(dest: &Path, ours: fn(&str) -> bool) -> Result<()> {
    let Ok(meta) = std::fs::metadata(dest) else {
        return Ok(());
    };
    if !meta.is_dir() {
        bail!("{}: exists and is not a folder", dest.display());
    }
    let entries =
        std::fs::read_dir(dest).with_context(|| format!("reading folder {}", dest.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading folder {}", dest.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !ours(&name) && !is_temp_of(&name, ours) {
            bail!(
                "{}: holds {name:?}, which this program does not write; it replaces the whole \
                 folder, so give a new or empty folder",
                dest.display()
            );
        }
    }
    Ok(())
}

/// Whether `name` is a temp `.X.KIND-PID` of a file `X` for which `ours` is true.
fn is_temp_of(name: &str, ours: fn(&str) -> bool) -> bool {
    let Some(rest) = name.strip_prefix('.') else {
        return false;
    };
    TEMP_KINDS.iter().any(|kind| {
        let tail = format!(".{kind}-");
        rest.rfind(&tail).is_some_and(|at| {
            let (x, pid) = (&rest[..at], &rest[at + tail.len()..]);
            ours(x) && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_parse_only_when_exact() {
        let root = scratch("names");
        for n in [
            ".shards.tmp-42",
            ".shards.old-7",
            ".shards.tmp-",
            ".shards.tmp-4x",
        ] {
            std::fs::write(root.join(n), b"").unwrap();
        }
        for n in [".shards2.tmp-4", "shards.tmp-5"] {
            std::fs::write(root.join(n), b"").unwrap();
        }
        let pids = |kind| -> Vec<u32> {
            let found = leftovers(&root, "shards", kind).unwrap();
            found.into_iter().map(|(pid, _)| pid).collect()
        };
        assert_eq!(pids("tmp"), [42]);
        assert_eq!(pids("old"), [7]);
        assert!(is_temp_of(".meta.json.tmp-12", |n| n == "meta.json"));
        assert!(!is_temp_of(".notes.txt.tmp-12", |n| n == "meta.json"));
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn a_pid_above_the_kernel_limit_never_runs() {
        // Linux PIDs stop at 2^22; where there is no /proc nothing is stale.
        let has_proc = Path::new("/proc/self").exists();
        assert_eq!(pid_running(99_999_999), !has_proc);
    }

    /// A fresh folder under the system temp folder for one test.
    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("pretrain-outputs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_staged_folder_replaces_the_old_one_or_vanishes() {
        let root = scratch("staged");
        let dest = root.join("out");
        let ours = |n: &str| n == "a.txt";
        let staged = StagedDir::create(&dest, ours).unwrap();
        std::fs::write(staged.path().join("a.txt"), b"one").unwrap();
        staged.commit().unwrap();
        assert_eq!(std::fs::read(dest.join("a.txt")).unwrap(), b"one");
        // Dropped without a commit: the old folder stays, the temp goes.
        let staged = StagedDir::create(&dest, ours).unwrap();
        std::fs::write(staged.path().join("a.txt"), b"two").unwrap();
        drop(staged);
        assert_eq!(std::fs::read(dest.join("a.txt")).unwrap(), b"one");
        assert_eq!(names(&root), ["out"]);
        // Committed over the old one: nothing else is left beside it.
        let staged = StagedDir::create(&dest, ours).unwrap();
        std::fs::write(staged.path().join("a.txt"), b"three").unwrap();
        staged.commit().unwrap();
        assert_eq!(std::fs::read(dest.join("a.txt")).unwrap(), b"three");
        assert_eq!(names(&root), ["out"]);
        // A folder holding other files is not ours to replace.
        std::fs::write(dest.join("b.txt"), b"theirs").unwrap();
        assert!(StagedDir::create(&dest, ours).is_err());
        assert_eq!(names(&root), ["out"]);
        let _ = std::fs::remove_dir_all(root);
    }
}
