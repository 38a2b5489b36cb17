"""The core package imports neither torch nor lm_eval: ``emergence eval`` on a built-in task runs
where both are missing (a ``sys.meta_path`` blocker stands in for an environment without them),
and a harness task there is one line saying how to install the extra."""

import os
import subprocess
import sys

from tests.sweep.helpers import FIXTURES, REPO

BLOCKED_RUN = """
import sys

class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "lm_eval"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Missing())
from emergence.cli import main

code = 0
try:
    main(sys.argv[1:])
except SystemExit as done:
    code = done.code
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "lm_eval"))
print("imported:", leaked, file=sys.stderr)
raise SystemExit(9 if leaked else code)
"""


def run_blocked(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKED_RUN, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_eval_on_a_built_in_task_needs_neither_torch_nor_lm_eval():
    done = run_blocked("eval", str(FIXTURES / "tiny_llama" / "gqa_untied"), "--task", "cola", "--limit", "4",
                       "--data-dir", str(FIXTURES / "sweep" / "benchmarks"), "--json")
    assert done.returncode == 0, done.stderr
    assert '"task": "cola"' in done.stdout and "imported: []" in done.stderr


def test_a_harness_task_without_the_extra_is_one_line():
    done = run_blocked("eval", str(FIXTURES / "tiny_llama" / "gqa_untied"), "--harness-task", "toy_choice")
    assert done.returncode == 2
    assert "harness tasks need lm-evaluation-harness: pip install -e '.[harness]'" in done.stderr
