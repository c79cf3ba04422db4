//! Creating the files the tool writes without following a symbolic link and without
//! replacing anything by accident, and telling when two names are the same file.
//!
//! Every file (result CSV and XLSX, XLSX checkpoints, run record, notify list, journal) is
//! first created under a fresh random name in the folder of its final name — `create_new`
//! (`O_EXCL`), which never follows a link — and then renamed to its final name:
//! - without `--force` with [`tempfile::NamedTempFile::persist_noclobber`], which fails if
//!   anything (a file, a folder, a symbolic link, even a dangling one) has the name already;
//! - with `--force` with [`tempfile::NamedTempFile::persist`], a rename: if the final name is
//!   a symbolic link, the link itself is replaced, never the file it points to.
//!
//! The result CSV is renamed into place right after its header is written, before any row,
//! and then appended to through the open handle, so a crash keeps every row already written.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::ReportError;

/// Who may read a file the tool creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// As any file the user creates (0666 less the umask on Unix): result files, notify list.
    Shared,
    /// The owner only (0600 on Unix, set at creation): run record, journal.
    OwnerOnly,
}

/// The folder a file named `path` goes in (`.` for a bare file name).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// An empty temporary file beside `path`, readable as `access` says.
fn temp_beside(path: &Path, access: Access) -> Result<NamedTempFile, ReportError> {
    let mut b = tempfile::Builder::new();
    b.prefix(".mfa-bulk-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = match access {
            Access::Shared => 0o666,
            Access::OwnerOnly => 0o600,
        };
        b.permissions(std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = access;
    b.tempfile_in(folder_of(path))
        .map_err(|e| ReportError::io(path, "create", without_temp_name(e)))
}

/// `tempfile` adds the random temporary name to its errors ("… at path …/.tmpXyZ"): the
/// admin knows nothing of that name, so keep the plain reason; our message names `path`.
fn without_temp_name(e: std::io::Error) -> std::io::Error {
    if e.raw_os_error().is_some() || e.get_ref().is_none() {
        return e;
    }
    let text = e.to_string();
    match text.split_once(" at path ") {
        Some((reason, _)) => std::io::Error::new(e.kind(), reason.to_string()),
        None => e,
    }
}

/// Gives `tmp` its final name `path` (see the module documentation for `force`).
fn persist(tmp: NamedTempFile, path: &Path, force: bool) -> Result<File, ReportError> {
    let done = if force {
        tmp.persist(path)
    } else {
        tmp.persist_noclobber(path)
    };
    // On failure the temporary file is dropped here, which deletes it.
    done.map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            ReportError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            ReportError::io(path, "create", e.error)
        }
    })
}

/// Creates the file `path` holding `first` (a header; may be empty) and returns it open for
/// appending more. Never follows a link at `path`; without `force` refuses an existing name
/// ([`ReportError::Exists`]). Not synced: the caller syncs when it has written what matters.
pub(crate) fn create_new(
    path: &Path,
    first: &[u8],
    force: bool,
    access: Access,
) -> Result<File, ReportError> {
    let mut tmp = temp_beside(path, access)?;
    tmp.write_all(first)
        .and_then(|_| tmp.flush())
        .map_err(|e| ReportError::io(path, "write", e))?;
    persist(tmp, path, force)
}

/// Writes `bytes` to a new file beside `path`, syncs it, and renames it to `path` — replacing
/// what is there only with `replace` (`--force`, or a later checkpoint of our own file).
pub(crate) fn write_whole(
    path: &Path,
    bytes: &[u8],
    replace: bool,
    access: Access,
) -> Result<(), ReportError> {
    let mut tmp = temp_beside(path, access)?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| ReportError::io(path, "write", e))?;
    persist(tmp, path, replace).map(drop)
}

/// Opens the existing file `path` for appending, refusing a symbolic link
/// ([`ReportError::Symlink`]) and anything but a plain file.
pub(crate) fn open_append_no_link(path: &Path) -> Result<File, ReportError> {
    refuse_link(path)?;
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| ReportError::io(path, "open", e))?;
    // The name could have been swapped for a link between the check and the open: the file
    // opened must be the plain file the name holds now.
    refuse_link(path)?;
    let is_named = file
        .metadata()
        .map(|m| m.is_file())
        .and_then(|plain| Ok(plain && opened_is_named(&file, path)?))
        .map_err(|e| ReportError::io(path, "open", e))?;
    if !is_named {
        return Err(ReportError::Symlink {
            path: path.to_path_buf(),
        });
    }
    Ok(file)
}

/// Whether the open `file` is the file named `path` (not following a link at `path`).
#[cfg(unix)]
fn opened_is_named(file: &File, path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (opened, named) = (file.metadata()?, std::fs::symlink_metadata(path)?);
    Ok(opened.dev() == named.dev() && opened.ino() == named.ino())
}

#[cfg(not(unix))]
fn opened_is_named(file: &File, path: &Path) -> std::io::Result<bool> {
    Ok(same_file_crate::Handle::from_file(file.try_clone()?)?
        == same_file_crate::Handle::from_path(path)?)
}

/// [`ReportError::Symlink`] if `path` is a symbolic link (dangling or not).
pub(crate) fn refuse_link(path: &Path) -> Result<(), ReportError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(ReportError::Symlink {
            path: path.to_path_buf(),
        }),
        _ => Ok(()),
    }
}

/// Whether anything (a file, a folder, a link, even a dangling one) has the name `path`.
pub(crate) fn name_taken(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Whether `a` and `b` are the same file: the same name, a symbolic link to it (links are
/// followed for this comparison) or a hard link. By device and inode on Unix, by the
/// platform's file id (volume serial number and file index on Windows) elsewhere.
/// `Ok(false)` when either does not exist.
pub fn same_file(a: &Path, b: &Path) -> std::io::Result<bool> {
    for p in [a, b] {
        match std::fs::metadata(p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
    }
    identical(a, b)
}

#[cfg(unix)]
fn identical(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (ma, mb) = (std::fs::metadata(a)?, std::fs::metadata(b)?);
    Ok(ma.dev() == mb.dev() && ma.ino() == mb.ino())
}

#[cfg(not(unix))]
fn identical(a: &Path, b: &Path) -> std::io::Result<bool> {
    same_file_crate::is_same_file(a, b)
}

/// The absolute name `path` stands for, with its folder's links resolved (the file name
/// itself is kept as is): two outputs with the same key would be written to the same place.
fn place_key(path: &Path) -> Option<PathBuf> {
    let folder = std::fs::canonicalize(folder_of(path)).ok()?;
    Some(folder.join(path.file_name()?))
}

/// Refuses — before anything is sent to Graph, and even with `--force` — to write any of
/// `outputs` over one of `inputs`: the same file by identity ([`same_file`]: the same name,
/// through a symbolic link or a hard link). Also refuses two outputs with the same name (one
/// would replace the other). Each pair is `(what it is, path)`, e.g. `("result file", …)`,
/// `("input file", …)`; the output `-` (standard output) is skipped.
pub fn refuse_clobbering_inputs(
    outputs: &[(&str, &Path)],
    inputs: &[(&str, &Path)],
) -> Result<(), ReportError> {
    let outputs: Vec<&(&str, &Path)> = outputs
        .iter()
        .filter(|(_, p)| !super::is_stdout(p))
        .collect();
    for (what_out, out) in &outputs {
        for (what_in, input) in inputs {
            let same = same_file(out, input).map_err(|e| ReportError::io(out, "check", e))?;
            if same {
                return Err(ReportError::SameFile {
                    output: out.to_path_buf(),
                    output_role: what_out.to_string(),
                    input: input.to_path_buf(),
                    input_role: what_in.to_string(),
                });
            }
        }
    }
    for (i, (what_a, a)) in outputs.iter().enumerate() {
        for (what_b, b) in &outputs[i + 1..] {
            let same_place = match (place_key(a), place_key(b)) {
                (Some(ka), Some(kb)) => ka == kb,
                _ => a == b,
            };
            let same = same_place || same_file(a, b).map_err(|e| ReportError::io(a, "check", e))?;
            if same {
                return Err(ReportError::SameOutput {
                    first: a.to_path_buf(),
                    first_role: what_a.to_string(),
                    second: b.to_path_buf(),
                    second_role: what_b.to_string(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_new_refuses_any_existing_name_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        let mut f = create_new(&p, b"head\n", false, Access::Shared).unwrap();
        f.write_all(b"row\n").unwrap();
        drop(f);
        assert_eq!(std::fs::read(&p).unwrap(), b"head\nrow\n");
        let err = create_new(&p, b"x", false, Access::Shared).unwrap_err();
        assert!(matches!(err, ReportError::Exists { .. }), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), b"head\nrow\n");
        create_new(&p, b"new\n", true, Access::Shared).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.csv")]);
    }

    #[test]
    fn a_bare_file_name_goes_in_the_current_folder() {
        assert_eq!(folder_of(Path::new("out.csv")), Path::new("."));
        assert_eq!(folder_of(Path::new("d/out.csv")), Path::new("d"));
        assert_eq!(folder_of(Path::new("/out.csv")), Path::new("/"));
    }

    #[test]
    fn a_missing_folder_is_reported_with_the_final_name_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope").join("r.csv");
        let msg = create_new(&p, b"", false, Access::Shared)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("r.csv") && !msg.contains(".mfa-bulk-"),
            "{msg}"
        );
        assert!(!msg.contains(" at path "), "{msg}");
    }

    #[cfg(unix)]
    #[test]
    fn modes_are_set_at_creation() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("p");
        let shared = dir.path().join("s");
        write_whole(&private, b"{}", false, Access::OwnerOnly).unwrap();
        create_new(&shared, b"", false, Access::Shared).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&private), 0o600);
        // 0666 less the umask: readable by the group at least with the usual 022 or 002.
        assert_eq!(mode(&shared) & 0o600, 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn force_replaces_a_link_never_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let p = dir.path().join("out.csv");
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        let err = write_whole(&p, b"new", false, Access::Shared).unwrap_err();
        assert!(matches!(err, ReportError::Exists { .. }), "{err}");
        write_whole(&p, b"new", true, Access::Shared).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!std::fs::symlink_metadata(&p)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
    }

    #[cfg(unix)]
    #[test]
    fn a_dangling_link_counts_as_taken() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.csv");
        let target = dir.path().join("would-be-created");
        std::os::unix::fs::symlink(&target, &p).unwrap();
        assert!(name_taken(&p));
        let err = create_new(&p, b"x", false, Access::Shared).unwrap_err();
        assert!(matches!(err, ReportError::Exists { .. }), "{err}");
        assert!(!target.exists());
    }

    #[cfg(unix)]
    #[test]
    fn append_refuses_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let p = dir.path().join("j");
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        let err = open_append_no_link(&p).unwrap_err();
        assert!(matches!(err, ReportError::Symlink { .. }), "{err}");
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, b"a").unwrap();
        let mut f = open_append_no_link(&p).unwrap();
        f.write_all(b"b").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"ab");
    }

    #[test]
    fn same_file_by_name_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, b"same bytes").unwrap();
        assert!(same_file(&a, &a).unwrap());
        assert!(same_file(&a, &dir.path().join(".").join("a")).unwrap());
        assert!(!same_file(&a, &b).unwrap(), "b does not exist");
        assert!(!same_file(&b, &a).unwrap(), "b does not exist");
        std::fs::write(&b, b"same bytes").unwrap();
        assert!(
            !same_file(&a, &b).unwrap(),
            "equal content is not the same file"
        );
    }

    #[cfg(unix)]
    #[test]
    fn same_file_through_symlink_and_hard_link() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("users.csv");
        std::fs::write(&input, b"upn\n").unwrap();
        let sym = dir.path().join("sym.csv");
        let hard = dir.path().join("hard.csv");
        std::os::unix::fs::symlink(&input, &sym).unwrap();
        std::fs::hard_link(&input, &hard).unwrap();
        assert!(same_file(&sym, &input).unwrap());
        assert!(same_file(&input, &hard).unwrap());
        assert!(same_file(&sym, &hard).unwrap());
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("gone"), &dangling).unwrap();
        assert!(!same_file(&dangling, &input).unwrap());
    }

    #[test]
    fn output_that_is_the_input_is_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("users.csv");
        std::fs::write(&input, b"upn\n").unwrap();
        let other = dir.path().join("r.csv");
        let err = refuse_clobbering_inputs(
            &[("result file", &other), ("run record", &input)],
            &[("input file", &input)],
        )
        .unwrap_err();
        assert!(matches!(err, ReportError::SameFile { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("run record") && msg.contains("input file"),
            "{msg}"
        );
        assert!(msg.matches("users.csv").count() >= 2, "{msg}");
        assert!(
            msg.contains("--force") && msg.contains("another name"),
            "{msg}"
        );
        refuse_clobbering_inputs(&[("result file", &other)], &[("input file", &input)]).unwrap();
        refuse_clobbering_inputs(&[("result file", Path::new("-"))], &[("input", &input)]).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn output_through_a_link_to_an_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("users.xlsx");
        let exclude = dir.path().join("vip.csv");
        let plan = dir.path().join("plan.csv");
        for p in [&input, &exclude, &plan] {
            std::fs::write(p, b"x").unwrap();
        }
        let sym = dir.path().join("sym.csv");
        let hard = dir.path().join("hard.csv");
        std::os::unix::fs::symlink(&exclude, &sym).unwrap();
        std::fs::hard_link(&plan, &hard).unwrap();
        let inputs = [
            ("input file", input.as_path()),
            ("exclusion file", exclude.as_path()),
            ("--plan file", plan.as_path()),
        ];
        let err = refuse_clobbering_inputs(&[("result file", &sym)], &inputs).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("sym.csv") && msg.contains("vip.csv"), "{msg}");
        assert!(msg.contains("exclusion file"), "{msg}");
        let err = refuse_clobbering_inputs(&[("notify list", &hard)], &inputs).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("hard.csv") && msg.contains("plan.csv"),
            "{msg}"
        );
    }

    #[test]
    fn two_outputs_with_one_name_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path().join("r.csv");
        let same = dir.path().join(".").join("r.csv");
        let err = refuse_clobbering_inputs(&[("result file", &r), ("notify list", &same)], &[])
            .unwrap_err();
        assert!(matches!(err, ReportError::SameOutput { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("notify list") && msg.contains("result file"),
            "{msg}"
        );
        refuse_clobbering_inputs(
            &[
                ("result file", &r),
                ("notify list", &dir.path().join("n.txt")),
            ],
            &[],
        )
        .unwrap();
    }
}
