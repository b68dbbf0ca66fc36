"""The core installs and imports without the experiments extra (pyyaml, matplotlib,
scikit-learn): each check runs in a fresh interpreter whose import system refuses them."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Marks the extra's packages as absent, as if they were not installed: ``import yaml`` raises
# ModuleNotFoundError and ``importlib.util.find_spec("yaml")`` is None (a meta-path finder that
# raised would also break torch's own probes for optional packages).
BLOCK = """
import sys
for name in ("yaml", "matplotlib", "sklearn"):
    sys.modules[name] = None
"""


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_blocker_blocks():
    res = _run("import yaml")
    assert res.returncode != 0 and "ModuleNotFoundError" in res.stderr


def test_core_imports_without_the_experiments_extra():
    res = _run("import gatlib, gatlib.nn, gatlib.ops, gatlib.graph, gatlib.pe, gatlib.data\n"
               "import gatlib.experiments.tasks, gatlib.experiments.bench\n"
               "extra = ('yaml', 'matplotlib', 'sklearn')\n"
               "loaded = [m for m, v in sys.modules.items()\n"
               "          if v is not None and m.split('.')[0] in extra]\n"
               "assert not loaded, loaded\n"
               "print('ok')")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


def test_commands_that_need_the_extra_say_how_to_install_it():
    res = _run("from gatlib.cli import main\n"
               "sys.exit(main(['train', '--config', 'experiments/configs/cora-gat.yaml']))")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'gatlib[experiments]'" in lines[0], res.stderr
    # The command's help and the data commands need no extra.
    res = _run("from gatlib.cli import build_parser\nbuild_parser()\nprint('ok')")
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
