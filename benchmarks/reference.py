"""Reference implementations that the tests and ``benchmarks.speed_model`` compare our SegGPT against.

transformers' SegGptForImageSegmentation is an independent port of the official model. With one
prompt it is the official model; with several it differs from the official feature ensemble at the
merge block, so `official_ensemble` drives transformers' own layers with the official flags
(ensemble within each stream up to AND including the merge block), reproducing the official code.
"""
from __future__ import annotations

import torch

from seggpt.model import SegGPT
from seggpt.weights import to_transformers_keys
from seggpt.weights_file import config_to_transformers


def transformers_twin(model: SegGPT):
    """A transformers SegGPT holding exactly our model's weights."""
    # transformers is a test/benchmark extra, not an install requirement: imported where it is used
    from transformers import SegGptConfig, SegGptForImageSegmentation

    hf = SegGptForImageSegmentation(SegGptConfig(**config_to_transformers(model.config))).eval()
    hf.load_state_dict(to_transformers_keys(model.state_dict()), strict=True)
    return hf


@torch.no_grad()
def official_ensemble(hf, image, prompt_images, prompt_masks, embedding_type="instance"):
    """Official SegGPT output for one query (3,H,W): item 0's bottom half, official ensemble flags."""
    cfg = hf.config
    k = prompt_images.shape[0]
    num_patches = hf.model.embeddings.patch_embeddings.num_patches
    bool_masked_pos = torch.zeros(num_patches, dtype=torch.bool)
    bool_masked_pos[num_patches // 2:] = True
    hidden = hf.model.embeddings(
        torch.cat([prompt_images, image[None].expand(k, -1, -1, -1)], dim=2),
        torch.cat([prompt_masks, prompt_masks], dim=2),
        bool_masked_pos=bool_masked_pos[None],
        embedding_type=embedding_type,
    )
    feats = []
    for i, layer in enumerate(hf.model.encoder.layers):
        cond = 2 if i <= cfg.merge_index else 1  # the official rule (transformers uses i < merge_index)
        hidden = layer(hidden, cond, k > 1)[0]
        if i == cfg.merge_index:
            hidden = (hidden[: hidden.shape[0] // 2] + hidden[hidden.shape[0] // 2:]) * 0.5
        if i in cfg.intermediate_hidden_state_indices:
            feats.append(hf.model.encoder.layernorm(hidden))
    pred = hf.decoder(torch.cat(feats, dim=-1))
    h = pred.shape[2] // 2
    return pred[0, :, h:]


@torch.no_grad()
def transformers_loop(hf, images, prompt_images, prompt_masks, embedding_type="instance"):
    """transformers' own API called once per query (its ensemble semantics), item 0's bottom half."""
    outs = []
    for b in range(images.shape[0]):
        k = prompt_images.shape[1]
        pred = hf(
            pixel_values=images[b:b + 1].expand(k, -1, -1, -1),
            prompt_pixel_values=prompt_images[b],
            prompt_masks=prompt_masks[b],
            feature_ensemble=k > 1,
            embedding_type=embedding_type,
        ).pred_masks
        outs.append(pred[0, :, pred.shape[2] // 2:])
    return torch.stack(outs)
