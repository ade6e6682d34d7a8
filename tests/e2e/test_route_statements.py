"""Statements routed per IBAN, end to end: a real Prefect server, the sandbox statement source (HTTP) and
two sandbox partners (HTTP, HMAC-signed deliveries), files taken in, routed, delivered, and the global file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import zipfile
from datetime import date

import httpx
import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from glaneur.models import (
    DeliveryState,
    PartnerConnector,
    Statement,
    StatementFile,
    StatementFileState,
    StatementRoute,
    StatementSource,
    VaultEntry,
)
from glaneur.settings import get_settings, reset_settings
from glaneur.storage import get_storage
from sandbox.firm_setup import COLLABORATOR, create_sandbox_firm, iban_of
from sandbox.statements_source import FIRM, SANDBOX_UNKNOWN_IBAN
from tests.e2e.conftest import assert_no_secret, prefect_call
from tests.e2e.s3_servers import moto_server

FIXTURES = __import__("pathlib").Path(__file__).parents[1] / "fixtures" / "statements"

pytestmark = pytest.mark.slow

DAY = date(2026, 11, 20)
MARTIN = iban_of("Boulangerie Martin")  # compta-express, approved
LEFEVRE = iban_of("Garage Lefèvre")  # compta-express, pending
BRASSERIE = iban_of("Brasserie Van den Bossche")  # no connector
PEETERS = iban_of("Atelier Peeters")  # tenue-plus, approved
MULLER = iban_of("Schreinerei Müller GmbH")  # compta-express, revoked
runner = CliRunner()


def session() -> Session:
    from glaneur.db import get_engine

    return Session(get_engine(), expire_on_commit=False)


@pytest.fixture
def world(glaneur_home, prefect_server, sandbox, monkeypatch):
    from glaneur.db import session_scope

    for key, url in sandbox.urls.items():
        if key == "statement-source" or key.startswith("partner-"):
            httpx.post(f"{url}/_sandbox/reset").raise_for_status()
    monkeypatch.delenv("GLANEUR_ACTING_USER", raising=False)
    with session_scope() as s:
        assert create_sandbox_firm(s, sandbox.urls)
    return sandbox


def route(day: date = DAY):
    from flows.route_statements import route_statements
    from tasks.lifecycle import summary_of

    state = route_statements(firm=FIRM, day=day, return_state=True)
    return state, summary_of(state)  # a Failed routing carries its summary inside an exception


def received(sandbox, partner: str) -> list[dict]:
    return httpx.get(f"{sandbox.urls[f'partner-{partner}']}/_sandbox/received").json()


def statements_of(iban: str) -> list[Statement]:
    with session() as s:
        return list(s.exec(select(Statement).where(Statement.iban == iban)).all())


def glaneur(*args: str, actor: str | None = None, input: str | None = None):
    from cli.main import app

    prefix = ["--as", actor] if actor else []
    return runner.invoke(app, [*prefix, *args], input=input, env={"COLUMNS": "250"})


def diagnosis(iban: str) -> str:
    """The checks' names, findings and fixes as one line (the CLI's table folds them over several)."""
    from glaneur.statements.doctor import diagnose_iban

    with session() as s:
        checks = diagnose_iban(s, iban)
    return " | ".join(f"{c.name}: {c.verdict.value}: {c.detail} {c.fix}" for c in checks)


def test_statements_go_to_partners_or_the_global_file_exactly_once(world, tmp_path):
    state, summary = route()
    assert state.is_completed(), state.message
    assert summary["sources"][0]["files"] == 4 and summary["sources"][0]["new_statements"] == 6
    assert summary["delivered"] == 2 and summary["aside"] == 1

    # Active IBAN with a connector: delivered to that partner, signed, once.
    (martin,) = statements_of(MARTIN)
    assert martin.route == StatementRoute.PARTNER and martin.delivery_state == DeliveryState.DELIVERED
    compta = received(world, "compta-express")
    assert [item["headers"]["x-glaneur-iban"] for item in compta] == [MARTIN]
    assert compta[0]["sha256"] == martin.sha256 and compta[0]["receipt"] == martin.delivery_receipt
    tenue = received(world, "tenue-plus")
    assert [item["headers"]["x-glaneur-iban"] for item in tenue] == [PEETERS]
    storage = get_storage(get_settings())
    assert storage.get(martin.delivery_key) == storage.get(martin.storage_key)
    assert martin.delivery_key.startswith(f"partners/compta-express/{FIRM}/{MARTIN}/")

    # Any other IBAN: in the firm's global file of the day, and only there.
    for iban in (LEFEVRE, BRASSERIE, MULLER):
        (statement,) = statements_of(iban)
        assert statement.route == StatementRoute.GLOBAL and statement.global_date == DAY
    (unknown,) = statements_of(SANDBOX_UNKNOWN_IBAN)
    assert unknown.route == StatementRoute.ASIDE

    target = tmp_path / "global.zip"
    result = glaneur("statements", "download", FIRM, "--day", DAY.isoformat(), "--output", str(target))
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(target) as bundle:
        names = bundle.namelist()
        manifest = bundle.read("manifest.csv").decode()
        member = next(name for name in names if name.startswith(BRASSERIE))
        (tmp_path / "one.xml").write_bytes(bundle.read(member))
    assert len(names) == 4 and "manifest.csv" in names
    assert all(iban in manifest for iban in (LEFEVRE, BRASSERIE, MULLER))
    assert MARTIN not in manifest and PEETERS not in manifest and SANDBOX_UNKNOWN_IBAN not in manifest

    # Any member of the global file can be checked by hand.
    parsed = glaneur("statements", "parse", str(tmp_path / "one.xml"))
    assert parsed.exit_code == 0, parsed.output
    (one,) = json.loads(parsed.stdout)
    assert one["iban"] == BRASSERIE and one["entries"] >= 1

    # Run again: the same files are not taken twice, nothing is delivered twice.
    state, summary = route()
    assert summary["sources"][0]["new_statements"] == 0 and summary["delivered"] == 0
    assert [item["times_received"] for item in received(world, "compta-express")] == [1]
    with session() as s:
        assert len(s.exec(select(Statement)).all()) == 6
        assert len(s.exec(select(StatementFile)).all()) == 4

    listing = glaneur("statements", "list", FIRM)
    assert listing.exit_code == 0 and "partner compta-express (delivered" in " ".join(listing.stdout.split())

    async def lock(client):  # one routing of the firm at a time, on every worker
        return await client.read_global_concurrency_limit_by_name(f"route-statements-{FIRM}")

    assert prefect_call(lock).limit == 1


def test_a_partner_that_was_down_gets_its_statements_later(world):
    partner = world.urls["partner-compta-express"]
    httpx.post(f"{partner}/_sandbox/outage", json={"down": True}).raise_for_status()
    state, summary = route()
    assert state.is_failed() and summary["not_delivered"] == 1
    assert "not acknowledged" in state.message
    (martin,) = statements_of(MARTIN)
    assert martin.route == StatementRoute.PARTNER and martin.delivery_receipt is None
    assert martin.delivery_attempts >= 1 and "503" in martin.last_delivery_error
    assert martin.global_date is None  # never in the global file meanwhile

    httpx.post(f"{partner}/_sandbox/outage", json={"down": False}).raise_for_status()
    state, summary = route(date(2026, 11, 21))
    assert state.is_completed(), state.message
    (martin,) = statements_of(MARTIN)
    assert martin.delivery_state == DeliveryState.DELIVERED
    assert [item["times_received"] for item in received(world, "compta-express")] == [1]


def test_a_partner_refusing_the_signature_needs_a_person_then_gets_it(world):
    from sandbox.partner import SANDBOX_PARTNER_SECRETS

    wrong = "a-secret-the-partner-does-not-know"
    assert glaneur("partner", "update", "compta-express", "--secret-stdin", input=wrong + "\n").exit_code == 0
    state, summary = route()
    assert state.is_failed() and summary["not_delivered"] == 1
    (martin,) = statements_of(MARTIN)
    assert martin.delivery_state == DeliveryState.REFUSED and "401" in martin.last_delivery_error
    assert martin.delivery_attempts == 1  # a refusal is not retried within the run
    assert wrong not in martin.last_delivery_error
    assert "the partner refused it" in diagnosis(MARTIN)

    right = SANDBOX_PARTNER_SECRETS["compta-express"]
    assert glaneur("partner", "update", "compta-express", "--secret-stdin", input=right + "\n").exit_code == 0
    state, _ = route(date(2026, 11, 21))
    assert state.is_completed(), state.message
    (martin,) = statements_of(MARTIN)
    assert martin.delivery_state == DeliveryState.DELIVERED
    assert [item["headers"]["x-glaneur-iban"] for item in received(world, "compta-express")] == [MARTIN]


def test_an_iban_detached_before_delivery_goes_to_the_global_file(world):
    partner = world.urls["partner-compta-express"]
    httpx.post(f"{partner}/_sandbox/outage", json={"down": True}).raise_for_status()
    route()
    result = glaneur("iban", "attach", FIRM, MARTIN, "none", actor=COLLABORATOR)
    assert result.exit_code == 0, result.output
    httpx.post(f"{partner}/_sandbox/outage", json={"down": False}).raise_for_status()
    state, _ = route(date(2026, 11, 21))
    (martin,) = statements_of(MARTIN)
    assert martin.route == StatementRoute.GLOBAL and martin.global_date == date(2026, 11, 21)
    assert received(world, "compta-express") == []


def readme_verifier(secret: str, headers: dict[str, str], body: bytes, now: int) -> bool:
    """A partner's check, written from the README's "Partner delivery" steps alone (no Glaneur code)."""
    values = {name.lower(): value.strip() for name, value in headers.items()}
    items = [item.strip().split("=", 1) for item in values.get("x-glaneur-signature", "").split(",")]
    times = [value for name, value in items if name == "t"]
    candidates = [value for name, value in items if name == "v2"]
    if len(times) != 1 or not candidates:
        return False
    lines = ["glaneur-v2", times[0], values.get("idempotency-key", ""), values.get("x-glaneur-firm", ""),
             values.get("x-glaneur-iban", ""), values.get("x-glaneur-statement-sha256", ""),
             hashlib.sha256(body).hexdigest()]
    mac = hmac.new(secret.encode("utf-8"), "\n".join(lines).encode("utf-8"), hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(mac, c) for c in candidates) and abs(now - int(times[0])) <= 300


def test_a_captured_delivery_replayed_for_another_client_is_refused(world):
    """Issue 14 item 18: the signature covers the IBAN, the idempotency key, the time and the body."""
    from sandbox.partner import SANDBOX_PARTNER_SECRETS

    state, _ = route()
    assert state.is_completed(), state.message
    partner = world.urls["partner-compta-express"]
    (captured,) = received(world, "compta-express")  # what an eavesdropper saw on the wire
    body = httpx.get(f"{partner}/_sandbox/received/{captured['receipt']}").content
    headers = {"Content-Type": captured["content_type"], "Idempotency-Key": captured["idempotency_key"],
               "X-Glaneur-Signature": captured["signature"], **captured["headers"]}
    assert headers["x-glaneur-iban"] == MARTIN and headers["x-glaneur-firm"] == FIRM

    # A partner following the README accepts what Glaneur sent, and nothing else.
    secret = SANDBOX_PARTNER_SECRETS["compta-express"]
    now = int(time.time())
    assert readme_verifier(secret, headers, body, now)
    forged = {**headers, "Idempotency-Key": "replayed-1", "x-glaneur-iban": LEFEVRE}
    assert not readme_verifier(secret, forged, body, now)
    assert not readme_verifier(secret, {**headers, "x-glaneur-iban": LEFEVRE}, body, now)
    assert not readme_verifier(secret, headers, body + b" ", now)
    assert not readme_verifier(secret, headers, body, now + 301)

    # Replayed to the real partner within the 300 s window: refused, whatever is changed.
    for changed in ({"Idempotency-Key": "replayed-1", "x-glaneur-iban": LEFEVRE},
                    {"Idempotency-Key": "replayed-2"}, {"x-glaneur-iban": LEFEVRE}, {"x-glaneur-firm": "other"}):
        replay = httpx.post(f"{partner}/api/statements", content=body, headers={**headers, **changed})
        assert replay.status_code == 401, (changed, replay.text)
        assert "does not match" in replay.json()["reason"]
    # Replayed unchanged: the same key, so the same statement, kept once.
    same = httpx.post(f"{partner}/api/statements", content=body, headers=headers)
    assert same.status_code == 200 and same.json()["receipt"] == captured["receipt"]
    (kept,) = received(world, "compta-express")
    assert kept["times_received"] == 2 and kept["headers"]["x-glaneur-iban"] == MARTIN


def test_unknown_iban_is_kept_aside_until_added(world):
    route()
    assert glaneur("doctor", "--iban", SANDBOX_UNKNOWN_IBAN).exit_code == 1
    assert "1 statement(s) for it are kept aside" in diagnosis(SANDBOX_UNKNOWN_IBAN)
    assert glaneur("iban", "add", FIRM, SANDBOX_UNKNOWN_IBAN, "--client", "Weber Logistik GmbH",
                   actor=COLLABORATOR).exit_code == 0
    route(date(2026, 11, 21))
    (weber,) = statements_of(SANDBOX_UNKNOWN_IBAN)
    assert weber.route == StatementRoute.GLOBAL and weber.client_iban_id is not None


def test_bad_files_are_kept_rejected_and_the_rest_routed(world):
    source = world.urls["statement-source"]
    hostile = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
               b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">&x;</Document>')
    truncated = b":20:REF1\r\n:25:" + MARTIN.encode() + b"\r\n:28C:1/1\r\n:60F:C261119EUR100,00\r\n:61:2611"
    for name, content in (("hostile.xml", hostile), ("cut.sta", truncated)):
        httpx.post(f"{source}/_sandbox/files", json={
            "firm": FIRM, "name": name, "content_base64": base64.b64encode(content).decode(),
        }).raise_for_status()
    state, summary = route()
    assert state.is_failed() and summary["rejected_files"] == 2
    assert summary["delivered"] == 2  # the good files were routed all the same
    with session() as s:
        rejected = s.exec(select(StatementFile).where(StatementFile.state == StatementFileState.REJECTED)).all()
    assert sorted(f.error_reason for f in rejected) == ["hostile_xml", "truncated"]
    storage = get_storage(get_settings())
    assert {storage.get(f.storage_key) for f in rejected} == {hostile, truncated}  # nothing lost
    assert b"root:" not in b"".join(storage.get(f.storage_key) for f in rejected)

    listing = " ".join(glaneur("statements", "list", FIRM).stdout.split())
    assert "Rejected files" in listing and "cut.sta" in listing


def test_inbox_files_are_taken_once(world, tmp_path):
    route()
    (brasserie,) = statements_of(BRASSERIE)
    path = tmp_path / "releve.xml"
    path.write_bytes(get_storage(get_settings()).get(brasserie.storage_key))  # the bank re-sends it by mail
    for _ in range(2):  # dropped twice: one object in the inbox
        result = glaneur("statements", "import", FIRM, str(path), actor=COLLABORATOR)
        assert result.exit_code == 0, result.output
    state, summary = route(date(2026, 11, 21))
    depot = next(p for p in summary["sources"] if p["source"] == "depot")
    # Recorded once, whatever file carried it.
    assert depot["files"] == 1 and depot["new_statements"] == 0 and depot["already_had"] + depot["duplicates"] == 1
    assert len(statements_of(BRASSERIE)) == 1
    _, summary = route(date(2026, 11, 22))
    depot = next(p for p in summary["sources"] if p["source"] == "depot")
    assert depot["files"] == 0  # an inbox file is read once


def test_doctor_walks_the_faq_checklist(world):
    route()
    assert glaneur("doctor", "--iban", MARTIN).exit_code == 0
    martin = diagnosis(MARTIN)
    assert "1. Connector associated with the firm" in martin and "2. IBAN attached to a connector" in martin
    assert "attached to compta-express" in martin and "mandate approved" in martin
    assert "delivered" in martin and "contact Glaneur's support" in martin
    assert glaneur("doctor", "--iban", LEFEVRE).exit_code == 1
    text = diagnosis(LEFEVRE)
    assert "mandate pending" in text and "global file of 2026-11-20" in text
    bad = glaneur("doctor", "--iban", "FR7630004000000001234567846")
    assert bad.exit_code == 2 and "check digits" in bad.stderr


def test_no_partner_secret_or_source_token_left_behind(world, glaneur_home):
    """Not in Prefect's logs, artifacts, parameters or state; not in clear in Glaneur's database."""
    from sandbox.partner import SANDBOX_PARTNER_SECRETS
    from sandbox.statements_source import SANDBOX_SOURCE_TOKENS

    httpx.post(f"{world.urls['partner-tenue-plus']}/_sandbox/outage", json={"fail_next": 1}).raise_for_status()
    state, _ = route()

    async def artifacts(client):
        return await client.read_artifacts()

    assert any(a.key == f"statements-{FIRM}" for a in prefect_call(artifacts))
    assert_no_secret(glaneur_home, state.state_details.flow_run_id,
                     [*SANDBOX_PARTNER_SECRETS.values(), *SANDBOX_SOURCE_TOKENS.values()])


def test_dispatch_schedules_one_routing_per_firm_and_day(world, deployments, monkeypatch):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    from flows.dispatch import dispatch_daily
    from glaneur import admin

    calls = []

    def broken(session):
        calls.append(session)
        raise RuntimeError("the connector requests' table is unreadable")

    monkeypatch.setattr(admin, "sync_connector_requests", broken)  # its fault never stops the day's runs
    deployments("collect-channel")
    route_deployment = deployments("route-statements")
    for _ in range(2):  # twice the same day: still one run (idempotency key)
        assert dispatch_daily(day=DAY)  # completes, the runs scheduled, the fault only logged
    assert len(calls) == 2

    async def read(client):
        return await client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[route_deployment]))
        )

    (run,) = prefect_call(read)
    assert run.parameters == {"firm": FIRM, "day": DAY.isoformat()}
    assert run.state.is_scheduled()
    assert run.expected_start_time.astimezone().strftime("%Y-%m-%d") == DAY.isoformat()


# -- one failure stops only what it concerns (issue 14, items 3, 5 and 6) ---------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint():
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(params=["local", "s3"])
def storage_kind(request, world, monkeypatch, tmp_path):
    """The firm's storage: the local folder, or S3 over HTTP (moto's server)."""
    if request.param == "s3":
        import boto3

        endpoint = request.getfixturevalue("s3_endpoint")
        for name, value in {"AWS_ACCESS_KEY_ID": "AKIAGLANEURTESTING00", "AWS_SECRET_ACCESS_KEY": "never-printed",
                            "AWS_CONFIG_FILE": str(tmp_path / "none"),
                            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                            "AWS_EC2_METADATA_DISABLED": "true", "NO_PROXY": "127.0.0.1,localhost",
                            "GLANEUR_STORAGE": "s3", "GLANEUR_S3_BUCKET": f"inbox-{tmp_path.name[-20:].lower()}",
                            "GLANEUR_S3_ENDPOINT_URL": endpoint, "GLANEUR_S3_REGION": "eu-west-3"}.items():
            monkeypatch.setenv(name, value)
        reset_settings()
        bucket = get_settings().s3_bucket
        boto3.client("s3", endpoint_url=endpoint, region_name="eu-west-3").create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})
    yield request.param
    reset_settings()


def drop_in_inbox(kind: str, name: str, data: bytes) -> None:
    """As a person or a scanner drops a file, under whatever name, without Glaneur's key rules."""
    key = f"{FIRM}/inbox/depot/{name}"
    settings = get_settings()
    if kind == "s3":
        import boto3

        boto3.client("s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.s3_region).put_object(
            Bucket=settings.s3_bucket, Key=key, Body=data)
    else:
        path = settings.resolved_storage_path.joinpath(*key.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_an_oddly_named_inbox_file_is_taken_in_and_blocks_nothing(world, storage_kind):
    odd = "relevé du 19.xml"
    drop_in_inbox(storage_kind, odd, (FIXTURES / "camt053_v02_single.xml").read_bytes())
    drop_in_inbox(storage_kind, "zz après.sta", (FIXTURES / "mt940_plain_lf_two_accounts.sta").read_bytes())
    state, summary = route()
    depot = next(p for p in summary["sources"] if p["source"] == "depot")
    assert depot["error"] == "" and depot["unread"] == [] and depot["files"] == 2, depot
    assert depot["new_statements"] == 3 and summary["delivered"] == 2
    with session() as s:
        names = {f.source_name for f in s.exec(select(StatementFile)).all()}
        source = s.exec(select(StatementSource).where(StatementSource.slug == "depot")).one()
    assert {f"{FIRM}/inbox/depot/{odd}", f"{FIRM}/inbox/depot/zz après.sta"} <= names
    assert source.last_error == ""
    _, summary = route(date(2026, 11, 21))  # taken once
    assert next(p for p in summary["sources"] if p["source"] == "depot")["files"] == 0


def test_an_inbox_file_that_cannot_be_read_is_reported_and_the_others_are_taken_in(world, tmp_path):
    settings = get_settings()
    inbox = settings.resolved_storage_path / FIRM / "inbox" / "depot"
    inbox.mkdir(parents=True)
    outside = tmp_path / "outside.xml"
    outside.write_bytes((FIXTURES / "camt053_v02_single.xml").read_bytes())
    (inbox / "a-lien.xml").symlink_to(outside)  # points out of the storage: never read
    (inbox / "b.sta").write_bytes((FIXTURES / "mt940_plain_lf_two_accounts.sta").read_bytes())
    state, summary = route()
    depot = next(p for p in summary["sources"] if p["source"] == "depot")
    assert depot["files"] == 1 and depot["new_statements"] == 2
    ((name, message),) = depot["unread"]
    assert name == "a-lien.xml" and "stays in the inbox" in message and "next run" in message
    assert state.is_failed() and "1 inbox file(s) not taken in yet" in state.message
    with session() as s:
        depot_row = s.exec(select(StatementSource).where(StatementSource.slug == "depot")).one()
    assert "a-lien.xml" in depot_row.last_error and "tried again next run" in depot_row.last_error
    assert "a-lien.xml" in glaneur("firm", "sources", FIRM).stdout


def test_a_storage_failure_after_the_receipt_is_written_later_and_stops_no_other_statement(world):
    """Issue 14 item 5: the partner acknowledged, the copy under its prefix failed; the next run writes it."""
    root = get_settings().resolved_storage_path
    blocker = root / "partners" / "compta-express"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the partner's folder should be: every write under it fails")
    state, summary = route()

    assert state.is_failed() and summary["acknowledged_not_copied"] == 1
    assert "acknowledged by their partner but not copied" in state.message
    (martin,) = statements_of(MARTIN)
    assert martin.delivery_receipt == "compta-express-1" and martin.delivery_state == DeliveryState.PENDING
    assert martin.delivery_key is None and "could not be written" in martin.last_delivery_error
    (peeters,) = statements_of(PEETERS)  # the statement after it went on
    assert peeters.delivery_state == DeliveryState.DELIVERED
    assert "(acknowledged," in glaneur("statements", "list", FIRM).stdout
    assert "acknowledged, receipt compta-express-1" in destination_of(MARTIN)
    assert "written on the next run" in diagnosis(MARTIN)

    async def history(client):
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

        key = ArtifactFilterKey(any_=[f"statements-{FIRM}"])
        return await client.read_artifacts(artifact_filter=ArtifactFilter(key=key))

    latest = max(prefect_call(history), key=lambda a: a.created)
    table = str(latest.data).replace("\\", "")  # Markdown escapes
    assert "| #1 | compta-express | storage_error | yes, receipt compta-express-1 |" in table

    blocker.unlink()
    state, summary = route(date(2026, 11, 21))
    assert state.is_completed(), state.message
    (martin,) = statements_of(MARTIN)
    assert martin.delivery_state == DeliveryState.DELIVERED and martin.last_delivery_error == ""
    storage = get_storage(get_settings())
    assert storage.get(martin.delivery_key) == storage.get(martin.storage_key)
    assert [item["times_received"] for item in received(world, "compta-express")] == [1]  # not sent again


def destination_of(iban: str) -> str:
    """Where the history (``glaneur statements list``, the routing artifact) says the IBAN's statement went."""
    from glaneur.statements import routing

    with session() as s:
        (entry,) = routing.statement_history(s, FIRM, iban=iban)
        return entry.destination


def damage_vault_entry(entry_id: int) -> None:
    from glaneur.db import session_scope

    with session_scope() as s:
        entry = s.get(VaultEntry, entry_id)
        token = bytearray(entry.ciphertext)
        token[len(token) // 2] ^= 0x01  # one bit flipped on disk
        entry.ciphertext = bytes(token)
        s.add(entry)


def test_an_unreadable_partner_secret_stops_that_partner_alone(world):
    """Issue 14 item 6 (partner): the other partner is served; the history says what to do."""
    from sandbox.partner import SANDBOX_PARTNER_SECRETS

    with session() as s:
        partner = s.exec(select(PartnerConnector).where(PartnerConnector.slug == "compta-express")).one()
    damage_vault_entry(partner.secret_ref)
    state, summary = route()

    assert state.is_failed() and "signing secret unreadable for partner(s) compta-express" in state.message
    (peeters,) = statements_of(PEETERS)
    assert peeters.delivery_state == DeliveryState.DELIVERED
    (martin,) = statements_of(MARTIN)
    assert martin.delivery_receipt is None and martin.delivery_state == DeliveryState.PENDING
    assert "glaneur partner update compta-express --new-secret" in martin.last_delivery_error
    assert received(world, "compta-express") == []
    assert "2b. Partner's signing secret readable: fail" in diagnosis(MARTIN)
    assert "glaneur partner update compta-express --new-secret" in destination_of(MARTIN)

    right = SANDBOX_PARTNER_SECRETS["compta-express"]
    assert glaneur("partner", "update", "compta-express", "--secret-stdin", input=right + "\n").exit_code == 0
    state, _ = route(date(2026, 11, 21))
    assert state.is_completed(), state.message
    (martin,) = statements_of(MARTIN)
    assert martin.delivery_state == DeliveryState.DELIVERED and martin.last_delivery_error == ""
    assert "2b. Partner's signing secret readable: ok" in diagnosis(MARTIN)


def test_an_unreadable_source_token_stops_that_source_alone(world, tmp_path):
    """Issue 14 item 6 (source): the inbox is still read; the firm's administrator is told what to do."""
    from sandbox.firm_setup import ADMIN
    from sandbox.statements_source import SANDBOX_SOURCE_TOKENS

    with session() as s:
        banque = s.exec(select(StatementSource).where(StatementSource.slug == "banque")).one()
    damage_vault_entry(banque.token_ref)
    (tmp_path / "releve.sta").write_bytes((FIXTURES / "mt940_plain_lf_two_accounts.sta").read_bytes())
    assert glaneur("statements", "import", FIRM, str(tmp_path / "releve.sta"), actor=COLLABORATOR).exit_code == 0
    state, summary = route()

    assert state.is_failed() and "source(s) not read: banque" in state.message
    pulls = {p["source"]: p for p in summary["sources"]}
    assert pulls["banque"]["status"] == "secret_unreadable"
    assert f"glaneur firm source-token {FIRM} banque" in pulls["banque"]["error"]
    assert pulls["depot"]["error"] == "" and pulls["depot"]["new_statements"] == 2  # the other source was read
    with session() as s:
        banque = s.exec(select(StatementSource).where(StatementSource.slug == "banque")).one()
    assert "cannot be read from Glaneur's vault" in banque.last_error and "source-token" in banque.last_error

    token = SANDBOX_SOURCE_TOKENS[FIRM]
    result = glaneur("firm", "source-token", FIRM, "banque", "--token-stdin", input=token + "\n", actor=ADMIN)
    assert result.exit_code == 0, result.output
    state, summary = route(date(2026, 11, 21))
    assert state.is_completed(), state.message
    assert {p["source"]: p for p in summary["sources"]}["banque"]["new_statements"] == 6
