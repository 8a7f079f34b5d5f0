"""The simulator's test cards the load pays with (docs/psp-simulator.md), same in both dialects."""

APPROVE = [
    "4242424242424242",
    "5555555555554444",
    "4012888888881881",
    "2223003122003222",
    "5200828282828210",
    "4000056655665556",
    "378282246310005",
]
SOFT_DECLINE = ["4000000000000002", "4000000000009995", "4000009900000012", "4000009900000020"]
HARD_DECLINE = ["4000000000009987", "4000000000000069", "4100000000000019"]
CAPTURE_FAILS = "4000009900000053"  # authorises; the capture fails
REFUND_FAILS = "4000000000005126"  # approves; its refunds fail later
SLOW = "4000009900000046"  # approves after the connector's slow-card delay

ALL_NUMBERS = sorted({*APPROVE, *SOFT_DECLINE, *HARD_DECLINE, CAPTURE_FAILS, REFUND_FAILS, SLOW})


def cvc_for(number: str) -> str:
    return "1234" if number.startswith(("34", "37")) else "123"
