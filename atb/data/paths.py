"""Where the data comes from: a local copy (``ATB_DATA_DIR``) or the Hugging Face Hub.

Every loader in :mod:`atb.data` asks :func:`data_dir` first.  When ``ATB_DATA_DIR`` is set, the data
must come from that folder (the layout of ``shared/data/README.md``) and nothing is downloaded, so an
offline run fails loudly and early instead of hanging on a network call; when it is unset, the
loaders use the hub, through :func:`load_hub` only.  The error classes below give the two ways a local file
can let a run down (absent, or malformed) and the one way the hub can (unreachable) one recognisable type
each, with messages that say what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "ATB_DATA_DIR"
README_DATA = 'the "Data" section of README.md'


class DataUnavailableOffline(FileNotFoundError):
    """A task or split that the local layout does not hold (e.g. MNLI, QQP, QNLI train).

    A ``FileNotFoundError`` so generic handlers still work; its own type so that callers can turn it
    into an honest "n/a — not available offline" instead of a crash or a made-up number.
    """


class DataFormatError(ValueError):
    """A local file that is not in the expected format; the message names the file and the place."""


def data_dir() -> Path | None:
    """The local data folder from ``ATB_DATA_DIR``, or ``None`` meaning "use the Hugging Face Hub".

    An empty value counts as unset.  A value that does not name an existing directory is an error
    rather than a silent fall-back to the hub: the user asked for local data, and a typo should not
    turn into a download attempt (or a hang) on an offline machine.
    """
    value = os.environ.get(ENV_VAR, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{ENV_VAR}={value!r}: the folder {path.resolve()} does not exist")
    if not path.is_dir():
        raise NotADirectoryError(f"{ENV_VAR}={value!r}: {path.resolve()} is not a directory")
    return path


def local_file(root: Path, relative: str, what: str, hub_hint: str) -> Path:
    """``root / relative``, or :class:`DataUnavailableOffline` saying what is missing and the hub way.

    ``what`` names the data for a human ("GLUE mnli train"); ``hub_hint`` is the call that gets it
    from the hub (e.g. ``datasets.load_dataset("nyu-mll/glue", "mnli", split="train")``).
    """
    path = root / relative
    if not path.is_file():
        raise DataUnavailableOffline(
            f"{what} is not available offline: {path} does not exist in {ENV_VAR}={root}. "
            f"It is on the Hugging Face Hub as {hub_hint}; to use it, unset {ENV_VAR} on a machine "
            f"with network access."
        )
    return path


def unavailable(what: str, hub_hint: str, why: str) -> DataUnavailableOffline:
    """The error for data that the local layout cannot provide (``why`` says so), e.g. GLUE test labels."""
    return DataUnavailableOffline(
        f"{what} is not available offline: {why}. It is on the Hugging Face Hub as {hub_hint}; to use "
        f"it, unset {ENV_VAR} on a machine with network access."
    )


class HubUnavailable(ConnectionError):
    """A Hugging Face Hub dataset that could not be loaded while ``ATB_DATA_DIR`` is unset (offline machine,
    ``HF_HUB_OFFLINE=1``, no network).  Not a :class:`DataUnavailableOffline`: data that exists must not be
    reported as "n/a" just because the hub was out of reach."""


def _hub_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError]  # ConnectionError, requests' errors, DatasetNotFoundError
    try:
        import httpx  # huggingface_hub >= 1.0 talks to the hub through httpx, whose errors are no OSError

        errors.append(httpx.TransportError)
    except ImportError:
        pass
    return tuple(errors)


def load_hub(path: str, name: str | None = None, **kwargs):
    """``datasets.load_dataset(path, name, **kwargs)``: the one place :mod:`atb.data` reaches the hub.

    If the hub cannot be reached, raises :class:`HubUnavailable` naming the dataset and saying to set
    ``ATB_DATA_DIR`` to a local copy (README, "Data"), chained to the original error.
    """
    import datasets

    try:
        return datasets.load_dataset(*(path,) if name is None else (path, name), **kwargs)
    except _hub_errors() as err:
        call = ", ".join([f'"{path}"', *([f'"{name}"'] if name else []),
                          *(f"{k}={v!r}".replace("'", '"') for k, v in kwargs.items())])
        raise HubUnavailable(
            f"could not load the Hugging Face Hub dataset {path!r} (datasets.load_dataset({call})): "
            f"{type(err).__name__}: {err}. {ENV_VAR} is not set, so atb.data reads from the hub; on a machine "
            f"without hub access, set {ENV_VAR} to a local copy of the data (e.g. export "
            f"{ENV_VAR}=/path/to/shared/data); see {README_DATA}."
        ) from err
