"""``glaneur vault``: the key that encrypts passwords, TOTP seeds and portal sessions."""

from __future__ import annotations

import sys

import typer

from cli import common
from glaneur.errors import UsageError

vault_app = common.group("The vault holding passwords and TOTP seeds.")


@vault_app.command("generate-key")
def vault_generate_key() -> None:
    """Print a new vault key, for GLANEUR_VAULT_KEY or a key file (store it before using it)."""
    from glaneur.vault import generate_key

    typer.echo(generate_key())


@vault_app.command("rotate-key")
def vault_rotate_key(
    new_key_stdin: bool = typer.Option(
        False, "--new-key-stdin", help="Read the new key from stdin (required when the key is configured)."
    ),
) -> None:
    """Re-encrypt every secret under a new vault key, in one transaction."""
    from glaneur.vault import rotate_key

    settings = common.settings()
    if not settings.uses_embedded_vault_key and not new_key_stdin:
        # The new key must be stored where every process reads it before the secrets depend on it.
        setting = "GLANEUR_VAULT_KEY" if settings.vault_key is not None else "GLANEUR_VAULT_KEY_FILE"
        raise UsageError(
            f"the vault key is configured ({setting}), so Glaneur cannot store the new one itself. "
            "Generate one with 'glaneur vault generate-key', set the setting to 'OLD,NEW' everywhere, "
            "run 'glaneur vault rotate-key --new-key-stdin' with NEW on stdin, then set the setting to NEW."
        )
    new_key = sys.stdin.readline().strip() if new_key_stdin else None
    if new_key_stdin and not new_key:
        raise UsageError("--new-key-stdin: put the new vault key on stdin's first line.")
    with common.session() as session:
        rotate_key(session, new_key)
    if settings.uses_embedded_vault_key:
        key_file = settings.resolved_vault_key_file
        common.say(f"Vault key rotated: the new key is in {key_file}, the old one kept in {key_file}.previous.")
    else:
        common.say("Vault key rotated: every secret is now encrypted under the new key; set the setting to it alone.")
