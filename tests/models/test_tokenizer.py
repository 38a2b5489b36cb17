"""The encoder: the backend's ids without special tokens, BOS in front only when asked."""

from __future__ import annotations

from emergence.models.tokenizer import TextTokenizer

from .helpers import FIXTURES


def test_encoding_equals_the_backend_without_special_tokens_and_bos_only_when_asked():
    tok = TextTokenizer.from_directory(FIXTURES / "gqa_tied")
    text = "The cat sat on the mat.\nAnswer: yes"
    plain = tok.encode(text, add_bos=False)
    assert plain == tok.backend.encode(text, add_special_tokens=False).ids
    if tok.bos_token_id is not None:
        assert tok.encode(text, add_bos=True) == [tok.bos_token_id, *plain]
