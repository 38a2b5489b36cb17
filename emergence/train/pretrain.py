"""Ladder pretraining: tiny LLaMA models trained from scratch on the toy corpus, exported as HF dirs.

Every model of a :class:`~emergence.train.ladder_config.LadderConfig` sees the same windows at a
step (a pure function of (seed, step)), so the ladder differs only in size and length of training.
At each requested step the model is exported to ``<out>/<model>/step_<N>/`` with tokens, FLOPs
(6·N·tokens) and held-out loss in ``emergence_meta.json``; the manifest ``<out>/ladder.yaml`` lists
every exported checkpoint and is what a sweep's ``checkpoints:`` points at.

The trainable state is saved with orbax at every multiple of the export steps' gcd, so a rerun
after a kill resumes and ends with an uninterrupted run's weights; finished models are skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from flax import nnx

from emergence import fileio
from emergence.config import read_yaml, write_yaml
from emergence.data.toy import store
from emergence.data.toy import tokenizer as toy_tokenizer
from emergence.errors import UserError
from emergence.models.config import LlamaConfig
from emergence.models.llama import Llama
from emergence.models.registry import META_FILE, LoadedModel, ModelMeta, save_model
from emergence.models.tokenizer import TextTokenizer
from emergence.train.budgets import step_example_ids
from emergence.train.config import MeshConfig
from emergence.train.examples import Batch, Example, make_batch
from emergence.train.ladder_config import LadderConfig, LadderModel
from emergence.train.mesh import build_mesh
from emergence.train.trainer import Trainer, mean_loss

MANIFEST = "ladder.yaml"
WORLD_DIR = "world"
STATE_DIR = "state"
HELDOUT_WINDOWS = 64  # held-out windows scored for the pretraining loss (64 × seq_len tokens)


def windows(stream: np.ndarray, seq_len: int) -> np.ndarray:
    """Non-overlapping ``seq_len + 1`` windows (input + next-token targets) of a token stream."""
    n = (len(stream) - 1) // seq_len
    idx = np.arange(n)[:, None] * seq_len + np.arange(seq_len + 1)[None, :]
    return stream[idx]


def lm_batch(rows: np.ndarray) -> Batch:
    """A pretraining batch ``[1, B, T]`` of ``seq_len + 1`` windows: every position predicts the next token."""
    t = rows.shape[1] - 1
    return make_batch([Example(row, t) for row in rows], 1, len(rows), shape=(t, t))


def model_config(m: LadderModel, tok: TextTokenizer, seq_len: int) -> LlamaConfig:
    vocab = -(-tok.vocab_size // 64) * 64  # padded like real models; the padding rows never train
    eos = tok.eos_token_ids[0]
    return LlamaConfig(
        vocab_size=vocab,
        hidden_size=m.hidden_size,
        intermediate_size=m.intermediate_size or 4 * m.hidden_size,
        num_hidden_layers=m.layers,
        num_attention_heads=m.heads,
        num_key_value_heads=m.kv_heads or m.heads,
        max_position_embeddings=seq_len,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )


def _export(out: Path, rel: str, step: int, model, config: LlamaConfig, tok, ladder, heldout) -> None:
    tokens = step * ladder.batch_size * ladder.seq_len
    params = config.num_params()
    loss = mean_loss(model, [lm_batch(heldout[i : i + 16]) for i in range(0, len(heldout), 16)])
    name = f"{rel.split('/')[0]}@{step}"
    flops = 6.0 * params * tokens
    meta = ModelMeta(name=name, source=rel, format="hf", params=params, tokens=tokens, flops=flops)
    extra = {"step": step, "pretrain_loss": loss, "ladder": ladder.name}
    save_model(LoadedModel(model, tok, config, meta), out / rel, extra_meta=extra)


def _manifest_entry(out: Path, model: str, step: int) -> tuple[dict, dict] | None:
    """(the sweep's checkpoint fields, the ladder's details) of an exported checkpoint, or None."""
    rel = f"{model}/step_{step:06d}"
    meta_file = out / rel / META_FILE
    if not meta_file.is_file():
        return None
    meta = fileio.read_json_object(meta_file, "checkpoint metadata")
    try:
        checkpoint = {"model": rel, "id": meta["name"], "params": int(meta["params"]),
                      "tokens": int(meta["tokens"]), "flops": float(meta["flops"])}  # fmt: skip
        details = {"id": meta["name"], "ladder_model": model, "step": int(meta["step"]),
                   "pretrain_loss": float(meta["pretrain_loss"])}  # fmt: skip
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"checkpoint metadata {meta_file}: missing or malformed field ({err})") from None
    return checkpoint, details


def write_manifest(out: Path, ladder: LadderConfig) -> Path:
    """``ladder.yaml``, written atomically: every exported checkpoint in ladder order, as a sweep's
    checkpoint fields (``model`` = path relative to the manifest) and, under the same ids in
    ``details:``, the ladder model, step and held-out loss."""
    entries = [e for m in ladder.models for s in m.checkpoints if (e := _manifest_entry(out, m.name, s))]
    doc = {
        "ladder": ladder.name,
        "data_dir": WORLD_DIR,  # --data-dir for the toy tasks of this ladder's world
        "heldout_corpus": f"{WORLD_DIR}/{store.HELDOUT_TEXT}",  # a sweep's loss.corpus
        "seq_len": ladder.seq_len,
        "checkpoints": [checkpoint for checkpoint, _ in entries],
        "details": [details for _, details in entries],
    }
    return write_yaml(out / MANIFEST, doc)


def read_manifest(path: str | Path) -> list[dict]:
    """The manifest's checkpoints merged with their details, with absolute ``path``s."""
    path = Path(path)
    doc = read_yaml(path)
    try:
        details = {d["id"]: d for d in doc.get("details", [])}
        return [
            {**c, **details.get(c["id"], {}), "path": str((path.parent / c["model"]).resolve())}
            for c in doc["checkpoints"]
        ]
    except (AttributeError, KeyError, TypeError) as err:
        raise UserError(f"ladder manifest {path}: truncated or malformed ({type(err).__name__}: {err})") from None


def train_model(
    out: Path,
    m: LadderModel,
    ladder: LadderConfig,
    tok: TextTokenizer,
    train: np.ndarray,
    heldout: np.ndarray,
    on_log: Callable[[dict], None] | None = None,
) -> None:
    """Pretrain (or resume, or skip when finished) one model of the ladder."""
    if (out / m.name / f"step_{m.steps:06d}" / META_FILE).is_file():
        return
    config = model_config(m, tok, ladder.seq_len)
    model = Llama(config, rngs=nnx.Rngs(ladder.seed))
    trainer = Trainer(
        model, nnx.Param, ladder.optim, m.steps, mesh=build_mesh(MeshConfig()), seed=ladder.seed
    )
    state_dir = out / m.name / STATE_DIR
    start = trainer.restore_latest(state_dir)

    def save(step: int) -> None:
        if step in m.checkpoints:
            _export(out, f"{m.name}/step_{step:06d}", step, trainer.model(), config, tok, ladder, heldout)
        trainer.save(state_dir, step, keep=1)

    def batch_fn(step: int) -> Batch:
        return lm_batch(train[step_example_ids(step, len(train), ladder.batch_size, (ladder.seed,))])

    def log(metrics: dict) -> None:
        if on_log:
            on_log({"model": m.name, "total_steps": m.steps, **metrics})

    trainer.fit(
        batch_fn,
        start_step=start,
        log_every=ladder.log_every,
        save_every=m.save_every,
        on_log=log,
        on_save=save,
        tokens_before=start * ladder.batch_size * ladder.seq_len,  # every window is seq_len tokens
    )


def pretrain_ladder(
    ladder: LadderConfig,
    out: str | Path,
    on_log: Callable[[dict], None] | None = None,
    models: Sequence[str] | None = None,
) -> Path:
    """Pretrain every model of ``ladder`` (or only those named in ``models``) into ``out``; returns
    the manifest path. Models are independent (each has its own folder, seed and batches), so
    several processes may pretrain disjoint ``models`` of one ladder at once (:func:`split_models`)
    once the world exists (:func:`prepare_world`)."""
    names = [m.name for m in ladder.models]
    unknown = [name for name in models or () if name not in names]
    if unknown:
        raise UserError(f"ladder {ladder.name}: no model {unknown[0]!r}; models: {', '.join(names)}")
    out = fileio.check_output_dir(out).resolve()  # the manifest path names the ladder from anywhere
    world_dir = prepare_world(ladder, out)
    tok = toy_tokenizer.load(str(world_dir / store.TOKENIZER_FILE))
    train = windows(store.load_tokens(world_dir, store.TRAIN_TOKENS), ladder.seq_len)
    heldout = windows(store.load_tokens(world_dir, store.HELDOUT_TOKENS), ladder.seq_len)[:HELDOUT_WINDOWS]
    for m in ladder.models:
        if models is None or m.name in models:
            train_model(out, m, ladder, tok, train, heldout, on_log)
            write_manifest(out, ladder)
    return write_manifest(out, ladder)


def prepare_world(ladder: LadderConfig, out: str | Path) -> Path:
    """Generate (or find) the ladder's world, corpus and tokenizer in ``out/world``."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    return store.ensure_corpus(ladder.world, out / WORLD_DIR)


def split_models(ladder: LadderConfig, parts: int) -> list[list[str]]:
    """The ladder's models in ``parts`` groups of about equal pretraining time (~ steps ·
    hidden_size · layers), largest first, for that many processes."""

    def cost(m: LadderModel) -> int:
        return m.steps * m.hidden_size * m.layers

    groups: list[list[str]] = [[] for _ in range(max(1, min(parts, len(ladder.models))))]
    load = [0] * len(groups)
    for m in sorted(ladder.models, key=cost, reverse=True):
        i = load.index(min(load))
        groups[i].append(m.name)
        load[i] += cost(m)
    return groups
