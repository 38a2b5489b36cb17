"""The toy world: deterministic generation, task prompts laid out like the real tasks, a real BPE."""

from __future__ import annotations

import json

import pytest

from emergence.config import from_dict
from emergence.data import templates
from emergence.data.tasks import get_task, make_requests
from emergence.data.toy import store, tokenizer
from emergence.data.toy.corpus import documents
from emergence.data.toy.formats import statement
from emergence.data.toy.tasks import TOY_TASKS, task_docs
from emergence.data.toy.world import SPLITS, VALUES, WorldConfig, build_world
from emergence.errors import UserError

SMALL = WorldConfig(seed=3, n_entities=40, corpus_tokens_hint=40_000, heldout_docs=50, vocab_size=400)


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    return store.ensure_corpus(SMALL, tmp_path_factory.mktemp("toy") / "world")


def test_same_seed_same_world_corpus_and_tasks():
    a, b = build_world(SMALL), build_world(SMALL)
    assert a.entities == b.entities
    assert list(documents(a, 50)) == list(documents(b, 50))
    for task in TOY_TASKS:
        assert task_docs(a, task, "test") == task_docs(b, task, "test")
    other = build_world(WorldConfig(seed=4, n_entities=40))
    assert other.entities != a.entities


def test_generated_files_are_byte_identical_across_runs(tmp_path, toy_dir):
    again = store.ensure_corpus(SMALL, tmp_path / "again")
    for name in (
        "world.json",
        "tokenizer.json",
        "corpus_train.npy",
        "corpus_heldout.npy",
        "tasks/toy_mc/test.jsonl",
        "tasks/toy_math/train.jsonl",
    ):
        assert (again / name).read_bytes() == (toy_dir / name).read_bytes(), name


def test_splits_are_disjoint_and_test_entities_are_never_quizzed_on_task_relations():
    world = build_world(SMALL)
    for task in TOY_TASKS:
        seen = {split: {d["entity"] for d in task_docs(world, task, split)} for split in SPLITS}
        for i, s in enumerate(SPLITS):
            for t in SPLITS[i + 1 :]:
                assert not seen[s] & seen[t], (task, s, t)
    test_names = {e.name for e in world.by_split["test"]}
    task_items = 0
    # quiz items on the task relations/operation exist, but never about a test entity
    for doc in documents(world, 600):
        for item in doc.split("\n\n"):
            if "Question:" in item and (
                "color" in item or "animal" in item or "keeps" in item or "finds" in item
            ):
                task_items += 1
                words = set(item.replace("?", " ").replace(".", " ").split())
                assert not words & test_names, item
    assert task_items > 20


def test_every_task_answer_is_a_fact_the_corpus_states():
    world = build_world(SMALL)
    facts = {(e.name, v) for e in world.entities for v in e.attrs.values()}
    for d in task_docs(world, "toy_mc", "test"):
        assert (d["entity"], d["choices"][d["answer"]]) in facts
    coins = {e.name: e.coins for e in world.entities}
    for d in task_docs(world, "toy_math", "test"):
        assert d["answer"].startswith(f"{d['entity']} had {coins[d['entity']]} coins.")


def test_toy_prompts_render_exactly_like_the_real_task_templates():
    world = build_world(SMALL)
    mc = task_docs(world, "toy_mc", "test")[0]
    real_mc = {"question": "Question: " + mc["question"], "choices": mc["choices"], "answer": mc["answer"]}
    assert get_task("toy_mc").doc_to_text(mc) == templates.mmlu_text(real_mc)
    yn = task_docs(world, "toy_yesno", "test")[0]
    assert get_task("toy_yesno").doc_to_text(yn) == templates.cola_text(yn)
    assert get_task("toy_yesno").doc_to_target(yn) == get_task("cola").doc_to_target(yn)
    gm = task_docs(world, "toy_math", "test")[0]
    assert get_task("toy_math").doc_to_text(gm) == templates.gsm8k_text(gm)
    assert gm["answer"].endswith(f"#### {gm['answer'].split('#### ')[1]}")


def test_make_requests_works_for_toy_tasks_through_the_task_machinery(toy_dir):
    spec, reqs = make_requests("toy_mc", shots=2, data_dir=toy_dir)
    assert reqs[0].continuations == (" A", " B", " C", " D")
    shots = reqs[0].context.split("\n\n")
    assert (
        len(shots) == 3
        and shots[0].startswith("Question: ")
        and shots[0][-3:] in {": A", ": B", ": C", ": D"}
    )
    assert reqs[0].context.endswith("\nAnswer:")
    _, yn = make_requests("toy_yesno", shots=0, data_dir=toy_dir)
    assert yn[0].continuations == (" no", " yes") and yn[0].context.endswith("make sense?\nAnswer:")
    _, gm = make_requests("toy_math", shots=1, data_dir=toy_dir)
    assert gm[0].is_generation and gm[0].stop == ("\n", "Question:") and "#### " in gm[0].gold


def test_unknown_toy_split_and_task_are_one_line_user_errors(toy_dir):
    with pytest.raises(UserError, match="no split 'dev'"):
        make_requests("toy_mc", split="dev", data_dir=toy_dir)
    with pytest.raises(UserError, match="toy_mc"):
        get_task("toy_nope")


def test_bpe_round_trips_corpus_and_prompts(toy_dir):
    tok = tokenizer.load(str(toy_dir / "tokenizer.json"))
    world = build_world(SMALL)
    texts = [
        *documents(world, 20, "heldout"),
        make_requests("toy_math", shots=2, data_dir=toy_dir)[1][0].context,
    ]
    for text in texts:
        assert tok.decode(tok.encode(text)) == text
    assert tok.vocab_size == SMALL.vocab_size
    stream = store.load_tokens(toy_dir, store.TRAIN_TOKENS)
    assert stream.dtype.name == "int32" and stream.max() < tok.vocab_size
    assert (stream == tok.eos_token_ids[0]).sum() > 100  # documents separated by <|endoftext|>


def test_a_directory_holding_another_world_is_refused(toy_dir):
    with pytest.raises(UserError, match="another config"):
        store.ensure_tasks(WorldConfig(seed=99, n_entities=40), toy_dir)
    assert json.loads((toy_dir / "world.json").read_text())["config"]["seed"] == 3


def test_cli_generates_the_toy_world_and_rejects_bad_sizes(tmp_path, capsys):
    from emergence.cli import main

    main(["toy", "generate", "--out", str(tmp_path / "w"), "--entities", "24", "--tasks-only"])
    assert capsys.readouterr().out.strip() == str(tmp_path / "w")
    assert len((tmp_path / "w" / "tasks" / "toy_mc" / "test.jsonl").read_text().splitlines()) > 0
    with pytest.raises(SystemExit) as exit_info:
        main(["toy", "generate", "--out", str(tmp_path / "x"), "--entities", "3"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == "error: toy world: n_entities must be >= 20, got 3"


def test_acceptability_items_are_intact_or_corrupted_statements():
    from emergence.data.toy import formats

    world = build_world(SMALL)
    names = {e.name: e for e in world.entities}
    docs = task_docs(world, "toy_yesno", "test")
    assert sum(d["label"] for d in docs) * 2 == len(docs)  # balanced
    for d in docs:
        e = names[d["entity"]]
        intact = {
            formats.statement(r, e.name, e.attrs[r], f) for r in world.config.task_relations for f in (0, 1)
        }
        assert (d["sentence"] in intact) == bool(d["label"]), d


def test_mc_options_are_the_relations_values_in_fixed_order():
    world = build_world(SMALL)
    for d in task_docs(world, "toy_mc", "test"):
        assert tuple(d["choices"]) == VALUES[d["relation"]]


def test_words_quizzes_answer_mostly_with_values_and_right_wrong():
    """``quiz_answers: words``: the task layouts, answered in words except a small share; the
    default world is unchanged by the option's existence (same documents as before)."""
    world = build_world(
        WorldConfig(seed=3, quiz_answers="words", task_answer_share=0.1, quiz_splits=("fewshot",))
    )
    answers = [
        item.rsplit("Answer:", 1)[1].strip()
        for doc in documents(world, 3000)
        for item in doc.split("\n\n")
        if "\nA. " in item or "make sense?" in item
    ]
    words = {v for values in VALUES.values() for v in values} | {"right", "wrong"}
    in_words = sum(a in words for a in answers) / len(answers)
    in_task = sum(a in {"A", "B", "C", "D", "yes", "no"} for a in answers) / len(answers)
    assert 0.8 < in_words < 0.97 and in_words + in_task == 1.0
    quizzed = {e.name for e in world.quiz_entities}
    assert quizzed == {e.name for e in world.by_split["fewshot"]}
    assert from_dict(WorldConfig, world.config.to_dict(), source="test") == world.config
    # a default world's description (and so its cache key) has no quiz keys, as before they existed
    assert not {"quiz_answers", "quiz_splits", "task_answer_share"} & set(WorldConfig().to_dict())


def test_quiz_option_errors_name_the_key():
    with pytest.raises(UserError, match="quiz_splits"):
        WorldConfig(quiz_splits=("test",))
    with pytest.raises(UserError, match="quiz_answers"):
        WorldConfig(quiz_answers="letters")
    with pytest.raises(UserError, match="task_answer_share"):
        WorldConfig(task_answer_share=1.5)
    with pytest.raises(UserError, match="unknown document kind 'quiz'"):
        list(documents(build_world(WorldConfig(doc_mix=(("quiz", 1.0),))), 1))


def test_qa_documents_state_facts_in_question_form_about_everyone():
    world = build_world(WorldConfig(seed=3, doc_mix=(("qa", 1.0),)))
    facts = {(e.name, v) for e in world.entities for v in e.attrs.values()}
    asked = set()
    for doc in documents(world, 300):
        for item in doc.split("\n\n"):
            question, answer = item.split("\nAnswer: ")
            name = next(w for w in question.rstrip("?").split() if w in {e.name for e in world.entities})
            assert (name, answer) in facts, item
            asked.add(name)
    assert {e.name for e in world.by_split["test"]} <= asked


@pytest.mark.parametrize("name", ["toy.yaml", "toy_words.yaml"])
def test_committed_toy_ladders_name_valid_worlds(name):
    from pathlib import Path

    from emergence.train.ladder_config import LadderConfig

    ladder = LadderConfig.from_file(Path(__file__).parents[2] / "configs" / "ladders" / name)
    world = ladder.world
    assert world.quiz_answers == ("words" if name == "toy_words.yaml" else "task")


def test_balanced_values_give_every_split_each_value_equally_often():
    """``balanced_values``: a finetuning set has no label prior to learn, and one constant letter
    scores exactly chance on the test split; names, coins and splits are those of the plain world."""
    from collections import Counter

    plain = build_world(SMALL)
    world = build_world(WorldConfig(seed=3, n_entities=40, balanced_values=True))
    assert [(e.name, e.coins, e.split) for e in world.entities] == [
        (e.name, e.coins, e.split) for e in plain.entities
    ]
    for split in SPLITS:
        for rel in VALUES:
            counts = Counter(e.attrs[rel] for e in world.by_split[split])
            assert max(counts.values()) - min(counts.get(v, 0) for v in VALUES[rel]) <= 1, (split, rel)
    letters = Counter(d["answer"] for d in task_docs(world, "toy_mc", "test"))
    assert len(set(letters.values())) == 1 and len(letters) == 4
    assert "balanced_values" not in WorldConfig().to_dict()


def _error_kind(intact: str, sentence: str) -> int | None:
    """Which edit turns ``intact`` into ``sentence``: 0 none, 1 adjacent swap, 2 a word dropped,
    3 a word doubled (None: some other)."""
    a, b = intact[:-1].split(" "), sentence[:-1].split(" ")
    if a == b:
        return 0
    for i in range(len(a) - 1):
        if b == a[:i] + [a[i + 1], a[i]] + a[i + 2 :]:
            return 1
        if b == a[: i + 1] + a[i + 2 :]:
            return 2
        if b == a[:i] + [a[i]] + a[i:]:
            return 3
    return None


def test_error_questions_ask_what_is_wrong_with_a_statement_with_balanced_letters():
    """``mc_task: error``: a letter question gives a fact statement, intact (A) or with two words
    swapped (B), a word missing (C) or a word doubled (D); every split takes the kinds in turn, and
    the quizzes answer in the same layout (in words: the option's text)."""
    from collections import Counter

    from emergence.data.toy import formats

    world = build_world(WorldConfig(seed=3, n_entities=40, mc_task="error", quiz_answers="words"))
    for split in SPLITS:
        docs = task_docs(world, "toy_mc", split)
        counts = Counter(d["answer"] for d in docs)
        assert max(counts.values()) - min(counts.values()) <= 1 and len(counts) == 4, (split, counts)
    for d in task_docs(world, "toy_mc", "test"):
        entity = next(e for e in world.entities if e.name == d["entity"])
        sentence = d["question"].removeprefix("What is wrong with this sentence: ")
        intact = [statement(d["relation"], entity.name, entity.attrs[d["relation"]], f) for f in (0, 1)]
        assert d["answer"] in {_error_kind(s, sentence) for s in intact}, d
        assert d["choices"] == list(formats.ERROR_CHOICES)
    answers = [
        item.rsplit("Answer:", 1)[1].strip()
        for doc in documents(world, 2000)
        for item in doc.split("\n\n")
        if "\nA. " in item
    ]
    assert set(answers) <= set(formats.ERROR_CHOICES) | set("ABCD")
    assert sum(a in formats.ERROR_CHOICES for a in answers) > 0.8 * len(answers)
    assert from_dict(WorldConfig, world.config.to_dict(), source="test") == world.config
    with pytest.raises(UserError, match="mc_task"):
        WorldConfig(mc_task="facts")


def test_a_worlds_description_names_only_the_variant_options_it_sets():
    """World caches and the demo's ladder stamp are keyed by this description, so a ladder
    pretrained before an option existed is still recognised as the same ladder."""
    from emergence.data.toy.world import OPTIONAL_KEYS

    assert WorldConfig().unset_options() == set(OPTIONAL_KEYS)
    assert not set(OPTIONAL_KEYS) & set(WorldConfig().to_dict())
    variant = WorldConfig(balanced_values=True, quiz_splits=("fewshot", "validation"))
    assert variant.unset_options() == set(OPTIONAL_KEYS) - {"balanced_values", "quiz_splits"}
    assert variant.to_dict()["quiz_splits"] == ["fewshot", "validation"]
    assert from_dict(WorldConfig, variant.to_dict(), source="test") == variant
