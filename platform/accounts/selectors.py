"""Reads for accounts."""

from collections.abc import Callable
from functools import cache
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Model

from accounts.models import ApiToken
from portal import db

Converter = Callable[[Any, Any, Any], Any]


def _column(model: type[Model], name: str) -> str:
    column: str = getattr(model._meta.get_field(name), "column")  # noqa: B009 - a relation has none; these are fields
    return connection.ops.quote_name(column)


def _converters(model: type[Model]) -> list[tuple[list[Converter], Any]]:
    """What the ORM's compiler applies to each concrete column of `model` as it reads it (e.g. SQLite's datetimes)."""
    columns = [field.get_col(model._meta.db_table) for field in model._meta.concrete_fields]
    return [(connection.ops.get_db_converters(col) + col.get_db_converters(connection), col) for col in columns]


@cache
def _token_query() -> tuple[str, int, list[tuple[list[Converter], Any]]]:
    """The token and its user in one statement, every concrete column of each (built from the models, so that it
    follows them); how many of the columns are the token's; and the converters for each column."""
    quote, user_model = connection.ops.quote_name, get_user_model()
    token_columns = [f"t.{_column(ApiToken, field.name)}" for field in ApiToken._meta.concrete_fields]
    user_columns = [f"u.{_column(user_model, field.name)}" for field in user_model._meta.concrete_fields]
    sql = (  # every name comes from the models; the prefix is a parameter
        f"SELECT {', '.join(token_columns + user_columns)} "  # noqa: S608
        f"FROM {quote(ApiToken._meta.db_table)} t INNER JOIN {quote(user_model._meta.db_table)} u "
        f"ON u.{_column(user_model, user_model._meta.pk.name)} = t.{_column(ApiToken, 'user')} "  # type: ignore[union-attr]
        f"WHERE t.{_column(ApiToken, 'prefix')} = %s"
    )
    return sql, len(token_columns), _converters(ApiToken) + _converters(user_model)


def _instance(model: type[Model], values: list[Any]) -> Model:
    return model.from_db(connection.alias, [field.attname for field in model._meta.concrete_fields], values)


def token_with_user(*, prefix: str) -> ApiToken | None:
    """The token with this public prefix, its user loaded, or None: what
    `ApiToken.objects.select_related("user").filter(prefix=prefix).first()` returns, without composing that query on
    every API request (the ORM takes several times longer to build it than the database takes to answer it)."""
    sql, split, converters = _token_query()
    row = db.fetch_one(sql, [prefix])  # on every API request: without the health check's extra round trip
    if row is None:
        return None
    values = list(row)
    for index, (functions, column) in enumerate(converters):
        for function in functions:
            values[index] = function(values[index], column, connection)
    token = _instance(ApiToken, values[:split])
    ApiToken.user.field.set_cached_value(token, _instance(get_user_model(), values[split:]))
    return token  # type: ignore[return-value]
