"""The RadioML 2016.10a conventions every part of gr-shapft shares: class names and
order, SNR grid, frame length and sample rate docs/formats.md)."""

CLASSES = ("8PSK", "AM-DSB", "AM-SSB", "BPSK", "CPFSK", "GFSK",
           "PAM4", "QAM16", "QAM64", "QPSK", "WBFM")
SNRS_DB = tuple(range(-20, 20, 2))
FRAME_LENGTH = 128
# Stream tags that carry a frame's class name and SNR (dB) on its vector item.
LABEL_TAG_KEY = "label"
SNR_TAG_KEY = "snr_db"
SAMPLE_RATE_HZ = 200e3


def class_index(name):
    """Index of a class name in CLASSES; a clear error for an unknown one."""
    try:
        return CLASSES.index(name)
    except ValueError:
        raise ValueError(f"unknown modulation {name!r}; expected one of {', '.join(CLASSES)}") from None
