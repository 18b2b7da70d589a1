# billing-overdue: a customer with an overdue invoice gets priority high, the billing-overdue tag,
# and finance is notified. Billing is asked over the allow-listed HTTP client.

import json


def run(event, ticket, ctx):
    email = (ticket.get("contact") or {}).get("email")
    if not email:
        return None
    base = ctx.vars.get("billing_url", "https://billing.example.com")
    try:
        resp = ctx.http.get(base + "/invoices", params={"customer": email},
                            auth_secret="BILLING_TOKEN", timeout=3)
    except Exception as exc:            # refused or unreachable: leave the ticket alone, say why
        ctx.log("billing lookup failed:", str(exc))
        return None
    if resp.status_code != 200:
        ctx.log("billing answered", resp.status_code)
        return None
    overdue = [inv for inv in resp.json().get("invoices", []) if inv.get("status") == "overdue"]
    if not overdue:
        return {"remove_tags": ["billing-overdue"]}
    total = sum(inv.get("amount", 0) for inv in overdue)
    ids = ", ".join(inv["id"] for inv in overdue)
    ctx.log("overdue:", json.dumps(overdue))
    return {
        "priority": "high",
        "add_tags": ["billing-overdue"],
        "custom": {"overdue_total": round(total, 2)},
        "actions": [{"type": "notify", "target": "team:finance",
                     "message": f"{email} has overdue invoices {ids} ({total:.2f}) on ticket {ticket['id']}"}],
    }
