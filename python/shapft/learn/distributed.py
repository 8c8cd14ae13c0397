"""One model trained by several processes: what `torchrun --nproc_per_node N shapft
train ...` runs. torchrun starts N copies of the command and tells each its place in
the environment (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT); without it
(a plain `shapft train`) nothing here runs and training is what it always was.

How training.fit shares the work once `process_group` is up (gloo on the CPU, nccl on
GPUs, each process on its own GPU):

- every process builds the same model from the same seed, and rank 0's weights are
  broadcast so that all start equal; each shuffles every epoch with the same generator,
  so all know the same order and the same batches (the batch size is the global one);
- process r takes frames r, r + N, r + 2N, ... of every batch: its shard, 1/N of each
  epoch's frames (DistributedSampler's interleaving, batch by batch), and computes the
  loss and its gradient on them;
- the gradients are summed across the processes, each weighted by its frame count, and
  divided by the batch's frames: every process holds the gradient of the whole batch's
  mean loss, takes the same optimizer step and keeps the same weights;
- batch-norm running statistics are averaged across the processes before validation;
- validation: each process scores its share of the validation frames and the sums are
  all-reduced, so every process sees the same loss and takes the same early-stopping
  decision. Only rank 0 writes checkpoints and the model file.

Why not DistributedDataParallel: its reducer expects every forward pass in grad mode to
be followed by a backward pass into all parameters, while gr-shapft's losses craft
adversarial examples inside the step with input-only gradients and read attention maps
through forward_with_attention, which DDP does not wrap. So the gradients are
all-reduced after the backward pass, in one flat tensor: DDP's arithmetic, without its
overlap of communication with the backward pass.
"""
import contextlib
import dataclasses
import os

ENVIRONMENT = ("WORLD_SIZE", "RANK", "LOCAL_RANK")   # what torchrun sets for each process


def environment():
    """(world size, rank, local rank) that torchrun gave this process; (1, 0, 0) without it."""
    values = []
    for name, default in zip(ENVIRONMENT, ("1", "0", "0")):
        text = os.environ.get(name, default)
        try:
            values.append(int(text))
        except ValueError:
            raise ValueError(f"{name}: {text!r} is not an integer (set by torchrun)") from None
    return tuple(values)


def launched():
    """Whether torchrun started this process as one of several."""
    return environment()[0] > 1


@dataclasses.dataclass(frozen=True)
class World:
    """The processes training one model; a World of one (the default) is a plain run,
    for which every method returns what it is given."""
    rank: int = 0
    size: int = 1
    backend: str = ""

    @property
    def main(self):
        """Whether this process writes (checkpoints, the model file, the summary)."""
        return self.rank == 0

    def shard(self, index):
        """This process's frames of a batch `index` (a tensor of frame indices)."""
        return index if self.size == 1 else index[self.rank::self.size]

    def sum(self, values, device):
        """`values` (numbers) summed over the processes, as floats; unchanged in a World of one."""
        if self.size == 1:
            return list(values)
        import torch
        import torch.distributed as dist
        total = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
        dist.all_reduce(total)
        return total.tolist()

    def check_same(self, value, device, message):
        """Refuse (ValueError `message`) a number that differs between the processes."""
        if self.size > 1:
            import torch
            import torch.distributed as dist
            extremes = torch.tensor([float(value), -float(value)], dtype=torch.float64, device=device)
            dist.all_reduce(extremes, op=dist.ReduceOp.MAX)
            if extremes[0] != -extremes[1]:
                raise ValueError(message)

    def broadcast_weights(self, model):
        """Every process's parameters and buffers made rank 0's."""
        if self.size > 1:
            import torch.distributed as dist
            for tensor in (*model.parameters(), *model.buffers()):
                dist.broadcast(tensor.data, src=0)

    def combine_gradients(self, model, frames, total):
        """Make each parameter's gradient that of the mean loss over the whole batch:
        this process's gradient (of its mean loss over `frames` frames) times `frames`,
        summed over the processes, divided by the batch's `total` frames."""
        if self.size > 1:
            _all_reduced([p.grad for p in model.parameters() if p.grad is not None], frames / total)

    def average_buffers(self, model):
        """Floating-point buffers (batch-norm running statistics) averaged over the processes."""
        if self.size > 1:
            _all_reduced([b for b in model.buffers() if b.is_floating_point()], 1.0 / self.size)


def _all_reduced(tensors, scale):
    """Each of `tensors` replaced in place by the sum over the processes of scale * it,
    in one all-reduce of a flat copy."""
    import torch
    import torch.distributed as dist
    if not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors]) * scale
    dist.all_reduce(flat)
    offset = 0
    for tensor in tensors:
        tensor.copy_(flat[offset:offset + tensor.numel()].view_as(tensor))
        offset += tensor.numel()


def current():
    """The World of the process group this process is in (a World of one outside any)."""
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), dist.get_backend())


def process_device(device, option="--device"):
    """The torch.device this process trains on, for the device name (or torch.device)
    `device` (models.device.resolve): under torchrun, cuda and auto-with-CUDA mean this
    process's own GPU, cuda:LOCAL_RANK; mps, which torch.distributed cannot serve, is
    refused there."""
    from ..models import device as model_device
    resolved = model_device.resolve(device, option)
    size, _, local_rank = environment()
    if size > 1 and resolved.type == "cuda" and ":" not in str(device):
        resolved = model_device.resolve(f"cuda:{local_rank}", option)
    if size > 1 and resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"{option}: {resolved} cannot train in several processes (torch.distributed runs "
                         "on cpu, gloo, and cuda, nccl)")
    return resolved


@contextlib.contextmanager
def process_group(device):
    """The World of this process: under torchrun, the process group (nccl for a CUDA
    `device`, else gloo) joined from torchrun's environment and left on exit; else a
    World of one and nothing else."""
    size, _, _ = environment()
    if size == 1:
        yield World()
        return
    import torch
    import torch.distributed as dist
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield current()
    finally:
        dist.destroy_process_group()
