"""Where the staged real data lives (``../shared/data`` next to a checkout)."""

from __future__ import annotations

import os
import pathlib
from typing import Optional, Union

__all__ = ["ENV_VAR", "default_data_dir"]

# Set this to the folder holding ``sst/`` and ``imagenet/`` to override the search.
ENV_VAR = "KERAS_CONDUCTANCE_DATA"


def default_data_dir(data_dir: Optional[Union[str, os.PathLike]] = None) -> pathlib.Path:
    """Resolves the data folder.

    Args:
        data_dir: an explicit folder; if None, ``$KERAS_CONDUCTANCE_DATA``,
            then ``../shared/data`` from the working directory, then
            ``../shared/data`` from this package's checkout.

    Returns:
        The folder (it exists).

    Raises:
        FileNotFoundError: none of the candidates exists; the message lists them.
    """
    if data_dir is not None:
        candidates = [pathlib.Path(data_dir)]
    else:
        candidates = []
        if os.environ.get(ENV_VAR):
            candidates.append(pathlib.Path(os.environ[ENV_VAR]))
        candidates.append(pathlib.Path.cwd().parent / "shared" / "data")
        candidates.append(pathlib.Path(__file__).resolve().parents[4] / "shared" / "data")
    for path in candidates:
        if path.is_dir():
            return path
    raise FileNotFoundError(
        f"No data folder found; tried {[str(c) for c in candidates]}. Pass "
        f"`data_dir=` (the folder holding sst/ and imagenet/) or set ${ENV_VAR}."
    )
