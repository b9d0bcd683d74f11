"""The Transformer: its pieces, the four presets, causality, and a KV cache that matches the full forward."""

import math

import pytest
import torch

import picollm_helpers as h

LN_V = math.log(50257)
SMALL = {"width_divisor": 8, "max_blocks": 2}


def small_model(name: str, vocab_size: int = 50257, **overrides) -> h.TransformerModel:
    torch.manual_seed(0)
    return h.TransformerModel(h.transformer_config(name, SMALL, vocab_size=vocab_size, max_seq_len=64, **overrides))


def test_presets_match_the_design():
    presets = h.TRANSFORMER_PRESETS
    assert (presets["minGPT"].d_model, presets["minGPT"].n_heads, presets["minGPT"].n_blocks) == (384, 6, 6)
    assert presets["GPT2-small"].norm == "layernorm" and presets["GPT2-small"].n_blocks == 8
    assert (presets["GPT-oss"].positions, presets["GPT-oss"].ffn, presets["GPT-oss"].tie_weights) == \
        ("rope", "swiglu", False)
    assert presets["Llama3-lite"].kv_heads < presets["Llama3-lite"].n_heads


@pytest.mark.parametrize("name", h.TRANSFORMER_PRESETS)
def test_every_shrunk_preset_gives_finite_logits(name):
    model = small_model(name)
    tokens = torch.randint(0, 50257, (12, 3))
    logits = model(tokens)
    assert logits.shape == (12, 3, 50257) and torch.isfinite(logits).all()


@pytest.mark.parametrize("name", h.TRANSFORMER_PRESETS)
def test_initial_loss_of_every_full_size_preset_is_near_ln_vocab(name):
    torch.manual_seed(0)
    model = h.TransformerModel(h.TRANSFORMER_PRESETS[name])
    tokens = torch.randint(0, 50257, (16, 2))
    with torch.no_grad():
        loss = h.compute_next_token_loss(model(tokens), tokens).item()
    assert abs(loss - LN_V) <= 0.5, f"{name}: {loss:.3f}"


@pytest.mark.parametrize("name", h.TRANSFORMER_PRESETS)
def test_changing_token_t_changes_no_logit_before_t(name):
    model = small_model(name, vocab_size=100).eval()
    tokens = torch.randint(0, 100, (10, 2))
    changed = tokens.clone()
    changed[6, 0] = (tokens[6, 0] + 1) % 100
    difference = (model(changed) - model(tokens)).abs().amax(dim=-1)
    assert difference[:6].max() == 0, "a logit before the changed token moved"
    assert difference[6:, 0].min() > 0, "the changed token must affect its own and later positions"
    assert difference[:, 1].max() == 0, "batch items must not see each other"


@pytest.mark.parametrize("name", ["minGPT", "GPT-oss", "Llama3-lite"])  # learned, rotary, grouped-query
def test_incremental_decoding_with_the_cache_matches_the_full_forward(name):
    model = small_model(name, vocab_size=300).eval()
    tokens = torch.randint(0, 300, (30, 2))
    with torch.no_grad():
        full = model(tokens)
        cache = model.new_cache(batch_size=2)
        prefix = model(tokens[:6], cache)  # a prompt of 6 tokens, then 24 single steps
        steps = [model(tokens[t:t + 1], cache) for t in range(6, 30)]
    incremental = torch.cat([prefix, *steps])
    assert (incremental - full).abs().max().item() <= 1e-4


@pytest.mark.parametrize("name", ["minGPT", "GPT-oss", "Llama3-lite"])
def test_sampling_with_and_without_the_cache_gives_the_same_tokens(name):
    model = small_model(name, vocab_size=300)
    prompt = [5, 17, 42]
    for top_p in (None, 0.9):
        cached = h.generate_tokens(model, prompt, 25, h.Decoding(top_p=top_p), seed=3, use_cache=True).tokens
        uncached = h.generate_tokens(model, prompt, 25, h.Decoding(top_p=top_p), seed=3, use_cache=False).tokens
        assert cached == uncached


def test_rmsnorm_follows_its_formula_and_normalizes():
    norm = h.RMSNorm(8, eps=1e-5)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, 8))
    x = torch.randn(4, 8) * 7
    expected = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * norm.weight
    torch.testing.assert_close(norm(x), expected)
    unit = h.RMSNorm(8)(x)
    torch.testing.assert_close(unit.pow(2).mean(-1), torch.ones(4), atol=1e-4, rtol=0)


def test_rotary_embedding_keeps_norms_and_sees_only_relative_position():
    rotary = h.RotaryEmbedding(head_dim=16, max_seq_len=64)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)
    rotated = rotary(q.expand(1, 1, 20, 16).contiguous(), start=0)
    torch.testing.assert_close(rotated.norm(dim=-1), q.norm(dim=-1).expand(1, 1, 20))
    score_near = (rotary(q, start=5) * rotary(k, start=3)).sum()
    score_far = (rotary(q, start=30) * rotary(k, start=28)).sum()
    torch.testing.assert_close(score_near, score_far, atol=1e-4, rtol=1e-4)


def test_fast_attention_matches_the_explicit_softmax():
    torch.manual_seed(0)
    config = h.transformer_config("Llama3-lite", SMALL, vocab_size=50)
    attention = h.CausalSelfAttention(config, block_index=0).eval()
    x = torch.randn(2, 9, config.d_model)
    explicit, weights = attention(x, return_weights=True)
    torch.testing.assert_close(attention(x), explicit, atol=1e-5, rtol=1e-5)
    assert torch.allclose(weights.sum(-1), torch.ones(()), atol=1e-5)
    assert (weights.triu(diagonal=1) == 0).all(), "no weight on future positions"


def test_dropout_is_a_no_op_in_eval_and_weights_tie_as_asked():
    model = small_model("minGPT", vocab_size=100, dropout=0.3)
    tokens = torch.randint(0, 100, (8, 2))
    model.eval()
    torch.testing.assert_close(model(tokens), model(tokens))
    model.train()
    assert not torch.equal(model(tokens), model(tokens))
    tied, untied = small_model("minGPT"), small_model("GPT-oss")
    assert tied.lm_head.weight is tied.token_embedding.weight
    assert untied.lm_head.weight is not untied.token_embedding.weight


def test_gpt2_init_scales_the_residual_projections():
    torch.manual_seed(0)
    model = h.TransformerModel(h.transformer_config("GPT2-small", {"width_divisor": 2}))
    residual = model.blocks[0].attention.out.weight.std().item()
    assert residual == pytest.approx(0.02 / math.sqrt(2 * 8), rel=0.05)
    assert model.blocks[0].attention.query.weight.std().item() == pytest.approx(0.02, rel=0.05)


@pytest.mark.parametrize("overrides, message", [
    (dict(n_blocks=11), "the limit of this course"),
    (dict(n_heads=5), "must divide d_model"),
    (dict(positions="alibi"), "positions='alibi'"),
])
def test_bad_configs_fail_clearly(overrides, message):
    with pytest.raises(ValueError, match=message):
        h.transformer_config("minGPT", **overrides)


def test_overrides_reach_any_field_and_the_scale_keeps_the_design():
    config = h.transformer_config("Llama3-lite", SMALL, dropout=0.1)
    assert config.dropout == 0.1 and config.d_model == 128 and config.n_blocks == 2
    assert (config.n_heads, config.kv_heads, config.ffn, config.positions) == (16, 4, "swiglu", "rope")


def test_generation_with_the_cache_is_faster_and_the_same():
    model = small_model("GPT-oss")
    timing = h.cache_speedup(model, prompt_ids=[464, 3797, 3332], new_tokens=60)
    assert timing["same_tokens"]
    assert timing["speedup"] > 1.0, f"with the cache {timing['with_cache_s']:.2f} s, without {timing['without_cache_s']:.2f} s"
