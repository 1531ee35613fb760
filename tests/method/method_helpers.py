"""Small real models and helpers for the method tests (timm ViT with a fused qkv, BERT/RoBERTa).

A plain module (not conftest) so test files can import it; its name is unique across the test tree.
"""

from __future__ import annotations

import os

import torch
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def make_vit(seed: int = 0, depth: int = 3, dim: int = 48) -> nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(seed)
    return VisionTransformer(img_size=32, patch_size=8, embed_dim=dim, depth=depth, num_heads=3,
                             mlp_ratio=2.0, num_classes=5)


def make_bert(seed: int = 0, layers: int = 2, dim: int = 32, roberta: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    kw = dict(hidden_size=dim, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=2 * dim,
              num_labels=3, vocab_size=120, max_position_embeddings=64)
    if roberta:
        from transformers import RobertaConfig, RobertaForSequenceClassification

        return RobertaForSequenceClassification(RobertaConfig(**kw))
    from transformers import BertConfig, BertForSequenceClassification

    return BertForSequenceClassification(BertConfig(**kw))


def vit_input(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def text_input(batch: int = 2, length: int = 9) -> torch.Tensor:
    return torch.randint(3, 120, (batch, length), generator=torch.Generator().manual_seed(1))


def run_model(model: nn.Module, family: str, batch: int = 2) -> torch.Tensor:
    if family == "vit":
        return model(vit_input(batch))
    return model(input_ids=text_input(batch)).logits


def perturb(params, seed: int = 7, scale: float = 0.05) -> None:
    """Move parameters away from their initialisation (zeros included) so that tests see real values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
