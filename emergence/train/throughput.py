"""Throughput, model FLOPs utilization (MFU) and device memory, for the training log.

FLOPs follow the 6·N·tokens rule (``flops_rule`` in each record): N is the model's parameter count
and a token costs 2N forward and 4N backward, or 4N for LoRA, whose frozen base gets no weight
gradients; attention's own FLOPs are left out, as in the rule. Only real (unpadded) tokens count,
so padding shows as lost utilization. Rates are taken over the interval since the previous log
point from timings the loop already has (the first interval includes compilation), so logging
adds no device synchronization.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Dense bf16 peak TFLOP/s per device, by a substring of ``jax.Device.device_kind`` (first match).
PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("A100", 312.0),
    ("TPU v4", 275.0),
    ("TPU v5 lite", 197.0),
    ("TPU v5e", 197.0),
    ("TPU v5p", 459.0),
    ("TPU v5", 459.0),
)


def peak_tflops(device_kind: str) -> float | None:
    """The table's peak for a device kind; None when unknown (CPUs: give ``peak_tflops``)."""
    return next((peak for kind, peak in PEAK_TFLOPS if kind in device_kind), None)


def flops_per_token(n_params: int, method: str) -> tuple[float, str]:
    """(training FLOPs per token, the rule used) for ``method`` ``full`` or ``lora``."""
    factor = 4 if method == "lora" else 6
    return float(factor * n_params), f"{factor}N"


def rates(
    tokens: int, seconds: float, n_devices: int, flops: tuple[float, str] | None, peak: float | None
) -> dict[str, float | str]:
    """Tokens/s per device over an interval; with ``flops`` (per token, rule) TFLOP/s per device
    and, against ``peak`` (TFLOP/s per device), MFU."""
    per_device = tokens / max(seconds, 1e-9) / n_devices
    out: dict[str, float | str] = {"tokens_per_s_per_device": per_device}
    if flops is not None:
        out.update(tflops_per_device=per_device * flops[0] / 1e12, flops_rule=flops[1])
        if peak:
            out["mfu"] = per_device * flops[0] / 1e12 / peak
    return out


def memory_in_use(devices: Sequence) -> dict[str, float]:
    """GiB in use and at peak on the busiest device, where the backend reports it (not on CPU)."""
    stats = [s for s in (d.memory_stats() for d in devices) if s and "bytes_in_use" in s]
    if not stats:
        return {}
    out = {"memory_gib": max(s["bytes_in_use"] for s in stats) / 2**30}
    if all("peak_bytes_in_use" in s for s in stats):
        out["peak_memory_gib"] = max(s["peak_bytes_in_use"] for s in stats) / 2**30
    return out


def describe(metrics: dict) -> str:
    """The throughput part of a log line (what the record holds of it)."""
    parts = [f"{metrics['tokens_per_s_per_device']:,.0f} tok/s/device"]
    if "tflops_per_device" in metrics:
        parts.append(f"{metrics['tflops_per_device']:.3g} TFLOP/s/device")
    if "mfu" in metrics:
        parts.append(f"MFU {metrics['mfu']:.1%}")
    if "memory_gib" in metrics:
        parts.append(f"{metrics['memory_gib']:.1f} GiB")
    return "  ".join(parts)
