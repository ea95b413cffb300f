"""The candidate-based sampler draws from exactly the distribution mlx-lm's full sort defines."""

from __future__ import annotations

import pytest

import rfai_cli.engine  # noqa: F401  (preloads OpenBLAS before mlx is imported)
from rfai_cli.engine.sampling import CANDIDATES, make_sampler

DRAWS = 6000


def zipf_logprobs(vocab: int, exponent: float):
    """A fixed long-tailed distribution over `vocab` tokens, with the likeliest tokens scattered."""
    import mlx.core as mx

    mx.random.seed(3)
    ranks = mx.random.permutation(vocab) + 1
    logits = -exponent * mx.log(ranks.astype(mx.float32))
    return logits - mx.logsumexp(logits)


def nucleus(logprobs, top_p: float) -> set[int]:
    """The tokens mlx-lm's own top-p keeps (the reference semantics)."""
    import mlx.core as mx
    from mlx_lm.sample_utils import apply_top_p

    kept = apply_top_p(logprobs[None], top_p)[0]
    return {token for token, keep in enumerate((kept > -mx.inf).tolist()) if keep}


def draw(sampler, logprobs) -> list[int]:
    import mlx.core as mx

    mx.random.seed(0)
    return sampler(mx.broadcast_to(logprobs, (DRAWS, logprobs.shape[0]))).tolist()


def test_top_p_keeps_exactly_the_nucleus_with_its_renormalised_probabilities():
    import mlx.core as mx

    logprobs = zipf_logprobs(5000, 2.0)
    kept = nucleus(logprobs, 0.9)
    assert 3 < len(kept) < CANDIDATES
    draws = draw(make_sampler(1.0, top_p=0.9), logprobs)
    assert set(draws) <= kept
    probs = mx.exp(logprobs)
    mass = sum(probs[t].item() for t in kept)
    for token in sorted(kept, key=lambda t: -probs[t].item())[:3]:
        expected = probs[token].item() / mass
        assert draws.count(token) / DRAWS == pytest.approx(expected, abs=0.03)


def test_a_nucleus_wider_than_the_candidates_falls_back_to_the_full_vocabulary():
    logprobs = zipf_logprobs(4000, 0.6)
    kept = nucleus(logprobs, 0.95)
    assert len(kept) > CANDIDATES
    draws = set(draw(make_sampler(1.0, top_p=0.95), logprobs))
    assert draws <= kept
    assert len(draws) > CANDIDATES  # only possible when sampling beyond the candidates


def test_top_k_and_temperature():
    import mlx.core as mx

    logprobs = zipf_logprobs(3000, 1.0)
    top = set(mx.argsort(-logprobs)[:5].tolist())
    assert set(draw(make_sampler(1.0, top_k=5), logprobs)) == top
    cold = draw(make_sampler(0.05, top_k=5), logprobs)
    assert cold.count(mx.argmax(logprobs).item()) > 0.99 * DRAWS
    assert set(draw(make_sampler(0.0, top_p=0.5), logprobs)) == {mx.argmax(logprobs).item()}
