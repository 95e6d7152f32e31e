"""matplotlib for the package's figures: imported lazily, never forced on a
notebook, and a clear error naming the extra when it is missing."""

from __future__ import annotations

import os
import sys

__all__ = ["finish", "pyplot"]


def pyplot(extra: str = "tensorboard"):
    """``matplotlib.pyplot`` with a file-only backend where none was chosen.

    Args:
        extra: the package extra that brings matplotlib, named in the error.

    Raises:
        ImportError: matplotlib is not installed.
    """
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            f"These figures need matplotlib: `pip install 'keras-conductance[{extra}]'` "
            "(or `pip install matplotlib`)."
        ) from None
    # A file-only backend for scripts, but never over one already chosen: in a
    # notebook (ipykernel sets MPLBACKEND to its inline backend) switching to
    # Agg would hide this figure and every later one.
    if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def finish(fig, path=None, dpi: int = 110):
    """Lays a figure out; saves and closes it when ``path`` is given."""
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=dpi)
        import matplotlib.pyplot as plt

        plt.close(fig)
    return fig
