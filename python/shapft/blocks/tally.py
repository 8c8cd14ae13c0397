"""Running classification statistics: counts, accuracy overall and per SNR, and the
confusion matrix, for frames that arrive in batches (the classifier sink's state)."""
import collections
import math

import numpy as np

from ..learn import metrics

RECENT_FRAMES = 500


class Tally:
    """Counts of one sink's frames: in = scored + invalid + dropped (frames a failed
    sink passed over unclassified) + abstained (a smoothed sink's frames without a clear
    majority class)."""

    def __init__(self, classes):
        self.classes = list(classes)
        n = len(self.classes)
        self.frames_in = 0
        self.frames_scored = 0
        self.frames_invalid = {"nan": 0, "inf": 0, "zero": 0}
        self.frames_dropped = 0
        self.frames_abstained = 0   # a smoothed sink's frames without a clear majority
        self.frames_labelled = 0
        self.correct = 0
        self.confusion = np.zeros((n, n), dtype=np.int64)      # [true, predicted]
        self.predicted = np.zeros(n, dtype=np.int64)            # every scored frame, labelled or not
        self.by_snr = {}                                        # snr -> [correct, labelled]
        self.recent = collections.deque(maxlen=RECENT_FRAMES)   # hits of the latest labelled frames

    def add(self, predicted, true=None, snr_db=None):
        """One batch: predicted class indices; true indices (-1 = unknown) and SNRs (nan)."""
        predicted = np.asarray(predicted, dtype=np.int64)
        self.frames_scored += len(predicted)
        self.predicted += np.bincount(predicted, minlength=len(self.predicted))
        if true is None:
            return
        true = np.asarray(true, dtype=np.int64)
        labelled = true >= 0
        true, predicted = true[labelled], predicted[labelled]
        hits = true == predicted
        self.frames_labelled += len(true)
        self.correct += int(hits.sum())
        self.recent.extend(hits[-RECENT_FRAMES:].tolist())   # only these stay
        classes = len(self.confusion)
        self.confusion += np.bincount(true * classes + predicted,
                                      minlength=classes * classes).reshape(classes, classes)
        if snr_db is not None:
            snr = np.asarray(snr_db, dtype=float)[labelled]
            known = ~np.isnan(snr)
            known_snr = snr[known]
            # np.unique's return_inverse took twice as long (a sink calls this per chunk).
            values = np.unique(known_snr)
            which = np.searchsorted(values, known_snr)
            correct = np.bincount(which, weights=hits[known], minlength=len(values))
            counts = np.bincount(which, minlength=len(values))
            for value, c, k in zip(values.tolist(), correct.tolist(), counts.tolist()):
                entry = self.by_snr.setdefault(value, [0, 0])
                entry[0] += int(c)
                entry[1] += k

    def add_invalid(self, reason, count=1):
        """`count` frames not classified for `reason` ('nan', 'inf' or 'zero')."""
        self.frames_invalid[reason] += count

    def accuracy(self):
        """Fraction of labelled frames classified correctly (nan before any)."""
        return self.correct / self.frames_labelled if self.frames_labelled else math.nan

    def recent_accuracy(self):
        """Accuracy over the latest RECENT_FRAMES labelled frames: follows live changes."""
        return sum(self.recent) / len(self.recent) if self.recent else math.nan

    def accuracy_by_snr(self):
        """{snr_db: accuracy} of the labelled frames that carried an SNR, by rising SNR."""
        return {snr: c / n for snr, (c, n) in sorted(self.by_snr.items())}

    def as_dict(self):
        """The frame counts and the accuracy report (learn.metrics) of the labelled frames."""
        report = metrics.report_from_counts(self.correct, self.frames_labelled, self.by_snr,
                                            self.confusion, self.classes)
        return {"frames_in": self.frames_in, "frames_scored": self.frames_scored,
                "frames_invalid": dict(self.frames_invalid), "frames_dropped": self.frames_dropped,
                "frames_abstained": self.frames_abstained,
                "frames_labelled": self.frames_labelled,
                **report}

    def summary(self):
        """One line: frame counts and the accuracy."""
        invalid = sum(self.frames_invalid.values())
        text = f"{self.frames_in} frames in, {self.frames_scored} scored, {invalid} invalid"
        if self.frames_dropped:
            text += f", {self.frames_dropped} dropped"
        if self.frames_abstained:
            text += f", {self.frames_abstained} abstained"
        if self.frames_labelled:
            text += f", accuracy {100 * self.accuracy():.1f}% over {self.frames_labelled} labelled"
        return text
