"""The CUDA paths against the CPU: run on a GPU machine (benchmarks/gpu_check.sh); skipped elsewhere.

The same logic is covered on the CPU by the other test files (the bf16 copy of the model, the matmul
branch of attention_with_lse, the pipelined engine); these check what only a GPU runs: the math branch
of attention_with_lse as the default, the whole relative-position bias, pinned uploads, post-processing
on the GPU in the worker thread, bf16 by default in the engine and bf16 autocast in training.
"""
import numpy as np
import pytest
import torch

from seggpt import SegGPT
from seggpt.decode import resize_argmax
from seggpt.predictor import SegGPTPredictor
from helpers import random_inputs, segment, tiny_train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("k", [1, 4])
def test_fp32_on_cuda_equals_cpu(k):
    torch.manual_seed(0)
    cpu = SegGPT("test-canvas").eval()
    gpu = SegGPT("test-canvas").eval().cuda()
    gpu.load_state_dict(cpu.state_dict())
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    x, p, m = random_inputs(2, k, cpu.config, seed=k)
    ref = cpu.infer(x, p, m)
    out = gpu.infer(x.cuda(), p.cuda(), m.cuda()).cpu()
    assert (out - ref).abs().max().item() < 1e-3


def test_bf16_on_cuda_follows_fp32():
    """The predictor's bf16 copy (weights cast once) on the GPU, K = 3 through the log-sum-exp merge."""
    torch.manual_seed(0)
    model = SegGPT("test-canvas").eval().cuda()
    x, p, m = (t.cuda() for t in random_inputs(1, 3, model.config, seed=3))
    fp32 = model.infer(x, p, m)
    bf16 = SegGPTPredictor(model, dtype=torch.bfloat16).infer(x, p, m)
    rel = (bf16.float() - fp32).norm() / fp32.norm()
    assert 0.0 < rel.item() < 0.02


def test_attention_with_lse_on_cuda_matches_sdpa():
    import seggpt.model as sm

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 64, 32, generator=g).cuda() for _ in range(3))
    bias = torch.randn(2, 4, 64, 64, generator=g).cuda()
    out, lse = sm.attention_with_lse(q, k, v, bias, 0.2)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=0.2)
    assert (out - ref).abs().max().item() < 1e-4
    assert torch.isfinite(lse).all()


def test_preprocessing_and_resize_on_cuda_follow_the_cpu():
    torch.manual_seed(0)
    model = SegGPT("test-tiny").eval()
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (120, 200, 3), dtype=np.uint8) for _ in range(2)]
    cpu = SegGPTPredictor(model).preprocess_images(frames)
    gpu = SegGPTPredictor(SegGPT("test-tiny").eval().cuda()).preprocess_images(frames).cpu()  # pinned upload
    grey = (gpu - cpu).abs() * 0.229 * 255
    assert grey.max().item() <= 1.5  # uint8 kernel on the CPU, float on the GPU: within one grey level
    scores = torch.nn.functional.interpolate(torch.randn(2, 4, 8, 8), size=(64, 64), mode="bilinear")
    assert torch.equal(resize_argmax(scores.cuda(), (480, 854)).cpu(), resize_argmax(scores, (480, 854)))


def test_engine_on_cuda_bf16_by_default_agrees_with_cpu():
    from vos import VideoSegmenter
    from vos.data.synthetic import make_clip

    torch.manual_seed(0)
    model = SegGPT("small")
    frames, labels = make_clip(3, 8, size=(96, 160), num_objects=2)
    results = {}
    for device in ("cpu", "cuda"):
        seg = VideoSegmenter(model, config={"memory": 2}, device=device)
        results[device] = [r.labels for r in segment(seg, frames, 0, labels[0].astype(np.int64))[1]]
        if device == "cuda":
            assert seg.predictor.dtype == torch.bfloat16
    agree = np.mean([(a == b).mean() for a, b in zip(results["cpu"], results["cuda"])])
    assert agree > 0.95


def test_training_step_on_cuda_with_bf16_autocast(tmp_path):
    from training.config import load_config
    from training.trainer import Trainer

    cfg = load_config(None, tiny_train(tmp_path, steps=6, batch_size=4, warmup_steps=2, device="cuda", amp="bf16",
                                       lr=1e-3))
    trainer = Trainer(cfg)
    assert trainer.amp_dtype == torch.bfloat16
    out = trainer.run()
    assert len(out["losses"]) == 6 and all(np.isfinite(out["losses"]))
