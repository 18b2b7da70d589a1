"""A contact's company: how an event's `ticket.contact.company` merges into the stored company.

Companies merge like contacts (server/automation.py `_merge_contact`): the stored company record
is the base -- every event of any ticket of any of its contacts, and PUT /v1/companies/{id}/groups,
merge into it -- absent keys keep their value, `custom` merges by key (a null value removes the
key), a null name or domain clears it, `groups` replaces the membership, another company id starts
afresh, and `"company": null` takes the contact out of its company.

Where a company lives: its own record (keys.company) is the truth; the contact's record names it
by `company_id`; the ticket's mirror keeps a copy under `ticket.contact.company`, which is what
rule conditions (`contact.company.name`, `.groups`, `.custom.<key>`) read during the pass.

Which company a pass loads (`wanted`) and which it merges into (`settle`) are decided by the same
rule, so the record the commit checks is always the one the pass merged into.

Pure: no Redis, no clock.
"""

from __future__ import annotations

from typing import Any

__all__ = ["COMPANY_KEYS", "wanted", "settle", "company_record", "company_groups"]

COMPANY_KEYS = ("id", "name", "domain", "groups", "custom")


def _obj(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _stored(company: dict[str, Any]) -> dict[str, Any]:
    from server.automation import unique_ci

    return {"id": company.get("id"), "name": company.get("name"), "domain": company.get("domain"),
            "groups": unique_ci(company.get("groups") or []),
            "custom": dict(company.get("custom") or {})}


def _merge(base: dict[str, Any] | None, patch: dict[str, Any]) -> dict[str, Any]:
    from server.automation import cap_custom, unique_ci

    out = _stored(base) if base and base.get("id") == patch.get("id") else {"id": patch.get("id")}
    for key, value in patch.items():
        if key == "custom":
            custom = dict(out.get("custom") or {})
            for k, v in (value or {}).items():
                custom.pop(k, None)
                if v is not None:
                    custom[k] = v
            out["custom"] = cap_custom(custom)
        elif key == "groups":
            out["groups"] = unique_ci(value or [])
        elif key in COMPANY_KEYS:
            out[key] = value
    return _stored(out)


def _event_company(event: dict[str, Any]) -> tuple[bool, dict[str, Any] | None]:
    """(whether the event's contact says which company, that company's patch or None)."""
    contact = _obj((event.get("ticket") or {}).get("contact"))
    if contact is None or "company" not in contact:
        return False, None
    return True, _obj(contact["company"])


def _contact_id(event: dict[str, Any], previous: dict[str, Any] | None) -> str | None:
    """The contact id the ticket has after the event, as automation.merge_event decides it."""
    data = event.get("ticket") or {}
    prior = _obj((previous or {}).get("contact"))
    prior_id = prior.get("id") if prior else None
    if "contact" in data:
        patch = data["contact"]
        if not isinstance(patch, dict):
            return None
        cid = patch.get("id") or prior_id
    else:
        cid = prior_id
    return str(cid) if cid else None


def _prior(previous: dict[str, Any] | None, contact_id: str | None) -> dict[str, Any] | None:
    """The ticket's own copy of its contact's company, if that contact is still the one."""
    prior = _obj((previous or {}).get("contact"))
    if prior is None or contact_id is None or prior.get("id") != contact_id:
        return None
    return _obj(prior.get("company"))


def wanted(event: dict[str, Any], previous: dict[str, Any] | None,
           contact: dict[str, Any] | None) -> str | None:
    """The id of the company record the event's pass merges into (store/tickets.load reads it):
    the event's, else the stored contact's `company_id`, else the ticket's copy's."""
    named, patch = _event_company(event)
    if named:
        cid = patch.get("id") if patch else None
        return str(cid) if cid else None
    contact_id = _contact_id(event, previous)
    if contact is not None and contact.get("id") == contact_id:
        ref = contact.get("company_id")
        return str(ref) if ref else None
    prior = _prior(previous, contact_id)
    return str(prior["id"]) if prior and prior.get("id") else None


def settle(merged_contact: Any, event: dict[str, Any], previous: dict[str, Any] | None,
           contact: dict[str, Any] | None, company: dict[str, Any] | None) -> Any:
    """The ticket's contact after the event with its company merged in: `merged_contact` is the
    contact as automation.merge_event left it, `contact` and `company` the stored records the
    pass loaded (`company` is the one `wanted` named)."""
    if not isinstance(merged_contact, dict):
        return merged_contact
    out = {k: v for k, v in merged_contact.items() if k != "company"}
    ref = wanted(event, previous, contact)
    stored = company if company is not None and company.get("id") == ref and ref else None
    named, patch = _event_company(event)
    if named:
        result = _merge(stored, patch) if patch else None
    elif ref is None:
        result = None
    else:
        prior = _prior(previous, out.get("id"))
        base = stored or (prior if prior and prior.get("id") == ref else None)
        result = _stored(base if base else {"id": ref})
    if result is not None:
        out["company"] = result
    return out


def company_record(ticket: dict[str, Any]) -> dict[str, Any] | None:
    """The company of the ticket's contact as stored on its own."""
    company = _obj(_obj(ticket.get("contact")) and ticket["contact"].get("company"))
    if company is None or not company.get("id"):
        return None
    return _stored(company)


def company_groups(ticket: dict[str, Any]) -> list[str]:
    """The groups of the ticket's contact's company (for GET /v1/tickets?group=)."""
    company = company_record(ticket)
    return list(company["groups"]) if company else []
