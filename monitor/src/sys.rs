//! Small system calls: pipes, descriptors, errno, and memory kept from
//! children.

use std::os::fd::{AsFd, OwnedFd};

/// Allocations at least this large get mappings of their own (see `main`).
pub(super) const LARGE_ALLOCATION: usize = 128 * 1024;

/// Marks the whole pages of a large buffer not to be copied into a child
/// at fork (`MADV_DONTFORK`): the command's peak memory would otherwise
/// count them (the kernel keeps the larger of what a process held before
/// and after its exec). `bytes` must be a whole allocation (a `Vec`'s),
/// and only one that glibc made a mapping of its own is marked (its chunk
/// starts a page, 16 bytes before it, and says IS_MMAPPED): the mark then
/// goes with the mapping when it is freed, and never reaches memory reused
/// for something the child needs. The child must not touch such a buffer
/// before its exec.
pub(super) fn keep_from_children(bytes: &[u8]) {
    if bytes.len() < LARGE_ALLOCATION {
        return;
    }
    const CHUNK_HEADER: usize = 16;
    const IS_MMAPPED: usize = 0x2;
    let page = rustix::param::page_size().max(4096);
    let start = bytes.as_ptr() as usize;
    if start < CHUNK_HEADER || !(start - CHUNK_HEADER).is_multiple_of(page) {
        return;
    }
    // SAFETY: the word read lies in the page that holds the buffer's first
    // byte (the chunk's header, as the chunk starts that page). madvise
    // only changes how fork treats whole pages inside this live buffer.
    unsafe {
        let size_word = std::ptr::read_volatile((start - 8) as *const usize);
        let first = start.div_ceil(page) * page;
        let end = (start + bytes.len()) / page * page;
        if size_word & IS_MMAPPED != 0 && end > first {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_DONTFORK);
        }
    }
}

pub(super) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A pipe whose ends close on exec.
pub(super) fn pipe() -> (OwnedFd, OwnedFd) {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .unwrap_or_else(|e| panic!("pipe2 failed: {e}"))
}

pub(super) fn set_nonblocking(fd: impl AsFd) {
    use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
    if let Ok(flags) = fcntl_getfl(&fd) {
        let _ = fcntl_setfl(&fd, flags | OFlags::NONBLOCK);
    }
}

/// Clears `O_NONBLOCK` on `fd` (stdin after an interactive task, before
/// the next task is read from it).
pub(super) fn set_blocking(fd: impl AsFd) {
    use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
    if let Ok(flags) = fcntl_getfl(&fd) {
        let _ = fcntl_setfl(&fd, flags - OFlags::NONBLOCK);
    }
}

/// Writes all of `bytes` to `fd` (a pipe or file), going on after
/// interruptions. Raw system calls only, allocating nothing: the child
/// reports a failed start with it between `fork` and `execve`, where std's
/// `Write` on a `File` would need the descriptor moved into one.
pub(super) fn write_all(fd: impl AsFd, mut bytes: &[u8]) -> rustix::io::Result<()> {
    while !bytes.is_empty() {
        match rustix::io::write(&fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// SIGKILL to every process in the container but the monitor (as init,
/// pid -1 means those; rustix has no call for it).
pub(super) fn kill_everyone_else() {
    // SAFETY: a signal, no memory involved.
    unsafe { libc::kill(-1, libc::SIGKILL) };
}

/// Ends a child forked by the monitor, without running the monitor's own
/// exit (its buffers and handlers are the monitor's).
pub(super) fn exit_child(code: i32) -> ! {
    // SAFETY: ends this process; nothing runs after it.
    unsafe { libc::_exit(code) }
}
