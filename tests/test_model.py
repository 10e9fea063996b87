"""Our SegGPT against transformers' independent port on identical random weights."""
import pytest
import torch

import seggpt.model as m
from benchmarks.reference import official_ensemble, transformers_loop, transformers_twin
from seggpt import SegGPT, get_config
from seggpt.predictor import SegGPTPredictor
from seggpt.weights import to_transformers_keys
from seggpt.weights_file import config_to_transformers
from helpers import random_inputs

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def model():
    """The official canvas on a tiny encoder (seed 0), shared by this module's comparisons."""
    torch.manual_seed(0)
    return SegGPT("test-canvas").eval()


@pytest.fixture(scope="module")
def hf(model):
    # make the type/segment tokens and decoder large enough that a wrong wiring cannot hide
    return transformers_twin(model)


def test_canvas_is_the_official_size(model):
    assert model.config.canvas_size == (896, 448)
    assert model.config.grid_size == (28, 28)


@pytest.mark.parametrize("embedding_type", ["instance", "semantic"])
def test_single_prompt_equals_transformers(model, hf, embedding_type):
    imgs, pimgs, pmasks = random_inputs(2, 1, model.config)
    ours = model.infer(imgs, pimgs, pmasks, embedding_type=embedding_type)
    ref = transformers_loop(hf, imgs, pimgs, pmasks, embedding_type=embedding_type)
    assert ours.shape == (2, 3, 448, 448)
    assert (ours - ref).abs().max().item() <= 1e-5


@pytest.mark.parametrize("k", [3, 8])
def test_ensemble_equals_official_semantics(model, hf, k):
    imgs, pimgs, pmasks = random_inputs(1, k, model.config, seed=k)
    ours = model.infer(imgs, pimgs, pmasks)[0]
    ref = official_ensemble(hf, imgs[0], pimgs[0], pmasks[0])
    assert (ours - ref).abs().max().item() <= 1e-5
    # the official semantics really differ from transformers' own ensemble (so this test can fail)
    hf_own = transformers_loop(hf, imgs, pimgs, pmasks)[0]
    assert (hf_own - ref).abs().max().item() > 1e-4


def test_batched_queries_equal_one_by_one(model, hf):
    imgs, pimgs, pmasks = random_inputs(3, 2, model.config, seed=7)
    batched = model.infer(imgs, pimgs, pmasks)
    for b in range(3):
        single = model.infer(imgs[b:b + 1], pimgs[b:b + 1], pmasks[b:b + 1])[0]
        assert (batched[b] - single).abs().max().item() <= 1e-5
        assert (batched[b] - official_ensemble(hf, imgs[b], pimgs[b], pmasks[b])).abs().max().item() <= 1e-5


def test_prompt_order_only_changes_the_seam_row(model):
    """Item 0 is read at the seam: permuting prompts changes only the first query row band."""
    imgs, pimgs, pmasks = random_inputs(1, 3, model.config, seed=3)
    a = model.infer(imgs, pimgs, pmasks)
    b = model.infer(imgs, pimgs.flip(1), pmasks.flip(1))
    assert (a[..., 1:, :] - b[..., 1:, :]).abs().max().item() <= 1e-5
    assert (a[..., :1, :] - b[..., :1, :]).abs().max().item() > 1e-6


def test_training_forward_matches_transformers_loss(model, hf):
    g = torch.Generator().manual_seed(11)
    h, w = model.config.image_size
    imgs = torch.randn(2, 3, 2 * h, w, generator=g)
    prompt_masks = torch.randn(2, 3, h, w, generator=g)
    labels = torch.randn(2, 3, h, w, generator=g)
    tgts = torch.cat([prompt_masks, labels], dim=2)
    loss, pred = model(imgs, tgts)
    bool_masked_pos = model.bottom_half_mask(2)
    with torch.no_grad():
        out = hf(pixel_values=imgs[:, :, h:], prompt_pixel_values=imgs[:, :, :h], prompt_masks=prompt_masks,
                 labels=labels, bool_masked_pos=bool_masked_pos)
    assert (pred - out.pred_masks).abs().max().item() <= 1e-5
    assert abs(loss.item() - out.loss.item()) <= 1e-5


def test_loss_ignores_the_prompt_half():
    torch.manual_seed(1)
    model = SegGPT("test-tiny")
    h, w = model.config.image_size
    imgs = torch.randn(1, 3, 2 * h, w)
    tgts = torch.randn(1, 3, 2 * h, w)
    loss, pred = model(imgs, tgts)
    # a prediction that is perfect on the bottom half and garbage on top has zero loss
    fake = tgts.clone()
    fake[:, :, :h] += 10.0
    assert model.loss(fake, tgts, model.bottom_half_mask(1)).item() == 0.0
    loss.backward()
    assert model.patch_embed.proj.weight.grad is not None


def test_drop_path_keeps_prompt_and_query_of_a_canvas_together():
    torch.manual_seed(0)
    model = SegGPT(get_config("test-tiny").replace(drop_path_rate=0.5)).train()
    h, w = model.config.image_size
    loss, pred = model(torch.randn(4, 3, 2 * h, w), torch.randn(4, 3, 2 * h, w))
    assert torch.isfinite(loss)
    model.eval()
    a = model.infer(torch.randn(1, 3, h, w), torch.randn(1, 1, 3, h, w), torch.randn(1, 1, 3, h, w))
    assert torch.isfinite(a).all()


def test_bad_shapes_raise_clear_errors():
    model = SegGPT("test-tiny")
    h, w = model.config.image_size
    with pytest.raises(ValueError, match="model's image size"):
        model.infer(torch.randn(1, 3, h + 8, w), torch.randn(1, 1, 3, h + 8, w), torch.randn(1, 1, 3, h + 8, w))
    with pytest.raises(ValueError, match="batch mismatch"):
        model.infer(torch.randn(2, 3, h, w), torch.randn(1, 1, 3, h, w), torch.randn(1, 1, 3, h, w))
    with pytest.raises(ValueError, match="embedding_type"):
        model.infer(torch.randn(1, 3, h, w), torch.randn(1, 1, 3, h, w), torch.randn(1, 1, 3, h, w), "panoptic")


def test_query_block_merge_equals_plain_attention(model):
    """The log-sum-exp merge of the shared query-to-query block (K > 1) changes nothing but speed."""
    imgs, pimgs, pmasks = random_inputs(2, 4, model.config, seed=5)
    merged = model.infer(imgs, pimgs, pmasks)
    for blk in model.blocks:
        blk.attn.merge_query_blocks = False
    try:
        plain = model.infer(imgs, pimgs, pmasks)
    finally:
        for blk in model.blocks:
            blk.attn.merge_query_blocks = True
    assert (merged - plain).abs().max().item() <= 1e-5
    # the portable (CUDA) path of attention_with_lse gives the same as the fused CPU kernel
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 20, 8, generator=g) for _ in range(3))
    bias = torch.randn(2, 3, 20, 20, generator=g)
    out, lse = m._attention_with_lse_math(q, k, v, bias, 0.3)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=0.3)
    assert (out - ref).abs().max().item() <= 1e-5
    fused, fused_lse = m.attention_with_lse(q, k, v, bias, 0.3)
    assert (fused - ref).abs().max().item() <= 1e-5 and (fused_lse - lse).abs().max().item() <= 1e-4


def test_compiled_inference_equals_eager(tiny_model):
    """The torch.compile wiring (backend 'eager' keeps the test fast; CI has no time to run inductor).
    Compiling is the predictor's: the shared model keeps nn.Module.compile and its own infer."""
    imgs, pimgs, pmasks = random_inputs(1, 2, tiny_model.config, seed=9)
    eager = tiny_model.infer(imgs, pimgs, pmasks)
    compiled = SegGPTPredictor(tiny_model).compile(backend="eager").infer(imgs, pimgs, pmasks)
    assert (eager - compiled).abs().max().item() <= 1e-6
    assert type(tiny_model).compile is torch.nn.Module.compile and tiny_model.infer.__func__ is SegGPT.infer


@pytest.mark.parametrize("k", [1, 3])
def test_bf16_inference_follows_fp32_on_a_copy_cast_once(tiny_model, k):
    """A bf16 predictor runs a copy whose matrix weights are cast once (no autocast, no cast per call);
    the shared model stays fp32 and bit-exact. K = 3 goes through the log-sum-exp merge in bf16."""
    imgs, pimgs, pmasks = random_inputs(2, k, tiny_model.config, seed=11)
    fp32 = tiny_model.infer(imgs, pimgs, pmasks)
    predictor = SegGPTPredictor(tiny_model, dtype=torch.bfloat16)
    bf16 = predictor.infer(imgs, pimgs, pmasks)
    assert torch.equal(tiny_model.infer(imgs, pimgs, pmasks), fp32)  # the shared model is left in fp32
    assert all(p.dtype == torch.float32 for p in tiny_model.parameters())
    assert bf16.shape == fp32.shape and torch.isfinite(bf16).all()
    rel = (bf16.float() - fp32).norm() / fp32.norm()
    assert 0.0 < rel.item() < 0.02  # it really ran in bf16, and bf16 keeps ~3 significant digits per op
    copy = predictor.call_model()
    assert copy is predictor.call_model()  # made once, not per call
    assert copy.blocks[0].attn.qkv.weight.dtype == torch.bfloat16 and copy.decoder_embed.weight.dtype == torch.bfloat16
    # norms, tokens and the 64->3 head are the shared model's own fp32 tensors, not copies
    assert copy.blocks[0].norm1.weight is tiny_model.blocks[0].norm1.weight
    assert copy.mask_token is tiny_model.mask_token and copy.decoder_pred[3].weight is tiny_model.decoder_pred[3].weight


def test_bf16_copy_is_remade_when_the_shared_weights_change():
    """Adaptation or loading changes the shared model in place: the predictor's bf16 copy follows."""
    torch.manual_seed(0)
    model = SegGPT("test-tiny").eval()
    imgs, pimgs, pmasks = random_inputs(1, 2, model.config, seed=12)
    predictor = SegGPTPredictor(model, dtype=torch.bfloat16)
    before, old_copy = predictor.infer(imgs, pimgs, pmasks), predictor.call_model()
    with torch.no_grad():
        model.blocks[1].mlp.fc2.weight.mul_(3.0)
    after = predictor.infer(imgs, pimgs, pmasks)
    assert predictor.call_model() is not old_copy
    fp32 = model.infer(imgs, pimgs, pmasks)
    assert (after.float() - fp32).norm() / fp32.norm() < 0.02 < (before.float() - fp32).norm() / fp32.norm()


# one query row of float32 bias below is groups * heads * grid_w * key_rows * grid_w * 4 bytes
@pytest.mark.parametrize("chunk_bytes", [1, 2 * (2 * 3 * 4 * 7 * 4 * 4) + 1, 1 << 30])
@pytest.mark.parametrize("with_lse", [False, True])
def test_chunked_rel_pos_attention_equals_the_whole_bias(chunk_bytes, with_lse, monkeypatch):
    """The CPU inference path builds the decomposed bias a few query rows at a time (one row, a chunk that
    leaves a ragged last chunk (2, 2, 1 of 5 rows), everything at once): the same as softmax(q k^T s + bias) v with the whole
    bias built as the official code builds it (q . R_h + q . R_w, broadcast over the key grid)."""
    g = torch.Generator().manual_seed(3)
    groups, heads, rows, grid_w, d, key_rows = 2, 3, 5, 4, 8, 7
    q = torch.randn(groups, heads, rows * grid_w, d, generator=g)
    k, v = (torch.randn(groups, heads, key_rows * grid_w, d, generator=g) for _ in range(2))
    rel_h = torch.randn(rows, key_rows, d, generator=g)
    rel_w = torch.randn(grid_w, grid_w, d, generator=g)
    qr = q.reshape(groups, heads, rows, grid_w, d)
    bias = (torch.einsum("mhrwc,rkc->mhrwk", qr, rel_h)[..., :, None]
            + torch.einsum("mhrwc,wkc->mhrwk", qr, rel_w)[..., None, :]).reshape(groups, heads, rows * grid_w, -1)
    ref, ref_lse = m._attention_with_lse_math(q, k, v, bias, 0.3)
    monkeypatch.setattr(m, "BIAS_CHUNK_BYTES", chunk_bytes)
    with torch.no_grad():
        out, lse = m.rel_pos_attention(q, k, v, rel_h, rel_w, grid_w, 0.3, with_lse=with_lse)
    assert (out - ref).abs().max().item() <= 1e-5
    if with_lse:
        assert (lse - ref_lse).abs().max().item() <= 1e-4
    else:
        assert lse is None
    with torch.enable_grad():  # training builds the whole bias (autograd): the same numbers
        whole, _ = m.rel_pos_attention(q, k, v, rel_h, rel_w, grid_w, 0.3, with_lse=with_lse)
    assert (whole - ref).abs().max().item() <= 1e-5


def test_attention_with_lse_math_path_in_bf16():
    """The CUDA branch of attention_with_lse (matmuls, fp32 softmax statistics) with bf16 inputs."""
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 3, 24, 16, generator=g) for _ in range(3))
    bias = torch.randn(2, 3, 24, 24, generator=g)
    ref, ref_lse = m._attention_with_lse_math(q, k, v, bias, 0.25)
    out, lse = m._attention_with_lse_math(q.bfloat16(), k.bfloat16(), v.bfloat16(), bias.bfloat16(), 0.25)
    assert out.dtype == torch.bfloat16 and lse.dtype == torch.float32
    assert (out.float() - ref).abs().max().item() < 0.05
    assert (lse - ref_lse).abs().max().item() < 0.05


def test_cached_position_tables_follow_the_weights():
    """Inference keeps the position tables; new weights (loaded or edited in place) rebuild them."""
    torch.manual_seed(0)
    model = SegGPT("test-tiny").eval()
    other = SegGPT("test-tiny").eval()
    with torch.no_grad():
        for blk in other.blocks:
            blk.attn.rel_pos_h.normal_()
            blk.attn.rel_pos_w.normal_()
    imgs, pimgs, pmasks = random_inputs(1, 2, model.config, seed=3)
    before = model.infer(imgs, pimgs, pmasks)  # fills the cache
    model.load_state_dict(other.state_dict())
    assert torch.equal(model.infer(imgs, pimgs, pmasks), other.infer(imgs, pimgs, pmasks))
    assert not torch.equal(before, other.infer(imgs, pimgs, pmasks))
    with torch.no_grad():
        for blk in model.blocks:
            blk.attn.rel_pos_w.mul_(2.0)
        model.pos_embed.add_(0.5)  # the absolute table is kept too
    fresh = SegGPT("test-tiny").eval()
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(model.infer(imgs, pimgs, pmasks), fresh.infer(imgs, pimgs, pmasks))


def test_another_input_size_equals_transformers_at_that_size(tiny_model):
    """`at_image_size`: the same parameters (shared, not copied) at another input size, equal to transformers
    built for that size with these weights (its position tables interpolated by its own code), with the
    official ensemble semantics."""
    from transformers import SegGptConfig, SegGptForImageSegmentation

    view = tiny_model.at_image_size(96)
    assert view.config.image_size == (96, 96) and tiny_model.config.image_size == (64, 64)
    assert tiny_model.at_image_size((64, 64)) is tiny_model
    shared = dict(tiny_model.named_parameters())
    assert all(p is shared[name] for name, p in view.named_parameters())  # no copy: one set of weights
    hf = SegGptForImageSegmentation(SegGptConfig(**config_to_transformers(view.config))).eval()
    state = to_transformers_keys(tiny_model.state_dict())
    for name, module in hf.named_modules():  # the trained relative tables, as a checkpoint brings them
        for table in ("rel_pos_h", "rel_pos_w"):
            if hasattr(module, table):
                setattr(module, table, torch.nn.Parameter(state[f"{name}.{table}"].clone()))
    hf.load_state_dict(state, strict=True)
    imgs, pimgs, pmasks = random_inputs(2, 3, view.config, seed=5)
    ours = view.infer(imgs, pimgs, pmasks)
    assert ours.shape == (2, 3, 96, 96)
    official = torch.stack([official_ensemble(hf, imgs[b], pimgs[b], pmasks[b]) for b in range(2)])
    torch.testing.assert_close(ours, official, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="100 is not a multiple of this model's patch size 8"):
        tiny_model.at_image_size(100)
    with pytest.raises(ValueError, match="at least the patch size"):
        tiny_model.at_image_size(0)
