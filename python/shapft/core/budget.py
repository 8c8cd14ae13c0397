"""Perturbation budgets: eps on our unit-power scale and its perturbation-to-signal
ratio (PSR) in dB.

Frames have unit average power per complex sample. An L-infinity budget eps bounds
each real component, so a full-size FGSM perturbation has power 2*eps^2 per complex
sample: PSR_dB = 10*log10(2*eps^2). An L2 budget eps bounds the norm of the whole
perturbation of a frame of L complex samples: PSR_dB = 10*log10(eps^2 / L).
"""
import math
import warnings

from .radioml import FRAME_LENGTH

NORMS = ("linf", "l2")


def eps_to_psr_db(eps, norm="linf", frame_length=FRAME_LENGTH):
    _check_norm(norm)
    if eps <= 0:
        return -math.inf
    power = 2.0 * eps * eps if norm == "linf" else eps * eps / frame_length
    return 10.0 * math.log10(power)


def psr_db_to_eps(psr_db, norm="linf", frame_length=FRAME_LENGTH):
    _check_norm(norm)
    power = 10.0 ** (psr_db / 10.0)
    return math.sqrt(power / 2.0) if norm == "linf" else math.sqrt(power * frame_length)


def resolve_eps(eps=None, psr_db=None, norm="linf", frame_length=FRAME_LENGTH):
    """The budget as eps, from exactly one of eps or psr_db; refuses a negative eps."""
    if (eps is None) == (psr_db is None):
        raise ValueError("give the budget as exactly one of eps or psr_db "
                         f"(got eps={eps!r}, psr_db={psr_db!r})")
    if psr_db is not None:
        if not math.isfinite(psr_db):
            raise ValueError(f"psr_db must be finite, got {psr_db!r}")
        return psr_db_to_eps(psr_db, norm, frame_length)
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    return float(eps)


class BudgetWarning(UserWarning):
    """A budget that is legal but most likely a mistake (a perturbation above the signal)."""


def warn_if_above_signal(eps, norm="linf", frame_length=FRAME_LENGTH, option="--eps"):
    """Warn (BudgetWarning, one line) when a budget's PSR is above 0 dB: the perturbation
    would be stronger than the unit-power signal, which no study means to do. Returns
    whether it warned."""
    psr = eps_to_psr_db(eps, norm, frame_length)
    if psr <= 0:
        return False
    warnings.warn(f"{option}: {describe(eps, norm, frame_length)} is above 0 dB PSR: the perturbation "
                  "is stronger than the signal", BudgetWarning, stacklevel=2)
    return True


def describe(eps, norm="linf", frame_length=FRAME_LENGTH):
    """'eps 0.05 (PSR -23.0 dB)': how every report shows a budget."""
    psr = eps_to_psr_db(eps, norm, frame_length)
    psr_text = "-inf" if psr == -math.inf else f"{psr:.1f}"
    return f"eps {eps:g} (PSR {psr_text} dB)"


def psr_text(psr_db):
    """A PSR in dB as the shortest text that reads back exactly ('-25', not '-25.0'): how
    command lines and file names spell a budget."""
    short = f"{psr_db:g}"
    return short if float(short) == psr_db else repr(psr_db)


def _check_norm(norm):
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")
