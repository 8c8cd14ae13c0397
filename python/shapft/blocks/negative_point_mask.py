"""negative_point_mask: SHAP-FT's deletion of negative points, frame by frame."""
import numpy as np
from gnuradio import gr

from ..core import masks, params
from .guard import ErrorLog, QuietBuffers

# GNU Radio's default buffer holds ~32 frames: a classifier sink downstream would
# classify in batches that small. GRC's Min Output Buffer, when set, overrides it.
MIN_OUTPUT_FRAMES = 1024
# 'off' passes frames unchanged: a flowgraph can switch the deletion off (e.g. when the
# classifier after it is an adversarially trained model, not a SHAP-FT one) without rewiring
BLOCK_MODES = (*masks.MODES, "off")


class negative_point_mask(QuietBuffers, gr.sync_block):
    """Delete (mode 'drop') or zero (mode 'zero') the negative points of each frame, or
    pass frames unchanged (mode 'off').

    `mask_path` is a mask JSON written by `shapft mask`, or a SHAP-FT model file, whose
    metadata carries the mask it was fine-tuned with. Input: vectors of the mask's
    frame length (128); output: vectors of 128 - m (drop) or 128 (zero, off). Tags pass
    through on the same frame. An error while running never stops the flowgraph: it
    is logged and reported (errors()), and from then on frames leave as all-zero
    frames (frames_dropped()), which a classifier sink counts as invalid.
    """

    def __init__(self, mask_path, mode="drop"):
        mask_path = params.file_path(mask_path, "mask_path")
        mode = params.choice(mode, "mode", BLOCK_MODES)
        try:
            self.mask = masks.load(mask_path)
        except (FileNotFoundError, ValueError) as err:
            raise ValueError(f"mask_path: {err}") from None
        self.mode = mode
        self.frame_length = self.mask["frame_length"]
        self.output_length = masks.output_length(self.mask, mode)
        gr.sync_block.__init__(self, name="shapft_negative_point_mask",
                               in_sig=[(np.complex64, self.frame_length)],
                               out_sig=[(np.complex64, self.output_length)])
        self.set_min_output_buffer(MIN_OUTPUT_FRAMES)
        self.keep = masks.keep_positions(self.mask)
        self.drop = np.asarray(self.mask["drop"], dtype=np.int64)
        self.dropped = 0
        self.error_log = ErrorLog(self.logger)
        self.failed = False   # after an error: frames leave as all-zero frames

    def work(self, input_items, output_items):
        """Delete or zero the mask's positions of each frame (GNU Radio)."""
        frames, out = input_items[0], output_items[0]
        if not self.failed:
            try:
                if self.mode == "drop":
                    out[:] = frames[:, self.keep]
                else:
                    out[:] = frames
                    if self.mode == "zero":
                        out[:, self.drop] = 0
                return len(out)
            except Exception as err:
                self.error_log.record("work", err)
                self.failed = True
        out[:] = 0
        self.dropped += len(out)
        return len(out)

    def m(self):
        """Number of positions the mask deletes."""
        return self.mask["m"]

    def frames_dropped(self):
        """Frames passed on as all-zero frames after an error (errors())."""
        return self.dropped

    def errors(self):
        """Texts of the errors caught while running, oldest first (empty when none)."""
        return self.error_log.texts()
