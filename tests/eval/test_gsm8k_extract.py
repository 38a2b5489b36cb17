"""GSM8K answer extraction: our filters against a hand-checked table and the harness' own output.

``TABLE`` rows: (completion, reference, strict-match extraction, flexible-extract extraction,
strict exact match, flexible exact match). References are written like the dataset's answers
("... #### 18"); exact match normalizes both sides (commas, "$", everything before "#### ", a final
"."). ``scripts/make_golden_prompts.py`` runs the harness' RegexFilter and exact_match on the same
rows and stores the result in ``tests/fixtures/golden_prompts/gsm8k_filters.json``.
"""

import json
from pathlib import Path

import pytest

from emergence.eval import gsm8k_extract as gx

INV = gx.FALLBACK
FILTERS = {"strict-match": gx.strict_match, "flexible-extract": gx.flexible_extract}  # the harness' names
TABLE = [
    ("She makes $18 every day.\n#### 18", "Janet sells 9 eggs.\n#### 18", "18", "18", True, True),
    ("The answer is $29.00", "#### 29", INV, "$29.00", False, False),
    ("#### $29.00", "#### 29", INV, "$29.00", False, False),
    ("So the total is 1,234.\n#### 1,234", "#### 1234", "1,234", "1,234", True, True),
    ("It costs 1,234.", "#### 1234", INV, "1,234.", False, True),
    ("It fell to -5 degrees.\n#### -5", "#### -5", "-5", "-5", True, True),
    ("3 apples + 4 apples = 7 apples", "#### 7", INV, "7", False, True),
    ("The answer is 42", "#### 42", INV, "42", False, True),
    ("#### 42.", "#### 42", "42.", "42.", True, True),
    ("#### 10\n#### 12", "#### 12", "10", "12", False, True),
    ("#### 1000", "#### 1,000", "1000", "1000", True, True),
    ("#### 0.5", "#### 0.5", "0.5", "0.5", True, True),
    ("#### -3.25", "#### -3.25", "-3.25", "-3.25", True, True),
    ("The answer is 18...", "#### 18", INV, "18...", False, False),
    ("", "#### 18", INV, INV, False, False),
    ("#### 18 dollars", "#### 18", "18", "18", True, True),
    ("####18", "#### 18", INV, "18", False, True),
    ("$1,234.50 total", "#### 1234.50", INV, "$1,234.50", False, True),
    ("He owes -$5 now", "#### -5", INV, "-$5", False, True),
    ("#### 7\n", "#### 7", "7", "7", True, True),
    ("The probability is .5", "#### 0.5", INV, ".5", False, False),
    ("She has 12, and he has 3", "#### 3", INV, "3", False, True),
    ("#### 5\nQuestion: next one 9", "#### 5", "5", "9", True, False),
]


@pytest.mark.parametrize(("completion", "reference", "strict", "flexible", "em_strict", "em_flexible"), TABLE)
def test_filters_and_exact_match_follow_the_table(
    completion, reference, strict, flexible, em_strict, em_flexible
):
    assert gx.strict_match(completion) == strict
    assert gx.flexible_extract(completion) == flexible
    assert gx.score_completion(completion, reference) == {"em_strict": em_strict, "em_flexible": em_flexible}


def test_table_agrees_with_the_harness_filters():
    """The harness fixture was computed from TABLE by lm-eval's own RegexFilter and exact_match."""
    path = Path(__file__).parents[1] / "fixtures" / "golden_prompts" / "gsm8k_filters.json"
    golden = json.loads(path.read_text(encoding="utf-8"))
    assert [(r["completion"], r["reference"]) for r in golden["rows"]] == [(t[0], t[1]) for t in TABLE]
    for row in golden["rows"]:
        for name, extract in FILTERS.items():
            assert extract(row["completion"]) == row[name]["extracted"], (name, row["completion"])
            assert gx.exact_match(row[name]["extracted"], row["reference"]) == row[name]["exact_match"]


def test_normalization_is_the_harness_regex_list():
    golden = json.loads(
        (Path(__file__).parents[1] / "fixtures/golden_prompts/gsm8k_filters.json").read_text()
    )
    assert tuple(golden["exact_match"]["regexes_to_ignore"]) == gx.REGEXES_TO_IGNORE
    assert (
        golden["exact_match"]["ignore_case"] is True and golden["exact_match"]["ignore_punctuation"] is False
    )
    assert golden["filters"]["strict-match"]["regex_pattern"] == gx.STRICT_PATTERN.pattern
    assert golden["filters"]["flexible-extract"]["regex_pattern"] == gx.FLEXIBLE_PATTERN.pattern
    assert gx.normalize("Answer is ABC.\n#### $1,000.") == "1000"
