"""The SHAP-FT paper's CNN-LSTM classifier (section III-D).

Conv1D (128 kernels of length 8, ReLU) -> LSTM (128 units) -> sum over time ->
batch norm -> dense 256 (ReLU) -> dense 11. Nothing depends on the frame length, so
the same network takes the 128 - m sample frames SHAP-FT fine-tunes on.
"""
import torch
from torch import nn

from ..core.radioml import CLASSES


class CnnLstm(nn.Module):
    def __init__(self, num_classes: int = len(CLASSES), conv_channels: int = 128, kernel_size: int = 8,
                 lstm_units: int = 128, dense_units: int = 256):
        super().__init__()
        self.conv = nn.Conv1d(2, conv_channels, kernel_size)
        self.lstm = nn.LSTM(conv_channels, lstm_units, batch_first=True)
        self.norm = nn.BatchNorm1d(lstm_units)
        self.dense = nn.Linear(lstm_units, dense_units)
        self.classifier = nn.Linear(dense_units, num_classes)
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float32 [B, 2, L] (I, Q) with L >= kernel_size -> logits [B, num_classes]."""
        h = torch.relu(self.conv(x))                 # [B, C, L - k + 1]
        h, _ = self.lstm(h.transpose(1, 2))          # [B, T, units]
        h = self.norm(h.sum(dim=1))                  # the paper's sum layer, then BN
        return self.classifier(torch.relu(self.dense(h)))

    def with_dense_units(self, dense_units: int) -> "CnnLstm":
        """A copy whose feature layers (conv, LSTM, BN) keep these weights and whose dense
        head is new with `dense_units` units: SHAP-FT's fine-tuning network (256 -> 128),
        initialised on the CPU and then put on this network's device."""
        new = CnnLstm(self.classifier.out_features, self.conv.out_channels, self.kernel_size,
                      self.lstm.hidden_size, dense_units)
        for name in ("conv", "lstm", "norm"):
            getattr(new, name).load_state_dict(getattr(self, name).state_dict())
        return new.to(self.conv.weight.device)
