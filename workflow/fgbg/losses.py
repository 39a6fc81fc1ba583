"""Per-image log-likelihoods and KL terms; every function returns one value per image (N,)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor, prior=None) -> torch.Tensor:
    """Analytic KL(N(mu, exp(logvar)) || p), summed over latent dimensions: p is N(0, I), or
    with `prior` = (mean, var) the diagonal Gaussian N(mean, diag(var))."""
    if prior is None:
        return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)
    mean, var = prior
    terms = var.log() - logvar + (logvar.exp() + (mu - mean).pow(2)) / var
    return 0.5 * (terms - 1).sum(dim=1)


def gaussian_entropy(logvar: torch.Tensor) -> torch.Tensor:
    """Entropy of N(mu, exp(logvar)) (diagonal), summed over latent dimensions."""
    return 0.5 * (1.0 + math.log(2 * math.pi) + logvar).sum(dim=1)


def prior_cross_entropy(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Cross-entropy E[-log N(t; 0, I)] for t ~ N(mean, diag(var)), summed over dimensions.
    With gaussian_entropy: KL(N(mu, exp(logvar)) || N(0, I)) = cross-entropy - entropy."""
    return 0.5 * (mean.pow(2) + var + math.log(2 * math.pi)).sum(dim=1)


def bernoulli_log_likelihood(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """log p(target | logits) summed over pixels; `target` may be continuous in [0, 1]
    (then it is the negative cross-entropy, as for the background target g(x))."""
    nll = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return -nll.flatten(1).sum(dim=1)


def gaussian_log_likelihood(mean: torch.Tensor, target: torch.Tensor, sd: float) -> torch.Tensor:
    """log N(target; mean, sd^2) summed over pixels (fixed, shared standard deviation)."""
    z = (target - mean) / sd
    per_pixel = -0.5 * z.pow(2) - math.log(sd) - 0.5 * math.log(2 * math.pi)
    return per_pixel.flatten(1).sum(dim=1)
