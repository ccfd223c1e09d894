"""Inputs for benches/http.sh: many distinct callers and numbers, so that no cache of one
user or one number makes the service look faster than it is.

    python3 benches/http_inputs.py DIR USERS NUMBERS [LINKS]

Reads BFF__AUTH__HS256_SECRET, BFF__AUTH__ISSUER and BFF__AUTH__AUDIENCE, and writes:
- DIR/links.csv     `subject,autoshares_user_id` for `autoshares-bff users import`: LINKS
                    users (default USERS), of whom the first USERS call;
- DIR/tokens.txt    one HS256 JWT a line, one per calling user, valid for two hours, a
                    fresh login (the claims `autoshares-bff token mint` writes);
- DIR/bodies.txt    one bind body a line: valid mobile numbers of several countries, each
                    written in one of several forms a person types.
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import time

# Mobile ranges of a few countries (libphonenumber's example numbers, last digits varied)
# and the ways people write them. Each entry: country code, the national number's fixed
# head, how many digits follow, and the groupings (national digits) of the written forms.
RANGES = [
    ("1", "310890", 4, [(3, 3, 4)]),
    ("44", "7400", 6, [(4, 6), (4, 3, 3)]),
    ("49", "1512345", 4, [(4, 7), (3, 4, 4)]),
    ("33", "6123", 5, [(1, 2, 2, 2, 2)]),
    ("91", "81234", 5, [(5, 5)]),
    ("55", "1196123", 4, [(2, 5, 4)]),
]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(secret: bytes, claims: dict) -> str:
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


def split(digits: str, groups: tuple) -> list:
    parts, at = [], 0
    for size in groups:
        parts.append(digits[at : at + size])
        at += size
    return parts


def written(code: str, national: str, groups: tuple, form: int) -> str:
    parts = split(national, groups)
    if form == 0:
        return f"+{code}{national}"
    if form == 1:
        return f"+{code} " + " ".join(parts)
    if form == 2:
        return f"+{code}-" + "-".join(parts)
    if form == 3 and code == "1":
        return f"+1 ({parts[0]}) {parts[1]}-{parts[2]}"
    return f"+{code}." + ".".join(parts)


def numbers(count: int):
    for i in range(count):
        code, head, tail, groupings = RANGES[i % len(RANGES)]
        national = head + str(i // len(RANGES)).zfill(tail)[-tail:]
        groups = groupings[(i // len(RANGES)) % len(groupings)]
        yield written(code, national, groups, (i // 7) % 5)


def main() -> None:
    out, users, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    links = max(users, int(sys.argv[4]) if len(sys.argv) > 4 else users)
    secret = os.environ["BFF__AUTH__HS256_SECRET"].encode()
    issuer, audience = os.environ["BFF__AUTH__ISSUER"], os.environ["BFF__AUTH__AUDIENCE"]
    now = int(time.time())
    with open(f"{out}/links.csv", "w") as table, open(f"{out}/tokens.txt", "w") as tokens:
        table.write("subject,autoshares_user_id\n")
        for i in range(links):
            subject = f"bench-user-{i}"
            table.write(f"{subject},{1001 + i}\n")
            if i >= users:
                continue
            claims = {"sub": subject, "iss": issuer, "aud": audience, "iat": now,
                      "exp": now + 7200, "auth_time": now}
            tokens.write(jwt(secret, claims) + "\n")
    with open(f"{out}/bodies.txt", "w") as bodies:
        for number in numbers(count):
            bodies.write(json.dumps({"phoneNumber": number}) + "\n")


if __name__ == "__main__":
    main()
