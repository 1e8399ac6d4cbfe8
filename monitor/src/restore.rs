//! A container made clean again between steps: every process of the
//! command's uid stopped, the scratch space emptied, nothing left checked.

use std::time::{Duration, Instant};

use rustix::process::{Pid, WaitOptions};

use crate::{
    RESTORE_KILL,
    files::write_files,
    privileges::{become_uid, capset},
    sys::{errno, exit_child, kill_everyone_else},
};
use monitor_protocol::{Task, WORK_DIR};

/// Restores the container to the task's start after a case: every other
/// process killed and reaped; `/tmp` (the work directory with it),
/// `/dev/shm` and `/dev/mqueue` emptied and the command's System V IPC
/// objects removed (as the command's uid, which owns or created them: the
/// monitor may not delete another uid's files from the sticky `/tmp`); the
/// task's files written again; then [`nothing_left`] checks it. Nothing of
/// one case is then visible to, or counted against, the next.
pub(super) fn restore(task: &Task) -> Result<(), String> {
    clear(task.uid)?;
    write_files(task).map_err(|e| format!("cannot write the job's files again: {e}"))?;
    nothing_left(&[std::path::Path::new(WORK_DIR)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .as_ref()])
}

/// Fails unless nothing a command could leave is there: `/tmp` holds
/// nothing but `names`; `/dev/shm` and `/dev/mqueue` are empty (files,
/// directories, FIFOs, sockets, POSIX shared memory and message queues
/// alike); and the container's IPC namespace holds no System V shared
/// memory segment, message queue or semaphore set of any owner or
/// creator (counted by the kernel's `*_INFO` calls, which need no
/// permission and which gVisor answers too, where `/proc/sysvipc` is
/// missing). Checked, never assumed: the caller ends the container when
/// anything is left.
pub(super) fn nothing_left(names: &[&str]) -> Result<(), String> {
    let left: Vec<String> = std::fs::read_dir("/tmp")
        .map_err(|e| format!("cannot read /tmp: {e}"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !names.contains(&name.as_str()))
        .collect();
    if !left.is_empty() {
        return Err(format!("/tmp still holds {left:?}"));
    }
    for dir in ["/dev/shm", "/dev/mqueue"] {
        // Absent or unreadable (gVisor has no /dev/mqueue; its programs
        // may not open a queue, see `seccomp_filter`) holds nothing.
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let left: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if !left.is_empty() {
            return Err(format!("{dir} still holds {left:?}"));
        }
    }
    let sysv = sysv_objects();
    for (kind, count) in [
        ("shared memory segments", sysv.shm),
        ("message queues", sysv.msg),
        ("semaphore sets", sysv.sem),
    ] {
        if count != 0 {
            return Err(format!("{count} System V {kind} left"));
        }
    }
    Ok(())
}

/// How many System V IPC objects of each kind the IPC namespace holds.
pub(super) struct SysvCounts {
    pub(super) shm: i64,
    pub(super) msg: i64,
    pub(super) sem: i64,
}

/// The kernel's own counts (`SHM_INFO`'s `used_ids`, `MSG_INFO`'s
/// `msgpool`, `SEM_INFO`'s `semusz`), whoever owns the objects; a call that
/// fails counts as one object left, so a count never read is never zero.
pub(super) fn sysv_objects() -> SysvCounts {
    const SHM_INFO: i32 = 14;
    // Room for `struct shm_info`, `msginfo` and `seminfo` alike.
    let mut buffer = [0 as libc::c_int; 32];
    let pointer = buffer.as_mut_ptr();
    // SAFETY: each call writes its info struct (at most 48 bytes) into
    // `buffer` (128 bytes); `used_ids` and `msgpool` are their struct's
    // first int, `semusz` the eighth int of `seminfo`.
    unsafe {
        let shm = if libc::shmctl(0, SHM_INFO, pointer.cast()) < 0 {
            1
        } else {
            i64::from(buffer[0])
        };
        buffer = [0; 32];
        let msg = if libc::msgctl(0, libc::MSG_INFO, pointer.cast()) < 0 {
            1
        } else {
            i64::from(buffer[0])
        };
        buffer = [0; 32];
        let sem = if libc::semctl(0, 0, libc::SEM_INFO, pointer) < 0 {
            1
        } else {
            i64::from(buffer[7])
        };
        SysvCounts { shm, msg, sem }
    }
}

/// Clears the container: every process but the monitor killed and reaped;
/// `/tmp`, `/dev/shm` and `/dev/mqueue` emptied and the System V IPC
/// objects `uid` owns or created removed (as `uid`: the creator may remove
/// an object whatever owner it gave it).
pub(super) fn clear(uid: Option<u32>) -> Result<(), String> {
    if std::process::id() != 1 {
        return Err("the monitor is not PID 1, so it cannot stop every process of a case".into());
    }
    let until = Instant::now() + RESTORE_KILL;
    loop {
        kill_everyone_else();
        // Every exited child (all are ours) reaped.
        while let Ok(Some(_)) = rustix::process::waitpid(None, WaitOptions::NOHANG) {}
        let others = other_processes();
        if others == 0 {
            break;
        }
        if Instant::now() >= until {
            return Err(format!("{others} processes of the case did not die"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    match uid {
        Some(uid) => {
            // SAFETY: the monitor is single-threaded; the child drops to
            // the command's uid (no capability left) and only removes
            // files and IPC objects before it exits.
            let child = unsafe { libc::fork() };
            if child < 0 {
                return Err(format!("fork failed: {}", std::io::Error::last_os_error()));
            }
            if child == 0 {
                let dropped = become_uid(uid).and_then(|()| capset(0));
                let code = match dropped.map(|()| empty_scratch(Some(uid))) {
                    Ok(Ok(())) => 0,
                    Ok(Err(e)) => {
                        eprintln!("code-runner-monitor: {e}");
                        1
                    }
                    Err(_) => 2,
                };
                exit_child(code);
            }
            let cleaner = Pid::from_raw(child).expect("a child's pid");
            match rustix::process::waitpid(Some(cleaner), WaitOptions::empty()) {
                Ok(Some((_, status))) if status.exit_status() == Some(0) => {}
                status => {
                    return Err(format!(
                        "emptying the scratch space as the command's uid failed ({status:?})"
                    ));
                }
            }
        }
        None => empty_scratch(None)?,
    }
    Ok(())
}

/// Processes in the container other than the monitor.
pub(super) fn other_processes() -> usize {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc").map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name != me.as_str() && !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
            })
            .count()
    })
}

/// Empties the scratch file systems a case may write (`/tmp`, `/dev/shm`,
/// `/dev/mqueue`) and removes the System V IPC objects `uid` owns or
/// created (all of them when `None`). A creator may give an object to
/// another owner (`IPC_SET`), so the owner alone would miss it. Where
/// `/proc/sysvipc` is missing (gVisor) no object can be found by id; the
/// check after the clear then finds any left, and the container is ended.
pub(super) fn empty_scratch(uid: Option<u32>) -> Result<(), String> {
    for dir in ["/tmp", "/dev/shm", "/dev/mqueue"] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            remove_tree(&path).map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
        }
    }
    for (table, id_column) in [("shm", "shmid"), ("msg", "msqid"), ("sem", "semid")] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/sysvipc/{table}")) else {
            continue;
        };
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
        let column = |name: &str| header.iter().position(|c| *c == name);
        let (Some(id_at), Some(uid_at), Some(cuid_at)) =
            (column(id_column), column("uid"), column("cuid"))
        else {
            continue;
        };
        for line in lines {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let uid_in = |at: usize| fields.get(at).and_then(|f| f.parse::<u32>().ok());
            let Some(id) = fields.get(id_at).and_then(|f| f.parse::<i32>().ok()) else {
                continue;
            };
            let ours =
                uid.is_none_or(|uid| uid_in(uid_at) == Some(uid) || uid_in(cuid_at) == Some(uid));
            if !ours {
                continue;
            }
            // SAFETY: removing an IPC object by id; no pointer is read.
            let removed = unsafe {
                match table {
                    "shm" => libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()),
                    "msg" => libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()),
                    _ => libc::semctl(id, 0, libc::IPC_RMID),
                }
            };
            if removed != 0 && errno() != libc::EINVAL && errno() != libc::EIDRM {
                return Err(format!(
                    "cannot remove System V {table} {id}: {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
    }
    Ok(())
}

/// Removes a file, or a directory and everything in it, never following a
/// symbolic link; a directory is first made the owner's to read and write
/// (a case may have taken those rights away from itself).
pub(super) fn remove_tree(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return std::fs::remove_file(path);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    for entry in std::fs::read_dir(path)? {
        remove_tree(&entry?.path())?;
    }
    std::fs::remove_dir(path)
}
