"""On PostgreSQL the database refuses TRUNCATE of the audit log too: it fires no row trigger, so 0002's trigger does not
see it, and one statement would empty the whole log.

A statement-level BEFORE TRUNCATE trigger refuses it unless the session has set `runway.audit_truncate = 'allow'`.
Only the test settings set it (as a connection option): Django's test flush empties every table with one TRUNCATE
between transactional tests. It is a guard against mistakes (`manage.py flush`, a console), not a privilege boundary:
any session can set the variable, as the table's owner can drop the trigger. Against a hostile owner, only a database
role that does not own the table, and backups, protect the log.
"""

from django.db import migrations

POSTGRES_UP = """
CREATE OR REPLACE FUNCTION audit_event_refuse_truncate() RETURNS trigger AS $$
BEGIN
    IF coalesce(current_setting('runway.audit_truncate', true), '') = 'allow' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION USING MESSAGE = 'audit events are append-only: TRUNCATE refused',
                          ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_event_refuse_truncate BEFORE TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_refuse_truncate();
"""
POSTGRES_DOWN = """
DROP TRIGGER IF EXISTS audit_event_refuse_truncate ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_event_refuse_truncate();
"""


def _run(statements_by_vendor: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def run(apps, schema_editor):  # type: ignore[no-untyped-def]
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only_trigger")]
    operations = [
        migrations.RunPython(
            _run({"postgresql": [POSTGRES_UP]}),
            _run({"postgresql": [POSTGRES_DOWN]}),
        )
    ]
