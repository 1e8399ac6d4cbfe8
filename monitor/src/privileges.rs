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
pub(super) fn capset(caps: u64) -> bool {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        Data {
            effective: caps as u32,
            permitted: caps as u32,
            inheritable: 0,
        },
        Data {
            effective: (caps >> 32) as u32,
            permitted: (caps >> 32) as u32,
            inheritable: 0,
        },
    ];
    // SAFETY: both pointers are to live, correctly laid out locals.
    unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) == 0 }
}

/// When the task names the command's uid: from root to [`MONITOR_UID`],
/// keeping only [`MONITOR_CAPS`]. A monitor that is not root cannot keep
/// the command off its own uid, and refuses to run it.
pub(super) fn become_monitor(task: &Task) -> Result<(), String> {
    let Some(_) = task.uid else {
        return Ok(());
    };
    let os_error = |what: &str| format!("{what}: {}", std::io::Error::last_os_error());
    // SAFETY: plain system calls on this process, with valid arguments.
    unsafe {
        if libc::geteuid() != 0 {
            return Err(
                "the monitor is not root: it cannot run the command under a uid of \
                 its own (the container must start as root with its capabilities)"
                    .into(),
            );
        }
        if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 {
            return Err(os_error("keeping capabilities"));
        }
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(os_error("dropping groups"));
        }
        if libc::setresgid(MONITOR_UID, MONITOR_UID, MONITOR_UID) != 0
            || libc::setresuid(MONITOR_UID, MONITOR_UID, MONITOR_UID) != 0
        {
            return Err(os_error("becoming the monitor's uid"));
        }
        libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0);
        // The uid change was made with the capabilities kept in the
        // permitted set only; raise those the monitor uses, drop the rest.
        if !capset(MONITOR_CAPS) {
            return Err(os_error("keeping the monitor's capabilities"));
        }
        // Changing uid made it dumpable again.
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
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
pub(super) fn seccomp_filter(deny_mqueues: bool) -> Vec<libc::sock_filter> {
    const IO_URING: (u32, u32) = (425, 427);
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    let mq_open = libc::SYS_mq_open as u32;
    let statement = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code: u32, k: u32, jt: u8, jf: u8| libc::sock_filter {
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
