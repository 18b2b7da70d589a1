"""Route a customer with several open tickets to a senior agent, and link the tickets.

Reads ctx.customer: the contact's open_tickets, tickets_30d and its newest tickets. A customer
with 3 or more open tickets (or 5 in the last 30 days) goes to the `senior` department with the
ids of their other open tickets in `custom.related_tickets`, so the agent sees them together.
"""


def run(event, ticket, ctx):
    customer = ctx.customer
    if customer is None:
        return None
    if customer["open_tickets"] < 3 and customer["tickets_30d"] < 5:
        return None
    others = [t["id"] for t in customer["recent"]
              if t["id"] != ticket["id"] and t["status"] not in ("solved", "closed")]
    return {"department": "senior", "add_tags": ["busy-customer"],
            "custom": {"related_tickets": ",".join(others),
                       "customer_open_tickets": customer["open_tickets"]}}
