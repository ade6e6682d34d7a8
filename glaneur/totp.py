"""TOTP codes from the seeds suppliers' portals issue (RFC 6238).

pyotp 2.10 refuses seeds under 112 bits, following NIST SP 800-63B's advice to the verifier who
chooses a seed. Glaneur chooses nothing: it answers with the seed the portal gave, and the most
common one is 16 base32 characters (80 bits, the length authenticator apps popularised). Refusing
it would leave that account waiting for a person every day, so the floor here is 80 bits: shorter
seeds are typing mistakes, not portals' choices.
"""

from __future__ import annotations

import pyotp

MIN_SEED_BITS = 80
MIN_SEED_CHARS = 16  # base32 characters holding 80 bits


class PortalTOTP(pyotp.TOTP):
    min_secret_length_bits = MIN_SEED_BITS


def code(seed: str, for_time: float | None = None) -> str:
    """The current code (or the one at ``for_time``) for a portal's seed."""
    totp = PortalTOTP(seed)
    return totp.now() if for_time is None else totp.at(for_time)
