"""I/Q transformer classifiers whose attention maps are visible.

Frames are cut into patches of `patch_size` samples; each patch (2 x patch_size reals)
is embedded as a token, a class token is prepended, learned positions are added, and
pre-norm encoder layers follow. The attention is computed explicitly (not with
nn.MultiheadAttention's fused path) so `forward_with_attention` can return every
layer's attention probabilities [B, heads, T, T] for attention distillation; both
methods survive TorchScript export.
"""
from typing import List, Tuple

import torch
from torch import nn

from ..core.radioml import CLASSES, FRAME_LENGTH


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.head_dim = dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        b, t, d = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attention = torch.softmax(q @ k.transpose(-2, -1) * self.head_dim ** -0.5, dim=-1)
        out = (self.dropout(attention) @ v).transpose(1, 2).reshape(b, t, d)
        return self.proj(out), attention


class EncoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = SelfAttention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(mlp_dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        h, attention = self.attention(self.norm1(x))
        x = x + h
        return x + self.mlp(self.norm2(x)), attention


class IQTransformer(nn.Module):
    def __init__(self, num_classes: int = len(CLASSES), frame_length: int = FRAME_LENGTH, patch_size: int = 8,
                 dim: int = 32, depth: int = 2, heads: int = 4, mlp_dim: int = 64,
                 dropout: float = 0.1):
        super().__init__()
        if frame_length % patch_size:
            raise ValueError(f"frame_length {frame_length} is not a multiple of patch_size {patch_size}")
        self.patch_size = patch_size
        self.embed = nn.Conv1d(2, dim, patch_size, stride=patch_size)   # one token per patch
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.positions = nn.Parameter(torch.randn(1, 1 + frame_length // patch_size, dim) * 0.02)
        self.layers = nn.ModuleList([EncoderLayer(dim, heads, mlp_dim, dropout) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).transpose(1, 2)                            # [B, T, dim]
        cls = self.class_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1)
        return tokens + self.positions[:, : tokens.shape[1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float32 [B, 2, L] -> logits [B, num_classes]."""
        return self.forward_with_attention(x)[0]

    @torch.jit.export
    def forward_with_attention(self, x: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Logits and each layer's attention probabilities [B, heads, T, T] (T = 1 + L/patch)."""
        h = self._tokens(x)
        maps: List[torch.Tensor] = []
        for layer in self.layers:
            h, attention = layer(h)
            maps.append(attention)
        return self.head(self.norm(h[:, 0])), maps


def transformer_compact(num_classes: int = len(CLASSES), frame_length: int = FRAME_LENGTH) -> IQTransformer:
    """For low-power receivers: 2 layers, 32 wide, 4 heads (about 18.6k parameters)."""
    return IQTransformer(num_classes, frame_length, patch_size=8, dim=32, depth=2, heads=4, mlp_dim=64)


def transformer_large(num_classes: int = len(CLASSES), frame_length: int = FRAME_LENGTH) -> IQTransformer:
    """The robust teacher: 6 layers, 128 wide, 8 heads (about 0.8M parameters)."""
    return IQTransformer(num_classes, frame_length, patch_size=8, dim=128, depth=6, heads=8, mlp_dim=256)
