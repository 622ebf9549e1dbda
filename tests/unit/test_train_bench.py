"""`ground bench train` at the demo size on the CPU: both modes timed, encoders really run.

.venv/bin/pytest tests/unit/test_train_bench.py -q
"""

from __future__ import annotations

import socket

import pytest

from ground.train.bench import bench_training


@pytest.fixture
def one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variables `ground.train.setup.distributed` would set, undone after the test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for name, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1",
                        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}.items():  # fmt: skip
        monkeypatch.setenv(name, value)


def test_demo_bench_times_both_modes(one_process: None) -> None:
    result = bench_training("demo", steps=1, warmup=1, batch=2, device="cpu")
    cached, fly = result["modes"]["cached"], result["modes"]["on_the_fly"]
    for mode in (cached, fly):
        assert mode["seconds_per_step"] > 0 and mode["tokens_per_s"] > 0
        assert len(mode["step_seconds"]) == 1
        assert mode["mfu"] is None and mode["peak_memory_gib"] is None  # CPU
    assert result["ratio"] > 0
    # batch 2 = an image REC row and a video row: 2 encoders x (1 warm-up + 1 timed) steps
    assert result["media_items"] == {"image": 1, "video": 1}
    assert cached["encoder_calls"] == 0
    assert fly["encoder_calls"] == 4
    assert result["tokens_per_step"] > 0 and result["flops_per_token"] > 0


def test_bad_size_is_refused() -> None:
    with pytest.raises(ValueError, match="size must be one of"):
        bench_training("13b")
