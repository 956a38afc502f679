"""SM2 signature verification (GB/T 32918.2-2016) on curve sm2p256v1, on Python integers.

Verification only: the terminal checks signatures on public data, so nothing
here needs to be constant-time, and nothing here signs (the simulated wallets
sign with gmssl, an independent implementation that checks this one).

The point arithmetic is Jacobian (a = -3, so doubling takes the short form).
``s·G`` uses a fixed-base table of G (32 windows of 8 bits, 8,160 affine
points, built on first use, never at import); ``t·P`` uses a width-5 NAF of t
over the odd multiples P, 3P, ..., 15P made affine with one inversion.  One
verification costs 256 doublings, about 43 + 32 mixed additions and two
inversions, which is about 1 ms on a 2020s core, against ~9 ms for gmssl's
hex-string arithmetic (see docs/cbdc-protocol.md for the measured figures).

The GB/T 32918.5 Appendix A vector (user id "1234567812345678", M =
"message digest"):

>>> key = bytes.fromhex(
...     "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
...     "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13")
>>> za(key).hex().upper()
'B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3'
>>> signature = bytes.fromhex(
...     "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"
...     "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA")
>>> verify(key, b"message digest", signature), verify(key, b"message digest!", signature)
(True, False)
"""

from __future__ import annotations

import functools

from cbdc.sm3 import sm3

__all__ = ["DEFAULT_USER_ID", "N", "digest", "is_valid_public_key", "verify", "verify_digest", "za"]

P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0

DEFAULT_USER_ID = b"1234567812345678"

_WINDOW = 8  # bits per window of the fixed-base table of G
_NAF_WIDTH = 5

_Jacobian = tuple[int, int, int]  # (X, Y, Z), x = X/Z², y = Y/Z³; Z = 0 is the point at infinity
_Affine = tuple[int, int]
_INFINITY: _Jacobian = (1, 1, 0)


def _double(pt: _Jacobian) -> _Jacobian:
    x, y, z = pt
    if not z or not y:
        return _INFINITY
    zz = z * z % P
    yy = y * y % P
    s = 4 * x * yy % P
    m = 3 * (x - zz) * (x + zz) % P
    x3 = (m * m - 2 * s) % P
    return x3, (m * (s - x3) - 8 * yy * yy) % P, 2 * y * z % P


def _add_affine(pt: _Jacobian, q: _Affine) -> _Jacobian:
    """pt + q, q affine (and not infinity)."""
    x1, y1, z1 = pt
    x2, y2 = q
    if not z1:
        return x2, y2, 1
    z1z1 = z1 * z1 % P
    h = (x2 * z1z1 - x1) % P
    r = (y2 * z1 * z1z1 - y1) % P
    if not h:
        return _double(pt) if not r else _INFINITY
    hh = h * h % P
    hhh = h * hh % P
    v = x1 * hh % P
    x3 = (r * r - hhh - 2 * v) % P
    return x3, (r * (v - x3) - y1 * hhh) % P, z1 * h % P


def _to_affine_all(points: list[_Jacobian]) -> list[_Affine]:
    """Montgomery's trick: one inversion for the lot (no point may be infinity)."""
    prefix = [1] * (len(points) + 1)
    for i, (_, _, z) in enumerate(points):
        prefix[i + 1] = prefix[i] * z % P
    inv = pow(prefix[-1], -1, P)
    out: list[_Affine] = [(0, 0)] * len(points)
    for i in range(len(points) - 1, -1, -1):
        x, y, z = points[i]
        zinv = inv * prefix[i] % P
        inv = inv * z % P
        zinv2 = zinv * zinv % P
        out[i] = (x * zinv2 % P, y * zinv2 * zinv % P)
    return out


@functools.cache
def _g_windows() -> list[list[_Affine]]:
    """table[i][j - 1] = j · 2^(8i) · G, affine; built once, on first use (about 50 ms)."""
    table: list[list[_Affine]] = []
    base: _Affine = (GX, GY)
    for _ in range(256 // _WINDOW):
        row: list[_Jacobian] = [(base[0], base[1], 1)]
        for _ in range(2, 1 << _WINDOW):
            row.append(_add_affine(row[-1], base))
        affine = _to_affine_all(row)
        table.append(affine)
        nxt = _add_affine((affine[-1][0], affine[-1][1], 1), base)  # 256 · base
        base = _to_affine_all([nxt])[0]
    return table


def _naf(k: int) -> list[int]:
    """Width-5 NAF digits of k, least significant first (each 0 or odd in (-16, 16))."""
    digits: list[int] = []
    full = 1 << _NAF_WIDTH
    half = full >> 1
    while k:
        if k & 1:
            d = k & (full - 1)
            if d >= half:
                d -= full
            k -= d
        else:
            d = 0
        digits.append(d)
        k >>= 1
    return digits


def _combined(s: int, t: int, q: _Affine) -> _Jacobian:
    """s·G + t·q."""
    odd: list[_Jacobian] = [(q[0], q[1], 1)]
    twice = _double(odd[0])
    twice_affine = _to_affine_all([twice])[0] if twice[2] else None
    for _ in range(1, 1 << (_NAF_WIDTH - 2)):
        if twice_affine is None:  # q has order 2: impossible on this curve of prime order, kept for safety
            return _INFINITY
        odd.append(_add_affine(odd[-1], twice_affine))
    if any(not z for _, _, z in odd):
        return _INFINITY
    table = _to_affine_all(odd)
    acc = _INFINITY
    for d in reversed(_naf(t)):
        acc = _double(acc)
        if d > 0:
            acc = _add_affine(acc, table[d >> 1])
        elif d < 0:
            x, y = table[(-d) >> 1]
            acc = _add_affine(acc, (x, P - y))
    windows = _g_windows()
    mask = (1 << _WINDOW) - 1
    for i in range(256 // _WINDOW):
        j = (s >> (_WINDOW * i)) & mask
        if j:
            acc = _add_affine(acc, windows[i][j - 1])
    return acc


def _point(public_key: bytes) -> _Affine | None:
    if len(public_key) != 64:
        return None
    x = int.from_bytes(public_key[:32], "big")
    y = int.from_bytes(public_key[32:], "big")
    if x >= P or y >= P or (y * y - (x * x * x + A * x + B)) % P:
        return None
    return x, y


def is_valid_public_key(public_key: bytes) -> bool:
    """64 bytes x ‖ y of a point on sm2p256v1 (the curve's order is prime, so any such point will do).

    >>> is_valid_public_key(bytes(64)), is_valid_public_key(GX.to_bytes(32, "big") + GY.to_bytes(32, "big"))
    (False, True)
    """
    return _point(public_key) is not None


def za(public_key: bytes, user_id: bytes = DEFAULT_USER_ID) -> bytes:
    """ZA = SM3(ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG ‖ xA ‖ yA), ENTL the id's length in bits on two bytes."""
    if len(public_key) != 64:
        raise ValueError("an SM2 public key is 64 bytes x ‖ y")
    if len(user_id) >= 1 << 13:
        raise ValueError("SM2 user id too long")
    curve = b"".join(v.to_bytes(32, "big") for v in (A, B, GX, GY))
    return sm3((len(user_id) * 8).to_bytes(2, "big") + user_id + curve + public_key)


def digest(public_key: bytes, message: bytes, user_id: bytes = DEFAULT_USER_ID) -> bytes:
    """e = SM3(ZA ‖ M), what the signature is computed on."""
    return sm3(za(public_key, user_id) + message)


def verify_digest(public_key: bytes, e: bytes, signature: bytes) -> bool:
    """Whether ``signature`` (r ‖ s, 64 bytes) signs the digest ``e`` under ``public_key``."""
    q = _point(public_key)
    if q is None or len(signature) != 64 or len(e) != 32:
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not (0 < r < N and 0 < s < N):
        return False
    t = (r + s) % N
    if not t:
        return False
    x, _, z = _combined(s, t, q)
    if not z:
        return False
    zinv = pow(z, -1, P)
    x1 = x * zinv * zinv % P
    return (int.from_bytes(e, "big") + x1) % N == r


def verify(public_key: bytes, message: bytes, signature: bytes, user_id: bytes = DEFAULT_USER_ID) -> bool:
    """Whether ``signature`` (r ‖ s) signs ``message`` under ``public_key`` (x ‖ y) with ``user_id``.

    Returns False, never raises, for a key not on the curve, r or s outside [1, n-1], or wrong lengths.
    """
    if len(public_key) != 64 or len(user_id) >= 1 << 13:
        return False
    return verify_digest(public_key, digest(public_key, message, user_id), signature)
