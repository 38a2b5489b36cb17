"""Our GGUF dequantization gives the gguf library's values bit for bit, faster."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf import quants

from emergence.models.gguf_dequant import CHUNK_BLOCKS, dequantize


def _bits(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float32).reshape(-1).view(np.uint32)


@pytest.mark.parametrize("qtype", [Q.Q4_0, Q.Q4_1, Q.Q8_0, Q.F16, Q.F32])
@pytest.mark.parametrize("rows", [1, 3, 2 * CHUNK_BLOCKS // 4 + 5])  # the last spans chunk ends
def test_dequantize_is_the_library_s_bit_for_bit(qtype, rows):
    """Hand-written kernels (Q4_0, Q4_1, Q8_0) and library fallbacks (F16, F32) alike, on rows of
    four blocks, including values that round to each end of the quantization range."""
    rng = np.random.default_rng(rows)
    weights = rng.normal(0, 0.05, size=(rows, 128)).astype(np.float32)
    weights[0, :8] = [0.0, -0.0, 1e-8, -1e-8, 0.3, -0.3, 0.05, -0.05]
    data = quants.quantize(weights, qtype)
    ours = dequantize(data, qtype)
    assert ours.dtype == np.float32 and ours.shape == (weights.size,)
    np.testing.assert_array_equal(_bits(ours), _bits(quants.dequantize(data, qtype)))


def test_a_truncated_block_is_an_error():
    data = quants.quantize(np.ones((1, 32), np.float32), Q.Q8_0)
    with pytest.raises(ValueError, match="Q8_0 blocks"):
        dequantize(data.reshape(-1)[:-1], Q.Q8_0)


@pytest.mark.realmodel
def test_every_tensor_of_the_real_smollm2_file_is_the_library_s():
    from emergence.models.gguf_file import read_gguf
    from emergence.models.registry import alias_path

    for tensor in read_gguf(alias_path("smollm2-135m")).tensors:
        np.testing.assert_array_equal(
            _bits(dequantize(tensor.data, tensor.tensor_type)),
            _bits(quants.dequantize(tensor.data, tensor.tensor_type)),
            err_msg=tensor.name,
        )
