"""SQL for the search triggers, shared by the migration and kept beside it (not a migration itself)."""

SEARCHABLE = {
    # table: (title expression, body expression), over the row being written (NEW)
    "catalog_service": ("coalesce(NEW.name, '') || ' ' || coalesce(NEW.slug, '')", "coalesce(NEW.description, '')"),
    "catalog_system": ("coalesce(NEW.name, '') || ' ' || coalesce(NEW.slug, '')", "coalesce(NEW.description, '')"),
    "teams_team": ("coalesce(NEW.name, '') || ' ' || coalesce(NEW.slug, '')", "coalesce(NEW.description, '')"),
    "techdocs_runbook": ("coalesce(NEW.title, '')", "coalesce(NEW.body, '')"),
    "techdocs_adr": (
        "coalesce(NEW.title, '')",
        "coalesce(NEW.body, '') || ' ' || coalesce(NEW.context, '') || ' ' || coalesce(NEW.decision, '') || ' ' "
        "|| coalesce(NEW.consequences, '')",
    ),
}


def trigger_statements() -> list[str]:
    statements = []
    for table, (title, body) in SEARCHABLE.items():
        statements += table_statements(table, title, body)
    return statements


def table_statements(table: str, title: str, body: str) -> list[str]:
    """The column, trigger, index and backfill that make one table searchable (later apps call this from their own
    migrations: incidents' postmortems)."""
    return [
        f"ALTER TABLE {table} DROP COLUMN IF EXISTS search_tsv",
        f"ALTER TABLE {table} ADD COLUMN search_tsv tsvector",
        f"""CREATE OR REPLACE FUNCTION {table}_search() RETURNS trigger AS $$
        BEGIN
            IF coalesce(current_setting('runway.defer_search_index', true), '') = 'on' THEN
                NEW.search_tsv := NULL;
            ELSE
                NEW.search_tsv := setweight(to_tsvector('english', {title}), 'A')
                    || setweight(to_tsvector('english', left({body}, 500000)), 'B');
            END IF;
            RETURN NEW;
        END $$ LANGUAGE plpgsql""",
        f"CREATE TRIGGER {table}_search BEFORE INSERT OR UPDATE ON {table} FOR EACH ROW "
        f"EXECUTE FUNCTION {table}_search()",
        f"CREATE INDEX IF NOT EXISTS {table}_search_tsv ON {table} USING GIN (search_tsv)",
        f"UPDATE {table} SET id = id",  # fills the new column for rows that exist already
    ]
