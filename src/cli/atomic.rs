//! Writing outputs so that a crash never leaves half of one.
//!
//! - **A file** is written to `DIR/.NAME.tmp-PID`, fsynced, and renamed over `DIR/NAME`; then
//!   `DIR` itself is fsynced. `rename` replaces a file atomically, so a reader (or a crash) sees
//!   the old file or the new one, never a mix. The first fsync puts the data on disk before the
//!   rename publishes it (otherwise a power cut can leave a renamed file of zeros); the second
//!   puts the rename itself on disk before we report success.
//! - **A folder** (a checkpoint) is built as `DIR/.NAME.tmp-PID/`, every file and the folder
//!   fsynced, then swapped in with two renames, since no call replaces a non-empty folder
//!   atomically: the old folder moves aside to `DIR/.NAME.old-PID/`, the new one moves in, the
//!   old one is removed. A crash between the two renames leaves no `NAME/` but both copies, each
//!   complete: [`recover_swap`] finishes the swap on the next start.
//! - **On an error** the temp is removed before the error returns, and the error names the
//!   output, not only the temp.
//! - **Leftovers** of a process that died mid-write (`.NAME.tmp-PID`, `.NAME.old-PID`) are
//!   removed by [`remove_temps`], which the owner calls while it holds the folder's lock.

use anyhow::{Context, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// The temp path of a write of `path`: `DIR/.NAME.tmp-PID`.
pub fn temp_path(path: &Path) -> PathBuf {
    sibling(path, "tmp")
}

/// Where a folder swap moves the old folder: `DIR/.NAME.old-PID`.
fn aside_path(path: &Path) -> PathBuf {
    sibling(path, "old")
}

/// `DIR/.NAME.KIND-PID` for the current process: the names of every temp beside an output.
pub fn sibling(path: &Path, kind: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    path.with_file_name(format!(".{name}.{kind}-{}", std::process::id()))
}

/// Write `bytes` to `path` atomically: a temp file beside it, fsynced, then renamed.
/// A crash leaves either the old file or the new one, never half of one; an error leaves the
/// old file and no temp.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    let result = write_synced(&tmp, bytes).and_then(|()| rename_synced(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// Write `files` (name → bytes) as the folder `dir`, atomically: build it under a temporary
/// name, then swap it into place. An existing `dir` is replaced only once the new one is
/// complete and on disk; an error leaves the old `dir` and no temp.
pub fn write_dir_atomic(dir: &Path, files: &[(&str, Vec<u8>)]) -> Result<()> {
    let tmp = temp_path(dir);
    let result = build_dir(&tmp, files).and_then(|()| swap_in(&tmp, dir));
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result.with_context(|| format!("writing {}", dir.display()))
}

/// A new file `path` holding `bytes`, on disk.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// `from` renamed to `to`, and the rename on disk.
pub fn rename_synced(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to)
        .with_context(|| format!("renaming {} to {}", from.display(), to.display()))?;
    sync_dir(&parent_of(to))
}

/// The folder `tmp` holding `files`, every file and the folder itself on disk.
fn build_dir(tmp: &Path, files: &[(&str, Vec<u8>)]) -> Result<()> {
    if tmp.exists() {
        fs::remove_dir_all(tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    fs::create_dir_all(tmp).with_context(|| format!("creating {}", tmp.display()))?;
    for (name, bytes) in files {
        write_synced(&tmp.join(name), bytes)?;
    }
    sync_dir(tmp)
}

/// Moves the complete folder `tmp` to `dir`: the old `dir` aside, `tmp` in, the old one removed.
/// If the second rename fails, the old folder goes back.
pub fn swap_in(tmp: &Path, dir: &Path) -> Result<()> {
    let old = aside_path(dir);
    let had_old = dir.exists();
    if had_old {
        rename_synced(dir, &old)?;
    }
    if let Err(e) = rename_synced(tmp, dir) {
        if had_old {
            let _ = fs::rename(&old, dir);
        }
        return Err(e);
    }
    if had_old {
        fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
    }
    Ok(())
}

/// The folder holding `path` (`.` for a bare file name).
pub fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// fsync a folder, so that the renames and creations in it are on disk. (Opening a folder as a
/// file works on Unix; elsewhere there is nothing to do.)
fn sync_dir(dir: &Path) -> Result<()> {
    if cfg!(unix) {
        fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(())
}

/// What [`recover_swap`] did with a half-done swap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recovered {
    /// The new copy (this temp folder) was complete and went into place.
    Finished(PathBuf),
    /// Only the old copy (this folder) was there, and it went back.
    RolledBack(PathBuf),
}

/// Finishes a folder swap of [`write_dir_atomic`] that a crash cut between its two renames:
/// `dir` is missing while `.NAME.old-PID/` holds the previous copy. A `.NAME.tmp-PID/` of the
/// same PID is the new copy and complete (the old one moves aside only after the new one is on
/// disk), so it goes into place; without one, the old copy goes back. Leaves everything else
/// to [`remove_temps`]. Call it only while no other process may write beside `dir`.
pub fn recover_swap(dir: &Path) -> Result<Option<Recovered>> {
    if dir.exists() {
        return Ok(None);
    }
    let Some(name) = dir.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(None);
    };
    let parent = parent_of(dir);
    let olds = leftovers(&parent, &name, "old")?;
    let Some((_, first_old)) = olds.first() else {
        return Ok(None);
    };
    let new_copy = olds
        .iter()
        .map(|(pid, _)| parent.join(format!(".{name}.tmp-{pid}")))
        .find(|new| new.is_dir());
    if let Some(new) = new_copy {
        rename_synced(&new, dir)?;
        return Ok(Some(Recovered::Finished(new)));
    }
    rename_synced(first_old, dir)?;
    Ok(Some(Recovered::RolledBack(first_old.clone())))
}

/// Removes what interrupted writes of `names` left in `dir`: `.NAME.tmp-PID` and
/// `.NAME.old-PID`, files or folders. Call it only while no other process may write in `dir`
/// (the owner's lock held): then every such temp belongs to a process that is gone, whatever
/// its PID says (PIDs are reused, inside containers especially). Returns what was removed.
pub fn remove_temps(dir: &Path, names: &[&str]) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for name in names {
        for kind in ["tmp", "old"] {
            for (_, path) in leftovers(dir, name, kind)? {
                remove_path(&path)?;
                removed.push(path);
            }
        }
    }
    Ok(removed)
}

/// Removes a file or a folder, naming it if that fails; a path already gone is fine.
pub fn remove_path(path: &Path) -> Result<()> {
    let result = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        _ => fs::remove_file(path),
    };
    result.with_context(|| format!("removing {}", path.display()))
}

/// The entries `.NAME.KIND-PID` in `dir`, with their PIDs, sorted by name (none when `dir`
/// does not exist).
pub fn leftovers(dir: &Path, name: &str, kind: &str) -> Result<Vec<(u32, PathBuf)>> {
    let prefix = format!(".{name}.{kind}-");
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        r => r.with_context(|| format!("reading {}", dir.display()))?,
    };
    let mut out: Vec<(u32, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_str()?.to_string();
            let pid = file.strip_prefix(&prefix)?;
            let all_digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
            Some((pid.parse().ok().filter(|_| all_digits)?, e.path()))
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pretrain-atomic-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn dir_writes_replace_atomically() {
        let d = tmpdir("dir");
        let ck = d.join("ckpt");
        write_dir_atomic(&ck, &[("a.txt", b"one".to_vec())]).unwrap();
        write_dir_atomic(&ck, &[("a.txt", b"two".to_vec())]).unwrap();
        assert_eq!(fs::read(ck.join("a.txt")).unwrap(), b"two");
        assert_eq!(names(&d), ["ckpt"], "temporary folders were left behind");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn failed_writes_keep_the_old_output_name_it_and_leave_no_temp() {
        let d = tmpdir("fail");
        let ck = d.join("ckpt");
        write_dir_atomic(&ck, &[("a.txt", b"one".to_vec())]).unwrap();
        // A file name with a folder that does not exist: the write fails half way.
        let err = write_dir_atomic(&ck, &[("a.txt", b"x".to_vec()), ("no/b.txt", vec![])]);
        let err = format!("{:#}", err.unwrap_err());
        assert!(
            err.starts_with(&format!("writing {}", ck.display())),
            "{err}"
        );
        assert_eq!(fs::read(ck.join("a.txt")).unwrap(), b"one");
        let file = d.join("no/f.json");
        let err = format!("{:#}", write_atomic(&file, b"{}").unwrap_err());
        assert!(
            err.starts_with(&format!("writing {}", file.display())),
            "{err}"
        );
        assert_eq!(names(&d), ["ckpt"], "a failed write left its temp");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_swap_cut_between_its_renames_is_finished_or_rolled_back() {
        let d = tmpdir("swap");
        let ck = d.join("ckpt");
        let put = |p: &Path, s: &str| {
            fs::create_dir_all(p).unwrap();
            fs::write(p.join("a.txt"), s).unwrap();
        };
        // Killed after moving the old copy aside: both copies are there, no `ckpt`.
        put(&d.join(".ckpt.old-4242"), "old");
        put(&d.join(".ckpt.tmp-4242"), "new");
        let done = recover_swap(&ck).unwrap();
        assert_eq!(done, Some(Recovered::Finished(d.join(".ckpt.tmp-4242"))));
        assert_eq!(fs::read_to_string(ck.join("a.txt")).unwrap(), "new");
        assert_eq!(remove_temps(&d, &["ckpt"]).unwrap().len(), 1);
        assert_eq!(names(&d), ["ckpt"]);
        assert_eq!(recover_swap(&ck).unwrap(), None, "nothing to do");
        // Only the old copy: it goes back.
        fs::rename(&ck, d.join(".ckpt.old-7")).unwrap();
        let done = recover_swap(&ck).unwrap();
        assert_eq!(done, Some(Recovered::RolledBack(d.join(".ckpt.old-7"))));
        assert_eq!(fs::read_to_string(ck.join("a.txt")).unwrap(), "new");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn stale_temps_of_the_named_outputs_are_removed_and_nothing_else() {
        let d = tmpdir("stale");
        for f in [
            ".a.json.tmp-12",
            ".a.json.tmp-x",
            ".b.json.tmp-12",
            "a.json",
            ".lock",
        ] {
            fs::write(d.join(f), "").unwrap();
        }
        fs::create_dir_all(d.join(".ckpt.tmp-3/sub")).unwrap();
        let mut removed = remove_temps(&d, &["a.json", "ckpt"]).unwrap();
        removed.sort();
        assert_eq!(removed, [d.join(".a.json.tmp-12"), d.join(".ckpt.tmp-3")]);
        assert_eq!(
            names(&d),
            [".a.json.tmp-x", ".b.json.tmp-12", ".lock", "a.json"]
        );
        fs::remove_dir_all(&d).unwrap();
    }
}
