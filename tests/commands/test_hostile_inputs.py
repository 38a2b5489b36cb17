"""A hostile new user, across every command: each bad input ends with exit code 2 and exactly one
line on stderr naming the culprit, never a traceback, and leaves no file behind.

Every case runs in-process through :func:`emergence.cli.main` (the console entry point, so the exit
code is the one a shell sees) from its own empty working folder, which is compared before and after
together with the shared folder of prepared bad inputs: nothing may be created, changed or removed.
The designed non-2 outcomes (a failed sweep cell: 1; a corrupt cell record in ``results``: 1; a bug: 3)
and path confinement (a ladder model named ``../../x`` or ``/abs/x``) are tested at the end.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
from pathlib import Path

import pytest

from tests.cli import run

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "tests/fixtures/tiny_llama/gqa_tied"
DATA = REPO / "tests/fixtures/sweep/benchmarks"
CORPUS = REPO / "tests/fixtures/sweep/loss_corpus.txt"
TINY = "{bad}/tiny.yaml"  # configs/sweeps/tiny.yaml with absolute paths (cases run elsewhere)
SIM = REPO / "tests/fixtures/results/synthetic_small.csv"
OBS = REPO / "emergence/data/obsscaling/base_llm_benchmark_eval.csv"
DEMO = REPO / "configs/demo_ci.yaml"

GOOD_LADDER = """\
name: {name}
world: {{seed: 0, n_entities: 20}}
models:
  - {{name: {model}, hidden_size: 16, layers: 1, heads: 2, steps: 2, checkpoints: [2]}}
"""


def _table(path: Path, row: int, column: str, value: str) -> Path:
    """The synthetic results table with one cell replaced (``row`` counts data rows from 0)."""
    lines = SIM.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[row + 1].split(",")
    cells[header.index(column)] = value
    lines[row + 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    return path


def _absolute_tiny(path: Path) -> Path:
    text = (REPO / "configs/sweeps/tiny.yaml").read_text().replace(" tests/", f" {REPO}/tests/")
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> Path:
    """Prepared bad inputs, shared by the cases (read only)."""
    root = tmp_path_factory.mktemp("bad")
    _absolute_tiny(root / "tiny.yaml")
    garbage = root / "garbage_model"
    garbage.mkdir()
    (garbage / "config.json").write_text('{"hidden_size": 16, "num_hidd')
    listed = root / "list_model"
    shutil.copytree(MODEL, listed)
    (listed / "config.json").write_text("[1, 2, 3]")
    cut = root / "cut_weights"
    shutil.copytree(MODEL, cut)
    data = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(data[: len(data) // 3])
    adapter = root / "cut_adapter"
    adapter.mkdir()
    lora = {"rank": 4, "alpha": 8.0, "dropout": 0.0, "targets": ["q_proj"]}
    (adapter / "adapter_config.json").write_text(json.dumps({"method": "lora", "lora": lora}))
    (adapter / "adapter_model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")
    gap = root / "id_beyond_vocab"  # 300 tokens, but one has id 400: counting them is not enough
    shutil.copytree(MODEL, gap)
    tokenizer = json.loads((gap / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    vocab[max(vocab, key=vocab.get)] = 400
    (gap / "tokenizer.json").write_text(json.dumps(tokenizer))
    tokgarb = root / "garbage_tokenizer"
    shutil.copytree(MODEL, tokgarb)
    (tokgarb / "tokenizer.json").write_text('{"version": "1.0", "mod')
    os.mkfifo(root / "a_pipe")  # renaming a file over it would destroy it (as root: over /dev/full)
    (root / "ladder_models_int.yaml").write_text("name: x\nmodels: 5\n")
    corrupt_plan = root / "corrupt_plan"
    (corrupt_plan / "cells").mkdir(parents=True)
    (corrupt_plan / "sweep.json").write_text('{"name": "tiny", "cel')
    garbage_adapter = root / "garbage_adapter"
    garbage_adapter.mkdir()
    (garbage_adapter / "adapter_config.json").write_text('{"method": "lo')
    run = root / "cut_run"
    run.mkdir()
    (run / "run.json").write_text('{"fingerprint": "ab')
    other = root / "other_run"
    other.mkdir()
    (other / "run.json").write_text(json.dumps({"fingerprint": "0123456789abcdef", "config": {}}))
    (root / "a_file").write_text("not a folder\n")
    fit = root / "cut_fit"
    fit.mkdir()
    (fit / "fit.json").write_text('{"task": "synthetic", "compute_la')
    (fit / "samples.npz").write_bytes(b"PK\x03\x04")
    npz = root / "cut_samples"
    npz.mkdir()
    (npz / "fit.json").write_text(json.dumps({"task": "synthetic", "compute_law": None}))
    (npz / "samples.npz").write_bytes(b"PK\x03\x04 truncated")
    _table(root / "inf_loss.csv", 3, "pretrain_loss", "inf")
    _table(root / "text_acc.csv", 5, "acc", "n/a?")
    _table(root / "big_acc.csv", 2, "acc", "7.5")
    _table(root / "neg_eval.csv", 1, "n_eval", "-20")
    _table(root / "over_correct.csv", 1, "n_correct", "999999")
    _table(root / "neg_budget.csv", 4, "budget", "-16")
    _table(root / "zero_loss.csv", 0, "pretrain_loss", "0")
    _table(root / "frac_shots.csv", 0, "shots", "2.5")
    (root / "text.parquet").write_text("this is not parquet\n")
    (root / "bad.yaml").write_text("name: [unclosed\n")
    for tag, name, model in [
        ("up", "x", "../../x"),
        ("abs", "x", str(root / "abs-target" / "x")),  # inside the snapshotted folder
        ("sep", "x", "a/b"),
        ("nul", "x", '"a\\0b"'),
        ("world", "x", "world"),
        ("dots", "x", ".."),
        ("ladder_up", "../up", "m1"),
        ("ladder_abs", "/abs", "m1"),
    ]:
        (root / f"ladder_{tag}.yaml").write_text(GOOD_LADDER.format(name=name, model=model))
    (root / "ladder_good.yaml").write_text(GOOD_LADDER.format(name="good", model="m1"))
    (root / "ladder_checkpoints.yaml").write_text(
        GOOD_LADDER.format(name="x", model="m1").replace("checkpoints: [2]", "checkpoints: [two]")
    )
    (root / "ladder_size.yaml").write_text(
        GOOD_LADDER.format(name="x", model="m1").replace("hidden_size: 16", "hidden_size: big")
    )
    sweep = root / "not_a_sweep"
    sweep.mkdir()
    (sweep / "notes.txt").write_text("hello\n")
    empty_sweep = root / "empty_sweep"
    (empty_sweep / "cells").mkdir(parents=True)
    (empty_sweep / "results.csv").mkdir()  # a folder where `results` writes its table
    return root


# (id, argv with {bad} for the prepared inputs and {here} for the case's own folder, culprit)
CASES: list[tuple[str, str, str]] = [
    # info / generate
    ("info-garbage-config", "info {bad}/garbage_model", "config.json"),
    ("info-config-not-object", "info {bad}/list_model", "config.json"),
    ("info-cut-weights", "info {bad}/cut_weights", "model.safetensors"),
    ("info-tokenizer-id-beyond-vocab", "info {bad}/id_beyond_vocab", "largest token id is 400"),
    ("info-garbage-tokenizer", "info {bad}/garbage_tokenizer", "tokenizer.json"),
    ("info-dtype-float8", f"info {MODEL} --dtype float8", "--dtype"),
    ("info-missing", "info {here}/nope", "nope"),
    ("generate-zero-tokens", f"generate {MODEL} --prompt hi --max-new-tokens 0", "--max-new-tokens"),
    ("generate-garbage-config", "generate {bad}/garbage_model --prompt hi", "config.json"),
    # eval
    ("eval-unknown-task", f"eval {MODEL} --task nosuch", "nosuch"),
    ("eval-cut-adapter", f"eval {MODEL} --task cola --data-dir {DATA} --adapter {{bad}}/cut_adapter",
     "adapter_model.safetensors"),
    ("eval-garbage-adapter-config",
     f"eval {MODEL} --task cola --data-dir {DATA} --adapter {{bad}}/garbage_adapter", "adapter_config.json"),
    ("eval-limit-zero", f"eval {MODEL} --task cola --limit 0", "--limit"),
    ("eval-shots-negative", f"eval {MODEL} --task cola --shots -1", "--shots"),
    ("eval-dtype-float8", f"eval {MODEL} --task cola --data-dir {DATA} --dtype float8", "--dtype"),
    ("eval-out-is-folder", f"eval {MODEL} --task cola --data-dir {DATA} --out {{bad}}/cut_run", "cut_run"),
    ("eval-out-under-file", f"eval {MODEL} --task cola --data-dir {DATA} --out {{bad}}/a_file/r.jsonl", "a_file"),
    ("eval-out-is-pipe", f"eval {MODEL} --task cola --data-dir {DATA} --out {{bad}}/a_pipe", "a_pipe"),
    # finetune
    ("finetune-target-matches-nothing",
     f"finetune {MODEL} --task cola --budget 8 --data-dir {DATA} finetune.lora.targets=[nomatch] --out {{here}}/ft", "nomatch"),
    ("finetune-out-under-file", f"finetune {MODEL} --task cola --budget 8 --out {{bad}}/a_file/ft", "a_file"),
    ("finetune-out-is-file", f"finetune {MODEL} --task cola --budget 8 --out {{bad}}/a_file", "a_file"),
    ("finetune-cut-run-json",
     f"finetune {MODEL} --task cola --budget 8 --data-dir {DATA} --out {{bad}}/cut_run", "run.json"),
    ("finetune-other-run",
     f"finetune {MODEL} --task cola --budget 8 --data-dir {DATA} --out {{bad}}/other_run", "different config"),
    ("finetune-budget-zero", f"finetune {MODEL} --task cola --budget 0 --out {{here}}/ft", "budget"),
    ("finetune-budget-huge",
     f"finetune {MODEL} --task cola --budget 100000 --data-dir {DATA} --out {{here}}/ft", "budget 100000"),
    ("finetune-lr-nan", f"finetune {MODEL} --task cola --budget 8 finetune.optim.lr=.nan --out {{here}}/ft", "optim: lr"),
    ("finetune-lr-negative", f"finetune {MODEL} --task cola --budget 8 finetune.optim.lr=-1 --out {{here}}/ft", "optim: lr"),
    ("finetune-epochs-inf", f"finetune {MODEL} --task cola --budget 8 finetune.epochs=.inf --out {{here}}/ft", "epochs"),
    ("finetune-dtype-float8", f"finetune {MODEL} --task cola --budget 8 --dtype float8 --out {{here}}/ft", "dtype"),
    ("finetune-method", f"finetune {MODEL} --task cola --budget 8 finetune.method=qlora --out {{here}}/ft", "method"),
    ("finetune-dropout", f"finetune {MODEL} --task cola --budget 8 finetune.lora.dropout=1.5 --out {{here}}/ft",
     "lora: dropout"),
    ("finetune-rank-zero", f"finetune {MODEL} --task cola --budget 8 finetune.lora.rank=0 --out {{here}}/ft", "lora: rank"),
    ("finetune-mesh", f"finetune {MODEL} --task cola --budget 8 finetune.mesh.data=a --out {{here}}/ft", "mesh.data"),
    ("finetune-weight-decay", f"finetune {MODEL} --task cola --budget 8 finetune.optim.weight_decay=-0.1 --out {{here}}/ft",
     "weight_decay"),
    # sweep plan / run / status
    ("plan-empty-budgets", f"sweep plan {TINY} budgets=[]", "budgets"),
    ("plan-empty-task-budgets", f"sweep plan {TINY} 'tasks=[{{{{name: cola, budgets: []}}}}]'", "budgets"),
    ("plan-empty-seeds", f"sweep plan {TINY} subset_seeds=[]", "subset_seeds"),
    ("plan-empty-tasks", f"sweep plan {TINY} tasks=[]", "tasks"),
    ("plan-garbage-checkpoint", f"sweep plan {TINY} checkpoints=[{{bad}}/garbage_model]", "config.json"),
    ("plan-lr-nan", f"sweep plan {TINY} finetune.optim.lr=.nan", "lr"),
    ("plan-dtype-float8", f"sweep plan {TINY} dtype=float8", "dtype"),
    ("plan-unknown-key", f"sweep plan {TINY} colour=blue", "colour"),
    ("plan-missing-config", "sweep plan {here}/nope.yaml", "nope.yaml"),
    ("plan-invalid-yaml", "sweep plan {bad}/bad.yaml", "bad.yaml"),
    ("plan-lock-ttl", f"sweep plan {TINY} lock_ttl=-1", "lock_ttl"),
    ("plan-negative-params", f"sweep plan {TINY} 'checkpoints=[{{{{model: {MODEL}, params: -5}}}}]'", "params"),
    ("plan-negative-budget", f"sweep plan {TINY} budgets=[0,-16]", "budgets"),
    ("plan-rows-negative", f"sweep plan {TINY} --rows -1", "--rows"),
    ("run-empty-budgets", f"sweep run {TINY} out={{here}}/sweep budgets=[]", "budgets"),
    ("run-bad-shard", f"sweep run {TINY} out={{here}}/sweep --shard 3/2", "--shard"),
    ("run-out-is-file", f"sweep run {TINY} out={{bad}}/a_file", "a_file"),
    ("run-bad-worker", f"sweep run {TINY} out={{here}}/sweep --worker 1/0", "--worker"),
    ("run-zero-workers", f"sweep run {TINY} out={{here}}/sweep --workers 0", "--workers"),
    ("submit-no-array", f"sweep submit {TINY} out={{here}}/sweep --slurm partition=gpu", "--slurm"),
    ("submit-bad-pair", f"sweep submit {TINY} out={{here}}/sweep --slurm array=2,gpus", "--slurm"),
    ("status-missing", "sweep status {here}/nope", "nope"),
    ("status-corrupt-plan", "sweep status {bad}/corrupt_plan", "sweep.json"),
    ("status-not-a-sweep", "sweep status {bad}/not_a_sweep", "not_a_sweep"),
    # results
    ("results-not-a-sweep", "results {bad}/not_a_sweep", "not_a_sweep"),
    ("results-format", "results {bad}/empty_sweep --format xml", "--format"),
    ("results-out-is-folder", "results {bad}/empty_sweep --format csv", "results.csv"),
    ("results-out-under-file", "results {bad}/empty_sweep --out {bad}/a_file/t.csv", "a_file"),
    # loss
    ("loss-missing-corpus", f"loss {MODEL} --corpus {{here}}/nope.txt", "nope.txt"),
    ("loss-zero-tokens", f"loss {MODEL} --corpus {CORPUS} --tokens 0", "--tokens"),
    ("loss-dtype-float8", f"loss {MODEL} --corpus {CORPUS} --dtype float8", "--dtype"),
    # fit / backtest / forecast / simulate
    ("fit-out-is-file", f"fit {SIM} --task synthetic --out {{bad}}/a_file", "a_file"),
    ("fit-out-under-file", f"fit {SIM} --task synthetic --out {{bad}}/a_file/fit", "a_file"),
    ("fit-inf-loss", "fit {bad}/inf_loss.csv --task synthetic --out {here}/fit", "pretrain_loss"),
    ("fit-text-metric", "fit {bad}/text_acc.csv --task synthetic --out {here}/fit", "'acc'"),
    ("fit-zero-loss", "fit {bad}/zero_loss.csv --task synthetic --out {here}/fit", "pretrain_loss"),
    ("fit-unknown-task", f"fit {SIM} --task nosuch --out {{here}}/fit", "nosuch"),
    ("fit-samples-zero", f"fit {SIM} fit.samples=0 --task synthetic --out {{here}}/fit", "samples"),
    ("fit-samples-text", f"fit {SIM} fit.samples=x --task synthetic --out {{here}}/fit", "fit.samples: expected an integer"),
    ("fit-unknown-setting", f"fit {SIM} fit.sampels=5 --task synthetic --out {{here}}/fit", "fit.sampels"),
    ("fit-missing-config", f"fit {SIM} --task synthetic --config {{here}}/nope.yaml --out {{here}}/fit", "nope.yaml"),
    ("fit-missing-table", "fit {here}/nope.csv --task synthetic --out {here}/fit", "nope.csv"),
    ("fit-d0-nan", f"fit {SIM} fit.d0=nan --task synthetic --out {{here}}/fit", "d0"),
    ("backtest-metric-range", "backtest {bad}/big_acc.csv --task synthetic fit.sample=false", "'acc'"),
    ("backtest-text-metric", "backtest {bad}/text_acc.csv --task synthetic fit.sample=false", "row 7"),
    ("backtest-negative-count", "backtest {bad}/neg_eval.csv --task synthetic fit.sample=false", "n_eval"),
    ("backtest-too-many-correct", "backtest {bad}/over_correct.csv --task synthetic fit.sample=false", "n_correct"),
    ("backtest-negative-budget", "backtest {bad}/neg_budget.csv --task synthetic fit.sample=false", "budget"),
    ("backtest-fractional-shots", "backtest {bad}/frac_shots.csv --task synthetic fit.sample=false", "shots"),
    ("backtest-chains-zero", f"backtest {SIM} --task synthetic fit.chains=0", "chains"),
    ("backtest-not-parquet", "backtest {bad}/text.parquet --task synthetic", "text.parquet"),
    ("forecast-cut-fit-json", "forecast {bad}/cut_fit --flops 1e21", "fit.json"),
    ("forecast-cut-samples", "forecast {bad}/cut_samples --flops 1e21", "samples.npz"),
    ("forecast-negative-flops", "forecast {bad}/cut_samples --flops -1", "--flops"),
    ("forecast-nan-loss", "forecast {bad}/cut_samples --loss nan", "--loss"),
    ("forecast-missing", "forecast {here}/nofit --flops 1e21", "nofit"),
    ("simulate-out-is-folder", "simulate --out {bad}/cut_run", "cut_run"),
    ("simulate-out-under-file", "simulate --out {bad}/a_file/t.csv", "a_file"),
    ("simulate-out-is-pipe", "simulate --out {bad}/a_pipe", "a_pipe"),
    ("simulate-steps-zero", "simulate --out {here}/t.csv --steps 0", "--steps"),
    ("simulate-sizes-text", "simulate --out {here}/t.csv --sizes big,small", "--sizes"),
    ("simulate-seeds-negative", "simulate --out {here}/t.csv --seeds -1", "--seeds"),
    ("simulate-lead-one-number", "simulate --out {here}/t.csv --lead 0.1", "--lead"),
    ("simulate-lead-negative", "simulate --out {here}/t.csv --lead -0.1,0.2", "--lead"),
    ("simulate-budgets-fraction", "simulate --out {here}/t.csv --budgets 1.5,64", "--budgets"),
    ("fit-e0-margin-zero", f"fit {SIM} --task synthetic fit.e0_margin=0 --out {{here}}/fit", "e0_margin"),
    ("fit-loss-floor-nan", f"fit {SIM} --task synthetic fit.loss_floor=nan --out {{here}}/fit", "loss_floor"),
    ("fit-loss-floor-above-data", f"fit {SIM} --task synthetic fit.loss_floor=99 --out {{here}}/fit", "loss floor"),
    # obs
    ("obs-unknown-reference", f"obs fit {OBS} --target GSM8K --out {{here}}/obs --reference-family Lama-2",
     "Lama-2"),
    ("obs-level-out-of-range", f"obs fit {OBS} --target GSM8K --out {{here}}/obs --bayes --level 1.5", "--level"),
    ("obs-unknown-target", f"obs fit {OBS} --target NOPE --out {{here}}/obs", "NOPE"),
    ("obs-pcs-zero", f"obs fit {OBS} --target GSM8K --out {{here}}/obs --pcs 0", "--pcs"),
    ("obs-out-under-file", f"obs fit {OBS} --target GSM8K --out {{bad}}/a_file/obs", "a_file"),
    ("obs-families-missing", "obs families {here}/nope.csv", "nope.csv"),
    ("obs-holdout-range", f"obs fit {OBS} --target GSM8K --out {{here}}/obs --holdout-top 2", "--holdout-top"),
    # toy / pretrain / demo
    ("toy-few-entities", "toy generate --out {here}/toy --entities 5", "n_entities"),
    ("toy-out-under-file", "toy generate --out {bad}/a_file/toy --tasks-only", "a_file"),
    ("pretrain-model-up", "pretrain {bad}/ladder_up.yaml --out {here}/ladder", "../../x"),
    ("pretrain-model-abs", "pretrain {bad}/ladder_abs.yaml --out {here}/ladder", "abs-target/x"),
    ("pretrain-model-separator", "pretrain {bad}/ladder_sep.yaml --out {here}/ladder", "a/b"),
    ("pretrain-model-nul", "pretrain {bad}/ladder_nul.yaml --out {here}/ladder", "ladder model name"),
    ("pretrain-model-reserved", "pretrain {bad}/ladder_world.yaml --out {here}/ladder", "world"),
    ("pretrain-model-dots", "pretrain {bad}/ladder_dots.yaml --out {here}/ladder", "'..'"),
    ("pretrain-ladder-up", "pretrain {bad}/ladder_ladder_up.yaml", "../up"),
    ("pretrain-ladder-abs", "pretrain {bad}/ladder_ladder_abs.yaml", "/abs"),
    ("pretrain-checkpoints-text", "pretrain {bad}/ladder_checkpoints.yaml --out {here}/ladder", "checkpoints"),
    ("pretrain-size-text", "pretrain {bad}/ladder_size.yaml --out {here}/ladder", "hidden_size"),
    ("pretrain-models-not-a-list", "pretrain {bad}/ladder_models_int.yaml --out {here}/ladder", "models"),
    ("pretrain-invalid-yaml", "pretrain {bad}/bad.yaml --out {here}/ladder", "bad.yaml"),
    ("pretrain-out-under-file", "pretrain {bad}/ladder_good.yaml --out {bad}/a_file/ladder", "a_file"),
    ("pretrain-unknown-model", "pretrain {bad}/ladder_good.yaml --out {here}/ladder --model nope", "nope"),
    ("demo-bad-ladder-name",
     f"demo {DEMO} ladder={{bad}}/ladder_up.yaml --out {{here}}/demo --work {{here}}/work", "../../x"),
    ("demo-unknown-key", f"demo {DEMO} colour=blue --out {{here}}/demo --work {{here}}/work", "colour"),
    # memory
    ("memory-unknown-preset", "memory llama-70b", "llama-70b"),
    ("memory-device-memory-text", "memory llama-7b --device-memory lots", "--device-memory"),
    ("memory-eval-tokens-zero", "memory llama-7b --eval-tokens 0", "--eval-tokens"),
    ("memory-mesh-too-large", "memory llama-7b finetune.mesh.fsdp=64", "needs 64 devices"),
]
if importlib.util.find_spec("emergence.commands.study") is not None:  # the multi-seed study
    CASES += [
        ("study-missing-config", "study {here}/nope.yaml", "nope.yaml"),
        ("study-invalid-yaml", "study {bad}/bad.yaml", "bad.yaml"),
        ("study-unknown-key", "study {bad}/ladder_good.yaml", "'name'"),
    ]


def _snapshot(*folders: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``folders`` (files with size and mtime): a write, a removal or a new path shows."""
    out = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            stat = path.lstat()
            # a folder's own mtime moves when an entry is added, which shows as a new path anyway
            out[str(path)] = (stat.st_size, stat.st_mtime_ns) if path.is_file() else (-1, 0)
    return out


def _run(argv: list[str], capsys) -> tuple[int, str]:
    """The exit code a shell would see and stderr."""
    code, _, err = run(argv, capsys)
    return code, err


@pytest.mark.parametrize(("argv", "culprit"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input_is_one_line_and_exit_2(argv, culprit, bad, tmp_path, monkeypatch, capsys):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)  # anything written relative to the working folder shows in the snapshot
    args = [a.format(bad=bad, here=here) for a in shlex.split(argv)]
    before = _snapshot(here, bad)
    code, err = _run(args, capsys)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert culprit in lines[0], err
    assert "Traceback" not in err
    assert _snapshot(here, bad) == before, "a file was created, changed or removed"


def test_the_suite_covers_every_command():
    from typer.main import get_command

    from emergence.cli import app

    root = get_command(app)
    names = set()
    for name, command in root.commands.items():
        subs = getattr(command, "commands", None)
        names |= {f"{name} {sub}" for sub in subs} if subs else {name}
    tried = {" ".join(c[1].split(" ")[:2]) if c[1].split(" ")[0] in ("sweep", "obs", "toy") else c[1].split(" ")[0]
             for c in CASES}
    assert names <= tried, f"commands without a hostile case: {sorted(names - tried)}"
    assert len(CASES) >= 60


# ---------------------------------------------------------------- the designed 0 / 1 / 3 outcomes


def test_a_sweep_with_a_failing_cell_exits_1_and_names_it(tmp_path, capsys):
    tiny = _absolute_tiny(tmp_path / "tiny.yaml")
    out = tmp_path / "sweep"
    code, err = _run(
        ["sweep", "run", str(tiny), f"out={out}", "budgets=[0,100000]", "subset_seeds=[0]",
         "checkpoints=[{model: " + str(MODEL) + ", id: tiny-tied}]"],
        capsys,
    )
    assert code == 1, err
    assert "tiny-tied cola D=100000 seed=0" in err and "Traceback" not in err
    # rerunning does not hide the failure: the shard still has a failed cell
    code, err = _run(["sweep", "run", str(tiny), f"out={out}", "budgets=[0,100000]", "subset_seeds=[0]",
                      "checkpoints=[{model: " + str(MODEL) + ", id: tiny-tied}]"], capsys)
    assert code == 1 and "D=100000" in err
    # results names the failed cell and writes nothing, unless --allow-partial
    code, err = _run(["results", str(out), "--format", "csv"], capsys)
    assert code == 1 and "failed cell tiny-tied cola D=100000 seed=0" in err
    assert not (out / "results.csv").exists()
    code, err = _run(["results", str(out), "--format", "csv", "--allow-partial"], capsys)
    assert code == 0 and (out / "results.csv").is_file()
    assert len((out / "results.csv").read_text().splitlines()) == 2  # header + the few-shot row


def test_results_on_a_corrupt_record_exits_1_and_names_the_file(tmp_path, capsys):
    tiny = _absolute_tiny(tmp_path / "tiny.yaml")
    out = tmp_path / "sweep"
    args = ["sweep", "run", str(tiny), f"out={out}", "budgets=[0]", "subset_seeds=[0]"]
    code, err = _run(args, capsys)
    assert code == 0, err
    records = sorted((out / "cells").glob("*.json"))
    assert len(records) == 2
    records[0].write_text(records[0].read_text()[:40])  # truncated, as by a host crash
    code, err = _run(["results", str(out), "--format", "csv"], capsys)
    assert code == 1
    assert f"corrupt record {records[0]}" in err and "Traceback" not in err
    assert not (out / "results.csv").exists()
    # a rerun recomputes the cell, and the table is whole again
    assert _run(args, capsys)[0] == 0
    code, err = _run(["results", str(out), "--format", "csv"], capsys)
    assert code == 0, err


def test_results_on_an_unreadable_plan_exits_1(bad, capsys):
    code, err = _run(["results", str(bad / "corrupt_plan"), "--format", "csv"], capsys)
    assert code == 1 and f"corrupt {bad / 'corrupt_plan' / 'sweep.json'}" in err
    assert not (bad / "corrupt_plan" / "results.csv").exists()


def test_a_bug_is_exit_3_with_a_traceback(monkeypatch, capsys):
    import emergence.commands.model as model_commands

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in our code")

    monkeypatch.setattr(model_commands, "load_model", broken, raising=False)
    monkeypatch.setattr("emergence.models.registry.load_model", broken)
    code, err = _run(["info", str(MODEL)], capsys)
    assert code == 3
    assert "Traceback" in err and "internal error: RuntimeError: a bug in our code" in err


def test_debug_shows_the_full_trace_of_a_user_error(monkeypatch, capsys):
    monkeypatch.setenv("EMERGENCE_DEBUG", "1")
    code, err = _run(["info", str(MODEL), "--dtype", "float8"], capsys)
    assert code == 2
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: --dtype")


# ---------------------------------------------------------------- confined writes


@pytest.mark.parametrize("model", ["../../x", "/ABS/x", "sub/../../x"])
def test_a_ladder_model_name_cannot_write_outside_out(model, tmp_path, monkeypatch, capsys):
    """The parent of --out (and the absolute target) is snapshotted: nothing created or removed,
    and a folder already at the absolute target survives."""
    parent = tmp_path / "parent"
    (parent / "work").mkdir(parents=True)
    victim = tmp_path / "abs" / "x"
    victim.mkdir(parents=True)
    (victim / "keep.txt").write_text("precious\n")
    name = model.replace("/ABS", str(tmp_path / "abs"))
    config = tmp_path / "ladder.yaml"
    config.write_text(GOOD_LADDER.format(name="l", model=name))
    monkeypatch.chdir(parent / "work")
    before = _snapshot(tmp_path)
    code, err = _run(["pretrain", str(config), "--out", str(parent / "work" / "out")], capsys)
    assert code == 2 and "ladder model name" in err and "Traceback" not in err
    assert _snapshot(tmp_path) == before
    assert (victim / "keep.txt").read_text() == "precious\n"


def test_sweep_checkpoint_ids_are_stored_under_hashed_names(tmp_path, capsys):
    """Sweep ids are never path components: ``../../x`` runs, and writes only under ``out``."""
    tiny = _absolute_tiny(tmp_path / "tiny.yaml")
    parent = tmp_path / "parent"
    parent.mkdir()
    before = _snapshot(tmp_path)
    out = parent / "out"
    argv = ["sweep", "run", str(tiny), f"out={out}", "budgets=[0]",
            "checkpoints=[{model: " + str(MODEL) + ", id: ../../x}]"]
    code, err = _run(argv, capsys)
    assert code == 0, err
    after = _snapshot(tmp_path)
    assert {p for p in after if p not in before} == {p for p in after if p.startswith(str(out))}
    assert all(before[p] == after[p] for p in before)


def test_the_hf_writer_never_replaces_a_folder_that_is_not_a_model(tmp_path):
    from emergence.errors import UserError
    from emergence.models.hf_checkpoint import save_hf_directory
    from emergence.models.registry import load_model

    loaded = load_model(str(MODEL))
    target = tmp_path / "mine"
    target.mkdir()
    (target / "thesis.tex").write_text("years of work\n")
    with pytest.raises(UserError, match="not a model folder"):
        save_hf_directory(target, loaded.config, {}, None)
    assert (target / "thesis.tex").read_text() == "years of work\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # the staging folder is gone too


def test_safe_names():
    from emergence.errors import UserError
    from emergence.fileio import check_name

    for good in ("d64-l2", "m1", "pythia-70m@step1000", "a.b_c+d"):
        assert check_name(good, "name") == good
    for evil in ("..", ".", "../x", "/abs", "a/b", "a\\b", "a\0b", "", ".hidden", "-flag", "a b", 7, None, "x" * 200):
        with pytest.raises(UserError):
            check_name(evil, "name")


def test_cases_are_distinct():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))
