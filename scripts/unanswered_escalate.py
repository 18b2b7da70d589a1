"""Escalate a ticket on the third customer message in a row that no agent has answered.

Reads ctx.history (the ticket's earlier events, oldest first) and the event being applied:
walks the messages, an agent message resets the count. On the third unanswered customer message
it raises the priority to urgent, tags the ticket and notes how long the customer has waited.
Run it from a rule on `message.received`.
"""


def run(event, ticket, ctx):
    messages = [h["message"] for h in ctx.history if h.get("message")]
    if event.get("message"):
        messages.append(event["message"])
    waiting = 0
    for m in messages:
        if m.get("author") == "agent":
            waiting = 0
        elif m.get("author") == "customer":
            waiting += 1
    if waiting < 3 or "unanswered-3" in (ticket.get("tags") or []):
        return None
    ctx.log("customer waiting on", waiting, "messages")
    return {"priority": "urgent", "add_tags": ["unanswered-3"],
            "custom": {"unanswered_messages": waiting}}
