"""tool_calling: pick one of the declared tools and fill its arguments (``expected_calls``)."""

from __future__ import annotations

import json
import random

from nemotron_cascade import chat
from nemotron_cascade.data.world.common import Domain, TeacherStyle

# Many cities, each seen rarely: a prior over a few names cannot fit the data, copying can.
CITIES = ["Paris", "Lima", "Oslo", "Cairo", "Tokyo", "Quito", "Rome", "Perth", "Dakar", "Hanoi",
          "Berlin", "Madrid", "Lisbon", "Dublin", "Vienna", "Prague", "Warsaw", "Athens", "Delhi", "Seoul",
          "Manila", "Jakarta", "Nairobi", "Accra", "Lagos", "Tunis", "Havana", "Bogota", "Santiago", "Denver",
          "Boston", "Austin", "Toronto", "Montreal", "Sydney", "Auckland", "Riga", "Sofia", "Zagreb", "Minsk"]
TOOLS = {
    "get_weather": {"name": "get_weather", "description": "Current weather in a city.",
                    "parameters": {"city": "string", "unit": "celsius|fahrenheit"}},
    "get_time": {"name": "get_time", "description": "Local time in a city.",
                 "parameters": {"city": "string"}},
    "convert_currency": {"name": "convert_currency", "description": "Convert money.",
                         "parameters": {"amount": "integer", "source": "string", "target": "string"}},
    "set_alarm": {"name": "set_alarm", "description": "Set an alarm.",
                  "parameters": {"hour": "integer", "minute": "integer"}},
    "book_flight": {"name": "book_flight", "description": "Book a flight.",
                    "parameters": {"origin": "string", "destination": "string"}},
}
CURRENCIES = ["EUR", "USD", "JPY", "GBP", "INR", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "MXN"]


def task(r: random.Random) -> dict:
    """A request that one of two declared tools serves, and the call that serves it."""
    name = r.choice(list(TOOLS))
    city, city2 = r.sample(CITIES, 2)
    if name == "get_weather":
        unit = r.choice(["celsius", "fahrenheit"])
        ask, args = f"What is the weather in {city} in {unit}?", {"city": city, "unit": unit}
    elif name == "get_time":
        ask, args = f"What time is it in {city} now?", {"city": city}
    elif name == "convert_currency":
        amount, (src, dst) = r.randint(2, 99), r.sample(CURRENCIES, 2)
        ask, args = f"How much is {amount} {src} in {dst}?", {"amount": amount, "source": src, "target": dst}
    elif name == "set_alarm":
        hour, minute = r.randint(5, 11), r.choice([0, 15, 30, 45])
        ask, args = f"Wake me up at {hour}:{minute:02d}.", {"hour": hour, "minute": minute}
    else:
        ask, args = f"Book me a flight from {city} to {city2}.", {"origin": city, "destination": city2}
    others = r.sample([t for t in TOOLS if t != name], 1)
    tools = [TOOLS[t] for t in sorted([name, *others])]
    return {"prompt": ask, "tools": tools, "expected_calls": [{"name": name, "arguments": args}],
            "key": json.dumps([name, args], sort_keys=True)}


def respond(row: dict, thinking: bool, style: TeacherStyle) -> str:
    """The call, after a trace that names the tool and its arguments."""
    call = row["expected_calls"][0]
    answer = chat.format_tool_call(call["name"], call["arguments"])
    # the trace names the tool and restates each argument next to its key, in the JSON's own
    # tokens, so the call itself is a short-range copy of the trace
    args = ", ".join(f'"{k}": {json.dumps(v)}' for k, v in call["arguments"].items())
    trace = f'I should call "{call["name"]}" with {args}.'
    return chat.thinking_response(trace, answer) if thinking else answer


DOMAIN = Domain("tool_calling", task, respond, verifier="tool_calling")
