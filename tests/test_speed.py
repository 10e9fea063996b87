"""The speed work's wiring: the CPU facts behind `--dtype auto`, `--threads`, the machine-aware model
benchmark, and frames made ready for the model ahead of it (the same results as made on the spot)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import seggpt.device as device
from benchmarks import speed_model
from benchmarks.machine import machine_facts, peak_gflops
from seggpt import SegGPT
from seggpt.adapt import add_lora
from seggpt.errors import InputError
from seggpt.predictor import SegGPTPredictor
from vos import VideoSegmenter, run as vos_run
from vos.engine.config import RunConfig, load_run_config
from vos.engine.segmenter import _ahead
from vos.engine.finishing import one_thread_worker
from vos.engine.objects import Objects
from vos.engine.state import Annotations
from vos.data.synthetic import make_clip
from vos.engine.tracker import Tracker
from helpers import random_inputs, segment, write_frames

CPU = torch.device("cpu")


def _cpu(monkeypatch, *features):
    monkeypatch.setattr(device, "cpu_info", lambda: device.CpuInfo("test CPU", "x86_64", tuple(features)))


def test_cpu_info_reads_this_machine():
    info = device.cpu_info()
    assert info.model and info.machine
    assert set(info.features) <= set(device.CPU_FEATURES)
    assert info.native_bf16 == bool({"amx_bf16", "avx512_bf16"} & set(info.features))


@pytest.mark.parametrize("features, width, expected", [
    (("amx_bf16", "avx512f"), 1024, torch.bfloat16),  # Intel with AMX, ViT-L
    (("avx512_bf16", "avx512f"), 1024, torch.bfloat16),  # AMD EPYC (Zen 4), ViT-L
    (("avx512_bf16",), 128, None),  # the small model gains nothing from bf16
    (("avx512_bf16",), None, None),  # width unknown: the safe choice
    (("avx512f", "avx2"), 1024, None),  # no native bf16: emulated bf16 is slower than fp32
    ((), 1024, None),  # ARM or an old x86
])
def test_dtype_auto_on_a_cpu_follows_native_bf16_and_the_model_width(monkeypatch, features, width, expected):
    _cpu(monkeypatch, *features)
    assert device.resolve_dtype("auto", CPU, width) == expected
    reason = device.dtype_reason("auto", CPU, width)
    assert reason.startswith("auto")
    assert ("natively" in reason) == (expected is not None)
    # an explicit dtype is taken as it is, whatever the CPU
    assert device.resolve_dtype("fp32", CPU, width) is None and device.resolve_dtype("bf16", CPU, 8) == torch.bfloat16
    assert device.dtype_reason("bf16", CPU, width) == "as asked"


def test_the_engine_runs_auto_as_resolved_and_says_why(tiny_model, monkeypatch):
    _cpu(monkeypatch, "avx512_bf16")  # test-tiny is 32 wide: fp32 even where bf16 is native
    seg = VideoSegmenter(tiny_model, device="cpu")
    assert seg.predictor.dtype is None and "gains nothing" in seg.dtype_reason
    monkeypatch.setattr(device, "BF16_MIN_WIDTH", 32)
    seg = VideoSegmenter(tiny_model, device="cpu")
    assert seg.predictor.dtype == torch.bfloat16 and "natively" in seg.dtype_reason
    assert all(p.dtype == torch.float32 for p in tiny_model.parameters())  # the shared model stays fp32


def test_set_threads_checks_its_value():
    limit = next(f for f in __import__("dataclasses").fields(RunConfig) if f.name == "threads").metadata["max"]
    assert limit == device.MAX_THREADS  # the settings file's bound is the library's
    before = torch.get_num_threads()
    try:
        assert device.set_threads(None) == before
        assert device.set_threads(1) == 1 == torch.get_num_threads()
        for bad in (0, -2, True, 1.5, "2", device.MAX_THREADS + 1, 100_000):
            with pytest.raises(InputError, match="threads must be"):
                device.set_threads(bad)
    finally:
        torch.set_num_threads(before)


def test_threads_on_the_clis(tiny_weights, tmp_path, capsys):
    """--threads reaches torch and the summary line; a bad value is one line, exit 2."""
    frames, labels = make_clip(1, 3, size=(48, 64), num_objects=1)
    write_frames(tmp_path / "frames", frames)  # a folder of frames
    Image.fromarray((labels[0] > 0).astype(np.uint8) * 255).save(tmp_path / "mask.png")
    argv = [str(tmp_path / "frames"), "--first-mask", str(tmp_path / "mask.png"), "--weights", tiny_weights, "--quiet"]
    before = torch.get_num_threads()
    try:
        code = vos_run.main([*argv, "--out", str(tmp_path / "out"), "--threads", "1"])
        out = capsys.readouterr().out
        assert code == 0 and "1 thread," in out and "fp32 (" in out
    finally:
        torch.set_num_threads(before)
    assert vos_run.main([*argv, "--out", str(tmp_path / "out2"), "--threads", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "threads" in err[0]


def test_peak_and_machine_facts():
    assert peak_gflops(torch.float32, CPU, reps=1, size=256) > 0.1
    facts = machine_facts(CPU)
    assert facts["threads"] == torch.get_num_threads() and facts["cpu"] and "isa" in facts


def test_speed_model_writes_fractions_of_the_peak_and_the_reference_beside_them(tmp_path, monkeypatch, capsys):
    """The benchmark's rows on a tiny model: fp32 equal to transformers, bf16 within bf16 rounding."""
    monkeypatch.setattr(speed_model, "peak_gflops", lambda dtype, dev: 10.0)  # the 4096 matmul is slow for a test
    out = tmp_path / "speed.json"
    assert speed_model.main(["--preset", "test-canvas", "--ks", "1", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["peak_gflops"] == {"fp32": 10.0, "bf16": 10.0} and result["machine"]["cpu"]
    rows = {(r["dtype"], r["k"]): r for r in result["rows"]}
    assert set(rows) == {("fp32", 1), ("fp32", 2), ("bf16", 1), ("bf16", 2)}
    for (dtype, k), row in rows.items():
        assert row["flops"] == SegGPT("test-canvas").config.flops_per_query(k)
        assert row["ours_fraction_of_peak"] == pytest.approx(row["flops"] / row["ours_s"] / 1e9 / 10.0)
        assert row["ratio"] == pytest.approx(row["ours_s"] / row["transformers_s"])
        if dtype == "fp32":
            assert row["relative_diff_vs_transformers"] < 1e-5  # the same model
        else:
            assert 0 < row["ours_relative_error_vs_fp32"] < 0.02 and row["relative_diff_vs_transformers"] < 0.05
    assert "of the bf16 peak" in capsys.readouterr().out


def test_frames_prepared_ahead_give_the_results_made_on_the_spot(tiny_model):
    """The engine resizes the next batch on a worker thread while the model runs; a tracker fed the
    same frames without that (queries made in run_batch) gives identical labels."""
    seg = VideoSegmenter(tiny_model, config={"memory": 2, "batch_frames": 2}, device="cpu", dtype="fp32")
    frames, labels = make_clip(3, 7, size=(40, 56), num_objects=1)
    state, engine = segment(seg, frames, 0, labels[0] == 1, obj_id=1, start_frame_idx=0)
    tracker = Tracker(seg.predictor, seg.config, state.annotations, state.objects)
    spot = [tracker.annotate(0, frames[0]).labels]
    for start in range(1, 7, 2):
        batch = [(i, frames[i]) for i in range(start, min(start + 2, 7))]
        spot.extend(r.labels for r in tracker.run_batch(batch)())
    assert len(engine) == len(spot) == 7
    assert all(np.array_equal(a.labels, b) for a, b in zip(engine, spot))
    assert isinstance(state.annotations, Annotations) and isinstance(state.objects, Objects)


def test_the_cpu_fast_config_is_packaged_and_runs_the_official_shape():
    """`--config cpu-fast`: 320x320, memory 2, dtype auto, read by the one loader; an official-shape model
    (narrow, for the test) runs at that size."""
    settings = load_run_config(RunConfig, "cpu-fast", [])
    assert (settings.engine.image_size, settings.engine.memory, settings.dtype) == (320, 2, "auto")
    assert settings.weights == "BAAI/seggpt-vit-large"  # the file changes speed settings only
    torch.manual_seed(0)
    seg = VideoSegmenter(SegGPT("test-canvas"), config=settings.engine, device="cpu")
    assert seg.predictor.image_size == (320, 320)
    frames, labels = make_clip(4, 4, size=(60, 80), num_objects=1)
    assert len(segment(seg, frames, 0, labels[0] == 1, obj_id=1, start_frame_idx=0)[1]) == 4


def test_bf16_copy_of_a_lora_wrapped_model_and_a_changed_dtype():
    """A model with LoRA wrappers (adaptation with params lora:R) gets a bf16 copy of the same structure,
    its LoRA factors cast too; setting the predictor's dtype back to fp32 runs the shared model."""
    torch.manual_seed(0)
    model = SegGPT("test-tiny").eval()
    add_lora(model, rank=2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_b" in name:
                p.normal_(0, 0.05)  # a learnt update, so that the wrappers matter
    x, pi, pm = random_inputs(1, 2, model.config, seed=2)
    fp32 = model.infer(x, pi, pm)
    predictor = SegGPTPredictor(model, dtype=torch.bfloat16)
    bf16 = predictor.infer(x, pi, pm)
    assert 0 < ((bf16.float() - fp32).norm() / fp32.norm()).item() < 0.02
    copy = predictor.call_model()
    assert type(copy.blocks[0].attn.qkv) is type(model.blocks[0].attn.qkv)
    assert copy.blocks[0].attn.qkv.lora_a.dtype == torch.bfloat16
    assert model.blocks[0].attn.qkv.lora_a.dtype == torch.float32
    predictor.dtype = None
    assert predictor.call_model() is model and torch.equal(predictor.infer(x, pi, pm), fp32)


def test_look_ahead_delivers_every_frame_read_before_a_source_error():
    """An iterator that fails with an error of its own: the frames before it come out first, as without
    look-ahead, then the error."""
    frames = [np.zeros((8, 8, 3), np.uint8)] * 3

    def failing():
        for i, f in enumerate(frames):
            yield i, f
        raise RuntimeError("camera unplugged")

    seg = VideoSegmenter(SegGPT("test-tiny"), device="cpu", dtype="fp32")
    pool = one_thread_worker(CPU, "test")
    got = []
    try:
        with pytest.raises(RuntimeError, match="unplugged"):
            for idx, frame, queries in _ahead(failing(), pool, seg.predictor, depth=2, annotated={1}):
                got.append((idx, queries is None))
    finally:
        pool.shutdown()
    assert got == [(0, False), (1, True), (2, False)]  # the annotated frame 1: at once, not resized
