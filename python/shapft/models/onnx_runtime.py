"""An ONNX model run by ONNX Runtime behind a torch module's call, so that what runs a
TorchScript model file's module (classifier_sink, learn.smoothing) runs an ONNX model
file (core.onnx_file) unchanged."""
import numpy as np
import torch

INPUT_NAME = "frames"    # float32 [batch, 2, L]
OUTPUT_NAME = "logits"   # [batch, C]


class OnnxRuntimeClassifier(torch.nn.Module):
    """forward: float32 frames [B, 2, L] -> logits [B, C], computed by ONNX Runtime in
    float32, outside autograd (no gradients). `model`: the ONNX model, a path or bytes.

    One intra-op thread per call: the blocks run whole batches side by side on
    single-thread workers (blocks.runtime.BatchWorkers), and an ONNX Runtime session
    may be run from several threads at once, each call on its caller's thread with the
    GIL released."""

    def __init__(self, model):
        super().__init__()
        import onnxruntime   # here: only ONNX model files need it
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(model if isinstance(model, bytes) else str(model), options,
                                                    providers=["CPUExecutionProvider"])

    def forward(self, x):
        frames = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run([OUTPUT_NAME], {INPUT_NAME: frames})[0])
