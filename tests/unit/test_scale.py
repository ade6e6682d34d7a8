"""Issue 20 without a Prefect server: night time slots, provider politeness settings, a day collected
once (dispatch's coverage rule), and what prefect.yaml declares."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml

from flows.dispatch import covered_channels, slot_time
from glaneur.slots import assign_slot, night_slots
from tasks import politeness
from tests.unit.test_cli import acme, add_channel, count, first_collections, home, ok, refused, session  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


# -- time slots -------------------------------------------------------------------------------------


def test_night_slots_cover_the_night_every_five_minutes():
    slots = night_slots()
    assert (slots[0], slots[1], slots[-1], len(slots)) == ("00:30", "00:35", "05:55", 66)


def test_one_providers_channels_never_share_a_slot_until_the_night_is_full():
    existing: list[tuple[str, str]] = []
    for index in range(200):
        provider = "big" if index % 4 else "small"  # 150 channels of one supplier, 50 of another
        existing.append((provider, assign_slot(provider, existing)))
    big = Counter(slot for provider, slot in existing if provider == "big")
    small = Counter(slot for provider, slot in existing if provider == "small")
    overall = Counter(slot for _, slot in existing)
    assert max(small.values()) == 1  # 50 channels, 66 slots: each alone for its supplier
    assert max(big.values()) - min(big.get(slot, 0) for slot in night_slots()) <= 1  # 150 over 66: 2 or 3 each
    assert max(overall.values()) - min(overall.get(slot, 0) for slot in night_slots()) <= 1  # the night is even


def test_a_new_channel_avoids_its_providers_slots_first_then_busy_slots():
    existing = [("a", "00:30"), ("b", "00:35"), ("b", "00:35")]
    assert assign_slot("a", existing) == "00:40"  # 00:30 has an "a", 00:35 is busy
    assert assign_slot("b", existing, ["00:30", "00:35"]) == "00:30"  # no "b" at 00:30


# -- politeness settings ----------------------------------------------------------------------------


def test_each_provider_has_two_limits_and_defaults(monkeypatch):
    monkeypatch.delenv(politeness.ENVIRONMENT, raising=False)
    assert politeness.concurrency_limit_name("papeterie-dupont") == "provider:papeterie-dupont"
    assert politeness.rate_limit_name("papeterie-dupont") == "provider-rate:papeterie-dupont"
    assert politeness.politeness_of("papeterie-dupont") == politeness.DEFAULT
    assert politeness.DEFAULT.slot_decay_per_second == pytest.approx(politeness.DEFAULT.per_minute / 60)


def test_a_provider_is_tuned_alone(monkeypatch):
    monkeypatch.setenv(politeness.ENVIRONMENT, '{"energie-verte": {"concurrency": 5}}')
    tuned = politeness.politeness_of("energie-verte")
    assert (tuned.concurrency, tuned.per_minute) == (5, politeness.DEFAULT.per_minute)
    assert politeness.politeness_of("papeterie-dupont") == politeness.DEFAULT


@pytest.mark.parametrize(
    ("value", "expect"),
    [("{", "not JSON"), ('{"x": {"burst": 2}}', "unknown field"), ('{"x": {"concurrency": 0}}', "concurrency must")],
)
def test_bad_politeness_settings_are_refused_with_a_reason(monkeypatch, value, expect):
    monkeypatch.setenv(politeness.ENVIRONMENT, value)
    with pytest.raises(ValueError, match=expect):
        politeness.configured()


# -- a day collected once ---------------------------------------------------------------------------


PARIS = "Europe/Paris"
SLOTS = {"a": "02:00", "b": "05:00"}


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return slot_time(date(2026, 12, day), f"{hour:02d}:{minute:02d}", PARIS).astimezone(UTC)


def test_runs_created_before_the_slot_do_not_cover_the_day():
    runs = [("a", at(1, 0, 5)), ("b", at(1, 0, 5))]  # the 1st's dispatch, before both slots
    assert covered_channels(runs, date(2026, 12, 1), SLOTS, PARIS) == set()
    assert covered_channels(runs, date(2026, 12, 2), SLOTS, PARIS) == set()


def test_a_missed_day_is_caught_up_once():
    # Down from the 2nd at 01:00 to the 4th at 03:00: the late dispatches of the 2nd, 3rd and 4th run at 03:00.
    back = at(4, 3)
    second = covered_channels([], date(2026, 12, 2), SLOTS, PARIS)
    assert second == set()  # the 2nd's dispatch creates one run per channel, starting now
    catch_up = [("a", back), ("b", back)]
    assert covered_channels(catch_up, date(2026, 12, 3), SLOTS, PARIS) == {"a", "b"}  # nothing more for the 3rd
    # The 4th: "a"'s slot (02:00) had passed when the catch-up ran, so it covers the 4th too; "b" runs at 05:00.
    assert covered_channels(catch_up, date(2026, 12, 4), SLOTS, PARIS) == {"a"}


def test_unknown_channels_are_ignored():
    assert covered_channels([("gone", at(5, 6))], date(2026, 12, 5), SLOTS, PARIS) == set()


# -- prefect.yaml -----------------------------------------------------------------------------------


def test_every_deployment_has_the_work_pool_and_the_schedules_a_time_zone():
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in config["deployments"]}
    assert {"collect-channel", "route-statements", "request-credentials", "dispatch-daily"} <= set(deployments)
    for name, deployment in deployments.items():
        assert deployment["work_pool"]["name"] == "glaneur", name
        assert Path(ROOT / deployment["entrypoint"].split(":")[0]).exists(), name
        for schedule in deployment.get("schedules", []):
            assert schedule["timezone"] == PARIS, name
    assert deployments["dispatch-daily"]["schedules"][0]["cron"] == "5 0 * * *"
    # Capacity is the workers' --limit (a freed thread takes the next run at once), not a deployment limit
    # whose refused runs would wait 30 s (ENQUEUE); the other deployments keep theirs.
    assert "concurrency_limit" not in deployments["collect-channel"]
    assert deployments["route-statements"]["concurrency_limit"]["collision_strategy"] == "ENQUEUE"
    assert deployments["collect-channel"]["work_pool"]["job_variables"]["env"]["GLANEUR_RETRIES"]
    assert "collect-bank-movements" in (ROOT / "prefect.yaml").read_text()  # the place kept for it


# -- CLI --------------------------------------------------------------------------------------------


def test_channels_without_a_time_slot_are_spread_over_the_night(acme):  # noqa: F811
    from glaneur.models import Channel

    add_channel("--slug", "c1")
    add_channel("--slug", "c2")
    add_channel("--slug", "c3", "--time-slot", "07:15")
    with session() as s:
        slots = {c.slug: c.time_slot for c in s.exec(__import__("sqlmodel").select(Channel)).all()}
    assert slots == {"c1": "00:30", "c2": "00:35", "c3": "07:15"}


def test_set_slot_moves_a_channel_and_is_audited(acme):  # noqa: F811
    from sqlmodel import select

    from glaneur.models import AuditLog, Channel

    add_channel("--slug", "c1")
    result = ok("channel", "set-slot", "c1", "3:40")
    assert "03:40" in result.output and "00:30" in result.output
    with session() as s:
        assert s.exec(select(Channel.time_slot).where(Channel.slug == "c1")).one() == "03:40"
        assert s.exec(select(AuditLog).where(AuditLog.action == "channel.set_slot")).one().target == "c1"
    refused("channel", "set-slot", "c1", "25:00", expect="invalid time slot")


def test_providers_show_their_politeness(acme, monkeypatch):  # noqa: F811
    monkeypatch.setenv(politeness.ENVIRONMENT, '{"papeterie-dupont": {"concurrency": 3, "per_minute": 12}}')
    lines = [line for line in ok("providers").output.splitlines() if "papeterie-dupont" in line]
    assert lines and " 3 " in lines[0] and " 12 " in lines[0]


# -- infra/docker-compose.yml -----------------------------------------------------------------------


def test_compose_has_the_distributed_pieces_and_keeps_the_locked_down_proxy():
    compose = yaml.safe_load((ROOT / "infra" / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "prefect", "proxy", "minio", "deploy", "worker"} <= set(services)
    prefect = services["prefect"]["environment"]
    assert prefect["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    assert "PREFECT_SERVER_API_AUTH_STRING" in prefect and "ports" not in services["prefect"]
    assert services["proxy"]["environment"]["PREFECT_OPS_PASSWORD_HASH"]
    worker = services["worker"]
    assert "--pool glaneur" in " ".join(worker["command"]) and worker["environment"]["PREFECT_API_AUTH_STRING"]
    assert worker["environment"]["GLANEUR_STORAGE"] == "s3"
    assert services["deploy"]["command"] == ["python", "-m", "infra.deploy"]
    assert set(compose["volumes"]) == {"pgdata", "minio", "caddy"}


def test_compose_file_follows_the_compose_specification():
    """What `docker compose config` checks first, without a Docker engine: the file against the spec's schema
    (tests/fixtures/compose/SOURCES.md), the files it mounts and builds from, and Glaneur settings it sets."""
    from jsonschema import Draft7Validator

    from glaneur.settings import Settings

    infra = ROOT / "infra"
    compose = yaml.safe_load((infra / "docker-compose.yml").read_text())
    schema = json.loads((ROOT / "tests" / "fixtures" / "compose" / "compose-spec.json").read_text())
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in Draft7Validator(schema).iter_errors(compose)]
    assert errors == []
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (infra / source).is_file(), f"{name} mounts {source}, which infra/ lacks"
        if "build" in service:
            context = (infra / service["build"]["context"]).resolve()
            assert (context / service["build"]["dockerfile"]).is_file(), name
        environment = service.get("environment", {})
        known = {f"GLANEUR_{field.upper()}" for field in Settings.model_fields} | {politeness.ENVIRONMENT}
        if name == "postgres":
            known.add("GLANEUR_DB_PASSWORD")  # read by infra/postgres-init.sh
        assert [key for key in environment if key.startswith("GLANEUR_") and key not in known] == [], name


def test_worker_image_copies_every_package_the_project_installs():
    """`pip install .` in the image installs what was copied: a package left out is a missing command there."""
    import tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    lines = (ROOT / "infra" / "Dockerfile.worker").read_text().splitlines()
    copied = {line.split()[1] for line in lines if line.startswith("COPY ")}
    assert {package.rstrip("*") for package in packages} <= copied
