"""What the gr-shapft blocks share at their boundary with GNU Radio's C++ scheduler.

An exception that leaves a Python block's stop() there ends the process (terminate,
rc 134); one that leaves work() ends the block's thread and leaves the flowgraph
waiting forever. The blocks catch what their start(), work() and stop() raise, log it
and keep it (ErrorLog), and carry on in a way that keeps the flowgraph's other
branches running. Ending the block's stream instead (WORK_DONE) would end its
upstream blocks too, and with them every branch they feed.
"""


class ErrorLog:
    """Errors a block caught rather than raise into GNU Radio: each logged at error
    level on the block's logger and kept as text (the block's errors())."""

    def __init__(self, logger):
        self._logger = logger
        self._texts = []

    def record(self, where, error):
        """Log and keep `error` (an exception or a text), caught in `where` (e.g. 'work')."""
        detail = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
        text = f"{where}: {detail}"
        self._texts.append(text)
        try:
            self._logger.error(text)
        except Exception:   # the text stays reported by texts()
            pass
        return text

    def texts(self):
        """The error texts, oldest first."""
        return list(self._texts)


class QuietBuffers:
    """Mixed in before gr.sync_block: set_min_output_buffer(size) sets every output
    port's minimum one port at a time. GNU Radio's all-ports form logs an info line
    per call, on every run of a flowgraph that sizes buffers (GRC's Min Output Buffer
    too); the per-port form sets the same sizes silently."""

    def set_min_output_buffer(self, *args):
        """Minimum output buffer in items: (size) for every output port, or (port, size)."""
        if len(args) == 1:
            for port in range(self.gateway.output_signature().max_streams()):
                self.gateway.set_min_output_buffer(port, args[0])
        else:
            self.gateway.set_min_output_buffer(*args)
