"""Bulk inserts for the catalog import: PostgreSQL's COPY instead of bulk_create's INSERT, the same rows written.

`bulk_create` spends most of a 10,000-component import in Python: preparing every value of every object through
its field, then adapting one array per column. COPY streams the rows as they are, so on PostgreSQL:
- `objects_insert` takes unsaved model instances, as bulk_create does, and gives them primary keys drawn from
  the table's sequence beforehand (COPY returns nothing), so callers use `obj.pk` afterwards as before;
- `rows_insert` takes plain tuples for link tables (dependencies, tags, grants), with no model instances at all,
  and an `INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING` when duplicates must be skipped.
Other databases (SQLite in tests) get plain bulk_create. Values go through the field's own `get_db_prep_save`
unless they are already what it would return (a str for a text field, an int for an integer one, …).
"""

import contextlib
import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from operator import attrgetter
from typing import Any, cast

from django.db import connection
from django.db.models import (
    BooleanField,
    CharField,
    DateField,
    DateTimeField,
    Field,
    ForeignKey,
    IntegerField,
    JSONField,
    Model,
    TextField,
)
from django.db.models.fields import AutoFieldMixin

BATCH_SIZE = 2000

# Field classes whose get_db_prep_save gives back, unchanged, a value of exactly this type (and None for None).
_PLAIN: "tuple[tuple[type[Field[Any, Any]], type], ...]" = (
    (CharField, str),
    (TextField, str),
    (BooleanField, bool),
    (IntegerField, int),  # AutoField, BigIntegerField, PositiveIntegerField… all derive from it
    (DateTimeField, dt.datetime),  # when aware, see below; before DateField, its parent
    (DateField, dt.date),
    (JSONField, type(None)),  # anything else is wrapped for psycopg
)


def _plain_type(field: "Field[Any, Any]") -> type | None:
    target = field.target_field if isinstance(field, ForeignKey) else field
    if not type(target).__module__.startswith("django.db.models."):  # a custom field may prepare values its way
        return None
    return next((kind for cls, kind in _PLAIN if isinstance(target, cls)), None)


def _row_maker(fields: "Sequence[Field[Any, Any]]") -> Callable[[Model], list[Any]]:
    """A function giving one object's database values for `fields`, as bulk_create would compute them."""
    get = attrgetter(*(f.attname for f in fields))  # a tuple of values when there are several fields
    stamped = [  # auto_now(_add): the field sets the value on the object, as on save
        (i, f) for i, f in enumerate(fields) if isinstance(f, DateField) and (f.auto_now or f.auto_now_add)
    ]
    checks = [(i, f, _plain_type(f)) for i, f in enumerate(fields)]

    def row(obj: Model) -> list[Any]:
        values = list(get(obj)) if len(fields) > 1 else [get(obj)]
        for i, stamp in stamped:
            values[i] = stamp.pre_save(obj, True)
        for i, field, plain in checks:
            value = values[i]
            if value is None and plain is not None:
                continue
            if type(value) is plain and not (isinstance(value, dt.datetime) and value.tzinfo is None):
                continue  # (a naive datetime gets Django's warning and time zone)
            values[i] = field.get_db_prep_save(value, connection)
        return values

    return row


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _column(field: "Field[Any, Any]") -> str:
    return _quote(cast(str, field.column))  # a concrete field always has its column


def objects_insert(model: type[Model], objects: Sequence[Model]) -> None:
    """Insert unsaved instances like `bulk_create(objects)`: afterwards each has its primary key and is saved."""
    if not objects:
        return
    meta = model._meta
    if not (
        connection.vendor == "postgresql"
        and isinstance(meta.pk, AutoFieldMixin)  # keys come from a sequence
        and not meta.parents
        and not any(f.has_db_default() for f in meta.concrete_fields)
    ):
        model._default_manager.bulk_create(objects, batch_size=BATCH_SIZE)
        return
    for obj in objects:
        obj._prepare_related_fields_for_save(operation_name="bulk_create")
    unnumbered = [obj for obj in objects if obj.pk is None]
    with connection.cursor() as cursor:
        if unnumbered:
            # One round trip for all the keys; sorted, so they grow in the objects' order as bulk_create's do.
            cursor.execute(
                "SELECT array_agg(nextval(pg_get_serial_sequence(%s, %s))) FROM generate_series(1, %s)",
                [_quote(meta.db_table), meta.pk.column, len(unnumbered)],
            )
            for obj, pk in zip(unnumbered, sorted(cursor.fetchone()[0]), strict=True):
                obj.pk = pk
        fields = [f for f in meta.concrete_fields if not f.generated]
        row = _row_maker(fields)
        columns = ", ".join(_column(f) for f in fields)
        with cursor.cursor.copy(f"COPY {_quote(meta.db_table)} ({columns}) FROM STDIN") as copy:
            for obj in objects:
                copy.write_row(row(obj))
    for obj in objects:
        obj._state.adding = False
        obj._state.db = connection.alias


def rows_insert(
    model: type[Model], fields: Sequence[str], rows: Iterable[Sequence[Any]], *, ignore_conflicts: bool = False
) -> None:
    """Insert rows of database-ready values for `fields` (attnames) without building instances; no primary keys
    come back. With `ignore_conflicts`, rows that would break a unique constraint are skipped, as bulk_create's."""
    rows = list(rows)
    if not rows:
        return
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(
            [model(**dict(zip(fields, row, strict=True))) for row in rows],
            batch_size=BATCH_SIZE,
            ignore_conflicts=ignore_conflicts,
        )
        return
    meta = model._meta
    by_attname = {f.attname: f for f in meta.concrete_fields}
    columns = ", ".join(_column(by_attname[name]) for name in fields)
    table = _quote(meta.db_table)
    with connection.cursor() as cursor:
        if not ignore_conflicts:
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        # One array per column; a column holding the same value in every row (a timestamp) is sent once.
        selected, params = [], []
        for name, column in zip(fields, zip(*rows, strict=True), strict=True):
            kind = by_attname[name].db_type(connection)
            if all(value is column[0] for value in column):
                selected.append(f"%s::{kind}")
                params.append(column[0])
            else:
                selected.append(f"unnest(%s::{kind}[])")
                params.append(list(column))
        if all(not select.startswith("unnest") for select in selected):  # one row per row, even then
            selected[0], params[0] = (
                f"unnest(%s::{by_attname[fields[0]].db_type(connection)}[])",
                [params[0]] * len(rows),
            )
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {', '.join(selected)} ON CONFLICT DO NOTHING",  # noqa: S608
            params,
        )


GIN_BULK_ROWS = 1000


@contextlib.contextmanager
def gin_bulk_writes(model: type[Model], *, rows: int) -> Iterator[None]:
    """Write `rows` rows of `model` in bulk into its GIN indexes that are kept without a pending list.

    An index with `fastupdate = off` inserts every new row's entries one by one into the index proper: ~2 ms per
    service, 20 s for 10,000, for the service search's trigram indexes when they had no list (catalog/migrations/0009;
    since 0017 they keep a 64 kB one, which this leaves alone). For a large write the list
    is switched on, the rows go to it, and it is merged into the index in one sorted pass before the setting comes
    back, all inside the caller's transaction (a rollback undoes it too); searches after the commit find no pending
    list, as with the setting off. Needs the index's owner, as migrations have; otherwise rows go in one by one.
    """
    if connection.vendor != "postgresql" or rows < GIN_BULK_ROWS:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.oid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_am am ON am.oid = c.relam WHERE i.indrelid = %s::regclass AND am.amname = 'gin' "
            "AND 'fastupdate=off' = ANY(c.reloptions) AND pg_has_role(c.relowner, 'USAGE')",
            [_quote(model._meta.db_table)],
        )
        indexes = [name for (name,) in cursor.fetchall()]
        for name in indexes:  # a name from regclass::text, quoted where it needs to be
            cursor.execute(f"ALTER INDEX {name} SET (fastupdate = on)")
    yield  # an exception here aborts the transaction, and the rollback restores the setting
    with connection.cursor() as cursor:
        for name in indexes:
            cursor.execute("SELECT gin_clean_pending_list(%s::regclass)", [name])
            cursor.execute(f"ALTER INDEX {name} SET (fastupdate = off)")
