"""``glaneur doctor``: what a support agent would check, each check with its fix."""

from __future__ import annotations

import typer
from rich.text import Text

from cli import common
from glaneur.errors import UsageError

VERDICT_STYLES = {"ok": "green", "warn": "yellow", "fail": "red"}


def doctor(
    channel: str | None = typer.Argument(None, help="The channel to diagnose."),
    iban: str | None = typer.Option(None, "--iban", help="Diagnose a firm's client IBAN instead (statements)."),
    org: str | None = typer.Option(None, "--org", help="With --iban: the firm, when several have this IBAN."),
) -> None:
    """Diagnose a channel (provider, accounts, credentials, last runs, invitation, next run) or, with --iban, a
    client IBAN (connector on the firm, connector on the IBAN, mandate, last statements); each check with its fix.

    Exits 1 when a check fails. Credentials are decrypted to check the vault key, never shown.
    """
    if (channel is None) == (iban is None):
        raise UsageError("give a channel to diagnose, or --iban IBAN for a firm's client IBAN (one of the two).")
    subject = channel or iban
    with common.session() as session:
        with common.out().status(f"Checking {common.clean(subject)}…"):
            if iban is not None:
                from glaneur.statements.doctor import diagnose_iban

                checks = diagnose_iban(session, iban, org, organizations=common.readable_within(session, org=org))
            else:
                from connectors.powens import powens_connectors
                from glaneur.doctor import diagnose
                from tasks.deployments import lookup_deployment

                checks = diagnose(session, common.read_channel(session, channel).slug, deployments=lookup_deployment,
                                  powens_connectors=lambda: powens_connectors(timeout=10), serve_answers=_serve_answers)
        session.rollback()  # reading only: the vault's first use may have written its canary
    table = common.table(f"Diagnosis of {subject}", "Check", "Verdict", "What was found", "Fix")
    for check in checks:
        table.add_row(
            common.cell(check.name),
            Text(check.verdict.value, style=VERDICT_STYLES[check.verdict.value]),
            common.cell(check.detail),
            common.cell(check.fix or "-"),
        )
    common.out().print(table)
    failed = [check.name for check in checks if check.verdict == "fail"]
    if failed:
        common.say(f"{len(failed)} check(s) failed: {', '.join(failed)}.", style="red")
        raise typer.Exit(common.FAILED_EXIT)
    common.say("No check failed.")


def _serve_answers(base: str) -> str | None:
    """None when ``glaneur serve`` answers its health probe at ``base``, else what failed."""
    import httpx

    try:
        answer = httpx.get(f"{base}/healthz", timeout=5.0)
    except httpx.HTTPError as error:
        return type(error).__name__
    return None if answer.status_code == 200 else f"HTTP {answer.status_code}"
