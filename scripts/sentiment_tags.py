# sentiment-tags: tag the customer's mood from the message body, keeping the tags consistent
# ("feels bad" removes "feels good" and the other way round). Pure `re`, no HTTP.

import re

NEGATIVE = re.compile(r"\b(angry|annoyed|awful|bad|broken|disappointed|frustrat\w*|terrible|"
                      r"unacceptable|upset|worst)\b", re.IGNORECASE)
POSITIVE = re.compile(r"\b(thanks?|thank you|great|love|awesome|perfect|happy|excellent)\b",
                      re.IGNORECASE)
NEGATION = re.compile(r"\b(not|never|no)\s+(\w+\s+)?$", re.IGNORECASE)


def count_hits(pattern, text):
    count = 0
    for m in pattern.finditer(text):
        if not NEGATION.search(text[max(0, m.start() - 20):m.start()]):
            count += 1
    return count


def run(event, ticket, ctx):
    message = event.get("message") or {}
    if message.get("author") != "customer":
        return None
    body = message.get("body") or ""
    bad, good = count_hits(NEGATIVE, body), count_hits(POSITIVE, body)
    ctx.log("sentiment:", good, "positive,", bad, "negative")
    if bad > good:
        return {"add_tags": ["feels-bad"], "remove_tags": ["feels-good"],
                **({"priority": "high"} if bad >= 3 else {})}
    if good > bad:
        return {"add_tags": ["feels-good"], "remove_tags": ["feels-bad"]}
    return None
