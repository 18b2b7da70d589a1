# crm-vip: route VIP contacts to the VIP desk (respond.io's "route VIP contacts" template).
# Asks the CRM for the contact's customerType; the CRM token is attached by the broker by name.
# ctx.vars["crm_url"] overrides the CRM's base URL (tests point it at a local app).


def run(event, ticket, ctx):
    contact = ticket.get("contact") or {}
    email = contact.get("email")
    if not email:
        return None
    base = ctx.vars.get("crm_url", "https://crm.example.com")
    resp = ctx.http.get(base + "/contacts", params={"email": email}, auth_secret="CRM_TOKEN")
    if resp.status_code == 200 and resp.json().get("customerType") == "VIP":
        ctx.log("VIP contact", email)
        return {"priority": "urgent", "department": "vip-desk",
                "add_tags": ["vip"], "custom": {"tier": "vip"}}
    ctx.log("not a VIP:", resp.status_code)
    return None
