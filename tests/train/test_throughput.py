"""Throughput and MFU for the training log: the peak table, the rates, device memory where reported."""

from __future__ import annotations

import pytest

from emergence.train.throughput import describe, flops_per_token, memory_in_use, peak_tflops, rates


@pytest.mark.parametrize(
    ("kind", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H200", 989.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("TPU v4", 275.0),
        ("TPU v5 lite", 197.0),
        ("TPU v5p", 459.0),
        ("cpu", None),
    ],
)
def test_the_peak_comes_from_the_device_kind(kind, peak):
    assert peak_tflops(kind) == peak


def test_lora_counts_four_n_flops_per_token_and_full_finetuning_six():
    assert flops_per_token(1000, "lora") == (4000.0, "4N")
    assert flops_per_token(1000, "full") == (6000.0, "6N")


def test_rates_are_per_device_and_mfu_is_against_the_peak():
    out = rates(tokens=8000, seconds=2.0, n_devices=4, flops=(6e9, "6N"), peak=10.0)
    assert out["tokens_per_s_per_device"] == 1000.0
    assert out["tflops_per_device"] == pytest.approx(6.0)
    assert out["mfu"] == pytest.approx(0.6)
    assert out["flops_rule"] == "6N"
    assert "mfu" not in rates(8000, 2.0, 4, (6e9, "6N"), None)  # unknown peak: no MFU, no guess
    assert set(rates(8000, 2.0, 4, None, 10.0)) == {"tokens_per_s_per_device"}


class _Device:
    def __init__(self, stats):
        self.stats = stats

    def memory_stats(self):
        return self.stats


def test_device_memory_is_logged_where_the_backend_reports_it():
    assert memory_in_use([_Device(None)]) == {}  # CPU
    busy = {"bytes_in_use": 3 * 2**30, "peak_bytes_in_use": 5 * 2**30}
    idle = {"bytes_in_use": 2**30, "peak_bytes_in_use": 2**30}
    assert memory_in_use([_Device(idle), _Device(busy)]) == {"memory_gib": 3.0, "peak_memory_gib": 5.0}
    line = describe({"tokens_per_s_per_device": 1234.0, "tflops_per_device": 0.5, "mfu": 0.25, "memory_gib": 3.0})
    assert line == "1,234 tok/s/device  0.5 TFLOP/s/device  MFU 25.0%  3.0 GiB"
