"""benchmarks/python/pool_records.py: the record type of bench_pool's ``records-dataclass``, in a module of
its own so that other workloads' workers do not import ``dataclasses`` (milliseconds per interpreter)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Record:
    """A small record: what a script's own dataclass looks like."""

    id: int
    price: float
    name: str


def make(count: int) -> list[Record]:
    """``count`` distinct records (the same every time)."""
    return [Record(i, i * 0.25, f"item{i}") for i in range(count)]


def reprice(r: Record) -> Record:
    """The task: a new record (so results travel pickled too)."""
    return Record(r.id, r.price * 1.1, r.name)
