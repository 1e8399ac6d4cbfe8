//! Small system calls: pipes, descriptors, errno, and memory kept from
//! children.

use std::os::fd::RawFd;

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
    // SAFETY: sysconf reads a constant. The word read lies in the page
    // that holds the buffer's first byte (the chunk's header, when the
    // chunk starts that page). madvise only changes how fork treats whole
    // pages inside this live buffer.
    unsafe {
        let page = libc::sysconf(libc::_SC_PAGESIZE).max(4096) as usize;
        let start = bytes.as_ptr() as usize;
        if start < CHUNK_HEADER || !(start - CHUNK_HEADER).is_multiple_of(page) {
            return;
        }
        let size_word = std::ptr::read_volatile((start - 8) as *const usize);
        if size_word & IS_MMAPPED == 0 {
            return;
        }
        let first = start.div_ceil(page) * page;
        let end = (start + bytes.len()) / page * page;
        if end > first {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_DONTFORK);
        }
    }
}

pub(super) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A pipe whose ends close on exec.
pub(super) fn pipe() -> (RawFd, RawFd) {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        panic!("pipe2 failed: {}", std::io::Error::last_os_error());
    }
    (fds[0], fds[1])
}

pub(super) fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

pub(super) fn close(fd: RawFd) {
    // SAFETY: closing a descriptor we own, once.
    unsafe {
        libc::close(fd);
    }
}
