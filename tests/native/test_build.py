"""How the native library is built and cached (gatlib.native): a private folder nobody else can
plant a library in, a key that names the machine, a lock between processes, notes of failed
variants that expire, ``CC`` with arguments, and the switch ``GATLIB_NATIVE``.

Most tests build a one-function stand-in for the sources (a second, not the minute the real
kernels take) through ``native._open``, the part that finds, builds and loads a variant."""
import fcntl
import json
import os
import shutil
import stat
import subprocess
import sys
import time
import warnings

import pytest

from gatlib import _private, native

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc").split()[0]) is None,
                                reason="no C compiler")

STAND_IN = "int gatlib_native_version(void) { return 9; }\n"


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """``native._open`` on a one-function source, caching under ``tmp_path/cache``, one
    portable variant unless a test sets others."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "gatlib_native.c").write_text(STAND_IN)
    monkeypatch.setattr(native, "_HERE", src)
    monkeypatch.setattr(native, "_SOURCES", ("gatlib_native.c",))
    monkeypatch.setattr(native, "_VARIANTS", ((),))
    monkeypatch.setenv("GATLIB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GATLIB_NATIVE_TIMEOUT", raising=False)
    monkeypatch.setattr(_private, "_fallbacks", {})
    return tmp_path


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_cache_folder_and_library_are_private(stand_in):
    lib, path, _, _ = native._open()
    assert lib.gatlib_native_version() == 9
    assert path.parent == stand_in / "cache" / "native"
    assert _mode(path.parent) == 0o700
    assert _mode(path) & 0o022 == 0


def test_a_planted_library_is_never_loaded(stand_in, tmp_path):
    """A library another user could write (group-writable here) at the very name gatlib would
    load: refused with one warning, and gatlib builds its own in a private temporary folder.
    Before, it was loaded, and its constructor ran in this process."""
    _, path, _, _ = native._open()
    marker = tmp_path / "planted-ran"
    evil = tmp_path / "evil.c"
    evil.write_text(STAND_IN + "#include <stdio.h>\n__attribute__((constructor)) static void "
                    "plant(void) { FILE *f = fopen(\"%s\", \"w\"); if (f) fclose(f); }\n"
                    % marker)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(path), str(evil)], check=True)
    os.chmod(path, 0o664)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, again, _, _ = native._open()
    assert not marker.exists()
    assert again.parent != path.parent and again.name == path.name
    assert _mode(again.parent) == 0o700
    assert len(caught) == 1 and "writable by group or others" in str(caught[0].message)


def test_a_shared_cache_folder_is_refused(stand_in):
    """A cache folder others can write (an NFS home set 0777, a shared GATLIB_CACHE_DIR):
    refused, and the library is built in a private temporary folder, not a predictable one."""
    folder = stand_in / "cache" / "native"
    folder.mkdir(parents=True)
    os.chmod(folder, 0o777)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, path, _, _ = native._open()
    assert path.parent != folder and _mode(path.parent) == 0o700
    assert not list(folder.iterdir())
    assert len(caught) == 1 and "cache folder refused" in str(caught[0].message)


def test_the_key_names_the_cpu_the_compiler_and_the_c_library(stand_in, monkeypatch):
    _, path, _, _ = native._open()
    real = native._cpu_features()
    monkeypatch.setattr(native, "_cpu_features", lambda: real + " avx512f")
    _, other_cpu, _, _ = native._open()
    monkeypatch.setattr(native, "_cpu_features", lambda: real)
    monkeypatch.setattr(native, "_libc", lambda: "glibc 1.0")
    _, other_libc, _, _ = native._open()
    assert len({path, other_cpu, other_libc}) == 3
    with open("/proc/cpuinfo") as f:
        flags = next((ln for ln in f if ln.startswith(("flags", "Features"))), None)
    if flags is not None:
        assert sorted(flags.split(":", 1)[1].split())[0] in real


def test_cc_with_arguments(stand_in, monkeypatch):
    monkeypatch.setenv("CC", f"{shutil.which('env')} {shutil.which('cc')}")
    lib, path, _, _ = native._open()
    assert lib.gatlib_native_version() == 9
    monkeypatch.setenv("CC", shutil.which("cc"))
    _, plain, _, _ = native._open()
    assert plain != path                     # another compiler identity, another library


def test_failed_notes_name_the_compiler_and_expire(stand_in, monkeypatch):
    monkeypatch.setattr(native, "_VARIANTS", (("-fno-such-flag-gatlib",), ()))
    _, path, label, skipped = native._open()
    assert label == "portable" and "-fno-such-flag-gatlib" in skipped[0]
    (note,) = (stand_in / "cache" / "native").glob("*.failed")
    record = json.loads(note.read_text())
    assert "cc" in record["compiler"] and "-fno-such-flag-gatlib" in record["error"]
    # Believed while fresh: the variant is skipped without a compile.
    _, _, _, skipped = native._open()
    assert "noted earlier" in skipped[0]
    # Expired: tried again (and noted again, now).
    record["time"] = time.time() - native.FAILED_TTL_S - 1
    note.write_text(json.dumps(record))
    _, _, _, skipped = native._open()
    assert "noted earlier" not in skipped[0]
    assert json.loads(note.read_text())["time"] > time.time() - 60


def test_a_hung_compiler_is_stopped_and_reported(stand_in, monkeypatch):
    monkeypatch.setenv("GATLIB_NATIVE_TIMEOUT", "0.001")
    monkeypatch.setattr(native, "_VARIANTS", (("-O1",), ()))
    with pytest.raises(RuntimeError, match=r"ran past 0.001 s \(GATLIB_NATIVE_TIMEOUT\)"):
        native._open()
    # One variant timed out: the others are not tried (a hung compiler would hang them too).
    notes = list((stand_in / "cache" / "native").glob("*.failed"))
    assert len(notes) == 1 and "ran past" in notes[0].read_text()


def test_processes_take_turns_on_the_build_lock(stand_in, monkeypatch):
    folder = _private.private_folder("native")
    fd = os.open(folder / "build.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)                       # another process is building
    try:
        monkeypatch.setenv("GATLIB_NATIVE_TIMEOUT", "0.3")
        with pytest.raises(RuntimeError, match="waited 0.3 s for another process building"):
            native._open()
    finally:
        os.close(fd)
    # Released: built (with the default timeout; 0.3 s is too short a compile on a busy machine).
    monkeypatch.delenv("GATLIB_NATIVE_TIMEOUT")
    native._open()


def test_concurrent_builds_give_one_library(stand_in):
    """Several processes building at once into an empty cache: one builds, the others wait and
    load it; no failure notes."""
    code = ("import sys; from gatlib import native; native._HERE = __import__('pathlib')."
            f"Path({str(stand_in / 'src')!r}); native._SOURCES = ('gatlib_native.c',); "
            "native._VARIANTS = ((),); print(native._open()[1])")
    env = dict(os.environ, GATLIB_CACHE_DIR=str(stand_in / "cache"))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env=env) for _ in range(3)]
    paths = {p.communicate(timeout=300)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs) and len(paths) == 1
    folder = stand_in / "cache" / "native"
    assert not list(folder.glob("*.failed")) and not list(folder.glob("*.tmp"))


@pytest.mark.parametrize("value", ["0", "false", "Off", "NO"])
def test_switched_off_by_any_false_word(value, monkeypatch):
    monkeypatch.setenv("GATLIB_NATIVE", value)
    with pytest.raises(RuntimeError, match=f"disabled by GATLIB_NATIVE={value}"):
        native._load()


def test_status_is_one_line():
    assert "\n" not in native.status()
    assert native.status().startswith("native CPU kernels")


def test_march_names_another_target(stand_in, monkeypatch):
    """``GATLIB_NATIVE_MARCH`` replaces ``-march=native`` in every variant that has it (a build
    for AVX2 alone on an AVX-512 machine, or for a fleet), under a key of its own; a value that
    is not a CPU name is refused before any compiler runs."""
    monkeypatch.setattr(native, "_VARIANTS", (("-march=native", "-DX"), ()))
    monkeypatch.delenv("GATLIB_NATIVE_MARCH", raising=False)
    assert native._variants() == (("-march=native", "-DX"), ())
    monkeypatch.setenv("GATLIB_NATIVE_MARCH", "x86-64")
    assert native._variants() == (("-march=x86-64", "-DX"), ())
    lib, path, label, _ = native._open()
    assert lib.gatlib_native_version() == 9 and label == "-march=x86-64 -DX"
    monkeypatch.setenv("GATLIB_NATIVE_MARCH", "native")
    _, native_path, _, _ = native._open()
    assert native_path != path
    for bad in ("haswell -O0", "$(id)", "-mavx512f", "x" * 80):
        monkeypatch.setenv("GATLIB_NATIVE_MARCH", bad)
        with pytest.raises(RuntimeError, match="GATLIB_NATIVE_MARCH"):
            native._open()
