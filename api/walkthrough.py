"""The README walkthrough, run through a Python client generated from the served OpenAPI document
(openapi-python-client): who am I, create, list with filters, update with If-Match (and a stale
one refused), history, mitigations, dashboard, export. A document that breaks the generated
client, or disagrees with what the service answers, breaks this script.

    python3 api/walkthrough.py BASE_URL TOKEN      (with the generated `openrisk_client` importable)
"""

import datetime
import sys

from openrisk_client import AuthenticatedClient
from openrisk_client.api.auth import me
from openrisk_client.api.dashboard import stats
from openrisk_client.api.mitigations import create_mitigation, list_mitigations
from openrisk_client.api.reports import risk_register
from openrisk_client.api.risks import create_risk, get_risk, list_risks, risk_history, update_risk
from openrisk_client.models import (
    ChangeType,
    ExportFormat,
    Mitigation,
    NewMitigation,
    NewRisk,
    Problem,
    Risk,
    RiskPatch,
    RiskStatus,
    Severity,
    Stats,
)


def answered(response, status, model=None):
    """The parsed answer, after checking its status and, if given, its type."""
    if response.status_code != status:
        sys.exit(f"expected {status}, got {response.status_code}: {response.content[:300]!r}")
    if model is not None and not isinstance(response.parsed, model):
        sys.exit(f"expected a {model.__name__}, the client parsed {type(response.parsed).__name__}")
    return response.parsed


def main(base_url, token):
    client = AuthenticatedClient(base_url=base_url, token=token, raise_on_unexpected_status=True)

    whoami = answered(me.sync_detailed(client=client), 200)
    print(f"signed in as {whoami.user.email} ({whoami.role}) of {whoami.organization.slug}")

    created = create_risk.sync_detailed(client=client, body=NewRisk(
        title="Ransomware encrypts the file servers", likelihood=4, impact=5,
        category="security", tags=["ransomware", "backups"]))
    risk = answered(created, 201, Risk)
    assert (risk.score, risk.severity, risk.status) == (20, Severity.CRITICAL, RiskStatus.OPEN), risk
    assert created.headers["location"].endswith(str(risk.id)), created.headers
    etag = created.headers["etag"]
    print(f"created {risk.ref}: score {risk.score}, {risk.severity}")

    page = answered(list_risks.sync_detailed(
        client=client, severity=[Severity.CRITICAL], tag=["ransomware"], include_total=True), 200)
    assert risk.id in {item.id for item in page.items} and page.total >= 1, page
    print(f"{page.total} critical ransomware risk(s) listed")

    patch = RiskPatch(status=RiskStatus.IN_PROGRESS, likelihood=2)
    updated = answered(update_risk.sync_detailed(risk.id, client=client, body=patch, if_match=etag), 200, Risk)
    assert (updated.version, updated.score, updated.status) == (2, 10, RiskStatus.IN_PROGRESS), updated
    stale = update_risk.sync_detailed(risk.id, client=client, body=RiskPatch(impact=1), if_match=etag)
    answered(stale, 412, Problem)
    print(f"updated to version {updated.version}; the stale ETag was refused with 412")

    history = answered(risk_history.sync_detailed(risk.id, client=client), 200)
    assert [entry.change_type for entry in history.items] == [ChangeType.UPDATE, ChangeType.CREATE], history
    print(f"history: {', '.join(entry.change_type for entry in history.items)}")

    due = datetime.date.today() + datetime.timedelta(days=30)
    mitigation = answered(create_mitigation.sync_detailed(risk.id, client=client, body=NewMitigation(
        title="Offline, immutable backups", due_date=due)), 201, Mitigation)
    mitigations = answered(list_mitigations.sync_detailed(risk.id, client=client), 200)
    assert [m.id for m in mitigations.items] == [mitigation.id], mitigations
    counted = answered(get_risk.sync_detailed(risk.id, client=client), 200, Risk)
    assert counted.mitigation_count == 1, counted
    print(f"mitigation '{mitigation.title}' due {mitigation.due_date}")

    figures = answered(stats.sync_detailed(client=client), 200, Stats)
    assert figures.total >= 1 and figures.by_status.additional_properties.get("in_progress", 0) >= 1, figures
    print(f"dashboard: {figures.total} risk(s), average score {figures.average_score}")

    export = risk_register.sync_detailed(client=client, format_=ExportFormat.CSV, tag=["ransomware"])
    assert export.status_code == 200, export
    rows = export.content.decode().splitlines()
    assert rows[0].startswith("ref,") and any(risk.ref in row for row in rows[1:]), rows[:3]
    print(f"export: {len(rows) - 1} row(s) of CSV")


if __name__ == "__main__":
    main(*sys.argv[1:3])
