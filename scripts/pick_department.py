# pick-department: combine the ticket's history (age, reopen count), tags and custom fields to
# choose a department, the way a support lead would.

import re
from datetime import datetime, timedelta

BILLING_WORDS = re.compile(r"\b(refund|invoice|charge[ds]?|billing|payment)\b", re.IGNORECASE)


def ticket_age(ticket, now):
    created = ticket.get("created_at")
    if not created:
        return timedelta(0)
    return now - datetime.fromisoformat(created.replace("Z", "+00:00"))


def run(event, ticket, ctx):
    tags = [t.lower() for t in ticket.get("tags", [])]
    custom = ticket.get("custom") or {}
    text = " ".join([ticket.get("subject") or "", ticket.get("description") or "",
                     (event.get("message") or {}).get("body") or ""])
    reopened = int(custom.get("reopen_count") or 0)
    age = ticket_age(ticket, ctx.now())

    if custom.get("plan") == "enterprise" and (reopened >= 2 or age > timedelta(days=2)):
        department, why = "escalations", f"enterprise, reopened {reopened}x, {age.days}d old"
    elif "bug" in tags or custom.get("error_code"):
        department, why = "engineering", "bug report"
    elif BILLING_WORDS.search(text):
        department, why = "billing", "billing words"
    else:
        department, why = "general", "default"
    ctx.log("department:", department, "-", why)
    if ticket.get("department") == department:
        return None
    updates = {"department": department, "add_tags": ["routed"]}
    if department == "escalations":
        updates["priority"] = "high"
    return updates
