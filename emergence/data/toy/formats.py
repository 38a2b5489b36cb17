"""How the toy world is put into words: fact sentences, questions and worked answers.

The same phrasings serve the corpus (statements, quizzes on the exam relations) and the tasks
(questions on the other relations), so a task is never worded in a way the corpus could not teach;
what differs between them is only *which* relation meets *which* format.
"""

from __future__ import annotations

import random

# two statement forms per relation: the second puts the entity after the relation word, so the model
# must tie a fact to the entity rather than to one fixed word order
STATEMENTS: dict[str, tuple[str, str]] = {
    "color": ("{name} likes the color {value}.", "the favorite color of {name} is {value}."),
    "pet": ("{name} keeps a {value}.", "the pet of {name} is a {value}."),
    "city": ("{name} lives in {value}.", "the home of {name} is {value}."),
}
COINS_STATEMENTS = ("{name} has {coins} coins.", "the purse of {name} holds {coins} coins.")
QUESTIONS: dict[str, str] = {
    "color": "What color does {name} like?",
    "pet": "What animal does {name} keep?",
    "city": "Where does {name} live?",
}
OP_VERBS = {"plus": "finds", "minus": "loses"}
# toy_mc's options in a world with ``mc_task: error``, in this fixed order: the kind of error a
# sentence has (A: none; B-D: the kinds of ``corrupt``)
ERROR_CHOICES = ("nothing", "swapped words", "a missing word", "a doubled word")


def statement(relation: str, name: str, value: str, form: int = 0) -> str:
    return STATEMENTS[relation][form].format(name=name, value=value)


def coins_statement(name: str, coins: int, form: int = 0) -> str:
    return COINS_STATEMENTS[form].format(name=name, coins=coins)


def arithmetic(a: int, op: str, b: int) -> tuple[str, int]:
    """("7 plus 5 is 12.", 12): the corpus' arithmetic sentences and the worked answers' middle step."""
    result = a + b if op == "plus" else a - b
    return f"{a} {op} {b} is {result}.", result


def corrupt(rng: random.Random, sentence: str, kind: int) -> str:
    """``sentence`` with an error of one kind at a random place (0: two adjacent words swapped,
    1: a word dropped, 2: a word doubled; the final period stays), as in CoLA's starred sentences."""
    words = sentence[:-1].split(" ")
    i = rng.randrange(len(words) - 1)
    if kind == 0:
        words[i], words[i + 1] = words[i + 1], words[i]
    elif kind == 1:
        del words[i + 1]
    else:
        words.insert(i, words[i])
    return " ".join(words) + "."


def math_record(name: str, coins: int, op: str, delta: int) -> dict:
    """A one-step word problem whose worked answer recalls a fact, then does arithmetic."""
    step, result = arithmetic(coins, op, delta)
    return {
        "question": f"{name} {OP_VERBS[op]} {delta} coins. How many coins does {name} have now?",
        "answer": f"{name} had {coins} coins. {step} #### {result}",
        "entity": name,
    }


# ----------------------------------------------------------------------------- prompt pieces
# (the toy tasks' other prompt pieces are the real tasks' own, from emergence.data.templates)


def mc_text(doc: dict) -> str:
    """MMLU's layout with a "Question: " in front (as CSQA asks), so quiz and task items read alike."""
    c = doc["choices"]
    return f"Question: {doc['question']}\nA. {c[0]}\nB. {c[1]}\nC. {c[2]}\nD. {c[3]}\nAnswer:"


def shot_block(text: str, target: str) -> str:
    """One answered item as a quiz in the corpus shows it (the harness' shot layout)."""
    return f"{text} {target}"
