"""A finetuning run end to end: budget subset → batches → trainer → checkpoints → result directory.

The output directory is the run's identity: ``run.json`` records the config and its fingerprint,
``checkpoints/`` the orbax checkpoints, ``metrics.jsonl`` one line per logged step (and, with an
``evaluator``, the learning curve as ``{"step": N, "eval": {...}}`` lines), and the result (adapter
or full model, :mod:`emergence.train.adapters`) appears when training finishes. Rerunning resumes
from the newest checkpoint (data order and dropout are functions of (seed, step), so the result
equals an uninterrupted run's); a finished run is not retrained; a different config is refused.
Evaluation never changes training, so it is not part of the fingerprint. In a multi-host run every
process trains and process 0 alone writes these files (orbax checkpoints are written by all, each
its own shards).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jax
from flax import nnx

from emergence import fileio, harness
from emergence.data.tasks import get_task
from emergence.errors import UserError
from emergence.models.global_arrays import to_host
from emergence.models.llama import Llama
from emergence.models.registry import LoadedModel, load_model
from emergence.train import adapters, budgets, throughput
from emergence.train.config import FinetuneConfig, LoraConfig
from emergence.train.divergence import DivergenceWatch
from emergence.train.examples import make_batch, padded_shape, task_examples
from emergence.train.lora import fold_into_base, folds_at_evaluation, for_training, set_training
from emergence.train.mesh import build_mesh, placement
from emergence.train.trainer import Trainer

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"


@dataclass(frozen=True)
class FinetuneResult:
    out_dir: Path
    total_steps: int
    start_step: int  # > 0 when resumed
    history: tuple[dict, ...]
    data_note: str
    already_done: bool = False
    trainer: Trainer | None = field(default=None, repr=False, compare=False)  # None when already done
    lora: LoraConfig | None = None  # the adapters' shape, for a LoRA run

    @property
    def model(self) -> nnx.Module | None:
        """The trained model with Variables of its own (LoRA: wrapped, not merged, dropout off)."""
        return None if self.trainer is None else _wrapped(self.trainer)


def _wrapped(trainer: Trainer) -> nnx.Module:
    model = trainer.model(copy=True)
    set_training(model, False)  # LoRA dropout off (without LoRA layers: nothing to switch)
    return model


def trained_model(trainer: Trainer, base: Llama, lora: LoraConfig | None) -> nnx.Module:
    """What ``trainer`` holds now, as the evaluator scores it: full finetuning's own weights; with
    ``lora``, its adapters folded onto ``base``'s kernels in a new model of the base architecture
    (a float32 base), or the trainer's wrapped model, adapters unfused (a bfloat16 base:
    :func:`~emergence.train.lora.folds_at_evaluation`)."""
    if lora is None:
        return trainer.model()
    if folds_at_evaluation(base.config.param_dtype):
        return fold_into_base(base, trainer.flat_params(), lora.scale)
    return _wrapped(trainer)


@dataclass(frozen=True)
class RunPlan:
    """What a run will do, known once its model and data are checked (shown by the CLI before step 1)."""

    total_steps: int
    n_train: int
    data_note: str


def _check_run_dir(out: Path, cfg: FinetuneConfig, *, create: bool) -> None:
    """Refuse a directory holding another config's run; with ``create``, claim it for this one."""
    run_file = fileio.check_output_dir(out) / RUN_FILE
    if run_file.exists():
        previous = fileio.read_json_object(run_file, "finetuning run file")
        if previous.get("fingerprint") != cfg.fingerprint():
            raise UserError(
                f"{out} holds a run with a different config (fingerprint {previous.get('fingerprint')} ≠ "
                f"{cfg.fingerprint()}); choose another --out"
            )
    elif create:
        out.mkdir(parents=True, exist_ok=True)
        fileio.write_json(run_file, {"fingerprint": cfg.fingerprint(), "config": dataclasses.asdict(cfg)})


def _metric_lines(path: Path, key: str) -> list[dict]:
    """The lines of ``metrics.jsonl`` that hold ``key``, in step order (a line cut by a kill is
    skipped: the resumed run logs it again)."""
    lines = []
    for text in path.read_text().splitlines() if path.exists() else ():
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(line, dict) and key in line and isinstance(line.get("step"), int):
            lines.append(line)
    return sorted(lines, key=lambda m: m["step"])


def _trim_metrics(path: Path, upto: int) -> None:
    """Keep the metric lines of steps ≤ ``upto`` (a killed run may have logged past its checkpoint)."""
    if path.exists():
        kept = [line for line in _metric_lines(path, "step") if line["step"] <= upto]
        fileio.write_text(path, "".join(json.dumps(line) + "\n" for line in kept))


def _logged_before(path: Path, start: int, batch_fn: Callable) -> tuple[int, float | None]:
    """(tokens trained before step ``start``, the run's first logged loss) of a resumed run, so
    its ``tokens`` continue and its divergence check keeps its reference. The steps between the
    last logged line and the checkpoint are counted from their batches."""
    if start == 0 or not path.exists():
        return 0, None
    lines = _metric_lines(path, "loss")
    last = lines[-1] if lines else {"step": 0, "tokens": 0}
    tokens = int(last.get("tokens", 0)) + sum(batch_fn(s).n_tokens for s in range(last["step"], start))
    return tokens, (float(lines[0]["loss"]) if lines else None)


def _training_records(cfg: FinetuneConfig) -> tuple[list[dict], str]:
    """The task's training documents and a note of what they are: a built-in task's training
    files, a ``harness:NAME`` task's training split (a task without one is refused)."""
    name = harness.task_name(cfg.task)
    if name is None:
        return get_task(cfg.task).train_records(cfg.data_dir)
    from emergence.harness.tasks import training_docs

    return training_docs(name, cfg.harness_include)


def eval_curve(out_dir: str | Path) -> list[dict]:
    """The run's evaluations as ``[{"step": N, "eval": {metric: value}}, ...]``, in step order."""
    return _metric_lines(Path(out_dir) / METRICS_FILE, "eval")


def run_finetune(
    cfg: FinetuneConfig,
    out_dir: str | Path,
    *,
    loaded: LoadedModel | None = None,
    on_log: Callable[[dict], None] | None = None,
    on_plan: Callable[[RunPlan], None] | None = None,
    evaluator: Callable[[LoadedModel], dict[str, float]] | None = None,
    on_eval: Callable[[dict], None] | None = None,
) -> FinetuneResult:
    """Train (or resume) the run ``cfg`` into ``out_dir``; ``loaded`` reuses an already loaded base.

    ``evaluator`` scores the model being trained, LoRA adapters folded in, at step 0 and every
    ``cfg.eval_every`` steps."""
    if evaluator is not None and cfg.eval_every is None:
        raise UserError("an evaluator needs finetune.eval_every, the steps between its scores")
    out = Path(out_dir)
    _check_run_dir(out, cfg, create=False)
    if (out / adapters.CONFIG_FILE).is_file():
        done = adapters.read_adapter_config(out)
        if done.get("fingerprint") == cfg.fingerprint():
            return FinetuneResult(
                out, done["steps"], done["steps"], (), done.get("train_data", ""), already_done=True
            )

    docs, note = _training_records(cfg)
    subset = budgets.subset_indices(
        len(docs), cfg.budget, cfg.subset_seed, where=f"{cfg.task} training data ({note})"
    )
    total = budgets.plan_steps(
        cfg.budget, cfg.examples_per_step, steps=cfg.steps, epochs=cfg.epochs, min_steps=cfg.min_steps
    )
    mesh = build_mesh(cfg.mesh)
    loaded = loaded or load_model(
        cfg.model, dtype=cfg.dtype, param_dtype=cfg.param_dtype, placement=placement(mesh)
    )
    chosen = task_examples(cfg.task, [docs[i] for i in subset], loaded.tokenizer, cfg.max_seq_len,
                           harness_include=cfg.harness_include)

    # LoRA trains fresh adapters over a clone of the base (its arrays, new Variables), so the
    # caller's model stays usable; full finetuning donates the base weights to the trainer.
    model = nnx.clone(loaded.model)
    if model.config.remat != cfg.remat:  # a training setting: the caller's model keeps its own
        model.config = model.config.replace(remat=cfg.remat)
    lora = cfg.lora if cfg.method == "lora" else None
    model, trainable = for_training(model, lora, cfg.seed)
    trainer = Trainer(model, trainable, cfg.optim, total, mesh=mesh, seed=cfg.seed)
    writes = jax.process_index() == 0
    _check_run_dir(out, cfg, create=writes)  # only once the inputs are known to be good
    if on_plan:  # after the checks (LoRA targets, model, data): a user error stays one line
        on_plan(RunPlan(total, len(docs), note))

    ckpt_dir = out / CHECKPOINT_DIR
    start = trainer.restore_latest(ckpt_dir)
    metrics_path = out / METRICS_FILE
    if writes:
        _trim_metrics(metrics_path, start)

    pad_id = loaded.tokenizer.pad_token_id or 0
    order_seed = (cfg.seed, cfg.subset_seed)
    shape = padded_shape(chosen)

    def batch_fn(step: int):
        ids = budgets.step_example_ids(step, len(chosen), cfg.examples_per_step, order_seed)
        return make_batch(
            [chosen[i] for i in ids], cfg.grad_accum, cfg.batch_size, pad_id=pad_id, shape=shape
        )

    def append(line: dict) -> None:
        if not writes:
            return
        with metrics_path.open("a") as f:
            f.write(json.dumps(line) + "\n")

    def log(metrics: dict) -> None:
        append(metrics)
        if on_log:
            on_log(metrics)

    def evaluate_at(step: int) -> None:
        model = trained_model(trainer, loaded.model, lora)
        line = {"step": step, "eval": evaluator(dataclasses.replace(loaded, model=model))}
        append(line)
        if on_eval:
            on_eval(line)

    if evaluator is not None and start == 0 and not eval_curve(out):
        evaluate_at(0)
    tokens_before, reference = _logged_before(metrics_path, start, batch_fn)

    history = trainer.fit(
        batch_fn,
        start_step=start,
        log_every=cfg.log_every,
        save_every=cfg.save_every,
        save_final=False,  # the adapter / model written below is the finished run's checkpoint
        on_log=log,
        on_save=lambda step: trainer.save(ckpt_dir, step),
        eval_every=cfg.eval_every,
        on_eval=evaluate_at if evaluator is not None else None,
        tokens_before=tokens_before,
        watch=DivergenceWatch(reference=reference),
        flops=throughput.flops_per_token(loaded.config.num_params(), cfg.method),
        peak_tflops=cfg.peak_tflops,
    )
    info = {
        "base_model": cfg.model,
        "task": cfg.task,
        "budget": cfg.budget,
        "subset_seed": cfg.subset_seed,
        "steps": total,
        "train_data": note,
        "fingerprint": cfg.fingerprint(),
        "config": dataclasses.asdict(cfg),
    }
    if writes and lora is not None:
        adapters.save_lora_adapter(out, lora, info, trainer.flat_params())
    elif lora is None:
        # every process takes part in gathering weights sharded over hosts; process 0 writes them
        model = trainer.model() if jax.process_count() == 1 else gathered(trainer.model())
        if writes:
            adapters.save_full_model(out, dataclasses.replace(loaded, model=model), info)
    return FinetuneResult(out, total, start, tuple(history), note, trainer=trainer, lora=lora)


def gathered(model: nnx.Module) -> nnx.Module:
    """``model`` with every parameter whole on this host (a collective: every process must call it)."""
    graph, params, rest = nnx.split(model, nnx.Param, ...)
    return nnx.merge(graph, jax.tree.map(to_host, params), rest)
