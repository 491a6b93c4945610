"""Root's file operations in directories another user can write (DATA_PATH and the storage belong to `mfs`).

Every name is opened relative to a directory fd with O_NOFOLLOW: a symlink planted by `mfs` (or by a compromised
mfsmaster) is refused instead of followed, so root never writes, truncates, chowns or reads a file outside the
directory through it. Temporary files are created with O_EXCL (a planted leftover is unlinked first: unlink removes
the link itself), chowned through their fd, and renamed over the target (a rename replaces a link, never its
target). Reads refuse anything but a regular file and are bounded (a link to /dev/zero or a FIFO is refused, a
huge file is refused past `limit`). No Salt here: unit-tested directly.
"""
import errno
import io
import os
import stat

READ_LIMIT = 64 << 20  # default bound of read_regular: more than any file mfsha reads in one piece


class UnsafeFile(OSError):
    """A path mfsha refuses to touch (a symlink, a device, a FIFO, a directory, or too big)."""

    def __init__(self, path, why):
        super().__init__(errno.EPERM, f"{path}: {why}; refused (root does not follow or read it)")
        self.path, self.why = path, why


def open_dir(path):
    """An O_DIRECTORY fd of `path`; its last component must not be a symlink."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafeFile(path, "not a directory (a symlink?)") from None
        raise


def _open_in(dfd, name, flags, path, mode=0o600):
    try:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dfd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFile(path, "is a symlink") from None
        raise


def lstat_in(directory, name):
    """os.stat_result of directory/name without following a link, or None when it does not exist."""
    try:
        return os.stat(os.path.join(directory, name), follow_symlinks=False)
    except FileNotFoundError:
        return None


def _open_regular(path):
    """(fd, fstat) of the regular file `path`, opened without following a link and without blocking (a FIFO)."""
    dfd = open_dir(os.path.dirname(path) or ".")
    try:
        fd = _open_in(dfd, os.path.basename(path), os.O_RDONLY | os.O_NONBLOCK, path)
    finally:
        os.close(dfd)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise UnsafeFile(path, "is not a regular file")
    return fd, st


def read_regular(path, limit=READ_LIMIT, binary=False, owned=False):
    """The content of the regular file `path` (text unless binary), at most `limit` bytes; a symlink, anything but
    a regular file, a larger file, or with `owned` a file the caller (root) does not own, raises UnsafeFile; a
    missing file raises FileNotFoundError."""
    fd, st = _open_regular(path)
    with os.fdopen(fd, "rb") as fh:
        if owned and st.st_uid != os.geteuid():
            raise UnsafeFile(path, f"belongs to uid {st.st_uid}, not to uid {os.geteuid()}")
        if st.st_size > limit:
            raise UnsafeFile(path, f"is {st.st_size} bytes, over the {limit} bytes mfsha reads")
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise UnsafeFile(path, f"grew over the {limit} bytes mfsha reads")
    return data if binary else data.decode("utf-8", errors="replace")


class _Bounded(io.RawIOBase):
    """The first `size` bytes of an open file: what it held when it was opened (a changelog the master still
    appends to is read up to there, never on without end)."""

    def __init__(self, fd, size):
        super().__init__()
        self.fd, self.left = fd, size

    def readable(self):
        return True

    def fileno(self):
        return self.fd

    def readinto(self, buf):
        data = os.read(self.fd, min(len(buf), self.left)) if self.left > 0 else b""
        buf[:len(data)] = data
        self.left -= len(data)
        return len(data)

    def close(self):
        if not self.closed:
            os.close(self.fd)
        super().close()


def open_regular(path, text=False):
    """A file object of the regular file `path` for streaming (a big changelog or metadata file): opened like
    read_regular (no link followed, no FIFO or device), reading at most the size it had when opened. Text mode
    replaces undecodable bytes. A missing file raises FileNotFoundError."""
    fd, st = _open_regular(path)
    fh = io.BufferedReader(_Bounded(fd, st.st_size))
    return io.TextIOWrapper(fh, encoding="utf-8", errors="replace") if text else fh


def read_tail(path, size):
    """(the last `size` bytes of the regular file `path`, their offset): the end of a changelog, opened like
    read_regular."""
    fd, st = _open_regular(path)
    try:
        start = max(0, st.st_size - size)
        return os.pread(fd, st.st_size - start, start), start
    finally:
        os.close(fd)


def tmp_name(name):
    """The temporary file's name write_durably and preallocate use beside `name` (hidden: no reader matches it)."""
    return f".{name}.mfsha-tmp"


def create_excl(dfd, name, path, mode=0o600):
    """A new file `name` in directory fd `dfd`, created with O_EXCL (never an existing file or a link's target):
    a leftover of that name (e.g. a planted symlink) is unlinked first. Returns the fd."""
    try:
        os.unlink(name, dir_fd=dfd)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        raise UnsafeFile(path, "is a directory") from None
    return _open_in(dfd, name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, path, mode)


def _replace(path, fill, owner=None, mode=0o600):
    """Create a temporary file beside `path` with O_EXCL, fill(fd) it, fsync, fchown to `owner`, rename it over
    `path` (a symlink there is replaced, never followed) and fsync the directory; on any failure the temporary file
    is gone and the error stands."""
    directory, name = os.path.dirname(path) or ".", os.path.basename(path)
    tmp = tmp_name(name)
    dfd = open_dir(directory)
    try:
        fd = create_excl(dfd, tmp, os.path.join(directory, tmp), mode)
        try:
            fill(fd)
            os.fsync(fd)
            if owner:
                os.fchown(fd, *owner)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        try:
            os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except IsADirectoryError:
            raise UnsafeFile(path, "is a directory") from None
        os.fsync(dfd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dfd)
        except OSError:
            pass
        raise
    finally:
        os.close(dfd)


def write_durably(path, data, owner=None, mode=0o644):
    """Replace `path` with `data` (str or bytes) so that a crash leaves the old or the new file, never half of one
    (_replace: O_EXCL temporary file, fsync, fchown to `owner` ((uid, gid) or None), rename, directory fsync). A
    failed write (a full disk) leaves no temporary file behind and raises OSError."""
    raw = data.encode() if isinstance(data, str) else data
    _replace(path, lambda fd: _write_all(fd, raw), owner, mode)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def preallocate(path, size, mode=0o600):
    """A file of `size` bytes at `path`, root's, allocated (posix_fallocate), put in place like write_durably."""
    _replace(path, lambda fd: os.posix_fallocate(fd, 0, size), None, mode)


def copy_file(src, dst, owner=None, mode=0o644, chunk=1 << 20):
    """Copy the regular file `src` (opened as open_regular: a link or a FIFO there is refused) to `dst` as
    write_durably puts a file in place; streamed in `chunk`s, at most the size `src` had when opened."""
    with open_regular(src) as fh:
        def fill(fd):
            for block in iter(lambda: fh.read(chunk), b""):
                _write_all(fd, block)
        _replace(dst, fill, owner, mode)


def remove_leftover_tmp(directory, name):
    """Unlink the temporary file write_durably/preallocate would use for `name`, if a crash left one."""
    try:
        os.unlink(os.path.join(directory, tmp_name(name)))
        return True
    except FileNotFoundError:
        return False
