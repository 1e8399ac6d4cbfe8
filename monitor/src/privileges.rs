//! The monitor's privileges: the capabilities it keeps, becoming
//! [`MONITOR_UID`], and the seccomp filter the command runs under.

use monitor_protocol::{MONITOR_UID, Task};

/// Capability numbers (linux/capability.h).
pub(super) const CAP_CHOWN: u32 = 0;

pub(super) const CAP_DAC_READ_SEARCH: u32 = 2;

pub(super) const CAP_KILL: u32 = 5;

pub(super) const CAP_SETGID: u32 = 6;

pub(super) const CAP_SETUID: u32 = 7;

/// What the monitor keeps as [`MONITOR_UID`]: give the work directory and
/// the job's files to the command's uid (CHOWN), read back what a
/// compilation left whatever its modes (DAC_READ_SEARCH), stop every process
/// of the command's uid (KILL), and start the command under that uid
/// (SETGID, SETUID). The container has no other capability to keep.
pub(super) const MONITOR_CAPS: u64 =
    1 << CAP_CHOWN | 1 << CAP_DAC_READ_SEARCH | 1 << CAP_KILL | 1 << CAP_SETGID | 1 << CAP_SETUID;

/// `capset(2)` of this thread: effective and permitted both `caps`,
/// nothing inheritable. A raw system call: async-signal-safe, so the child
/// may call it between `fork` and `execve`.
pub(super) fn capset(caps: u64) -> rustix::io::Result<()> {
    use rustix::thread::{CapabilitySet, CapabilitySets, set_capabilities};
    let caps = CapabilitySet::from_bits_retain(caps);
    set_capabilities(
        None,
        CapabilitySets {
            effective: caps,
            permitted: caps,
            inheritable: CapabilitySet::empty(),
        },
    )
}

/// This process's groups, gids and uids all `uid` (its gid is its uid), no
/// supplementary group. By the system calls themselves, of this thread:
/// the monitor (and the child that calls this between `fork` and
/// `execve`) has no other.
pub(super) fn become_uid(uid: u32) -> rustix::io::Result<()> {
    use rustix::thread::{set_thread_groups, set_thread_res_gid, set_thread_res_uid};
    let (uid, gid) = (
        rustix::process::Uid::from_raw(uid),
        rustix::process::Gid::from_raw(uid),
    );
    set_thread_groups(&[])?;
    set_thread_res_gid(gid, gid, gid)?;
    set_thread_res_uid(uid, uid, uid)
}

/// When the task names the command's uid: from root to [`MONITOR_UID`],
/// keeping only [`MONITOR_CAPS`]. A monitor that is not root cannot keep
/// the command off its own uid, and refuses to run it.
pub(super) fn become_monitor(task: &Task) -> Result<(), String> {
    use rustix::process::{DumpableBehavior, set_dumpable_behavior};
    let Some(_) = task.uid else {
        return Ok(());
    };
    if !rustix::process::geteuid().is_root() {
        return Err(
            "the monitor is not root: it cannot run the command under a uid of \
             its own (the container must start as root with its capabilities)"
                .into(),
        );
    }
    fn failed(what: &str) -> impl Fn(rustix::io::Errno) -> String + '_ {
        move |e| format!("{what}: {e}")
    }
    rustix::thread::set_keep_capabilities(true).map_err(failed("keeping capabilities"))?;
    become_uid(MONITOR_UID).map_err(failed("becoming the monitor's uid"))?;
    let _ = rustix::thread::set_keep_capabilities(false);
    // The uid change was made with the capabilities kept in the permitted
    // set only; raise those the monitor uses, drop the rest.
    capset(MONITOR_CAPS).map_err(failed("keeping the monitor's capabilities"))?;
    // Changing uid made it dumpable again.
    let _ = set_dumpable_behavior(DumpableBehavior::NotDumpable);
    Ok(())
}

/// The monitor's own seccomp filter, stacked on the engine's profile (the
/// kernel applies both; the stricter answer wins). Refused with ENOSYS:
///
/// - `io_uring_setup`, `io_uring_enter` and `io_uring_register`, always. A
///   job never needs io_uring (every runtime falls back to plain system
///   calls), it is a large kernel attack surface, and the default profile
///   of the engines this runs on (Docker 20.10) allows it. Numbers 425–427
///   are io_uring's on every architecture.
/// - `mq_open` when `deny_mqueues`: where the monitor cannot see POSIX
///   message queues (gVisor mounts no `/dev/mqueue`), it could neither
///   remove nor find one a case left, so none may be made. gVisor does not
///   implement sending on a queue either, so no program loses a working
///   queue. (gVisor runs no 32-bit system calls, so the native number is
///   the only one.)
///
/// x32 sets bit 30 of the number, masked off here.
///
/// The program is written here and installed by `seccompiler` (its
/// `apply_filter`, which sets no-new-privileges first). Its own compiler is
/// not used: its programs kill any system call of another architecture
/// than the native one (a program's `int 0x80` reaches the 32-bit table,
/// which assembly tutorials use and the engine's profile allows) and match
/// numbers exactly (an x32 call would pass).
pub(super) fn seccomp_filter(deny_mqueues: bool) -> seccompiler::BpfProgram {
    const IO_URING: (u32, u32) = (425, 427);
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    let mq_open = libc::SYS_mq_open as u32;
    let statement = |code: u32, k: u32| seccompiler::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code: u32, k: u32, jt: u8, jf: u8| seccompiler::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let mut denied = vec![IO_URING];
    if deny_mqueues {
        denied.push((mq_open, mq_open));
    }
    let mut program = vec![
        // A = the system call number (offset 0 of struct seccomp_data).
        statement(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
        statement(
            libc::BPF_ALU | libc::BPF_AND | libc::BPF_K,
            !X32_SYSCALL_BIT,
        ),
    ];
    for (low, high) in denied {
        // A < low or A > high: on to the next range; else ENOSYS.
        program.extend([
            jump(libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K, low, 0, 2),
            jump(libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K, high, 1, 0),
            statement(
                libc::BPF_RET | libc::BPF_K,
                SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
            ),
        ]);
    }
    program.push(statement(libc::BPF_RET | libc::BPF_K, SECCOMP_RET_ALLOW));
    program
}
