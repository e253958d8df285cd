"""Speed and memory helpers: values present and sane (no timing thresholds)."""

from __future__ import annotations

import torch

from bench.metrics.speed import PeakMemory, latency_ms, samples_per_s, speed_metrics


def test_speed_metrics_keys_and_meta(trained_vae, mnist5k):
    images = mnist5k.train_x[:300].float() / 255
    calls = []
    values, meta = speed_metrics(
        trained_vae.encode,
        trained_vae.decode,
        trained_vae.reconstruct,
        images,
        torch.device("cpu"),
        train_step=lambda x: calls.append(x.shape[0]),
        train_batch_size=32,
    )
    assert set(values) == {
        "train_samples_per_s",
        "encode_samples_per_s",
        "decode_samples_per_s",
        "latency_ms_p50",
        "latency_ms_p95",
        "peak_mem_mb",
    }
    assert all(v >= 0 for v in values.values())
    assert values["latency_ms_p50"] <= values["latency_ms_p95"]
    # 3 warm-up + 5 to 20 timed steps (the timed loop stops after 1.5 s, but not before 5)
    assert set(calls) == {32} and 3 + 5 <= len(calls) <= 3 + 20
    assert meta["device"] == "cpu" and meta["dtype"] == "float32" and meta["batch_size"] == 256


def test_throughput_and_latency_count_calls():
    seen = []
    rate = samples_per_s(lambda x: seen.append(len(x)), torch.zeros(8, 1), torch.device("cpu"))
    assert rate > 0 and seen == [8] * 7
    p50, p95 = latency_ms(lambda x: None, torch.zeros(1), torch.device("cpu"), repeats=10)
    assert 0 <= p50 <= p95


def test_peak_memory_sees_a_large_allocation():
    with PeakMemory(torch.device("cpu")) as mem:
        block = torch.ones(64 * 2**20)  # 64 Mi float32 values: 256 MiB
        block.add_(1)
        del block
    assert mem.peak_mb > 100
