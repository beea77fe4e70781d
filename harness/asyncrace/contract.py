"""What a case program says about itself (``--list``, docs/contract.md "contract 2").

Everything that crosses C and Python is read here, from the program, never written a
second time in Python: the outcome names (in enum order), the modes and runners (in
table order), the status record's layout, the variants with their twins, and the cells
with what each must show. A description that does not add up is a ProgramError naming
the program and the key.
"""
import struct
from dataclasses import dataclass
from pathlib import Path

CONTRACT = 2
KINDS = ("never", "sometimes", "always", "rarely")
# The three outcome names the driver itself gives meaning to: success, and what it counts
# when a process dies (crash) or stops making progress (hang).
DRIVER_OUTCOMES = ("ok", "crash", "hang")
# The C programs' outcome names, in their enum order (harness/race/race.h): what a
# declaration is checked against before anything is built. harness/test_contract.py
# checks that every built program lists exactly these.
BUILTIN_OUTCOMES = ("ok", "panic", "deadlock", "fatal", "lost", "wrong_thread", "leak", "crash",
                    "hang", "uncontrolled")
STATUS_FIELDS = {  # name: (type, count or None for "one per outcome")
    "magic": ("char", None), "current": ("u64", 1), "done": ("u64", 1), "counts": ("u64", None),
    "first_failure_iteration": ("u64", 1), "first_failure_outcome": ("u64", 1),
    "first_failure_detail": ("char", None),
}
TYPE_SIZE = {"char": 1, "u64": 8}


class ContractError(ValueError):
    """A --list (or status record) that does not match the contract."""


@dataclass(frozen=True)
class Status:
    current: int
    done: int
    counts: tuple[int, ...]
    first_failure_iteration: int | None
    first_failure_outcome: int
    first_failure_detail: str


@dataclass(frozen=True)
class StatusField:
    name: str
    offset: int
    type: str
    count: int


@dataclass(frozen=True)
class StatusLayout:
    """The status record (--status FILE) as the program lays it out: little-endian."""
    magic: str
    size: int
    fields: tuple[StatusField, ...]

    def _field(self, name: str) -> StatusField:
        return next(f for f in self.fields if f.name == name)

    def _u64s(self, data: bytes, name: str) -> tuple[int, ...]:
        f = self._field(name)
        return struct.unpack_from(f"<{f.count}Q", data, f.offset)

    def _chars(self, data: bytes, name: str) -> bytes:
        f = self._field(name)
        return data[f.offset:f.offset + f.count].split(b"\0", 1)[0]

    def read(self, path: Path) -> Status | None:
        """None when the program never got as far as writing it."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if len(data) < self.size or self._chars(data, "magic") != self.magic.encode():
            return None
        (ff_iteration,) = self._u64s(data, "first_failure_iteration")
        none = 2 ** (8 * TYPE_SIZE["u64"]) - 1   # all ones: no failure yet
        return Status(self._u64s(data, "current")[0], self._u64s(data, "done")[0],
                      self._u64s(data, "counts"), None if ff_iteration == none else ff_iteration,
                      self._u64s(data, "first_failure_outcome")[0],
                      self._chars(data, "first_failure_detail").decode("utf-8", "replace"))

    def to_dict(self) -> dict:
        return {"magic": self.magic, "size": self.size,
                "fields": [{"name": f.name, "offset": f.offset, "type": f.type, "count": f.count}
                           for f in self.fields]}

    @classmethod
    def from_dict(cls, d: dict, outcomes: int) -> "StatusLayout":
        """Checks that every field the driver reads is there, typed and inside the record."""
        try:
            magic, size = str(d["magic"]), int(d["size"])
            fields = tuple(StatusField(str(f["name"]), int(f["offset"]), str(f["type"]),
                                       int(f["count"])) for f in d["fields"])
        except (KeyError, TypeError, ValueError) as e:
            raise ContractError(f"status: malformed ({e!r})") from e
        by_name = {f.name: f for f in fields}
        for name, (type_, count) in STATUS_FIELDS.items():
            f = by_name.get(name)
            if f is None:
                raise ContractError(f"status: no field {name!r}")
            if f.type != type_:
                raise ContractError(f"status.{name}: type {f.type!r}, expected {type_!r}")
            if name == "counts" and f.count != outcomes:
                raise ContractError(f"status.counts: {f.count} counts for {outcomes} outcomes")
            if count is not None and f.count != count:
                raise ContractError(f"status.{name}: count {f.count}, expected {count}")
            if f.offset < 0 or f.offset + f.count * TYPE_SIZE[f.type] > size:
                raise ContractError(f"status.{name}: offset {f.offset} + {f.count} x {f.type}"
                                    f" is outside the {size}-byte record")
        if len(magic.encode()) >= by_name["magic"].count:
            raise ContractError(f"status.magic: {magic!r} does not fit its field with a NUL")
        return cls(magic, size, fields)


@dataclass(frozen=True)
class Runner:
    name: str
    version: str
    deterministic: bool


@dataclass(frozen=True)
class Variant:
    name: str
    what: str
    twin: str | None      # for a variant that must never fail: the variant whose failure it fixes


@dataclass(frozen=True)
class CellSpec:
    id: str
    runner: str
    variant: str
    mode: str
    kind: str
    outcome: str          # the failure a sometimes/always/rarely cell shows; "ok" for never
    why: str = ""         # rarely: why no budget can require it


@dataclass(frozen=True)
class Description:
    case: str
    upstream: str
    summary: str
    outcomes: tuple[str, ...]
    modes: tuple[str, ...]
    search_modes: tuple[str, ...]   # modes that search every schedule in a bound
    runners: tuple[Runner, ...]
    status: StatusLayout
    variants: tuple[Variant, ...]
    cells: tuple[CellSpec, ...]


def _get(d: dict, key: str, where: str, type_: type):
    if not isinstance(d, dict) or key not in d:
        raise ContractError(f"{where}: no {key!r}")
    value = d[key]
    if not isinstance(value, type_):
        raise ContractError(f"{where}.{key}: expected {type_.__name__}, got {value!r}")
    return value


def parse(d: dict) -> Description:
    """A contract-2 --list object, checked."""
    if not isinstance(d, dict) or d.get("contract") != CONTRACT:
        raise ContractError(f"not contract {CONTRACT} (its 'contract' is "
                            f"{d.get('contract') if isinstance(d, dict) else None!r})")
    case = _get(d, "case", "list", str)
    outcomes = tuple(_get(d, "outcomes", "list", list))
    missing = [o for o in DRIVER_OUTCOMES if o not in outcomes]
    if missing or len(set(outcomes)) != len(outcomes):
        raise ContractError(f"outcomes {list(outcomes)}: must be distinct and include "
                            f"{', '.join(DRIVER_OUTCOMES)}")
    modes = tuple(_get(m, "name", "modes[]", str) for m in _get(d, "modes", "list", list))
    search_modes = tuple(m["name"] for m in d["modes"] if m.get("search") is True)
    runners = tuple(Runner(_get(r, "name", "runners[]", str), str(r.get("version", "unknown")),
                           bool(r.get("deterministic", False)))
                    for r in _get(d, "runners", "list", list))
    variants = tuple(Variant(_get(v, "name", "variants[]", str), str(v.get("what", "")),
                             v.get("twin"))
                     for v in _get(d, "variants", "list", list))
    names = {v.name for v in variants}
    for v in variants:
        if v.twin is not None and v.twin not in names:
            raise ContractError(f"variants.{v.name}.twin: {v.twin!r} is not a variant")
    status = StatusLayout.from_dict(_get(d, "status", "list", dict), len(outcomes))
    cells = []
    for c in _get(d, "cells", "list", list):
        where = f"cells[{c.get('id', '?') if isinstance(c, dict) else '?'}]"
        spec = CellSpec(_get(c, "id", where, str), _get(c, "runner", where, str),
                        _get(c, "variant", where, str), _get(c, "mode", where, str),
                        _get(_get(c, "expect", where, dict), "kind", where + ".expect", str),
                        str(c["expect"].get("outcome", "ok")), str(c["expect"].get("why", "")))
        for value, allowed, key in ((spec.runner, [r.name for r in runners], "runner"),
                                    (spec.variant, names, "variant"), (spec.mode, modes, "mode"),
                                    (spec.kind, KINDS, "expect.kind"),
                                    (spec.outcome, outcomes, "expect.outcome")):
            if value not in allowed:
                raise ContractError(f"{where}.{key}: {value!r} is not one of {', '.join(allowed)}")
        if spec.id != f"{case}.{spec.runner}.{spec.variant}.{spec.mode}":
            raise ContractError(f"{where}: id is not {case}.{spec.runner}.{spec.variant}.{spec.mode}")
        if (spec.kind == "never") != (spec.outcome == "ok"):
            raise ContractError(f"{where}.expect: {spec.kind} {spec.outcome} (never goes with ok)")
        cells.append(spec)
    if len({c.id for c in cells}) != len(cells):
        raise ContractError("cells: an id is listed twice")
    return Description(case, str(d.get("upstream", "")), str(d.get("summary", "")), outcomes,
                       modes, search_modes, runners, status, variants, tuple(cells))

