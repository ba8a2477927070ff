"""HPCTRAIN_* settings that every rank reads at the same point of a collective.

Every rank of a job sees the same environment (the CLI's check of all settings at start-up
relies on it too), so a bad value fails on every rank at once: the InputError of
`settings.get` is marked collective, rank 0 alone reports it, and no extra collective is paid
to agree on it.
"""

from .. import settings
from ..errors import InputError


def job_setting(name: str):
    """settings.get(name), its InputError marked as raised by every rank together."""
    try:
        return settings.get(name)
    except InputError as err:
        err.collective = True
        raise
