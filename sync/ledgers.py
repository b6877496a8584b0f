"""The ledgers community workers keep, as XLSX: returnees, fever referrals, visitors
(from the gates' registrations, synced, and the visitor passes issued), home isolations
and residents (from the issuer's store).

This is the one export that shows personal data (names, phones, where returnees came
from): the registrations were made for these ledgers. ``gate-sync pull`` and the
traces leave it out. Data a gate has purged after its retention period shows as
blank cells with the note "已清除 purged". Headers are Chinese, with English below.

There is no residents ledger yet: the centre keeps passes, not a residents table.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

from sync.store.central import IssuerStore
from sync.store.streams import EntryQuery, StreamStore
from sync.trace import Table, matching

LedgerName = Literal["residents", "returnees", "fevers", "visitors", "isolations"]
LEDGERS: tuple[LedgerName, ...] = ("residents", "returnees", "fevers", "visitors", "isolations")
_ROLES = {"resident": "住户", "tenant": "租户", "landlord": "房东"}
PURGED = "已清除 purged"
_REGISTERED = "门岗登记 gate"
_PASS = "访客证 pass"

#: Each ledger's columns: (key, Chinese header, English header).
_COLUMNS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "residents": (
        ("community", "社区", "community"),
        ("compound", "小区", "compound"),
        ("building", "楼栋", "building"),
        ("unit", "单元", "unit"),
        ("room", "房号", "room"),
        ("household_id", "户号", "household"),
        ("name", "姓名", "name"),
        ("phone", "电话", "phone"),
        ("role", "身份", "role"),
        ("landlord", "房东", "landlord"),
        ("landlord_phone", "房东电话", "landlord's phone"),
    ),
    "returnees": (
        ("time", "登记时间", "registered at"),
        ("gate_id", "门岗", "gate"),
        ("household_id", "户号", "household"),
        ("name", "姓名", "name"),
        ("phone", "电话", "phone"),
        ("from_place", "来自何地", "coming from"),
        ("returned_on", "返回日期", "returned on"),
        ("transport", "交通方式(车次/航班)", "transport (train/flight)"),
        ("health", "健康状况", "health"),
        ("temperature_celsius", "体温(°C)", "temperature (°C)"),
        ("outcome", "结果", "outcome"),
        ("reason", "原因代码", "reason code"),
        ("guard", "值守人员", "guard"),
        ("note", "备注", "note"),
    ),
    "visitors": (
        ("source", "来源", "source"),
        ("time", "登记时间", "registered at"),
        ("gate_id", "门岗", "gate"),
        ("household_id", "被访户号", "host household"),
        ("name", "姓名", "name"),
        ("phone", "电话", "phone"),
        ("visit_reason", "来访事由", "reason for visit"),
        ("plate", "车牌", "plate"),
        ("temperature_celsius", "体温(°C)", "temperature (°C)"),
        ("outcome", "结果", "outcome"),
        ("reason", "原因代码", "reason code"),
        ("guard", "值守人员", "guard"),
        ("pass_id", "访客证", "visitor pass"),
        ("valid_until", "有效至", "valid until"),
        ("note", "备注", "note"),
    ),
    "fevers": (
        ("time", "时间", "time"),
        ("gate_id", "门岗", "gate"),
        ("direction", "方向", "direction"),
        ("pass_id", "通行证", "pass"),
        ("pass_kind", "类别", "kind"),
        ("household_id", "户号", "household"),
        ("manual_identity", "登记身份", "registered as"),
        ("name", "姓名", "name"),
        ("phone", "电话", "phone"),
        ("temperature_celsius", "体温(°C)", "temperature (°C)"),
        ("temperature_source", "测温方式", "measured by"),
        ("outcome", "结果", "outcome"),
        ("next_step", "下一步", "next step"),
        ("guard", "值守人员", "guard"),
        ("note", "备注", "note"),
    ),
    "isolations": (
        ("household_id", "户号", "household"),
        ("starts_at", "开始", "from"),
        ("ends_at", "结束", "until"),
        ("lifted_at", "提前解除", "lifted at"),
        ("note", "备注", "note"),
        ("created_at", "登记时间", "ordered at"),
    ),
}
_SHEETS = {
    "residents": "住户",
    "returnees": "返乡人员",
    "visitors": "访客",
    "fevers": "发热转诊",
    "isolations": "居家隔离",
}


def ledger_table(
    name: LedgerName,
    streams: StreamStore,
    issuer: IssuerStore,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Table:
    """One ledger as a table with two header rows (Chinese, then English)."""
    columns = _COLUMNS[name]
    rows: Iterator[dict[str, Any]]
    if name == "isolations":
        rows = _isolations(issuer, since, until)
    elif name == "residents":
        rows = _residents(issuer)  # who lives where now: no time window
    elif name == "visitors":
        registered = _registrations(name, streams, EntryQuery(since=since, until=until))
        rows = itertools.chain(registered, _visitor_passes(issuer, since, until))
    else:
        rows = _registrations(name, streams, EntryQuery(since=since, until=until))
    return Table(
        columns=[key for key, _, _ in columns],
        rows=rows,
        headers=[[zh for _, zh, _ in columns], [en for _, _, en in columns]],
        sheet=_SHEETS[name],
    )


def _registrations(name: str, streams: StreamStore, query: EntryQuery) -> Iterator[dict[str, Any]]:
    for when, record in matching(streams, query):
        if not _belongs(name, record.content):
            continue
        content = record.content
        row: dict[str, Any] = {k: content.get(k) for k, _, _ in _COLUMNS[name]}
        row["time"] = "" if when is None else _local(when)
        row["gate_id"] = record.gate_id
        if name == "visitors":
            row["source"] = _REGISTERED
        personal = _personal(content)
        if personal is None:
            if content.get("personal_digest"):
                row["note"] = "; ".join(filter(None, [content.get("note"), PURGED]))
        else:
            row.update({k: v for k, v in personal.items() if k in row and k != "reason"})
            if name == "visitors":
                row["visit_reason"] = personal.get("reason")
        yield row


def _belongs(name: str, content: dict[str, Any]) -> bool:
    if name == "returnees":
        return content.get("manual_identity") == "returnee"
    if name == "visitors":
        return content.get("manual_identity") == "visitor"
    return content.get("reason") == "fever" or content.get("next_step") == "refer_fever_clinic"


def _personal(content: dict[str, Any]) -> dict[str, Any] | None:
    text = content.get("personal")
    if not isinstance(text, str) or not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _visitor_passes(
    issuer: IssuerStore, since: datetime | None, until: datetime | None
) -> Iterator[dict[str, Any]]:
    """Visitor passes issued for visits overlapping the window (``time`` is the visit's start)."""
    for row in issuer.visitor_passes(since, until):
        issued = issuer.get_pass(row.pass_id) if row.pass_id else None
        revoked = issued is not None and issued.revoked_at is not None
        notes = [
            "一次性 once" if row.once else "",
            f"申请 requested by {row.requested_by}",
            f"批准 approved by {row.decided_by}" if not row.direct else "直接签发 issued directly",
            f"已作废 revoked: {issued.revoke_reason}" if revoked and issued else "",
            "" if row.name else PURGED,  # the centre's retention purge blanked the visitor
        ]
        yield {
            "source": _PASS,
            "time": _local(datetime.fromisoformat(row.starts_at)),
            "gate_id": "",
            "household_id": row.household_id,
            "name": row.name,
            "phone": row.phone,
            "visit_reason": row.reason,
            "plate": row.plate,
            "temperature_celsius": None,
            "outcome": "revoked" if revoked else row.state,
            "reason": None,
            "guard": None,
            "pass_id": row.pass_id,
            "valid_until": _local(datetime.fromisoformat(row.ends_at)),
            "note": "; ".join(filter(None, notes)),
        }


def _isolations(
    issuer: IssuerStore, since: datetime | None, until: datetime | None
) -> Iterator[dict[str, Any]]:
    for row in issuer.isolation_history(since, until):
        yield {
            "household_id": row.household_id,
            "starts_at": _local(datetime.fromisoformat(row.starts_at)),
            "ends_at": _local(datetime.fromisoformat(row.ends_at)),
            "lifted_at": _local(datetime.fromisoformat(row.lifted_at)) if row.lifted_at else "",
            "note": row.note,
            "created_at": _local(datetime.fromisoformat(row.created_at)),
        }


def _residents(issuer: IssuerStore) -> Iterator[dict[str, Any]]:
    people = issuer.residents()
    by_id = {person.person_id: person for person in people}
    for person in people:
        home = person.household
        landlord = by_id.get(person.landlord_id) if person.landlord_id is not None else None
        yield {
            "community": home.community,
            "compound": home.compound,
            "building": home.building,
            "unit": home.unit,
            "room": home.room,
            "household_id": home.household_id,
            "name": person.name,
            "phone": person.phone,
            "role": f"{_ROLES.get(person.role, person.role)} {person.role}",
            "landlord": landlord.name if landlord else "",
            "landlord_phone": landlord.phone if landlord else "",
        }


def _local(moment: datetime) -> str:
    """A time as community workers read it: this machine's local time, to the second."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")
