//! The job's files written into the work directory, what a compilation
//! left sent back, and the command's path resolved.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;

use crate::Output;
use monitor_protocol::{FRAME_FILE, Task, WORK_DIR, encode_file_payload};

pub(super) fn write_files(task: &Task) -> std::io::Result<()> {
    std::fs::create_dir_all(WORK_DIR)?;
    // The command's uid owns its work directory and files, as a user owns
    // what they write (the monitor's uid is not theirs).
    let give = |file: &std::fs::File| match task.uid {
        Some(uid) => std::os::unix::fs::fchown(file, Some(uid), Some(uid)),
        None => Ok(()),
    };
    for file in &task.files {
        let path = std::path::Path::new(WORK_DIR).join(&file.name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(file.mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        give(&f)?;
        f.write_all(&file.content)?;
    }
    // The directory last: once it is the command's, the monitor may no
    // longer write into it.
    give(&std::fs::File::open(WORK_DIR)?)
}

/// Sends the work dir's regular files; true when some did not fit in `max`.
pub(super) fn send_artifacts(out: &mut Output, max: u64) -> bool {
    let Ok(entries) = std::fs::read_dir(WORK_DIR) else {
        return false;
    };
    let mut names: Vec<_> = entries.flatten().collect();
    names.sort_by_key(|e| e.file_name());
    let mut total = 0u64;
    let mut truncated = false;
    for entry in names {
        // symlink_metadata: a planted symlink is skipped, never followed.
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if !meta.file_type().is_file() {
            continue;
        }
        // A name no submitted file could have (an option, a response file,
        // a control character) is left behind: it is never carried into the
        // run's task.
        let Some(name) = entry
            .file_name()
            .to_str()
            .filter(|n| monitor_protocol::valid_file_name(n))
            .map(str::to_string)
        else {
            continue;
        };
        if total + meta.len() > max {
            truncated = true;
            continue;
        }
        let Ok(content) = std::fs::read(entry.path()) else {
            continue;
        };
        total += content.len() as u64;
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        out.frame(FRAME_FILE, &encode_file_payload(&name, mode, &content));
    }
    truncated
}

/// argv[0] resolved against the task's PATH, as execve needs it.
pub(super) fn resolve(program: &[u8], env: &[(String, String)]) -> Vec<u8> {
    if program.contains(&b'/') {
        return program.to_vec();
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("/usr/local/bin:/usr/bin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = std::path::Path::new(dir).join(std::ffi::OsStr::from_bytes(program));
        if let Ok(meta) = std::fs::metadata(&candidate) {
            use std::os::unix::fs::PermissionsExt;
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return candidate.as_os_str().as_bytes().to_vec();
            }
        }
    }
    program.to_vec()
}
