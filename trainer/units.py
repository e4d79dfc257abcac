"""Bits from nats: the one constant every loss and codec report shares."""

import math

LN2 = math.log(2)  # bits = nats / LN2
