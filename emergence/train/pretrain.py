"""Ladder pretraining: tiny LLaMA models trained from scratch on the toy corpus, exported as HF dirs.

For each model of a :class:`~emergence.train.ladder_config.LadderConfig`, the project's
:class:`~emergence.train.trainer.Trainer` (every position carries loss) runs over a fixed token
stream cut into ``seq_len + 1`` windows; the windows a step sees are a pure function of (seed, step),
identical for every model, so the ladder differs only in size and length of training. At each
requested step the model is exported with :func:`~emergence.models.registry.save_model` to
``<out>/<model>/step_<N>/`` with ``emergence_meta.json`` recording tokens seen, FLOPs (6·N·tokens)
and the held-out pretraining loss; the manifest ``<out>/ladder.yaml`` lists every exported
checkpoint and is what a sweep's ``checkpoints:`` points at.

Resume: the trainable state (parameters, AdamW moments, step) is saved with orbax at every multiple
of the export steps' gcd, atomically. A rerun after a kill at any point restores the newest state
and continues; because data, learning rate and step keys depend only on the step, the final weights
equal an uninterrupted run's. Finished models are recognized by their final export and skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emergence import fileio
from emergence.config import read_yaml, write_yaml
from emergence.data.toy import store
from emergence.data.toy import tokenizer as toy_tokenizer
from emergence.errors import UserError
from emergence.models.config import LlamaConfig
from emergence.models.tokenizer import TextTokenizer
from emergence.train.examples import Batch
from emergence.train.ladder_config import LadderConfig, LadderModel

MANIFEST = "ladder.yaml"
WORLD_DIR = "world"
STATE_DIR = "state"
HELDOUT_WINDOWS = 64  # held-out windows scored for the pretraining loss (64 × seq_len tokens)


@dataclass(frozen=True)
class CheckpointEntry:
    """One exported checkpoint. The manifest's ``checkpoints:`` list holds the sweep's checkpoint
    fields (``model`` = path relative to the manifest, ``id``, ``params``, ``tokens``, ``flops``);
    its ``details:`` list adds the ladder model, step and held-out loss under the same ids."""

    id: str
    path: str
    model: str
    step: int
    params: int
    tokens: int
    flops: float
    pretrain_loss: float

    def checkpoint(self) -> dict:
        return {
            "model": self.path,
            "id": self.id,
            "params": self.params,
            "tokens": self.tokens,
            "flops": self.flops,
        }

    def details(self) -> dict:
        return {
            "id": self.id,
            "ladder_model": self.model,
            "step": self.step,
            "pretrain_loss": self.pretrain_loss,
        }


def windows(stream: np.ndarray, seq_len: int) -> np.ndarray:
    """Non-overlapping ``seq_len + 1`` windows (input + next-token targets) of a token stream."""
    n = (len(stream) - 1) // seq_len
    idx = np.arange(n)[:, None] * seq_len + np.arange(seq_len + 1)[None, :]
    return stream[idx]


def step_windows(step: int, n_windows: int, batch_size: int, seed: int) -> np.ndarray:
    """Window ids of one step: consecutive slices of per-epoch permutations, a pure function of step."""
    start = step * batch_size
    ids = []
    while len(ids) < batch_size:
        epoch, offset = divmod(start + len(ids), n_windows)
        perm = np.random.default_rng([seed, epoch]).permutation(n_windows)
        ids.extend(perm[offset : offset + batch_size - len(ids)].tolist())
    return np.asarray(ids)


def lm_batch(rows: np.ndarray) -> Batch:
    """A pretraining batch ``[1, B, T]``: every position predicts the next token."""
    b, t1 = rows.shape
    t = t1 - 1
    pos = np.broadcast_to(np.arange(t, dtype=np.int32), (b, t))
    return Batch(
        tokens=rows[None, :, :-1].astype(np.int32),
        valid=np.ones((1, b, t), bool),
        target_pos=pos[None].copy(),
        targets=rows[None, :, 1:].astype(np.int32),
        target_mask=np.ones((1, b, t), np.float32),
    )


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


def heldout_loss(model, heldout: np.ndarray) -> float:
    from emergence.train.trainer import mean_loss

    return mean_loss(model, [lm_batch(heldout[i : i + 16]) for i in range(0, len(heldout), 16)])


def _export(
    out: Path,
    m: LadderModel,
    step: int,
    model,
    config: LlamaConfig,
    tok: TextTokenizer,
    ladder: LadderConfig,
    heldout: np.ndarray,
) -> CheckpointEntry:
    from emergence.models.registry import LoadedModel, ModelMeta, save_model

    tokens = step * ladder.batch_size * ladder.seq_len
    params = config.num_params()
    flops = 6.0 * params * tokens
    loss = heldout_loss(model, heldout)
    rel = f"{m.name}/step_{step:06d}"
    meta = ModelMeta(
        name=f"{m.name}@{step}", source=rel, format="hf", params=params, tokens=tokens, flops=flops
    )
    save_model(
        LoadedModel(model, tok, config, meta),
        out / rel,
        extra_meta={"step": step, "pretrain_loss": loss, "ladder": ladder.name},
    )
    return CheckpointEntry(meta.name, rel, m.name, step, params, tokens, flops, loss)


def _entry_from_dir(out: Path, rel: str) -> CheckpointEntry | None:
    meta_file = out / rel / "emergence_meta.json"
    if not meta_file.is_file():
        return None
    meta = fileio.read_json_object(meta_file, "checkpoint metadata")
    model = rel.split("/")[0]
    try:
        return CheckpointEntry(
            meta["name"],
            rel,
            model,
            int(meta["step"]),
            int(meta["params"]),
            int(meta["tokens"]),
            float(meta["flops"]),
            float(meta["pretrain_loss"]),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"checkpoint metadata {meta_file}: missing or malformed field ({err})") from None


def write_manifest(out: Path, ladder: LadderConfig) -> Path:
    """``ladder.yaml``: every exported checkpoint, in ladder order (written atomically)."""
    entries = [
        e
        for m in ladder.models
        for s in m.checkpoints
        if (e := _entry_from_dir(out, f"{m.name}/step_{s:06d}")) is not None
    ]
    doc = {
        "ladder": ladder.name,
        "data_dir": WORLD_DIR,  # --data-dir for the toy tasks of this ladder's world
        "heldout_corpus": f"{WORLD_DIR}/{store.HELDOUT_TEXT}",  # a sweep's loss.corpus
        "seq_len": ladder.seq_len,
        "checkpoints": [e.checkpoint() for e in entries],
        "details": [e.details() for e in entries],
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
    from flax import nnx

    from emergence.models.llama import Llama
    from emergence.train import checkpoints
    from emergence.train.config import MeshConfig
    from emergence.train.mesh import build_mesh
    from emergence.train.trainer import Trainer

    if (out / m.name / f"step_{m.steps:06d}" / "emergence_meta.json").is_file():
        return
    config = model_config(m, tok, ladder.seq_len)
    model = Llama(config, rngs=nnx.Rngs(ladder.seed))
    trainer = Trainer(
        model, nnx.Param, ladder.optim, m.steps, mesh=build_mesh(MeshConfig()), seed=ladder.seed
    )
    state_dir = out / m.name / STATE_DIR
    start = 0
    if latest := checkpoints.step_dirs(state_dir):
        params, opt, start = checkpoints.restore_checkpoint(latest[-1][1], *trainer.abstract_state())
        trainer.load_state(params, opt)

    def save(step: int) -> None:
        if step in m.checkpoints:
            _export(out, m, step, trainer.model(), config, tok, ladder, heldout)
        checkpoints.save_checkpoint(state_dir, step, trainer.flat_params(), trainer.opt_leaves(), keep=1)

    def batch_fn(step: int) -> Batch:
        return lm_batch(train[step_windows(step, len(train), ladder.batch_size, ladder.seed)])

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
    """The ladder's models in ``parts`` groups of about equal pretraining time, largest first, for
    that many processes (cost ~ steps · hidden_size · layers: on a CPU tiny models are bound by
    per-step overhead more than by FLOPs)."""

    def cost(m: LadderModel) -> int:
        return m.steps * m.hidden_size * m.layers

    groups: list[list[str]] = [[] for _ in range(max(1, min(parts, len(ladder.models))))]
    load = [0] * len(groups)
    for m in sorted(ladder.models, key=cost, reverse=True):
        i = load.index(min(load))
        groups[i].append(m.name)
        load[i] += cost(m)
    return groups
