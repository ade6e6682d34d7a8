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
    """Re-encrypt every secret under a new vault key, in one transaction.

    With the embedded key file, a new key is generated and replaces it (the old one is kept as vault.key.previous).
    With GLANEUR_VAULT_KEY (or GLANEUR_VAULT_KEY_FILE), without downtime: 1. generate NEW ('glaneur vault
    generate-key'); 2. set the setting to OLD,NEW in every process and restart them; 3. run this command with
    --new-key-stdin and NEW on stdin; 4. set the setting to NEW alone everywhere. Step 3 refuses a NEW that the
    setting does not list: processes without it could then read no secret.
    """
    from glaneur.vault import rotate_key

    settings = common.settings()
    setting = "GLANEUR_VAULT_KEY" if settings.vault_key is not None else "GLANEUR_VAULT_KEY_FILE"
    if not settings.uses_embedded_vault_key and not new_key_stdin:
        # The new key must be stored where every process reads it before the secrets depend on it.
        raise UsageError(
            f"the vault key is configured ({setting}), so Glaneur cannot store the new one itself. "
            f"Generate one with 'glaneur vault generate-key', set {setting} to 'OLD,NEW' in every process, "
            f"run 'glaneur vault rotate-key --new-key-stdin' with NEW on stdin, then set {setting} to NEW alone."
        )
    new_key = sys.stdin.readline().strip() if new_key_stdin else None
    if new_key_stdin and not new_key:
        raise UsageError("--new-key-stdin: put the new vault key on stdin's first line.")
    with common.session() as session:
        rotation = rotate_key(session, new_key)
    if settings.uses_embedded_vault_key:
        key_file = settings.resolved_vault_key_file
        common.say(
            f"Vault key rotated ({rotation.rotated} secret(s)): the new key is in {key_file}, "
            f"the old one kept in {key_file}.previous."
        )
    else:
        common.say(
            f"Vault key rotated ({rotation.rotated} secret(s)): every readable secret is now encrypted under the new "
            f"key, and processes with both keys write under it. Now set {setting} to the new key alone everywhere."
        )
    if rotation.unreadable:
        common.say(
            f"{len(rotation.unreadable)} vault entr{'y' if len(rotation.unreadable) == 1 else 'ies'} could not be "
            f"decrypted and were left as they were (ids {', '.join(map(str, rotation.unreadable))}): they are damaged "
            "or under a key no longer configured. 'glaneur doctor CHANNEL' names the accounts concerned; enter their "
            "credentials again.",
            style="yellow",
        )
