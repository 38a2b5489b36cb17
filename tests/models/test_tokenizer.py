"""The memoized encoder: repeated texts give the backend's ids, and callers own what they get."""

from __future__ import annotations

from tokenizers import Tokenizer

from emergence.models.tokenizer import TextTokenizer

from .helpers import FIXTURES


def test_memoized_encoding_equals_the_backend_and_hands_out_fresh_lists():
    tok = TextTokenizer.from_directory(FIXTURES / "gqa_tied")
    text = "The cat sat on the mat.\nAnswer: yes"
    first = tok.encode(text, add_bos=False)
    assert first == tok.backend.encode(text, add_special_tokens=False).ids
    first.append(-1)  # a caller changing its list cannot reach the memo
    assert tok.encode(text, add_bos=False) == tok.backend.encode(text, add_special_tokens=False).ids
    assert tok.encode(text, add_bos=False) is not tok.encode(text, add_bos=False)
    if tok.bos_token_id is not None:
        assert tok.encode(text, add_bos=True) == [tok.bos_token_id, *first[:-1]]


def test_the_memo_forgets_everything_past_its_character_budget(monkeypatch):
    from emergence.models import tokenizer as module

    monkeypatch.setattr(module._Memo, "MAX_CHARS", 20)
    monkeypatch.setattr(module, "_MEMOS", {})
    tok = TextTokenizer.from_directory(FIXTURES / "gqa_tied")
    tok.encode("0123456789")
    tok.encode("abcdefghij")
    assert len(tok._memo.ids) == 2 and tok._memo.chars == 20
    assert tok.encode("klm") == tok.backend.encode("klm", add_special_tokens=False).ids
    assert list(tok._memo.ids) == ["klm"] and tok._memo.chars == 3


def test_two_loads_of_one_tokenizer_share_a_memo_and_different_tokenizers_do_not():
    first = TextTokenizer.from_directory(FIXTURES / "gqa_tied")
    again = TextTokenizer.from_directory(FIXTURES / "gqa_untied")  # the same tokenizer.json
    first.encode("shared text")
    again.encode("shared text")
    assert first._memo is again._memo
    changed = Tokenizer.from_str(first.backend.to_str())
    changed.add_tokens(["<extra>"])
    other = TextTokenizer(changed)
    other.encode("shared text")
    assert other._memo is not first._memo
