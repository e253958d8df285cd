"""Speed and memory helpers: values present and sane (no timing thresholds)."""

from __future__ import annotations

import os
import time

import torch

from aebench import models
from aebench.metrics.memory import PeakMemory
from aebench.metrics.speed import latency_ms, samples_per_s, speed_metrics


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
    # 3 warm-up + 5 to 20 timed steps (the timed loop stops after 1.5 s, but not before 5), then
    # one untimed step for the memory measurement
    assert set(calls) == {32} and 3 + 5 + 1 <= len(calls) <= 3 + 20 + 1
    assert meta["device"] == "cpu" and meta["dtype"] == "float32" and meta["batch_size"] == 256


def test_throughput_and_latency_count_calls():
    seen = []
    rate = samples_per_s(lambda x: seen.append(len(x)), torch.zeros(8, 1), torch.device("cpu"))
    assert rate > 0 and seen == [8] * 7
    calls = []

    def sleep_2ms(x: torch.Tensor) -> None:  # time.sleep waits at least this long
        calls.append(len(x))
        time.sleep(0.002)

    p50, p95 = latency_ms(sleep_2ms, torch.zeros(1), torch.device("cpu"), repeats=10)
    assert calls == [1] * (3 + 10)  # warm-up, then the timed calls
    assert 2.0 <= p50 <= p95  # each timed call's wall time, in milliseconds


def test_peak_memory_sees_a_short_lived_allocation():
    with PeakMemory(torch.device("cpu")) as mem:
        block = torch.ones(64 * 2**20)  # 64 Mi float32 values: 256 MiB
        block.add_(1)
        del block
    assert 256 <= mem.peak_mb < 257


def test_peak_memory_is_the_peak_not_the_sum_and_ignores_what_was_live_before():
    resting = torch.ones(8 * 2**20)  # 32 MiB live at entry: not part of the block's peak
    with PeakMemory(torch.device("cpu")) as one_at_a_time:
        for _ in range(3):
            block = torch.ones(2 * 2**20)  # 8 MiB, freed before the next
            del block
        del resting  # freeing older memory inside the block does not lower the peak below 0
    with PeakMemory(torch.device("cpu")) as held:
        blocks = [torch.ones(2 * 2**20) for _ in range(3)]
    del blocks
    assert 8 <= one_at_a_time.peak_mb < 8.5
    assert 24 <= held.peak_mb < 24.5


def test_a_training_step_needs_more_memory_at_a_larger_batch(capfd):
    model = models.create("vae", arch="conv", latent_dim=8, image_shape=(1, 28, 28))
    opt = torch.optim.Adam(model.parameters())

    def step(x: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        model.loss(x)["loss"].backward()
        opt.step()

    peaks = {}
    for batch in (16, 128):
        x = torch.rand(batch, 1, 28, 28)
        step(x)
        with PeakMemory(torch.device("cpu")) as mem:
            step(x)
        peaks[batch] = mem.peak_mb
    grads_mb = sum(p.numel() * 4 for p in model.parameters()) / 2**20
    assert grads_mb < peaks[16] < peaks[128]
    # the profiler's own chatter is kept off the terminal
    assert "USDT" not in capfd.readouterr().err


def test_peak_memory_passes_on_what_the_block_itself_writes_to_stderr(capfd):
    with PeakMemory(torch.device("cpu")):
        os.write(2, b"a warning from the measured code\n")
    assert capfd.readouterr().err == "a warning from the measured code\n"
