"""_utils/mfsha_files.py: root's file operations in a directory the mfs user owns, against what mfs can plant there:
symlinks (to a root file elsewhere, to /dev/zero), FIFOs, directories, leftovers, huge files, and a write that fails
half-way (a file size limit: the kernel's EFBIG, like a full disk's ENOSPC)."""
import errno
import os
import resource
import signal
import stat

import pytest

import mfsha_files as f

SECRET = b"root:$6$not-for-mfs:0:0\n"


@pytest.fixture
def bait(tmp_path):
    """A root file outside the directory, with an owner a chown through a link would change."""
    path = tmp_path / "outside"
    path.write_bytes(SECRET)
    os.chown(path, 4242, 4242)
    os.chmod(path, 0o600)
    return path


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "data"
    path.mkdir()
    return path


def untouched(bait):
    st = bait.lstat()
    return bait.read_bytes() == SECRET and (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (4242, 4242, 0o600)


def refused(match):
    return pytest.raises(f.UnsafeFile, match=match)


def test_open_dir_refuses_a_link_to_a_directory(data, tmp_path):
    (tmp_path / "link").symlink_to(data)
    with refused("link: not a directory"):
        f.open_dir(str(tmp_path / "link"))
    os.close(f.open_dir(str(data)))


def test_read_regular_refuses_links_fifos_devices_and_big_files(data, bait):
    (data / "ok").write_bytes(b"abc")
    assert f.read_regular(str(data / "ok")) == "abc" and f.read_regular(str(data / "ok"), binary=True) == b"abc"
    (data / "link").symlink_to(bait)
    (data / "zero").symlink_to("/dev/zero")
    os.mkfifo(data / "fifo")  # with no writer an open without O_NONBLOCK would block for ever
    (data / "dir").mkdir()
    (data / "big").write_bytes(b"x" * 101)
    for name, why in (("link", "is a symlink"), ("zero", "is a symlink"), ("fifo", "is not a regular file"),
                      ("dir", "is not a regular file"), ("big", "is 101 bytes, over the 100 bytes")):
        with refused(f"{data / name}: {why}.*; refused"):
            f.read_regular(str(data / name), limit=100)
    with pytest.raises(FileNotFoundError):
        f.read_regular(str(data / "missing"))
    assert untouched(bait)


def test_read_regular_owned_wants_the_readers_own_file(data):
    (data / "cfg").write_text("DATA_PATH = /x\n")
    assert f.read_regular(str(data / "cfg"), owned=True) == "DATA_PATH = /x\n"
    os.chown(data / "cfg", 4242, 4242)
    with refused(f"cfg: belongs to uid 4242, not to uid {os.geteuid()}"):
        f.read_regular(str(data / "cfg"), owned=True)


def test_open_regular_streams_at_most_what_the_file_held_when_opened(data, bait):
    log = data / "changelog.0.mfs"
    log.write_text("1: a\n2: b\n")
    with f.open_regular(str(log), text=True) as fh:
        with open(log, "a") as writer:  # the master appends meanwhile: the read ends where the file ended
            writer.write("3: c\n" * 10000)
        assert list(fh) == ["1: a\n", "2: b\n"]
    with f.open_regular(str(log)) as fh:
        assert len(fh.read()) == log.stat().st_size and fh.read() == b""
    (data / "zero").symlink_to("/dev/zero")
    os.mkfifo(data / "fifo")
    with refused("zero: is a symlink"):
        f.open_regular(str(data / "zero"))
    with refused("fifo: is not a regular file"):
        f.open_regular(str(data / "fifo"))
    assert untouched(bait)


def test_read_tail_reads_the_end_only(data):
    (data / "log").write_bytes(b"0123456789")
    assert f.read_tail(str(data / "log"), 4) == (b"6789", 6)
    assert f.read_tail(str(data / "log"), 100) == (b"0123456789", 0)
    (data / "zero").symlink_to("/dev/zero")
    with refused("zero: is a symlink"):
        f.read_tail(str(data / "zero"), 4)


def test_lstat_in_sees_the_link_itself(data, bait):
    (data / "link").symlink_to(bait)
    assert stat.S_ISLNK(f.lstat_in(str(data), "link").st_mode) and f.lstat_in(str(data), "missing") is None


def test_create_excl_removes_a_planted_leftover_and_never_opens_its_target(data, bait):
    (data / "new").symlink_to(bait)
    dfd = f.open_dir(str(data))
    try:
        fd = f.create_excl(dfd, "new", str(data / "new"))
        os.write(fd, b"mine")
        os.close(fd)
        (data / "sub").mkdir()
        with refused("sub: is a directory"):
            f.create_excl(dfd, "sub", str(data / "sub"))
    finally:
        os.close(dfd)
    assert (data / "new").read_bytes() == b"mine" and not (data / "new").is_symlink() and untouched(bait)


@pytest.mark.parametrize("at", ["target", "tmp", "both"])
def test_write_durably_replaces_links_and_chowns_only_its_own_file(data, bait, at):
    path = data / "changelog_ml.0.mfs"
    if at in ("target", "both"):
        path.symlink_to(bait)
    if at in ("tmp", "both"):
        (data / f.tmp_name(path.name)).symlink_to(bait)
    f.write_durably(str(path), "1: x\n", owner=(4343, 4343))
    st = path.lstat()
    assert stat.S_ISREG(st.st_mode) and (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (4343, 4343, 0o644)
    assert path.read_text() == "1: x\n" and os.listdir(data) == [path.name] and untouched(bait)


def test_write_durably_onto_a_directory_or_a_fifo(data):
    (data / "dir").mkdir()
    with refused("dir: is a directory"):
        f.write_durably(str(data / "dir"), "x")
    os.mkfifo(data / "fifo")  # replaced, never opened (an open for writing would block)
    f.write_durably(str(data / "fifo"), "x")
    assert (data / "fifo").read_text() == "x" and sorted(os.listdir(data)) == ["dir", "fifo"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(data):
    """A write the kernel stops half-way (RLIMIT_FSIZE: EFBIG, as ENOSPC on a full disk) raises, keeps the old
    file whole and leaves no temporary file; the same for preallocate and copy_file."""
    path = data / "peers"
    f.write_durably(str(path), "old\n")
    (data / "src").write_bytes(b"y" * (1 << 20))
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (65536, old[1]))
    try:
        for attempt in (lambda: f.write_durably(str(path), "x" * 100000),
                        lambda: f.preallocate(str(path), 1 << 20),
                        lambda: f.copy_file(str(data / "src"), str(path))):
            with pytest.raises(OSError) as exc:
                attempt()
            assert exc.value.errno == errno.EFBIG
            assert sorted(os.listdir(data)) == ["peers", "src"] and path.read_text() == "old\n"
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old)
        signal.signal(signal.SIGXFSZ, handler)


def test_preallocate_allocates_roots_file_through_planted_links(data, bait):
    path = data / ".mfsha-reserve"
    (data / f.tmp_name(path.name)).symlink_to(bait)  # an O_TRUNC through it would empty the bait
    f.preallocate(str(path), 1 << 20)
    st = path.lstat()
    assert st.st_size == 1 << 20 and st.st_blocks * 512 >= 1 << 20 and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.geteuid() and os.listdir(data) == [path.name] and untouched(bait)


def test_copy_file_streams_a_regular_source_and_refuses_a_link(data, bait, tmp_path):
    src = tmp_path / "metadata.mfs"
    src.write_bytes(os.urandom(3 << 20))  # several chunks
    (data / "metadata.mfs").symlink_to(bait)
    f.copy_file(str(src), str(data / "metadata.mfs"), owner=(4343, 4343), mode=0o640, chunk=1 << 20)
    st = (data / "metadata.mfs").lstat()
    assert (data / "metadata.mfs").read_bytes() == src.read_bytes() and (st.st_uid, stat.S_IMODE(st.st_mode)) == (
        4343, 0o640) and untouched(bait)
    (tmp_path / "sessions.mfs").symlink_to(bait)
    with refused("sessions.mfs: is a symlink"):
        f.copy_file(str(tmp_path / "sessions.mfs"), str(data / "sessions.mfs"))
    assert os.listdir(data) == ["metadata.mfs"]


def test_remove_leftover_tmp_removes_the_link_not_its_target(data, bait):
    (data / f.tmp_name("x")).symlink_to(bait)
    assert f.remove_leftover_tmp(str(data), "x") is True and f.remove_leftover_tmp(str(data), "x") is False
    assert os.listdir(data) == [] and untouched(bait)
