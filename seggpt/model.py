"""SegGPT (Wang et al., ICCV 2023) with the official semantics, restructured for speed.

The official model paints a (2H x W) canvas: prompt image on top, query image below, and the same for
the masks, whose bottom half is hidden by a mask token. With K prompts for one query it runs K canvases
and, inside every block, averages the query-half rows of the attention output over the K items (the
"feature ensemble"; within each of the two input streams up to the merge block). Two facts follow, and
this implementation is built on them:

* the query half is identical for all K items after every block, so its rows (qkv, projection, MLP)
  are computed once per query instead of K times; only the attention of the query rows over each
  prompt's keys differs per prompt;
* the decoder's only cross-row operation is one 3x3 convolution, so decoding the query half plus the
  one token row above it (read from prompt 0, as the official code returns item 0) gives exactly the
  official prediction at a fraction of the cost.

Tokens are therefore carried as two tensors: `prompt` rows (B*K items, the top half) and `query` rows
(B items, the bottom half). With K = 1 this is plain full-canvas attention, which is also how the
training forward runs. Parameter names follow the official checkpoint, so it loads without renaming.

The official code: https://github.com/baaivision/Painter/tree/main/SegGPT (``models_seggpt.py``); the
paper: https://arxiv.org/abs/2304.03284.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from .config import SegGPTConfig, get_config


def get_rel_pos(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """Relative position embeddings for every (query, key) coordinate pair, (q_size, k_size, dim).

    The table is resized (linearly) only when it was trained for another grid, as in ViTDet.
    """
    max_rel_dist = 2 * max(q_size, k_size) - 1
    if rel_pos.shape[0] != max_rel_dist:
        rel_pos = F.interpolate(
            rel_pos.reshape(1, rel_pos.shape[0], -1).permute(0, 2, 1), size=max_rel_dist, mode="linear"
        ).reshape(-1, max_rel_dist).permute(1, 0)
    q_coords = torch.arange(q_size, device=rel_pos.device)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size, device=rel_pos.device)[None, :] * max(q_size / k_size, 1.0)
    relative = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)
    return rel_pos[relative.long()]


def attention_with_lse(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, scale: float
) -> Tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T * scale + bias) v and the log-sum-exp of each row, (..., L, d) and (..., L).

    On the CPU PyTorch's fused flash kernel returns both (it takes a float32 bias beside bf16 queries:
    it accumulates in float32 anyway); elsewhere (CUDA included) the same is computed with matmuls, in
    fp32 for the softmax statistics.
    """
    if q.device.type == "cpu" and hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu"):
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            q.contiguous(), k.contiguous(), v.contiguous(), 0.0, False, attn_mask=bias.contiguous(), scale=scale
        )
        return out, lse.float()
    return _attention_with_lse_math(q, k, v, bias, scale)


def _attention_with_lse_math(q, k, v, bias, scale):
    scores = torch.matmul(q, k.transpose(-2, -1)).float() * scale + bias.float()
    lse = torch.logsumexp(scores, dim=-1)
    out = torch.matmul(torch.exp(scores - lse.unsqueeze(-1)).to(v.dtype), v)
    return out, lse


def _attend(q, k, v, bias, scale, with_lse):
    """The attention output, and the log-sum-exp too when with_lse (else None)."""
    if with_lse:
        return attention_with_lse(q, k, v, bias, scale)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale), None


#: bytes of float32 bias built at once by the chunked CPU attention: the chunk stays in the caches
#: between being written and being read by the attention kernel, where a whole heads x L x L bias
#: (L = 1,568) cost as much as the attention itself. 32 MB measured best of 4-64 MB (2-core AMD EPYC,
#: 32 MB L3; larger chunks also keep the attention kernel's query blocks long).
BIAS_CHUNK_BYTES = 32 << 20


def rel_pos_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rel_h: torch.Tensor, rel_w: torch.Tensor,
    grid_w: int, scale: float, with_lse: bool = False,
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """softmax(q k^T * scale + bias) v with ViTDet's decomposed relative-position bias, and optionally
    the log-sum-exp of each row, (M, heads, L, d) and (M, heads, L).

    The bias of query i (token row r_i, column c_i) for key j (row r_j, column c_j) is
    q_i . rel_h[r_i, r_j] + q_i . rel_w[c_i, c_j] with the UNscaled q; rel_h (rows, Hk, d) holds the
    tables of exactly q's L / grid_w token rows, rel_w (grid_w, Wk, d). The two small factors are
    computed in float32 and expanded to the full bias a few query rows at a time (inference on the
    CPU) into one reused buffer, so that the heads x L x L bias is never materialised: writing it to
    fresh memory and reading it back cost as much as the attention. With autograd (training) or on
    an accelerator the bias is built whole, as autograd and the GPU kernels want it.
    """
    m, h, length, d = q.shape
    rows = length // grid_w
    hk, wk = rel_h.shape[1], rel_w.shape[1]
    chunked = q.device.type == "cpu" and not torch.is_grad_enabled() and not torch.compiler.is_compiling()
    qr = q.reshape(m, h, rows, grid_w, d)
    if chunked:
        qr, rel_h, rel_w = qr.float(), rel_h.float(), rel_w.float()
    else:
        rel_h, rel_w = rel_h.to(q.dtype), rel_w.to(q.dtype)
    bias_h = torch.einsum("mhrwc,rkc->mhrwk", qr, rel_h)  # (M, heads, rows, grid_w, Hk)
    bias_w = torch.einsum("mhrwc,wkc->mhrwk", qr, rel_w)  # (M, heads, rows, grid_w, Wk)
    if not chunked:
        return _attend(q, k, v, (bias_h[..., :, None] + bias_w[..., None, :]).reshape(m, h, length, hk * wk),
                       scale, with_lse)
    k, v = k.contiguous(), v.contiguous()  # once, not once per chunk
    per_row = m * h * grid_w * hk * wk * 4
    step = max(1, min(rows, BIAS_CHUNK_BYTES // per_row))
    buffer = torch.empty(step * per_row // 4, dtype=torch.float32, device=q.device)
    out = torch.empty(m, h, length, v.shape[-1], dtype=v.dtype, device=q.device)
    lse = torch.empty(m, h, length, dtype=torch.float32, device=q.device) if with_lse else None
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        n = r1 - r0
        bias = buffer[: n * per_row // 4].view(m, h, n, grid_w, hk, wk)
        torch.add(bias_h[:, :, r0:r1, :, :, None], bias_w[:, :, r0:r1, :, None, :], out=bias)
        span = slice(r0 * grid_w, r1 * grid_w)
        o, l = _attend(q[:, :, span], k, v, bias.view(m, h, n * grid_w, hk * wk), scale, with_lse)
        out[:, :, span] = o
        if with_lse:
            lse[:, :, span] = l
    return out, lse


#: what `_cached_on_weights` keeps on a module: never carried into a copy with other weights
_WEIGHT_CACHES = ("_rel_cache", "_pos_cache")


def _as_input_of(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """x in the dtype of `layer`'s weights (its first parameter, so a LoRA wrapper's too): the matmuls of a
    `reduced_precision_copy` take bf16 inputs while the residual stream stays float32."""
    weight = layer._parameters.get("weight")  # Linear, Conv2d: no generator on the hot path
    return x.to((weight if weight is not None else next(layer.parameters())).dtype)


def _cached_on_weights(owner: nn.Module, name: str, params: Sequence[torch.Tensor], extra_key: Any,
                       build: Callable[[], Any]) -> Any:
    """`build()`, kept on `owner` between inference calls for as long as `params` are unchanged.

    For what depends only on weights (position tables). The key holds the parameters' version
    counters and storage, so loading, moving or training the weights rebuilds it; with autograd on
    (training) or under torch.compile nothing is kept.
    """
    if torch.is_grad_enabled() or torch.compiler.is_compiling():
        return build()
    key = (extra_key,) + tuple((p._version, p.data_ptr(), p.device) for p in params)
    cached = owner.__dict__.get(name)
    if cached is None or cached[0] != key:
        cached = (key, build())
        owner.__dict__[name] = cached
    return cached[1]


class Attention(nn.Module):
    """Global multi-head attention with a decomposed relative-position bias (ViTDet style).

    Works on the split layout: `prompt` (G*K, Np, C) and `query` (G, Nq, C), where G is the number of
    independent canvases' query halves and K the prompts per query. Returns the attention output of
    both, the query rows averaged over the K prompts (the official feature ensemble).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, grid: Tuple[int, int]):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        canvas_h, canvas_w = 2 * grid[0], grid[1]
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * canvas_h - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * canvas_w - 1, head_dim))
        #: merge the shared query-to-query block by log-sum-exp (inference with K > 1)
        self.merge_query_blocks = True

    def _split_heads(self, tokens: torch.Tensor, groups: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(groups*k, n, C) tokens -> q, k, v as (groups, k, heads, n, d) views (no copy)."""
        m, n, _ = tokens.shape
        qkv = self.qkv(_as_input_of(self.qkv, tokens))
        qkv = qkv.view(groups, m // groups, n, 3, self.num_heads, -1).permute(3, 0, 1, 4, 2, 5)
        return qkv[0], qkv[1], qkv[2]

    def _rel_tables(self, grid: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
        """The relative-position tables for this grid (kept between inference calls: building them
        costs ~10% of a small model's forward)."""
        grid_h, grid_w = grid
        return _cached_on_weights(
            self, "_rel_cache", (self.rel_pos_h, self.rel_pos_w), grid,
            lambda: (get_rel_pos(2 * grid_h, 2 * grid_h, self.rel_pos_h), get_rel_pos(grid_w, grid_w, self.rel_pos_w)))

    def forward(
        self, prompt: torch.Tensor, query: torch.Tensor, num_prompts: int, grid: Tuple[int, int]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        grid_h, grid_w = grid
        groups = query.shape[0]
        k = num_prompts
        qp, kp, vp = self._split_heads(prompt, groups)  # (G, K, h, Np, d)
        qq, kq, vq = (t[:, 0] for t in self._split_heads(query, groups))  # (G, h, Nq, d)
        n_p = qp.shape[3]

        table_h, table_w = self._rel_tables(grid)
        if k > 1 and self.merge_query_blocks and not torch.is_grad_enabled():
            return self._forward_merged(qp, kp, vp, qq, kq, vq, table_h, table_w, grid)

        prompt_out = []
        query_sum = None
        for i in range(k):
            # canvas i: prompt i on top, the shared query below; one attention over all its rows
            out, _ = rel_pos_attention(
                torch.cat([qp[:, i], qq], dim=2), torch.cat([kp[:, i], kq], dim=2), torch.cat([vp[:, i], vq], dim=2),
                table_h, table_w, grid_w, self.scale)
            prompt_out.append(out[:, :, :n_p])
            query_sum = out[:, :, n_p:] if query_sum is None else query_sum + out[:, :, n_p:]
        return self._project(prompt_out, query_sum / k if k > 1 else query_sum)

    def _forward_merged(self, qp, kp, vp, qq, kq, vq, table_h, table_w, grid):
        """K > 1: the query rows' attention over the query keys is the same for every prompt.

        It is computed once, with its log-sum-exp, and merged with each prompt's block the way flash
        attention merges key blocks: out = (e^lse1 o1 + e^lse2 o2) / (e^lse1 + e^lse2).
        """
        grid_h, grid_w = grid
        k = qp.shape[1]
        out_qq, lse_qq = rel_pos_attention(qq, kq, vq, table_h[grid_h:, grid_h:], table_w, grid_w, self.scale,
                                           with_lse=True)
        prompt_out = []
        query_sum = None
        for i in range(k):
            out_p, _ = rel_pos_attention(qp[:, i], torch.cat([kp[:, i], kq], dim=2), torch.cat([vp[:, i], vq], dim=2),
                                         table_h[:grid_h], table_w, grid_w, self.scale)
            prompt_out.append(out_p)
            out_qp, lse_qp = rel_pos_attention(qq, kp[:, i], vp[:, i], table_h[grid_h:, :grid_h], table_w, grid_w,
                                               self.scale, with_lse=True)
            top = torch.maximum(lse_qp, lse_qq)
            w_p, w_q = (lse_qp - top).exp_().unsqueeze(-1), (lse_qq - top).exp_().unsqueeze(-1)
            merged = (out_qp * w_p + out_qq * w_q) / (w_p + w_q)
            query_sum = merged if query_sum is None else query_sum + merged
        return self._project(prompt_out, query_sum / k)

    def _project(self, prompt_out: List[torch.Tensor], query_heads: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        groups, heads, n_p, d = prompt_out[0].shape
        k = len(prompt_out)
        prompt_heads = torch.stack(prompt_out, dim=1).reshape(groups * k, heads, n_p, d)
        prompt_out_t = prompt_heads.transpose(1, 2).reshape(groups * k, n_p, heads * d)
        query_out_t = query_heads.transpose(1, 2).reshape(groups, -1, heads * d)
        return self.proj(_as_input_of(self.proj, prompt_out_t)), self.proj(_as_input_of(self.proj, query_out_t))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(_as_input_of(self.fc1, x))))


class Block(nn.Module):
    """Pre-norm transformer block over the split (prompt, query) layout."""

    def __init__(self, cfg: SegGPTConfig, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=cfg.layer_norm_eps)
        self.attn = Attention(cfg.embed_dim, cfg.num_heads, cfg.qkv_bias, cfg.grid_size)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=cfg.layer_norm_eps)
        self.mlp = Mlp(cfg.embed_dim, cfg.mlp_dim)
        self.drop_path = drop_path

    def _keep(self, groups: int, like: torch.Tensor) -> Optional[torch.Tensor]:
        """Stochastic depth: one keep/drop decision per canvas, shared by its prompt and query rows."""
        if not self.training or self.drop_path <= 0.0:
            return None
        keep = 1.0 - self.drop_path
        return torch.empty(groups, 1, 1, dtype=like.dtype, device=like.device).bernoulli_(keep) / keep

    def forward(
        self, prompt: torch.Tensor, query: torch.Tensor, num_prompts: int, grid: Tuple[int, int]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        attn_p, attn_q = self.attn(self.norm1(prompt), self.norm1(query), num_prompts, grid)
        keep_q = self._keep(query.shape[0], query)
        keep_p = None if keep_q is None else keep_q.repeat_interleave(num_prompts, dim=0)
        if keep_q is not None:
            attn_p, attn_q = attn_p * keep_p, attn_q * keep_q
        prompt = prompt + attn_p
        query = query + attn_q
        mlp_p, mlp_q = self.mlp(self.norm2(prompt)), self.mlp(self.norm2(query))
        if keep_q is not None:
            mlp_p, mlp_q = mlp_p * keep_p, mlp_q * keep_q
        return prompt + mlp_p, query + mlp_q


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an NCHW tensor (the decoder's norm)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps).permute(0, 3, 1, 2)


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(M, 3, H, W) -> (M, H/p, W/p, C)."""
        return self.proj(_as_input_of(self.proj, x)).permute(0, 2, 3, 1)


class SegGPT(nn.Module):
    """SegGPT: in-context segmentation by painting the query half of a prompt/query canvas."""

    def __init__(self, config: Union[str, SegGPTConfig] = "vit-large"):
        super().__init__()
        cfg = get_config(config)
        self.config = cfg
        c = cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg.patch_size, c)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, 1, c))
        self.segment_token_x = nn.Parameter(torch.zeros(1, 1, 1, c))
        self.segment_token_y = nn.Parameter(torch.zeros(1, 1, 1, c))
        self.type_token_cls = nn.Parameter(torch.zeros(1, 1, 1, c))
        self.type_token_ins = nn.Parameter(torch.zeros(1, 1, 1, c))
        pretrain_grid = cfg.pretrain_image_size // cfg.patch_size
        self.pos_embed = nn.Parameter(torch.zeros(1, pretrain_grid * pretrain_grid + 1, c))
        rates = [cfg.drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.ModuleList([Block(cfg, rates[i]) for i in range(cfg.depth)])
        self.norm = nn.LayerNorm(c, eps=cfg.layer_norm_eps)
        p, dd = cfg.patch_size, cfg.decoder_dim
        self.decoder_embed = nn.Linear(c * len(cfg.feature_layers), p * p * dd)
        self.decoder_pred = nn.Sequential(
            nn.Conv2d(dd, dd, kernel_size=3, padding=1),
            LayerNorm2d(dd, eps=cfg.layer_norm_eps),
            nn.GELU(),
            nn.Conv2d(dd, 3, kernel_size=1),
        )
        self.reset_parameters()

    # ------------------------------------------------------------------ weights
    def reset_parameters(self, seed: Optional[int] = None) -> None:
        """Random initialisation as in the official code (truncated normal 0.02, LN = identity)."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None

        def trunc_normal(t: torch.Tensor) -> None:
            with torch.no_grad():
                t.copy_(torch.nn.init.trunc_normal_(torch.empty(t.shape), std=0.02, a=-2.0, b=2.0, generator=gen))

        for tok in (self.mask_token, self.segment_token_x, self.segment_token_y, self.type_token_cls,
                    self.type_token_ins, self.pos_embed):
            trunc_normal(tok)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                trunc_normal(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.LayerNorm, LayerNorm2d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for blk in self.blocks:
            trunc_normal(blk.attn.rel_pos_h)
            trunc_normal(blk.attn.rel_pos_w)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        device: Optional[Union[str, torch.device]] = None,
        config: Optional[Union[str, SegGPTConfig]] = None,
    ) -> "SegGPT":
        """Load a checkpoint: a preset of ours ("small"), a Hub id, a local file or folder.

        See `seggpt.weights` for every accepted form; `config` overrides the config stored in or
        inferred from the file. Every file is checked before the model is built (its header and stored
        config), then key by key, shape by shape and value by value: a wrong file fails with one
        `WeightsError` line naming it and what is missing or wrong. The weights stay fp32; reduced
        precision is chosen per `SegGPTPredictor` (its `dtype`: a copy made by `reduced_precision_copy`),
        never on the shared model. `recommended_settings` holds the engine settings the file recommends
        for itself (its metadata), which `vos.VideoSegmenter` puts under its config. The work is
        `seggpt.weights.load_model`'s, so that this file stays the network.
        """
        from .weights import load_model  # the loader imports this model: imported here, the import goes one way

        return load_model(name_or_path, device=device, config=config, model_class=cls)

    def save_pretrained(self, path: "str | os.PathLike", recommended: Optional[Dict[str, Any]] = None) -> Path:
        """Save in our own format (one safetensors file, the config and, optionally, the engine settings
        recommended for these weights, e.g. {"engine": {"memory": 2}}, in its metadata); returns the file."""
        from .weights import save_state

        return save_state(self.state_dict(), self.config, path, recommended)

    def at_image_size(self, image_size: Union[int, Sequence[int]]) -> "SegGPT":
        """The same weights (shared, not copied) run at another input size per half, (H, W) or a side.

        Both position encodings already adapt to the grid they meet: the absolute table is resized
        bicubically to the canvas (as in the official code, whose table is for 224 pixels) and the
        relative tables linearly (``get_rel_pos``, as in ViTDet). A larger size shows small objects in
        more detail at about (size / trained size)^2 the cost: a small model trained at 64x64 loses a
        car a few pixels wide. Raises ValueError for a size that is not a multiple of the patch size.
        Training or adapting the returned model trains these very parameters (adaptation works on a copy).
        """
        size = (int(image_size), int(image_size)) if isinstance(image_size, int) else tuple(int(s) for s in image_size)
        if size == self.config.image_size:
            return self
        patch = self.config.patch_size
        if len(size) != 2 or min(size) < patch:
            raise ValueError(f"image_size must be a side or (H, W) of at least the patch size {patch}, "
                             f"got {image_size!r}")
        if size[0] % patch or size[1] % patch:
            raise ValueError(f"{image_size!r} is not a multiple of this model's patch size {patch}")
        config = dataclasses.replace(self.config, image_size=size)
        with torch.device("meta"):  # the structure only: every tensor is this model's own
            view = SegGPT(config)
        for (name, mine), (_, theirs) in zip(self.named_modules(), view.named_modules()):
            if type(mine) is not type(theirs):
                raise RuntimeError(f"module {name!r} differs between sizes")  # cannot happen: one structure
            theirs._parameters = dict(mine._parameters)
            theirs._buffers = dict(mine._buffers)
        view.recommended_settings = getattr(self, "recommended_settings", {})
        return view.train(self.training)

    def reduced_precision_copy(self, dtype: torch.dtype) -> "SegGPT":
        """A copy for inference whose matrix weights are cast once to `dtype` (bf16, fp16).

        The weights of every Linear and Conv2d except the 64->3 output head (and of any module that sets
        `matmul_weights = True`, such as `seggpt.adapt.LoRALinear`) are stored in `dtype`
        (for ViT-L 0.74 GB in bf16 beside the fp32 model's 1.48 GB); the norms, tokens, position
        tables and the output head are this model's own fp32 tensors, shared, not copied. Each matmul
        casts its input to its weight's dtype, so the residual stream, the norms, the softmax statistics
        and the prediction stay float32. Compared with autocast, which casts every fp32 weight again on
        every call (about a third of a ViT-L bf16 forward on a CPU), nothing is cast per call. This
        model is untouched: adaptation, tuning and training keep working on it in fp32; a copy made
        before they change the weights is stale (`SegGPTPredictor` re-makes its copy when they change).
        """
        head = self.decoder_pred[3]

        def clone(module: nn.Module) -> nn.Module:
            twin = copy.copy(module)  # the module's own attributes (flags, sizes); containers made anew below
            twin.__dict__ = {k: copy.copy(v) if isinstance(v, dict) else v  # hooks: the copy's own
                             for k, v in module.__dict__.items() if k not in _WEIGHT_CACHES}
            cast = (isinstance(module, (nn.Linear, nn.Conv2d)) or getattr(module, "matmul_weights", False)) \
                and module is not head
            twin._parameters = {
                key: None if p is None else (nn.Parameter(p.detach().to(dtype), requires_grad=False) if cast else p)
                for key, p in module._parameters.items()}
            twin._buffers = dict(module._buffers)
            twin._modules = {key: None if m is None else clone(m) for key, m in module._modules.items()}
            return twin

        return clone(self).eval()

    # ------------------------------------------------------------------ embeddings
    def _pos_embed(self) -> torch.Tensor:
        """Absolute position embedding for the whole canvas, (1, 2*Hp, Wp, C) (kept between inference calls)."""
        return _cached_on_weights(self, "_pos_cache", (self.pos_embed,), None, self._build_pos_embed)

    def _build_pos_embed(self) -> torch.Tensor:
        grid_h, grid_w = self.config.grid_size
        table = self.pos_embed[:, 1:]
        size = int(math.sqrt(table.shape[1]))
        table = table.reshape(1, size, size, -1)
        if (size, size) != (2 * grid_h, grid_w):
            table = F.interpolate(
                table.permute(0, 3, 1, 2), size=(2 * grid_h, grid_w), mode="bicubic", align_corners=False
            ).permute(0, 2, 3, 1)
        return table

    def _type_token(self, embedding_type: str) -> torch.Tensor:
        if embedding_type == "instance":
            return self.type_token_ins
        if embedding_type == "semantic":
            return self.type_token_cls
        raise ValueError(f"embedding_type must be 'instance' or 'semantic', got {embedding_type!r}")

    # ------------------------------------------------------------------ encoder
    def _encode(
        self,
        prompt_x: torch.Tensor,
        prompt_y: torch.Tensor,
        query_x: torch.Tensor,
        query_y: torch.Tensor,
        num_prompts: int,
    ) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """Run the blocks; return the normed (prompt, query) features of every feature layer.

        prompt_*: (B*K, Np, C) tokens of the top half, query_*: (B, Nq, C) of the bottom half, for
        the image stream (x) and the mask stream (y). The streams run as one batch up to the merge
        block and are averaged after it.
        """
        cfg = self.config
        grid = cfg.grid_size
        prompt = torch.cat([prompt_x, prompt_y], dim=0)
        query = torch.cat([query_x, query_y], dim=0)
        features = []
        for idx, blk in enumerate(self.blocks):
            prompt, query = blk(prompt, query, num_prompts, grid)
            if idx == cfg.merge_index:
                prompt = (prompt[: prompt.shape[0] // 2] + prompt[prompt.shape[0] // 2:]) * 0.5
                query = (query[: query.shape[0] // 2] + query[query.shape[0] // 2:]) * 0.5
            if idx in cfg.feature_layers:
                features.append((self.norm(prompt), self.norm(query)))
        return features

    # ------------------------------------------------------------------ decoder
    def _decode(self, tokens: torch.Tensor, rows: int) -> torch.Tensor:
        """Decoder over `rows` token rows: (M, rows*Wp, C*F) -> (M, 3, rows*p, Wp*p)."""
        p, dd = self.config.patch_size, self.config.decoder_dim
        grid_w = self.config.grid_size[1]
        x = self.decoder_embed(_as_input_of(self.decoder_embed, tokens))
        m = x.shape[0]
        x = x.reshape(m, rows, grid_w, p, p, dd).permute(0, 5, 1, 3, 2, 4).reshape(m, dd, rows * p, grid_w * p)
        return x

    def _head(self, x: torch.Tensor, crop_top: int = 0) -> torch.Tensor:
        conv3, norm, act, conv1 = self.decoder_pred
        x = conv3(_as_input_of(conv3, x))
        if crop_top:
            x = x[:, :, crop_top:]
        return conv1(_as_input_of(conv1, act(norm(x))))

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def infer(
        self,
        images: torch.Tensor,
        prompt_images: torch.Tensor,
        prompt_masks: torch.Tensor,
        embedding_type: str = "instance",
    ) -> torch.Tensor:
        """Paint the query half for B queries, each with its own K prompts (feature ensemble).

        images (B,3,H,W); prompt_images, prompt_masks (B,K,3,H,W); all ImageNet-normalised at the
        model's image size. Returns (B,3,H,W): the normalised prediction for each query, equal to
        item 0's output of the official code run on that query's K canvases.
        """
        b, k = prompt_images.shape[:2]
        h, w = self.config.image_size
        if images.shape[0] != b or prompt_masks.shape[:2] != (b, k):
            raise ValueError(
                f"batch mismatch: images {tuple(images.shape)}, prompt_images {tuple(prompt_images.shape)}, "
                f"prompt_masks {tuple(prompt_masks.shape)}"
            )
        if tuple(images.shape[-2:]) != (h, w) or tuple(prompt_images.shape[-2:]) != (h, w):
            raise ValueError(f"inputs must be {h}x{w} (the model's image size), got {tuple(images.shape[-2:])}")
        if k < 1:
            raise ValueError("at least one prompt is needed")
        dtype = self.patch_embed.proj.weight.dtype
        return self._infer(images.to(dtype), prompt_images.to(dtype), prompt_masks.to(dtype), embedding_type)

    def _infer(self, images, prompt_images, prompt_masks, embedding_type):
        b, k = prompt_images.shape[:2]
        grid_h, grid_w = self.config.grid_size
        pos = self._pos_embed()
        type_tok = self._type_token(embedding_type)
        c = self.config.embed_dim

        px = self.patch_embed(prompt_images.flatten(0, 1))
        py = self.patch_embed(prompt_masks.flatten(0, 1))
        qx = self.patch_embed(images)
        px = (px + self.segment_token_x) + pos[:, :grid_h] + type_tok
        qx = (qx + self.segment_token_x) + pos[:, grid_h:] + type_tok
        py = (py + self.segment_token_y) + pos[:, :grid_h] + type_tok
        # the hidden half of the mask canvas is the mask token everywhere
        qy = ((self.mask_token + self.segment_token_y) + pos[:, grid_h:] + type_tok).expand(b, grid_h, grid_w, c)

        features = self._encode(*(t.reshape(t.shape[0], -1, c) for t in (px, py, qx, qy)), num_prompts=k)

        # decoder input: the last prompt token row of prompt 0 (read by the 3x3 conv at the seam) + the query
        seam = [f_p.reshape(b, k, grid_h, grid_w, c)[:, 0, -1] for f_p, _ in features]
        tokens = torch.cat(
            [torch.cat([s, f_q], dim=1) for s, (_, f_q) in zip(seam, features)], dim=-1
        )
        x = self._decode(tokens, grid_h + 1)
        return self._head(x, crop_top=self.config.patch_size)

    # ------------------------------------------------------------------ training
    def bottom_half_mask(self, batch: int, device: Optional[torch.device] = None) -> torch.Tensor:
        """bool_masked_pos hiding the bottom (query) half, as inference does: (batch, L)."""
        grid_h, grid_w = self.config.grid_size
        mask = torch.zeros(2 * grid_h, grid_w, dtype=torch.bool, device=device)
        mask[grid_h:] = True
        return mask.flatten().expand(batch, -1)

    def forward(
        self,
        imgs: torch.Tensor,
        tgts: torch.Tensor,
        bool_masked_pos: Optional[torch.Tensor] = None,
        embedding_type: str = "instance",
        valid: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Training forward on whole canvases (the official `forward`): returns (loss, prediction).

        imgs, tgts: (N, 3, 2H, W) normalised image and mask canvases; bool_masked_pos (N, L) marks the
        mask tokens to hide and to reconstruct (default: the bottom half). The loss is smooth L1
        (beta from the config) averaged over the hidden patches only, optionally weighted by `valid`.
        """
        n = imgs.shape[0]
        grid_h, grid_w = self.config.grid_size
        c = self.config.embed_dim
        if bool_masked_pos is None:
            bool_masked_pos = self.bottom_half_mask(n, imgs.device)
        bool_masked_pos = bool_masked_pos.reshape(n, 2 * grid_h, grid_w, 1).to(imgs.dtype)
        pos = self._pos_embed()
        type_tok = self._type_token(embedding_type)
        x = self.patch_embed(imgs)
        y = self.patch_embed(tgts)
        y = y * (1 - bool_masked_pos) + self.mask_token * bool_masked_pos
        x = (x + self.segment_token_x) + pos + type_tok
        y = (y + self.segment_token_y) + pos + type_tok
        halves = [t[:, :grid_h].reshape(n, -1, c) for t in (x, y)] + [t[:, grid_h:].reshape(n, -1, c) for t in (x, y)]
        features = self._encode(*halves, num_prompts=1)
        tokens = torch.cat([torch.cat([f_p, f_q], dim=1) for f_p, f_q in features], dim=-1)
        pred = self._head(self._decode(tokens, 2 * grid_h))
        loss = self.loss(pred, tgts, bool_masked_pos, valid)
        return loss, pred

    def loss(
        self, pred: torch.Tensor, tgts: torch.Tensor, token_mask: torch.Tensor, valid: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Smooth L1 on the hidden patches only; token_mask is (N, 2Hp, Wp, 1) or (N, L)."""
        n = pred.shape[0]
        grid_h, grid_w = self.config.grid_size
        p = self.config.patch_size
        token_mask = token_mask.reshape(n, 1, 2 * grid_h, 1, grid_w, 1).to(pred.dtype)
        pixel_mask = token_mask.expand(n, 3, 2 * grid_h, p, grid_w, p).reshape_as(pred)
        if valid is not None:
            pixel_mask = pixel_mask * valid
        per_pixel = F.smooth_l1_loss(pred.float(), tgts.float(), reduction="none", beta=self.config.loss_beta)
        return (per_pixel * pixel_mask).sum() / pixel_mask.sum().clamp_min(1.0)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


__all__ = ["SegGPT", "get_rel_pos"]
